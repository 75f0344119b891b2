//! Table-driven, on the fixtures' fixed clock: each request's steps, and the same verdict with
//! and without a trace.

use serde_json::json;

use super::*;
use crate::authn::Authenticator;
use crate::authn::cache::TokenCache;
use crate::authn::verify::PureRustVerifier;
use crate::config::Config;
use crate::decision::{Decision, Verdict, decide, decide_traced};
use crate::request::{Request, headers};
use crate::testing::testutil;

fn config() -> Config {
    let json = json!({
        "geo": {"country_header": "x-geo-country"},
        "providers": {
            "corp": {"issuer": testutil::issuer(), "audiences": ["orders"], "jwks": testutil::jwks(),
                     "from_params": ["access_token"], "max_lifetime_seconds": 86400},
            "pay": {"issuer": testutil::issuer(), "audiences": ["payments"], "jwks": testutil::jwks()}
        },
        "rules": [
            {"name": "public", "match": {"prefix": "/public"}, "allow_anonymous": true},
            {"match": {"prefix": "/healthz"}, "disabled": true},
            {"name": "orders", "match": {"prefix": "/orders"}, "providers": ["pay", "corp"]},
            {"match": {"prefix": "/admin"}, "provider": "corp",
             "source_ips": {"allow": ["10.0.0.0/8"]}, "countries": {"allow": ["US"]},
             "roles": {"any": ["admin"]}, "scopes": {"all": ["orders:write"]},
             "claims": [{"name": "tenant", "values": ["acme"]}]},
            {"match": {"prefix": "/bound"}, "provider": "corp", "bind_ip_claim": "ip"},
            {"match": {"hosts": ["api.example.com"]}, "provider": "corp"},
            {"name": "routes-only", "provider": "corp"}
        ]
    });
    Config::from_json(json.to_string().as_bytes()).unwrap()
}

