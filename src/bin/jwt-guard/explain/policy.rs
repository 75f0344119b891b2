//! Explain's `policy:` section: the client address and country the checks used, and each policy
//! check (source_ips, bind_ip_claim, countries, roles, scopes, claims) with what it compared.

use jwt_guard::authz::address::ClientIpSource;
use jwt_guard::request::Country;
use jwt_guard::trace::{PolicyCheck, Step};

use super::explained::{Explained, Lines, compact, ok_or};

/// The `policy:` section, when the rule has a policy that ran: the client address and
/// country and where they came from, then each check with the values it compared.
pub fn lines(explained: &Explained, lines: &mut Lines) {
    let Some(rule) = explained.rule() else {
        return;
    };
    let policy = &rule.policy;
    let steps: Vec<&Step> = explained
        .steps
        .iter()
        .filter(|s| {
            matches!(
                s,
                Step::ClientIp(_) | Step::Country(_) | Step::Policy { .. }
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
    for step in steps {
        match step {
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
            Step::Policy { check, result } => {
                let verdict = ok_or(*result, |f| f.code());
                let text = match check {
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
                        format!(
                            "roles any [{any}] all [{all}], token's {} [{}]: {verdict}",
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
                        format!(
                            "scopes any [{any}] all [{all}], token's {} [{}]: {verdict}",
                            explained.config.scopes_claim.name(),
                            granted.join(", ")
                        )
                    }
                    PolicyCheck::Claim(index) => match policy.claims.get(*index) {
                        Some(claim) => format!(
                            "claims[{index}] {} in [{}], token has {}: {verdict}",
                            claim.path.name(),
                            claim
                                .values
                                .iter()
                                .map(compact)
                                .collect::<Vec<_>>()
                                .join(", "),
                            claims
                                .and_then(|c| claim.path.lookup(c))
                                .map_or("(nothing)".to_string(), compact)
                        ),
                        None => format!("claims[{index}]: {verdict}"),
                    },
                    PolicyCheck::Bind(index) => {
                        super::bind::bind_line(explained, rule, *index, *result)
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
