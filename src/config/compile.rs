//! From the JSON contract to the compiled form: [`Config::from_json`] parses, validates and
//! compiles, refusing with one error that names the field.

use crate::authn::claims::ClaimPath;
use crate::authn::provider::Provider;
use crate::authz::address::ClientIpSource;
use crate::config::error::ConfigError;
use crate::config::model::{Config, SignatureBackend};
use crate::config::names::{is_header_name, is_property_name, is_quotable};
use crate::config::provider::compile_provider;
use crate::config::rule::compile_rule;
use crate::config::schema::{RawClientIp, RawConfig};
use crate::identity::IdentityHeaders;
use crate::token::extract::TokenLocation;

/// The most verified tokens a VM may keep: with tokens of up to 8 KiB, about 800 MiB at most.
pub(super) const MAX_TOKEN_CACHE_SIZE: usize = 100_000;

fn compile(raw: RawConfig) -> Result<Config, ConfigError> {
    let realm = raw.realm.unwrap_or_else(|| "jwt-guard".to_string());
    if realm.is_empty() || !is_quotable(&realm) {
        return Err(ConfigError::new(
            "realm",
            "must be non-empty printable ASCII without '\"' or '\\'",
        ));
    }
    let mut providers: Vec<Provider> = Vec::with_capacity(raw.providers.len());
    let mut identity: Vec<IdentityHeaders> = Vec::with_capacity(raw.providers.len());
    for (name, provider) in raw.providers {
        let (provider, headers) = compile_provider(name, provider)?;
        providers.push(provider);
        identity.push(headers);
    }
    let claim_path = |field: &str, value: Option<String>, default: &str| {
        let name = value.unwrap_or_else(|| default.to_string());
        ClaimPath::parse(&name).ok_or_else(|| ConfigError::new(field, "not a valid claim name"))
    };
    let roles_claim = claim_path("roles_claim", raw.roles_claim, "roles")?;
    let scopes_claim = claim_path("scopes_claim", raw.scopes_claim, "scope")?;
    let client_ip = compile_client_ip(raw.client_ip)?;
    let (country_header, country_claim) = match raw.geo {
        None => (None, None),
        Some(geo) => {
            let header = match geo.country_header {
                Some(name) if !is_header_name(&name) => {
                    return Err(ConfigError::new(
                        "geo.country_header",
                        "not a valid header name",
                    ));
                }
                other => other.map(|name| name.to_ascii_lowercase()),
            };
            let claim = match geo.country_claim {
                Some(name) => Some(claim_path("geo.country_claim", Some(name), "")?),
                None => None,
            };
            (header, claim)
        }
    };
    if raw.rules.is_empty() {
        return Err(ConfigError::new("rules", "must hold at least one rule"));
    }
    let has_geo = country_header.is_some() || country_claim.is_some();
    let mut identity_headers: Vec<String> = Vec::new();
    for (provider, identity) in providers.iter().zip(&identity) {
        for name in identity.names() {
            let token_header = providers.iter().any(|p| {
                p.locations
                    .iter()
                    .any(|l| matches!(l, TokenLocation::Header { name: n, .. } if n == name))
            });
            if country_header.as_deref() == Some(name) || token_header {
                return Err(ConfigError::new(
                    format!("providers.{}.claim_to_headers", provider.name),
                    format!("header {name:?} is geo.country_header or a token location"),
                ));
            }
            if !identity_headers.iter().any(|n| n == name) {
                identity_headers.push(name.to_string());
            }
        }
    }
    let rules = raw
        .rules
        .into_iter()
        .enumerate()
        .map(|(index, rule)| compile_rule(index, rule, &providers, has_geo))
        .collect::<Result<Vec<_>, _>>()?;
    for (index, rule) in rules.iter().enumerate() {
        let earlier = rules.iter().take(index);
        if let Some(name) = &rule.name
            && earlier.filter_map(|r| r.name.as_ref()).any(|n| n == name)
        {
            return Err(ConfigError::new(
                format!("rules[{index}].name"),
                format!("{name:?} is the name of an earlier rule"),
            ));
        }
    }
    let outcome_in_filter_state = match raw.outcome_in_filter_state {
        Some(name) if !is_property_name(&name) => {
            return Err(ConfigError::new(
                "outcome_in_filter_state",
                "must be 1 to 64 of A-Z, a-z, 0-9, '_', '-' and '.'",
            ));
        }
        other => other,
    };
    let matchers = || rules.iter().filter_map(|rule| rule.matcher.as_ref());
    let needs_route_name = matchers().any(|m| m.route_name.is_some());
    let needs_host = matchers().any(|m| !m.hosts.is_empty() || !m.not_hosts.is_empty());
    let token_cache_size = raw
        .token_cache_size
        .unwrap_or(crate::authn::cache::DEFAULT_CAPACITY);
    if token_cache_size > MAX_TOKEN_CACHE_SIZE {
        return Err(ConfigError::new(
            "token_cache_size",
            format!("must be at most {MAX_TOKEN_CACHE_SIZE} (0 turns the cache off)"),
        ));
    }
    let signature_backend = match raw.signature_backend.as_deref() {
        None | Some("auto") => SignatureBackend::Auto,
        Some("host") => SignatureBackend::Host,
        Some("pure_rust") => SignatureBackend::PureRust,
        Some(_) => {
            return Err(ConfigError::new(
                "signature_backend",
                "must be \"auto\", \"host\" or \"pure_rust\"",
            ));
        }
    };
    Ok(Config {
        realm,
        providers,
        rules,
        roles_claim,
        scopes_claim,
        client_ip,
        country_header,
        country_claim,
        dry_run: raw.dry_run,
        needs_route_name,
        needs_host,
        identity,
        identity_headers,
        token_cache_size,
        signature_backend,
        outcome_in_filter_state,
    })
}

fn compile_client_ip(raw: Option<RawClientIp>) -> Result<ClientIpSource, ConfigError> {
    let Some(raw) = raw else {
        return Ok(ClientIpSource::Peer);
    };
    match (raw.from.as_str(), raw.trusted_hops) {
        ("peer", None) => Ok(ClientIpSource::Peer),
        ("peer", Some(_)) => Err(ConfigError::new(
            "client_ip.trusted_hops",
            "only applies to \"from\": \"xff\"",
        )),
        ("xff", Some(hops)) if hops >= 1 => Ok(ClientIpSource::ForwardedFor { trusted_hops: hops }),
        ("xff", _) => Err(ConfigError::new(
            "client_ip.trusted_hops",
            "must be at least 1 (1 = the rightmost X-Forwarded-For address)",
        )),
        _ => Err(ConfigError::new(
            "client_ip.from",
            "must be \"peer\" or \"xff\"",
        )),
    }
}

impl Config {
    /// Parses, validates and compiles the filter configuration.
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
        let raw: RawConfig = serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let field = err.path().to_string();
            let field = if field == "." { String::new() } else { field };
            ConfigError::new(field, err.into_inner().to_string())
        })?;
        compile(raw)
    }
}
