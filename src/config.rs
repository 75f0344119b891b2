//! Configuration: the JSON contract parsed strictly (unknown fields refused), then validated and
//! compiled once into the form requests are evaluated against. Every error names its field.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use crate::claims::ClaimPath;
use crate::extract::TokenLocation;
use crate::identity::{ClaimHeader, IdentityHeaders};
use crate::jwks::{KeySet, KeyStore};
use crate::net::{ClientIpSource, NetSet, parse_net};
use crate::policy::{ClaimRequirement, CountryRule, IpRule, Policy, StringRequirement};
use crate::remote::{RemoteJwks, Source, Uri};
use crate::verify::TokenRules;

const DEFAULT_CLOCK_SKEW_SECONDS: u64 = 60;
/// A day of skew is already absurd; more is certainly a unit mistake (milliseconds?).
const MAX_CLOCK_SKEW_SECONDS: u64 = 86_400;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

// ---- The JSON contract, as written by users ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// The JSON Schema's address, for editors (schema/jwt-guard.schema.json); ignored.
    #[serde(rename = "$schema")]
    _schema: Option<String>,
    realm: Option<String>,
    #[serde(default)]
    providers: BTreeMap<String, RawProvider>,
    rules: Vec<RawRule>,
    roles_claim: Option<String>,
    scopes_claim: Option<String>,
    client_ip: Option<RawClientIp>,
    geo: Option<RawGeo>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default, deserialize_with = "whole_number")]
    token_cache_size: Option<usize>,
    signature_backend: Option<String>,
    outcome_in_filter_state: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    issuer: String,
    audiences: Option<Vec<String>>,
    jwks: Option<Value>,
    remote_jwks: Option<RawRemoteJwks>,
    from_headers: Option<Vec<RawHeaderLocation>>,
    from_params: Option<Vec<String>>,
    from_cookies: Option<Vec<String>>,
    #[serde(default, deserialize_with = "whole_number")]
    clock_skew_seconds: Option<u64>,
    #[serde(default, deserialize_with = "whole_number")]
    max_lifetime_seconds: Option<u64>,
    require_expiration: Option<bool>,
    forward: Option<bool>,
    claim_to_headers: Option<Vec<RawClaimHeader>>,
    forward_payload_header: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaimHeader {
    claim: String,
    header: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemoteJwks {
    cluster: String,
    uri: Option<String>,
    #[serde(default, deserialize_with = "whole_number")]
    refresh_seconds: Option<u64>,
    #[serde(default, deserialize_with = "whole_number")]
    timeout_ms: Option<u64>,
    #[serde(default, deserialize_with = "whole_number")]
    min_refetch_seconds: Option<u64>,
    #[serde(default, deserialize_with = "whole_number")]
    max_stale_seconds: Option<u64>,
    #[serde(default)]
    discovery: bool,
    discovery_uri: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeaderLocation {
    name: String,
    #[serde(default)]
    value_prefix: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<String>,
    #[serde(rename = "match")]
    matcher: Option<RawMatch>,
    provider: Option<String>,
    providers: Option<Vec<String>>,
    #[serde(default)]
    allow_anonymous: bool,
    #[serde(default)]
    disabled: bool,
    #[serde(default)]
    dry_run: bool,
    roles: Option<RawAnyAll>,
    scopes: Option<RawAnyAll>,
    claims: Option<Vec<RawClaim>>,
    source_ips: Option<RawAllowDeny>,
    countries: Option<RawAllowDeny>,
    bind_ip_claim: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    prefix: Option<String>,
    path: Option<String>,
    methods: Option<Vec<String>>,
    hosts: Option<Vec<String>>,
    route_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnyAll {
    #[serde(default)]
    any: Vec<String>,
    #[serde(default)]
    all: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaim {
    name: String,
    values: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllowDeny {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClientIp {
    from: String,
    #[serde(default, deserialize_with = "whole_number")]
    trusted_hops: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGeo {
    country_header: Option<String>,
    country_claim: Option<String>,
}

/// Integer fields (counts, seconds, milliseconds) take any JSON number with a whole value, so
/// `1000` and `1000.0` both mean 1000: configurations that went through a protobuf `Struct`
/// (Istio's `WasmPlugin.pluginConfig`) hold every number as a double, and some marshallers print
/// `1000.0` (Python's `json_format` does; Istio's Go marshaller prints `1000`). A fraction, a
/// negative number or one too large for the field is refused, naming the field.
fn whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    struct Whole;
    impl serde::de::Visitor<'_> for Whole {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative whole number")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<u64, E> {
            // 2^64 is exactly representable; every whole double below it fits in a u64.
            if v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v) {
                Ok(v as u64)
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
            }
        }
    }
    struct Optional;
    impl<'de> serde::de::Visitor<'de> for Optional {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative whole number")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Option<u64>, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Option<u64>, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<u64>, D::Error> {
            d.deserialize_any(Whole).map(Some)
        }
    }
    match deserializer.deserialize_option(Optional)? {
        None => Ok(None),
        Some(v) => T::try_from(v).map(Some).map_err(|_| {
            serde::de::Error::invalid_value(
                serde::de::Unexpected::Unsigned(v),
                &"a smaller whole number",
            )
        }),
    }
}

// ---- The compiled form ----

#[derive(Debug)]
pub struct Config {
    pub realm: String,
    pub providers: Vec<Provider>,
    pub rules: Vec<Rule>,
    pub roles_claim: ClaimPath,
    pub scopes_claim: ClaimPath,
    pub client_ip: ClientIpSource,
    pub country_header: Option<String>,
    pub country_claim: Option<ClaimPath>,
    pub dry_run: bool,
    pub needs_route_name: bool,
    /// Whether any rule matches on hosts.
    pub needs_host: bool,
    /// Every provider's identity headers: removed from every request before anything else.
    pub identity_headers: Vec<String>,
    /// Verified tokens kept per VM (0: no cache).
    pub token_cache_size: usize,
    pub signature_backend: SignatureBackend,
    /// The Wasm property (Envoy filter state `wasm.<name>`) that receives each request's
    /// outcome as JSON, for access logs and later filters.
    pub outcome_in_filter_state: Option<String>,
}

/// Who checks RS*/ES* signatures (`signature_backend`). Other algorithms are always checked in
/// Rust: the host does not serve them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureBackend {
    /// The host where it offers `verify_signature`, else Rust.
    Auto,
    /// The host; a configuration for a host without it is refused.
    Host,
    /// Rust in the Wasm VM, always.
    PureRust,
}

/// The most verified tokens a VM may keep: with tokens of up to 8 KiB, about 800 MiB at most.
const MAX_TOKEN_CACHE_SIZE: usize = 100_000;

#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub token_rules: TokenRules,
    /// Keys fetched at run time (`remote_jwks`), if any.
    pub remote: Option<RemoteJwks>,
    /// The inline `jwks`, kept to fall back on when fetched keys are dropped as too old.
    pub inline_jwks: Option<Value>,
    pub locations: Vec<TokenLocation>,
    pub forward: bool,
    /// Claims and payload sent upstream for tokens this provider accepts.
    pub identity: IdentityHeaders,
}

