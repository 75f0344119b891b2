//! Test-only proxy-wasm module: the Wycheproof vectors of every algorithm Envoy's
//! `verify_signature` serves for jwt-guard (ECDSA P-256/SHA-256, P-384/SHA-384 and
//! P-521/SHA-512 in P1363 form; RSA PKCS #1 v1.5, 2048/3072/4096 bits, SHA-256/384/512), checked
//! by the host inside a
//! real Envoy through the production wire format ([`verify_signature::arguments`] and
//! [`verify_signature::result`]), and by the pure-Rust backend ([`signature::is_valid`]) beside
//! it. `tests/integration/test_host_backend.py` loads it as an HTTP Wasm filter, sends one
//! request and reads the answer and the log.
//!
//! Everything runs once per HTTP request, in the request's context on a worker thread, where
//! the filter itself calls `verify_signature`; the answer (200 if all is well, 500 otherwise)
//! carries the same lines as the log. Not in `on_configure`, although foreign functions work
//! there already (the filter's start-up probe uses them): Envoy calls it once per VM it makes,
//! three times for an HTTP filter with one worker, and the pure-Rust checks make one run take
//! about 15 s. Vectors, keys, expectations and derived variants come from
//! [`jwt_guard::testing::vectors`], the code the unit tests run the pure-Rust backend with, so both
//! backends pass the same tests. A check is wrong when the host's verdict differs from the
//! vector's expectation; `arguments` returning `None` (the filter then refuses the token
//! without asking the host) is the verdict "invalid", right for invalid vectors only. Beside
//! that, every check whose host verdict differs from `is_valid`'s here, in wasm32 (where the
//! filter runs the pure-Rust backend too), is reported: the two backends must never disagree
//! on a token.
//!
//! The plugin configuration may add cases made by the test (a JSON object `{"cases": [{"name",
//! "jwk", "message" (hex), "signature" (hex), "valid"}]}`): a valid signature whose encoding has
//! a leading zero byte, say, which no Wycheproof file is guaranteed to hold. They get the same
//! checks and variants.
//!
//! Lines (logged at info level, wrong answers and differences at error level, one per line):
//! `wycheproof-envoy: file <name>: <n> vectors, ...; <w> wrong, <d> differ from Rust`,
//! `wycheproof-envoy: case <name>: ...` and last `wycheproof-envoy: summary: ...`.

use std::ptr::{null, null_mut};
use std::rc::Rc;

use jwt_guard::adapters::proxy_wasm::verify_signature;
use jwt_guard::authn::jwks::VerificationKey;
use jwt_guard::authn::signature;
use jwt_guard::testing::vectors::{self, Case, HOST_SERVED_FILES, MIN_CHECKED, Tally};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use serde_json::Value;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

#[derive(Default)]
struct Root {
    /// The plugin configuration, readable in `on_configure` only.
    configuration: Rc<Vec<u8>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        self.configuration = Rc::new(plugin_configuration());
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Run {
            configuration: self.configuration.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Each request runs everything once and is answered with the log lines: 200 when nothing
/// was wrong and the backends never differed, 500 otherwise.
struct Run {
    configuration: Rc<Vec<u8>>,
}

impl Context for Run {}

impl HttpContext for Run {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let mut report = Report::default();
        run(&self.configuration, &mut report);
        let status = if report.clean { 200 } else { 500 };
        let mut body = report.lines.join("\n");
        body.push('\n');
        send_local_response(status, body.as_bytes());
        Action::Pause
    }
}

/// The lines logged so far, and whether all of them were good news.
struct Report {
    lines: Vec<String>,
    clean: bool,
}

impl Default for Report {
    fn default() -> Report {
        Report {
            lines: Vec::new(),
            clean: true,
        }
    }
}

impl Report {
    fn info(&mut self, line: String) {
        log(LOG_INFO, &line);
        self.lines.push(line);
    }

    fn error(&mut self, line: String) {
        log(LOG_ERROR, &line);
        self.lines.push(line);
        self.clean = false;
    }
}

// ---------------------------------------------------------------------------------------------
// Host calls, bound directly (the SDK's wrappers panic on statuses they do not expect).

const LOG_INFO: u32 = 2;
const LOG_ERROR: u32 = 4;
const PLUGIN_CONFIGURATION: u32 = 7;
const OK: u32 = 0;

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
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
    fn proxy_call_foreign_function(
        function_name_data: *const u8,
        function_name_size: usize,
        arguments_data: *const u8,
        arguments_size: usize,
        results_data: *mut *mut u8,
        results_size: *mut usize,
    ) -> u32;
}

fn log(level: u32, message: &str) {
    // SAFETY: pointer and length of a live &str.
    let _ = unsafe { proxy_log(level, message.as_ptr(), message.len()) };
}

/// Memory the host filled through the SDK's `proxy_on_memory_allocate` (a `Vec<u8>` of
/// exactly `size`).
///
/// # Safety
/// `data` must be null or come from that allocator with exactly `size` bytes.
unsafe fn owned(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        // SAFETY: see the function's contract.
        unsafe { Vec::from_raw_parts(data, size, size) }
    }
}

