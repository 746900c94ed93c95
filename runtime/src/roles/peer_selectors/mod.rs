//! Peer selector implementations, one per file, and the seeded sampling rule they share.
//!
//! * [`StaticView`] — a fixed list of peers.
//! * [`Cyclon`] — the Cyclon peer-sampling protocol as a sans-IO state machine.

mod cyclon;
mod static_view;

pub use cyclon::{Cyclon, CyclonConfig, CyclonState, Shuffle};
pub use static_view::StaticView;

use nodeflow_engine::PeerId;

use crate::data::SplitMix64;

/// A draw uniform in `0..n` (`n ≥ 1`) from `rng`.
///
/// Multiply-shift (Lemire) without the rejection step: the bias is below
/// `n / 2⁶⁴`, far under anything a peer view can show.
pub(crate) fn below(rng: &mut SplitMix64, n: usize) -> usize {
    // The product's high word is `< n`, so it fits back in usize.
    ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize
}

/// Moves a uniformly random choice of `min(k, len)` items to the front of
/// `items` (partial Fisher–Yates) and truncates to them, in draw order.
pub(crate) fn choose<T>(items: &mut Vec<T>, k: usize, rng: &mut SplitMix64) {
    let take = k.min(items.len());
    for i in 0..take {
        let j = i + below(rng, items.len() - i);
        items.swap(i, j);
    }
    items.truncate(take);
}

/// The shared `sample` rule: up to `k` distinct peers drawn uniformly from the
/// usable ones among `view` (which holds no duplicates); `NoPeers` if none is usable.
pub(crate) fn sample_usable(
    view: impl Iterator<Item = PeerId>,
    view_len: usize,
    k: usize,
    usable: &dyn Fn(PeerId) -> bool,
    rng: &mut SplitMix64,
) -> Result<Vec<PeerId>, crate::roles::PeerSelectorError> {
    let mut candidates: Vec<PeerId> = view.filter(|&p| usable(p)).collect();
    if candidates.is_empty() {
        return Err(crate::roles::PeerSelectorError::NoPeers { view: view_len });
    }
    choose(&mut candidates, k, rng);
    Ok(candidates)
}
