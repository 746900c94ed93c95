//! The address-book syscalls `AddressBook.Insert`, `AddressBook.InsertMany`
//! and `AddressBook.Lookup` (table on [`PeersSyscall`]).
//!
//! Invariants: an insert goes through [`crate::AddressBook::insert_many`],
//! so each peer's batch is all-or-nothing, respects the book's caps and
//! takes one reference on the peer's entry; a lookup changes nothing.

use std::str::FromStr;

use crate::component::{DispatchResult, OpError, OpErrorKind, OpInputs, OpOutputs};
use crate::framework::{Address, AddressBookError};
use crate::ids::PeerId;
use crate::resource::RuntimeResourceRef;
use crate::syscall::parse::{Count, OpSpec};
use crate::syscall::{pass_optional, SyscallParseError};
use crate::value::{AddressList, BytesValue, PeerIdValue, U64Value};

/// Address-book access from a graph.
///
/// | op type                  | inputs | outputs | attributes | behaviour | errors |
/// |--------------------------|--------|---------|------------|-----------|--------|
/// | `AddressBook.Insert`     | 2: [`PeerIdValue`], then an [`AddressList`] or one address in string form as a [`BytesValue`] | 0 or 1 | — | adds the addresses to the peer's entry (dedup, order kept) and takes one reference on it; emits `U64Value(new addresses)` | `ResourceExhausted` `address_book.peer_cap` / `address_book.address_cap` (nothing changes); `InvalidInput` `address.invalid`, `input.type_mismatch` |
/// | `AddressBook.InsertMany` | 1: an [`AddressList`] | 0 or 1 | — | groups the addresses by the peer each names (order of first appearance) and inserts each group as `Insert` does; emits `U64Value(new addresses)` | as `Insert`; groups before a refused one stay inserted (the detail says how many) |
/// | `AddressBook.Lookup`     | 1: [`PeerIdValue`] | 1 | — | emits the peer's addresses as an [`AddressList`], empty for an unknown peer | `InvalidInput` `input.type_mismatch` |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeersSyscall {
    /// `AddressBook.Insert`: addresses for one peer.
    Insert,
    /// `AddressBook.InsertMany`: addresses for the peers they name.
    InsertMany,
    /// `AddressBook.Lookup`: a peer's known addresses.
    Lookup,
}

impl PeersSyscall {
    /// Parses an address-book op; `None` when `spec` is not one.
    pub(super) fn parse(spec: &OpSpec<'_>) -> Option<Result<Self, SyscallParseError>> {
        let (op, inputs, outputs) = match spec.op_type() {
            "AddressBook.Insert" => (Self::Insert, Count::Two, Count::ZeroOrOne),
            "AddressBook.InsertMany" => (Self::InsertMany, Count::One, Count::ZeroOrOne),
            "AddressBook.Lookup" => (Self::Lookup, Count::One, Count::One),
            _ => return None,
        };
        let parsed = spec
            .inputs(inputs)
            .and_then(|()| spec.outputs(outputs))
            .map(|()| op);
        Some(parsed)
    }

    /// Runs the op for one execution.
    pub(super) fn dispatch(
        &self,
        ctx: &mut RuntimeResourceRef<'_>,
        inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        let book = &mut *ctx.peers.addresses;
        match self {
            Self::Insert => {
                let peer = inputs.get_as::<PeerIdValue>(0)?.0;
                let addresses = addresses_of(inputs)?;
                let added = book.insert_many(peer, addresses).map_err(book_error)?;
                pass_optional(outputs, Box::new(U64Value(added as u64)))?;
            }
            Self::InsertMany => {
                let groups = group_by_peer(inputs.get_as::<AddressList>(0)?.addresses());
                let mut added = 0u64;
                for (done, (peer, addresses)) in groups.iter().enumerate() {
                    let fresh =
                        book.insert_many(*peer, addresses.iter().cloned())
                            .map_err(|e| {
                                let mut error = book_error(e);
                                error.detail = format!(
                                    "{} ({done} of {} peers were inserted before this refusal)",
                                    error.detail,
                                    groups.len()
                                );
                                error
                            })?;
                    added = added.saturating_add(fresh as u64);
                }
                pass_optional(outputs, Box::new(U64Value(added)))?;
            }
            Self::Lookup => {
                let peer = inputs.get_as::<PeerIdValue>(0)?.0;
                let known = book.lookup(peer).unwrap_or(&[]).to_vec();
                outputs.push(Box::new(AddressList::new(known)))?;
            }
        }
        Ok(DispatchResult::Immediate)
    }
}

