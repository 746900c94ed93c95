use super::*;
use crate::value::{BytesValue, U64Value};

const PEER_A: PeerId = PeerId::new(0xa);
const PEER_B: PeerId = PeerId::new(0xb);

fn kinds() -> [EnvelopeKind; 6] {
    [
        EnvelopeKind::OneWay,
        EnvelopeKind::Request,
        EnvelopeKind::Response,
        EnvelopeKind::BackoffNotice {
            retry_after_ns: u64::MAX,
        },
        EnvelopeKind::BackoffClear,
        EnvelopeKind::Credit,
    ]
}

fn site_fill(input: &str, bytes: Vec<u8>) -> Fill {
    Fill::site(
        SiteId::new(3),
        input,
        Payload::encoded(BytesValue::TAG, bytes),
    )
}

fn sample() -> Envelope {
    Envelope::new(PEER_A, PEER_B, EnvelopeKind::Request)
        .with_request_id(17)
        .with_remaining_deadline_ns(5_000_000)
        .with_reply_to(Address::peer(PEER_A))
        .with_reply_to(Address::component_op(PEER_A, ComponentRef::new(2), "fit").unwrap())
        .with_fill(site_fill("x", vec![1, 2, 3]))
        .with_fill(Fill::component_op(
            ComponentRef::new(9),
            "train.step",
            Payload::encoded(TypeTag::new(TypeTag::USER_MIN), vec![]),
        ))
        .with_fill(site_fill("y", vec![0; 300]))
}

fn encode(envelope: &Envelope) -> Vec<u8> {
    let mut out = Vec::new();
    encode_envelope(envelope, &WireLimits::default(), &mut out).unwrap();
    out
}

fn decode(bytes: &[u8]) -> Result<DecodedEnvelope, WireDecodeError> {
    decode_envelope(bytes, &WireLimits::default())
}

#[test]
fn every_kind_and_both_targets_round_trip() {
    for kind in kinds() {
        let mut envelope = sample();
        envelope.kind = kind;
        let decoded = decode(&encode(&envelope)).unwrap();
        assert_eq!(decoded.envelope, envelope);
        assert!(decoded.rejected.is_empty());
    }
    let bare = Envelope::new(PEER_B, PEER_A, EnvelopeKind::OneWay);
    assert_eq!(decode(&encode(&bare)).unwrap().envelope, bare);
}

#[test]
fn credits_and_typed_failures_round_trip_and_oversized_failures_are_refused() {
    let failed = Envelope::new(PEER_B, PEER_A, EnvelopeKind::Response)
        .with_request_id(4)
        .with_credit(17)
        .with_failure(OpError::new(
            OpErrorKind::ResourceExhausted,
            "budget.exceeded",
            "no room",
        ));
    assert_eq!(decode(&encode(&failed)).unwrap().envelope, failed);
    // The encoder clips a long detail at a character boundary.
    let long =
        failed
            .clone()
            .with_failure(OpError::new(OpErrorKind::Failed, "x", "é".repeat(3000)));
    let back = decode(&encode(&long)).unwrap().envelope;
    let detail = back.failure.unwrap().detail;
    assert!(detail.len() <= COMPLETION_DETAIL_CAP && detail.chars().all(|c| c == 'é'));
    // A forged detail over the cap, or an unknown kind, is refused.
    let mut forged = Vec::new();
    put(&mut forged, &WIRE_SCHEMA_VERSION);
    put(
        &mut forged,
        &WireHeader {
            src: 1,
            dst: 2,
            kind: WireKind::Response,
            wire_req_id: Some(1),
            remaining_deadline_ns: None,
            credit: 0,
        },
    );
    let mut bad_kind = forged.clone();
    let big = vec![b'a'; COMPLETION_DETAIL_CAP + 1];
    put(
        &mut forged,
        &Some(WireFailure {
            kind: 7,
            reason: WireBytes(b"r"),
            detail: WireBytes(&big),
        }),
    );
    put(&mut forged, &0u64);
    put(&mut forged, &0u64);
    assert!(matches!(
        decode(&forged),
        Err(WireDecodeError::Malformed {
            section: "failure",
            ..
        })
    ));
    put(
        &mut bad_kind,
        &Some(WireFailure {
            kind: 200,
            reason: WireBytes(b"r"),
            detail: WireBytes(b"d"),
        }),
    );
    put(&mut bad_kind, &0u64);
    put(&mut bad_kind, &0u64);
    assert!(matches!(
        decode(&bad_kind),
        Err(WireDecodeError::Malformed {
            section: "failure",
            ..
        })
    ));
}

