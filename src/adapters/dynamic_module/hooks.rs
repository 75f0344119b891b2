//! The functions Envoy looks up in the library (`envoy_dynamic_module_on_*`): every hook the
//! 1.40 HTTP filter requires, most of them answering "continue".
//!
//! No panic may cross into Envoy (a native module's panic would abort Envoy itself): each hook
//! that runs module code does so under `contained`, and the `native` profile unwinds, so a
//! bug becomes a refused request (or a refused configuration), logged.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::abi::{
    ABI_VERSION, CALLOUT_SUCCESS, CONTINUE, EnvoyBuffer, EnvoyHttpHeader, FilterConfigEnvoyPtr,
    FilterEnvoyPtr, HEADERS_CONTINUE, HEADERS_STOP_ITERATION, LOG_CRITICAL, LOG_ERROR, LOG_INFO,
};
use super::filter;
use super::filter_config::FilterConfig;
use super::host::{self, ConfigHandle, Stream};
use super::remote::Fetcher;

/// Runs `body`, turning a panic into `fallback` and one log line.
fn contained<T>(what: &str, fallback: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(_) => {
            host::log(
                LOG_CRITICAL,
                &format!("jwt-guard: internal error in {what}"),
            );
            fallback
        }
    }
}

/// The configuration behind a module pointer this library returned from `config_new`.
///
/// # Safety
/// `ptr` must be a pointer `envoy_dynamic_module_on_http_filter_config_new` returned and
/// `..._config_destroy` has not yet freed.
unsafe fn config_of<'a>(ptr: *const c_void) -> Option<&'a FilterConfig> {
    // SAFETY: the caller's promise: a live `Box<FilterConfig>` leaked by config_new.
    unsafe { ptr.cast::<FilterConfig>().as_ref() }
}

fn millis_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const u8 {
    ABI_VERSION.as_ptr()
}

/// # Safety
/// Envoy's contract: `name` and `config` point at readable bytes for this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: FilterConfigEnvoyPtr,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    contained("on_http_filter_config_new", std::ptr::null(), || {
        let json: &[u8] = if config.ptr.is_null() {
            &[]
        } else {
            // SAFETY: Envoy's contract for this hook.
            unsafe { std::slice::from_raw_parts(config.ptr, config.length) }
        };
        let handle = ConfigHandle(config_envoy);
        match FilterConfig::new(handle, json) {
            Ok((filter_config, compiled)) => {
                let mut fetcher = Fetcher::new(handle, &compiled, filter_config.published.clone());
                if let Some(fetcher) = &mut fetcher
                    && let Err(err) = fetcher.start()
                {
                    host::log(LOG_CRITICAL, &format!("jwt-guard: {err}"));
                    return std::ptr::null();
                }
                host::log(
                    LOG_INFO,
                    &format!(
                        "jwt-guard {} (native): configured: {} providers, {} rules; signatures natively (ring); token cache: {} entries per worker",
                        env!("CARGO_PKG_VERSION"),
                        compiled.providers.len(),
                        compiled.rules.len(),
                        compiled.token_cache_size,
                    ),
                );
                if let Ok(mut slot) = filter_config.fetcher.lock() {
                    *slot = fetcher;
                }
                Box::into_raw(Box::new(filter_config))
                    .cast::<c_void>()
                    .cast_const()
            }
            Err(err) => {
                host::log(
                    LOG_CRITICAL,
                    &format!("jwt-guard: invalid configuration: {err}"),
                );
                std::ptr::null()
            }
        }
    })
}

/// # Safety
/// `config` is a pointer config_new returned, destroyed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void) {
    if config.is_null() {
        return;
    }
    // SAFETY: config_new leaked this box; Envoy destroys it once, after its last stream.
    let config = unsafe { Box::from_raw(config.cast::<FilterConfig>().cast_mut()) };
    // Stops the timer thread before the scheduler goes.
    contained("on_http_filter_config_destroy", (), move || drop(config));
}

