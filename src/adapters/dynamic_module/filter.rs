//! One request in the native module: read headers and attributes through Envoy's callbacks,
//! ask the core for a decision, and act on it — the same steps, answers, counters and log lines
//! as the proxy-wasm HTTP context.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::authn::Authenticator;
use crate::authn::native_signature::NativeVerifier;
use crate::decision::outcome;
use crate::decision::{Decision, Refused, Verdict, decide, dry_run_line, refusal_line};
use crate::reason::{AuthFailure, Refusal};
use crate::request::{
    MetadataMember, ROUTE_RULE_MEMBER, Request, route_binding, unknown_binding_warning,
};
use crate::token::extract::HeaderChange;

use super::abi::{
    ATTRIBUTE_CONNECTION_SHA256_PEER_CERTIFICATE_DIGEST, ATTRIBUTE_SOURCE_ADDRESS,
    ATTRIBUTE_XDS_ROUTE_NAME, HEADERS_CONTINUE, HEADERS_STOP_ITERATION, LOG_DEBUG, LOG_ERROR,
    LOG_INFO, LOG_WARN,
};
use super::filter_config::FilterConfig;
use super::host::{self, Stream};
use super::worker;

/// The route metadata namespace that binds a rule: `filter_metadata.jwt_guard`.
const ROUTE_METADATA_NAMESPACE: &str = "jwt_guard";

/// Seconds since the epoch. Envoy's own clock is the system's real time, the same clock
/// `jwt_authn` judges `exp` by.
fn now_seconds() -> Option<u64> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// Decides one request; returns the request-headers status for Envoy.
pub fn on_request_headers(stream: Stream, config: &FilterConfig) -> u32 {
    let running = match worker::running(config) {
        Ok(running) => running,
        Err(err) => {
            host::log(
                LOG_ERROR,
                &format!("jwt-guard: cannot compile the configuration on this worker: {err}"),
            );
            return refuse_early(stream, config);
        }
    };
    let Some(headers) = stream.request_headers() else {
        host::log(LOG_ERROR, "jwt-guard: cannot read request headers");
        return refuse_early(stream, config);
    };
    let compiled = &running.config;
    let route = compiled
        .needs_route_name
        .then(|| stream.attribute_string(ATTRIBUTE_XDS_ROUTE_NAME))
        .flatten();
    // Always asked, even when no rule has a name: a route bound to a rule must never fall back
    // to ordered matching because the configuration lost its names.
    let binding = RouteBinding::read(stream);
    let peer = || stream.attribute_string(ATTRIBUTE_SOURCE_ADDRESS);
    let certificate =
        || stream.attribute_string(ATTRIBUTE_CONNECTION_SHA256_PEER_CERTIFICATE_DIGEST);
    let request = Request {
        headers: &headers,
        peer_address: &peer,
        peer_certificate_digest: &certificate,
        route_name: route.as_deref(),
        route_rule: binding.rule(),
    };
    let verdict = {
        let Ok(mut cache) = running.cache.try_borrow_mut() else {
            // Never happens (a worker decides one request at a time); refusing is the safe answer.
            return refuse_early(stream, config);
        };
        let mut auth = Authenticator {
            verifier: &NativeVerifier,
            cache: &mut cache,
            clock: &now_seconds,
            judged_by: None,
            replay: &*super::replay::PROCESS_REPLAY_STORE,
            presented_with_dpop: false,
            dpop_nonce: None,
        };
        let (hits, misses) = (auth.cache.hits, auth.cache.misses);
        let verdict = decide(compiled, &request, &mut auth);
        let counter = config
            .plan
            .cache(auth.cache.hits != hits, auth.cache.misses != misses);
        count(stream, config, counter);
        verdict
    };
    for index in config.plan.of(&verdict) {
        count(stream, config, Some(index));
    }
    ask_refetch(&running.config, config);
    if verdict.unknown_route_rule {
        let name = request.route_rule.unwrap_or_default();
        if running.first_warning_for(name) {
            host::log(LOG_WARN, &unknown_binding_warning(name));
        }
    }
    if let Some(name) = &compiled.outcome_in_filter_state {
        // The same key as the Wasm filter's property (`wasm.<name>`), so one access-log format
        // (`%FILTER_STATE(wasm.<name>:PLAIN)%`) serves both runtimes.
        let key = format!("wasm.{name}");
        if !stream.set_filter_state(&key, outcome::render(compiled, &verdict).as_bytes()) {
            host::log(LOG_ERROR, "jwt-guard: cannot set outcome_in_filter_state");
        }
    }
    match verdict.decision {
        Decision::Allow { changes, dry_run } => {
            apply(stream, &changes);
            if let Some(refusal) = dry_run {
                host::log(LOG_INFO, &dry_run_line(refusal, request.path()));
            }
            HEADERS_CONTINUE
        }
        Decision::Refuse(refused) => {
            if host::log_enabled(LOG_DEBUG) {
                host::log(
                    LOG_DEBUG,
                    &refusal_line(refused.refusal, request.method(), request.path()),
                );
            }
            refuse(stream, config, &refused)
        }
    }
}

