//! Host adapters: the only code that talks to a host. Each reads what the host knows of a
//! request (headers, properties, addresses, time), calls the core, and acts on its decision.
//! The core never imports an adapter.

pub mod proxy_wasm;

#[cfg(all(feature = "native", not(target_arch = "wasm32")))]
pub mod dynamic_module;
