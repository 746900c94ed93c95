//! [`FederationComponent`]: the server side of a federated round — which clients take part, who has answered, and when the round is over.
//!
//! | op | inputs | outputs |
//! |---|---|---|
//! | `Open` | the global model f32 `[P]` | round i64 scalar, clients sampled i64 scalar |
//! | `Await` | round | contributors i64, stragglers i64, bytes on the wire i64, mean client loss f32 |
//! | `Admit` | round, client peer i64, update | the update, only while that round is open and the client was sampled |
//! | `Arrived` | round, client peer i64, anything to sequence on, update wire bytes i64, client loss f32 | round i64 |
//! | `Tick` | any trigger | open rounds i64 (0 or 1) |
//!
//! `Open` samples `max(1, ⌈fraction·K⌉)` of the K clients (seeded: the
//! first usable ones in `shuffle_order(K, seed + round)`, then ascending by
//! client index; a blocked or down peer is skipped and counted) and
//! publishes one bus event of the dispatch kind per sampled client. The
//! event's value is a [`Composite`] with `peer` ([`PeerIdValue`]),
//! `peer_id` and `round` (i64 scalars) and `task`, itself a composite of
//! `model` (the global model) and `seed` (`round << 40 | c << 16`, the
//! reference job's batch-order seed for client `c`). A dispatch graph
//! started by that event sends the task and feeds the answer back through
//! `Admit` and `Arrived`.
//!
//! `Await` parks until every sampled client has arrived or the round's
//! deadline passes (checked by `Tick`, which a graph drives from an
//! `Interval`); the clients that did not answer by then are stragglers,
//! counted, and an answer that comes later is refused by `Admit` (it
//! writes nothing) and counted as late. `Open` while a round is open
//! closes that round first, as if its deadline had passed.
//!
//! The round counter and the counters are the component's snapshot state;
//! a round open at the snapshot is not (its dispatches belong to the old
//! incarnation), so a restored server starts with no open round.

use std::collections::BTreeSet;
use std::fmt;

use nodeflow_engine::{
    CommandId, Component, Composite, DispatchResult, EventKind, LocalOpId, NodeEvent, OpError,
    OpErrorKind, OpInputs, OpOutputs, PeerId, PeerIdValue, RuntimeResourceRef, SlotValue,
};

use crate::data::shuffle_order;
use crate::roles::components::state::{decode_words, encode_words};
use crate::roles::components::{tensor_input, usable_peer};
use crate::tensor::Tensor;

/// The [`Component::kind`] of a federation component.
pub const FEDERATION_KIND: &str = "federation";

/// How a server runs its rounds.
#[derive(Clone, Debug, PartialEq)]
pub struct FederationConfig {
    /// The clients; a client's index here is its `c` in the batch-order seed.
    pub clients: Vec<PeerId>,
    /// Fraction of the clients sampled per round, in `(0, 1]`.
    pub fraction: f64,
    /// Seed of the client sampling.
    pub seed: u64,
    /// How long a round waits for its clients, in nanoseconds.
    pub round_timeout_ns: u64,
    /// Bus kind of the dispatch events (at least [`EventKind::USER_MIN`]).
    pub dispatch_kind: EventKind,
}

/// Why a [`FederationConfig`] was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FederationError {
    /// No clients.
    #[error("a federation needs at least one client")]
    NoClients,
    /// The same peer is listed twice.
    #[error("client {0} is listed twice")]
    DuplicateClient(PeerId),
    /// The fraction is not in `(0, 1]`.
    #[error("the client fraction must be in (0, 1], not {0}")]
    Fraction(String),
    /// The round timeout is zero.
    #[error("the round timeout must be positive")]
    Timeout,
    /// The dispatch kind is in nodeflow's reserved range.
    #[error("dispatch kind {0} is below EventKind::USER_MIN")]
    ReservedKind(u32),
}

