//! `providers.<name>` (JwtProvider) → jwt-guard `providers.<name>`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::keys::{local_jwks, remote_jwks};
use super::{duration_ms, whole};
use crate::import::FieldReport;

/// jwt_authn's clock skew when `clock_skew_seconds` is 0 or absent (config.proto).
const JWT_AUTHN_CLOCK_SKEW: u64 = 60;

/// One imported provider.
pub struct Provider {
    /// Its name in jwt-guard (jwt_authn's when it is a valid jwt-guard name).
    pub name: String,
    pub json: Map<String, Value>,
    /// It sends identity upstream (forward_payload_header or claim_to_headers).
    pub identity_headers: bool,
}

#[derive(Default)]
pub struct Providers {
    /// By jwt_authn name.
    pub by_source: BTreeMap<String, Provider>,
    /// Copies with other audiences (`provider_and_audiences`), by (source name, audiences).
    pub with_audiences: BTreeMap<(String, Vec<String>), String>,
}

/// jwt-guard's provider (and rule) names: 1–64 of `A-Z a-z 0-9 _ -`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

impl Providers {
    /// The jwt-guard names in use.
    fn names(&self) -> Vec<String> {
        self.by_source
            .values()
            .map(|p| p.name.clone())
            .chain(self.with_audiences.values().cloned())
            .collect()
    }

    /// A name not yet used, from `wanted` (made valid: other characters become `_`).
    fn fresh_name(&self, wanted: &str) -> String {
        let mut base: String = wanted
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(56)
            .collect();
        if base.is_empty() {
            base.push('p');
        }
        let used = self.names();
        if !used.contains(&base) {
            return base;
        }
        (2..)
            .map(|n| format!("{base}-{n}"))
            .find(|candidate| !used.contains(candidate))
            .unwrap_or(base)
    }

    /// Imports one provider; `Err`: it cannot be imported at all (no configuration can be
    /// written).
    pub fn add(&mut self, name: &str, raw: &Value, report: &mut FieldReport) -> Result<(), String> {
        let at = format!("providers.{name}");
        let Value::Object(raw) = raw else {
            return Err(format!("{at}: not a JwtProvider mapping"));
        };
        let jwt_guard_name = if valid_name(name) {
            name.to_string()
        } else {
            let fresh = self.fresh_name(name);
            report.changed_default(
                at.clone(),
                format!(
                    "renamed {fresh:?}: jwt-guard provider names are 1-64 of A-Z a-z 0-9 _ - \
                     (they name counters)"
                ),
            );
            fresh
        };
        let (json, identity_headers) = provider(&at, raw, report)?;
        self.by_source.insert(
            name.to_string(),
            Provider {
                name: jwt_guard_name,
                json,
                identity_headers,
            },
        );
        Ok(())
    }

    /// The jwt-guard name of `source` with its audiences replaced by `audiences`
    /// (`provider_and_audiences`): a copy of the provider, made once per audience list.
    pub fn with_audiences(&mut self, source: &str, audiences: &[String]) -> Option<String> {
        let base = self.by_source.get(source)?;
        let key = (source.to_string(), audiences.to_vec());
        if let Some(name) = self.with_audiences.get(&key) {
            return Some(name.clone());
        }
        let wanted = format!("{}-aud", base.name);
        let name = self.fresh_name(&wanted);
        self.with_audiences.insert(key, name.clone());
        Some(name)
    }

    /// Every provider as jwt-guard JSON, copies included.
    pub fn into_json(self) -> Map<String, Value> {
        let mut out = Map::new();
        for ((source, audiences), name) in &self.with_audiences {
            if let Some(base) = self.by_source.get(source) {
                let mut copy = base.json.clone();
                copy.insert("audiences".into(), json!(audiences));
                out.insert(name.clone(), Value::Object(copy));
            }
        }
        for provider in self.by_source.into_values() {
            out.insert(provider.name, Value::Object(provider.json));
        }
        out
    }
}

const PROVIDER_FIELDS: [&str; 21] = [
    "issuer",
    "audiences",
    "subjects",
    "require_expiration",
    "max_lifetime",
    "remote_jwks",
    "local_jwks",
    "forward",
    "from_headers",
    "from_params",
    "from_cookies",
    "forward_payload_header",
    "pad_forward_payload_header",
    "payload_in_metadata",
    "normalize_payload_in_metadata",
    "header_in_metadata",
    "failed_status_in_metadata",
    "clock_skew_seconds",
    "jwt_cache_config",
    "claim_to_headers",
    "clear_route_cache",
];

fn strings(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect(),
        // YAML `audiences: api_audience` (as Envoy's docs write it once) is one item.
        Value::String(one) => Some(vec![one.clone()]),
        _ => None,
    }
}

fn truthy(value: Option<&Value>) -> bool {
    matches!(value, Some(Value::Bool(true)))
}

