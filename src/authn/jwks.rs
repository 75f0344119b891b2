//! JSON Web Key Sets (RFC 7517) compiled into verification keys. A key's algorithm is fixed here,
//! from its JWK, so a token can never choose how it is verified.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use ct_codecs::{Base64UrlSafeNoPadding, Decoder};
use jwt_simple::prelude::{
    ECDSAP256PublicKeyLike, ECDSAP384PublicKeyLike, ES256PublicKey, ES384PublicKey,
    Ed25519PublicKey, PS256PublicKey, PS384PublicKey, PS512PublicKey, RS256PublicKey,
    RS384PublicKey, RS512PublicKey,
};
use serde_json::Value;

use crate::token::jws::Algorithm;

/// Why an `oct` key in a fetched key set is skipped.
pub const SYMMETRIC_FETCHED: &str = "a symmetric (oct) key in a fetched key set: refused (anyone who reads the document could sign tokens)";

/// Public (or, for `oct`, shared) key material in the form the signature check uses. jwt-simple
/// validates each JWK (curve points, RSA sizes); the check itself runs on the primitives, over
/// the JWS signing input, so no second token parser is involved.
pub enum KeyMaterial {
    Rsa(rsa::RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
    Ed25519(ed25519_compact::PublicKey),
    Hmac(Vec<u8>),
}

pub struct VerificationKey {
    pub kid: Option<String>,
    pub alg: Algorithm,
    pub material: KeyMaterial,
    /// DER SubjectPublicKeyInfo of RSA and EC keys, computed once, for a host-backed check.
    pub spki_der: Option<Vec<u8>>,
    /// Who checks this key's signatures, chosen at configuration time.
    pub backend: Backend,
}

/// Where a key's signatures are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// In the Wasm VM, in Rust ([`crate::authn::signature::is_valid`]).
    PureRust,
    /// By the host (Envoy's `verify_signature` foreign function, BoringSSL).
    Host,
}

impl Backend {
    /// The algorithms Envoy's `verify_signature` serves: its BoringSSL check uses the key's
    /// default padding (PKCS#1 v1.5 for RSA, so no PS*) and has no Ed25519 or HMAC.
    pub fn host_serves(alg: Algorithm) -> bool {
        matches!(
            alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::ES256
                | Algorithm::ES384
                | Algorithm::ES512
        )
    }
}

