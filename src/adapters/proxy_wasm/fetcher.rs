//! The root context's side of `remote_jwks`: on every tick, each VM adopts the key set another
//! VM stored in shared data (re-parsing only when its CAS changed), drops keys older than
//! `max_stale_seconds`, and, when [`RemoteJwks::due`] says so and it wins the lease (a CAS
//! write of the shared state), fetches the document itself with an HTTP callout. One fetch
//! serves every worker. HTTP contexts never fetch: an unknown `kid` of a provider's issuer
//! only sets a flag in its [`crate::authn::jwks::KeyStore`], taken here.

use std::collections::HashMap;

use crate::adapters::proxy_wasm::host::{self, CAS_MISMATCH, HostError, LOG_INFO, LOG_WARN};
use crate::authn::fetch::{self, NO_RESPONSE, Next, Severity, Stage};
use crate::authn::jwks::{JwksError, KeySet};
use crate::authn::provider::Provider;
use crate::authn::remote::{RemoteJwks, SCHEDULE_TICK_MS, SharedState, Uri, status_of};
use crate::config::Config;

/// How often the root context looks at the schedule (the core's staleness bounds count on it).
pub const TICK_MS: u32 = SCHEDULE_TICK_MS as u32;

/// One remote provider, as this VM sees it.
struct Slot {
    provider: usize,
    name: String,
    remote: RemoteJwks,
    /// Shared-data keys: the schedule and the last good document.
    state_key: String,
    doc_key: String,
    /// The CAS of the document this VM's keys were parsed from.
    doc_cas: Option<u32>,
    /// Whether the keys were dropped as older than `max_stale_seconds`.
    dropped: bool,
    fetch_ok: Option<u32>,
    fetch_failed: Option<u32>,
    /// Keys skipped in new documents (symmetric keys among them).
    keys_skipped: Option<u32>,
    keys_gauge: Option<u32>,
    age_gauge: Option<u32>,
}

pub struct Fetcher {
    slots: Vec<Slot>,
    /// Callouts in flight: token → (slot, stage).
    calls: HashMap<u32, (usize, Stage)>,
    /// Whether the host checks the signatures it serves (as for the inline keys).
    host_backend: bool,
}

fn log(level: u32, message: &str) {
    host::log(level, message);
}

