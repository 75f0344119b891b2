//! `rules` (RequirementRule: a RouteMatch and a JwtRequirement), `requirement_map` and per-route
//! configurations → jwt-guard rules.

use serde_json::{Map, Value, json};

use super::PerRoute;
use super::provider::{Providers, valid_name};
use super::route_match::route_match;
use crate::import::FieldReport;

/// What a request must show, as alternatives (any one suffices). Empty: nothing (jwt_authn's
/// empty requirement: no verification).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Alt {
    /// A token this (jwt-guard) provider accepts.
    Provider(String),
    /// No token at all (`allow_missing`).
    Missing,
    /// Anything, a failed token too (`allow_missing_or_failed`).
    MissingOrFailed,
}

/// The rule a fail-closed replacement gets: every request is refused (after authentication,
/// as the rule would authenticate): `source_ips` denying every address is the one existing
/// condition that no request passes.
fn refuse_everything() -> Value {
    json!({"deny": ["0.0.0.0/0", "::/0"]})
}

pub struct Rules {
    providers: Providers,
    ordered: Vec<Value>,
    named: Vec<Value>,
    /// jwt_authn requirement name → jwt-guard rule name.
    named_rules: Vec<(String, String)>,
    disabled_rule: Option<String>,
    catch_all: bool,
}

impl Rules {
    pub fn new(providers: Providers) -> Rules {
        Rules {
            providers,
            ordered: Vec::new(),
            named: Vec::new(),
            named_rules: Vec::new(),
            disabled_rule: None,
            catch_all: false,
        }
    }

    pub fn into_json(self) -> (Map<String, Value>, Vec<Value>) {
        let mut rules = self.ordered;
        rules.extend(self.named);
        (self.providers.into_json(), rules)
    }

    /// One RequirementRule: `rules[i]`.
    pub fn add_rule(
        &mut self,
        at: &str,
        rule: &Value,
        requirement_map: Option<&Value>,
        report: &mut FieldReport,
    ) {
        let Value::Object(rule) = rule else {
            report.not_expressible(at, "not a mapping: left out");
            return;
        };
        for key in rule.keys() {
            if !["match", "requires", "requirement_name"].contains(&key.as_str()) {
                report.not_expressible(format!("{at}.{key}"), "unknown field: left out");
            }
        }
        let Some(matches) = route_match(&format!("{at}.match"), rule.get("match"), report) else {
            report.not_expressible(
                at,
                "left out (its match cannot be expressed): the requests it matched are decided \
                 by the rules after it",
            );
            return;
        };
        let body = match (rule.get("requires"), rule.get("requirement_name")) {
            (Some(requires), _) => {
                self.requirement_body(&format!("{at}.requires"), requires, report)
            }
            (None, Some(Value::String(name))) => {
                let found = requirement_map.and_then(|m| m.get(name));
                match found {
                    Some(requires) => {
                        report.translated(format!("{at}.requirement_name"));
                        self.requirement_body(&format!("requirement_map.{name}"), requires, report)
                    }
                    None => {
                        report.not_expressible(
                            format!("{at}.requirement_name"),
                            format!("{name:?} is not in requirement_map (Envoy refuses it): the rule refuses every request"),
                        );
                        self.fail_closed(&[])
                    }
                }
            }
            (None, _) => {
                report.translated(format!("{at}.requires"));
                json!({"disabled": true})
            }
        };
        for matcher in matches {
            if matcher.is_empty()
                || (matcher.len() == 1 && matcher.get("prefix") == Some(&json!("/")))
            {
                self.catch_all = true;
            }
            let mut out = match &body {
                Value::Object(map) => map.clone(),
                _ => Map::new(),
            };
            out.insert("match".into(), Value::Object(matcher));
            self.ordered.push(Value::Object(out));
        }
    }

    /// `requirement_map`: one named rule per entry (no match: routes bind it by metadata).
    pub fn add_requirement_map(&mut self, map: &Value, report: &mut FieldReport) {
        let Value::Object(map) = map else {
            report.not_expressible("requirement_map", "not a mapping: left out");
            return;
        };
        for (name, requires) in map {
            let at = format!("requirement_map.{name}");
            let rule_name = self.rule_name(name);
            if rule_name != *name {
                report.changed_default(
                    at.clone(),
                    format!(
                        "rule named {rule_name:?}: jwt-guard rule names are 1-64 of A-Z a-z 0-9 _ - \
                         and rule_<number> is reserved"
                    ),
                );
            }
            let body = self.requirement_body(&at, requires, report);
            let mut out = match body {
                Value::Object(map) => map,
                _ => Map::new(),
            };
            out.insert("name".into(), json!(rule_name));
            self.named.push(Value::Object(out));
            self.named_rules.push((name.clone(), rule_name));
        }
    }

