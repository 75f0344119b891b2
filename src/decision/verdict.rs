//! What the decision answers: let the request through with these changes, or refuse it with
//! this response; and the facts beside it (rule, provider, verified claims) for counters,
//! logs and outcomes.

use std::rc::Rc;

use crate::authn::claims::VerifiedClaims;
use crate::config::CustomRefusal;
use crate::reason::{AuthFailure, Refusal};
use crate::token::extract::HeaderChange;
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Let the request through after applying `changes`. `dry_run` holds the refusal that a
    /// dry run turned into an allow.
    Allow {
        changes: Vec<HeaderChange>,
        dry_run: Option<Refusal>,
    },
    Refuse(Refused),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub refusal: Refusal,
    /// The scopes a `missing_scope` refusal names in its challenge.
    pub scope_hint: Option<String>,
    /// The schemes a 401 challenges with, when the rule has DPoP providers.
    pub dpop: Option<DpopChallenge>,
    /// The deciding rule's `refusal`, when it answers this kind of refusal.
    pub custom: Option<Rc<CustomRefusal>>,
}

/// How a 401 asks for DPoP (RFC 9449 §7.1): beside or instead of `Bearer`, with the proof
/// algorithms accepted, and a fresh server nonce when the refusal asks for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopChallenge {
    /// Some provider of the rule accepts plain bearer tokens.
    pub bearer: bool,
    /// The challenge's `algs`: the rule's DPoP proof algorithms, space-separated.
    pub algs: String,
    /// The token came with the DPoP scheme: its refusal challenges with DPoP.
    pub presented: bool,
    /// The `DPoP-Nonce` header of a `use_dpop_nonce` refusal.
    pub nonce: Option<String>,
}

/// A local reply for Envoy to send instead of forwarding the request.
#[derive(Debug, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u32,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Refused {
    pub(super) fn new(refusal: Refusal) -> Refused {
        Refused {
            refusal,
            scope_hint: None,
            dpop: None,
            custom: None,
        }
    }

    /// The same for every request refused for this reason: hosts may prepare it once.
    pub fn is_plain(&self) -> bool {
        self.scope_hint.is_none() && self.dpop.is_none() && self.custom.is_none()
    }

    /// Answers with `refusal` when it covers this kind of refusal (401 or 403).
    pub(super) fn answered_by(mut self, refusal: &Option<Rc<CustomRefusal>>) -> Refused {
        self.custom = refusal
            .as_ref()
            .filter(|custom| match self.refusal {
                Refusal::Unauthorized(_) => custom.unauthorized,
                Refusal::Forbidden(_) => custom.forbidden,
            })
            .cloned();
        self
    }

    /// The local reply: the standard one, or the rule's `refusal` in its place. A challenge
    /// stays only while the status it belongs to does (a 401 still sent keeps its
    /// `WWW-Authenticate`; a 403 kept as 403 keeps `insufficient_scope`); a custom body is the
    /// operator's alone, and the standard body keeps its reason code.
    pub fn response(&self, realm: &str) -> LocalResponse {
        let standard = self.standard_response(realm);
        let Some(custom) = &self.custom else {
            return standard;
        };
        let mut headers = Vec::new();
        if custom.status == standard.status {
            headers.extend(
                standard
                    .headers
                    .into_iter()
                    .filter(|(name, _)| *name != "content-type"),
            );
        }
        headers.insert(0, ("content-type", custom.content_type.clone()));
        let body = custom.body.clone().unwrap_or_else(|| {
            // The standard body (keys sorted: `status` is last) with the status sent.
            let old = format!("\"status\":{}}}", standard.status);
            match standard.body.strip_suffix(&old) {
                Some(head) => format!("{head}\"status\":{}}}", custom.status),
                None => standard.body,
            }
        });
        LocalResponse {
            status: custom.status,
            headers,
            body,
        }
    }

    fn standard_response(&self, realm: &str) -> LocalResponse {
        if let (Refusal::Unauthorized(failure), Some(dpop)) = (self.refusal, &self.dpop) {
            return dpop.response(realm, failure);
        }
        let (error, challenge) = match self.refusal {
            Refusal::Unauthorized(AuthFailure::Missing) => {
                ("invalid_token", Some(format!("Bearer realm=\"{realm}\"")))
            }
            Refusal::Unauthorized(failure) => (
                "invalid_token",
                Some(format!(
                    "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
                    failure.description()
                )),
            ),
            Refusal::Forbidden(forbidden) if forbidden.is_about_token() => {
                let mut challenge = format!(
                    "Bearer realm=\"{realm}\", error=\"insufficient_scope\", error_description=\"{}\"",
                    forbidden.description()
                );
                if let Some(scope) = &self.scope_hint {
                    challenge.push_str(&format!(", scope=\"{scope}\""));
                }
                (forbidden.error(), Some(challenge))
            }
            Refusal::Forbidden(forbidden) => (forbidden.error(), None),
        };
        let mut headers = vec![("content-type", "application/json".to_string())];
        if let Some(challenge) = challenge {
            headers.push(("www-authenticate", challenge));
        }
        let body = serde_json::json!({
            "status": self.refusal.status(),
            "error": error,
            "reason": self.refusal.code(),
        })
        .to_string();
        LocalResponse {
            status: self.refusal.status(),
            headers,
            body,
        }
    }
}

