//! What explain has in hand once the filter has decided: the configuration, the request, the
//! input it was built from, the steps `decide_traced` recorded and the verdict; what every
//! section of the rendering asks of them; and the lines the sections write into.

use jwt_guard::authn::provider::Provider;
use jwt_guard::config::{Config, Rule};
use jwt_guard::decision::Verdict;
use jwt_guard::request::{Request, Selection};
use jwt_guard::token::jws::UnverifiedClaims;
use jwt_guard::token::jws::UnverifiedJws;
use jwt_guard::trace::Step;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::input::Input;

pub struct Explained<'a> {
    pub config: &'a Config,
    pub request: &'a Request<'a>,
    pub input: &'a Input,
    pub steps: &'a [Step],
    pub verdict: &'a Verdict,
}

/// Lines of text with their indentation level.
#[derive(Default)]
pub struct Lines(pub Vec<(usize, String)>);

impl Lines {
    pub fn add(&mut self, depth: usize, text: impl Into<String>) {
        self.0.push((depth, text.into()));
    }
}

impl Explained<'_> {
    pub fn token(&self) -> Option<&str> {
        self.steps.iter().find_map(|step| match step {
            Step::TokenFound { token, .. } => Some(token.as_str()),
            _ => None,
        })
    }

    /// The token's claims as parsed (verified or not), for showing the values checks used.
    pub fn token_claims(&self) -> Option<UnverifiedClaims> {
        UnverifiedJws::parse(self.token()?)
            .ok()
            .map(|jws| jws.claims)
    }

    /// The allow rule selected for the request: the one that authenticated.
    pub fn selected_rule(&self) -> Option<&Rule> {
        self.steps.iter().find_map(|step| match step {
            Step::Rule {
                selection: Selection::Rule(index),
                ..
            } => self.config.rules.get(*index),
            _ => None,
        })
    }

    /// The provider of the `Provider` step before `step`.
    pub fn judging_provider(&self, step: &Step) -> Option<&Provider> {
        let at = self.steps.iter().position(|s| std::ptr::eq(s, step))?;
        self.steps.get(..at)?.iter().rev().find_map(|s| match s {
            Step::Provider { provider, .. } | Step::CacheHit { provider } => {
                self.config.providers.get(*provider)
            }
            _ => None,
        })
    }
}

/// A token's short fingerprint: the first 12 hex digits of its SHA-256.
pub fn fingerprint(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{}", hex.get(..12).unwrap_or_default())
}

pub fn provider_name(config: &Config, index: usize) -> &str {
    config
        .providers
        .get(index)
        .map_or("?", |provider| provider.name.as_str())
}

pub fn ok_or<E: Copy>(result: Result<(), E>, code: impl Fn(E) -> &'static str) -> String {
    match result {
        Ok(()) => "ok".to_string(),
        Err(failure) => format!("→ {}", code(failure)),
    }
}

pub fn compact(value: &Value) -> String {
    value.to_string()
}
