//! Finding the bearer token: in headers (with a scheme prefix), query parameters or cookies,
//! and taking it out again before the request goes upstream.
//!
//! Recognition is deliberately broader than any one server's parser: whatever a mainstream
//! upstream could read as the token (a cookie name with white space around it, another case or
//! percent-encoded; a query parameter after `;`; a scheme followed by a tab) is found here too,
//! so it is verified or refused — it can never reach the upstream unchecked. What is *accepted*
//! stays strict: the value must be one well-formed token.

use crate::reason::AuthFailure;
use crate::request::Request;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLocation {
    /// `name` lower-case; `prefix` compared case-insensitively (`Bearer ` matches `bearer `).
    Header {
        name: String,
        prefix: String,
    },
    Param(String),
    Cookie(String),
}

/// RFC 9110 optional white space.
fn is_ows(byte: &u8) -> bool {
    *byte == b' ' || *byte == b'\t'
}

fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = bytes
        && is_ows(first)
    {
        bytes = rest;
    }
    while let [rest @ .., last] = bytes
        && is_ows(last)
    {
        bytes = rest;
    }
    bytes
}

impl TokenLocation {
    /// `Authorization: DPoP <token>` (RFC 9449 §7.1), read for providers with `dpop`.
    pub fn dpop_header() -> TokenLocation {
        TokenLocation::Header {
            name: "authorization".into(),
            prefix: "DPoP ".into(),
        }
    }

    pub fn is_dpop(&self) -> bool {
        matches!(self, TokenLocation::Header { name, prefix } if name == "authorization" && prefix.eq_ignore_ascii_case("DPoP "))
    }

    pub fn default_header() -> TokenLocation {
        TokenLocation::Header {
            name: "authorization".into(),
            prefix: "Bearer ".into(),
        }
    }

