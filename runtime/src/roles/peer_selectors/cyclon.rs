//! [`Cyclon`]: the Cyclon peer-sampling protocol (Voulgaris, Gavidia and van Steen, 2005) as a sans-IO state machine.
//!
//! The machine owns no socket, thread or clock. The host calls
//! [`Cyclon::start_shuffle`] once per shuffle period and delivers the
//! returned [`Shuffle`] to its target; the target answers through
//! [`Cyclon::on_shuffle`], and the initiator merges that answer with
//! [`Cyclon::on_reply`]. A round is "every live node starts one shuffle".

use nodeflow_engine::PeerId;

use super::{below, choose, sample_usable};
use crate::data::SplitMix64;
use crate::roles::{PeerSelector, PeerSelectorError};

/// Cyclon's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CyclonConfig {
    /// The most entries a view holds (Cyclon's cache size `c`); at least 1.
    pub view_size: usize,
    /// Entries exchanged per shuffle (Cyclon's `l`); `1 ≤ shuffle_len ≤ view_size`.
    pub shuffle_len: usize,
    /// An entry older than this is dropped at the next `start_shuffle`, and a
    /// received entry older than this is discarded; bounds how long a peer
    /// that never answers stays known.
    pub max_age: u32,
}

impl Default for CyclonConfig {
    /// `view_size` 8, `shuffle_len` 4, `max_age` 20.
    fn default() -> Self {
        Self {
            view_size: 8,
            shuffle_len: 4,
            max_age: 20,
        }
    }
}

/// A shuffle offer for the host to deliver: `entries` go to peer `to`,
/// which answers through its own [`Cyclon::on_shuffle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shuffle {
    /// The peer offered the entries (the oldest entry of the initiator's view).
    pub to: PeerId,
    /// `(peer, age)` entries; the last is the initiator itself at age 0.
    pub entries: Vec<(PeerId, u32)>,
}

/// What a [`Cyclon`] snapshot holds: the view and the generator state.
///
/// An offer awaiting its reply is not part of the state; a reply that
/// arrives after a restore is merged into empty slots only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CyclonState {
    /// The view's `(peer, age)` entries, in the machine's internal order.
    pub view: Vec<(PeerId, u32)>,
    /// The [`SplitMix64`] state.
    pub rng: u64,
}

/// The Cyclon protocol for one peer.
///
/// Promises, whatever the input:
/// * the view holds at most `view_size` entries, never the peer itself, and
///   never two entries for one peer;
/// * received lists are read only up to their first `shuffle_len` entries,
///   so a peer cannot flood the merge;
/// * everything random (the offered and answered subsets, ties among the
///   oldest entries, `sample`) comes from one [`SplitMix64`] seeded at
///   construction, so the same seed and call sequence give the same views;
/// * `sample` returns only peers `usable` accepts, distinct, uniformly drawn
///   from the view.
///
/// Merge rule (Cyclon's): entries pointing to this peer and entries already in
/// the view are discarded; the rest first fill empty slots, then replace
/// entries this peer sent in the same exchange; what finds no place is
/// dropped. Only the latest offer is remembered for its reply; a reply from
/// any other peer fills empty slots only. One addition to the paper's rule:
/// a target that answers is put back in a slot its answer left empty, so a
/// sparse young view (a ring bootstrap) never loses its last link to an
/// exchange that brought nothing.
#[derive(Clone, Debug)]
pub struct Cyclon {
    me: PeerId,
    config: CyclonConfig,
    view: Vec<(PeerId, u32)>,
    rng: SplitMix64,
    /// The target of the latest offer and the peers offered to it (self excluded).
    pending: Option<(PeerId, Vec<PeerId>)>,
}

