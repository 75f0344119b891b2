//! Sender-constrained tokens: the token's `cnf` claim (RFC 7800) against what this provider
//! checks. RFC 8705 certificate-bound tokens (`cnf.x5t#S256`) are checked against the client
//! certificate Envoy saw on the downstream TLS connection; RFC 9449 DPoP-bound tokens
//! (`cnf.jkt`) against the request's DPoP proof ([`crate::authn::dpop`]). Any other confirmation
//! method (`jwk`, `kid`, `jku`...), or one the provider does not check, makes the token refused
//! unless the provider accepts unchecked bindings: a bound token must never pass as a plain
//! bearer token by accident.
//!
//! Runs after the signature and claims, on every request, cache hits included: the binding is
//! to this request's connection, not to the token alone.

use serde_json::{Map, Value};

use crate::authn::dpop::{Dpop, ProofContext};
use crate::reason::AuthFailure;
use crate::token::jws::decode_part;

/// The `cnf` member of an RFC 8705 certificate-bound token.
pub const CERTIFICATE_THUMBPRINT: &str = "x5t#S256";
/// The `cnf` member of an RFC 9449 DPoP-bound token.
pub const DPOP_KEY_THUMBPRINT: &str = "jkt";

/// `certificate_binding` of a provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertificateBinding {
    /// Tokens without `cnf.x5t#S256` are still accepted.
    Optional,
    /// Only certificate-bound tokens are accepted.
    Required,
}

/// What a provider checks of a token's `cnf`.
#[derive(Clone, Debug, Default)]
pub struct Binding {
    /// `None`: `certificate_binding` is off.
    pub certificate: Option<CertificateBinding>,
    /// `None`: `dpop` is off.
    pub dpop: Option<Dpop>,
    /// `accept_unchecked_bindings`: a token bound in a way this provider does not check is
    /// accepted as a bearer token (the operator's explicit choice).
    pub accept_unchecked: bool,
}

impl Binding {
    /// `with_dpop`: the token came with the DPoP authorization scheme. The client certificate
    /// (`peer_certificate_digest` of the request: the SHA-256 of the DER client certificate,
    /// hex, as Envoy gives it) is asked for only when a certificate-bound token is checked.
    pub fn check(
        &self,
        claims: &Map<String, Value>,
        with_dpop: bool,
        context: &ProofContext<'_>,
    ) -> Result<(), AuthFailure> {
        let (thumbprint, jkt, other_methods) = match claims.get("cnf") {
            None => (None, None, false),
            Some(Value::Object(cnf)) => (
                cnf.get(CERTIFICATE_THUMBPRINT),
                cnf.get(DPOP_KEY_THUMBPRINT),
                cnf.keys().any(|method| {
                    method != CERTIFICATE_THUMBPRINT && method != DPOP_KEY_THUMBPRINT
                }),
            ),
            // A `cnf` that is not an object binds the token in no way anyone can check.
            Some(_) => (None, None, true),
        };
        let dpop_unchecked = jkt.is_some() && self.dpop.is_none();
        if (other_methods || dpop_unchecked) && !self.accept_unchecked {
            return Err(AuthFailure::BindingUnchecked);
        }
        match (self.certificate, thumbprint) {
            (None, Some(_)) if !self.accept_unchecked => return Err(AuthFailure::BindingUnchecked),
            (None, _) | (Some(CertificateBinding::Optional), None) => {}
            (Some(CertificateBinding::Required), None) => {
                return Err(AuthFailure::CertificateBindingRequired);
            }
            (Some(_), Some(thumbprint)) => {
                matches_certificate(thumbprint, (context.request.peer_certificate_digest)())?
            }
        }
        let Some(dpop) = &self.dpop else {
            return Ok(());
        };
        match jkt {
            _ if with_dpop => dpop.check(context, jkt.and_then(Value::as_str)),
            // Whoever holds a bound token without its key must not get in with it alone.
            Some(_) => Err(AuthFailure::DpopBoundAsBearer),
            None if dpop.required => Err(AuthFailure::DpopRequired),
            None => Ok(()),
        }
    }
}