#[test]
fn live_values_arrive_encoded_under_their_tag() {
    let envelope = Envelope::new(PEER_A, PEER_B, EnvelopeKind::OneWay).with_fill(Fill::site(
        SiteId::new(1),
        "n",
        Payload::value(U64Value(7)),
    ));
    let decoded = decode(&encode(&envelope)).unwrap().envelope;
    assert_eq!(
        decoded.fills[0].payload,
        Payload::encoded(U64Value::TAG, 7u64.to_le_bytes().to_vec())
    );
    let value = decode_payload(
        &decoded.fills[0].payload,
        &ValueRegistry::with_builtins(),
        &ValueLimits::default(),
    )
    .unwrap();
    assert!(value.eq_value(&U64Value(7)));
}

#[test]
fn decode_payload_clones_live_values_and_reports_unknown_tags() {
    let registry = ValueRegistry::with_builtins();
    let limits = ValueLimits::default();
    let live = decode_payload(&Payload::value(U64Value(3)), &registry, &limits).unwrap();
    assert!(live.eq_value(&U64Value(3)));
    let tag = TypeTag::new(TypeTag::USER_MIN + 1);
    let err = decode_payload(&Payload::encoded(tag, vec![]), &registry, &limits).unwrap_err();
    assert_eq!(err, ValueDecodeError::UnknownTag { tag });
}

#[test]
fn encoding_appends_and_a_failed_encode_leaves_out_unchanged() {
    let mut out = b"prefix".to_vec();
    encode_envelope(&sample(), &WireLimits::default(), &mut out).unwrap();
    assert_eq!(&out[..6], b"prefix");
    assert_eq!(decode(&out[6..]).unwrap().envelope, sample());

    let mut out = b"prefix".to_vec();
    let limits = WireLimits {
        max_fill_bytes: 100,
        ..WireLimits::default()
    };
    let err = encode_envelope(&sample(), &limits, &mut out).unwrap_err();
    assert_eq!(
        err,
        WireEncodeError::FillTooLarge {
            index: 2,
            len: 300,
            cap: 100
        }
    );
    assert_eq!(out, b"prefix");
}

