//! `jwt-guard import istio FILE...`: RequestAuthentication and AuthorizationPolicy objects →
//! one jwt-guard configuration (docs/migration.md, "From Istio"; docs/cli.md).
//!
//! Istio's order, kept: an invalid token is 401 (RequestAuthentication), then DENY policies,
//! then ALLOW policies (any of them), and with ALLOW policies present a request none of them
//! allows is 403. In jwt-guard:
//! - every DENY rule (source × operation) is a deny rule;
//! - with no ALLOW policy, one allow rule that fits every request, `allow_anonymous`, allows;
//! - with ALLOW policies, the first allow rule ([`AUTHN_RULE`]) fits every request and
//!   authenticates (any provider, no token is fine: Istio's RequestAuthentication), then always
//!   refuses 403 and falls through to the ALLOW rules after it (each `fall_through`, same
//!   providers and `allow_anonymous`): the first that holds allows; if none does, its 403 stands.

mod authn;
mod authz;
mod wasm_plugin;
mod yaml;

use std::collections::BTreeSet;

use serde_json::{Map, Value as Json, json};
use serde_yaml_ng::Value;

use super::FieldReport;
use crate::args::{self, Args};
use crate::compiled;
use crate::report::{Failure, Report, exit};
use wasm_plugin::wasm_plugin;
use yaml::{match_labels, members, name_chars};

const OPTIONS: &[args::Opt] = &[
    args::flag("allow-lossy"),
    args::value("wasm-plugin"),
    args::value("namespace"),
    args::value("root-namespace"),
];

pub const HELP: &str = "\
jwt-guard import istio: Istio RequestAuthentication and AuthorizationPolicy → jwt-guard

Usage:
  jwt-guard import istio FILE... [--allow-lossy] [--wasm-plugin OUT.yaml]
                                 [--namespace NS] [--root-namespace NS]

FILE             multi-document YAML (or a kubectl List); other kinds are reported and ignored
--allow-lossy    print the configuration even when a field cannot be expressed (exit 0):
                 an ALLOW rule with such a field is left out, a DENY rule loses the field
                 (both refuse more, never less)
--wasm-plugin    also write an Istio WasmPlugin carrying the configuration, with the policies'
                 selector (or targetRefs) and namespace
