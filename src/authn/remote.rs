//! Remote JWKS (`remote_jwks`): where a provider's keys are fetched from, and when. Host
//! independent: times are milliseconds on the host's clock, passed in, so the schedule is
//! unit-tested with a fixed clock. The host adapter (`src/adapters/proxy_wasm/fetcher.rs`) does the HTTP callouts and keeps the
//! [`SharedState`] in proxy-wasm shared data, where every Envoy worker's VM sees it: one VM at
//! a time holds the lease and fetches, the others adopt the document it stores.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The first retry after a failed fetch; each further failure doubles it, up to
/// `refresh_seconds`.
pub const FIRST_RETRY_MS: u64 = 1_000;
/// How often a host adapter looks at the schedule ([`RemoteJwks::due`], staleness).
pub const SCHEDULE_TICK_MS: u64 = 500;
/// The largest OIDC discovery document accepted.
pub const MAX_DISCOVERY_BYTES: usize = 64 * 1024;

/// An `http(s)` URI split into what an HTTP callout needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    /// `:authority` (host and optional port).
    pub authority: String,
    /// `:path` (path and query; `/` when empty).
    pub path: String,
}

impl Uri {
    pub fn parse(text: &str) -> Result<Uri, String> {
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
            .ok_or("must start with https:// or http://")?;
        if text.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            return Err("must not hold spaces, control or non-ASCII characters".into());
        }
        if text.contains('#') {
            return Err("must not have a fragment".into());
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() {
            return Err("has no host".into());
        }
        if authority.contains('@') {
            return Err("must not hold user information".into());
        }
        let path = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        Ok(Uri {
            authority: authority.to_string(),
            path,
        })
    }

    /// The OIDC discovery document of an issuer: `<issuer>/.well-known/openid-configuration`.
    pub fn discovery_of(issuer: &str) -> Result<Uri, String> {
        Uri::parse(&format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ))
    }
}

/// Where the key set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The JWKS URI itself.
    Jwks(Uri),
    /// An OIDC discovery document whose `jwks_uri` names it.
    Discovery(Uri),
}

/// A provider's compiled `remote_jwks`.
#[derive(Debug, Clone)]
pub struct RemoteJwks {
    pub cluster: String,
    pub source: Source,
    pub refresh_ms: u64,
    pub timeout_ms: u64,
    pub min_refetch_ms: u64,
    /// Fetched keys are dropped when the last good fetch is older (`max_stale_seconds`).
    pub max_stale_ms: u64,
    /// The provider's issuer (a discovery document must name it).
    pub issuer: String,
}

/// Why a fetch starts now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// No good fetch yet.
    First,
    /// `refresh_seconds` since the last good fetch.
    Refresh,
    /// The last attempt failed; its backoff is over.
    Retry,
    /// A token of the issuer named an unknown `kid`, and `min_refetch_seconds` passed.
    UnknownKid,
}

/// What every VM knows of one key source, kept in shared data (JSON) under
/// [`RemoteJwks::shared_key`]`.state`; the document itself is under `.doc`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedState {
    /// A fetch is in flight until then (the VM that set it fetches; others wait).
    pub lease_until: u64,
    /// When the last fetch started.
    pub last_attempt: u64,
    /// Failed attempts since the last good one.
    pub failures: u32,
    /// When the last good fetch ended (the key set's age counts from it).
    pub last_ok: Option<u64>,
    /// The `jwks_uri` found by discovery (forgotten when a fetch from it fails).
    pub jwks_uri: Option<String>,
}

impl SharedState {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Anything unreadable is a fresh state (a fetch becomes due).
    pub fn decode(bytes: &[u8]) -> SharedState {
        serde_json::from_slice(bytes).unwrap_or_default()
    }
}

impl RemoteJwks {
    /// The shared-data key prefix for this source: VMs (and providers) that fetch the same URI
    /// through the same cluster share one document and one schedule.
    pub fn shared_key(&self) -> String {
        let uri = match &self.source {
            Source::Jwks(uri) => format!("jwks {}{}", uri.authority, uri.path),
            Source::Discovery(uri) => format!("discovery {}{}", uri.authority, uri.path),
        };
        // FNV-1a 64: a short stable name, not a security boundary.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.cluster.bytes().chain([0]).chain(uri.bytes()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        format!("jwt_guard.jwks.{hash:016x}")
    }

