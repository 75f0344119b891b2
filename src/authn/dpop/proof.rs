//! One DPoP proof (RFC 9449 §4.2, §4.3 steps 1–8): a compact JWS of type `dpop+jwt`, signed
//! with the public key in its own `jwk` header, for an algorithm the provider allows. What it
//! claims (method, URI, time, token hash) is judged in [`super`], against the request.

use serde_json::{Map, Value};

use std::rc::Rc;

use crate::authn::dpop::keys::{ProofKey, ProofKeys};
use crate::authn::dpop::thumbprint::jwk_thumbprint;
use crate::authn::jwks::proof_key;
use crate::authn::verify::SignatureVerifier;
use crate::reason::AuthFailure;
use crate::token::jws::{Algorithm, UnverifiedJws, numeric_date};

/// Proofs longer than this are refused before any parsing (a proof holds one public key: an
/// RSA-4096 JWK and its signature fit in about 2 KB).
pub const MAX_PROOF_BYTES: usize = 4096;
/// A `jti` is a random identifier (RFC 9449 §4.2: 96 bits suffice); more is no identifier.
const MAX_JTI_BYTES: usize = 256;

/// A proof whose signature is good; its claims are still to be judged.
#[derive(Debug)]
pub struct SignedProof {
    /// The RFC 7638 thumbprint of the proof's `jwk`.
    pub thumbprint: String,
    pub jti: String,
    pub htm: String,
    pub htu: String,
    pub iat: u64,
    pub ath: Option<String>,
    pub nonce: Option<String>,
}

/// Parses and checks the signature of `proof`. `use_host`: the host checks the signatures it
/// serves, as for the provider's own keys. `keys`: the worker's compiled proof keys.
pub fn verify(
    proof: &str,
    algorithms: &[Algorithm],
    use_host: bool,
    verifier: &dyn SignatureVerifier,
    keys: &ProofKeys,
) -> Result<SignedProof, AuthFailure> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(AuthFailure::DpopProofMalformed);
    }
    let jws = UnverifiedJws::parse(proof).map_err(|_| AuthFailure::DpopProofMalformed)?;
    if !jws
        .header
        .typ
        .as_deref()
        .is_some_and(|typ| typ.eq_ignore_ascii_case("dpop+jwt"))
    {
        return Err(AuthFailure::DpopProofMalformed);
    }
    let alg = jws
        .header
        .alg
        .filter(|alg| algorithms.contains(alg))
        .ok_or(AuthFailure::DpopProofAlgorithm)?;
    // The header text names the key and the algorithm exactly: the same text, the same key.
    let header = proof.split('.').next().unwrap_or_default();
    let key = match keys.get(header) {
        Some(key) => key,
        None => {
            let jwk = jws
                .header
                .jwk
                .as_ref()
                .ok_or(AuthFailure::DpopProofMalformed)?;
            let mut key = proof_key(jwk, alg).map_err(|_| AuthFailure::DpopProofMalformed)?;
            if use_host {
                key.prefer_host();
            }
            let thumbprint = jwk_thumbprint(jwk).map_err(|_| AuthFailure::DpopProofMalformed)?;
            let key = Rc::new(ProofKey { key, thumbprint });
            keys.insert(header, key.clone());
            key
        }
    };
    verifier
        .verify(&key.key, &jws)
        .map_err(|_| AuthFailure::DpopProofBadSignature)?;
    claims(key.thumbprint.clone(), &jws.claims)
}

fn claims(thumbprint: String, claims: &Map<String, Value>) -> Result<SignedProof, AuthFailure> {
    let text = |name: &str| match claims.get(name) {
        Some(Value::String(text)) => Ok(Some(text.clone())),
        None => Ok(None),
        Some(_) => Err(AuthFailure::DpopProofMalformed),
    };
    let required = |name: &str| text(name)?.ok_or(AuthFailure::DpopProofMalformed);
    let jti = required("jti")?;
    if jti.is_empty() || jti.len() > MAX_JTI_BYTES {
        return Err(AuthFailure::DpopProofMalformed);
    }
    let iat = claims
        .get("iat")
        .and_then(numeric_date)
        .ok_or(AuthFailure::DpopProofMalformed)?;
    Ok(SignedProof {
        thumbprint,
        htm: required("htm")?,
        htu: required("htu")?,
        ath: text("ath")?,
        nonce: text("nonce")?,
        jti,
        iat,
    })
}
