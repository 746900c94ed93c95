//! Who talks to whom in a serverless job: ring, random k-regular, small-world (Watts–Strogatz) and full topologies over `n` Nodes, and the Metropolis–Hastings mixing weights D-PSGD averages with.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use super::spec::SpecError;
use crate::data::{shuffle_order, SplitMix64};

/// A communication graph over the Nodes `0..n` (undirected, no self-loops).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Topology {
    /// Each Node with its two ring neighbours.
    Ring,
    /// A random k-regular graph: a circulant graph (each Node with the
    /// `k/2` next on a seeded random cycle, and the opposite one when `k`
    /// is odd) — connected, every degree exactly `k`.
    Regular(usize),
    /// Watts–Strogatz: a ring lattice of degree `k` whose edges are each
    /// rewired to a random Node with probability `p`.
    SmallWorld(usize, f64),
    /// Everyone with everyone.
    Full,
}

/// Why a topology cannot be built for this many Nodes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("topology {topology} over {n} Nodes: {why}")]
pub struct TopologyError {
    /// The topology.
    pub topology: String,
    /// The Node count.
    pub n: usize,
    /// What is wrong.
    pub why: String,
}

fn uniform(rng: &mut SplitMix64, bound: usize) -> usize {
    ((u128::from(rng.next_u64()) * bound as u128) >> 64) as usize
}

impl Topology {
    /// The neighbours of every Node, each list ascending; the same seed gives the same graph.
    pub fn neighbours(&self, n: usize, seed: u64) -> Result<Vec<Vec<usize>>, TopologyError> {
        let error = |why: &str| TopologyError {
            topology: self.to_string(),
            n,
            why: why.to_owned(),
        };
        if n < 2 {
            return Err(error("needs at least two Nodes"));
        }
        let mut sets = vec![BTreeSet::new(); n];
        let link = |a: usize, b: usize, sets: &mut Vec<BTreeSet<usize>>| {
            if a != b {
                sets[a].insert(b);
                sets[b].insert(a);
            }
        };
        match *self {
            Self::Ring => {
                for i in 0..n {
                    link(i, (i + 1) % n, &mut sets);
                }
            }
            Self::Full => {
                for i in 0..n {
                    for j in i + 1..n {
                        link(i, j, &mut sets);
                    }
                }
            }
            Self::Regular(k) => {
                if k == 0 || k >= n {
                    return Err(error("k must be in 1..n"));
                }
                if k % 2 == 1 && n % 2 == 1 {
                    return Err(error("an odd k needs an even number of Nodes"));
                }
                let cycle = shuffle_order(n, seed);
                for i in 0..n {
                    for d in 1..=k / 2 {
                        link(cycle[i], cycle[(i + d) % n], &mut sets);
                    }
                    if k % 2 == 1 {
                        link(cycle[i], cycle[(i + n / 2) % n], &mut sets);
                    }
                }
            }
            Self::SmallWorld(k, p) => {
                if k < 2 || k % 2 == 1 || k >= n {
                    return Err(error("k must be even, at least 2 and below n"));
                }
                if !(0.0..=1.0).contains(&p) {
                    return Err(error("p must be in [0, 1]"));
                }
                for i in 0..n {
                    for d in 1..=k / 2 {
                        link(i, (i + d) % n, &mut sets);
                    }
                }
                let mut rng = SplitMix64::new(seed);
                for d in 1..=k / 2 {
                    for i in 0..n {
                        let j = (i + d) % n;
                        let draw = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                        if draw >= p || sets[i].len() >= n - 1 || sets[j].len() <= 1 {
                            continue;
                        }
                        let target = loop {
                            let t = uniform(&mut rng, n);
                            if t != i && !sets[i].contains(&t) {
                                break t;
                            }
                        };
                        sets[i].remove(&j);
                        sets[j].remove(&i);
                        link(i, target, &mut sets);
                    }
                }
            }
        }
        Ok(sets.into_iter().map(|s| s.into_iter().collect()).collect())
    }
}

/// Metropolis–Hastings weights of `neighbours`: for Node `i`, the weight
/// `1 / (1 + max(dᵢ, dⱼ))` of each neighbour `j` in order, and its own
/// weight `1 − Σ`. The matrix is symmetric and doubly stochastic.
pub fn metropolis_hastings(neighbours: &[Vec<usize>]) -> Vec<(f64, Vec<f64>)> {
    neighbours
        .iter()
        .map(|mine| {
            let weights: Vec<f64> = mine
                .iter()
                .map(|&j| 1.0 / (1.0 + mine.len().max(neighbours[j].len()) as f64))
                .collect();
            (1.0 - weights.iter().sum::<f64>(), weights)
        })
        .collect()
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ring => f.write_str("ring"),
            Self::Regular(k) => write!(f, "regular:{k}"),
            Self::SmallWorld(k, p) => write!(f, "smallworld:{k}:{p}"),
            Self::Full => f.write_str("full"),
        }
    }
}

