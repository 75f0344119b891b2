//! The client's country, as the request tells it (Envoy's geoip filter's header) or a token's
//! claim does. A request attribute like its address; policy judges it.

/// The client's country as far as jwt-guard can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Country {
    /// Upper-case ISO 3166-1 alpha-2.
    Known(String),
    /// Nobody said (the geoip filter did not find the address, no claim).
    Unknown,
    /// Something was said, but it is not a country code: never read as "nobody said".
    Invalid,
}

impl Country {
    pub fn parse(value: &[u8]) -> Country {
        match value.trim_ascii() {
            code @ [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Country::Known(String::from_utf8_lossy(code).to_ascii_uppercase())
            }
            _ => Country::Invalid,
        }
    }
}
