//! Table-driven: one configuration, many requests, the decision each must get.

use serde_json::{Value, json};

use super::decide::*;
use super::select::host_matches;
use super::verdict::*;
use crate::authn::Authenticator;
use crate::authn::cache::TokenCache;
use crate::authn::verify::PureRustVerifier;
use crate::config::Config;
use crate::identity::DRY_RUN_HEADER;
use crate::reason::{AuthFailure, Forbidden, Refusal};
use crate::request::Request;
use crate::request::headers;
use crate::testing::testutil;
use crate::token::extract::HeaderChange;

/// Decides with the pure-Rust verifier at the fixtures' fixed time, without a token cache.
fn run(config: &Config, request: &Request<'_>) -> Decision {
    run_cached(config, request, &mut TokenCache::new(0))
}

fn run_cached(config: &Config, request: &Request<'_>, cache: &mut TokenCache) -> Decision {
    verdict_cached(config, request, cache).decision
}

fn verdict_cached(config: &Config, request: &Request<'_>, cache: &mut TokenCache) -> Verdict {
    let clock = || Some(testutil::now());
    let mut auth = Authenticator {
        verifier: &PureRustVerifier,
        cache,
        clock: &clock,
        judged_by: None,
        replay: &crate::authn::dpop::MemoryReplayStore::default(),
        presented_with_dpop: false,
        dpop_nonce: None,
    };
    decide(config, request, &mut auth)
}

fn config_json() -> Value {
    json!({
        "realm": "api",
        "roles_claim": "roles",
        "geo": {"country_header": "x-geo-country", "country_claim": "country"},
        "providers": {
            "corp": {
                "issuer": testutil::issuer(),
                "audiences": ["orders"],
                "jwks": testutil::jwks(),
                "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
                "from_params": ["access_token"],
                "from_cookies": ["session"],
                "max_lifetime_seconds": 86400
            },
            "partner": {
                "issuer": "https://partner.example.com",
                "jwks": testutil::jwks(),
                "from_headers": [{"name": "x-partner-token"}],
                "forward": true
            }
        },
        "rules": [
            {"match": {"prefix": "/public"}, "allow_anonymous": true,
             "countries": {"deny": ["KP"]}},
            {"match": {"prefix": "/healthz"}, "disabled": true},
            {"match": {"prefix": "/anon-roles"}, "allow_anonymous": true,
             "roles": {"any": ["admin"]}},
            {"match": {"prefix": "/admin"}, "provider": "corp",
             "roles": {"any": ["admin", "ops"]}},
            {"match": {"prefix": "/ops"}, "provider": "corp",
             "roles": {"all": ["ops"]}},
            {"match": {"prefix": "/realm"}, "provider": "corp"},
            {"match": {"prefix": "/write"}, "provider": "corp",
             "scopes": {"all": ["orders:write", "orders:admin"]}},
            {"match": {"prefix": "/tenant"}, "provider": "corp",
             "claims": [{"name": "tenant", "values": ["acme", "globex"]},
                        {"name": "email_verified", "values": [true]}]},
            {"match": {"prefix": "/internal"}, "provider": "corp",
             "source_ips": {"allow": ["10.0.0.0/8", "2001:db8::/32"], "deny": ["10.9.0.0/16"]}},
            {"match": {"prefix": "/bound"}, "provider": "corp", "bind_ip_claim": "ip"},
            {"match": {"prefix": "/geo"}, "provider": "corp",
             "countries": {"allow": ["US", "CA"], "deny": ["KP"]}},
            {"match": {"prefix": "/dry"}, "provider": "corp", "dry_run": true,
             "roles": {"any": ["superuser"]}},
            {"match": {"prefix": "/named", "route_name": "orders-route"}, "provider": "corp"},
            {"match": {"prefix": "/partner"}, "provider": "partner"},
            {"match": {"prefix": "/", "methods": ["GET", "POST"], "hosts": ["api.example.com", "*.example.org"]},
             "provider": "corp"}
        ]
    })
}

fn config() -> Config {
    Config::from_json(config_json().to_string().as_bytes()).unwrap()
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    peer: Option<&'static str>,
    route: Option<&'static str>,
    route_rule: Option<&'static str>,
}

fn get(name: &'static str, path: &'static str) -> Case {
    Case {
        name,
        method: "GET",
        path,
        headers: vec![],
        peer: Some("10.1.2.3:5000"),
        route: None,
        route_rule: None,
    }
}

impl Case {
    fn bearer(mut self, token: &str) -> Case {
        self.headers.push((
            "authorization",
            format!("Bearer {}", testutil::token(token)),
        ));
        self
    }
    fn header(mut self, name: &'static str, value: &str) -> Case {
        self.headers.push((name, value.to_string()));
        self
    }
    fn peer(mut self, peer: &'static str) -> Case {
        self.peer = Some(peer);
        self
    }
    fn method(mut self, method: &'static str) -> Case {
        self.method = method;
        self
    }
    fn route(mut self, route: &'static str) -> Case {
        self.route = Some(route);
        self
    }
    fn bound_to(mut self, rule: &'static str) -> Case {
        self.route_rule = Some(rule);
        self
    }
    fn decide(&self, config: &Config) -> Decision {
        self.decide_cached(config, &mut TokenCache::new(0))
    }

    fn decide_cached(&self, config: &Config, cache: &mut TokenCache) -> Decision {
        self.verdict(config, cache).decision
    }