#[derive(Debug)]
pub struct Rule {
    /// The rule's `name`, if it has one: what route metadata binds to.
    pub name: Option<String>,
    /// The name in counters and outcomes: `name`, or `rule_<index>` for a rule without one.
    pub label: String,
    /// `None`: the rule has no `match` and applies only to routes that name it.
    pub matcher: Option<Matcher>,
    pub authentication: Authentication,
    pub policy: Policy,
    pub dry_run: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Authentication {
    /// The filter does nothing for this rule.
    Disabled,
    /// A token valid for one of these providers (indexes into `Config::providers`).
    Required(Vec<usize>),
    /// No token is fine; a token that is present must be valid for one of these providers.
    Optional(Vec<usize>),
}

#[derive(Debug, Default)]
pub struct Matcher {
    pub path: PathMatch,
    pub methods: Vec<String>,
    pub hosts: Vec<String>,
    pub route_name: Option<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub enum PathMatch {
    #[default]
    Any,
    Prefix(String),
    Exact(String),
}

impl Config {
    /// Lets the host check the signatures it serves, as `signature_backend` asks, on a host
    /// that offers the check (`host_can_verify`). Returns whether it does.
    pub fn choose_signature_backend(&mut self, host_can_verify: bool) -> Result<bool, ConfigError> {
        let use_host = match self.signature_backend {
            SignatureBackend::PureRust => false,
            SignatureBackend::Auto => host_can_verify,
            SignatureBackend::Host if host_can_verify => true,
            SignatureBackend::Host => {
                return Err(ConfigError::new(
                    "signature_backend",
                    "\"host\", but this host has no verify_signature function",
                ));
            }
        };
        if use_host {
            for provider in &mut self.providers {
                provider.token_rules.keys.use_host_backend();
            }
        }
        Ok(use_host)
    }

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

fn compile(raw: RawConfig) -> Result<Config, ConfigError> {
    let realm = raw.realm.unwrap_or_else(|| "jwt-guard".to_string());
    if realm.is_empty() || !is_quotable(&realm) {
        return Err(ConfigError::new(
            "realm",
            "must be non-empty printable ASCII without '\"' or '\\'",
        ));
    }
    let providers = raw
        .providers
        .into_iter()
        .map(|(name, provider)| compile_provider(name, provider))
        .collect::<Result<Vec<_>, _>>()?;
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
    for provider in &providers {
        for name in provider.identity.names() {
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
    let needs_host = matchers().any(|m| !m.hosts.is_empty());
    let token_cache_size = raw
        .token_cache_size
        .unwrap_or(crate::cache::DEFAULT_CAPACITY);
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
        identity_headers,
        token_cache_size,
        signature_backend,
        outcome_in_filter_state,
    })
}

fn compile_provider(name: String, raw: RawProvider) -> Result<Provider, ConfigError> {
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
    let remote = match raw.remote_jwks {
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
    let locations = compile_locations(&name, raw.from_headers, raw.from_params, raw.from_cookies)?;
    let identity = compile_identity(
        &field,
        raw.claim_to_headers.unwrap_or_default(),
        raw.forward_payload_header,
        &locations,
    )?;
    Ok(Provider {
        token_rules: TokenRules {
            issuer: raw.issuer,
            audiences,
            keys: KeyStore::new(keys),
            clock_skew_seconds,
            max_lifetime_seconds: raw.max_lifetime_seconds,
            require_expiration: raw.require_expiration.unwrap_or(true),
        },
        locations,
        forward: raw.forward.unwrap_or(false),
        identity,
        remote,
        inline_jwks: raw.jwks,
        name,
    })
}

const DEFAULT_REFRESH_SECONDS: u64 = 300;
const DEFAULT_TIMEOUT_MS: u64 = 2_000;
const DEFAULT_MIN_REFETCH_SECONDS: u64 = 30;
/// A day (or two refresh periods, if longer): fetched keys never outlive their last good fetch
/// by more, so an IdP that revoked a key while unreachable is obeyed within a day of going
/// down, and an outage of up to a day does not lock every caller out.
const DEFAULT_MAX_STALE_SECONDS: u64 = 86_400;
/// A week: keys refreshed less often than that are not "remote" in any useful sense.
const MAX_REFRESH_SECONDS: u64 = 7 * 86_400;
const MAX_TIMEOUT_MS: u64 = 60_000;

fn compile_remote(at: &str, raw: RawRemoteJwks, issuer: &str) -> Result<RemoteJwks, ConfigError> {
    let field = |member: &str| format!("{at}.{member}");
    if raw.cluster.is_empty() {
        return Err(ConfigError::new(field("cluster"), "must not be empty"));
    }
    let source = match (raw.uri, raw.discovery, raw.discovery_uri) {
        (Some(uri), false, None) => Source::Jwks(
            Uri::parse(&uri).map_err(|message| ConfigError::new(field("uri"), message))?,
        ),
        (None, true, None) => Source::Discovery(Uri::discovery_of(issuer).map_err(|message| {
            ConfigError::new(
                field("discovery"),
                format!("the issuer is not a URL for discovery: {message}"),
            )
        })?),
        (None, false, Some(uri)) => Source::Discovery(
            Uri::parse(&uri)
                .map_err(|message| ConfigError::new(field("discovery_uri"), message))?,
        ),
        (None, false, None) => {
            return Err(ConfigError::new(
                field("uri"),
                "required (or \"discovery\": true, or discovery_uri)",
            ));
        }
        (Some(_), _, _) => {
            return Err(ConfigError::new(
                field("uri"),
                "give uri or discovery/discovery_uri, not both",
            ));
        }
        (None, true, Some(_)) => {
            return Err(ConfigError::new(
                field("discovery_uri"),
                "give discovery or discovery_uri, not both",
            ));
        }
    };
    let refresh_seconds = raw.refresh_seconds.unwrap_or(DEFAULT_REFRESH_SECONDS);
    if !(1..=MAX_REFRESH_SECONDS).contains(&refresh_seconds) {
        return Err(ConfigError::new(
            field("refresh_seconds"),
            format!("must be between 1 and {MAX_REFRESH_SECONDS}"),
        ));
    }
    let timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(ConfigError::new(
            field("timeout_ms"),
            format!("must be between 1 and {MAX_TIMEOUT_MS}"),
        ));
    }
    let min_refetch_seconds = raw
        .min_refetch_seconds
        .unwrap_or(DEFAULT_MIN_REFETCH_SECONDS.min(refresh_seconds));
    if !(1..=refresh_seconds).contains(&min_refetch_seconds) {
        return Err(ConfigError::new(
            field("min_refetch_seconds"),
            "must be between 1 and refresh_seconds",
        ));
    }
    let mut remote = RemoteJwks {
        cluster: raw.cluster,
        source,
        refresh_ms: refresh_seconds * 1_000,
        timeout_ms,
        min_refetch_ms: min_refetch_seconds * 1_000,
        max_stale_ms: 0,
        issuer: issuer.to_string(),
    };
    // A healthy IdP must never see its keys dropped: the refresh that is due gets its whole
    // time (the next tick, then discovery and the key set, each within timeout_ms) first.
    let least = remote.refresh_ms + remote.refresh_time_ms();
    let max_stale_ms = match raw.max_stale_seconds {
        Some(seconds) if seconds.saturating_mul(1_000) < least => {
            return Err(ConfigError::new(
                field("max_stale_seconds"),
                format!(
                    "must be at least {} (refresh_seconds, plus the time a refresh may take: 2 x timeout_ms + 1.5 s), or a refresh that is due would find its keys dropped before a healthy IdP answers",
                    least.div_ceil(1_000)
                ),
            ));
        }
        Some(seconds) => seconds.saturating_mul(1_000),
        None => DEFAULT_MAX_STALE_SECONDS
            .max(2 * refresh_seconds)
            .saturating_mul(1_000),
    };
    remote.max_stale_ms = max_stale_ms;
    Ok(remote)
}

/// Headers a claim must never be written to: hop-by-hop and framing headers, the ones Envoy
/// routes on, and jwt-guard's own.
const RESERVED_HEADERS: [&str; 10] = [
    "host",
    "authorization",
    "cookie",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    crate::decision::DRY_RUN_HEADER,
];

fn compile_identity(
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

fn compile_locations(
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

fn add_params_and_cookies(
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

fn compile_rule(
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
        || raw.bind_ip_claim.is_some();
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
    })
}

fn compile_match(at: &str, raw: RawMatch) -> Result<Matcher, ConfigError> {
    let field = |member: &str| format!("{at}.{member}");
    let path = match (raw.prefix, raw.path) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                field("path"),
                "give prefix or path, not both",
            ));
        }
        (Some(prefix), None) if prefix.starts_with('/') => PathMatch::Prefix(prefix),
        (Some(_), None) => return Err(ConfigError::new(field("prefix"), "must start with '/'")),
        (None, Some(path)) if path.starts_with('/') => PathMatch::Exact(path),
        (None, Some(_)) => return Err(ConfigError::new(field("path"), "must start with '/'")),
        (None, None) => PathMatch::Any,
    };
    let methods = non_empty_list(&field("methods"), raw.methods)?;
    if methods
        .iter()
        .any(|m| !m.bytes().all(|b| b.is_ascii_alphabetic()))
    {
        return Err(ConfigError::new(
            field("methods"),
            "methods are HTTP method names like \"GET\"",
        ));
    }
    let methods = methods
        .into_iter()
        .map(|m| m.to_ascii_uppercase())
        .collect();
    let hosts = non_empty_list(&field("hosts"), raw.hosts)?
        .into_iter()
        .enumerate()
        .map(|(index, host)| compile_host(&format!("{}[{index}]", field("hosts")), &host))
        .collect::<Result<Vec<_>, _>>()?;
    if raw.route_name.as_deref() == Some("") {
        return Err(ConfigError::new(field("route_name"), "must not be empty"));
    }
    Ok(Matcher {
        path,
        methods,
        hosts,
        route_name: raw.route_name,
    })
}

