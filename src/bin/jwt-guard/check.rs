//! `jwt-guard check CONFIG`: compiles the configuration as the filter does in `on_configure`
//! and reports what the filter would log.

use std::fmt::Write;

use jwt_guard::config::{Config, PathMatch, RuleAction, SignatureBackend};
use jwt_guard::request::path_pattern::PathPattern;

use crate::args::Args;
use crate::compiled::{compile, describe_match};
use crate::report::{Failure, Report, exit};
use crate::source;

pub const HELP: &str = "\
Usage: jwt-guard check CONFIG

Validates a jwt-guard configuration exactly as the filter does when Envoy loads it
(Config::from_json, the same code), and prints the filter's own error line when it is refused:

  jwt-guard: invalid configuration: rules[2].provider: unknown provider \"corp2\"

CONFIG is a JSON file, or an Envoy YAML file (such as envoy/envoy.yaml) whose jwt-guard filter
carries the JSON as a `value: |` block of its StringValue `configuration`; every such block in
the file is checked.

Output: one line per configuration on stdout (`FILE: valid: ...` or `FILE:LINE: invalid`),
notes about a valid one below it (rules no request can reach, keys fetched at run time), and
for each invalid one the filter's line on stderr.

Exit codes: 0 every configuration is valid; 1 one is not; 2 wrong command line; 4 CONFIG
cannot be read or holds no configuration.
";

pub fn run(argv: &[String]) -> Result<Report, Failure> {
    let args = Args::parse("check", argv, &[])?;
    if args.help {
        return Ok(Report::ok(HELP.to_string()));
    }
    let path = args.single_positional("CONFIG")?;
    let mut report = Report::ok(String::new());
    for found in source::read(path)? {
        let place = match found.line {
            Some(line) => format!("{path}:{line}"),
            None => path.to_string(),
        };
        match compile(&found.json) {
            Ok(config) => {
                let _ = writeln!(report.stdout, "{place}: valid: {}", summary(&config));
                for note in notes(&config) {
                    let _ = writeln!(report.stdout, "  note: {note}");
                }
            }
            Err(line) => {
                let _ = writeln!(report.stdout, "{place}: invalid");
                let _ = writeln!(report.stderr, "{line}");
                report.code = exit::INVALID_CONFIG;
            }
        }
    }
    Ok(report)
}

fn plural(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

fn summary(config: &Config) -> String {
    let providers: Vec<&str> = config.providers.iter().map(|p| p.name.as_str()).collect();
    let providers = if providers.is_empty() {
        plural(0, "provider", "providers")
    } else {
        format!(
            "{} ({})",
            plural(providers.len(), "provider", "providers"),
            providers.join(", ")
        )
    };
    format!(
        "{providers}, {}",
        plural(config.rules.len(), "rule", "rules")
    )
}

/// What is worth knowing about a valid configuration.
fn notes(config: &Config) -> Vec<String> {
    let mut notes = Vec::new();
    // An allow rule that matches every request hides the allow rules after it from ordered
    // matching (not from its own fall_through; deny rules are never selected and still apply).
    let catch_all = config.rules.iter().position(|rule| {
        let Some(m) = &rule.matcher else {
            return false;
        };
        if rule.action == RuleAction::Deny || rule.fall_through {
            return false;
        }
        let any_path = match &m.path {
            PathMatch::Any => true,
            PathMatch::Prefix(prefix) => prefix == "/",
            PathMatch::Exact(_) => false,
            PathMatch::Patterns(patterns) => patterns.contains(&PathPattern::Any),
        };
        any_path
            && m.methods.is_empty()
            && m.hosts.is_empty()
            && m.route_name.is_none()
            && m.not_paths.is_empty()
            && m.not_methods.is_empty()
            && m.not_hosts.is_empty()
    });
    if let Some(index) = catch_all
        && config
            .rules
            .iter()
            .skip(index + 1)
            .any(|rule| rule.action == RuleAction::Allow)
    {
        let label = config.rules.get(index).map_or("", |r| r.label.as_str());
        notes.push(format!(
            "rules[{index}] ({label}) matches every request ({}): ordered matching never reaches \
             rules[{}..]; only route metadata can still bind those by name",
            config
                .rules
                .get(index)
                .map_or(String::new(), |r| describe_match(r.matcher.as_ref())),
            index + 1
        ));
    }
    for provider in &config.providers {
        if let Some(remote) = &provider.remote {
            notes.push(format!(
                "provider {}: keys are fetched at run time through cluster {:?} (remote_jwks); \
                 `jwt-guard explain` needs them as --jwks {}=FILE",
                provider.name, remote.cluster, provider.name
            ));
        }
    }
    if config.signature_backend == SignatureBackend::Host {
        notes.push(
            "signature_backend \"host\": an Envoy without the verify_signature foreign function \
             refuses this configuration (Envoy 1.40 has it)"
                .to_string(),
        );
    }
    notes
}
