//! The request and principal conditions of issue #19: Istio's string patterns, `principals`
//! (`<iss>/<sub>` of the verified token) and `headers`.

use serde_json::Value;

use crate::authn::claims::VerifiedClaims;
use crate::reason::{Forbidden, Judgement};
use crate::request::Request;

/// One of Istio's string forms: exact, `prefix*`, `*suffix`, or `*` alone (anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Any,
    Exact(String),
    Prefix(String),
    Suffix(String),
}

impl Pattern {
    /// `None` for an empty text or a `*` that is neither alone, first nor last (once).
    pub fn parse(text: &str) -> Option<Pattern> {
        let pattern = match (text.strip_prefix('*'), text.strip_suffix('*')) {
            _ if text == "*" => Pattern::Any,
            (Some(suffix), _) => Pattern::Suffix(suffix.to_string()),
            (None, Some(prefix)) => Pattern::Prefix(prefix.to_string()),
            (None, None) => Pattern::Exact(text.to_string()),
        };
        let rest = match &pattern {
            Pattern::Any => "",
            Pattern::Exact(s) | Pattern::Prefix(s) | Pattern::Suffix(s) => s,
        };
        (!text.is_empty() && !rest.contains('*')).then_some(pattern)
    }

    pub fn matches(&self, value: &[u8]) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(s) => value == s.as_bytes(),
            Pattern::Prefix(s) => value.starts_with(s.as_bytes()),
            Pattern::Suffix(s) => value.ends_with(s.as_bytes()),
        }
    }

    pub fn text(&self) -> String {
        match self {
            Pattern::Any => "*".to_string(),
            Pattern::Exact(s) => s.clone(),
            Pattern::Prefix(s) => format!("{s}*"),
            Pattern::Suffix(s) => format!("*{s}"),
        }
    }
}

/// `principals`: the caller's `<iss>/<sub>` must fit one of `any` (when given) and none of
/// `none`. `*` alone fits every verified token, even one without a string `iss` or `sub`;
/// other patterns need both (such a token has no principal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalRule {
    pub any: Vec<Pattern>,
    pub none: Vec<Pattern>,
}

impl PrincipalRule {
    /// `claims`: `None` for an anonymous caller (`any` fails, `none` holds).
    pub fn judge(&self, claims: Option<&VerifiedClaims>) -> Judgement {
        let principal = claims.map(principal);
        let fits = |pattern: &Pattern| match (pattern, &principal) {
            (_, None) => false,
            (Pattern::Any, Some(_)) => true,
            (_, Some(None)) => false,
            (pattern, Some(Some(text))) => pattern.matches(text.as_bytes()),
        };
        let ok = (self.any.is_empty() || self.any.iter().any(fits)) && !self.none.iter().any(fits);
        if ok {
            Judgement::Holds
        } else {
            Judgement::Fails(Forbidden::PrincipalMismatch)
        }
    }
}

/// The token's principal, `<iss>/<sub>`, when both are strings.
pub fn principal(claims: &VerifiedClaims) -> Option<String> {
    match (claims.get("iss"), claims.get("sub")) {
        (Some(Value::String(iss)), Some(Value::String(sub))) => Some(format!("{iss}/{sub}")),
        _ => None,
    }
}

/// `headers[i]`: a request header (lower-case name) present or absent, with a value fitting one
/// of `values` and none of `not_values`. A header sent more than once is ambiguous (an
/// upstream may read either copy): unknown, never a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderCondition {
    pub name: String,
    pub present: Option<bool>,
    pub values: Vec<Pattern>,
    pub not_values: Vec<Pattern>,
}

