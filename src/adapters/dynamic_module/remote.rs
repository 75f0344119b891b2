//! `remote_jwks` in a native module: Envoy's main thread fetches (config-level HTTP callouts,
//! woken every [`SCHEDULE_TICK_MS`] by a timer thread through the configuration's scheduler),
//! and publishes each provider's key-set document; workers adopt a new document on their next
//! request ([`super::worker`]). The schedule (refresh, backoff, unknown-`kid` refetch, the
//! `max_stale_seconds` drop) is the core's [`RemoteJwks`], as in the Wasm filter, whose
//! counters and log lines this keeps: only who runs it differs. As the Wasm VMs share one
//! schedule and document per source through Envoy's shared data, configurations here share
//! them per source (cluster and URI) in [`SOURCES`]: one fetch serves every configuration and
//! worker, and a fetch in flight is a lease the others wait for.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::authn::fetch::{self, NO_RESPONSE, Next, Severity, Stage};
use crate::authn::jwks::{JwksError, KeySet};
use crate::authn::remote::{RemoteJwks, SCHEDULE_TICK_MS, SharedState, Uri, status_of};
use crate::config::Config;

use super::abi::{LOG_INFO, LOG_WARN};
use super::host::{self, ConfigHandle, Scheduler};

/// What workers see of one provider's fetched keys.
#[derive(Clone)]
pub enum PublishedKeys {
    /// Nothing fetched yet: the inline keys (if any) stay.
    Initial,
    /// The last good document.
    Fetched(Arc<Vec<u8>>),
    /// Fetched keys older than `max_stale_seconds`: back to the inline keys, or none.
    Stale,
}