/// The per-stream pointer: the configuration itself (a stream keeps no state of its own; its
/// worker's state is in `super::worker`).
///
/// # Safety
/// `config` is a live configuration pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    _filter_envoy: FilterEnvoyPtr,
) -> *const c_void {
    config
}

/// # Safety
/// Envoy's contract: `filter_envoy` is this stream's, `filter` what `on_http_filter_new` returned.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter_envoy: FilterEnvoyPtr,
    filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    let stream = Stream(filter_envoy);
    // SAFETY: `filter` is the configuration pointer, alive while its streams are.
    let Some(config) = (unsafe { config_of(filter) }) else {
        host::log(
            LOG_ERROR,
            "jwt-guard: no configuration; refusing the request",
        );
        stream.send_response(401, &[], b"", "jwt_guard_unconfigured");
        return HEADERS_STOP_ITERATION;
    };
    contained(
        "on_http_filter_request_headers",
        HEADERS_STOP_ITERATION,
        || filter::on_request_headers(stream, config),
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    _filter_envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _filter_envoy: FilterEnvoyPtr,
    _filter: *const c_void,
) -> u32 {
    CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    _filter_envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    HEADERS_CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _filter_envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _filter_envoy: FilterEnvoyPtr,
    _filter: *const c_void,
) -> u32 {
    CONTINUE
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    _filter_envoy: FilterEnvoyPtr,
    _filter: *const c_void,
) {
}

/// Nothing to free: the per-stream pointer is the configuration's.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(_filter: *const c_void) {}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _filter_envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _callout_id: u64,
    _result: u32,
    _headers: *const EnvoyHttpHeader,
    _headers_size: usize,
    _body_chunks: *const EnvoyBuffer,
    _body_chunks_size: usize,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _filter_envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _stream_id: u64,
    _headers: *const EnvoyHttpHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _filter_envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _filter_envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _stream_id: u64,
    _trailers: *const EnvoyHttpHeader,
    _trailers_size: usize,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _filter_envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _stream_id: u64,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _filter_envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _stream_id: u64,
    _reason: u32,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _filter_envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _event_id: u64,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _filter_envoy: FilterEnvoyPtr,
    _filter: *const c_void,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _filter_envoy: FilterEnvoyPtr,
    _filter: *const c_void,
) {
}

/// The remote-JWKS timer's tick, on the main thread.
///
/// # Safety
/// `config` is a live configuration pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    _config_envoy: FilterConfigEnvoyPtr,
    config: *const c_void,
    _event_id: u64,
) {
    // SAFETY: Envoy's contract: the configuration is alive while its scheduler runs.
    let Some(config) = (unsafe { config_of(config) }) else {
        return;
    };
    contained("on_http_filter_config_scheduled", (), || {
        if let Ok(mut fetcher) = config.fetcher.lock()
            && let Some(fetcher) = fetcher.as_mut()
        {
            fetcher.tick(millis_now());
        }
    });
}

/// A remote-JWKS callout's answer, on the main thread.
///
/// # Safety
/// `config` is a live configuration pointer; the buffers are Envoy's for this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    _config_envoy: FilterConfigEnvoyPtr,
    config: *const c_void,
    callout_id: u64,
    result: u32,
    headers: *const EnvoyHttpHeader,
    headers_size: usize,
    body_chunks: *const EnvoyBuffer,
    body_chunks_size: usize,
) {
    // SAFETY: as for config_scheduled.
    let Some(config) = (unsafe { config_of(config) }) else {
        return;
    };
    // SAFETY: Envoy's buffers for this call, copied before it returns.
    let (headers, body) =
        unsafe { host::callout_response(headers, headers_size, body_chunks, body_chunks_size) };
    contained("on_http_filter_config_http_callout_done", (), || {
        if let Ok(mut fetcher) = config.fetcher.lock()
            && let Some(fetcher) = fetcher.as_mut()
        {
            fetcher.on_response(
                callout_id,
                result == CALLOUT_SUCCESS,
                &headers,
                &body,
                millis_now(),
            );
        }
    });
}
