//! jwt-guard: local JWT authentication (401) and per-route authorization (403) for Envoy.
//!
//! Everything except [`filter`] is host-independent: it never calls proxy-wasm, and receives
//! time, headers and addresses as arguments, so it builds and unit-tests on the host.
//!
//! Features: `filter` (default) adds the proxy-wasm glue, `filter` and `host`, to a wasm32
//! build; without it the crate is the core alone, for modules that bring their own glue
//! (tests/wycheproof-envoy). `wycheproof` adds [`vectors`], for tests only.

pub mod authn;
pub mod cache;
pub mod claims;
pub mod config;
pub mod decision;
pub mod extract;
pub mod header_map;
pub mod host_signature;
pub mod identity;
pub mod jwks;
pub mod jws;
pub mod net;
pub mod outcome;
pub mod policy;
pub mod reason;
pub mod remote;
pub mod request;
pub mod signature;
pub mod trace;
pub mod verify;

#[cfg(any(test, feature = "wycheproof"))]
pub mod vectors;

#[cfg(all(target_arch = "wasm32", feature = "filter"))]
mod fetcher;
#[cfg(all(target_arch = "wasm32", feature = "filter"))]
mod filter;
#[cfg(all(target_arch = "wasm32", feature = "filter"))]
mod host;
#[cfg(all(target_arch = "wasm32", feature = "filter"))]
mod route_metadata;

#[cfg(test)]
mod testutil;
