//! The conditions issue #19 added to rules (`principals`, `headers`, and `none` / `not_values`
//! beside the older ones), compiled for allow and deny rules alike.

use serde_json::Value;

use crate::authn::claims::ClaimPath;
use crate::authz::conditions::{HeaderCondition, Pattern, PrincipalRule};
use crate::authz::policy::Policy;
use crate::authz::policy::{ClaimRequirement, StringRequirement};
use crate::config::dpop::object;
use crate::config::error::ConfigError;
use crate::config::names::is_quotable;
use crate::config::schema::{RawAnyAll, RawClaim};

/// The conditions on the token and the request headers, common to allow and deny rules.
pub(super) fn compile_conditions(
    at: &str,
    roles: &Option<RawAnyAll>,
    scopes: &Option<RawAnyAll>,
    claims: &Option<Vec<RawClaim>>,
    principals: &Option<Value>,
    headers: &Option<Value>,
) -> Result<Policy, ConfigError> {
    let field = |member: &str| format!("{at}.{member}");
    Ok(Policy {
        roles: roles
            .as_ref()
            .map(|r| compile_any_all(&field("roles"), r))
            .transpose()?,
        scopes: scopes
            .as_ref()
            .map(|r| compile_any_all(&field("scopes"), r))
            .transpose()?,
        claims: claims
            .as_ref()
            .map(|claims| compile_claims(&field("claims"), claims))
            .transpose()?
            .unwrap_or_default(),
        principals: principals
            .as_ref()
            .map(|p| compile_principals(&field("principals"), p))
            .transpose()?,
        headers: headers
            .as_ref()
            .map(|h| compile_headers(&field("headers"), h))
            .transpose()?
            .unwrap_or_default(),
        ..Policy::default()
    })
}

/// `members[member]`: absent, or a non-empty array of Istio patterns.
fn pattern_list(
    at: &str,
    members: &serde_json::Map<String, Value>,
    member: &str,
) -> Result<Vec<Pattern>, ConfigError> {
    let field = format!("{at}.{member}");
    match members.get(member) {
        None => Ok(Vec::new()),
        Some(Value::Array(list)) if !list.is_empty() => list
            .iter()
            .enumerate()
            .map(|(index, text)| {
                text.as_str()
                    .and_then(Pattern::parse)
                    .ok_or_else(|| ConfigError::new(format!("{field}[{index}]"), PATTERN_FORMS))
            })
            .collect(),
        Some(_) => Err(ConfigError::new(
            field,
            "must be a non-empty array of strings",
        )),
    }
}

fn compile_principals(field: &str, raw: &Value) -> Result<PrincipalRule, ConfigError> {
    let members = object(field, raw, &["any", "none"])?;
    let any = pattern_list(field, members, "any")?;
    let none = pattern_list(field, members, "none")?;
    if any.is_empty() && none.is_empty() {
        return Err(ConfigError::new(field, "give \"any\" or \"none\""));
    }
    Ok(PrincipalRule { any, none })
}

fn compile_headers(field: &str, raw: &Value) -> Result<Vec<HeaderCondition>, ConfigError> {
    let entries = match raw {
        Value::Array(entries) if !entries.is_empty() => entries,
        Value::Array(_) => return Err(ConfigError::new(field, "must not be empty (omit it)")),
        _ => return Err(ConfigError::new(field, "must be an array")),
    };
    entries
        .iter()
        .enumerate()
        .map(|(index, header)| {
            let at = format!("{field}[{index}]");
            let members = object(&at, header, &["name", "present", "values", "not_values"])?;
            let name = members
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let token = !name.is_empty()
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
                });
            if !token {
                return Err(ConfigError::new(
                    format!("{at}.name"),
                    "a lower-case header name (not a ':' pseudo-header)",
                ));
            }
            let present = match members.get("present") {
                None => None,
                Some(Value::Bool(present)) => Some(*present),
                Some(_) => {
                    return Err(ConfigError::new(
                        format!("{at}.present"),
                        "must be true or false",
                    ));
                }
            };
            let values = pattern_list(&at, members, "values")?;
            let not_values = pattern_list(&at, members, "not_values")?;
            if present.is_none() && values.is_empty() && not_values.is_empty() {
                return Err(ConfigError::new(
                    at,
                    "give \"present\", \"values\" or \"not_values\"",
                ));
            }
            if present == Some(false) && !(values.is_empty() && not_values.is_empty()) {
                return Err(ConfigError::new(
                    format!("{at}.present"),
                    "false (absent) cannot go with values or not_values",
                ));
            }
            Ok(HeaderCondition {
                name: name.to_string(),
                present,
                values,
                not_values,
            })
        })
        .collect()
}

const PATTERN_FORMS: &str =
    "exact, \"prefix*\", \"*suffix\" or \"*\" (one '*', first or last, never alone with others)";

fn compile_any_all(field: &str, raw: &RawAnyAll) -> Result<StringRequirement, ConfigError> {
    if raw.any.is_empty() && raw.all.is_empty() && raw.none.is_empty() {
        return Err(ConfigError::new(field, "give \"any\", \"all\" or \"none\""));
    }
    if raw
        .any
        .iter()
        .chain(&raw.all)
        .chain(&raw.none)
        .any(|v| v.is_empty() || v.contains(' ') || !is_quotable(v))
    {
        return Err(ConfigError::new(
            field,
            "entries must be non-empty printable ASCII without spaces, '\"' or '\\'",
        ));
    }
    Ok(StringRequirement::with_none(
        raw.any.clone(),
        raw.all.clone(),
        raw.none.clone(),
    ))
}

fn compile_claims(field: &str, raw: &[RawClaim]) -> Result<Vec<ClaimRequirement>, ConfigError> {
    raw.iter()
        .enumerate()
        .map(|(index, claim)| {
            let at = format!("{field}[{index}]");
            let path = ClaimPath::parse(&claim.name)
                .ok_or_else(|| ConfigError::new(format!("{at}.name"), "not a valid claim name"))?;
            if claim.values.is_none() && claim.not_values.is_none() {
                return Err(ConfigError::new(
                    format!("{at}.values"),
                    "give \"values\" or \"not_values\"",
                ));
            }
            let list = |member: &str, list: &Option<Vec<serde_json::Value>>| {
                let list = list.clone().unwrap_or_default();
                if list
                    .iter()
                    .any(|v| v.is_array() || v.is_object() || v.is_null())
                {
                    return Err(ConfigError::new(
                        format!("{at}.{member}"),
                        "values must be strings, numbers or booleans",
                    ));
                }
                Ok(list)
            };
            for (member, given) in [("values", &claim.values), ("not_values", &claim.not_values)] {
                if given.as_ref().is_some_and(Vec::is_empty) {
                    return Err(ConfigError::new(
                        format!("{at}.{member}"),
                        "must not be empty",
                    ));
                }
            }
            Ok(ClaimRequirement {
                path,
                values: list("values", &claim.values)?,
                not_values: list("not_values", &claim.not_values)?,
            })
        })
        .collect()
}
