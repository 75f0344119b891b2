//! `providers.<name>.dpop`: DPoP-bound tokens (RFC 9449), compiled.

use crate::authn::dpop::replay::ENTRIES_PER_BUCKET;
use crate::authn::dpop::{Dpop, NonceKey};
use crate::config::error::ConfigError;
use crate::config::schema::RawDpop;
use crate::token::extract::TokenLocation;
use crate::token::jws::Algorithm;

/// RFC 9449 §11.1 leaves the window to the server; a few minutes absorbs client clocks and
/// retries without keeping proofs replayable for long.
const DEFAULT_MAX_AGE_SECONDS: u64 = 300;
const MAX_MAX_AGE_SECONDS: u64 = 3_600;
/// Every asymmetric algorithm jwt-guard verifies. A proof is signed with the client's own key,
/// so a MAC (HS*) can never be one: whoever checks it could forge it.
const DEFAULT_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
];
const DEFAULT_NONCE_LIFETIME_SECONDS: u64 = 300;
/// A secret shorter than a SHA-256 block's worth of guessing is no secret.
const MIN_NONCE_SECRET_BYTES: usize = 32;
/// 262,144 entries of 16 bytes: 4 MiB, enough for about 800 new proofs a second held for the
/// default window plus skew.
const DEFAULT_REPLAY_CAPACITY: u64 = 262_144;
const MIN_REPLAY_CAPACITY: u64 = 1_024;
const MAX_REPLAY_CAPACITY: u64 = 16_777_216;

pub(super) fn compile_dpop(
    field: &dyn Fn(&str) -> String,
    raw: Option<RawDpop>,
    locations: &mut Vec<TokenLocation>,
) -> Result<Option<Dpop>, ConfigError> {
    let at = |member: &str| format!("{}.{member}", field("dpop"));
    let Some(raw) = raw else {
        if locations.iter().any(TokenLocation::is_dpop) {
            return Err(ConfigError::new(
                field("from_headers"),
                "reads the DPoP scheme without `dpop`: set `dpop` to accept DPoP-bound tokens",
            ));
        }
        return Ok(None);
    };
    if !locations.contains(&TokenLocation::default_header()) {
        return Err(ConfigError::new(
            field("dpop"),
            "needs the provider to read `Authorization: Bearer` (DPoP-bound tokens come as `Authorization: DPoP`)",
        ));
    }
    if !locations.iter().any(TokenLocation::is_dpop) {
        locations.push(TokenLocation::dpop_header());
    }
    let max_age_seconds = raw.max_age_seconds.unwrap_or(DEFAULT_MAX_AGE_SECONDS);
    if max_age_seconds == 0 || max_age_seconds > MAX_MAX_AGE_SECONDS {
        return Err(ConfigError::new(
            at("max_age_seconds"),
            format!("must be 1 to {MAX_MAX_AGE_SECONDS}"),
        ));
    }
    let algorithms = match raw.algorithms {
        None => DEFAULT_ALGORITHMS.to_vec(),
        Some(names) if names.is_empty() => {
            return Err(ConfigError::new(at("algorithms"), "must not be empty"));
        }
        Some(names) => {
            let mut algorithms = Vec::with_capacity(names.len());
            for (index, name) in names.iter().enumerate() {
                let alg = Algorithm::from_name(name)
                    .filter(|alg| DEFAULT_ALGORITHMS.contains(alg))
                    .ok_or_else(|| {
                        ConfigError::new(
                            format!("{}[{index}]", at("algorithms")),
                            format!("{name:?} is not an asymmetric algorithm jwt-guard verifies"),
                        )
                    })?;
                if !algorithms.contains(&alg) {
                    algorithms.push(alg);
                }
            }
            algorithms
        }
    };
    let nonce = match raw.nonce {
        None => None,
        Some(nonce) => {
            if nonce.secret.len() < MIN_NONCE_SECRET_BYTES {
                return Err(ConfigError::new(
                    at("nonce.secret"),
                    format!("must be at least {MIN_NONCE_SECRET_BYTES} bytes"),
                ));
            }
            let lifetime = nonce
                .lifetime_seconds
                .unwrap_or(DEFAULT_NONCE_LIFETIME_SECONDS);
            if lifetime == 0 || lifetime > MAX_MAX_AGE_SECONDS {
                return Err(ConfigError::new(
                    at("nonce.lifetime_seconds"),
                    format!("must be 1 to {MAX_MAX_AGE_SECONDS}"),
                ));
            }
            Some(NonceKey::new(nonce.secret.as_bytes(), lifetime))
        }
    };
    let capacity = raw.replay_capacity.unwrap_or(DEFAULT_REPLAY_CAPACITY);
    if !(MIN_REPLAY_CAPACITY..=MAX_REPLAY_CAPACITY).contains(&capacity) {
        return Err(ConfigError::new(
            at("replay_capacity"),
            format!("must be {MIN_REPLAY_CAPACITY} to {MAX_REPLAY_CAPACITY}"),
        ));
    }
    let replay_buckets = u32::try_from(capacity.div_ceil(ENTRIES_PER_BUCKET as u64))
        .map_err(|_| ConfigError::new(at("replay_capacity"), "too large"))?;
    Ok(Some(Dpop {
        required: raw.required,
        max_age_seconds,
        algs: algorithms
            .iter()
            .map(|alg| alg.name())
            .collect::<Vec<_>>()
            .join(" "),
        algorithms,
        nonce,
        replay_buckets,
        use_host: false,
    }))
}
