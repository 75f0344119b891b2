//! The mapping, one jwt_authn feature at a time: the JSON written and the report's verdict.

use serde_json::{Value, json};

use super::{Outcome, finish, import_text};
use crate::import::Fate;
use crate::report::exit;

const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

fn imported(yaml: &str) -> Outcome {
    let text = yaml.replace("JWKS", &JWKS.replace('"', "\\\""));
    match import_text(&text) {
        Ok(outcome) => outcome,
        Err(err) => panic!("import failed: {err:?}"),
    }
}

fn fate<'a>(outcome: &'a Outcome, path: &str) -> &'a Fate {
    outcome
        .report
        .entries()
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, f)| f)
        .unwrap_or_else(|| panic!("no report line for {path}:\n{}", outcome.report.render()))
}

const PROVIDER: &str = r#"
providers:
  p:
    issuer: https://idp.example.com
    audiences: [orders]
    local_jwks: { inline_string: "JWKS" }
"#;

#[test]
fn a_plain_provider_gets_jwt_authn_defaults_written() {
    let out = imported(&format!(
        "{PROVIDER}rules:\n- match: {{prefix: /}}\n  requires: {{provider_name: p}}\n"
    ));
    let p = &out.config["providers"]["p"];
    assert_eq!(p["issuer"], "https://idp.example.com");
    assert_eq!(p["audiences"], json!(["orders"]));
    assert_eq!(p["require_expiration"], false);
    assert_eq!(p["clock_skew_seconds"], 60);
    assert_eq!(p["forward"], false);
    assert_eq!(
        p["from_headers"],
        json!([{"name": "authorization", "value_prefix": "Bearer "}])
    );
    assert_eq!(p["from_params"], json!(["access_token"]));
    assert_eq!(p["jwks"]["keys"][0]["kid"], "k1");
    assert_eq!(
        out.config["rules"],
        json!([{"match": {"prefix": "/"}, "provider": "p"}])
    );
    assert!(matches!(
        fate(&out, "providers.p.require_expiration"),
        Fate::ChangedDefault(_)
    ));
    assert!(!out.report.is_lossy());
    let report = finish(out, false);
    assert_eq!(report.code, exit::OK, "{}", report.stderr);
    assert!(report.stdout.contains("\"issuer\""));
}

#[test]
fn unmatched_requests_pass_through_a_catch_all_disabled_rule() {
    let out = imported(&format!(
        "{PROVIDER}rules:\n- match: {{prefix: /health}}\n- match: {{prefix: /api}}\n  requires: {{provider_name: p}}\n"
    ));
    assert_eq!(
        out.config["rules"],
        json!([
            {"match": {"prefix": "/health"}, "disabled": true},
            {"match": {"prefix": "/api"}, "provider": "p"},
            {"match": {}, "disabled": true}
        ])
    );
    assert!(matches!(fate(&out, "rules"), Fate::ChangedDefault(_)));
}

#[test]
fn requires_any_and_allow_missing() {
    let out = imported(&format!(
        "{PROVIDER}  q:\n    issuer: https://q.example.com\n    local_jwks: {{ inline_string: \"JWKS\" }}\n    from_headers: [{{name: x-q}}]\n\
rules:\n- match: {{prefix: /any}}\n  requires:\n    requires_any:\n      requirements: [{{provider_name: p}}, {{provider_name: q}}]\n\
- match: {{prefix: /opt}}\n  requires:\n    requires_any:\n      requirements: [{{provider_name: p}}, {{allow_missing: {{}}}}]\n\
- match: {{prefix: /}}\n  requires: {{allow_missing: {{}}}}\n"
    ));
    let rules = &out.config["rules"];
    assert_eq!(rules[0]["providers"], json!(["p", "q"]));
    assert_eq!(rules[1]["provider"], "p");
    assert_eq!(rules[1]["allow_anonymous"], true);
    assert_eq!(
        rules[2],
        json!({"match": {"prefix": "/"}, "allow_anonymous": true})
    );
    assert_eq!(
        rules.as_array().map(Vec::len),
        Some(3),
        "no catch-all after prefix /"
    );
    assert_eq!(
        out.config["providers"]["q"]["from_headers"],
        json!([{"name": "x-q", "value_prefix": ""}])
    );
    assert_eq!(out.config["providers"]["q"]["from_params"], json!([]));
}