    fn verdict(&self, config: &Config, cache: &mut TokenCache) -> Verdict {
        let mut pairs: Vec<(&str, &str)> = vec![
            (":method", self.method),
            (":path", self.path),
            (":authority", "api.example.com"),
        ];
        pairs.extend(self.headers.iter().map(|(n, v)| (*n, v.as_str())));
        let h = headers(&pairs);
        let request = Request {
            headers: &h,
            peer_address: &|| self.peer.map(String::from),
            peer_certificate_digest: &|| None,
            route_name: self.route,
            route_rule: self.route_rule.map(str::as_bytes),
        };
        verdict_cached(config, &request, cache)
    }
}

fn outcome(decision: &Decision) -> String {
    match decision {
        Decision::Allow { dry_run: None, .. } => "allow".into(),
        Decision::Allow {
            dry_run: Some(r), ..
        } => format!("dry-run {} {}", r.status(), r.code()),
        Decision::Refuse(refused) => {
            format!("{} {}", refused.refusal.status(), refused.refusal.code())
        }
    }
}

#[test]
fn decision_table() {
    let config = config();
    for (case, expected) in table() {
        assert_eq!(outcome(&case.decide(&config)), expected, "{}", case.name);
    }
}

/// The whole table twice through one token cache: every answer is the one without the cache
/// (expired, forged and refused tokens included), and the second round is served from it.
#[test]
fn decision_table_with_the_token_cache() {
    let config = config();
    let mut cache = TokenCache::new(100);
    for round in 0..2 {
        for (case, expected) in table() {
            let decision = case.decide_cached(&config, &mut cache);
            assert_eq!(outcome(&decision), expected, "round {round}: {}", case.name);
        }
    }
    assert!(!cache.is_empty());
}

fn table() -> Vec<(Case, &'static str)> {
    vec![
        (get("anonymous public", "/public/x"), "allow"),
        (
            get("public with bad token", "/public/x").bearer("expired"),
            "401 expired",
        ),
        (
            get("public with valid token", "/public/x").bearer("valid_ES256"),
            "allow",
        ),
        (
            get("public from a denied country", "/public").header("x-geo-country", "kp"),
            "403 country_denied",
        ),
        (
            get("disabled ignores garbage", "/healthz").header("authorization", "Bearer garbage"),
            "allow",
        ),
        (
            get("anonymous but roles needed", "/anon-roles"),
            "401 missing",
        ),
        (get("no token", "/orders"), "401 missing"),
        (
            get("basic auth is no bearer token", "/orders").header("authorization", "Basic YTpi"),
            "401 missing",
        ),
        (get("valid", "/orders").bearer("valid_RS256"), "allow"),
        (get("expired", "/orders").bearer("expired"), "401 expired"),
        (
            get("bad signature", "/orders").bearer("bad_signature"),
            "401 bad_signature",
        ),
        (
            get("unknown kid", "/orders").bearer("unknown_kid"),
            "401 unknown_key",
        ),
        (
            get("garbage", "/orders").header("authorization", "Bearer a.b.c"),
            "401 malformed",
        ),
        (
            get("two tokens", "/orders?access_token=x").bearer("valid_ES256"),
            "401 malformed",
        ),
        (
            get("token in param", "/orders?access_token=T").header("x-unused", ""),
            "401 malformed",
        ),
        (
            get("huge", "/orders").header("authorization", &format!("Bearer {}", "a".repeat(9000))),
            "401 too_large",
        ),
        (
            get("wrong method", "/orders")
                .method("DELETE")
                .bearer("valid_ES256"),
            "403 no_matching_rule",
        ),
        (get("admin ok", "/admin").bearer("policy_admin"), "allow"),
        (
            get("admin missing role", "/admin").bearer("policy_user"),
            "403 missing_role",
        ),
        (
            get("nested roles are not top-level roles", "/ops").bearer("policy_admin"),
            "403 missing_role",
        ),
        (
            get("scopes", "/write").bearer("policy_admin"),
            "403 missing_scope",
        ),
        (get("claims ok", "/tenant").bearer("policy_admin"), "allow"),
        (
            get("claims mismatch", "/tenant").bearer("policy_user"),
            "403 claim_mismatch",
        ),
        (
            get("internal ok", "/internal").bearer("valid_ES256"),
            "allow",
        ),
        (
            get("internal v6 ok", "/internal")
                .bearer("valid_ES256")
                .peer("[2001:db8::7]:443"),
            "allow",
        ),
        (
            get("internal denied", "/internal")
                .bearer("valid_ES256")
                .peer("10.9.1.1:1"),
            "403 ip_denied",
        ),
        (
            get("internal outside", "/internal")
                .bearer("valid_ES256")
                .peer("127.0.0.1:1"),
            "403 ip_not_allowed",
        ),
        (
            get("internal expired still 401", "/internal")
                .bearer("expired")
                .peer("10.9.1.1:1"),
            "401 expired",
        ),
        (
            get("bound ok", "/bound")
                .bearer("policy_admin")
                .peer("127.0.0.9:1"),
            "allow",
        ),
        (
            get("bound elsewhere", "/bound")
                .bearer("policy_admin")
                .peer("10.1.2.3:1"),
            "403 ip_not_bound",
        ),
        (
            get("bound list", "/bound")
                .bearer("policy_user")
                .peer("[::1]:1"),
            "allow",
        ),
        (
            get("bound claim missing", "/bound").bearer("valid_ES256"),
            "403 ip_not_bound",
        ),
        (
            get("geo from header", "/geo")
                .bearer("valid_ES256")
                .header("x-geo-country", "us"),
            "allow",
        ),
        (
            get("geo header not allowed", "/geo")
                .bearer("policy_admin")
                .header("x-geo-country", "FR"),
            "403 country_not_allowed",
        ),
        (
            get("geo from claim", "/geo").bearer("policy_admin"),
            "allow",
        ),
        (
            get("geo unknown", "/geo").bearer("valid_ES256"),
            "403 country_unknown",
        ),
        (
            get("geo junk header", "/geo")
                .bearer("valid_ES256")
                .header("x-geo-country", "USA"),
            "403 country_unknown",
        ),
        (
            get("geo denied", "/geo")
                .bearer("valid_ES256")
                .header("x-geo-country", "KP"),
            "403 country_denied",
        ),
        (
            get("dry run", "/dry").bearer("valid_ES256"),
            "dry-run 403 missing_role",
        ),
        (get("dry run 401", "/dry"), "dry-run 401 missing"),
        (
            get("route name", "/named")
                .bearer("valid_ES256")
                .route("orders-route"),
            "allow",
        ),
        (
            get("route name differs", "/named")
                .bearer("valid_ES256")
                .route("other"),
            "allow",
        ),
        (
            get("no route name, falls to catch-all", "/named").bearer("valid_ES256"),
            "allow",
        ),
        (
            get("partner header", "/partner")
                .header("x-partner-token", &testutil::token("valid_ES256")),
            "401 bad_issuer",
        ),
        (
            get("partner ignores authorization", "/partner").bearer("valid_ES256"),
            "401 missing",
        ),
    ]
}

