//! `jwt-guard explain CONFIG --path /x ...`: decides one request with the filter's own
//! `decide` (through `decide_traced`, which records each step) and renders what happened.
//!
//! The verdict printed is `decide`'s; the steps only describe how it got there. Signatures are
//! checked in Rust (`PureRustVerifier`): Envoy checks RS*/ES* with BoringSSL when it can, with
//! the same answers (both backends pass the same tests). Nothing here prints the token itself:
//! request header values are not shown, and the token appears as a SHA-256 fingerprint.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use jwt_guard::authn::Authenticator;
use jwt_guard::authn::cache::TokenCache;
use jwt_guard::authn::jwks::KeySet;
use jwt_guard::authn::provider::Provider;
use jwt_guard::authn::verify::PureRustVerifier;
use jwt_guard::authz::address::{ClientIpSource, parse_address};
use jwt_guard::config::{Authentication, Config, Matcher, PathMatch, Rule};
use jwt_guard::decision::outcome;
use jwt_guard::decision::{Decision, MatchPart, Verdict, decide_traced};
use jwt_guard::request::Country;
use jwt_guard::request::Selection;
use jwt_guard::request::{MetadataMember, ROUTE_RULE_MEMBER, Request, route_binding};
use jwt_guard::token::extract::{HeaderChange, TokenLocation};
use jwt_guard::token::jws::UnverifiedClaims;
use jwt_guard::token::jws::{UnverifiedJws, decode_part, numeric_date};
use jwt_guard::trace::{ClaimCheck, PolicyCheck, Step};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::args::{self, Args, Opt};
use crate::{Failure, Report, check, envoy_headers, exit, source};

pub const HELP: &str = "\
Usage: jwt-guard explain CONFIG --path PATH [OPTIONS]

Decides one request as the filter would, with the filter's own code, and shows how: the rule
that applies (and the rules skipped before it), where the token was found, the provider that
judged it, its header (alg, kid), the key and signature, each registered-claim check (exp,
nbf, iat, iss, aud, lifetime), each policy check (source_ips, bind_ip_claim, countries, roles,
scopes, claims), then the decision: status and reason, and for a refusal the response Envoy
sends (WWW-Authenticate and body), for a request let through the headers removed or set
before it goes upstream. The token itself is never printed (only its SHA-256 fingerprint).