impl DpopChallenge {
    fn response(&self, realm: &str, failure: AuthFailure) -> LocalResponse {
        let dpop = |error: &str| {
            let mut challenge = format!("DPoP realm=\"{realm}\"");
            if !error.is_empty() {
                challenge.push_str(&format!(
                    ", error=\"{error}\", error_description=\"{}\"",
                    failure.description()
                ));
            }
            challenge.push_str(&format!(", algs=\"{}\"", self.algs));
            challenge
        };
        let mut headers = vec![("content-type", "application/json".to_string())];
        if failure == AuthFailure::Missing {
            // One challenge per scheme the rule accepts (RFC 9110 §11.6.1).
            if self.bearer {
                headers.push(("www-authenticate", format!("Bearer realm=\"{realm}\"")));
            }
            headers.push(("www-authenticate", dpop("")));
        } else if self.presented || failure.asks_for_dpop() {
            headers.push(("www-authenticate", dpop(failure.error())));
        } else {
            headers.push((
                "www-authenticate",
                format!(
                    "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
                    failure.description()
                ),
            ));
        }
        if let Some(nonce) = &self.nonce {
            headers.push((crate::authn::dpop::NONCE_HEADER, nonce.clone()));
        }
        let body = serde_json::json!({
            "status": 401,
            "error": failure.error(),
            "reason": failure.code(),
        })
        .to_string();
        LocalResponse {
            status: 401,
            headers,
            body,
        }
    }
}

/// What [`decide`](crate::decision::decide()) concluded, and what outcomes and counters report of it.
#[derive(Debug)]
pub struct Verdict {
    pub decision: Decision,
    /// The rule that decided (an index into `Config::rules`); `None` when none applied.
    pub rule: Option<usize>,
    /// The provider that accepted the token or, for a refused one, judged it (see
    /// [`crate::authn::Authenticator::judged_by`]).
    pub provider: Option<usize>,
    /// The verified claims of an authenticated caller (never those of a refused token).
    pub claims: Option<Rc<VerifiedClaims>>,
    /// The route's metadata named a rule this configuration does not have.
    pub unknown_route_rule: bool,
}

/// The log line of a dry run's would-be refusal (hosts log it at info).
pub fn dry_run_line(refusal: Refusal, path: &[u8]) -> String {
    format!(
        "jwt-guard dry run: would refuse {} {} on {}",
        refusal.status(),
        refusal.code(),
        String::from_utf8_lossy(path)
    )
}

/// The log line of a refusal (hosts log it at debug).
pub fn refusal_line(refusal: Refusal, method: &[u8], path: &[u8]) -> String {
    format!(
        "jwt-guard: {} {} for {} {}",
        refusal.status(),
        refusal.code(),
        String::from_utf8_lossy(method),
        String::from_utf8_lossy(path)
    )
}
