//! The codecs: round trips within each stated error, exact byte counts, top-k error feedback over many rounds and across a state restore, the Encoded slot value on the wire, and typed refusals of bad inputs and payloads.
#![allow(clippy::unwrap_used)]

use nodeflow::engine::{RegistryError, ValueDecodeError, ValueLimits, ValueRegistry};
use nodeflow::{Codec, CodecError, Encoded, Identity, Int8, SlotValue, Tensor, TopK, F16};

fn flat(values: &[f32]) -> Tensor {
    Tensor::from_f32(vec![values.len()], values.to_vec()).unwrap()
}

/// A deterministic value in [-1, 1) from a seed (SplitMix64's finalizer).
fn noise(seed: u64) -> f32 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

/// `n` values spread over magnitudes 1e-9 .. 1e4, both signs.
fn spread(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| noise(i as u64) * 10f32.powi((i % 14) as i32 - 9))
        .collect()
}

fn round_trip(codec: &mut dyn Codec, values: &[f32]) -> (Encoded, Vec<f32>) {
    let encoded = codec.encode(&flat(values)).unwrap();
    let decoded = codec.decode(&encoded).unwrap();
    assert_eq!(decoded.shape(), [values.len()]);
    (encoded, decoded.to_f32_vec().unwrap())
}

fn payload_err(result: Result<Tensor, CodecError>) -> String {
    match result {
        Err(CodecError::Payload { reason, .. }) => reason,
        other => panic!("expected a payload error, got {other:?}"),
    }
}

#[test]
fn identity_is_bit_exact_and_four_bytes_per_element() {
    let mut values = spread(1000);
    values.extend([f32::NAN, f32::INFINITY, -0.0, f32::MIN_POSITIVE / 8.0]);
    let (encoded, decoded) = round_trip(&mut Identity, &values);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&decoded), bits(&values));
    assert_eq!(encoded.payload.len(), 4 * 1004);
    assert_eq!(&encoded.payload[..4], &values[0].to_le_bytes());
    assert_eq!(encoded.raw_bytes(), 4016);
    assert_eq!(encoded.wire_bytes(), 4016 + "identity".len() + 12);
}

#[test]
fn f16_error_is_within_half_rounding_and_bytes_halve() {
    let values = spread(5000);
    let (encoded, decoded) = round_trip(&mut F16, &values);
    for (&x, &y) in values.iter().zip(&decoded) {
        let bound = if x.abs() >= 2f32.powi(-14) {
            x.abs() * 2f32.powi(-11)
        } else {
            2f32.powi(-25)
        };
        assert!((y - x).abs() <= bound, "{x} → {y}");
    }
    assert_eq!(encoded.payload.len(), 2 * 5000);
    assert_eq!(encoded.wire_bytes(), 10_000 + 3 + 12);
    assert_eq!(encoded.raw_bytes(), 20_000);
}

#[test]
fn f16_by_hand_at_the_edges_of_its_range() {
    let values = [
        1.0f32,
        -2.0,
        65504.0,
        65519.0,
        -65519.0,
        1.0 + 2f32.powi(-11),
        1e-8,
    ];
    let (_, decoded) = round_trip(&mut F16, &values);
    // 1 + 2⁻¹¹ is halfway between 1 and 1 + 2⁻¹⁰: ties to even, so 1.
    // 1e-8 is below half the smallest subnormal (2⁻²⁴ ≈ 6e-8 / 2): 0.
    assert_eq!(decoded, [1.0, -2.0, 65504.0, 65504.0, -65504.0, 1.0, 0.0]);
    // 65520 and past would become infinities: refused, not saturated.
    for bad in [65520.0f32, -1e5, f32::MAX, f32::NAN, f32::INFINITY] {
        let err = F16.encode(&flat(&[0.0, bad])).unwrap_err();
        assert!(
            matches!(&err, CodecError::Input { codec: "f16", found } if found.contains("index 1")),
            "{bad}: {err:?}"
        );
    }
    // A payload holding an f16 infinity (0x7c00) is refused on decode.
    let inf = Encoded {
        codec: "f16".into(),
        len: 1,
        payload: vec![0x00, 0x7c],
    };
    assert!(payload_err(F16.decode(&inf)).contains("element 0"));
}

