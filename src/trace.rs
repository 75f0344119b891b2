//! How a decision was reached, step by step, for `jwt-guard explain`.
//!
//! [`crate::decision::decide_traced`] and the functions it calls record each step into a
//! [`Trace`]. The filter decides with [`NoTrace`], whose `record` is empty and never calls the
//! closure that would build the step: after monomorphisation the filter's code is the code
//! without any tracing. Only what a step *is* lives here; rendering is the command-line tool's.
//!
//! A trace describes; it never decides. The verdict is always the one `decide` returns.

use std::net::IpAddr;

use crate::reason::{AuthFailure, Judgement};
use crate::request::Country;
use crate::request::Selection;
use crate::token::extract::TokenLocation;
use crate::token::jws::Algorithm;

/// Receives the steps of one decision.
pub trait Trace {
    /// `step` is called only by a trace that keeps steps.
    fn record(&mut self, step: impl FnOnce() -> Step);
}

/// The filter's trace: keeps nothing, costs nothing.
pub struct NoTrace;

impl Trace for NoTrace {
    #[inline(always)]
    fn record(&mut self, _step: impl FnOnce() -> Step) {}
}

/// Keeps every step, in order.
impl Trace for Vec<Step> {
    fn record(&mut self, step: impl FnOnce() -> Step) {
        self.push(step());
    }
}

/// The registered-claim checks, in the order they are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimCheck {
    Exp,
    Nbf,
    Iat,
    Iss,
    Aud,
    Lifetime,
}

/// The policy checks, in the order they are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyCheck {
    SourceIps,
    BindIpClaim,
    Countries,
    /// The rule's `headers[i]`.
    Header(usize),
    Principals,
    Roles,
    Scopes,
    /// The rule's `claims[i]`.
    Claim(usize),
    /// The rule's `bind[i]`.
    Bind(usize),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// How the rule was found. `bound`: the rule name the route's metadata gave (then
    /// `selection` is that rule or [`Selection::UnknownRouteRule`]). `ambiguous_host`: rules
    /// match on hosts and the request's host is not a plain name or address, so none matches.
    /// With ordered matching, every rule before the selected one did not match.
    Rule {
        selection: Selection,
        bound: Option<String>,
        ambiguous_host: bool,
    },
    /// The rule is `disabled`: nothing is checked.
    Disabled,
    /// No token in any location of the rule's providers.
    NoToken,
    /// The token (never to be shown as it is) and every location it was found in.
    TokenFound {
        token: String,
        locations: Vec<TokenLocation>,
    },
    /// What was found cannot be a token: empty, not UTF-8, or two different ones.
    TokenUnusable(AuthFailure),
    /// The rule's providers that look where the token was found, in configuration order.
    Candidates(Vec<usize>),
    /// A verified-token cache hit for this provider (its claims are checked again).
    CacheHit { provider: usize },
    /// The compact-JWS parse: structure, header, claims.
    Parsed(Result<(), AuthFailure>),
    /// A provider judges the token. `names_issuer`: its issuer is the token's `iss` (when no
    /// candidate's is, the first candidate judges it).
    Provider { provider: usize, names_issuer: bool },
    /// One key's signature check.
    Key {
        kid: Option<String>,
        alg: Algorithm,
        valid: bool,
    },
    /// Key selection and signature, together: `Ok`, or why no key verified it.
    Signature(Result<(), AuthFailure>),
    /// One registered-claim check.
    Claim {
        check: ClaimCheck,
        result: Result<(), AuthFailure>,
    },
    /// The provider's answer.
    ProviderResult {
        provider: usize,
        result: Result<(), AuthFailure>,
    },
    /// The accepting provider refused the token's binding (`cnf`) for this request.
    Binding(Result<(), AuthFailure>),
    /// The client address policy saw (`None`: it could not be determined).
    ClientIp(Option<IpAddr>),
    /// The client country policy saw.
    Country(Country),
    /// One policy check of rule `rule` (the allow rule judging, or a deny rule).
    Policy {
        rule: usize,
        check: PolicyCheck,
        result: Judgement,
    },
    /// Deny rule `rule` was considered: its `match` did not fit (`applies` false), or it did
    /// and its conditions (the `Policy` steps before this one) made it deny or not.
    DenyRule {
        rule: usize,
        applies: bool,
        denied: bool,
    },
    /// Allow rule `from` refused and has `fall_through`: `to` is the rule tried next, or
    /// `None` when the first refusal stands (`why` says why no rule was tried).
    FallThrough {
        from: usize,
        to: Option<usize>,
        why: &'static str,
    },
}

#[cfg(test)]
mod tests;
