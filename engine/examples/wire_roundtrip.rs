//! Builds an envelope carrying several kinds of values, encodes it, decodes
//! it through the value registry, then shows a cap refusing a whole
//! envelope and an oversize fill failing alone while its siblings deliver.
//!
//! Run with `cargo run -p nodeflow-engine --example wire_roundtrip`.

use nodeflow_engine::{
    decode_envelope, decode_payload, encode_envelope, Address, AddressList, BytesValue,
    ComponentRef, Composite, Envelope, EnvelopeKind, F64Value, Fill, FillTarget, Payload, PeerId,
    PeerIdValue, SiteId, Trigger, U64Value, ValueLimits, ValueRegistry, WireLimits,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let alice = PeerId::new(0xa11ce);
    let bob = PeerId::new(0xb0b);
    let registry = ValueRegistry::with_builtins();
    let limits = WireLimits::default();

    // 1. An envelope with several value kinds, sent as live values.
    let update = Composite::new()
        .with("round", U64Value(3))
        .with("loss", F64Value(0.0625))
        .with("from", PeerIdValue(alice));
    let envelope = Envelope::new(alice, bob, EnvelopeKind::Request)
        .with_request_id(1)
        .with_remaining_deadline_ns(250_000_000)
        .with_reply_to(Address::component_op(alice, ComponentRef::new(0), "reply")?)
        .with_fill(Fill::site(
            SiteId::new(1),
            "weights",
            Payload::value(BytesValue::new(vec![7; 256])),
        ))
        .with_fill(Fill::site(SiteId::new(1), "update", Payload::value(update)))
        .with_fill(Fill::site(
            SiteId::new(1),
            "peers",
            Payload::value(AddressList::new(vec![
                Address::peer(alice),
                Address::site(bob, SiteId::new(1)),
            ])),
        ))
        .with_fill(Fill::component_op(
            ComponentRef::new(2),
            "sync",
            Payload::value(Trigger),
        ));

    let mut bytes = Vec::new();
    encode_envelope(&envelope, &limits, &mut bytes)?;
    println!(
        "encoded {:?} envelope {} -> {} with {} fills into {} bytes",
        envelope.kind,
        envelope.src,
        envelope.dst,
        envelope.fills.len(),
        bytes.len()
    );

    // 2. Decode it and turn every fill back into a live value.
    let decoded = decode_envelope(&bytes, &limits)?;
    println!(
        "decoded: req id {:?}, deadline {:?} ns, reply to {}",
        decoded.envelope.wire_req_id,
        decoded.envelope.remaining_deadline_ns,
        decoded.envelope.reply_to[0]
    );
    for (sent, received) in envelope.fills.iter().zip(&decoded.envelope.fills) {
        let value = decode_payload(&received.payload, &registry, &ValueLimits::default())?;
        let original = decode_payload(&sent.payload, &registry, &ValueLimits::default())?;
        let same = value.eq_value(original.as_ref());
        println!(
            "  {:<28} {value:?}  (equal to sent: {same})",
            target(&received.target)
        );
        if !same {
            return Err("a value changed on the way through the codec".into());
        }
    }

    // 3. A cap refuses the whole envelope with a typed error.
    let tight = WireLimits {
        max_fills: 2,
        ..limits
    };
    match decode_envelope(&bytes, &tight) {
        Err(err) => println!("with max_fills = 2 the envelope is refused: {err}"),
        Ok(_) => return Err("max_fills = 2 should refuse a 4-fill envelope".into()),
    }

    // 4. An oversize fill fails alone; its siblings still deliver.
    let small_fills = WireLimits {
        max_fill_bytes: 128,
        ..limits
    };
    let partial = decode_envelope(&bytes, &small_fills)?;
    println!(
        "with max_fill_bytes = 128: {} fills delivered, {} rejected",
        partial.envelope.fills.len(),
        partial.rejected.len()
    );
    for rejected in &partial.rejected {
        println!("  fill {} rejected: {}", rejected.index, rejected.reason);
    }
    if partial.rejected.len() != 1 || partial.envelope.fills.len() != 3 {
        return Err("exactly the 256-byte fill should have been rejected".into());
    }
    Ok(())
}

fn target(target: &FillTarget) -> String {
    match target {
        FillTarget::Site { site, input } => format!("{site} input `{input}`:"),
        FillTarget::ComponentOp { component, op } => format!("{component} op `{op}`:"),
        other => format!("{other:?}:"),
    }
}
