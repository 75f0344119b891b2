//! The proxy-wasm ABI's serialised header map: a little-endian `u32` pair count, then a `u32`
//! name length and value length per pair, then each name and value followed by a NUL byte.
//!
//! Decoded here, bounds-checked, instead of in the SDK, whose decoder panics on a name that is
//! not UTF-8 (a panic traps the VM for every later request on the worker).

/// `None` when the bytes are not a well-formed map. Names that are not UTF-8 are kept (lossily)
/// so that they still count as present; no name jwt-guard looks for can match them.
pub fn decode(bytes: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let mut pairs = Vec::new();
    decode_into(bytes, &mut pairs)?;
    Some(pairs)
}

/// [`decode`] into `pairs`, reusing the strings and buffers already there: a filter that
/// decodes every request's headers into the same `pairs` allocates nothing once they have
/// grown to its requests' size. `None` (and `pairs` left in an unspecified state) when the
/// bytes are not a well-formed map.
pub fn decode_into(bytes: &[u8], pairs: &mut Vec<(String, Vec<u8>)>) -> Option<()> {
    if bytes.is_empty() {
        pairs.clear();
        return Some(());
    }
    let word = |at: usize| -> Option<usize> {
        let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(raw)).ok()
    };
    let count = word(0)?;
    let mut data = count.checked_mul(8)?.checked_add(4)?;
    if data > bytes.len() {
        return None;
    }
    pairs.truncate(count);
    for index in 0..count {
        let lengths = 4 + index * 8;
        let mut take = |length: usize| -> Option<&[u8]> {
            let end = data.checked_add(length)?;
            let field = bytes.get(data..end)?;
            // Each field is followed by a NUL the length does not count.
            bytes.get(end)?;
            data = end.checked_add(1)?;
            Some(field)
        };
        let name = take(word(lengths)?)?;
        let value = take(word(lengths + 4)?)?;
        if pairs.len() <= index {
            pairs.push((String::new(), Vec::new()));
        }
        let (kept_name, kept_value) = pairs.get_mut(index)?;
        kept_name.clear();
        kept_name.push_str(&String::from_utf8_lossy(name));
        kept_value.clear();
        kept_value.extend_from_slice(value);
    }
    Some(())
}

pub fn encode(pairs: &[(&str, &[u8])]) -> Vec<u8> {
    let size = 4 + pairs
        .iter()
        .map(|(name, value)| 10 + name.len() + value.len())
        .sum::<usize>();
    let mut bytes = Vec::with_capacity(size);
    let length = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    bytes.extend_from_slice(&length(pairs.len()));
    for (name, value) in pairs {
        bytes.extend_from_slice(&length(name.len()));
        bytes.extend_from_slice(&length(value.len()));
    }
    for (name, value) in pairs {
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(value);
        bytes.push(0);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_bytes_that_are_not_text() {
        let pairs: [(&str, &[u8]); 3] = [
            (":path", b"/x"),
            ("cookie", b"a=\xff; session=t"),
            ("empty", b""),
        ];
        let decoded = decode(&encode(&pairs)).unwrap();
        let expected: Vec<(String, Vec<u8>)> = pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn names_that_are_not_text_are_kept_lossily() {
        let mut bytes = encode(&[("ab", b"v")]);
        let at = 4 + 8; // the first byte of the name
        bytes[at] = 0xff;
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded[0].0, "\u{fffd}b");
        assert_eq!(decoded[0].1, b"v");
    }

    /// Decoding into pairs left by a longer, a shorter and a malformed map gives what a fresh
    /// decode gives.
    #[test]
    fn decoding_into_used_pairs_is_decoding_afresh() {
        let long = encode(&[("a-long-name", b"a long value"), ("b", b"2"), ("c", b"3")]);
        let short = encode(&[("x", b"\xff"), ("y", b"")]);
        let mut pairs = Vec::new();
        for bytes in [&long, &short, &long, &encode(&[]), &short] {
            decode_into(bytes, &mut pairs).unwrap();
            assert_eq!(Some(&pairs), decode(bytes).as_ref());
        }
        assert_eq!(decode_into(&long[..long.len() - 1], &mut pairs), None);
        decode_into(&short, &mut pairs).unwrap();
        assert_eq!(Some(pairs), decode(&short));
    }

    #[test]
    fn malformed_maps_are_refused_without_panicking() {
        let good = encode(&[("name", b"value"), ("n2", b"v2")]);
        assert!(decode(&[]).unwrap().is_empty());
        for cut in 1..good.len() {
            assert_eq!(decode(&good[..cut]), None, "cut at {cut}");
        }
        assert_eq!(decode(&[0xff, 0xff, 0xff, 0xff]), None);
        let mut huge_length = good.clone();
        huge_length[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&huge_length), None);
    }
}
