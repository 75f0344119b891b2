//! The DPoP replay store in proxy-wasm shared data: one value per bucket, shared by every VM
//! (worker) of this `vm_id` in the Envoy process, written only by compare-and-swap.
//!
//! Envoy's shared data ignores the CAS of a key that does not exist yet, so two workers
//! inserting into a fresh bucket at once could each overwrite the other. Every bucket is
//! therefore created, empty, when the first VM is configured (before it serves a request),
//! and [`SharedDataReplayStore::load`] treats a missing bucket as a store that cannot answer.

use crate::adapters::proxy_wasm::host;
use crate::authn::dpop::ReplayStore;
use crate::authn::dpop::replay::BucketId;
use crate::config::Config;

pub(super) struct SharedDataReplayStore;

fn key(bucket: BucketId) -> String {
    format!("jwt_guard.dpop.{}.{}", bucket.of, bucket.index)
}

impl ReplayStore for SharedDataReplayStore {
    fn load(&self, bucket: BucketId) -> Option<(Vec<u8>, u32)> {
        host::get_shared_data(&key(bucket)).ok().flatten()
    }

    fn store(&self, bucket: BucketId, bytes: &[u8], version: u32) -> bool {
        // A version of 0 would write whatever is there; Envoy never hands one out.
        version != 0 && host::set_shared_data(&key(bucket), bytes, version).is_ok()
    }
}

/// Creates the buckets of every DPoP provider's store that does not exist yet. Only the first
/// VM of the process does the work: it leaves a marker for the others.
pub(super) fn prepare(config: &Config) -> Result<(), host::HostError> {
    let mut sizes: Vec<u32> = config
        .providers
        .iter()
        .filter_map(|provider| provider.binding.dpop.as_ref())
        .map(|dpop| dpop.replay_buckets)
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    for of in sizes {
        let ready = format!("jwt_guard.dpop.{of}.ready");
        if host::get_shared_data(&ready)?.is_some() {
            continue;
        }
        for index in 0..of {
            let bucket = key(BucketId { of, index });
            if host::get_shared_data(&bucket)?.is_none() {
                host::set_shared_data(&bucket, &[], 0)?;
            }
        }
        host::set_shared_data(&ready, b"1", 0)?;
    }
    Ok(())
}