/// What a federation has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FederationStats {
    /// Rounds opened.
    pub rounds: u64,
    /// Rounds every sampled client answered.
    pub complete: u64,
    /// Rounds closed by their deadline (or by the next `Open`).
    pub expired: u64,
    /// Clients sampled, over all rounds.
    pub sampled: u64,
    /// Sampled clients skipped because the governor blocks them or has them down.
    pub unusable: u64,
    /// Answers taken into their round.
    pub arrived: u64,
    /// Sampled clients that had not answered when their round closed.
    pub stragglers: u64,
    /// Answers refused because their round was over or they were not sampled.
    pub late: u64,
    /// Bytes of the models sent and the updates received, as encoded on the wire.
    pub bytes: u64,
}

struct OpenRound {
    round: u64,
    deadline_ns: u64,
    expected: BTreeSet<u64>,
    arrived: BTreeSet<u64>,
    bytes: u64,
    loss_sum: f64,
    waiter: Option<(CommandId, Vec<String>)>,
}

struct ClosedRound {
    round: u64,
    contributors: u64,
    stragglers: u64,
    bytes: u64,
    loss: f32,
}

impl ClosedRound {
    fn values(&self) -> Vec<Box<dyn SlotValue>> {
        vec![
            Box::new(Tensor::scalar_i64(self.contributors as i64)),
            Box::new(Tensor::scalar_i64(self.stragglers as i64)),
            Box::new(Tensor::scalar_i64(self.bytes as i64)),
            Box::new(Tensor::scalar_f32(self.loss)),
        ]
    }
}

/// The server side of federated rounds, as a component.
pub struct FederationComponent {
    config: FederationConfig,
    round: u64,
    open: Option<OpenRound>,
    closed: Option<ClosedRound>,
    stats: FederationStats,
}

const OPEN: u32 = 0;
const AWAIT: u32 = 1;
const ADMIT: u32 = 2;
const ARRIVED: u32 = 3;
const TICK: u32 = 4;

fn refused(reason: &'static str, message: String) -> OpError {
    OpError::new(OpErrorKind::Refused, reason, message)
}

fn scalar_input(inputs: &OpInputs<'_>, index: usize, op: &str) -> Result<i64, OpError> {
    let t = tensor_input(inputs, index, op)?;
    match t.to_i64_vec().as_deref() {
        Some([v]) => Ok(*v),
        _ => Err(OpError::new(
            OpErrorKind::InvalidInput,
            "federation.not_a_scalar",
            format!(
                "`{op}` input {index} must be an i64 scalar, found {:?} {:?}",
                t.dtype(),
                t.shape()
            ),
        )),
    }
}

impl FederationComponent {
    /// A federation over `config.clients`; refuses an empty or repeated
    /// client list, a fraction outside `(0, 1]`, a zero timeout and a
    /// reserved event kind.
    pub fn new(config: FederationConfig) -> Result<Self, FederationError> {
        if config.clients.is_empty() {
            return Err(FederationError::NoClients);
        }
        let mut seen = BTreeSet::new();
        for &c in &config.clients {
            if !seen.insert(c) {
                return Err(FederationError::DuplicateClient(c));
            }
        }
        if !(config.fraction > 0.0 && config.fraction <= 1.0) {
            return Err(FederationError::Fraction(config.fraction.to_string()));
        }
        if config.round_timeout_ns == 0 {
            return Err(FederationError::Timeout);
        }
        if config.dispatch_kind.as_u32() < EventKind::USER_MIN {
            return Err(FederationError::ReservedKind(config.dispatch_kind.as_u32()));
        }
        Ok(Self {
            config,
            round: 0,
            open: None,
            closed: None,
            stats: FederationStats::default(),
        })
    }

    /// The counters so far.
    pub fn stats(&self) -> FederationStats {
        self.stats
    }

    /// The last round opened (0 before the first).
    pub fn round(&self) -> u64 {
        self.round
    }

    /// How many clients a round samples.
    pub fn per_round(&self) -> usize {
        let k = self.config.clients.len();
        ((self.config.fraction * k as f64).ceil() as usize).clamp(1, k)
    }

