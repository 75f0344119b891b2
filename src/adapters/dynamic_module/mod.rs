//! Envoy's dynamic modules (`DynamicModuleFilter`, Envoy 1.40): the same core, loaded as a
//! shared library into Envoy's process, with no VM between them. Built with the `native`
//! feature (`make native` → `libjwt_guard.so`); never part of the `.wasm`.
//!
//! [`abi`] declares the callbacks used, `host` wraps them (all `unsafe` lives in these two
//! files and in [`hooks`], each block with its safety argument), [`hooks`] are the functions
//! Envoy calls, `filter_config` is a configuration shared by Envoy's threads, `worker` each
//! worker's own compiled copy and token cache, `filter` one request, and `remote` the main
//! thread's `remote_jwks` fetcher.

pub mod abi;
mod filter;
mod filter_config;
pub mod hooks;
mod host;
mod remote;
mod replay;
mod worker;