impl VerificationKey {
    /// Lets the host check this key's signatures, if it serves its algorithm.
    pub fn prefer_host(&mut self) {
        if Backend::host_serves(self.alg) && self.spki_der.is_some() {
            self.backend = Backend::Host;
        }
    }
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// The largest fetched JWKS document accepted.
pub const MAX_FETCHED_JWKS_BYTES: usize = 256 * 1024;
/// The most keys taken from a fetched JWKS (real ones hold a handful).
pub const MAX_FETCHED_KEYS: usize = 64;

/// The most keys one token is checked against, per provider: a forged token must not buy one
/// signature check per key. Three covers a key set without `kid`s in rotation (the previous,
/// current and next key of one algorithm).
pub const MAX_KEYS_PER_TOKEN: usize = 3;

/// Why a key without `kid` is refused (inline) or skipped (fetched): tokens could never reach it.
pub const TOO_MANY_WITHOUT_KID: &str = "more than 3 keys of one alg without kid: a token is checked against at most 3 keys, so this one would never be tried (give the keys a kid)";

/// A problem with one key, located relative to the key set (`keys[2].alg`).
#[derive(Debug, PartialEq, Eq)]
pub struct JwksError {
    pub field: String,
    pub message: String,
}

impl JwksError {
    fn at(field: impl Into<String>, message: impl Into<String>) -> JwksError {
        JwksError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A provider's keys, kept apart from the rest of the (immutable) configuration so they can be
/// replaced at run time (a JWKS refresh) on their own. Each replacement bumps the key-set
/// version, which retires tokens cached under the old keys.
#[derive(Debug)]
pub struct KeyStore {
    current: RefCell<Rc<KeySet>>,
    /// Set when a token of this provider's issuer named a `kid` these keys lack; the root
    /// context takes it on its next tick and may refetch a remote key set.
    refetch_wanted: Cell<bool>,
}

impl KeyStore {
    pub fn new(keys: KeySet) -> KeyStore {
        KeyStore {
            current: RefCell::new(Rc::new(keys)),
            refetch_wanted: Cell::new(false),
        }
    }

    /// The keys in force now (a request keeps them even if they are replaced meanwhile).
    pub fn current(&self) -> Rc<KeySet> {
        self.current.borrow().clone()
    }

    pub fn version(&self) -> u64 {
        self.current.borrow().version
    }

    /// Puts `keys` in force, with the next version.
    pub fn replace(&self, mut keys: KeySet) {
        keys.version = self.version() + 1;
        *self.current.borrow_mut() = Rc::new(keys);
    }

    /// A token of this provider's issuer named a `kid` the keys lack.
    pub fn want_refetch(&self) {
        self.refetch_wanted.set(true);
    }

    /// Whether a refetch was wanted since the last call.
    pub fn take_refetch_request(&self) -> bool {
        self.refetch_wanted.replace(false)
    }

    /// Lets the host check the signatures it serves (at configuration time, while the keys are
    /// not shared yet).
    pub fn use_host_backend(&mut self) {
        if let Some(keys) = Rc::get_mut(self.current.get_mut()) {
            keys.use_host_backend();
        }
    }
}

#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<VerificationKey>,
    /// Changes whenever the keys change, so verified tokens cached under older keys are not
    /// used. Inline keys never change: 0.
    version: u64,
}

impl KeySet {
    /// Accepts the key set as a JSON object or as a string holding one.
    pub fn from_value(value: &Value) -> Result<KeySet, JwksError> {
        match value {
            Value::String(text) => {
                let parsed: Value = serde_json::from_str(text)
                    .map_err(|err| JwksError::at("", format!("not valid JSON: {err}")))?;
                KeySet::from_object(&parsed)
            }
            other => KeySet::from_object(other),
        }
    }

    fn from_object(value: &Value) -> Result<KeySet, JwksError> {
        let Some(object) = value.as_object() else {
            return Err(JwksError::at("", "must be a JWKS object {\"keys\": [...]}"));
        };
        let Some(Value::Array(entries)) = object.get("keys") else {
            return Err(JwksError::at("keys", "must be an array of JWKs"));
        };
        let mut keys = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let field = format!("keys[{index}]");
            if let Some(key) =
                compile_jwk(entry).map_err(|message| JwksError::at(&field, message))?
            {
                if key.kid.is_some() && keys.iter().any(|k: &VerificationKey| k.kid == key.kid) {
                    return Err(JwksError::at(field + ".kid", "duplicate kid"));
                }
                if unreachable_without_kid(&keys, &key) {
                    return Err(JwksError::at(field, TOO_MANY_WITHOUT_KID));
                }
                keys.push(key);
            }
        }
        if keys.is_empty() {
            return Err(JwksError::at("keys", "holds no signature verification key"));
        }
        Ok(KeySet { keys, version: 0 })
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// Lets the host check the signatures of every key whose algorithm it serves.
    pub fn use_host_backend(&mut self) {
        for key in &mut self.keys {
            key.prefer_host();
        }
    }

