//! What the core sees of a request: its headers (pseudo-headers included, names lower-case as
//! Envoy presents them, values as raw bytes) and the few Envoy properties policy may need.

pub struct Request<'r> {
    pub headers: &'r [(String, Vec<u8>)],
    /// Envoy's `source.address` (`ip:port`), when the configuration needs the client address.
    pub peer_address: Option<&'r str>,
    /// Envoy's `xds.route_name`, when a rule matches on it.
    pub route_name: Option<&'r str>,
}

impl<'r> Request<'r> {
    /// Every value of a header, in order; values that are not UTF-8 are skipped.
    pub fn values(&self, name: &'r str) -> impl Iterator<Item = &'r str> + 'r {
        self.raw_values(name)
            .filter_map(|value| std::str::from_utf8(value).ok())
    }

    pub fn raw_values(&self, name: &'r str) -> impl Iterator<Item = &'r [u8]> + 'r {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    pub fn first(&self, name: &'r str) -> Option<&'r str> {
        self.values(name).next()
    }

    pub fn has(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n == name)
    }

    pub fn method(&self) -> &'r str {
        self.first(":method").unwrap_or_default()
    }

    /// `:path` without its query string.
    pub fn path(&self) -> &'r str {
        let full = self.first(":path").unwrap_or_default();
        full.split_once('?').map_or(full, |(path, _)| path)
    }

    pub fn query(&self) -> Option<&'r str> {
        self.first(":path")
            .and_then(|full| full.split_once('?'))
            .map(|(_, query)| query)
    }

    /// `:authority` (or `host`) without its port, as sent (compare it case-insensitively).
    pub fn host(&self) -> &'r str {
        let authority = self
            .first(":authority")
            .or_else(|| self.first("host"))
            .unwrap_or_default();
        if let Some(rest) = authority.strip_prefix('[') {
            rest.split_once(']').map_or(rest, |(inside, _)| inside)
        } else {
            authority
                .rsplit_once(':')
                .map_or(authority, |(host, _)| host)
        }
    }
}

#[cfg(test)]
impl<'r> Request<'r> {
    /// A request with only headers, as unit tests need it.
    pub(crate) fn bare(headers: &'r [(String, Vec<u8>)]) -> Request<'r> {
        Request {
            headers,
            peer_address: None,
            route_name: None,
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
        assert_eq!(request.method(), "GET");
        assert_eq!(request.path(), "/a/b");
        assert_eq!(request.query(), Some("x=1&y=2"));
        assert_eq!(request.host(), "api.example.com");
        let h6 = headers(&[(":authority", "[::1]:80")]);
        let request = Request::bare(&h6);
        assert_eq!(request.host(), "::1");
    }
}