Options:
  --path PATH            the request's :path, query string included (required)
  --method METHOD        :method (default GET)
  --host HOST            :authority (default localhost)
  --header 'NAME: VALUE' a request header, as Envoy hands it to the filter (repeatable), e.g.
                         --header \"authorization: Bearer $TOKEN\"
  --peer IP              the client address Envoy decided on (source.address), e.g. 10.1.2.3
  --route-name NAME      Envoy's route name (xds.route_name), for rules with match.route_name
  --route-rule NAME      the rule the route's metadata names (filter_metadata.jwt_guard.rule);
                         '' is a binding to an empty name (refused, as in Envoy)
  --route-metadata JSON  the route's whole filter_metadata.jwt_guard, e.g. '{\"rule\": null}':
                         any namespace binds the route, to the name in its one member `rule`,
                         or to no rule (refused) when that is missing, empty, not text, or has
                         other members beside it
  --now UNIX             the clock, in seconds since 1970 (default: now)
  --jwks PROVIDER=FILE   keys for a provider with remote_jwks, as its JWKS URL would serve
                         them (repeatable); without it such a provider has its inline jwks,
                         or none (401 keys_unavailable)
  --index N              which configuration of an Envoy YAML file holding several (1-based)
  --json                 one JSON object instead of text: decision, status, reason, rule,
                         provider, response, upstream changes, outcome and the steps

Repeated --header lines are handed over as Envoy 1.40 hands them to filters: the lines of a
header Envoy keeps inline (authorization, user-agent, x-forwarded-for, …) joined with `,` into
one value, the others (cookie, x-user-sub, …) as separate values.

What Envoy does before the filter is not simulated: give the path as Envoy normalised it, the
client address its original-IP detection decided (--peer), and headers as earlier filters left
them (a geoip filter's country header, say).

Exit codes: 0 the request would go upstream (dry runs included); 3 it would be refused
(401/403); 1 the configuration is invalid (the filter's line on stderr); 2 wrong command line;
4 a file cannot be read or used.
";

const SPEC: &[Opt] = &[
    args::value("path"),
    args::value("method"),
    args::value("host"),
    args::values("header"),
    args::value("peer"),
    args::value("route-name"),
    args::value("route-rule"),
    args::value("route-metadata"),
    args::value("now"),
    args::values("jwks"),
    args::value("index"),
    args::flag("json"),
];

pub fn run(argv: &[String]) -> Result<Report, Failure> {
    let args = Args::parse("explain", argv, SPEC)?;
    if args.help {
        return Ok(Report::ok(HELP.to_string()));
    }
    let config_path = args.single_positional("CONFIG")?;
    let input = Input::from_args(&args)?;
    let found = source::read_one(config_path, args.number::<usize>("index")?)?;
    let config = check::compile(&found.json).map_err(Failure::InvalidConfig)?;
    let mut notes = load_jwks(&config, &args)?;
    for provider in &config.providers {
        if provider.remote.is_some()
            && !args
                .all("jwks")
                .iter()
                .any(|j| j.split_once('=').is_some_and(|(p, _)| p == provider.name))
        {
            let keys = if provider.token_rules.keys.current().is_empty() {
                "none (its tokens get 401 keys_unavailable)"
            } else {
                "its inline jwks only"
            };
            notes.push(format!(
                "provider {} has remote_jwks and no --jwks {}=FILE: keys in use: {keys}",
                provider.name, provider.name
            ));
        }
    }
    let headers = input.headers();
    let peer = input.peer.clone();
    let peer_address = move || peer.clone();
    let request = Request {
        headers: &headers,
        peer_address: &peer_address,
        route_name: input.route_name.as_deref(),
        route_rule: input.route_rule.as_deref(),
    };
    let now = input.now;
    let clock = move || Some(now);
    let mut cache = TokenCache::new(0);
    let mut auth = Authenticator {
        verifier: &PureRustVerifier,
        cache: &mut cache,
        clock: &clock,
        judged_by: None,
    };
    let mut steps: Vec<Step> = Vec::new();
    let verdict = decide_traced(&config, &request, &mut auth, &mut steps);
    let explained = Explained {
        config: &config,
        request: &request,
        input: &input,
        steps: &steps,
        verdict: &verdict,
    };
    let code = match verdict.decision {
        Decision::Allow { .. } => exit::OK,
        Decision::Refuse(_) => exit::REFUSED,
    };
    let stdout = if args.flag("json") {
        let mut text = explained.json(&notes).to_string();
        text.push('\n');
        text
    } else {
        explained.text(&notes)
    };
    Ok(Report {
        code,
        stdout,
        stderr: String::new(),
    })
}

/// The request as given on the command line.
pub struct Input {
    method: String,
    path: String,
    host: String,
    headers: Vec<(String, String)>,
    peer: Option<String>,
    route_name: Option<String>,
    /// The rule the route binds (see [`route_binding`]); `None`: no binding.
    route_rule: Option<Vec<u8>>,
    now: u64,
}

impl Input {
    fn from_args(args: &Args) -> Result<Input, Failure> {
        let path = args
            .one("path")
            .ok_or_else(|| args.usage("--path is missing"))?
            .to_string();
        let mut headers = Vec::new();
        for header in args.all("header") {
            let Some((name, value)) = header.split_once(':') else {
                return Err(args.usage(format!(
                    "--header {:?}: write it as 'NAME: VALUE'",
                    shorten(header)
                )));
            };
            let name = name.trim();
            if name.is_empty()
                || name
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
            {
                return Err(args.usage(format!("--header: {name:?} is not a header name")));
            }
            headers.push((
                name.to_ascii_lowercase(),
                value.trim_matches([' ', '\t']).to_string(),
            ));
        }
        let peer = args.one("peer").map(str::to_string);
        if let Some(peer) = &peer
            && parse_address(peer).is_none()
        {
            return Err(args.usage(format!(
                "--peer {peer:?} is not an address (10.1.2.3, 10.1.2.3:5000, ::1 or [::1]:5000)"
            )));
        }
        let now = match args.number::<u64>("now")? {
            Some(now) => now,
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_err(|_| Failure::input("the system clock is before 1970: give --now"))?
                .as_secs(),
        };
        Ok(Input {
            method: args.one("method").unwrap_or("GET").to_string(),
            path,
            host: args.one("host").unwrap_or("localhost").to_string(),
            headers,
            peer,
            route_name: args.one("route-name").map(str::to_string),
            route_rule: route_rule(args)?,
            now,
        })
    }

    /// The header map as Envoy hands it to the filter: pseudo-headers first, names lower-case,
    /// the repeated lines of an inline header joined with `,` into the first one's place.
    fn headers(&self) -> Vec<(String, Vec<u8>)> {
        let mut headers = vec![
            (":authority".to_string(), self.host.clone().into_bytes()),
            (":path".to_string(), self.path.clone().into_bytes()),
            (":method".to_string(), self.method.clone().into_bytes()),
            (":scheme".to_string(), b"http".to_vec()),
        ];
        for (name, value) in &self.headers {
            envoy_headers::add(&mut headers, name, value.as_bytes());
        }
        headers
    }
}

/// `--route-rule NAME` (a namespace with that one member) or `--route-metadata JSON` (the whole
/// namespace), read as the filter reads the route's metadata.
fn route_rule(args: &Args) -> Result<Option<Vec<u8>>, Failure> {
    match (args.one("route-rule"), args.one("route-metadata")) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(args.usage("give --route-rule or --route-metadata, not both")),
        (Some(name), None) => Ok(route_binding(Some(&[(
            ROUTE_RULE_MEMBER,
            Some(name.as_bytes()),
        )]))
        .map(<[u8]>::to_vec)),
        (None, Some(json)) => {
            let Ok(serde_json::Value::Object(namespace)) = serde_json::from_str(json) else {
                return Err(args.usage(format!(
                    "--route-metadata {:?}: give the route's filter_metadata.jwt_guard as a JSON object, e.g. '{{\"rule\": \"admin\"}}'",
                    shorten(json)
                )));
            };
            let members: Vec<MetadataMember> = namespace
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str().map(str::as_bytes)))
                .collect();
            Ok(route_binding(Some(&members)).map(<[u8]>::to_vec))
        }
    }
}