/// A host name, IP literal or `*.suffix`, lower-case and without a trailing dot, as requests'
/// hosts are compared (see `Request::host`).
fn compile_host(field: &str, host: &str) -> Result<String, ConfigError> {
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

fn non_empty_list(field: &str, list: Option<Vec<String>>) -> Result<Vec<String>, ConfigError> {
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

fn compile_any_all(field: &str, raw: RawAnyAll) -> Result<StringRequirement, ConfigError> {
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

fn compile_claims(field: &str, raw: Vec<RawClaim>) -> Result<Vec<ClaimRequirement>, ConfigError> {
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

fn compile_ips(field: &str, raw: RawAllowDeny) -> Result<IpRule, ConfigError> {
    let (allow, deny) = compile_allow_deny(field, raw, "an IP or CIDR", parse_net)?;
    Ok(IpRule {
        allow: NetSet::new(allow),
        deny: NetSet::new(deny),
    })
}

fn compile_countries(
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
fn compile_allow_deny<T>(
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

/// RFC 9110 token characters, so the name can be used as a header name.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A name that can stand in an Envoy stat name as one element (no `.`), and in Prometheus.
fn is_stat_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn is_unnamed_label(name: &str) -> bool {
    name.strip_prefix("rule_")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A Wasm property name: Envoy keeps it as filter state `wasm.<name>`.
fn is_property_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

/// Safe inside a quoted-string of `WWW-Authenticate`.
fn is_quotable(text: &str) -> bool {
    text.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil;
    use serde_json::json;

    pub(crate) fn base() -> Value {
        json!({
            "realm": "api",
            "providers": {"corp": {
                "issuer": testutil::issuer(),
                "audiences": ["orders"],
                "jwks": testutil::jwks(),
            }},
            "rules": [
                {"match": {"prefix": "/public"}, "allow_anonymous": true},
                {"match": {"prefix": "/healthz"}, "disabled": true},
                {"match": {"prefix": "/", "methods": ["GET", "POST"]}, "provider": "corp"}
            ]
        })
    }

    fn compile_with(edit: impl FnOnce(&mut Value)) -> Result<Config, ConfigError> {
        let mut config = base();
        edit(&mut config);
        Config::from_json(config.to_string().as_bytes())
    }

    #[test]
    fn compiles_the_contract_example_with_defaults() {
        let config = compile_with(|_| {}).unwrap();
        let corp = &config.providers[0];
        assert_eq!(corp.locations, vec![TokenLocation::default_header()]);
        let with_cookie =
            compile_with(|c| c["providers"]["corp"]["from_cookies"] = json!(["s"])).unwrap();
        assert_eq!(
            with_cookie.providers[0].locations,
            vec![
                TokenLocation::default_header(),
                TokenLocation::Cookie("s".into())
            ]
        );
        assert_eq!(corp.token_rules.clock_skew_seconds, 60);
        assert!(corp.token_rules.require_expiration);
        assert!(!corp.forward);
        assert_eq!(config.rules[1].authentication, Authentication::Disabled);
        assert_eq!(
            config.rules[0].authentication,
            Authentication::Optional(vec![0])
        );
    }

    #[test]
    fn jwks_may_be_a_string() {
        let config = compile_with(|c| {
            let text = c["providers"]["corp"]["jwks"].to_string();
            c["providers"]["corp"]["jwks"] = Value::String(text);
        });
        assert!(config.is_ok());
    }

    fn remote_json(extra: Value) -> Value {
        let mut remote = json!({"cluster": "idp", "uri": "https://idp.example.com/jwks.json",
                                "refresh_seconds": 300, "timeout_ms": 2000, "min_refetch_seconds": 30});
        for (name, value) in extra.as_object().unwrap() {
            remote[name] = value.clone();
        }
        remote
    }

    #[test]
    fn keys_never_outlive_a_bounded_age_nor_a_healthy_refresh() {
        let stale = |extra: Value| {
            compile_with(|c| c["providers"]["corp"]["remote_jwks"] = remote_json(extra))
                .map(|config| config.providers[0].remote.as_ref().unwrap().max_stale_ms)
                .map_err(|err| err.to_string())
        };
        // The least: refresh_seconds + 2 x timeout_ms + 1.5 s, rounded up.
        assert_eq!(stale(json!({"max_stale_seconds": 306})), Ok(306_000));
        let err = stale(json!({"max_stale_seconds": 305})).unwrap_err();
        assert!(err.contains("must be at least 306"), "{err}");
        assert_eq!(
            stale(
                json!({"refresh_seconds": 10, "timeout_ms": 1000, "min_refetch_seconds": 5, "max_stale_seconds": 14})
            ),
            Ok(14_000)
        );
        assert!(
            stale(json!({"refresh_seconds": 10, "timeout_ms": 1000, "min_refetch_seconds": 5, "max_stale_seconds": 13}))
                .unwrap_err()
                .contains("max_stale_seconds")
        );
        // Unset: a day, or two refresh periods when those are longer.
        assert_eq!(stale(json!({})), Ok(86_400_000));
        assert_eq!(
            stale(json!({"refresh_seconds": 604_800})),
            Ok(1_209_600_000)
        );
    }

    #[test]
    fn remote_jwks_makes_jwks_optional() {
        let config = compile_with(|c| {
            c["providers"]["corp"]
                .as_object_mut()
                .unwrap()
                .remove("jwks");
            c["providers"]["corp"]["remote_jwks"] = remote_json(json!({}));
        })
        .unwrap();
        let corp = &config.providers[0];
        let remote = corp.remote.as_ref().unwrap();
        assert_eq!(remote.cluster, "idp");
        assert_eq!(
            remote.source,
            Source::Jwks(Uri {
                authority: "idp.example.com".into(),
                path: "/jwks.json".into()
            })
        );
        assert_eq!(
            (remote.refresh_ms, remote.timeout_ms, remote.min_refetch_ms),
            (300_000, 2_000, 30_000)
        );
        assert_eq!(remote.max_stale_ms, 86_400_000, "bounded by default");
        assert!(corp.token_rules.keys.current().is_empty());
        assert!(corp.inline_jwks.is_none());
        // Both: inline keys serve until the first fetch.
        let both = compile_with(|c| c["providers"]["corp"]["remote_jwks"] = remote_json(json!({})))
            .unwrap();
        assert!(!both.providers[0].token_rules.keys.current().is_empty());
        // Discovery from the issuer.
        let discovery = compile_with(|c| {
            c["providers"]["corp"]["remote_jwks"] = json!({"cluster": "idp", "discovery": true});
        })
        .unwrap();
        let Some(Source::Discovery(uri)) =
            discovery.providers[0].remote.as_ref().map(|r| &r.source)
        else {
            panic!("no discovery");
        };
        assert!(uri.path.ends_with("/.well-known/openid-configuration"));
    }

    #[test]
    fn remote_jwks_refusals_name_the_field() {
        let at = "providers.corp.remote_jwks";
        let cases = [
            (json!({"cluster": ""}), "cluster"),
            (json!({"uri": "ftp://x/y"}), "uri"),
            (json!({"uri": null}), "uri"),
            (json!({"discovery": true}), "uri"),
            (
                json!({"uri": null, "discovery": true, "discovery_uri": "https://a/b"}),
                "discovery_uri",
            ),
            (
                json!({"uri": null, "discovery_uri": "nope"}),
                "discovery_uri",
            ),
            (json!({"refresh_seconds": 0}), "refresh_seconds"),
            (json!({"timeout_ms": 0}), "timeout_ms"),
            (json!({"timeout_ms": 600000}), "timeout_ms"),
            (json!({"min_refetch_seconds": 0}), "min_refetch_seconds"),
            (json!({"min_refetch_seconds": 301}), "min_refetch_seconds"),
            (json!({"max_stale_seconds": 10}), "max_stale_seconds"),
            (json!({"max_stale_seconds": 300}), "max_stale_seconds"),
            (json!({"max_stale_seconds": 305}), "max_stale_seconds"),
            (json!({"refresh": 10}), "refresh"),
        ];
        for (extra, field) in cases {
            let mut remote = remote_json(extra.clone());
            remote.as_object_mut().unwrap().retain(|_, v| !v.is_null());
            let err = compile_with(|c| c["providers"]["corp"]["remote_jwks"] = remote)
                .err()
                .unwrap_or_else(|| panic!("{extra} was accepted"));
            assert_eq!(err.field, format!("{at}.{field}"), "{extra}: {err}");
        }
        let err = compile_with(|c| {
            c["providers"]["corp"]
                .as_object_mut()
                .unwrap()
                .remove("jwks");
        })
        .err()
        .unwrap();
        assert_eq!(err.field, "providers.corp.jwks");
        let err = compile_with(|c| {
            c["providers"]["corp"]["issuer"] = json!("corp-issuer");
            c["providers"]["corp"]["remote_jwks"] = json!({"cluster": "idp", "discovery": true});
        })
        .err()
        .unwrap();
        assert_eq!(err.field, format!("{at}.discovery"));
    }

    #[test]
    fn rule_names_provider_names_and_the_outcome_property() {
        let config = compile_with(|c| {
            c["rules"][0]["name"] = json!("health-check_1");
            c["outcome_in_filter_state"] = json!("jwt_guard.outcome");
        })
        .unwrap();
        assert_eq!(config.rules[0].name.as_deref(), Some("health-check_1"));
        assert_eq!(config.rules[0].label, "health-check_1");
        assert_eq!(config.rules[1].name, None);
        assert_eq!(config.rules[1].label, "rule_1");
        assert_eq!(
            config.outcome_in_filter_state.as_deref(),
            Some("jwt_guard.outcome")
        );
        type Edit = Box<dyn Fn(&mut Value)>;
        let refused: Vec<(Edit, &str)> = vec![
            (
                Box::new(|c| c["rules"][1]["name"] = json!("")),
                "rules[1].name",
            ),
            (
                Box::new(|c| c["rules"][1]["name"] = json!("a.b")),
                "rules[1].name",
            ),
            (
                Box::new(|c| c["rules"][1]["name"] = json!("a b")),
                "rules[1].name",
            ),
            (
                Box::new(|c| c["rules"][1]["name"] = json!("x".repeat(65))),
                "rules[1].name",
            ),
            (
                Box::new(|c| c["rules"][1]["name"] = json!("rule_7")),
                "rules[1].name",
            ),
            (
                Box::new(|c| {
                    c["rules"][0]["name"] = json!("same");
                    c["rules"][2]["name"] = json!("same");
                }),
                "rules[2].name",
            ),
            (
                Box::new(|c| c["outcome_in_filter_state"] = json!("")),
                "outcome_in_filter_state",
            ),
            (
                Box::new(|c| c["outcome_in_filter_state"] = json!("a/b")),
                "outcome_in_filter_state",
            ),
            (
                Box::new(|c| {
                    let corp = c["providers"]["corp"].clone();
                    c["providers"]["corp.eu"] = corp;
                }),
                "providers.corp.eu",
            ),
        ];
        for (edit, field) in refused {
            let err = compile_with(edit).expect_err("refused");
            assert_eq!(err.field, field, "{err}");
        }
        // A rule named like an unnamed one's label, but not of that form, is fine.
        assert!(compile_with(|c| c["rules"][1]["name"] = json!("rule_x")).is_ok());
    }

    #[test]
    fn refusals_name_the_field() {
        type Edit = fn(&mut Value);
        let cases: Vec<(Edit, &str)> = vec![
            (|c| c["extra"] = json!(1), "extra"),
            (
                |c| c["providers"]["corp"]["issuerr"] = json!("x"),
                "providers.corp.issuerr",
            ),
            (
                |c| c["providers"]["corp"]["issuer"] = json!(""),
                "providers.corp.issuer",
            ),
            (
                |c| c["providers"]["corp"]["audiences"] = json!([]),
                "providers.corp.audiences",
            ),
            (
                |c| c["providers"]["corp"]["jwks"] = json!({"keys": [{"kty": "EC"}]}),
                "providers.corp.jwks.keys[0]",
            ),
            (
                |c| c["providers"]["corp"]["jwks"] = json!("{not json"),
                "providers.corp.jwks",
            ),
            (
                |c| c["providers"]["corp"]["clock_skew_seconds"] = json!(-1),
                "providers.corp.clock_skew_seconds",
            ),
            (
                |c| c["providers"]["corp"]["from_headers"] = json!([{"name": "bad header"}]),
                "providers.corp.from_headers[0].name",
            ),
            (
                |c| c["providers"]["corp"]["from_headers"] = json!([]),
                "providers.corp.from_headers",
            ),
            (
                |c| c["rules"][2]["provider"] = json!("nope"),
                "rules[2].provider",
            ),
            (
                |c| c["rules"][2]["match"]["prefix"] = json!("x"),
                "rules[2].match.prefix",
            ),
            (
                |c| c["rules"][2]["match"]["pathh"] = json!("/x"),
                "rules[2].match.pathh",
            ),
            (
                |c| c["rules"][1]["provider"] = json!("corp"),
                "rules[1].disabled",
            ),
            (|c| c["rules"][2]["roles"] = json!({}), "rules[2].roles"),
            (
                |c| c["rules"][2]["source_ips"] = json!({"allow": ["10.0.0.0/40"]}),
                "rules[2].source_ips.allow[0]",
            ),
            (
                |c| c["rules"][2]["countries"] = json!({"allow": ["US"]}),
                "rules[2].countries",
            ),
            (
                |c| c["rules"][2]["claims"] = json!([{"name": "t", "values": [[1]]}]),
                "rules[2].claims[0].values",
            ),
            (
                |c| c["client_ip"] = json!({"from": "xff"}),
                "client_ip.trusted_hops",
            ),
            (
                |c| c["client_ip"] = json!({"from": "header"}),
                "client_ip.from",
            ),
            (|c| c["realm"] = json!("a\"b"), "realm"),
            (
                |c| c["rules"][2]["match"]["hosts"] = json!(["a.example", "b.example:80"]),
                "rules[2].match.hosts[1]",
            ),
            (
                |c| c["rules"][2]["match"]["hosts"] = json!(["*"]),
                "rules[2].match.hosts[0]",
            ),
            (|c| c["rules"] = json!([]), "rules"),
            (|c| c["rules"] = json!("x"), "rules"),
        ];
        for (edit, field) in cases {
            let err = compile_with(edit).unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
    }

    #[test]
    fn integer_fields_take_whole_numbers_written_as_floats() {
        // As a protobuf Struct (Istio's pluginConfig) may deliver them: every number a double.
        let config = compile_with(|c| {
            c["token_cache_size"] = json!(1000.0);
            c["client_ip"] = json!({"from": "xff", "trusted_hops": 2.0});
            c["providers"]["corp"]["clock_skew_seconds"] = json!(30.0);
            c["providers"]["corp"]["max_lifetime_seconds"] = json!(8.64e4);
            c["providers"]["corp"]["remote_jwks"] = remote_json(json!({
                "refresh_seconds": 600.0, "timeout_ms": 1500.0,
                "min_refetch_seconds": 10.0, "max_stale_seconds": 3600.0}));
        })
        .unwrap();
        assert_eq!(config.token_cache_size, 1000);
        assert_eq!(
            config.client_ip,
            ClientIpSource::ForwardedFor { trusted_hops: 2 }
        );
        let corp = &config.providers[0];
        assert_eq!(corp.token_rules.clock_skew_seconds, 30);
        assert_eq!(corp.token_rules.max_lifetime_seconds, Some(86_400));
        let remote = corp.remote.as_ref().unwrap();
        assert_eq!(
            (remote.refresh_ms, remote.timeout_ms, remote.min_refetch_ms),
            (600_000, 1_500, 10_000)
        );
        assert_eq!(remote.max_stale_ms, 3_600_000);
        // null is "not given", as for any optional field.
        let config = compile_with(|c| c["token_cache_size"] = Value::Null).unwrap();
        assert_eq!(config.token_cache_size, crate::cache::DEFAULT_CAPACITY);
    }

    #[test]
    fn integer_fields_refuse_fractions_negatives_and_other_types() {
        type Edit = fn(&mut Value);
        let cases: Vec<(Edit, &str, &str)> = vec![
            (
                |c| c["token_cache_size"] = json!(10.5),
                "token_cache_size",
                "floating point `10.5`",
            ),
            (
                |c| c["token_cache_size"] = json!(-1),
                "token_cache_size",
                "integer `-1`",
            ),
            (
                |c| c["token_cache_size"] = json!(-1.0),
                "token_cache_size",
                "floating point `-1.0`",
            ),
            (
                |c| c["token_cache_size"] = json!("1000"),
                "token_cache_size",
                "string \"1000\"",
            ),
            (
                |c| c["token_cache_size"] = json!(true),
                "token_cache_size",
                "boolean",
            ),
            (
                |c| c["providers"]["corp"]["clock_skew_seconds"] = json!(0.25),
                "providers.corp.clock_skew_seconds",
                "floating point `0.25`",
            ),
            (
                |c| c["providers"]["corp"]["max_lifetime_seconds"] = json!(1e20),
                "providers.corp.max_lifetime_seconds",
                "floating point",
            ),
            (
                |c| c["client_ip"] = json!({"from": "xff", "trusted_hops": 1.5}),
                "client_ip.trusted_hops",
                "floating point `1.5`",
            ),
        ];
        for (edit, field, what) in cases {
            let err = compile_with(edit).unwrap_err();
            assert_eq!(err.field, field, "{err}");
            assert!(
                err.message.contains(what) && err.message.contains("whole number"),
                "{err}"
            );
        }
        // Too large for a usize where usize is 32 bits (wasm32), or for the field's own limit.
        let err = compile_with(|c| c["token_cache_size"] = json!(1e12)).unwrap_err();
        assert_eq!(err.field, "token_cache_size", "{err}");
    }

    #[test]
    fn not_json_at_all() {
        let err = Config::from_json(b"{oops").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
