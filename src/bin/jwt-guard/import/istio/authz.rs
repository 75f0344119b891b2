//! AuthorizationPolicy `rules` → jwt-guard rules (docs/migration.md, "From Istio").
//!
//! An Istio rule matches when one of its `from` sources AND one of its `to` operations AND every
//! `when` condition match; so each (source, operation) pair becomes one jwt-guard rule: the
//! operation its `match`, the source and the conditions its requirements (all of which must
//! hold, as in Istio).

use serde_json::{Map, Value as Json, json};
use serde_yaml_ng::Value;

use super::super::FieldReport;
use super::yaml::{members, strings};

/// The requirements of one jwt-guard rule, gathered from a source and the `when` conditions.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Conds {
    principals_any: Option<Vec<String>>,
    principals_none: Vec<String>,
    ip_allow: Option<Vec<String>>,
    ip_deny: Vec<String>,
    headers: Vec<Json>,
    claims: Vec<Json>,
    scopes_any: Option<Vec<String>>,
    scopes_none: Vec<String>,
    /// A field of the source or a condition could not be expressed (and was left out).
    pub lossy: bool,
    /// Some IP condition was used: the configuration names its client address.
    pub uses_ip: bool,
}

/// Two lists that must both hold (each: any of its entries): one list when they are the same,
/// or when one of them is the `*` that any other entry implies; `false` when they cannot be one.
fn and_any(slot: &mut Option<Vec<String>>, list: Vec<String>, star_is_any: bool) -> bool {
    match slot {
        None => {
            *slot = Some(list);
            true
        }
        Some(current) if *current == list => true,
        Some(current) if star_is_any && current.as_slice() == ["*"] => {
            *current = list;
            true
        }
        Some(_) if star_is_any && list.as_slice() == ["*"] => true,
        Some(_) => false,
    }
}

impl Conds {
    fn principals(&mut self, any: Option<Vec<String>>, none: Vec<String>) -> bool {
        self.principals_none.extend(none);
        any.is_none_or(|any| and_any(&mut self.principals_any, any, true))
    }

    fn ips(&mut self, allow: Option<Vec<String>>, deny: Vec<String>) -> bool {
        self.uses_ip = true;
        self.ip_deny.extend(deny);
        allow.is_none_or(|allow| and_any(&mut self.ip_allow, allow, false))
    }

    /// `self` AND `other`; `false` when that cannot be written as one rule's requirements.
    pub fn and(&mut self, other: &Conds) -> bool {
        let mut ok = self.principals(other.principals_any.clone(), other.principals_none.clone());
        if other.uses_ip {
            ok &= self.ips(other.ip_allow.clone(), other.ip_deny.clone());
        }
        self.headers.extend(other.headers.iter().cloned());
        self.claims.extend(other.claims.iter().cloned());
        self.scopes_none.extend(other.scopes_none.iter().cloned());
        if let Some(any) = &other.scopes_any {
            ok &= and_any(&mut self.scopes_any, any.clone(), false);
        }
        self.lossy |= other.lossy;
        ok
    }

    /// The requirements as members of a jwt-guard rule.
    pub fn write(&self, rule: &mut Map<String, Json>) {
        if !self.headers.is_empty() {
            rule.insert("headers".into(), json!(self.headers));
        }
        // A list condition in two parts (allow/deny, any/none), each written when present.
        let mut two_part = |member: &str,
                            (first, a): (&str, &Option<Vec<String>>),
                            (second, b): (&str, &Vec<String>)| {
            if a.is_none() && b.is_empty() {
                return;
            }
            let mut parts = Map::new();
            if let Some(a) = a {
                parts.insert(first.into(), json!(a));
            }
            if !b.is_empty() {
                parts.insert(second.into(), json!(b));
            }
            rule.insert(member.into(), Json::Object(parts));
        };
        two_part(
            "source_ips",
            ("allow", &self.ip_allow),
            ("deny", &self.ip_deny),
        );
        two_part(
            "principals",
            ("any", &self.principals_any),
            ("none", &self.principals_none),
        );
        two_part(
            "scopes",
            ("any", &self.scopes_any),
            ("none", &self.scopes_none),
        );
        if !self.claims.is_empty() {
            rule.insert("claims".into(), json!(self.claims));
        }
    }
}