#[test]
fn requires_all_of_two_providers_is_lossy_and_fails_closed() {
    let out = imported(&format!(
        "{PROVIDER}  q:\n    issuer: https://q.example.com\n    local_jwks: {{ inline_string: \"JWKS\" }}\n\
rules:\n- match: {{prefix: /all}}\n  requires:\n    requires_all:\n      requirements: [{{provider_name: p}}, {{provider_name: q}}]\n"
    ));
    assert!(matches!(
        fate(&out, "rules[0].requires"),
        Fate::NotExpressible(_)
    ));
    assert_eq!(
        out.config["rules"][0]["source_ips"],
        json!({"deny": ["0.0.0.0/0", "::/0"]})
    );
    let lossy = finish(
        imported(&format!(
            "{PROVIDER}  q:\n    issuer: https://q.example.com\n    local_jwks: {{ inline_string: \"JWKS\" }}\n\
rules:\n- match: {{prefix: /all}}\n  requires:\n    requires_all:\n      requirements: [{{provider_name: p}}, {{provider_name: q}}]\n"
        )),
        false,
    );
    assert_eq!(lossy.code, exit::LOSSY);
    assert!(lossy.stdout.is_empty());
    assert!(lossy.stderr.contains("NOT EXPRESSIBLE  rules[0].requires"));
    let allowed = finish(out, true);
    assert_eq!(allowed.code, exit::OK, "{}", allowed.stderr);
    assert!(!allowed.stdout.is_empty());
}

#[test]
fn requires_all_of_one_requirement_twice_is_that_requirement() {
    let out = imported(&format!(
        "{PROVIDER}rules:\n- match: {{prefix: /}}\n  requires:\n    requires_all:\n      requirements: [{{provider_name: p}}, {{provider_name: p}}]\n"
    ));
    assert_eq!(out.config["rules"][0]["provider"], "p");
    assert!(!out.report.is_lossy());
}

#[test]
fn provider_and_audiences_becomes_a_copy_of_the_provider() {
    let out = imported(&format!(
        "{PROVIDER}rules:\n- match: {{prefix: /api}}\n  requires:\n    provider_and_audiences: {{provider_name: p, audiences: [api_audience]}}\n"
    ));
    let copy = &out.config["providers"]["p-aud"];
    assert_eq!(copy["audiences"], json!(["api_audience"]));
    assert_eq!(copy["issuer"], "https://idp.example.com");
    assert_eq!(out.config["rules"][0]["provider"], "p-aud");
    assert_eq!(finish(out, false).code, exit::OK);
}

#[test]
fn matches_translated_and_refused() {
    let out = imported(&format!(
        "{PROVIDER}rules:\n\
- match: {{path_separated_prefix: /v1}}\n  requires: {{provider_name: p}}\n\
- match: {{prefix: /w, headers: [{{name: ':method', string_match: {{exact: POST}}}}]}}\n  requires: {{provider_name: p}}\n\
- match: {{safe_regex: {{regex: '/x.*'}}}}\n  requires: {{provider_name: p}}\n\
- match: {{prefix: /y, headers: [{{name: x-tenant, exact_match: a}}]}}\n"
    ));
    let rules = out.config["rules"].as_array().cloned().unwrap_or_default();
    assert_eq!(rules[0]["match"], json!({"path": "/v1"}));
    assert_eq!(rules[1]["match"], json!({"prefix": "/v1/"}));
    assert_eq!(
        rules[2]["match"],
        json!({"prefix": "/w", "methods": ["POST"]})
    );
    assert_eq!(
        rules.len(),
        4,
        "regex and header rules left out, catch-all added: {rules:?}"
    );
    assert!(matches!(
        fate(&out, "rules[2].match.safe_regex"),
        Fate::NotExpressible(_)
    ));
    assert!(matches!(
        fate(&out, "rules[3].match.headers[0]"),
        Fate::NotExpressible(_)
    ));
}

#[test]
fn requirement_map_and_per_route_configs_from_a_bootstrap() {
    let yaml = r#"
static_resources:
  listeners:
  - name: l
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          route_config:
            virtual_hosts:
            - name: all
              routes:
              - name: admin
                match: {prefix: /admin}
                typed_per_filter_config:
                  envoy.filters.http.jwt_authn:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig
                    requirement_name: admin
              - name: health
                match: {prefix: /health}
                typed_per_filter_config:
                  envoy.filters.http.jwt_authn:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig
                    disabled: true
          http_filters:
          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                p:
                  issuer: https://idp.example.com
                  local_jwks: { inline_string: "JWKS" }
              requirement_map:
                admin: {provider_name: p}
"#;
    let out = imported(yaml);
    let rules = out.config["rules"].as_array().cloned().unwrap_or_default();
    assert!(
        rules.contains(&json!({"name": "admin", "provider": "p"})),
        "{rules:?}"
    );
    assert!(
        rules.contains(&json!({"name": "jwt-authn-disabled", "disabled": true})),
        "{rules:?}"
    );
    let Fate::ChangedDefault(why) = fate(&out, "route admin.typed_per_filter_config") else {
        panic!("per-route config not reported as a change");
    };
    assert!(why.contains("rule: admin"), "{why}");
    assert_eq!(finish(out, false).code, exit::OK);
}

