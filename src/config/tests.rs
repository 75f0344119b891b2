use super::*;
use crate::testing::testutil;
use serde_json::{Value, json};

use crate::authn::remote::{Source, Uri};
use crate::authz::address::ClientIpSource;
use crate::token::extract::TokenLocation;

pub(crate) fn base() -> Value {
    json!({
        "realm": "api",
        "providers": {"corp": {
            "issuer": testutil::issuer(),
            "audiences": ["orders"],
            "jwks": testutil::jwks(),
        }},
        "rules": [
            {"match": {"prefix": "/public"}, "allow_anonymous": true},
            {"match": {"prefix": "/healthz"}, "disabled": true},
            {"match": {"prefix": "/", "methods": ["GET", "POST"]}, "provider": "corp"}
        ]
    })
}

fn compile_with(edit: impl FnOnce(&mut Value)) -> Result<Config, ConfigError> {
    let mut config = base();
    edit(&mut config);
    Config::from_json(config.to_string().as_bytes())
}

#[test]
fn compiles_the_contract_example_with_defaults() {
    let config = compile_with(|_| {}).unwrap();
    let corp = &config.providers[0];
    assert_eq!(corp.locations, vec![TokenLocation::default_header()]);
    let with_cookie =
        compile_with(|c| c["providers"]["corp"]["from_cookies"] = json!(["s"])).unwrap();
    assert_eq!(
        with_cookie.providers[0].locations,
        vec![
            TokenLocation::default_header(),
            TokenLocation::Cookie("s".into())
        ]
    );
    assert_eq!(corp.token_rules.clock_skew_seconds, 60);
    assert!(corp.token_rules.require_expiration);
    assert!(!corp.forward);
    assert_eq!(config.rules[1].authentication, Authentication::Disabled);
    assert_eq!(
        config.rules[0].authentication,
        Authentication::Optional(vec![0])
    );
}

#[test]
fn jwks_may_be_a_string() {
    let config = compile_with(|c| {
        let text = c["providers"]["corp"]["jwks"].to_string();
        c["providers"]["corp"]["jwks"] = Value::String(text);
    });
    assert!(config.is_ok());
}

fn remote_json(extra: Value) -> Value {
    let mut remote = json!({"cluster": "idp", "uri": "https://idp.example.com/jwks.json",
                            "refresh_seconds": 300, "timeout_ms": 2000, "min_refetch_seconds": 30});
    for (name, value) in extra.as_object().unwrap() {
        remote[name] = value.clone();
    }
    remote
}

#[test]
fn keys_never_outlive_a_bounded_age_nor_a_healthy_refresh() {
    let stale = |extra: Value| {
        compile_with(|c| c["providers"]["corp"]["remote_jwks"] = remote_json(extra))
            .map(|config| config.providers[0].remote.as_ref().unwrap().max_stale_ms)
            .map_err(|err| err.to_string())
    };
    // The least: refresh_seconds + 2 x timeout_ms + 1.5 s, rounded up.
    assert_eq!(stale(json!({"max_stale_seconds": 306})), Ok(306_000));
    let err = stale(json!({"max_stale_seconds": 305})).unwrap_err();
    assert!(err.contains("must be at least 306"), "{err}");
    assert_eq!(
        stale(
            json!({"refresh_seconds": 10, "timeout_ms": 1000, "min_refetch_seconds": 5, "max_stale_seconds": 14})
        ),
        Ok(14_000)
    );
    assert!(
        stale(json!({"refresh_seconds": 10, "timeout_ms": 1000, "min_refetch_seconds": 5, "max_stale_seconds": 13}))
            .unwrap_err()
            .contains("max_stale_seconds")
    );
    // Unset: a day, or two refresh periods when those are longer.
    assert_eq!(stale(json!({})), Ok(86_400_000));
    assert_eq!(
        stale(json!({"refresh_seconds": 604_800})),
        Ok(1_209_600_000)
    );
}

