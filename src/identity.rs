//! The verified identity sent upstream: chosen claims as request headers
//! (`claim_to_headers`) and the verified payload (`forward_payload_header`). Every configured
//! identity header is removed from every request first, so a client can never supply one.

use serde_json::Value;

/// Set on requests a dry run lets through; a client-sent copy is always removed first.
pub const DRY_RUN_HEADER: &str = "x-jwt-guard-dry-run";

use crate::authn::claims::ClaimPath;
use crate::authn::claims::VerifiedClaims;
use crate::request::Request;
use crate::token::extract::HeaderChange;

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
    pub fn names(&self) -> impl Iterator<Item = &str> + Clone {
        self.claims
            .iter()
            .map(|c| c.header.as_str())
            .chain(self.payload.as_deref())
    }

    /// The headers to set for a token accepted with these `claims`. A missing claim (or a
    /// `null` one) sets no header; a value Envoy would refuse in a header sets none either.
    pub fn changes(&self, claims: &VerifiedClaims, token: &str) -> Vec<HeaderChange> {
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

/// Removes every request header an upstream could read as one of `names` (none is ever
/// trusted from a client), before anything else changes the request: the name itself and every
/// spelling that differs only in case or in `_` for `-` (`x_user_sub` for `x-user-sub`), which
/// CGI/WSGI-style servers map to the same variable. `names` are lower-case, without `_`.
pub fn sanitize<'n>(
    request: &Request<'_>,
    names: impl Iterator<Item = &'n str> + Clone,
    changes: &mut Vec<HeaderChange>,
) {
    for (sent, _) in request.headers {
        if names.clone().any(|name| reads_as(sent, name))
            && !changes
                .iter()
                .any(|c| matches!(c, HeaderChange::Remove(n) if n == sent))
        {
            changes.push(HeaderChange::Remove(sent.clone()));
        }
    }
}

/// Whether an upstream may read header `sent` as `name` (lower-case, no `_`).
pub fn reads_as(sent: &str, name: &str) -> bool {
    sent.len() == name.len()
        && sent.bytes().zip(name.bytes()).all(|(s, n)| {
            let s = if s == b'_' {
                b'-'
            } else {
                s.to_ascii_lowercase()
            };
            s == n
        })
}

/// Strings as they are, numbers and booleans as JSON text, objects as compact JSON; `null` is
/// no value. Arrays are joined with `,` only when that can be read back as the same items: each
/// item a string, number or boolean whose text is not empty and holds no `,` and no surrounding
/// white space. Otherwise the claim sets no header, so two different lists never render alike
/// (`["reader,admin"]` and `["reader", "admin"]`; `["a", null]` and `["a"]`).
fn render(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        Value::Array(items) => {
            let mut joined = String::new();
            for (index, item) in items.iter().enumerate() {
                let text = match item {
                    Value::String(text) => text.clone(),
                    Value::Number(_) | Value::Bool(_) => item.to_string(),
                    Value::Null | Value::Array(_) | Value::Object(_) => return None,
                };
                if text.is_empty() || text.contains(',') || text.trim() != text {
                    return None;
                }
                if index > 0 {
                    joined.push(',');
                }
                joined.push_str(&text);
            }
            Some(joined)
        }
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

    fn claims() -> VerifiedClaims {
        VerifiedClaims::for_tests(
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
            .clone(),
        )
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
                set("x-jwt-payload", "cGF5bG9hZA"),
            ]
        );
    }

    #[test]
    fn different_lists_never_render_alike() {
        let identity = config(&[("roles", "x-roles")]);
        let rendered = |roles: Value| {
            let claims = json!({ "roles": roles }).as_object().unwrap().clone();
            let claims = VerifiedClaims::for_tests(claims);
            identity
                .changes(&claims, "h.p.s")
                .into_iter()
                .find_map(|c| match c {
                    HeaderChange::Set(name, value) if name == "x-roles" => {
                        Some(String::from_utf8(value).unwrap())
                    }
                    _ => None,
                })
        };
        let cases: [(Value, Option<&str>); 14] = [
            (json!(["reader", "admin"]), Some("reader,admin")),
            (json!(["reader,admin"]), None),
            (json!(["reader", "admin,x"]), None),
            (json!(["a", null]), None),
            (json!(["a", ""]), None),
            (json!([""]), None),
            (json!(["a", " admin"]), None),
            (json!(["a", ["b"]]), None),
            (json!(["a", {"k": "v"}]), None),
            (json!([1, true, "x"]), Some("1,true,x")),
            (json!([]), Some("")),
            (json!(["a"]), Some("a")),
            (json!("reader"), Some("reader")),
            (json!(null), None),
        ];
        for (roles, expected) in cases {
            assert_eq!(rendered(roles.clone()).as_deref(), expected, "{roles}");
        }
    }

    #[test]
    fn spellings_an_upstream_reads_as_an_identity_header_are_removed() {
        let identity = config(&[("sub", "x-user-sub")]);
        let h = headers(&[
            ("x_user_sub", "admin"),
            ("x-user_sub", "admin"),
            ("X_USER-SUB", "admin"),
            ("x-user-sub", "admin"),
            ("x_jwt_payload", "forged"),
            ("x-user-subs", "kept"),
            ("x__user-sub", "kept"),
        ]);
        let mut changes = Vec::new();
        sanitize(&Request::bare(&h), identity.names(), &mut changes);
        let removed: Vec<&str> = changes
            .iter()
            .map(|c| match c {
                HeaderChange::Remove(name) => name.as_str(),
                HeaderChange::Set(..) => "set",
            })
            .collect();
        assert_eq!(
            removed,
            [
                "x_user_sub",
                "x-user_sub",
                "X_USER-SUB",
                "x-user-sub",
                "x_jwt_payload"
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
