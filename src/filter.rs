//! The proxy-wasm glue: read the configuration once, and for each request read headers and
//! properties, ask the core for a decision, and act on it. Host calls are made through
//! `hostcalls` directly so their failures are handled here instead of panicking in the SDK.

use std::rc::Rc;
use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};

use crate::config::Config;
use crate::decision::{Decision, Refused, decide};
use crate::extract::HeaderChange;
use crate::reason::{AuthFailure, Forbidden, Refusal};
use crate::request::Request;
use crate::verify::JwtSimpleVerifier;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

fn log(level: LogLevel, message: &str) {
    // Nothing sensible is left to do if logging itself fails.
    let _ = hostcalls::log(level, message);
}

/// Envoy counters (shown as `wasmcustom.jwt_guard.*`), one per outcome and reason.
struct Metrics {
    allowed: Option<u32>,
    dry_run: Option<u32>,
    refused: Vec<(Refusal, Option<u32>)>,
}

impl Metrics {
    fn define() -> Metrics {
        let counter = |name: &str| hostcalls::define_metric(MetricType::Counter, name).ok();
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
            let _ = hostcalls::increment_metric(id, 1);
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
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => Vec::new(),
            Err(status) => {
                log(
                    LogLevel::Critical,
                    &format!("jwt-guard: cannot read configuration: {status:?}"),
                );
                return false;
            }
        };
        match Config::from_json(&bytes) {
            Ok(config) => {
                // Asked once: a refusal then costs no host call when debug logging is off.
                self.log_refusals = matches!(
                    hostcalls::get_log_level(),
                    Ok(LogLevel::Trace | LogLevel::Debug)
                );
                self.config = Some(Rc::new(config));
                self.metrics = Some(Rc::new(Metrics::define()));
                true
            }
            Err(err) => {
                log(
                    LogLevel::Critical,
                    &format!("jwt-guard: invalid configuration: {err}"),
                );
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Guard {
            config: self.config.clone()?,
            metrics: self.metrics.clone()?,
            log_refusals: self.log_refusals,
        }))
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
        let headers = match hostcalls::get_map_bytes(MapType::HttpRequestHeaders) {
            Ok(headers) => headers,
            Err(status) => {
                log(
                    LogLevel::Error,
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
        let Some(now) = now_seconds() else {
            // Without a clock no expiry can be judged; refusing is the only safe answer.
            log(LogLevel::Error, "jwt-guard: cannot read the host clock");
            return self.refuse(&Refused {
                refusal: Refusal::Unauthorized(AuthFailure::Expired),
                scope_hint: None,
            });
        };
        match decide(&self.config, &request, now, &JwtSimpleVerifier) {
            Decision::Allow { changes, dry_run } => {
                apply(&changes);
                match dry_run {
                    Some(refusal) => {
                        log(
                            LogLevel::Info,
                            &format!(
                                "jwt-guard dry run: would refuse {} {} on {}",
                                refusal.status(),
                                refusal.code(),
                                request.path()
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
                        LogLevel::Debug,
                        &format!(
                            "jwt-guard: {} {} for {} {}",
                            refusal.status(),
                            refusal.code(),
                            request.method(),
                            request.path()
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
        let response = refused.response(&self.config.realm);
        let headers: Vec<(&str, &str)> = response
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        if let Err(status) =
            hostcalls::send_http_response(response.status, headers, Some(response.body.as_bytes()))
        {
            log(
                LogLevel::Error,
                &format!("jwt-guard: cannot send refusal: {status:?}"),
            );
        }
        Action::Pause
    }
}

fn apply(changes: &[HeaderChange]) {
    for change in changes {
        let result = match change {
            HeaderChange::Remove(name) => {
                hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None)
            }
            HeaderChange::Set(name, value) => {
                hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value))
            }
        };
        if let Err(status) = result {
            log(
                LogLevel::Error,
                &format!("jwt-guard: cannot change header: {status:?}"),
            );
        }
    }
}

fn property(path: &[&str]) -> Option<String> {
    let bytes = hostcalls::get_property(path.to_vec()).ok()??;
    String::from_utf8(bytes).ok()
}

/// The host's clock: the guest's WASI clock is not guaranteed to follow it.
fn now_seconds() -> Option<u64> {
    let time = hostcalls::get_current_time().ok()?;
    Some(time.duration_since(UNIX_EPOCH).ok()?.as_secs())
}