const MTLS: &str = "a peer identity from Istio's mutual TLS (the client workload's certificate): \
                    jwt-guard sees the end user's token, not the peer certificate";
const IP_NOTE: &str = "source_ips checks the client address of \"client_ip\" ({\"from\": \"peer\"}: \
                       Envoy's downstream address after its own X-Forwarded-For handling, which \
                       is Istio's remote.ip; it equals source.ip, the connection's peer, unless \
                       the proxy trusts forwarding hops (numTrustedProxies))";

/// A non-empty list (Istio treats an empty list as an absent field).
fn list(value: &Value, field: &str, report: &mut FieldReport) -> Option<Vec<String>> {
    strings(value, field, report).filter(|l| !l.is_empty())
}

/// `from[i].source` → requirements.
pub fn source(value: &Value, path: &str, report: &mut FieldReport) -> Conds {
    let mut conds = Conds::default();
    let Some(map) = value.as_mapping() else {
        report.not_expressible(path, "a Source must be an object");
        conds.lossy = true;
        return conds;
    };
    if map.is_empty() {
        report.translated(format!("{path} (empty: any source)"));
    }
    for (name, value) in members(map, path, report) {
        let field = format!("{path}.{name}");
        let Some(items) = list(value, &field, report) else {
            if value.as_sequence().is_some_and(|s| s.is_empty()) || value.is_null() {
                report.ignored(&field, "empty: as if absent");
            } else {
                conds.lossy = true;
            }
            continue;
        };
        let ok = match name {
            "requestPrincipals" => conds.principals(Some(items), Vec::new()),
            "notRequestPrincipals" => conds.principals(None, items),
            "ipBlocks" | "remoteIpBlocks" | "notIpBlocks" | "notRemoteIpBlocks" => {
                let ok = if name.starts_with("not") {
                    conds.ips(None, items)
                } else {
                    conds.ips(Some(items), Vec::new())
                };
                if ok {
                    report.changed_default(&field, IP_NOTE);
                    continue;
                }
                false
            }
            "principals" | "notPrincipals" | "namespaces" | "notNamespaces" | "serviceAccounts"
            | "notServiceAccounts" => {
                report.not_expressible(&field, MTLS);
                conds.lossy = true;
                continue;
            }
            _ => {
                report.not_expressible(&field, "not a field of Source");
                conds.lossy = true;
                continue;
            }
        };
        if ok {
            report.translated(&field);
        } else {
            report.not_expressible(
                &field,
                "a second list that must hold too (AND): jwt-guard's rule has one list of each kind",
            );
            conds.lossy = true;
        }
    }
    conds
}

/// One Istio host → a jwt-guard host entry; `Ok(None)` is any host.
fn host(text: &str) -> Result<Option<String>, &'static str> {
    if text == "*" {
        return Ok(None);
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains(':') && !lower.starts_with('[') {
        return Err("a host with a port: jwt-guard compares the host without its port");
    }
    if let Some(rest) = lower.strip_prefix("*.")
        && !rest.contains('*')
    {
        return Ok(Some(lower));
    }
    if lower.contains('*') {
        return Err(
            "jwt-guard's hosts know exact names and `*.domain` only (not `prefix.*` or \
                    `*suffix` without a dot)",
        );
    }
    Ok(Some(lower))
}