struct Case {
    path: &'static str,
    host: &'static str,
    headers: Vec<(&'static str, String)>,
    peer: Option<&'static str>,
    route_rule: Option<&'static str>,
}

fn get(path: &'static str) -> Case {
    Case {
        path,
        host: "api.example.com",
        headers: vec![],
        peer: Some("10.1.2.3:5000"),
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
    fn host(mut self, host: &'static str) -> Case {
        self.host = host;
        self
    }
    fn peer(mut self, peer: &'static str) -> Case {
        self.peer = Some(peer);
        self
    }
    fn bound_to(mut self, rule: &'static str) -> Case {
        self.route_rule = Some(rule);
        self
    }

    /// The verdict and steps with a trace, and the verdict without one.
    fn run(&self, config: &Config, cache: &mut TokenCache) -> (Verdict, Vec<Step>, Verdict) {
        let mut pairs: Vec<(&str, &str)> = vec![
            (":method", "GET"),
            (":path", self.path),
            (":authority", self.host),
        ];
        pairs.extend(self.headers.iter().map(|(n, v)| (*n, v.as_str())));
        let h = headers(&pairs);
        let request = Request {
            headers: &h,
            peer_address: &|| self.peer.map(String::from),
            peer_certificate_digest: &|| None,
            route_name: None,
            route_rule: self.route_rule.map(str::as_bytes),
        };
        let clock = || Some(testutil::now());
        let mut steps = Vec::new();
        let traced = decide_traced(
            config,
            &request,
            &mut Authenticator {
                verifier: &PureRustVerifier,
                cache,
                clock: &clock,
                judged_by: None,
                replay: &crate::authn::dpop::MemoryReplayStore::default(),
                presented_with_dpop: false,
                dpop_nonce: None,
            },
            &mut steps,
        );
        let plain = decide(
            config,
            &request,
            &mut Authenticator {
                verifier: &PureRustVerifier,
                cache: &mut TokenCache::new(0),
                clock: &clock,
                judged_by: None,
                replay: &crate::authn::dpop::MemoryReplayStore::default(),
                presented_with_dpop: false,
                dpop_nonce: None,
            },
        );
        (traced, steps, plain)
    }
}

/// A step in a few words, with provider names.
fn brief(config: &Config, step: &Step) -> String {
    let name = |index: &usize| config.providers[*index].name.clone();
    let result = |result: &Result<(), crate::reason::AuthFailure>| match result {
        Ok(()) => "ok".to_string(),
        Err(failure) => failure.code().to_string(),
    };
    match step {
        Step::Rule {
            selection,
            bound,
            ambiguous_host,
        } => match (selection, bound) {
            (Selection::Rule(index), Some(name)) => format!("rule {index} bound as {name}"),
            (Selection::Rule(index), None) => format!("rule {index}"),
            (Selection::UnknownRouteRule, Some(name)) => format!("unknown rule {name}"),
            _ if *ambiguous_host => "no rule: ambiguous host".into(),
            _ => "no rule".into(),
        },
        Step::Disabled => "disabled".into(),
        Step::NoToken => "no token".into(),
        Step::TokenFound { token, locations } => {
            assert!(!token.is_empty());
            let places: Vec<String> = locations
                .iter()
                .map(|location| match location {
                    TokenLocation::Header { name, .. } => name.clone(),
                    TokenLocation::Param(name) => format!("?{name}"),
                    TokenLocation::Cookie(name) => format!("cookie {name}"),
                })
                .collect();
            format!("token in {}", places.join(" "))
        }
        Step::TokenUnusable(failure) => format!("unusable {}", failure.code()),
        Step::Candidates(candidates) => format!(
            "candidates {}",
            candidates.iter().map(name).collect::<Vec<_>>().join(" ")
        ),
        Step::CacheHit { provider } => format!("cache hit {}", name(provider)),
        Step::Parsed(outcome) => format!("parsed {}", result(outcome)),
        Step::Provider {
            provider,
            names_issuer,
        } => format!(
            "provider {}{}",
            name(provider),
            if *names_issuer { "" } else { " (first)" }
        ),
        Step::Key { kid, alg, valid } => format!(
            "key {} {} {}",
            kid.as_deref().unwrap_or("-"),
            alg.name(),
            if *valid { "valid" } else { "invalid" }
        ),
        Step::Signature(outcome) => format!("signature {}", result(outcome)),
        Step::Claim { check, result: r } => {
            format!("{} {}", format!("{check:?}").to_lowercase(), result(r))
        }
        Step::ProviderResult {
            provider,
            result: r,
        } => format!("{}: {}", name(provider), result(r)),
        Step::Binding(outcome) => format!("binding {}", result(outcome)),
        Step::ClientIp(ip) => format!("ip {}", ip.map_or("-".into(), |ip| ip.to_string())),
        Step::Country(country) => format!("country {country:?}"),
        Step::Policy { check, result, .. } => format!(
            "{check:?} {}",
            match result {
                Judgement::Holds => "ok",
                Judgement::Fails(forbidden) => forbidden.code(),
                Judgement::Unknown(forbidden) => forbidden.code(),
            }
        ),
        Step::DenyRule {
            rule,
            applies,
            denied,
        } => format!("deny {rule} applies {applies} denied {denied}"),
        Step::FallThrough { from, to, why } => format!("fall_through {from} -> {to:?} {why}"),
    }
}

fn outcome(decision: &Decision) -> String {
    match decision {
        Decision::Allow { dry_run: None, .. } => "allow".into(),
        Decision::Allow {
            dry_run: Some(r), ..
        } => format!("dry-run {}", r.code()),
        Decision::Refuse(refused) => refused.refusal.code().into(),
    }
}

const CLAIMS_OK: [&str; 6] = [
    "exp ok",
    "nbf ok",
    "iat ok",
    "iss ok",
    "aud ok",
    "lifetime ok",
];

/// `corp` accepting a valid ES256 token: the key, the signature and every claim check.
fn corp_accepts() -> Vec<&'static str> {
    let mut steps = vec!["provider corp", "key es256 ES256 valid", "signature ok"];
    steps.extend(CLAIMS_OK);
    steps.push("corp: ok");
    steps
}

fn table() -> Vec<(Case, &'static str, Vec<&'static str>)> {
    let admin_prefix = |token_steps: Vec<&'static str>| {
        let mut steps = vec![
            "rule 3",
            "token in authorization",
            "candidates corp",
            "parsed ok",
        ];
        steps.extend(token_steps);
        steps
    };
    let mut orders = vec![
        "rule 2",
        "token in authorization",
        "candidates pay corp",
        "parsed ok",
        "provider pay",
        "key es256 ES256 valid",
        "signature ok",
        "exp ok",
        "nbf ok",
        "iat ok",
        "iss ok",
        "aud bad_audience",
        "pay: bad_audience",
    ];
    orders.extend(corp_accepts());
    let mut admin_ok = admin_prefix(corp_accepts());
    admin_ok.extend([
        "ip 10.1.2.3",
        "country Known(\"US\")",
        "SourceIps ok",
        "Countries ok",
        "Roles ok",
        "Scopes ok",
        "Claim(0) ok",
    ]);
    let mut missing_role = admin_prefix(corp_accepts());
    missing_role.extend([
        "ip 10.1.2.3",
        "country Known(\"US\")",
        "SourceIps ok",
        "Countries ok",
        "Roles missing_role",
    ]);
    let mut outside = admin_prefix(corp_accepts());
    outside.extend([
        "ip 192.168.1.1",
        "country Unknown",
        "SourceIps ip_not_allowed",
    ]);
    let mut bound = vec![
        "rule 4",
        "token in authorization",
        "candidates corp",
        "parsed ok",
    ];
    bound.extend(corp_accepts());
    bound.extend(["ip 10.1.2.3", "BindIpClaim ok"]);
    vec![
        (get("/public/x"), "allow", vec!["rule 0", "no token"]),
        (
            get("/healthz").header("authorization", "Bearer garbage"),
            "allow",
            vec!["rule 1", "disabled"],
        ),
        (
            get("/elsewhere").host("a,b"),
            "no_matching_rule",
            vec!["no rule: ambiguous host"],
        ),
        (
            get("/elsewhere").host("other.example"),
            "no_matching_rule",
            vec!["no rule"],
        ),
        (
            get("/admin").bound_to("public"),
            "allow",
            vec!["rule 0 bound as public", "no token"],
        ),
        (
            get("/public").bound_to("routes-only"),
            "missing",
            vec!["rule 6 bound as routes-only", "no token"],
        ),
        (
            get("/public").bound_to("nope"),
            "no_matching_rule",
            vec!["unknown rule nope"],
        ),
        (get("/orders").bearer("valid_ES256"), "allow", orders),
        (
            get("/admin").bearer("expired"),
            "expired",
            admin_prefix(vec![
                "provider corp",
                "key es256 ES256 valid",
                "signature ok",
                "exp expired",
                "corp: expired",
            ]),
        ),
        (
            get("/admin").bearer("lifetime_exceeded"),
            "lifetime_exceeded",
            admin_prefix(vec![
                "provider corp",
                "key es256 ES256 valid",
                "signature ok",
                "exp ok",
                "nbf ok",
                "iat ok",
                "iss ok",
                "aud ok",
                "lifetime lifetime_exceeded",
                "corp: lifetime_exceeded",
            ]),
        ),
        (
            get("/admin").bearer("bad_issuer"),
            "bad_issuer",
            admin_prefix(vec![
                "provider corp (first)",
                "key es256 ES256 valid",
                "signature ok",
                "exp ok",
                "nbf ok",
                "iat ok",
                "iss bad_issuer",
                "corp: bad_issuer",
            ]),
        ),
        (
            get("/admin").bearer("unknown_kid"),
            "unknown_key",
            admin_prefix(vec![
                "provider corp",
                "signature unknown_key",
                "corp: unknown_key",
            ]),
        ),
        (
            get("/admin").bearer("alg_kid_mismatch"),
            "unsupported_algorithm",
            admin_prefix(vec![
                "provider corp",
                "signature unsupported_algorithm",
                "corp: unsupported_algorithm",
            ]),
        ),
        (
            get("/admin").bearer("bad_signature"),
            "bad_signature",
            admin_prefix(vec![
                "provider corp",
                "key es256 ES256 invalid",
                "signature bad_signature",
                "corp: bad_signature",
            ]),
        ),
        (
            get("/admin").bearer("no_kid_bad_signature"),
            "bad_signature",
            admin_prefix(vec![
                "provider corp",
                "key es256 ES256 invalid",
                "signature bad_signature",
                "corp: bad_signature",
            ]),
        ),
        (
            get("/admin").header("authorization", "Bearer a.b.c"),
            "malformed",
            vec![
                "rule 3",
                "token in authorization",
                "candidates corp",
                "parsed malformed",
            ],
        ),
        (
            get("/admin?access_token=other").bearer("valid_ES256"),
            "malformed",
            vec!["rule 3", "unusable malformed"],
        ),
        (
            get("/admin")
                .bearer("policy_admin")
                .header("x-geo-country", "us"),
            "allow",
            admin_ok,
        ),
        (
            get("/admin")
                .bearer("policy_user")
                .header("x-geo-country", "US"),
            "missing_role",
            missing_role,
        ),
        (
            get("/admin").bearer("valid_ES256").peer("192.168.1.1:1"),
            "ip_not_allowed",
            outside,
        ),
        (get("/bound").bearer("policy_user"), "allow", bound),
    ]
}

