//! Per-rule authorization: who may pass once authenticated (or anonymous-allowed). Every check
//! here yields a 403 reason; nothing here can turn a refusal into an allow.

use std::net::IpAddr;

use serde_json::Value;

use crate::authn::claims::ClaimPath;
use crate::authn::claims::VerifiedClaims;
use crate::authz::address::NetSet;
use crate::authz::conditions::{HeaderCondition, PrincipalRule};
use crate::reason::{Forbidden, Judgement};
use crate::request::{Country, Request};
use crate::trace::{NoTrace, PolicyCheck, Step, Trace};

/// Roles or scopes: at least one of `any` (when given), every one of `all`, and none of `none`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringRequirement {
    pub any: Vec<String>,
    pub all: Vec<String>,
    pub none: Vec<String>,
    /// Space-separated list for the `scope` auth-param of an `insufficient_scope` challenge.
    pub hint: String,
}

impl StringRequirement {
    pub fn new(any: Vec<String>, all: Vec<String>) -> StringRequirement {
        StringRequirement::with_none(any, all, Vec::new())
    }

    pub fn with_none(any: Vec<String>, all: Vec<String>, none: Vec<String>) -> StringRequirement {
        let hint = all
            .iter()
            .chain(&any)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        StringRequirement {
            any,
            all,
            none,
            hint,
        }
    }

    /// What is missing first (`missing`), then what is forbidden (`forbidden`).
    fn judge(&self, granted: &[&str], missing: Forbidden, forbidden: Forbidden) -> Judgement {
        let has = |wanted: &String| granted.contains(&wanted.as_str());
        if !((self.any.is_empty() || self.any.iter().any(has)) && self.all.iter().all(has)) {
            Judgement::Fails(missing)
        } else if self.none.iter().any(has) {
            Judgement::Fails(forbidden)
        } else {
            Judgement::Holds
        }
    }
}

/// The claim (a scalar, or an array) must equal / contain one of `values` (when given) and
/// none of `not_values`. A missing claim has none of them.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRequirement {
    pub path: ClaimPath,
    pub values: Vec<Value>,
    pub not_values: Vec<Value>,
}

impl ClaimRequirement {
    fn satisfied_by(&self, claims: Option<&VerifiedClaims>) -> bool {
        let found = claims.and_then(|claims| self.path.lookup(claims));
        let holds_one = |list: &[Value]| match found {
            Some(Value::Array(items)) => items.iter().any(|item| list.contains(item)),
            Some(scalar) => list.contains(scalar),
            None => false,
        };
        (self.values.is_empty() || holds_one(&self.values)) && !holds_one(&self.not_values)
    }
}

/// Deny wins over allow; an empty allow list allows everything not denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpRule {
    pub allow: NetSet,
    pub deny: NetSet,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountryRule {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Policy {
    pub roles: Option<StringRequirement>,
    pub scopes: Option<StringRequirement>,
    pub claims: Vec<ClaimRequirement>,
    pub source_ips: Option<IpRule>,
    pub countries: Option<CountryRule>,
    pub bind_ip_claim: Option<ClaimPath>,
    pub headers: Vec<HeaderCondition>,
    pub principals: Option<PrincipalRule>,
}

/// What policy is judged on, gathered by the caller.
pub struct Subject<'a> {
    pub client_ip: Option<IpAddr>,
    pub country: &'a Country,
    /// `None` for an anonymous request.
    pub claims: Option<&'a VerifiedClaims>,
    pub roles_claim: &'a ClaimPath,
    pub scopes_claim: &'a ClaimPath,
    /// For `headers` conditions.
    pub request: &'a Request<'a>,
}

/// How a rule reads its conditions' judgements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// An allow rule: the first condition that does not hold refuses.
    Allow,
    /// A deny rule: it denies unless some condition fails; unknown counts as holding
    /// (fail closed). The answer is `Holds` (deny) or the first `Fails`.
    Deny,
}

impl Policy {
    pub fn needs_client_ip(&self) -> bool {
        self.source_ips.is_some() || self.bind_ip_claim.is_some()
    }