    fn close(&mut self, ctx: &mut RuntimeResourceRef<'_>, expired: bool) {
        let Some(open) = self.open.take() else { return };
        let contributors = open.arrived.len() as u64;
        let stragglers = (open.expected.len() as u64).saturating_sub(contributors);
        self.stats.stragglers += stragglers;
        if expired || stragglers > 0 {
            self.stats.expired += 1;
        } else {
            self.stats.complete += 1;
        }
        let closed = ClosedRound {
            round: open.round,
            contributors,
            stragglers,
            bytes: open.bytes,
            loss: if contributors == 0 {
                f32::NAN
            } else {
                (open.loss_sum / contributors as f64) as f32
            },
        };
        match open.waiter {
            Some((cmd, names)) => {
                ctx.complete_command(cmd, names.into_iter().zip(closed.values()).collect());
            }
            None => self.closed = Some(closed),
        }
    }

    fn open_round(
        &mut self,
        ctx: &mut RuntimeResourceRef<'_>,
        inputs: &OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        let global = tensor_input(inputs, 0, "Open")?;
        if self.open.is_some() {
            self.close(ctx, true);
        }
        self.closed = None;
        self.round += 1;
        let round = self.round;
        let k = self.config.clients.len();
        let want = self.per_round();
        let mut chosen = Vec::with_capacity(want);
        for c in shuffle_order(k, self.config.seed.wrapping_add(round)) {
            if chosen.len() == want {
                break;
            }
            if usable_peer(ctx, self.config.clients[c]) {
                chosen.push(c);
            } else {
                self.stats.unusable += 1;
            }
        }
        chosen.sort_unstable();
        let model_bytes = global.byte_len() as u64 + 8;
        let mut expected = BTreeSet::new();
        for &c in &chosen {
            let peer = self.config.clients[c];
            let seed = ((round << 40) | ((c as u64) << 16)) as i64;
            let task = Composite::new()
                .with("model", global.clone())
                .with("seed", Tensor::scalar_i64(seed));
            let event = Composite::new()
                .with("peer", PeerIdValue(peer))
                .with("peer_id", Tensor::scalar_i64(peer.as_u64() as i64))
                .with("round", Tensor::scalar_i64(round as i64))
                .with("task", task);
            ctx.publish_bus(NodeEvent::App {
                kind: self.config.dispatch_kind,
                value: Box::new(event),
            })
            .map_err(|e| refused("federation.reserved_kind", e.to_string()))?;
            expected.insert(peer.as_u64());
        }
        self.stats.rounds += 1;
        self.stats.sampled += expected.len() as u64;
        let bytes = model_bytes * expected.len() as u64;
        self.stats.bytes += bytes;
        self.open = Some(OpenRound {
            round,
            deadline_ns: ctx.time.now_ns.saturating_add(self.config.round_timeout_ns),
            expected,
            arrived: BTreeSet::new(),
            bytes,
            loss_sum: 0.0,
            waiter: None,
        });
        let values: Vec<Box<dyn SlotValue>> = vec![
            Box::new(Tensor::scalar_i64(round as i64)),
            Box::new(Tensor::scalar_i64(chosen.len() as i64)),
        ];
        for value in values.into_iter().take(outputs.declared()) {
            outputs.push(value)?;
        }
        Ok(DispatchResult::Immediate)
    }

    fn await_round(
        &mut self,
        ctx: &mut RuntimeResourceRef<'_>,
        inputs: &OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        let round = scalar_input(inputs, 0, "Await")? as u64;
        if let Some(closed) = self.closed.take_if(|c| c.round == round) {
            for value in closed.values().into_iter().take(outputs.declared()) {
                outputs.push(value)?;
            }
            return Ok(DispatchResult::Immediate);
        }
        let names = ctx.current.outputs.to_vec();
        match self.open.as_mut() {
            Some(open) if open.round == round && open.waiter.is_none() => {
                let cmd = ctx.allocate_command_id()?;
                open.waiter = Some((cmd, names));
                Ok(DispatchResult::Async(cmd))
            }
            _ => Err(refused(
                "federation.no_round",
                format!("`Await` of round {round}, which is not open or already awaited"),
            )),
        }
    }

    fn is_expected(&self, round: u64, peer: u64) -> bool {
        self.open.as_ref().is_some_and(|o| {
            o.round == round && o.expected.contains(&peer) && !o.arrived.contains(&peer)
        })
    }
}

impl Component for FederationComponent {
    fn kind(&self) -> &str {
        FEDERATION_KIND
    }