fn non_empty_str<'a>(raw: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    raw.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// One JwtProvider: its jwt-guard JSON, and whether it sends identity headers.
fn provider(
    at: &str,
    raw: &Map<String, Value>,
    report: &mut FieldReport,
) -> Result<(Map<String, Value>, bool), String> {
    let field = |member: &str| format!("{at}.{member}");
    let mut out = Map::new();
    for key in raw.keys() {
        if !PROVIDER_FIELDS.contains(&key.as_str()) {
            report.not_expressible(
                field(key),
                "not a field of JwtProvider that this importer knows: left out",
            );
        }
    }

    // issuer: optional in jwt_authn (absent: `iss` is not checked); required in jwt-guard.
    match non_empty_str(raw, "issuer") {
        Some(issuer) => {
            out.insert("issuer".into(), json!(issuer));
            report.translated(field("issuer"));
        }
        None => {
            report.not_expressible(
                field("issuer"),
                "absent: jwt_authn then accepts any iss; jwt-guard needs the issuer of every \
                 provider (it picks the provider by iss)",
            );
            return Err(format!(
                "{}: jwt-guard needs an issuer (write the IdP's iss into the source and import again)",
                field("issuer")
            ));
        }
    }

    if let Some(value) = raw.get("audiences") {
        match strings(value) {
            Some(list) if list.is_empty() => report.translated(field("audiences")),
            Some(list) => {
                out.insert("audiences".into(), json!(list));
                report.translated(field("audiences"));
            }
            None => report.not_expressible(field("audiences"), "not a list of strings: left out"),
        }
    }

    if raw.contains_key("subjects") {
        report.not_expressible(
            field("subjects"),
            "jwt-guard providers do not restrict sub; left out (a rule's claims condition on \
             sub is the nearest, with 403 claim_mismatch instead of 401)",
        );
    }

    // require_expiration: false by default in jwt_authn, true in jwt-guard: always written.
    // max_lifetime "takes precedence over require_expiration" (it needs exp).
    let max_lifetime = raw.get("max_lifetime");
    let require_expiration = truthy(raw.get("require_expiration")) || max_lifetime.is_some();
    out.insert("require_expiration".into(), json!(require_expiration));
    if raw.contains_key("require_expiration") {
        report.translated(field("require_expiration"));
    } else if !require_expiration {
        report.changed_default(
            field("require_expiration"),
            "jwt_authn's default false written (jwt-guard's default is true)",
        );
    }
    if let Some(value) = max_lifetime {
        match duration_ms(value) {
            Some(ms) => {
                out.insert("max_lifetime_seconds".into(), json!(ms / 1000));
                report.changed_default(
                    field("max_lifetime"),
                    "as max_lifetime_seconds; jwt-guard measures exp - iat when the token has \
                     iat (jwt_authn: exp - now), so it is stricter for tokens issued long ago",
                );
            }
            None => report.not_expressible(field("max_lifetime"), "not a Duration: left out"),
        }
    }

    // Key sources: exactly one of remote_jwks and local_jwks.
    match (raw.get("local_jwks"), raw.get("remote_jwks")) {
        (Some(local), None) => local_jwks(&field("local_jwks"), local, &mut out, report),
        (None, Some(remote)) => remote_jwks(&field("remote_jwks"), remote, &mut out, report),
        (Some(_), Some(_)) => {
            return Err(format!(
                "{at}: both local_jwks and remote_jwks (a oneof: Envoy refuses it)"
            ));
        }
        (None, None) => {
            return Err(format!(
                "{at}: neither local_jwks nor remote_jwks (Envoy refuses it)"
            ));
        }
    }

    // forward: false in both; jwt_authn's false only removes header tokens.
    let forward = truthy(raw.get("forward"));
    out.insert("forward".into(), json!(forward));
    if raw.contains_key("forward") {
        report.translated(field("forward"));
    }

    locations(at, raw, forward, &mut out, report);

    let mut identity_headers = false;
    if let Some(header) = non_empty_str(raw, "forward_payload_header") {
        out.insert("forward_payload_header".into(), json!(header));
        report.translated(field("forward_payload_header"));
        identity_headers = true;
    }
    match raw.get("pad_forward_payload_header") {
        Some(Value::Bool(true)) => report.not_expressible(
            field("pad_forward_payload_header"),
            "jwt-guard forwards the payload as the token has it, base64url without padding",
        ),
        Some(_) => report.translated(field("pad_forward_payload_header")),
        None => {}
    }
    if let Some(Value::Array(list)) = raw.get("claim_to_headers") {
        let mut mapped = Vec::new();
        for (index, entry) in list.iter().enumerate() {
            let header = entry.get("header_name").and_then(Value::as_str);
            let claim = entry.get("claim_name").and_then(Value::as_str);
            match (header, claim) {
                (Some(header), Some(claim)) => {
                    mapped.push(json!({"claim": claim, "header": header.to_ascii_lowercase()}));
                }
                _ => report.not_expressible(
                    format!("{}[{index}]", field("claim_to_headers")),
                    "needs header_name and claim_name: left out",
                ),
            }
        }
        if !mapped.is_empty() {
            identity_headers = true;
            out.insert("claim_to_headers".into(), Value::Array(mapped));
            report.changed_default(
                field("claim_to_headers"),
                "an array claim goes upstream joined with ',' (jwt_authn sets no header for an \
                 array), an object as JSON; a client-sent copy of the header is always removed",
            );
        }
    }
    for key in [
        "payload_in_metadata",
        "header_in_metadata",
        "failed_status_in_metadata",
    ] {
        if non_empty_str(raw, key).is_some() {
            report.not_expressible(
                field(key),
                "jwt-guard writes no dynamic metadata for other filters (rbac, lua); its \
                 outcome_in_filter_state and claim_to_headers are the nearest: left out",
            );
        }
    }
    if raw.contains_key("normalize_payload_in_metadata") {
        if non_empty_str(raw, "payload_in_metadata").is_some() {
            report.not_expressible(
                field("normalize_payload_in_metadata"),
                "goes with payload_in_metadata: left out",
            );
        } else {
            report.ignored(
                field("normalize_payload_in_metadata"),
                "without payload_in_metadata it has no effect",
            );
        }
    }

    // clock_skew_seconds: 0 or absent means 60 in jwt_authn (proto3 cannot tell them apart).
    let skew = match raw.get("clock_skew_seconds").map(whole) {
        None | Some(Some(0)) => JWT_AUTHN_CLOCK_SKEW,
        Some(Some(n)) => n,
        Some(None) => {
            report.not_expressible(
                field("clock_skew_seconds"),
                "not a whole number: 60 written",
            );
            JWT_AUTHN_CLOCK_SKEW
        }
    };
    if skew > 86_400 {
        report.changed_default(
            field("clock_skew_seconds"),
            "jwt-guard allows at most 86400: 86400 written (stricter)",
        );
        out.insert("clock_skew_seconds".into(), json!(86_400));
    } else {
        out.insert("clock_skew_seconds".into(), json!(skew));
        if raw.contains_key("clock_skew_seconds") {
            report.translated(field("clock_skew_seconds"));
        }
    }

    if raw.contains_key("jwt_cache_config") {
        report.ignored(
            field("jwt_cache_config"),
            "jwt-guard caches verified tokens for every provider (token_cache_size, default \
             1000 per worker) and checks time claims again on every hit: no effect on decisions",
        );
    }
    if raw.contains_key("clear_route_cache") {
        report.ignored(
            field("clear_route_cache"),
            "Envoy chooses the route again after jwt-guard changes request headers \
             (docs/configuration.md, Rules bound to routes)",
        );
    }
    Ok((out, identity_headers))
}

