//! The embedded handwritten digits data set: 1,797 images of 8×8 pixels (0–16), labels 0–9, decoded from `runtime/data/digits.bin`.
//!
//! The data is the UCI "Optical Recognition of Handwritten Digits" set in
//! the copy scikit-learn ships (CC BY 4.0; E. Alpaydin and C. Kaynak, UCI
//! Machine Learning Repository, 1998, doi:10.24432/C50P49). The binary
//! format (header, 5-bit pixels, FNV-1a hash) and how to regenerate it are
//! described in `runtime/data/README.md`.
//!
//! Invariant: the embedded bytes decode (a unit test decodes them), so
//! [`digits`] cannot fail at run time; the decoder still checks everything,
//! because a corrupt build must fail loudly rather than train on garbage.

use super::dataset::Dataset;

/// Rows in the embedded digits set.
pub const DIGITS_ROWS: usize = 1797;
/// Pixels per digits row (8 × 8).
pub const DIGITS_FEATURES: usize = 64;
/// Classes in the digits set (the digits 0–9).
pub const DIGITS_CLASSES: usize = 10;
/// The largest pixel value in the digits set (pixels are 0..=16).
pub const DIGITS_MAX_PIXEL: u8 = 16;

static DIGITS_BIN: &[u8] = include_bytes!("../../data/digits.bin");

const MAGIC: &[u8; 4] = b"NFDG";
const VERSION: u8 = 1;
const BITS: u8 = 5;
const HEADER_LEN: usize = 20;
const PIXEL_BYTES: usize = DIGITS_FEATURES * BITS as usize / 8;
const RECORD_LEN: usize = 1 + PIXEL_BYTES;

/// The embedded digits set in its original row order: features are the raw
/// pixel values as f32 in 0.0..=16.0 (unscaled; the reference job scales them
/// by 1/16 with [`Dataset::scale_features`]), labels 0–9.
pub fn digits() -> Dataset {
    // The embedded bytes are fixed at build time and a unit test decodes them.
    decode(DIGITS_BIN).expect("the embedded digits.bin decodes")
}

/// Why digits bytes could not be decoded (a corrupt `digits.bin`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
enum DecodeError {
    #[error("digits.bin: {0}; regenerate it with runtime/data/make_digits_bin.py")]
    Corrupt(&'static str),
}

/// Decodes the format `runtime/data/README.md` describes, checking every field.
fn decode(bytes: &[u8]) -> Result<Dataset, DecodeError> {
    let corrupt = |what| Err(DecodeError::Corrupt(what));
    let Some((header, body)) = bytes.split_at_checked(HEADER_LEN) else {
        return corrupt("shorter than its header");
    };
    if &header[0..4] != MAGIC {
        return corrupt("wrong magic");
    }
    if header[4] != VERSION {
        return corrupt("unknown format version");
    }
    if header[5] != BITS
        || usize::from(header[6]) != DIGITS_FEATURES
        || usize::from(header[7]) != DIGITS_CLASSES
    {
        return corrupt("unexpected geometry (bits, pixels or classes)");
    }
    let rows = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as usize;
    let mut hash = [0; 8];
    hash.copy_from_slice(&header[12..20]);
    if rows.checked_mul(RECORD_LEN) != Some(body.len()) {
        return corrupt("length does not match the row count");
    }
    if fnv1a64(body) != u64::from_le_bytes(hash) {
        return corrupt("hash mismatch");
    }
    let mut features = Vec::with_capacity(rows * DIGITS_FEATURES);
    let mut labels = Vec::with_capacity(rows);
    for record in body.chunks_exact(RECORD_LEN) {
        labels.push(i64::from(record[0]));
        let start = features.len();
        unpack_row(&record[1..], &mut features);
        if features[start..]
            .iter()
            .any(|&p| p > f32::from(DIGITS_MAX_PIXEL))
        {
            return corrupt("pixel above 16");
        }
    }
    // Labels are range-checked by the constructor.
    Dataset::new(features, labels, DIGITS_FEATURES, DIGITS_CLASSES)
        .or(corrupt("label outside 0..10"))
}

/// Appends the 64 pixels of one record: 5-bit fields, most significant bit first.
fn unpack_row(packed: &[u8], out: &mut Vec<f32>) {
    let mut acc: u32 = 0;
    let mut held: u32 = 0;
    for &byte in packed {
        acc = (acc << 8) | u32::from(byte);
        held += 8;
        while held >= u32::from(BITS) {
            held -= u32::from(BITS);
            out.push(((acc >> held) & 0x1f) as f32);
        }
        acc &= (1 << held) - 1;
    }
}

/// FNV-1a, 64-bit, over `bytes`.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_bytes_decode() {
        let set = decode(DIGITS_BIN).unwrap();
        assert_eq!(set.len(), DIGITS_ROWS);
        assert_eq!(DIGITS_BIN.len(), HEADER_LEN + DIGITS_ROWS * RECORD_LEN);
    }

    #[test]
    fn every_corruption_is_refused() {
        assert!(decode(&DIGITS_BIN[..10]).is_err());
        assert!(decode(&DIGITS_BIN[..DIGITS_BIN.len() - 1]).is_err());
        for at in [
            0,
            4,
            5,
            6,
            7,
            8,
            12,
            HEADER_LEN,
            HEADER_LEN + 5,
            DIGITS_BIN.len() - 1,
        ] {
            let mut bad = DIGITS_BIN.to_vec();
            bad[at] ^= 0x01;
            assert!(decode(&bad).is_err(), "flipped byte {at} was accepted");
        }
    }

    #[test]
    fn out_of_range_values_are_refused_even_with_a_good_hash() {
        let rehash = |mut bytes: Vec<u8>| {
            let h = fnv1a64(&bytes[HEADER_LEN..]);
            bytes[12..20].copy_from_slice(&h.to_le_bytes());
            bytes
        };
        let mut label = DIGITS_BIN.to_vec();
        label[HEADER_LEN] = 10;
        assert_eq!(
            decode(&rehash(label)),
            Err(DecodeError::Corrupt("label outside 0..10"))
        );
        let mut pixel = DIGITS_BIN.to_vec();
        pixel[HEADER_LEN + 1] = 0xff; // pixel 0 becomes 31
        assert_eq!(
            decode(&rehash(pixel)),
            Err(DecodeError::Corrupt("pixel above 16"))
        );
    }

    #[test]
    fn unpacking_reads_fields_most_significant_first() {
        // 16, 1, 0, 31, 2, 0, 0, 5 packed as 5-bit fields: 10000 00001 00000
        // 11111 00010 00000 00000 00101.
        let packed = [
            0b1000_0000,
            0b0100_0001,
            0b1111_0001,
            0b0000_0000,
            0b0000_0101,
        ];
        let mut out = Vec::new();
        unpack_row(&packed, &mut out);
        assert_eq!(out, vec![16.0, 1.0, 0.0, 31.0, 2.0, 0.0, 0.0, 5.0]);
    }
}
