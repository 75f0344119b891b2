//! The few proxy-wasm host calls jwt-guard makes, bound directly instead of through the SDK's
//! `hostcalls`, which panic on any status they do not expect (and decode header maps with a
//! panic on names that are not UTF-8). A panic traps the Wasm VM, and Envoy then fails every
//! later request on that worker; here every failure is a value the filter handles by refusing.

use std::ptr::{null, null_mut};

use crate::adapters::proxy_wasm::host_calls::{HostFn, note};

/// A proxy-wasm status other than `Ok` (0), as the raw number the host returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError(pub u32);

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;
pub const CAS_MISMATCH: u32 = 8;

// Levels and map/buffer types as in the proxy-wasm ABI 0.2.1.
pub const LOG_DEBUG: u32 = 1;
pub const LOG_INFO: u32 = 2;
pub const LOG_WARN: u32 = 3;
pub const LOG_ERROR: u32 = 4;
pub const LOG_CRITICAL: u32 = 5;
const REQUEST_HEADERS: u32 = 0;
const PLUGIN_CONFIGURATION: u32 = 7;
const HTTP_CALL_RESPONSE_BODY: u32 = 4;
const HTTP_CALL_RESPONSE_HEADERS: u32 = 6;
const COUNTER: u32 = 0;
const GAUGE: u32 = 1;

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_log_level(return_level: *mut u32) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_call_foreign_function(
        function_name_data: *const u8,
        function_name_size: usize,
        arguments_data: *const u8,
        arguments_size: usize,
        results_data: *mut *mut u8,
        results_size: *mut usize,
    ) -> u32;
}

fn status(code: u32) -> Result<(), HostError> {
    if code == OK {
        Ok(())
    } else {
        Err(HostError(code))
    }
}

/// Takes ownership of memory the host filled through the module's `proxy_on_memory_allocate`
/// (the SDK's allocator, which allocates a `Vec<u8>` of exactly `size`).
///
/// # Safety
/// `data` must be null or come from that allocator with exactly `size` bytes.
unsafe fn owned(data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if data.is_null() {
        None
    } else {
        // SAFETY: see the function's contract.
        Some(unsafe { Vec::from_raw_parts(data, size, size) })
    }
}

pub fn log(level: u32, message: &str) {
    note(HostFn::Log, message.len());
    // SAFETY: pointer and length of a live &str. Nothing is left to do if logging fails.
    let _ = unsafe { proxy_log(level, message.as_ptr(), message.len()) };
}

pub fn log_level() -> Result<u32, HostError> {
    note(HostFn::GetLogLevel, 0);
    let mut level = 0;
    // SAFETY: a valid out-pointer.
    status(unsafe { proxy_get_log_level(&mut level) })?;
    Ok(level)
}

/// Seconds since the epoch on the host's clock.
pub fn now_seconds() -> Result<u64, HostError> {
    note(HostFn::GetTime, 0);
    let mut nanos = 0;
    // SAFETY: a valid out-pointer.
    status(unsafe { proxy_get_current_time_nanoseconds(&mut nanos) })?;
    Ok(nanos / 1_000_000_000)
}

pub fn plugin_configuration() -> Result<Vec<u8>, HostError> {
    let (mut data, mut size) = (null_mut(), 0);
    // SAFETY: valid out-pointers; the returned memory is taken over by `owned`.
    let code = unsafe {
        proxy_get_buffer_bytes(PLUGIN_CONFIGURATION, 0, usize::MAX, &mut data, &mut size)
    };
    note(HostFn::GetBuffer, size);
    match code {
        NOT_FOUND => Ok(Vec::new()),
        // SAFETY: filled by the host through the module's allocator.
        code => status(code).map(|()| unsafe { owned(data, size) }.unwrap_or_default()),
    }
}

/// The request headers, decoded into `pairs` (see [`header_map::decode_into`]); the number of
/// bytes the host handed over.
///
/// [`header_map::decode_into`]: crate::adapters::proxy_wasm::header_map::decode_into
pub fn request_headers_into(pairs: &mut Vec<(String, Vec<u8>)>) -> Result<usize, HostError> {
    let (mut data, mut size) = (null_mut(), 0);
    // SAFETY: valid out-pointers; the returned memory is taken over by `owned`.
    let code = unsafe { proxy_get_header_map_pairs(REQUEST_HEADERS, &mut data, &mut size) };
    note(HostFn::GetHeaderMap, size);
    status(code)?;
    // SAFETY: filled by the host through the module's allocator.
    let bytes = unsafe { owned(data, size) }.unwrap_or_default();
    // An undecodable map is reported like a failed call: the filter refuses the request.
    crate::adapters::proxy_wasm::header_map::decode_into(&bytes, pairs)
        .ok_or(HostError(u32::MAX))?;
    Ok(bytes.len())
}

