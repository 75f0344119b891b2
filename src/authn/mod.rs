//! Authentication (the 401 side): a token found in the request is verified against a
//! provider's keys and registered-claim rules. [`Authenticator`] runs the steps in order (find →
//! cache → parse → provider → key → signature → claims); the answer is the provider that
//! accepted the token with its [`VerifiedClaims`], or a 401 reason.
//!
//! [`VerifiedClaims`] can only be built here: policy and identity headers take nothing else.

pub mod authenticator;
pub mod binding;
pub mod cache;
pub mod claims;
pub mod dpop;
pub mod es512;
pub mod fetch;
pub mod issuer;
pub mod jwks;
#[cfg(all(feature = "native", not(target_arch = "wasm32")))]
pub mod native_signature;
pub mod provider;
pub mod remote;
pub mod signature;
pub mod verify;

pub use authenticator::{Authenticator, Verified};
pub use claims::VerifiedClaims;
