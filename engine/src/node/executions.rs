//! Executions: starting one (from inputs, a trigger or a bootstrap graph),
//! its slot and pooled storage, writing values and queueing the ops they
//! make ready on the frontier, and ending it once nothing of it is pending.

use std::collections::VecDeque;

use super::install::CompiledGraph;
use super::{Completion, ExecOrigin, ExecSlot, Execution, InvokeError, Node, Ready, Step};
use crate::bus::{AppIngressErrorKind, AppIngressSource};
use crate::ids::{CommandId, ExecId, OpRef, SiteId};
use crate::resource::InboundCtx;
use crate::value::SlotValue;

/// Most finished-execution buffers kept for reuse, per site.
const POOL_PER_SITE: usize = 32;

/// Per-site reuse state: free buffers and the initial per-op counts.
///
/// Buffers are moved field by field between an execution and a pool entry
/// (entries stay in place): `bufs[..spare]` hold emptied vectors with
/// capacity, the rest are empty shells.
#[derive(Debug, Default)]
pub(super) struct SitePool {
    /// At most [`POOL_PER_SITE`] entries; every vector in them is empty.
    bufs: Vec<ExecBuffers>,
    /// How many of `bufs` hold reusable capacity.
    spare: usize,
    /// Per op: distinct input values it waits for
    /// ([`crate::graph::GraphTopology::required_inputs`]), copied into every
    /// new execution's `missing`.
    required: Vec<u32>,
}

impl SitePool {
    pub(super) fn for_graph(graph: &CompiledGraph) -> Self {
        let op_count = graph.topo.op_count();
        Self {
            bufs: Vec::new(),
            spare: 0,
            required: (0..op_count)
                .map(|op| graph.topo.required_inputs(op as u32))
                .collect(),
        }
    }
}

/// The dense vectors of an execution, kept (empty) for reuse after it ends.
#[derive(Debug, Default)]
struct ExecBuffers {
    values: Vec<Option<Box<dyn SlotValue>>>,
    reads_left: Vec<u32>,
    missing: Vec<u32>,
    fired: Vec<bool>,
}

impl Node {
    pub(super) fn start_with_inputs(
        &mut self,
        site: SiteId,
        origin: ExecOrigin,
        inbound: InboundCtx,
        inputs: Vec<(String, Box<dyn SlotValue>)>,
    ) -> Result<ExecId, InvokeError> {
        let graph = self
            .graphs
            .get(site.as_u32() as usize)
            .ok_or(InvokeError::UnknownSite(site))?;
        let mut indexed = std::mem::take(&mut self.scratch_indexed);
        indexed.clear();
        let mut bytes = 0usize;
        for (name, value) in inputs {
            let Some(index) = graph.input_index(&name) else {
                self.scratch_indexed = indexed;
                return Err(InvokeError::UnknownInput { site, name });
            };
            bytes = bytes.saturating_add(value.heap_bytes());
            indexed.push((index, value));
        }
        if matches!(origin, ExecOrigin::Invoke | ExecOrigin::Ticket(_)) {
            for (position, input) in graph.graph.inputs.iter().enumerate() {
                let index = graph.topo.graph_inputs()[position].as_u32();
                if !indexed.iter().any(|(i, _)| *i == index) {
                    self.scratch_indexed = indexed;
                    return Err(InvokeError::MissingInput {
                        site,
                        name: input.name.clone(),
                    });
                }
            }
        }
        // Values without heap bytes cost the budget nothing: skip the charge.
        let charge = if bytes == 0 {
            None
        } else {
            match self.budget.try_charge(bytes) {
                Ok(charge) => Some(charge),
                Err(e) => {
                    self.scratch_indexed = indexed;
                    return Err(InvokeError::Budget {
                        requested: e.requested,
                        in_use: e.in_use,
                        limit: e.limit,
                    });
                }
            }
        };
        let (slot, gen) = match self.start_execution(site, origin, inbound, None) {
            Ok(started) => started,
            Err(_) => {
                self.scratch_indexed = indexed;
                return Err(InvokeError::TooManyExecutions {
                    live: self.live,
                    cap: self.config.max_executions,
                });
            }
        };
        let exec = exec_slot(&mut self.execs, slot, gen).expect("just started");
        exec.charges.extend(charge);
        let graph = &self.graphs[site.as_u32() as usize];
        for (index, value) in indexed.drain(..) {
            write_value(
                exec,
                graph,
                index as usize,
                value,
                slot,
                gen,
                &mut self.frontier,
            );
        }
        self.scratch_indexed = indexed;
        let id = exec.id;
        if exec.pending == 0 {
            self.finish_if_idle(slot);
        }
        Ok(id)
    }

