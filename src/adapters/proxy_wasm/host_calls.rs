//! A count of the host calls the filter makes, by kind, and of the bytes they move (passed in
//! and handed back), so that what one request costs in crossings of the Wasm boundary can be
//! pinned by a test (tests/integration/test_host_calls.py).
//!
//! Counted only with the `host-call-counts` feature (a test build): without it [`note`] is an
//! empty inline function, so the release hot path carries no counter at all. With it, each
//! request's counts are added, after the request, to Envoy counters
//! `jwt_guard.host_calls.<kind>` and `jwt_guard.host_bytes` (those reports are not counted).

/// One proxy-wasm host function; `HostFn::NAMES` has the counter name of each.
#[derive(Clone, Copy)]
pub enum HostFn {
    Log,
    GetLogLevel,
    GetTime,
    GetBuffer,
    GetHeaderMap,
    RemoveHeader,
    ReplaceHeader,
    GetProperty,
    SetProperty,
    SendLocalResponse,
    DefineMetric,
    IncrementMetric,
    RecordMetric,
    SetTickPeriod,
    GetSharedData,
    SetSharedData,
    CallForeignFunction,
    HttpCall,
}

impl HostFn {
    #[cfg(feature = "host-call-counts")]
    const NAMES: [&'static str; 18] = [
        "log",
        "get_log_level",
        "get_time",
        "get_buffer",
        "get_header_map",
        "remove_header",
        "replace_header",
        "get_property",
        "set_property",
        "send_local_response",
        "define_metric",
        "increment_metric",
        "record_metric",
        "set_tick_period",
        "get_shared_data",
        "set_shared_data",
        "call_foreign_function",
        "http_call",
    ];
}

#[cfg(not(feature = "host-call-counts"))]
#[inline(always)]
pub fn note(_call: HostFn, _bytes: usize) {}

#[cfg(not(feature = "host-call-counts"))]
#[inline(always)]
pub fn reset() {}

#[cfg(not(feature = "host-call-counts"))]
#[inline(always)]
pub fn report(_add: impl Fn(&str, u64)) {}

#[cfg(feature = "host-call-counts")]
pub use counting::{note, report, reset};

#[cfg(feature = "host-call-counts")]
mod counting {
    use std::cell::Cell;

    use super::HostFn;

    // One VM runs one thread: a plain thread-local is enough, and costs a load and a store.
    thread_local! {
        static CALLS: Cell<[u64; HostFn::NAMES.len()]> = const { Cell::new([0; HostFn::NAMES.len()]) };
        static BYTES: Cell<u64> = const { Cell::new(0) };
    }

    pub fn note(call: HostFn, bytes: usize) {
        CALLS.with(|calls| {
            let mut counts = calls.get();
            if let Some(count) = counts.get_mut(call as usize) {
                *count += 1;
            }
            calls.set(counts);
        });
        BYTES.with(|total| total.set(total.get() + bytes as u64));
    }

    /// Forgets what was counted so far (what the root context did between two requests).
    pub fn reset() {
        CALLS.with(|calls| calls.set([0; HostFn::NAMES.len()]));
        BYTES.with(|total| total.set(0));
    }

    /// Adds what was counted since [`reset`] to the Envoy counters through `add` (host calls
    /// that are themselves not counted; handed in, so this module needs nothing of the host's).
    pub fn report(add: impl Fn(&str, u64)) {
        let counts = CALLS.with(Cell::get);
        for (name, count) in HostFn::NAMES.iter().zip(counts) {
            add(&format!("jwt_guard.host_calls.{name}"), count);
        }
        add("jwt_guard.host_bytes", BYTES.with(Cell::get));
        add("jwt_guard.host_calls_reported", 1);
    }
}
