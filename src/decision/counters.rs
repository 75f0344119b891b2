//! The counters a verdict is reported under, named once per configuration: overall, per rule and
//! per provider, one per outcome and reason (`jwt_guard.allowed`, `jwt_guard.dry_run`,
//! `jwt_guard.refused.<status>.<reason>`, and the same under `jwt_guard.rule.<label>.` and
//! `jwt_guard.provider.<name>.`), the token cache's hits and misses, and unknown route
//! bindings. A host defines [`CounterPlan::names`] in order and keeps the ids it got back in the
//! same order; [`CounterPlan::of`] then says which of them one verdict increments.

use crate::config::Config;
use crate::decision::{Decision, Verdict};
use crate::reason::{AuthFailure, Forbidden, Refusal};

/// Every refusal, in the order of the `refused` counters of each tally.
pub fn all_refusals() -> impl Iterator<Item = Refusal> {
    AuthFailure::ALL
        .iter()
        .map(|f| Refusal::Unauthorized(*f))
        .chain(Forbidden::ALL.iter().map(|f| Refusal::Forbidden(*f)))
}

/// The counters of one configuration, by name; each name's position is its index.
pub struct CounterPlan {
    names: Vec<String>,
    /// Where each tally's counters start: overall, then rules, then providers.
    total: Tally,
    rules: Vec<Tally>,
    providers: Vec<Tally>,
    cache_hit: usize,
    cache_miss: usize,
    route_rule_unknown: usize,
}

/// One prefix's counters: indexes into [`CounterPlan::names`]. Per rule or provider, "no rule"
/// cannot happen, so it has no series there.
struct Tally {
    allowed: usize,
    dry_run: usize,
    /// As [`all_refusals`].
    refused: Vec<Option<usize>>,
}

impl CounterPlan {
    pub fn new(config: &Config) -> CounterPlan {
        let mut names = Vec::new();
        let total = Tally::name(&mut names, "jwt_guard", true);
        let rules = config
            .rules
            .iter()
            .map(|rule| Tally::name(&mut names, &format!("jwt_guard.rule.{}", rule.label), false))
            .collect();
        let providers = config
            .providers
            .iter()
            .map(|p| Tally::name(&mut names, &format!("jwt_guard.provider.{}", p.name), false))
            .collect();
        let mut push = |name: &str| {
            names.push(name.to_string());
            names.len() - 1
        };
        let cache_hit = push("jwt_guard.token_cache.hit");
        let cache_miss = push("jwt_guard.token_cache.miss");
        let route_rule_unknown = push("jwt_guard.route_rule_unknown");
        CounterPlan {
            names,
            total,
            rules,
            providers,
            cache_hit,
            cache_miss,
            route_rule_unknown,
        }
    }

    /// Every counter's name, in index order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The counters `verdict` increments (overall, its rule's, its provider's, and
    /// `route_rule_unknown`), at most four.
    pub fn of(&self, verdict: &Verdict) -> impl Iterator<Item = usize> {
        let refusal = match &verdict.decision {
            Decision::Refuse(refused) => all_refusals().position(|r| r == refused.refusal),
            Decision::Allow { .. } => None,
        };
        let rule = verdict.rule.and_then(|i| self.rules.get(i));
        let provider = verdict.provider.and_then(|i| self.providers.get(i));
        [Some(&self.total), rule, provider]
            .into_iter()
            .map(move |tally| tally.and_then(|t| t.of(&verdict.decision, refusal)))
            .chain([verdict
                .unknown_route_rule
                .then_some(self.route_rule_unknown)])
            .flatten()
    }

    /// The counter for a request that consulted the token cache: a hit, a miss, or none.
    pub fn cache(&self, hit: bool, miss: bool) -> Option<usize> {
        if hit {
            Some(self.cache_hit)
        } else if miss {
            Some(self.cache_miss)
        } else {
            None
        }
    }
}

