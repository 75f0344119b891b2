//! `jwt-guard import jwt-authn FILE`: Envoy's `envoy.extensions.filters.http.jwt_authn.v3.
//! JwtAuthentication` (field by field, as its `config.proto` defines them and their defaults)
//! turned into a jwt-guard configuration. docs/migration.md has the table this code follows.
//!
//! The source is read as a `serde_json::Value` (YAML and JSON alike), not as typed structs:
//! every member has to be reported, and an unknown one must be named, not skipped.

mod keys;
mod provider;
mod requirement;
mod route_match;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value, json};

use super::FieldReport;
use crate::args::{Args, flag};
use crate::compiled::compile;
use crate::report::{Failure, Report, exit};

pub const HELP: &str = "\
Usage: jwt-guard import jwt-authn FILE [--allow-lossy]

FILE holds an Envoy jwt_authn configuration, as YAML or JSON, in one of three forms:
  - a JwtAuthentication message, as it appears under typed_config (providers:, rules:, ...);
  - a whole typed_config (or filter entry) with
    \"@type\": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication;
  - an Envoy bootstrap holding exactly one jwt_authn filter (routes' per-route configs
    PerRouteConfig are read from it too, and reported: bind those routes by metadata).
Field names are snake_case, as Envoy's documentation writes them.

stdout: the jwt-guard JSON configuration, checked by Config::from_json (the filter's own
parser) before it is printed. stderr: one line per field read:
  translated       the field means the same in jwt-guard
  changed default  jwt_authn's default (or meaning) differs; the line says what was written
  NOT EXPRESSIBLE  jwt-guard cannot do it; the line says what the import did instead
  ignored          read, but without effect on which requests pass

