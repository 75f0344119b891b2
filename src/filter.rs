//! The proxy-wasm glue: read the configuration once, and for each request read headers and
//! properties, ask the core for a decision, and act on it. The SDK provides the context
//! dispatch only; every host call goes through [`crate::host`], which never panics.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

use crate::authn::Authenticator;
use crate::cache::TokenCache;
use crate::config::Config;
use crate::decision::{Decision, Refused, Verdict, decide};
use crate::extract::HeaderChange;
use crate::fetcher::{self, Fetcher};
use crate::header_map;
use crate::host::{self, LOG_CRITICAL, LOG_DEBUG, LOG_ERROR, LOG_INFO, LOG_WARN};
use crate::host_signature;
use crate::jwks::{Backend, VerificationKey};
use crate::jws::Jws;
use crate::outcome;
use crate::reason::{AuthFailure, Forbidden, Refusal};
use crate::request::Request;
use crate::route_metadata::RouteMetadata;
use crate::verify::{PureRustVerifier, SignatureVerifier};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

fn log(level: u32, message: &str) {
    host::log(level, message);
}

/// Envoy counters (shown as `wasmcustom.jwt_guard.*`), one per outcome and reason, overall,
/// per rule and per provider, and each refusal's local reply, encoded once per configuration.
struct Outcomes {
    total: Tally,
    /// One per rule, as `Config::rules`: `jwt_guard.rule.<name>.*`.
    rules: Vec<Tally>,
    /// One per provider, as `Config::providers`: `jwt_guard.provider.<name>.*`.
    providers: Vec<Tally>,
    cache_hit: Option<u32>,
    cache_miss: Option<u32>,
    route_rule_unknown: Option<u32>,
    refused: Vec<PreparedRefusal>,
}

/// `<prefix>.allowed`, `<prefix>.dry_run` and `<prefix>.refused.<status>.<reason>`; the last
/// indexed as `Outcomes::refused`.
struct Tally {
    allowed: Option<u32>,
    dry_run: Option<u32>,
    refused: Vec<Option<u32>>,
}

impl Tally {
    fn define(prefix: &str) -> Tally {
        let counter = |name: String| host::define_counter(&name).ok();
        Tally {
            allowed: counter(format!("{prefix}.allowed")),
            dry_run: counter(format!("{prefix}.dry_run")),
            // Per rule or provider, "no rule" cannot happen: no series for it.
            refused: all_refusals()
                .map(|r| {
                    (r != Refusal::Forbidden(Forbidden::NoMatchingRule))
                        .then(|| counter(format!("{prefix}.refused.{}.{}", r.status(), r.code())))?
                })
                .collect(),
        }
    }

    fn count(&self, decision: &Decision, refusal_index: Option<usize>) {
        let id = match decision {
            Decision::Allow { dry_run: None, .. } => self.allowed,
            Decision::Allow {
                dry_run: Some(_), ..
            } => self.dry_run,
            Decision::Refuse(_) => {
                refusal_index.and_then(|i| self.refused.get(i).copied().flatten())
            }
        };
        Outcomes::count(id);
    }
}

fn all_refusals() -> impl Iterator<Item = Refusal> {
    AuthFailure::ALL
        .iter()
        .map(|f| Refusal::Unauthorized(*f))
        .chain(Forbidden::ALL.iter().map(|f| Refusal::Forbidden(*f)))
}

struct PreparedRefusal {
    refusal: Refusal,
    response: PreparedResponse,
}

/// A local reply with its header map already in the ABI's encoding.
struct PreparedResponse {
    status: u32,
    headers: Vec<u8>,
    body: Vec<u8>,
}

impl PreparedResponse {
    fn of(refused: &Refused, realm: &str) -> PreparedResponse {
        let response = refused.response(realm);
        let headers: Vec<(&str, &[u8])> = response
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_bytes()))
            .collect();
        PreparedResponse {
            status: response.status,
            headers: header_map::encode(&headers),
            body: response.body.into_bytes(),
        }
    }

    /// Answers with it. If even that fails, the request is still not let through: the stream
    /// stays paused until Envoy's timeouts end it.
    fn send(&self) -> Action {
        if let Err(status) = host::send_local_response(self.status, &self.headers, &self.body) {
            log(
                LOG_ERROR,
                &format!("jwt-guard: cannot send refusal: {status:?}"),
            );
        }
        Action::Pause
    }
}