#[test]
fn every_encode_cap_has_its_typed_error() {
    let base = WireLimits::default();
    let check = |limits: WireLimits, envelope: &Envelope, expected: WireEncodeError| {
        let mut out = Vec::new();
        assert_eq!(encode_envelope(envelope, &limits, &mut out), Err(expected));
        assert!(out.is_empty());
    };
    let mut old = sample();
    old.schema = WIRE_SCHEMA_VERSION + 1;
    check(
        base,
        &old,
        WireEncodeError::UnsupportedSchema {
            found: WIRE_SCHEMA_VERSION + 1,
            expected: WIRE_SCHEMA_VERSION,
        },
    );
    check(
        WireLimits {
            max_fills: 2,
            ..base
        },
        &sample(),
        WireEncodeError::TooManyFills { count: 3, cap: 2 },
    );
    check(
        WireLimits {
            max_reply_to: 1,
            ..base
        },
        &sample(),
        WireEncodeError::TooManyAddresses { count: 2, cap: 1 },
    );
    check(
        WireLimits {
            max_name_bytes: 5,
            ..base
        },
        &sample(),
        WireEncodeError::NameTooLong {
            index: 1,
            len: 10,
            cap: 5,
        },
    );
    let whole = encode(&sample()).len();
    let err = encode_envelope(
        &sample(),
        &WireLimits {
            max_envelope_bytes: whole - 1,
            ..base
        },
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(matches!(err, WireEncodeError::TooLarge { cap, .. } if cap == whole - 1));
    // Exactly at the cap is fine.
    let limits = WireLimits {
        max_envelope_bytes: whole,
        ..base
    };
    assert!(encode_envelope(&sample(), &limits, &mut Vec::new()).is_ok());
}

#[test]
fn every_decode_cap_has_its_typed_error() {
    let bytes = encode(&sample());
    let base = WireLimits::default();
    let decode_with = |limits: WireLimits| decode_envelope(&bytes, &limits).unwrap_err();
    assert_eq!(
        decode_with(WireLimits {
            max_envelope_bytes: bytes.len() - 1,
            ..base
        }),
        WireDecodeError::TooLarge {
            len: bytes.len(),
            cap: bytes.len() - 1
        }
    );
    assert_eq!(
        decode_with(WireLimits {
            max_fills: 2,
            ..base
        }),
        WireDecodeError::TooManyFills { count: 3, cap: 2 }
    );
    assert_eq!(
        decode_with(WireLimits {
            max_reply_to: 1,
            ..base
        }),
        WireDecodeError::TooManyAddresses { count: 2, cap: 1 }
    );
    // The schema is the single varint byte at the front.
    let mut other = bytes.clone();
    other[0] = 3;
    assert_eq!(
        decode(&other).unwrap_err(),
        WireDecodeError::SchemaMismatch {
            found: 3,
            expected: WIRE_SCHEMA_VERSION
        }
    );
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        decode(&longer).unwrap_err(),
        WireDecodeError::TrailingBytes { extra: 1 }
    );
}

#[test]
fn per_fill_caps_reject_only_their_fill() {
    let bytes = encode(&sample());
    let limits = WireLimits {
        max_fill_bytes: 100,
        max_name_bytes: 5,
        ..WireLimits::default()
    };
    let decoded = decode_envelope(&bytes, &limits).unwrap();
    assert_eq!(
        decoded.rejected,
        vec![
            RejectedFill {
                index: 1,
                reason: FillError::NameTooLong { len: 10, cap: 5 }
            },
            RejectedFill {
                index: 2,
                reason: FillError::TooLarge { len: 300, cap: 100 }
            },
        ]
    );
    assert_eq!(decoded.envelope.fills, vec![site_fill("x", vec![1, 2, 3])]);
    assert_eq!(decoded.envelope.reply_to, sample().reply_to);
}

#[test]
fn one_oversize_fill_among_good_ones_fails_alone() {
    let envelope = Envelope::new(PEER_A, PEER_B, EnvelopeKind::OneWay)
        .with_fill(site_fill("a", vec![1; 10]))
        .with_fill(site_fill("big", vec![2; 5000]))
        .with_fill(site_fill("c", vec![3; 10]));
    let decoded = decode_envelope(
        &encode(&envelope),
        &WireLimits {
            max_fill_bytes: 4096,
            ..WireLimits::default()
        },
    )
    .unwrap();
    assert_eq!(
        decoded.rejected,
        vec![RejectedFill {
            index: 1,
            reason: FillError::TooLarge {
                len: 5000,
                cap: 4096
            }
        }]
    );
    assert_eq!(
        decoded.envelope.fills,
        vec![site_fill("a", vec![1; 10]), site_fill("c", vec![3; 10])]
    );
}

