//! The PeerSelector role: which peers a Node talks to next.
//!
//! A selector keeps a view of known peers and samples from it. Sampling
//! takes a `usable` filter (the Node's peer governor: blocked or down peers
//! are never chosen) and is seeded, so a run is reproducible.

use nodeflow_engine::PeerId;

/// Why a selector refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerSelectorError {
    /// No usable peer is known.
    #[error("no usable peer in a view of {view} peers")]
    NoPeers {
        /// Peers in the view (usable or not).
        view: usize,
    },
    /// The configuration is invalid.
    #[error("invalid peer selector config: {0}")]
    Config(String),
}

/// Chooses peers.
pub trait PeerSelector: Send + std::fmt::Debug + 'static {
    /// The selector's name (`"static"`, `"cyclon"`).
    fn kind(&self) -> &'static str;

    /// Up to `k` distinct usable peers, chosen uniformly at random from the
    /// view (fewer if fewer are usable; none is an error).
    fn sample(
        &mut self,
        k: usize,
        usable: &dyn Fn(PeerId) -> bool,
    ) -> Result<Vec<PeerId>, PeerSelectorError>;

    /// The peers currently in the view, ascending.
    fn view(&self) -> Vec<PeerId>;

    /// Forgets `peer` (it went down or was blocked).
    fn remove(&mut self, peer: PeerId);

    /// The selector's state as words (view, ages, generator), for a Node
    /// snapshot; [`PeerSelector::load_state`] reads it back into a selector
    /// of the same configuration, which then samples as the original would.
    fn save_state(&self) -> Vec<u64>;

    /// Restores what [`PeerSelector::save_state`] wrote; a malformed state
    /// is refused and the selector left unchanged.
    fn load_state(&mut self, words: &[u64]) -> Result<(), PeerSelectorError>;

    /// For a selector that gossips its view (a peer-sampling protocol):
    /// the next exchange to start, as the peer to ask and the `(peer, age)`
    /// entries to offer it. A selector without a protocol (a static view)
    /// keeps the default, which starts none.
    fn start_exchange(&mut self) -> Option<(PeerId, Vec<(PeerId, u32)>)> {
        None
    }

    /// Answers an exchange `from` offered: the entries to send back. The
    /// default (no protocol) answers nothing and keeps nothing.
    fn on_exchange(&mut self, _from: PeerId, _entries: &[(PeerId, u32)]) -> Vec<(PeerId, u32)> {
        Vec::new()
    }

    /// Takes in the answer `from` gave to this selector's exchange.
    fn on_exchange_reply(&mut self, _from: PeerId, _entries: &[(PeerId, u32)]) {}
}
