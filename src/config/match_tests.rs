//! Configuration of `match.paths` / `not_*`, `bind` and issuer templates: what compiles, and
//! that each refusal names its field.

use serde_json::{Value, json};

use super::tests::base;
use super::*;

fn compile_with(edit: impl FnOnce(&mut Value)) -> Result<Config, ConfigError> {
    let mut config = base();
    edit(&mut config);
    Config::from_json(config.to_string().as_bytes())
}

const ENTRA: &str = "https://login.microsoftonline.com/{tenant}/v2.0";

fn templated(c: &mut Value) {
    c["providers"]["corp"]["issuer"] = json!(ENTRA);
    c["providers"]["corp"]["issuer_params"] = json!({"tenant": ["a", "b"]});
}

#[test]
fn paths_not_forms_bind_and_templates_compile() {
    let config = compile_with(|c| {
        templated(c);
        c["rules"][2] = json!({
            "match": {"paths": ["/t/{tenant}/{**}", "/v2/{region}/t/{tenant}"],
                      "not_paths": ["*/admin"], "not_methods": ["delete"],
                      "not_hosts": ["Admin.Example.com."]},
            "bind": [{"claim": "tid", "path_param": "tenant"},
                     {"issuer_param": "tenant", "header": "x-tenant"}]
        });
    })
    .unwrap();
    let rule = &config.rules[2];
    let matcher = rule.matcher.as_ref().unwrap();
    assert!(matches!(&matcher.path, PathMatch::Patterns(p) if p.len() == 2));
    assert_eq!(matcher.not_methods, ["DELETE"]);
    assert_eq!(matcher.not_hosts, ["admin.example.com"]);
    assert!(config.needs_host, "not_hosts matches on hosts");
    assert!(rule.needs_token());
    let bind = rule.bind.as_ref().unwrap();
    assert!(matches!(
        &bind.entries[0].target,
        crate::authz::request_binding::BindTarget::PathParam { positions, .. } if positions == &[1, 3]
    ));
    assert!(config.providers[0].token_rules.issuer.is_template());
}

#[test]
fn remote_jwks_with_a_templated_issuer_needs_a_fixed_uri() {
    let remote = |extra: Value| {
        move |c: &mut Value| {
            templated(c);
            let corp = &mut c["providers"]["corp"];
            corp.as_object_mut().unwrap().remove("jwks");
            let mut r = json!({"cluster": "idp"});
            r.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            corp["remote_jwks"] = r;
        }
    };
    assert!(
        compile_with(remote(
            json!({"uri": "https://login.microsoftonline.com/common/discovery/v2.0/keys"})
        ))
        .is_ok()
    );
    for (extra, field) in [
        (
            json!({"discovery": true}),
            "providers.corp.remote_jwks.discovery",
        ),
        (
            json!({"discovery_uri": "https://x/.well-known/openid-configuration"}),
            "providers.corp.remote_jwks.discovery_uri",
        ),
    ] {
        let err = compile_with(remote(extra)).expect_err("refused");
        assert_eq!(err.field, field, "{err}");
    }
}

