//! Where a configuration comes from: a JSON file, or an Envoy YAML file whose Wasm filter
//! carries it.
//!
//! No YAML parser: the filter's configuration is a `google.protobuf.StringValue`, and the way
//! to write one in Envoy YAML (docs/deploy.md's and `envoy/envoy.yaml`'s) is a literal block
//! scalar next to the `@type`:
//!
//! ```yaml
//! configuration:
//!   "@type": type.googleapis.com/google.protobuf.StringValue
//!   value: |
//!     {"realm": "api", ...}
//! ```
//!
//! Those blocks are read here with the block-scalar rules (the content is every following line
//! indented deeper than `value:`, or blank, with the first line's indentation removed). A file
//! that writes the configuration otherwise (a quoted string) is reported as holding none.

use crate::report::Failure;

/// One configuration found in a file.
pub struct Found {
    /// 1-based line of `value: |` in a YAML file; `None` for a JSON file.
    pub line: Option<usize>,
    pub json: String,
}

/// Reads `path`: a JSON file (its first non-blank character is `{`) is one configuration;
/// anything else is read as Envoy YAML.
pub fn read(path: &str) -> Result<Vec<Found>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| Failure::input(format!("cannot read {path}: {err}")))?;
    if text.trim_start().starts_with('{') {
        return Ok(vec![Found {
            line: None,
            json: text,
        }]);
    }
    let found = from_envoy_yaml(&text);
    if found.is_empty() {
        return Err(Failure::input(format!(
            "{path} is not JSON, and holds no jwt-guard configuration as Envoy YAML \
             (a `value: |` block next to `\"@type\": type.googleapis.com/google.protobuf.StringValue`)"
        )));
    }
    Ok(found)
}

/// The one configuration `path` holds, or the `index`-th (1-based) of several.
pub fn read_one(path: &str, index: Option<usize>) -> Result<Found, Failure> {
    let mut found = read(path)?;
    let count = found.len();
    let chosen = match index {
        None if count == 1 => 0,
        None => {
            let lines: Vec<String> = found
                .iter()
                .filter_map(|f| f.line.map(|l| l.to_string()))
                .collect();
            return Err(Failure::input(format!(
                "{path} holds {count} jwt-guard configurations (lines {}): choose one with --index N",
                lines.join(", ")
            )));
        }
        Some(index) if index >= 1 && index <= count => index - 1,
        Some(index) => {
            return Err(Failure::input(format!(
                "--index {index}: {path} holds {count} configuration(s)"
            )));
        }
    };
    Ok(found.swap_remove(chosen))
}

fn indentation(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// `value: |` (or `|-`, `|+`), possibly with a comment after it.
fn is_literal_value(line: &str) -> bool {
    let Some(rest) = line.trim_start().strip_prefix("value:") else {
        return false;
    };
    let indicator = rest.split('#').next().unwrap_or_default().trim();
    matches!(indicator, "|" | "|-" | "|+")
}

fn is_string_value_type(line: &str) -> bool {
    let trimmed = line.trim_start();
    ["\"@type\":", "'@type':"]
        .iter()
        .any(|key| trimmed.starts_with(key))
        && trimmed.contains("type.googleapis.com/google.protobuf.StringValue")
}

/// The configurations in an Envoy YAML text.
pub fn from_envoy_yaml(text: &str) -> Vec<Found> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if !is_literal_value(line) {
            continue;
        }
        let indent = indentation(line);
        // The rest of the mapping that holds `value:`: the lines at its indentation before and
        // after it (deeper lines belong to its members, a shallower one ends it).
        let same_mapping = |candidate: &&&str| indentation(candidate) == indent;
        let before = lines
            .get(..index)
            .unwrap_or_default()
            .iter()
            .rev()
            .filter(|l| !is_blank(l))
            .take_while(|l| indentation(l) >= indent);
        let block: Vec<&str> = lines
            .get(index + 1..)
            .unwrap_or_default()
            .iter()
            .take_while(|l| is_blank(l) || indentation(l) > indent)
            .copied()
            .collect();
        let after = lines
            .get(index + 1 + block.len()..)
            .unwrap_or_default()
            .iter()
            .filter(|l| !is_blank(l))
            .take_while(|l| indentation(l) >= indent);
        let typed = before
            .chain(after)
            .filter(same_mapping)
            .any(|l| is_string_value_type(l));
        if !typed {
            continue;
        }
        let content_indent = block
            .iter()
            .find(|l| !is_blank(l))
            .map_or(0, |l| indentation(l));
        let json: Vec<&str> = block
            .iter()
            .map(|l| l.get(content_indent..).unwrap_or_default())
            .collect();
        found.push(Found {
            line: Some(index + 1),
            json: json.join("\n"),
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_string_value_blocks_only() {
        let yaml = r#"
http_filters:
- name: envoy.filters.http.lua
  typed_config:
    inline_code: |
      value: |
        not this
- name: envoy.filters.http.wasm
  typed_config:
    config:
      configuration:
        "@type": type.googleapis.com/google.protobuf.StringValue
        # The jwt-guard configuration
        value: |
          {
            "rules": [{"match": {"prefix": "/"}}]

          }
      other:
        value: |
          {"not": "a StringValue"}
- name: second
  configuration:
    value: |-
      {"rules": []}
    '@type': type.googleapis.com/google.protobuf.StringValue
"#;
        let found = from_envoy_yaml(yaml);
        let summary: Vec<(Option<usize>, &str)> =
            found.iter().map(|f| (f.line, f.json.as_str())).collect();
        assert_eq!(
            summary,
            vec![
                (
                    Some(14),
                    "{\n  \"rules\": [{\"match\": {\"prefix\": \"/\"}}]\n\n}"
                ),
                (Some(24), "{\"rules\": []}"),
            ]
        );
    }
}
