//! The HTTP context: per request, read headers and properties, ask the core for a decision,
//! and act on it (changes upstream, or a local reply).

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use crate::adapters::proxy_wasm::host::{self, LOG_DEBUG, LOG_ERROR, LOG_INFO};
use crate::adapters::proxy_wasm::host_calls;
use crate::adapters::proxy_wasm::outcomes::Outcomes;
use crate::adapters::proxy_wasm::outcomes::PreparedResponse;
use crate::adapters::proxy_wasm::route_metadata::RouteMetadata;
use crate::adapters::proxy_wasm::running::Running;
use crate::authn::Authenticator;
use crate::decision::outcome;
use crate::decision::{Decision, Refused, Verdict, decide, dry_run_line, refusal_line};
use crate::reason::{AuthFailure, Refusal};
use crate::request::Request;
use crate::token::extract::HeaderChange;

/// The host's clock (the guest's WASI clock is not guaranteed to follow it).
pub(super) fn host_clock() -> Option<u64> {
    let now = host::now_seconds().ok();
    if now.is_none() {
        host::log(LOG_ERROR, "jwt-guard: cannot read the host clock");
    }
    now
}

/// Request headers (as the host serialises them) up to this size leave their decoded buffers in
/// `Running::headers` for the next request to reuse.
const MAX_KEPT_HEADER_BYTES: usize = 16 * 1024;

pub(super) struct Guard {
    pub(super) running: Rc<Running>,
}

impl Context for Guard {}

impl HttpContext for Guard {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        host_calls::reset();
        let action = self.judge();
        host_calls::report(host::add_counter_by_name_uncounted);
        action
    }
}

impl Guard {
    /// Reads the request, decides, and acts on the decision.
    fn judge(&self) -> Action {
        let running = &*self.running;
        let Ok(mut headers) = running.headers.try_borrow_mut() else {
            // Never happens (one request at a time per VM); refusing is the safe answer.
            return self.refuse_early();
        };
        let size = match host::request_headers_into(&mut headers) {
            Ok(size) => size,
            Err(status) => {
                host::log(
                    LOG_ERROR,
                    &format!("jwt-guard: cannot read request headers: {status:?}"),
                );
                return self.refuse_early();
            }
        };
        // A large request's buffers go with it, so that one such request does not keep them
        // in the VM.
        let large = (size > MAX_KEPT_HEADER_BYTES).then(|| std::mem::take(&mut *headers));
        let headers: &[(String, Vec<u8>)] = large.as_deref().unwrap_or(&headers);
        let config = &running.config;
        let route = config
            .needs_route_name
            .then(|| property(b"xds\0route_name\0"))
            .flatten();
        // Always asked, even when no rule has a name: a route bound to a rule must never fall
        // back to ordered matching because the configuration lost its names.
        let binding = RouteMetadata::read();
        let request = Request {
            headers,
            peer_address: &|| property(b"source\0address\0"),
            peer_certificate_digest: &|| property(b"connection\0sha256_peer_certificate_digest\0"),
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
                replay: &super::replay::SharedDataReplayStore,
                presented_with_dpop: false,
                dpop_nonce: None,
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
            host::log(
                LOG_ERROR,
                &format!("jwt-guard: cannot set outcome_in_filter_state: {status:?}"),
            );
        }
        match verdict.decision {
            Decision::Allow { changes, dry_run } => {
                apply(&changes);
                if let Some(refusal) = dry_run {
                    host::log(LOG_INFO, &dry_run_line(refusal, request.path()));
                }
                Action::Continue
            }
            Decision::Refuse(refused) => {
                if running.log_refusals {
                    host::log(
                        LOG_DEBUG,
                        &refusal_line(refused.refusal, request.method(), request.path()),
                    );
                }
                self.refuse(&refused)
            }
        }
    }

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
            dpop: None,
            custom: None,
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

/// The context of a root that has no configuration: every request is refused.
pub(super) struct Unconfigured;

impl Context for Unconfigured {}

impl HttpContext for Unconfigured {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        host::log(
            LOG_ERROR,
            "jwt-guard: no configuration; refusing the request",
        );
        let refused = Refused {
            refusal: Refusal::Unauthorized(AuthFailure::Malformed),
            scope_hint: None,
            dpop: None,
            custom: None,
        };
        PreparedResponse::of(&refused, "jwt-guard").send()
    }
}

pub(super) fn apply(changes: &[HeaderChange]) {
    for change in changes {
        let result = match change {
            HeaderChange::Remove(name) => host::remove_request_header(name),
            HeaderChange::Set(name, value) => host::set_request_header(name, value),
        };
        if let Err(status) = result {
            host::log(
                LOG_ERROR,
                &format!("jwt-guard: cannot change header: {status:?}"),
            );
        }
    }
}

pub(super) fn property(path: &[u8]) -> Option<String> {
    let bytes = host::property(path).ok()??;
    String::from_utf8(bytes).ok()
}
