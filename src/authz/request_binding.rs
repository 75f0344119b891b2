//! `rules[i].bind`: the token must be for the resource the request names. Each entry compares
//! a claim (or a value of the issuer template's placeholder) with a path parameter of the
//! rule's `match.paths` (or a request header), byte for byte. It runs last among an allow
//! rule's conditions: the identity it reads has passed every other check.

use serde_json::Value;

use crate::authn::claims::{ClaimPath, VerifiedClaims};
use crate::authn::issuer::Issuer;
use crate::reason::{Forbidden, Judgement};
use crate::request::Request;
use crate::request::path_pattern::path_segment;
use crate::trace::{PolicyCheck, Step, Trace};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestBinding {
    pub entries: Vec<BindEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindEntry {
    pub source: BindSource,
    pub target: BindTarget,
}

/// The identity side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindSource {
    /// A claim that must be a string.
    Claim(ClaimPath),
    /// A placeholder of the accepting provider's issuer template, read from the verified `iss`.
    IssuerParam(String),
}

/// The request side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindTarget {
    /// A path parameter; `positions[i]` is its segment in the rule's `match.paths[i]` (each
    /// entry captures it: checked at configuration).
    PathParam { name: String, positions: Vec<usize> },
    /// A header (lower-case); sent more than once, it fails.
    Header(String),
}

impl RequestBinding {
    /// `matched_path`: the first of the rule's `match.paths` that the request's path fits
    /// (`None` when none does, as for a rule a route bound by name: then no path parameter
    /// exists and a binding to one fails).
    pub fn check_traced<T: Trace>(
        &self,
        rule: usize,
        claims: &VerifiedClaims,
        issuer: &Issuer,
        request: &Request<'_>,
        matched_path: Option<usize>,
        trace: &mut T,
    ) -> Result<(), Forbidden> {
        for (index, entry) in self.entries.iter().enumerate() {
            let bound = entry.holds(claims, issuer, request, matched_path);
            let result = if bound {
                Judgement::Holds
            } else {
                Judgement::Fails(Forbidden::BindingMismatch)
            };
            trace.record(|| Step::Policy {
                rule,
                check: PolicyCheck::Bind(index),
                result,
            });
            result.as_result()?;
        }
        Ok(())
    }
}

impl BindEntry {
    fn holds(
        &self,
        claims: &VerifiedClaims,
        issuer: &Issuer,
        request: &Request<'_>,
        matched_path: Option<usize>,
    ) -> bool {
        let (Some(identity), Some(requested)) = (
            self.identity_value(claims, issuer),
            self.request_value(request, matched_path),
        ) else {
            return false;
        };
        identity.as_bytes() == requested
    }

