//! One fetch of a remote key set, for any host: which document to ask for first, what each good
//! answer leads to (discovery names the key set; a key set is parsed), when an answer is not a
//! good one, and the log lines every host writes about it. The host adapters
//! (`src/adapters/proxy_wasm/fetcher.rs`, `src/adapters/dynamic_module/remote.rs`) only make the
//! HTTP callouts, keep the [`crate::authn::remote::SharedState`] where their workers see it, and
//! log these lines at these severities — so the two runtimes fetch, and say so, alike.

use crate::authn::jwks::{JwksError, KeySet, MAX_FETCHED_JWKS_BYTES};
use crate::authn::remote::{MAX_DISCOVERY_BYTES, RemoteJwks, Source, Uri};

/// Which document a request of a fetch asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    Discovery,
    /// The key set; from the `jwks_uri` discovery found, if any (remembered for the next fetch).
    Jwks(Option<String>),
}

impl Stage {
    /// The largest answer accepted at this stage.
    pub fn limit(&self) -> usize {
        match self {
            Stage::Discovery => MAX_DISCOVERY_BYTES,
            Stage::Jwks(_) => MAX_FETCHED_JWKS_BYTES,
        }
    }
}

/// What a good answer leads to.
#[derive(Debug)]
pub enum Next {
    /// Ask for this document next (discovery named the key set).
    Fetch(Uri, Stage),
    /// The fetch is done: a key set with this many usable keys, the keys skipped, and the
    /// `jwks_uri` it came from.
    KeySet {
        key_count: usize,
        skipped: Vec<JwksError>,
        jwks_uri: Option<String>,
    },
}

/// How bad a line is; each host maps it to its own log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warn,
}

/// The answer a fetch got when none came back (timeout, connection failure, reset).
pub const NO_RESPONSE: &str = "no response (timeout_ms passed, or the connection failed)";

/// The headers of a request for `uri`; `authority` is the name the host takes the authority
/// under (proxy-wasm: `:authority`; Envoy's dynamic-module callouts: `host`).
pub fn request_headers<'u>(uri: &'u Uri, authority: &'static str) -> [(&'static str, &'u str); 5] {
    [
        (":method", "GET"),
        (":path", uri.path.as_str()),
        (authority, uri.authority.as_str()),
        ("accept", "application/json"),
        (
            "user-agent",
            concat!("jwt-guard/", env!("CARGO_PKG_VERSION")),
        ),
    ]
}

impl RemoteJwks {
    /// The first request of a fetch: the key set when its URI is configured or was found by the
    /// last discovery (`remembered_jwks_uri`), the discovery document otherwise.
    pub fn first_request(&self, remembered_jwks_uri: Option<String>) -> (Uri, Stage) {
        match (&self.source, remembered_jwks_uri) {
            (Source::Jwks(uri), _) => (uri.clone(), Stage::Jwks(None)),
            (Source::Discovery(discovery), Some(text)) => match Uri::parse(&text) {
                Ok(uri) => (uri, Stage::Jwks(Some(text))),
                Err(_) => (discovery.clone(), Stage::Discovery),
            },
            (Source::Discovery(discovery), None) => (discovery.clone(), Stage::Discovery),
        }
    }

    /// What the good (status 200, within [`Stage::limit`]) body of a request at `stage`
    /// leads to, or why the fetch failed.
    pub fn next(&self, stage: Stage, body: &[u8]) -> Result<Next, String> {
        match stage {
            Stage::Discovery => {
                let (text, uri) = self.jwks_uri_from_discovery(body)?;
                Ok(Next::Fetch(uri, Stage::Jwks(Some(text))))
            }
            Stage::Jwks(jwks_uri) => {
                let (keys, skipped) = KeySet::from_fetched(body)?;
                Ok(Next::KeySet {
                    key_count: keys.keys().len(),
                    skipped,
                    jwks_uri,
                })
            }
        }
    }
}

/// Whether an answer (its `:status`, if readable, and its body's size) is a good one.
pub fn check_answer(status: Option<u32>, body_len: usize, limit: usize) -> Result<(), String> {
    match status {
        Some(200) => {}
        // Envoy answers a callout that outlived timeout_ms with its own 504.
        Some(504) => {
            return Err("HTTP status 504 (timeout_ms passed, or a gateway timed out)".into());
        }
        Some(status) => return Err(format!("HTTP status {status}")),
        None => return Err("no HTTP status".into()),
    }
    if body_len > limit {
        return Err(format!(
            "the response is {body_len} bytes, more than {limit}"
        ));
    }
    Ok(())
}

/// The lines for a new key-set document (announced once, by the fetcher that got it).
pub fn new_key_set_lines(
    provider: &str,
    key_count: usize,
    skipped: &[JwksError],
) -> Vec<(Severity, String)> {
    let mut lines = vec![if key_count == 0 {
        (
            Severity::Warn,
            format!(
                "jwt-guard: JWKS for provider {provider}: the new key set holds no usable key; the keys in use are dropped and its tokens are refused 401 keys_unavailable until the IdP serves one"
            ),
        )
    } else {
        (
            Severity::Info,
            format!(
                "jwt-guard: JWKS for provider {provider}: {key_count} keys in use from a new key set"
            ),
        )
    }];
    lines.extend(skipped.iter().map(|error| {
        (
            Severity::Warn,
            format!(
                "jwt-guard: JWKS for provider {provider}: key skipped: {}: {}",
                error.field, error.message
            ),
        )
    }));
    lines
}

