//! The DPoP replay store of the native module: process memory, shared by every worker thread
//! of the Envoy that loaded the module (and by every configuration of it, each with buckets of
//! its own size). A lock is enough: a proof takes it twice, for microseconds.

use std::sync::LazyLock;

use crate::authn::dpop::MemoryReplayStore;

pub(super) static PROCESS_REPLAY_STORE: LazyLock<MemoryReplayStore> =
    LazyLock::new(MemoryReplayStore::default);
