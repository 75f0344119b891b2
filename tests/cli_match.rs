//! `jwt-guard explain` on path patterns, `not_*` and `bind` (tokens from tests/fixtures,
//! minted by PyJWT, on their fixed clock): each binding's two sides, and why a rule's match
//! did not hold.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_jwt-guard");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const NOW: &str = "1800000000";

fn fixtures() -> Value {
    let text = std::fs::read_to_string(Path::new(ROOT).join("tests/fixtures/tokens.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn explain(config: &Path, args: &[&str]) -> String {
    let output = Command::new(BIN)
        .arg("explain")
        .arg(config)
        .args(["--now", NOW])
        .args(args)
        .output()
        .expect("run jwt-guard");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn explain_shows_bindings_and_path_mismatches() {
    let fixtures = fixtures();
    let config = json!({
        "providers": {"tenants": {
            "issuer": "https://{host}.example.com",
            "issuer_params": {"host": ["idp", "login"]},
            "jwks": fixtures["jwks"],
        }},
        "rules": [
            {"match": {"paths": ["/public/*"], "not_paths": ["/public/admin/*"],
                       "not_methods": ["DELETE"], "not_hosts": ["admin.example.com"]},
             "allow_anonymous": true},
            {"match": {"paths": ["/t/{host}/{**}"]}, "provider": "tenants",
             "bind": [{"issuer_param": "host", "path_param": "host"},
                      {"claim": "sub", "header": "x-user"}]},
        ]
    });
    let dir = std::env::temp_dir().join(format!("jwt-guard-cli-match-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let bearer = format!(
        "authorization: Bearer {}",
        fixtures["tokens"]["valid_ES256"].as_str().unwrap()
    );

    let out = explain(
        &path,
        &[
            "--path",
            "/t/login/x",
            "--header",
            &bearer,
            "--header",
            "x-user: alice",
        ],
    );
    assert!(
        out.contains(
            "rules[1] (rule_1): the first rule whose match holds (paths [\"/t/{host}/{**}\"])"
        ),
        "{out}"
    );
    assert!(out.contains("settings: providers [tenants], bind"), "{out}");
    assert!(
        out.contains("bind[0] issuer {host} = \"idp\" vs path {host} of \"/t/{host}/{**}\" = \"login\": → binding_mismatch"),
        "{out}"
    );
    assert!(
        out.contains("decision: refused 403 binding_mismatch"),
        "{out}"
    );

    let out = explain(
        &path,
        &[
            "--path",
            "/t/idp/x",
            "--header",
            &bearer,
            "--header",
            "x-user: alice",
        ],
    );
    assert!(
        out.contains(
            "bind[0] issuer {host} = \"idp\" vs path {host} of \"/t/{host}/{**}\" = \"idp\": ok"
        ),
        "{out}"
    );
    assert!(
        out.contains("bind[1] claim sub = \"alice\" vs header x-user (once) = \"alice\": ok"),
        "{out}"
    );

    let out = explain(&path, &["--path", "/t/idp/x", "--header", &bearer]);
    assert!(
        out.contains(
            "bind[1] claim sub = \"alice\" vs header x-user (once) = (absent): → binding_mismatch"
        ),
        "{out}"
    );

    let out = explain(
        &path,
        &[
            "--path",
            "/public/admin/x",
            "--method",
            "DELETE",
            "--host",
            "admin.example.com",
        ],
    );
    assert!(
        out.contains(
            "skipped rules[0] (rule_0): path \"/public/admin/x\" is one of not_paths [\"/public/admin/*\"]; \
             method DELETE is one of not_methods [DELETE]; host \"admin.example.com\" is one of not_hosts [admin.example.com]"
        ),
        "{out}"
    );
    assert!(out.contains("skipped rules[1] (rule_1): path \"/public/admin/x\" is not one of paths [\"/t/{host}/{**}\"]"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}
