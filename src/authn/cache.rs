//! The verified-token cache: tokens that passed every authentication check, with what policy
//! needs of them, so a token seen again skips parsing, key selection and the signature.
//!
//! Only verified tokens go in, so the cache can never turn a refusal into a pass; and what
//! can change between two requests (the time, the rule's providers, the provider's keys) is
//! checked again on every hit by the caller ([`crate::authn`]). Bounded: when full, the oldest
//! entry goes (first in, first out — cheap, and a token that stays in use comes back at once).

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use foldhash::fast::FixedState;

use crate::authn::claims::VerifiedClaims;
use crate::reason::AuthFailure;

/// Entries when the configuration says nothing (`token_cache_size`).
pub const DEFAULT_CAPACITY: usize = 1000;

pub struct CachedToken {
    /// Index of the provider that accepted the token.
    pub provider: usize,
    /// That provider's key-set version when it did.
    pub key_version: u64,
    /// Providers for the same issuer tried before it that refused the token for reasons time
    /// cannot change, with their key-set versions and their reasons then.
    pub passed_over: Vec<(usize, u64, AuthFailure)>,
    pub claims: Rc<VerifiedClaims>,
}

/// Tokens are hashed with foldhash's fast, unkeyed hasher instead of the standard library's
/// SipHash (keyed, to resist collision flooding): only verified tokens are ever inserted, so
/// colliding keys could only be tokens the issuer signed, and the cache is bounded. Every
/// request with a token hashes it (some hundreds of bytes) at least once.
type Entries = HashMap<Rc<str>, CachedToken, FixedState>;

pub struct TokenCache {
    capacity: usize,
    entries: Entries,
    order: VecDeque<Rc<str>>,
    /// Lookups that found / did not find the token (for the hit and miss counters).
    pub hits: u64,
    pub misses: u64,
}

impl TokenCache {
    /// `capacity` 0 keeps nothing.
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache {
            capacity,
            entries: Entries::with_capacity_and_hasher(
                capacity.min(DEFAULT_CAPACITY),
                FixedState::default(),
            ),
            order: VecDeque::with_capacity(capacity.min(DEFAULT_CAPACITY)),
            hits: 0,
            misses: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry for `token`, counted as a hit or a miss (a disabled cache counts nothing).
    pub fn lookup(&mut self, token: &str) -> Option<&CachedToken> {
        if self.capacity == 0 {
            return None;
        }
        let entry = self.entries.get(token);
        match entry {
            Some(_) => self.hits += 1,
            None => self.misses += 1,
        }
        entry
    }

    pub fn get(&self, token: &str) -> Option<&CachedToken> {
        self.entries.get(token)
    }

    pub fn insert(&mut self, token: &str, entry: CachedToken) {
        if self.capacity == 0 {
            return;
        }
        if let Some(existing) = self.entries.get_mut(token) {
            *existing = entry;
            return;
        }
        while self.entries.len() >= self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        let key: Rc<str> = Rc::from(token);
        self.order.push_back(key.clone());
        self.entries.insert(key, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(provider: usize) -> CachedToken {
        CachedToken {
            provider,
            key_version: 0,
            passed_over: Vec::new(),
            claims: Rc::new(VerifiedClaims::new(serde_json::Map::new())),
        }
    }

    #[test]
    fn bounded_first_in_first_out() {
        let mut cache = TokenCache::new(2);
        cache.insert("a", entry(1));
        cache.insert("b", entry(2));
        cache.insert("a", entry(3));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("a").map(|e| e.provider), Some(3));
        cache.insert("c", entry(4));
        assert_eq!(cache.len(), 2);
        assert!(cache.get("a").is_none());
        assert!(cache.get("b").is_some() && cache.get("c").is_some());
        for n in 0..100 {
            cache.insert(&n.to_string(), entry(n));
        }
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.order.len(), 2);
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let mut cache = TokenCache::new(0);
        cache.insert("a", entry(1));
        assert!(cache.is_empty());
        assert!(cache.get("a").is_none());
    }

    /// The hit and miss counters count every lookup, one each (they feed the cache counters
    /// in Envoy's stats); a disabled cache counts nothing.
    #[test]
    fn lookups_count_hits_and_misses() {
        let mut cache = TokenCache::new(2);
        cache.insert("a", entry(1));
        for expected in 1..=3 {
            assert_eq!(cache.lookup("a").map(|e| e.provider), Some(1));
            assert_eq!((cache.hits, cache.misses), (expected, 0));
        }
        for expected in 1..=2 {
            assert!(cache.lookup("b").is_none());
            assert_eq!((cache.hits, cache.misses), (3, expected));
        }
        let mut disabled = TokenCache::new(0);
        assert!(disabled.lookup("a").is_none());
        assert_eq!((disabled.hits, disabled.misses), (0, 0));
    }
}
