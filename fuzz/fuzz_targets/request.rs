//! A whole request through `decide`: rule selection (path, method, host, route name, a rule
//! bound by route metadata), token extraction from every location (headers with and without a
//! scheme, query parameters in `:path`, cookies), verification, policy (roles, scopes, claims,
//! addresses from X-Forwarded-For, countries, token-bound addresses), dry run, identity headers
//! and the changes made before the request goes upstream. The input is the text form of
//! [`jwt_guard_fuzz::RequestInput`]: header lines as bytes, `@` directives, and a token minted
//! from fuzzed header and claims JSON with the fixtures' HS256 key wherever a value says `$T`.
//!
//! Checks, besides never panicking:
//! - the verified-token cache never changes a decision: warm, cold and no cache agree, now,
//!   `@later` seconds later, and in the last second before and the first after every moment
//!   a verified token's `exp`, `nbf` or `iat` changes an answer;
//! - a request let through (not in dry run) carries, after the changes, no token in any of the
//!   rule's token locations unless it is the verified token of a provider with
//!   `forward: true` — every spelling of a token is removed or was verified;
//! - a rule that requires a token lets nothing through without verified claims;
//! - identity headers and `x-jwt-guard-dry-run` reach the upstream only as jwt-guard set them;
//! - no header value set holds a byte Envoy refuses (NUL, CR, LF);
//! - the refusal's response and the outcome JSON render.
#![no_main]

use jwt_guard::authn::Authenticator;
use jwt_guard::authn::cache::TokenCache;
use jwt_guard::config::{Authentication, Config};
use jwt_guard::decision::{Decision, Verdict, decide};
use jwt_guard::identity::DRY_RUN_HEADER;
use jwt_guard::token::extract::{HeaderChange, find_token};
use jwt_guard::decision::outcome;
use jwt_guard::authn::verify::PureRustVerifier;
use jwt_guard_fuzz::{RequestInput, apply, boundaries, config_with_keys, now, wrong};
use libfuzzer_sys::fuzz_target;

/// Every kind of rule and location: the example of docs/configuration.md grown to cover them all.
pub const CONFIG: &str = include_str!("../configs/request.json");

thread_local! {
    static CONFIG_VALUE: Config = config_with_keys(CONFIG);
}

/// The decision and what it was about, as comparable data.
#[derive(Debug, PartialEq)]
struct Seen {
    decision: Decision,
    rule: Option<usize>,
    provider: Option<usize>,
    claims: Option<serde_json::Value>,
}

fn run(config: &Config, input: &RequestInput, cache: &mut TokenCache, at: u64) -> (Verdict, Seen) {
    let peer = input.peer.clone();
    let peer = move || peer.clone();
    let request = input.request(&input.headers, &peer);
    let clock = move || Some(at);
    let mut auth = Authenticator {
        verifier: &PureRustVerifier,
        cache,
        clock: &clock,
        judged_by: None,
        replay: &jwt_guard::authn::dpop::MemoryReplayStore::default(),
        presented_with_dpop: false,
        dpop_nonce: None,
    };
    let verdict = decide(config, &request, &mut auth);
    let seen = Seen {
        decision: clone_decision(&verdict.decision),
        rule: verdict.rule,
        provider: verdict.provider,
        claims: verdict
            .claims
            .as_ref()
            .map(|c| serde_json::Value::Object(serde_json::Map::clone(c))),
    };
    (verdict, seen)
}

fn clone_decision(decision: &Decision) -> Decision {
    match decision {
        Decision::Allow { changes, dry_run } => Decision::Allow {
            changes: changes.clone(),
            dry_run: *dry_run,
        },
        Decision::Refuse(refused) => Decision::Refuse(refused.clone()),
    }
}

