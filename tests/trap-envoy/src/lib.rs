//! Test-only proxy-wasm module: the smallest guard — it refuses a request (403) unless it carries
//! `x-allow` — whose Wasm VM fails on demand, so `tests/integration/test_vm_failure.py` can show,
//! in a real Envoy, what a client gets when a guard's VM fails: with `fail_open: false`
//! (jwt-guard's setting) and with `fail_open: true` (the filter is skipped: requests pass
//! unjudged). jwt-guard itself has no panics, so it cannot be made to trap from a request, but a
//! VM can still fail: memory exhausted, a bug, V8 refusing the module; what Envoy does then is
//! the same for every module.
//!
//! - a request with the header `x-trap` makes `proxy_on_request_headers` execute the Wasm
//!   `unreachable` instruction: a trap, which Envoy treats as the VM failing;
//! - the plugin configuration `fail_configure` makes `on_configure` return `false`;
//! - the VM configuration `fail_start` makes `on_vm_start` return `false`.
//!
//! Otherwise a request with `x-allow` continues to the next filter (Envoy's router: the
//! upstream) and any other is answered 403 `refused by the trap module`.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        self.get_vm_configuration().as_deref() != Some(b"fail_start".as_slice())
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        self.get_plugin_configuration().as_deref() != Some(b"fail_configure".as_slice())
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Pass))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Pass;

impl Context for Pass {}

impl HttpContext for Pass {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.get_http_request_header("x-trap").is_some() {
            core::arch::wasm32::unreachable();
        }
        if self.get_http_request_header("x-allow").is_some() {
            return Action::Continue;
        }
        self.send_http_response(403, Vec::new(), Some(b"refused by the trap module"));
        Action::Pause
    }
}