/// `to[i].operation` → a `match`, and whether something was left out.
pub fn operation(value: &Value, path: &str, report: &mut FieldReport) -> (Map<String, Json>, bool) {
    let mut matcher = Map::new();
    let mut lossy = false;
    let Some(map) = value.as_mapping() else {
        report.not_expressible(path, "an Operation must be an object");
        return (matcher, true);
    };
    if map.is_empty() {
        report.translated(format!("{path} (empty: any operation)"));
    }
    for (name, value) in members(map, path, report) {
        let field = format!("{path}.{name}");
        let Some(items) = list(value, &field, report) else {
            if value.as_sequence().is_some_and(|s| s.is_empty()) || value.is_null() {
                report.ignored(&field, "empty: as if absent");
            } else {
                lossy = true;
            }
            continue;
        };
        match name {
            "paths" | "notPaths" | "methods" | "notMethods" => {
                let key = match name {
                    "paths" => "paths",
                    "notPaths" => "not_paths",
                    "methods" => "methods",
                    _ => "not_methods",
                };
                matcher.insert(key.into(), json!(items));
                report.translated(&field);
            }
            "hosts" | "notHosts" => {
                let mut out = Vec::new();
                let mut any = false;
                let mut bad = None;
                for item in &items {
                    match host(item) {
                        Ok(Some(h)) => out.push(h),
                        Ok(None) => any = true,
                        Err(why) => bad = Some(format!("{item:?}: {why}")),
                    }
                }
                if let Some(why) = bad {
                    report.not_expressible(&field, why);
                    lossy = true;
                } else if any {
                    // `*` among the hosts: every host (hosts), or no host at all (notHosts).
                    if name == "notHosts" {
                        report.not_expressible(
                            &field,
                            "`*` excludes every host: the rule never applies",
                        );
                        lossy = true;
                    } else {
                        report.translated(format!("{field} (`*`: any host)"));
                    }
                } else {
                    let key = if name == "hosts" {
                        "hosts"
                    } else {
                        "not_hosts"
                    };
                    matcher.insert(key.into(), json!(out));
                    report.changed_default(
                        &field,
                        "compared without the port and without case (Istio: the whole Host \
                         header, so `example.com` there does not match `example.com:8080`)",
                    );
                }
            }
            "ports" | "notPorts" => {
                report.not_expressible(&field, "jwt-guard's match has no destination port");
                lossy = true;
            }
            _ => {
                report.not_expressible(&field, "not a field of Operation");
                lossy = true;
            }
        }
    }
    (matcher, lossy)
}

/// `request.auth.claims[a][b]` → `a.b`.
fn claim_name(key: &str) -> Option<String> {
    let mut rest = key.strip_prefix("request.auth.claims")?;
    let mut parts = Vec::new();
    while let Some(after) = rest.strip_prefix('[') {
        let end = after.find(']')?;
        parts.push(&after[..end]);
        rest = &after[end + 1..];
    }
    if !rest.is_empty() || parts.is_empty() || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    // A dot inside a nested name would read as another level in jwt-guard's dotted names.
    if parts.len() > 1 && parts.iter().any(|p| p.contains('.')) {
        return None;
    }
    Some(parts.join("."))
}

fn has_wildcard(values: &[String]) -> bool {
    values
        .iter()
        .any(|v| v.starts_with('*') || v.ends_with('*'))
}

/// A claim condition; `Err` when jwt-guard's exact comparison cannot say what Istio's does.
fn claim(name: &str, values: &[String], not_values: &[String]) -> Result<Json, &'static str> {
    if has_wildcard(values) || has_wildcard(not_values) {
        return Err(
            "Istio compares claims with prefix*, *suffix and * (presence); jwt-guard's \
                    claims compare exactly",
        );
    }
    let mut entry = Map::new();
    entry.insert("name".into(), json!(name));
    if !values.is_empty() {
        entry.insert("values".into(), json!(values));
    }
    if !not_values.is_empty() {
        entry.insert("not_values".into(), json!(not_values));
    }
    Ok(Json::Object(entry))
}

