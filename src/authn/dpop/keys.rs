//! The proof keys a worker has met lately. A client signs every proof with the same key, so the
//! proofs of one client share one protected header (`typ`, `alg`, `jwk`): compiled once, its
//! key and thumbprint serve the client's next proofs. Only the key is remembered, never a
//! verdict: every proof's signature is still checked.

use std::cell::RefCell;
use std::rc::Rc;

use crate::authn::jwks::VerificationKey;

/// Clients remembered per worker and provider; the oldest is replaced first.
const CAPACITY: usize = 32;

/// A compiled proof key and its RFC 7638 thumbprint.
pub struct ProofKey {
    pub key: VerificationKey,
    pub thumbprint: String,
}

/// The header's base64url text and its key.
type Entry = (String, Rc<ProofKey>);

#[derive(Default)]
pub struct ProofKeys {
    /// The entries and the next slot to replace.
    entries: RefCell<(Vec<Entry>, usize)>,
}

impl ProofKeys {
    pub fn get(&self, header: &str) -> Option<Rc<ProofKey>> {
        let entries = self.entries.borrow();
        entries
            .0
            .iter()
            .find(|(text, _)| text == header)
            .map(|(_, key)| key.clone())
    }

    pub fn insert(&self, header: &str, key: Rc<ProofKey>) {
        let mut entries = self.entries.borrow_mut();
        let (list, next) = &mut *entries;
        if list.len() < CAPACITY {
            list.push((header.to_owned(), key));
        } else if let Some(slot) = list.get_mut(*next) {
            *slot = (header.to_owned(), key);
            *next = (*next + 1) % CAPACITY;
        }
    }
}

/// A configuration's copy starts empty: what one worker met is no business of another's.
impl Clone for ProofKeys {
    fn clone(&self) -> ProofKeys {
        ProofKeys::default()
    }
}

impl std::fmt::Debug for ProofKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofKeys")
            .field("entries", &self.entries.borrow().0.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::jwks::proof_key;
    use crate::token::jws::Algorithm;

    #[test]
    fn remembers_the_latest_clients_up_to_its_capacity() {
        let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        let keys = ProofKeys::default();
        let make = || {
            Rc::new(ProofKey {
                key: proof_key(&jwk, Algorithm::EdDSA).unwrap(),
                thumbprint: "t".into(),
            })
        };
        for n in 0..CAPACITY + 3 {
            keys.insert(&format!("h{n}"), make());
        }
        assert!(keys.get("h0").is_none() && keys.get("h2").is_none());
        assert!(keys.get("h3").is_some() && keys.get(&format!("h{}", CAPACITY + 2)).is_some());
        assert!(keys.get("other").is_none());
    }
}
