//! Configuration parsing: `Config::from_json` on any bytes.
//!
//! Checks, besides never panicking:
//! - a refused configuration that is a JSON object names the field at fault (a non-empty
//!   `field`, or a serde message that names a member in backticks);
//! - an accepted one compiles for both signature backends and decides requests without
//!   panicking: no token, the fixtures' valid tokens in a header, a query parameter and a
//!   cookie, two different tokens, on several paths, methods and hosts.
#![no_main]

use jwt_guard::authn::Authenticator;
use jwt_guard::authn::cache::TokenCache;
use jwt_guard::config::Config;
use jwt_guard::decision::decide;
use jwt_guard::decision::outcome;
use jwt_guard::request::Request;
use jwt_guard::authn::verify::PureRustVerifier;
use jwt_guard_fuzz::{fixture_tokens, now, wrong};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static TOKENS: Vec<String> = {
        let tokens = fixture_tokens();
        ["valid_ES256", "valid_HS256", "policy_admin"]
            .iter()
            .filter_map(|want| tokens.iter().find(|(n, _)| n == want).map(|(_, t)| t.clone()))
            .collect()
    };
}

fn requests(tokens: &[String]) -> Vec<Vec<(String, Vec<u8>)>> {
    let h = |pairs: &[(&str, &str)]| -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    };
    let mut out = vec![
        h(&[
            (":method", "GET"),
            (":path", "/"),
            (":authority", "api.example.com"),
        ]),
        h(&[
            (":method", "POST"),
            (":path", "/admin/x?a=1"),
            (":authority", "a.b"),
        ]),
    ];
    for token in tokens {
        let bearer = format!("Bearer {token}");
        let query = format!("/orders?access_token={token}&token={token}");
        let cookie = format!("session={token}; auth={token}");
        out.push(h(&[
            (":method", "GET"),
            (":path", "/admin"),
            (":authority", "api.example.com"),
            ("authorization", &bearer),
            ("x-forwarded-for", "10.1.2.3"),
            ("x-geo-country", "US"),
        ]));
        out.push(h(&[
            (":method", "GET"),
            (":path", &query),
            (":authority", "x"),
        ]));
        out.push(h(&[
            (":method", "PUT"),
            (":path", "/public"),
            ("cookie", &cookie),
        ]));
    }
    if let [a, b, ..] = tokens {
        let (a, b) = (format!("Bearer {a}"), format!("session={b}"));
        out.push(h(&[(":path", "/"), ("authorization", &a), ("cookie", &b)]));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let mut config = match Config::from_json(data) {
        Ok(config) => config,
        Err(err) => {
            let text = err.to_string();
            if text.is_empty() {
                wrong!("an empty error");
            }
            let is_object = matches!(
                serde_json::from_slice::<serde_json::Value>(data),
                Ok(serde_json::Value::Object(_))
            );
            if is_object && err.field.is_empty() && !err.message.contains('`') {
                wrong!("refused without naming a field: {text}");
            }
            return;
        }
    };
    let use_host = data.len() % 2 == 0;
    if config.choose_signature_backend(use_host).is_err() && use_host {
        wrong!("a host with verify_signature refused signature_backend");
    }
    let rules = config.rules.len();
    let at = now();
    TOKENS.with(|tokens| {
        let mut cache = TokenCache::new(config.token_cache_size.min(4));
        for headers in requests(tokens) {
            for route_rule in [None, config.rules.first().and_then(|r| r.name.clone())] {
                let peer = || Some("10.1.2.3:4567".to_string());
                let request = Request {
                    headers: &headers,
                    peer_address: &peer,
                    peer_certificate_digest: &|| None,
                    route_name: Some("orders"),
                    route_rule: route_rule.as_deref().map(str::as_bytes),
                };
                let clock = move || Some(at);
                let mut auth = Authenticator {
                    verifier: &PureRustVerifier,
                    cache: &mut cache,
                    clock: &clock,
                    judged_by: None,
                    replay: &jwt_guard::authn::dpop::MemoryReplayStore::default(),
                    presented_with_dpop: false,
                    dpop_nonce: None,
                };
                let verdict = decide(&config, &request, &mut auth);
                if verdict.rule.is_some_and(|r| r >= rules) {
                    wrong!("a rule index out of range");
                }
                let _ = outcome::render(&config, &verdict);
            }
        }
    });
});