/// An argument quoted in an error message, cut short (it may hold a token).
fn shorten(text: &str) -> String {
    match text.char_indices().nth(24) {
        Some((at, _)) => format!("{}…", text.get(..at).unwrap_or_default()),
        None => text.to_string(),
    }
}

/// Puts the keys given with `--jwks PROVIDER=FILE` in force, as a fetch of the provider's
/// JWKS URL would (the same validation, key by key). Returns notes on skipped keys.
fn load_jwks(config: &Config, args: &Args) -> Result<Vec<String>, Failure> {
    let mut notes = Vec::new();
    for item in args.all("jwks") {
        let Some((name, file)) = item.split_once('=') else {
            return Err(args.usage(format!("--jwks {item:?}: write it as PROVIDER=FILE")));
        };
        let Some(provider) = config.providers.iter().find(|p| p.name == name) else {
            return Err(args.usage(format!("--jwks: no provider {name:?} in the configuration")));
        };
        if provider.remote.is_none() {
            return Err(args.usage(format!(
                "--jwks: provider {name:?} has no remote_jwks; its keys are the configuration's"
            )));
        }
        let body = std::fs::read(file)
            .map_err(|err| Failure::input(format!("cannot read {file}: {err}")))?;
        let (keys, skipped) = KeySet::from_fetched(&body)
            .map_err(|why| Failure::input(format!("--jwks {name}={file}: {why}")))?;
        for skip in skipped {
            notes.push(format!(
                "--jwks {name}={file}: {}: {} (skipped, as the filter skips it)",
                skip.field, skip.message
            ));
        }
        if keys.is_empty() {
            notes.push(format!(
                "--jwks {name}={file}: holds no usable key: put in force empty, as the filter does (its tokens get 401 keys_unavailable)"
            ));
        }
        provider.token_rules.keys.replace(keys);
    }
    Ok(notes)
}

/// A token's short fingerprint: the first 12 hex digits of its SHA-256.
pub fn fingerprint(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{}", hex.get(..12).unwrap_or_default())
}