    /// How long a fetcher holds the lease: a discovery call and a JWKS call, each bounded by
    /// `timeout_ms`, and a second for the callbacks.
    pub fn lease_ms(&self) -> u64 {
        self.timeout_ms.saturating_mul(2).saturating_add(1_000)
    }

    /// The longest a due refresh may take with a healthy IdP: until the next tick, then the
    /// lease (discovery and key set, each within `timeout_ms`).
    pub fn refresh_time_ms(&self) -> u64 {
        SCHEDULE_TICK_MS.saturating_add(self.lease_ms())
    }

    /// The wait after `failures` failed attempts in a row: 1 s, 2 s, 4 s, … up to
    /// `refresh_seconds`.
    pub fn backoff_ms(&self, failures: u32) -> u64 {
        let doublings = failures.saturating_sub(1).min(30);
        (FIRST_RETRY_MS << doublings).min(self.refresh_ms.max(FIRST_RETRY_MS))
    }

    /// Whether a fetch is due now. `unknown_kid`: a token of the issuer named a `kid` the keys
    /// lack since the last tick.
    pub fn due(&self, state: &SharedState, now: u64, unknown_kid: bool) -> Option<Why> {
        if state.lease_until > now {
            return None;
        }
        let since_attempt = now.saturating_sub(state.last_attempt);
        if state.failures > 0 {
            // An unknown kid does not hurry a retry: the IdP is failing already.
            return (since_attempt >= self.backoff_ms(state.failures)).then_some(Why::Retry);
        }
        match state.last_ok {
            None => Some(Why::First),
            Some(ok) if now.saturating_sub(ok) >= self.refresh_ms => Some(Why::Refresh),
            Some(_) if unknown_kid && since_attempt >= self.min_refetch_ms => Some(Why::UnknownKid),
            Some(_) => None,
        }
    }

    /// The state with this VM's lease: it fetches now.
    pub fn begin(&self, state: &SharedState, now: u64) -> SharedState {
        SharedState {
            lease_until: now.saturating_add(self.lease_ms()),
            last_attempt: now,
            ..state.clone()
        }
    }

    /// After a good fetch (from `jwks_uri`, when discovery found it).
    pub fn succeeded(
        &self,
        state: &SharedState,
        now: u64,
        jwks_uri: Option<String>,
    ) -> SharedState {
        SharedState {
            lease_until: 0,
            failures: 0,
            last_ok: Some(now),
            jwks_uri,
            ..state.clone()
        }
    }

    /// After a failed fetch: the keys in force stay; the next attempt waits for the backoff
    /// and, with discovery, starts from the discovery document again.
    pub fn failed(&self, state: &SharedState) -> SharedState {
        SharedState {
            lease_until: 0,
            failures: state.failures.saturating_add(1),
            jwks_uri: None,
            ..state.clone()
        }
    }

    /// Whether the fetched keys are older than `max_stale_seconds` (then they are dropped).
    pub fn is_stale(&self, state: &SharedState, now: u64) -> bool {
        state
            .last_ok
            .is_some_and(|ok| now.saturating_sub(ok) > self.max_stale_ms)
    }

    /// The JWKS URI named by an OIDC discovery document, which must be this provider's: OpenID
    /// Connect Discovery 1.0 §4.3 requires `issuer`, identical to the issuer whose
    /// `/.well-known/openid-configuration` was fetched; a document without it is a failed fetch.
    pub fn jwks_uri_from_discovery(&self, body: &[u8]) -> Result<(String, Uri), String> {
        if body.len() > MAX_DISCOVERY_BYTES {
            return Err(format!(
                "the discovery document is {} bytes, more than {MAX_DISCOVERY_BYTES}",
                body.len()
            ));
        }
        let doc: Value = serde_json::from_slice(body)
            .map_err(|err| format!("the discovery document is not valid JSON: {err}"))?;
        match doc.get("issuer") {
            Some(Value::String(issuer)) if *issuer == self.issuer => {}
            Some(Value::String(issuer)) => {
                return Err(format!(
                    "the discovery document is for issuer {issuer:?}, not {:?}",
                    self.issuer
                ));
            }
            Some(_) => return Err("the discovery document's issuer is not a string".into()),
            None => return Err("the discovery document has no issuer".into()),
        }
        let text = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or("the discovery document has no jwks_uri")?;
        let uri = Uri::parse(text).map_err(|err| format!("jwks_uri {text:?} {err}"))?;
        Ok((text.to_string(), uri))
    }
}