#[test]
fn each_request_has_its_steps_and_the_verdict_is_decides() {
    let config = config();
    for (case, expected, steps) in table() {
        let (traced, recorded, plain) = case.run(&config, &mut TokenCache::new(0));
        let recorded: Vec<String> = recorded.iter().map(|s| brief(&config, s)).collect();
        assert_eq!(recorded, steps, "{} {}", case.path, expected);
        assert_eq!(outcome(&traced.decision), expected, "{}", case.path);
        assert_eq!(traced.decision, plain.decision, "{}", case.path);
        assert_eq!(
            (traced.rule, traced.provider),
            (plain.rule, plain.provider),
            "{}",
            case.path
        );
    }
}

#[test]
fn a_cache_hit_is_traced_and_its_claims_checked_again() {
    let config = config();
    let mut cache = TokenCache::new(10);
    let case = get("/bound").bearer("policy_user");
    case.run(&config, &mut cache);
    let (traced, steps, _) = case.run(&config, &mut cache);
    let steps: Vec<String> = steps.iter().map(|s| brief(&config, s)).collect();
    let mut expected = vec![
        "rule 4",
        "token in authorization",
        "candidates corp",
        "cache hit corp",
    ];
    expected.extend(CLAIMS_OK);
    expected.extend(["corp: ok", "ip 10.1.2.3", "BindIpClaim ok"]);
    assert_eq!(steps, expected);
    assert_eq!(outcome(&traced.decision), "allow");
}

