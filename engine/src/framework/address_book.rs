//! `AddressBook`: the ref-counted registry of known addresses per peer,
//! read by Send ops and by the resource handle's `local_addresses`.
//!
//! Invariants:
//! * Each peer's addresses keep their first-insertion order and hold no
//!   duplicates: inserting an address the peer already has neither repeats
//!   nor moves it.
//! * Every successful [`AddressBook::insert`] or
//!   [`AddressBook::insert_many`] takes one reference on the peer's entry;
//!   every [`AddressBook::release`] drops one. The entry (with all its
//!   addresses) is removed when its count reaches 0. Counts saturate.
//! * At most `max_peers` entries and `max_addresses_per_peer` addresses per
//!   entry. An insert that would exceed either is refused whole with a
//!   typed [`AddressBookError`] (nothing changes, no reference is taken)
//!   and counted in [`AddressBookStats`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::framework::Address;
use crate::ids::PeerId;

/// Peer cap a default [`AddressBookConfig`] uses.
pub const ADDRESS_BOOK_DEFAULT_MAX_PEERS: usize = 4_096;
/// Per-peer address cap a default [`AddressBookConfig`] uses.
pub const ADDRESS_BOOK_DEFAULT_MAX_ADDRESSES_PER_PEER: usize = 16;

/// Caps for an [`AddressBook`]; [`Default`] gives 4096 peers, 16 addresses
/// each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressBookConfig {
    /// How many peers the book holds at once.
    pub max_peers: usize,
    /// How many distinct addresses one peer may have.
    pub max_addresses_per_peer: usize,
}

/// Why an address-book operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressBookError {
    /// The peer is new and the book already holds `cap` peers.
    #[error("cannot add {peer}: address book is full ({cap} peers); release other peers or raise the cap")]
    PeerCapReached {
        /// The peer that was not added.
        peer: PeerId,
        /// The peer cap.
        cap: usize,
    },
    /// The insert would give the peer more than `cap` distinct addresses.
    #[error("cannot add addresses to {peer}: it would exceed {cap} addresses per peer; send fewer or raise the cap")]
    AddressCapReached {
        /// The peer whose entry is full.
        peer: PeerId,
        /// The per-peer address cap.
        cap: usize,
    },
    /// A release for a peer with no entry.
    #[error("cannot release {peer}: it has no address-book entry; release only what was inserted")]
    UnknownPeer {
        /// The peer named in the release.
        peer: PeerId,
    },
}

/// Counters an [`AddressBook`] keeps over its lifetime (all saturating).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressBookStats {
    /// Successful inserts (single or batch).
    pub inserts: u64,
    /// Successful releases.
    pub releases: u64,
    /// Entries removed because their count reached 0.
    pub removed: u64,
    /// Inserts refused with [`AddressBookError::PeerCapReached`].
    pub peer_cap_refusals: u64,
    /// Inserts refused with [`AddressBookError::AddressCapReached`].
    pub address_cap_refusals: u64,
    /// Releases refused with [`AddressBookError::UnknownPeer`].
    pub unknown_releases: u64,
}

/// `PeerId → (ordered addresses, ref count)`, capped.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AddressBook {
    config: AddressBookConfig,
    entries: BTreeMap<PeerId, Entry>,
    stats: AddressBookStats,
}

impl Default for AddressBookConfig {
    fn default() -> Self {
        Self {
            max_peers: ADDRESS_BOOK_DEFAULT_MAX_PEERS,
            max_addresses_per_peer: ADDRESS_BOOK_DEFAULT_MAX_ADDRESSES_PER_PEER,
        }
    }
}

impl AddressBook {
    /// An empty book with the given caps.
    pub fn new(config: AddressBookConfig) -> Self {
        Self {
            config,
            entries: BTreeMap::new(),
            stats: AddressBookStats::default(),
        }
    }

    /// Adds `address` to `peer` (unless already there) and takes one
    /// reference on the entry.
    pub fn insert(&mut self, peer: PeerId, address: Address) -> Result<(), AddressBookError> {
        self.insert_many(peer, [address]).map(|_| ())
    }