#[test]
fn int8_error_is_within_half_a_step_and_bytes_are_a_quarter() {
    let values: Vec<f32> = (0..3000).map(|i| noise(i) * 3.7).collect();
    let (encoded, decoded) = round_trip(&mut Int8, &values);
    let scale = Int8::scale(&values);
    assert_eq!(&encoded.payload[..4], &scale.to_le_bytes());
    for (&x, &y) in values.iter().zip(&decoded) {
        assert!(
            (y - x).abs() <= scale / 2.0 + y.abs() * 2f32.powi(-24),
            "{x} → {y}"
        );
    }
    assert_eq!(encoded.payload.len(), 4 + 3000);
    assert_eq!(encoded.wire_bytes(), 3004 + 4 + 12);
    assert_eq!(encoded.raw_bytes(), 12_000);
}

#[test]
fn int8_by_hand_and_all_zero() {
    // max |x| = 1.27: scale 0.01; 0.5 → 50, −1.27 → −127, 0.004 → 0, 0.006 → 1.
    let values = [0.5f32, -1.27, 1.27, 0.004, 0.006];
    let encoded = Int8.encode(&flat(&values)).unwrap();
    assert_eq!(
        f32::from_le_bytes(encoded.payload[..4].try_into().unwrap()),
        1.27f32 / 127.0
    );
    let q: Vec<i8> = encoded.payload[4..].iter().map(|&b| b as i8).collect();
    assert_eq!(q, [50, -127, 127, 0, 1]);
    let zeros = [0.0f32; 9];
    let (encoded, decoded) = round_trip(&mut Int8, &zeros);
    assert_eq!(&encoded.payload[..4], &0f32.to_le_bytes());
    assert_eq!(decoded, zeros);
    // Non-finite input has no scale.
    for bad in [f32::NAN, f32::NEG_INFINITY] {
        assert!(matches!(
            Int8.encode(&flat(&[1.0, bad])),
            Err(CodecError::Input { codec: "int8", .. })
        ));
    }
    // A decoded scale must be finite and ≥ 0; −128 is never written.
    for scale in [-1.0f32, f32::NAN, f32::INFINITY] {
        let mut payload = scale.to_le_bytes().to_vec();
        payload.push(1);
        let bad = Encoded {
            codec: "int8".into(),
            len: 1,
            payload,
        };
        assert!(payload_err(Int8.decode(&bad)).contains("scale"));
    }
    let mut payload = 1f32.to_le_bytes().to_vec();
    payload.extend([5, 0x80]);
    let bad = Encoded {
        codec: "int8".into(),
        len: 2,
        payload,
    };
    assert!(payload_err(Int8.decode(&bad)).contains("element 1"));
}

#[test]
fn topk_by_hand_with_error_feedback() {
    let mut topk = TopK::new(2).unwrap();
    let encoded = topk.encode(&flat(&[0.1, -3.0, 2.0, 0.5])).unwrap();
    // Indices 1 and 2, ascending, as (u32, f32) pairs.
    let mut expected = Vec::new();
    for (i, v) in [(1u32, -3.0f32), (2, 2.0)] {
        expected.extend(i.to_le_bytes());
        expected.extend(v.to_le_bytes());
    }
    assert_eq!(encoded.payload, expected);
    assert_eq!(
        topk.decode(&encoded).unwrap().to_f32_vec().unwrap(),
        [0.0, -3.0, 2.0, 0.0]
    );
    assert_eq!(topk.residual(), [0.1, 0.0, 0.0, 0.5]);
    assert_eq!(topk.state(), [0.1, 0.0, 0.0, 0.5]);
    // Next round: [0, 0.2, 0, 0.6] + residual = [0.1, 0.2, 0, 1.1]: send 3 and 1.
    let encoded = topk.encode(&flat(&[0.0, 0.2, 0.0, 0.6])).unwrap();
    let decoded = topk.decode(&encoded).unwrap().to_f32_vec().unwrap();
    assert_eq!(decoded, [0.0, 0.2, 0.0, 0.5 + 0.6]);
    assert_eq!(topk.residual(), [0.1, 0.0, 0.0, 0.0]);
    // Equal magnitudes: the lower index is sent.
    let mut ties = TopK::new(1).unwrap();
    let decoded = round_trip(&mut ties, &[1.0, -2.0, 2.0, -2.0]).1;
    assert_eq!(decoded, [0.0, -2.0, 0.0, 0.0]);
}

