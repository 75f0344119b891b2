//! The host signature backend: signatures checked by Envoy's `verify_signature` foreign
//! function for the keys chosen for it, in Rust for the others.

use std::cell::Cell;

use crate::adapters::proxy_wasm::host::{self, LOG_ERROR};
use crate::adapters::proxy_wasm::verify_signature;
use crate::authn::jwks::{Backend, VerificationKey};
use crate::authn::verify::{PureRustVerifier, SignatureVerifier};
use crate::reason::AuthFailure;
use crate::token::jws::UnverifiedJws;

/// Whether the host offers a `verify_signature` that accepts a genuine signature and refuses
/// it for another message.
pub(super) fn host_can_verify() -> bool {
    let answer = |genuine| {
        host::call_foreign_function(
            VERIFY_SIGNATURE,
            &verify_signature::probe_arguments(genuine),
        )
        .ok()
        .and_then(|bytes| verify_signature::result(&bytes))
    };
    answer(true) == Some(true) && answer(false) == Some(false)
}

pub(super) const VERIFY_SIGNATURE: &str = "verify_signature";

/// Checks signatures through the host for keys chosen for it at configuration time, in Rust
/// for the others. Should the host fail a call it answered at start, the check is made in Rust
/// (same answer, slower) and the failure logged once.
#[derive(Default)]
pub(super) struct HostVerifier {
    host_failed: Cell<bool>,
}

impl SignatureVerifier for HostVerifier {
    fn verify(&self, key: &VerificationKey, jws: &UnverifiedJws<'_>) -> Result<(), AuthFailure> {
        if key.backend == Backend::Host {
            let message = jws.signing_input().as_bytes();
            // No arguments: a signature no key could have made (an ECDSA one of the wrong size).
            let Some(arguments) = verify_signature::arguments(key, message, &jws.signature) else {
                return Err(AuthFailure::BadSignature);
            };
            let answer = host::call_foreign_function(VERIFY_SIGNATURE, &arguments)
                .ok()
                .and_then(|bytes| verify_signature::result(&bytes));
            match answer {
                Some(true) => return Ok(()),
                Some(false) => return Err(AuthFailure::BadSignature),
                None if !self.host_failed.replace(true) => host::log(
                    LOG_ERROR,
                    "jwt-guard: the host's verify_signature failed; checking signatures in Rust",
                ),
                None => {}
            }
        }
        PureRustVerifier.verify(key, jws)
    }
}
