//! `rules[i]`: the match, the authentication a rule asks for, and its policy.

use crate::authn::claims::ClaimPath;
use crate::authn::provider::Provider;
use crate::authz::address::{NetSet, parse_net};
use crate::authz::policy::{ClaimRequirement, CountryRule, IpRule, Policy, StringRequirement};
use crate::config::error::ConfigError;
use crate::config::model::{Authentication, Matcher, PathMatch, Rule};
use crate::config::names::{is_quotable, is_stat_name, is_unnamed_label};
use crate::config::request_binding::compile_bind;
use crate::config::schema::{RawAllowDeny, RawAnyAll, RawClaim, RawMatch, RawRule};
use crate::request::path_pattern::PathPattern;

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
    let matcher = match raw.matcher {
        Some(matcher) => Some(compile_match(&field("match"), matcher)?),
        None if raw.name.is_none() => {
            return Err(ConfigError::new(
                field("match"),
                "missing: a rule without a name needs a match (a named one may be bound by routes only)",
            ));
        }
        None => None,
    };
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
    let has_requirements = raw.roles.is_some()
        || raw.scopes.is_some()
        || raw.claims.is_some()
        || raw.source_ips.is_some()
        || raw.countries.is_some()
        || raw.bind_ip_claim.is_some()
        || raw.bind.is_some();
    if raw.disabled {
        if named.is_some() || raw.allow_anonymous || has_requirements || raw.dry_run {
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
            bind: None,
        });
    }
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
    let bind = match raw.bind {
        Some(bind) => {
            let rule_providers: Vec<&Provider> = provider_indexes
                .iter()
                .filter_map(|&i| providers.get(i))
                .collect();
            Some(compile_bind(
                &field("bind"),
                bind,
                matcher.as_ref(),
                &rule_providers,
            )?)
        }
        None => None,
    };
    let authentication = if raw.allow_anonymous {
        Authentication::Optional(provider_indexes)
    } else {
        Authentication::Required(provider_indexes)
    };
    let policy = Policy {
        roles: raw
            .roles
            .map(|r| compile_any_all(&field("roles"), r))
            .transpose()?,
        scopes: raw
            .scopes
            .map(|r| compile_any_all(&field("scopes"), r))
            .transpose()?,
        claims: raw
            .claims
            .map(|claims| compile_claims(&field("claims"), claims))
            .transpose()?
            .unwrap_or_default(),
        source_ips: raw
            .source_ips
            .map(|ips| compile_ips(&field("source_ips"), ips))
            .transpose()?,
        countries: raw
            .countries
            .map(|countries| compile_countries(&field("countries"), countries, has_geo))
            .transpose()?,
        bind_ip_claim: raw
            .bind_ip_claim
            .map(|name| {
                ClaimPath::parse(&name).ok_or_else(|| {
                    ConfigError::new(field("bind_ip_claim"), "not a valid claim name")
                })
            })
            .transpose()?,
    };
    Ok(Rule {
        name: raw.name,
        label,
        matcher,
        authentication,
        policy,
        dry_run: raw.dry_run,
        bind,
    })
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

pub(super) fn compile_any_all(
    field: &str,
    raw: RawAnyAll,
) -> Result<StringRequirement, ConfigError> {
    if raw.any.is_empty() && raw.all.is_empty() {
        return Err(ConfigError::new(field, "give \"any\" or \"all\""));
    }
    if raw
        .any
        .iter()
        .chain(&raw.all)
        .any(|v| v.is_empty() || v.contains(' ') || !is_quotable(v))
    {
        return Err(ConfigError::new(
            field,
            "entries must be non-empty printable ASCII without spaces, '\"' or '\\'",
        ));
    }
    Ok(StringRequirement::new(raw.any, raw.all))
}

pub(super) fn compile_claims(
    field: &str,
    raw: Vec<RawClaim>,
) -> Result<Vec<ClaimRequirement>, ConfigError> {
    raw.into_iter()
        .enumerate()
        .map(|(index, claim)| {
            let at = format!("{field}[{index}]");
            let path = ClaimPath::parse(&claim.name)
                .ok_or_else(|| ConfigError::new(format!("{at}.name"), "not a valid claim name"))?;
            if claim.values.is_empty() {
                return Err(ConfigError::new(
                    format!("{at}.values"),
                    "must not be empty",
                ));
            }
            if claim
                .values
                .iter()
                .any(|v| v.is_array() || v.is_object() || v.is_null())
            {
                return Err(ConfigError::new(
                    format!("{at}.values"),
                    "values must be strings, numbers or booleans",
                ));
            }
            Ok(ClaimRequirement {
                path,
                values: claim.values,
            })
        })
        .collect()
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
