//! RequestAuthentication `jwtRules` → jwt-guard `providers`.
//!
//! Istio hands each JWTRule to Envoy's `jwt_authn` as a provider with `allow_missing_or_failed`
//! and rejects a request whose token failed (401) in its own filter: a missing token passes,
//! an invalid one is 401. jwt-guard does the same with an `allow_anonymous` rule (see
//! [`super::authz`]); this module only builds the providers.

use serde_json::{Map, Value as Json, json};
use serde_yaml_ng::Value;

use super::super::FieldReport;
use super::yaml::{members, name_chars, scalar, strings};

/// A provider name from its issuer: 1–64 of `A-Z a-z 0-9 _ -`, unique among `taken`.
pub fn provider_name(issuer: &str, taken: &Map<String, Json>) -> String {
    let trimmed = issuer
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let mut base = name_chars(trimmed);
    base = base.trim_matches('_').to_string();
    if base.is_empty() {
        base = "istio".to_string();
    }
    base.truncate(56);
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains_key(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// `outbound|PORT||HOST`: the name Istio gives the Envoy cluster of a mesh-external host that a
/// ServiceEntry declares; `None` for a URL without a host.
fn istio_cluster(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
            (host, port.to_string())
        }
        _ => (
            authority,
            if scheme.eq_ignore_ascii_case("http") {
                "80"
            } else {
                "443"
            }
            .to_string(),
        ),
    };
    (!host.is_empty()).then(|| format!("outbound|{port}||{host}"))
}

/// An Istio duration (`5s`, `100ms`, `1m`, `1.5s`) in milliseconds.
fn duration_ms(text: &str) -> Option<u64> {
    let units: [(&str, f64); 5] = [
        ("ms", 1.0),
        ("us", 0.001),
        ("s", 1000.0),
        ("m", 60_000.0),
        ("h", 3_600_000.0),
    ];
    for (unit, factor) in units {
        if let Some(number) = text.strip_suffix(unit)
            && let Ok(value) = number.parse::<f64>()
            && value.is_finite()
            && value >= 0.0
        {
            let ms = (value * factor).ceil();
            return (ms <= u64::MAX as f64).then_some(ms as u64);
        }
    }
    None
}

