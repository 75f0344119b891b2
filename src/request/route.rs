//! Which rule a request's route selects: the binding a route's `filter_metadata.jwt_guard`
//! makes, and the selection the decision arrives at (by that binding, or in order).

/// The member of a route's `filter_metadata.jwt_guard` that names its rule.
pub const ROUTE_RULE_MEMBER: &str = "rule";

/// One member of a route's `filter_metadata.jwt_guard`, as the host could read it: `None` for a
/// value that is not readable as text (null, a list, a struct, or unreadable).
pub type MetadataMember<'m> = (&'m str, Option<&'m [u8]>);

/// The rule a route binds, from its `filter_metadata.jwt_guard` namespace. `None` only when the
/// route has no such namespace (ordered matching). A namespace that is there always binds: to
/// the name in its one member `rule`, or, when that is missing, empty, not text, or joined by
/// any other member, to the empty name, which no rule has — so the request is refused (403
/// `no_matching_rule`). A binding a template rendered as `rule: ""` or `rule: null` must
/// never fall back to ordered matching, where a catch-all anonymous rule may let it through.
pub fn route_binding<'m>(namespace: Option<&[MetadataMember<'m>]>) -> Option<&'m [u8]> {
    let members = namespace?;
    Some(match members {
        [(ROUTE_RULE_MEMBER, Some(name))] => name,
        _ => b"",
    })
}

/// The log line for a route bound to a rule the configuration lacks (`name` empty: a namespace
/// that binds no rule). Hosts log it once per name; every such request is refused.
pub fn unknown_binding_warning(name: &[u8]) -> String {
    let what = if name.is_empty() {
        "route metadata filter_metadata.jwt_guard binds no rule (its one member `rule` must be a rule's name; it is missing, empty, null, not text, or has other members beside it)".to_string()
    } else {
        format!(
            "route metadata names rule {:?}, which this configuration does not have",
            String::from_utf8_lossy(name)
        )
    };
    format!("jwt-guard: {what}; its requests are refused (403 no_matching_rule)")
}

/// How the rule for a request is found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    /// This rule (an index into `Config::rules`).
    Rule(usize),
    /// No rule matches (or the host is ambiguous where rules match on hosts).
    NoRule,
    /// The route's metadata names a rule that does not exist: fail closed.
    UnknownRouteRule,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_metadata_namespace_always_binds() {
        let name: &[u8] = b"admins";
        type Case<'c> = (Option<&'c [MetadataMember<'c>]>, Option<&'c [u8]>);
        let cases: [Case; 9] = [
            (None, None),
            (Some(&[("rule", Some(name))]), Some(b"admins")),
            (Some(&[("rule", Some(b""))]), Some(b"")),
            (Some(&[("rule", Some(b"  "))]), Some(b"  ")),
            (Some(&[("rule", None)]), Some(b"")),
            (Some(&[]), Some(b"")),
            (Some(&[("rules", Some(name))]), Some(b"")),
            (Some(&[("rule", Some(name)), ("x", Some(b"1"))]), Some(b"")),
            (Some(&[("Rule", Some(name))]), Some(b"")),
        ];
        for (namespace, expected) in cases {
            assert_eq!(route_binding(namespace), expected, "{namespace:?}");
        }
    }
}
