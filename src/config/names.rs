//! What a name must look like to be used where it goes: a header, a stat, a property.

/// RFC 9110 token characters, so the name can be used as a header name.
pub(super) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A name that can stand in an Envoy stat name as one element (no `.`), and in Prometheus.
pub(super) fn is_stat_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub(super) fn is_unnamed_label(name: &str) -> bool {
    name.strip_prefix("rule_")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A Wasm property name: Envoy keeps it as filter state `wasm.<name>`.
pub(super) fn is_property_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

/// Safe inside a quoted-string of `WWW-Authenticate`.
pub(super) fn is_quotable(text: &str) -> bool {
    text.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}
