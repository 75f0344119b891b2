//! `providers.<name>.dpop`: DPoP-bound tokens (RFC 9449), compiled.

use crate::authn::dpop::replay::ENTRIES_PER_BUCKET;
use crate::authn::dpop::{Dpop, NonceKey};
use crate::config::error::ConfigError;
use crate::token::extract::TokenLocation;
use crate::token::jws::Algorithm;
use serde_json::{Map, Value};

/// RFC 9449 §11.1 leaves the window to the server; a few minutes absorbs client clocks and
/// retries without keeping proofs replayable for long.
const DEFAULT_MAX_AGE_SECONDS: u64 = 300;
const MAX_MAX_AGE_SECONDS: u64 = 3_600;
/// Every asymmetric algorithm jwt-guard verifies. A proof is signed with the client's own
/// key, so a MAC (HS*) can never be one: whoever checks it could forge it.
const DEFAULT_ALGORITHMS: [Algorithm; 10] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::ES512,
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
    raw: Option<Value>,
    locations: &mut Vec<TokenLocation>,
) -> Result<Option<Dpop>, ConfigError> {
    let at = |member: &str| format!("{}.{member}", field("dpop"));
    let raw = raw
        .map(|raw| RawDpop::read(&field("dpop"), &raw))
        .transpose()?;
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
        return Err(ConfigError::new(at("max_age_seconds"), "must be 1 to 3600"));
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
                            "not an asymmetric algorithm jwt-guard verifies",
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
                    "must be at least 32 bytes",
                ));
            }
            let lifetime = nonce
                .lifetime_seconds
                .unwrap_or(DEFAULT_NONCE_LIFETIME_SECONDS);
            if lifetime == 0 || lifetime > MAX_MAX_AGE_SECONDS {
                return Err(ConfigError::new(
                    at("nonce.lifetime_seconds"),
                    "must be 1 to 3600",
                ));
            }
            Some(NonceKey::new(nonce.secret.as_bytes(), lifetime))
        }
    };
    let capacity = raw.replay_capacity.unwrap_or(DEFAULT_REPLAY_CAPACITY);
    if !(MIN_REPLAY_CAPACITY..=MAX_REPLAY_CAPACITY).contains(&capacity) {
        return Err(ConfigError::new(
            at("replay_capacity"),
            "must be 1024 to 16777216",
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
        keys: Default::default(),
    }))
}

/// `dpop` as written, each member checked for its JSON type (the serde structs' job elsewhere).
struct RawDpop {
    required: bool,
    max_age_seconds: Option<u64>,
    algorithms: Option<Vec<String>>,
    nonce: Option<RawDpopNonce>,
    replay_capacity: Option<u64>,
}

struct RawDpopNonce {
    secret: String,
    lifetime_seconds: Option<u64>,
}

impl RawDpop {
    fn read(at: &str, value: &Value) -> Result<RawDpop, ConfigError> {
        let members = object(
            at,
            value,
            &[
                "required",
                "max_age_seconds",
                "algorithms",
                "nonce",
                "replay_capacity",
            ],
        )?;
        let field = |member: &str| format!("{at}.{member}");
        let algorithms = match members.get("algorithms") {
            None => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| {
                        item.as_str().map(str::to_owned).ok_or_else(|| {
                            ConfigError::new(
                                format!("{}[{index}]", field("algorithms")),
                                "must be a string",
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(_) => {
                return Err(ConfigError::new(
                    field("algorithms"),
                    "must be an array of algorithm names",
                ));
            }
        };
        let nonce = match members.get("nonce") {
            None => None,
            Some(nonce) => {
                let at = field("nonce");
                let nonce_members = object(&at, nonce, &["secret", "lifetime_seconds"])?;
                let secret = match nonce_members.get("secret") {
                    Some(Value::String(secret)) => secret.clone(),
                    Some(_) => {
                        return Err(ConfigError::new(format!("{at}.secret"), "must be a string"));
                    }
                    None => return Err(ConfigError::new(format!("{at}.secret"), "required")),
                };
                Some(RawDpopNonce {
                    secret,
                    lifetime_seconds: whole(&at, nonce_members, "lifetime_seconds")?,
                })
            }
        };
        Ok(RawDpop {
            required: match members.get("required") {
                None => false,
                Some(Value::Bool(required)) => *required,
                Some(_) => {
                    return Err(ConfigError::new(field("required"), "must be true or false"));
                }
            },
            max_age_seconds: whole(at, members, "max_age_seconds")?,
            algorithms,
            nonce,
            replay_capacity: whole(at, members, "replay_capacity")?,
        })
    }
}

/// `value` as an object with no member outside `known`.
pub(super) fn object<'v>(
    at: &str,
    value: &'v Value,
    known: &[&str],
) -> Result<&'v Map<String, Value>, ConfigError> {
    let members = value
        .as_object()
        .ok_or_else(|| ConfigError::new(at, "must be an object"))?;
    if let Some(unknown) = members.keys().find(|name| !known.contains(&name.as_str())) {
        return Err(ConfigError::new(
            format!("{at}.{unknown}"),
            format!("unknown field, expected one of {}", known.join(", ")),
        ));
    }
    Ok(members)
}

/// A non-negative whole number (`300` or `300.0`, as the serde-read fields take it).
pub(super) fn whole(
    at: &str,
    members: &Map<String, Value>,
    name: &str,
) -> Result<Option<u64>, ConfigError> {
    match members.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .or_else(|| {
                value
                    .as_f64()
                    .filter(|v| v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(v))
                    .map(|v| v as u64)
            })
            .map(Some)
            .ok_or_else(|| {
                ConfigError::new(
                    format!("{at}.{name}"),
                    "must be a non-negative whole number",
                )
            }),
    }
}
