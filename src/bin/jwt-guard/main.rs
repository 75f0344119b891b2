//! `jwt-guard`: the filter's core on the command line, for people writing configurations.
//!
//!   jwt-guard check CONFIG               validate a configuration (the filter's own messages)
//!   jwt-guard explain CONFIG --path /x   how the filter would decide one request, step by step
//!   jwt-guard token --key KEY ...        mint a token for local testing
//!   jwt-guard dpop --key KEY --url URL   mint a DPoP proof for one request
//!
//! Everything here only reads and renders: the configuration is compiled by
//! `Config::from_json` and every decision is `decide`'s, exactly as in the filter.

mod args;
mod check;
mod compiled;
mod dpop;
mod envoy_headers;
mod explain;
mod import;
mod report;
mod source;
mod token;

use std::io::Write;
use std::process::ExitCode;

use report::{Failure, Report, exit};

pub const HELP: &str = "\
jwt-guard: the jwt-guard filter's core on the command line

Usage: jwt-guard <COMMAND> [ARGS]

Commands:
  check CONFIG      validate a configuration, with the filter's own error messages
  explain CONFIG    show how the filter decides one request: the rule, each check, the answer
  token             mint a token for local testing from a private JWK or PEM key
  dpop              mint a DPoP proof (RFC 9449) for one request, to go with a DPoP-bound token
  import            turn an Envoy jwt_authn configuration or Istio policies into a jwt-guard one

CONFIG is a file holding the filter's JSON configuration, or an Envoy YAML file whose Wasm
filter carries it as `configuration: {\"@type\": ...StringValue, value: |` followed by the JSON.

`jwt-guard <COMMAND> --help` describes each command.

Exit codes:
  0  done: the configuration is valid, the request would go upstream, the token (proof) was minted
  1  the configuration is invalid (the filter would refuse it)
  2  wrong command line
  3  explain: the request would be refused (401 or 403)
  4  a file cannot be read or used (key, key set, claims)
  5  import: a field of the source cannot be expressed (without --allow-lossy)
";

fn main() -> ExitCode {
    let argv: Result<Vec<String>, _> = std::env::args_os()
        .skip(1)
        .map(|arg| arg.into_string())
        .collect();
    let report = match argv {
        Ok(argv) => run(&argv).unwrap_or_else(report_failure),
        Err(arg) => report_failure(Failure::usage(
            "",
            format!("an argument is not UTF-8: {arg:?}"),
        )),
    };
    // A closed pipe (`jwt-guard explain ... | head -1`) is not an error worth reporting.
    let _ = std::io::stdout().write_all(report.stdout.as_bytes());
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().write_all(report.stderr.as_bytes());
    ExitCode::from(report.code)
}

fn report_failure(failure: Failure) -> Report {
    let (code, stderr) = match failure {
        Failure::Usage { command, message } => {
            let help = if command.is_empty() {
                "jwt-guard --help".to_string()
            } else {
                format!("jwt-guard {command} --help")
            };
            (
                exit::USAGE,
                format!("jwt-guard: {message}\n(see `{help}`)\n"),
            )
        }
        Failure::InvalidConfig(line) => (exit::INVALID_CONFIG, format!("{line}\n")),
        Failure::Input(message) => (exit::INPUT, format!("jwt-guard: {message}\n")),
    };
    Report {
        code,
        stdout: String::new(),
        stderr,
    }
}

fn run(argv: &[String]) -> Result<Report, Failure> {
    let Some((command, rest)) = argv.split_first() else {
        return Err(Failure::usage(
            "",
            "no command given (check, explain, token, dpop or import)",
        ));
    };
    match command.as_str() {
        "check" => check::run(rest),
        "explain" => explain::run(rest),
        "token" => token::run(rest),
        "dpop" => dpop::run(rest),
        "import" => import::run(rest),
        "-h" | "--help" | "help" => Ok(Report::ok(
            match rest.first().map(String::as_str) {
                Some("check") => check::HELP,
                Some("explain") => explain::HELP,
                Some("token") => token::HELP,
                Some("dpop") => dpop::HELP,
                Some("import") => import::HELP,
                _ => HELP,
            }
            .to_string(),
        )),
        "-V" | "--version" => Ok(Report::ok(format!(
            "jwt-guard {}\n",
            env!("CARGO_PKG_VERSION")
        ))),
        other => Err(Failure::usage(
            "",
            format!("unknown command {other:?} (check, explain, token, dpop or import)"),
        )),
    }
}