#[test]
fn remote_jwks_makes_jwks_optional() {
    let config = compile_with(|c| {
        c["providers"]["corp"]
            .as_object_mut()
            .unwrap()
            .remove("jwks");
        c["providers"]["corp"]["remote_jwks"] = remote_json(json!({}));
    })
    .unwrap();
    let corp = &config.providers[0];
    let remote = corp.remote.as_ref().unwrap();
    assert_eq!(remote.cluster, "idp");
    assert_eq!(
        remote.source,
        Source::Jwks(Uri {
            authority: "idp.example.com".into(),
            path: "/jwks.json".into()
        })
    );
    assert_eq!(
        (remote.refresh_ms, remote.timeout_ms, remote.min_refetch_ms),
        (300_000, 2_000, 30_000)
    );
    assert_eq!(remote.max_stale_ms, 86_400_000, "bounded by default");
    assert!(corp.token_rules.keys.current().is_empty());
    assert!(corp.inline_jwks.is_none());
    // Both: inline keys serve until the first fetch.
    let both =
        compile_with(|c| c["providers"]["corp"]["remote_jwks"] = remote_json(json!({}))).unwrap();
    assert!(!both.providers[0].token_rules.keys.current().is_empty());
    // Discovery from the issuer.
    let discovery = compile_with(|c| {
        c["providers"]["corp"]["remote_jwks"] = json!({"cluster": "idp", "discovery": true});
    })
    .unwrap();
    let Some(Source::Discovery(uri)) = discovery.providers[0].remote.as_ref().map(|r| &r.source)
    else {
        panic!("no discovery");
    };
    assert!(uri.path.ends_with("/.well-known/openid-configuration"));
}

#[test]
fn remote_jwks_refusals_name_the_field() {
    let at = "providers.corp.remote_jwks";
    let cases = [
        (json!({"cluster": ""}), "cluster"),
        (json!({"uri": "ftp://x/y"}), "uri"),
        (json!({"uri": null}), "uri"),
        (json!({"discovery": true}), "uri"),
        (
            json!({"uri": null, "discovery": true, "discovery_uri": "https://a/b"}),
            "discovery_uri",
        ),
        (
            json!({"uri": null, "discovery_uri": "nope"}),
            "discovery_uri",
        ),
        (json!({"refresh_seconds": 0}), "refresh_seconds"),
        (json!({"timeout_ms": 0}), "timeout_ms"),
        (json!({"timeout_ms": 600000}), "timeout_ms"),
        (json!({"min_refetch_seconds": 0}), "min_refetch_seconds"),
        (json!({"min_refetch_seconds": 301}), "min_refetch_seconds"),
        (json!({"max_stale_seconds": 10}), "max_stale_seconds"),
        (json!({"max_stale_seconds": 300}), "max_stale_seconds"),
        (json!({"max_stale_seconds": 305}), "max_stale_seconds"),
        (json!({"refresh": 10}), "refresh"),
    ];
    for (extra, field) in cases {
        let mut remote = remote_json(extra.clone());
        remote.as_object_mut().unwrap().retain(|_, v| !v.is_null());
        let err = compile_with(|c| c["providers"]["corp"]["remote_jwks"] = remote)
            .err()
            .unwrap_or_else(|| panic!("{extra} was accepted"));
        assert_eq!(err.field, format!("{at}.{field}"), "{extra}: {err}");
    }
    let err = compile_with(|c| {
        c["providers"]["corp"]
            .as_object_mut()
            .unwrap()
            .remove("jwks");
    })
    .err()
    .unwrap();
    assert_eq!(err.field, "providers.corp.jwks");
    let err = compile_with(|c| {
        c["providers"]["corp"]["issuer"] = json!("corp-issuer");
        c["providers"]["corp"]["remote_jwks"] = json!({"cluster": "idp", "discovery": true});
    })
    .err()
    .unwrap();
    assert_eq!(err.field, format!("{at}.discovery"));
}

