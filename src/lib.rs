//! jwt-guard: local JWT authentication (401) and per-route authorization (403) for Envoy.
//!
//! Everything except [`filter`] is host-independent: it never calls proxy-wasm, and receives
//! time, headers and addresses as arguments, so it builds and unit-tests on the host.

pub mod authn;
pub mod cache;
pub mod claims;
pub mod config;
pub mod decision;
pub mod extract;
pub mod header_map;
pub mod host_signature;
pub mod jwks;
pub mod jws;
pub mod net;
pub mod policy;
pub mod reason;
pub mod remote;
pub mod request;
pub mod signature;
pub mod verify;

#[cfg(target_arch = "wasm32")]
mod fetcher;
#[cfg(target_arch = "wasm32")]
mod filter;
#[cfg(target_arch = "wasm32")]
mod host;

#[cfg(test)]
mod testutil;