impl FromStr for Topology {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let bad = || SpecError {
            what: "topology",
            given: s.to_owned(),
            why: "use `ring`, `regular:K`, `smallworld:K:P` or `full`".into(),
        };
        match s {
            "ring" => return Ok(Self::Ring),
            "full" => return Ok(Self::Full),
            _ => {}
        }
        if let Some(k) = s.strip_prefix("regular:") {
            return k.parse().map(Self::Regular).map_err(|_| bad());
        }
        if let Some(rest) = s.strip_prefix("smallworld:") {
            let (k, p) = rest.split_once(':').ok_or_else(bad)?;
            return Ok(Self::SmallWorld(
                k.parse().map_err(|_| bad())?,
                p.parse().map_err(|_| bad())?,
            ));
        }
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connected(nb: &[Vec<usize>]) -> bool {
        let mut seen = vec![false; nb.len()];
        let mut stack = vec![0];
        seen[0] = true;
        while let Some(i) = stack.pop() {
            for &j in &nb[i] {
                if !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
        seen.iter().all(|&s| s)
    }

    fn symmetric(nb: &[Vec<usize>]) -> bool {
        nb.iter()
            .enumerate()
            .all(|(i, mine)| mine.iter().all(|&j| j != i && nb[j].contains(&i)))
    }

    #[test]
    fn every_topology_is_symmetric_connected_and_has_its_degrees() {
        let ring = Topology::Ring.neighbours(10, 0).unwrap();
        assert!(ring.iter().all(|n| n.len() == 2) && symmetric(&ring) && connected(&ring));
        assert_eq!(ring[0], vec![1, 9]);
        let full = Topology::Full.neighbours(6, 0).unwrap();
        assert!(full.iter().all(|n| n.len() == 5));
        for (k, n) in [(4, 20), (3, 10), (6, 100)] {
            let g = Topology::Regular(k).neighbours(n, 7).unwrap();
            assert!(g.iter().all(|x| x.len() == k), "k={k} n={n}");
            assert!(symmetric(&g) && connected(&g));
            assert_eq!(g, Topology::Regular(k).neighbours(n, 7).unwrap());
            assert_ne!(g, Topology::Regular(k).neighbours(n, 8).unwrap());
        }
        let sw = Topology::SmallWorld(4, 0.2).neighbours(100, 3).unwrap();
        assert!(symmetric(&sw));
        let edges: usize = sw.iter().map(Vec::len).sum::<usize>() / 2;
        assert_eq!(edges, 200, "rewiring keeps the edge count");
        let lattice = Topology::SmallWorld(4, 0.0).neighbours(100, 3).unwrap();
        assert_ne!(sw, lattice, "p = 0.2 rewires some edges");
    }

    #[test]
    fn impossible_topologies_are_refused() {
        assert!(Topology::Regular(3).neighbours(9, 0).is_err());
        assert!(Topology::Regular(10).neighbours(10, 0).is_err());
        assert!(Topology::SmallWorld(3, 0.1).neighbours(10, 0).is_err());
        assert!(Topology::Ring.neighbours(1, 0).is_err());
    }

    #[test]
    fn metropolis_hastings_weights_are_doubly_stochastic_by_hand() {
        // A path 0 - 1 - 2: degrees 1, 2, 1.
        let nb = vec![vec![1], vec![0, 2], vec![1]];
        let w = metropolis_hastings(&nb);
        assert_eq!(w[0], (1.0 - 1.0 / 3.0, vec![1.0 / 3.0]));
        assert_eq!(w[1], (1.0 - 2.0 / 3.0, vec![1.0 / 3.0, 1.0 / 3.0]));
        let g = Topology::SmallWorld(4, 0.3).neighbours(30, 1).unwrap();
        let w = metropolis_hastings(&g);
        let mut column = vec![0.0; 30];
        for (i, (own, ws)) in w.iter().enumerate() {
            column[i] += own;
            for (&j, x) in g[i].iter().zip(ws) {
                column[j] += x;
            }
            assert!((own + ws.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        assert!(column.iter().all(|c| (c - 1.0).abs() < 1e-12));
    }

    #[test]
    fn topology_specs_parse_and_print_back() {
        for s in ["ring", "full", "regular:4", "smallworld:4:0.1"] {
            assert_eq!(s.parse::<Topology>().unwrap().to_string(), s);
        }
        assert!("star".parse::<Topology>().is_err());
        assert!("smallworld:4".parse::<Topology>().is_err());
    }
}
