//! The untrusted token, before anything is believed: where a request carries it
//! ([`extract`]) and its compact-JWS structure ([`jws`]). Parsing only; nothing here decides
//! that a token is valid, and nothing here is trusted by policy.

pub mod extract;
pub mod jws;