pub fn remove_request_header(name: &str) -> Result<(), HostError> {
    note(HostFn::RemoveHeader, name.len());
    // SAFETY: pointer and length of a live &str.
    status(unsafe { proxy_remove_header_map_value(REQUEST_HEADERS, name.as_ptr(), name.len()) })
}

pub fn set_request_header(name: &str, value: &[u8]) -> Result<(), HostError> {
    note(HostFn::ReplaceHeader, name.len() + value.len());
    // SAFETY: pointers and lengths of live slices.
    status(unsafe {
        proxy_replace_header_map_value(
            REQUEST_HEADERS,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// A property such as `source.address`; `Ok(None)` when the host has none. `serialized` is the
/// ABI's property path, each segment followed by a NUL (`b"source\0address\0"`), written out
/// by the callers so that a request builds no path.
pub fn property(serialized: &[u8]) -> Result<Option<Vec<u8>>, HostError> {
    let (mut data, mut size) = (null_mut(), 0);
    // SAFETY: valid pointers; the returned memory is taken over by `owned`.
    let code =
        unsafe { proxy_get_property(serialized.as_ptr(), serialized.len(), &mut data, &mut size) };
    note(HostFn::GetProperty, serialized.len() + size);
    match code {
        NOT_FOUND => Ok(None),
        // SAFETY: filled by the host through the module's allocator.
        code => status(code).map(|()| unsafe { owned(data, size) }),
    }
}

/// Sets a property of the stream. Envoy keeps it as filter state `wasm.<name>` (the name as
/// given: a path of one segment, no NUL), readable by access logs and later filters.
pub fn set_property(name: &str, value: &[u8]) -> Result<(), HostError> {
    note(HostFn::SetProperty, name.len() + value.len());
    // SAFETY: pointers and lengths of live slices.
    status(unsafe { proxy_set_property(name.as_ptr(), name.len(), value.as_ptr(), value.len()) })
}

/// Answers the request locally; `headers` in the ABI's header-map encoding.
pub fn send_local_response(status_code: u32, headers: &[u8], body: &[u8]) -> Result<(), HostError> {
    note(HostFn::SendLocalResponse, headers.len() + body.len());
    // SAFETY: pointers and lengths of live slices (no details string: null and 0).
    status(unsafe {
        proxy_send_local_response(
            status_code,
            null(),
            0,
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    })
}

pub fn define_counter(name: &str) -> Result<u32, HostError> {
    note(HostFn::DefineMetric, name.len());
    define_counter_uncounted(name)
}

/// [`define_counter`] without counting it (for `host_calls`' own reports).
pub(super) fn define_counter_uncounted(name: &str) -> Result<u32, HostError> {
    let mut id = 0;
    // SAFETY: pointer and length of a live &str, a valid out-pointer.
    status(unsafe { proxy_define_metric(COUNTER, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn increment_counter(id: u32) {
    add_counter(id, 1);
}

pub fn add_counter(id: u32, by: u64) {
    note(HostFn::IncrementMetric, 0);
    add_counter_uncounted(id, by);
}

/// [`add_counter`] without counting it (for `host_calls`' own reports).
/// Adds `by` to the counter `name` (defining it is idempotent: Envoy answers the same id for
/// the same name), without being counted: for the host-call counts' own report.
pub(super) fn add_counter_by_name_uncounted(name: &str, by: u64) {
    if let Ok(id) = define_counter_uncounted(name) {
        add_counter_uncounted(id, by);
    }
}

pub(super) fn add_counter_uncounted(id: u32, by: u64) {
    let by = i64::try_from(by).unwrap_or(i64::MAX);
    // SAFETY: plain values. A counter that cannot be incremented is not worth failing a request.
    let _ = unsafe { proxy_increment_metric(id, by) };
}

/// Calls one of the host's foreign functions (Envoy's `verify_signature`, say); `Ok` with what
/// it returned (empty when nothing).
pub fn call_foreign_function(name: &str, arguments: &[u8]) -> Result<Vec<u8>, HostError> {
    let (mut data, mut size) = (null_mut(), 0);
    let counted = name.len() + arguments.len();
    // SAFETY: pointers and lengths of live slices, valid out-pointers; the returned memory is
    // taken over by `owned`.
    let code = status(unsafe {
        proxy_call_foreign_function(
            name.as_ptr(),
            name.len(),
            arguments.as_ptr(),
            arguments.len(),
            &mut data,
            &mut size,
        )
    });
    note(HostFn::CallForeignFunction, counted + size);
    code?;
    // SAFETY: filled by the host through the module's allocator.
    Ok(unsafe { owned(data, size) }.unwrap_or_default())
}

/// Milliseconds since the epoch on the host's clock.
pub fn now_millis() -> Result<u64, HostError> {
    note(HostFn::GetTime, 0);
    let mut nanos = 0;
    // SAFETY: a valid out-pointer.
    status(unsafe { proxy_get_current_time_nanoseconds(&mut nanos) })?;
    Ok(nanos / 1_000_000)
}

pub fn set_tick_period_ms(period: u32) -> Result<(), HostError> {
    note(HostFn::SetTickPeriod, 0);
    // SAFETY: a plain value.
    status(unsafe { proxy_set_tick_period_milliseconds(period) })
}

pub fn define_gauge(name: &str) -> Result<u32, HostError> {
    note(HostFn::DefineMetric, name.len());
    let mut id = 0;
    // SAFETY: pointer and length of a live &str, a valid out-pointer.
    status(unsafe { proxy_define_metric(GAUGE, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn record_gauge(id: u32, value: u64) {
    note(HostFn::RecordMetric, 0);
    // SAFETY: plain values. A gauge that cannot be set is not worth failing anything.
    let _ = unsafe { proxy_record_metric(id, value) };
}

/// An HTTP callout from the current (root) context; `Ok` with its token.
///
/// The one host call not bound here: the SDK routes a callout's response only to a context
/// that registered its token, and registering is private to the SDK, so the call goes through
/// `proxy_wasm::hostcalls::dispatch_http_call`. Its wrapper panics only on a status other than
/// `Ok`, `BadArgument` and `InternalFailure`, the three Envoy's `httpCall` returns (unknown
/// cluster, missing pseudo-header; request not created).
pub fn http_call(
    cluster: &str,
    headers: &[(&str, &str)],
    timeout_ms: u64,
) -> Result<u32, HostError> {
    note(
        HostFn::HttpCall,
        cluster.len()
            + headers
                .iter()
                .map(|(n, v)| n.len() + v.len())
                .sum::<usize>(),
    );
    proxy_wasm::hostcalls::dispatch_http_call(
        cluster,
        headers.to_vec(),
        None,
        Vec::new(),
        std::time::Duration::from_millis(timeout_ms),
    )
    .map_err(|status| HostError(status as u32))
}

/// The headers of the callout response being delivered (`:status` among them).
pub fn http_call_response_headers() -> Result<Vec<(String, Vec<u8>)>, HostError> {
    let (mut data, mut size) = (null_mut(), 0);
    // SAFETY: valid out-pointers; the returned memory is taken over by `owned`.
    let code =
        unsafe { proxy_get_header_map_pairs(HTTP_CALL_RESPONSE_HEADERS, &mut data, &mut size) };
    note(HostFn::GetHeaderMap, size);
    status(code)?;
    // SAFETY: filled by the host through the module's allocator.
    let bytes = unsafe { owned(data, size) }.unwrap_or_default();
    crate::adapters::proxy_wasm::header_map::decode(&bytes).ok_or(HostError(u32::MAX))
}

/// The first `size` bytes of the callout response body being delivered.
pub fn http_call_response_body(size: usize) -> Result<Vec<u8>, HostError> {
    if size == 0 {
        return Ok(Vec::new());
    }
    let (mut data, mut returned) = (null_mut(), 0);
    // SAFETY: valid out-pointers; the returned memory is taken over by `owned`.
    let code = unsafe {
        proxy_get_buffer_bytes(HTTP_CALL_RESPONSE_BODY, 0, size, &mut data, &mut returned)
    };
    note(HostFn::GetBuffer, returned);
    match code {
        NOT_FOUND => Ok(Vec::new()),
        // SAFETY: filled by the host through the module's allocator.
        code => status(code).map(|()| unsafe { owned(data, returned) }.unwrap_or_default()),
    }
}

/// A shared-data value (shared by every VM of this vm_id in the Envoy process) with its CAS;
/// `Ok(None)` when the key is not there.
pub fn get_shared_data(key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError> {
    let (mut data, mut size, mut cas) = (null_mut(), 0, 0);
    // SAFETY: valid pointers; the returned memory is taken over by `owned`.
    let code =
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    note(HostFn::GetSharedData, key.len() + size);
    match code {
        NOT_FOUND => Ok(None),
        // SAFETY: filled by the host through the module's allocator.
        code => {
            status(code).map(|()| Some((unsafe { owned(data, size) }.unwrap_or_default(), cas)))
        }
    }
}

/// Sets a shared-data value if its CAS is still `cas` (0: whatever it is);
/// `Err(HostError(CAS_MISMATCH))` when another VM changed it meanwhile.
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<(), HostError> {
    note(HostFn::SetSharedData, key.len() + value.len());
    // SAFETY: pointers and lengths of live slices.
    status(unsafe {
        proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
    })
}