/// `thumbprint` (base64url, RFC 8705 §3.1) names the certificate whose SHA-256 is `digest`.
fn matches_certificate(thumbprint: &Value, digest: Option<String>) -> Result<(), AuthFailure> {
    // Envoy gives "" (or nothing) without a client certificate; anything but 32 bytes of hex
    // is no certificate it vouches for.
    let digest = digest
        .filter(|hex| hex.len() == 64)
        .and_then(|hex| {
            hex.as_bytes()
                .chunks(2)
                .map(|pair| Some(nibble(*pair.first()?)? << 4 | nibble(*pair.get(1)?)?))
                .collect::<Option<Vec<u8>>>()
        })
        .ok_or(AuthFailure::CertificateMissing)?;
    // A thumbprint that is not a canonical base64url SHA-256 matches no certificate.
    let bound = thumbprint
        .as_str()
        .and_then(|text| decode_part(text).ok())
        .ok_or(AuthFailure::CertificateMismatch)?;
    if bound == digest {
        Ok(())
    } else {
        Err(AuthFailure::CertificateMismatch)
    }
}

fn nibble(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // SHA-256 of the DER certificate, as `openssl x509 -outform der | sha256sum` and Envoy's
    // `sha256_peer_certificate_digest` print it, and RFC 8705's base64url form of the same bytes
    // (computed by Python's hashlib/base64, not by this crate).
    const DIGEST: &str = "3b2a1c5e1c2e8f0f3a7b4f6c0f8b0e9d5d1a2b3c4d5e6f708192a3b4c5d6e7f8";
    const THUMBPRINT: &str = "OyocXhwujw86e09sD4sOnV0aKzxNXm9wgZKjtMXW5_g";
    const OTHER_DIGEST: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    /// A bearer presentation of a token, on a connection whose certificate is `digest`.
    fn check(
        binding: &Binding,
        claims: &Map<String, Value>,
        digest: &dyn Fn() -> Option<String>,
    ) -> Result<(), AuthFailure> {
        let request = crate::request::Request {
            headers: &[],
            peer_address: &|| None,
            peer_certificate_digest: digest,
            route_name: None,
            route_rule: None,
        };
        let context = ProofContext {
            request: &request,
            token: "",
            now: 0,
            clock_skew_seconds: 0,
            verifier: &crate::authn::verify::PureRustVerifier,
            replay: &crate::authn::dpop::MemoryReplayStore::default(),
        };
        binding.check(claims, false, &context)
    }

    fn claims(cnf: Option<Value>) -> Map<String, Value> {
        let mut claims = Map::new();
        claims.insert("sub".into(), json!("alice"));
        if let Some(cnf) = cnf {
            claims.insert("cnf".into(), cnf);
        }
        claims
    }

    #[test]
    fn binding_table() {
        use AuthFailure::*;
        use CertificateBinding::*;
        let off = Binding::default();
        let opt_out = Binding {
            certificate: None,
            accept_unchecked: true,
            dpop: None,
        };
        let optional = Binding {
            certificate: Some(Optional),
            accept_unchecked: false,
            dpop: None,
        };
        let required = Binding {
            certificate: Some(Required),
            accept_unchecked: false,
            dpop: None,
        };
        let required_opt_out = Binding {
            certificate: Some(Required),
            accept_unchecked: true,
            dpop: None,
        };
        let bound = Some(json!({ "x5t#S256": THUMBPRINT }));
        let dpop = Some(json!({ "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" }));
        let both = Some(json!({ "x5t#S256": THUMBPRINT, "jkt": "abc" }));
        let (upper, non_hex) = (DIGEST.to_ascii_uppercase(), "zz".repeat(32));
        let (signed, long) = ("+f".repeat(32), format!("{DIGEST}00"));
        type Case<'a> = (
            &'a str,
            &'a Binding,
            Option<Value>,
            Option<&'a str>,
            Result<(), AuthFailure>,
        );
        let cases: Vec<Case> = vec![
            ("off, unbound", &off, None, None, Ok(())),
            ("off, empty cnf", &off, Some(json!({})), None, Ok(())),
            (
                "off, x5t",
                &off,
                bound.clone(),
                Some(DIGEST),
                Err(BindingUnchecked),
            ),
            ("off, jkt", &off, dpop.clone(), None, Err(BindingUnchecked)),
            (
                "off, cnf.jwk",
                &off,
                Some(json!({"jwk": {}})),
                None,
                Err(BindingUnchecked),
            ),
            (
                "off, cnf string",
                &off,
                Some(json!("x")),
                None,
                Err(BindingUnchecked),
            ),
            ("opt-out, x5t", &opt_out, bound.clone(), None, Ok(())),
            ("opt-out, jkt", &opt_out, dpop.clone(), None, Ok(())),
            ("optional, unbound", &optional, None, None, Ok(())),
            (
                "optional, match",
                &optional,
                bound.clone(),
                Some(DIGEST),
                Ok(()),
            ),
            (
                "optional, upper-case hex",
                &optional,
                bound.clone(),
                Some(&upper),
                Ok(()),
            ),
            (
                "optional, other cert",
                &optional,
                bound.clone(),
                Some(OTHER_DIGEST),
                Err(CertificateMismatch),
            ),
            (
                "optional, no cert",
                &optional,
                bound.clone(),
                None,
                Err(CertificateMissing),
            ),
            (
                "optional, empty digest",
                &optional,
                bound.clone(),
                Some(""),
                Err(CertificateMissing),
            ),
            (
                "optional, short digest",
                &optional,
                bound.clone(),
                Some("3b2a"),
                Err(CertificateMissing),
            ),
            (
                "optional, non-hex digest",
                &optional,
                bound.clone(),
                Some(&non_hex),
                Err(CertificateMissing),
            ),
            (
                "optional, signed digits",
                &optional,
                bound.clone(),
                Some(&signed),
                Err(CertificateMissing),
            ),
            (
                "optional, digest too long",
                &optional,
                bound.clone(),
                Some(&long),
                Err(CertificateMissing),
            ),
            (
                "optional, jkt",
                &optional,
                dpop.clone(),
                Some(DIGEST),
                Err(BindingUnchecked),
            ),
            (
                "optional, x5t and jkt",
                &optional,
                both.clone(),
                Some(DIGEST),
                Err(BindingUnchecked),
            ),
            (
                "required, unbound",
                &required,
                None,
                Some(DIGEST),
                Err(CertificateBindingRequired),
            ),
            (
                "required, match",
                &required,
                bound.clone(),
                Some(DIGEST),
                Ok(()),
            ),
            (
                "required, jkt",
                &required,
                dpop.clone(),
                Some(DIGEST),
                Err(BindingUnchecked),
            ),
            (
                "required+opt-out, jkt",
                &required_opt_out,
                dpop,
                Some(DIGEST),
                Err(CertificateBindingRequired),
            ),
            (
                "required+opt-out, both",
                &required_opt_out,
                both,
                Some(DIGEST),
                Ok(()),
            ),
            (
                "padded thumbprint",
                &optional,
                Some(json!({ "x5t#S256": format!("{THUMBPRINT}=") })),
                Some(DIGEST),
                Err(CertificateMismatch),
            ),
            (
                "standard base64 alphabet",
                &optional,
                Some(json!({ "x5t#S256": THUMBPRINT.replace('_', "/") })),
                Some(DIGEST),
                Err(CertificateMismatch),
            ),
            (
                "hex thumbprint",
                &optional,
                Some(json!({ "x5t#S256": DIGEST })),
                Some(DIGEST),
                Err(CertificateMismatch),
            ),
            (
                "thumbprint not a string",
                &optional,
                Some(json!({ "x5t#S256": 1 })),
                Some(DIGEST),
                Err(CertificateMismatch),
            ),
            (
                "truncated thumbprint",
                &optional,
                Some(json!({ "x5t#S256": &THUMBPRINT[..40] })),
                Some(DIGEST),
                Err(CertificateMismatch),
            ),
        ];
        for (name, binding, cnf, digest, expected) in cases {
            let digest = digest.map(str::to_string);
            assert_eq!(
                check(binding, &claims(cnf), &|| digest.clone()),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn the_certificate_is_asked_for_only_to_check_a_certificate_bound_token() {
        let asked = std::cell::Cell::new(0);
        let digest = || {
            asked.set(asked.get() + 1);
            Some(DIGEST.to_string())
        };
        let optional = Binding {
            certificate: Some(CertificateBinding::Optional),
            accept_unchecked: true,
            dpop: None,
        };
        for binding in [Binding::default(), optional.clone()] {
            for cnf in [None, Some(json!({"jkt": "x"}))] {
                let _ = check(&binding, &claims(cnf), &digest);
            }
        }
        assert_eq!(asked.get(), 0);
        assert_eq!(
            check(
                &optional,
                &claims(Some(json!({ "x5t#S256": THUMBPRINT }))),
                &digest
            ),
            Ok(())
        );
        assert_eq!(asked.get(), 1);
    }
}
