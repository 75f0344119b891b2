//! Why a request is refused: the 401 and 403 reason codes of the response contract.

/// The caller is not authenticated (401). Codes are part of the response contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Malformed,
    UnsupportedAlgorithm,
    UnknownKey,
    BadSignature,
    Expired,
    NotYetValid,
    IssuedInFuture,
    MissingExpiration,
    BadIssuer,
    BadAudience,
    LifetimeExceeded,
    TooLarge,
    KeysUnavailable,
    CertificateMissing,
    CertificateMismatch,
    CertificateBindingRequired,
    BindingUnchecked,
    DpopProofMissing,
    DpopProofMalformed,
    DpopProofAlgorithm,
    DpopProofBadSignature,
    DpopProofMismatch,
    DpopProofExpired,
    DpopProofIssuedInFuture,
    DpopProofReplayed,
    DpopReplayUnavailable,
    DpopNonceRequired,
    DpopKeyMismatch,
    DpopBoundAsBearer,
    DpopRequired,
}

impl AuthFailure {
    pub const ALL: [AuthFailure; 31] = [
        AuthFailure::Missing,
        AuthFailure::Malformed,
        AuthFailure::UnsupportedAlgorithm,
        AuthFailure::UnknownKey,
        AuthFailure::BadSignature,
        AuthFailure::Expired,
        AuthFailure::NotYetValid,
        AuthFailure::IssuedInFuture,
        AuthFailure::MissingExpiration,
        AuthFailure::BadIssuer,
        AuthFailure::BadAudience,
        AuthFailure::LifetimeExceeded,
        AuthFailure::TooLarge,
        AuthFailure::KeysUnavailable,
        AuthFailure::CertificateMissing,
        AuthFailure::CertificateMismatch,
        AuthFailure::CertificateBindingRequired,
        AuthFailure::BindingUnchecked,
        AuthFailure::DpopProofMissing,
        AuthFailure::DpopProofMalformed,
        AuthFailure::DpopProofAlgorithm,
        AuthFailure::DpopProofBadSignature,
        AuthFailure::DpopProofMismatch,
        AuthFailure::DpopProofExpired,
        AuthFailure::DpopProofIssuedInFuture,
        AuthFailure::DpopProofReplayed,
        AuthFailure::DpopReplayUnavailable,
        AuthFailure::DpopNonceRequired,
        AuthFailure::DpopKeyMismatch,
        AuthFailure::DpopBoundAsBearer,
        AuthFailure::DpopRequired,
    ];