/// A rule's `match`; `None`: the rule has none and applies only to routes that name it.
pub fn describe_match(matcher: Option<&Matcher>) -> String {
    let Some(matcher) = matcher else {
        return "no match: only routes whose metadata names it".to_string();
    };
    let mut parts = Vec::new();
    match &matcher.path {
        PathMatch::Any => {}
        PathMatch::Prefix(prefix) => parts.push(format!("prefix {prefix:?}")),
        PathMatch::Exact(path) => parts.push(format!("path {path:?}")),
    }
    if !matcher.methods.is_empty() {
        parts.push(format!("methods [{}]", matcher.methods.join(", ")));
    }
    if !matcher.hosts.is_empty() {
        parts.push(format!("hosts [{}]", matcher.hosts.join(", ")));
    }
    if let Some(name) = &matcher.route_name {
        parts.push(format!("route_name {name:?}"));
    }
    if parts.is_empty() {
        "any request".to_string()
    } else {
        parts.join(", ")
    }
}

fn describe_location(location: &TokenLocation) -> String {
    match location {
        TokenLocation::Header { name, prefix } if prefix.is_empty() => format!("header {name}"),
        TokenLocation::Header { name, prefix } => format!("header {name} ({prefix:?})"),
        TokenLocation::Param(param) => format!("query parameter {param}"),
        TokenLocation::Cookie(cookie) => format!("cookie {cookie}"),
    }
}

fn rule_title(config: &Config, index: usize) -> String {
    match config.rules.get(index) {
        Some(rule) => format!("rules[{index}] ({})", rule.label),
        None => format!("rules[{index}]"),
    }
}

fn provider_name(config: &Config, index: usize) -> &str {
    config
        .providers
        .get(index)
        .map_or("?", |provider| provider.name.as_str())
}

fn ok_or<E: Copy>(result: Result<(), E>, code: impl Fn(E) -> &'static str) -> String {
    match result {
        Ok(()) => "ok".to_string(),
        Err(failure) => format!("→ {}", code(failure)),
    }
}

fn seconds(now: u64, at: u64) -> String {
    if at == now {
        "now".to_string()
    } else if at > now {
        format!("in {} s", at - now)
    } else {
        format!("{} s ago", now - at)
    }
}

fn compact(value: &Value) -> String {
    value.to_string()
}

struct Explained<'a> {
    config: &'a Config,
    request: &'a Request<'a>,
    input: &'a Input,
    steps: &'a [Step],
    verdict: &'a Verdict,
}

/// Lines of text with their indentation level.
#[derive(Default)]
struct Lines(Vec<(usize, String)>);

impl Lines {
    fn add(&mut self, depth: usize, text: impl Into<String>) {
        self.0.push((depth, text.into()));
    }
}

