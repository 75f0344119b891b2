//! The request URI a DPoP proof's `htu` must name (RFC 9449 §4.3 step 9): scheme, authority and
//! path of this request, without query and fragment, compared after the syntax-based
//! normalisation of RFC 3986 §6.2.2 that changes nothing a server routes on (case of scheme and
//! host, a default port) and nothing more: the path is compared exactly, so two proofs can never
//! name one resource in two spellings that an upstream would read as two.

use crate::request::Request;

/// Whether `htu` names this request's URI. Envoy gives the scheme in `:scheme` (what the client
/// used on the downstream connection, or what a trusted front proxy said it used) and the
/// authority in `:authority`.
pub fn matches(htu: &str, request: &Request<'_>) -> bool {
    let Some((scheme, rest)) = htu.split_once("://") else {
        return false;
    };
    let end_of_authority = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, rest) = rest.split_at(end_of_authority);
    let path = rest.split(['?', '#']).next().unwrap_or_default();
    let request_scheme = request.first(":scheme").unwrap_or_default();
    let request_authority = request
        .first(":authority")
        .or_else(|| request.first("host"))
        .unwrap_or_default();
    scheme.as_bytes().eq_ignore_ascii_case(request_scheme)
        && normal_authority(authority.as_bytes(), scheme.as_bytes())
            .eq_ignore_ascii_case(normal_authority(request_authority, request_scheme))
        && or_root(path.as_bytes()) == or_root(request.path())
}

/// The authority without the scheme's default port.
fn normal_authority<'a>(authority: &'a [u8], scheme: &[u8]) -> &'a [u8] {
    let default_port: &[u8] = if scheme.eq_ignore_ascii_case(b"https") {
        b":443"
    } else if scheme.eq_ignore_ascii_case(b"http") {
        b":80"
    } else {
        return authority;
    };
    authority.strip_suffix(default_port).unwrap_or(authority)
}

fn or_root(path: &[u8]) -> &[u8] {
    if path.is_empty() { b"/" } else { path }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::headers;

    #[test]
    fn htu_table() {
        let cases: &[(&str, &str, &str, &str, bool)] = &[
            // (htu, :scheme, :authority, :path, matches)
            (
                "https://api.example.com/orders",
                "https",
                "api.example.com",
                "/orders",
                true,
            ),
            (
                "https://api.example.com/orders?x=1#f",
                "https",
                "api.example.com",
                "/orders?y=2",
                true,
            ),
            (
                "HTTPS://API.Example.com/orders",
                "https",
                "api.example.com",
                "/orders",
                true,
            ),
            (
                "https://api.example.com:443/orders",
                "https",
                "api.example.com",
                "/orders",
                true,
            ),
            (
                "https://api.example.com/orders",
                "https",
                "api.example.com:443",
                "/orders",
                true,
            ),
            (
                "http://localhost:8080/a",
                "http",
                "localhost:8080",
                "/a",
                true,
            ),
            ("http://localhost:80/a", "http", "localhost", "/a", true),
            (
                "https://api.example.com",
                "https",
                "api.example.com",
                "/",
                true,
            ),
            (
                "https://api.example.com?q",
                "https",
                "api.example.com",
                "/?q",
                true,
            ),
            (
                "http://api.example.com/orders",
                "https",
                "api.example.com",
                "/orders",
                false,
            ),
            (
                "https://api.example.com:8443/orders",
                "https",
                "api.example.com",
                "/orders",
                false,
            ),
            (
                "https://api.example.com:80/orders",
                "https",
                "api.example.com",
                "/orders",
                false,
            ),
            (
                "https://other.example.com/orders",
                "https",
                "api.example.com",
                "/orders",
                false,
            ),
            (
                "https://api.example.com/Orders",
                "https",
                "api.example.com",
                "/orders",
                false,
            ),
            (
                "https://api.example.com/orders/",
                "https",
                "api.example.com",
                "/orders",
                false,
            ),
            (
                "https://api.example.com/%6Frders",
                "https",
                "api.example.com",
                "/orders",
                false,
            ),
            (
                "https://user@api.example.com/orders",
                "https",
                "api.example.com",
                "/orders",
                false,
            ),
            (
                "api.example.com/orders",
                "https",
                "api.example.com",
                "/orders",
                false,
            ),
            ("/orders", "https", "api.example.com", "/orders", false),
            ("", "https", "api.example.com", "/orders", false),
        ];
        for (htu, scheme, authority, path, expected) in cases {
            let h = headers(&[
                (":scheme", scheme),
                (":authority", authority),
                (":path", path),
            ]);
            assert_eq!(
                matches(htu, &Request::bare(&h)),
                *expected,
                "{htu} vs {scheme}://{authority}{path}"
            );
        }
    }

    #[test]
    fn without_scheme_or_authority_nothing_matches() {
        let h = headers(&[(":path", "/orders")]);
        assert!(!matches(
            "https://api.example.com/orders",
            &Request::bare(&h)
        ));
    }
}