impl Outcomes {
    fn define(config: &Config) -> Outcomes {
        let counter = |name: &str| host::define_counter(name).ok();
        Outcomes {
            total: Tally {
                allowed: counter("jwt_guard.allowed"),
                dry_run: counter("jwt_guard.dry_run"),
                refused: all_refusals()
                    .map(|r| counter(&format!("jwt_guard.refused.{}.{}", r.status(), r.code())))
                    .collect(),
            },
            rules: config
                .rules
                .iter()
                .map(|rule| Tally::define(&format!("jwt_guard.rule.{}", rule.label)))
                .collect(),
            providers: config
                .providers
                .iter()
                .map(|p| Tally::define(&format!("jwt_guard.provider.{}", p.name)))
                .collect(),
            cache_hit: counter("jwt_guard.token_cache.hit"),
            cache_miss: counter("jwt_guard.token_cache.miss"),
            route_rule_unknown: counter("jwt_guard.route_rule_unknown"),
            refused: all_refusals()
                .map(|refusal| PreparedRefusal {
                    refusal,
                    response: PreparedResponse::of(
                        &Refused {
                            refusal,
                            scope_hint: None,
                        },
                        &config.realm,
                    ),
                })
                .collect(),
        }
    }

    /// Counts the verdict overall, under its rule and under its provider.
    fn tally(&self, verdict: &Verdict) {
        let refusal_index = match &verdict.decision {
            Decision::Refuse(refused) => self
                .refused
                .iter()
                .position(|p| p.refusal == refused.refusal),
            Decision::Allow { .. } => None,
        };
        self.total.count(&verdict.decision, refusal_index);
        if let Some(rule) = verdict.rule.and_then(|i| self.rules.get(i)) {
            rule.count(&verdict.decision, refusal_index);
        }
        if let Some(provider) = verdict.provider.and_then(|i| self.providers.get(i)) {
            provider.count(&verdict.decision, refusal_index);
        }
        if verdict.unknown_route_rule {
            Outcomes::count(self.route_rule_unknown);
        }
    }

    fn count(id: Option<u32>) {
        if let Some(id) = id {
            host::increment_counter(id);
        }
    }

    /// Answers a refusal (a `missing_scope` challenge names the rule's scopes, so that one is
    /// encoded on the spot).
    fn refuse(&self, refused: &Refused, realm: &str) -> Action {
        let prepared = self.refused.iter().find(|p| p.refusal == refused.refusal);
        match prepared {
            Some(prepared) if refused.scope_hint.is_none() => prepared.response.send(),
            _ => PreparedResponse::of(refused, realm).send(),
        }
    }
}

/// Everything a request needs, built once per configuration and shared by its HTTP contexts.
struct Running {
    config: Config,
    outcomes: Outcomes,
    cache: RefCell<TokenCache>,
    verifier: HostVerifier,
    /// Asked once: a refusal then costs no host call when debug logging is off.
    log_refusals: bool,
    /// Unknown rule names from route metadata already logged.
    warned_route_rules: RefCell<Vec<Vec<u8>>>,
}