--namespace      namespace of objects without metadata.namespace (default \"default\")
--root-namespace Istio's root namespace (default \"istio-system\")

All objects must apply to one workload (one selector or targetRefs, plus the namespace-wide and
root-namespace policies): jwt-guard's configuration is per workload. Import each workload's
objects separately. Exit 5 when a field cannot be expressed (without --allow-lossy).
";

/// The first allow rule when ALLOW policies exist: authenticates, then refuses (see above).
pub const AUTHN_RULE: &str = "istio-authn";
/// The allow rule when no ALLOW policy exists: every request Istio's DENY policies leave.
pub const ALLOW_ALL_RULE: &str = "istio-allow-all";
/// Never both present and absent: the header [`AUTHN_RULE`]'s condition names (see there).
pub const NEVER_HEADER: &str = "x-jwt-guard-istio-no-allow-policy";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    /// No selector: every workload of the namespace (of the mesh, in the root namespace).
    Namespace,
    Selector(Vec<(String, String)>),
    /// `targetRef` / `targetRefs`, as JSON text (a Gateway or Service).
    TargetRefs(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    RequestAuthentication,
    AuthorizationPolicy,
}

#[derive(Debug)]
struct Object {
    kind: Kind,
    /// `AuthorizationPolicy/foo/require-jwt`, the prefix of every reported field.
    path: String,
    namespace: String,
    name: String,
    spec: Value,
    scope: Scope,
}

/// Reads one document (a List's items too) into `objects`.
fn read_document(
    doc: &Value,
    where_: &str,
    default_ns: &str,
    objects: &mut Vec<Object>,
    report: &mut FieldReport,
) {
    if doc.is_null() {
        return;
    }
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    let api = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if kind == "List" || kind.ends_with("List") {
        if let Some(items) = doc.get("items").and_then(Value::as_sequence) {
            for (i, item) in items.iter().enumerate() {
                read_document(
                    item,
                    &format!("{where_}.items[{i}]"),
                    default_ns,
                    objects,
                    report,
                );
            }
        }
        return;
    }
    let meta = doc.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let namespace = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str);
    let kind = match (kind, api) {
        ("RequestAuthentication", "security.istio.io/v1" | "security.istio.io/v1beta1") => {
            Kind::RequestAuthentication
        }
        ("AuthorizationPolicy", "security.istio.io/v1" | "security.istio.io/v1beta1") => {
            Kind::AuthorizationPolicy
        }
        _ => {
            report.ignored(
                format!("{where_} ({api} {kind} {name})"),
                "not a security.istio.io/v1 or v1beta1 RequestAuthentication or AuthorizationPolicy",
            );
            return;
        }
    };
    let kind_name = match kind {
        Kind::RequestAuthentication => "RequestAuthentication",
        Kind::AuthorizationPolicy => "AuthorizationPolicy",
    };
    let ns = namespace.unwrap_or(default_ns).to_string();
    let path = format!("{kind_name}/{ns}/{name}");
    if namespace.is_none() {
        report.changed_default(
            format!("{path}.metadata.namespace"),
            format!("absent: taken as {default_ns:?} (--namespace)"),
        );
    }
    let dry_run = meta
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get("istio.io/dry-run"))
        .and_then(Value::as_str);
    if kind == Kind::AuthorizationPolicy && dry_run == Some("true") {
        // Istio evaluates a dry-run policy only to log its decision; jwt-guard's dry_run is
        // per allow rule and lets the rule's requests through, which is another thing.
        report.not_expressible(
            format!("{path}.metadata.annotations[istio.io/dry-run]"),
            "a policy evaluated only for its log (shadow rules): imported as enforced",
        );
    }
    let spec = doc.get("spec").cloned().unwrap_or(Value::Null);
    let selector = spec.get("selector");
    let refs = spec.get("targetRefs").cloned().or_else(|| {
        spec.get("targetRef")
            .map(|r| Value::Sequence(vec![r.clone()]))
    });
    let scope = if let Some(refs) = refs {
        Scope::TargetRefs(serde_json::to_string(&refs).unwrap_or_default())
    } else {
        match selector.and_then(match_labels) {
            Some(labels) => Scope::Selector(labels),
            None => Scope::Namespace,
        }
    };
    objects.push(Object {
        kind,
        path,
        namespace: ns,
        name,
        spec,
        scope,
    });
}

