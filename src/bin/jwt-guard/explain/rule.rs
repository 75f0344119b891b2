//! Explain's `rule:` section: the rule that applies (or none), the rules skipped before it and
//! why, and the chosen rule's settings.

use jwt_guard::config::{Authentication, Config, PathMatch, Rule, RuleAction};
use jwt_guard::decision::MatchPart;
use jwt_guard::request::Selection;

use super::explained::{Explained, Lines, provider_name};
use crate::compiled::describe_match;

/// The `rule:` section: which rule applies and why (bound by the route, or the first whose
/// match holds, with why each rule before it was skipped), then its settings.
pub fn lines(
    explained: &Explained,
    lines: &mut Lines,
    selection: &Selection,
    bound: Option<&str>,
    ambiguous_host: bool,
) {
    let config = explained.config;
    lines.add(0, "rule:");
    match (selection, bound) {
        (Selection::Rule(index), Some(name)) => lines.add(
            1,
            format!(
                "{}: bound by the route's metadata (filter_metadata.jwt_guard.rule = {name:?}), whatever its match",
                rule_title(config, *index)
            ),
        ),
        (_, Some("")) => lines.add(
            1,
            "the route's metadata (filter_metadata.jwt_guard) binds no rule: its one member `rule` is missing, empty, not text, or has other members beside it → 403 no_matching_rule (fail closed)",
        ),
        (_, Some(name)) => lines.add(
            1,
            format!(
                "the route's metadata names rule {name:?}, which this configuration does not have → 403 no_matching_rule (fail closed)"
            ),
        ),
        _ if ambiguous_host => lines.add(
            1,
            format!(
                "rules match on hosts, and the host {:?} is not a plain name or address: no rule matches → 403 no_matching_rule",
                String::from_utf8_lossy(explained.request.host())
            ),
        ),
        (Selection::Rule(index), None) => {
            for (skipped, rule) in config.rules.iter().enumerate().take(*index) {
                lines.add(1, why_skipped(explained, skipped, rule));
            }
            if let Some(rule) = config.rules.get(*index) {
                lines.add(
                    1,
                    format!(
                        "{}: the first rule whose match holds ({})",
                        rule_title(config, *index),
                        describe_match(rule.matcher.as_ref())
                    ),
                );
            }
        }
        (Selection::NoRule | Selection::UnknownRouteRule, None) => {
            for (skipped, rule) in config.rules.iter().enumerate() {
                lines.add(1, why_skipped(explained, skipped, rule));
            }
            lines.add(1, "no rule matches → 403 no_matching_rule (fail closed)");
        }
    }
    if let Selection::Rule(index) = selection
        && let Some(rule) = config.rules.get(*index)
    {
        lines.add(1, format!("settings: {}", describe_rule(config, rule)));
    }
    let deny: Vec<String> = config
        .rules
        .iter()
        .enumerate()
        .filter(|(_, rule)| rule.action == RuleAction::Deny)
        .map(|(index, rule)| {
            format!(
                "{} ({}; {})",
                rule_title(config, index),
                describe_match(rule.matcher.as_ref()).replace(
                    "no match: only routes whose metadata names it",
                    "every request"
                ),
                describe_rule(config, rule)
            )
        })
        .collect();
    if !deny.is_empty() {
        lines.add(
            1,
            format!(
                "deny rules, checked after authentication: {}",
                deny.join("; ")
            ),
        );
    }
}