#[test]
fn rule_names_provider_names_and_the_outcome_property() {
    let config = compile_with(|c| {
        c["rules"][0]["name"] = json!("health-check_1");
        c["outcome_in_filter_state"] = json!("jwt_guard.outcome");
    })
    .unwrap();
    assert_eq!(config.rules[0].name.as_deref(), Some("health-check_1"));
    assert_eq!(config.rules[0].label, "health-check_1");
    assert_eq!(config.rules[1].name, None);
    assert_eq!(config.rules[1].label, "rule_1");
    assert_eq!(
        config.outcome_in_filter_state.as_deref(),
        Some("jwt_guard.outcome")
    );
    type Edit = Box<dyn Fn(&mut Value)>;
    let refused: Vec<(Edit, &str)> = vec![
        (
            Box::new(|c| c["rules"][1]["name"] = json!("")),
            "rules[1].name",
        ),
        (
            Box::new(|c| c["rules"][1]["name"] = json!("a.b")),
            "rules[1].name",
        ),
        (
            Box::new(|c| c["rules"][1]["name"] = json!("a b")),
            "rules[1].name",
        ),
        (
            Box::new(|c| c["rules"][1]["name"] = json!("x".repeat(65))),
            "rules[1].name",
        ),
        (
            Box::new(|c| c["rules"][1]["name"] = json!("rule_7")),
            "rules[1].name",
        ),
        (
            Box::new(|c| {
                c["rules"][0]["name"] = json!("same");
                c["rules"][2]["name"] = json!("same");
            }),
            "rules[2].name",
        ),
        (
            Box::new(|c| c["outcome_in_filter_state"] = json!("")),
            "outcome_in_filter_state",
        ),
        (
            Box::new(|c| c["outcome_in_filter_state"] = json!("a/b")),
            "outcome_in_filter_state",
        ),
        (
            Box::new(|c| {
                let corp = c["providers"]["corp"].clone();
                c["providers"]["corp.eu"] = corp;
            }),
            "providers.corp.eu",
        ),
    ];
    for (edit, field) in refused {
        let err = compile_with(edit).expect_err("refused");
        assert_eq!(err.field, field, "{err}");
    }
    // A rule named like an unnamed one's label, but not of that form, is fine.
    assert!(compile_with(|c| c["rules"][1]["name"] = json!("rule_x")).is_ok());
}

#[test]
fn refusals_name_the_field() {
    type Edit = fn(&mut Value);
    let cases: Vec<(Edit, &str)> = vec![
        (|c| c["extra"] = json!(1), "extra"),
        (
            |c| c["providers"]["corp"]["issuerr"] = json!("x"),
            "providers.corp.issuerr",
        ),
        (
            |c| c["providers"]["corp"]["issuer"] = json!(""),
            "providers.corp.issuer",
        ),
        (
            |c| c["providers"]["corp"]["audiences"] = json!([]),
            "providers.corp.audiences",
        ),
        (
            |c| c["providers"]["corp"]["jwks"] = json!({"keys": [{"kty": "EC"}]}),
            "providers.corp.jwks.keys[0]",
        ),
        (
            |c| c["providers"]["corp"]["jwks"] = json!("{not json"),
            "providers.corp.jwks",
        ),
        (
            |c| c["providers"]["corp"]["clock_skew_seconds"] = json!(-1),
            "providers.corp.clock_skew_seconds",
        ),
        (
            |c| c["providers"]["corp"]["from_headers"] = json!([{"name": "bad header"}]),
            "providers.corp.from_headers[0].name",
        ),
        (
            |c| c["providers"]["corp"]["from_headers"] = json!([]),
            "providers.corp.from_headers",
        ),
        (
            |c| c["rules"][2]["provider"] = json!("nope"),
            "rules[2].provider",
        ),
        (
            |c| c["rules"][2]["match"]["prefix"] = json!("x"),
            "rules[2].match.prefix",
        ),
        (
            |c| c["rules"][2]["match"]["pathh"] = json!("/x"),
            "rules[2].match.pathh",
        ),
        (
            |c| c["rules"][1]["provider"] = json!("corp"),
            "rules[1].disabled",
        ),
        (|c| c["rules"][2]["roles"] = json!({}), "rules[2].roles"),
        (
            |c| c["rules"][2]["source_ips"] = json!({"allow": ["10.0.0.0/40"]}),
            "rules[2].source_ips.allow[0]",
        ),
        (
            |c| c["rules"][2]["countries"] = json!({"allow": ["US"]}),
            "rules[2].countries",
        ),
        (
            |c| c["rules"][2]["claims"] = json!([{"name": "t", "values": [[1]]}]),
            "rules[2].claims[0].values",
        ),
        (
            |c| c["client_ip"] = json!({"from": "xff"}),
            "client_ip.trusted_hops",
        ),
        (
            |c| c["client_ip"] = json!({"from": "header"}),
            "client_ip.from",
        ),
        (|c| c["realm"] = json!("a\"b"), "realm"),
        (
            |c| c["rules"][2]["match"]["hosts"] = json!(["a.example", "b.example:80"]),
            "rules[2].match.hosts[1]",
        ),
        (
            |c| c["rules"][2]["match"]["hosts"] = json!(["*"]),
            "rules[2].match.hosts[0]",
        ),
        (|c| c["rules"] = json!([]), "rules"),
        (|c| c["rules"] = json!("x"), "rules"),
    ];
    for (edit, field) in cases {
        let err = compile_with(edit).unwrap_err();
        assert_eq!(err.field, field, "{err}");
    }
}

