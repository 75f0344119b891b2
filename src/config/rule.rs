//! `rules[i]`: the match, the authentication a rule asks for, and its policy.

use crate::authn::claims::ClaimPath;
use crate::authn::provider::Provider;
use std::rc::Rc;

use crate::authz::address::{NetSet, parse_net};
use crate::authz::policy::{CountryRule, IpRule, Policy};
use crate::config::conditions::compile_conditions;
use crate::config::dpop::{object, whole};
use crate::config::error::ConfigError;
use crate::config::model::{Authentication, CustomRefusal, Matcher, PathMatch, Rule, RuleAction};
use crate::config::names::{is_quotable, is_stat_name, is_unnamed_label};
use crate::config::request_binding::compile_bind;
use crate::config::schema::{RawAllowDeny, RawMatch, RawRule};
use crate::request::path_pattern::PathPattern;
use serde_json::Value;

pub(super) fn compile_rule(
    index: usize,
    raw: RawRule,
    providers: &[Provider],
    has_geo: bool,
) -> Result<Rule, ConfigError> {
    let at = format!("rules[{index}]");
    let field = |member: &str| format!("{at}.{member}");
    let label = match raw.name.as_deref() {
        None => format!("rule_{index}"),
        Some(name) if !is_stat_name(name) => {
            return Err(ConfigError::new(
                field("name"),
                "must be 1 to 64 of A-Z, a-z, 0-9, '_' and '-'",
            ));
        }
        Some(name) if is_unnamed_label(name) => {
            return Err(ConfigError::new(
                field("name"),
                "rule_<number> is how rules without a name are counted",
            ));
        }
        Some(name) => name.to_string(),
    };
    let action = match raw.action.as_deref() {
        None | Some("allow") => RuleAction::Allow,
        Some("deny") => RuleAction::Deny,
        Some(other) => {
            return Err(ConfigError::new(
                field("action"),
                format!("\"allow\" or \"deny\", not {other:?}"),
            ));
        }
    };
    let deny = action == RuleAction::Deny;
    if deny {
        let refused = [
            ("provider", raw.provider.is_some()),
            ("providers", raw.providers.is_some()),
            ("allow_anonymous", raw.allow_anonymous.is_some()),
            ("disabled", raw.disabled.is_some()),
            ("dry_run", raw.dry_run.is_some()),
            ("fall_through", raw.fall_through.is_some()),
            ("bind_ip_claim", raw.bind_ip_claim.is_some()),
            ("bind", raw.bind.is_some()),
        ];
        if let Some((member, _)) = refused.iter().find(|(_, given)| *given) {
            return Err(ConfigError::new(
                field(member),
                "a deny rule takes only name, match, action, conditions and refusal",
            ));
        }
    }
    let matcher = match raw.matcher {
        Some(matcher) => Some(compile_match(&field("match"), matcher)?),
        // A deny rule without `match` applies to every request.
        None if raw.name.is_none() && !deny => {
            return Err(ConfigError::new(
                field("match"),
                "missing: a rule without a name needs a match (a named one may be bound by routes only)",
            ));
        }
        None => None,
    };
    let allow_anonymous = raw.allow_anonymous.unwrap_or(false);
    let dry_run = raw.dry_run.unwrap_or(false);
    let fall_through = raw.fall_through.unwrap_or(false);
    if raw.disabled.unwrap_or(false) {
        let has_requirements = raw.roles.is_some()
            || raw.scopes.is_some()
            || raw.claims.is_some()
            || raw.source_ips.is_some()
            || raw.countries.is_some()
            || raw.bind_ip_claim.is_some()
            || raw.principals.is_some()
            || raw.headers.is_some()
            || raw.bind.is_some();
        if raw.provider.is_some()
            || raw.providers.is_some()
            || allow_anonymous
            || has_requirements
            || dry_run
            || fall_through
            || raw.refusal.is_some()
        {
            return Err(ConfigError::new(
                field("disabled"),
                "a disabled rule takes only \"match\"",
            ));
        }
        return Ok(Rule {
            name: raw.name,
            label,
            matcher,
            authentication: Authentication::Disabled,
            policy: Policy::default(),
            dry_run: false,
            action,
            fall_through: false,
            refusal: None,
            bind: None,
        });
    }
    let refusal = raw
        .refusal
        .as_ref()
        .map(|r| compile_refusal(&field("refusal"), r, deny))
        .transpose()?;
    let mut policy = compile_conditions(
        &at,
        &raw.roles,
        &raw.scopes,
        &raw.claims,
        &raw.principals,
        &raw.headers,
    )?;
    policy.source_ips = raw
        .source_ips
        .map(|ips| compile_ips(&field("source_ips"), ips))
        .transpose()?;
    policy.countries = raw
        .countries
        .map(|countries| compile_countries(&field("countries"), countries, has_geo))
        .transpose()?;
    policy.bind_ip_claim = raw
        .bind_ip_claim
        .map(|name| {
            ClaimPath::parse(&name)
                .ok_or_else(|| ConfigError::new(field("bind_ip_claim"), "not a valid claim name"))
        })
        .transpose()?;
    let mut bind = None;
    let authentication = if deny {
        // Deny rules read the identity the selected rule authenticated; they never authenticate.
        Authentication::Disabled
    } else {
        let named = match (raw.provider, raw.providers) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    field("providers"),
                    "give provider or providers, not both",
                ));
            }
            (Some(one), None) => Some(vec![(field("provider"), one)]),
            (None, Some(many)) if many.is_empty() => {
                return Err(ConfigError::new(field("providers"), "must not be empty"));
            }
            (None, Some(many)) => Some(
                many.into_iter()
                    .enumerate()
                    .map(|(i, name)| (format!("{}[{i}]", field("providers")), name))
                    .collect(),
            ),
            (None, None) => None,
        };
        let provider_indexes = match named {
            None if providers.is_empty() => {
                return Err(ConfigError::new(
                    field("provider"),
                    "the rule needs a token provider but none is configured",
                ));
            }
            None => (0..providers.len()).collect(),
            Some(names) => names
                .into_iter()
                .map(|(name_field, name)| {
                    providers
                        .iter()
                        .position(|p| p.name == name)
                        .ok_or_else(|| {
                            ConfigError::new(name_field, format!("unknown provider {name:?}"))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        if let Some(raw_bind) = raw.bind {
            let rule_providers: Vec<&Provider> = provider_indexes
                .iter()
                .filter_map(|&i| providers.get(i))
                .collect();
            bind = Some(compile_bind(
                &field("bind"),
                raw_bind,
                matcher.as_ref(),
                &rule_providers,
            )?);
        }
        if allow_anonymous {
            Authentication::Optional(provider_indexes)
        } else {
            Authentication::Required(provider_indexes)
        }
    };
    Ok(Rule {
        name: raw.name,
        label,
        matcher,
        authentication,
        policy,
        dry_run,
        action,
        fall_through,
        refusal,
        bind,
    })
}

/// `refusal`: a 4xx status, an optional body (at most 4096 bytes) and its type, and which of
/// the rule's refusals it answers. A 401 answering a 403 would tell an authenticated caller to
/// authenticate again: refused.
fn compile_refusal(
    field: &str,
    raw: &Value,
    deny_rule: bool,
) -> Result<Rc<CustomRefusal>, ConfigError> {
    let members = object(field, raw, &["status", "body", "content_type", "for"])?;
    let text = |member: &str| match members.get(member) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(ConfigError::new(
            format!("{field}.{member}"),
            "must be a string",
        )),
    };
    let body = text("body")?;
    let content_type = text("content_type")?;
    let kinds = match members.get("for") {
        None => None,
        Some(Value::Array(kinds)) => Some(kinds),
        Some(_) => {
            return Err(ConfigError::new(
                format!("{field}.for"),
                "must be an array: [\"forbidden\"], [\"unauthorized\"] or both",
            ));
        }
    };
    let status = match whole(field, members, "status")? {
        None => return Err(ConfigError::new(format!("{field}.status"), "missing")),
        Some(status @ 400..=499) => status as u32,
        Some(_) => {
            return Err(ConfigError::new(
                format!("{field}.status"),
                "a client error status, 400 to 499",
            ));
        }
    };
    let (mut forbidden, mut unauthorized) = (kinds.is_none(), false);
    for (index, kind) in kinds.into_iter().flatten().enumerate() {
        match kind.as_str().unwrap_or_default() {
            "forbidden" if !forbidden => forbidden = true,
            "unauthorized" if !unauthorized => unauthorized = true,
            _ => {
                return Err(ConfigError::new(
                    format!("{field}.for[{index}]"),
                    "\"forbidden\" or \"unauthorized\", each once",
                ));
            }
        }
    }
    if !forbidden && !unauthorized {
        return Err(ConfigError::new(
            format!("{field}.for"),
            "must not be empty",
        ));
    }
    if deny_rule && unauthorized {
        return Err(ConfigError::new(
            format!("{field}.for"),
            "a deny rule only forbids: [\"forbidden\"]",
        ));
    }
    if status == 401 && forbidden {
        return Err(ConfigError::new(
            format!("{field}.status"),
            "401 for a 403 would ask an authenticated caller to authenticate again",
        ));
    }
    if let Some(body) = &body
        && body.len() > 4096
    {
        return Err(ConfigError::new(
            format!("{field}.body"),
            "at most 4096 bytes",
        ));
    }
    let content_type = match content_type {
        Some(text) if text.is_empty() || !is_quotable(&text) => {
            return Err(ConfigError::new(
                format!("{field}.content_type"),
                "a media type in printable ASCII",
            ));
        }
        Some(text) => text,
        None if body.is_some() => "text/plain".to_string(),
        None => "application/json".to_string(),
    };
    Ok(Rc::new(CustomRefusal {
        status,
        body,
        content_type,
        forbidden,
        unauthorized,
    }))
}

pub(super) fn compile_match(at: &str, raw: RawMatch) -> Result<Matcher, ConfigError> {
    let field = |member: &str| format!("{at}.{member}");
    let path = match (raw.prefix, raw.path, raw.paths) {
        (Some(_), Some(_), _) => {
            return Err(ConfigError::new(
                field("path"),
                "give prefix or path, not both",
            ));
        }
        (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            return Err(ConfigError::new(
                field("paths"),
                "give paths, or prefix or path, not both",
            ));
        }
        (None, None, Some(paths)) => {
            PathMatch::Patterns(compile_path_patterns(&field("paths"), paths)?)
        }
        (Some(prefix), None, None) if prefix.starts_with('/') => PathMatch::Prefix(prefix),
        (Some(_), None, None) => {
            return Err(ConfigError::new(field("prefix"), "must start with '/'"));
        }
        (None, Some(path), None) if path.starts_with('/') => PathMatch::Exact(path),
        (None, Some(_), None) => {
            return Err(ConfigError::new(field("path"), "must start with '/'"));
        }
        (None, None, None) => PathMatch::Any,
    };
    let not_paths = match raw.not_paths {
        Some(paths) => compile_path_patterns(&field("not_paths"), paths)?,
        None => Vec::new(),
    };
    let methods = compile_methods(&field("methods"), raw.methods)?;
    let not_methods = compile_methods(&field("not_methods"), raw.not_methods)?;
    let hosts = compile_hosts(&field("hosts"), raw.hosts)?;
    let not_hosts = compile_hosts(&field("not_hosts"), raw.not_hosts)?;
    if raw.route_name.as_deref() == Some("") {
        return Err(ConfigError::new(field("route_name"), "must not be empty"));
    }
    Ok(Matcher {
        path,
        methods,
        hosts,
        route_name: raw.route_name,
        not_paths,
        not_methods,
        not_hosts,
    })
}

fn compile_path_patterns(field: &str, raw: Vec<String>) -> Result<Vec<PathPattern>, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::new(field, "must not be empty (omit it)"));
    }
    raw.iter()
        .enumerate()
        .map(|(index, text)| {
            PathPattern::parse(text)
                .map_err(|why| ConfigError::new(format!("{field}[{index}]"), why))
        })
        .collect()
}

