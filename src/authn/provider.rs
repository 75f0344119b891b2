//! A provider as compiled from `providers.<name>`: how its tokens are found, verified and
//! passed on. (What goes upstream for its tokens is
//! [`crate::config::Config::identity`]: identity is a later stage than authentication.) Built once by [`crate::config`]; read by authentication on every request.

use serde_json::Value;

use crate::authn::binding::Binding;
use crate::authn::remote::RemoteJwks;
use crate::authn::verify::TokenRules;
use crate::token::extract::TokenLocation;

#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub token_rules: TokenRules,
    /// Keys fetched at run time (`remote_jwks`), if any.
    pub remote: Option<RemoteJwks>,
    /// The inline `jwks`, kept to fall back on when fetched keys are dropped as too old.
    pub inline_jwks: Option<Value>,
    pub locations: Vec<TokenLocation>,
    pub forward: bool,
    /// What it checks of a token's `cnf` (sender-constrained tokens).
    pub binding: Binding,
}