/// The addresses on input 1: an address list, or one address as a string.
fn addresses_of(inputs: &OpInputs<'_>) -> Result<Vec<Address>, OpError> {
    if let Some(list) = inputs.get(1).and_then(|v| v.downcast_ref::<AddressList>()) {
        return Ok(list.addresses().to_vec());
    }
    let bytes = inputs.get_as::<BytesValue>(1).map_err(|mut e| {
        e.detail = format!(
            "{}; input 1 must be an AddressList or an address string",
            e.detail
        );
        e
    })?;
    let invalid = |problem: String| {
        OpError::new(
            OpErrorKind::InvalidInput,
            "address.invalid",
            format!("input 1 is not an address: {problem}"),
        )
    };
    let text = std::str::from_utf8(bytes.as_bytes()).map_err(|e| invalid(e.to_string()))?;
    let address = Address::from_str(text).map_err(|e| invalid(e.to_string()))?;
    Ok(vec![address])
}

/// Addresses grouped by the peer each names, in order of first appearance.
fn group_by_peer(addresses: &[Address]) -> Vec<(PeerId, Vec<Address>)> {
    let mut groups: Vec<(PeerId, Vec<Address>)> = Vec::new();
    for address in addresses {
        let peer = address.peer_id();
        match groups.iter_mut().find(|(p, _)| *p == peer) {
            Some((_, group)) => group.push(address.clone()),
            None => groups.push((peer, vec![address.clone()])),
        }
    }
    groups
}

fn book_error(error: AddressBookError) -> OpError {
    let (kind, reason) = match error {
        AddressBookError::PeerCapReached { .. } => {
            (OpErrorKind::ResourceExhausted, "address_book.peer_cap")
        }
        AddressBookError::AddressCapReached { .. } => {
            (OpErrorKind::ResourceExhausted, "address_book.address_cap")
        }
        AddressBookError::UnknownPeer { .. } => {
            (OpErrorKind::Internal, "address_book.unknown_peer")
        }
    };
    OpError::new(kind, reason, error.to_string())
}

#[cfg(test)]
mod tests {
    use crate::component::OpErrorKind;
    use crate::framework::{Address, AddressBookConfig};
    use crate::framework_state::FrameworkConfig;
    use crate::ids::{PeerId, SiteId};
    use crate::syscall::test_rig::{inputs, op, Rig};
    use crate::syscall::Syscall;
    use crate::value::{AddressList, BytesValue, PeerIdValue, SlotValue, U64Value};

    const PEER: PeerId = PeerId::new(3);

    fn pair(first: impl SlotValue, second: impl SlotValue) -> Vec<Option<Box<dyn SlotValue>>> {
        vec![Some(Box::new(first)), Some(Box::new(second))]
    }

    fn parse(op_type: &str, inputs: usize, outputs: usize) -> Syscall {
        Syscall::parse(&op(op_type, inputs, outputs)).unwrap()
    }

    #[test]
    fn insert_accepts_a_list_or_one_address_string_and_lookup_reads_back() {
        let insert = parse("AddressBook.Insert", 2, 1);
        let lookup = parse("AddressBook.Lookup", 1, 1);
        let site = Address::site(PEER, SiteId::new(1));
        let mut rig = Rig::new();
        let list = AddressList::new(vec![site.clone()]);
        let out = rig
            .run(&insert, 0, pair(PeerIdValue(PEER), list), 1)
            .unwrap();
        assert_eq!(out.values::<U64Value>(), vec![U64Value(1)]);
        let text = BytesValue::copy_from(Address::peer(PEER).to_string().as_bytes());
        let out = rig
            .run(&insert, 0, pair(PeerIdValue(PEER), text), 1)
            .unwrap();
        assert_eq!(out.values::<U64Value>(), vec![U64Value(1)]);
        let out = rig.run(&lookup, 0, inputs([PeerIdValue(PEER)]), 1).unwrap();
        let found = out.values::<AddressList>().remove(0);
        assert_eq!(found.addresses(), &[site, Address::peer(PEER)]);
        assert_eq!(rig.handle(0).peers.addresses.ref_count(PEER), 2);
    }

    #[test]
    fn lookup_of_an_unknown_peer_is_an_empty_list() {
        let lookup = parse("AddressBook.Lookup", 1, 1);
        let out = Rig::new()
            .run(&lookup, 0, inputs([PeerIdValue(PeerId::new(99))]), 1)
            .unwrap();
        assert!(out.values::<AddressList>()[0].addresses().is_empty());
        let err = Rig::new()
            .run(&lookup, 0, inputs([U64Value(1)]), 1)
            .unwrap_err();
        assert_eq!(err.reason, "input.type_mismatch");
    }

