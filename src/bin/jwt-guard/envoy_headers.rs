//! Request headers as Envoy hands them to filters: what `explain` must reproduce so that it
//! judges the request the filter judges.

/// The request headers Envoy 1.40 keeps inline, as it lists them at start-up ("request header
/// map: …", with jwt_authn and the other built-in extensions registered): a repeated line of one
/// of these is appended to the first with `,`; every other header keeps one entry per line.
pub const ENVOY_INLINE_REQUEST_HEADERS: &[&str] = &[
    "accept",
    "accept-encoding",
    "access-control-request-headers",
    "access-control-request-method",
    "access-control-request-private-network",
    "authentication",
    "authorization",
    "cache-control",
    "cdn-loop",
    "connection",
    "content-encoding",
    "content-length",
    "content-type",
    "expect",
    "grpc-accept-encoding",
    "grpc-timeout",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "keep-alive",
    "origin",
    "pragma",
    "proxy-connection",
    "proxy-status",
    "referer",
    "te",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "via",
    "x-client-trace-id",
    "x-envoy-attempt-count",
    "x-envoy-decorator-operation",
    "x-envoy-downstream-service-cluster",
    "x-envoy-downstream-service-node",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-external-address",
    "x-envoy-force-trace",
    "x-envoy-hedge-on-per-try-timeout",
    "x-envoy-internal",
    "x-envoy-ip-tags",
    "x-envoy-is-timeout-retry",
    "x-envoy-max-retries",
    "x-envoy-original-host",
    "x-envoy-original-path",
    "x-envoy-original-url",
    "x-envoy-retriable-header-names",
    "x-envoy-retriable-status-codes",
    "x-envoy-retry-grpc-on",
    "x-envoy-retry-on",
    "x-envoy-upstream-alt-stat-name",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-stream-duration-ms",
    "x-forwarded-client-cert",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-proto",
    "x-request-id",
];

/// Adds one header line as Envoy's codec does: appended with `,` to the first line of an inline
/// header, or as an entry of its own.
pub fn add(headers: &mut Vec<(String, Vec<u8>)>, name: &str, value: &[u8]) {
    let inline = ENVOY_INLINE_REQUEST_HEADERS.contains(&name);
    match headers.iter_mut().find(|(n, _)| inline && n == name) {
        Some((_, first)) => {
            first.push(b',');
            first.extend_from_slice(value);
        }
        None => headers.push((name.to_string(), value.to_vec())),
    }
}