fn compile_methods(field: &str, raw: Option<Vec<String>>) -> Result<Vec<String>, ConfigError> {
    let methods = non_empty_list(field, raw)?;
    if methods
        .iter()
        .any(|m| !m.bytes().all(|b| b.is_ascii_alphabetic()))
    {
        return Err(ConfigError::new(
            field,
            "methods are HTTP method names like \"GET\"",
        ));
    }
    Ok(methods
        .into_iter()
        .map(|m| m.to_ascii_uppercase())
        .collect())
}

fn compile_hosts(field: &str, raw: Option<Vec<String>>) -> Result<Vec<String>, ConfigError> {
    non_empty_list(field, raw)?
        .into_iter()
        .enumerate()
        .map(|(index, host)| compile_host(&format!("{field}[{index}]"), &host))
        .collect()
}

/// A host name, IP literal or `*.suffix`, lower-case and without a trailing dot, as requests'
/// hosts are compared (see `Request::host`).
pub(super) fn compile_host(field: &str, host: &str) -> Result<String, ConfigError> {
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host);
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let name = host.strip_prefix("*.").unwrap_or(host);
    let plain = if name.contains(':') {
        name.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    };
    if !plain {
        return Err(ConfigError::new(
            field,
            "a host name or address without port, or \"*.\" and a domain",
        ));
    }
    Ok(host.to_string())
}