    /// A route's PerRouteConfig (from a bootstrap): reported with the metadata that binds the
    /// route to the same requirement in jwt-guard.
    pub fn add_per_route(&mut self, route: &PerRoute, report: &mut FieldReport) {
        let at = format!("route {}.typed_per_filter_config", route.route);
        let rule = if route.config.get("disabled") == Some(&Value::Bool(true)) {
            let name = match &self.disabled_rule {
                Some(name) => name.clone(),
                None => {
                    let name = self.rule_name("jwt-authn-disabled");
                    self.named.push(json!({"name": name, "disabled": true}));
                    self.disabled_rule = Some(name.clone());
                    name
                }
            };
            Some(name)
        } else if let Some(wanted) = route.config.get("requirement_name").and_then(Value::as_str) {
            match self.named_rules.iter().find(|(source, _)| source == wanted) {
                Some((_, name)) => Some(name.clone()),
                None => {
                    // jwt_authn answers 403 for a name missing from requirement_map; so does
                    // jwt-guard for a route bound to a rule it does not have.
                    Some(wanted.to_string())
                }
            }
        } else {
            None
        };
        match rule {
            Some(rule) => report.changed_default(
                at,
                format!(
                    "jwt-guard reads no typed_per_filter_config: give this route the metadata \
                     filter_metadata: {{jwt_guard: {{rule: {rule}}}}} (docs/configuration.md, \
                     Rules bound to routes)"
                ),
            ),
            None => report.not_expressible(at, "neither disabled nor requirement_name: left out"),
        }
    }

    /// After every rule: jwt_authn lets a request that matches no rule through; jwt-guard
    /// refuses it, so a catch-all disabled rule keeps jwt_authn's meaning.
    pub fn finish_catch_all(&mut self, report: &mut FieldReport) {
        if self.catch_all {
            return;
        }
        self.ordered.push(json!({"match": {}, "disabled": true}));
        report.changed_default(
            "rules",
            "a request no rule matches passes in jwt_authn and is refused in jwt-guard (403 \
             no_matching_rule): a last rule {\"match\": {}, \"disabled\": true} was added",
        );
    }

    fn rule_name(&self, wanted: &str) -> String {
        let used: Vec<&str> = self
            .named
            .iter()
            .filter_map(|r| r.get("name").and_then(Value::as_str))
            .collect();
        let reserved = |n: &str| {
            n.strip_prefix("rule_")
                .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
        };
        if valid_name(wanted) && !reserved(wanted) && !used.contains(&wanted) {
            return wanted.to_string();
        }
        let base: String = wanted
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .take(56)
            .collect();
        let base = if base.is_empty() {
            "requirement".to_string()
        } else {
            base
        };
        (1..)
            .map(|n| format!("{base}-{n}"))
            .find(|c| !used.contains(&c.as_str()))
            .unwrap_or(base)
    }

    /// A rule's members for one JwtRequirement (without `match`/`name`).
    fn requirement_body(&mut self, at: &str, requires: &Value, report: &mut FieldReport) -> Value {
        match self.alternatives(at, requires, 0) {
            Ok(alts) => self.body_of(at, &alts, report),
            Err((why, named)) => {
                report.not_expressible(
                    at,
                    format!("{why}: imported as a rule that refuses every request (fail closed: source_ips denies every address)"),
                );
                self.fail_closed(&named)
            }
        }
    }

    fn fail_closed(&self, providers: &[String]) -> Value {
        let mut out = Map::new();
        if !providers.is_empty() {
            out.insert("providers".into(), json!(providers));
        }
        out.insert("source_ips".into(), refuse_everything());
        Value::Object(out)
    }

    fn body_of(&mut self, at: &str, alts: &[Alt], report: &mut FieldReport) -> Value {
        if alts.is_empty() {
            report.translated(at);
            return json!({"disabled": true});
        }
        if alts.contains(&Alt::MissingOrFailed) {
            let identity = self
                .providers
                .by_source
                .values()
                .any(|p| p.identity_headers);
            if identity {
                report.not_expressible(
                    at,
                    "allow_missing_or_failed: jwt-guard never lets a failed token through; as a \
                     disabled rule every request passes, but without the identity headers \
                     (forward_payload_header, claim_to_headers) a valid token would have set",
                );
            } else {
                report.changed_default(
                    at,
                    "allow_missing_or_failed: a disabled rule (every request passes, as in \
                     jwt_authn; jwt-guard then neither verifies nor removes a token)",
                );
            }
            return json!({"disabled": true});
        }
        let mut providers: Vec<String> = Vec::new();
        for alt in alts {
            if let Alt::Provider(name) = alt
                && !providers.contains(name)
            {
                providers.push(name.clone());
            }
        }
        let anonymous = alts.contains(&Alt::Missing);
        let mut out = Map::new();
        match providers.as_slice() {
            [] => {}
            [one] => {
                out.insert("provider".into(), json!(one));
            }
            many => {
                out.insert("providers".into(), json!(many));
            }
        }
        if anonymous {
            out.insert("allow_anonymous".into(), json!(true));
            report.changed_default(
                at,
                "allow_missing: allow_anonymous (no token passes; a token that is present must \
                 be valid for one of the rule's providers)",
            );
        } else {
            report.translated(at);
        }
        Value::Object(out)
    }

