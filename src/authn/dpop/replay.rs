//! Replay protection for DPoP proofs (RFC 9449 §11.1): a proof's `jti` is accepted once for as
//! long as the proof itself could be accepted, across every worker of one Envoy.
//!
//! The store is a fixed number of buckets, each a small byte string of entries (a fingerprint
//! of key thumbprint and `jti`, and the second after which the proof is too old to matter). A
//! bucket is read and written back under compare-and-swap, so two workers that see the same
//! proof at once cannot both insert it: one write wins, the other reads again and finds it.
//! Memory is bounded (buckets × [`ENTRIES_PER_BUCKET`]); an entry is dropped only once its
//! proof is out of the window, so a full bucket refuses new proofs (fail closed) rather than
//! forget one that could still be replayed.
//!
//! Where the buckets live is the host's business ([`ReplayStore`]): proxy-wasm shared data in
//! the Wasm filter, process memory in the native module.

use sha2::{Digest, Sha256};

use crate::reason::AuthFailure;

pub const ENTRIES_PER_BUCKET: usize = 16;
/// 12 bytes of fingerprint, 4 of expiry (seconds since the epoch, good until 2106).
const ENTRY_BYTES: usize = 16;
const FINGERPRINT_BYTES: usize = 12;
/// Compare-and-swap attempts before the proof is refused as unavailable: each retry means
/// another worker wrote the same bucket in between, which at 16 entries a bucket is rare.
const ATTEMPTS: usize = 8;

/// One bucket of a store of `of` buckets. A store's size is part of each bucket's name: a
/// configuration with another `replay_capacity` has its own buckets, never misreads another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BucketId {
    pub of: u32,
    pub index: u32,
}

/// Buckets of bytes with a version, changed only by compare-and-swap.
pub trait ReplayStore {
    /// The bucket's bytes and version (empty bytes for a bucket nobody wrote yet, if the store
    /// can say so safely). `None`: the store cannot answer, and the proof is refused.
    fn load(&self, bucket: BucketId) -> Option<(Vec<u8>, u32)>;
    /// Writes `bytes` if the bucket is still at `version`; `false` when another writer came
    /// first (or the write failed).
    fn store(&self, bucket: BucketId, bytes: &[u8], version: u32) -> bool;
}

/// Where one proof goes in a store of `buckets` buckets, and the bytes that stand for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayKey {
    pub bucket: BucketId,
    fingerprint: [u8; FINGERPRINT_BYTES],
}

impl ReplayKey {
    /// `jti` is unique per key (RFC 9449 §4.2), so the key's thumbprint is part of the name: two
    /// clients that happen to pick the same `jti` do not collide.
    pub fn new(thumbprint: &str, jti: &str, buckets: u32) -> ReplayKey {
        let mut hash = Sha256::new();
        hash.update(thumbprint.as_bytes());
        hash.update([0u8]);
        hash.update(jti.as_bytes());
        let digest = hash.finalize();
        let mut index = [0u8; 4];
        let mut fingerprint = [0u8; FINGERPRINT_BYTES];
        for (slot, byte) in index.iter_mut().zip(digest.iter()) {
            *slot = *byte;
        }
        for (slot, byte) in fingerprint.iter_mut().zip(digest.iter().skip(4)) {
            *slot = *byte;
        }
        let of = buckets.max(1);
        ReplayKey {
            bucket: BucketId {
                of,
                index: u32::from_be_bytes(index) % of,
            },
            fingerprint,
        }
    }
}

/// Records the proof named by `key` until `expires` (seconds since the epoch), or refuses it:
/// `dpop_proof_replayed` if it is already there, `dpop_replay_unavailable` if its bucket is
/// full of proofs still in their window, or the store does not answer.
pub fn remember(
    store: &dyn ReplayStore,
    key: ReplayKey,
    expires: u64,
    now: u64,
) -> Result<(), AuthFailure> {
    let expires = u32::try_from(expires).unwrap_or(u32::MAX);
    for _ in 0..ATTEMPTS {
        let (bytes, version) = store
            .load(key.bucket)
            .ok_or(AuthFailure::DpopReplayUnavailable)?;
        let mut kept: Vec<u8> = Vec::with_capacity(bytes.len() + ENTRY_BYTES);
        for entry in bytes.chunks_exact(ENTRY_BYTES) {
            let (fingerprint, expiry) = entry.split_at(FINGERPRINT_BYTES);
            let expiry = <[u8; 4]>::try_from(expiry).map_or(0, u32::from_be_bytes);
            if u64::from(expiry) < now {
                continue;
            }
            if fingerprint == key.fingerprint {
                return Err(AuthFailure::DpopProofReplayed);
            }
            kept.extend_from_slice(entry);
        }
        if kept.len() >= ENTRIES_PER_BUCKET * ENTRY_BYTES {
            return Err(AuthFailure::DpopReplayUnavailable);
        }
        kept.extend_from_slice(&key.fingerprint);
        kept.extend_from_slice(&expires.to_be_bytes());
        if store.store(key.bucket, &kept, version) {
            return Ok(());
        }
    }
    Err(AuthFailure::DpopReplayUnavailable)
}