impl Tally {
    fn name(names: &mut Vec<String>, prefix: &str, overall: bool) -> Tally {
        let mut push = |name: String| {
            names.push(name);
            names.len() - 1
        };
        let allowed = push(format!("{prefix}.allowed"));
        let dry_run = push(format!("{prefix}.dry_run"));
        let refused = all_refusals()
            .map(|r| {
                (overall || r != Refusal::Forbidden(Forbidden::NoMatchingRule))
                    .then(|| push(format!("{prefix}.refused.{}.{}", r.status(), r.code())))
            })
            .collect();
        Tally {
            allowed,
            dry_run,
            refused,
        }
    }

    fn of(&self, decision: &Decision, refusal: Option<usize>) -> Option<usize> {
        match decision {
            Decision::Allow { dry_run: None, .. } => Some(self.allowed),
            Decision::Allow {
                dry_run: Some(_), ..
            } => Some(self.dry_run),
            Decision::Refuse(_) => refusal.and_then(|i| self.refused.get(i).copied().flatten()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Refused;
    use crate::testing::testutil;

    fn config() -> Config {
        let json = serde_json::json!({
            "providers": {"corp": {"issuer": testutil::issuer(), "jwks": testutil::jwks()}},
            "rules": [{"name": "api", "match": {"prefix": "/"}, "provider": "corp"}]
        });
        match Config::from_json(json.to_string().as_bytes()) {
            Ok(config) => config,
            Err(err) => unreachable!("test configuration refused: {err}"),
        }
    }

    fn verdict(decision: Decision, rule: Option<usize>, provider: Option<usize>) -> Verdict {
        Verdict {
            decision,
            rule,
            provider,
            claims: None,
            unknown_route_rule: false,
        }
    }

    fn names_of(plan: &CounterPlan, verdict: &Verdict) -> Vec<String> {
        plan.of(verdict).map(|i| plan.names()[i].clone()).collect()
    }

    #[test]
    fn each_verdict_names_its_counters() {
        let plan = CounterPlan::new(&config());
        let allow = Decision::Allow {
            changes: vec![],
            dry_run: None,
        };
        let expired = Decision::Refuse(Refused {
            refusal: Refusal::Unauthorized(AuthFailure::Expired),
            scope_hint: None,
            dpop: None,
            custom: None,
        });
        let no_rule = Decision::Refuse(Refused {
            refusal: Refusal::Forbidden(Forbidden::NoMatchingRule),
            scope_hint: None,
            dpop: None,
            custom: None,
        });
        let dry = Decision::Allow {
            changes: vec![],
            dry_run: Some(Refusal::Forbidden(Forbidden::MissingRole)),
        };
        let table: [(Verdict, &[&str]); 4] = [
            (
                verdict(allow, Some(0), Some(0)),
                &[
                    "jwt_guard.allowed",
                    "jwt_guard.rule.api.allowed",
                    "jwt_guard.provider.corp.allowed",
                ],
            ),
            (
                verdict(expired, Some(0), Some(0)),
                &[
                    "jwt_guard.refused.401.expired",
                    "jwt_guard.rule.api.refused.401.expired",
                    "jwt_guard.provider.corp.refused.401.expired",
                ],
            ),
            (
                Verdict {
                    unknown_route_rule: true,
                    ..verdict(no_rule, None, None)
                },
                &[
                    "jwt_guard.refused.403.no_matching_rule",
                    "jwt_guard.route_rule_unknown",
                ],
            ),
            (
                verdict(dry, Some(0), None),
                &["jwt_guard.dry_run", "jwt_guard.rule.api.dry_run"],
            ),
        ];
        for (verdict, expected) in table {
            assert_eq!(names_of(&plan, &verdict), expected, "{verdict:?}");
        }
    }

    #[test]
    fn names_are_unique_and_per_rule_tallies_have_no_no_matching_rule() {
        let plan = CounterPlan::new(&config());
        let mut sorted = plan.names().to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), plan.names().len());
        assert!(
            plan.names()
                .contains(&"jwt_guard.refused.403.no_matching_rule".to_string())
        );
        assert!(
            !plan
                .names()
                .iter()
                .any(|n| n.starts_with("jwt_guard.rule.") && n.ends_with("no_matching_rule"))
        );
        assert_eq!(
            plan.cache(true, false).map(|i| plan.names()[i].as_str()),
            Some("jwt_guard.token_cache.hit")
        );
        assert_eq!(plan.cache(false, false), None);
    }
}
