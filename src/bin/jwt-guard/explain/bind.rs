//! Explain's lines for `bind` and for path patterns: what each binding compared, and how a
//! path fits (or not) a rule's `match.paths` / `match.not_paths`.

use jwt_guard::authz::request_binding::{BindSource, BindTarget};
use jwt_guard::config::{PathMatch, Rule};
use jwt_guard::request::path_pattern::PathPattern;

use super::explained::Explained;

/// `bind[index]`: both sides as the check saw them.
pub fn bind_line(explained: &Explained, rule: &Rule, index: usize, verdict: &str) -> String {
    let Some(entry) = rule.bind.as_ref().and_then(|b| b.entries.get(index)) else {
        return format!("bind[{index}]: {verdict}");
    };
    let issuer = explained
        .verdict
        .provider
        .and_then(|p| explained.config.providers.get(p))
        .map(|p| &p.token_rules.issuer);
    let identity = match (explained.verdict.claims.as_deref(), issuer) {
        (Some(claims), Some(issuer)) => entry.identity_value(claims, issuer),
        _ => None,
    };
    let matched = rule
        .matcher
        .as_ref()
        .and_then(|m| m.matching_path_pattern(explained.request));
    let requested = entry.request_value(explained.request, matched);
    let source = match &entry.source {
        BindSource::Claim(path) => format!("claim {}", path.name()),
        BindSource::IssuerParam(name) => format!("issuer {{{name}}}"),
    };
    let target = match &entry.target {
        BindTarget::PathParam { name, .. } => match (&rule.matcher, matched) {
            (Some(m), Some(i)) => match &m.path {
                PathMatch::Patterns(p) => format!(
                    "path {{{name}}} of {:?}",
                    p.get(i).map(PathPattern::text).unwrap_or_default()
                ),
                _ => format!("path {{{name}}}"),
            },
            _ => format!("path {{{name}}} (the path fits none of match.paths)"),
        },
        BindTarget::Header(name) => format!("header {name} (once)"),
    };
    let shown = |value: Option<&[u8]>| {
        value.map_or("(absent)".to_string(), |v| {
            format!("{:?}", String::from_utf8_lossy(v))
        })
    };
    format!(
        "bind[{index}] {source} = {} vs {target} = {}: {verdict}",
        shown(identity.map(str::as_bytes)),
        shown(requested)
    )
}

/// `paths` as written, for a `match` description.
pub fn patterns(patterns: &[PathPattern]) -> String {
    patterns
        .iter()
        .map(|p| format!("{:?}", p.text()))
        .collect::<Vec<_>>()
        .join(", ")
}