    /// Requirements only a token can meet: without one, the answer is 401, not 403.
    /// `principals` with only `none` holds for an anonymous caller and needs none.
    pub fn needs_token(&self) -> bool {
        self.roles.is_some()
            || self.scopes.is_some()
            || !self.claims.is_empty()
            || self.bind_ip_claim.is_some()
            || self.principals.as_ref().is_some_and(|p| !p.any.is_empty())
    }

    /// An allow rule's reading of its conditions: network first (cheapest, and independent of
    /// identity), then country, the request's headers, then the token's grants. An anonymous
    /// subject reaches the token checks only through a deny rule or `principals.none`
    /// (see `needs_token`): it is judged as a token that grants nothing.
    pub fn evaluate(&self, subject: &Subject<'_>) -> Result<(), Forbidden> {
        self.judge_traced(0, subject, Reading::Allow, &mut NoTrace)
            .as_result()
    }

    /// [`Policy::evaluate`] of rule `rule`, read as `reading` says, recording each check.
    pub fn judge_traced<T: Trace>(
        &self,
        rule: usize,
        subject: &Subject<'_>,
        reading: Reading,
        trace: &mut T,
    ) -> Judgement {
        let mut check = |which: PolicyCheck, result: Judgement| {
            trace.record(|| Step::Policy {
                rule,
                check: which,
                result,
            });
            match (result, reading) {
                (Judgement::Holds, _) | (Judgement::Unknown(_), Reading::Deny) => Ok(()),
                (stop, _) => Err(stop),
            }
        };
        match self.checks(subject, &mut check) {
            Ok(()) => Judgement::Holds,
            Err(stop) => stop,
        }
    }

    fn checks(
        &self,
        subject: &Subject<'_>,
        check: &mut impl FnMut(PolicyCheck, Judgement) -> Result<(), Judgement>,
    ) -> Result<(), Judgement> {
        let fails = |failed: bool, reason| {
            if failed {
                Judgement::Fails(reason)
            } else {
                Judgement::Holds
            }
        };
        if let Some(rule) = &self.source_ips {
            let result = match subject.client_ip {
                None => Judgement::Unknown(Forbidden::IpNotAllowed),
                Some(ip) if rule.deny.contains(ip) => Judgement::Fails(Forbidden::IpDenied),
                Some(ip) if !rule.allow.is_empty() && !rule.allow.contains(ip) => {
                    Judgement::Fails(Forbidden::IpNotAllowed)
                }
                Some(_) => Judgement::Holds,
            };
            check(PolicyCheck::SourceIps, result)?;
        }
        if let Some(path) = &self.bind_ip_claim {
            let result = match subject.client_ip {
                None => Judgement::Unknown(Forbidden::IpNotBound),
                Some(ip) => fails(
                    !subject
                        .claims
                        .and_then(|claims| path.lookup(claims))
                        .is_some_and(|value| ip_bound(value, ip)),
                    Forbidden::IpNotBound,
                ),
            };
            check(PolicyCheck::BindIpClaim, result)?;
        }
        if let Some(rule) = &self.countries {
            let result = match subject.country {
                Country::Known(country) if rule.deny.contains(country) => {
                    Judgement::Fails(Forbidden::CountryDenied)
                }
                // Only a deny list lets an unknown country through; a garbled one never.
                Country::Invalid => Judgement::Unknown(Forbidden::CountryUnknown),
                Country::Unknown if !rule.allow.is_empty() => {
                    Judgement::Unknown(Forbidden::CountryUnknown)
                }
                Country::Known(country)
                    if !rule.allow.is_empty() && !rule.allow.contains(country) =>
                {
                    Judgement::Fails(Forbidden::CountryNotAllowed)
                }
                _ => Judgement::Holds,
            };
            check(PolicyCheck::Countries, result)?;
        }
        for (index, header) in self.headers.iter().enumerate() {
            check(PolicyCheck::Header(index), header.judge(subject.request))?;
        }
        if let Some(principals) = &self.principals {
            check(PolicyCheck::Principals, principals.judge(subject.claims))?;
        }
        let claims = subject.claims;
        if let Some(roles) = &self.roles {
            let granted = claims.map_or_else(Vec::new, |c| subject.roles_claim.strings(c));
            check(
                PolicyCheck::Roles,
                roles.judge(&granted, Forbidden::MissingRole, Forbidden::ForbiddenRole),
            )?;
        }
        if let Some(scopes) = &self.scopes {
            let granted = claims.map_or_else(Vec::new, |c| subject.scopes_claim.strings(c));
            check(
                PolicyCheck::Scopes,
                scopes.judge(&granted, Forbidden::MissingScope, Forbidden::ForbiddenScope),
            )?;
        }
        for (index, claim) in self.claims.iter().enumerate() {
            check(
                PolicyCheck::Claim(index),
                fails(!claim.satisfied_by(claims), Forbidden::ClaimMismatch),
            )?;
        }
        Ok(())
    }
}