    /// A key set fetched at run time (a remote JWKS): at most [`MAX_FETCHED_JWKS_BYTES`],
    /// compiled key by key — a key that cannot be used is skipped and reported (`keys[i]: why`),
    /// the others are kept, as is the first of two keys with one `kid`. A symmetric (`oct`) key
    /// is always skipped: a key set fetched over the network is a public document, and anyone
    /// who reads it could sign tokens with a secret found there. A well-formed set with no
    /// usable key is the IdP's word that no key is valid (an IdP emptying its set to revoke a
    /// compromised key): it is put in force, empty. Only a document that is not a key set is an
    /// error (the fetch failed; the keys in force stay).
    pub fn from_fetched(body: &[u8]) -> Result<(KeySet, Vec<JwksError>), String> {
        if body.len() > MAX_FETCHED_JWKS_BYTES {
            return Err(format!(
                "the key set is {} bytes, more than {MAX_FETCHED_JWKS_BYTES}",
                body.len()
            ));
        }
        let value: Value =
            serde_json::from_slice(body).map_err(|err| format!("not valid JSON: {err}"))?;
        let Some(Value::Array(entries)) = value.as_object().and_then(|o| o.get("keys")) else {
            return Err("not a JWKS object {\"keys\": [...]}".into());
        };
        let mut keys: Vec<VerificationKey> = Vec::new();
        let mut skipped = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let field = format!("keys[{index}]");
            if keys.len() == MAX_FETCHED_KEYS {
                skipped.push(JwksError::at(field, "too many keys"));
                continue;
            }
            if entry.get("kty").and_then(Value::as_str) == Some("oct") {
                skipped.push(JwksError::at(field + ".kty", SYMMETRIC_FETCHED));
                continue;
            }
            match compile_jwk(entry) {
                Ok(Some(key)) if key.kid.is_some() && keys.iter().any(|k| k.kid == key.kid) => {
                    skipped.push(JwksError::at(field + ".kid", "duplicate kid"));
                }
                Ok(Some(key)) if unreachable_without_kid(&keys, &key) => {
                    skipped.push(JwksError::at(field, TOO_MANY_WITHOUT_KID));
                }
                Ok(Some(key)) => keys.push(key),
                Ok(None) => {}
                Err(message) => skipped.push(JwksError::at(field, message)),
            }
        }
        Ok((KeySet { keys, version: 0 }, skipped))
    }

    /// No keys: a remote key set before its first good fetch, or one its IdP emptied (inline
    /// key sets are never empty).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn keys(&self) -> &[VerificationKey] {
        &self.keys
    }

    pub fn by_kid(&self, kid: &str) -> Option<&VerificationKey> {
        self.keys.iter().find(|key| key.kid.as_deref() == Some(kid))
    }
}

/// A key without `kid` that follows [`MAX_KEYS_PER_TOKEN`] others of its algorithm: every token
/// would meet those first and stop, so it could verify none.
fn unreachable_without_kid(keys: &[VerificationKey], key: &VerificationKey) -> bool {
    key.kid.is_none()
        && keys
            .iter()
            .filter(|k| k.kid.is_none() && k.alg == key.alg)
            .count()
            >= MAX_KEYS_PER_TOKEN
}

/// `Ok(None)` for keys that are not for signatures (`"use": "enc"`), which real key sets mix in.
fn compile_jwk(jwk: &Value) -> Result<Option<VerificationKey>, String> {
    let Some(object) = jwk.as_object() else {
        return Err("must be a JWK object".into());
    };
    let text_member = |name: &str| -> Result<Option<&str>, String> {
        match object.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.as_str())),
            Some(_) => Err(format!("{name} must be a string")),
        }
    };
    if text_member("use")? == Some("enc") {
        return Ok(None);
    }
    let kty = text_member("kty")?.ok_or("kty is required")?;
    let kid = text_member("kid")?.map(str::to_owned);
    let alg = match text_member("alg")? {
        Some(name) => {
            Algorithm::from_name(name).ok_or_else(|| format!("unsupported alg {name:?}"))?
        }
        None => default_algorithm(kty, text_member("crv")?)?,
    };
    let (material, spki_der) = match kty {
        "oct" => (
            hmac_material(alg, text_member("k")?.ok_or("k is required for oct keys")?)?,
            None,
        ),
        _ => asymmetric_material(alg, jwk)?,
    };
    Ok(Some(VerificationKey {
        kid,
        alg,
        material,
        spki_der,
        backend: Backend::PureRust,
    }))
}