    pub fn code(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Malformed => "malformed",
            AuthFailure::UnsupportedAlgorithm => "unsupported_algorithm",
            AuthFailure::UnknownKey => "unknown_key",
            AuthFailure::BadSignature => "bad_signature",
            AuthFailure::Expired => "expired",
            AuthFailure::NotYetValid => "not_yet_valid",
            AuthFailure::IssuedInFuture => "issued_in_future",
            AuthFailure::MissingExpiration => "missing_expiration",
            AuthFailure::BadIssuer => "bad_issuer",
            AuthFailure::BadAudience => "bad_audience",
            AuthFailure::LifetimeExceeded => "lifetime_exceeded",
            AuthFailure::TooLarge => "too_large",
            AuthFailure::KeysUnavailable => "keys_unavailable",
            AuthFailure::CertificateMissing => "certificate_missing",
            AuthFailure::CertificateMismatch => "certificate_mismatch",
            AuthFailure::CertificateBindingRequired => "certificate_binding_required",
            AuthFailure::BindingUnchecked => "binding_unchecked",
            AuthFailure::DpopProofMissing => "dpop_proof_missing",
            AuthFailure::DpopProofMalformed => "dpop_proof_malformed",
            AuthFailure::DpopProofAlgorithm => "dpop_proof_algorithm",
            AuthFailure::DpopProofBadSignature => "dpop_proof_bad_signature",
            AuthFailure::DpopProofMismatch => "dpop_proof_mismatch",
            AuthFailure::DpopProofExpired => "dpop_proof_expired",
            AuthFailure::DpopProofIssuedInFuture => "dpop_proof_issued_in_future",
            AuthFailure::DpopProofReplayed => "dpop_proof_replayed",
            AuthFailure::DpopReplayUnavailable => "dpop_replay_unavailable",
            AuthFailure::DpopNonceRequired => "dpop_nonce_required",
            AuthFailure::DpopKeyMismatch => "dpop_key_mismatch",
            AuthFailure::DpopBoundAsBearer => "dpop_bound_as_bearer",
            AuthFailure::DpopRequired => "dpop_required",
        }
    }

    /// Refusals that a later moment could turn into a pass (or the reverse).
    pub fn depends_on_time(self) -> bool {
        matches!(
            self,
            AuthFailure::Expired
                | AuthFailure::NotYetValid
                | AuthFailure::IssuedInFuture
                | AuthFailure::LifetimeExceeded
        )
    }

    /// The OAuth error code of the challenge and body: RFC 6750 §3.1 `invalid_token`, or RFC
    /// 9449 §7.1 and §8 `invalid_dpop_proof` and `use_dpop_nonce`.
    pub fn error(self) -> &'static str {
        match self {
            AuthFailure::DpopProofMissing
            | AuthFailure::DpopProofMalformed
            | AuthFailure::DpopProofAlgorithm
            | AuthFailure::DpopProofBadSignature
            | AuthFailure::DpopProofMismatch
            | AuthFailure::DpopProofExpired
            | AuthFailure::DpopProofIssuedInFuture
            | AuthFailure::DpopProofReplayed
            | AuthFailure::DpopReplayUnavailable => "invalid_dpop_proof",
            AuthFailure::DpopNonceRequired => "use_dpop_nonce",
            _ => "invalid_token",
        }
    }

    /// Refusals whose challenge uses the DPoP scheme whatever scheme the token came with: the
    /// client has to send a DPoP proof (again) to get in.
    pub fn asks_for_dpop(self) -> bool {
        self.error() != "invalid_token"
            || matches!(
                self,
                AuthFailure::DpopKeyMismatch
                    | AuthFailure::DpopBoundAsBearer
                    | AuthFailure::DpopRequired
            )
    }

    /// Fixed text for `error_description`: never echoes request data, and stays inside the
    /// characters RFC 6750 allows in a quoted auth-param.
    pub fn description(self) -> &'static str {
        match self {
            AuthFailure::Missing => "no bearer token in the request",
            AuthFailure::Malformed => "the token is not a well-formed signed JWT",
            AuthFailure::UnsupportedAlgorithm => "the token algorithm is not accepted for its key",
            AuthFailure::UnknownKey => "no key matches the token",
            AuthFailure::BadSignature => "the token signature is invalid",
            AuthFailure::Expired => "the token has expired",
            AuthFailure::NotYetValid => "the token is not valid yet",
            AuthFailure::IssuedInFuture => "the token was issued in the future",
            AuthFailure::MissingExpiration => "the token has no expiration",
            AuthFailure::BadIssuer => "the token issuer is not accepted",
            AuthFailure::BadAudience => "the token audience is not accepted",
            AuthFailure::LifetimeExceeded => "the token lifetime is too long",
            AuthFailure::TooLarge => "the token is too large",
            AuthFailure::KeysUnavailable => "the keys of the token issuer are not available yet",
            AuthFailure::CertificateMissing => "the token needs a client certificate",
            AuthFailure::CertificateMismatch => "the token is bound to another certificate",
            AuthFailure::CertificateBindingRequired => "the token is not certificate-bound",
            AuthFailure::BindingUnchecked => "the token binding cannot be checked here",
            AuthFailure::DpopProofMissing => "the request has no DPoP proof",
            AuthFailure::DpopProofMalformed => "the DPoP proof is not a well-formed proof",
            AuthFailure::DpopProofAlgorithm => "the DPoP proof algorithm is not accepted",
            AuthFailure::DpopProofBadSignature => "the DPoP proof signature is invalid",
            AuthFailure::DpopProofMismatch => "the DPoP proof is for another request or token",
            AuthFailure::DpopProofExpired => "the DPoP proof is too old",
            AuthFailure::DpopProofIssuedInFuture => "the DPoP proof was issued in the future",
            AuthFailure::DpopProofReplayed => "the DPoP proof was already used",
            AuthFailure::DpopReplayUnavailable => "the DPoP proof cannot be checked for replay now",
            AuthFailure::DpopNonceRequired => "the DPoP proof needs a current server nonce",
            AuthFailure::DpopKeyMismatch => "the token is not bound to the DPoP proof key",
            AuthFailure::DpopBoundAsBearer => "the token is DPoP-bound and needs the DPoP scheme",
            AuthFailure::DpopRequired => "the token is not DPoP-bound",
        }
    }
}

/// The caller is known (or the request is anonymous-allowed) but not permitted (403).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forbidden {
    MissingRole,
    MissingScope,
    ClaimMismatch,
    IpDenied,
    IpNotAllowed,
    IpNotBound,
    CountryDenied,
    CountryNotAllowed,
    CountryUnknown,
    NoMatchingRule,
    Denied,
    ForbiddenRole,
    ForbiddenScope,
    PrincipalMismatch,
    HeaderMismatch,
    HeaderAmbiguous,
    BindingMismatch,
}

