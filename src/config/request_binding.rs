//! `rules[i].bind`: each entry's two sides, checked against the rule's `match.paths` and
//! providers so that a binding that can never hold is refused here, not discovered as 403s.

use crate::authn::claims::ClaimPath;
use crate::authn::provider::Provider;
use crate::authz::request_binding::{BindEntry, BindSource, BindTarget, RequestBinding};
use crate::config::dpop::object;
use crate::config::error::ConfigError;
use crate::config::model::{Matcher, PathMatch};
use crate::config::names::is_header_name;
use serde_json::Value;

/// `providers`: the rule's providers (an `issuer_param` must be a placeholder of each).
pub(super) fn compile_bind(
    at: &str,
    raw: Value,
    matcher: Option<&Matcher>,
    providers: &[&Provider],
) -> Result<RequestBinding, ConfigError> {
    let raw = match raw {
        Value::Array(raw) if raw.is_empty() => {
            return Err(ConfigError::new(at, "must not be empty (omit it)"));
        }
        Value::Array(raw) => raw,
        _ => return Err(ConfigError::new(at, "must be an array")),
    };
    let mut entries = Vec::with_capacity(raw.len());
    for (index, entry) in raw.iter().enumerate() {
        let field = |member: &str| format!("{at}[{index}].{member}");
        let members = object(
            &format!("{at}[{index}]"),
            entry,
            &["claim", "issuer_param", "path_param", "header"],
        )?;
        let text = |member: &str| match members.get(member) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(ConfigError::new(field(member), "must be a string")),
        };
        let source = match (text("claim")?, text("issuer_param")?) {
            (Some(claim), None) => BindSource::Claim(
                ClaimPath::parse(&claim)
                    .ok_or_else(|| ConfigError::new(field("claim"), "not a valid claim name"))?,
            ),
            (None, Some(param)) => {
                if let Some(provider) = providers
                    .iter()
                    .find(|p| !p.token_rules.issuer.has_param(&param))
                {
                    return Err(ConfigError::new(
                        field("issuer_param"),
                        format!(
                            "{{{param}}} is not a placeholder of the issuer of provider {:?} ({:?})",
                            provider.name,
                            provider.token_rules.issuer.as_str()
                        ),
                    ));
                }
                BindSource::IssuerParam(param)
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    field("issuer_param"),
                    "give claim or issuer_param, not both",
                ));
            }
            (None, None) => {
                return Err(ConfigError::new(
                    field("claim"),
                    "missing: give claim or issuer_param",
                ));
            }
        };
        let target = match (text("path_param")?, text("header")?) {
            (Some(name), None) => {
                let patterns = match matcher.map(|m| &m.path) {
                    Some(PathMatch::Patterns(patterns)) => patterns.as_slice(),
                    _ => {
                        return Err(ConfigError::new(
                            field("path_param"),
                            "the rule's match has no paths to capture it (give match.paths with {name})",
                        ));
                    }
                };
                let positions = patterns
                    .iter()
                    .enumerate()
                    .map(|(i, pattern)| {
                        pattern.param_position(&name).ok_or_else(|| {
                            ConfigError::new(
                                field("path_param"),
                                format!(
                                    "{{{name}}} is not captured by match.paths[{i}] ({:?}): every entry must capture it",
                                    pattern.text()
                                ),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                BindTarget::PathParam { name, positions }
            }
            (None, Some(header)) => {
                if !is_header_name(&header) || header.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err(ConfigError::new(
                        field("header"),
                        "a lower-case header name (not a ':' pseudo-header)",
                    ));
                }
                BindTarget::Header(header)
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    field("header"),
                    "give path_param or header, not both",
                ));
            }
            (None, None) => {
                return Err(ConfigError::new(
                    field("path_param"),
                    "missing: give path_param or header",
                ));
            }
        };
        entries.push(BindEntry { source, target });
    }
    Ok(RequestBinding { entries })
}
