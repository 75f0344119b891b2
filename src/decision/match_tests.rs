//! `match.paths` / `not_*`, `bind` and issuer templates through `decide`, on the fixtures'
//! fixed clock (tokens minted by PyJWT: `iss` https://idp.example.com, `sub` alice).

use serde_json::json;

use super::decide::decide_traced;
use super::verdict::Decision;
use crate::authn::Authenticator;
use crate::authn::cache::TokenCache;
use crate::authn::verify::PureRustVerifier;
use crate::config::Config;
use crate::reason::Judgement;
use crate::request::{Request, headers};
use crate::testing::testutil;
use crate::trace::{PolicyCheck, Step};

fn config() -> Config {
    let json = json!({
        "providers": {"tenants": {
            "issuer": "https://{host}.example.com",
            "issuer_params": {"host": ["idp", "login"]},
            "jwks": testutil::jwks(),
        }},
        "rules": [
            {"match": {"paths": ["/t/{host}/{**}"]}, "provider": "tenants",
             "bind": [{"issuer_param": "host", "path_param": "host"},
                      {"claim": "sub", "header": "x-user"}]},
            {"match": {"paths": ["/any/*", "*/list"], "not_paths": ["/any/admin"],
                       "not_methods": ["DELETE"]}, "provider": "tenants"},
        ]
    });
    Config::from_json(json.to_string().as_bytes()).unwrap()
}

/// The outcome and the binding checks the trace recorded.
fn decide(
    config: &Config,
    method: &str,
    path: &str,
    user: Option<&str>,
    token: Option<&str>,
) -> (String, Vec<(usize, bool)>) {
    let token = token.map(|name| format!("Bearer {}", testutil::token(name)));
    let mut pairs = vec![(":method", method), (":path", path)];
    pairs.extend(user.map(|u| ("x-user", u)));
    pairs.extend(token.as_deref().map(|t| ("authorization", t)));
    let h = headers(&pairs);
    let clock = || Some(testutil::now());
    let mut cache = TokenCache::new(0);
    let mut auth = Authenticator {
        verifier: &PureRustVerifier,
        cache: &mut cache,
        clock: &clock,
        judged_by: None,
        replay: &crate::authn::dpop::MemoryReplayStore::default(),
        presented_with_dpop: false,
        dpop_nonce: None,
    };
    let mut steps = Vec::new();
    let verdict = decide_traced(config, &Request::bare(&h), &mut auth, &mut steps);
    let outcome = match verdict.decision {
        Decision::Allow { .. } => "allow".to_string(),
        Decision::Refuse(refused) => {
            format!("{} {}", refused.refusal.status(), refused.refusal.code())
        }
    };
    let binds = steps
        .iter()
        .filter_map(|step| match step {
            Step::Policy {
                check: PolicyCheck::Bind(index),
                result,
                ..
            } => Some((*index, *result == Judgement::Holds)),
            _ => None,
        })
        .collect();
    (outcome, binds)
}

#[test]
fn patterns_bind_and_issuer_templates_decide() {
    let config = config();
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
        Vec<(usize, bool)>,
    );
    let valid = Some("valid_ES256");
    let cases: Vec<Case> = vec![
        (
            "GET",
            "/t/idp/orders",
            Some("alice"),
            valid,
            "allow",
            vec![(0, true), (1, true)],
        ),
        (
            "GET",
            "/t/idp",
            Some("alice"),
            valid,
            "allow",
            vec![(0, true), (1, true)],
        ),
        // The issuer's tenant is not the path's; the user is not the token's.
        (
            "GET",
            "/t/login/orders",
            Some("alice"),
            valid,
            "403 binding_mismatch",
            vec![(0, false)],
        ),
        (
            "GET",
            "/t/idp/orders",
            Some("bob"),
            valid,
            "403 binding_mismatch",
            vec![(0, true), (1, false)],
        ),
        (
            "GET",
            "/t/idp/orders",
            None,
            valid,
            "403 binding_mismatch",
            vec![(0, true), (1, false)],
        ),
        // bind needs a token; an issuer the template does not allow is bad_issuer.
        (
            "GET",
            "/t/idp/orders",
            Some("alice"),
            None,
            "401 missing",
            vec![],
        ),
        (
            "GET",
            "/t/evil/orders",
            Some("alice"),
            Some("bad_issuer"),
            "401 bad_issuer",
            vec![],
        ),
        ("GET", "/any/x", None, valid, "allow", vec![]),
        ("GET", "/x/list", None, valid, "allow", vec![]),
        (
            "GET",
            "/any/x",
            None,
            Some("bad_issuer"),
            "401 bad_issuer",
            vec![],
        ),
        (
            "GET",
            "/any/admin",
            None,
            valid,
            "403 no_matching_rule",
            vec![],
        ),
        (
            "DELETE",
            "/any/x",
            None,
            valid,
            "403 no_matching_rule",
            vec![],
        ),
        ("GET", "/xlist", None, valid, "403 no_matching_rule", vec![]),
        ("GET", "/list", None, valid, "allow", vec![]),
    ];
    for (method, path, user, token, expected, binds) in cases {
        assert_eq!(
            decide(&config, method, path, user, token),
            (expected.to_string(), binds),
            "{method} {path} {user:?} {token:?}"
        );
    }
}