#[test]
fn no_trace_records_nothing_and_builds_no_step() {
    let mut built = false;
    NoTrace.record(|| {
        built = true;
        Step::Disabled
    });
    assert!(!built);
}

#[test]
fn mismatches_name_each_part_a_request_fails() {
    use crate::decision::MatchPart;
    let json = json!({
        "rules": [{"match": {"prefix": "/a", "methods": ["GET"], "hosts": ["api.example.com"],
                             "route_name": "r"}, "disabled": true}]
    });
    let config = Config::from_json(json.to_string().as_bytes()).unwrap();
    let matcher = config.rules[0].matcher.as_ref().unwrap();
    type Row<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Vec<MatchPart>);
    let table: [Row; 4] = [
        ("GET", "/a/x", "api.example.com", Some("r"), vec![]),
        (
            "POST",
            "/b",
            "api.example.com",
            Some("r"),
            vec![MatchPart::Path, MatchPart::Method],
        ),
        (
            "GET",
            "/a",
            "other.example",
            Some("r"),
            vec![MatchPart::Host],
        ),
        (
            "GET",
            "/a",
            "API.example.com:8443",
            None,
            vec![MatchPart::RouteName],
        ),
    ];
    for (method, path, host, route, expected) in table {
        let h = headers(&[(":method", method), (":path", path), (":authority", host)]);
        let request = Request {
            headers: &h,
            peer_address: &|| None,
            peer_certificate_digest: &|| None,
            route_name: route,
            route_rule: None,
        };
        assert_eq!(
            matcher.mismatches(&request),
            expected,
            "{method} {path} {host}"
        );
    }
}

