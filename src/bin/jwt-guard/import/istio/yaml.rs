//! Reading Istio objects field by field: every member read is reported, an unknown one too.

use serde_yaml_ng::{Mapping, Value};

use super::super::FieldReport;

/// The members of `map` as `(name, value)`, with keys that are not strings reported.
pub fn members<'a>(
    map: &'a Mapping,
    path: &str,
    report: &mut FieldReport,
) -> Vec<(&'a str, &'a Value)> {
    let mut out = Vec::new();
    for (key, value) in map {
        match key.as_str() {
            Some(name) => out.push((name, value)),
            None => report.not_expressible(
                format!("{path}.{key:?}"),
                "a member name that is not a string",
            ),
        }
    }
    out
}

/// A list of strings; anything else is reported and read as absent.
pub fn strings(value: &Value, path: &str, report: &mut FieldReport) -> Option<Vec<String>> {
    let Some(seq) = value.as_sequence() else {
        if value.is_null() {
            return Some(Vec::new());
        }
        report.not_expressible(path, "expected a list of strings");
        return None;
    };
    let mut out = Vec::new();
    for (i, item) in seq.iter().enumerate() {
        match scalar(item) {
            Some(text) => out.push(text),
            None => {
                report.not_expressible(format!("{path}[{i}]"), "expected a string");
                return None;
            }
        }
    }
    Some(out)
}

/// A scalar as Kubernetes reads it into a string field (YAML `80` or `true` unquoted too).
pub fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `matchLabels` of a selector, sorted; `None` when absent or empty (= every workload).
pub fn match_labels(value: &Value) -> Option<Vec<(String, String)>> {
    let labels = value.get("matchLabels")?.as_mapping()?;
    let mut out: Vec<(String, String)> = labels
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), scalar(v)?)))
        .collect();
    out.sort();
    (!out.is_empty()).then_some(out)
}

/// `text` with every byte outside `A-Z a-z 0-9 _ -` replaced by `_`: a jwt-guard name.
pub fn name_chars(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