impl Forbidden {
    pub const ALL: [Forbidden; 17] = [
        Forbidden::MissingRole,
        Forbidden::MissingScope,
        Forbidden::ClaimMismatch,
        Forbidden::IpDenied,
        Forbidden::IpNotAllowed,
        Forbidden::IpNotBound,
        Forbidden::CountryDenied,
        Forbidden::CountryNotAllowed,
        Forbidden::CountryUnknown,
        Forbidden::NoMatchingRule,
        Forbidden::Denied,
        Forbidden::ForbiddenRole,
        Forbidden::ForbiddenScope,
        Forbidden::PrincipalMismatch,
        Forbidden::HeaderMismatch,
        Forbidden::HeaderAmbiguous,
        Forbidden::BindingMismatch,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Forbidden::MissingRole => "missing_role",
            Forbidden::MissingScope => "missing_scope",
            Forbidden::ClaimMismatch => "claim_mismatch",
            Forbidden::IpDenied => "ip_denied",
            Forbidden::IpNotAllowed => "ip_not_allowed",
            Forbidden::IpNotBound => "ip_not_bound",
            Forbidden::CountryDenied => "country_denied",
            Forbidden::CountryNotAllowed => "country_not_allowed",
            Forbidden::CountryUnknown => "country_unknown",
            Forbidden::NoMatchingRule => "no_matching_rule",
            Forbidden::Denied => "denied",
            Forbidden::ForbiddenRole => "forbidden_role",
            Forbidden::ForbiddenScope => "forbidden_scope",
            Forbidden::PrincipalMismatch => "principal_mismatch",
            Forbidden::HeaderMismatch => "header_mismatch",
            Forbidden::HeaderAmbiguous => "header_ambiguous",
            Forbidden::BindingMismatch => "binding_mismatch",
        }
    }

    /// Refusals about what the token grants; RFC 6750 §3.1 calls them `insufficient_scope`.
    /// Network and country refusals are not about the token and carry no challenge.
    pub fn is_about_token(self) -> bool {
        matches!(
            self,
            Forbidden::MissingRole
                | Forbidden::MissingScope
                | Forbidden::ClaimMismatch
                | Forbidden::ForbiddenRole
                | Forbidden::ForbiddenScope
                | Forbidden::PrincipalMismatch
        )
    }

    pub fn error(self) -> &'static str {
        if self.is_about_token() {
            "insufficient_scope"
        } else {
            "access_denied"
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Forbidden::MissingRole => "the token lacks a required role",
            Forbidden::MissingScope => "the token lacks a required scope",
            Forbidden::ClaimMismatch => "a token claim does not have a required value",
            Forbidden::IpDenied => "the client address is denied",
            Forbidden::IpNotAllowed => "the client address is not allowed",
            Forbidden::IpNotBound => "the client address is not the one the token is bound to",
            Forbidden::CountryDenied => "the client country is denied",
            Forbidden::CountryNotAllowed => "the client country is not allowed",
            Forbidden::CountryUnknown => "the client country is unknown",
            Forbidden::NoMatchingRule => "no rule matches the request",
            Forbidden::Denied => "a deny rule refuses the request",
            Forbidden::ForbiddenRole => "the token has a forbidden role",
            Forbidden::ForbiddenScope => "the token has a forbidden scope",
            Forbidden::PrincipalMismatch => "the token principal is not accepted",
            Forbidden::HeaderMismatch => "a request header does not have a required value",
            Forbidden::HeaderAmbiguous => "a request header a rule reads is sent more than once",
            Forbidden::BindingMismatch => "the token is not for the resource the request names",
        }
    }
}

/// What one condition of a rule says of a request: it holds, it fails, or the request lacks
/// what is needed to decide (no client address, no valid country, a header sent twice). An
/// allow rule passes only what holds; a deny rule denies unless a condition fails (fail closed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    Holds,
    Fails(Forbidden),
    Unknown(Forbidden),
}

impl Judgement {
    /// An allow rule's reading: only `Holds` passes.
    pub fn as_result(self) -> Result<(), Forbidden> {
        match self {
            Judgement::Holds => Ok(()),
            Judgement::Fails(reason) | Judgement::Unknown(reason) => Err(reason),
        }
    }
}

/// A refusal of either kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Unauthorized(AuthFailure),
    Forbidden(Forbidden),
}

impl Refusal {
    pub fn status(self) -> u32 {
        match self {
            Refusal::Unauthorized(_) => 401,
            Refusal::Forbidden(_) => 403,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Refusal::Unauthorized(failure) => failure.code(),
            Refusal::Forbidden(forbidden) => forbidden.code(),
        }
    }
}