/// The workload the objects apply to: (namespace, scope). `Err`: they name several.
fn target(objects: &[Object], root: &str) -> Result<(String, Scope), String> {
    let targeted: BTreeSet<(String, Scope)> = objects
        .iter()
        .filter(|o| o.scope != Scope::Namespace)
        .map(|o| (o.namespace.clone(), o.scope.clone()))
        .collect();
    let describe = |(ns, scope): &(String, Scope)| match scope {
        Scope::Namespace => format!("namespace {ns}"),
        Scope::Selector(labels) => format!(
            "namespace {ns}, selector {}",
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Scope::TargetRefs(refs) => format!("namespace {ns}, targetRefs {refs}"),
    };
    match targeted.len() {
        0 => {
            let namespaces: BTreeSet<&str> = objects
                .iter()
                .map(|o| o.namespace.as_str())
                .filter(|ns| *ns != root)
                .collect();
            match namespaces.len() {
                0 => Ok((root.to_string(), Scope::Namespace)),
                1 => Ok((
                    namespaces
                        .iter()
                        .next()
                        .copied()
                        .unwrap_or(root)
                        .to_string(),
                    Scope::Namespace,
                )),
                _ => Err(format!(
                    "the objects apply to the workloads of {} namespaces ({}); jwt-guard's \
                     configuration is per workload: import each namespace's objects separately",
                    namespaces.len(),
                    namespaces.into_iter().collect::<Vec<_>>().join(", ")
                )),
            }
        }
        1 => Ok(targeted
            .into_iter()
            .next()
            .unwrap_or((root.to_string(), Scope::Namespace))),
        n => Err(format!(
            "the objects select {n} different workloads ({}); jwt-guard's configuration is per \
             workload: import the objects of each (with the namespace-wide ones) separately",
            targeted.iter().map(describe).collect::<Vec<_>>().join("; ")
        )),
    }
}

/// `A-Z a-z 0-9 _ -`, at most 64, unique among `taken`.
fn rule_name(base: &str, taken: &mut BTreeSet<String>) -> String {
    let mut clean = name_chars(base);
    clean.truncate(60);
    let mut name = clean.clone();
    let mut n = 2;
    while taken.contains(&name) || name.starts_with("rule_") {
        name = format!("{clean}-{n}");
        n += 1;
    }
    taken.insert(name.clone());
    name
}

/// The imported configuration, with the report; `lossy_allowed` decides what becomes of rules
/// with a field that cannot be expressed.
struct Import {
    config: Json,
    /// (namespace, scope) of the WasmPlugin.
    target: (String, Scope),
}

fn import(objects: &[Object], root: &str, report: &mut FieldReport) -> Result<Import, String> {
    let target = target(objects, root)?;
    let mut providers = Map::new();
    let mut deny_rules = Vec::new();
    let mut allow_rules = Vec::new();
    let mut allow_policies = 0usize;
    let mut names = BTreeSet::new();
    names.insert(AUTHN_RULE.to_string());
    names.insert(ALLOW_ALL_RULE.to_string());
    let mut uses_ip = false;
    let many_namespaces = objects
        .iter()
        .map(|o| o.namespace.as_str())
        .collect::<BTreeSet<_>>()
        .len()
        > 1;

    for object in objects {
        let applies = object.scope != Scope::Namespace
            || object.namespace == target.0
            || object.namespace == root;
        if !applies {
            report.ignored(
                &object.path,
                format!(
                    "namespace-wide in {}, not the selected workload's",
                    object.namespace
                ),
            );
            continue;
        }
        let Some(spec) = object.spec.as_mapping() else {
            if object.kind == Kind::AuthorizationPolicy {
                // `spec: {}` or none: an ALLOW policy without rules, which allows nothing.
                allow_policies += 1;
                report.translated(format!("{}.spec (empty: ALLOW nothing)", object.path));
            }
            continue;
        };
        let spath = format!("{}.spec", object.path);
        let mut action = "ALLOW".to_string();
        let mut rules_value = None;
        for (name, value) in members(spec, &spath, report) {
            let field = format!("{spath}.{name}");
            match (object.kind, name) {
                (_, "selector" | "targetRef" | "targetRefs") => report.changed_default(
                    &field,
                    "scope: the configuration is for the workload it selects (the WasmPlugin of \
                     --wasm-plugin carries it)",
                ),
                (Kind::RequestAuthentication, "jwtRules") => {
                    if value.as_sequence().is_none() && !value.is_null() {
                        report.not_expressible(&field, "expected a list");
                    }
                    let seq = value.as_sequence().map(Vec::as_slice).unwrap_or_default();
                    for (i, rule) in seq.iter().enumerate() {
                        let path = format!("{field}[{i}]");
                        let Some((name, provider)) =
                            authn::jwt_rule(rule, &path, &providers, report)
                        else {
                            continue;
                        };
                        // jwt-guard picks a token's provider by its issuer: one each.
                        if providers
                            .values()
                            .any(|p| p.get("issuer") == provider.get("issuer"))
                        {
                            report.not_expressible(
                                format!("{path}.issuer"),
                                "a second JWTRule for this issuer: jwt-guard takes one provider \
                                 per issuer (the first is kept)",
                            );
                            continue;
                        }
                        providers.insert(name, provider);
                    }
                }
                (Kind::AuthorizationPolicy, "action") => match value.as_str() {
                    Some(a @ ("ALLOW" | "DENY" | "AUDIT" | "CUSTOM")) => action = a.to_string(),
                    _ => report.not_expressible(&field, "not ALLOW, DENY, AUDIT or CUSTOM"),
                },
                (Kind::AuthorizationPolicy, "rules") => rules_value = Some(value),
                (Kind::AuthorizationPolicy, "provider") => {} // with CUSTOM, below
                _ => report.not_expressible(&field, "not a field of this kind"),
            }
        }
        if object.kind != Kind::AuthorizationPolicy {
            continue;
        }
        match action.as_str() {
            "AUDIT" => {
                report.ignored(
                    format!("{spath}.action (AUDIT)"),
                    "AUDIT only marks requests for an audit plugin; it never allows or refuses",
                );
                continue;
            }
            "CUSTOM" => {
                report.not_expressible(
                    format!("{spath}.action (CUSTOM)"),
                    "CUSTOM asks an external authorizer (extensionProviders); jwt-guard does not \
                     call one: put Envoy's ext_authz filter next to it",
                );
                continue;
            }
            "ALLOW" => allow_policies += 1,
            _ => {}
        }
        report.translated(format!("{spath}.action ({action})"));
        let Some(rules_value) = rules_value else {
            report.translated(format!(
                "{spath}.rules (none: {})",
                if action == "ALLOW" {
                    "allows nothing"
                } else {
                    "denies nothing"
                }
            ));
            continue;
        };
        let base = if many_namespaces {
            format!("{}-{}", object.namespace, object.name)
        } else {
            object.name.clone()
        };
        for part in authz::rules(rules_value, &format!("{spath}.rules"), report) {
            let name = rule_name(&format!("{base}-{}", part.suffix), &mut names);
            let mut rule = Map::new();
            rule.insert("name".into(), json!(name));
            uses_ip |= part.conds.uses_ip;
            if action == "DENY" {
                rule.insert("action".into(), json!("deny"));
                if !part.matcher.is_empty() {
                    rule.insert("match".into(), Json::Object(part.matcher.clone()));
                }
                part.conds.write(&mut rule);
                if part.lossy {
                    report.changed_default(
                        format!("{} ({})", part.path, part.suffix),
                        format!(
                            "deny rule {name} leaves out what cannot be expressed: it denies more"
                        ),
                    );
                }
                deny_rules.push(Json::Object(rule));
            } else {
                if part.lossy {
                    report.changed_default(
                        format!("{} ({})", part.path, part.suffix),
                        "left out (it holds a field that cannot be expressed): the requests only \
                         it allowed are refused",
                    );
                    continue;
                }
                rule.insert("match".into(), Json::Object(part.matcher.clone()));
                rule.insert("allow_anonymous".into(), json!(true));
                rule.insert("fall_through".into(), json!(true));
                part.conds.write(&mut rule);
                allow_rules.push(Json::Object(rule));
            }
        }
    }

    let mut rules = deny_rules;
    if allow_policies == 0 {
        rules.push(json!({"name": ALLOW_ALL_RULE, "match": {}, "allow_anonymous": true}));
    } else {
        // Istio: a request no ALLOW policy allows is 403, also without a token, and an invalid
        // token is 401 everywhere. The rule fits every request, so it authenticates every one,
        // and its two header conditions can never both hold: it always refuses, 403, and falls
        // through to the ALLOW rules; when none of them allows, its 403 is the answer.
        rules.push(json!({
            "name": AUTHN_RULE,
            "match": {},
            "allow_anonymous": true,
            "fall_through": true,
            "headers": [{"name": NEVER_HEADER, "present": true},
                        {"name": NEVER_HEADER, "present": false}]
        }));
        rules.extend(allow_rules);
    }
    if providers.is_empty() {
        let (name, provider) = no_request_authentication()?;
        report.changed_default(
            "(no RequestAuthentication)",
            format!(
                "jwt-guard's rules need a provider: {name:?} reads tokens only from the header \
                 {NO_RA_HEADER} and verifies them with a random secret made for this import, so \
                 every request is anonymous, as in Istio (one carrying that header is refused, 401)"
            ),
        );
        providers.insert(name, provider);
    }
    let mut config = Map::new();
    if uses_ip {
        config.insert("client_ip".into(), json!({"from": "peer"}));
    }
    config.insert("providers".into(), Json::Object(providers));
    config.insert("rules".into(), Json::Array(rules));
    Ok(Import {
        config: Json::Object(config),
        target,
    })
}

/// The one header the provider of [`no_request_authentication`] reads.
const NO_RA_HEADER: &str = "x-jwt-guard-no-request-authentication";

/// The provider for policies without a RequestAuthentication: jwt-guard's rules need one, Istio
/// then reads no token. Its key is an HMAC secret made at random for this import (it is in the
/// printed configuration only, like any inline HMAC key), read from one header nothing sends:
/// no request gets an identity.
fn no_request_authentication() -> Result<(String, Json), String> {
    use ct_codecs::{Base64UrlSafeNoPadding, Encoder};
    use std::io::Read;
    let mut secret = [0u8; 64];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut secret))
        .map_err(|err| format!("/dev/urandom: {err}"))?;
    let k = Base64UrlSafeNoPadding::encode_to_string(secret).map_err(|err| err.to_string())?;
    Ok((
        "istio-no-request-authentication".to_string(),
        json!({
            "issuer": "urn:jwt-guard:istio-import:no-request-authentication",
            "jwks": {"keys": [{"kty": "oct", "alg": "HS512", "k": k}]},
            "from_headers": [{"name": NO_RA_HEADER}],
        }),
    ))
}