#[test]
fn integer_fields_take_whole_numbers_written_as_floats() {
    // As a protobuf Struct (Istio's pluginConfig) may deliver them: every number a double.
    let config = compile_with(|c| {
        c["token_cache_size"] = json!(1000.0);
        c["client_ip"] = json!({"from": "xff", "trusted_hops": 2.0});
        c["providers"]["corp"]["clock_skew_seconds"] = json!(30.0);
        c["providers"]["corp"]["max_lifetime_seconds"] = json!(8.64e4);
        c["providers"]["corp"]["remote_jwks"] = remote_json(json!({
            "refresh_seconds": 600.0, "timeout_ms": 1500.0,
            "min_refetch_seconds": 10.0, "max_stale_seconds": 3600.0}));
    })
    .unwrap();
    assert_eq!(config.token_cache_size, 1000);
    assert_eq!(
        config.client_ip,
        ClientIpSource::ForwardedFor { trusted_hops: 2 }
    );
    let corp = &config.providers[0];
    assert_eq!(corp.token_rules.clock_skew_seconds, 30);
    assert_eq!(corp.token_rules.max_lifetime_seconds, Some(86_400));
    let remote = corp.remote.as_ref().unwrap();
    assert_eq!(
        (remote.refresh_ms, remote.timeout_ms, remote.min_refetch_ms),
        (600_000, 1_500, 10_000)
    );
    assert_eq!(remote.max_stale_ms, 3_600_000);
    // null is "not given", as for any optional field.
    let config = compile_with(|c| c["token_cache_size"] = Value::Null).unwrap();
    assert_eq!(
        config.token_cache_size,
        crate::authn::cache::DEFAULT_CAPACITY
    );
}

#[test]
fn integer_fields_refuse_fractions_negatives_and_other_types() {
    type Edit = fn(&mut Value);
    let cases: Vec<(Edit, &str, &str)> = vec![
        (
            |c| c["token_cache_size"] = json!(10.5),
            "token_cache_size",
            "floating point `10.5`",
        ),
        (
            |c| c["token_cache_size"] = json!(-1),
            "token_cache_size",
            "integer `-1`",
        ),
        (
            |c| c["token_cache_size"] = json!(-1.0),
            "token_cache_size",
            "floating point `-1.0`",
        ),
        (
            |c| c["token_cache_size"] = json!("1000"),
            "token_cache_size",
            "string \"1000\"",
        ),
        (
            |c| c["token_cache_size"] = json!(true),
            "token_cache_size",
            "boolean",
        ),
        (
            |c| c["providers"]["corp"]["clock_skew_seconds"] = json!(0.25),
            "providers.corp.clock_skew_seconds",
            "floating point `0.25`",
        ),
        (
            |c| c["providers"]["corp"]["max_lifetime_seconds"] = json!(1e20),
            "providers.corp.max_lifetime_seconds",
            "floating point",
        ),
        (
            |c| c["client_ip"] = json!({"from": "xff", "trusted_hops": 1.5}),
            "client_ip.trusted_hops",
            "floating point `1.5`",
        ),
    ];
    for (edit, field, what) in cases {
        let err = compile_with(edit).unwrap_err();
        assert_eq!(err.field, field, "{err}");
        assert!(
            err.message.contains(what) && err.message.contains("whole number"),
            "{err}"
        );
    }
    // Too large for a usize where usize is 32 bits (wasm32), or for the field's own limit.
    let err = compile_with(|c| c["token_cache_size"] = json!(1e12)).unwrap_err();
    assert_eq!(err.field, "token_cache_size", "{err}");
}