/// One JWTRule → (provider name, provider); `None` when it has no usable issuer.
pub fn jwt_rule(
    rule: &Value,
    path: &str,
    providers: &Map<String, Json>,
    report: &mut FieldReport,
) -> Option<(String, Json)> {
    let Some(map) = rule.as_mapping() else {
        report.not_expressible(path, "a JWTRule must be an object");
        return None;
    };
    let mut provider = Map::new();
    let mut issuer = None;
    let mut jwks_inline = None;
    let mut jwks_uri = None;
    let mut timeout_ms = None;
    let (mut headers, mut params, mut cookies) = (None, None, None);
    for (name, value) in members(map, path, report) {
        let field = format!("{path}.{name}");
        match name {
            "issuer" => match value.as_str() {
                Some(text) if !text.is_empty() => {
                    issuer = Some(text.to_string());
                    report.translated(&field);
                }
                _ => report.not_expressible(&field, "must be a non-empty string"),
            },
            "audiences" => {
                if let Some(list) = strings(value, &field, report) {
                    if list.is_empty() {
                        report.translated(&field);
                    } else {
                        provider.insert("audiences".into(), json!(list));
                        report.translated(&field);
                    }
                }
            }
            "jwks" => match value.as_str() {
                Some(text) => {
                    jwks_inline = Some(text.to_string());
                    report.translated(&field);
                }
                None => report.not_expressible(&field, "must be a string holding a JWKS"),
            },
            "jwksUri" | "jwks_uri" => match value.as_str() {
                Some(text) => jwks_uri = Some((field, text.to_string())),
                None => report.not_expressible(&field, "must be a string"),
            },
            "timeout" => match scalar(value).as_deref().and_then(duration_ms) {
                Some(ms) => timeout_ms = Some((field, ms)),
                None => report.not_expressible(&field, "not a duration (`5s`, `500ms`)"),
            },
            "fromHeaders" => {
                let Some(seq) = value.as_sequence() else {
                    report.not_expressible(&field, "expected a list");
                    continue;
                };
                let mut list = Vec::new();
                for (i, header) in seq.iter().enumerate() {
                    let hpath = format!("{field}[{i}]");
                    let Some(hmap) = header.as_mapping() else {
                        report.not_expressible(&hpath, "expected {name, prefix}");
                        continue;
                    };
                    let mut location = Map::new();
                    for (hname, hvalue) in members(hmap, &hpath, report) {
                        let hfield = format!("{hpath}.{hname}");
                        match (hname, hvalue.as_str()) {
                            // Header names are case-insensitive; jwt-guard's are lower case.
                            ("name", Some(text)) => {
                                location.insert("name".into(), json!(text.to_ascii_lowercase()));
                                report.translated(&hfield);
                            }
                            ("prefix", Some(text)) => {
                                location.insert("value_prefix".into(), json!(text));
                                report.changed_default(
                                    &hfield,
                                    "value_prefix: jwt-guard compares the prefix without case, \
                                     Envoy's jwt_authn with it",
                                );
                            }
                            _ => report.not_expressible(&hfield, "unknown member of JWTHeader"),
                        }
                    }
                    list.push(Json::Object(location));
                }
                headers = Some(list);
            }
            "fromParams" => {
                if let Some(list) = strings(value, &field, report) {
                    params = Some(list);
                    report.translated(&field);
                }
            }
            "fromCookies" => {
                if let Some(list) = strings(value, &field, report) {
                    cookies = Some(list);
                    report.translated(&field);
                }
            }
            "outputPayloadToHeader" => match value.as_str() {
                Some(text) => {
                    provider.insert(
                        "forward_payload_header".into(),
                        json!(text.to_ascii_lowercase()),
                    );
                    report.translated(&field);
                }
                None => report.not_expressible(&field, "must be a string"),
            },
            "forwardOriginalToken" => match value.as_bool() {
                Some(b) => {
                    provider.insert("forward".into(), json!(b));
                    report.translated(&field);
                }
                None => report.not_expressible(&field, "must be a boolean"),
            },
            "outputClaimToHeaders" => {
                let Some(seq) = value.as_sequence() else {
                    report.not_expressible(&field, "expected a list");
                    continue;
                };
                let mut list = Vec::new();
                for (i, item) in seq.iter().enumerate() {
                    let ipath = format!("{field}[{i}]");
                    let claim = item.get("claim").and_then(Value::as_str);
                    let header = item.get("header").and_then(Value::as_str);
                    match (claim, header) {
                        (Some(claim), Some(header)) => {
                            list.push(
                                json!({"claim": claim, "header": header.to_ascii_lowercase()}),
                            );
                            report.translated(&ipath);
                        }
                        _ => report.not_expressible(&ipath, "needs claim and header (strings)"),
                    }
                }
                provider.insert("claim_to_headers".into(), Json::Array(list));
            }
            _ => report.not_expressible(&field, "not a field of JWTRule"),
        }
    }
    let issuer = issuer?;
    provider.insert("issuer".into(), json!(issuer));

    // Keys: Istio prefers the inline set; without either it discovers them from the issuer.
    // jwt-guard fetches through an Envoy cluster: Istio names a ServiceEntry host's cluster
    // `outbound|PORT||HOST`, and that cluster must originate TLS for an https URL.
    let fetch_note = "jwt-guard fetches keys itself through an Envoy cluster (istiod fetches them \
                      for jwt_authn): the cluster is Istio's for that host, which needs a \
                      ServiceEntry (and a DestinationRule with tls mode SIMPLE for https); or put \
                      the key set inline in \"jwks\"";
    if let Some(jwks) = jwks_inline {
        provider.insert("jwks".into(), json!(jwks));
        if let Some((field, _)) = jwks_uri {
            report.ignored(field, "Istio uses the inline jwks when both are given");
        }
    } else if let Some((field, uri)) = jwks_uri {
        match istio_cluster(&uri) {
            Some(cluster) => {
                provider.insert(
                    "remote_jwks".into(),
                    json!({"cluster": cluster, "uri": uri}),
                );
                report.changed_default(&field, fetch_note);
            }
            None => report.not_expressible(&field, "not an http(s) URL with a host"),
        }
    } else {
        match istio_cluster(&issuer) {
            Some(cluster) => {
                provider.insert(
                    "remote_jwks".into(),
                    json!({"cluster": cluster, "discovery": true}),
                );
                report.changed_default(
                    format!("{path}.(no jwks, no jwksUri)"),
                    format!("OpenID discovery from the issuer, as Istio does; {fetch_note}"),
                );
            }
            None => report.not_expressible(
                format!("{path}.(no jwks, no jwksUri)"),
                "keys would come from OpenID discovery, but the issuer is not an https URL",
            ),
        }
    }
    if let Some((field, ms)) = timeout_ms {
        match provider
            .get_mut("remote_jwks")
            .and_then(Json::as_object_mut)
        {
            Some(remote) => {
                remote.insert("timeout_ms".into(), json!(ms));
                report.translated(field);
            }
            None => report.ignored(field, "no key set is fetched"),
        }
    }

    // Token locations: Envoy's default (no location given) is `Authorization: Bearer` and the
    // `access_token` query parameter; jwt-guard's has no query parameter, so it is set here.
    // Once any location is given, Envoy reads only those: every jwt-guard location is then set,
    // since each has its own default.
    if headers.is_none() && params.is_none() && cookies.is_none() {
        provider.insert("from_params".into(), json!(["access_token"]));
        report.changed_default(
            format!("{path}.(no fromHeaders, fromParams, fromCookies)"),
            "Istio also reads the access_token query parameter by default, jwt-guard does not: \
             from_params [\"access_token\"] set (remove it to keep tokens out of URLs and logs)",
        );
    } else {
        provider.insert("from_headers".into(), json!(headers.unwrap_or_default()));
        if let Some(params) = params {
            provider.insert("from_params".into(), json!(params));
        }
        if let Some(cookies) = cookies {
            provider.insert("from_cookies".into(), json!(cookies));
        }
    }
    // Istio leaves jwt_authn's require_expiration unset (false); jwt-guard requires exp.
    provider.insert("require_expiration".into(), json!(false));
    report.changed_default(
        format!("{path}.(exp)"),
        "require_expiration false, as Istio (jwt_authn) accepts a token without exp; jwt-guard's \
         default is true",
    );
    let name = provider_name(&issuer, providers);
    Some((name, Json::Object(provider)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml: &str) -> (Json, FieldReport) {
        let value: Value = serde_yaml_ng::from_str(yaml).unwrap();
        let mut report = FieldReport::default();
        let (_, provider) = jwt_rule(&value, "r", &Map::new(), &mut report).unwrap();
        (provider, report)
    }

    #[test]
    fn jwks_uri_becomes_remote_jwks_through_the_istio_cluster() {
        let (p, report) = rule(
            "issuer: testing@secure.istio.io\njwksUri: https://raw.githubusercontent.com/istio/istio/release-1.27/security/tools/jwt/samples/jwks.json\n",
        );
        assert_eq!(p["issuer"], "testing@secure.istio.io");
        assert_eq!(
            p["remote_jwks"]["cluster"],
            "outbound|443||raw.githubusercontent.com"
        );
        assert_eq!(p["from_params"], json!(["access_token"]));
        assert!(p.get("from_headers").is_none());
        assert_eq!(p["require_expiration"], false);
        assert!(!report.is_lossy());
    }

    #[test]
    fn locations_claims_payload_and_timeout() {
        let (p, report) = rule(
            "issuer: https://idp.example.com:8443/realm\naudiences: [a, b]\n\
             fromHeaders: [{name: X-Token, prefix: 'Bearer '}]\nfromCookies: [session]\n\
             outputPayloadToHeader: X-Payload\nforwardOriginalToken: true\n\
             outputClaimToHeaders: [{header: X-Sub, claim: sub}]\ntimeout: 1.5s\n",
        );
        assert_eq!(p["audiences"], json!(["a", "b"]));
        assert_eq!(
            p["from_headers"],
            json!([{"name": "x-token", "value_prefix": "Bearer "}])
        );
        assert_eq!(p["from_cookies"], json!(["session"]));
        assert!(p.get("from_params").is_none());
        assert_eq!(p["forward_payload_header"], "x-payload");
        assert_eq!(p["forward"], true);
        assert_eq!(
            p["claim_to_headers"],
            json!([{"claim": "sub", "header": "x-sub"}])
        );
        assert_eq!(
            p["remote_jwks"],
            json!({"cluster": "outbound|8443||idp.example.com", "discovery": true, "timeout_ms": 1500})
        );
        assert!(!report.is_lossy());
    }

    #[test]
    fn inline_jwks_wins_and_unknown_fields_are_lossy() {
        let (p, report) =
            rule("issuer: i\njwks: '{\"keys\": []}'\njwksUri: https://x/j\nbogus: 1\n");
        assert_eq!(p["jwks"], "{\"keys\": []}");
        assert!(p.get("remote_jwks").is_none());
        assert!(report.is_lossy());
    }

    #[test]
    fn names_and_durations() {
        let mut taken = Map::new();
        assert_eq!(
            provider_name("https://accounts.google.com", &taken),
            "accounts_google_com"
        );
        taken.insert("accounts_google_com".into(), Json::Null);
        assert_eq!(
            provider_name("https://accounts.google.com", &taken),
            "accounts_google_com-2"
        );
        assert_eq!(duration_ms("100ms"), Some(100));
        assert_eq!(duration_ms("2m"), Some(120_000));
        assert_eq!(duration_ms("x"), None);
    }
}