#[derive(Default)]
struct Root {
    running: Option<Rc<Running>>,
    /// Remote key sets (`remote_jwks`): fetched from here, never from an HTTP context.
    fetcher: Option<Fetcher>,
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        if let (Some(running), Some(fetcher), Ok(now)) =
            (&self.running, &mut self.fetcher, host::now_millis())
        {
            fetcher.on_response(&running.config, token_id, num_headers, body_size, now);
        }
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        log(
            LOG_INFO,
            concat!("jwt-guard ", env!("CARGO_PKG_VERSION"), " starting"),
        );
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = match host::plugin_configuration() {
            Ok(bytes) => bytes,
            Err(status) => {
                log(
                    LOG_CRITICAL,
                    &format!("jwt-guard: cannot read configuration: {status:?}"),
                );
                return false;
            }
        };
        let compiled = Config::from_json(&bytes).and_then(|mut config| {
            let host_backend = config.choose_signature_backend(host_can_verify())?;
            Ok((config, host_backend))
        });
        match compiled {
            Ok((config, host_backend)) => {
                log(LOG_INFO, &describe(&config, host_backend));
                let fetcher = Fetcher::new(&config, host_backend);
                if !fetcher.is_empty()
                    && let Err(status) = host::set_tick_period_ms(fetcher::TICK_MS)
                {
                    log(
                        LOG_CRITICAL,
                        &format!("jwt-guard: no timer for remote_jwks: {status:?}"),
                    );
                    return false;
                }
                self.fetcher = (!fetcher.is_empty()).then_some(fetcher);
                self.running = Some(Rc::new(Running {
                    cache: RefCell::new(TokenCache::new(config.token_cache_size)),
                    outcomes: Outcomes::define(&config),
                    verifier: HostVerifier::default(),
                    log_refusals: host::log_level().is_ok_and(|level| level <= LOG_DEBUG),
                    warned_route_rules: RefCell::new(Vec::new()),
                    config,
                }));
                true
            }
            Err(err) => {
                log(
                    LOG_CRITICAL,
                    &format!("jwt-guard: invalid configuration: {err}"),
                );
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if let (Some(running), Some(fetcher), Ok(now)) =
            (&self.running, &mut self.fetcher, host::now_millis())
        {
            fetcher.tick(&running.config, now);
        }
    }

    /// Always a context: the SDK panics on `None`. Without a configuration (Envoy does not
    /// create streams for a plugin whose `on_configure` failed, but nothing here relies on
    /// that) the context refuses every request.
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(match &self.running {
            Some(running) => Box::new(Guard {
                running: running.clone(),
            }),
            None => Box::new(Unconfigured),
        })
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One start-up line: which backend checks which of the configured algorithms, and the cache.
fn describe(config: &Config, host_backend: bool) -> String {
    let (mut host, mut rust): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    for provider in &config.providers {
        let keys = provider.token_rules.keys.current();
        for key in keys.keys() {
            let list = match key.backend {
                Backend::Host => &mut host,
                Backend::PureRust => &mut rust,
            };
            if !list.contains(&key.alg.name()) {
                list.push(key.alg.name());
            }
        }
    }
    format!(
        "jwt-guard: configured: {} providers, {} rules; signatures by the host (verify_signature{}): [{}], in Rust: [{}]; token cache: {} entries",
        config.providers.len(),
        config.rules.len(),
        if host_backend { "" } else { ", not used" },
        host.join(", "),
        rust.join(", "),
        config.token_cache_size,
    )
}

/// Whether the host offers a `verify_signature` that accepts a genuine signature and refuses
/// it for another message.
fn host_can_verify() -> bool {
    let answer = |genuine| {
        host::call_foreign_function(VERIFY_SIGNATURE, &host_signature::probe_arguments(genuine))
            .ok()
            .and_then(|bytes| host_signature::result(&bytes))
    };
    answer(true) == Some(true) && answer(false) == Some(false)
}

const VERIFY_SIGNATURE: &str = "verify_signature";

/// The host's clock (the guest's WASI clock is not guaranteed to follow it).
fn host_clock() -> Option<u64> {
    let now = host::now_seconds().ok();
    if now.is_none() {
        log(LOG_ERROR, "jwt-guard: cannot read the host clock");
    }
    now
}

/// Checks signatures through the host for keys chosen for it at configuration time, in Rust
/// for the others. Should the host fail a call it answered at start, the check is made in Rust
/// (same answer, slower) and the failure logged once.
#[derive(Default)]
struct HostVerifier {
    host_failed: Cell<bool>,
}

impl SignatureVerifier for HostVerifier {
    fn verify(&self, key: &VerificationKey, jws: &Jws<'_>) -> Result<(), AuthFailure> {
        if key.backend == Backend::Host {
            let message = jws.signing_input().as_bytes();
            // No arguments: a signature no key could have made (an ECDSA one of the wrong size).
            let Some(arguments) = host_signature::arguments(key, message, &jws.signature) else {
                return Err(AuthFailure::BadSignature);
            };
            let answer = host::call_foreign_function(VERIFY_SIGNATURE, &arguments)
                .ok()
                .and_then(|bytes| host_signature::result(&bytes));
            match answer {
                Some(true) => return Ok(()),
                Some(false) => return Err(AuthFailure::BadSignature),
                None if !self.host_failed.replace(true) => log(
                    LOG_ERROR,
                    "jwt-guard: the host's verify_signature failed; checking signatures in Rust",
                ),
                None => {}
            }
        }
        PureRustVerifier.verify(key, jws)
    }
}

struct Guard {
    running: Rc<Running>,
}

impl Context for Guard {}

impl HttpContext for Guard {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let headers = match host::request_headers() {
            Ok(headers) => headers,
            Err(status) => {
                log(
                    LOG_ERROR,
                    &format!("jwt-guard: cannot read request headers: {status:?}"),
                );
                return self.refuse_early();
            }
        };
        let running = &*self.running;
        let config = &running.config;
        let route = config
            .needs_route_name
            .then(|| property(&["xds", "route_name"]))
            .flatten();
        // Always asked, even when no rule has a name: a route bound to a rule must never fall
        // back to ordered matching because the configuration lost its names.
        let binding = RouteMetadata::read();
        let request = Request {
            headers: &headers,
            peer_address: &|| property(&["source", "address"]),
            route_name: route.as_deref(),
            route_rule: binding.rule(),
        };
        let verdict = {
            let Ok(mut cache) = running.cache.try_borrow_mut() else {
                // Never happens (one request at a time per VM); refusing is the safe answer.
                return self.refuse_early();
            };
            let mut auth = Authenticator {
                verifier: &running.verifier,
                cache: &mut cache,
                clock: &host_clock,
                judged_by: None,
            };
            let (hits, misses) = (auth.cache.hits, auth.cache.misses);
            let verdict = decide(config, &request, &mut auth);
            if auth.cache.hits != hits {
                Outcomes::count(running.outcomes.cache_hit);
            } else if auth.cache.misses != misses {
                Outcomes::count(running.outcomes.cache_miss);
            }
            verdict
        };
        running.outcomes.tally(&verdict);
        if verdict.unknown_route_rule {
            running.warn_unknown_route_rule(request.route_rule.unwrap_or_default());
        }
        if let Some(name) = &config.outcome_in_filter_state
            && let Err(status) =
                host::set_property(name, outcome::render(config, &verdict).as_bytes())
        {
            log(
                LOG_ERROR,
                &format!("jwt-guard: cannot set outcome_in_filter_state: {status:?}"),
            );
        }
        match verdict.decision {
            Decision::Allow { changes, dry_run } => {
                apply(&changes);
                if let Some(refusal) = dry_run {
                    log(
                        LOG_INFO,
                        &format!(
                            "jwt-guard dry run: would refuse {} {} on {}",
                            refusal.status(),
                            refusal.code(),
                            String::from_utf8_lossy(request.path())
                        ),
                    );
                }
                Action::Continue
            }
            Decision::Refuse(refused) => {
                if running.log_refusals {
                    let refusal = refused.refusal;
                    log(
                        LOG_DEBUG,
                        &format!(
                            "jwt-guard: {} {} for {} {}",
                            refusal.status(),
                            refusal.code(),
                            String::from_utf8_lossy(request.method()),
                            String::from_utf8_lossy(request.path())
                        ),
                    );
                }
                self.refuse(&refused)
            }
        }
    }
}

impl Guard {
    fn refuse(&self, refused: &Refused) -> Action {
        self.running
            .outcomes
            .refuse(refused, &self.running.config.realm)
    }

