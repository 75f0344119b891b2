//! Safe wrappers over the Envoy callbacks in [`super::abi`]: the only place that calls them.
//!
//! Every wrapper takes the Envoy pointer it was handed by a hook and uses it only during that
//! hook (Envoy's rule: a filter pointer is valid until `on_http_filter_destroy`, a config pointer
//! until `on_http_filter_config_destroy`). Buffers Envoy returns are copied before the wrapper
//! returns, so nothing borrowed from Envoy outlives the call.

use std::ptr;

use super::abi::{
    self, EnvoyBuffer, EnvoyHttpHeader, FilterConfigEnvoyPtr, FilterEnvoyPtr, ModuleBuffer,
    ModuleHttpHeader, SchedulerPtr,
};

type DefineMetric = unsafe extern "C" fn(
    FilterConfigEnvoyPtr,
    ModuleBuffer,
    *const ModuleBuffer,
    usize,
    *mut usize,
) -> u32;
type RecordMetric =
    unsafe extern "C" fn(FilterConfigEnvoyPtr, usize, *const ModuleBuffer, usize, u64) -> u32;

/// A filter (one stream) as Envoy handed it to a hook.
#[derive(Clone, Copy)]
pub struct Stream(pub FilterEnvoyPtr);

/// A filter configuration as Envoy handed it to `on_http_filter_config_new` (main thread).
#[derive(Clone, Copy)]
pub struct ConfigHandle(pub FilterConfigEnvoyPtr);

pub fn log(level: u32, message: &str) {
    // SAFETY: the buffer points into `message`, alive for the call; Envoy copies it.
    unsafe { abi::envoy_dynamic_module_callback_log(level, ModuleBuffer::of(message.as_bytes())) }
}

pub fn log_enabled(level: u32) -> bool {
    // SAFETY: no pointer is passed.
    unsafe { abi::envoy_dynamic_module_callback_log_enabled(level) }
}

/// Copies Envoy's bytes.
///
/// # Safety
/// `buffer` must be null/empty or point at `length` readable bytes.
unsafe fn copy(buffer: EnvoyBuffer) -> Vec<u8> {
    if buffer.ptr.is_null() || buffer.length == 0 {
        return Vec::new();
    }
    // SAFETY: the caller's promise.
    unsafe { std::slice::from_raw_parts(buffer.ptr, buffer.length) }.to_vec()
}

