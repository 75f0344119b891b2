//! The proxy-wasm host (Envoy's Wasm filter, Istio's WasmPlugin): root and HTTP contexts, the
//! remote-JWKS fetcher, the few host calls, and the host signature backend.
//!
//! The contexts are compiled for wasm32 with the `filter` feature (on by default). The wire
//! formats ([`verify_signature`], [`header_map`]) are plain code, compiled everywhere, so that
//! unit tests, fuzzing and `tests/wycheproof-envoy` reach them.

pub mod header_map;
pub mod verify_signature;

#[cfg(all(target_arch = "wasm32", feature = "filter"))]
mod fetcher;
#[cfg(all(target_arch = "wasm32", feature = "filter"))]
mod host;
#[cfg(all(target_arch = "wasm32", feature = "filter"))]
mod host_calls;
#[cfg(all(target_arch = "wasm32", feature = "filter"))]
mod host_verifier;
#[cfg(all(target_arch = "wasm32", feature = "filter"))]
mod http_context;
#[cfg(all(target_arch = "wasm32", feature = "filter"))]
mod outcomes;
#[cfg(all(target_arch = "wasm32", feature = "filter"))]
mod replay;
#[cfg(all(target_arch = "wasm32", feature = "filter"))]
mod root_context;
#[cfg(all(target_arch = "wasm32", feature = "filter"))]
mod route_metadata;
#[cfg(all(target_arch = "wasm32", feature = "filter"))]
mod running;

#[cfg(all(target_arch = "wasm32", feature = "filter"))]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(root_context::Root::default())
    });
}}