impl Cyclon {
    /// Peer `me` knowing `bootstrap` at age 0 (itself and duplicates dropped;
    /// beyond `view_size`, the first ones kept), sampling from `seed`.
    ///
    /// Refuses (`Config`) a `view_size` of 0 or a `shuffle_len` outside
    /// `1..=view_size`.
    pub fn new(
        me: PeerId,
        bootstrap: impl IntoIterator<Item = PeerId>,
        config: CyclonConfig,
        seed: u64,
    ) -> Result<Self, PeerSelectorError> {
        if config.view_size == 0 {
            return Err(PeerSelectorError::Config(
                "cyclon view_size must be at least 1".into(),
            ));
        }
        if config.shuffle_len == 0 || config.shuffle_len > config.view_size {
            return Err(PeerSelectorError::Config(format!(
                "cyclon shuffle_len must be in 1..={} (view_size), found {}",
                config.view_size, config.shuffle_len
            )));
        }
        let mut cyclon = Self {
            me,
            config,
            view: Vec::with_capacity(config.view_size),
            rng: SplitMix64::new(seed),
            pending: None,
        };
        for peer in bootstrap {
            if cyclon.view.len() == config.view_size {
                break;
            }
            if peer != me && !cyclon.contains(peer) {
                cyclon.view.push((peer, 0));
            }
        }
        Ok(cyclon)
    }

    /// This peer.
    pub fn me(&self) -> PeerId {
        self.me
    }

    /// The parameters.
    pub fn config(&self) -> CyclonConfig {
        self.config
    }

    /// The view's `(peer, age)` entries, in internal order.
    pub fn entries(&self) -> &[(PeerId, u32)] {
        &self.view
    }

    /// Starts a shuffle: ages every entry by one, drops entries older than
    /// `max_age`, takes the oldest entry Q out of the view (ties drawn at
    /// random) and offers Q up to `shuffle_len − 1` random entries of the rest
    /// plus `(me, 0)`. `None` if the view is empty after aging.
    ///
    /// Q stays out of the view unless its answer or a later exchange brings
    /// it back, so a peer that never answers is forgotten by whoever tries it.
    pub fn start_shuffle(&mut self) -> Option<Shuffle> {
        let max_age = self.config.max_age;
        for entry in &mut self.view {
            entry.1 = entry.1.saturating_add(1);
        }
        self.view.retain(|&(_, age)| age <= max_age);
        let oldest = self.view.iter().map(|&(_, age)| age).max()?;
        let tied: Vec<usize> = (0..self.view.len())
            .filter(|&i| self.view[i].1 == oldest)
            .collect();
        // `tied` is non-empty: the maximum is attained somewhere.
        let at = tied[below(&mut self.rng, tied.len())];
        let (to, _) = self.view.remove(at);
        let mut entries = self.view.clone();
        choose(&mut entries, self.config.shuffle_len - 1, &mut self.rng);
        self.pending = Some((to, entries.iter().map(|&(p, _)| p).collect()));
        entries.push((self.me, 0));
        Some(Shuffle { to, entries })
    }

    /// Answers `from`'s offer: up to `shuffle_len` random entries of this
    /// view (none pointing to `from`), then merges the offer, letting it
    /// replace the entries just answered with. An offer from this peer
    /// itself is ignored and answered with nothing.
    pub fn on_shuffle(&mut self, from: PeerId, entries: &[(PeerId, u32)]) -> Vec<(PeerId, u32)> {
        if from == self.me {
            return Vec::new();
        }
        let mut reply: Vec<(PeerId, u32)> = self
            .view
            .iter()
            .copied()
            .filter(|&(p, _)| p != from)
            .collect();
        choose(&mut reply, self.config.shuffle_len, &mut self.rng);
        let sent: Vec<PeerId> = reply.iter().map(|&(p, _)| p).collect();
        self.merge(entries, &sent);
        reply
    }

    /// Merges `from`'s answer to the latest offer, letting it replace the
    /// entries that offer sent; if a slot is still empty, `from` itself
    /// (alive, since it answered) goes back in at age 0. An answer from any
    /// other peer than the latest offer's target fills empty slots only.
    pub fn on_reply(&mut self, from: PeerId, entries: &[(PeerId, u32)]) {
        let (answered, sent) = match self.pending.take() {
            Some((to, sent)) if to == from => (true, sent),
            other => {
                self.pending = other;
                (false, Vec::new())
            }
        };
        self.merge(entries, &sent);
        // The target answered, so it is alive: if the answer left a slot
        // empty, it takes it back at age 0. In a full view (the steady
        // state) this never applies; in a young, sparse one it keeps a
        // peer whose partner had nothing to give from losing its only link.
        if answered
            && from != self.me
            && self.view.len() < self.config.view_size
            && !self.contains(from)
        {
            self.view.push((from, 0));
        }
    }

