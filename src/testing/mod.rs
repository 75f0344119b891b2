//! Test-only code, never in the filter: fixtures minted by another implementation (PyJWT) and
//! the Wycheproof vectors shared by the unit tests and `tests/wycheproof-envoy`.

#[cfg(test)]
pub mod testutil;
pub mod variants;
pub mod vectors;

#[cfg(test)]
mod wycheproof;
