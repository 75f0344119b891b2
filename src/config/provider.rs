//! `providers.<name>`: issuer, audiences, keys, token locations and identity headers.

use serde_json::Value;

use crate::authn::binding::{Binding, CertificateBinding};
use crate::authn::claims::ClaimPath;
use crate::authn::issuer::Issuer;
use crate::authn::jwks::{KeySet, KeyStore};
use crate::authn::provider::Provider;
use crate::authn::verify::TokenRules;
use crate::config::dpop::compile_dpop;
use crate::config::error::ConfigError;
use crate::config::names::{is_header_name, is_stat_name};
use crate::config::remote_jwks::compile_remote;
use crate::config::schema::{RawClaimHeader, RawHeaderLocation, RawProvider};
use crate::identity::{ClaimHeader, IdentityHeaders};
use crate::token::extract::TokenLocation;

const DEFAULT_CLOCK_SKEW_SECONDS: u64 = 60;
/// A day of skew is already absurd; more is certainly a unit mistake (milliseconds?).
const MAX_CLOCK_SKEW_SECONDS: u64 = 86_400;

pub(super) fn compile_provider(
    name: String,
    raw: RawProvider,
) -> Result<(Provider, IdentityHeaders), ConfigError> {
    let field = |member: &str| format!("providers.{name}.{member}");
    if !is_stat_name(&name) {
        return Err(ConfigError::new(
            format!("providers.{}", name.escape_debug()),
            "a provider name must be 1 to 64 of A-Z, a-z, 0-9, '_' and '-' (it names counters)",
        ));
    }
    if raw.issuer.is_empty() {
        return Err(ConfigError::new(field("issuer"), "must not be empty"));
    }
    if raw.audiences.as_ref().is_some_and(Vec::is_empty) {
        return Err(ConfigError::new(
            field("audiences"),
            "must not be empty (omit it to accept any audience)",
        ));
    }
    let audiences = raw.audiences.unwrap_or_default();
    if audiences.iter().any(String::is_empty) {
        return Err(ConfigError::new(
            field("audiences"),
            "must not hold an empty audience",
        ));
    }
    let keys = match &raw.jwks {
        Some(jwks) => KeySet::from_value(jwks).map_err(|err| {
            let at = if err.field.is_empty() {
                field("jwks")
            } else {
                format!("{}.{}", field("jwks"), err.field)
            };
            ConfigError::new(at, err.message)
        })?,
        None if raw.remote_jwks.is_some() => KeySet::default(),
        None => {
            return Err(ConfigError::new(
                field("jwks"),
                "required (or give remote_jwks)",
            ));
        }
    };
    let issuer_params = raw
        .issuer_params
        .map(|params| read_issuer_params(&field("issuer_params"), &params))
        .transpose()?;
    let issuer = Issuer::parse(&raw.issuer, issuer_params)
        .map_err(|(member, why)| ConfigError::new(field(&member), why))?;
    let remote = match raw.remote_jwks {
        Some(remote)
            if issuer.is_template() && (remote.discovery || remote.discovery_uri.is_some()) =>
        {
            // A templated issuer has one discovery document per tenant, each naming its own
            // issuer; one key set per provider means one fixed `uri`.
            return Err(ConfigError::new(
                field(if remote.discovery {
                    "remote_jwks.discovery"
                } else {
                    "remote_jwks.discovery_uri"
                }),
                "a templated issuer has no single discovery document: give remote_jwks.uri",
            ));
        }
        Some(remote) => Some(compile_remote(&field("remote_jwks"), remote, &raw.issuer)?),
        None => None,
    };
    let clock_skew_seconds = raw.clock_skew_seconds.unwrap_or(DEFAULT_CLOCK_SKEW_SECONDS);
    if clock_skew_seconds > MAX_CLOCK_SKEW_SECONDS {
        return Err(ConfigError::new(
            field("clock_skew_seconds"),
            format!("must be at most {MAX_CLOCK_SKEW_SECONDS}"),
        ));
    }
    if raw.max_lifetime_seconds == Some(0) {
        return Err(ConfigError::new(
            field("max_lifetime_seconds"),
            "must be positive",
        ));
    }
    let mut locations =
        compile_locations(&name, raw.from_headers, raw.from_params, raw.from_cookies)?;
    let dpop = compile_dpop(&field, raw.dpop, &mut locations)?;
    let identity = compile_identity(
        &field,
        raw.claim_to_headers.unwrap_or_default(),
        raw.forward_payload_header,
        &locations,
    )?;
    let provider = Provider {
        token_rules: TokenRules {
            issuer,
            audiences,
            keys: KeyStore::new(keys),
            clock_skew_seconds,
            max_lifetime_seconds: raw.max_lifetime_seconds,
            require_expiration: raw.require_expiration.unwrap_or(true),
        },
        locations,
        forward: raw.forward.unwrap_or(false),
        binding: Binding {
            certificate: raw.certificate_binding.map(|binding| {
                if binding.required {
                    CertificateBinding::Required
                } else {
                    CertificateBinding::Optional
                }
            }),
            dpop,
            accept_unchecked: raw.accept_unchecked_bindings,
        },
        remote,
        inline_jwks: raw.jwks,
        name,
    };
    Ok((provider, identity))
}

