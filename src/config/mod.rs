//! Configuration: the JSON contract parsed strictly (unknown fields refused), then validated and
//! compiled once into the form requests are evaluated against. Every error names its field.
//!
//! [`schema`] is the contract as written, [`compile`] (with [`provider`], [`remote_jwks`],
//! [`rule`] and [`names`]) turns it into [`model`], which is all the rest of the filter reads.

pub mod compile;
pub mod conditions;
pub mod dpop;
pub mod error;
pub mod model;
pub mod names;
pub mod provider;
pub mod remote_jwks;
pub mod request_binding;
pub mod rule;
pub mod schema;

pub use error::ConfigError;
pub use model::{
    Authentication, Config, CustomRefusal, Matcher, PathMatch, Rule, RuleAction, SignatureBackend,
};

#[cfg(test)]
mod match_tests;
#[cfg(test)]
mod tests;
