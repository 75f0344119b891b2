//! Server nonces (RFC 9449 §8), stateless: a nonce is a time window's number and a MAC of it
//! under the configured secret. Every worker, and every replica configured with the same
//! secret, issues and accepts the same nonces without sharing any state. A nonce is good for
//! the window it was issued in and the next one, so one issued just before a window ends still
//! serves a client's retry.

use ct_codecs::{Base64UrlSafeNoPadding, Decoder, Encoder};

/// A nonce: the window number (8 bytes, big-endian) and 16 bytes of its MAC.
const NONCE_BYTES: usize = 24;
const MAC_BYTES: usize = 16;
/// Keeps nonce MACs apart from any other use someone might make of the same secret.
const CONTEXT: &[u8] = b"jwt-guard dpop nonce v1";

#[derive(Clone)]
pub struct NonceKey {
    secret: Vec<u8>,
    lifetime_seconds: u64,
}

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceKey")
            .field("lifetime_seconds", &self.lifetime_seconds)
            .finish_non_exhaustive()
    }
}

impl NonceKey {
    /// `lifetime_seconds` must be positive (the configuration checks it).
    pub fn new(secret: &[u8], lifetime_seconds: u64) -> NonceKey {
        NonceKey {
            secret: secret.to_vec(),
            lifetime_seconds: lifetime_seconds.max(1),
        }
    }

    /// The nonce a client should use now (sent in `DPoP-Nonce`).
    pub fn current(&self, now: u64) -> String {
        let window = now / self.lifetime_seconds;
        let mut nonce = Vec::with_capacity(NONCE_BYTES);
        nonce.extend_from_slice(&window.to_be_bytes());
        nonce.extend_from_slice(self.mac(window).get(..MAC_BYTES).unwrap_or_default());
        Base64UrlSafeNoPadding::encode_to_string(nonce).unwrap_or_default()
    }

    /// Whether `nonce` was issued by this key in this window or the one before.
    pub fn accepts(&self, nonce: &str, now: u64) -> bool {
        let Ok(bytes) = Base64UrlSafeNoPadding::decode_to_vec(nonce, None) else {
            return false;
        };
        let (Some(window), Some(mac)) = (bytes.get(..8), bytes.get(8..)) else {
            return false;
        };
        let Ok(window) = <[u8; 8]>::try_from(window).map(u64::from_be_bytes) else {
            return false;
        };
        let current = now / self.lifetime_seconds;
        if bytes.len() != NONCE_BYTES
            || !(window == current || window.checked_add(1) == Some(current))
        {
            return false;
        }
        let expected = self.mac(window);
        // Compared without an early exit: the MAC is the secret's only defence.
        let difference = mac
            .iter()
            .zip(expected.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        difference == 0
    }

    fn mac(&self, window: u64) -> [u8; 32] {
        let mut input = Vec::with_capacity(CONTEXT.len() + 8);
        input.extend_from_slice(CONTEXT);
        input.extend_from_slice(&window.to_be_bytes());
        hmac_sha256::HMAC::mac(&input, &self.secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn a_nonce_lives_for_its_window_and_the_next() {
        let key = NonceKey::new(b"0123456789abcdef0123456789abcdef", 60);
        let nonce = key.current(NOW);
        assert_eq!(nonce.len(), 32);
        let window_start = NOW - NOW % 60;
        for (at, expected) in [
            (NOW, true),
            (window_start, true),
            (window_start + 119, true),
            (window_start + 120, false),
            (window_start - 1, false),
        ] {
            assert_eq!(key.accepts(&nonce, at), expected, "at {at}");
        }
    }

    #[test]
    fn forged_and_foreign_nonces_are_refused() {
        let key = NonceKey::new(b"0123456789abcdef0123456789abcdef", 60);
        let other = NonceKey::new(b"fedcba9876543210fedcba9876543210", 60);
        let nonce = key.current(NOW);
        assert!(!key.accepts(&other.current(NOW), NOW));
        let mut tampered = nonce.clone().into_bytes();
        if let Some(last) = tampered.last_mut() {
            *last = if *last == b'A' { b'B' } else { b'A' };
        }
        let tampered = String::from_utf8(tampered).unwrap();
        for bad in [tampered.as_str(), "", "abc", "not base64!", &nonce[..31]] {
            assert!(!key.accepts(bad, NOW), "{bad:?}");
        }
        assert!(!key.accepts(&format!("{nonce}AA"), NOW));
    }
}
