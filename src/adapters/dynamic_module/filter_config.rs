//! One filter configuration as the module holds it: created on Envoy's main thread by
//! `on_http_filter_config_new` (the JSON compiled once to refuse a bad one, the counters
//! defined, every refusal's reply encoded), shared by every worker thread.
//!
//! The compiled [`Config`] itself is not shared: its key stores and the token cache are made
//! for one thread (as in a Wasm VM), so each worker compiles its own copy on its first request
//! ([`super::worker`]). What crosses threads is plain data: the JSON, counter ids, replies,
//! and the remote key sets the main thread fetched ([`super::remote::Published`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::Config;
use crate::decision::counters::{CounterPlan, all_refusals};
use crate::decision::{LocalResponse, Refused};
use crate::reason::Refusal;

use super::host::ConfigHandle;
use super::remote::{Fetcher, Published};

/// Distinguishes configurations in the workers' thread-local state (a configuration that is
/// destroyed and another created at the same address must not share a compiled copy).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub struct FilterConfig {
    pub id: u64,
    pub json: Vec<u8>,
    pub plan: CounterPlan,
    /// Envoy's counter ids, indexed like [`CounterPlan::names`].
    pub counter_ids: Vec<Option<usize>>,
    /// Each refusal's reply without a scope hint, encoded once.
    pub replies: Vec<(Refusal, LocalResponse)>,
    pub realm: String,
    /// Fetched key sets, published by the main thread for the workers.
    pub published: Arc<Published>,
    /// Only touched on the main thread (config hooks).
    pub fetcher: std::sync::Mutex<Option<Fetcher>>,
}

impl FilterConfig {
    /// Compiles `json` (refusing it with the field named) and defines the counters. The
    /// compiled copy made here is only for the checks and names: workers make their own.
    pub fn new(handle: ConfigHandle, json: &[u8]) -> Result<(FilterConfig, Config), String> {
        let config = Config::from_json(json).map_err(|err| err.to_string())?;
        let plan = CounterPlan::new(&config);
        let counter_ids = plan
            .names()
            .iter()
            .map(|name| handle.define_counter(name))
            .collect();
        let replies = all_refusals()
            .map(|refusal| {
                let reply = Refused {
                    refusal,
                    scope_hint: None,
                    dpop: None,
                    custom: None,
                }
                .response(&config.realm);
                (refusal, reply)
            })
            .collect();
        let published = Arc::new(Published::new(config.providers.len()));
        Ok((
            FilterConfig {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                json: json.to_vec(),
                plan,
                counter_ids,
                replies,
                realm: config.realm.clone(),
                published,
                fetcher: std::sync::Mutex::new(None),
            },
            config,
        ))
    }

    /// The encoded reply for a refusal without a scope hint.
    pub fn reply(&self, refusal: Refusal) -> Option<&LocalResponse> {
        self.replies
            .iter()
            .find(|(r, _)| *r == refusal)
            .map(|(_, reply)| reply)
    }
}