    /// The identity side's value, when present (a claim that is not a string is absent).
    pub fn identity_value<'c>(
        &self,
        claims: &'c VerifiedClaims,
        issuer: &Issuer,
    ) -> Option<&'c str> {
        match &self.source {
            BindSource::Claim(path) => match path.lookup(claims) {
                Some(Value::String(text)) => Some(text),
                _ => None,
            },
            BindSource::IssuerParam(name) => {
                let iss = claims.get("iss").and_then(Value::as_str)?;
                issuer.param(iss, name)
            }
        }
    }

    /// The request side's value, when present exactly once.
    pub fn request_value<'r>(
        &self,
        request: &Request<'r>,
        matched_path: Option<usize>,
    ) -> Option<&'r [u8]> {
        match &self.target {
            BindTarget::PathParam { positions, .. } => {
                let position = *positions.get(matched_path?)?;
                path_segment(request.path(), position)
            }
            BindTarget::Header(name) => {
                let mut values = request
                    .headers
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, v)| v.as_slice());
                let first = values.next()?;
                // Two copies: which one an upstream reads is anybody's guess.
                values.next().is_none().then_some(first)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::headers;
    use serde_json::json;

    fn entra() -> Issuer {
        let params = vec![("tenant".to_string(), vec!["*".to_string()])];
        Issuer::parse("https://login.example.com/{tenant}/v2.0", Some(params)).unwrap()
    }

    fn binding() -> RequestBinding {
        let claim = |name: &str| BindSource::Claim(ClaimPath::parse(name).unwrap());
        RequestBinding {
            entries: vec![
                BindEntry {
                    source: claim("tenant"),
                    // In `/tenants/{tenant}/…` and `/v2/{region}/tenants/{tenant}`.
                    target: BindTarget::PathParam {
                        name: "tenant".into(),
                        positions: vec![1, 3],
                    },
                },
                BindEntry {
                    source: BindSource::IssuerParam("tenant".into()),
                    target: BindTarget::Header("x-tenant".into()),
                },
            ],
        }
    }

    fn judge(
        path: &str,
        matched: Option<usize>,
        tenant_header: &[&str],
        claims: serde_json::Value,
    ) -> Result<(), Forbidden> {
        let mut pairs = vec![(":path", path)];
        pairs.extend(tenant_header.iter().map(|v| ("x-tenant", *v)));
        let h = headers(&pairs);
        let claims = VerifiedClaims::for_tests(claims.as_object().unwrap().clone());
        let mut steps = Vec::new();
        let result = binding().check_traced(
            0,
            &claims,
            &entra(),
            &Request::bare(&h),
            matched,
            &mut steps,
        );
        assert_eq!(
            steps
                .last()
                .map(|s| matches!(s, Step::Policy { result: r, .. } if r.as_result() == result)),
            Some(true)
        );
        result
    }

    #[test]
    fn decision_table() {
        let iss = "https://login.example.com/acme/v2.0";
        let ok = json!({"iss": iss, "tenant": "acme"});
        let mismatch = Err(Forbidden::BindingMismatch);
        type Case<'a> = (
            &'a str,
            Option<usize>,
            &'a [&'a str],
            serde_json::Value,
            Result<(), Forbidden>,
        );
        let cases: Vec<Case> = vec![
            (
                "/tenants/acme/orders",
                Some(0),
                &["acme"],
                ok.clone(),
                Ok(()),
            ),
            (
                "/v2/eu/tenants/acme?x=1",
                Some(1),
                &["acme"],
                ok.clone(),
                Ok(()),
            ),
            // Another tenant in the path, the header or the token.
            (
                "/tenants/globex/orders",
                Some(0),
                &["acme"],
                ok.clone(),
                mismatch,
            ),
            (
                "/tenants/acme/orders",
                Some(0),
                &["globex"],
                ok.clone(),
                mismatch,
            ),
            (
                "/tenants/acme/orders",
                Some(0),
                &["acme"],
                json!({"iss": iss, "tenant": "globex"}),
                mismatch,
            ),
            // Case and encoding are not folded.
            (
                "/tenants/ACME/orders",
                Some(0),
                &["acme"],
                ok.clone(),
                mismatch,
            ),
            (
                "/tenants/ac%6de/orders",
                Some(0),
                &["acme"],
                ok.clone(),
                mismatch,
            ),
            // A side missing, twice, or not a string.
            (
                "/tenants/acme/orders",
                None,
                &["acme"],
                ok.clone(),
                mismatch,
            ),
            ("/tenants/acme/orders", Some(0), &[], ok.clone(), mismatch),
            (
                "/tenants/acme/orders",
                Some(0),
                &["acme", "acme"],
                ok.clone(),
                mismatch,
            ),
            (
                "/tenants/acme/orders",
                Some(0),
                &["acme"],
                json!({"iss": iss}),
                mismatch,
            ),
            (
                "/tenants/acme/orders",
                Some(0),
                &["acme"],
                json!({"iss": iss, "tenant": ["acme"]}),
                mismatch,
            ),
            (
                "/tenants/acme/orders",
                Some(0),
                &["acme"],
                json!({"iss": "https://other/acme/v2.0", "tenant": "acme"}),
                mismatch,
            ),
            (
                "/tenants/acme/orders",
                Some(0),
                &["acme"],
                json!({"tenant": "acme"}),
                mismatch,
            ),
        ];
        for (path, matched, header, claims, expected) in cases {
            assert_eq!(
                judge(path, matched, header, claims.clone()),
                expected,
                "{path} {matched:?} {header:?} {claims}"
            );
        }
    }
}
