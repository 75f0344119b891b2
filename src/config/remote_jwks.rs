//! `providers.<name>.remote_jwks`: where keys are fetched from, and how often.

use crate::authn::remote::{RemoteJwks, Source, Uri};
use crate::config::error::ConfigError;
use crate::config::schema::RawRemoteJwks;

pub(super) const DEFAULT_REFRESH_SECONDS: u64 = 300;
pub(super) const DEFAULT_TIMEOUT_MS: u64 = 2_000;
pub(super) const DEFAULT_MIN_REFETCH_SECONDS: u64 = 30;
/// A day (or two refresh periods, if longer): fetched keys never outlive their last good fetch
/// by more, so an IdP that revoked a key while unreachable is obeyed within a day of going
/// down, and an outage of up to a day does not lock every caller out.
pub(super) const DEFAULT_MAX_STALE_SECONDS: u64 = 86_400;
/// A week: keys refreshed less often than that are not "remote" in any useful sense.
pub(super) const MAX_REFRESH_SECONDS: u64 = 7 * 86_400;
pub(super) const MAX_TIMEOUT_MS: u64 = 60_000;

pub(super) fn compile_remote(
    at: &str,
    raw: RawRemoteJwks,
    issuer: &str,
) -> Result<RemoteJwks, ConfigError> {
    let field = |member: &str| format!("{at}.{member}");
    if raw.cluster.is_empty() {
        return Err(ConfigError::new(field("cluster"), "must not be empty"));
    }
    let source = match (raw.uri, raw.discovery, raw.discovery_uri) {
        (Some(uri), false, None) => Source::Jwks(
            Uri::parse(&uri).map_err(|message| ConfigError::new(field("uri"), message))?,
        ),
        (None, true, None) => Source::Discovery(Uri::discovery_of(issuer).map_err(|message| {
            ConfigError::new(
                field("discovery"),
                format!("the issuer is not a URL for discovery: {message}"),
            )
        })?),
        (None, false, Some(uri)) => Source::Discovery(
            Uri::parse(&uri)
                .map_err(|message| ConfigError::new(field("discovery_uri"), message))?,
        ),
        (None, false, None) => {
            return Err(ConfigError::new(
                field("uri"),
                "required (or \"discovery\": true, or discovery_uri)",
            ));
        }
        (Some(_), _, _) => {
            return Err(ConfigError::new(
                field("uri"),
                "give uri or discovery/discovery_uri, not both",
            ));
        }
        (None, true, Some(_)) => {
            return Err(ConfigError::new(
                field("discovery_uri"),
                "give discovery or discovery_uri, not both",
            ));
        }
    };
    let refresh_seconds = raw.refresh_seconds.unwrap_or(DEFAULT_REFRESH_SECONDS);
    if !(1..=MAX_REFRESH_SECONDS).contains(&refresh_seconds) {
        return Err(ConfigError::new(
            field("refresh_seconds"),
            format!("must be between 1 and {MAX_REFRESH_SECONDS}"),
        ));
    }
    let timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(ConfigError::new(
            field("timeout_ms"),
            format!("must be between 1 and {MAX_TIMEOUT_MS}"),
        ));
    }
    let min_refetch_seconds = raw
        .min_refetch_seconds
        .unwrap_or(DEFAULT_MIN_REFETCH_SECONDS.min(refresh_seconds));
    if !(1..=refresh_seconds).contains(&min_refetch_seconds) {
        return Err(ConfigError::new(
            field("min_refetch_seconds"),
            "must be between 1 and refresh_seconds",
        ));
    }
    let mut remote = RemoteJwks {
        cluster: raw.cluster,
        source,
        refresh_ms: refresh_seconds * 1_000,
        timeout_ms,
        min_refetch_ms: min_refetch_seconds * 1_000,
        max_stale_ms: 0,
        issuer: issuer.to_string(),
    };
    // A healthy IdP must never see its keys dropped: the refresh that is due gets its whole
    // time (the next tick, then discovery and the key set, each within timeout_ms) first.
    let least = remote.refresh_ms + remote.refresh_time_ms();
    let max_stale_ms = match raw.max_stale_seconds {
        Some(seconds) if seconds.saturating_mul(1_000) < least => {
            return Err(ConfigError::new(
                field("max_stale_seconds"),
                format!(
                    "must be at least {} (refresh_seconds, plus the time a refresh may take: 2 x timeout_ms + 1.5 s), or a refresh that is due would find its keys dropped before a healthy IdP answers",
                    least.div_ceil(1_000)
                ),
            ));
        }
        Some(seconds) => seconds.saturating_mul(1_000),
        None => DEFAULT_MAX_STALE_SECONDS
            .max(2 * refresh_seconds)
            .saturating_mul(1_000),
    };
    remote.max_stale_ms = max_stale_ms;
    Ok(remote)
}