/// After a good fetch that followed failures.
pub fn recovered_line(provider: &str) -> String {
    format!("jwt-guard: JWKS for provider {provider}: fetched again after failures")
}

/// The first failure after a success (or at start); `keys_in_use` are the provider's keys now.
pub fn failed_line(provider: &str, why: &str, keys_in_use: usize) -> String {
    let consequence = if keys_in_use == 0 {
        "its tokens are refused 401 keys_unavailable until a fetch succeeds".to_string()
    } else {
        format!("keeping the {keys_in_use} keys in use")
    };
    format!(
        "jwt-guard: JWKS fetch for provider {provider} failed: {why}; {consequence}; retrying with backoff"
    )
}

/// The host would not start the callout (an unknown cluster, most likely).
pub fn refused_call(cluster: &str, detail: &str) -> String {
    format!("Envoy refused the call to cluster {cluster:?} ({detail}; is the cluster defined?)")
}

/// Fetched keys older than `max_stale_seconds` were dropped.
pub fn stale_dropped_line(provider: &str, has_inline_keys: bool) -> String {
    let fallback = if has_inline_keys {
        "back to the inline keys"
    } else {
        "its tokens are refused 401 keys_unavailable until a fetch succeeds"
    };
    format!(
        "jwt-guard: JWKS for provider {provider}: keys older than max_stale_seconds dropped; {fallback}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(source: &str, discovery: bool) -> RemoteJwks {
        let uri = match Uri::parse(source) {
            Ok(uri) => uri,
            Err(err) => unreachable!("{err}"),
        };
        RemoteJwks {
            cluster: "idp".into(),
            source: if discovery {
                Source::Discovery(uri)
            } else {
                Source::Jwks(uri)
            },
            refresh_ms: 300_000,
            timeout_ms: 2_000,
            min_refetch_ms: 30_000,
            max_stale_ms: 3_600_000,
            issuer: "https://idp.example.com".into(),
        }
    }

    #[test]
    fn a_fetch_starts_where_the_source_or_the_last_discovery_says() {
        let jwks = remote("https://idp.example.com/jwks.json", false);
        assert_eq!(
            jwks.first_request(Some("https://other/keys".into())).1,
            Stage::Jwks(None)
        );
        let discovery = remote(
            "https://idp.example.com/.well-known/openid-configuration",
            true,
        );
        assert_eq!(discovery.first_request(None).1, Stage::Discovery);
        let (uri, stage) = discovery.first_request(Some("https://keys.example.com/k".into()));
        assert_eq!(
            (uri.authority.as_str(), stage),
            (
                "keys.example.com",
                Stage::Jwks(Some("https://keys.example.com/k".into()))
            )
        );
        assert_eq!(
            discovery.first_request(Some("not a uri".into())).1,
            Stage::Discovery
        );
    }

    #[test]
    fn discovery_leads_to_the_key_set_and_a_key_set_ends_the_fetch() {
        let discovery = remote(
            "https://idp.example.com/.well-known/openid-configuration",
            true,
        );
        let doc =
            br#"{"issuer": "https://idp.example.com", "jwks_uri": "https://keys.example.com/k"}"#;
        match discovery.next(Stage::Discovery, doc) {
            Ok(Next::Fetch(uri, Stage::Jwks(Some(text)))) => {
                assert_eq!(
                    (uri.path.as_str(), text.as_str()),
                    ("/k", "https://keys.example.com/k")
                );
            }
            other => unreachable!("{other:?}"),
        }
        match discovery.next(
            Stage::Jwks(None),
            br#"{"keys": [{"kty": "oct", "k": "AAAA"}]}"#,
        ) {
            Ok(Next::KeySet {
                key_count, skipped, ..
            }) => assert_eq!((key_count, skipped.len()), (0, 1)),
            other => unreachable!("{other:?}"),
        }
        assert!(discovery.next(Stage::Jwks(None), b"[]").is_err());
        assert!(
            discovery
                .next(Stage::Discovery, br#"{"issuer": "https://evil"}"#)
                .is_err()
        );
    }

    #[test]
    fn only_a_200_within_the_limit_is_a_good_answer() {
        let table: [(Option<u32>, usize, Result<(), &str>); 5] = [
            (Some(200), 10, Ok(())),
            (Some(200), 11, Err("the response is 11 bytes, more than 10")),
            (
                Some(504),
                1,
                Err("HTTP status 504 (timeout_ms passed, or a gateway timed out)"),
            ),
            (Some(503), 1, Err("HTTP status 503")),
            (None, 1, Err("no HTTP status")),
        ];
        for (status, len, expected) in table {
            assert_eq!(
                check_answer(status, len, 10),
                expected.map_err(String::from),
                "{status:?}"
            );
        }
    }
}
