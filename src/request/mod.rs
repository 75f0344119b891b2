//! What the core sees of a request: its headers (pseudo-headers included, names lower-case as
//! Envoy presents them, values as raw bytes) and the few Envoy properties policy may need.
//!
//! Every accessor works on bytes. A value that is not UTF-8 is still the value Envoy forwards,
//! so reading it as absent would let the filter and the upstream disagree about the request.

pub mod country;
pub mod path_pattern;
pub mod route;

pub use country::Country;
pub use route::{
    MetadataMember, ROUTE_RULE_MEMBER, Selection, route_binding, unknown_binding_warning,
};

pub struct Request<'r> {
    pub headers: &'r [(String, Vec<u8>)],
    /// Envoy's `source.address` (`ip:port`), asked for only when the matched rule needs the
    /// client address.
    pub peer_address: &'r dyn Fn() -> Option<String>,
    /// Envoy's `connection.sha256_peer_certificate_digest` (hex SHA-256 of the DER client
    /// certificate on the downstream TLS connection), asked for only to check a
    /// certificate-bound token.
    pub peer_certificate_digest: &'r dyn Fn() -> Option<String>,
    /// Envoy's `xds.route_name`, when a rule matches on it.
    pub route_name: Option<&'r str>,
    /// The rule named by the route's metadata (see [`route_binding`]): that rule decides,
    /// whatever the order and `match`. `Some` of a name no rule has (the empty one included)
    /// refuses the request.
    pub route_rule: Option<&'r [u8]>,
}

impl<'r> Request<'r> {
    /// Every value of a header, in order, as bytes.
    pub fn values(&self, name: &'r str) -> impl Iterator<Item = &'r [u8]> + 'r {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    pub fn first(&self, name: &'r str) -> Option<&'r [u8]> {
        self.values(name).next()
    }

    pub fn has(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n == name)
    }

    pub fn method(&self) -> &'r [u8] {
        self.first(":method").unwrap_or_default()
    }

    /// `:path` without its query string.
    pub fn path(&self) -> &'r [u8] {
        let full = self.first(":path").unwrap_or_default();
        split_once(full, b'?').map_or(full, |(path, _)| path)
    }

    pub fn query(&self) -> Option<&'r [u8]> {
        split_once(self.first(":path")?, b'?').map(|(_, query)| query)
    }

    /// `:authority` (Envoy turns an HTTP/1 `Host` into it; `host` is read only without it),
    /// normalised the way Envoy's routing and upstream servers treat it as the same host: port
    /// and IPv6 brackets removed, surrounding white space and one trailing dot (`example.com.`
    /// is `example.com` in DNS) dropped. Compare it case-insensitively.
    pub fn host(&self) -> &'r [u8] {
        let authority = self
            .first(":authority")
            .or_else(|| self.first("host"))
            .unwrap_or_default()
            .trim_ascii();
        let host = if let Some(rest) = authority.strip_prefix(b"[") {
            split_once(rest, b']').map_or(rest, |(inside, _)| inside)
        } else {
            before_last(authority, b':').unwrap_or(authority)
        };
        host.strip_suffix(b".").unwrap_or(host)
    }
}

pub fn split_once(bytes: &[u8], separator: u8) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|b| *b == separator)?;
    Some((bytes.get(..at)?, bytes.get(at + 1..)?))
}

/// `bytes` before the last `separator`, when there is one.
fn before_last(bytes: &[u8], separator: u8) -> Option<&[u8]> {
    let at = bytes.iter().rposition(|b| *b == separator)?;
    bytes.get(..at)
}

#[cfg(test)]
impl<'r> Request<'r> {
    /// A request with only headers, as unit tests need it.
    pub(crate) fn bare(headers: &'r [(String, Vec<u8>)]) -> Request<'r> {
        Request {
            headers,
            peer_address: &|| None,
            peer_certificate_digest: &|| None,
            route_name: None,
            route_rule: None,
        }
    }
}

#[cfg(test)]
pub(crate) fn headers(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pseudo_headers() {
        let h = headers(&[
            (":method", "GET"),
            (":path", "/a/b?x=1&y=2"),
            (":authority", "api.example.com:8443"),
        ]);
        let request = Request::bare(&h);
        assert_eq!(request.method(), b"GET");
        assert_eq!(request.path(), b"/a/b");
        assert_eq!(request.query(), Some(&b"x=1&y=2"[..]));
        assert_eq!(request.host(), b"api.example.com");
    }

    #[test]
    fn hosts_are_normalised_as_servers_read_them() {
        let cases: [(&[u8], &[u8]); 9] = [
            (b"[::1]:80", b"::1"),
            (b"[::1]", b"::1"),
            (b"admin.example.com.", b"admin.example.com"),
            (b"admin.example.com.:8443", b"admin.example.com"),
            (b"Admin.Example.COM", b"Admin.Example.COM"),
            (b" admin.example.com ", b"admin.example.com"),
            (b"[fe80::1%25eth0]:80", b"fe80::1%25eth0"),
            (b"caf\xc3\xa9.example", b"caf\xc3\xa9.example"),
            (b"\xff.example.com", b"\xff.example.com"),
        ];
        for (authority, expected) in cases {
            let h = vec![(":authority".to_string(), authority.to_vec())];
            assert_eq!(Request::bare(&h).host(), expected, "{authority:?}");
        }
    }

    #[test]
    fn has_finds_a_header_by_its_exact_name() {
        let h = headers(&[(":path", "/"), ("x-a", "1"), ("x-a", "2")]);
        let request = Request::bare(&h);
        assert!(request.has("x-a"));
        assert!(request.has(":path"));
        for absent in ["x-b", "x-", "x-aa", "X-A", ""] {
            assert!(!request.has(absent), "{absent}");
        }
        assert!(!Request::bare(&[]).has("x-a"));
    }

    #[test]
    fn non_utf8_path_is_still_a_path() {
        let h = vec![(":path".to_string(), b"/adm\xffin?q=\xfe".to_vec())];
        let request = Request::bare(&h);
        assert_eq!(request.path(), b"/adm\xffin");
        assert_eq!(request.query(), Some(&b"q=\xfe"[..]));
    }
}