/// Deny rules and fall-through leave their steps: each deny rule considered (with its
/// conditions when its match fits, an undecidable one included), each fall-through, and the
/// checks of every allow rule tried; the traced verdict is the untraced one.
#[test]
fn deny_rules_and_fall_through_are_traced() {
    let json = json!({
        "providers": {"corp": {"issuer": testutil::issuer(), "audiences": ["orders"],
                               "jwks": testutil::jwks()}},
        "rules": [
            {"name": "not-here", "action": "deny", "match": {"prefix": "/nowhere"}},
            {"name": "net", "action": "deny", "match": {"prefix": "/docs/net"},
             "source_ips": {"allow": ["192.0.2.0/24"]}},
            {"name": "editors", "match": {"prefix": "/docs"}, "roles": {"any": ["editor"]},
             "fall_through": true},
            {"name": "readers", "match": {"prefix": "/docs"},
             "headers": [{"name": "x-mode", "not_values": ["write"]}]}
        ]
    });
    let config = Config::from_json(json.to_string().as_bytes()).unwrap();
    let render = |case: Case| {
        let (traced, steps, plain) = case.run(&config, &mut TokenCache::new(0));
        assert_eq!(traced.decision, plain.decision);
        assert_eq!(traced.rule, plain.rule);
        let policy: Vec<String> = steps
            .iter()
            .filter(|s| {
                matches!(
                    s,
                    Step::Policy { .. }
                        | Step::DenyRule { .. }
                        | Step::FallThrough { .. }
                        | Step::ClientIp(_)
                )
            })
            .map(|s| brief(&config, s))
            .collect();
        (policy, traced.rule)
    };
    let (steps, rule) = render(get("/docs/1").bearer("policy_user"));
    assert_eq!(
        steps,
        [
            "deny 0 applies false denied false",
            "deny 1 applies false denied false",
            "Roles missing_role",
            "fall_through 2 -> Some(3) ",
            "Header(0) ok",
        ]
    );
    assert_eq!(rule, Some(3));
    let (steps, rule) = render(get("/docs/net").bearer("policy_user").peer("nonsense"));
    assert_eq!(
        steps,
        [
            "deny 0 applies false denied false",
            "ip -",
            "SourceIps ip_not_allowed",
            "deny 1 applies true denied true",
        ]
    );
    assert_eq!(rule, Some(1));
    let (steps, rule) = render(
        get("/docs/1")
            .bearer("policy_user")
            .header("x-mode", "write"),
    );
    assert_eq!(
        &steps[2..],
        [
            "Roles missing_role",
            "fall_through 2 -> Some(3) ",
            "Header(0) header_mismatch",
        ]
    );
    assert_eq!(rule, Some(2), "the first refusal stands");
}
