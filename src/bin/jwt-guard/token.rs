//! `jwt-guard token --key KEY ...`: mints a signed JWT for local testing, with jwt-simple
//! (pure Rust, already the core's dependency) doing the signing.

use std::time::{SystemTime, UNIX_EPOCH};

use ct_codecs::{Base64, Decoder};
use jwt_guard::jws::Algorithm;
use jwt_simple::prelude::{
    ECDSAP256KeyPairLike, ECDSAP384KeyPairLike, ES256KeyPair, ES384KeyPair, Ed25519KeyPair,
    EdDSAKeyPairLike, HS256Key, HS384Key, HS512Key, JWTClaims, MACLike, PS256KeyPair, PS384KeyPair,
    PS512KeyPair, RS256KeyPair, RS384KeyPair, RS512KeyPair, RSAKeyPairLike,
};
use serde_json::{Map, Value};

use crate::args::{self, Args, Opt};
use crate::report::{Failure, Report};

pub const HELP: &str = "\
Usage: jwt-guard token --key KEY [OPTIONS]

Mints a signed JWT for local testing and prints it. Claims: iat = now and exp = now + 3600
unless told otherwise, then those of --claims FILE, then the flags, then each --claim.

Key:
  --key FILE        the private key: a JWK (EC P-256/P-384, OKP Ed25519, RSA, oct) or a PEM
                    file (PKCS#8 `BEGIN PRIVATE KEY` for EC, Ed25519 and RSA, or PKCS#1
                    `BEGIN RSA PRIVATE KEY`; text around the PEM block is ignored)
  --alg ALG         RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA HS256 HS384 HS512
                    (default: the JWK's alg, else EC P-256 ES256, P-384 ES384, Ed25519 EdDSA,
                    RSA RS256, oct HS256 — as the filter derives it from a public JWK)
  --kid KID         the header's kid (default: the JWK's kid, none for a PEM key)
  --no-kid          no kid in the header, even if the JWK has one

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
    let claims = claims(&args)?;
    let text = std::fs::read_to_string(key_path)
        .map_err(|err| Failure::input(format!("cannot read {key_path}: {err}")))?;
    let key = KeyFile::parse(&text).map_err(|why| Failure::input(format!("{key_path}: {why}")))?;
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

/// The kinds of private key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    P256,
    P384,
    Ed25519,
    Rsa,
    Oct,
}

impl Family {
    /// The algorithm the filter derives from a public JWK of this kind without `alg`.
    fn default_alg(self) -> Algorithm {
        match self {
            Family::P256 => Algorithm::ES256,
            Family::P384 => Algorithm::ES384,
            Family::Ed25519 => Algorithm::EdDSA,
            Family::Rsa => Algorithm::RS256,
            Family::Oct => Algorithm::HS256,
        }
    }

    fn allows(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            Family::P256 => alg == ES256,
            Family::P384 => alg == ES384,
            Family::Ed25519 => alg == EdDSA,
            Family::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            Family::Oct => matches!(alg, HS256 | HS384 | HS512),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::P256 => "an EC P-256 key",
            Family::P384 => "an EC P-384 key",
            Family::Ed25519 => "an Ed25519 key",
            Family::Rsa => "an RSA key",
            Family::Oct => "a symmetric (oct) key",
        }
    }
}

enum KeyFile {
    Jwk {
        family: Family,
        jwk: Map<String, Value>,
    },
    /// DER of a PEM block, with its label.
    Pem { label: String, der: Vec<u8> },
}

impl KeyFile {
    fn parse(text: &str) -> Result<KeyFile, String> {
        if text.trim_start().starts_with('{') {
            return KeyFile::jwk(text);
        }
        let begin = text
            .find("-----BEGIN ")
            .ok_or("neither a JWK (JSON) nor a PEM file (no -----BEGIN line)")?;
        let rest = text.get(begin + "-----BEGIN ".len()..).unwrap_or_default();
        let (label, rest) = rest.split_once("-----").ok_or("a broken PEM header line")?;
        let end_line = format!("-----END {label}-----");
        let body = rest
            .split_once(end_line.as_str())
            .map(|(body, _)| body)
            .ok_or_else(|| format!("no {end_line} line"))?;
        let base64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = Base64::decode_to_vec(base64.as_bytes(), None)
            .map_err(|_| "the PEM block is not valid base64".to_string())?;
        Ok(KeyFile::Pem {
            label: label.to_string(),
            der,
        })
    }