    /// Adds every address not already present, in order, and takes one
    /// reference on the entry for the whole batch (even an empty one).
    /// All-or-nothing: if the result would exceed a cap, nothing changes.
    /// Returns how many addresses were new.
    pub fn insert_many(
        &mut self,
        peer: PeerId,
        addresses: impl IntoIterator<Item = Address>,
    ) -> Result<usize, AddressBookError> {
        let existing = self.entries.get(&peer);
        if existing.is_none() && self.entries.len() >= self.config.max_peers {
            self.stats.peer_cap_refusals = self.stats.peer_cap_refusals.saturating_add(1);
            return Err(AddressBookError::PeerCapReached {
                peer,
                cap: self.config.max_peers,
            });
        }
        let known: &[Address] = existing.map_or(&[], |entry| &entry.addresses);
        let room = self
            .config
            .max_addresses_per_peer
            .saturating_sub(known.len());
        let mut fresh: Vec<Address> = Vec::new();
        for address in addresses {
            if known.contains(&address) || fresh.contains(&address) {
                continue;
            }
            if fresh.len() >= room {
                self.stats.address_cap_refusals = self.stats.address_cap_refusals.saturating_add(1);
                return Err(AddressBookError::AddressCapReached {
                    peer,
                    cap: self.config.max_addresses_per_peer,
                });
            }
            fresh.push(address);
        }
        let added = fresh.len();
        let entry = self.entries.entry(peer).or_default();
        entry.addresses.extend(fresh);
        entry.ref_count = entry.ref_count.saturating_add(1);
        self.stats.inserts = self.stats.inserts.saturating_add(1);
        Ok(added)
    }

    /// The addresses known for `peer`, in insertion order.
    pub fn lookup(&self, peer: PeerId) -> Option<&[Address]> {
        self.entries
            .get(&peer)
            .map(|entry| entry.addresses.as_slice())
    }

    /// Drops one reference on `peer`'s entry, removing it at 0.
    pub fn release(&mut self, peer: PeerId) -> Result<(), AddressBookError> {
        let Some(entry) = self.entries.get_mut(&peer) else {
            self.stats.unknown_releases = self.stats.unknown_releases.saturating_add(1);
            return Err(AddressBookError::UnknownPeer { peer });
        };
        entry.ref_count = entry.ref_count.saturating_sub(1);
        if entry.ref_count == 0 {
            self.entries.remove(&peer);
            self.stats.removed = self.stats.removed.saturating_add(1);
        }
        self.stats.releases = self.stats.releases.saturating_add(1);
        Ok(())
    }

    /// References held on `peer`'s entry (0 if it has none).
    pub fn ref_count(&self, peer: PeerId) -> u64 {
        self.entries.get(&peer).map_or(0, |entry| entry.ref_count)
    }

    /// Number of peers with an entry.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the book has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The caps in force.
    pub fn config(&self) -> &AddressBookConfig {
        &self.config
    }

    /// Lifetime counters.
    pub fn stats(&self) -> AddressBookStats {
        self.stats
    }
}