    /// A refusal before any rule was looked at (the host failed us): counted overall only.
    fn refuse_early(&self) -> Action {
        let refused = Refused {
            refusal: Refusal::Unauthorized(AuthFailure::Malformed),
            scope_hint: None,
        };
        self.running.outcomes.tally(&Verdict {
            decision: Decision::Refuse(refused.clone()),
            rule: None,
            provider: None,
            claims: None,
            unknown_route_rule: false,
        });
        self.refuse(&refused)
    }
}

impl Running {
    /// Once per name and VM (a route configuration names few rules): the counter
    /// `jwt_guard.route_rule_unknown` counts every request.
    fn warn_unknown_route_rule(&self, name: &[u8]) {
        let Ok(mut warned) = self.warned_route_rules.try_borrow_mut() else {
            return;
        };
        if warned.len() >= MAX_WARNED_ROUTE_RULES || warned.iter().any(|n| n == name) {
            return;
        }
        warned.push(name.to_vec());
        let what = if name.is_empty() {
            "route metadata filter_metadata.jwt_guard binds no rule (its one member `rule` must be a rule's name; it is missing, empty, null, not text, or has other members beside it)".to_string()
        } else {
            format!(
                "route metadata names rule {:?}, which this configuration does not have",
                String::from_utf8_lossy(name)
            )
        };
        log(
            LOG_WARN,
            &format!("jwt-guard: {what}; its requests are refused (403 no_matching_rule)"),
        );
    }
}

const MAX_WARNED_ROUTE_RULES: usize = 64;

/// The context of a root that has no configuration: every request is refused.
struct Unconfigured;

impl Context for Unconfigured {}

impl HttpContext for Unconfigured {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        log(
            LOG_ERROR,
            "jwt-guard: no configuration; refusing the request",
        );
        let refused = Refused {
            refusal: Refusal::Unauthorized(AuthFailure::Malformed),
            scope_hint: None,
        };
        PreparedResponse::of(&refused, "jwt-guard").send()
    }
}

fn apply(changes: &[HeaderChange]) {
    for change in changes {
        let result = match change {
            HeaderChange::Remove(name) => host::remove_request_header(name),
            HeaderChange::Set(name, value) => host::set_request_header(name, value),
        };
        if let Err(status) = result {
            log(
                LOG_ERROR,
                &format!("jwt-guard: cannot change header: {status:?}"),
            );
        }
    }
}

fn property(path: &[&str]) -> Option<String> {
    let bytes = host::property(path).ok()??;
    String::from_utf8(bytes).ok()
}
