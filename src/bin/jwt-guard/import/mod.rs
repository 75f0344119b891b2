//! `jwt-guard import jwt-authn|istio`: another system's policy turned into a jwt-guard
//! configuration (stdout), with a line on stderr for every field read (see [`FieldReport`]).
//! The configuration printed is always checked by `Config::from_json` before it is printed.

mod field_report;
mod istio;
mod jwt_authn;

#[cfg(test)]
pub use field_report::Fate;
pub use field_report::FieldReport;

use crate::report::{Failure, Report};

pub const HELP: &str = "\
jwt-guard import: turn another system's policy into a jwt-guard configuration

Usage:
  jwt-guard import jwt-authn FILE [--allow-lossy]
  jwt-guard import istio FILE... [--allow-lossy] [--wasm-plugin OUT] [--namespace NS]
                                 [--root-namespace NS]

jwt-authn  an Envoy JwtAuthentication configuration (YAML or JSON, as under typed_config)
istio      RequestAuthentication and AuthorizationPolicy objects (multi-document YAML)

The configuration goes to stdout; every field read is reported on stderr as translated,
translated with a changed default, not expressible, or ignored. Exit 5 when a field is not
expressible: the configuration is then printed only with --allow-lossy (exit 0).
`jwt-guard import jwt-authn --help` and `jwt-guard import istio --help` say more.
";

pub fn run(argv: &[String]) -> Result<Report, Failure> {
    let Some((source, rest)) = argv.split_first() else {
        return Err(Failure::usage(
            "import",
            "say what to import: jwt-authn or istio",
        ));
    };
    match source.as_str() {
        "jwt-authn" => jwt_authn::run(rest),
        "istio" => istio::run(rest),
        "-h" | "--help" => Ok(Report::ok(HELP.to_string())),
        other => Err(Failure::usage(
            "import",
            format!("unknown source {other:?} (jwt-authn or istio)"),
        )),
    }
}