impl Explained<'_> {
    fn token(&self) -> Option<&str> {
        self.steps.iter().find_map(|step| match step {
            Step::TokenFound { token, .. } => Some(token.as_str()),
            _ => None,
        })
    }

    /// The token's claims as parsed (verified or not), for showing the values checks used.
    fn token_claims(&self) -> Option<UnverifiedClaims> {
        UnverifiedJws::parse(self.token()?)
            .ok()
            .map(|jws| jws.claims)
    }

    fn rule(&self) -> Option<&Rule> {
        self.verdict
            .rule
            .and_then(|index| self.config.rules.get(index))
    }

    fn request_lines(&self, lines: &mut Lines) {
        let input = self.input;
        let (path, query) = match input.path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (input.path.as_str(), None),
        };
        let query = query.map_or(String::new(), |query| {
            let names: Vec<String> = query
                .split(['&', ';'])
                .map(|pair| format!("{}=…", pair.split('=').next().unwrap_or_default()))
                .collect();
            format!("?{}", names.join("&"))
        });
        lines.add(
            0,
            format!(
                "request: {} {path}{query} (host {})",
                input.method, input.host
            ),
        );
        let names: Vec<&str> = input.headers.iter().map(|(n, _)| n.as_str()).collect();
        if !names.is_empty() {
            lines.add(
                1,
                format!("headers: {} (values not shown)", names.join(", ")),
            );
        }
        lines.add(
            1,
            format!(
                "peer: {}; route name: {}; route metadata rule: {}; now: {}",
                input.peer.as_deref().unwrap_or("(not given)"),
                input.route_name.as_deref().unwrap_or("(none)"),
                input
                    .route_rule
                    .as_deref()
                    .map_or("(none)".into(), |rule| format!(
                        "{:?}",
                        String::from_utf8_lossy(rule)
                    )),
                input.now
            ),
        );
    }

    fn rule_lines(
        &self,
        lines: &mut Lines,
        selection: &Selection,
        bound: Option<&str>,
        ambiguous_host: bool,
    ) {
        let config = self.config;
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
                    String::from_utf8_lossy(self.request.host())
                ),
            ),
            (Selection::Rule(index), None) => {
                for (skipped, rule) in config.rules.iter().enumerate().take(*index) {
                    lines.add(1, self.skipped(skipped, rule));
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
                    lines.add(1, self.skipped(skipped, rule));
                }
                lines.add(1, "no rule matches → 403 no_matching_rule (fail closed)");
            }
        }
        if let Some(rule) = self.rule() {
            lines.add(1, format!("settings: {}", describe_rule(config, rule)));
        }
    }

    fn skipped(&self, index: usize, rule: &Rule) -> String {
        let Some(matcher) = &rule.matcher else {
            return format!(
                "skipped {}: it has no match (only routes whose metadata names it)",
                rule_title(self.config, index)
            );
        };
        let why: Vec<String> = matcher
            .mismatches(self.request)
            .into_iter()
            .map(|part| match part {
                MatchPart::Path => format!(
                    "path {:?} is not {}",
                    String::from_utf8_lossy(self.request.path()),
                    match &matcher.path {
                        PathMatch::Prefix(prefix) => format!("under prefix {prefix:?}"),
                        PathMatch::Exact(path) => format!("{path:?}"),
                        PathMatch::Any => "any path".to_string(),
                    }
                ),
                MatchPart::Method => format!(
                    "method {} is not one of [{}]",
                    String::from_utf8_lossy(self.request.method()),
                    matcher.methods.join(", ")
                ),
                MatchPart::Host => format!(
                    "host {:?} is not one of [{}]",
                    String::from_utf8_lossy(self.request.host()),
                    matcher.hosts.join(", ")
                ),
                MatchPart::RouteName => format!(
                    "route name {} is not {:?}",
                    self.input
                        .route_name
                        .as_deref()
                        .map_or("(none)".to_string(), |n| format!("{n:?}")),
                    matcher.route_name.as_deref().unwrap_or_default()
                ),
            })
            .collect();
        format!(
            "skipped {}: {}",
            rule_title(self.config, index),
            why.join("; ")
        )
    }

    fn authn_lines(&self, lines: &mut Lines) {
        let config = self.config;
        let Some(rule) = self.rule() else {
            return;
        };
        let (providers, anonymous) = match &rule.authentication {
            Authentication::Disabled => return,
            Authentication::Required(providers) => (providers, false),
            Authentication::Optional(providers) => (providers, true),
        };
        lines.add(0, "authentication:");
        let names: Vec<&str> = providers
            .iter()
            .map(|&p| provider_name(config, p))
            .collect();
        lines.add(1, format!("providers of the rule: {}", names.join(", ")));
        let claims = self.token_claims();
        for step in self.steps {
            match step {
                Step::NoToken => {
                    let mut locations: Vec<String> = Vec::new();
                    for provider in providers.iter().filter_map(|&p| config.providers.get(p)) {
                        for location in &provider.locations {
                            let text = describe_location(location);
                            if !locations.contains(&text) {
                                locations.push(text);
                            }
                        }
                    }
                    lines.add(1, format!("no token in: {}", locations.join(", ")));
                    let outcome = if !anonymous {
                        "the rule needs a token → 401 missing".to_string()
                    } else if rule.policy.needs_token() {
                        "allow_anonymous, but roles, scopes, claims or bind_ip_claim need a token → 401 missing".to_string()
                    } else {
                        "allow_anonymous: an anonymous request is fine".to_string()
                    };
                    lines.add(1, outcome);
                }
                Step::TokenFound { token, locations } => {
                    let places: Vec<String> = locations.iter().map(describe_location).collect();
                    lines.add(
                        1,
                        format!(
                            "token {} ({} bytes) in {}",
                            fingerprint(token),
                            token.len(),
                            places.join(" and ")
                        ),
                    );
                }
                Step::TokenUnusable(failure) => lines.add(
                    1,
                    format!(
                        "a token location holds no usable token (empty, not UTF-8, or two different tokens) → 401 {}",
                        failure.code()
                    ),
                ),
                Step::Candidates(candidates) => {
                    let names: Vec<&str> =
                        candidates.iter().map(|&p| provider_name(config, p)).collect();
                    lines.add(1, format!("providers that look there: {}", names.join(", ")));
                }
                Step::CacheHit { provider } => lines.add(
                    1,
                    format!("verified-token cache hit ({})", provider_name(config, *provider)),
                ),
                Step::Parsed(Ok(())) => lines.add(1, self.header_line()),
                Step::Parsed(Err(failure)) => lines.add(
                    1,
                    match failure {
                        jwt_guard::reason::AuthFailure::TooLarge => format!(
                            "the token is longer than {} bytes: not parsed → 401 too_large",
                            jwt_guard::token::jws::MAX_TOKEN_BYTES
                        ),
                        other => format!(
                            "not a well-formed signed JWT (compact JWS, strict base64url, JSON header and claims, no crit/JWE) → 401 {}",
                            other.code()
                        ),
                    },
                ),
                Step::Provider {
                    provider,
                    names_issuer,
                } => {
                    let name = provider_name(config, *provider);
                    let issuer = config
                        .providers
                        .get(*provider)
                        .map_or("", |p| p.token_rules.issuer.as_str());
                    lines.add(
                        1,
                        if *names_issuer {
                            format!("provider {name} (issuer {issuer:?}, the token's iss):")
                        } else {
                            format!(
                                "provider {name} (issuer {issuer:?}): no provider of the rule names the token's iss {}, so the first one judges it:",
                                claims
                                    .as_ref()
                                    .and_then(|c| c.get("iss"))
                                    .map_or("(none)".to_string(), compact)
                            )
                        },
                    );
                }
                Step::Key { kid, alg, valid } => lines.add(
                    2,
                    format!(
                        "key {} ({}): signature {}",
                        kid.as_deref()
                            .map_or("without kid".to_string(), |k| format!("kid {k:?}")),
                        alg.name(),
                        if *valid { "valid" } else { "invalid" }
                    ),
                ),
                Step::Signature(Err(failure)) => {
                    lines.add(2, self.signature_failure(*failure));
                }
                Step::Claim { check, result } => {
                    if let Some(provider) = self.judging_provider(step) {
                        lines.add(2, self.claim_line(provider, claims.as_ref(), *check, *result));
                    }
                }
                Step::ProviderResult { provider, result } => lines.add(
                    2,
                    match result {
                        Ok(()) => format!("→ accepted by {}", provider_name(config, *provider)),
                        Err(failure) => format!(
                            "→ refused by {}: {}",
                            provider_name(config, *provider),
                            failure.code()
                        ),
                    },
                ),
                _ => {}
            }
        }
    }

    /// The provider of the `Provider` step before `step`.
    fn judging_provider(&self, step: &Step) -> Option<&Provider> {
        let at = self.steps.iter().position(|s| std::ptr::eq(s, step))?;
        self.steps.get(..at)?.iter().rev().find_map(|s| match s {
            Step::Provider { provider, .. } | Step::CacheHit { provider } => {
                self.config.providers.get(*provider)
            }
            _ => None,
        })
    }

    fn header_line(&self) -> String {
        let header = self
            .token()
            .and_then(|token| token.split('.').next())
            .and_then(|part| decode_part(part).ok())
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
        let member = |name: &str| {
            header
                .as_ref()
                .and_then(|h| h.get(name))
                .map_or("(none)".to_string(), compact)
        };
        format!(
            "well-formed; header: alg {}, kid {}, typ {}",
            member("alg"),
            member("kid"),
            member("typ")
        )
    }

    fn signature_failure(&self, failure: jwt_guard::reason::AuthFailure) -> String {
        use jwt_guard::reason::AuthFailure as F;
        let why = match failure {
            F::UnsupportedAlgorithm => {
                "the token's alg is not one jwt-guard verifies, or not the algorithm of the key its kid names"
            }
            F::UnknownKey => "no key has the token's kid (or, without kid, no key of its alg)",
            F::KeysUnavailable => {
                "the provider has no keys yet (remote_jwks before its first fetch: give --jwks PROVIDER=FILE)"
            }
            F::BadSignature => "no key verified the signature",
            _ => "",
        };
        format!("{why} → {}", failure.code())
    }

    fn claim_line(
        &self,
        provider: &Provider,
        claims: Option<&UnverifiedClaims>,
        check: ClaimCheck,
        result: Result<(), jwt_guard::reason::AuthFailure>,
    ) -> String {
        let rules = &provider.token_rules;
        let now = self.input.now;
        let skew = rules.clock_skew_seconds;
        let get = |name: &str| claims.and_then(|c| c.get(name));
        let date = |name: &str| get(name).and_then(numeric_date);
        let verdict = ok_or(result, |f| f.code());
        match check {
            ClaimCheck::Exp => match date("exp") {
                Some(exp) => format!(
                    "exp {exp} ({}; clock skew {skew} s): {verdict}",
                    seconds(now, exp)
                ),
                None if rules.require_expiration => {
                    format!("no exp, and require_expiration: {verdict}")
                }
                None => format!("no exp (require_expiration is false): {verdict}"),
            },
            ClaimCheck::Nbf => match date("nbf") {
                Some(nbf) => format!("nbf {nbf} ({}): {verdict}", seconds(now, nbf)),
                None => format!("no nbf: {verdict}"),
            },
            ClaimCheck::Iat => match date("iat") {
                Some(iat) => format!("iat {iat} ({}): {verdict}", seconds(now, iat)),
                None => format!("no iat: {verdict}"),
            },
            ClaimCheck::Iss => format!(
                "iss {}, issuer {:?}: {verdict}",
                get("iss").map_or("(none)".to_string(), compact),
                rules.issuer
            ),
            ClaimCheck::Aud if rules.audiences.is_empty() => {
                format!("aud: any audience accepted: {verdict}")
            }
            ClaimCheck::Aud => format!(
                "aud {}, accepted [{}]: {verdict}",
                get("aud").map_or("(none)".to_string(), compact),
                rules.audiences.join(", ")
            ),
            ClaimCheck::Lifetime => {
                let max = rules.max_lifetime_seconds.unwrap_or_default();
                match (date("exp"), date("iat")) {
                    (Some(exp), Some(iat)) => format!(
                        "lifetime exp − iat = {} s, at most {max} s: {verdict}",
                        exp.saturating_sub(iat)
                    ),
                    (Some(exp), None) => format!(
                        "lifetime (no iat) exp − now = {} s, at most {max} s: {verdict}",
                        exp.saturating_sub(now)
                    ),
                    _ => format!("lifetime: no exp, max_lifetime_seconds {max}: {verdict}"),
                }
            }
        }
    }

    fn policy_lines(&self, lines: &mut Lines) {
        let Some(rule) = self.rule() else {
            return;
        };
        let policy = &rule.policy;
        let steps: Vec<&Step> = self
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
        let claims = self.verdict.claims.as_deref();
        let client_ip = self.steps.iter().find_map(|s| match s {
            Step::ClientIp(ip) => Some(*ip),
            _ => None,
        });
        let ip_text = client_ip
            .flatten()
            .map_or("(unknown)".to_string(), |ip| ip.to_string());
        for step in steps {
            match step {
                Step::ClientIp(ip) => {
                    let source = match &self.config.client_ip {
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
                    let from_header = self
                        .config
                        .country_header
                        .as_deref()
                        .is_some_and(|name| self.request.has(name));
                    let source = match (&self.config.country_header, &self.config.country_claim) {
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
                                .map(|c| self.config.roles_claim.strings(c))
                                .unwrap_or_default();
                            let (any, all) = policy
                                .roles
                                .as_ref()
                                .map_or((String::new(), String::new()), |r| {
                                    (r.any.join(", "), r.all.join(", "))
                                });
                            format!(
                                "roles any [{any}] all [{all}], token's {} [{}]: {verdict}",
                                self.config.roles_claim.name(),
                                granted.join(", ")
                            )
                        }
                        PolicyCheck::Scopes => {
                            let granted = claims
                                .map(|c| self.config.scopes_claim.strings(c))
                                .unwrap_or_default();
                            let (any, all) = policy
                                .scopes
                                .as_ref()
                                .map_or((String::new(), String::new()), |r| {
                                    (r.any.join(", "), r.all.join(", "))
                                });
                            format!(
                                "scopes any [{any}] all [{all}], token's {} [{}]: {verdict}",
                                self.config.scopes_claim.name(),
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
                    };
                    lines.add(1, text);
                }
                _ => {}
            }
        }
    }

    fn decision_lines(&self, lines: &mut Lines) {
        let config = self.config;
        match &self.verdict.decision {
            Decision::Allow { changes, dry_run } => {
                match dry_run {
                    None => lines.add(0, "decision: allowed: the request goes upstream"),
                    Some(refusal) => lines.add(
                        0,
                        format!(
                            "decision: dry run: would refuse {} {}, lets the request through instead",
                            refusal.status(),
                            refusal.code()
                        ),
                    ),
                }
                if changes.is_empty() {
                    lines.add(1, "upstream: the request goes on unchanged");
                } else {
                    lines.add(1, "upstream:");
                    for change in changes {
                        lines.add(2, describe_change(change));
                    }
                }
            }
            Decision::Refuse(refused) => {
                let refusal = refused.refusal;
                lines.add(
                    0,
                    format!("decision: refused {} {}", refusal.status(), refusal.code()),
                );
                let response = refused.response(&config.realm);
                lines.add(1, format!("response: {}", response.status));
                for (name, value) in &response.headers {
                    lines.add(2, format!("{name}: {value}"));
                }
                lines.add(2, response.body.clone());
            }
        }
        lines.add(
            1,
            format!(
                "outcome (outcome_in_filter_state): {}",
                outcome::render(config, self.verdict)
            ),
        );
    }

    fn lines(&self, notes: &[String]) -> Lines {
        let mut lines = Lines::default();
        self.request_lines(&mut lines);
        for step in self.steps {
            if let Step::Rule {
                selection,
                bound,
                ambiguous_host,
            } = step
            {
                self.rule_lines(&mut lines, selection, bound.as_deref(), *ambiguous_host);
            }
            if let Step::Disabled = step {
                lines.add(1, "disabled: jwt-guard checks nothing here (client copies of identity headers are still removed)");
            }
        }
        self.authn_lines(&mut lines);
        self.policy_lines(&mut lines);
        self.decision_lines(&mut lines);
        for note in notes {
            lines.add(0, format!("note: {note}"));
        }
        lines
    }

    fn text(&self, notes: &[String]) -> String {
        let mut out = String::new();
        for (depth, line) in self.lines(notes).0 {
            let _ = writeln!(out, "{}{line}", "  ".repeat(depth));
        }
        out
    }

    fn json(&self, notes: &[String]) -> Value {
        let outcome: Value = serde_json::from_str(&outcome::render(self.config, self.verdict))
            .unwrap_or(Value::Null);
        let mut out = Map::new();
        let member = |name: &str| outcome.get(name).cloned().unwrap_or(Value::Null);
        out.insert("decision".into(), member("decision"));
        out.insert("status".into(), member("status"));
        out.insert("reason".into(), member("reason"));
        out.insert("rule".into(), member("rule"));
        out.insert("provider".into(), member("provider"));
        out.insert(
            "token_sha256".into(),
            self.token().map_or(Value::Null, |t| fingerprint(t).into()),
        );
        match &self.verdict.decision {
            Decision::Allow { changes, .. } => {
                let upstream: Vec<Value> = changes
                    .iter()
                    .map(|change| match change {
                        HeaderChange::Remove(name) => json!({"remove": name}),
                        HeaderChange::Set(name, value) => {
                            json!({"set": name, "value": String::from_utf8_lossy(value)})
                        }
                    })
                    .collect();
                out.insert("upstream".into(), upstream.into());
                out.insert("response".into(), Value::Null);
            }
            Decision::Refuse(refused) => {
                let response = refused.response(&self.config.realm);
                let headers: Map<String, Value> = response
                    .headers
                    .iter()
                    .map(|(name, value)| (name.to_string(), Value::from(value.as_str())))
                    .collect();
                out.insert("upstream".into(), Value::Null);
                out.insert(
                    "response".into(),
                    json!({"status": response.status, "headers": headers, "body": response.body}),
                );
            }
        }
        out.insert("outcome".into(), outcome);
        let lines: Vec<Value> = self
            .lines(notes)
            .0
            .into_iter()
            .map(|(depth, line)| format!("{}{line}", "  ".repeat(depth)).into())
            .collect();
        out.insert("steps".into(), lines.into());
        Value::Object(out)
    }
}

fn nets(nets: &[ipnet::IpNet]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_change(change: &HeaderChange) -> String {
    match change {
        HeaderChange::Remove(name) => format!("- {name} (removed)"),
        HeaderChange::Set(name, value) => {
            format!("+ {name}: {} (set)", String::from_utf8_lossy(value))
        }
    }
}

fn describe_rule(config: &Config, rule: &Rule) -> String {
    let mut parts = Vec::new();
    match &rule.authentication {
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
    ] {
        if present {
            parts.push(name.to_string());
        }
    }
    if rule.dry_run || config.dry_run {
        parts.push("dry_run".to_string());
    }
    parts.join(", ")
}
