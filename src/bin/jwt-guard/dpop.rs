//! `jwt-guard dpop --key KEY --url URL ...`: mints a DPoP proof (RFC 9449 §4.2) for one
//! request, to send in the `DPoP` header beside `Authorization: DPoP <token>`.

use std::time::{SystemTime, UNIX_EPOCH};

use ct_codecs::{Base64UrlSafeNoPadding, Encoder};
use jwt_guard::token::jws::Algorithm;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::args::{self, Args, Opt};
use crate::report::{Failure, Report};
use crate::token::{KeyFile, read_key};

pub const HELP: &str = "\
Usage: jwt-guard dpop --key KEY --url URL [OPTIONS]

Mints a DPoP proof (RFC 9449) for one request and prints it: a JWT with header typ dpop+jwt,
alg and jwk (the key's public members only), and claims jti, htm, htu, iat, ath and nonce.
Send it as the `DPoP` header, with the token as `Authorization: DPoP <token>`; a proof is
good for one request (the filter refuses a jti it has seen).

  --key FILE        the client's private key: a JWK (EC P-256/P-384/P-521, OKP Ed25519, RSA) or a
                    PEM file, as `jwt-guard token --key` reads them
  --alg ALG         ES256 ES384 ES512 EdDSA RS256 RS384 RS512 PS256 PS384 PS512 (default: the
                    JWK's alg, else by key type: P-256 ES256, P-384 ES384, P-521 ES512,
                    Ed25519 EdDSA, RSA RS256)
  --method M        htm, the request's method, exactly as sent (default GET)
  --url URL         htu, the request's URL (http:// or https://); its query and fragment
                    are left out, as RFC 9449 §4.2 asks
  --token TOKEN     the access token the proof goes with: ath = base64url(SHA-256(TOKEN))
  --nonce NONCE     the server's nonce (from its DPoP-Nonce header)
  --jti JTI         the proof's unique id (default: 16 random bytes, base64url)
  --iat UNIX        issued-at (default: now)

The token itself is bound to the key with `jwt-guard token --dpop-key FILE` (cnf.jkt).

Example (DEMO ONLY keys; client.pem from `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`):
  TOKEN=$(jwt-guard token --key envoy/demo-keys/demo-es256.key.pem --kid demo-es256 \\
      --iss https://idp.example.com --aud orders --sub alice --dpop-key client.pem)
  curl -H \"Authorization: DPoP $TOKEN\" -H \"DPoP: $(jwt-guard dpop --key client.pem \\
      --url http://localhost:10000/dpop/orders --token \"$TOKEN\")\" localhost:10000/dpop/orders

Exit codes: 0 minted; 2 wrong command line; 4 the key cannot be used.
";

const SPEC: &[Opt] = &[
    args::value("key"),
    args::value("alg"),
    args::value("method"),
    args::value("url"),
    args::value("token"),
    args::value("nonce"),
    args::value("jti"),
    args::value("iat"),
];

pub fn run(argv: &[String]) -> Result<Report, Failure> {
    let args = Args::parse("dpop", argv, SPEC)?;
    if args.help {
        return Ok(Report::ok(HELP.to_string()));
    }
    args.no_positionals()?;
    let key_path = args
        .one("key")
        .ok_or_else(|| args.usage("--key is missing"))?;
    let url = args
        .one("url")
        .ok_or_else(|| args.usage("--url is missing"))?;
    let htu = target_uri(url).map_err(|why| args.usage(format!("--url {url:?}: {why}")))?;
    let alg = match args.one("alg") {
        Some(name) => Some(Algorithm::from_name(name).ok_or_else(|| {
            args.usage(format!(
                "--alg {name:?} is not an algorithm jwt-guard verifies"
            ))
        })?),
        None => None,
    };
    let method = args.one("method").unwrap_or("GET");
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(args.usage(format!("--method {method:?} is not an HTTP method")));
    }
    let iat = match args.number::<u64>("iat")? {
        Some(iat) => iat,
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .map_err(|_| Failure::input("the system clock is before 1970: give --iat"))?,
    };
    let jti = match args.one("jti") {
        Some("") => return Err(args.usage("--jti is empty")),
        Some(jti) => jti.to_string(),
        None => random_jti()?,
    };
    let mut claims = Map::new();
    claims.insert("jti".into(), jti.into());
    claims.insert("htm".into(), method.into());
    claims.insert("htu".into(), htu.into());
    claims.insert("iat".into(), iat.into());
    if let Some(token) = args.one("token") {
        claims.insert(
            "ath".into(),
            b64(&Sha256::digest(token.trim().as_bytes())).into(),
        );
    }
    if let Some(nonce) = args.one("nonce") {
        claims.insert("nonce".into(), nonce.into());
    }
    let key = read_key(key_path)?;
    let proof =
        proof(&key, alg, claims).map_err(|why| Failure::input(format!("{key_path}: {why}")))?;
    Ok(Report::ok(format!("{proof}\n")))
}

/// The signed proof: header {typ, alg, jwk}, the claims, the signature.
fn proof(
    key: &KeyFile,
    alg: Option<Algorithm>,
    claims: Map<String, Value>,
) -> Result<String, String> {
    let (alg, signer) = key.signer(alg)?;
    let header = json!({"typ": "dpop+jwt", "alg": alg.name(), "jwk": signer.public_jwk()});
    signer.compact(alg, &header, &Value::Object(claims))
}

fn b64(bytes: &[u8]) -> String {
    // Cannot fail for inputs this size; an empty part would make the proof fail, never pass.
    Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap_or_default()
}

fn random_jti() -> Result<String, Failure> {
    use rsa::rand_core::{OsRng, RngCore};
    let mut bytes = [0u8; 16];
    OsRng.try_fill_bytes(&mut bytes).map_err(|err| {
        Failure::input(format!("no random bytes for the jti: {err} (give --jti)"))
    })?;
    Ok(b64(&bytes))
}

/// htu: the URL without its query and fragment (RFC 9449 §4.2); an http(s) URL with a host.
fn target_uri(url: &str) -> Result<String, &'static str> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("not an absolute URL (http://host/path)")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err("the scheme must be http or https");
    }
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err("the host is missing");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("white space or control characters");
    }
    Ok(format!("{scheme}://{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn the_target_uri_drops_query_and_fragment_only() {
        assert_eq!(
            target_uri("https://Api.Example.com:8443/a/b?x=1#f").unwrap(),
            "https://Api.Example.com:8443/a/b"
        );
        assert_eq!(target_uri("http://h").unwrap(), "http://h");
        assert_eq!(target_uri("http://h/p#frag").unwrap(), "http://h/p");
        assert!(target_uri("ftp://h/p").is_err());
        assert!(target_uri("/path").is_err());
        assert!(target_uri("http:///path").is_err());
        assert!(target_uri("http://h/a b").is_err());
    }

    #[test]
    fn wrong_command_lines_are_usage_errors() {
        for bad in [
            &["--url", "http://h/"][..],
            &["--key", "k.pem"],
            &["--key", "k.pem", "--url", "h/p"],
            &["--key", "k.pem", "--url", "http://h/", "--alg", "none"],
            &["--key", "k.pem", "--url", "http://h/", "--jti", ""],
            &["--key", "k.pem", "--url", "http://h/", "--method", "G T"],
            &["--key", "k.pem", "--url", "http://h/", "--iat", "soon"],
        ] {
            assert!(
                matches!(run(&argv(bad)), Err(Failure::Usage { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_proof_has_the_dpop_header_and_claims() {
        let key = KeyFile::parse(
            r#"{"kty":"OKP","crv":"Ed25519","kid":"c1",
                "d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
                "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
        )
        .unwrap();
        let mut claims = Map::new();
        claims.insert("htm".into(), "GET".into());
        let proof = proof(&key, None, claims).unwrap();
        let parts: Vec<&str> = proof.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&jwt_guard::token::jws::decode_part(parts[0]).unwrap()).unwrap();
        assert_eq!(
            header,
            json!({"typ": "dpop+jwt", "alg": "EdDSA",
                   "jwk": {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}})
        );
        let signature = jwt_guard::token::jws::decode_part(parts[2]).unwrap();
        let public = ed25519_compact::PublicKey::from_slice(
            &jwt_guard::token::jws::decode_part("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
                .unwrap(),
        )
        .unwrap();
        let signature = ed25519_compact::Signature::from_slice(&signature).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        assert!(public.verify(input.as_bytes(), &signature).is_ok());
    }

    #[test]
    fn random_jtis_differ() {
        assert_ne!(random_jti().ok(), random_jti().ok());
        assert_eq!(random_jti().unwrap().len(), 22);
    }
}
