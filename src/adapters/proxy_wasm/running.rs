//! Everything a request needs, built once per configuration and shared by the HTTP contexts
//! of one root: the compiled configuration, counters, the verified-token cache, the verifier.

use std::cell::RefCell;

use crate::adapters::proxy_wasm::host::{self, LOG_WARN};
use crate::adapters::proxy_wasm::host_verifier::HostVerifier;
use crate::adapters::proxy_wasm::outcomes::Outcomes;
use crate::authn::cache::TokenCache;
use crate::config::Config;
use crate::request::unknown_binding_warning;

/// Everything a request needs, built once per configuration and shared by its HTTP contexts.
pub(super) struct Running {
    pub(super) config: Config,
    pub(super) outcomes: Outcomes,
    pub(super) cache: RefCell<TokenCache>,
    pub(super) verifier: HostVerifier,
    /// Asked once: a refusal then costs no host call when debug logging is off.
    pub(super) log_refusals: bool,
    /// The current request's headers, decoded into the buffers the previous request left.
    pub(super) headers: RefCell<Vec<(String, Vec<u8>)>>,
    /// Unknown rule names from route metadata already logged.
    pub(super) warned_route_rules: RefCell<Vec<Vec<u8>>>,
}

impl Running {
    /// Once per name and VM (a route configuration names few rules): the counter
    /// `jwt_guard.route_rule_unknown` counts every request.
    pub(super) fn warn_unknown_route_rule(&self, name: &[u8]) {
        let Ok(mut warned) = self.warned_route_rules.try_borrow_mut() else {
            return;
        };
        if warned.len() >= MAX_WARNED_ROUTE_RULES || warned.iter().any(|n| n == name) {
            return;
        }
        warned.push(name.to_vec());
        host::log(LOG_WARN, &unknown_binding_warning(name));
    }
}

pub(super) const MAX_WARNED_ROUTE_RULES: usize = 64;
