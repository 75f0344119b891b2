//! What `check` and `explain` share: a configuration compiled as the filter compiles it, and a
//! rule's `match` in words. Both commands import this module; it imports neither.

use jwt_guard::config::{Config, Matcher, PathMatch};

/// Compiles a configuration; `Err` is the line the filter logs when it refuses it.
pub fn compile(json: &str) -> Result<Config, String> {
    Config::from_json(json.as_bytes())
        .map_err(|err| format!("jwt-guard: invalid configuration: {err}"))
}

/// A rule's `match`; `None`: the rule has none and applies only to routes that name it.
pub fn describe_match(matcher: Option<&Matcher>) -> String {
    let Some(matcher) = matcher else {
        return "no match: only routes whose metadata names it".to_string();
    };
    let mut parts = Vec::new();
    match &matcher.path {
        PathMatch::Any => {}
        PathMatch::Prefix(prefix) => parts.push(format!("prefix {prefix:?}")),
        PathMatch::Exact(path) => parts.push(format!("path {path:?}")),
        PathMatch::Patterns(patterns) => parts.push(format!(
            "paths [{}]",
            crate::explain::bind::patterns(patterns)
        )),
    }
    if !matcher.methods.is_empty() {
        parts.push(format!("methods [{}]", matcher.methods.join(", ")));
    }
    if !matcher.hosts.is_empty() {
        parts.push(format!("hosts [{}]", matcher.hosts.join(", ")));
    }
    if let Some(name) = &matcher.route_name {
        parts.push(format!("route_name {name:?}"));
    }
    if !matcher.not_paths.is_empty() {
        parts.push(format!(
            "not_paths [{}]",
            crate::explain::bind::patterns(&matcher.not_paths)
        ));
    }
    if !matcher.not_methods.is_empty() {
        parts.push(format!("not_methods [{}]", matcher.not_methods.join(", ")));
    }
    if !matcher.not_hosts.is_empty() {
        parts.push(format!("not_hosts [{}]", matcher.not_hosts.join(", ")));
    }
    if parts.is_empty() {
        "any request".to_string()
    } else {
        parts.join(", ")
    }
}
