//! The byte form of a role's state in a Node snapshot: named tensors, and a decoder that checks every length before it allocates.
//!
//! Layout (little-endian): `u32` count, then per entry `u32` name length,
//! the UTF-8 name, `u32` tensor length, the tensor's own byte form
//! ([`Tensor::encode`]). A snapshot is written by this build and read by
//! it, but a corrupt one must still be refused with an error, not a panic.

use nodeflow_engine::{OpError, OpErrorKind};

use crate::roles::NamedTensor;
use crate::tensor::Tensor;

/// Most entries one role state may hold.
const MAX_ENTRIES: usize = 4096;

/// Encodes named tensors.
pub(crate) fn encode_named(entries: &[NamedTensor]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (name, tensor) in entries {
        let bytes = tensor.encode();
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

/// Decodes what [`encode_named`] wrote.
pub(crate) fn decode_named(bytes: &[u8]) -> Result<Vec<NamedTensor>, OpError> {
    let bad = |reason: String| OpError::new(OpErrorKind::InvalidInput, "role.bad_state", reason);
    let mut rest = bytes;
    let mut take = |n: usize| -> Result<&[u8], OpError> {
        if rest.len() < n {
            return Err(bad(format!(
                "state truncated: {n} bytes needed, {} left",
                rest.len()
            )));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let u32_at = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let count = u32_at(take(4)?);
    if count > MAX_ENTRIES {
        return Err(bad(format!(
            "{count} entries, over the cap of {MAX_ENTRIES}"
        )));
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let len = u32_at(take(4)?);
        let name = std::str::from_utf8(take(len)?)
            .map_err(|e| bad(format!("a name is not UTF-8: {e}")))?
            .to_owned();
        let len = u32_at(take(4)?);
        let tensor = Tensor::decode(take(len)?, usize::MAX)
            .map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
        entries.push((name, tensor));
    }
    if !rest.is_empty() {
        return Err(bad(format!("{} bytes after the state", rest.len())));
    }
    Ok(entries)
}

/// Encodes a fixed list of counters (a component's plain-integer state).
pub(crate) fn encode_words(words: &[u64]) -> Result<Vec<u8>, OpError> {
    let values: Vec<i64> = words.iter().map(|&w| w as i64).collect();
    let tensor = Tensor::from_i64(vec![values.len()], values)
        .map_err(|e| OpError::new(OpErrorKind::Internal, "role.state", e.to_string()))?;
    Ok(encode_named(&[("words".to_owned(), tensor)]))
}

/// Decodes what [`encode_words`] wrote, refusing any other count than `n`.
pub(crate) fn decode_words(bytes: &[u8], n: usize) -> Result<Vec<u64>, OpError> {
    let entries = decode_named(bytes)?;
    let words = entries
        .first()
        .and_then(|(_, t)| t.to_i64_vec())
        .filter(|w| w.len() == n)
        .ok_or_else(|| {
            OpError::new(
                OpErrorKind::InvalidInput,
                "role.bad_state",
                format!("expected a state of {n} counters"),
            )
        })?;
    Ok(words.into_iter().map(|w| w as u64).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_tensors_round_trip_and_corruption_is_refused() {
        let entries = vec![
            (
                "W".to_owned(),
                Tensor::from_f32(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap(),
            ),
            ("step".to_owned(), Tensor::scalar_i64(7)),
        ];
        let bytes = encode_named(&entries);
        assert_eq!(decode_named(&bytes).unwrap(), entries);
        for cut in 0..bytes.len() {
            assert!(decode_named(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode_named(&long).is_err());
        assert!(decode_named(&u32::MAX.to_le_bytes()).is_err());
    }
}