#[test]
fn topk_one_percent_cuts_bytes_to_eight_per_entry() {
    let values = spread(10_000);
    for mut topk in [TopK::new(100).unwrap(), TopK::fraction(0.01).unwrap()] {
        assert_eq!(topk.k_for(10_000), 100);
        let (encoded, decoded) = round_trip(&mut topk, &values);
        assert_eq!(encoded.payload.len(), 8 * 100);
        assert_eq!(encoded.wire_bytes(), 800 + "topk".len() + 12);
        assert_eq!(encoded.raw_bytes(), 40_000);
        assert_eq!(decoded.iter().filter(|v| **v != 0.0).count(), 100);
        // What was sent are the 100 largest magnitudes.
        let mut magnitudes: Vec<f32> = values.iter().map(|v| v.abs()).collect();
        magnitudes.sort_by(|a, b| b.total_cmp(a));
        let smallest_sent = decoded
            .iter()
            .filter(|v| **v != 0.0)
            .fold(f32::MAX, |m, v| m.min(v.abs()));
        assert_eq!(smallest_sent, magnitudes[99]);
    }
    // A fraction rounds up (⌈0.015 · 10⌉ = ⌈0.15⌉ = 1); k never exceeds P.
    assert_eq!(TopK::fraction(0.015).unwrap().k_for(10), 1);
    assert_eq!(TopK::new(50).unwrap().k_for(10), 10);
}

/// Runs `rounds` updates of a fixed signal plus noise through `topk`;
/// returns (Σ inputs, Σ decoded) in f64. With `feedback` off, the residual
/// is dropped before each round.
fn run_rounds(topk: &mut TopK, rounds: u64, len: usize, feedback: bool) -> (Vec<f64>, Vec<f64>) {
    let mut sum_in = vec![0f64; len];
    let mut sum_out = vec![0f64; len];
    for t in 0..rounds {
        let update: Vec<f32> = (0..len)
            .map(|i| 0.01 * (1 + i % 7) as f32 + 0.02 * noise(t * len as u64 + i as u64))
            .collect();
        if !feedback {
            topk.restore(&[]).unwrap();
        }
        let (_, decoded) = round_trip(topk, &update);
        for i in 0..len {
            sum_in[i] += f64::from(update[i]);
            sum_out[i] += f64::from(decoded[i]);
        }
    }
    (sum_in, sum_out)
}

fn norm(v: impl Iterator<Item = f64>) -> f64 {
    v.map(|x| x * x).sum::<f64>().sqrt()
}

#[test]
fn topk_error_feedback_tracks_the_sum_of_inputs() {
    let len = 1000;
    let mut topk = TopK::fraction(0.05).unwrap();
    let (sum_in, sum_out) = run_rounds(&mut topk, 200, len, true);
    // Nothing is lost: Σ decoded + residual = Σ inputs (up to f32 additions).
    for i in 0..len {
        let gap = sum_in[i] - sum_out[i] - f64::from(topk.residual()[i]);
        assert!(gap.abs() < 1e-3, "{i}: {gap}");
    }
    let gap_200 = norm(sum_in.iter().zip(&sum_out).map(|(a, b)| a - b));
    let residual_200 = topk.residual().iter().fold(0f32, |m, v| m.max(v.abs()));
    let (more_in, more_out) = run_rounds(&mut topk, 200, len, true);
    let gap_400 = norm((0..len).map(|i| sum_in[i] + more_in[i] - sum_out[i] - more_out[i]));
    let residual_400 = topk.residual().iter().fold(0f32, |m, v| m.max(v.abs()));
    let total_400 = norm((0..len).map(|i| sum_in[i] + more_in[i]));
    // The residual stays bounded while the sums grow linearly, so the
    // relative gap after 400 rounds is small and shrinking.
    // (Measured: residual max 0.77 at both points, gap ≈ 13.8 at both,
    // |Σ inputs| ≈ 565 after 400 rounds: 2.4 %.)
    assert!(residual_400 < 1.0 && residual_200 < 1.0);
    assert!(
        residual_400 < 1.25 * residual_200,
        "{residual_200} → {residual_400}"
    );
    assert!(gap_400 / total_400 < 0.05, "{gap_400} / {total_400}");
    assert!(gap_400 < 1.1 * gap_200, "{gap_200} → {gap_400}");
    // Without feedback the small coordinates are never sent: the gap is
    // most of the signal (measured 87 %).
    let mut forgetful = TopK::fraction(0.05).unwrap();
    let (plain_in, plain_out) = run_rounds(&mut forgetful, 400, len, false);
    let plain_gap = norm(plain_in.iter().zip(&plain_out).map(|(a, b)| a - b));
    let plain_rel = plain_gap / norm(plain_in.into_iter());
    assert!(plain_rel > 0.5, "{plain_gap}");
}