#[test]
fn not_json_at_all() {
    let err = Config::from_json(b"{oops").unwrap_err();
    assert!(err.to_string().contains("line 1"), "{err}");
}

/// Issue #19's rule fields: every refused configuration names its field. `rules[3]` is added
/// to the base configuration by each case.
#[test]
fn policy_reach_refusals_name_the_field() {
    let cases: Vec<(Value, &str)> = vec![
        (json!({"action": "maybe"}), "rules[3].action"),
        (
            json!({"action": "deny", "provider": "corp"}),
            "rules[3].provider",
        ),
        (
            json!({"action": "deny", "providers": ["corp"]}),
            "rules[3].providers",
        ),
        (
            json!({"action": "deny", "allow_anonymous": false}),
            "rules[3].allow_anonymous",
        ),
        (
            json!({"action": "deny", "disabled": true}),
            "rules[3].disabled",
        ),
        (
            json!({"action": "deny", "dry_run": false}),
            "rules[3].dry_run",
        ),
        (
            json!({"action": "deny", "fall_through": true}),
            "rules[3].fall_through",
        ),
        (
            json!({"action": "deny", "bind_ip_claim": "ip"}),
            "rules[3].bind_ip_claim",
        ),
        (
            json!({"action": "deny", "refusal": {"status": 404, "for": ["unauthorized"]}}),
            "rules[3].refusal.for",
        ),
        (
            json!({"action": "deny", "match": {"prefix": "x"}}),
            "rules[3].match.prefix",
        ),
        (
            json!({"match": {"prefix": "/"}, "disabled": true, "fall_through": true}),
            "rules[3].disabled",
        ),
        (
            json!({"match": {"prefix": "/"}, "refusal": {}}),
            "rules[3].refusal.status",
        ),
        (
            json!({"match": {"prefix": "/"}, "refusal": {"status": 401}}),
            "rules[3].refusal.status",
        ),
        (
            json!({"match": {"prefix": "/"}, "refusal": {"status": 401, "for": ["forbidden", "unauthorized"]}}),
            "rules[3].refusal.status",
        ),
        (
            json!({"match": {"prefix": "/"}, "refusal": {"status": 500}}),
            "rules[3].refusal.status",
        ),
        (
            json!({"match": {"prefix": "/"}, "refusal": {"status": 399}}),
            "rules[3].refusal.status",
        ),
        (
            json!({"match": {"prefix": "/"}, "refusal": {"status": 404, "body": "x".repeat(4097)}}),
            "rules[3].refusal.body",
        ),
        (
            json!({"match": {"prefix": "/"}, "refusal": {"status": 404, "for": ["forbidden", "forbidden"]}}),
            "rules[3].refusal.for[1]",
        ),
        (
            json!({"match": {"prefix": "/"}, "refusal": {"status": 404, "for": []}}),
            "rules[3].refusal.for",
        ),
        (
            json!({"match": {"prefix": "/"}, "refusal": {"status": 404, "colour": "red"}}),
            "rules[3].refusal.colour",
        ),
        (
            json!({"match": {"prefix": "/"}, "refusal": {"status": 404, "content_type": "a\"b"}}),
            "rules[3].refusal.content_type",
        ),
        (
            json!({"match": {"prefix": "/"}, "roles": {}}),
            "rules[3].roles",
        ),
        (
            json!({"match": {"prefix": "/"}, "scopes": {"none": ["a b"]}}),
            "rules[3].scopes",
        ),
        (
            json!({"match": {"prefix": "/"}, "claims": [{"name": "t"}]}),
            "rules[3].claims[0].values",
        ),
        (
            json!({"match": {"prefix": "/"}, "claims": [{"name": "t", "not_values": []}]}),
            "rules[3].claims[0].not_values",
        ),
        (
            json!({"match": {"prefix": "/"}, "claims": [{"name": "t", "not_values": [null]}]}),
            "rules[3].claims[0].not_values",
        ),
        (
            json!({"match": {"prefix": "/"}, "principals": {}}),
            "rules[3].principals",
        ),
        (
            json!({"match": {"prefix": "/"}, "principals": {"all": ["*"]}}),
            "rules[3].principals.all",
        ),
        (
            json!({"match": {"prefix": "/"}, "principals": {"any": ["a*b"]}}),
            "rules[3].principals.any[0]",
        ),
        (
            json!({"match": {"prefix": "/"}, "principals": {"none": ["x", "**"]}}),
            "rules[3].principals.none[1]",
        ),
        (
            json!({"match": {"prefix": "/"}, "headers": []}),
            "rules[3].headers",
        ),
        (
            json!({"match": {"prefix": "/"}, "headers": [{"name": ":path", "present": true}]}),
            "rules[3].headers[0].name",
        ),
        (
            json!({"match": {"prefix": "/"}, "headers": [{"name": "X-Up", "present": true}]}),
            "rules[3].headers[0].name",
        ),
        (
            json!({"match": {"prefix": "/"}, "headers": [{"name": "x-up"}]}),
            "rules[3].headers[0]",
        ),
        (
            json!({"match": {"prefix": "/"}, "headers": [{"name": "x-up", "present": false, "values": ["a"]}]}),
            "rules[3].headers[0].present",
        ),
        (
            json!({"match": {"prefix": "/"}, "headers": [{"name": "x-up", "values": []}]}),
            "rules[3].headers[0].values",
        ),
        (
            json!({"match": {"prefix": "/"}, "headers": [{"name": "x-up", "not_values": ["a", "b*c"]}]}),
            "rules[3].headers[0].not_values[1]",
        ),
        (
            json!({"match": {"prefix": "/"}, "headers": [{"name": "x-up", "present": "yes"}]}),
            "rules[3].headers[0].present",
        ),
        (
            json!({"match": {"prefix": "/"}, "headers": [{"name": "x-up", "present": true, "value": "a"}]}),
            "rules[3].headers[0].value",
        ),
    ];
    for (rule, field) in cases {
        let err = compile_with(|c| c["rules"].as_array_mut().unwrap().push(rule.clone()))
            .expect_err(&rule.to_string());
        assert_eq!(err.field, field, "{rule}: {err}");
    }
}