#[test]
fn typed_config_with_type_is_accepted_and_another_type_refused() {
    let ok = format!(
        "\"@type\": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication\n{PROVIDER}"
    );
    assert!(imported(&ok).config["providers"]["p"].is_object());
    assert!(import_text("\"@type\": type.googleapis.com/other\nproviders: {}\n").is_err());
}

#[test]
fn not_expressible_provider_fields() {
    let out = imported(&format!(
        "{PROVIDER}    subjects: {{prefix: spiffe://x/}}\n    payload_in_metadata: p\n    pad_forward_payload_header: true\n\
bypass_cors_preflight: true\nstrip_failure_response: true\n"
    ));
    for path in [
        "providers.p.subjects",
        "providers.p.payload_in_metadata",
        "providers.p.pad_forward_payload_header",
        "bypass_cors_preflight",
        "strip_failure_response",
    ] {
        assert!(
            matches!(fate(&out, path), Fate::NotExpressible(_)),
            "{path}"
        );
    }
}

#[test]
fn a_provider_without_issuer_cannot_be_imported() {
    let out = imported("providers:\n  p:\n    local_jwks: { inline_string: \"JWKS\" }\n");
    let report = finish(out, true);
    assert_eq!(report.code, exit::LOSSY);
    assert!(report.stdout.is_empty());
    assert!(
        report.stderr.contains("needs an issuer"),
        "{}",
        report.stderr
    );
}

#[test]
fn remote_jwks_timings() {
    let out = imported(
        "providers:\n  p:\n    issuer: https://idp.example.com\n    remote_jwks:\n      http_uri: {uri: 'http://127.0.0.1:1/jwks.json', cluster: idp, timeout: 1s}\n      cache_duration: {seconds: 300}\n",
    );
    let remote = &out.config["providers"]["p"]["remote_jwks"];
    assert_eq!(
        remote,
        &json!({"uri": "http://127.0.0.1:1/jwks.json", "cluster": "idp", "timeout_ms": 1000, "refresh_seconds": 300})
    );
    let defaulted = imported(
        "providers:\n  p:\n    issuer: https://idp.example.com\n    remote_jwks:\n      http_uri: {uri: 'http://127.0.0.1:1/jwks.json', cluster: idp, timeout: 0.5s}\n",
    );
    assert_eq!(
        defaulted.config["providers"]["p"]["remote_jwks"]["refresh_seconds"],
        600
    );
    assert_eq!(
        defaulted.config["providers"]["p"]["remote_jwks"]["timeout_ms"],
        500
    );
}

#[test]
fn allow_missing_or_failed_is_a_disabled_rule_unless_identity_headers_are_lost() {
    let plain = imported(&format!(
        "{PROVIDER}rules:\n- match: {{prefix: /}}\n  requires: {{allow_missing_or_failed: {{}}}}\n"
    ));
    assert_eq!(plain.config["rules"][0]["disabled"], true);
    assert!(!plain.report.is_lossy());
    let with_header = imported(&format!(
        "{PROVIDER}    forward_payload_header: x-jwt-payload\nrules:\n- match: {{prefix: /}}\n  requires: {{allow_missing_or_failed: {{}}}}\n"
    ));
    assert!(with_header.report.is_lossy());
}

#[test]
fn an_invalid_result_exits_1_with_the_filters_message() {
    let out = imported(
        "providers:\n  p:\n    issuer: https://idp.example.com\n    local_jwks: { inline_string: 'not a key set' }\n",
    );
    let report = finish(out, false);
    assert_eq!(report.code, exit::INVALID_CONFIG);
    assert!(
        report
            .stderr
            .contains("jwt-guard: invalid configuration: providers.p.jwks"),
        "{}",
        report.stderr
    );
}

#[test]
fn durations_and_base64() {
    assert_eq!(super::duration_ms(&json!("1.5s")), Some(1500));
    assert_eq!(
        super::duration_ms(&json!({"seconds": 2, "nanos": 1})),
        Some(2001)
    );
    assert_eq!(super::duration_ms(&Value::Null), None);
    assert_eq!(super::keys::base64_decode("aGk="), Some(b"hi".to_vec()));
}
