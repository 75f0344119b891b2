//! A JwtProvider's keys: `local_jwks` (a DataSource, inlined) and `remote_jwks` (HttpUri,
//! cache_duration, async_fetch, retry_policy) → jwt-guard `jwks` / `remote_jwks`.

use serde_json::{Map, Value, json};

use super::duration_ms;
use crate::import::FieldReport;

/// jwt_authn's `cache_duration` default: 10 minutes (config.proto, RemoteJwks).
const JWT_AUTHN_CACHE_DURATION_S: u64 = 600;
/// jwt-guard's `remote_jwks` bounds (docs/configuration.md).
const MAX_REFRESH_S: u64 = 604_800;
const MAX_TIMEOUT_MS: u64 = 60_000;

pub fn local_jwks(at: &str, value: &Value, out: &mut Map<String, Value>, report: &mut FieldReport) {
    let text = if let Some(inline) = value.get("inline_string").and_then(Value::as_str) {
        report.translated(format!("{at}.inline_string"));
        Some(inline.to_string())
    } else if let Some(bytes) = value.get("inline_bytes").and_then(Value::as_str) {
        match base64_decode(bytes).and_then(|b| String::from_utf8(b).ok()) {
            Some(text) => {
                report.translated(format!("{at}.inline_bytes"));
                Some(text)
            }
            None => {
                report.not_expressible(format!("{at}.inline_bytes"), "not base64 of UTF-8 text");
                None
            }
        }
    } else if let Some(path) = value.get("filename").and_then(Value::as_str) {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                report.changed_default(
                    format!("{at}.filename"),
                    format!(
                        "{path}'s key set inlined as jwks, as it is now (jwt_authn reads the file \
                         when Envoy loads the configuration): import again when it changes"
                    ),
                );
                Some(text)
            }
            Err(err) => {
                report.not_expressible(
                    format!("{at}.filename"),
                    format!("cannot read {path} to inline its keys: {err}"),
                );
                None
            }
        }
    } else if let Some(var) = value.get("environment_variable").and_then(Value::as_str) {
        match std::env::var(var) {
            Ok(text) => {
                report.changed_default(
                    format!("{at}.environment_variable"),
                    format!("${var}'s key set inlined as jwks, as it is now"),
                );
                Some(text)
            }
            Err(_) => {
                report.not_expressible(
                    format!("{at}.environment_variable"),
                    format!("${var} is not set here: cannot inline its keys"),
                );
                None
            }
        }
    } else {
        report.not_expressible(
            at.to_string(),
            "none of inline_string, inline_bytes, filename, environment_variable",
        );
        None
    };
    // An empty key set keeps the provider valid and refuses its every token (401
    // unknown_key), which is what a key set that could not be read gives.
    let jwks = match text {
        Some(text) => serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)),
        None => json!({"keys": []}),
    };
    out.insert("jwks".into(), jwks);
}

pub fn remote_jwks(
    at: &str,
    value: &Value,
    out: &mut Map<String, Value>,
    report: &mut FieldReport,
) {
    let mut remote = Map::new();
    let http_uri = value.get("http_uri");
    let uri = http_uri.and_then(|h| h.get("uri")).and_then(Value::as_str);
    let cluster = http_uri
        .and_then(|h| h.get("cluster"))
        .and_then(Value::as_str);
    match (uri, cluster) {
        (Some(uri), Some(cluster)) => {
            remote.insert("uri".into(), json!(uri));
            remote.insert("cluster".into(), json!(cluster));
            report.translated(format!("{at}.http_uri.uri"));
            report.translated(format!("{at}.http_uri.cluster"));
        }
        _ => report.not_expressible(
            format!("{at}.http_uri"),
            "needs uri and cluster: the provider gets no keys",
        ),
    }
    match http_uri
        .and_then(|h| h.get("timeout"))
        .and_then(duration_ms)
    {
        Some(ms) => {
            let clamped = ms.clamp(1, MAX_TIMEOUT_MS);
            remote.insert("timeout_ms".into(), json!(clamped));
            if clamped == ms {
                report.translated(format!("{at}.http_uri.timeout"));
            } else {
                report.changed_default(
                    format!("{at}.http_uri.timeout"),
                    format!("jwt-guard's timeout_ms is 1..60000: {clamped} written"),
                );
            }
        }
        None => report.changed_default(
            format!("{at}.http_uri.timeout"),
            "absent or not a Duration: jwt-guard's timeout_ms default (2000) applies",
        ),
    }
    let refresh = match value.get("cache_duration") {
        Some(d) => match duration_ms(d) {
            Some(ms) => {
                let s = ms.div_ceil(1000).clamp(1, MAX_REFRESH_S);
                report.changed_default(
                    format!("{at}.cache_duration"),
                    format!(
                        "refresh_seconds {s}: jwt-guard fetches again every refresh_seconds and \
                         keeps the last good keys through failed fetches for max_stale_seconds \
                         (jwt_authn drops them when cache_duration ends)"
                    ),
                );
                s
            }
            None => {
                report.not_expressible(format!("{at}.cache_duration"), "not a Duration");
                JWT_AUTHN_CACHE_DURATION_S
            }
        },
        None => {
            report.changed_default(
                format!("{at}.cache_duration"),
                "jwt_authn's default (10 minutes) written as refresh_seconds 600 (jwt-guard's \
                 default is 300)",
            );
            JWT_AUTHN_CACHE_DURATION_S
        }
    };
    remote.insert("refresh_seconds".into(), json!(refresh));
    let startup = "jwt-guard fetches in the background (one worker for all) and answers 401 \
                   keys_unavailable before the first good fetch (jwt_authn holds requests, or \
                   the listener with async_fetch, until its fetch ends)";
    if value.get("async_fetch").is_some() {
        report.changed_default(format!("{at}.async_fetch"), startup);
    } else {
        report.changed_default(format!("{at}.async_fetch"), format!("absent: {startup}"));
    }
    if value.get("retry_policy").is_some() {
        report.changed_default(
            format!("{at}.retry_policy"),
            "jwt-guard retries a failed fetch itself, after 1 s, 2 s, 4 s ... up to \
             refresh_seconds",
        );
    }
    if let Value::Object(map) = value {
        for key in map.keys() {
            if !["http_uri", "cache_duration", "async_fetch", "retry_policy"]
                .contains(&key.as_str())
            {
                report.not_expressible(format!("{at}.{key}"), "unknown field: left out");
            }
        }
    }
    out.insert("remote_jwks".into(), Value::Object(remote));
}

/// Protobuf JSON `bytes`: standard or URL-safe base64, padded or not.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => continue,
            b'\n' | b'\r' | b' ' => continue,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}