#[test]
fn topk_state_restores_the_residual() {
    let mut a = TopK::new(3).unwrap();
    for t in 0..5 {
        a.encode(&flat(
            &(0..20).map(|i| noise(t * 20 + i)).collect::<Vec<_>>(),
        ))
        .unwrap();
    }
    let state = a.state();
    assert_eq!(state.len(), 20);
    let mut b = TopK::new(3).unwrap();
    b.restore(&state).unwrap();
    let next = flat(&(0..20).map(|i| noise(500 + i)).collect::<Vec<_>>());
    let from_a = a.encode(&next).unwrap();
    assert_eq!(from_a, b.encode(&next).unwrap());
    assert_eq!(a.residual(), b.residual());
    // A fresh codec gives another result: the residual mattered.
    assert_ne!(TopK::new(3).unwrap().encode(&next).unwrap(), from_a);
    // A non-finite state is refused and leaves the residual as it was.
    let before = b.state();
    assert!(matches!(
        b.restore(&[1.0, f32::NAN]),
        Err(CodecError::Payload { codec: "topk", .. })
    ));
    assert_eq!(b.state(), before);
    // An update of another length than the residual is refused, residual kept.
    assert!(matches!(
        b.encode(&flat(&[1.0; 7])),
        Err(CodecError::Input { codec: "topk", .. })
    ));
    assert!(matches!(
        b.encode(&flat(&[1.0, f32::NAN].repeat(10))),
        Err(CodecError::Input { codec: "topk", .. })
    ));
    assert_eq!(b.state(), before);
}

#[test]
fn topk_refuses_bad_config_and_bad_payloads() {
    assert!(matches!(TopK::new(0), Err(CodecError::Config(_))));
    for f in [0.0, -0.1, 1.01, f64::NAN] {
        assert!(
            matches!(TopK::fraction(f), Err(CodecError::Config(_))),
            "{f}"
        );
    }
    let topk = TopK::new(2).unwrap();
    let pair = |i: u32, v: f32| {
        let mut b = i.to_le_bytes().to_vec();
        b.extend(v.to_le_bytes());
        b
    };
    let with = |len, payload| Encoded {
        codec: "topk".into(),
        len,
        payload,
    };
    let out_of_range = with(4, [pair(1, 1.0), pair(4, 1.0)].concat());
    assert!(payload_err(topk.decode(&out_of_range)).contains("index 4"));
    let unsorted = with(4, [pair(2, 1.0), pair(1, 1.0)].concat());
    assert!(payload_err(topk.decode(&unsorted)).contains("not above"));
    let duplicate = with(4, [pair(2, 1.0), pair(2, 1.0)].concat());
    assert!(payload_err(topk.decode(&duplicate)).contains("not above"));
    let nan = with(4, pair(0, f32::NAN));
    assert!(payload_err(topk.decode(&nan)).contains("non-finite"));
    let too_many = with(1, [pair(0, 1.0), pair(1, 1.0)].concat());
    assert!(payload_err(topk.decode(&too_many)).contains("2 pairs"));
    let mut truncated = pair(0, 1.0);
    truncated.pop();
    assert!(payload_err(topk.decode(&with(4, truncated))).contains("7 bytes"));
    // A huge declared length with an empty payload is refused before allocating.
    assert!(payload_err(topk.decode(&with(usize::MAX, Vec::new()))).contains("cap"));
}

#[test]
fn every_codec_refuses_other_codecs_truncation_wrong_length_and_bad_input() {
    let codecs: Vec<Box<dyn Codec>> = vec![
        Box::new(Identity),
        Box::new(F16),
        Box::new(Int8),
        Box::new(TopK::new(2).unwrap()),
    ];
    let values = [0.25f32, -1.5, 3.0, 0.0, 7.0];
    for mut codec in codecs {
        let kind = codec.kind();
        let encoded = codec.encode(&flat(&values)).unwrap();
        assert_eq!(encoded.codec, kind);
        for other in ["identity", "f16", "int8", "topk"]
            .into_iter()
            .filter(|o| *o != kind)
        {
            let foreign = Encoded {
                codec: other.into(),
                ..encoded.clone()
            };
            assert_eq!(
                codec.decode(&foreign),
                Err(CodecError::WrongCodec {
                    codec: kind,
                    found: other.into()
                })
            );
        }
        let mut truncated = encoded.clone();
        truncated.payload.pop();
        payload_err(codec.decode(&truncated));
        if kind != "topk" {
            // Dense codecs: the element count fixes the payload length.
            let longer = Encoded {
                len: encoded.len + 1,
                ..encoded.clone()
            };
            payload_err(codec.decode(&longer));
            let huge = Encoded {
                len: usize::MAX / 2,
                ..encoded.clone()
            };
            payload_err(codec.decode(&huge));
        }
        for bad in [
            Tensor::from_f32(vec![1, 5], values.to_vec()).unwrap(),
            Tensor::from_i64(vec![2], vec![1, 2]).unwrap(),
            Tensor::scalar_f32(1.0),
        ] {
            assert!(
                matches!(codec.encode(&bad), Err(CodecError::Input { codec, .. }) if codec == kind),
                "{kind}: {bad:?}"
            );
        }
        // An empty update is fine (top-k: once its residual is dropped).
        codec.restore(&[]).unwrap();
        let empty = codec.encode(&flat(&[])).unwrap();
        assert!(codec.decode(&empty).unwrap().is_empty(), "{kind}");
    }
}