#[test]
fn non_utf8_name_fails_its_fill_alone() {
    let mut out = Vec::new();
    put(&mut out, &WIRE_SCHEMA_VERSION);
    put(
        &mut out,
        &WireHeader {
            src: 1,
            dst: 2,
            kind: WireKind::OneWay,
            wire_req_id: None,
            remaining_deadline_ns: None,
            credit: 0,
        },
    );
    put(&mut out, &None::<WireFailure<'_>>);
    put(&mut out, &0u64);
    put(&mut out, &2u64);
    for name in [&[0xff, 0xfe][..], b"ok"] {
        put(
            &mut out,
            &WireFill {
                target: WireTarget::ComponentOp {
                    component: 1,
                    op: WireBytes(name),
                },
                tag: 2,
                payload: WireBytes(&[]),
            },
        );
    }
    let decoded = decode(&out).unwrap();
    assert_eq!(
        decoded.rejected,
        vec![RejectedFill {
            index: 0,
            reason: FillError::NameNotUtf8
        }]
    );
    assert_eq!(decoded.envelope.fills.len(), 1);
}

/// Schema, a minimal header and an empty reply list.
fn preamble() -> Vec<u8> {
    let mut out = Vec::new();
    encode_envelope(
        &Envelope::new(PEER_A, PEER_B, EnvelopeKind::OneWay),
        &WireLimits::default(),
        &mut out,
    )
    .unwrap();
    // Drop the trailing zero fill count.
    assert_eq!(out.pop(), Some(0));
    out
}

#[test]
fn forged_huge_fill_count_errors_without_allocating() {
    let mut forged = preamble();
    put(&mut forged, &1_000_000_000u64);
    forged.extend_from_slice(&[0, 1, 1, b'x', 2, 0]);
    assert_eq!(
        decode(&forged).unwrap_err(),
        WireDecodeError::TooManyFills {
            count: 1_000_000_000,
            cap: WireLimits::default().max_fills
        }
    );
    // With the count cap lifted, the reservation is bounded by the input
    // and parsing stops at the end of the bytes.
    let unlimited = WireLimits {
        max_fills: usize::MAX,
        ..WireLimits::default()
    };
    let err = decode_envelope(&forged, &unlimited).unwrap_err();
    assert!(
        matches!(
            err,
            WireDecodeError::Malformed {
                section: "fills",
                ..
            }
        ),
        "{err:?}"
    );
    // A forged payload length is refused the same way.
    let mut forged = preamble();
    put(&mut forged, &1u64);
    forged.extend_from_slice(&[0, 1, 1, b'x', 2]);
    put(&mut forged, &u64::MAX);
    assert!(matches!(
        decode_envelope(&forged, &unlimited).unwrap_err(),
        WireDecodeError::Malformed { .. }
    ));
}

#[test]
fn forged_huge_address_count_is_refused() {
    let mut forged = preamble();
    // Replace the empty reply count with a huge one.
    assert_eq!(forged.pop(), Some(0));
    put(&mut forged, &u64::MAX);
    assert_eq!(
        decode(&forged).unwrap_err(),
        WireDecodeError::TooManyAddresses {
            count: u64::MAX,
            cap: WireLimits::default().max_reply_to
        }
    );
}

#[test]
fn bad_reply_address_rejects_the_envelope() {
    let mut forged = preamble();
    assert_eq!(forged.pop(), Some(0));
    put(&mut forged, &1u64);
    put(&mut forged, &WireBytes(&[0x80; 9]));
    put(&mut forged, &0u64);
    assert!(matches!(
        decode(&forged).unwrap_err(),
        WireDecodeError::BadAddress { index: 0, .. }
    ));
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = encode(&sample());
    for cut in 0..bytes.len() {
        assert!(decode(&bytes[..cut]).is_err(), "cut at {cut} decoded");
    }
}

#[test]
fn random_byte_flips_never_panic() {
    let bytes = encode(&sample());
    let registry = ValueRegistry::with_builtins();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut decoded_ok = 0;
    for _ in 0..5000 {
        let mut mutated = bytes.clone();
        for _ in 0..=(next() % 3) {
            let at = (next() % mutated.len() as u64) as usize;
            mutated[at] ^= (next() % 255 + 1) as u8;
        }
        if let Ok(decoded) = decode(&mutated) {
            decoded_ok += 1;
            for fill in &decoded.envelope.fills {
                let _ = decode_payload(&fill.payload, &registry, &ValueLimits::default());
            }
        }
    }
    // Flips inside payload bytes still decode: the loop exercised both paths.
    assert!(decoded_ok > 0);
}