#[test]
fn hosts_compare_without_case_or_port() {
    let cases = [
        ("api.example.com", "API.Example.COM", true),
        ("*.example.org", "X.EXAMPLE.ORG", true),
        ("*.example.org", "example.org", false),
        ("*.example.org", "evil-example.org", false),
        ("api.example.com", "api.example.com.evil", false),
    ];
    for (pattern, host, expected) in cases {
        assert_eq!(
            host_matches(pattern, host.as_bytes()),
            expected,
            "{pattern} {host}"
        );
    }
}

#[test]
fn hosts_and_route_names_select_rules() {
    let mut json = config_json();
    json["rules"] = json!([
        {"match": {"route_name": "orders-route"}, "provider": "corp", "roles": {"any": ["nobody"]}},
        {"match": {"hosts": ["*.example.org"]}, "disabled": true},
    ]);
    let config = Config::from_json(json.to_string().as_bytes()).unwrap();
    let named = get("route", "/x")
        .bearer("valid_ES256")
        .route("orders-route");
    assert_eq!(outcome(&named.decide(&config)), "403 missing_role");
    assert_eq!(
        outcome(&get("other host", "/x").decide(&config)),
        "403 no_matching_rule"
    );
}

#[test]
fn route_metadata_binds_a_rule_by_name_whatever_its_order_and_match() {
    let mut json = config_json();
    json["rules"] = json!([
        {"match": {"prefix": "/"}, "disabled": true},
        {"name": "admins", "match": {"path": "/never"}, "provider": "corp",
         "roles": {"any": ["admin"]}},
        {"name": "open", "disabled": true},
    ]);
    let config = Config::from_json(json.to_string().as_bytes()).unwrap();
    let table = [
        // Without a binding the ordered match decides: the first rule lets everything through.
        (get("unbound", "/orders"), "allow"),
        (
            get("unbound, a path only a bound rule names", "/never"),
            "allow",
        ),
        (
            get("bound, no token", "/orders").bound_to("admins"),
            "401 missing",
        ),
        (
            get("bound, no role", "/orders")
                .bound_to("admins")
                .bearer("valid_ES256"),
            "403 missing_role",
        ),
        (
            get("bound to a disabled rule", "/x").bound_to("open"),
            "allow",
        ),
        (
            get("unknown name", "/orders").bound_to("admin"),
            "403 no_matching_rule",
        ),
        (
            get("empty name", "/orders").bound_to(""),
            "403 no_matching_rule",
        ),
        (
            get("case differs", "/orders").bound_to("Admins"),
            "403 no_matching_rule",
        ),
    ];
    for (case, expected) in table {
        assert_eq!(outcome(&case.decide(&config)), expected, "{}", case.name);
    }
    let unknown = get("unknown", "/")
        .bound_to("nope")
        .verdict(&config, &mut TokenCache::new(0));
    assert!(unknown.unknown_route_rule && unknown.rule.is_none());
    let known = get("known", "/")
        .bound_to("open")
        .verdict(&config, &mut TokenCache::new(0));
    assert!(!known.unknown_route_rule && known.rule == Some(2));
}

#[test]
fn the_verdict_names_rule_provider_and_verified_claims() {
    let config = config();
    let facts = |case: Case| {
        let verdict = case.verdict(&config, &mut TokenCache::new(0));
        let provider = verdict.provider.map(|i| config.providers[i].name.clone());
        let sub = verdict
            .claims
            .as_ref()
            .and_then(|c| c.get("sub").and_then(|s| s.as_str()).map(String::from));
        let rule = verdict.rule.map(|i| config.rules[i].label.clone());
        (outcome(&verdict.decision), rule, provider, sub)
    };
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        facts(get("allowed", "/realm").bearer("valid_ES256")),
        ("allow".into(), some("rule_5"), some("corp"), some("alice"))
    );
    assert_eq!(
        facts(get("403 keeps who", "/admin").bearer("valid_ES256")),
        (
            "403 missing_role".into(),
            some("rule_3"),
            some("corp"),
            some("alice")
        )
    );
    assert_eq!(
        facts(get("401 names the provider, never claims", "/realm").bearer("expired")),
        ("401 expired".into(), some("rule_5"), some("corp"), None)
    );
    assert_eq!(
        facts(get("no token", "/realm")),
        ("401 missing".into(), some("rule_5"), None, None)
    );
    assert_eq!(
        facts(get("no rule", "/x").method("PUT")),
        ("403 no_matching_rule".into(), None, None, None)
    );
}

