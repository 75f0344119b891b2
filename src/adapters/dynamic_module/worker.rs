//! What one worker thread keeps per configuration: its own compiled [`Config`] (key stores made
//! for one thread), its verified-token cache, and the fetched key sets it has adopted. Built on
//! the worker's first request for that configuration, like a Wasm VM's root context; nothing
//! here is shared, so the hot path takes no lock.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use crate::authn::cache::TokenCache;
use crate::authn::jwks::KeySet;
use crate::config::Config;

use super::filter_config::FilterConfig;
use super::remote::PublishedKeys;

pub struct Running {
    pub config: Config,
    pub cache: RefCell<TokenCache>,
    /// `Published::version` when this worker last adopted fetched keys, and what it adopted
    /// per provider (a provider whose document did not change keeps its keys, and so the
    /// token cache's entries for them).
    adopted_version: RefCell<u64>,
    adopted: RefCell<Vec<PublishedKeys>>,
    /// Unknown rule names from route metadata already logged by this worker.
    pub warned_route_rules: RefCell<Vec<Vec<u8>>>,
}

thread_local! {
    /// By [`FilterConfig::id`]. A configuration Envoy destroyed leaves its entry until the
    /// worker next meets a new configuration (then entries beyond the newest few go).
    static RUNNING: RefCell<HashMap<u64, Rc<Running>>> = RefCell::new(HashMap::new());
}

/// Configurations kept per worker: a listener update creates a new one and destroys the old,
/// so only a few are ever live at once.
const KEPT_PER_WORKER: usize = 8;

/// This worker's state for `config`, compiled on first use, with any newly fetched keys put in
/// force. `Err` only if the JSON that compiled on the main thread does not compile here.
pub fn running(config: &FilterConfig) -> Result<Rc<Running>, String> {
    let running = RUNNING.with(|all| {
        let found = all.borrow().get(&config.id).cloned();
        if let Some(running) = found {
            return Ok::<_, String>(running);
        }
        let compiled = Config::from_json(&config.json).map_err(|err| err.to_string())?;
        let providers = compiled.providers.len();
        let running = Rc::new(Running {
            cache: RefCell::new(TokenCache::new(compiled.token_cache_size)),
            config: compiled,
            adopted_version: RefCell::new(0),
            adopted: RefCell::new(vec![PublishedKeys::Initial; providers]),
            warned_route_rules: RefCell::new(Vec::new()),
        });
        let mut all = all.borrow_mut();
        if all.len() >= KEPT_PER_WORKER {
            // Ids grow: the oldest configurations are the ones Envoy has replaced.
            let mut ids: Vec<u64> = all.keys().copied().collect();
            ids.sort_unstable();
            for id in ids.iter().take(all.len() + 1 - KEPT_PER_WORKER) {
                all.remove(id);
            }
        }
        all.insert(config.id, running.clone());
        Ok(running)
    })?;
    adopt_fetched_keys(&running, config);
    Ok(running)
}

/// Puts the main thread's newest fetched key sets in force in this worker (one atomic load
/// when nothing changed).
fn adopt_fetched_keys(running: &Running, config: &FilterConfig) {
    let version = config.published.version.load(Ordering::Acquire);
    let (Ok(mut adopted_version), Ok(mut adopted)) = (
        running.adopted_version.try_borrow_mut(),
        running.adopted.try_borrow_mut(),
    ) else {
        return;
    };
    if *adopted_version == version {
        return;
    }
    let Ok(published) = config.published.keys.lock() else {
        return;
    };
    for ((provider, keys), mine) in running
        .config
        .providers
        .iter()
        .zip(published.iter())
        .zip(adopted.iter_mut())
    {
        if keys.same_as(mine) {
            continue;
        }
        *mine = keys.clone();
        let replacement = match keys {
            PublishedKeys::Initial => continue,
            // Validated on the main thread; a document that fails here is left alone.
            PublishedKeys::Fetched(doc) => match KeySet::from_fetched(doc) {
                Ok((keys, _)) => keys,
                Err(_) => continue,
            },
            PublishedKeys::Stale => provider
                .inline_jwks
                .as_ref()
                .and_then(|jwks| KeySet::from_value(jwks).ok())
                .unwrap_or_default(),
        };
        provider.token_rules.keys.replace(replacement);
    }
    *adopted_version = version;
}

impl Running {
    /// Once per name and worker; the counter `jwt_guard.route_rule_unknown` counts every request.
    pub fn first_warning_for(&self, name: &[u8]) -> bool {
        let Ok(mut warned) = self.warned_route_rules.try_borrow_mut() else {
            return false;
        };
        if warned.len() >= 64 || warned.iter().any(|n| n == name) {
            return false;
        }
        warned.push(name.to_vec());
        true
    }
}