/// `when[i]` → requirements.
pub fn condition(value: &Value, path: &str, report: &mut FieldReport) -> Conds {
    let mut conds = Conds::default();
    let Some(map) = value.as_mapping() else {
        report.not_expressible(path, "a Condition must be an object");
        conds.lossy = true;
        return conds;
    };
    let (mut key, mut values, mut not_values) = (None, Vec::new(), Vec::new());
    for (name, value) in members(map, path, report) {
        let field = format!("{path}.{name}");
        match name {
            "key" => key = value.as_str().map(str::to_string),
            "values" => values = strings(value, &field, report).unwrap_or_default(),
            "notValues" => not_values = strings(value, &field, report).unwrap_or_default(),
            _ => {
                report.not_expressible(&field, "not a field of Condition");
                conds.lossy = true;
            }
        }
    }
    let Some(key) = key else {
        report.not_expressible(format!("{path}.key"), "a condition needs a key");
        conds.lossy = true;
        return conds;
    };
    let field = format!("{path} ({key})");
    if values.is_empty() && not_values.is_empty() {
        report.not_expressible(&field, "a condition needs values or notValues");
        conds.lossy = true;
        return conds;
    }
    let opt = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let why: Option<&str> = if key == "request.auth.principal" {
        if conds.principals(opt(&values), not_values.clone()) {
            report.translated(&field);
            None
        } else {
            Some("two lists of principals that must both hold")
        }
    } else if key == "request.auth.claims[scope]" {
        // Istio splits the space-separated `scope` claim (jwt_authn's space_delimited_claims),
        // as jwt-guard's scopes do (scopes_claim "scope").
        if has_wildcard(&values) || has_wildcard(&not_values) {
            Some("Istio's value patterns (prefix*, *suffix, *) are not in jwt-guard's scopes")
        } else {
            conds.scopes_any = opt(&values);
            conds.scopes_none = not_values.clone();
            report.changed_default(
                &field,
                "as scopes (any/none) against scopes_claim \"scope\": a space-separated string \
                 is a list, as Istio reads it",
            );
            None
        }
    } else if let Some(name) = claim_name(&key) {
        match claim(&name, &values, &not_values) {
            Ok(entry) => {
                conds.claims.push(entry);
                report.translated(&field);
                None
            }
            Err(why) => Some(why),
        }
    } else if key == "request.auth.audiences" || key == "request.auth.presenter" {
        let name = if key == "request.auth.audiences" {
            "aud"
        } else {
            "azp"
        };
        match claim(name, &values, &not_values) {
            Ok(entry) => {
                conds.claims.push(entry);
                report.translated(format!("{field} as claim {name}"));
                None
            }
            Err(why) => Some(why),
        }
    } else if let Some(header) = key
        .strip_prefix("request.headers[")
        .and_then(|rest| rest.strip_suffix(']'))
    {
        if header.is_empty() || header.starts_with(':') {
            Some("jwt-guard's headers take header names, not pseudo-headers")
        } else {
            let mut entry = Map::new();
            entry.insert("name".into(), json!(header.to_ascii_lowercase()));
            if !values.is_empty() {
                entry.insert("values".into(), json!(values));
            }
            if !not_values.is_empty() {
                entry.insert("not_values".into(), json!(not_values));
            }
            conds.headers.push(Json::Object(entry));
            report.changed_default(
                &field,
                "a header sent more than once is unknown (header_ambiguous: an allow rule \
                 refuses, a deny rule denies); Istio matches the joined value",
            );
            None
        }
    } else if key == "source.ip" || key == "remote.ip" {
        if conds.ips(opt(&values), not_values.clone()) {
            report.changed_default(&field, IP_NOTE);
            None
        } else {
            Some("two address lists that must both hold")
        }
    } else if key == "source.principal" || key == "source.namespace" {
        Some(MTLS)
    } else if key == "destination.ip" || key == "destination.port" {
        Some("jwt-guard's rules do not see the destination address")
    } else if key == "connection.sni" {
        Some("jwt-guard's rules do not see the TLS server name")
    } else if key.starts_with("experimental.") {
        Some("Istio's experimental conditions are Envoy filter metadata jwt-guard does not read")
    } else {
        Some("not a condition key Istio documents")
    };
    if let Some(why) = why {
        report.not_expressible(&field, why);
        conds.lossy = true;
    }
    conds
}

