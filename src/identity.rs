//! The verified identity sent upstream: chosen claims as request headers
//! (`claim_to_headers`) and the verified payload (`forward_payload_header`). Every configured
//! identity header is removed from every request first, so a client can never supply one.

use serde_json::Value;

use crate::claims::ClaimPath;
use crate::extract::HeaderChange;
use crate::request::Request;
use crate::verify::Claims;

/// One `claim_to_headers` entry, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimHeader {
    pub claim: ClaimPath,
    /// Lower-case.
    pub header: String,
}

/// What a provider sends upstream about a token it accepted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IdentityHeaders {
    pub claims: Vec<ClaimHeader>,
    /// Lower-case; carries the token's payload part (base64url, as in the token).
    pub payload: Option<String>,
}

impl IdentityHeaders {
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.claims
            .iter()
            .map(|c| c.header.as_str())
            .chain(self.payload.as_deref())
    }

    /// The headers to set for a token accepted with these `claims`. A missing claim (or a
    /// `null` one) sets no header; a value Envoy would refuse in a header sets none either.
    pub fn changes(&self, claims: &Claims, token: &str) -> Vec<HeaderChange> {
        let mut changes = Vec::new();
        for entry in &self.claims {
            if let Some(value) = entry.claim.lookup(claims).and_then(render)
                && is_header_value(&value)
            {
                changes.push(HeaderChange::Set(entry.header.clone(), value.into_bytes()));
            }
        }
        if let Some(header) = &self.payload
            && let Some(payload) = token.split('.').nth(1)
        {
            changes.push(HeaderChange::Set(
                header.clone(),
                payload.as_bytes().to_vec(),
            ));
        }
        changes
    }
}

/// Removes every configured identity header the request carries (none is ever trusted from a
/// client), before anything else changes the request.
pub fn sanitize<'n>(
    request: &Request<'_>,
    names: impl Iterator<Item = &'n str>,
    changes: &mut Vec<HeaderChange>,
) {
    for name in names {
        if request.has(name) && !changes.contains(&HeaderChange::Remove(name.to_string())) {
            changes.push(HeaderChange::Remove(name.to_string()));
        }
    }
}

/// Strings as they are, numbers and booleans as JSON text, arrays joined with `,` (each item
/// rendered the same way), objects as compact JSON; `null` is no value.
fn render(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(render)
                .collect::<Vec<_>>()
                .join(","),
        ),
        other => Some(other.to_string()),
    }
}

/// What Envoy accepts in a header value: no NUL, CR, LF or other control characters (a tab
/// is fine), and no surrounding white space it would strip anyway.
fn is_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
        && value.trim() == value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::headers;
    use serde_json::json;

    fn claims() -> Claims {
        json!({
            "sub": "alice",
            "realm_access": {"roles": ["admin", "user"]},
            "n": 42, "f": 1.5, "b": true, "nil": null,
            "obj": {"a": 1, "b": [1, "x"]},
            "mixed": ["a", 1, true, {"k": "v"}, null],
            "bad": "line\r\nx-injected: 1",
            "padded": " x ",
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn config(pairs: &[(&str, &str)]) -> IdentityHeaders {
        IdentityHeaders {
            claims: pairs
                .iter()
                .map(|(claim, header)| ClaimHeader {
                    claim: ClaimPath::parse(claim).unwrap(),
                    header: header.to_string(),
                })
                .collect(),
            payload: Some("x-jwt-payload".into()),
        }
    }

    #[test]
    fn claims_are_rendered_as_the_contract_says() {
        let identity = config(&[
            ("sub", "x-sub"),
            ("realm_access.roles", "x-roles"),
            ("n", "x-n"),
            ("f", "x-f"),
            ("b", "x-b"),
            ("nil", "x-nil"),
            ("missing", "x-missing"),
            ("obj", "x-obj"),
            ("mixed", "x-mixed"),
            ("bad", "x-bad"),
            ("padded", "x-padded"),
        ]);
        let set =
            |name: &str, value: &str| HeaderChange::Set(name.into(), value.as_bytes().to_vec());
        assert_eq!(
            identity.changes(&claims(), "h.cGF5bG9hZA.s"),
            vec![
                set("x-sub", "alice"),
                set("x-roles", "admin,user"),
                set("x-n", "42"),
                set("x-f", "1.5"),
                set("x-b", "true"),
                set("x-obj", r#"{"a":1,"b":[1,"x"]}"#),
                set("x-mixed", r#"a,1,true,{"k":"v"}"#),
                set("x-jwt-payload", "cGF5bG9hZA"),
            ]
        );
    }

    #[test]
    fn client_copies_are_removed_once() {
        let identity = config(&[("sub", "x-sub"), ("n", "x-n")]);
        let h = headers(&[
            ("x-sub", "mallory"),
            ("x-jwt-payload", "forged"),
            ("x-sub", "eve"),
        ]);
        let mut changes = Vec::new();
        sanitize(&Request::bare(&h), identity.names(), &mut changes);
        assert_eq!(
            changes,
            vec![
                HeaderChange::Remove("x-sub".into()),
                HeaderChange::Remove("x-jwt-payload".into())
            ]
        );
    }
}
