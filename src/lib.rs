//! jwt-guard: local JWT authentication (401) and per-route authorization (403) for Envoy.
//!
//! The folders follow a request's path (see ARCHITECTURE.md): [`request`] is what the host
//! hands in, [`token`] finds and parses the untrusted token, [`authn`] verifies it into
//! [`authn::VerifiedClaims`], [`authz`] applies the rule's policy, [`identity`] says what goes
//! upstream, and [`decision`] puts them together under the [`config`] compiled once. Everything
//! but [`adapters`] is host-independent: it never calls a host, and receives time, headers and
//! addresses as arguments, so it builds and unit-tests on the host.
//!
//! Features: `filter` (default) adds the proxy-wasm glue ([`adapters::proxy_wasm`]) to a wasm32
//! build; without it the crate is the core alone, for modules that bring their own glue
//! (tests/wycheproof-envoy). `wycheproof` adds `testing::vectors`, for tests only.

pub mod adapters;
pub mod authn;
pub mod authz;
pub mod config;
pub mod decision;
pub mod identity;
pub mod reason;
pub mod request;
pub mod token;
pub mod trace;

#[cfg(any(test, feature = "wycheproof"))]
pub mod testing;
