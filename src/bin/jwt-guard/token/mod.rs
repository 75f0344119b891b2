//! `jwt-guard token --key KEY ...`: mints a signed JWT for local testing, with jwt-simple
//! (pure Rust, already the core's dependency) doing the signing. This module reads the command
//! line and builds the claims; [`key`] reads the key file and signs.

mod key;
mod signer;

use std::time::{SystemTime, UNIX_EPOCH};

use jwt_guard::token::jws::Algorithm;
use serde_json::{Map, Value};

use crate::args::{self, Args, Opt};
use crate::report::{Failure, Report};

pub use key::KeyFile;

pub const HELP: &str = "\
Usage: jwt-guard token --key KEY [OPTIONS]

Mints a signed JWT for local testing and prints it. Claims: iat = now and exp = now + 3600
unless told otherwise, then those of --claims FILE, then the flags, then each --claim.

Key:
  --key FILE        the private key: a JWK (EC P-256/P-384/P-521, OKP Ed25519, RSA, oct) or a
                    PEM file (PKCS#8 `BEGIN PRIVATE KEY` for EC, Ed25519 and RSA, or PKCS#1
                    `BEGIN RSA PRIVATE KEY`; text around the PEM block is ignored)
  --alg ALG         RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA HS256 HS384 HS512
                    (default: the JWK's alg, else EC P-256 ES256, P-384 ES384, P-521 ES512,
                    Ed25519 EdDSA, RSA RS256, oct HS256 — as the filter derives it from a
                    public JWK)
  --kid KID         the header's kid (default: the JWK's kid, none for a PEM key)
  --no-kid          no kid in the header, even if the JWK has one
  --dpop-key FILE   bind the token to this DPoP key (RFC 9449): cnf.jkt = the RFC 7638
                    thumbprint of its public JWK (any asymmetric key --key takes); present
                    the token as `Authorization: DPoP <token>` with a proof from `jwt-guard dpop`

Claims:
  --iss ISS --sub SUB
  --aud AUD         repeatable: one is a string, several an array
  --exp-in SECONDS  exp = now + SECONDS (negative: already expired; default 3600)
  --no-exp          no exp claim
  --nbf-in SECONDS  nbf = now + SECONDS
  --no-iat          no iat claim
  --now UNIX        the time the token is minted at (default: now)
  --claims FILE     a JSON object of claims
  --claim NAME=VALUE  one claim, VALUE as JSON when it parses as JSON, else as a string
                    (roles='[\"admin\"]', email_verified=true, tenant=acme); repeatable, last wins

Example, with the demo key that envoy/envoy.yaml trusts (DEMO ONLY):
  jwt-guard token --key envoy/demo-keys/demo-es256.key.pem --kid demo-es256 \\
      --iss https://idp.example.com --aud orders --sub alice --claim roles='[\"admin\"]'

Exit codes: 0 minted; 2 wrong command line; 4 the key or the claims file cannot be used.
";

const SPEC: &[Opt] = &[
    args::value("key"),
    args::value("alg"),
    args::value("kid"),
    args::flag("no-kid"),
    args::value("dpop-key"),
    args::value("iss"),
    args::value("sub"),
    args::values("aud"),
    args::value("exp-in"),
    args::flag("no-exp"),
    args::value("nbf-in"),
    args::flag("no-iat"),
    args::value("now"),
    args::value("claims"),
    args::values("claim"),
];

pub fn run(argv: &[String]) -> Result<Report, Failure> {
    let args = Args::parse("token", argv, SPEC)?;
    if args.help {
        return Ok(Report::ok(HELP.to_string()));
    }
    args.no_positionals()?;
    let key_path = args
        .one("key")
        .ok_or_else(|| args.usage("--key is missing"))?;
    let alg = match args.one("alg") {
        Some(name) => Some(Algorithm::from_name(name).ok_or_else(|| {
            args.usage(format!(
                "--alg {name:?} is not an algorithm jwt-guard verifies"
            ))
        })?),
        None => None,
    };
    if args.flag("no-kid") && args.one("kid").is_some() {
        return Err(args.usage("--kid and --no-kid contradict each other"));
    }
    if args.flag("no-exp") && args.one("exp-in").is_some() {
        return Err(args.usage("--exp-in and --no-exp contradict each other"));
    }
    let mut claims = claims(&args)?;
    if let Some(path) = args.one("dpop-key") {
        let jkt = dpop_thumbprint(&read_key(path)?)
            .map_err(|why| Failure::input(format!("{path}: {why}")))?;
        bind_to_dpop_key(&mut claims, jkt);
    }
    let key = read_key(key_path)?;
    let kid = if args.flag("no-kid") {
        None
    } else {
        args.one("kid").map(str::to_string).or_else(|| key.kid())
    };
    let token = key
        .sign(alg, kid.as_deref(), claims)
        .map_err(|why| Failure::input(format!("{key_path}: {why}")))?;
    Ok(Report::ok(format!("{token}\n")))
}

