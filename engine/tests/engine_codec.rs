#![allow(clippy::unwrap_used)]
//! End-to-end codec tests: live values of every kind go into an envelope,
//! across the byte boundary, and back out through a shared value registry.

use nodeflow_engine::{
    decode_envelope, decode_payload, encode_envelope, Address, AddressList, BytesValue,
    ComponentRef, Composite, DecodeContext, EncodeError, Envelope, EnvelopeKind, F64Value, Fill,
    FillError, FillTarget, I64Value, Payload, PeerId, PeerIdValue, SiteId, SlotValue, Trigger,
    TypeTag, U64Value, ValueDecodeError, ValueLimits, ValueReader, ValueRegistry, WireDecodeError,
    WireLimits, WIRE_SCHEMA_VERSION,
};

const SRC: PeerId = PeerId::new(0x51);
const DST: PeerId = PeerId::new(0xd5);

/// An application value shipped under a user tag.
#[derive(Debug, PartialEq)]
struct Gradient {
    step: u32,
    norm: f32,
}

const GRADIENT: TypeTag = TypeTag::new(TypeTag::USER_MIN + 0x42);

impl SlotValue for Gradient {
    fn type_tag(&self) -> TypeTag {
        GRADIENT
    }
    fn clone_value(&self) -> Box<dyn SlotValue> {
        Box::new(Gradient {
            step: self.step,
            norm: self.norm,
        })
    }
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(&self.step.to_le_bytes());
        out.extend_from_slice(&self.norm.to_bits().to_le_bytes());
        Ok(())
    }
    fn eq_value(&self, other: &dyn SlotValue) -> bool {
        other.downcast_ref::<Self>() == Some(self)
    }
}

fn decode_gradient(
    bytes: &[u8],
    _: &DecodeContext<'_>,
) -> Result<Box<dyn SlotValue>, ValueDecodeError> {
    let mut reader = ValueReader::new(bytes);
    let step = reader.u32_le()?;
    let norm = f32::from_bits(reader.u32_le()?);
    reader.finish()?;
    Ok(Box::new(Gradient { step, norm }))
}

fn registry() -> ValueRegistry {
    let mut registry = ValueRegistry::with_builtins();
    registry.register(GRADIENT, decode_gradient).unwrap();
    registry
}

fn values() -> Vec<Box<dyn SlotValue>> {
    let addresses = AddressList::new(vec![Address::peer(SRC), Address::site(SRC, SiteId::new(1))]);
    vec![
        Box::new(BytesValue::copy_from(b"weights")),
        Box::new(Trigger),
        Box::new(U64Value(1 << 40)),
        Box::new(I64Value(-3)),
        Box::new(F64Value(0.125)),
        Box::new(PeerIdValue(DST)),
        Box::new(addresses.clone()),
        Box::new(Gradient { step: 9, norm: 0.5 }),
        Box::new(
            Composite::new()
                .with("round", U64Value(4))
                .with("peers", addresses)
                .with("update", Gradient { step: 4, norm: 1.5 })
                .with("meta", Composite::new().with("lr", F64Value(0.01))),
        ),
    ]
}

#[test]
fn every_value_kind_crosses_the_wire_and_decodes_through_the_registry() {
    let registry = registry();
    let mut envelope = Envelope::new(SRC, DST, EnvelopeKind::Request)
        .with_request_id(1)
        .with_reply_to(Address::component_op(SRC, ComponentRef::new(0), "recv").unwrap());
    for (i, value) in values().into_iter().enumerate() {
        let index = u32::try_from(i).unwrap();
        let fill = if i % 2 == 0 {
            Fill::site(SiteId::new(index), format!("in{i}"), Payload::Value(value))
        } else {
            Fill::component_op(
                ComponentRef::new(index),
                format!("op{i}"),
                Payload::Value(value),
            )
        };
        envelope = envelope.with_fill(fill);
    }

    let mut bytes = Vec::new();
    encode_envelope(&envelope, &WireLimits::default(), &mut bytes).unwrap();
    let decoded = decode_envelope(&bytes, &WireLimits::default()).unwrap();
    assert!(decoded.rejected.is_empty());
    let received = decoded.envelope;
    assert_eq!(received.kind, EnvelopeKind::Request);
    assert_eq!(received.reply_to, envelope.reply_to);
    assert_eq!(received.fills.len(), envelope.fills.len());

    for (sent, got) in envelope.fills.iter().zip(&received.fills) {
        assert_eq!(sent.target, got.target);
        assert!(matches!(got.payload, Payload::Encoded { .. }));
        assert_eq!(sent.payload.tag(), got.payload.tag());
        let live = decode_payload(&got.payload, &registry, &ValueLimits::default()).unwrap();
        let Payload::Value(original) = &sent.payload else {
            unreachable!("every fill was sent as a live value")
        };
        assert!(
            live.eq_value(original.as_ref()),
            "{original:?} became {live:?}"
        );
    }
}

