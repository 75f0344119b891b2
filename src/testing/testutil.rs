//! Fixtures for unit tests: a key set and tokens minted by PyJWT (tests/fixtures), read on a
//! fixed clock so they never expire.

use serde_json::Value;

const FIXTURES: &str = include_str!("../../tests/fixtures/tokens.json");

/// base64url of 32 ASCII zeros: the HS256 secret in the fixtures.
pub const HMAC_SECRET_B64: &str = "MDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA";

pub fn fixtures() -> Value {
    serde_json::from_str(FIXTURES).unwrap()
}

pub fn now() -> u64 {
    fixtures()["now"].as_u64().unwrap()
}

pub fn jwks() -> Value {
    fixtures()["jwks"].clone()
}

pub fn token(name: &str) -> String {
    fixtures()["tokens"][name]
        .as_str()
        .unwrap_or_else(|| panic!("no fixture token {name}"))
        .to_string()
}

pub fn issuer() -> String {
    fixtures()["issuer"].as_str().unwrap().to_string()
}
