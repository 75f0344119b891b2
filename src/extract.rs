//! Finding the bearer token: in headers (with a scheme prefix), query parameters or cookies,
//! and taking it out again before the request goes upstream.

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

impl TokenLocation {
    pub fn default_header() -> TokenLocation {
        TokenLocation::Header {
            name: "authorization".into(),
            prefix: "Bearer ".into(),
        }
    }

    /// Appends every token found here to `found`. A header that carries the prefix but whose
    /// value is not text is a malformed token, not an absent one.
    fn collect(&self, request: &Request<'_>, found: &mut Vec<String>) -> Result<(), AuthFailure> {
        match self {
            TokenLocation::Header { name, prefix } => {
                for raw in request.raw_values(name) {
                    let Some(rest) = strip_prefix_ignore_case(raw, prefix.as_bytes()) else {
                        continue;
                    };
                    let text = std::str::from_utf8(rest).map_err(|_| AuthFailure::Malformed)?;
                    found.push(text.trim_matches(' ').to_string());
                }
            }
            TokenLocation::Param(param) => {
                for pair in request.query().unwrap_or_default().split('&') {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    if percent_decode(key).as_deref() == Some(param.as_str()) {
                        found.push(percent_decode(value).ok_or(AuthFailure::Malformed)?);
                    }
                }
            }
            TokenLocation::Cookie(cookie) => {
                for header in request.values("cookie") {
                    for pair in header.split(';') {
                        if let Some((name, value)) = pair.trim().split_once('=')
                            && name == cookie
                        {
                            found.push(value.trim_matches('"').to_string());
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn strip_prefix_ignore_case<'v>(value: &'v [u8], prefix: &[u8]) -> Option<&'v [u8]> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| value.get(prefix.len()..))
        .flatten()
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let hex = bytes.get(index + 1..index + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(if byte == b'+' { b' ' } else { byte });
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The one token a request carries, and every place it was found.
#[derive(Debug, PartialEq, Eq)]
pub struct FoundToken<'l> {
    pub token: String,
    pub locations: Vec<&'l TokenLocation>,
}

/// Looks in every location. Two different tokens are refused (RFC 6750 §2: one method per
/// request), so a proxy and the filter can never disagree about which one was checked.
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
    match result {
        Some(found) if found.token.is_empty() => Err(AuthFailure::Malformed),
        other => Ok(other),
    }
}

/// A change to the request headers before it goes upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderChange {
    Remove(String),
    Set(String, String),
}

/// Changes that take the token out of the request (`forward: false`).
pub fn removal(request: &Request<'_>, location: &TokenLocation) -> Option<HeaderChange> {
    match location {
        TokenLocation::Header { name, .. } => Some(HeaderChange::Remove(name.clone())),
        TokenLocation::Param(param) => {
            let query = request.query()?;
            let kept: Vec<&str> = query
                .split('&')
                .filter(|pair| {
                    let key = pair.split_once('=').map_or(*pair, |(key, _)| key);
                    percent_decode(key).as_deref() != Some(param.as_str())
                })
                .collect();
            let path = request.path();
            let new_path = if kept.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", kept.join("&"))
            };
            Some(HeaderChange::Set(":path".into(), new_path))
        }
        TokenLocation::Cookie(cookie) => {
            let kept: Vec<&str> = request
                .values("cookie")
                .flat_map(|header| header.split(';'))
                .map(str::trim)
                .filter(|pair| {
                    !pair.is_empty() && pair.split_once('=').map(|(name, _)| name) != Some(cookie)
                })
                .collect();
            Some(if kept.is_empty() {
                HeaderChange::Remove("cookie".into())
            } else {
                HeaderChange::Set("cookie".into(), kept.join("; "))
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

    fn find(pairs: &[(&str, &str)]) -> Result<Option<String>, AuthFailure> {
        let h = headers(pairs);
        let request = Request::bare(&h);
        let locations = locations();
        find_token(&request, locations.iter()).map(|found| found.map(|f| f.token))
    }

    #[test]
    fn finds_tokens_in_each_location() {
        type Case<'a> = (
            Vec<(&'a str, &'a str)>,
            Result<Option<&'a str>, AuthFailure>,
        );
        let cases: Vec<Case> = vec![
            (vec![("authorization", "Bearer abc")], Ok(Some("abc"))),
            (vec![("authorization", "bEaReR abc")], Ok(Some("abc"))),
            (vec![("authorization", "Basic abc")], Ok(None)),
            (
                vec![("authorization", "Bearer ")],
                Err(AuthFailure::Malformed),
            ),
            (
                vec![(":path", "/x?a=1&access_token=t%2Eu")],
                Ok(Some("t.u")),
            ),
            (
                vec![(":path", "/x?access_token=%zz")],
                Err(AuthFailure::Malformed),
            ),
            (vec![("cookie", "a=1; session=tok; b=2")], Ok(Some("tok"))),
            (vec![("cookie", "sessionx=tok")], Ok(None)),
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
                Err(AuthFailure::Malformed),
            ),
            (
                vec![("authorization", "Bearer abc"), ("cookie", "session=def")],
                Err(AuthFailure::Malformed),
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
    fn non_utf8_bearer_value_is_malformed() {
        let h = vec![("authorization".to_string(), b"Bearer \xff\xfe".to_vec())];
        let request = Request::bare(&h);
        let locations = locations();
        assert_eq!(
            find_token(&request, locations.iter()),
            Err(AuthFailure::Malformed)
        );
    }

    #[test]
    fn removal_keeps_everything_else() {
        let h = headers(&[
            (":path", "/x?a=1&access_token=t&b=2"),
            ("cookie", "a=1; session=tok"),
            ("cookie", "b=2"),
        ]);
        let request = Request::bare(&h);
        let locations = locations();
        assert_eq!(
            removal(&request, &locations[0]),
            Some(HeaderChange::Remove("authorization".into()))
        );
        assert_eq!(
            removal(&request, &locations[1]),
            Some(HeaderChange::Set(":path".into(), "/x?a=1&b=2".into()))
        );
        assert_eq!(
            removal(&request, &locations[2]),
            Some(HeaderChange::Set("cookie".into(), "a=1; b=2".into()))
        );
    }
}