    /// Starts an execution seeded by a trigger-source op's output.
    pub(super) fn start_triggered(
        &mut self,
        op: OpRef,
        origin: ExecOrigin,
        value: Box<dyn SlotValue>,
    ) {
        let site = op.site;
        match self.start_execution(site, origin, InboundCtx::default(), None) {
            Ok((slot, gen)) => {
                let exec = exec_slot(&mut self.execs, slot, gen).expect("just started");
                exec.fired[op.index as usize] = true;
                let graph = &self.graphs[site.as_u32() as usize];
                if let Some(Some(index)) = graph.topo.op_outputs(op.index).first() {
                    write_value(
                        exec,
                        graph,
                        index.index(),
                        value,
                        slot,
                        gen,
                        &mut self.frontier,
                    );
                }
                self.finish_if_idle(slot);
            }
            Err(kind) => {
                let source = match origin {
                    ExecOrigin::AppEvent { kind } => AppIngressSource::AppEvent { kind },
                    _ => AppIngressSource::Trigger { op },
                };
                // A start refused while routing the bus is not republished on
                // the bus: an ingress-error subscriber refused at the cap
                // would otherwise trigger itself forever.
                let publish = !matches!(origin, ExecOrigin::Bus { .. });
                self.refuse_with(source, kind, publish);
            }
        }
    }

