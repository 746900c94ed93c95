//! [`StaticView`]: a peer selector over a fixed list of peers.

use nodeflow_engine::PeerId;

use super::sample_usable;
use crate::data::SplitMix64;
use crate::roles::{PeerSelector, PeerSelectorError};

/// A fixed view: the peers it was built with, less those removed.
///
/// `sample` draws up to `k` distinct usable peers uniformly at random
/// (partial Fisher–Yates driven by a [`SplitMix64`] generator seeded at
/// construction), so the same peers, seed and call sequence give the same
/// samples. The view is kept ascending and without duplicates; it never
/// grows after construction.
#[derive(Clone, Debug)]
pub struct StaticView {
    peers: Vec<PeerId>,
    rng: SplitMix64,
}

impl StaticView {
    /// A view of `peers` (duplicates collapse), sampling from `seed`.
    pub fn new(peers: impl IntoIterator<Item = PeerId>, seed: u64) -> Self {
        let mut peers: Vec<PeerId> = peers.into_iter().collect();
        peers.sort_unstable();
        peers.dedup();
        Self {
            peers,
            rng: SplitMix64::new(seed),
        }
    }

    /// Peers in the view.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

impl PeerSelector for StaticView {
    fn kind(&self) -> &'static str {
        "static"
    }

    fn save_state(&self) -> Vec<u64> {
        std::iter::once(self.rng.state())
            .chain(self.peers.iter().map(|p| p.as_u64()))
            .collect()
    }

    fn load_state(&mut self, words: &[u64]) -> Result<(), PeerSelectorError> {
        let Some((&rng, peers)) = words.split_first() else {
            return Err(PeerSelectorError::Config(
                "a static view's state starts with its generator".into(),
            ));
        };
        let mut view: Vec<PeerId> = peers.iter().map(|&p| PeerId::new(p)).collect();
        view.sort_unstable();
        view.dedup();
        self.peers = view;
        self.rng = SplitMix64::new(rng);
        Ok(())
    }

    fn sample(
        &mut self,
        k: usize,
        usable: &dyn Fn(PeerId) -> bool,
    ) -> Result<Vec<PeerId>, PeerSelectorError> {
        sample_usable(
            self.peers.iter().copied(),
            self.peers.len(),
            k,
            usable,
            &mut self.rng,
        )
    }

    fn view(&self) -> Vec<PeerId> {
        self.peers.clone()
    }

    fn remove(&mut self, peer: PeerId) {
        if let Ok(at) = self.peers.binary_search(&peer) {
            self.peers.remove(at);
        }
    }
}