#[test]
fn forward_false_removes_the_token_and_spoofed_dry_run_header() {
    let config = config();
    let decision = get("valid", "/orders?a=1&access_token=TOKEN")
        .header("x-jwt-guard-dry-run", "200 fake")
        .decide(&Config::from_json(config_json().to_string().as_bytes()).unwrap());
    assert_eq!(outcome(&decision), "401 malformed");
    let token = testutil::token("valid_ES256");
    let path: &'static str =
        Box::leak(format!("/orders?a=1&access_token={token}").into_boxed_str());
    let decision = get("param", path)
        .header("cookie", &format!("theme=dark; session={token}"))
        .header("x-jwt-guard-dry-run", "200 fake")
        .decide(&config);
    assert_eq!(
        decision,
        Decision::Allow {
            changes: vec![
                HeaderChange::Remove(DRY_RUN_HEADER.into()),
                HeaderChange::Set(":path".into(), "/orders?a=1".into()),
                HeaderChange::Set("cookie".into(), "theme=dark".into()),
            ],
            dry_run: None,
        }
    );
}

#[test]
fn forward_true_keeps_the_token() {
    let mut json = config_json();
    json["providers"]["partner"]["issuer"] = json!(testutil::issuer());
    let config = Config::from_json(json.to_string().as_bytes()).unwrap();
    let decision = get("partner", "/partner")
        .header("x-partner-token", &testutil::token("valid_ES256"))
        .decide(&config);
    assert_eq!(
        decision,
        Decision::Allow {
            changes: vec![],
            dry_run: None
        }
    );
}

#[test]
fn global_dry_run_covers_unmatched_requests() {
    let mut json = config_json();
    json["dry_run"] = json!(true);
    let config = Config::from_json(json.to_string().as_bytes()).unwrap();
    let decision = get("unmatched", "/x").method("PUT").decide(&config);
    assert_eq!(
        decision,
        Decision::Allow {
            changes: vec![HeaderChange::Set(
                DRY_RUN_HEADER.into(),
                "403 no_matching_rule".into()
            )],
            dry_run: Some(Refusal::Forbidden(Forbidden::NoMatchingRule)),
        }
    );
}

#[test]
fn responses_follow_rfc_6750() {
    let response = |refusal, hint: Option<&str>| {
        Refused {
            refusal,
            scope_hint: hint.map(String::from),
            dpop: None,
            custom: None,
        }
        .response("api")
    };
    let missing = response(Refusal::Unauthorized(AuthFailure::Missing), None);
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.headers,
        vec![
            ("content-type", "application/json".to_string()),
            ("www-authenticate", "Bearer realm=\"api\"".to_string())
        ]
    );
    assert_eq!(
        missing.body,
        r#"{"error":"invalid_token","reason":"missing","status":401}"#
    );
    let expired = response(Refusal::Unauthorized(AuthFailure::Expired), None);
    assert_eq!(
        expired.headers[1].1,
        "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"the token has expired\""
    );
    let scope = response(Refusal::Forbidden(Forbidden::MissingScope), Some("a b"));
    assert_eq!(scope.status, 403);
    assert!(
        scope.headers[1].1.ends_with(", scope=\"a b\""),
        "{:?}",
        scope.headers
    );
    assert_eq!(
        scope.body,
        r#"{"error":"insufficient_scope","reason":"missing_scope","status":403}"#
    );
    let ip = response(Refusal::Forbidden(Forbidden::IpDenied), None);
    assert_eq!(ip.headers.len(), 1);
    assert_eq!(
        ip.body,
        r#"{"error":"access_denied","reason":"ip_denied","status":403}"#
    );
}

#[test]
fn every_reason_description_is_a_valid_quoted_string() {
    let texts = AuthFailure::ALL
        .iter()
        .map(|f| f.description())
        .chain(Forbidden::ALL.iter().map(|f| f.description()));
    for text in texts {
        assert!(
            text.bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'),
            "{text}"
        );
    }
}

fn decide_with(config: &Config, pairs: &[(&str, &str)], token: Option<&str>) -> String {
    let mut all: Vec<(&str, String)> = pairs.iter().map(|(n, v)| (*n, v.to_string())).collect();
    if let Some(name) = token {
        all.push(("authorization", format!("Bearer {}", testutil::token(name))));
    }
    let borrowed: Vec<(&str, &str)> = all.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let h = headers(&borrowed);
    outcome(&run(config, &Request::bare(&h)))
}

#[test]
fn a_host_rule_cannot_be_dodged() {
    let mut json = config_json();
    json["rules"] = json!([
        {"match": {"hosts": ["admin.example.com"]}, "provider": "corp", "roles": {"any": ["nobody"]}},
        {"match": {"prefix": "/"}, "allow_anonymous": true},
    ]);
    let config = Config::from_json(json.to_string().as_bytes()).unwrap();
    let cases = [
        ("admin.example.com", "401 missing"),
        ("ADMIN.example.com.", "401 missing"),
        ("admin.example.com.:8443", "401 missing"),
        ("[admin.example.com]", "401 missing"),
        // Envoy's join of two Host lines: ambiguous, so no rule is chosen.
        (
            "public.example.com,admin.example.com",
            "403 no_matching_rule",
        ),
        (
            "admin.example.com,public.example.com",
            "403 no_matching_rule",
        ),
        ("public.example.com", "allow"),
    ];
    for (authority, expected) in cases {
        let pairs = [
            (":method", "GET"),
            (":path", "/x"),
            (":authority", authority),
        ];
        assert_eq!(decide_with(&config, &pairs, None), expected, "{authority}");
    }
    // Without any host rule, a comma in the host decides nothing.
    json["rules"] = json!([{"match": {"prefix": "/"}, "allow_anonymous": true}]);
    let config = Config::from_json(json.to_string().as_bytes()).unwrap();
    let pairs = [
        (":method", "GET"),
        (":path", "/public"),
        (":authority", "a,b"),
    ];
    assert_eq!(decide_with(&config, &pairs, None), "allow");
}

