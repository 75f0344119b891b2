//! Explain's output, as text or JSON: the request, then the sections (rule, authentication,
//! policy: each a module of its own), the decision and the notes.

use std::fmt::Write;

use jwt_guard::decision::Decision;
use jwt_guard::decision::outcome;
use jwt_guard::token::extract::HeaderChange;
use jwt_guard::trace::Step;
use serde_json::{Map, Value, json};

use super::explained::{Explained, Lines, fingerprint};
use super::{authn, policy, rule};

/// The text `explain` prints: the lines, indented two spaces a level.
pub fn text(explained: &Explained, notes: &[String]) -> String {
    let mut out = String::new();
    for (depth, line) in lines(explained, notes).0 {
        let _ = writeln!(out, "{}{line}", "  ".repeat(depth));
    }
    out
}

/// The object `explain --json` prints: the decision as the outcome records it, the token's
/// fingerprint, the response or upstream changes, the outcome and the text's lines as `steps`.
pub fn json(explained: &Explained, notes: &[String]) -> Value {
    let outcome: Value =
        serde_json::from_str(&outcome::render(explained.config, explained.verdict))
            .unwrap_or(Value::Null);
    let mut out = Map::new();
    let member = |name: &str| outcome.get(name).cloned().unwrap_or(Value::Null);
    out.insert("decision".into(), member("decision"));
    out.insert("status".into(), member("status"));
    out.insert("reason".into(), member("reason"));
    out.insert("rule".into(), member("rule"));
    out.insert("provider".into(), member("provider"));
    out.insert(
        "token_sha256".into(),
        explained
            .token()
            .map_or(Value::Null, |t| fingerprint(t).into()),
    );
    match &explained.verdict.decision {
        Decision::Allow { changes, .. } => {
            let upstream: Vec<Value> = changes
                .iter()
                .map(|change| match change {
                    HeaderChange::Remove(name) => json!({"remove": name}),
                    HeaderChange::Set(name, value) => {
                        json!({"set": name, "value": String::from_utf8_lossy(value)})
                    }
                })
                .collect();
            out.insert("upstream".into(), upstream.into());
            out.insert("response".into(), Value::Null);
        }
        Decision::Refuse(refused) => {
            let response = refused.response(&explained.config.realm);
            // A header sent on several lines (WWW-Authenticate with a Bearer and a DPoP
            // challenge) is an array of its values, in order; any other a string.
            let mut headers = Map::new();
            for (name, value) in &response.headers {
                let value = Value::from(value.as_str());
                match headers.get_mut(*name) {
                    Some(Value::Array(values)) => values.push(value),
                    Some(first) => *first = Value::Array(vec![first.take(), value]),
                    None => {
                        headers.insert(name.to_string(), value);
                    }
                }
            }
            out.insert("upstream".into(), Value::Null);
            out.insert(
                "response".into(),
                json!({"status": response.status, "headers": headers, "body": response.body}),
            );
        }
    }
    out.insert("outcome".into(), outcome);
    let steps: Vec<Value> = lines(explained, notes)
        .0
        .into_iter()
        .map(|(depth, line)| format!("{}{line}", "  ".repeat(depth)).into())
        .collect();
    out.insert("steps".into(), steps.into());
    Value::Object(out)
}

/// Every section, in order, then the notes.
fn lines(explained: &Explained, notes: &[String]) -> Lines {
    let mut lines = Lines::default();
    request_lines(explained, &mut lines);
    for step in explained.steps {
        if let Step::Rule {
            selection,
            bound,
            ambiguous_host,
        } = step
        {
            rule::lines(
                explained,
                &mut lines,
                selection,
                bound.as_deref(),
                *ambiguous_host,
            );
        }
        if let Step::Disabled = step {
            lines.add(1, "disabled: jwt-guard checks nothing here (client copies of identity headers are still removed)");
        }
    }
    authn::lines(explained, &mut lines);
    policy::lines(explained, &mut lines);
    decision_lines(explained, &mut lines);
    for note in notes {
        lines.add(0, format!("note: {note}"));
    }
    lines
}

/// The `request:` line and what was given with it (header names only, never values).
fn request_lines(explained: &Explained, lines: &mut Lines) {
    let input = explained.input;
    let (path, query) = match input.path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (input.path.as_str(), None),
    };
    let query = query.map_or(String::new(), |query| {
        let names: Vec<String> = query
            .split(['&', ';'])
            .map(|pair| format!("{}=…", pair.split('=').next().unwrap_or_default()))
            .collect();
        format!("?{}", names.join("&"))
    });
    lines.add(
        0,
        format!(
            "request: {} {path}{query} (host {})",
            input.method, input.host
        ),
    );
    let names: Vec<&str> = input.headers.iter().map(|(n, _)| n.as_str()).collect();
    if !names.is_empty() {
        lines.add(
            1,
            format!("headers: {} (values not shown)", names.join(", ")),
        );
    }
    lines.add(
        1,
        format!(
            "peer: {}; route name: {}; route metadata rule: {}; now: {}",
            input.peer.as_deref().unwrap_or("(not given)"),
            input.route_name.as_deref().unwrap_or("(none)"),
            input
                .route_rule
                .as_deref()
                .map_or("(none)".into(), |rule| format!(
                    "{:?}",
                    String::from_utf8_lossy(rule)
                )),
            input.now
        ),
    );
}

/// The `decision:` section: allowed, dry run or refused; the response Envoy sends or the
/// changes made before the request goes upstream; the outcome recorded in filter state.
fn decision_lines(explained: &Explained, lines: &mut Lines) {
    let config = explained.config;
    match &explained.verdict.decision {
        Decision::Allow { changes, dry_run } => {
            match dry_run {
                None => lines.add(0, "decision: allowed: the request goes upstream"),
                Some(refusal) => lines.add(
                    0,
                    format!(
                        "decision: dry run: would refuse {} {}, lets the request through instead",
                        refusal.status(),
                        refusal.code()
                    ),
                ),
            }
            if changes.is_empty() {
                lines.add(1, "upstream: the request goes on unchanged");
            } else {
                lines.add(1, "upstream:");
                for change in changes {
                    lines.add(2, describe_change(change));
                }
            }
        }
        Decision::Refuse(refused) => {
            let refusal = refused.refusal;
            lines.add(
                0,
                format!("decision: refused {} {}", refusal.status(), refusal.code()),
            );
            let response = refused.response(&config.realm);
            lines.add(1, format!("response: {}", response.status));
            for (name, value) in &response.headers {
                lines.add(2, format!("{name}: {value}"));
            }
            lines.add(2, response.body.clone());
        }
    }
    lines.add(
        1,
        format!(
            "outcome (outcome_in_filter_state): {}",
            outcome::render(config, explained.verdict)
        ),
    );
}

fn describe_change(change: &HeaderChange) -> String {
    match change {
        HeaderChange::Remove(name) => format!("- {name} (removed)"),
        HeaderChange::Set(name, value) => {
            format!("+ {name}: {} (set)", String::from_utf8_lossy(value))
        }
    }
}