#[test]
fn refusals_name_the_field() {
    type Edit = fn(&mut Value);
    let cases: Vec<(Edit, &str)> = vec![
        (
            |c| c["rules"][2]["match"] = json!({"paths": []}),
            "rules[2].match.paths",
        ),
        (
            |c| c["rules"][2]["match"] = json!({"paths": ["/a", "/b/*/c"]}),
            "rules[2].match.paths[1]",
        ),
        (
            |c| c["rules"][2]["match"] = json!({"paths": ["/a"], "prefix": "/"}),
            "rules[2].match.paths",
        ),
        (
            |c| c["rules"][2]["match"] = json!({"paths": ["/a"], "path": "/a"}),
            "rules[2].match.paths",
        ),
        (
            |c| c["rules"][2]["match"] = json!({"not_paths": ["/{x}/*"]}),
            "rules[2].match.not_paths[0]",
        ),
        (
            |c| c["rules"][2]["match"] = json!({"not_methods": ["GET 1"]}),
            "rules[2].match.not_methods",
        ),
        (
            |c| c["rules"][2]["match"] = json!({"not_hosts": ["a.com", "a b"]}),
            "rules[2].match.not_hosts[1]",
        ),
        (
            |c| c["rules"][2]["bind"] = json!([{"claim": "t", "path_param": "t"}]),
            "rules[2].bind[0].path_param",
        ),
        (
            |c| {
                c["rules"][2]["match"] = json!({"paths": ["/t/{t}", "/u/{u}"]});
                c["rules"][2]["bind"] = json!([{"claim": "t", "path_param": "t"}]);
            },
            "rules[2].bind[0].path_param",
        ),
        (
            |c| {
                c["rules"][2]["match"] = json!({"paths": ["/t/{t}", "/t/*"]});
                c["rules"][2]["bind"] = json!([{"claim": "t", "path_param": "t"}]);
            },
            "rules[2].bind[0].path_param",
        ),
        (|c| c["rules"][2]["bind"] = json!([]), "rules[2].bind"),
        (
            |c| c["rules"][2]["bind"] = json!([{"header": "x-t"}]),
            "rules[2].bind[0].claim",
        ),
        (
            |c| c["rules"][2]["bind"] = json!([{"claim": "t"}]),
            "rules[2].bind[0].path_param",
        ),
        (
            |c| c["rules"][2]["bind"] = json!([{"claim": "t", "issuer_param": "t", "header": "x"}]),
            "rules[2].bind[0].issuer_param",
        ),
        (
            |c| c["rules"][2]["bind"] = json!([{"claim": "t", "header": "x", "path_param": "t"}]),
            "rules[2].bind[0].header",
        ),
        (
            |c| c["rules"][2]["bind"] = json!([{"claim": "t", "header": "X-T"}]),
            "rules[2].bind[0].header",
        ),
        (
            |c| c["rules"][2]["bind"] = json!([{"claim": "t", "header": ":path"}]),
            "rules[2].bind[0].header",
        ),
        (
            |c| c["rules"][2]["bind"] = json!([{"claim": "a..b", "header": "x"}]),
            "rules[2].bind[0].claim",
        ),
        (
            // The issuer has no placeholder.
            |c| c["rules"][2]["bind"] = json!([{"issuer_param": "tenant", "header": "x"}]),
            "rules[2].bind[0].issuer_param",
        ),
        (
            |c| {
                templated(c);
                c["rules"][2]["bind"] = json!([{"issuer_param": "region", "header": "x"}]);
            },
            "rules[2].bind[0].issuer_param",
        ),
        (
            |c| c["rules"][1]["bind"] = json!([{"claim": "t", "header": "x"}]),
            "rules[1].disabled",
        ),
        (
            |c| c["providers"]["corp"]["issuer"] = json!(ENTRA),
            "providers.corp.issuer_params",
        ),
        (
            |c| {
                templated(c);
                c["providers"]["corp"]["issuer_params"] = json!({"tenant": ["a/b"]});
            },
            "providers.corp.issuer_params.tenant[0]",
        ),
        (
            |c| {
                templated(c);
                c["providers"]["corp"]["issuer_params"] = json!({"tenant": ["a"], "x": ["b"]});
            },
            "providers.corp.issuer_params.x",
        ),
        (
            |c| {
                c["providers"]["corp"]["issuer"] = json!("https://{a}.{b}.example");
                c["providers"]["corp"]["issuer_params"] = json!({"a": ["*"], "b": ["*"]});
            },
            "providers.corp.issuer",
        ),
        (
            |c| c["providers"]["corp"]["issuer_params"] = json!({"tenant": ["a"]}),
            "providers.corp.issuer_params",
        ),
    ];
    for (edit, field) in cases {
        let err = compile_with(edit).expect_err("refused");
        assert_eq!(err.field, field, "{err}");
    }
}
