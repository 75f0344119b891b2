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
}

impl AuthFailure {
    pub const ALL: [AuthFailure; 18] = [
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
}

impl Forbidden {
    pub const ALL: [Forbidden; 10] = [
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
        }
    }

    /// Refusals about what the token grants; RFC 6750 §3.1 calls them `insufficient_scope`.
    /// Network and country refusals are not about the token and carry no challenge.
    pub fn is_about_token(self) -> bool {
        matches!(
            self,
            Forbidden::MissingRole | Forbidden::MissingScope | Forbidden::ClaimMismatch
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
