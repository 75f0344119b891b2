//! The claims of a verified token — the only claims policy and identity headers ever read —
//! and reading them by name: dotted paths into nested objects, and string sets from claims that
//! are either JSON arrays or space-separated strings (OAuth `scope`).

use std::ops::Deref;

use serde_json::{Map, Value};

/// The claims of a token whose signature, key and registered claims authentication checked.
/// Only [`crate::authn`] can build one: everything downstream (policy, identity headers,
/// outcomes) takes this type, so claims that were never verified cannot reach them. Read-only.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedClaims(Map<String, Value>);

impl VerifiedClaims {
    /// For authentication alone, once every check has passed.
    pub(in crate::authn) fn new(claims: Map<String, Value>) -> VerifiedClaims {
        VerifiedClaims(claims)
    }

    /// VerifiedClaims as if verified, for unit tests of the stages after authentication.
    #[cfg(test)]
    pub(crate) fn for_tests(claims: Map<String, Value>) -> VerifiedClaims {
        VerifiedClaims(claims)
    }
}

impl Deref for VerifiedClaims {
    type Target = Map<String, Value>;

    fn deref(&self) -> &Map<String, Value> {
        &self.0
    }
}

/// A claim name compiled once. `resource_access.api.roles` walks nested objects; a name that
/// exists verbatim at the top level (such as a namespaced `https://example.com/roles`) wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath {
    name: String,
    segments: Vec<String>,
}

impl ClaimPath {
    pub fn parse(name: &str) -> Option<ClaimPath> {
        if name.split('.').any(str::is_empty) {
            return None;
        }
        Some(ClaimPath {
            name: name.to_string(),
            segments: name.split('.').map(str::to_string).collect(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn lookup<'c>(&self, claims: &'c VerifiedClaims) -> Option<&'c Value> {
        if let Some(value) = claims.get(&self.name) {
            return Some(value);
        }
        let (first, rest) = self.segments.split_first()?;
        let mut value = claims.get(first)?;
        for segment in rest {
            value = value.as_object()?.get(segment)?;
        }
        Some(value)
    }

    /// The claim as a set of strings: array items that are strings, or the words of a string.
    pub fn strings<'c>(&self, claims: &'c VerifiedClaims) -> Vec<&'c str> {
        match self.lookup(claims) {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            Some(Value::String(text)) => text.split_ascii_whitespace().collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims() -> VerifiedClaims {
        VerifiedClaims::for_tests(
            json!({
                "roles": ["admin", "user"],
                "scope": "orders:read  orders:write",
                "realm_access": {"roles": ["ops"]},
                "resource_access": {"api": {"roles": ["reader"]}},
                "https://example.com/roles": ["namespaced"],
                "n": 3
            })
            .as_object()
            .unwrap()
            .clone(),
        )
    }

    #[test]
    fn reads_arrays_strings_and_nested_paths() {
        let claims = claims();
        let cases: [(&str, Vec<&str>); 7] = [
            ("roles", vec!["admin", "user"]),
            ("scope", vec!["orders:read", "orders:write"]),
            ("realm_access.roles", vec!["ops"]),
            ("resource_access.api.roles", vec!["reader"]),
            ("https://example.com/roles", vec!["namespaced"]),
            ("n", vec![]),
            ("missing.path", vec![]),
        ];
        for (name, expected) in cases {
            assert_eq!(
                ClaimPath::parse(name).unwrap().strings(&claims),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn refuses_empty_segments() {
        for name in ["", "a..b", ".a", "a."] {
            assert!(ClaimPath::parse(name).is_none(), "{name}");
        }
    }

    /// The name is kept as configured (the command-line tool's `explain` prints it).
    #[test]
    fn keeps_the_configured_name() {
        for name in [
            "roles",
            "resource_access.api.roles",
            "https://example.com/roles",
        ] {
            assert_eq!(ClaimPath::parse(name).unwrap().name(), name);
        }
    }
}