fn registry() -> ValueRegistry {
    let mut registry = ValueRegistry::with_builtins();
    Encoded::register(&mut registry).unwrap();
    registry
}

#[test]
fn encoded_crosses_the_wire_in_exactly_wire_bytes() {
    let registry = registry();
    let encoded = Int8.encode(&flat(&[1.0, -0.5, 0.25])).unwrap();
    let mut bytes = Vec::new();
    SlotValue::encode(&encoded, &mut bytes).unwrap();
    assert_eq!(bytes.len(), encoded.wire_bytes());
    assert_eq!(bytes[..4], 4u32.to_le_bytes());
    assert_eq!(&bytes[4..8], b"int8");
    assert_eq!(bytes[8..16], 3u64.to_le_bytes());
    assert_eq!(encoded.type_tag(), Encoded::TAG);
    let back = registry
        .decode(Encoded::TAG, &bytes, &ValueLimits::default())
        .unwrap();
    assert_eq!(back.downcast_ref::<Encoded>(), Some(&encoded));
    assert!(back.eq_value(&encoded));
    assert_eq!(encoded.heap_bytes(), 7 + 4);
    // A second registration of the tag is refused.
    let mut again = registry;
    assert!(matches!(
        Encoded::register(&mut again),
        Err(RegistryError::Duplicate { .. })
    ));
}

#[test]
fn encoded_decoder_refuses_hostile_bytes() {
    let registry = registry();
    let limits = ValueLimits::default();
    let decode = |bytes: &[u8]| registry.decode(Encoded::TAG, bytes, &limits).unwrap_err();
    // Too short for the name length, then for the name it announces.
    assert!(matches!(
        decode(&[1, 0]),
        ValueDecodeError::Truncated {
            needed: 4,
            available: 2
        }
    ));
    let mut short = 10u32.to_le_bytes().to_vec();
    short.extend(b"topk");
    assert!(matches!(
        decode(&short),
        ValueDecodeError::Truncated {
            needed: 10,
            available: 4
        }
    ));
    // A name past the cap is refused before it is read.
    let huge_name = u32::MAX.to_le_bytes().to_vec();
    assert!(matches!(
        decode(&huge_name),
        ValueDecodeError::Invalid { .. }
    ));
    // A name that is not UTF-8.
    let mut not_utf8 = 2u32.to_le_bytes().to_vec();
    not_utf8.extend([0xff, 0xfe]);
    not_utf8.extend(0u64.to_le_bytes());
    assert!(matches!(
        decode(&not_utf8),
        ValueDecodeError::Invalid { .. }
    ));
    // The element count missing, or over the tensor cap.
    let mut no_len = 4u32.to_le_bytes().to_vec();
    no_len.extend(b"topk");
    no_len.extend([0, 0]);
    assert!(matches!(
        decode(&no_len),
        ValueDecodeError::Truncated {
            needed: 8,
            available: 2
        }
    ));
    let mut huge_len = 4u32.to_le_bytes().to_vec();
    huge_len.extend(b"topk");
    huge_len.extend(u64::MAX.to_le_bytes());
    assert!(matches!(
        decode(&huge_len),
        ValueDecodeError::Invalid { .. }
    ));
    // Over the registry's byte cap: refused before the decoder runs.
    let small = ValueLimits {
        max_value_bytes: 8,
        ..ValueLimits::default()
    };
    let mut bytes = Vec::new();
    SlotValue::encode(&Identity.encode(&flat(&[1.0])).unwrap(), &mut bytes).unwrap();
    assert!(matches!(
        registry.decode(Encoded::TAG, &bytes, &small),
        Err(ValueDecodeError::TooLarge { .. })
    ));
    // A codec name past the cap cannot be encoded either.
    let long = Encoded {
        codec: "x".repeat(65),
        len: 0,
        payload: Vec::new(),
    };
    assert!(SlotValue::encode(&long, &mut Vec::new()).is_err());
}