/// The `:status` of a callout response, when it is a number.
pub fn status_of(headers: &[(String, Vec<u8>)]) -> Option<u32> {
    let (_, value) = headers.iter().find(|(name, _)| name == ":status")?;
    std::str::from_utf8(value).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote() -> RemoteJwks {
        RemoteJwks {
            cluster: "idp".into(),
            source: Source::Jwks(Uri::parse("https://idp.example.com/jwks.json").unwrap()),
            refresh_ms: 300_000,
            timeout_ms: 2_000,
            min_refetch_ms: 30_000,
            max_stale_ms: 3_600_000,
            issuer: "https://idp.example.com".into(),
        }
    }

    #[test]
    fn uris_split_into_authority_and_path() {
        let uri = Uri::parse("https://idp.example.com:8443/realms/a/certs?x=1").unwrap();
        assert_eq!(uri.authority, "idp.example.com:8443");
        assert_eq!(uri.path, "/realms/a/certs?x=1");
        assert_eq!(Uri::parse("http://idp").unwrap().path, "/");
        assert_eq!(Uri::parse("http://idp?a").unwrap().path, "/?a");
        for bad in [
            "ftp://idp/x",
            "idp/x",
            "https:///x",
            "https://u@idp/x",
            "https://idp/a b",
            "https://idp/x#f",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad}");
        }
        let discovery = Uri::discovery_of("https://idp.example.com/realms/a/").unwrap();
        assert_eq!(discovery.path, "/realms/a/.well-known/openid-configuration");
    }

    #[test]
    fn the_first_fetch_is_due_at_once_then_every_refresh() {
        let r = remote();
        let mut state = SharedState::default();
        assert_eq!(r.due(&state, 1_000, false), Some(Why::First));
        state = r.begin(&state, 1_000);
        assert_eq!(r.due(&state, 2_000, true), None, "one fetch at a time");
        state = r.succeeded(&state, 1_200, None);
        assert_eq!(r.due(&state, 2_000, false), None);
        assert_eq!(r.due(&state, 301_199, false), None);
        assert_eq!(r.due(&state, 301_200, false), Some(Why::Refresh));
    }

    #[test]
    fn an_unknown_kid_refetches_at_most_once_per_min_refetch() {
        let r = remote();
        let state = r.succeeded(&r.begin(&SharedState::default(), 0), 100, None);
        assert_eq!(r.due(&state, 29_999, true), None);
        assert_eq!(r.due(&state, 30_000, true), Some(Why::UnknownKid));
        assert_eq!(r.due(&state, 30_000, false), None);
        // A flood: only attempts that start min_refetch apart, whatever the rate of requests.
        let (mut state, mut fetches) = (state, 0);
        for now in (30_000..330_000).step_by(100) {
            if r.due(&state, now, true).is_some() {
                fetches += 1;
                state = r.succeeded(&r.begin(&state, now), now + 50, None);
            }
        }
        assert_eq!(fetches, 10, "300 s of unknown kids at 30 s apart");
    }

    #[test]
    fn failures_back_off_exponentially_up_to_refresh() {
        let r = RemoteJwks {
            refresh_ms: 10_000,
            ..remote()
        };
        let backoffs: Vec<u64> = (1..=6).map(|n| r.backoff_ms(n)).collect();
        assert_eq!(backoffs, [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
        let mut state = r.begin(&SharedState::default(), 0);
        state = r.failed(&state);
        assert_eq!(state.lease_until, 0);
        assert_eq!(
            r.due(&state, 999, true),
            None,
            "an unknown kid does not hurry a retry"
        );
        assert_eq!(r.due(&state, 1_000, false), Some(Why::Retry));
        state = r.failed(&r.begin(&state, 1_000));
        assert_eq!(r.due(&state, 2_999, false), None);
        assert_eq!(r.due(&state, 3_000, false), Some(Why::Retry));
        // A good fetch resets the backoff.
        state = r.succeeded(&r.begin(&state, 3_000), 3_100, None);
        assert_eq!(state.failures, 0);
        // A failed refresh keeps last_ok (the keys stay) and retries after 1 s.
        state = r.failed(&r.begin(&state, 13_100));
        assert_eq!(state.last_ok, Some(3_100));
        assert_eq!(r.due(&state, 14_100, false), Some(Why::Retry));
    }

    #[test]
    fn a_lease_that_was_never_released_expires() {
        let r = remote();
        let state = r.begin(&SharedState::default(), 0);
        assert_eq!(r.due(&state, r.lease_ms() - 1, false), None);
        assert_eq!(r.due(&state, r.lease_ms(), false), Some(Why::First));
    }

    #[test]
    fn keys_older_than_max_stale_are_stale() {
        let r = remote();
        let state = r.succeeded(&SharedState::default(), 1_000, None);
        assert!(!r.is_stale(&state, 3_601_000));
        assert!(r.is_stale(&state, 3_601_001));
        assert!(!r.is_stale(&SharedState::default(), u64::MAX));
    }

    #[test]
    fn shared_state_round_trips_and_junk_is_fresh() {
        let state = SharedState {
            lease_until: 5,
            last_attempt: 4,
            failures: 2,
            last_ok: Some(3),
            jwks_uri: Some("https://idp/x".into()),
        };
        assert_eq!(SharedState::decode(&state.encode()), state);
        assert_eq!(SharedState::decode(b"junk"), SharedState::default());
    }

    #[test]
    fn shared_keys_differ_by_cluster_and_uri() {
        let a = remote();
        let b = RemoteJwks {
            cluster: "other".into(),
            ..remote()
        };
        let c = RemoteJwks {
            source: Source::Discovery(Uri::parse("https://idp.example.com/jwks.json").unwrap()),
            ..remote()
        };
        assert_ne!(a.shared_key(), b.shared_key());
        assert_ne!(a.shared_key(), c.shared_key());
        assert_eq!(a.shared_key(), remote().shared_key());
    }

    #[test]
    fn discovery_finds_the_jwks_uri_of_this_issuer() {
        let r = remote();
        let doc = br#"{"issuer": "https://idp.example.com", "jwks_uri": "https://keys.example.com/certs"}"#;
        let (text, uri) = r.jwks_uri_from_discovery(doc).unwrap();
        assert_eq!(text, "https://keys.example.com/certs");
        assert_eq!(uri.authority, "keys.example.com");
        let other = br#"{"issuer": "https://evil.example", "jwks_uri": "https://evil.example/k"}"#;
        assert!(
            r.jwks_uri_from_discovery(other)
                .unwrap_err()
                .contains("issuer")
        );
        // OpenID Connect Discovery: issuer required, a string, identical (no trailing-slash
        // or case leniency).
        for (doc, why) in [
            (
                &br#"{"jwks_uri": "https://keys.example.com/certs"}"#[..],
                "no issuer",
            ),
            (
                br#"{"issuer": null, "jwks_uri": "https://k/c"}"#,
                "not a string",
            ),
            (
                br#"{"issuer": 1, "jwks_uri": "https://k/c"}"#,
                "not a string",
            ),
            (
                br#"{"issuer": "https://idp.example.com/", "jwks_uri": "https://k/c"}"#,
                "for issuer",
            ),
            (
                br#"{"issuer": "https://IDP.example.com", "jwks_uri": "https://k/c"}"#,
                "for issuer",
            ),
            (
                br#"{"issuer": "https://idp.example.com/x", "jwks_uri": "https://k/c"}"#,
                "for issuer",
            ),
        ] {
            let err = r.jwks_uri_from_discovery(doc).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
        assert!(r.jwks_uri_from_discovery(b"{}").is_err());
        assert!(r.jwks_uri_from_discovery(b"<html>").is_err());
        assert!(
            r.jwks_uri_from_discovery(br#"{"jwks_uri": "ftp://x"}"#)
                .is_err()
        );
    }

    #[test]
    fn status_is_read_from_the_headers() {
        let headers = vec![(":status".to_string(), b"200".to_vec())];
        assert_eq!(status_of(&headers), Some(200));
        assert_eq!(status_of(&[]), None);
    }
}