#[test]
fn several_providers_with_one_issuer_are_each_tried() {
    let mut json = config_json();
    let issuer = testutil::issuer();
    json["providers"] = json!({
        "billing": {"issuer": issuer, "audiences": ["payments"], "jwks": testutil::jwks()},
        "orders": {"issuer": issuer, "audiences": ["orders"], "jwks": testutil::jwks()},
        "other": {"issuer": "https://other.example.com", "jwks": testutil::jwks()},
    });
    json["rules"] = json!([
        {"match": {"prefix": "/both"}, "providers": ["billing", "orders"]},
        {"match": {"prefix": "/billing"}, "providers": ["billing", "other"]},
    ]);
    let config = Config::from_json(json.to_string().as_bytes()).unwrap();
    let request = |path: &'static str| [(":method", "GET"), (":path", path)];
    let cases = [
        ("/both", "valid_ES256", "allow"),
        ("/both", "valid_RS256", "allow"),
        // Neither accepts it: the first candidate's reason.
        ("/both", "bad_audience", "401 bad_audience"),
        ("/both", "bad_signature", "401 bad_signature"),
        ("/both", "expired", "401 expired"),
        ("/billing", "valid_ES256", "401 bad_audience"),
        // No provider names this issuer: the first one judges it.
        ("/billing", "bad_issuer", "401 bad_issuer"),
    ];
    for (path, token, expected) in cases {
        assert_eq!(
            decide_with(&config, &request(path), Some(token)),
            expected,
            "{path} {token}"
        );
    }
}

#[test]
fn a_garbled_country_header_is_never_read_as_absent() {
    let config = config();
    let cases = [
        (None, "allow"),
        (Some("US"), "allow"),
        (Some(" us "), "allow"),
        (Some("KP"), "403 country_denied"),
        (Some("U S"), "403 country_unknown"),
        (Some("USA"), "403 country_unknown"),
        (Some(""), "403 country_unknown"),
    ];
    for (country, expected) in cases {
        let mut pairs = vec![(":method", "GET"), (":path", "/public")];
        if let Some(country) = country {
            pairs.push(("x-geo-country", country));
        }
        assert_eq!(decide_with(&config, &pairs, None), expected, "{country:?}");
    }
    let twice = [
        (":path", "/public"),
        ("x-geo-country", "US"),
        ("x-geo-country", "KP"),
    ];
    assert_eq!(decide_with(&config, &twice, None), "403 country_unknown");
    let h = vec![
        (":path".to_string(), b"/public".to_vec()),
        ("x-geo-country".to_string(), b"U\xff".to_vec()),
    ];
    let decision = run(&config, &Request::bare(&h));
    assert_eq!(outcome(&decision), "403 country_unknown");
}

#[test]
fn identity_headers_are_sent_upstream_and_never_taken_from_the_client() {
    let mut json = config_json();
    json["providers"]["corp"]["claim_to_headers"] = json!([
        {"claim": "sub", "header": "X-Sub"},
        {"claim": "roles", "header": "x-roles"},
        {"claim": "no_such_claim", "header": "x-none"},
    ]);
    json["providers"]["corp"]["forward_payload_header"] = json!("x-jwt-payload");
    let config = Config::from_json(json.to_string().as_bytes()).unwrap();
    assert_eq!(
        config.identity_headers,
        ["x-sub", "x-roles", "x-none", "x-jwt-payload"]
    );
    let spoofed = |case: Case| {
        case.header("x-sub", "mallory")
            .header("x-none", "forged")
            .header("x-jwt-payload", "forged")
    };
    let token = testutil::token("policy_admin");
    let payload = token.split('.').nth(1).unwrap().as_bytes().to_vec();
    let Decision::Allow { changes, .. } =
        spoofed(get("admin", "/admin").bearer("policy_admin")).decide(&config)
    else {
        panic!("not allowed")
    };
    let remove = |n: &str| HeaderChange::Remove(n.into());
    assert_eq!(
        &changes[..3],
        &[remove("x-sub"), remove("x-none"), remove("x-jwt-payload")]
    );
    let set_names: Vec<&str> = changes
        .iter()
        .filter_map(|c| match c {
            HeaderChange::Set(name, _) => Some(name.as_str()),
            HeaderChange::Remove(_) => None,
        })
        .collect();
    assert_eq!(set_names, ["x-sub", "x-roles", "x-jwt-payload"]);
    assert!(changes.contains(&HeaderChange::Set("x-jwt-payload".into(), payload)));
    // Disabled and anonymous rules: the client's copies go, nothing is added.
    for case in [get("disabled", "/healthz"), get("anonymous", "/public/x")] {
        let Decision::Allow { changes, .. } = spoofed(case).decide(&config) else {
            panic!("not allowed")
        };
        assert_eq!(
            changes,
            [remove("x-sub"), remove("x-none"), remove("x-jwt-payload")]
        );
    }
}