    /// Appends every token found here to `found`. A value that is present but not text is a
    /// malformed token, not an absent one.
    fn collect(&self, request: &Request<'_>, found: &mut Vec<String>) -> Result<(), AuthFailure> {
        let mut push = |raw: &[u8]| -> Result<(), AuthFailure> {
            let text = std::str::from_utf8(raw).map_err(|_| AuthFailure::Malformed)?;
            found.push(text.to_string());
            Ok(())
        };
        match self {
            TokenLocation::Header { name, prefix } => {
                // Envoy joins repeated lines of some headers (`authorization` among them) with
                // `,`, and a client may send a list itself: every element that uses the scheme
                // is a credential (a JWS has no comma). One header carries one: a second, even
                // the same token again, is refused rather than guessed at, so no credential
                // can reach the upstream without being the one that was verified.
                let mut credentials = 0;
                for element in request.values(name).flat_map(list_elements) {
                    if let Some(token) = after_scheme(element, prefix.as_bytes()) {
                        credentials += 1;
                        if credentials > 1 {
                            return Err(AuthFailure::Malformed);
                        }
                        push(token)?;
                    }
                }
            }
            TokenLocation::Param(param) => {
                for pair in query_pairs(request.query().unwrap_or_default()) {
                    let (key, value) = split_pair(pair);
                    if names_match(&percent_decode_lenient(key, true), param) {
                        let value = percent_decode(value).ok_or(AuthFailure::Malformed)?;
                        push(&value)?;
                    }
                }
            }
            TokenLocation::Cookie(cookie) => {
                for header in request.values("cookie") {
                    for pair in cookie_pairs(header) {
                        if let Some(value) = cookie_value(pair, cookie) {
                            push(&value.ok_or(AuthFailure::Malformed)?)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The elements of a header value read as an RFC 9110 list (`#element`): split on every comma.
/// Quoted strings are not honoured: a comma inside one only makes more candidates, each of
/// which is verified or refused.
fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|b| *b == b',')
}

/// The token after the scheme, when the value uses it. A prefix that ends in a space is an
/// auth-scheme: any run of spaces or tabs may follow it (RFC 9110 §11.4 allows one space;
/// servers accept more, and tabs), and the scheme alone is an empty token.
fn after_scheme<'v>(value: &'v [u8], prefix: &[u8]) -> Option<&'v [u8]> {
    let value = trim_ows(value);
    let scheme = trim_ows(prefix);
    let head = value.get(..scheme.len())?;
    if !head.eq_ignore_ascii_case(scheme) {
        return None;
    }
    let rest = value.get(scheme.len()..)?;
    let is_auth_scheme = prefix.last().is_some_and(is_ows) && !scheme.is_empty();
    if is_auth_scheme && !(rest.is_empty() || rest.first().is_some_and(is_ows)) {
        // `Bearerx` is another scheme.
        return None;
    }
    Some(trim_ows(rest))
}

/// Query pairs split on `&` and on `;` (which older frameworks also treat as a separator).
fn query_pairs(query: &[u8]) -> impl Iterator<Item = &[u8]> {
    query.split(|b| *b == b'&' || *b == b';')
}

fn split_pair(pair: &[u8]) -> (&[u8], &[u8]) {
    crate::request::split_once(pair, b'=').unwrap_or((pair, b""))
}

/// Cookie pairs split on `;` and on `,` (RFC 2965 and some servers still split on commas).
fn cookie_pairs(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    header.split(|b| *b == b';' || *b == b',')
}

/// `Some` when the pair names the token cookie: its name with surrounding white space trimmed,
/// percent-decoded and compared without regard to case (servers differ on each of these). The
/// inner `None` marks a value that is not text after decoding.
fn cookie_value(pair: &[u8], cookie: &str) -> Option<Option<Vec<u8>>> {
    let (name, value) = split_pair(pair);
    if !names_match(&percent_decode_lenient(trim_ows(name), false), cookie) {
        return None;
    }
    let value = trim_ows(value);
    let value = value
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(value);
    // A JWS has no `%`: decoding changes nothing for a real token, and matches servers that
    // decode cookie values (PHP, many frameworks).
    Some(percent_decode(value))
}

fn names_match(candidate: &[u8], configured: &str) -> bool {
    candidate.eq_ignore_ascii_case(configured.as_bytes())
}

/// Strict percent-decoding (with `+` as space) for values: a bad escape is an error.
fn percent_decode(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            out.push(hex_byte(bytes.get(index + 1..index + 3)?)?);
            index += 3;
        } else {
            out.push(if byte == b'+' { b' ' } else { byte });
            index += 1;
        }
    }
    Some(out)
}

/// Lenient percent-decoding for names: a bad escape stays as it is, as most servers keep it.
fn percent_decode_lenient(bytes: &[u8], plus_is_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        let escaped = (byte == b'%')
            .then(|| bytes.get(index + 1..index + 3).and_then(hex_byte))
            .flatten();
        match escaped {
            Some(decoded) => {
                out.push(decoded);
                index += 3;
            }
            None => {
                out.push(if plus_is_space && byte == b'+' {
                    b' '
                } else {
                    byte
                });
                index += 1;
            }
        }
    }
    out
}

fn hex_byte(hex: &[u8]) -> Option<u8> {
    let digit = |b: &u8| (*b as char).to_digit(16);
    match hex {
        [high, low] => Some((digit(high)? * 16 + digit(low)?) as u8),
        _ => None,
    }
}

/// The one token a request carries, and every place it was found.
#[derive(Debug, PartialEq, Eq)]
pub struct FoundToken<'l> {
    pub token: String,
    pub locations: Vec<&'l TokenLocation>,
}

