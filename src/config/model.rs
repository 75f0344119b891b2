//! The compiled configuration: what requests are evaluated against, built once by
//! [`super::compile`] and never changed after (but for fetched keys, which live in each
//! provider's key store).

use std::rc::Rc;

use crate::authn::claims::ClaimPath;
use crate::authn::provider::Provider;
use crate::authz::address::ClientIpSource;
use crate::authz::policy::Policy;
use crate::authz::request_binding::RequestBinding;
use crate::config::error::ConfigError;
use crate::identity::IdentityHeaders;
use crate::request::path_pattern::PathPattern;

#[derive(Debug)]
pub struct Config {
    pub realm: String,
    pub providers: Vec<Provider>,
    pub rules: Vec<Rule>,
    /// What goes upstream for the tokens each provider accepts, indexed like `providers`.
    pub identity: Vec<IdentityHeaders>,
    pub roles_claim: ClaimPath,
    pub scopes_claim: ClaimPath,
    pub client_ip: ClientIpSource,
    pub country_header: Option<String>,
    pub country_claim: Option<ClaimPath>,
    pub dry_run: bool,
    pub needs_route_name: bool,
    /// Whether any rule matches on hosts.
    pub needs_host: bool,
    /// Every provider's identity headers: removed from every request before anything else.
    pub identity_headers: Vec<String>,
    /// Verified tokens kept per VM (0: no cache).
    pub token_cache_size: usize,
    pub signature_backend: SignatureBackend,
    /// The Wasm property (Envoy filter state `wasm.<name>`) that receives each request's
    /// outcome as JSON, for access logs and later filters.
    pub outcome_in_filter_state: Option<String>,
}

/// Who checks RS*/ES* signatures (`signature_backend`). Other algorithms are always checked in
/// Rust: the host does not serve them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureBackend {
    /// The host where it offers `verify_signature`, else Rust.
    Auto,
    /// The host; a configuration for a host without it is refused.
    Host,
    /// Rust in the Wasm VM, always.
    PureRust,
}

#[derive(Debug)]
pub struct Rule {
    /// The rule's `name`, if it has one: what route metadata binds to.
    pub name: Option<String>,
    /// The name in counters and outcomes: `name`, or `rule_<index>` for a rule without one.
    pub label: String,
    /// `None`: the rule has no `match` and applies only to routes that name it.
    pub matcher: Option<Matcher>,
    pub authentication: Authentication,
    pub policy: Policy,
    pub dry_run: bool,
    pub action: RuleAction,
    /// An allow rule's refusal at its conditions lets the next fitting allow rule try.
    pub fall_through: bool,
    /// The rule's own answer to the refusals it decides (`refusal`).
    pub refusal: Option<Rc<CustomRefusal>>,
    /// `bind`: checked after every other condition of the rule.
    pub bind: Option<RequestBinding>,
}

impl Rule {
    /// A condition only a token can meet: without one, the answer is 401, not 403.
    pub fn needs_token(&self) -> bool {
        self.policy.needs_token() || self.bind.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    Allow,
    /// Never selected; refuses (403 `denied`) the requests its `match` and conditions fit.
    Deny,
}

/// `rules[i].refusal`: another status (and body) for the refusals a rule decides. The reason
/// code stays in counters, outcomes, logs and the dry-run header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomRefusal {
    pub status: u32,
    /// `None`: the standard JSON body.
    pub body: Option<String>,
    pub content_type: String,
    /// It answers the rule's 403s / 401s.
    pub forbidden: bool,
    pub unauthorized: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Authentication {
    /// The filter does nothing for this rule.
    Disabled,
    /// A token valid for one of these providers (indexes into `Config::providers`).
    Required(Vec<usize>),
    /// No token is fine; a token that is present must be valid for one of these providers.
    Optional(Vec<usize>),
}

#[derive(Debug, Default)]
pub struct Matcher {
    pub path: PathMatch,
    pub methods: Vec<String>,
    pub hosts: Vec<String>,
    pub route_name: Option<String>,
    /// `not_paths`, `not_methods`, `not_hosts`: the match fits only a request that is none of
    /// them.
    pub not_paths: Vec<PathPattern>,
    pub not_methods: Vec<String>,
    pub not_hosts: Vec<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub enum PathMatch {
    #[default]
    Any,
    Prefix(String),
    Exact(String),
    /// `paths`: any of these patterns.
    Patterns(Vec<PathPattern>),
}

impl Config {
    /// Lets the host check the signatures it serves, as `signature_backend` asks, on a host
    /// that offers the check (`host_can_verify`). Returns whether it does.
    pub fn choose_signature_backend(&mut self, host_can_verify: bool) -> Result<bool, ConfigError> {
        let use_host = match self.signature_backend {
            SignatureBackend::PureRust => false,
            SignatureBackend::Auto => host_can_verify,
            SignatureBackend::Host if host_can_verify => true,
            SignatureBackend::Host => {
                return Err(ConfigError::new(
                    "signature_backend",
                    "\"host\", but this host has no verify_signature function",
                ));
            }
        };
        if use_host {
            for provider in &mut self.providers {
                provider.token_rules.keys.use_host_backend();
                if let Some(dpop) = &mut provider.binding.dpop {
                    dpop.use_host = true;
                }
            }
        }
        Ok(use_host)
    }
}
