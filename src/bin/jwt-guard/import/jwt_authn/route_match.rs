//! A RequirementRule's `match` (RouteMatch) → jwt-guard `match`.

use serde_json::{Map, Value, json};

use crate::import::FieldReport;

/// A RouteMatch as jwt-guard matches (one or two: `path_separated_prefix` needs two), or `None`
/// when one of its members cannot be expressed.
pub fn route_match(
    at: &str,
    value: Option<&Value>,
    report: &mut FieldReport,
) -> Option<Vec<Map<String, Value>>> {
    let Some(Value::Object(raw)) = value else {
        report.not_expressible(at, "missing or not a mapping (Envoy requires it)");
        return None;
    };
    let mut expressible = true;
    let case_insensitive = raw.get("case_sensitive") == Some(&Value::Bool(false));
    let mut paths: Vec<(&str, String)> = Vec::new();
    for (key, member) in raw {
        let field = format!("{at}.{key}");
        match key.as_str() {
            "prefix" | "path" | "path_separated_prefix" => {
                let Some(text) = member.as_str() else {
                    report.not_expressible(field, "not a string");
                    expressible = false;
                    continue;
                };
                if case_insensitive && text.bytes().any(|b| b.is_ascii_alphabetic()) {
                    report.not_expressible(
                        field,
                        "case_sensitive: false: jwt-guard compares paths byte for byte",
                    );
                    expressible = false;
                    continue;
                }
                match key.as_str() {
                    "prefix" if text.is_empty() || text == "/" => {
                        paths.push(("prefix", "/".into()));
                        report.translated(field);
                    }
                    "prefix" | "path" if text.starts_with('/') => {
                        paths.push((
                            if key == "prefix" { "prefix" } else { "path" },
                            text.to_string(),
                        ));
                        report.translated(field);
                    }
                    "path_separated_prefix" if text.starts_with('/') => {
                        let bare = text.trim_end_matches('/');
                        paths.push(("path", bare.to_string()));
                        paths.push(("prefix", format!("{bare}/")));
                        report.translated(format!(
                            "{field} (as two rules: path {bare:?} and prefix \"{bare}/\")"
                        ));
                    }
                    _ => {
                        report.not_expressible(field, "does not start with '/'");
                        expressible = false;
                    }
                }
            }
            "case_sensitive" => report.translated(field),
            "headers" => {
                let Value::Array(list) = member else {
                    report.not_expressible(field, "not a list");
                    expressible = false;
                    continue;
                };
                for (index, header) in list.iter().enumerate() {
                    let hat = format!("{field}[{index}]");
                    match method_of(header) {
                        Some(method) => {
                            report.translated(format!("{hat} (:method, as match.methods)"));
                            paths.push(("method", method));
                        }
                        None => {
                            report.not_expressible(
                                hat,
                                "jwt-guard's match has methods and hosts, not header conditions \
                                 (only an exact :method is translated)",
                            );
                            expressible = false;
                        }
                    }
                }
            }
            "safe_regex" | "connect_matcher" | "path_match_policy" | "query_parameters"
            | "grpc" | "tls_context" | "runtime_fraction" | "dynamic_metadata" | "filter_state" => {
                report.not_expressible(
                    field,
                    "jwt-guard's match has prefix, path, methods, hosts and route_name only",
                );
                expressible = false;
            }
            _ => {
                report.not_expressible(field, "unknown RouteMatch field");
                expressible = false;
            }
        }
    }
    if !expressible {
        return None;
    }
    let methods: Vec<String> = paths
        .iter()
        .filter(|(k, _)| *k == "method")
        .map(|(_, m)| m.clone())
        .collect();
    // Several :method matchers must all hold: only one method can.
    if methods.windows(2).any(|pair| pair.first() != pair.last()) {
        report.not_expressible(
            format!("{at}.headers"),
            "two different :method values: no request matches",
        );
        return None;
    }
    let path_parts: Vec<(&str, String)> =
        paths.into_iter().filter(|(k, _)| *k != "method").collect();
    let mut out = Vec::new();
    let base = |path: Option<&(&str, String)>| {
        let mut m = Map::new();
        if let Some((kind, text)) = path {
            m.insert((*kind).to_string(), json!(text));
        }
        if let Some(method) = methods.first() {
            m.insert("methods".into(), json!([method]));
        }
        m
    };
    if path_parts.is_empty() {
        out.push(base(None));
    } else {
        for part in &path_parts {
            out.push(base(Some(part)));
        }
    }
    Some(out)
}

/// An exact `:method` HeaderMatcher's method.
fn method_of(header: &Value) -> Option<String> {
    if header.get("name").and_then(Value::as_str) != Some(":method") {
        return None;
    }
    if header.get("invert_match") == Some(&Value::Bool(true)) {
        return None;
    }
    let exact = header
        .get("exact_match")
        .and_then(Value::as_str)
        .or_else(|| {
            header
                .get("string_match")
                .and_then(|s| s.get("exact"))
                .and_then(Value::as_str)
        })?;
    let known = [
        "name",
        "exact_match",
        "string_match",
        "invert_match",
        "treat_missing_header_as_empty",
    ];
    if let Value::Object(map) = header
        && map.keys().any(|k| !known.contains(&k.as_str()))
    {
        return None;
    }
    (!exact.is_empty() && exact.bytes().all(|b| b.is_ascii_uppercase())).then(|| exact.to_string())
}