pub fn run(argv: &[String]) -> Result<Report, Failure> {
    let args = Args::parse("import", argv, OPTIONS)?;
    if args.help {
        return Ok(Report::ok(HELP.to_string()));
    }
    if args.positionals.is_empty() {
        return Err(args.usage("name at least one YAML file of Istio objects"));
    }
    let default_ns = args.one("namespace").unwrap_or("default");
    let root = args.one("root-namespace").unwrap_or("istio-system");
    let mut report = FieldReport::default();
    let mut objects = Vec::new();
    for file in &args.positionals {
        let text = std::fs::read_to_string(file)
            .map_err(|err| Failure::input(format!("{file}: {err}")))?;
        for (i, document) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
            let doc = <Value as serde::Deserialize>::deserialize(document)
                .map_err(|err| Failure::input(format!("{file}: document {}: {err}", i + 1)))?;
            read_document(
                &doc,
                &format!("{file}#{}", i + 1),
                default_ns,
                &mut objects,
                &mut report,
            );
        }
    }
    let imported = import(&objects, root, &mut report).map_err(Failure::input)?;
    let json = serde_json::to_string_pretty(&imported.config)
        .map_err(|err| Failure::input(err.to_string()))?;
    let mut stderr = report.render();
    if report.is_lossy() && !args.flag("allow-lossy") {
        stderr.push_str(
            "jwt-guard: some fields cannot be expressed (NOT EXPRESSIBLE above); nothing printed. \
             --allow-lossy prints the configuration without them (it refuses more, never less)\n",
        );
        return Ok(Report {
            code: exit::LOSSY,
            stdout: String::new(),
            stderr,
        });
    }
    if let Err(line) = compiled::compile(&json) {
        stderr.push_str(&format!(
            "{line}\n(the imported configuration follows on stdout)\n"
        ));
        return Ok(Report {
            code: exit::INVALID_CONFIG,
            stdout: format!("{json}\n"),
            stderr,
        });
    }
    if let Some(out) = args.one("wasm-plugin") {
        let manifest = wasm_plugin(&imported.config, &imported.target).map_err(Failure::input)?;
        std::fs::write(out, manifest).map_err(|err| Failure::input(format!("{out}: {err}")))?;
    }
    Ok(Report {
        code: exit::OK,
        stdout: format!("{json}\n"),
        stderr,
    })
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