pub(super) fn non_empty_list(
    field: &str,
    list: Option<Vec<String>>,
) -> Result<Vec<String>, ConfigError> {
    match list {
        None => Ok(Vec::new()),
        Some(list) if list.is_empty() => {
            Err(ConfigError::new(field, "must not be empty (omit it)"))
        }
        Some(list) if list.iter().any(String::is_empty) => {
            Err(ConfigError::new(field, "must not hold an empty entry"))
        }
        Some(list) => Ok(list),
    }
}

pub(super) fn compile_ips(field: &str, raw: RawAllowDeny) -> Result<IpRule, ConfigError> {
    let (allow, deny) = compile_allow_deny(field, raw, "an IP or CIDR", parse_net)?;
    Ok(IpRule {
        allow: NetSet::new(allow),
        deny: NetSet::new(deny),
    })
}

pub(super) fn compile_countries(
    field: &str,
    raw: RawAllowDeny,
    has_geo: bool,
) -> Result<CountryRule, ConfigError> {
    if !has_geo {
        return Err(ConfigError::new(
            field,
            "needs geo.country_header or geo.country_claim to know the country",
        ));
    }
    let country_code = |code: &str| {
        (code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic()))
            .then(|| code.to_ascii_uppercase())
    };
    let (allow, deny) = compile_allow_deny(field, raw, "an ISO 3166-1 alpha-2 code", country_code)?;
    Ok(CountryRule { allow, deny })
}

/// Both lists parsed entry by entry; an error names the entry (`source_ips.deny[1]`).
pub(super) fn compile_allow_deny<T>(
    field: &str,
    raw: RawAllowDeny,
    expected: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<(Vec<T>, Vec<T>), ConfigError> {
    if raw.allow.is_empty() && raw.deny.is_empty() {
        return Err(ConfigError::new(field, "give \"allow\" or \"deny\""));
    }
    let list = |entries: &[String], member: &str| {
        entries
            .iter()
            .enumerate()
            .map(|(index, text)| {
                parse(text).ok_or_else(|| {
                    ConfigError::new(
                        format!("{field}.{member}[{index}]"),
                        format!("not {expected}: {text:?}"),
                    )
                })
            })
            .collect::<Result<Vec<T>, _>>()
    };
    Ok((list(&raw.allow, "allow")?, list(&raw.deny, "deny")?))
}