fn why_skipped(explained: &Explained, index: usize, rule: &Rule) -> String {
    if rule.action == RuleAction::Deny {
        return format!(
            "skipped {}: a deny rule (never selected; checked after authentication)",
            rule_title(explained.config, index)
        );
    }
    let Some(matcher) = &rule.matcher else {
        return format!(
            "skipped {}: it has no match (only routes whose metadata names it)",
            rule_title(explained.config, index)
        );
    };
    let why: Vec<String> = matcher
        .mismatches(explained.request)
        .into_iter()
        .map(|part| match part {
            MatchPart::Path => format!(
                "path {:?} is not {}",
                String::from_utf8_lossy(explained.request.path()),
                match &matcher.path {
                    PathMatch::Prefix(prefix) => format!("under prefix {prefix:?}"),
                    PathMatch::Exact(path) => format!("{path:?}"),
                    PathMatch::Any => "any path".to_string(),
                    PathMatch::Patterns(patterns) =>
                        format!("one of paths [{}]", super::bind::patterns(patterns)),
                }
            ),
            MatchPart::NotPath => format!(
                "path {:?} is one of not_paths [{}]",
                String::from_utf8_lossy(explained.request.path()),
                super::bind::patterns(&matcher.not_paths)
            ),
            MatchPart::NotMethod => format!(
                "method {} is one of not_methods [{}]",
                String::from_utf8_lossy(explained.request.method()),
                matcher.not_methods.join(", ")
            ),
            MatchPart::NotHost => format!(
                "host {:?} is one of not_hosts [{}]",
                String::from_utf8_lossy(explained.request.host()),
                matcher.not_hosts.join(", ")
            ),
            MatchPart::Method => format!(
                "method {} is not one of [{}]",
                String::from_utf8_lossy(explained.request.method()),
                matcher.methods.join(", ")
            ),
            MatchPart::Host => format!(
                "host {:?} is not one of [{}]",
                String::from_utf8_lossy(explained.request.host()),
                matcher.hosts.join(", ")
            ),
            MatchPart::RouteName => format!(
                "route name {} is not {:?}",
                explained
                    .input
                    .route_name
                    .as_deref()
                    .map_or("(none)".to_string(), |n| format!("{n:?}")),
                matcher.route_name.as_deref().unwrap_or_default()
            ),
        })
        .collect();
    format!(
        "skipped {}: {}",
        rule_title(explained.config, index),
        why.join("; ")
    )
}

fn rule_title(config: &Config, index: usize) -> String {
    match config.rules.get(index) {
        Some(rule) => format!("rules[{index}] ({})", rule.label),
        None => format!("rules[{index}]"),
    }
}

fn describe_rule(config: &Config, rule: &Rule) -> String {
    let mut parts = Vec::new();
    match &rule.authentication {
        _ if rule.action == RuleAction::Deny => parts.push("action deny".to_string()),
        Authentication::Disabled => parts.push("disabled".to_string()),
        Authentication::Required(providers) | Authentication::Optional(providers) => {
            let names: Vec<&str> = providers
                .iter()
                .map(|&p| provider_name(config, p))
                .collect();
            parts.push(format!("providers [{}]", names.join(", ")));
            if matches!(rule.authentication, Authentication::Optional(_)) {
                parts.push("allow_anonymous".to_string());
            }
        }
    }
    let policy = &rule.policy;
    for (present, name) in [
        (policy.roles.is_some(), "roles"),
        (policy.scopes.is_some(), "scopes"),
        (!policy.claims.is_empty(), "claims"),
        (policy.source_ips.is_some(), "source_ips"),
        (policy.countries.is_some(), "countries"),
        (policy.bind_ip_claim.is_some(), "bind_ip_claim"),
        (!policy.headers.is_empty(), "headers"),
        (policy.principals.is_some(), "principals"),
        (rule.fall_through, "fall_through"),
        (rule.bind.is_some(), "bind"),
    ] {
        if present {
            parts.push(name.to_string());
        }
    }
    if rule.dry_run || config.dry_run {
        parts.push("dry_run".to_string());
    }
    if let Some(refusal) = &rule.refusal {
        let mut kinds = Vec::new();
        if refusal.forbidden {
            kinds.push("403");
        }
        if refusal.unauthorized {
            kinds.push("401");
        }
        parts.push(format!(
            "refusal {} for its {}{}",
            refusal.status,
            kinds.join(" and "),
            if refusal.body.is_some() {
                ", own body"
            } else {
                ""
            }
        ));
    }
    parts.join(", ")
}