/// What the refused fields above accept: a deny rule without `match` (every request), with
/// every condition it may test; `401` answering only 401s; the content type's defaults.
#[test]
fn policy_reach_accepted_forms() {
    let config = compile_with(|c| {
        c["geo"] = json!({"country_header": "x-country"});
        let rules = c["rules"].as_array_mut().unwrap();
        rules.push(json!({"action": "deny", "roles": {"none": ["admin"]},
            "scopes": {"any": ["x"]}, "claims": [{"name": "t", "not_values": ["a"]}],
            "principals": {"any": ["*"], "none": ["*/bob"]},
            "headers": [{"name": "x-up", "present": true, "values": ["a*"], "not_values": ["*b"]}],
            "source_ips": {"allow": ["10.0.0.0/8"]}, "countries": {"allow": ["KP"]},
            "refusal": {"status": 404}}));
        rules.push(json!({"name": "r", "fall_through": true,
            "refusal": {"status": 401, "for": ["unauthorized"], "body": "who?"}}));
        rules.push(
            json!({"name": "s", "refusal": {"status": 418, "for": ["unauthorized", "forbidden"],
            "body": "{}", "content_type": "application/problem+json"}}),
        );
    })
    .unwrap();
    let deny = &config.rules[3];
    assert_eq!(deny.action, RuleAction::Deny);
    assert!(deny.matcher.is_none());
    let refusal = deny.refusal.as_deref().unwrap();
    assert_eq!(
        (
            refusal.status,
            refusal.content_type.as_str(),
            refusal.forbidden,
            refusal.unauthorized
        ),
        (404, "application/json", true, false)
    );
    let r = config.rules[4].refusal.as_deref().unwrap();
    assert_eq!(
        (r.content_type.as_str(), r.forbidden, r.unauthorized),
        ("text/plain", false, true)
    );
    assert!(config.rules[4].fall_through);
    let s = config.rules[5].refusal.as_deref().unwrap();
    assert_eq!(
        (s.content_type.as_str(), s.forbidden, s.unauthorized),
        ("application/problem+json", true, true)
    );
}