impl PublishedKeys {
    /// The same publication (a document is compared by identity, not by its bytes).
    pub fn same_as(&self, other: &PublishedKeys) -> bool {
        match (self, other) {
            (PublishedKeys::Initial, PublishedKeys::Initial) => true,
            (PublishedKeys::Stale, PublishedKeys::Stale) => true,
            (PublishedKeys::Fetched(a), PublishedKeys::Fetched(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// Fetched key sets, per provider (indexed like `Config::providers`), for the workers.
pub struct Published {
    /// Bumped on every change, so a worker's request costs one atomic load when nothing changed.
    pub version: AtomicU64,
    pub keys: Mutex<Vec<PublishedKeys>>,
    /// Set by a worker when a token named a `kid` its keys lack; taken on the next tick.
    pub refetch: Vec<AtomicBool>,
}

impl Published {
    pub fn new(providers: usize) -> Published {
        Published {
            version: AtomicU64::new(0),
            keys: Mutex::new(vec![PublishedKeys::Initial; providers]),
            refetch: (0..providers).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    fn publish(&self, provider: usize, keys: PublishedKeys) {
        if let Ok(mut all) = self.keys.lock()
            && let Some(slot) = all.get_mut(provider)
        {
            *slot = keys;
            self.version.fetch_add(1, Ordering::Release);
        }
    }
}

/// What every configuration knows of one key source ([`RemoteJwks::shared_key`]): the
/// schedule and the last good document. Only the main thread touches it.
#[derive(Default)]
struct SharedSource {
    state: SharedState,
    doc: Option<Arc<Vec<u8>>>,
}

static SOURCES: LazyLock<Mutex<HashMap<String, SharedSource>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Runs `change` on the shared source `key` (created fresh when new).
fn with_source<R>(key: &str, change: impl FnOnce(&mut SharedSource) -> R) -> Option<R> {
    let mut sources = SOURCES.lock().ok()?;
    Some(change(sources.entry(key.to_string()).or_default()))
}

/// One remote provider of one configuration, on the main thread.
struct Slot {
    provider: usize,
    name: String,
    remote: RemoteJwks,
    source_key: String,
    /// The document this configuration's workers were given (to publish a new one once).
    doc: Option<Arc<Vec<u8>>>,
    dropped: bool,
    key_count: usize,
    inline_key_count: usize,
    has_inline_keys: bool,
    fetch_ok: Option<usize>,
    fetch_failed: Option<usize>,
    keys_skipped: Option<usize>,
    keys_gauge: Option<usize>,
    age_gauge: Option<usize>,
}

/// The main thread's fetcher of one configuration, and the timer thread that wakes it.
pub struct Fetcher {
    handle: ConfigHandle,
    slots: Vec<Slot>,
    calls: HashMap<u64, (usize, Stage)>,
    published: Arc<Published>,
    timer: Option<Timer>,
}

struct Timer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Held so the scheduler is deleted only after the thread that commits to it has ended.
    _scheduler: Arc<Scheduler>,
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
        // The scheduler is deleted when its last Arc goes, after the thread has ended.
    }
}

impl Fetcher {
    /// `None` when no provider has `remote_jwks`. Defines the fetch counters and gauges (only
    /// possible while the configuration is created).
    pub fn new(
        handle: ConfigHandle,
        config: &Config,
        published: Arc<Published>,
    ) -> Option<Fetcher> {
        let slots: Vec<Slot> = config
            .providers
            .iter()
            .enumerate()
            .filter_map(|(index, provider)| {
                let remote = provider.remote.clone()?;
                let metric = |what: &str| format!("jwt_guard.jwks.{}.{what}", provider.name);
                Some(Slot {
                    provider: index,
                    name: provider.name.clone(),
                    source_key: remote.shared_key(),
                    remote,
                    doc: None,
                    dropped: false,
                    key_count: provider.token_rules.keys.current().keys().len(),
                    inline_key_count: provider.token_rules.keys.current().keys().len(),
                    has_inline_keys: provider.inline_jwks.is_some(),
                    fetch_ok: handle.define_counter(&metric("fetch_ok")),
                    fetch_failed: handle.define_counter(&metric("fetch_failed")),
                    keys_skipped: handle.define_counter(&metric("keys_skipped")),
                    keys_gauge: handle.define_gauge(&metric("keys")),
                    age_gauge: handle.define_gauge(&metric("age_seconds")),
                })
            })
            .collect();
        if slots.is_empty() {
            return None;
        }
        Some(Fetcher {
            handle,
            slots,
            calls: HashMap::new(),
            published,
            timer: None,
        })
    }

    /// Starts the timer thread that wakes [`Fetcher::tick`] on the main thread.
    pub fn start(&mut self) -> Result<(), String> {
        let scheduler = Arc::new(
            self.handle
                .new_scheduler()
                .ok_or("Envoy gave no scheduler for remote_jwks")?,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, scheduler) = (stop.clone(), scheduler.clone());
            std::thread::Builder::new()
                .name("jwt-guard-jwks".into())
                .spawn(move || {
                    // The first tick at once: the first fetch should not wait a period.
                    while !stop.load(Ordering::Acquire) {
                        scheduler.commit(0);
                        std::thread::park_timeout(Duration::from_millis(SCHEDULE_TICK_MS));
                    }
                })
                .map_err(|err| format!("cannot start the remote_jwks timer: {err}"))?
        };
        self.timer = Some(Timer {
            stop,
            thread: Some(thread),
            _scheduler: scheduler,
        });
        Ok(())
    }

    pub fn tick(&mut self, now: u64) {
        for index in 0..self.slots.len() {
            self.tick_slot(index, now);
        }
    }

    fn tick_slot(&mut self, index: usize, now: u64) {
        let handle = self.handle;
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        let Some((state, doc)) = with_source(&slot.source_key, |source| {
            (source.state.clone(), source.doc.clone())
        }) else {
            return;
        };
        if slot.remote.is_stale(&state, now) {
            if !slot.dropped {
                slot.dropped = true;
                slot.doc = None;
                slot.key_count = slot.inline_key_count;
                self.published.publish(slot.provider, PublishedKeys::Stale);
                host::log(
                    LOG_WARN,
                    &fetch::stale_dropped_line(&slot.name, slot.has_inline_keys),
                );
            }
        } else {
            slot.dropped = false;
            adopt(slot, &self.published, doc);
        }
        if let Some(gauge) = slot.age_gauge {
            let age = state.last_ok.map_or(0, |ok| now.saturating_sub(ok) / 1_000);
            handle.set_gauge(gauge, age);
        }
        if let Some(gauge) = slot.keys_gauge {
            handle.set_gauge(gauge, slot.key_count as u64);
        }
        let unknown_kid = self
            .published
            .refetch
            .get(slot.provider)
            .is_some_and(|flag| flag.swap(false, Ordering::AcqRel));
        if slot.remote.due(&state, now, unknown_kid).is_none() {
            return;
        }
        let leased = slot.remote.begin(&state, now);
        let jwks_uri = leased.jwks_uri.clone();
        if with_source(&slot.source_key, |source| source.state = leased).is_none() {
            return;
        }
        let (uri, stage) = slot.remote.first_request(jwks_uri);
        self.dispatch(index, &uri, stage, now);
    }

    fn dispatch(&mut self, index: usize, uri: &Uri, stage: Stage, now: u64) {
        let Some(slot) = self.slots.get(index) else {
            return;
        };
        // Envoy's callout takes `host` (required) as the request's authority.
        let headers = fetch::request_headers(uri, "host");
        match self
            .handle
            .http_callout(&slot.remote.cluster, &headers, slot.remote.timeout_ms)
        {
            Ok(id) => {
                self.calls.insert(id, (index, stage));
            }
            Err(result) => {
                let why = fetch::refused_call(&slot.remote.cluster, &format!("result {result}"));
                self.failed(index, &why, now);
            }
        }
    }

    /// A callout's answer: `success` false when it failed (reset, too large).
    pub fn on_response(
        &mut self,
        id: u64,
        success: bool,
        headers: &[(String, Vec<u8>)],
        body: &[u8],
        now: u64,
    ) {
        let Some((index, stage)) = self.calls.remove(&id) else {
            return;
        };
        if let Err(why) = check_response(success, headers, body.len(), stage.limit()) {
            return self.failed(index, &why, now);
        }
        let Some(slot) = self.slots.get(index) else {
            return;
        };
        match slot.remote.next(stage, body) {
            Ok(Next::Fetch(uri, stage)) => self.dispatch(index, &uri, stage, now),
            Ok(Next::KeySet {
                key_count,
                skipped,
                jwks_uri,
            }) => self.succeeded(index, body, key_count, &skipped, jwks_uri, now),
            Err(why) => self.failed(index, &why, now),
        }
    }

    fn succeeded(
        &mut self,
        index: usize,
        body: &[u8],
        key_count: usize,
        skipped: &[JwksError],
        jwks_uri: Option<String>,
        now: u64,
    ) {
        let handle = self.handle;
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        let Some((before, doc, is_new)) = with_source(&slot.source_key, |source| {
            let is_new = source.doc.as_ref().is_none_or(|doc| doc.as_slice() != body);
            if is_new {
                source.doc = Some(Arc::new(body.to_vec()));
            }
            let before = source.state.clone();
            source.state = slot.remote.succeeded(&before, now, jwks_uri);
            (before, source.doc.clone(), is_new)
        }) else {
            return;
        };
        if is_new {
            // A new document: announced once (with its bad keys), by the fetcher that got it.
            for (severity, line) in fetch::new_key_set_lines(&slot.name, key_count, skipped) {
                host::log(level(severity), &line);
            }
            if let Some(counter) = slot.keys_skipped
                && !skipped.is_empty()
            {
                handle.increment_counter(counter, skipped.len() as u64);
            }
        }
        if before.failures > 0 {
            host::log(LOG_INFO, &fetch::recovered_line(&slot.name));
        }
        if let Some(counter) = slot.fetch_ok {
            handle.increment_counter(counter, 1);
        }
        // The keys were maybe dropped as stale: the document (perhaps unchanged) is put in
        // force again.
        slot.dropped = false;
        adopt(slot, &self.published, doc);
        if let Some(gauge) = slot.keys_gauge {
            handle.set_gauge(gauge, slot.key_count as u64);
        }
    }

    fn failed(&mut self, index: usize, why: &str, _now: u64) {
        let handle = self.handle;
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        let before = with_source(&slot.source_key, |source| {
            let before = source.state.clone();
            source.state = slot.remote.failed(&before);
            before
        });
        if let Some(counter) = slot.fetch_failed {
            handle.increment_counter(counter, 1);
        }
        // Once per change of state (the first failure after a success, or at start), not per
        // attempt: the next success logs the recovery.
        if before.is_some_and(|state| state.failures == 0) {
            host::log(
                LOG_WARN,
                &fetch::failed_line(&slot.name, why, slot.key_count),
            );
        }
    }
}

fn level(severity: Severity) -> u32 {
    match severity {
        Severity::Info => LOG_INFO,
        Severity::Warn => LOG_WARN,
    }
}

/// Gives this configuration's workers the source's document, when it is not the one they have.
fn adopt(slot: &mut Slot, published: &Published, doc: Option<Arc<Vec<u8>>>) {
    let Some(doc) = doc else {
        return;
    };
    if slot
        .doc
        .as_ref()
        .is_some_and(|mine| Arc::ptr_eq(mine, &doc))
    {
        return;
    }
    slot.key_count =
        KeySet::from_fetched(&doc).map_or(slot.key_count, |(keys, _)| keys.keys().len());
    slot.doc = Some(doc.clone());
    published.publish(slot.provider, PublishedKeys::Fetched(doc));
}

/// A successful (200) response of at most `limit` bytes, or why not.
fn check_response(
    success: bool,
    headers: &[(String, Vec<u8>)],
    body_len: usize,
    limit: usize,
) -> Result<(), String> {
    if !success || headers.is_empty() {
        return Err(NO_RESPONSE.into());
    }
    fetch::check_answer(status_of(headers), body_len, limit)
}