impl Stream {
    /// The request headers, in Envoy's order (a repeated header once per line).
    pub fn request_headers(self) -> Option<Vec<(String, Vec<u8>)>> {
        // SAFETY: `self.0` is the filter pointer of the running hook.
        let count = unsafe {
            abi::envoy_dynamic_module_callback_http_get_headers_size(self.0, abi::REQUEST_HEADER)
        };
        let mut raw = vec![EnvoyHttpHeader::EMPTY; count];
        // SAFETY: `raw` has room for the `count` headers Envoy just reported; Envoy fills it
        // with pointers into its header map, valid until the map changes (copied below first).
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_get_headers(
                self.0,
                abi::REQUEST_HEADER,
                raw.as_mut_ptr(),
            )
        };
        if !ok && count > 0 {
            return None;
        }
        Some(
            raw.iter()
                .map(|h| {
                    // SAFETY: Envoy filled both buffers (pointer and length) for this header.
                    let (key, value) = unsafe {
                        (
                            copy(EnvoyBuffer {
                                ptr: h.key_ptr,
                                length: h.key_length,
                            }),
                            copy(EnvoyBuffer {
                                ptr: h.value_ptr,
                                length: h.value_length,
                            }),
                        )
                    };
                    (String::from_utf8_lossy(&key).into_owned(), value)
                })
                .collect(),
        )
    }

    /// Replaces every line of the request header `name` with one line holding `value`.
    pub fn set_request_header(self, name: &str, value: &[u8]) -> bool {
        // SAFETY: both buffers point into live slices for the call; Envoy copies them.
        unsafe {
            abi::envoy_dynamic_module_callback_http_set_header(
                self.0,
                abi::REQUEST_HEADER,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value),
            )
        }
    }

    /// Removes every line of the request header `name` (a null value means "remove").
    pub fn remove_request_header(self, name: &str) -> bool {
        // SAFETY: the key points into `name` for the call; a null value is the ABI's removal.
        unsafe {
            abi::envoy_dynamic_module_callback_http_set_header(
                self.0,
                abi::REQUEST_HEADER,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer {
                    ptr: ptr::null(),
                    length: 0,
                },
            )
        }
    }

    /// Makes Envoy choose the route again (after headers a route may match on changed), as
    /// the Wasm host does after a filter changes request headers.
    pub fn clear_route_cache(self) {
        // SAFETY: `self.0` is the filter pointer of the running hook.
        unsafe { abi::envoy_dynamic_module_callback_http_clear_route_cache(self.0) }
    }

    /// Sends a local reply instead of forwarding the request.
    pub fn send_response(self, status: u32, headers: &[(&str, &[u8])], body: &[u8], details: &str) {
        let headers = module_headers(headers.iter().map(|(k, v)| (k.as_bytes(), *v)));
        // SAFETY: `headers` and the slices it points into, `body` and `details` are alive for
        // the call; Envoy copies them into the reply.
        unsafe {
            abi::envoy_dynamic_module_callback_http_send_response(
                self.0,
                status,
                headers.as_ptr(),
                headers.len(),
                ModuleBuffer::of(body),
                ModuleBuffer::of(details.as_bytes()),
            )
        }
    }

    /// A string attribute (`source.address`, `xds.route_name`), if Envoy has it.
    pub fn attribute_string(self, id: u32) -> Option<String> {
        let mut result = EnvoyBuffer::EMPTY;
        // SAFETY: `result` is a valid out-parameter; Envoy points it at bytes valid during
        // this hook, copied at once.
        let found = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_get_attribute_string(
                self.0,
                id,
                &mut result,
            )
        };
        // SAFETY: Envoy set `result` when it answered true.
        found.then(|| String::from_utf8(unsafe { copy(result) }).ok())?
    }

    /// The names of the route's metadata namespaces.
    pub fn route_metadata_namespaces(self) -> Vec<Vec<u8>> {
        // SAFETY: no buffer is passed.
        let count = unsafe {
            abi::envoy_dynamic_module_callback_http_get_metadata_namespaces_count(
                self.0,
                abi::METADATA_ROUTE,
            )
        };
        let mut names = vec![EnvoyBuffer::EMPTY; count];
        // SAFETY: `names` has room for the `count` names Envoy just reported.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_get_metadata_namespaces(
                self.0,
                abi::METADATA_ROUTE,
                names.as_mut_ptr(),
            )
        };
        if !ok {
            return Vec::new();
        }
        // SAFETY: Envoy filled each buffer.
        names.into_iter().map(|b| unsafe { copy(b) }).collect()
    }

    /// The keys of one namespace of the route's metadata.
    pub fn route_metadata_keys(self, namespace: &str) -> Vec<Vec<u8>> {
        let ns = ModuleBuffer::of(namespace.as_bytes());
        // SAFETY: `ns` points into `namespace` for the call.
        let count = unsafe {
            abi::envoy_dynamic_module_callback_http_get_metadata_keys_count(
                self.0,
                abi::METADATA_ROUTE,
                ns,
            )
        };
        let mut keys = vec![EnvoyBuffer::EMPTY; count];
        // SAFETY: `keys` has room for the `count` keys Envoy just reported.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_get_metadata_keys(
                self.0,
                abi::METADATA_ROUTE,
                ns,
                keys.as_mut_ptr(),
            )
        };
        if !ok {
            return Vec::new();
        }
        // SAFETY: Envoy filled each buffer.
        keys.into_iter().map(|b| unsafe { copy(b) }).collect()
    }

    /// A string member of the route's metadata; `None` when absent or not a string.
    pub fn route_metadata_string(self, namespace: &str, key: &[u8]) -> Option<Vec<u8>> {
        let mut result = EnvoyBuffer::EMPTY;
        // SAFETY: both names point into live slices; `result` is a valid out-parameter.
        let found = unsafe {
            abi::envoy_dynamic_module_callback_http_get_metadata_string(
                self.0,
                abi::METADATA_ROUTE,
                ModuleBuffer::of(namespace.as_bytes()),
                ModuleBuffer::of(key),
                &mut result,
            )
        };
        // SAFETY: Envoy set `result` when it answered true.
        found.then(|| unsafe { copy(result) })
    }

    pub fn set_filter_state(self, key: &str, value: &[u8]) -> bool {
        // SAFETY: both buffers point into live slices; Envoy copies them.
        unsafe {
            abi::envoy_dynamic_module_callback_http_set_filter_state_bytes(
                self.0,
                ModuleBuffer::of(key.as_bytes()),
                ModuleBuffer::of(value),
            )
        }
    }

    pub fn increment_counter(self, id: usize, value: u64) {
        // SAFETY: no labels are passed (null, 0); `id` came from define_counter.
        unsafe {
            abi::envoy_dynamic_module_callback_http_filter_increment_counter(
                self.0,
                id,
                ptr::null(),
                0,
                value,
            );
        }
    }
}

impl ConfigHandle {
    /// Defines a counter (only while the configuration is being created).
    pub fn define_counter(self, name: &str) -> Option<usize> {
        self.define(
            abi::envoy_dynamic_module_callback_http_filter_config_define_counter,
            name,
        )
    }

    pub fn define_gauge(self, name: &str) -> Option<usize> {
        self.define(
            abi::envoy_dynamic_module_callback_http_filter_config_define_gauge,
            name,
        )
    }

    fn define(self, define: DefineMetric, name: &str) -> Option<usize> {
        let mut id = 0usize;
        // SAFETY: `define` is one of Envoy's define callbacks; `name` is alive for the call,
        // no labels are passed (null, 0), and `id` is a valid out-parameter.
        let result = unsafe {
            define(
                self.0,
                ModuleBuffer::of(name.as_bytes()),
                ptr::null(),
                0,
                &mut id,
            )
        };
        (result == abi::METRICS_SUCCESS).then_some(id)
    }