Exit codes: 0 imported; 1 the result is refused by jwt-guard (the filter's message);
2 wrong command line; 4 FILE cannot be read or is not a jwt_authn configuration;
5 a field is NOT EXPRESSIBLE: the report is printed, the configuration is NOT, unless
--allow-lossy is given (then it is printed, with the replacements the report names, and the
exit code is 0).
";

pub const JWT_AUTHN_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication";
pub const PER_ROUTE_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig";

pub fn run(argv: &[String]) -> Result<Report, Failure> {
    let args = Args::parse("import", argv, &[flag("allow-lossy")])?;
    if args.help {
        return Ok(Report::ok(HELP.to_string()));
    }
    let path = args.single_positional("FILE")?;
    let text = std::fs::read_to_string(path)
        .map_err(|err| Failure::input(format!("cannot read {path}: {err}")))?;
    let outcome = import_text(&text)?;
    Ok(finish(outcome, args.flag("allow-lossy")))
}

/// What an import produced: the configuration and the report of every field.
pub struct Outcome {
    pub config: Value,
    pub report: FieldReport,
    /// Set when no configuration can be written at all, even with `--allow-lossy`.
    pub fatal: Option<String>,
}

/// The exit code and output for an outcome: validated by the filter's parser, printed only
/// when nothing was lost or the caller accepted the losses.
pub fn finish(outcome: Outcome, allow_lossy: bool) -> Report {
    let mut stderr = outcome.report.render();
    if let Some(why) = outcome.fatal {
        stderr.push_str(&format!("jwt-guard: cannot import: {why}\n"));
        return Report {
            code: exit::LOSSY,
            stdout: String::new(),
            stderr,
        };
    }
    let text = match serde_json::to_string_pretty(&outcome.config) {
        Ok(text) => text + "\n",
        Err(err) => {
            stderr.push_str(&format!(
                "jwt-guard: cannot write the configuration: {err}\n"
            ));
            return Report {
                code: exit::INVALID_CONFIG,
                stdout: String::new(),
                stderr,
            };
        }
    };
    if let Err(line) = compile(&text) {
        stderr.push_str(&line);
        stderr.push('\n');
        return Report {
            code: exit::INVALID_CONFIG,
            stdout: String::new(),
            stderr,
        };
    }
    if outcome.report.is_lossy() && !allow_lossy {
        stderr.push_str(
            "jwt-guard: some fields cannot be expressed (NOT EXPRESSIBLE above): no configuration \
             printed; --allow-lossy prints it with the replacements named above\n",
        );
        return Report {
            code: exit::LOSSY,
            stdout: String::new(),
            stderr,
        };
    }
    Report {
        code: exit::OK,
        stdout: text,
        stderr,
    }
}

/// Parses YAML or JSON (JSON is YAML) and imports the one jwt_authn configuration it holds.
pub fn import_text(text: &str) -> Result<Outcome, Failure> {
    let doc: Value = serde_yaml_ng::from_str(text)
        .map_err(|err| Failure::input(format!("not YAML or JSON: {err}")))?;
    let (message, per_route) = locate(&doc)?;
    Ok(import(&message, &per_route))
}

/// A route's per-route jwt_authn configuration found in a bootstrap.
#[derive(Debug, Clone)]
pub struct PerRoute {
    /// The route's `name`, or its position when it has none.
    pub route: String,
    pub config: Value,
}

/// The JwtAuthentication message in `doc`, and (for a bootstrap) the routes' PerRouteConfigs.
fn locate(doc: &Value) -> Result<(Map<String, Value>, Vec<PerRoute>), Failure> {
    let Value::Object(top) = doc else {
        return Err(Failure::input(
            "the file is not a mapping: expected a JwtAuthentication message",
        ));
    };
    if top.contains_key("static_resources") || top.contains_key("dynamic_resources") {
        let mut found = Vec::new();
        let mut per_route = Vec::new();
        walk(doc, "", &mut found, &mut per_route);
        return match found.as_slice() {
            [one] => Ok((strip_type(one)?, per_route)),
            [] => Err(Failure::input(format!(
                "the bootstrap holds no typed_config with \"@type\": {JWT_AUTHN_TYPE}"
            ))),
            many => Err(Failure::input(format!(
                "the bootstrap holds {} jwt_authn filters: import one at a time (cut it out \
                 into a file of its own)",
                many.len()
            ))),
        };
    }
    if let Some(typed) = top.get("typed_config") {
        return Ok((strip_type(typed)?, Vec::new()));
    }
    Ok((strip_type(doc)?, Vec::new()))
}

/// The message without its `@type` (which must be jwt_authn's when present).
fn strip_type(value: &Value) -> Result<Map<String, Value>, Failure> {
    let Value::Object(map) = value else {
        return Err(Failure::input(
            "the jwt_authn configuration is not a mapping",
        ));
    };
    let mut map = map.clone();
    if let Some(kind) = map.remove("@type")
        && kind.as_str() != Some(JWT_AUTHN_TYPE)
    {
        return Err(Failure::input(format!(
            "\"@type\" is {kind}, not {JWT_AUTHN_TYPE}"
        )));
    }
    Ok(map)
}

/// Every jwt_authn typed_config under `node`, and every route's per-route jwt_authn config.
fn walk(node: &Value, at: &str, found: &mut Vec<Value>, per_route: &mut Vec<PerRoute>) {
    match node {
        Value::Object(map) => {
            if map.get("@type").and_then(Value::as_str) == Some(JWT_AUTHN_TYPE) {
                found.push(node.clone());
                return;
            }
            if let Some(Value::Object(per_filter)) = map.get("typed_per_filter_config") {
                for config in per_filter.values() {
                    if config.get("@type").and_then(Value::as_str) == Some(PER_ROUTE_TYPE) {
                        let route = map
                            .get("name")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .unwrap_or_else(|| at.to_string());
                        per_route.push(PerRoute {
                            route,
                            config: config.clone(),
                        });
                    }
                }
            }
            for (key, value) in map {
                walk(value, &format!("{at}.{key}"), found, per_route);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                walk(item, &format!("{at}[{index}]"), found, per_route);
            }
        }
        _ => {}
    }
}

/// The whole mapping; never fails: what cannot be translated is reported (and replaced as the
/// report says), and `fatal` is set when nothing sensible can be written.
pub fn import(message: &Map<String, Value>, per_route: &[PerRoute]) -> Outcome {
    let mut report = FieldReport::default();
    let mut fatal = None;
    const KNOWN: [&str; 7] = [
        "providers",
        "rules",
        "filter_state_rules",
        "bypass_cors_preflight",
        "requirement_map",
        "strip_failure_response",
        "stat_prefix",
    ];
    for key in message.keys() {
        if !KNOWN.contains(&key.as_str()) {
            report.not_expressible(
                key.clone(),
                "not a field of JwtAuthentication that this importer knows (Envoy's config.proto \
                 as of 1.40): left out",
            );
        }
    }

    let mut providers = provider::Providers::default();
    match message.get("providers") {
        Some(Value::Object(map)) => {
            for (name, raw) in map {
                if let Err(why) = providers.add(name, raw, &mut report) {
                    fatal.get_or_insert(why);
                }
            }
        }
        Some(_) => {
            fatal.get_or_insert("providers: not a mapping of names to JwtProviders".to_string());
        }
        None => {}
    }

    let mut rules = requirement::Rules::new(providers);
    match message.get("rules") {
        Some(Value::Array(list)) => {
            for (index, rule) in list.iter().enumerate() {
                rules.add_rule(
                    &format!("rules[{index}]"),
                    rule,
                    message.get("requirement_map"),
                    &mut report,
                );
            }
        }
        Some(_) => report.not_expressible("rules", "not a list: left out"),
        None => {}
    }
    if let Some(map) = message.get("requirement_map") {
        rules.add_requirement_map(map, &mut report);
    }
    for route in per_route {
        rules.add_per_route(route, &mut report);
    }
    if let Some(fsr) = message.get("filter_state_rules") {
        let name = fsr.get("name").and_then(Value::as_str).unwrap_or("");
        report.not_expressible(
            "filter_state_rules",
            format!(
                "jwt-guard cannot read the filter state {name:?} another filter sets: left out \
                 (requests it would have given a requirement get the catch-all's treatment)"
            ),
        );
    }
    rules.finish_catch_all(&mut report);

    match message.get("bypass_cors_preflight") {
        Some(Value::Bool(true)) => report.not_expressible(
            "bypass_cors_preflight",
            "jwt-guard has no preflight bypass: answer preflights with Envoy's cors filter placed \
             before jwt-guard (docs/configuration.md, Rules); left out, so preflights are judged \
             by the rules (fail closed)",
        ),
        Some(Value::Bool(false)) => report.translated("bypass_cors_preflight"),
        Some(_) => report.not_expressible("bypass_cors_preflight", "not a boolean: left out"),
        None => {}
    }
    match message.get("strip_failure_response") {
        Some(Value::Bool(true)) => report.not_expressible(
            "strip_failure_response",
            "jwt-guard's 401 and 403 always carry its JSON body (error, reason code, status) and \
             the WWW-Authenticate challenge; left out",
        ),
        Some(Value::Bool(false)) => report.translated("strip_failure_response"),
        Some(_) => report.not_expressible("strip_failure_response", "not a boolean: left out"),
        None => {}
    }
    if message.contains_key("stat_prefix") {
        report.ignored(
            "stat_prefix",
            "jwt-guard's counters are named jwt_guard.* (docs/operations.md), whatever the prefix",
        );
    }

    let (providers_json, rules_json) = rules.into_json();
    let config = json!({
        "providers": Value::Object(providers_json),
        "rules": rules_json,
    });
    Outcome {
        config,
        report,
        fatal,
    }
}

/// A protobuf Duration as YAML/JSON gives it: `"1.5s"` or `{seconds: 1, nanos: 500000000}`,
/// in milliseconds (rounded up: a bound given in nanoseconds must not become 0).
pub fn duration_ms(value: &Value) -> Option<u64> {
    match value {
        Value::String(text) => {
            let number = text.strip_suffix('s')?;
            let seconds: f64 = number.parse().ok()?;
            (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1000.0).ceil() as u64)
        }
        Value::Object(map) => {
            let seconds = match map.get("seconds") {
                None => 0,
                Some(v) => whole(v)?,
            };
            let nanos = match map.get("nanos") {
                None => 0,
                Some(v) => whole(v)?,
            };
            Some(seconds.checked_mul(1000)? + nanos.div_ceil(1_000_000))
        }
        _ => None,
    }
}

/// A non-negative whole number, as a number or (protobuf JSON int64) a string.
pub fn whole(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}