/// A store in one process's memory, behind a lock: the native module's store (shared by its
/// worker threads), and the one tests and the CLI use.
#[derive(Debug, Default)]
pub struct MemoryReplayStore {
    buckets: std::sync::Mutex<std::collections::HashMap<BucketId, (Vec<u8>, u32)>>,
}

impl ReplayStore for MemoryReplayStore {
    fn load(&self, bucket: BucketId) -> Option<(Vec<u8>, u32)> {
        let buckets = self.buckets.lock().ok()?;
        Some(buckets.get(&bucket).cloned().unwrap_or_default())
    }

    fn store(&self, bucket: BucketId, bytes: &[u8], version: u32) -> bool {
        let Ok(mut buckets) = self.buckets.lock() else {
            return false;
        };
        let slot = buckets.entry(bucket).or_default();
        if slot.1 != version {
            return false;
        }
        *slot = (bytes.to_vec(), version.wrapping_add(1));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn a_proof_is_accepted_once_until_it_is_out_of_its_window() {
        let store = MemoryReplayStore::default();
        let key = ReplayKey::new("thumb", "jti-1", 1024);
        assert_eq!(remember(&store, key, NOW + 300, NOW), Ok(()));
        assert_eq!(
            remember(&store, key, NOW + 300, NOW + 10),
            Err(AuthFailure::DpopProofReplayed)
        );
        assert_eq!(
            remember(&store, key, NOW + 300, NOW + 300),
            Err(AuthFailure::DpopProofReplayed)
        );
        // Past its expiry the proof would be refused as too old anyway; its entry can go.
        assert_eq!(remember(&store, key, NOW + 700, NOW + 301), Ok(()));
    }

    #[test]
    fn the_same_jti_of_another_key_is_another_proof() {
        let store = MemoryReplayStore::default();
        let (a, b) = (
            ReplayKey::new("key-a", "jti", 1),
            ReplayKey::new("key-b", "jti", 1),
        );
        assert_eq!(remember(&store, a, NOW + 300, NOW), Ok(()));
        assert_eq!(remember(&store, b, NOW + 300, NOW), Ok(()));
        assert_eq!(
            remember(&store, a, NOW + 300, NOW),
            Err(AuthFailure::DpopProofReplayed)
        );
    }

    #[test]
    fn a_full_bucket_refuses_until_an_entry_expires() {
        let store = MemoryReplayStore::default();
        for n in 0..ENTRIES_PER_BUCKET {
            let key = ReplayKey::new("k", &format!("jti-{n}"), 1);
            assert_eq!(remember(&store, key, NOW + 100 + n as u64, NOW), Ok(()));
        }
        let next = ReplayKey::new("k", "jti-next", 1);
        assert_eq!(
            remember(&store, next, NOW + 300, NOW),
            Err(AuthFailure::DpopReplayUnavailable)
        );
        // The oldest entry leaves only when its proof is out of the window.
        assert_eq!(remember(&store, next, NOW + 300, NOW + 101), Ok(()));
        let first = ReplayKey::new("k", "jti-1", 1);
        assert_eq!(
            remember(&store, first, NOW + 300, NOW + 101),
            Err(AuthFailure::DpopProofReplayed)
        );
    }

    /// A store where another worker writes the same bucket between each read and write.
    struct Contended {
        inner: MemoryReplayStore,
        interfering: Cell<usize>,
        other: ReplayKey,
    }

    impl ReplayStore for Contended {
        fn load(&self, bucket: BucketId) -> Option<(Vec<u8>, u32)> {
            self.inner.load(bucket)
        }
        fn store(&self, bucket: BucketId, bytes: &[u8], version: u32) -> bool {
            if self.interfering.get() > 0 {
                self.interfering.set(self.interfering.get() - 1);
                // The other worker inserts the very same proof first.
                let _ = remember(&self.inner, self.other, NOW + 300, NOW);
            }
            self.inner.store(bucket, bytes, version)
        }
    }

    #[test]
    fn two_workers_racing_with_one_proof_accept_it_once() {
        let key = ReplayKey::new("k", "jti", 64);
        let store = Contended {
            inner: MemoryReplayStore::default(),
            interfering: Cell::new(1),
            other: key,
        };
        assert_eq!(
            remember(&store, key, NOW + 300, NOW),
            Err(AuthFailure::DpopProofReplayed)
        );
    }

    #[test]
    fn a_silent_or_refusing_store_fails_closed() {
        let key = ReplayKey::new("k", "jti", 64);
        struct Silent;
        impl ReplayStore for Silent {
            fn load(&self, _: BucketId) -> Option<(Vec<u8>, u32)> {
                None
            }
            fn store(&self, _: BucketId, _: &[u8], _: u32) -> bool {
                true
            }
        }
        assert_eq!(
            remember(&Silent, key, NOW + 300, NOW),
            Err(AuthFailure::DpopReplayUnavailable)
        );
        struct Refusing;
        impl ReplayStore for Refusing {
            fn load(&self, _: BucketId) -> Option<(Vec<u8>, u32)> {
                Some((Vec::new(), 0))
            }
            fn store(&self, _: BucketId, _: &[u8], _: u32) -> bool {
                false
            }
        }
        assert_eq!(
            remember(&Refusing, key, NOW + 300, NOW),
            Err(AuthFailure::DpopReplayUnavailable)
        );
    }
}