    #[test]
    fn insert_rejects_bad_addresses_and_wrong_types() {
        let insert = parse("AddressBook.Insert", 2, 0);
        let mut rig = Rig::new();
        let bad = BytesValue::copy_from(b"not-an-address");
        let err = rig
            .run(&insert, 0, pair(PeerIdValue(PEER), bad), 0)
            .unwrap_err();
        assert_eq!(
            (err.kind, err.reason.as_ref()),
            (OpErrorKind::InvalidInput, "address.invalid")
        );
        let not_utf8 = BytesValue::copy_from(&[0xff, 0xfe]);
        let err = rig
            .run(&insert, 0, pair(PeerIdValue(PEER), not_utf8), 0)
            .unwrap_err();
        assert_eq!(err.reason, "address.invalid");
        let err = rig
            .run(&insert, 0, pair(PeerIdValue(PEER), U64Value(1)), 0)
            .unwrap_err();
        assert_eq!(err.reason, "input.type_mismatch");
        assert!(rig.handle(0).peers.addresses.is_empty());
        assert!(Syscall::parse(&op("AddressBook.Insert", 1, 0)).is_err());
        assert!(Syscall::parse(&op("AddressBook.Lookup", 1, 0)).is_err());
    }

    #[test]
    fn insert_caps_are_typed_and_change_nothing() {
        let config = FrameworkConfig {
            address_book: AddressBookConfig {
                max_peers: 1,
                max_addresses_per_peer: 1,
            },
            ..FrameworkConfig::default()
        };
        let insert = parse("AddressBook.Insert", 2, 0);
        let mut rig = Rig::with_config(&config);
        let two = AddressList::new(vec![
            Address::peer(PEER),
            Address::site(PEER, SiteId::new(1)),
        ]);
        let err = rig
            .run(&insert, 0, pair(PeerIdValue(PEER), two), 0)
            .unwrap_err();
        assert_eq!(
            (err.kind, err.reason.as_ref()),
            (OpErrorKind::ResourceExhausted, "address_book.address_cap")
        );
        assert!(rig.handle(0).peers.addresses.is_empty());
        let one = AddressList::new(vec![Address::peer(PEER)]);
        rig.run(&insert, 0, pair(PeerIdValue(PEER), one.clone()), 0)
            .unwrap();
        let other = PeerIdValue(PeerId::new(4));
        let err = rig.run(&insert, 0, pair(other, one), 0).unwrap_err();
        assert_eq!(err.reason, "address_book.peer_cap");
    }

    #[test]
    fn insert_many_groups_by_the_peer_each_address_names() {
        let insert_many = parse("AddressBook.InsertMany", 1, 1);
        let other = PeerId::new(4);
        let list = AddressList::new(vec![
            Address::peer(PEER),
            Address::peer(other),
            Address::site(PEER, SiteId::new(2)),
            Address::peer(PEER),
        ]);
        let mut rig = Rig::new();
        let out = rig.run(&insert_many, 0, inputs([list]), 1).unwrap();
        assert_eq!(out.values::<U64Value>(), vec![U64Value(3)]);
        let ctx = rig.handle(0);
        assert_eq!(
            ctx.peers.addresses.lookup(PEER).unwrap(),
            &[Address::peer(PEER), Address::site(PEER, SiteId::new(2))]
        );
        assert_eq!(
            ctx.peers.addresses.lookup(other).unwrap(),
            &[Address::peer(other)]
        );
        assert_eq!(
            ctx.peers.addresses.ref_count(PEER),
            1,
            "one reference per group"
        );
    }

    #[test]
    fn insert_many_reports_how_far_it_got() {
        let config = FrameworkConfig {
            address_book: AddressBookConfig {
                max_peers: 1,
                ..AddressBookConfig::default()
            },
            ..FrameworkConfig::default()
        };
        let insert_many = parse("AddressBook.InsertMany", 1, 0);
        let list = AddressList::new(vec![Address::peer(PEER), Address::peer(PeerId::new(4))]);
        let mut rig = Rig::with_config(&config);
        let err = rig.run(&insert_many, 0, inputs([list]), 0).unwrap_err();
        assert_eq!(err.reason, "address_book.peer_cap");
        assert!(err.detail.contains("1 of 2 peers"), "{}", err.detail);
        assert_eq!(rig.handle(0).peers.addresses.len(), 1);
    }
}
