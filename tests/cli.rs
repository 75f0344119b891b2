//! The command-line tool, run as a process (`CARGO_BIN_EXE_jwt-guard`): `check`'s messages and
//! exit codes, `explain`'s decisions (tokens from tests/fixtures, minted by PyJWT, on their
//! fixed clock) and that it never prints a token, and `token`'s tokens verified by the core.
//! tests/integration/test_cli.py checks minted tokens with PyJWT and in Envoy, and `explain`
//! against Envoy on the demo's requests.

// A test crate: its helpers (not only its #[test] functions) fail loudly, as tests should.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use jwt_guard::config::Config;
use jwt_simple::prelude::{ES256KeyPair, ES384KeyPair, Ed25519KeyPair, RS256KeyPair};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_jwt-guard");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const NOW: &str = "1800000000";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.stdout))
    }
}

fn run(args: &[&str]) -> Run {
    let output = Command::new(BIN)
        .args(args)
        .current_dir(ROOT)
        .output()
        .expect("run jwt-guard");
    Run {
        code: output.status.code().expect("an exit code, not a signal"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// A directory of its own for each test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("jwt-guard-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn fixtures() -> Value {
    let text = std::fs::read_to_string(Path::new(ROOT).join("tests/fixtures/tokens.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn fixture_token(name: &str) -> String {
    fixtures()["tokens"][name].as_str().unwrap().to_string()
}

// ------------------------------------------------------------------------------------ check

#[test]
fn check_accepts_a_valid_configuration_and_the_shipped_envoy_yaml() {
    let dir = scratch("check-valid");
    let config = json!({
        "providers": {"corp": {"issuer": "https://idp", "remote_jwks": {"cluster": "idp", "uri": "https://idp/k"}}},
        "rules": [{"match": {"prefix": "/"}, "provider": "corp"}, {"match": {"prefix": "/x"}, "provider": "corp"}]
    });
    let path = write(&dir, "valid.json", &config.to_string());
    let out = run(&["check", &path]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!(
            "{path}: valid: 1 provider (corp), 2 rules\n  \
             note: rules[0] (rule_0) matches every request (prefix \"/\"): ordered matching never reaches rules[1..]; only route metadata can still bind those by name\n  \
             note: provider corp: keys are fetched at run time through cluster \"idp\" (remote_jwks); `jwt-guard explain` needs them as --jwks corp=FILE\n"
        )
    );
    assert_eq!(out.stderr, "");

    let out = run(&["check", "envoy/envoy.yaml"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.starts_with("envoy/envoy.yaml:") && out.stdout.contains(": valid: "),
        "{}",
        out.stdout
    );
}

#[test]
fn check_prints_the_filters_own_line_for_each_invalid_configuration() {
    let dir = scratch("check-invalid");
    let table = [
        (
            r#"{"providers": {"corp": {"issuer": "https://idp", "jwks": {"keys": []}}}, "rules": [{"match": {"prefix": "/"}}]}"#,
            "providers.corp.jwks.keys: holds no signature verification key",
        ),
        (
            r#"{"providers": {"corp": {"issuer": "https://idp", "remote_jwks": {"cluster": "idp", "uri": "https://idp/k"}}}, "rules": [{"match": {"prefix": "/"}, "provider": "corp2"}]}"#,
            r#"rules[0].provider: unknown provider "corp2""#,
        ),
        (r#"{"rules": []}"#, "rules: must hold at least one rule"),
        (
            r#"{"rules": [{"match": {"prefix": "/"}, "allow_anonymous": true}]}"#,
            "rules[0].provider: the rule needs a token provider but none is configured",
        ),
        (
            r#"{"realm": "a\"b", "rules": [{"match": {"prefix": "/"}, "disabled": true}]}"#,
            r#"realm: must be non-empty printable ASCII without '"' or '\'"#,
        ),
        (
            r#"{"rules": [{"match": {"prefix": "/", "methodz": ["GET"]}, "disabled": true}]}"#,
            "rules[0].match.methodz: unknown field `methodz`, expected one of `prefix`, `path`, `methods`, `hosts`, `route_name`, `paths`, `not_paths`, `not_methods`, `not_hosts` at line 1 column 46",
        ),
        (
            "{\"rules\": [",
            "rules: EOF while parsing a list at line 1 column 11",
        ),
    ];
    for (index, (config, message)) in table.into_iter().enumerate() {
        let path = write(&dir, &format!("invalid{index}.json"), config);
        let out = run(&["check", &path]);
        let line = format!("jwt-guard: invalid configuration: {message}\n");
        assert_eq!((out.code, &out.stderr), (1, &line), "{config}");
        assert_eq!(out.stdout, format!("{path}: invalid\n"));
        // The very text the filter logs in on_configure.
        let err = Config::from_json(config.as_bytes()).unwrap_err();
        assert_eq!(format!("jwt-guard: invalid configuration: {err}\n"), line);
    }
}

#[test]
fn check_reads_every_configuration_of_an_envoy_yaml_file() {
    let dir = scratch("check-yaml");
    let yaml = "\
static_resources:
  listeners:
  - filters:
    - typed_config:
        config:
          configuration:
            \"@type\": type.googleapis.com/google.protobuf.StringValue
            value: |
              {\"rules\": [{\"match\": {\"prefix\": \"/\"}, \"disabled\": true}]}
    - typed_config:
        config:
          configuration:
            \"@type\": type.googleapis.com/google.protobuf.StringValue
            value: |
              {\"rules\": [{\"match\": {\"prefix\": \"/\"}, \"provider\": \"corp\"}]}
";
    let path = write(&dir, "envoy.yaml", yaml);
    let out = run(&["check", &path]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stdout,
        format!("{path}:8: valid: 0 providers, 1 rule\n{path}:14: invalid\n")
    );
    assert_eq!(
        out.stderr,
        "jwt-guard: invalid configuration: rules[0].provider: unknown provider \"corp\"\n"
    );
    // explain needs one of them.
    let out = run(&["explain", &path, "--path", "/"]);
    assert_eq!(out.code, 4);
    assert!(
        out.stderr
            .contains("holds 2 jwt-guard configurations (lines 8, 14): choose one with --index N"),
        "{}",
        out.stderr
    );
    let out = run(&["explain", &path, "--path", "/", "--index", "1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(&["explain", &path, "--path", "/", "--index", "2"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "jwt-guard: invalid configuration: rules[0].provider: unknown provider \"corp\"\n"
    );
    let none = write(&dir, "none.yaml", "admin:\n  address: {}\n");
    assert_eq!(run(&["check", &none]).code, 4);
}

#[test]
fn command_line_mistakes_and_help() {
    let table: [(&[&str], i32, &str); 10] = [
        (&[], 2, "no command given"),
        (&["frob"], 2, "unknown command \"frob\""),
        (&["check"], 2, "CONFIG is missing"),
        (&["check", "a", "b"], 2, "unexpected argument \"b\""),
        (
            &["check", "/nonexistent/x.json"],
            4,
            "cannot read /nonexistent/x.json",
        ),
        (&["explain", "envoy/envoy.yaml"], 2, "--path is missing"),
        (
            &["explain", "envoy/envoy.yaml", "--path"],
            2,
            "--path needs a value",
        ),
        (
            &[
                "explain",
                "envoy/envoy.yaml",
                "--path",
                "/",
                "--peer",
                "nope",
            ],
            2,
            "--peer \"nope\" is not an address",
        ),
        (
            &["explain", "envoy/envoy.yaml", "--path", "/", "--frob"],
            2,
            "unknown option --frob",
        ),
        (
            &[
                "explain",
                "envoy/envoy.yaml",
                "--path",
                "/",
                "--now",
                "soon",
            ],
            2,
            "--now must be a whole number",
        ),
    ];
    for (args, code, message) in table {
        let out = run(args);
        assert_eq!(out.code, code, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(message), "{args:?}: {}", out.stderr);
        assert_eq!(out.stdout, "", "{args:?}");
    }
    for (args, start) in [
        (&["--help"][..], "jwt-guard: the jwt-guard filter's core"),
        (&["check", "--help"], "Usage: jwt-guard check CONFIG"),
        (
            &["explain", "--help"],
            "Usage: jwt-guard explain CONFIG --path PATH",
        ),
        (&["token", "--help"], "Usage: jwt-guard token --key KEY"),
        (
            &["help", "explain"],
            "Usage: jwt-guard explain CONFIG --path PATH",
        ),
    ] {
        let out = run(args);
        assert_eq!(out.code, 0, "{args:?}");
        assert!(out.stdout.starts_with(start), "{args:?}: {}", out.stdout);
        assert!(out.stdout.contains("Exit codes"), "{args:?}");
    }
}

// ---------------------------------------------------------------------------------- explain

fn explain_config(dir: &Path) -> String {
    let config = json!({
        "realm": "api",
        "geo": {"country_header": "x-geo-country"},
        "providers": {"corp": {
            "issuer": fixtures()["issuer"], "audiences": ["orders"], "jwks": fixtures()["jwks"],
            "from_params": ["access_token"], "max_lifetime_seconds": 86400,
            "claim_to_headers": [{"claim": "sub", "header": "x-user"}]
        }},
        "rules": [
            {"name": "public", "match": {"prefix": "/public"}, "allow_anonymous": true},
            {"match": {"prefix": "/healthz"}, "disabled": true},
            {"name": "admin", "match": {"prefix": "/admin"}, "provider": "corp", "roles": {"any": ["admin"]}},
            {"match": {"prefix": "/write"}, "provider": "corp", "scopes": {"all": ["orders:write", "orders:admin"]}},
            {"match": {"prefix": "/internal"}, "provider": "corp", "source_ips": {"allow": ["10.0.0.0/8"]}},
            {"match": {"prefix": "/geo"}, "provider": "corp", "countries": {"allow": ["US"]}},
            {"match": {"prefix": "/beta"}, "provider": "corp", "dry_run": true, "roles": {"any": ["beta"]}},
            {"match": {"prefix": "/orders"}, "provider": "corp"}
        ]
    });
    write(dir, "config.json", &config.to_string())
}

struct Row {
    args: Vec<String>,
    /// Token fixtures this row sends (never to be printed).
    tokens: Vec<String>,
    code: i32,
    decision: &'static str,
    status: Value,
    reason: Value,
    rule: Value,
    /// Upstream changes (allowed) or the response's WWW-Authenticate (refused).
    detail: Value,
}

fn row(path: &str) -> Row {
    Row {
        args: vec!["--path".into(), path.into()],
        tokens: vec![],
        code: 0,
        decision: "allowed",
        status: Value::Null,
        reason: Value::Null,
        rule: Value::Null,
        detail: json!([]),
    }
}

impl Row {
    fn bearer(mut self, name: &str) -> Row {
        let token = fixture_token(name);
        self.args.push("--header".into());
        self.args.push(format!("authorization: Bearer {token}"));
        self.tokens.push(token);
        self
    }
    fn arg(mut self, name: &str, value: &str) -> Row {
        self.args.push(name.into());
        self.args.push(value.into());
        self
    }
    fn rule(mut self, rule: &str) -> Row {
        self.rule = rule.into();
        self
    }
    fn upstream(mut self, changes: Value) -> Row {
        self.detail = changes;
        self
    }
    fn refused(mut self, status: u32, reason: &str, challenge: Option<&str>) -> Row {
        self.code = 3;
        self.decision = "refused";
        self.status = status.into();
        self.reason = reason.into();
        self.detail = challenge.map_or(Value::Null, Value::from);
        self
    }
    fn dry_run(mut self, reason: &str) -> Row {
        self.decision = "dry_run";
        self.status = 403.into();
        self.reason = reason.into();
        self.detail = json!([{"set": "x-jwt-guard-dry-run", "value": format!("403 {reason}")}]);
        self
    }
}

fn explain_table() -> Vec<Row> {
    let removed = json!([{"remove": "authorization"}, {"set": "x-user", "value": "alice"}]);
    let expired =
        r#"Bearer realm="api", error="invalid_token", error_description="the token has expired""#;
    vec![
        row("/public/x").rule("public"),
        row("/public/x").arg("--header", "x-user: mallory").rule("public").upstream(json!([{"remove": "x-user"}])),
        row("/healthz").arg("--header", "authorization: Bearer garbage").rule("rule_1"),
        row("/orders/1").rule("rule_7").refused(401, "missing", Some(r#"Bearer realm="api""#)),
        row("/orders/1").bearer("valid_ES256").rule("rule_7").upstream(removed.clone()),
        row("/orders/1").bearer("valid_RS256").rule("rule_7").upstream(removed.clone()),
        row("/orders/1").bearer("valid_PS256").rule("rule_7").upstream(removed.clone()),
        row("/orders/1").bearer("valid_EdDSA").rule("rule_7").upstream(removed.clone()),
        row("/orders/1").bearer("valid_HS256").rule("rule_7").upstream(removed.clone()),
        row(&format!("/orders/1?a=1&access_token={}", fixture_token("valid_ES384")))
            .rule("rule_7")
            .upstream(json!([{"set": ":path", "value": "/orders/1?a=1"}, {"set": "x-user", "value": "alice"}])),
        row("/orders/1").bearer("expired").rule("rule_7").refused(401, "expired", Some(expired)),
        row("/orders/1").bearer("valid_ES256").arg("--now", "1800001000").rule("rule_7").refused(401, "expired", Some(expired)),
        row("/orders/1").bearer("bad_signature").rule("rule_7").refused(
            401,
            "bad_signature",
            Some(r#"Bearer realm="api", error="invalid_token", error_description="the token signature is invalid""#),
        ),
        row("/admin").bearer("policy_user").rule("admin").refused(
            403,
            "missing_role",
            Some(r#"Bearer realm="api", error="insufficient_scope", error_description="the token lacks a required role""#),
        ),
        row("/admin").bearer("policy_admin").rule("admin").upstream(removed.clone()),
        row("/write").bearer("policy_admin").rule("rule_3").refused(
            403,
            "missing_scope",
            Some(r#"Bearer realm="api", error="insufficient_scope", error_description="the token lacks a required scope", scope="orders:write orders:admin""#),
        ),
        row("/internal").bearer("valid_ES256").arg("--peer", "10.1.2.3").rule("rule_4").upstream(removed.clone()),
        row("/internal").bearer("valid_ES256").arg("--peer", "192.168.0.1:4000").rule("rule_4").refused(403, "ip_not_allowed", None),
        row("/internal").bearer("valid_ES256").rule("rule_4").refused(403, "ip_not_allowed", None),
        row("/geo").bearer("valid_ES256").arg("--header", "x-geo-country: US").rule("rule_5").upstream(removed.clone()),
        row("/geo").bearer("valid_ES256").arg("--header", "x-geo-country: CA").rule("rule_5").refused(403, "country_not_allowed", None),
        row("/beta").bearer("valid_ES256").rule("rule_6").dry_run("missing_role"),
        row("/elsewhere").bearer("valid_ES256").refused(403, "no_matching_rule", None),
        row("/public").bearer("policy_admin").arg("--route-rule", "admin").rule("admin").upstream(removed),
        row("/public").arg("--route-rule", "nope").refused(403, "no_matching_rule", None),
    ]
}

#[test]
fn explain_decides_each_request_as_the_filter_does() {
    let dir = scratch("explain");
    let config = explain_config(&dir);
    for row in explain_table() {
        let mut args: Vec<&str> = vec!["explain", &config, "--json"];
        args.extend(row.args.iter().map(String::as_str));
        if !row.args.iter().any(|a| a == "--now") {
            args.extend(["--now", NOW]);
        }
        let out = run(&args);
        let what = row.args.join(" ");
        assert_eq!(out.code, row.code, "{what}: {}{}", out.stdout, out.stderr);
        let got = out.json();
        assert_eq!(got["decision"], row.decision, "{what}");
        assert_eq!(
            (&got["status"], &got["reason"]),
            (&row.status, &row.reason),
            "{what}"
        );
        assert_eq!(got["rule"], row.rule, "{what}");
        match row.decision {
            "refused" => {
                assert_eq!(got["upstream"], Value::Null, "{what}");
                let response = &got["response"];
                assert_eq!(response["status"], row.status, "{what}");
                assert_eq!(response["headers"]["content-type"], "application/json");
                assert_eq!(
                    response["headers"]["www-authenticate"], row.detail,
                    "{what}"
                );
                let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
                assert_eq!(body["reason"], row.reason, "{what}");
            }
            _ => {
                assert_eq!(got["upstream"], row.detail, "{what}");
                assert_eq!(got["response"], Value::Null, "{what}");
            }
        }
        assert_eq!(got["outcome"]["decision"], row.decision, "{what}");
    }
}

#[test]
fn explain_never_prints_the_token() {
    let dir = scratch("explain-secret");
    let config = explain_config(&dir);
    let mut checked = 0;
    for row in explain_table() {
        for json in [false, true] {
            let mut args: Vec<&str> = vec!["explain", &config];
            if json {
                args.push("--json");
            }
            args.extend(row.args.iter().map(String::as_str));
            if !row.args.iter().any(|a| a == "--now") {
                args.extend(["--now", NOW]);
            }
            let out = run(&args);
            let printed = format!("{}{}", out.stdout, out.stderr);
            let tokens = row.tokens.iter().cloned().chain(
                // A token in the query is one too.
                row.args
                    .iter()
                    .filter_map(|a| a.split_once("access_token=").map(|(_, t)| t.to_string())),
            );
            for token in tokens {
                let signature = token.rsplit('.').next().unwrap();
                assert!(
                    !printed.contains(&token) && !printed.contains(signature),
                    "{printed}"
                );
                // Where a rule looked for it, the token is named by its fingerprint.
                let fingerprint = format!("sha256:{}", &sha256_hex(&token)[..12]);
                let looked = row.reason != "no_matching_rule";
                if json {
                    let expected = if looked {
                        fingerprint.into()
                    } else {
                        Value::Null
                    };
                    assert_eq!(out.json()["token_sha256"], expected);
                } else {
                    assert_eq!(printed.contains(&fingerprint), looked, "{printed}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 30, "{checked}");
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn explain_shows_each_step() {
    let dir = scratch("explain-steps");
    let config = explain_config(&dir);
    let explain = |args: &[&str]| {
        let mut all = vec!["explain", config.as_str(), "--now", NOW];
        all.extend(args);
        run(&all).stdout
    };
    let user = format!("authorization: Bearer {}", fixture_token("policy_user"));
    let out = explain(&["--path", "/admin", "--header", &user]);
    for line in [
        "  skipped rules[0] (public): path \"/admin\" is not under prefix \"/public\"\n",
        "  skipped rules[1] (rule_1): path \"/admin\" is not under prefix \"/healthz\"\n",
        "  rules[2] (admin): the first rule whose match holds (prefix \"/admin\")\n",
        "  well-formed; header: alg \"ES256\", kid \"es256\", typ \"JWT\"\n",
        "  provider corp (issuer \"https://idp.example.com\", the token's iss):\n",
        "    key kid \"es256\" (ES256): signature valid\n",
        "    exp 1800000600 (in 600 s; clock skew 60 s): ok\n",
        "    iat 1799999990 (10 s ago): ok\n",
        "    aud \"orders\", accepted [orders]: ok\n",
        "    lifetime exp − iat = 610 s, at most 86400 s: ok\n",
        "    → accepted by corp\n",
        "  roles any [admin] all [], token's roles [user]: → missing_role\n",
        "decision: refused 403 missing_role\n",
    ] {
        assert!(out.contains(line), "{line:?} not in\n{out}");
    }
    let expired = format!("authorization: Bearer {}", fixture_token("expired"));
    let out = explain(&["--path", "/orders", "--header", &expired]);
    assert!(
        out.contains("    exp 1799996400 (3600 s ago; clock skew 60 s): → expired\n"),
        "{out}"
    );
    assert!(out.contains("    → refused by corp: expired\n"), "{out}");
    let unknown = format!("authorization: Bearer {}", fixture_token("unknown_kid"));
    let out = explain(&["--path", "/orders", "--header", &unknown]);
    assert!(
        out.contains(
            "no key of the token's alg has its kid or no kid (a token without kid: no key of its alg) → unknown_key"
        ),
        "{out}"
    );
    let out = explain(&[
        "--path",
        "/internal",
        "--peer",
        "192.168.0.1",
        "--header",
        &user,
    ]);
    assert!(
        out.contains(
            "  source_ips allow [10.0.0.0/8] deny [], client 192.168.0.1: → ip_not_allowed\n"
        ),
        "{out}"
    );
    let out = explain(&["--path", "/orders"]);
    assert!(
        out.contains(
            "  no token in: header authorization (\"Bearer \"), query parameter access_token\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("    www-authenticate: Bearer realm=\"api\"\n"),
        "{out}"
    );
}

// ------------------------------------------------------------------------------------ token

fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&jwt_guard::token::jws::decode_part(part).unwrap()).unwrap()
}

fn header(token: &str) -> Value {
    let part = token.split('.').next().unwrap();
    serde_json::from_slice(&jwt_guard::token::jws::decode_part(part).unwrap()).unwrap()
}

/// Mints a token (trailing newline checked and removed).
fn mint(args: &[&str]) -> String {
    let mut all = vec!["token"];
    all.extend(args);
    let out = run(&all);
    assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
    assert_eq!(out.stdout.matches('\n').count(), 1);
    out.stdout.trim_end().to_string()
}

/// `explain`'s decision for a GET of /orders with this token, on a one-provider configuration.
fn decision_for(dir: &Path, jwks: Value, token: &str, now: &str) -> (String, Value) {
    let config = json!({
        "providers": {"p": {"issuer": "https://issuer.test", "audiences": ["orders"], "jwks": jwks}},
        "rules": [{"match": {"prefix": "/"}, "provider": "p"}]
    });
    let config = write(dir, "token-config.json", &config.to_string());
    let bearer = format!("authorization: Bearer {token}");
    let out = run(&[
        "explain", &config, "--path", "/orders", "--json", "--now", now, "--header", &bearer,
    ]);
    assert!(out.code == 0 || out.code == 3, "{}", out.stderr);
    let got = out.json();
    (
        got["decision"].as_str().unwrap().to_string(),
        got["reason"].clone(),
    )
}

#[test]
fn tokens_from_each_kind_of_key_are_accepted_by_the_core() {
    let dir = scratch("token-kinds");
    let claims = [
        "--iss",
        "https://issuer.test",
        "--aud",
        "orders",
        "--sub",
        "alice",
        "--now",
        NOW,
        "--exp-in",
        "300",
    ];
    let es256 = ES256KeyPair::generate().with_key_id("e1");
    let es384 = ES384KeyPair::generate();
    let ed = Ed25519KeyPair::generate();
    let rsa = RS256KeyPair::generate(2048).unwrap();
    let public = |jwk: String, alg: &str| {
        let mut jwk: Value = serde_json::from_str(&jwk).unwrap();
        jwk["alg"] = alg.into();
        jwk["kid"] = "k".into();
        jwk
    };
    // 64 bytes: enough for HS384 (the filter wants at least the hash's size).
    let secret =
        "and0LWd1YXJkIHRlc3Qgc2VjcmV0LCA2NCBieXRlcyBsb25nLCBmb3IgSFMzODQgYW5kIEhTNTEyIHRlc3RzLg";
    let table: Vec<(&str, String, Vec<&str>, &str, Value)> = vec![
        (
            "es256.pem",
            es256.to_pem().unwrap(),
            vec![],
            "ES256",
            public(es256.public_key().to_jwk(), "ES256"),
        ),
        (
            "es256.jwk",
            es256.to_jwk(),
            vec![],
            "ES256",
            public(es256.public_key().to_jwk(), "ES256"),
        ),
        (
            "es384.pem",
            es384.to_pem().unwrap(),
            vec![],
            "ES384",
            public(es384.public_key().to_jwk(), "ES384"),
        ),
        (
            "ed.pem",
            ed.to_pem(),
            vec![],
            "EdDSA",
            public(ed.public_key().to_jwk(), "EdDSA"),
        ),
        (
            "ed.jwk",
            ed.to_jwk(),
            vec![],
            "EdDSA",
            public(ed.public_key().to_jwk(), "EdDSA"),
        ),
        (
            "rsa.pem",
            rsa.to_pem().unwrap(),
            vec![],
            "RS256",
            public(rsa.public_key().to_jwk(), "RS256"),
        ),
        (
            "rsa.jwk",
            rsa.to_jwk(),
            vec!["--alg", "RS512"],
            "RS512",
            public(rsa.public_key().to_jwk(), "RS512"),
        ),
        (
            "rsa-ps.pem",
            rsa.to_pem().unwrap(),
            vec!["--alg", "PS256"],
            "PS256",
            public(rsa.public_key().to_jwk(), "PS256"),
        ),
        (
            "oct.jwk",
            json!({"kty": "oct", "k": secret}).to_string(),
            vec!["--alg", "HS384"],
            "HS384",
            json!({"kty": "oct", "k": secret, "alg": "HS384", "kid": "k"}),
        ),
    ];
    for (file, key, extra, alg, jwk) in table {
        let key_path = write(&dir, file, &key);
        let mut args = vec!["--key", key_path.as_str(), "--kid", "k"];
        args.extend(claims);
        args.extend(extra);
        let token = mint(&args);
        assert_eq!(
            header(&token),
            json!({"alg": alg, "kid": "k", "typ": "JWT"}),
            "{file}"
        );
        assert_eq!(
            payload(&token),
            json!({"iss": "https://issuer.test", "aud": "orders", "sub": "alice", "iat": 1800000000, "exp": 1800000300}),
            "{file}"
        );
        let jwks = json!({"keys": [jwk]});
        assert_eq!(
            decision_for(&dir, jwks.clone(), &token, NOW),
            ("allowed".into(), Value::Null),
            "{file}"
        );
        // Its exp is what was asked for: 300 s later it is expired (60 s skew).
        assert_eq!(
            decision_for(&dir, jwks, &token, "1800000360"),
            ("refused".into(), "expired".into()),
            "{file}"
        );
    }
}

#[test]
fn the_demo_key_mints_tokens_envoy_yaml_accepts() {
    let token = mint(&[
        "--key",
        "envoy/demo-keys/demo-es256.key.pem",
        "--kid",
        "demo-es256",
        "--iss",
        "https://idp.example.com",
        "--aud",
        "orders",
        "--sub",
        "bob",
        "--now",
        NOW,
        "--claim",
        r#"roles=["admin"]"#,
        "--claim",
        "email_verified=true",
    ]);
    let bearer = format!("authorization: Bearer {token}");
    // The demo provider fetches its keys (remote_jwks): the set its JWKS server serves.
    let out = run(&[
        "explain",
        "envoy/envoy.yaml",
        "--jwks",
        "demo=envoy/demo-keys/demo-jwks.json",
        "--path",
        "/admin",
        "--route-rule",
        "admin",
        "--json",
        "--now",
        NOW,
        "--header",
        &bearer,
    ]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(out.json()["decision"], "allowed");
}

#[test]
fn claims_come_from_flags_a_file_and_defaults() {
    let dir = scratch("token-claims");
    let key = write(&dir, "k.jwk", &json!({"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0xMjM0NTY3ODkwYWI", "kid": "from-jwk"}).to_string());
    let file = write(
        &dir,
        "claims.json",
        r#"{"sub": "file", "exp": 5, "tenant": "acme", "nested": {"a": [1, 2]}}"#,
    );
    let token = mint(&[
        "--key",
        &key,
        "--now",
        NOW,
        "--claims",
        &file,
        "--sub",
        "flag",
        "--aud",
        "a",
        "--aud",
        "b",
        "--claim",
        r#"roles=["admin","ops"]"#,
        "--claim",
        "email_verified=true",
        "--claim",
        "n=42",
        "--claim",
        "plain=not json",
        "--claim",
        "tenant=globex",
        "--nbf-in",
        "-5",
    ]);
    assert_eq!(
        header(&token),
        json!({"alg": "HS256", "kid": "from-jwk", "typ": "JWT"})
    );
    assert_eq!(
        payload(&token),
        json!({"sub": "flag", "exp": 5, "iat": 1800000000, "nbf": 1799999995, "tenant": "globex",
               "nested": {"a": [1, 2]}, "aud": ["a", "b"], "roles": ["admin", "ops"],
               "email_verified": true, "n": 42, "plain": "not json"})
    );
    let token = mint(&[
        "--key", &key, "--now", NOW, "--no-exp", "--no-iat", "--no-kid",
    ]);
    assert_eq!(header(&token), json!({"alg": "HS256", "typ": "JWT"}));
    assert_eq!(payload(&token), json!({}));
    let token = mint(&["--key", &key, "--now", NOW, "--exp-in", "-600"]);
    assert_eq!(
        payload(&token),
        json!({"iat": 1800000000, "exp": 1799999400})
    );
    let token = mint(&["--key", &key, "--now", NOW]);
    assert_eq!(
        payload(&token),
        json!({"iat": 1800000000, "exp": 1800003600})
    );
}

#[test]
fn unusable_keys_and_flags_are_refused() {
    let dir = scratch("token-errors");
    let es256 = ES256KeyPair::generate();
    let public_jwk = write(&dir, "public.jwk", &es256.public_key().to_jwk());
    let public_pem = write(&dir, "public.pem", &es256.public_key().to_pem().unwrap());
    let private = write(&dir, "private.pem", &es256.to_pem().unwrap());
    let sec1 = write(
        &dir,
        "sec1.pem",
        "-----BEGIN EC PRIVATE KEY-----\nMAA=\n-----END EC PRIVATE KEY-----\n",
    );
    let garbage = write(&dir, "garbage.txt", "hello");
    let claims = write(&dir, "claims.json", "[1]");
    let table: [(&[&str], i32, &str); 11] = [
        (
            &["--key", &public_jwk],
            4,
            "an EC P-256 key without its private part (d): a public key cannot sign",
        ),
        (
            &["--key", &public_pem],
            4,
            "a PUBLIC KEY: a private key is needed to sign",
        ),
        (&["--key", &sec1], 4, "a SEC1 EC key: convert it to PKCS#8"),
        (
            &["--key", &garbage],
            4,
            "neither a JWK (JSON) nor a PEM file",
        ),
        (
            &["--key", &private, "--alg", "RS256"],
            4,
            "an EC P-256 key cannot sign RS256",
        ),
        (
            &["--key", &private, "--alg", "none"],
            2,
            "--alg \"none\" is not an algorithm jwt-guard verifies",
        ),
        (
            &["--key", &private, "--claim", "novalue"],
            2,
            "--claim \"novalue\": write it as NAME=VALUE",
        ),
        (
            &["--key", &private, "--claims", &claims],
            4,
            "not a JSON object",
        ),
        (
            &["--key", &private, "--kid", "a", "--no-kid"],
            2,
            "--kid and --no-kid contradict each other",
        ),
        (&["--iss", "x"], 2, "--key is missing"),
        (
            &["--key", "/nonexistent.pem"],
            4,
            "cannot read /nonexistent.pem",
        ),
    ];
    for (args, code, message) in table {
        let mut all = vec!["token"];
        all.extend(args);
        let out = run(&all);
        assert_eq!(out.code, code, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(message), "{args:?}: {}", out.stderr);
        assert_eq!(out.stdout, "");
    }
}

#[test]
fn explain_takes_a_remote_providers_keys_from_a_file() {
    let dir = scratch("explain-jwks");
    let config = json!({
        "providers": {
            "idp": {"issuer": fixtures()["issuer"], "remote_jwks": {"cluster": "idp", "uri": "https://idp.example.com/keys"}},
            "local": {"issuer": "https://local.example", "jwks": fixtures()["jwks"]}
        },
        "rules": [{"match": {"prefix": "/"}, "provider": "idp"}]
    });
    let config = write(&dir, "remote.json", &config.to_string());
    let bearer = format!("authorization: Bearer {}", fixture_token("valid_ES256"));
    let explain = |extra: &[&str]| {
        let mut args = vec![
            "explain",
            config.as_str(),
            "--path",
            "/",
            "--now",
            NOW,
            "--header",
            &bearer,
        ];
        args.extend(extra);
        run(&args)
    };
    // Before its first fetch the filter has no keys for it: 401 keys_unavailable, and a note.
    let out = explain(&[]);
    assert_eq!(out.code, 3);
    assert!(
        out.stdout
            .contains("decision: refused 401 keys_unavailable\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "note: provider idp has remote_jwks and no --jwks idp=FILE: keys in use: none"
        ),
        "{}",
        out.stdout
    );
    // The key set its URL would serve, validated key by key as a fetched one: a key the filter
    // cannot use is skipped (and said so), the others serve.
    let mut keys = fixtures()["jwks"]["keys"].as_array().unwrap().clone();
    keys.insert(
        0,
        json!({"kty": "EC", "crv": "P-521", "kid": "odd", "x": "AA", "y": "AA"}),
    );
    let jwks = write(&dir, "keys.json", &json!({"keys": keys}).to_string());
    let with_keys = format!("idp={jwks}");
    let out = explain(&["--jwks", &with_keys]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("decision: allowed"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains(&format!("note: --jwks idp={jwks}: keys[0]: ")),
        "{}",
        out.stdout
    );
    // A well-formed set with no usable key is put in force, empty, as the filter does.
    let empty = write(&dir, "empty.json", r#"{"keys": []}"#);
    let out = explain(&["--jwks", &format!("idp={empty}")]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("decision: refused 401 keys_unavailable\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("holds no usable key"), "{}", out.stdout);
    let junk = write(&dir, "junk.json", r#"{"kes": []}"#);
    for (arg, code, message) in [
        (format!("idp={junk}"), 4, "not a JWKS object".to_string()),
        (
            "nobody=x.json".to_string(),
            2,
            "--jwks: no provider \"nobody\"".to_string(),
        ),
        (
            format!("local={jwks}"),
            2,
            "provider \"local\" has no remote_jwks".to_string(),
        ),
        (
            "idp".to_string(),
            2,
            "write it as PROVIDER=FILE".to_string(),
        ),
    ] {
        let out = explain(&["--jwks", &arg]);
        assert_eq!(out.code, code, "{arg}: {}", out.stderr);
        assert!(out.stderr.contains(&message), "{arg}: {}", out.stderr);
    }
}

/// Issue #19: a deny rule that decides (its conditions, the custom response), a fall-through
/// (the rule it tries, and the rule the outcome names), and the new checks' lines.
#[test]
fn explain_shows_deny_rules_and_fall_through() {
    let dir = scratch("explain-deny");
    let fixtures = fixtures();
    let config = json!({
        "roles_claim": "roles",
        "providers": {"corp": {"issuer": fixtures["issuer"], "audiences": ["orders"],
                               "jwks": fixtures["jwks"]}},
        "rules": [
            {"name": "hide-admin", "action": "deny", "match": {"prefix": "/admin"},
             "roles": {"none": ["admin"]}, "refusal": {"status": 404, "body": "not found"}},
            {"name": "admin", "match": {"prefix": "/admin"}, "roles": {"any": ["admin"]}},
            {"name": "editors", "match": {"prefix": "/docs"}, "roles": {"any": ["editor"]},
             "principals": {"any": ["https://idp.example.com/*"]}, "fall_through": true},
            {"name": "readers", "match": {"prefix": "/docs"},
             "headers": [{"name": "x-mode", "not_values": ["write"]}],
             "claims": [{"name": "tenant", "not_values": ["acme"]}]}
        ]
    });
    let config = write(&dir, "deny.json", &config.to_string());
    let user = format!("authorization: Bearer {}", fixture_token("policy_user"));
    let explain = |path: &str| {
        run(&[
            "explain",
            config.as_str(),
            "--now",
            NOW,
            "--path",
            path,
            "--header",
            &user,
        ])
        .stdout
    };
    let out = explain("/admin");
    for line in [
        "  skipped rules[0] (hide-admin): a deny rule (never selected; checked after authentication)\n",
        "  rules[1] (admin): the first rule whose match holds (prefix \"/admin\")\n",
        "    → accepted by corp\n",
        "  conditions of deny rules[0] (hide-admin):\n",
        "  roles any [] all [] none [admin], token's roles [user]: ok\n",
        "  deny rules[0] (hide-admin): every condition holds or cannot be decided → 403 denied\n",
        "decision: refused 403 denied\n",
        "  response: 404\n",
        "    not found\n",
        "\"reason\":\"denied\",\"rule\":\"hide-admin\"",
    ] {
        assert!(out.contains(line), "{line:?} not in\n{out}");
    }
    let out = explain("/docs/1");
    for line in [
        "  deny rules[0] (hide-admin): its match does not fit\n",
        "  principals any [https://idp.example.com/*] none [], token's https://idp.example.com/alice: ok\n",
        "  roles any [editor] all [], token's roles [user]: → missing_role\n",
        "  fall_through: rules[2] (editors) refused, rules[3] (readers) tries with the same authentication\n",
        "  headers[0] x-mode not_values [write], sent 0 time(s) (values not shown): ok\n",
        "  claims[0] tenant not in [\"acme\"], token has \"initech\": ok\n",
        "decision: allowed: the request goes upstream\n",
        "\"rule\":\"readers\"",
    ] {
        assert!(out.contains(line), "{line:?} not in\n{out}");
    }
}