#[test]
fn identity_headers_are_checked_in_configuration() {
    let cases = [
        (
            json!([{"claim": "sub", "header": "authorization"}]),
            "providers.corp.claim_to_headers[0].header",
        ),
        (
            json!([{"claim": "sub", "header": "bad header"}]),
            "providers.corp.claim_to_headers[0].header",
        ),
        (
            json!([{"claim": "a..b", "header": "x-a"}]),
            "providers.corp.claim_to_headers[0].claim",
        ),
        (
            json!([{"claim": "sub", "header": "x-a"}, {"claim": "iss", "header": "X-A"}]),
            "providers.corp.claim_to_headers[1].header",
        ),
        (
            json!([{"claim": "sub", "header": "x-geo-country"}]),
            "providers.corp.claim_to_headers",
        ),
        (
            json!([{"claim": "sub", "header": "x-partner-token"}]),
            "providers.corp.claim_to_headers",
        ),
        (json!([{"claim": "sub", "header": "x-sub"}]), ""),
    ];
    for (entries, field) in cases {
        let mut json = config_json();
        json["providers"]["corp"]["claim_to_headers"] = entries.clone();
        let result = Config::from_json(json.to_string().as_bytes());
        match field {
            "" => assert!(result.is_ok(), "{entries}"),
            field => assert_eq!(result.unwrap_err().field, field, "{entries}"),
        }
    }
}

// Issue #19: deny rules, fall-through, negation, principals, headers, custom refusals.

fn reach_config() -> Config {
    let mut json = config_json();
    json["rules"] = json!([
        // Deny rules, in order.
        {"name": "banned", "action": "deny", "match": {"prefix": "/api"},
         "headers": [{"name": "x-banned", "present": true}]},
        {"name": "hide-admin", "action": "deny", "match": {"prefix": "/admin"},
         "roles": {"none": ["admin"]}, "refusal": {"status": 404, "body": "not found"}},
        {"name": "kp", "action": "deny", "match": {"prefix": "/api/geo"},
         "countries": {"allow": ["KP"]}},
        {"name": "no-ip", "action": "deny", "match": {"prefix": "/api/net"},
         "source_ips": {"allow": ["10.9.0.0/16"]}},
        {"name": "health-banned", "action": "deny", "match": {"prefix": "/healthz"},
         "headers": [{"name": "x-banned", "present": true}]},
        // Allow rules.
        {"name": "healthz", "match": {"prefix": "/healthz"}, "disabled": true},
        {"name": "admin", "match": {"prefix": "/admin"}, "provider": "corp",
         "roles": {"any": ["admin"]},
         "refusal": {"status": 404, "body": "not found", "for": ["forbidden", "unauthorized"]}},
        {"name": "ro", "match": {"prefix": "/api/ro"}, "provider": "corp",
         "scopes": {"none": ["orders:write"]}},
        {"name": "not-admin", "match": {"prefix": "/api/users"}, "provider": "corp",
         "roles": {"none": ["admin"]}},
        {"name": "not-initech", "match": {"prefix": "/api/tenants"}, "provider": "corp",
         "claims": [{"name": "tenant", "not_values": ["initech"]}]},
        {"name": "idp", "match": {"prefix": "/api/idp"}, "provider": "corp",
         "principals": {"any": ["https://idp.example.com/*"], "none": ["*/mallory"]}},
        {"name": "not-alice", "match": {"prefix": "/api/not-alice"}, "provider": "corp",
         "principals": {"none": ["*/alice"]}},
        {"name": "anon-principal", "match": {"prefix": "/anon/any"}, "allow_anonymous": true,
         "principals": {"any": ["*"]}},
        {"name": "anon-none", "match": {"prefix": "/anon/none"}, "allow_anonymous": true,
         "principals": {"none": ["*/alice"]}},
        {"name": "hdr", "match": {"prefix": "/api/hdr"}, "provider": "corp",
         "headers": [{"name": "x-tenant", "values": ["acme*"], "not_values": ["*-test"]}]},
        {"name": "ft-admin", "match": {"prefix": "/ft"}, "provider": "corp",
         "roles": {"any": ["admin"]}, "fall_through": true},
        {"name": "ft-read", "match": {"prefix": "/ft/read"}, "provider": "corp",
         "roles": {"any": ["user"]}},
        {"name": "ft-partner", "match": {"prefix": "/ft"}, "provider": "partner"},
        {"name": "fa-admin", "match": {"prefix": "/fa"}, "allow_anonymous": true,
         "roles": {"any": ["admin"]}, "fall_through": true,
         "refusal": {"status": 401, "for": ["unauthorized"], "body": "log in"}},
        {"name": "fa-public", "match": {"prefix": "/fa/public"}, "allow_anonymous": true},
        {"name": "dry", "match": {"prefix": "/api/dry"}, "provider": "corp", "dry_run": true,
         "roles": {"any": ["nobody"]}},
        {"name": "api", "match": {"prefix": "/api"}, "provider": "corp"}
    ]);
    Config::from_json(json.to_string().as_bytes()).unwrap()
}