/// Looks in every location. Two different tokens are refused (RFC 6750 §2: one method per
/// request), so a proxy and the filter can never disagree about which one was checked. An
/// empty token anywhere (`Bearer`, `?access_token=`, `session=`) is malformed, not absent.
pub fn find_token<'l>(
    request: &Request<'_>,
    locations: impl Iterator<Item = &'l TokenLocation>,
) -> Result<Option<FoundToken<'l>>, AuthFailure> {
    let mut result: Option<FoundToken<'l>> = None;
    let mut found = Vec::new();
    for location in locations {
        found.clear();
        location.collect(request, &mut found)?;
        for token in found.drain(..) {
            if token.is_empty() {
                return Err(AuthFailure::Malformed);
            }
            match &mut result {
                None => {
                    result = Some(FoundToken {
                        token,
                        locations: vec![location],
                    })
                }
                Some(existing) if existing.token == token => {
                    if !existing.locations.contains(&location) {
                        existing.locations.push(location);
                    }
                }
                Some(_) => return Err(AuthFailure::Malformed),
            }
        }
    }
    Ok(result)
}

/// A change to the request headers before it goes upstream. Values are bytes: a rebuilt
/// `cookie` header keeps other cookies exactly as they were, text or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderChange {
    Remove(String),
    Set(String, Vec<u8>),
}

