//! Identifier newtypes shared by every layer of nodeflow.
//!
//! Each id is a plain integer wrapped in its own type so the compiler keeps
//! peers, sites, ops, executions and commands apart. All are `Copy`, ordered,
//! hashable, serde-serializable, and print in a stable human form.
//!
//! Invariants:
//! * An id's integer form ([`PeerId::as_u64`], ...) round-trips through its
//!   `From` conversion; nothing else is encoded in it except where a doc
//!   says so ([`OpRef`] packs a site and an op index).
//! * Counters that mint ids ([`IdCounter`]) never wrap: they saturate, and
//!   callers treat a saturated counter as exhausted.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! int_id {
    ($(#[$meta:meta])* $name:ident($int:ty), $prefix:literal) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name($int);

        impl $name {
            /// Wraps a raw integer.
            pub const fn new(raw: $int) -> Self {
                Self(raw)
            }
        }

        impl From<$int> for $name {
            fn from(raw: $int) -> Self {
                Self(raw)
            }
        }

        impl From<$name> for $int {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

int_id!(
    /// Identity of a peer (one Node) in the network. Prints as 16 hex digits
    /// in [`crate::Address`] strings.
    PeerId(u64),
    "peer:"
);
int_id!(
    /// A graph installed on a Node: the `site/<n>` part of an address.
    SiteId(u32),
    "site:"
);
int_id!(
    /// Index of a bound component in a Node's component table.
    ComponentRef(u32),
    "component:"
);
int_id!(
    /// One run of a graph: every entry into a graph mints a fresh one.
    ExecId(u64),
    "exec:"
);
int_id!(
    /// Handle of an asynchronous op while it is parked.
    CommandId(u64),
    "cmd:"
);
int_id!(
    /// Kind of an event on a Node's typed bus; event-source subscriptions key
    /// on it. Kinds below `EventKind::USER_MIN` are nodeflow's own.
    EventKind(u32),
    "event:"
);
int_id!(
    /// Restart generation of a Node; bumped on every restore.
    Incarnation(u32),
    "incarnation:"
);

impl PeerId {
    /// The raw integer.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl SiteId {
    /// The raw integer.
    pub const fn as_u32(self) -> u32 {
        self.0
    }
}

impl ComponentRef {
    /// The raw integer, which is also the index in the component table.
    pub const fn as_u32(self) -> u32 {
        self.0
    }

    /// The table index.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl ExecId {
    /// The raw integer.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl CommandId {
    /// The raw integer.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl EventKind {
    /// First kind available to user-defined events.
    pub const USER_MIN: u32 = 0x0001_0000;

    /// The raw integer.
    pub const fn as_u32(self) -> u32 {
        self.0
    }
}

impl Incarnation {
    /// The raw integer.
    pub const fn as_u32(self) -> u32 {
        self.0
    }

    /// The next generation (saturating).
    pub const fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

/// A (peer, site) pair: the unit the RTT tracker keeps an estimate for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeSiteId {
    /// The remote peer.
    pub peer: PeerId,
    /// The graph site on that peer.
    pub site: SiteId,
}

impl NodeSiteId {
    /// Pairs a peer with one of its sites.
    pub const fn new(peer: PeerId, site: SiteId) -> Self {
        Self { peer, site }
    }
}

impl fmt::Display for NodeSiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.peer, self.site)
    }
}

/// One op of one installed graph: a site plus the op's index in that graph.
///
/// Packs into a `u64` (`site << 32 | index`) for latch keys and wire use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpRef {
    /// The graph the op belongs to.
    pub site: SiteId,
    /// The op's position in that graph's op list.
    pub index: u32,
}

impl OpRef {
    /// Names op `index` of graph `site`.
    pub const fn new(site: SiteId, index: u32) -> Self {
        Self { site, index }
    }

    /// The packed form `site << 32 | index`.
    pub const fn as_u64(self) -> u64 {
        ((self.site.as_u32() as u64) << 32) | self.index as u64
    }

    /// Unpacks [`OpRef::as_u64`].
    pub const fn from_u64(packed: u64) -> Self {
        Self {
            site: SiteId::new((packed >> 32) as u32),
            index: packed as u32,
        }
    }
}

impl fmt::Display for OpRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/op:{}", self.site, self.index)
    }
}

/// A monotonic id source that starts at a chosen value and saturates at
/// `u64::MAX` instead of wrapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdCounter {
    next: u64,
}

impl IdCounter {
    /// A counter whose first id is `first`.
    pub const fn starting_at(first: u64) -> Self {
        Self { next: first }
    }

    /// Returns the next id, or `None` once the counter is exhausted.
    pub fn mint(&mut self) -> Option<u64> {
        if self.next == u64::MAX {
            return None;
        }
        let id = self.next;
        self.next += 1;
        Some(id)
    }

    /// The id the next call to [`IdCounter::mint`] would return.
    pub const fn peek(&self) -> u64 {
        self.next
    }

    /// Moves the counter forward so that the next id is at least `next`
    /// (never backward).
    pub fn advance_to(&mut self, next: u64) {
        self.next = self.next.max(next);
    }
}

impl Default for IdCounter {
    fn default() -> Self {
        Self::starting_at(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_ref_packs_and_unpacks() {
        let op = OpRef::new(SiteId::new(7), 0xdead_beef);
        assert_eq!(op.as_u64(), (7u64 << 32) | 0xdead_beef);
        assert_eq!(OpRef::from_u64(op.as_u64()), op);
    }

    #[test]
    fn counter_starts_where_told_and_saturates() {
        let mut c = IdCounter::starting_at(1);
        assert_eq!(c.mint(), Some(1));
        assert_eq!(c.mint(), Some(2));
        let mut end = IdCounter::starting_at(u64::MAX - 1);
        assert_eq!(end.mint(), Some(u64::MAX - 1));
        assert_eq!(end.mint(), None);
        assert_eq!(end.mint(), None);
    }

    #[test]
    fn ids_serialize_as_bare_integers() {
        let json = serde_json::to_string(&PeerId::new(42)).unwrap();
        assert_eq!(json, "42");
        let back: PeerId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, PeerId::new(42));
    }

    #[test]
    fn incarnation_next_saturates() {
        assert_eq!(
            Incarnation::new(u32::MAX).next(),
            Incarnation::new(u32::MAX)
        );
        assert_eq!(Incarnation::new(1).next(), Incarnation::new(2));
    }
}
