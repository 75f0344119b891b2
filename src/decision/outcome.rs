//! A request's outcome as one JSON object, for Envoy's access logs and later filters
//! (`outcome_in_filter_state`): what was decided, by which rule, for whom.

use serde_json::{Map, Value};

use crate::config::Config;
use crate::decision::{Decision, Verdict};

/// `{"decision": "allowed"|"refused"|"dry_run", "status", "reason", "rule", "provider",
/// "sub"}`; members that do not apply are left out. `sub` only ever comes from a verified
/// token. JSON escaping keeps whatever a `sub` holds on one log line.
pub fn render(config: &Config, verdict: &Verdict) -> String {
    let mut out = Map::new();
    let (decision, refusal) = match &verdict.decision {
        Decision::Allow { dry_run: None, .. } => ("allowed", None),
        Decision::Allow {
            dry_run: Some(refusal),
            ..
        } => ("dry_run", Some(*refusal)),
        Decision::Refuse(refused) => ("refused", Some(refused.refusal)),
    };
    out.insert("decision".into(), decision.into());
    if let Some(refusal) = refusal {
        out.insert("status".into(), refusal.status().into());
        out.insert("reason".into(), refusal.code().into());
    }
    if let Some(rule) = verdict.rule.and_then(|i| config.rules.get(i)) {
        out.insert("rule".into(), rule.label.clone().into());
    }
    if let Some(provider) = verdict.provider.and_then(|i| config.providers.get(i)) {
        out.insert("provider".into(), provider.name.clone().into());
    }
    if let Some(sub) = verdict.claims.as_ref().and_then(|claims| claims.get("sub")) {
        out.insert("sub".into(), sub.clone());
    }
    Value::Object(out).to_string()
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use serde_json::json;

    use super::*;
    use crate::authn::claims::VerifiedClaims;
    use crate::decision::Refused;
    use crate::reason::{AuthFailure, Forbidden, Refusal};

    fn config() -> Config {
        let json = json!({
            "providers": {"corp": {"issuer": "https://idp", "jwks": crate::testing::testutil::jwks()}},
            "rules": [{"name": "orders", "match": {"prefix": "/"}}],
        });
        Config::from_json(json.to_string().as_bytes()).unwrap()
    }

    fn claims(value: serde_json::Value) -> Option<Rc<VerifiedClaims>> {
        let serde_json::Value::Object(map) = value else {
            unreachable!()
        };
        Some(Rc::new(VerifiedClaims::for_tests(map)))
    }

    #[test]
    fn renders_each_kind_of_outcome() {
        let config = config();
        let refused = |refusal| {
            Decision::Refuse(Refused {
                refusal,
                scope_hint: None,
                dpop: None,
                custom: None,
            })
        };
        let table = [
            (
                Verdict {
                    decision: Decision::Allow {
                        changes: vec![],
                        dry_run: None,
                    },
                    rule: Some(0),
                    provider: Some(0),
                    claims: claims(json!({"sub": "alice\n\"x\"", "roles": ["a"]})),
                    unknown_route_rule: false,
                },
                r#"{"decision":"allowed","provider":"corp","rule":"orders","sub":"alice\n\"x\""}"#,
            ),
            (
                Verdict {
                    decision: refused(Refusal::Unauthorized(AuthFailure::Expired)),
                    rule: Some(0),
                    provider: Some(0),
                    claims: None,
                    unknown_route_rule: false,
                },
                r#"{"decision":"refused","provider":"corp","reason":"expired","rule":"orders","status":401}"#,
            ),
            (
                Verdict {
                    decision: refused(Refusal::Forbidden(Forbidden::NoMatchingRule)),
                    rule: None,
                    provider: None,
                    claims: None,
                    unknown_route_rule: true,
                },
                r#"{"decision":"refused","reason":"no_matching_rule","status":403}"#,
            ),
            (
                Verdict {
                    decision: Decision::Allow {
                        changes: vec![],
                        dry_run: Some(Refusal::Forbidden(Forbidden::MissingRole)),
                    },
                    rule: Some(0),
                    provider: Some(0),
                    claims: claims(json!({"sub": 42})),
                    unknown_route_rule: false,
                },
                r#"{"decision":"dry_run","provider":"corp","reason":"missing_role","rule":"orders","status":403,"sub":42}"#,
            ),
        ];
        for (verdict, expected) in table {
            assert_eq!(render(&config, &verdict), expected);
        }
    }
}