/// Each case: the outcome, and the rule the verdict names (the deciding one).
#[test]
fn policy_reach_decision_table() {
    let config = reach_config();
    let cases: Vec<(Case, &str, &str)> = vec![
        // Deny rules come after authentication: a bad or missing token is still a 401.
        (
            get("banned header", "/api/x")
                .bearer("valid_ES256")
                .header("x-banned", "1"),
            "403 denied",
            "banned",
        ),
        (
            get("banned but expired", "/api/x")
                .bearer("expired")
                .header("x-banned", "1"),
            "401 expired",
            "api",
        ),
        (
            get("banned but anonymous", "/api/x").header("x-banned", "1"),
            "401 missing",
            "api",
        ),
        (
            get("not banned", "/api/x").bearer("valid_ES256"),
            "allow",
            "api",
        ),
        // A deny rule on identity, with its own refusal; the allow rule hides its 401 too.
        (
            get("admin as admin", "/admin").bearer("policy_admin"),
            "allow",
            "admin",
        ),
        (
            get("admin as user", "/admin").bearer("policy_user"),
            "403 denied",
            "hide-admin",
        ),
        (get("admin anonymous", "/admin"), "401 missing", "admin"),
        // Unknown is a deny (fail closed): no country, no client address.
        (
            get("geo unknown", "/api/geo").bearer("valid_ES256"),
            "403 denied",
            "kp",
        ),
        (
            get("geo KP", "/api/geo")
                .bearer("valid_ES256")
                .header("x-geo-country", "KP"),
            "403 denied",
            "kp",
        ),
        (
            get("geo US", "/api/geo")
                .bearer("valid_ES256")
                .header("x-geo-country", "US"),
            "allow",
            "api",
        ),
        (
            get("geo twice", "/api/geo")
                .bearer("valid_ES256")
                .header("x-geo-country", "US")
                .header("x-geo-country", "US"),
            "403 denied",
            "kp",
        ),
        (
            get("net inside", "/api/net")
                .bearer("valid_ES256")
                .peer("10.9.1.1:1"),
            "403 denied",
            "no-ip",
        ),
        (
            get("net outside", "/api/net")
                .bearer("valid_ES256")
                .peer("10.1.1.1:1"),
            "allow",
            "api",
        ),
        (
            get("net unknown", "/api/net")
                .bearer("valid_ES256")
                .peer("nonsense"),
            "403 denied",
            "no-ip",
        ),
        // Deny rules apply to a disabled rule's requests, without identity.
        (get("healthz", "/healthz"), "allow", "healthz"),
        (
            get("healthz banned", "/healthz").header("x-banned", "1"),
            "403 denied",
            "health-banned",
        ),
        // Negation.
        (
            get("scopes none", "/api/ro").bearer("policy_admin"),
            "403 forbidden_scope",
            "ro",
        ),
        (
            get("scopes none ok", "/api/ro").bearer("policy_user"),
            "allow",
            "ro",
        ),
        (
            get("roles none", "/api/users").bearer("policy_admin"),
            "403 forbidden_role",
            "not-admin",
        ),
        (
            get("roles none ok", "/api/users").bearer("policy_user"),
            "allow",
            "not-admin",
        ),
        (
            get("not_values", "/api/tenants").bearer("policy_user"),
            "403 claim_mismatch",
            "not-initech",
        ),
        (
            get("not_values ok", "/api/tenants").bearer("policy_admin"),
            "allow",
            "not-initech",
        ),
        (
            get("not_values missing claim", "/api/tenants").bearer("valid_ES256"),
            "allow",
            "not-initech",
        ),
        // Principals.
        (
            get("principal any", "/api/idp").bearer("valid_ES256"),
            "allow",
            "idp",
        ),
        (
            get("principal none", "/api/not-alice").bearer("valid_ES256"),
            "403 principal_mismatch",
            "not-alice",
        ),
        (
            get("anonymous principal any", "/anon/any"),
            "401 missing",
            "anon-principal",
        ),
        (
            get("anonymous principal none", "/anon/none"),
            "allow",
            "anon-none",
        ),
        (
            get("token principal none", "/anon/none").bearer("valid_ES256"),
            "403 principal_mismatch",
            "anon-none",
        ),
        // Headers.
        (
            get("header ok", "/api/hdr")
                .bearer("valid_ES256")
                .header("x-tenant", "acme-1"),
            "allow",
            "hdr",
        ),
        (
            get("header missing", "/api/hdr").bearer("valid_ES256"),
            "403 header_mismatch",
            "hdr",
        ),
        (
            get("header other", "/api/hdr")
                .bearer("valid_ES256")
                .header("x-tenant", "globex"),
            "403 header_mismatch",
            "hdr",
        ),
        (
            get("header not_values", "/api/hdr")
                .bearer("valid_ES256")
                .header("x-tenant", "acme-test"),
            "403 header_mismatch",
            "hdr",
        ),
        (
            get("header twice", "/api/hdr")
                .bearer("valid_ES256")
                .header("x-tenant", "acme-1")
                .header("x-tenant", "acme-2"),
            "403 header_ambiguous",
            "hdr",
        ),
        // Fall-through: the next fitting allow rule with the same authentication.
        (
            get("ft admin", "/ft/read").bearer("policy_admin"),
            "allow",
            "ft-admin",
        ),
        (
            get("ft user reads", "/ft/read").bearer("policy_user"),
            "allow",
            "ft-read",
        ),
        (
            get(
                "ft user writes: next rule authenticates differently",
                "/ft/write",
            )
            .bearer("policy_user"),
            "403 missing_role",
            "ft-admin",
        ),
        (
            get("ft bad token never falls", "/ft/read").bearer("expired"),
            "401 expired",
            "ft-admin",
        ),
        (
            get("ft missing token never falls", "/ft/read"),
            "401 missing",
            "ft-admin",
        ),
        (
            get("fa anonymous falls to public", "/fa/public"),
            "allow",
            "fa-public",
        ),
        (
            get("fa user falls to public", "/fa/public").bearer("policy_user"),
            "allow",
            "fa-public",
        ),
        (
            get("fa anonymous, nothing after", "/fa/other"),
            "401 missing",
            "fa-admin",
        ),
        (
            get("fa bad token", "/fa/public").bearer("expired"),
            "401 expired",
            "fa-admin",
        ),
        // A route-bound rule falls through in rule order after it.
        (
            get("bound ft", "/ft/read")
                .bearer("policy_user")
                .bound_to("ft-admin"),
            "allow",
            "ft-read",
        ),
        (
            get("bound ft, nothing fits after", "/x")
                .bearer("policy_user")
                .bound_to("ft-admin"),
            "403 missing_role",
            "ft-admin",
        ),
        // Dry run is the deciding rule's: a deny rule has none.
        (
            get("dry", "/api/dry").bearer("valid_ES256"),
            "dry-run 403 missing_role",
            "dry",
        ),
        (
            get("dry but denied", "/api/dry")
                .bearer("valid_ES256")
                .header("x-banned", "1"),
            "403 denied",
            "banned",
        ),
        // A deny rule is never selected, and cannot be bound by a route.
        (
            get("bound to deny", "/x")
                .bearer("valid_ES256")
                .bound_to("banned"),
            "403 no_matching_rule",
            "-",
        ),
        (
            get("bound to admin", "/x")
                .bearer("policy_user")
                .bound_to("admin"),
            "403 missing_role",
            "-",
        ),
    ];
    for (case, expected, rule) in cases {
        let verdict = case.verdict(&config, &mut TokenCache::new(0));
        assert_eq!(outcome(&verdict.decision), expected, "{}", case.name);
        let label = verdict
            .rule
            .and_then(|i| config.rules.get(i))
            .map_or("-", |r| r.label.as_str());
        if rule != "-" {
            assert_eq!(label, rule, "{}", case.name);
        }
    }
}