impl HeaderCondition {
    pub fn judge(&self, request: &Request<'_>) -> Judgement {
        let mut copies = request
            .headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(&self.name))
            .map(|(_, value)| value.as_slice());
        let value = copies.next();
        if value.is_some() && copies.next().is_some() {
            return Judgement::Unknown(Forbidden::HeaderAmbiguous);
        }
        let ok = match value {
            None => self.present != Some(true) && self.values.is_empty(),
            // A missing header has none of the forbidden values, as a missing claim.
            Some(value) => {
                self.present != Some(false)
                    && (self.values.is_empty() || self.values.iter().any(|p| p.matches(value)))
                    && !self.not_values.iter().any(|p| p.matches(value))
            }
        };
        if ok {
            Judgement::Holds
        } else {
            Judgement::Fails(Forbidden::HeaderMismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: serde_json::Value) -> VerifiedClaims {
        VerifiedClaims::for_tests(value.as_object().cloned().unwrap_or_default())
    }

    fn patterns(list: &[&str]) -> Vec<Pattern> {
        list.iter().map(|p| Pattern::parse(p).unwrap()).collect()
    }

    #[test]
    fn patterns_are_istio_forms() {
        for bad in ["", "a*b", "**", "*a*", "a**"] {
            assert_eq!(Pattern::parse(bad), None, "{bad}");
        }
        let cases = [
            ("*", "", true),
            ("abc", "abc", true),
            ("abc", "abcd", false),
            ("ab*", "abcd", true),
            ("ab*", "ab", true),
            ("ab*", "a", false),
            ("*cd", "abcd", true),
            ("*cd", "abce", false),
            ("ABC", "abc", false),
        ];
        for (pattern, value, expected) in cases {
            let parsed = Pattern::parse(pattern).unwrap();
            assert_eq!(
                parsed.matches(value.as_bytes()),
                expected,
                "{pattern} {value}"
            );
            assert_eq!(parsed.text(), pattern);
        }
    }

    #[test]
    fn principals_any_none_and_anonymous() {
        let alice = claims(json!({"iss": "https://idp.example", "sub": "alice"}));
        let no_sub = claims(json!({"iss": "https://idp.example"}));
        let rule = |any: &[&str], none: &[&str]| PrincipalRule {
            any: patterns(any),
            none: patterns(none),
        };
        let holds = Judgement::Holds;
        let fails = Judgement::Fails(Forbidden::PrincipalMismatch);
        let cases = [
            (rule(&["*"], &[]), Some(&alice), holds),
            (rule(&["*"], &[]), Some(&no_sub), holds),
            (rule(&["*"], &[]), None, fails),
            (
                rule(&["https://idp.example/alice"], &[]),
                Some(&alice),
                holds,
            ),
            (rule(&["https://idp.example/*"], &[]), Some(&alice), holds),
            (rule(&["https://idp.example/*"], &[]), Some(&no_sub), fails),
            (rule(&["*/bob"], &[]), Some(&alice), fails),
            (rule(&[], &["*/alice"]), Some(&alice), fails),
            (rule(&[], &["*/alice"]), Some(&no_sub), holds),
            (rule(&[], &["*"]), Some(&no_sub), fails),
            (rule(&[], &["*"]), None, holds),
            (rule(&["*"], &["*/alice"]), Some(&alice), fails),
        ];
        for (index, (rule, who, expected)) in cases.into_iter().enumerate() {
            assert_eq!(rule.judge(who), expected, "case {index}");
        }
    }

    #[test]
    fn headers_present_values_not_values_and_twice() {
        let condition =
            |present: Option<bool>, values: &[&str], not_values: &[&str]| HeaderCondition {
                name: "x-tenant".into(),
                present,
                values: patterns(values),
                not_values: patterns(not_values),
            };
        let judge = |c: &HeaderCondition, headers: &[(&str, &str)]| {
            let headers: Vec<(String, Vec<u8>)> = headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect();
            c.judge(&Request::bare(&headers))
        };
        let holds = Judgement::Holds;
        let fails = Judgement::Fails(Forbidden::HeaderMismatch);
        let one = [("x-tenant", "acme-1")];
        let none: [(&str, &str); 0] = [];
        let twice = [("x-tenant", "acme"), ("X-Tenant", "acme")];
        let cases = [
            (condition(Some(true), &[], &[]), &one[..], holds),
            (condition(Some(true), &[], &[]), &none[..], fails),
            (condition(Some(false), &[], &[]), &none[..], holds),
            (condition(Some(false), &[], &[]), &one[..], fails),
            (condition(None, &["acme*"], &[]), &one[..], holds),
            (condition(None, &["acme"], &[]), &one[..], fails),
            (condition(None, &["*"], &[]), &none[..], fails),
            (condition(None, &[], &["*-1"]), &one[..], fails),
            (condition(None, &[], &["*-1"]), &none[..], holds),
            (condition(None, &["acme*"], &["*-2"]), &one[..], holds),
            (
                condition(Some(true), &[], &[]),
                &twice[..],
                Judgement::Unknown(Forbidden::HeaderAmbiguous),
            ),
        ];
        for (index, (c, headers, expected)) in cases.into_iter().enumerate() {
            assert_eq!(judge(&c, headers), expected, "case {index}");
        }
    }
}