fn count(stream: Stream, config: &FilterConfig, index: Option<usize>) {
    if let Some(id) = index.and_then(|i| config.counter_ids.get(i).copied().flatten()) {
        stream.increment_counter(id, 1);
    }
}

/// Tells the main thread which remote providers saw a token with a `kid` their keys lack.
fn ask_refetch(compiled: &crate::config::Config, config: &FilterConfig) {
    for (provider, flag) in compiled.providers.iter().zip(&config.published.refetch) {
        if provider.remote.is_some() && provider.token_rules.keys.take_refetch_request() {
            flag.store(true, std::sync::atomic::Ordering::Release);
        }
    }
}

fn apply(stream: Stream, changes: &[HeaderChange]) {
    for change in changes {
        let done = match change {
            HeaderChange::Remove(name) => stream.remove_request_header(name),
            HeaderChange::Set(name, value) => stream.set_request_header(name, value),
        };
        if !done {
            host::log(LOG_ERROR, "jwt-guard: cannot change header");
        }
    }
    if !changes.is_empty() {
        stream.clear_route_cache();
    }
}

/// Answers a refusal; the request goes no further.
fn refuse(stream: Stream, config: &FilterConfig, refused: &Refused) -> u32 {
    let owned;
    let reply = match config.reply(refused.refusal) {
        Some(reply) if refused.is_plain() => reply,
        _ => {
            owned = refused.response(&config.realm);
            &owned
        }
    };
    let headers: Vec<(&str, &[u8])> = reply
        .headers
        .iter()
        .map(|(name, value)| (*name, value.as_bytes()))
        .collect();
    stream.send_response(reply.status, &headers, reply.body.as_bytes(), "jwt_guard");
    HEADERS_STOP_ITERATION
}

/// A refusal before any rule was looked at (the host failed us): counted overall only.
pub fn refuse_early(stream: Stream, config: &FilterConfig) -> u32 {
    let refused = Refused {
        refusal: Refusal::Unauthorized(AuthFailure::Malformed),
        scope_hint: None,
        dpop: None,
        custom: None,
    };
    let verdict = Verdict {
        decision: Decision::Refuse(refused.clone()),
        rule: None,
        provider: None,
        claims: None,
        unknown_route_rule: false,
    };
    for index in config.plan.of(&verdict) {
        count(stream, config, Some(index));
    }
    refuse(stream, config, &refused)
}

/// The route's `filter_metadata.jwt_guard`, read member by member.
enum RouteBinding {
    Absent,
    Members(Vec<(String, Option<Vec<u8>>)>),
}

impl RouteBinding {
    fn read(stream: Stream) -> RouteBinding {
        let keys = stream.route_metadata_keys(ROUTE_METADATA_NAMESPACE);
        if keys.is_empty() {
            // No members: an absent namespace, or an empty one (which binds no rule).
            let present = stream
                .route_metadata_namespaces()
                .iter()
                .any(|ns| ns == ROUTE_METADATA_NAMESPACE.as_bytes());
            return if present {
                RouteBinding::Members(Vec::new())
            } else {
                RouteBinding::Absent
            };
        }
        RouteBinding::Members(
            keys.into_iter()
                .map(|key| {
                    // Only `rule` can bind; other members only need to be there to unbind.
                    let value = (key == ROUTE_RULE_MEMBER.as_bytes())
                        .then(|| stream.route_metadata_string(ROUTE_METADATA_NAMESPACE, &key))
                        .flatten();
                    (String::from_utf8_lossy(&key).into_owned(), value)
                })
                .collect(),
        )
    }

    fn rule(&self) -> Option<&[u8]> {
        match self {
            RouteBinding::Absent => None,
            RouteBinding::Members(members) => {
                let members: Vec<MetadataMember> = members
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_deref()))
                    .collect();
                route_binding(Some(&members))
            }
        }
    }
}