fn response_of(config: &Config, case: Case) -> LocalResponse {
    match case.decide(config) {
        Decision::Refuse(refused) => refused.response("api"),
        other => panic!("{}: not refused: {other:?}", case.name),
    }
}

/// Custom refusals: the status and body sent; challenges only where their status still is;
/// the standard body keeps its reason.
#[test]
fn custom_refusals_keep_challenges_honest() {
    let config = reach_config();
    let header = |r: &LocalResponse, name: &str| {
        r.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    // 404 for a deny rule's 403, and for the admin rule's 401: no challenge either way.
    for case in [
        get("denied", "/admin").bearer("policy_user"),
        get("anonymous", "/admin"),
        get("expired", "/admin").bearer("expired"),
    ] {
        let name = case.name;
        let r = response_of(&config, case);
        assert_eq!((r.status, r.body.as_str()), (404, "not found"), "{name}");
        assert_eq!(header(&r, "content-type"), ["text/plain"], "{name}");
        assert!(header(&r, "www-authenticate").is_empty(), "{name}");
    }
    // A 401 still sent keeps its challenge; a custom body replaces the standard one.
    let r = response_of(&config, get("fa", "/fa/other"));
    assert_eq!((r.status, r.body.as_str()), (401, "log in"));
    assert_eq!(header(&r, "www-authenticate"), ["Bearer realm=\"api\""]);
    // Its 403s are its own: not covered, standard.
    let r = response_of(&config, get("fa user", "/fa/other").bearer("policy_user"));
    assert_eq!(r.status, 403);
    assert!(header(&r, "www-authenticate")[0].contains("insufficient_scope"));
    // A 403 kept as 403 keeps insufficient_scope; the standard body keeps the reason.
    let mut json = config_json();
    json["rules"] = json!([
        {"match": {"prefix": "/"}, "provider": "corp", "roles": {"any": ["nobody"]},
         "refusal": {"status": 403}},
        {"name": "teapot", "provider": "corp", "roles": {"any": ["nobody"]},
         "refusal": {"status": 418}}
    ]);
    let config = Config::from_json(json.to_string().as_bytes()).unwrap();
    let r = response_of(&config, get("403", "/x").bearer("valid_ES256"));
    assert_eq!(r.status, 403);
    assert!(header(&r, "www-authenticate")[0].contains("insufficient_scope"));
    assert_eq!(
        r.body,
        r#"{"error":"insufficient_scope","reason":"missing_role","status":403}"#
    );
    let r = response_of(
        &config,
        get("418", "/x").bearer("valid_ES256").bound_to("teapot"),
    );
    assert_eq!(r.status, 418);
    assert!(header(&r, "www-authenticate").is_empty());
    assert_eq!(header(&r, "content-type"), ["application/json"]);
    assert_eq!(
        r.body,
        r#"{"error":"insufficient_scope","reason":"missing_role","status":418}"#
    );
}

/// Counters and outcomes name the deny rule that decided, under the new reason.
#[test]
fn deny_rules_are_counted_as_the_rule_that_decided() {
    let config = reach_config();
    let plan = super::counters::CounterPlan::new(&config);
    let verdict = get("banned", "/api/x")
        .bearer("valid_ES256")
        .header("x-banned", "1")
        .verdict(&config, &mut TokenCache::new(0));
    let names: Vec<&str> = plan
        .of(&verdict)
        .map(|i| plan.names()[i].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "jwt_guard.refused.403.denied",
            "jwt_guard.rule.banned.refused.403.denied",
            "jwt_guard.provider.corp.refused.403.denied"
        ]
    );
    let outcome = super::outcome::render(&config, &verdict);
    assert!(
        outcome.contains(r#""reason":"denied","rule":"banned","status":403"#),
        "{outcome}"
    );
}