pub fn read_key(path: &str) -> Result<KeyFile, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| Failure::input(format!("cannot read {path}: {err}")))?;
    KeyFile::parse(&text).map_err(|why| Failure::input(format!("{path}: {why}")))
}

/// The RFC 7638 thumbprint of a DPoP key's public JWK, as `cnf.jkt` carries it.
fn dpop_thumbprint(key: &KeyFile) -> Result<String, String> {
    let (_, signer) = key.signer(None)?;
    jwt_guard::authn::dpop::thumbprint::jwk_thumbprint(&signer.public_jwk()).map_err(str::to_string)
}

/// `cnf.jkt` set, beside any other confirmation member the claims already have (e.g. a
/// certificate's `x5t#S256` from --claims).
fn bind_to_dpop_key(claims: &mut Map<String, Value>, jkt: String) {
    match claims.get_mut("cnf") {
        Some(Value::Object(cnf)) => {
            cnf.insert("jkt".into(), jkt.into());
        }
        _ => {
            claims.insert("cnf".into(), serde_json::json!({ "jkt": jkt }));
        }
    }
}

fn claims(args: &Args) -> Result<Map<String, Value>, Failure> {
    let mut claims = match args.one("claims") {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|err| Failure::input(format!("cannot read {path}: {err}")))?;
            match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(claims)) => claims,
                Ok(_) => return Err(Failure::input(format!("{path}: not a JSON object"))),
                Err(err) => return Err(Failure::input(format!("{path}: not valid JSON: {err}"))),
            }
        }
        None => Map::new(),
    };
    let now = match args.number::<i64>("now")? {
        Some(now) => now,
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .map_err(|_| Failure::input("the system clock is before 1970: give --now"))?,
    };
    let at = |name: &str, offset: i64| -> Result<Value, Failure> {
        now.checked_add(offset)
            .filter(|t| *t >= 0)
            .map(Value::from)
            .ok_or_else(|| args.usage(format!("--{name}: the time falls before 1970")))
    };
    if args.flag("no-iat") {
        claims.remove("iat");
    } else if !claims.contains_key("iat") {
        claims.insert("iat".into(), now.into());
    }
    match args.number::<i64>("exp-in")? {
        _ if args.flag("no-exp") => {
            claims.remove("exp");
        }
        Some(seconds) => {
            claims.insert("exp".into(), at("exp-in", seconds)?);
        }
        None if !claims.contains_key("exp") => {
            claims.insert("exp".into(), at("exp-in", 3600)?);
        }
        None => {}
    }
    if let Some(seconds) = args.number::<i64>("nbf-in")? {
        claims.insert("nbf".into(), at("nbf-in", seconds)?);
    }
    for name in ["iss", "sub"] {
        if let Some(value) = args.one(name) {
            claims.insert(name.into(), value.into());
        }
    }
    match args.all("aud").as_slice() {
        [] => {}
        [one] => {
            claims.insert("aud".into(), (*one).into());
        }
        several => {
            claims.insert("aud".into(), several.to_vec().into());
        }
    }
    for item in args.all("claim") {
        let Some((name, raw)) = item.split_once('=') else {
            return Err(args.usage(format!("--claim {item:?}: write it as NAME=VALUE")));
        };
        if name.is_empty() {
            return Err(args.usage(format!("--claim {item:?}: the name is empty")));
        }
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::from(raw));
        claims.insert(name.into(), value);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_dpop_binding_joins_an_existing_cnf() {
        let mut claims = Map::new();
        bind_to_dpop_key(&mut claims, "abc".into());
        assert_eq!(
            Value::Object(claims.clone()),
            json!({"cnf": {"jkt": "abc"}})
        );
        claims.insert("cnf".into(), json!({"x5t#S256": "t"}));
        bind_to_dpop_key(&mut claims, "abc".into());
        assert_eq!(claims["cnf"], json!({"x5t#S256": "t", "jkt": "abc"}));
    }

    #[test]
    fn the_dpop_thumbprint_is_that_of_the_public_key() {
        // RFC 8037 Appendix A: the Ed25519 key and its thumbprint (A.3), from its private JWK.
        let key = KeyFile::parse(
            r#"{"kty":"OKP","crv":"Ed25519","kid":"x",
                "d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
                "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
        )
        .unwrap();
        assert_eq!(
            dpop_thumbprint(&key).unwrap(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }
}