/// The change that takes the token out of the request (`forward: false`): every value in this
/// location that was recognised as a token, whatever its spelling.
pub fn removal(request: &Request<'_>, location: &TokenLocation) -> Option<HeaderChange> {
    match location {
        TokenLocation::Header { name, .. } => Some(HeaderChange::Remove(name.clone())),
        TokenLocation::Param(param) => {
            let query = request.query()?;
            let mut kept = Vec::with_capacity(query.len());
            let mut rest = query;
            loop {
                let end = rest
                    .iter()
                    .position(|b| *b == b'&' || *b == b';')
                    .unwrap_or(rest.len());
                let (pair, tail) = rest.split_at(end);
                let (key, _) = split_pair(pair);
                if !names_match(&percent_decode_lenient(key, true), param) {
                    kept.extend_from_slice(pair);
                    // The separator that followed this pair, so `;` stays `;`.
                    kept.extend_from_slice(tail.get(..1).unwrap_or_default());
                }
                match tail.get(1..) {
                    Some(next) => rest = next,
                    None => break,
                }
            }
            while kept.last().is_some_and(|b| *b == b'&' || *b == b';') {
                kept.pop();
            }
            let mut new_path = request.path().to_vec();
            if !kept.is_empty() {
                new_path.push(b'?');
                new_path.extend_from_slice(&kept);
            }
            Some(HeaderChange::Set(":path".into(), new_path))
        }
        TokenLocation::Cookie(cookie) => {
            // Rebuilt from `;`-separated pairs; a pair holding the token cookie anywhere (also
            // after a comma) is dropped whole.
            let kept: Vec<&[u8]> = request
                .values("cookie")
                .flat_map(|header| header.split(|b| *b == b';'))
                .map(trim_ows)
                .filter(|pair| {
                    !pair.is_empty()
                        && cookie_pairs(pair).all(|part| cookie_value(part, cookie).is_none())
                })
                .collect();
            Some(if kept.is_empty() {
                HeaderChange::Remove("cookie".into())
            } else {
                HeaderChange::Set("cookie".into(), kept.join(&b"; "[..]))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::headers;

    fn locations() -> Vec<TokenLocation> {
        vec![
            TokenLocation::default_header(),
            TokenLocation::Param("access_token".into()),
            TokenLocation::Cookie("session".into()),
        ]
    }

    fn find_raw(h: &[(String, Vec<u8>)]) -> Result<Option<String>, AuthFailure> {
        let request = Request::bare(h);
        let locations = locations();
        find_token(&request, locations.iter()).map(|found| found.map(|f| f.token))
    }

    fn find(pairs: &[(&str, &str)]) -> Result<Option<String>, AuthFailure> {
        find_raw(&headers(pairs))
    }

    #[test]
    fn finds_tokens_in_each_location() {
        type Case<'a> = (
            Vec<(&'a str, &'a str)>,
            Result<Option<&'a str>, AuthFailure>,
        );
        let malformed = Err(AuthFailure::Malformed);
        let cases: Vec<Case> = vec![
            (vec![("authorization", "Bearer abc")], Ok(Some("abc"))),
            (vec![("authorization", "bEaReR abc")], Ok(Some("abc"))),
            (vec![("authorization", "Bearer\tabc")], Ok(Some("abc"))),
            (vec![("authorization", "Bearer   abc  ")], Ok(Some("abc"))),
            (vec![("authorization", " Bearer abc")], Ok(Some("abc"))),
            (vec![("authorization", "Basic abc")], Ok(None)),
            (vec![("authorization", "Bearerabc")], Ok(None)),
            (vec![("authorization", "Bearer ")], malformed),
            (vec![("authorization", "Bearer")], malformed),
            (
                vec![(":path", "/x?a=1&access_token=t%2Eu")],
                Ok(Some("t.u")),
            ),
            (vec![(":path", "/x?a=1;access_token=t")], Ok(Some("t"))),
            (vec![(":path", "/x?ACCESS_TOKEN=t")], Ok(Some("t"))),
            (vec![(":path", "/x?access%5Ftoken=t")], Ok(Some("t"))),
            (vec![(":path", "/x?access_token=%zz")], malformed),
            (vec![(":path", "/x?access_token=")], malformed),
            (vec![(":path", "/x?access_token")], malformed),
            (vec![(":path", "/x?access_token=%ff")], malformed),
            (vec![("cookie", "a=1; session=tok; b=2")], Ok(Some("tok"))),
            (vec![("cookie", "a=1;session =tok")], Ok(Some("tok"))),
            (vec![("cookie", "a=1; session= tok ")], Ok(Some("tok"))),
            (vec![("cookie", "a=1;\tSESSION=tok")], Ok(Some("tok"))),
            (vec![("cookie", "%73ession=tok")], Ok(Some("tok"))),
            (vec![("cookie", "session=\"tok\"")], Ok(Some("tok"))),
            (vec![("cookie", "a=1, session=tok")], Ok(Some("tok"))),
            (vec![("cookie", "session=t%2Eu")], Ok(Some("t.u"))),
            (vec![("cookie", "sessionx=tok")], Ok(None)),
            (vec![("cookie", "session=")], malformed),
            (vec![("cookie", "session")], malformed),
            (
                vec![
                    ("authorization", "Bearer abc"),
                    (":path", "/?access_token=abc"),
                ],
                Ok(Some("abc")),
            ),
            (
                vec![
                    ("authorization", "Bearer abc"),
                    ("authorization", "Bearer def"),
                ],
                malformed,
            ),
            (
                vec![("authorization", "Bearer abc"), ("cookie", "session=def")],
                malformed,
            ),
            (vec![("cookie", "session=abc; Session=def")], malformed),
            // Envoy's join of `Authorization: Basic eDp5` and `Authorization: Bearer abc`, and
            // a client's own list: the bearer credential is found wherever it stands.
            (
                vec![("authorization", "Basic eDp5,Bearer abc")],
                Ok(Some("abc")),
            ),
            (
                vec![("authorization", "Basic eDp5, Bearer abc")],
                Ok(Some("abc")),
            ),
            (
                vec![("authorization", "Bearer abc,Basic eDp5")],
                Ok(Some("abc")),
            ),
            (
                vec![("authorization", "Digest a=\"b, Bearer abc\"")],
                Ok(Some("abc\"")),
            ),
            (vec![("authorization", "Basic eDp5,Bearer")], malformed),
            (vec![("authorization", "Basic eDp5,Basic eTp6")], Ok(None)),
            // Two credentials in one header: refused, even when they are the same token.
            (vec![("authorization", "Bearer abc,Bearer abc")], malformed),
            (vec![("authorization", "Bearer abc,Bearer def")], malformed),
            (
                vec![
                    ("authorization", "Bearer abc"),
                    ("authorization", "Bearer abc"),
                ],
                malformed,
            ),
            // Repeated query parameters and cookies: the same token is one token (nothing
            // unverified can reach the upstream); two different ones are refused.
            (
                vec![(":path", "/x?access_token=abc&access_token=abc")],
                Ok(Some("abc")),
            ),
            (
                vec![(":path", "/x?access_token=abc&access_token=def")],
                malformed,
            ),
            (
                vec![("cookie", "session=abc"), ("cookie", "session=abc")],
                Ok(Some("abc")),
            ),
            (
                vec![("cookie", "session=abc"), ("cookie", "session=def")],
                malformed,
            ),
            (vec![], Ok(None)),
        ];
        for (pairs, expected) in cases {
            assert_eq!(
                find(&pairs),
                expected.map(|t| t.map(String::from)),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn non_utf8_bytes_never_hide_a_token() {
        type Case<'a> = (&'a str, &'a [u8], Result<Option<&'a str>, AuthFailure>);
        let cases: Vec<Case> = vec![
            (
                "authorization",
                b"Bearer \xff\xfe",
                Err(AuthFailure::Malformed),
            ),
            // A token cookie next to a cookie that is not text is still found.
            ("cookie", b"x=\xff\xfe; session=tok", Ok(Some("tok"))),
            ("cookie", b"\xff=1;session =tok", Ok(Some("tok"))),
            ("cookie", b"session=\xff", Err(AuthFailure::Malformed)),
            (":path", b"/x?a=\xff&access_token=tok", Ok(Some("tok"))),
            (
                ":path",
                b"/x?access_token=\xfftok",
                Err(AuthFailure::Malformed),
            ),
        ];
        for (name, value, expected) in cases {
            let h = vec![(name.to_string(), value.to_vec())];
            assert_eq!(
                find_raw(&h),
                expected.map(|t| t.map(String::from)),
                "{name}: {value:?}"
            );
        }
    }

    #[test]
    fn custom_prefixes() {
        let locations = [
            TokenLocation::Header {
                name: "x-token".into(),
                prefix: String::new(),
            },
            TokenLocation::Header {
                name: "x-api".into(),
                prefix: "Token:".into(),
            },
        ];
        let h = headers(&[("x-token", " abc ")]);
        let found = find_token(&Request::bare(&h), locations.iter()).unwrap();
        assert_eq!(found.unwrap().token, "abc");
        let h = headers(&[("x-api", "token:abc")]);
        let found = find_token(&Request::bare(&h), locations.iter()).unwrap();
        assert_eq!(found.unwrap().token, "abc");
    }

    #[test]
    fn removal_keeps_everything_else() {
        let h = vec![
            (
                ":path".to_string(),
                b"/x?a=1&access_token=t;c=3&b=2".to_vec(),
            ),
            ("cookie".to_string(), b"a=1; session=tok".to_vec()),
            ("cookie".to_string(), b"b=\xff;  SESSION =tok".to_vec()),
        ];
        let request = Request::bare(&h);
        let locations = locations();
        assert_eq!(
            removal(&request, &locations[0]),
            Some(HeaderChange::Remove("authorization".into()))
        );
        assert_eq!(
            removal(&request, &locations[1]),
            Some(HeaderChange::Set(
                ":path".into(),
                b"/x?a=1&c=3&b=2".to_vec()
            ))
        );
        assert_eq!(
            removal(&request, &locations[2]),
            Some(HeaderChange::Set("cookie".into(), b"a=1; b=\xff".to_vec()))
        );
        let h = headers(&[(":path", "/x?access_token=t"), ("cookie", "session=t")]);
        let request = Request::bare(&h);
        assert_eq!(
            removal(&request, &locations[1]),
            Some(HeaderChange::Set(":path".into(), b"/x".to_vec()))
        );
        assert_eq!(
            removal(&request, &locations[2]),
            Some(HeaderChange::Remove("cookie".into()))
        );
    }
}