    fn jwk(text: &str) -> Result<KeyFile, String> {
        let jwk = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(jwk)) => jwk,
            Ok(_) => return Err("a JWK must be a JSON object".into()),
            Err(err) => return Err(format!("not valid JSON: {err}")),
        };
        // A key set with one key is fine too.
        let jwk = match jwk.get("keys") {
            Some(Value::Array(keys)) => match keys.as_slice() {
                [Value::Object(only)] => only.clone(),
                _ => return Err("a key set must hold exactly one key to sign with".into()),
            },
            _ => jwk,
        };
        let member = |name: &str| jwk.get(name).and_then(Value::as_str);
        let family = match (member("kty"), member("crv")) {
            (Some("EC"), Some("P-256")) => Family::P256,
            (Some("EC"), Some("P-384")) => Family::P384,
            (Some("OKP"), Some("Ed25519")) => Family::Ed25519,
            (Some("RSA"), _) => Family::Rsa,
            (Some("oct"), _) => Family::Oct,
            (kty, crv) => {
                return Err(format!(
                    "unsupported JWK: kty {kty:?}, crv {crv:?} (EC P-256/P-384, OKP Ed25519, RSA or oct)"
                ));
            }
        };
        let private = match family {
            Family::Oct => jwk.contains_key("k"),
            _ => jwk.contains_key("d"),
        };
        if !private {
            return Err(format!(
                "{} without its private part ({}): a public key cannot sign",
                family.name(),
                if family == Family::Oct { "k" } else { "d" }
            ));
        }
        Ok(KeyFile::Jwk { family, jwk })
    }

    fn kid(&self) -> Option<String> {
        match self {
            KeyFile::Jwk { jwk, .. } => jwk.get("kid").and_then(Value::as_str).map(str::to_string),
            KeyFile::Pem { .. } => None,
        }
    }

    /// The key's family and the algorithm to sign with.
    fn choose(&self, alg: Option<Algorithm>) -> Result<(Family, Algorithm), String> {
        let family = match self {
            KeyFile::Jwk { family, .. } => *family,
            KeyFile::Pem { label, der } => pem_family(label, der, alg)?,
        };
        let from_jwk = match self {
            KeyFile::Jwk { jwk, .. } => jwk
                .get("alg")
                .and_then(Value::as_str)
                .and_then(Algorithm::from_name)
                .filter(|alg| family.allows(*alg)),
            KeyFile::Pem { .. } => None,
        };
        let alg = alg.or(from_jwk).unwrap_or(family.default_alg());
        if !family.allows(alg) {
            return Err(format!("{} cannot sign {}", family.name(), alg.name()));
        }
        Ok((family, alg))
    }

    fn sign(
        &self,
        alg: Option<Algorithm>,
        kid: Option<&str>,
        claims: Map<String, Value>,
    ) -> Result<String, String> {
        let (family, alg) = self.choose(alg)?;
        let claims = JWTClaims {
            issued_at: None,
            expires_at: None,
            invalid_before: None,
            issuer: None,
            subject: None,
            audiences: None,
            jwt_id: None,
            nonce: None,
            custom: claims,
        };
        let failed = |err: jwt_simple::Error| format!("cannot sign with this key: {err}");
        // jwt-simple loads a JWK only into the type its `alg` names: the algorithm chosen here
        // is the one asked for, so the JWK's own `alg` is left out.
        let jwk = match self {
            KeyFile::Jwk { jwk, .. } => {
                let mut jwk = jwk.clone();
                jwk.remove("alg");
                jwk.remove("kid");
                Some(Value::Object(jwk).to_string())
            }
            KeyFile::Pem { .. } => None,
        };
        let der = match self {
            KeyFile::Pem { der, .. } => der.as_slice(),
            KeyFile::Jwk { .. } => &[],
        };
        let unusable = |_| format!("not a usable private key for {}", alg.name());
        macro_rules! sign_with {
            ($key_pair:ty, $sign:ident) => {{
                let key = match &jwk {
                    Some(jwk) => <$key_pair>::from_jwk(jwk).map_err(unusable)?,
                    None => <$key_pair>::from_der(der).map_err(unusable)?,
                };
                let key = match kid {
                    Some(kid) => key.with_key_id(kid),
                    None => key,
                };
                key.$sign(claims).map_err(failed)
            }};
        }
        match (family, alg) {
            (Family::Oct, _) => {
                let secret = match self {
                    KeyFile::Jwk { jwk, .. } => jwk
                        .get("k")
                        .and_then(Value::as_str)
                        .and_then(|k| jwt_guard::jws::decode_part(k).ok())
                        .ok_or("the oct JWK's k is not base64url")?,
                    KeyFile::Pem { .. } => return Err("a PEM file holds no HMAC secret".into()),
                };
                macro_rules! mac_with {
                    ($key:ty) => {{
                        let key = <$key>::from_bytes(&secret);
                        let key = match kid {
                            Some(kid) => key.with_key_id(kid),
                            None => key,
                        };
                        key.authenticate(claims).map_err(failed)
                    }};
                }
                match alg {
                    Algorithm::HS384 => mac_with!(HS384Key),
                    Algorithm::HS512 => mac_with!(HS512Key),
                    _ => mac_with!(HS256Key),
                }
            }
            (_, Algorithm::ES256) => sign_with!(ES256KeyPair, sign),
            (_, Algorithm::ES384) => sign_with!(ES384KeyPair, sign),
            (_, Algorithm::EdDSA) => sign_with!(Ed25519KeyPair, sign),
            (_, Algorithm::RS256) => sign_with!(RS256KeyPair, sign),
            (_, Algorithm::RS384) => sign_with!(RS384KeyPair, sign),
            (_, Algorithm::RS512) => sign_with!(RS512KeyPair, sign),
            (_, Algorithm::PS256) => sign_with!(PS256KeyPair, sign),
            (_, Algorithm::PS384) => sign_with!(PS384KeyPair, sign),
            (_, Algorithm::PS512) => sign_with!(PS512KeyPair, sign),
            (_, other) => Err(format!("{} cannot sign {}", family.name(), other.name())),
        }
    }
}