/// JWK members that only a private (or symmetric) key has: a DPoP proof that carries one has
/// leaked its key, and RFC 9449 §4.3 refuses it.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The key a DPoP proof's `jwk` header names, for the proof's own `alg` (already one the provider
/// allows). The JWK must be a public asymmetric key of that algorithm's family; its own `alg`,
/// when it has one, must agree.
pub fn proof_key(jwk: &Value, alg: Algorithm) -> Result<VerificationKey, String> {
    let Some(object) = jwk.as_object() else {
        return Err("jwk must be a JWK object".into());
    };
    if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| object.contains_key(**m)) {
        return Err(format!("jwk holds the private member {member:?}"));
    }
    match object.get("alg") {
        None => {}
        Some(Value::String(name)) if name == alg.name() => {}
        Some(_) => return Err("jwk alg differs from the proof alg".into()),
    }
    if alg == Algorithm::ES512 {
        crate::authn::es512::full_coordinates(jwk)?;
    }
    let (material, spki_der) = asymmetric_material(alg, jwk)?;
    Ok(VerificationKey {
        kid: None,
        alg,
        material,
        spki_der,
        backend: Backend::PureRust,
    })
}

/// Without `alg`, the type and curve decide. RSA and oct keys could serve several algorithms;
/// they get the most common one only, so a token cannot pick a weaker or unexpected scheme.
fn default_algorithm(kty: &str, crv: Option<&str>) -> Result<Algorithm, String> {
    match (kty, crv) {
        ("EC", Some("P-256")) => Ok(Algorithm::ES256),
        ("EC", Some("P-384")) => Ok(Algorithm::ES384),
        ("EC", Some("P-521")) => Ok(Algorithm::ES512),
        ("OKP", Some("Ed25519")) => Ok(Algorithm::EdDSA),
        ("RSA", _) => Ok(Algorithm::RS256),
        ("oct", _) => Ok(Algorithm::HS256),
        ("EC" | "OKP", crv) => Err(format!("unsupported curve {crv:?}")),
        (kty, _) => Err(format!("unsupported kty {kty:?}")),
    }
}

/// The key's verification material and, for RSA and EC keys, its DER SubjectPublicKeyInfo.
fn asymmetric_material(
    alg: Algorithm,
    value: &Value,
) -> Result<(KeyMaterial, Option<Vec<u8>>), String> {
    let jwk = &value.to_string();
    let invalid =
        |err: &dyn std::fmt::Display| format!("not a valid {} public key: {err}", alg.name());
    let rsa = |components: jwt_simple::algorithms::RSAPublicKeyComponents,
               der: Result<Vec<u8>, jwt_simple::Error>| {
        let n = rsa::BigUint::from_bytes_be(&components.n);
        let e = rsa::BigUint::from_bytes_be(&components.e);
        let key = rsa::RsaPublicKey::new(n, e).map_err(|err| invalid(&err))?;
        Ok((KeyMaterial::Rsa(key), der.ok()))
    };
    macro_rules! rsa_jwk {
        ($key_type:ty) => {{
            let key = <$key_type>::from_jwk(jwk).map_err(|e| invalid(&e))?;
            rsa(key.to_components(), key.to_der())
        }};
    }
    match alg {
        // The same for every RSA algorithm, but jwt-simple has one key type per algorithm.
        Algorithm::RS256 => rsa_jwk!(RS256PublicKey),
        Algorithm::RS384 => rsa_jwk!(RS384PublicKey),
        Algorithm::RS512 => rsa_jwk!(RS512PublicKey),
        Algorithm::PS256 => rsa_jwk!(PS256PublicKey),
        Algorithm::PS384 => rsa_jwk!(PS384PublicKey),
        Algorithm::PS512 => rsa_jwk!(PS512PublicKey),
        Algorithm::ES256 => {
            let key = ES256PublicKey::from_jwk(jwk).map_err(|e| invalid(&e))?;
            let public = p256::ecdsa::VerifyingKey::from_sec1_bytes(
                &key.public_key().to_bytes_uncompressed(),
            )
            .map_err(|e| invalid(&e))?;
            Ok((KeyMaterial::P256(public), key.to_der().ok()))
        }
        Algorithm::ES384 => {
            let key = ES384PublicKey::from_jwk(jwk).map_err(|e| invalid(&e))?;
            let public = p384::ecdsa::VerifyingKey::from_sec1_bytes(
                &key.public_key().to_bytes_uncompressed(),
            )
            .map_err(|e| invalid(&e))?;
            Ok((KeyMaterial::P384(public), key.to_der().ok()))
        }
        Algorithm::EdDSA => {
            let key = Ed25519PublicKey::from_jwk(jwk).map_err(|e| invalid(&e))?;
            let public =
                ed25519_compact::PublicKey::from_slice(&key.to_bytes()).map_err(|e| invalid(&e))?;
            Ok((KeyMaterial::Ed25519(public), None))
        }
        Algorithm::ES512 => crate::authn::es512::material(value)
            .map(|(public, spki)| (KeyMaterial::P521(public), Some(spki))),
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            Err(format!("alg {} needs kty \"oct\"", alg.name()))
        }
    }
}