impl Fetcher {
    pub fn new(config: &Config, host_backend: bool) -> Fetcher {
        let slots: Vec<Slot> = config
            .providers
            .iter()
            .enumerate()
            .filter_map(|(index, provider)| {
                let remote = provider.remote.clone()?;
                let key = remote.shared_key();
                let metric = |what: &str| format!("jwt_guard.jwks.{}.{what}", provider.name);
                let state_key = format!("{key}.state");
                // Created by the first VM to configure, before any tick: a lease is only ever
                // taken with a CAS read from an existing value, never over a missing one.
                if matches!(host::get_shared_data(&state_key), Ok(None)) {
                    let _ = host::set_shared_data(&state_key, &SharedState::default().encode(), 0);
                }
                Some(Slot {
                    provider: index,
                    name: provider.name.clone(),
                    remote,
                    state_key,
                    doc_key: format!("{key}.doc"),
                    doc_cas: None,
                    dropped: false,
                    fetch_ok: host::define_counter(&metric("fetch_ok")).ok(),
                    fetch_failed: host::define_counter(&metric("fetch_failed")).ok(),
                    keys_skipped: host::define_counter(&metric("keys_skipped")).ok(),
                    keys_gauge: host::define_gauge(&metric("keys")).ok(),
                    age_gauge: host::define_gauge(&metric("age_seconds")).ok(),
                })
            })
            .collect();
        Fetcher {
            slots,
            calls: HashMap::new(),
            host_backend,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn tick(&mut self, config: &Config, now: u64) {
        for index in 0..self.slots.len() {
            self.tick_slot(config, index, now);
        }
    }

    fn tick_slot(&mut self, config: &Config, index: usize, now: u64) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        let Some(provider) = config.providers.get(slot.provider) else {
            return;
        };
        let Ok(Some((bytes, cas))) = host::get_shared_data(&slot.state_key) else {
            return;
        };
        let state = SharedState::decode(&bytes);
        if slot.remote.is_stale(&state, now) {
            if !slot.dropped {
                slot.dropped = true;
                drop_stale_keys(slot, provider, self.host_backend);
            }
        } else {
            if slot.dropped {
                slot.dropped = false;
                slot.doc_cas = None;
            }
            adopt(slot, provider, self.host_backend);
        }
        if let Some(gauge) = slot.age_gauge {
            let age = state.last_ok.map_or(0, |ok| now.saturating_sub(ok) / 1_000);
            host::record_gauge(gauge, age);
        }
        if let Some(gauge) = slot.keys_gauge {
            host::record_gauge(
                gauge,
                provider.token_rules.keys.current().keys().len() as u64,
            );
        }
        let unknown_kid = provider.token_rules.keys.take_refetch_request();
        if slot.remote.due(&state, now, unknown_kid).is_none() {
            return;
        }
        let leased = slot.remote.begin(&state, now);
        // Another VM that wrote the state since it was read fetches instead.
        if host::set_shared_data(&slot.state_key, &leased.encode(), cas).is_err() {
            return;
        }
        let (uri, stage) = slot.remote.first_request(leased.jwks_uri);
        self.dispatch(config, index, &uri, stage);
    }

    fn dispatch(&mut self, config: &Config, index: usize, uri: &Uri, stage: Stage) {
        let Some(slot) = self.slots.get(index) else {
            return;
        };
        let headers = fetch::request_headers(uri, ":authority");
        match host::http_call(&slot.remote.cluster, &headers, slot.remote.timeout_ms) {
            Ok(token) => {
                self.calls.insert(token, (index, stage));
            }
            Err(HostError(status)) => self.failed(
                config,
                index,
                &fetch::refused_call(&slot.remote.cluster, &format!("status {status}")),
            ),
        }
    }

    /// A callout's response (or its failure: no headers).
    pub fn on_response(
        &mut self,
        config: &Config,
        token: u32,
        num_headers: usize,
        body_size: usize,
        now: u64,
    ) {
        let Some((index, stage)) = self.calls.remove(&token) else {
            return;
        };
        let body = match response_body(num_headers, body_size, stage.limit()) {
            Ok(body) => body,
            Err(why) => return self.failed(config, index, &why),
        };
        let Some(slot) = self.slots.get(index) else {
            return;
        };
        match slot.remote.next(stage, &body) {
            Ok(Next::Fetch(uri, stage)) => self.dispatch(config, index, &uri, stage),
            Ok(Next::KeySet {
                key_count,
                skipped,
                jwks_uri,
            }) => self.succeeded(config, index, &body, key_count, &skipped, jwks_uri, now),
            Err(why) => self.failed(config, index, &why),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn succeeded(
        &mut self,
        config: &Config,
        index: usize,
        body: &[u8],
        key_count: usize,
        skipped: &[JwksError],
        jwks_uri: Option<String>,
        now: u64,
    ) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        let current = host::get_shared_data(&slot.doc_key).ok().flatten();
        if current.as_ref().is_none_or(|(doc, _)| doc != body) {
            // A new document: stored for every VM, and announced once (with its bad keys).
            let _ = host::set_shared_data(&slot.doc_key, body, 0);
            for (severity, line) in fetch::new_key_set_lines(&slot.name, key_count, skipped) {
                log(level(severity), &line);
            }
            if let Some(counter) = slot.keys_skipped
                && !skipped.is_empty()
            {
                host::add_counter(counter, skipped.len() as u64);
            }
        }
        let before = update_state(&slot.state_key, |state| {
            slot.remote.succeeded(state, now, jwks_uri.clone())
        });
        if before.is_some_and(|state| state.failures > 0) {
            log(LOG_INFO, &fetch::recovered_line(&slot.name));
        }
        if let Some(counter) = slot.fetch_ok {
            host::increment_counter(counter);
        }
        if let Some(provider) = config.providers.get(slot.provider) {
            if slot.dropped {
                // The keys were dropped as stale: the document (unchanged, so not stored
                // again, so with the same CAS) must be put in force again.
                slot.dropped = false;
                slot.doc_cas = None;
            }
            adopt(slot, provider, self.host_backend);
        }
    }

    fn failed(&mut self, config: &Config, index: usize, why: &str) {
        let Some(slot) = self.slots.get(index) else {
            return;
        };
        let before = update_state(&slot.state_key, |state| slot.remote.failed(state));
        if let Some(counter) = slot.fetch_failed {
            host::increment_counter(counter);
        }
        // Once per change of state (the first failure after a success, or at start), not per
        // attempt: the next success logs the recovery.
        if before.is_some_and(|state| state.failures == 0) {
            let keys = config
                .providers
                .get(slot.provider)
                .map_or(0, |p| p.token_rules.keys.current().keys().len());
            log(LOG_WARN, &fetch::failed_line(&slot.name, why, keys));
        }
    }
}

fn level(severity: Severity) -> u32 {
    match severity {
        Severity::Info => LOG_INFO,
        Severity::Warn => LOG_WARN,
    }
}

/// The body of a successful (200) callout response of at most `limit` bytes.
fn response_body(num_headers: usize, body_size: usize, limit: usize) -> Result<Vec<u8>, String> {
    if num_headers == 0 {
        return Err(NO_RESPONSE.into());
    }
    let headers = host::http_call_response_headers()
        .map_err(|status| format!("the response headers are unreadable ({status:?})"))?;
    fetch::check_answer(status_of(&headers), body_size, limit)?;
    host::http_call_response_body(body_size)
        .map_err(|status| format!("the response body is unreadable ({status:?})"))
}

/// Writes `change(state)` over the shared state (retrying if another VM wrote meanwhile);
/// returns the state it replaced.
fn update_state(key: &str, change: impl Fn(&SharedState) -> SharedState) -> Option<SharedState> {
    for _ in 0..4 {
        let (bytes, cas) = host::get_shared_data(key).ok().flatten()?;
        let before = SharedState::decode(&bytes);
        match host::set_shared_data(key, &change(&before).encode(), cas) {
            Ok(()) => return Some(before),
            Err(HostError(CAS_MISMATCH)) => continue,
            Err(_) => return None,
        }
    }
    None
}

/// Puts the stored document in force in this VM when it changed since it was last parsed.
fn adopt(slot: &mut Slot, provider: &Provider, host_backend: bool) {
    let Ok(Some((body, cas))) = host::get_shared_data(&slot.doc_key) else {
        return;
    };
    if slot.doc_cas == Some(cas) {
        return;
    }
    slot.doc_cas = Some(cas);
    // Validated by the VM that stored it; a document that fails here is left alone.
    if let Ok((mut keys, _)) = KeySet::from_fetched(&body) {
        if host_backend {
            keys.use_host_backend();
        }
        provider.token_rules.keys.replace(keys);
    }
    if let Some(gauge) = slot.keys_gauge {
        host::record_gauge(
            gauge,
            provider.token_rules.keys.current().keys().len() as u64,
        );
    }
}

/// Keys fetched longer than `max_stale_seconds` ago: back to the inline keys, or none.
fn drop_stale_keys(slot: &Slot, provider: &Provider, host_backend: bool) {
    let inline = provider
        .inline_jwks
        .as_ref()
        .and_then(|jwks| KeySet::from_value(jwks).ok());
    let has_inline = inline.is_some();
    let mut keys = inline.unwrap_or_default();
    if host_backend {
        keys.use_host_backend();
    }
    provider.token_rules.keys.replace(keys);
    log(LOG_WARN, &fetch::stale_dropped_line(&slot.name, has_inline));
}
