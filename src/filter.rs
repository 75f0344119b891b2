//! The proxy-wasm glue: read the configuration once, and for each request read headers and
//! properties, ask the core for a decision, and act on it. The SDK provides the context
//! dispatch only; every host call goes through [`crate::host`], which never panics.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

use crate::config::Config;
use crate::decision::{Decision, Refused, decide};
use crate::extract::HeaderChange;
use crate::host::{self, LOG_CRITICAL, LOG_DEBUG, LOG_ERROR, LOG_INFO};
use crate::reason::{AuthFailure, Forbidden, Refusal};
use crate::request::Request;
use crate::verify::PureRustVerifier;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

fn log(level: u32, message: &str) {
    host::log(level, message);
}

/// Envoy counters (shown as `wasmcustom.jwt_guard.*`), one per outcome and reason.
struct Metrics {
    allowed: Option<u32>,
    dry_run: Option<u32>,
    refused: Vec<(Refusal, Option<u32>)>,
}

impl Metrics {
    fn define() -> Metrics {
        let counter = |name: &str| host::define_counter(name).ok();
        let refusals = AuthFailure::ALL
            .iter()
            .map(|f| Refusal::Unauthorized(*f))
            .chain(Forbidden::ALL.iter().map(|f| Refusal::Forbidden(*f)));
        Metrics {
            allowed: counter("jwt_guard.allowed"),
            dry_run: counter("jwt_guard.dry_run"),
            refused: refusals
                .map(|r| {
                    (
                        r,
                        counter(&format!("jwt_guard.refused.{}.{}", r.status(), r.code())),
                    )
                })
                .collect(),
        }
    }

    fn count(id: Option<u32>) {
        if let Some(id) = id {
            host::increment_counter(id);
        }
    }

    fn refusal(&self, refusal: Refusal) -> Option<u32> {
        self.refused
            .iter()
            .find(|(r, _)| *r == refusal)
            .and_then(|(_, id)| *id)
    }
}

#[derive(Default)]
struct Root {
    config: Option<Rc<Config>>,
    metrics: Option<Rc<Metrics>>,
    log_refusals: bool,
}

impl Context for Root {}

impl RootContext for Root {
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
        match Config::from_json(&bytes) {
            Ok(config) => {
                // Asked once: a refusal then costs no host call when debug logging is off.
                self.log_refusals = host::log_level().is_ok_and(|level| level <= LOG_DEBUG);
                self.config = Some(Rc::new(config));
                self.metrics = Some(Rc::new(Metrics::define()));
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

    /// Always a context: the SDK panics on `None`. Without a configuration (Envoy does not
    /// create streams for a plugin whose `on_configure` failed, but nothing here relies on
    /// that) the context refuses every request.
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(match (&self.config, &self.metrics) {
            (Some(config), Some(metrics)) => Box::new(Guard {
                config: config.clone(),
                metrics: metrics.clone(),
                log_refusals: self.log_refusals,
            }),
            _ => Box::new(Unconfigured),
        })
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Guard {
    config: Rc<Config>,
    metrics: Rc<Metrics>,
    log_refusals: bool,
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
                return self.refuse(&Refused {
                    refusal: Refusal::Unauthorized(AuthFailure::Malformed),
                    scope_hint: None,
                });
            }
        };
        let peer = self
            .config
            .needs_client_ip
            .then(|| property(&["source", "address"]))
            .flatten();
        let route = self
            .config
            .needs_route_name
            .then(|| property(&["xds", "route_name"]))
            .flatten();
        let request = Request {
            headers: &headers,
            peer_address: peer.as_deref(),
            route_name: route.as_deref(),
        };
        let Ok(now) = host::now_seconds() else {
            // Without a clock no expiry can be judged; refusing is the only safe answer.
            log(LOG_ERROR, "jwt-guard: cannot read the host clock");
            return self.refuse(&Refused {
                refusal: Refusal::Unauthorized(AuthFailure::Expired),
                scope_hint: None,
            });
        };
        match decide(&self.config, &request, now, &PureRustVerifier) {
            Decision::Allow { changes, dry_run } => {
                apply(&changes);
                match dry_run {
                    Some(refusal) => {
                        log(
                            LOG_INFO,
                            &format!(
                                "jwt-guard dry run: would refuse {} {} on {}",
                                refusal.status(),
                                refusal.code(),
                                String::from_utf8_lossy(request.path())
                            ),
                        );
                        Metrics::count(self.metrics.dry_run);
                    }
                    None => Metrics::count(self.metrics.allowed),
                }
                Action::Continue
            }
            Decision::Refuse(refused) => {
                if self.log_refusals {
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
        Metrics::count(self.metrics.refusal(refused.refusal));
        send_refusal(refused, &self.config.realm)
    }
}

/// Answers the refusal locally. If even that fails, the request is still not let through:
/// the stream stays paused until Envoy's timeouts end it.
fn send_refusal(refused: &Refused, realm: &str) -> Action {
    let response = refused.response(realm);
    let headers: Vec<(&str, &[u8])> = response
        .headers
        .iter()
        .map(|(name, value)| (*name, value.as_bytes()))
        .collect();
    if let Err(status) =
        host::send_local_response(response.status, "", &headers, response.body.as_bytes())
    {
        log(
            LOG_ERROR,
            &format!("jwt-guard: cannot send refusal: {status:?}"),
        );
    }
    Action::Pause
}

/// The context of a root that has no configuration: every request is refused.
struct Unconfigured;

impl Context for Unconfigured {}

impl HttpContext for Unconfigured {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        log(
            LOG_ERROR,
            "jwt-guard: no configuration; refusing the request",
        );
        send_refusal(
            &Refused {
                refusal: Refusal::Unauthorized(AuthFailure::Malformed),
                scope_hint: None,
            },
            "jwt-guard",
        )
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