    fn resolve_op(&self, op_type: &str) -> Option<LocalOpId> {
        match op_type {
            "Open" => Some(LocalOpId(OPEN)),
            "Await" => Some(LocalOpId(AWAIT)),
            "Admit" => Some(LocalOpId(ADMIT)),
            "Arrived" => Some(LocalOpId(ARRIVED)),
            "Tick" => Some(LocalOpId(TICK)),
            _ => None,
        }
    }

    fn dispatch_atomic(
        &mut self,
        op: LocalOpId,
        ctx: &mut RuntimeResourceRef<'_>,
        inputs: &mut OpInputs<'_>,
        outputs: &mut OpOutputs<'_>,
    ) -> Result<DispatchResult, OpError> {
        match op.0 {
            OPEN => self.open_round(ctx, inputs, outputs),
            AWAIT => self.await_round(ctx, inputs, outputs),
            ADMIT => {
                let round = scalar_input(inputs, 0, "Admit")? as u64;
                let peer = scalar_input(inputs, 1, "Admit")? as u64;
                if !self.is_expected(round, peer) {
                    self.stats.late += 1;
                    return Ok(DispatchResult::Immediate);
                }
                let update = inputs.get(2).ok_or_else(|| {
                    OpError::new(
                        OpErrorKind::InvalidInput,
                        "role.missing_input",
                        "`Admit` needs input 2, which is absent",
                    )
                })?;
                outputs.push(update.clone_value())?;
                Ok(DispatchResult::Immediate)
            }
            ARRIVED => {
                let round = scalar_input(inputs, 0, "Arrived")? as u64;
                let peer = scalar_input(inputs, 1, "Arrived")? as u64;
                let wire = scalar_input(inputs, 3, "Arrived")?.max(0) as u64;
                let loss = tensor_input(inputs, 4, "Arrived")?
                    .to_f32_vec()
                    .and_then(|v| v.first().copied())
                    .unwrap_or(f32::NAN);
                if !self.is_expected(round, peer) {
                    self.stats.late += 1;
                    return Ok(DispatchResult::Immediate);
                }
                let all_in = {
                    let open = self.open.as_mut().expect("is_expected saw an open round");
                    open.arrived.insert(peer);
                    open.bytes += wire;
                    open.loss_sum += f64::from(loss);
                    open.arrived.len() == open.expected.len()
                };
                self.stats.arrived += 1;
                self.stats.bytes += wire;
                if all_in {
                    self.close(ctx, false);
                }
                if outputs.declared() > 0 {
                    outputs.push(Box::new(Tensor::scalar_i64(round as i64)))?;
                }
                Ok(DispatchResult::Immediate)
            }
            TICK => {
                if self
                    .open
                    .as_ref()
                    .is_some_and(|o| ctx.time.now_ns >= o.deadline_ns)
                {
                    self.close(ctx, true);
                }
                if outputs.declared() > 0 {
                    let open = i64::from(self.open.is_some());
                    outputs.push(Box::new(Tensor::scalar_i64(open)))?;
                }
                Ok(DispatchResult::Immediate)
            }
            _ => Err(OpError::new(
                OpErrorKind::Internal,
                "federation.unknown_op",
                format!("{op:?} is not a federation op"),
            )),
        }
    }

    fn snapshot_state(&self) -> Result<Vec<u8>, OpError> {
        let s = &self.stats;
        let words = [
            self.round,
            s.rounds,
            s.complete,
            s.expired,
            s.sampled,
            s.unusable,
            s.arrived,
            s.stragglers,
            s.late,
            s.bytes,
        ];
        encode_words(&words)
    }

    fn restore_state(&mut self, bytes: &[u8]) -> Result<(), OpError> {
        let w = decode_words(bytes, 10)?;
        self.round = w[0];
        self.stats = FederationStats {
            rounds: w[1],
            complete: w[2],
            expired: w[3],
            sampled: w[4],
            unusable: w[5],
            arrived: w[6],
            stragglers: w[7],
            late: w[8],
            bytes: w[9],
        };
        self.open = None;
        self.closed = None;
        Ok(())
    }
}

impl fmt::Debug for FederationComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FederationComponent")
            .field("clients", &self.config.clients.len())
            .field("round", &self.round)
            .field("stats", &self.stats)
            .finish()
    }
}