#[test]
fn bad_fill_fails_alone_and_the_rest_still_decode_to_values() {
    let registry = registry();
    let envelope = Envelope::new(SRC, DST, EnvelopeKind::OneWay)
        .with_fill(Fill::site(SiteId::new(1), "a", Payload::value(U64Value(1))))
        .with_fill(Fill::site(
            SiteId::new(1),
            "blob",
            Payload::value(BytesValue::new(vec![0; 2048])),
        ))
        .with_fill(Fill::site(SiteId::new(1), "b", Payload::value(U64Value(2))));
    let mut bytes = Vec::new();
    encode_envelope(&envelope, &WireLimits::default(), &mut bytes).unwrap();

    let strict = WireLimits {
        max_fill_bytes: 1024,
        ..WireLimits::default()
    };
    let decoded = decode_envelope(&bytes, &strict).unwrap();
    assert_eq!(decoded.rejected.len(), 1);
    assert_eq!(decoded.rejected[0].index, 1);
    assert_eq!(
        decoded.rejected[0].reason,
        FillError::TooLarge {
            len: 2048,
            cap: 1024
        }
    );
    let inputs: Vec<_> = decoded
        .envelope
        .fills
        .iter()
        .map(|fill| match &fill.target {
            FillTarget::Site { input, .. } => input.as_str(),
            other => unreachable!("only site fills were sent, got {other:?}"),
        })
        .collect();
    assert_eq!(inputs, ["a", "b"]);
    let second = decode_payload(
        &decoded.envelope.fills[1].payload,
        &registry,
        &ValueLimits::default(),
    )
    .unwrap();
    assert!(second.eq_value(&U64Value(2)));
}

#[test]
fn a_peer_without_the_user_type_gets_a_typed_error_for_that_fill() {
    let envelope = Envelope::new(SRC, DST, EnvelopeKind::OneWay).with_fill(Fill::site(
        SiteId::new(1),
        "g",
        Payload::value(Gradient { step: 1, norm: 2.0 }),
    ));
    let mut bytes = Vec::new();
    encode_envelope(&envelope, &WireLimits::default(), &mut bytes).unwrap();
    let decoded = decode_envelope(&bytes, &WireLimits::default()).unwrap();
    let builtins_only = ValueRegistry::with_builtins();
    let err = decode_payload(
        &decoded.envelope.fills[0].payload,
        &builtins_only,
        &ValueLimits::default(),
    )
    .unwrap_err();
    assert_eq!(err, ValueDecodeError::UnknownTag { tag: GRADIENT });
}

#[test]
fn small_envelopes_stay_compact() {
    // schema 1 + src 1 + dst 2 + kind 1 + two options 2 + credit 1
    // + failure option 1 + reply count 1 + fill count 1 + target 1 + site 1
    // + name 2 + tag 1 + payload 1 + 8.
    let envelope = Envelope::new(SRC, DST, EnvelopeKind::OneWay).with_fill(Fill::site(
        SiteId::new(1),
        "x",
        Payload::value(U64Value(5)),
    ));
    let mut bytes = Vec::new();
    encode_envelope(&envelope, &WireLimits::default(), &mut bytes).unwrap();
    assert_eq!(bytes.len(), 25);
}

#[test]
fn a_foreign_schema_is_refused_whole() {
    let mut bytes = Vec::new();
    encode_envelope(
        &Envelope::new(SRC, DST, EnvelopeKind::BackoffClear),
        &WireLimits::default(),
        &mut bytes,
    )
    .unwrap();
    bytes[0] = 9;
    assert_eq!(
        decode_envelope(&bytes, &WireLimits::default()).unwrap_err(),
        WireDecodeError::SchemaMismatch {
            found: 9,
            expected: WIRE_SCHEMA_VERSION
        }
    );
}

#[test]
fn registry_and_decoded_values_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ValueRegistry>();
    assert_send_sync::<Box<dyn SlotValue>>();
    assert_send_sync::<Envelope>();
}