    /// The alternatives of a JwtRequirement; `Err`: not expressible with one token, with the
    /// providers it names (for the fail-closed replacement).
    fn alternatives(
        &mut self,
        at: &str,
        requires: &Value,
        depth: usize,
    ) -> Result<Vec<Alt>, (String, Vec<String>)> {
        if depth > 32 {
            return Err(("requirements nested deeper than 32".into(), Vec::new()));
        }
        let Value::Object(map) = requires else {
            return Err(("not a JwtRequirement mapping".into(), Vec::new()));
        };
        let mut kinds = map.keys();
        let (Some(kind), None) = (kinds.next(), kinds.next()) else {
            if map.is_empty() {
                return Ok(Vec::new());
            }
            return Err((
                "more than one requirement kind in one JwtRequirement".into(),
                Vec::new(),
            ));
        };
        let value = &map[kind];
        match kind.as_str() {
            "provider_name" => {
                let name = value.as_str().unwrap_or("");
                self.provider(name)
                    .map(|p| vec![Alt::Provider(p)])
                    .ok_or_else(|| {
                        (
                            format!("{at}.provider_name: unknown provider {name:?}"),
                            Vec::new(),
                        )
                    })
            }
            "provider_and_audiences" => {
                let name = value
                    .get("provider_name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let audiences: Vec<String> = match value.get("audiences") {
                    Some(Value::Array(list)) => list
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect(),
                    Some(Value::String(one)) => vec![one.clone()],
                    _ => Vec::new(),
                };
                let found = if audiences.is_empty() {
                    self.provider(name)
                } else {
                    self.providers.with_audiences(name, &audiences)
                };
                found.map(|p| vec![Alt::Provider(p)]).ok_or_else(|| {
                    (
                        format!("{at}.provider_and_audiences: unknown provider {name:?}"),
                        Vec::new(),
                    )
                })
            }
            "allow_missing" => Ok(vec![Alt::Missing]),
            "allow_missing_or_failed" => Ok(vec![Alt::MissingOrFailed]),
            "requires_any" => {
                let list = requirements(value);
                let mut out = Vec::new();
                for (index, child) in list.iter().enumerate() {
                    let alts = self.alternatives(
                        &format!("{at}.requires_any.requirements[{index}]"),
                        child,
                        depth + 1,
                    )?;
                    if alts.is_empty() {
                        // An empty requirement always passes: so does the OR.
                        return Ok(Vec::new());
                    }
                    for alt in alts {
                        if !out.contains(&alt) {
                            out.push(alt);
                        }
                    }
                }
                Ok(out)
            }
            "requires_all" => {
                let list = requirements(value);
                let mut distinct: Vec<Vec<Alt>> = Vec::new();
                let mut named = Vec::new();
                for (index, child) in list.iter().enumerate() {
                    let alts = self.alternatives(
                        &format!("{at}.requires_all.requirements[{index}]"),
                        child,
                        depth + 1,
                    )?;
                    for alt in &alts {
                        if let Alt::Provider(p) = alt
                            && !named.contains(p)
                        {
                            named.push(p.clone());
                        }
                    }
                    // An empty requirement always passes: it adds nothing to the AND.
                    if !alts.is_empty() && !distinct.contains(&alts) {
                        distinct.push(alts);
                    }
                }
                match distinct.len() {
                    0 => Ok(Vec::new()),
                    1 => Ok(distinct.remove(0)),
                    _ => Err((
                        "requires_all of different requirements: jwt-guard accepts one token per request".into(),
                        named,
                    )),
                }
            }
            other => Err((format!("unknown requirement kind {other:?}"), Vec::new())),
        }
    }

    fn provider(&self, source: &str) -> Option<String> {
        self.providers.by_source.get(source).map(|p| p.name.clone())
    }
}

fn requirements(list: &Value) -> Vec<Value> {
    match list.get("requirements") {
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    }
}