/// One jwt-guard rule from one (rule, source, operation) of a policy.
#[derive(Debug)]
pub struct Part {
    /// `r0`, `r0-f1-t2`: which rule, source and operation it comes from.
    pub suffix: String,
    pub matcher: Map<String, Json>,
    pub conds: Conds,
    pub lossy: bool,
    /// For the report: `...rules[0].from[1] x to[2]`.
    pub path: String,
}

/// A policy's `rules` → parts (their cross products).
pub fn rules(value: &Value, path: &str, report: &mut FieldReport) -> Vec<Part> {
    let Some(seq) = value.as_sequence() else {
        if !value.is_null() {
            report.not_expressible(path, "rules must be a list");
        }
        return Vec::new();
    };
    let mut parts = Vec::new();
    for (i, rule) in seq.iter().enumerate() {
        let rpath = format!("{path}[{i}]");
        let Some(map) = rule.as_mapping() else {
            report.not_expressible(&rpath, "a Rule must be an object");
            continue;
        };
        let mut sources: Vec<(String, Conds)> = Vec::new();
        let mut operations: Vec<(String, Map<String, Json>, bool)> = Vec::new();
        let mut when = Conds::default();
        let mut when_ok = true;
        if map.is_empty() {
            report.translated(format!("{rpath} (empty: every request)"));
        }
        for (name, value) in members(map, &rpath, report) {
            let field = format!("{rpath}.{name}");
            let seq = value.as_sequence().map(Vec::as_slice).unwrap_or_default();
            if value.as_sequence().is_none() && !value.is_null() {
                report.not_expressible(&field, "expected a list");
                continue;
            }
            match name {
                "from" => {
                    for (j, entry) in seq.iter().enumerate() {
                        let epath = format!("{field}[{j}]");
                        let src = entry.get("source").cloned().unwrap_or(Value::Null);
                        if let Some(m) = entry.as_mapping() {
                            for (k, _) in m {
                                if k.as_str() != Some("source") {
                                    report.not_expressible(
                                        format!("{epath}.{k:?}"),
                                        "not a field of Rule.From",
                                    );
                                }
                            }
                        }
                        sources.push((
                            format!("f{j}"),
                            source(&src, &format!("{epath}.source"), report),
                        ));
                    }
                }
                "to" => {
                    for (k, entry) in seq.iter().enumerate() {
                        let epath = format!("{field}[{k}]");
                        let op = entry.get("operation").cloned().unwrap_or(Value::Null);
                        let (matcher, lossy) =
                            operation(&op, &format!("{epath}.operation"), report);
                        operations.push((format!("t{k}"), matcher, lossy));
                    }
                }
                "when" => {
                    for (k, entry) in seq.iter().enumerate() {
                        let c = condition(entry, &format!("{field}[{k}]"), report);
                        if !when.and(&c) {
                            report.not_expressible(
                                format!("{field}[{k}]"),
                                "a second list of the same kind that must hold too (AND)",
                            );
                            when_ok = false;
                        }
                    }
                }
                _ => report.not_expressible(&field, "not a field of Rule"),
            }
        }
        if sources.is_empty() {
            sources.push((String::new(), Conds::default()));
        }
        if operations.is_empty() {
            operations.push((String::new(), Map::new(), false));
        }
        let (many_from, many_to) = (sources.len() > 1, operations.len() > 1);
        for (fname, src) in &sources {
            for (tname, matcher, op_lossy) in &operations {
                let mut conds = src.clone();
                let ok = conds.and(&when);
                let mut suffix = format!("r{i}");
                if many_from {
                    suffix = format!("{suffix}-{fname}");
                }
                if many_to {
                    suffix = format!("{suffix}-{tname}");
                }
                let lossy = conds.lossy || *op_lossy || !ok || !when_ok;
                if !ok {
                    report.not_expressible(
                        format!("{rpath} ({suffix})"),
                        "the source and the conditions both give a list of the same kind that \
                         must hold (AND)",
                    );
                }
                parts.push(Part {
                    suffix,
                    matcher: matcher.clone(),
                    conds,
                    lossy,
                    path: rpath.clone(),
                });
            }
        }
    }
    parts
}

#[cfg(test)]
#[path = "authz_tests.rs"]
mod tests;