/// One peer's addresses and reference count.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    addresses: Vec<Address>,
    ref_count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SiteId;

    const P: PeerId = PeerId::new(1);

    fn addr(site: u32) -> Address {
        Address::site(P, SiteId::new(site))
    }

    fn book(max_peers: usize, max_addresses_per_peer: usize) -> AddressBook {
        AddressBook::new(AddressBookConfig {
            max_peers,
            max_addresses_per_peer,
        })
    }

    #[test]
    fn insert_keeps_order_and_dedups_without_reordering() {
        let mut b = AddressBook::default();
        b.insert(P, addr(1)).unwrap();
        b.insert(P, addr(2)).unwrap();
        b.insert(P, addr(1)).unwrap();
        assert_eq!(b.lookup(P).unwrap(), &[addr(1), addr(2)]);
        assert_eq!(b.ref_count(P), 3, "every insert takes a reference");
    }

    #[test]
    fn insert_many_counts_only_new_addresses() {
        let mut b = AddressBook::default();
        b.insert(P, addr(2)).unwrap();
        let added = b
            .insert_many(P, [addr(1), addr(2), addr(3), addr(1)])
            .unwrap();
        assert_eq!(added, 2);
        assert_eq!(b.lookup(P).unwrap(), &[addr(2), addr(1), addr(3)]);
        assert_eq!(b.ref_count(P), 2, "one reference per batch");
    }

    #[test]
    fn empty_batch_still_takes_a_reference() {
        let mut b = AddressBook::default();
        assert_eq!(b.insert_many(P, []), Ok(0));
        assert_eq!(b.lookup(P), Some(&[][..]));
        assert_eq!(b.ref_count(P), 1);
    }

    #[test]
    fn release_removes_entry_at_zero() {
        let mut b = AddressBook::default();
        b.insert(P, addr(1)).unwrap();
        b.insert(P, addr(1)).unwrap();
        b.release(P).unwrap();
        assert_eq!(b.ref_count(P), 1);
        assert!(b.lookup(P).is_some());
        b.release(P).unwrap();
        assert_eq!(b.lookup(P), None);
        assert!(b.is_empty());
        assert_eq!(b.release(P), Err(AddressBookError::UnknownPeer { peer: P }));
        let st = b.stats();
        assert_eq!((st.releases, st.removed, st.unknown_releases), (2, 1, 1));
    }

    #[test]
    fn peer_cap_refuses_new_peers_only() {
        let mut b = book(1, 4);
        let q = PeerId::new(2);
        b.insert(P, addr(1)).unwrap();
        assert_eq!(
            b.insert(q, addr(1)),
            Err(AddressBookError::PeerCapReached { peer: q, cap: 1 })
        );
        assert!(b.insert(P, addr(2)).is_ok(), "existing peer still grows");
        assert_eq!(b.lookup(q), None);
        assert_eq!(b.stats().peer_cap_refusals, 1);
    }

    #[test]
    fn address_cap_is_all_or_nothing() {
        let mut b = book(4, 3);
        b.insert(P, addr(1)).unwrap();
        let err = b.insert_many(P, [addr(2), addr(3), addr(4)]);
        assert_eq!(
            err,
            Err(AddressBookError::AddressCapReached { peer: P, cap: 3 })
        );
        assert_eq!(b.lookup(P).unwrap(), &[addr(1)], "nothing applied");
        assert_eq!(b.ref_count(P), 1, "no reference taken");
        assert_eq!(b.insert_many(P, [addr(1), addr(2), addr(3)]), Ok(2));
        assert!(b.insert(P, addr(3)).is_ok(), "duplicate fits at cap");
        assert!(b.insert(P, addr(9)).is_err());
        assert_eq!(b.stats().address_cap_refusals, 2);
    }

    #[test]
    fn refused_new_peer_leaves_no_entry() {
        let mut b = book(4, 0);
        assert!(b.insert(P, addr(1)).is_err());
        assert_eq!(b.len(), 0);
        assert_eq!(b.insert_many(P, []), Ok(0), "zero addresses fit a zero cap");
    }

    #[test]
    fn ref_count_saturates() {
        let mut b = AddressBook::default();
        b.insert(P, addr(1)).unwrap();
        if let Some(e) = b.entries.get_mut(&P) {
            e.ref_count = u64::MAX;
        }
        b.insert(P, addr(1)).unwrap();
        assert_eq!(b.ref_count(P), u64::MAX);
    }

    #[test]
    fn serde_round_trip() {
        let mut b = AddressBook::default();
        b.insert_many(P, [addr(3), addr(1)]).unwrap();
        let back: AddressBook = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert_eq!(back.lookup(P).unwrap(), &[addr(3), addr(1)]);
        assert_eq!(back.ref_count(P), 1);
        assert_eq!(back.config(), b.config());
    }
}