fn hmac_material(alg: Algorithm, k: &str) -> Result<KeyMaterial, String> {
    let secret = Base64UrlSafeNoPadding::decode_to_vec(k, None)
        .map_err(|_| "k must be base64url without padding".to_string())?;
    // RFC 7518 §3.2: the key must be at least as long as the hash output.
    let minimum = match alg {
        Algorithm::HS256 => 32,
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        other => return Err(format!("alg {} does not fit kty \"oct\"", other.name())),
    };
    if secret.len() < minimum {
        return Err(format!(
            "k is {} bytes; {} needs at least {minimum}",
            secret.len(),
            alg.name()
        ));
    }
    Ok(KeyMaterial::Hmac(secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::testutil;
    use serde_json::json;

    #[test]
    fn compiles_every_family_with_algorithm_from_the_jwk() {
        let set = KeySet::from_value(&testutil::jwks()).unwrap();
        let algs: Vec<_> = set.keys().iter().map(|k| k.alg).collect();
        assert!(algs.contains(&Algorithm::ES256));
        assert!(algs.contains(&Algorithm::HS256));
        assert!(algs.contains(&Algorithm::EdDSA));
        assert!(set.by_kid("es256").is_some());
    }

    #[test]
    fn accepts_the_set_as_a_string() {
        let text = testutil::jwks().to_string();
        assert!(KeySet::from_value(&Value::String(text)).is_ok());
    }

    #[test]
    fn skips_encryption_keys_and_defaults_algorithms() {
        let set = KeySet::from_value(&json!({"keys": [
            {"kty": "RSA", "use": "enc", "n": "xx", "e": "AQAB"},
            {"kty": "oct", "k": testutil::HMAC_SECRET_B64, "kid": "h"}
        ]}))
        .unwrap();
        assert_eq!(set.keys().len(), 1);
        assert_eq!(set.keys()[0].alg, Algorithm::HS256);
    }

    #[test]
    fn a_fetched_set_keeps_its_good_keys() {
        let mut jwks = testutil::jwks();
        let keys = jwks["keys"].as_array_mut().unwrap();
        keys.retain(|k| k["kty"] != "oct");
        let good = keys.len();
        keys.insert(1, json!({"kty": "EC", "crv": "P-192", "kid": "bad"}));
        keys.push(keys[0].clone());
        let body = serde_json::to_vec(&jwks).unwrap();
        let (set, skipped) = KeySet::from_fetched(&body).unwrap();
        assert_eq!(set.keys().len(), good);
        let fields: Vec<_> = skipped.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["keys[1]", &format!("keys[{}].kid", good + 1)]);
    }

    #[test]
    fn a_fetched_set_never_supplies_a_symmetric_key() {
        let mut jwks = testutil::jwks();
        let keys = jwks["keys"].as_array_mut().unwrap();
        let asymmetric = keys.iter().filter(|k| k["kty"] != "oct").count();
        keys.push(json!({"kty": "oct", "k": testutil::HMAC_SECRET_B64, "kid": "fetched-h"}));
        let body = serde_json::to_vec(&jwks).unwrap();
        let (set, skipped) = KeySet::from_fetched(&body).unwrap();
        assert_eq!(set.keys().len(), asymmetric);
        assert!(set.keys().iter().all(|k| !k.alg.name().starts_with("HS")));
        assert!(skipped.iter().any(|e| e.message == SYMMETRIC_FETCHED));
        // The same key inline is the operator's own secret: allowed.
        let inline = KeySet::from_value(&jwks).unwrap();
        assert!(inline.by_kid("fetched-h").is_some());
    }

    #[test]
    fn a_well_formed_set_without_usable_keys_is_empty_not_a_failure() {
        for set in [
            json!({"keys": []}),
            json!({"keys": [{"kty": "EC", "crv": "P-521", "x": "a", "y": "b"}]}),
            json!({"keys": [{"kty": "oct", "k": testutil::HMAC_SECRET_B64}]}),
        ] {
            let (keys, _) = KeySet::from_fetched(set.to_string().as_bytes()).unwrap();
            assert!(keys.is_empty(), "{set}");
        }
    }

    #[test]
    fn a_fetched_document_that_is_not_a_key_set_or_too_large_fails() {
        assert!(KeySet::from_fetched(b"{\"keys\": [").is_err());
        assert!(KeySet::from_fetched(b"<html>").is_err());
        assert!(KeySet::from_fetched(b"{\"keys\": {}}").is_err());
        let mut big = testutil::jwks().to_string().into_bytes();
        big.truncate(big.len() - 1);
        big.extend(std::iter::repeat_n(b' ', MAX_FETCHED_JWKS_BYTES));
        big.push(b'}');
        assert!(KeySet::from_fetched(&big).unwrap_err().contains("bytes"));
    }

    #[test]
    fn a_refetch_request_is_taken_once() {
        let store = KeyStore::new(KeySet::default());
        assert!(!store.take_refetch_request());
        store.want_refetch();
        store.want_refetch();
        assert!(store.take_refetch_request());
        assert!(!store.take_refetch_request());
    }

    #[test]
    fn refuses_bad_keys_naming_them() {
        let cases = [
            (json!([]), ""),
            (json!({"keys": {}}), "keys"),
            (json!({"keys": []}), "keys"),
            (
                json!({"keys": [{"kty": "EC", "crv": "P-521", "x": "a", "y": "b"}]}),
                "keys[0]",
            ),
            (
                json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}]}),
                "keys[0]",
            ),
            (json!({"keys": [{"kty": "oct", "k": "c2hvcnQ"}]}), "keys[0]"),
            (
                json!({"keys": [{"kty": "oct", "alg": "none", "k": "c2hvcnQ"}]}),
                "keys[0]",
            ),
            (
                json!({"keys": [{"kty": "RSA", "alg": "HS256", "n": "a", "e": "AQAB"}]}),
                "keys[0]",
            ),
            (json!({"keys": [{"alg": "ES256"}]}), "keys[0]"),
            (
                json!({"keys": [{"kty": "oct", "k": testutil::HMAC_SECRET_B64, "kid": "a"},
                             {"kty": "oct", "k": testutil::HMAC_SECRET_B64, "kid": "a"}]}),
                "keys[1].kid",
            ),
        ];
        for (jwks, field) in cases {
            let err = KeySet::from_value(&jwks).unwrap_err();
            assert_eq!(err.field, field, "{jwks} -> {err:?}");
        }
    }
}