fn check(config: &Config, input: &RequestInput, verdict: &Verdict) {
    let _ = outcome::render(config, verdict);
    let changes = match &verdict.decision {
        Decision::Refuse(refused) => {
            let response = refused.response(&config.realm);
            if serde_json::from_str::<serde_json::Value>(&response.body).is_err() {
                wrong!("the refusal's body is not JSON: {}", response.body);
            }
            for (_, value) in &response.headers {
                if value.bytes().any(|b| b < 0x20 || b == 0x7f) {
                    wrong!("a response header holds a control byte: {value:?}");
                }
            }
            return;
        }
        Decision::Allow { changes, .. } => changes,
    };
    for change in changes {
        if let HeaderChange::Set(name, value) = change
            && value.iter().any(|b| matches!(b, 0 | b'\r' | b'\n'))
        {
            wrong!("{name} set to a value Envoy refuses: {value:?}");
        }
    }
    let upstream = apply(&input.headers, changes);
    let set_by_us = |name: &str| -> Vec<&Vec<u8>> {
        changes
            .iter()
            .filter_map(|c| match c {
                HeaderChange::Set(n, v) if n == name => Some(v),
                _ => None,
            })
            .collect()
    };
    let Some(rule) = verdict.rule.and_then(|i| config.rules.get(i)) else {
        return;
    };
    // Identity headers and the dry-run header: only ever what jwt-guard set.
    for name in config
        .identity_headers
        .iter()
        .map(String::as_str)
        .chain((rule.authentication != Authentication::Disabled).then_some(DRY_RUN_HEADER))
    {
        let ours = set_by_us(name);
        for (_, value) in upstream.iter().filter(|(n, _)| n == name) {
            if !ours.contains(&value) {
                wrong!("a client's {name}: {value:?} reaches the upstream");
            }
        }
    }
    let Decision::Allow { dry_run: None, .. } = &verdict.decision else {
        return;
    };
    let providers = match &rule.authentication {
        Authentication::Disabled => return,
        Authentication::Required(providers) => {
            if verdict.claims.is_none() {
                wrong!("a rule that requires a token let a request through without claims");
            }
            providers
        }
        Authentication::Optional(providers) => providers,
    };
    // What the upstream finds where the rule's providers look.
    let peer = || None;
    let after = input.request(&upstream, &peer);
    let locations = providers
        .iter()
        .filter_map(|&i| config.providers.get(i))
        .flat_map(|p| p.locations.iter());
    let left = find_token(&after, locations);
    let forwarded = verdict
        .provider
        .and_then(|i| config.providers.get(i))
        .filter(|p| p.forward && verdict.claims.is_some());
    match (&left, forwarded) {
        (Ok(None), _) => {}
        (Ok(Some(found)), Some(_)) => {
            // The verified token, left in place on purpose: the same token as the original
            // request carried.
            let before_peer = || None;
            let before = input.request(&input.headers, &before_peer);
            let all = providers
                .iter()
                .filter_map(|&i| config.providers.get(i))
                .flat_map(|p| p.locations.iter());
            match find_token(&before, all) {
                Ok(Some(original)) if original.token == found.token => {}
                other => wrong!("forwarded {:?}, but the request had {other:?}", found.token),
            }
        }
        _ => wrong!("let through with {left:?} left where the rule looks for tokens"),
    }
}

fuzz_target!(|data: &[u8]| {
    let input = RequestInput::parse(data);
    CONFIG_VALUE.with(|config| {
        let now = now();
        let mut warm = TokenCache::new(8);
        let (verdict, first) = run(config, &input, &mut warm, now);
        let (_, again) = run(config, &input, &mut warm, now);
        let (_, uncached) = run(config, &input, &mut TokenCache::new(0), now);
        if first != again || first != uncached {
            wrong!(
                "cache changed the decision:\n{first:?}\nagain {again:?}\nuncached {uncached:?}"
            );
        }
        check(config, &input, &verdict);
        // Later: when the input says, and around each time claim of a verified token.
        let mut times = vec![now.saturating_add(input.later)];
        if let Some(claims) = &verdict.claims {
            times.extend(boundaries(claims, now));
        }
        for at in times.into_iter().filter(|at| *at > now) {
            let (verdict, cached) = run(config, &input, &mut warm, at);
            let (_, fresh) = run(config, &input, &mut TokenCache::new(0), at);
            if cached != fresh {
                wrong!(
                    "{} s later the cache says\n{cached:?}\na fresh check\n{fresh:?}",
                    at - now
                );
            }
            check(config, &input, &verdict);
        }
    });
});
