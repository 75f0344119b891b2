//! Authorization (the 403 side): a rule's policy over a verified caller — roles, scopes, other
//! claims, the client's address and country. It reads only [`crate::authn::VerifiedClaims`].

pub mod address;
pub mod conditions;
pub mod policy;
pub mod request_binding;
