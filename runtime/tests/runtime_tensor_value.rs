//! The tensor value at the boundaries: codec round trips, hostile encodings refused typed before allocating, Node byte-budget charging.

use nodeflow::engine::ValueLimits;
use nodeflow::{tensor_registry, DType, Tensor, TensorDecodeError, MAX_ELEMENTS, MAX_RANK};

fn header(code: u8, dims: &[u64]) -> Vec<u8> {
    let mut bytes = vec![1, code, dims.len() as u8];
    for d in dims {
        bytes.extend_from_slice(&d.to_le_bytes());
    }
    bytes
}

#[test]
fn round_trips_keep_dtype_shape_and_every_bit() {
    let values: Vec<f32> = (0..1000).map(|i| (i as f32).sin() * 1e3).collect();
    let t = Tensor::from_f32(vec![10, 10, 10], values.clone()).unwrap();
    let back = Tensor::decode(&t.encode(), usize::MAX).unwrap();
    assert_eq!(back.dtype(), DType::F32);
    assert_eq!(back.shape(), &[10, 10, 10]);
    assert_eq!(back.to_f32_vec().unwrap(), values);
    let labels = Tensor::from_i64(vec![4], vec![-1, 0, 7, i64::MAX]).unwrap();
    assert_eq!(Tensor::decode(&labels.encode(), 1 << 20).unwrap(), labels);
}

#[test]
fn a_huge_shape_is_refused_before_allocating() {
    // 2^40 elements declared in a 30-byte input.
    let bytes = header(1, &[1 << 20, 1 << 20]);
    assert!(matches!(
        Tensor::decode(&bytes, usize::MAX),
        Err(TensorDecodeError::TooManyElements { cap, .. }) if cap == MAX_ELEMENTS
    ));
    // A product that overflows u64 → usize.
    let bytes = header(2, &[u64::MAX, u64::MAX, 2]);
    assert!(matches!(
        Tensor::decode(&bytes, usize::MAX),
        Err(TensorDecodeError::TooManyElements { .. })
    ));
}

#[test]
fn rank_overflow_is_refused_before_reading_dims() {
    let bytes = vec![1, 1, (MAX_RANK + 1) as u8];
    assert_eq!(
        Tensor::decode(&bytes, usize::MAX),
        Err(TensorDecodeError::Rank {
            rank: MAX_RANK + 1,
            cap: MAX_RANK
        })
    );
    let bytes = vec![1, 1, 255];
    assert!(matches!(
        Tensor::decode(&bytes, usize::MAX),
        Err(TensorDecodeError::Rank { rank: 255, .. })
    ));
}

#[test]
fn truncated_and_trailing_data_are_refused() {
    let t = Tensor::from_f32(vec![2, 3], vec![1.0; 6]).unwrap();
    let bytes = t.encode();
    for cut in [0, 2, 3, 10, 19, bytes.len() - 1] {
        let err = Tensor::decode(&bytes[..cut], usize::MAX).unwrap_err();
        assert!(
            matches!(err, TensorDecodeError::Truncated { .. }),
            "cut at {cut}: {err:?}"
        );
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(
        Tensor::decode(&long, usize::MAX),
        Err(TensorDecodeError::TrailingBytes { extra: 1 })
    );
}

#[test]
fn the_byte_cap_applies_to_the_declared_elements() {
    // Declares 1 MiB of f32 but the cap is 64 KiB: refused on the header alone.
    let bytes = header(1, &[1 << 18]);
    assert_eq!(
        Tensor::decode(&bytes, 64 * 1024),
        Err(TensorDecodeError::TooLarge {
            len: 1 << 20,
            cap: 64 * 1024
        })
    );
}

#[test]
fn bad_codes_and_bool_bytes_are_refused() {
    assert_eq!(
        Tensor::decode(&[9, 1, 0, 0, 0, 0, 0], usize::MAX),
        Err(TensorDecodeError::Version { found: 9 })
    );
    assert_eq!(
        Tensor::decode(&header(7, &[]), usize::MAX),
        Err(TensorDecodeError::DType { code: 7 })
    );
    let mut bytes = header(3, &[3]);
    bytes.extend_from_slice(&[1, 0, 2]);
    assert_eq!(
        Tensor::decode(&bytes, usize::MAX),
        Err(TensorDecodeError::BadBool { index: 2, byte: 2 })
    );
}

#[test]
fn the_registry_refuses_hostile_bytes_typed() {
    let registry = tensor_registry();
    let err = registry
        .decode(
            Tensor::TAG,
            &header(1, &[1 << 30, 1 << 30]),
            &ValueLimits::default(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("elements"), "{err}");
    let t = Tensor::from_f32(vec![3], vec![1.0, 2.0, 3.0]).unwrap();
    let back = registry
        .decode(Tensor::TAG, &t.encode(), &ValueLimits::default())
        .unwrap();
    assert!(back.eq_value(&t));
}

#[test]
fn a_fuzzed_stream_of_mutations_never_panics() {
    // Every single-byte mutation and every truncation of a valid encoding
    // decodes to a typed error or to a tensor whose shape matches its data.
    let base = Tensor::from_i64(vec![2, 2], vec![1, 2, 3, 4])
        .unwrap()
        .encode();
    for index in 0..base.len() {
        for byte in [0u8, 1, 2, 3, 0x7f, 0x80, 0xff] {
            let mut bytes = base.clone();
            bytes[index] = byte;
            if let Ok(t) = Tensor::decode(&bytes, 1 << 16) {
                assert_eq!(t.len(), t.to_i64_vec().map_or(t.len(), |v| v.len()));
            }
        }
    }
}