    /// Allocates an execution of `site` and queues its root ops.
    pub(super) fn start_execution(
        &mut self,
        site: SiteId,
        origin: ExecOrigin,
        inbound: InboundCtx,
        parent_cmd: Option<CommandId>,
    ) -> Result<(u32, u32), AppIngressErrorKind> {
        if self.live >= self.config.max_executions {
            return Err(AppIngressErrorKind::TooManyExecutions {
                cap: self.config.max_executions,
            });
        }
        let Some(id) = self.exec_ids.mint() else {
            return Err(AppIngressErrorKind::IdsExhausted);
        };
        let site_index = site.as_u32() as usize;
        let graph = &self.graphs[site_index];
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.execs.push(ExecSlot { gen: 0, exec: None });
                (self.execs.len() - 1) as u32
            }
        };
        let entry = &mut self.execs[slot as usize];
        let gen = entry.gen;
        // One pool entry per graph, made at build.
        let pool = &mut self.pool[site_index];
        let spare = match pool.spare.checked_sub(1) {
            Some(last) => {
                pool.spare = last;
                pool.bufs.get_mut(last)
            }
            None => None,
        };
        let (values, reads_left, missing, fired) = match spare {
            Some(b) => (
                std::mem::take(&mut b.values),
                std::mem::take(&mut b.reads_left),
                std::mem::take(&mut b.missing),
                std::mem::take(&mut b.fired),
            ),
            None => Default::default(),
        };
        // Built in place: an `Execution` is large, a move costs a memcpy.
        let exec = entry.exec.insert(Execution {
            id: ExecId::new(id),
            site,
            origin,
            parent_cmd,
            inbound,
            values,
            reads_left,
            missing,
            fired,
            // Roots are distinct op indices (u32), so their count fits.
            pending: graph.roots.len() as u32,
            charges: Vec::new(),
        });
        // Pooled vectors are empty (emptied when their execution ended).
        exec.values.resize_with(graph.topo.value_count(), || None);
        exec.reads_left.extend_from_slice(&graph.port_reads);
        exec.missing.extend_from_slice(&pool.required);
        exec.fired.resize(pool.required.len(), false);
        self.live += 1;
        self.stats.executions_started += 1;
        for &op in &graph.roots {
            self.frontier.push_back(Ready { slot, gen, op });
        }
        Ok((slot, gen))
    }

    pub(super) fn next_bootstrap(&mut self) {
        while self.bootstrap_live.is_none() {
            let Some(site) = self.bootstrap_queue.pop_front() else {
                return;
            };
            match self.start_execution(site, ExecOrigin::Bootstrap, InboundCtx::default(), None) {
                Ok((slot, _)) => {
                    let id = self.exec_ref(slot).map(|e| e.id);
                    self.bootstrap_live = id;
                    self.finish_if_idle(slot);
                }
                Err(kind) => self.refuse(AppIngressSource::Invoke { site }, kind),
            }
        }
    }

    pub(super) fn run_frontier(&mut self, now_ns: u64, budget: &mut usize) {
        while *budget > 0 {
            let Some(ready) = self.frontier.pop_front() else {
                return;
            };
            *budget -= 1;
            self.fire(ready, now_ns);
        }
    }

    pub(super) fn finish_if_idle(&mut self, slot: u32) {
        let Some(entry) = self.execs.get_mut(slot as usize) else {
            return;
        };
        // Worked on in place: taking the (large) `Execution` out would copy it.
        let Some(exec) = entry.exec.as_mut() else {
            return;
        };
        if exec.pending > 0 {
            return;
        }
        entry.gen = entry.gen.wrapping_add(1);
        self.free.push(slot);
        self.live -= 1;
        self.stats.executions_finished += 1;
        let (id, site, origin, parent_cmd) = (exec.id, exec.site, exec.origin, exec.parent_cmd);
        let site_index = site.as_u32() as usize;
        let graph = &self.graphs[site_index];
        let unreplied = match (exec.inbound.src_peer, exec.inbound.wire_req_id, origin) {
            (Some(to), Some(token), ExecOrigin::Envelope { .. }) if !graph.replied(&exec.fired) => {
                Some((to, token))
            }
            _ => None,
        };
        let mut outputs = Vec::with_capacity(graph.graph.outputs.len());
        let mut missing = Vec::new();
        for (position, info) in graph.graph.outputs.iter().enumerate() {
            let index = graph.topo.graph_outputs()[position].index();
            match exec.values[index].take() {
                Some(value) => outputs.push((info.name.clone(), value)),
                None => missing.push(info.name.clone()),
            }
        }
        self.framework.end_execution(id);
        // Taking the charges out releases them exactly once, below.
        let charges = std::mem::take(&mut exec.charges);
        // One pool entry per graph, made at build.
        let pool = &mut self.pool[site_index];
        if pool.spare < POOL_PER_SITE {
            if pool.spare == pool.bufs.len() {
                pool.bufs.push(ExecBuffers::default());
            }
            if let Some(b) = pool.bufs.get_mut(pool.spare) {
                pool.spare += 1;
                // Values left behind (read by nobody after a failure) die here.
                exec.values.clear();
                exec.reads_left.clear();
                exec.missing.clear();
                exec.fired.clear();
                b.values = std::mem::take(&mut exec.values);
                b.reads_left = std::mem::take(&mut exec.reads_left);
                b.missing = std::mem::take(&mut exec.missing);
                b.fired = std::mem::take(&mut exec.fired);
            }
        }
        entry.exec = None;
        if self.bootstrap_live == Some(id) {
            self.bootstrap_live = None;
        }
        match parent_cmd {
            Some(cmd) => {
                // A callee's outputs complete the caller's `Call` op by position.
                let names = self
                    .parked
                    .get(&cmd)
                    .and_then(|p| {
                        let parent = self.execs[p.slot as usize].exec.as_ref()?;
                        Some(
                            self.graphs[parent.site.as_u32() as usize].ops[p.op as usize]
                                .output_names
                                .clone(),
                        )
                    })
                    .unwrap_or_default();
                let mut results = Vec::new();
                for (position, info) in graph.graph.outputs.iter().enumerate() {
                    if let Some(at) = outputs.iter().position(|(n, _)| *n == info.name) {
                        let (_, value) = outputs.swap_remove(at);
                        if let Some(name) = names.get(position) {
                            results.push((name.clone(), value));
                        }
                    }
                }
                let charge = charges.into_iter().reduce(|a, b| {
                    let bytes = b.into_raw();
                    a.budget().release_raw(bytes);
                    a
                });
                self.completions.push_back(Completion::Values {
                    cmd,
                    results,
                    charge,
                });
            }
            None => {
                drop(charges);
                self.steps.push(Step::ExecFinished {
                    exec: id,
                    site,
                    origin,
                    outputs,
                    missing,
                });
            }
        }
        if let Some((to, token)) = unreplied {
            self.answer_unreplied(id, to, token);
        }
        if self.bootstrap_live.is_none() && !self.bootstrap_queue.is_empty() {
            self.next_bootstrap();
        }
    }

    pub(super) fn exec_ref(&self, slot: u32) -> Option<&Execution> {
        self.execs.get(slot as usize)?.exec.as_ref()
    }

    pub(super) fn exec_mut(&mut self, slot: u32, gen: u32) -> Option<&mut Execution> {
        exec_slot(&mut self.execs, slot, gen)
    }
}

pub(super) fn exec_slot(execs: &mut [ExecSlot], slot: u32, gen: u32) -> Option<&mut Execution> {
    let entry = execs.get_mut(slot as usize)?;
    if entry.gen != gen {
        return None;
    }
    entry.exec.as_mut()
}

/// Stores `value` and queues every consumer that became ready.
pub(super) fn write_value(
    exec: &mut Execution,
    graph: &CompiledGraph,
    index: usize,
    value: Box<dyn SlotValue>,
    slot: u32,
    gen: u32,
    frontier: &mut VecDeque<Ready>,
) {
    if exec.values[index].is_some() {
        // Install guarantees one producer per value; a second write is
        // impossible, and dropping it keeps the first.
        return;
    }
    if graph.port_reads[index] == 0 && !graph.is_output[index] {
        // Nobody reads this value: it dies here.
        return;
    }
    exec.values[index] = Some(value);
    for &op in graph
        .topo
        .consumers(crate::graph::ValueIndex::new(index as u32))
    {
        let missing = &mut exec.missing[op as usize];
        *missing -= 1;
        if *missing == 0 && !exec.fired[op as usize] {
            exec.pending += 1;
            frontier.push_back(Ready { slot, gen, op });
        }
    }
}
