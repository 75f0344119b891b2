//! Explain's `policy:` section: the client address and country the checks used, and each policy
//! check (source_ips, bind_ip_claim, countries, roles, scopes, claims) with what it compared.

use jwt_guard::authz::address::ClientIpSource;
use jwt_guard::authz::conditions::{Pattern, principal};
use jwt_guard::config::RuleAction;
use jwt_guard::reason::Judgement;
use jwt_guard::request::Country;
use jwt_guard::trace::{PolicyCheck, Step};

use super::explained::{Explained, Lines, compact};

fn title(explained: &Explained, index: usize) -> String {
    match explained.config.rules.get(index) {
        Some(rule) => format!("rules[{index}] ({})", rule.label),
        None => format!("rules[{index}]"),
    }
}

/// The `policy:` section, when the rule has a policy that ran: the client address and
/// country and where they came from, then each check with the values it compared.
pub fn lines(explained: &Explained, lines: &mut Lines) {
    let steps: Vec<&Step> = explained
        .steps
        .iter()
        .filter(|s| {
            matches!(
                s,
                Step::ClientIp(_)
                    | Step::Country(_)
                    | Step::Policy { .. }
                    | Step::DenyRule { .. }
                    | Step::FallThrough { .. }
            )
        })
        .collect();
    if steps.is_empty() {
        return;
    }
    lines.add(0, "policy:");
    let claims = explained.verdict.claims.as_deref();
    let client_ip = explained.steps.iter().find_map(|s| match s {
        Step::ClientIp(ip) => Some(*ip),
        _ => None,
    });
    let ip_text = client_ip
        .flatten()
        .map_or("(unknown)".to_string(), |ip| ip.to_string());
    let mut current_rule = None;
    for step in steps {
        match step {
            Step::DenyRule {
                rule,
                applies,
                denied,
            } => {
                let title = title(explained, *rule);
                let text = match (applies, denied) {
                    (false, _) => format!("deny {title}: its match does not fit"),
                    (true, true) => format!(
                        "deny {title}: every condition holds or cannot be decided → 403 denied"
                    ),
                    (true, false) => format!("deny {title}: a condition fails: it does not deny"),
                };
                lines.add(1, text);
            }
            Step::FallThrough { from, to, why } => {
                let text = match to {
                    Some(to) => format!(
                        "fall_through: {} refused, {} tries with the same authentication",
                        title(explained, *from),
                        title(explained, *to)
                    ),
                    None => format!(
                        "fall_through: {} refused and its refusal stands: {why}",
                        title(explained, *from)
                    ),
                };
                lines.add(1, text);
            }
            Step::ClientIp(ip) => {
                let source = match &explained.config.client_ip {
                    ClientIpSource::Peer => {
                        "the peer address Envoy decided on (source.address)".to_string()
                    }
                    ClientIpSource::ForwardedFor { trusted_hops } => {
                        format!("X-Forwarded-For, entry {trusted_hops} from the right")
                    }
                };
                lines.add(
                    1,
                    format!(
                        "client address: {} (from {source})",
                        ip.map_or("unknown: no address check passes".to_string(), |ip| ip
                            .to_string())
                    ),
                );
            }
            Step::Country(country) => {
                let from_header = explained
                    .config
                    .country_header
                    .as_deref()
                    .is_some_and(|name| explained.request.has(name));
                let source = match (
                    &explained.config.country_header,
                    &explained.config.country_claim,
                ) {
                    (Some(header), _) if from_header => format!("header {header}"),
                    (_, Some(claim)) => format!("claim {}", claim.name()),
                    (Some(header), None) => format!("header {header}, absent"),
                    (None, None) => "nowhere".to_string(),
                };
                let text = match country {
                    Country::Known(code) => code.clone(),
                    Country::Unknown => "unknown".to_string(),
                    Country::Invalid => "not a country code (or sent twice)".to_string(),
                };
                lines.add(1, format!("client country: {text} (from {source})"));
            }
            Step::Policy {
                rule: at,
                check,
                result,
            } => {
                let Some(rule) = explained.config.rules.get(*at) else {
                    continue;
                };
                if current_rule != Some(*at) {
                    current_rule = Some(*at);
                    let kind = match rule.action {
                        RuleAction::Allow => "conditions of",
                        RuleAction::Deny => "conditions of deny",
                    };
                    lines.add(1, format!("{kind} {}:", title(explained, *at)));
                }
                let policy = &rule.policy;
                let verdict = match result {
                    Judgement::Holds => "ok".to_string(),
                    Judgement::Fails(reason) => format!("→ {}", reason.code()),
                    Judgement::Unknown(reason) => {
                        format!("cannot be decided ({})", reason.code())
                    }
                };
                let text = match check {
                    PolicyCheck::Header(index) => match policy.headers.get(*index) {
                        Some(h) => {
                            let list = |l: &[Pattern]| {
                                l.iter().map(Pattern::text).collect::<Vec<_>>().join(", ")
                            };
                            let sent = explained
                                .request
                                .headers
                                .iter()
                                .filter(|(n, _)| n.eq_ignore_ascii_case(&h.name))
                                .count();
                            format!(
                                "headers[{index}] {}{}{}{}, sent {sent} time(s) (values not shown): {verdict}",
                                h.name,
                                h.present.map_or(String::new(), |p| format!(" present {p}")),
                                if h.values.is_empty() {
                                    String::new()
                                } else {
                                    format!(" values [{}]", list(&h.values))
                                },
                                if h.not_values.is_empty() {
                                    String::new()
                                } else {
                                    format!(" not_values [{}]", list(&h.not_values))
                                },
                            )
                        }
                        None => format!("headers[{index}]: {verdict}"),
                    },
                    PolicyCheck::Principals => {
                        let (any, none) = policy.principals.as_ref().map_or(
                            (String::new(), String::new()),
                            |p| {
                                let list = |l: &[Pattern]| {
                                    l.iter().map(Pattern::text).collect::<Vec<_>>().join(", ")
                                };
                                (list(&p.any), list(&p.none))
                            },
                        );
                        let principal = claims.map_or("(anonymous)".to_string(), |c| {
                            principal(c).unwrap_or_else(|| "(no string iss and sub)".to_string())
                        });
                        format!(
                            "principals any [{any}] none [{none}], token's {principal}: {verdict}"
                        )
                    }
                    PolicyCheck::SourceIps => {
                        let (allow, deny) = policy
                            .source_ips
                            .as_ref()
                            .map_or((String::new(), String::new()), |r| {
                                (nets(r.allow.nets()), nets(r.deny.nets()))
                            });
                        format!(
                            "source_ips allow [{allow}] deny [{deny}], client {ip_text}: {verdict}"
                        )
                    }
                    PolicyCheck::BindIpClaim => {
                        let path = policy.bind_ip_claim.as_ref();
                        format!(
                            "bind_ip_claim {}: token holds {}, client {ip_text}: {verdict}",
                            path.map_or("", |p| p.name()),
                            path.and_then(|p| claims.and_then(|c| p.lookup(c)))
                                .map_or("(nothing)".to_string(), compact)
                        )
                    }
                    PolicyCheck::Countries => {
                        let (allow, deny) = policy
                            .countries
                            .as_ref()
                            .map_or((String::new(), String::new()), |r| {
                                (r.allow.join(", "), r.deny.join(", "))
                            });
                        format!("countries allow [{allow}] deny [{deny}]: {verdict}")
                    }
                    PolicyCheck::Roles => {
                        let granted = claims
                            .map(|c| explained.config.roles_claim.strings(c))
                            .unwrap_or_default();
                        let (any, all) = policy
                            .roles
                            .as_ref()
                            .map_or((String::new(), String::new()), |r| {
                                (r.any.join(", "), r.all.join(", "))
                            });
                        let none = policy
                            .roles
                            .as_ref()
                            .filter(|r| !r.none.is_empty())
                            .map_or(String::new(), |r| format!(" none [{}]", r.none.join(", ")));
                        format!(
                            "roles any [{any}] all [{all}]{none}, token's {} [{}]: {verdict}",
                            explained.config.roles_claim.name(),
                            granted.join(", ")
                        )
                    }
                    PolicyCheck::Scopes => {
                        let granted = claims
                            .map(|c| explained.config.scopes_claim.strings(c))
                            .unwrap_or_default();
                        let (any, all) = policy
                            .scopes
                            .as_ref()
                            .map_or((String::new(), String::new()), |r| {
                                (r.any.join(", "), r.all.join(", "))
                            });
                        let none = policy
                            .scopes
                            .as_ref()
                            .filter(|r| !r.none.is_empty())
                            .map_or(String::new(), |r| format!(" none [{}]", r.none.join(", ")));
                        format!(
                            "scopes any [{any}] all [{all}]{none}, token's {} [{}]: {verdict}",
                            explained.config.scopes_claim.name(),
                            granted.join(", ")
                        )
                    }
                    PolicyCheck::Claim(index) => match policy.claims.get(*index) {
                        Some(claim) => {
                            let list = |values: &[serde_json::Value]| {
                                values.iter().map(compact).collect::<Vec<_>>().join(", ")
                            };
                            let mut wanted = Vec::new();
                            if !claim.values.is_empty() {
                                wanted.push(format!("in [{}]", list(&claim.values)));
                            }
                            if !claim.not_values.is_empty() {
                                wanted.push(format!("not in [{}]", list(&claim.not_values)));
                            }
                            format!(
                                "claims[{index}] {} {}, token has {}: {verdict}",
                                claim.path.name(),
                                wanted.join(" and "),
                                claims
                                    .and_then(|c| claim.path.lookup(c))
                                    .map_or("(nothing)".to_string(), compact)
                            )
                        }
                        None => format!("claims[{index}]: {verdict}"),
                    },
                    PolicyCheck::Bind(index) => {
                        super::bind::bind_line(explained, rule, *index, &verdict)
                    }
                };
                lines.add(1, text);
            }
            _ => {}
        }
    }
}

fn nets(nets: &[ipnet::IpNet]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