/// A text/plain answer to the current request.
fn send_local_response(status: u32, body: &[u8]) {
    // One header, content-type: text/plain, in the proxy-wasm map encoding: the pair count,
    // then each name and value length (little-endian u32), then each name and value followed by
    // a NUL.
    let (name, value) = (b"content-type", b"text/plain");
    let mut headers = Vec::new();
    for number in [1, name.len(), value.len()] {
        headers.extend_from_slice(&(number as u32).to_le_bytes());
    }
    for text in [&name[..], &value[..]] {
        headers.extend_from_slice(text);
        headers.push(0);
    }
    // SAFETY: pointers and lengths of live slices. If it fails, the test sees no answer.
    let _ = unsafe {
        proxy_send_local_response(
            status,
            null(),
            0,
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    };
}

fn plugin_configuration() -> Vec<u8> {
    let (mut data, mut size) = (null_mut(), 0);
    // SAFETY: valid out-pointers; the returned memory is taken over by `owned`.
    let code = unsafe {
        proxy_get_buffer_bytes(PLUGIN_CONFIGURATION, 0, usize::MAX, &mut data, &mut size)
    };
    // SAFETY: filled by the host through the module's allocator (or left null).
    let bytes = unsafe { owned(data, size) };
    if code == OK { bytes } else { Vec::new() }
}

/// Envoy's `verify_signature`: what it returned, or the status of a failed call.
fn verify_signature(arguments: &[u8]) -> Result<Vec<u8>, u32> {
    const NAME: &str = "verify_signature";
    let (mut data, mut size) = (null_mut(), 0);
    // SAFETY: pointers and lengths of live slices, valid out-pointers.
    let code = unsafe {
        proxy_call_foreign_function(
            NAME.as_ptr(),
            NAME.len(),
            arguments.as_ptr(),
            arguments.len(),
            &mut data,
            &mut size,
        )
    };
    // SAFETY: filled by the host through the module's allocator (or left null).
    let bytes = unsafe { owned(data, size) };
    if code == OK { Ok(bytes) } else { Err(code) }
}

// ---------------------------------------------------------------------------------------------
// The checks.

/// Both backends on each case, as the filter would run the host one (`HostVerifier` in
/// src/adapters/proxy_wasm/host_verifier.rs): no arguments means a refused token, without a host call.
#[derive(Default)]
struct Backends {
    /// Checks answered by `verify_signature`.
    by_host: usize,
    /// Checks `verify_signature::arguments` refused (an ECDSA signature of the wrong size).
    refused: usize,
    /// Checks the host verdict accepted.
    accepted: usize,
    /// Host calls that failed, or answers that did not decode: always wrong.
    host_failures: Vec<String>,
    /// Host verdicts that differ from `signature::is_valid`'s.
    differ: Vec<String>,
}

impl Backends {
    fn check(&mut self, key: &VerificationKey, case: &Case<'_>) -> bool {
        let rust = signature::is_valid(key, case.msg, case.sig);
        let host = match verify_signature::arguments(key, case.msg, case.sig) {
            None => {
                self.refused += 1;
                false
            }
            Some(arguments) => {
                let answer = verify_signature(&arguments)
                    .map_err(|status| format!("status {status}"))
                    .and_then(|bytes| {
                        verify_signature::result(&bytes)
                            .ok_or_else(|| format!("undecodable result {bytes:?}"))
                    });
                match answer {
                    Ok(valid) => {
                        self.by_host += 1;
                        valid
                    }
                    Err(err) => {
                        self.host_failures
                            .push(format!("{case}: verify_signature failed: {err}"));
                        false
                    }
                }
            }
        };
        self.accepted += usize::from(host);
        if host != rust {
            self.differ
                .push(format!("{case}: host {host}, pure Rust {rust}"));
        }
        host
    }

    /// Reports the wrong answers and differences under `label`; returns their numbers.
    fn report(&self, report: &mut Report, label: &str, problems: &[String]) -> (usize, usize) {
        for problem in problems.iter().chain(&self.host_failures) {
            report.error(format!("wycheproof-envoy: {label}: wrong: {problem}"));
        }
        for difference in &self.differ {
            report.error(format!(
                "wycheproof-envoy: {label}: backends differ: {difference}"
            ));
        }
        (problems.len() + self.host_failures.len(), self.differ.len())
    }
}

#[derive(Default)]
struct Totals {
    files: usize,
    vectors: usize,
    variants: usize,
    cases: usize,
    by_host: usize,
    refused: usize,
    wrong: usize,
    differ: usize,
}

fn run(configuration: &[u8], report: &mut Report) {
    let mut totals = Totals::default();
    for (file, alg) in HOST_SERVED_FILES {
        let mut backends = Backends::default();
        let tally = vectors::run_file(file, alg, &mut |key, case| backends.check(key, case));
        let problems = tally.problems(MIN_CHECKED);
        let (wrong, differ) = backends.report(report, &format!("file {file}"), &problems);
        report.info(file_line(&tally, &backends, wrong, differ));
        totals.files += 1;
        totals.vectors += tally.in_file;
        totals.variants += tally.variants;
        totals.by_host += backends.by_host;
        totals.refused += backends.refused;
        totals.wrong += wrong;
        totals.differ += differ;
    }
    run_cases(configuration, &mut totals, report);
    let line = format!(
        "wycheproof-envoy: summary: {} files, {} vectors, {} variants, {} cases; {} checks \
         answered by verify_signature, {} refused before the host; {} wrong, {} differ from Rust",
        totals.files,
        totals.vectors,
        totals.variants,
        totals.cases,
        totals.by_host,
        totals.refused,
        totals.wrong,
        totals.differ,
    );
    if totals.wrong == 0 && totals.differ == 0 {
        report.info(line);
    } else {
        report.error(line);
    }
}

fn file_line(tally: &Tally, backends: &Backends, wrong: usize, differ: usize) -> String {
    format!(
        "wycheproof-envoy: file {}: {} vectors ({} valid, {} invalid, {} acceptable), {} checked \
         by result, {} under keys the configuration refuses, {} variants; {} checks answered by \
         verify_signature, {} refused before the host, {} accepted; {} wrong, {} differ from Rust",
        tally.file,
        tally.in_file,
        tally.valid,
        tally.invalid,
        tally.acceptable,
        tally.verified,
        tally.refused_key,
        tally.variants,
        backends.by_host,
        backends.refused,
        backends.accepted,
        wrong,
        differ,
    )
}

/// The test's own cases from the plugin configuration.
fn run_cases(configuration: &[u8], totals: &mut Totals, report: &mut Report) {
    if configuration.is_empty() {
        return;
    }
    let cases = match serde_json::from_slice::<Value>(configuration) {
        Ok(config) => config.get("cases").and_then(Value::as_array).cloned(),
        Err(err) => {
            report.error(format!(
                "wycheproof-envoy: configuration: wrong: not JSON: {err}"
            ));
            totals.wrong += 1;
            return;
        }
    };
    for (index, case) in cases.unwrap_or_default().iter().enumerate() {
        let name = case.get("name").and_then(Value::as_str).unwrap_or("?");
        let mut backends = Backends::default();
        let mut problems = Vec::new();
        let mut variants = 0;
        match one_case(index, case, &mut backends, &mut problems, &mut variants) {
            Ok(verdict) => {
                let (wrong, differ) = backends.report(report, &format!("case {name}"), &problems);
                report.info(format!(
                    "wycheproof-envoy: case {name}: verdict {verdict}, {variants} variants; {} \
                     checks answered by verify_signature, {} refused before the host; {wrong} \
                     wrong, {differ} differ from Rust",
                    backends.by_host, backends.refused,
                ));
                totals.variants += variants;
                totals.by_host += backends.by_host;
                totals.refused += backends.refused;
                totals.wrong += wrong;
                totals.differ += differ;
            }
            Err(err) => {
                report.error(format!("wycheproof-envoy: case {name}: wrong: {err}"));
                totals.wrong += 1;
            }
        }
        totals.cases += 1;
    }
}
/// One configured case and, when it is valid, its variants; the case's own verdict.
fn one_case(
    index: usize,
    case: &Value,
    backends: &mut Backends,
    problems: &mut Vec<String>,
    variants: &mut usize,
) -> Result<bool, String> {
    let hex_field = |name: &str| {
        case.get(name)
            .and_then(Value::as_str)
            .and_then(hex)
            .ok_or_else(|| format!("{name} must be a hex string"))
    };
    let (msg, sig) = (hex_field("message")?, hex_field("signature")?);
    let valid = case
        .get("valid")
        .and_then(Value::as_bool)
        .ok_or("valid must be a boolean")?;
    let jwk = case.get("jwk").cloned().ok_or("jwk is required")?;
    let set = vectors::key_set(jwk).map_err(|err| format!("key refused: {err:?}"))?;
    let [key] = set.keys() else {
        return Err("the jwk must compile to one key".into());
    };
    let case = Case {
        tc_id: index,
        comment: "configured case",
        variant: None,
        msg: &msg,
        sig: &sig,
    };
    let verdict = backends.check(key, &case);
    if verdict != valid {
        problems.push(format!("{case}: verdict {verdict}, expected {valid}"));
    }
    if valid {
        for variant in vectors::variants(key, &sig) {
            let derived = Case {
                variant: Some(variant.name),
                sig: &variant.sig,
                ..case
            };
            let verified = backends.check(key, &derived);
            *variants += 1;
            if verified != variant.valid {
                problems.push(format!("{derived}: verdict {verified}"));
            }
        }
    }
    Ok(verdict)
}

fn hex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(text, 16).ok()
        })
        .collect()
}
