//! Documents as fetched from an identity provider (`remote_jwks`): the JWKS body
//! (`KeySet::from_fetched`), the OIDC discovery document (`RemoteJwks::jwks_uri_from_discovery`)
//! and the state VMs share (`SharedState::decode`), plus the inline form
//! (`KeySet::from_value`) of the same bytes.
//!
//! Input: the whole input is the document; all four readers get it.
//!
//! Checks, besides never panicking:
//! - a fetched set keeps at most 64 keys, `kid`s unique, and is refused when it has none;
//! - the inline and fetched readers agree: a set the inline reader accepts is fetched whole
//!   (same keys, in order, none skipped), and a fetched set with nothing skipped is accepted
//!   inline;
//! - every key compiled from it checks signatures (the fixtures' tokens of its algorithm, and
//!   the harness's) and yields `verify_signature` arguments without panicking, and a fixture
//!   token verifies under a key only if that key is the fixture key of its `kid`;
//! - a discovery document's `jwks_uri` is a URI the callout can use, for this issuer only;
//! - the shared state survives its own encoding.
#![no_main]

use jwt_guard::adapters::proxy_wasm::verify_signature;
use jwt_guard::authn::jwks::{
    KeySet, MAX_FETCHED_JWKS_BYTES, MAX_FETCHED_KEYS, SYMMETRIC_FETCHED, VerificationKey,
};
use jwt_guard::token::jws::UnverifiedJws;
use jwt_guard::authn::remote::{RemoteJwks, SharedState, Source, Uri};
use jwt_guard::authn::verify::{PureRustVerifier, SignatureVerifier};
use jwt_guard_fuzz::{fixture_jwks, fixture_tokens, wrong};
use libfuzzer_sys::fuzz_target;

thread_local! {
    /// One fixture token per algorithm (each verifies with the fixture key of its `kid`).
    static TOKENS: Vec<String> = fixture_tokens()
        .into_iter()
        .filter(|(name, _)| name.starts_with("valid_") && name != "valid_no_kid")
        .map(|(_, token)| token)
        .collect();
    /// The fixture keys, compiled.
    static FIXTURE_KEYS: KeySet = KeySet::from_value(&fixture_jwks()).expect("fixture keys");
}

fn remote() -> RemoteJwks {
    RemoteJwks {
        cluster: "idp".into(),
        source: Source::Discovery(
            Uri::discovery_of("https://idp.example.com/realms/a").expect("uri"),
        ),
        refresh_ms: 300_000,
        timeout_ms: 2_000,
        min_refetch_ms: 30_000,
        max_stale_ms: 3_600_000,
        issuer: "https://idp.example.com/realms/a".into(),
    }
}

fn exercise(key: &VerificationKey, tokens: &[String]) {
    for token in tokens {
        let Ok(jws) = UnverifiedJws::parse(token) else { continue };
        let _ = verify_signature::arguments(key, jws.signing_input().as_bytes(), &jws.signature);
        if jws.header.alg != Some(key.alg) {
            continue;
        }
        let valid = PureRustVerifier.verify(key, &jws).is_ok();
        if valid {
            // Only the key this token was minted with can verify it: the fixture key of its
            // kid, whatever kid it has here (RSA and EC keys compared by their DER; Ed25519
            // and HMAC keys are what their JWK says).
            let own = FIXTURE_KEYS.with(|fixture| {
                let kid = jws.header.kid.as_deref().unwrap_or_default();
                fixture
                    .by_kid(kid)
                    .is_some_and(|own| match (&key.spki_der, &own.spki_der) {
                        (Some(a), Some(b)) => a == b,
                        (None, None) => own.alg == key.alg,
                        _ => false,
                    })
            });
            if !own {
                wrong!("a fixture token verified under a key that is not its own: {key:?}");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The shared state: anything unreadable is a fresh state; what is read round-trips.
    let state = SharedState::decode(data);
    if SharedState::decode(&state.encode()) != state {
        wrong!("the shared state does not survive its encoding: {state:?}");
    }

    // Discovery.
    let remote = remote();
    if let Ok((text, uri)) = remote.jwks_uri_from_discovery(data) {
        if Uri::parse(&text).as_ref() != Ok(&uri) || !uri.path.starts_with('/') {
            wrong!("jwks_uri {text:?} became {uri:?}");
        }
        let doc: serde_json::Value = serde_json::from_slice(data).expect("it was JSON");
        let issuer = doc.get("issuer").and_then(|i| i.as_str());
        if issuer != Some(remote.issuer.as_str()) {
            wrong!("took the jwks_uri of a document for issuer {issuer:?}");
        }
    }

    // The key set, as fetched and as given inline.
    let fetched = KeySet::from_fetched(data);
    let inline = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .map(|value| KeySet::from_value(&value));
    if let Ok((set, skipped)) = &fetched {
        if set.keys().len() > MAX_FETCHED_KEYS {
            wrong!("a fetched set of {} keys", set.keys().len());
        }
        if set.keys().iter().any(|k| k.alg.name().starts_with("HS")) {
            wrong!("a fetched set supplied a symmetric key");
        }
        let mut kids: Vec<&str> = set.keys().iter().filter_map(|k| k.kid.as_deref()).collect();
        let before = kids.len();
        kids.sort_unstable();
        kids.dedup();
        if kids.len() != before {
            wrong!("a fetched set with a kid twice");
        }
        // The inline reader accepts exactly the sets the fetched one takes whole, symmetric
        // keys aside (inline only), and no empty set (a set that is a JSON string holding a set
        // is inline-only too).
        let symmetric = skipped
            .iter()
            .filter(|e| e.message == SYMMETRIC_FETCHED)
            .count();
        let whole = skipped.len() == symmetric;
        let only_too_many = skipped.iter().all(|e| e.message == "too many keys");
        match (&inline, whole) {
            (Some(Ok(inline)), true) if inline.keys().len() == set.keys().len() + symmetric => {}
            (Some(Err(_)), true) if set.is_empty() && symmetric == 0 => {}
            (Some(Ok(inline)), false)
                if only_too_many && inline.keys().len() > MAX_FETCHED_KEYS => {}
            (Some(Err(err)), false) if err.field.starts_with("keys[") => {}
            other => wrong!(
                "inline {:?} but fetched {} keys, skipped {skipped:?}",
                other.0.as_ref().map(|r| r.as_ref().map(|s| s.keys().len())),
                set.keys().len()
            ),
        }
        TOKENS.with(|tokens| {
            for key in set.keys() {
                exercise(key, tokens);
            }
        });
    } else if let Some(Ok(inline)) = &inline
        && data.len() <= MAX_FETCHED_JWKS_BYTES
        && inline.keys().len() <= MAX_FETCHED_KEYS
        && !matches!(
            serde_json::from_slice(data),
            Ok(serde_json::Value::String(_))
        )
    {
        wrong!(
            "accepted inline ({} keys) but not as fetched: {fetched:?}",
            inline.keys().len()
        );
    }
    if let (Some(Ok(inline)), Err(_)) = (&inline, &fetched) {
        TOKENS.with(|tokens| {
            for key in inline.keys() {
                exercise(key, tokens);
            }
        });
    }
});