/// `{"tenant": ["a", "b"]}`: per placeholder, its allowed values (checked by `Issuer::parse`).
fn read_issuer_params(at: &str, value: &Value) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
    let members = value
        .as_object()
        .ok_or_else(|| ConfigError::new(at, "must be an object"))?;
    let mut params = Vec::with_capacity(members.len());
    for (name, values) in members {
        let field = format!("{at}.{name}");
        let values = values
            .as_array()
            .ok_or_else(|| ConfigError::new(&field, "must be an array of strings"))?
            .iter()
            .enumerate()
            .map(|(index, v)| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    ConfigError::new(format!("{field}[{index}]"), "must be a string")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        params.push((name.clone(), values));
    }
    Ok(params)
}

/// Headers a claim must never be written to: hop-by-hop and framing headers, the ones Envoy
/// routes on, and jwt-guard's own.
pub(super) const RESERVED_HEADERS: [&str; 10] = [
    "host",
    "authorization",
    "cookie",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    crate::identity::DRY_RUN_HEADER,
];

pub(super) fn compile_identity(
    field: &dyn Fn(&str) -> String,
    claims: Vec<RawClaimHeader>,
    payload: Option<String>,
    locations: &[TokenLocation],
) -> Result<IdentityHeaders, ConfigError> {
    let mut identity = IdentityHeaders::default();
    let mut seen: Vec<String> = Vec::new();
    let mut check = |at: String, header: &str| -> Result<String, ConfigError> {
        let name = header.to_ascii_lowercase();
        let is_token_header = locations
            .iter()
            .any(|l| matches!(l, TokenLocation::Header { name: n, .. } if *n == name));
        if !is_header_name(&name) {
            return Err(ConfigError::new(at, "not a valid header name"));
        }
        if name.contains('_') {
            // Client copies are removed in every spelling an upstream may read as this name;
            // with `_` in the name itself, the spelling the upstream reads would be ambiguous.
            return Err(ConfigError::new(
                at,
                format!(
                    "{name:?} holds `_`: CGI/WSGI-style upstreams read `_` and `-` alike, so write it with `-`"
                ),
            ));
        }
        if RESERVED_HEADERS.contains(&name.as_str()) || is_token_header {
            return Err(ConfigError::new(
                at,
                format!("{name:?} cannot carry identity (reserved or a token location)"),
            ));
        }
        if seen.contains(&name) {
            return Err(ConfigError::new(at, format!("{name:?} is used twice")));
        }
        seen.push(name.clone());
        Ok(name)
    };
    for (index, entry) in claims.into_iter().enumerate() {
        let at = |member: &str| format!("{}[{index}].{member}", field("claim_to_headers"));
        let claim = ClaimPath::parse(&entry.claim)
            .ok_or_else(|| ConfigError::new(at("claim"), "not a valid claim name"))?;
        let header = check(at("header"), &entry.header)?;
        identity.claims.push(ClaimHeader { claim, header });
    }
    if let Some(header) = payload {
        identity.payload = Some(check(field("forward_payload_header"), &header)?);
    }
    Ok(identity)
}

pub(super) fn compile_locations(
    provider: &str,
    headers: Option<Vec<RawHeaderLocation>>,
    params: Option<Vec<String>>,
    cookies: Option<Vec<String>>,
) -> Result<Vec<TokenLocation>, ConfigError> {
    let field = |member: &str| format!("providers.{provider}.{member}");
    let mut locations = Vec::new();
    // Each field has its own default: an omitted `from_headers` still means
    // `Authorization: Bearer`; `"from_headers": []` turns header extraction off.
    let Some(headers) = headers else {
        locations.push(TokenLocation::default_header());
        return add_params_and_cookies(&field, locations, params, cookies);
    };
    for (index, header) in headers.into_iter().enumerate() {
        if !is_header_name(&header.name) {
            return Err(ConfigError::new(
                format!("{}[{index}].name", field("from_headers")),
                "not a valid header name",
            ));
        }
        locations.push(TokenLocation::Header {
            name: header.name.to_ascii_lowercase(),
            prefix: header.value_prefix,
        });
    }
    add_params_and_cookies(&field, locations, params, cookies)
}

pub(super) fn add_params_and_cookies(
    field: &dyn Fn(&str) -> String,
    mut locations: Vec<TokenLocation>,
    params: Option<Vec<String>>,
    cookies: Option<Vec<String>>,
) -> Result<Vec<TokenLocation>, ConfigError> {
    for (index, param) in params.into_iter().flatten().enumerate() {
        if param.is_empty() {
            return Err(ConfigError::new(
                format!("{}[{index}]", field("from_params")),
                "must not be empty",
            ));
        }
        locations.push(TokenLocation::Param(param));
    }
    for (index, cookie) in cookies.into_iter().flatten().enumerate() {
        if cookie.is_empty() || cookie.contains(['=', ';', ' ']) {
            return Err(ConfigError::new(
                format!("{}[{index}]", field("from_cookies")),
                "not a valid cookie name",
            ));
        }
        locations.push(TokenLocation::Cookie(cookie));
    }
    if locations.is_empty() {
        return Err(ConfigError::new(
            field("from_headers"),
            "no token location: give from_headers, from_params or from_cookies",
        ));
    }
    Ok(locations)
}
