//! DPoP (RFC 9449): a token bound to a key (`cnf.jkt`) is accepted only with a proof, signed by
//! that key, for this very request, made moments ago, and never seen before.
//!
//! Checks in order (RFC 9449 §4.3, §7.1), the first failure answering: exactly one `DPoP`
//! header; the proof's form, type, algorithm, key and signature ([`proof`]); method and URI
//! ([`htu`]); the token hash `ath`; the proof's age; the server nonce ([`nonce`]); the token's
//! `cnf.jkt` against the proof key's thumbprint ([`thumbprint`]); last, the replay store
//! ([`replay`]), so that no refused proof takes a place in it.

pub mod htu;
pub mod keys;
pub mod nonce;
pub mod proof;
pub mod replay;
pub mod thumbprint;

use ct_codecs::{Base64UrlSafeNoPadding, Encoder};
use sha2::{Digest, Sha256};

use crate::authn::verify::SignatureVerifier;
use crate::reason::AuthFailure;
use crate::request::Request;
use crate::token::jws::Algorithm;

pub use nonce::NonceKey;
pub use replay::{MemoryReplayStore, ReplayStore};

/// The header that carries the proof (lower-case, as Envoy presents names).
pub const DPOP_HEADER: &str = "dpop";
/// The response header that hands a client a server nonce.
pub const NONCE_HEADER: &str = "dpop-nonce";
/// The authorization scheme of a DPoP-bound token.
pub const SCHEME: &str = "DPoP ";

/// A provider's `dpop`, compiled.
#[derive(Debug, Clone)]
pub struct Dpop {
    /// Only DPoP-bound tokens, with proofs, are accepted.
    pub required: bool,
    pub max_age_seconds: u64,
    /// Proof algorithms accepted, in configuration order.
    pub algorithms: Vec<Algorithm>,
    /// `algorithms` as the challenge's `algs` parameter lists them.
    pub algs: String,
    pub nonce: Option<NonceKey>,
    /// Buckets of the replay store (entries ÷ [`replay::ENTRIES_PER_BUCKET`]).
    pub replay_buckets: u32,
    /// The host checks the proof signatures it serves (set with the provider's own keys).
    pub use_host: bool,
    /// This worker's compiled proof keys (empty in every fresh copy).
    pub keys: keys::ProofKeys,
}

/// What one proof is checked against besides the provider's `dpop`.
pub struct ProofContext<'a> {
    pub request: &'a Request<'a>,
    /// The access token, exactly as presented (`ath` is its hash).
    pub token: &'a str,
    pub now: u64,
    /// The provider's clock skew: how far in the future a proof's `iat` may be.
    pub clock_skew_seconds: u64,
    pub verifier: &'a dyn SignatureVerifier,
    pub replay: &'a dyn ReplayStore,
}

impl Dpop {
    /// Checks the request's proof for a token bound to `jkt` (`None`: the token is not bound,
    /// yet it came with the DPoP scheme).
    pub fn check(&self, context: &ProofContext<'_>, jkt: Option<&str>) -> Result<(), AuthFailure> {
        let request = context.request;
        let mut lines = request.values(DPOP_HEADER);
        let line = lines.next().ok_or(AuthFailure::DpopProofMissing)?;
        // Two proofs (two lines, or one line Envoy joined): which one counts is anybody's guess.
        if lines.next().is_some() || line.contains(&b',') {
            return Err(AuthFailure::DpopProofMalformed);
        }
        let text =
            std::str::from_utf8(line.trim_ascii()).map_err(|_| AuthFailure::DpopProofMalformed)?;
        let proof = proof::verify(
            text,
            &self.algorithms,
            self.use_host,
            context.verifier,
            &self.keys,
        )?;
        if proof.htm.as_bytes() != request.method() || !htu::matches(&proof.htu, request) {
            return Err(AuthFailure::DpopProofMismatch);
        }
        if proof.ath.as_deref() != Some(token_hash(context.token).as_str()) {
            return Err(AuthFailure::DpopProofMismatch);
        }
        let now = context.now;
        if proof.iat.saturating_add(self.max_age_seconds) < now {
            return Err(AuthFailure::DpopProofExpired);
        }
        if proof.iat > now.saturating_add(context.clock_skew_seconds) {
            return Err(AuthFailure::DpopProofIssuedInFuture);
        }
        if let Some(nonces) = &self.nonce
            && !proof
                .nonce
                .as_deref()
                .is_some_and(|n| nonces.accepts(n, now))
        {
            return Err(AuthFailure::DpopNonceRequired);
        }
        let thumbprint = &proof.thumbprint;
        if jkt != Some(thumbprint.as_str()) {
            return Err(AuthFailure::DpopKeyMismatch);
        }
        // Kept until the proof is too old to be accepted anyway.
        let expires = proof
            .iat
            .saturating_add(self.max_age_seconds)
            .saturating_add(1);
        let key = replay::ReplayKey::new(thumbprint, &proof.jti, self.replay_buckets);
        replay::remember(context.replay, key, expires, now)
    }
}

/// `ath`: base64url of the SHA-256 of the token's ASCII bytes (RFC 9449 §4.2).
pub fn token_hash(token: &str) -> String {
    Base64UrlSafeNoPadding::encode_to_string(Sha256::digest(token.as_bytes())).unwrap_or_default()
}

#[cfg(test)]
mod tests;
