//! The root context: reads and compiles the configuration once (`on_configure`), keeps remote
//! key sets fresh (`on_tick`, HTTP callouts), and makes an HTTP context per request.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use crate::adapters::proxy_wasm::fetcher::{self, Fetcher};
use crate::adapters::proxy_wasm::host::{self, LOG_CRITICAL, LOG_DEBUG, LOG_INFO};
use crate::adapters::proxy_wasm::host_verifier::HostVerifier;
use crate::adapters::proxy_wasm::host_verifier::host_can_verify;
use crate::adapters::proxy_wasm::http_context::Guard;
use crate::adapters::proxy_wasm::http_context::Unconfigured;
use crate::adapters::proxy_wasm::outcomes::Outcomes;
use crate::adapters::proxy_wasm::replay;
use crate::adapters::proxy_wasm::running::Running;
use crate::authn::cache::TokenCache;
use crate::authn::jwks::Backend;
use crate::config::Config;

#[derive(Default)]
pub(super) struct Root {
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
        host::log(
            LOG_INFO,
            concat!("jwt-guard ", env!("CARGO_PKG_VERSION"), " starting"),
        );
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = match host::plugin_configuration() {
            Ok(bytes) => bytes,
            Err(status) => {
                host::log(
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
                host::log(LOG_INFO, &describe(&config, host_backend));
                if let Err(status) = replay::prepare(&config) {
                    host::log(
                        LOG_CRITICAL,
                        &format!("jwt-guard: no shared data for the DPoP replay store: {status:?}"),
                    );
                    return false;
                }
                let fetcher = Fetcher::new(&config, host_backend);
                if !fetcher.is_empty()
                    && let Err(status) = host::set_tick_period_ms(fetcher::TICK_MS)
                {
                    host::log(
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
                    headers: RefCell::new(Vec::new()),
                    warned_route_rules: RefCell::new(Vec::new()),
                    config,
                }));
                true
            }
            Err(err) => {
                host::log(
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
pub(super) fn describe(config: &Config, host_backend: bool) -> String {
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