    pub fn increment_counter(self, id: usize, value: u64) {
        self.record(
            abi::envoy_dynamic_module_callback_http_filter_config_increment_counter,
            id,
            value,
        );
    }

    pub fn set_gauge(self, id: usize, value: u64) {
        self.record(
            abi::envoy_dynamic_module_callback_http_filter_config_set_gauge,
            id,
            value,
        );
    }

    fn record(self, record: RecordMetric, id: usize, value: u64) {
        // SAFETY: `record` is one of Envoy's config-level metric callbacks; no labels are
        // passed; `id` came from the matching define on this configuration.
        unsafe {
            record(self.0, id, ptr::null(), 0, value);
        }
    }

    /// Starts an HTTP callout from the configuration (main thread); its answer comes to
    /// `on_http_filter_config_http_callout_done` with the returned id.
    pub fn http_callout(
        self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout_ms: u64,
    ) -> Result<u64, u32> {
        let headers = module_headers(headers.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
        let mut id = 0u64;
        // SAFETY: every buffer points into slices alive for the call (Envoy copies the
        // request); `id` is a valid out-parameter.
        let result = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_config_http_callout(
                self.0,
                &mut id,
                ModuleBuffer::of(cluster.as_bytes()),
                headers.as_ptr(),
                headers.len(),
                ModuleBuffer::of(&[]),
                timeout_ms,
            )
        };
        if result == abi::CALLOUT_INIT_SUCCESS {
            Ok(id)
        } else {
            Err(result)
        }
    }

    pub fn new_scheduler(self) -> Option<Scheduler> {
        // SAFETY: called on the main thread with the configuration's pointer.
        let scheduler =
            unsafe { abi::envoy_dynamic_module_callback_http_filter_config_scheduler_new(self.0) };
        (!scheduler.is_null()).then_some(Scheduler(scheduler))
    }
}

/// Headers lent to Envoy: pointers into the borrowed slices, which must outlive the call.
fn module_headers<'h>(
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
) -> Vec<ModuleHttpHeader> {
    headers
        .map(|(name, value)| ModuleHttpHeader {
            key_ptr: name.as_ptr(),
            key_length: name.len(),
            value_ptr: value.as_ptr(),
            value_length: value.len(),
        })
        .collect()
}

/// Posts events to the configuration's `on_http_filter_config_scheduled` on the main thread,
/// from any thread.
pub struct Scheduler(SchedulerPtr);

// SAFETY: Envoy's scheduler is made to be committed to from any thread (that is its purpose:
// to get back onto the main thread); it is deleted once, by its owner, after the timer
// thread that commits to it has stopped.
unsafe impl Send for Scheduler {}
// SAFETY: as above; commit takes no lock the module holds.
unsafe impl Sync for Scheduler {}

impl Scheduler {
    pub fn commit(&self, event_id: u64) {
        // SAFETY: the scheduler is alive until `Drop`, which runs after every commit.
        unsafe {
            abi::envoy_dynamic_module_callback_http_filter_config_scheduler_commit(self.0, event_id)
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // SAFETY: deleted once; no commit can follow (the owner stopped the committing thread).
        unsafe { abi::envoy_dynamic_module_callback_http_filter_config_scheduler_delete(self.0) }
    }
}

/// A callout response's headers and body, copied out of Envoy's buffers.
///
/// # Safety
/// The pointers must be those Envoy passed to the callout hook, with their counts.
pub unsafe fn callout_response(
    headers: *const EnvoyHttpHeader,
    headers_size: usize,
    chunks: *const EnvoyBuffer,
    chunks_size: usize,
) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
    let headers: &[EnvoyHttpHeader] = if headers.is_null() || headers_size == 0 {
        &[]
    } else {
        // SAFETY: the caller's promise.
        unsafe { std::slice::from_raw_parts(headers, headers_size) }
    };
    let chunks: &[EnvoyBuffer] = if chunks.is_null() || chunks_size == 0 {
        &[]
    } else {
        // SAFETY: the caller's promise.
        unsafe { std::slice::from_raw_parts(chunks, chunks_size) }
    };
    let headers = headers
        .iter()
        .map(|h| {
            // SAFETY: Envoy's header entries point at their bytes for the hook's duration.
            let (k, v) = unsafe {
                (
                    copy(EnvoyBuffer {
                        ptr: h.key_ptr,
                        length: h.key_length,
                    }),
                    copy(EnvoyBuffer {
                        ptr: h.value_ptr,
                        length: h.value_length,
                    }),
                )
            };
            (String::from_utf8_lossy(&k).into_owned(), v)
        })
        .collect();
    let mut body = Vec::new();
    for chunk in chunks {
        // SAFETY: as above, for the body chunks.
        body.extend_from_slice(&unsafe { copy(*chunk) });
    }
    (headers, body)
}