/// What kind of key a PEM block holds: PKCS#8 says so in its algorithm identifier, which is
/// found here by trying each kind (the `--alg` given, if any, first).
fn pem_family(label: &str, der: &[u8], alg: Option<Algorithm>) -> Result<Family, String> {
    match label {
        "RSA PRIVATE KEY" => return Ok(Family::Rsa),
        "PRIVATE KEY" => {}
        "EC PRIVATE KEY" => {
            return Err(
                "a SEC1 EC key: convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt -in KEY`"
                    .into(),
            );
        }
        "ENCRYPTED PRIVATE KEY" => {
            return Err("an encrypted key: decrypt it first (`openssl pkcs8 -nocrypt`)".into());
        }
        label if label.contains("PUBLIC KEY") || label.contains("CERTIFICATE") => {
            return Err(format!("a {label}: a private key is needed to sign"));
        }
        other => return Err(format!("a PEM {other:?} block is not a private key")),
    }
    let loads = |family: Family| match family {
        Family::P256 => ES256KeyPair::from_der(der).is_ok(),
        Family::P384 => ES384KeyPair::from_der(der).is_ok(),
        Family::Ed25519 => Ed25519KeyPair::from_der(der).is_ok(),
        Family::Rsa => RS256KeyPair::from_der(der).is_ok(),
        Family::Oct => false,
    };
    let mut families = vec![Family::P256, Family::P384, Family::Ed25519, Family::Rsa];
    if let Some(alg) = alg {
        families.sort_by_key(|family| !family.allows(alg));
    }
    families
        .into_iter()
        .find(|family| loads(*family))
        .ok_or_else(|| {
            "a PKCS#8 key that is not EC P-256/P-384, Ed25519 or RSA (2048 to 4096 bits)".into()
        })
}