/// The claim holds an address or CIDR, or a list of them; the client must be inside one.
fn ip_bound(value: &Value, client: IpAddr) -> bool {
    let inside = |item: &Value| {
        item.as_str()
            .and_then(crate::authz::address::parse_net)
            .is_some_and(|net| net.contains(&client))
    };
    match value {
        Value::Array(items) => items.iter().any(inside),
        single => inside(single),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::address::{parse_ip, parse_net};
    use serde_json::{Map, json};

    fn nets(list: &[&str]) -> NetSet {
        NetSet::new(list.iter().map(|n| parse_net(n).unwrap()).collect())
    }

    fn policy() -> Policy {
        Policy {
            roles: Some(StringRequirement::new(
                vec!["admin".into(), "ops".into()],
                vec![],
            )),
            scopes: Some(StringRequirement::new(vec![], vec!["orders:write".into()])),
            claims: vec![
                ClaimRequirement {
                    path: ClaimPath::parse("tenant").unwrap(),
                    values: vec![json!("acme"), json!("globex")],
                    not_values: vec![],
                },
                ClaimRequirement {
                    path: ClaimPath::parse("email_verified").unwrap(),
                    values: vec![json!(true)],
                    not_values: vec![],
                },
            ],
            source_ips: Some(IpRule {
                allow: nets(&["10.0.0.0/8", "2001:db8::/32"]),
                deny: nets(&["10.9.0.0/16"]),
            }),
            countries: Some(CountryRule {
                allow: vec!["US".into(), "CA".into()],
                deny: vec!["KP".into()],
            }),
            bind_ip_claim: None,
            ..Policy::default()
        }
    }

    fn good_claims() -> Map<String, Value> {
        json!({"roles": ["user", "ops"], "scope": "orders:read orders:write",
               "tenant": "acme", "email_verified": true, "ip": ["10.1.0.0/16"]})
        .as_object()
        .unwrap()
        .clone()
    }

    fn judge(
        policy: &Policy,
        ip: &str,
        country: Option<&str>,
        edit: fn(&mut Map<String, Value>),
    ) -> Result<(), Forbidden> {
        let mut claims = good_claims();
        edit(&mut claims);
        let claims = VerifiedClaims::for_tests(claims);
        let roles = ClaimPath::parse("roles").unwrap();
        let scopes = ClaimPath::parse("scope").unwrap();
        let country = country.map_or(Country::Unknown, |c| Country::parse(c.as_bytes()));
        let headers = Vec::new();
        let request = Request::bare(&headers);
        policy.evaluate(&Subject {
            client_ip: parse_ip(ip),
            country: &country,
            claims: Some(&claims),
            roles_claim: &roles,
            scopes_claim: &scopes,
            request: &request,
        })
    }

    #[test]
    fn decision_table() {
        let p = policy();
        type Edit = fn(&mut Map<String, Value>);
        let same: Edit = |_| {};
        type Case<'a> = (&'a str, Option<&'a str>, Edit, Result<(), Forbidden>);
        let cases: Vec<Case> = vec![
            ("10.1.2.3", Some("US"), same, Ok(())),
            ("2001:db8::5", Some("CA"), same, Ok(())),
            ("10.9.0.1", Some("US"), same, Err(Forbidden::IpDenied)),
            (
                "192.168.1.1",
                Some("US"),
                same,
                Err(Forbidden::IpNotAllowed),
            ),
            ("garbage", Some("US"), same, Err(Forbidden::IpNotAllowed)),
            ("10.1.2.3", Some("KP"), same, Err(Forbidden::CountryDenied)),
            (
                "10.1.2.3",
                Some("FR"),
                same,
                Err(Forbidden::CountryNotAllowed),
            ),
            ("10.1.2.3", None, same, Err(Forbidden::CountryUnknown)),
            (
                "10.1.2.3",
                Some("US"),
                |c| {
                    c.insert("roles".into(), json!("user"));
                },
                Err(Forbidden::MissingRole),
            ),
            (
                "10.1.2.3",
                Some("US"),
                |c| {
                    c.remove("roles");
                },
                Err(Forbidden::MissingRole),
            ),
            (
                "10.1.2.3",
                Some("US"),
                |c| {
                    c.insert("scope".into(), json!("orders:read"));
                },
                Err(Forbidden::MissingScope),
            ),
            (
                "10.1.2.3",
                Some("US"),
                |c| {
                    c.insert("tenant".into(), json!("initech"));
                },
                Err(Forbidden::ClaimMismatch),
            ),
            (
                "10.1.2.3",
                Some("US"),
                |c| {
                    c.insert("tenant".into(), json!(["x", "globex"]));
                },
                Ok(()),
            ),
            (
                "10.1.2.3",
                Some("US"),
                |c| {
                    c.insert("email_verified".into(), json!("true"));
                },
                Err(Forbidden::ClaimMismatch),
            ),
        ];
        for (ip, country, edit, expected) in cases {
            assert_eq!(judge(&p, ip, country, edit), expected, "{ip} {country:?}");
        }
    }

    #[test]
    fn deny_only_lists_and_bound_addresses() {
        let p = Policy {
            source_ips: Some(IpRule {
                allow: NetSet::default(),
                deny: nets(&["10.9.0.0/16"]),
            }),
            countries: Some(CountryRule {
                allow: vec![],
                deny: vec!["KP".into()],
            }),
            bind_ip_claim: ClaimPath::parse("ip"),
            ..Policy::default()
        };
        let same: fn(&mut Map<String, Value>) = |_| {};
        assert_eq!(judge(&p, "10.1.2.3", None, same), Ok(()));
        assert_eq!(judge(&p, "10.9.2.3", None, same), Err(Forbidden::IpDenied));
        assert_eq!(
            judge(&p, "10.2.0.1", None, same),
            Err(Forbidden::IpNotBound)
        );
        assert_eq!(
            judge(&p, "10.1.2.3", None, |c| {
                c.remove("ip");
            }),
            Err(Forbidden::IpNotBound)
        );
        assert_eq!(
            judge(&p, "10.1.2.3", None, |c| {
                c.insert("ip".into(), json!("10.1.2.3"));
            }),
            Ok(())
        );
        assert_eq!(
            judge(&p, "10.1.2.3", Some("KP"), same),
            Err(Forbidden::CountryDenied)
        );
    }

    /// Each token-only requirement alone makes a token necessary (401 without one, not 403);
    /// addresses and countries alone do not. Each address requirement alone needs the client
    /// address.
    #[test]
    fn each_requirement_alone_says_what_it_needs() {
        let full = policy();
        let requirement = || StringRequirement::new(vec!["x".into()], vec![]);
        let bind = || Some(ClaimPath::parse("ip").unwrap());
        let cases: [(&str, Policy, bool, bool); 7] = [
            ("none", Policy::default(), false, false),
            (
                "roles",
                Policy {
                    roles: Some(requirement()),
                    ..Policy::default()
                },
                true,
                false,
            ),
            (
                "scopes",
                Policy {
                    scopes: Some(requirement()),
                    ..Policy::default()
                },
                true,
                false,
            ),
            (
                "claims",
                Policy {
                    claims: full.claims.clone(),
                    ..Policy::default()
                },
                true,
                false,
            ),
            (
                "bind_ip_claim",
                Policy {
                    bind_ip_claim: bind(),
                    ..Policy::default()
                },
                true,
                true,
            ),
            (
                "source_ips",
                Policy {
                    source_ips: full.source_ips.clone(),
                    ..Policy::default()
                },
                false,
                true,
            ),
            (
                "countries",
                Policy {
                    countries: full.countries.clone(),
                    ..Policy::default()
                },
                false,
                false,
            ),
        ];
        for (name, policy, token, client_ip) in cases {
            assert_eq!(policy.needs_token(), token, "{name}: needs_token");
            assert_eq!(
                policy.needs_client_ip(),
                client_ip,
                "{name}: needs_client_ip"
            );
        }
    }
}