/// from_headers / from_params / from_cookies, with jwt_authn's defaults written out: with none
/// of the three, `Authorization: Bearer` and the `access_token` query parameter.
fn locations(
    at: &str,
    raw: &Map<String, Value>,
    forward: bool,
    out: &mut Map<String, Value>,
    report: &mut FieldReport,
) {
    let field = |member: &str| format!("{at}.{member}");
    let mut headers = Vec::new();
    if let Some(value) = raw.get("from_headers") {
        match value {
            Value::Array(list) => {
                for (index, entry) in list.iter().enumerate() {
                    match entry.get("name").and_then(Value::as_str) {
                        Some(name) => {
                            let prefix = entry
                                .get("value_prefix")
                                .and_then(Value::as_str)
                                .unwrap_or("");
                            headers.push(json!({"name": name, "value_prefix": prefix}));
                        }
                        None => report.not_expressible(
                            format!("{}[{index}]", field("from_headers")),
                            "no name: left out",
                        ),
                    }
                }
                report.changed_default(
                    field("from_headers"),
                    "jwt-guard compares value_prefix without case and takes the rest of the \
                     value as the token (jwt_authn: case-sensitive, then the JWT characters \
                     found after the prefix)",
                );
            }
            _ => report.not_expressible(field("from_headers"), "not a list: left out"),
        }
    }
    let params = raw.get("from_params").and_then(strings).unwrap_or_default();
    if raw.contains_key("from_params") {
        report.translated(field("from_params"));
    }
    let cookies = raw
        .get("from_cookies")
        .and_then(strings)
        .unwrap_or_default();
    if raw.contains_key("from_cookies") {
        report.translated(field("from_cookies"));
    }
    let (headers, params) = if headers.is_empty() && params.is_empty() && cookies.is_empty() {
        report.changed_default(
            field("from_headers"),
            "jwt_authn's default locations written: Authorization: Bearer and the access_token \
             query parameter (jwt-guard reads no query parameter by default)",
        );
        (
            vec![json!({"name": "authorization", "value_prefix": "Bearer "})],
            vec!["access_token".to_string()],
        )
    } else {
        (headers, params)
    };
    if !forward && (!params.is_empty() || !cookies.is_empty()) {
        report.changed_default(
            field("forward"),
            "false: jwt-guard also removes a token found in a query parameter or cookie \
             (jwt_authn's forward: false removes header tokens only)",
        );
    }
    out.insert("from_headers".into(), Value::Array(headers));
    out.insert("from_params".into(), json!(params));
    out.insert("from_cookies".into(), json!(cookies));
}