    /// The state a snapshot keeps: the view and the generator.
    pub fn state(&self) -> CyclonState {
        CyclonState {
            view: self.view.clone(),
            rng: self.rng.state(),
        }
    }

    /// Restores a [`Self::state`]; the pending offer is forgotten.
    ///
    /// Refuses (`Config`, leaving `self` unchanged) a view larger than
    /// `view_size`, one holding this peer, or one naming a peer twice.
    pub fn restore(&mut self, state: CyclonState) -> Result<(), PeerSelectorError> {
        if state.view.len() > self.config.view_size {
            return Err(PeerSelectorError::Config(format!(
                "cyclon state holds {} entries; the view holds at most {}",
                state.view.len(),
                self.config.view_size
            )));
        }
        let mut seen: Vec<PeerId> = state.view.iter().map(|&(p, _)| p).collect();
        if seen.contains(&self.me) {
            return Err(PeerSelectorError::Config(format!(
                "cyclon state names this peer ({}) in its own view",
                self.me
            )));
        }
        seen.sort_unstable();
        if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
            return Err(PeerSelectorError::Config(format!(
                "cyclon state names {} twice",
                w[0]
            )));
        }
        self.view = state.view;
        self.rng = SplitMix64::new(state.rng);
        self.pending = None;
        Ok(())
    }

    fn contains(&self, peer: PeerId) -> bool {
        self.view.iter().any(|&(p, _)| p == peer)
    }

    /// Cyclon's merge: see the type's documentation.
    fn merge(&mut self, received: &[(PeerId, u32)], sent: &[PeerId]) {
        let mut replaceable = sent.iter().copied();
        for &(peer, age) in received.iter().take(self.config.shuffle_len) {
            if peer == self.me || age > self.config.max_age || self.contains(peer) {
                continue;
            }
            if self.view.len() < self.config.view_size {
                self.view.push((peer, age));
                continue;
            }
            // Replace the next sent entry still in the view, if any.
            let slot = replaceable
                .by_ref()
                .find_map(|s| self.view.iter().position(|&(p, _)| p == s));
            match slot {
                Some(at) => self.view[at] = (peer, age),
                None => break,
            }
        }
    }
}

impl PeerSelector for Cyclon {
    fn kind(&self) -> &'static str {
        "cyclon"
    }

    fn start_exchange(&mut self) -> Option<(PeerId, Vec<(PeerId, u32)>)> {
        self.start_shuffle().map(|s| (s.to, s.entries))
    }

    fn on_exchange(&mut self, from: PeerId, entries: &[(PeerId, u32)]) -> Vec<(PeerId, u32)> {
        self.on_shuffle(from, entries)
    }

    fn on_exchange_reply(&mut self, from: PeerId, entries: &[(PeerId, u32)]) {
        self.on_reply(from, entries);
    }

    fn save_state(&self) -> Vec<u64> {
        let state = self.state();
        std::iter::once(state.rng)
            .chain(
                state
                    .view
                    .iter()
                    .flat_map(|&(p, age)| [p.as_u64(), u64::from(age)]),
            )
            .collect()
    }

    fn load_state(&mut self, words: &[u64]) -> Result<(), PeerSelectorError> {
        let Some((&rng, pairs)) = words.split_first().filter(|(_, p)| p.len() % 2 == 0) else {
            return Err(PeerSelectorError::Config(
                "a Cyclon state is a generator word and (peer, age) pairs".into(),
            ));
        };
        let view = pairs
            .chunks_exact(2)
            .map(|c| (PeerId::new(c[0]), u32::try_from(c[1]).unwrap_or(u32::MAX)))
            .collect();
        self.restore(CyclonState { view, rng })
    }

    fn sample(
        &mut self,
        k: usize,
        usable: &dyn Fn(PeerId) -> bool,
    ) -> Result<Vec<PeerId>, PeerSelectorError> {
        sample_usable(
            self.view.iter().map(|&(p, _)| p),
            self.view.len(),
            k,
            usable,
            &mut self.rng,
        )
    }

    fn view(&self) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> = self.view.iter().map(|&(p, _)| p).collect();
        peers.sort_unstable();
        peers
    }

    fn remove(&mut self, peer: PeerId) {
        self.view.retain(|&(p, _)| p != peer);
        if let Some((_, sent)) = &mut self.pending {
            sent.retain(|&p| p != peer);
        }
    }
}
