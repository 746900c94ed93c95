//! The caller's side of an actor and the report types' helpers: [`ActorHandle`]'s methods (invoke, subscribe, metrics, snapshot requests, drain and join), the accounts of [`ActorReport`] and [`ActorError`], and [`panic_message`].

use super::*;
impl ActorHandle {
    /// The Node's peer.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// The Node's mailbox (push invokes, app events, completions here).
    pub fn ingress(&self) -> &Arc<IngressQueue> {
        &self.ingress
    }

    /// Queues an invoke of the graph at `site`; its [`ActorOutput::ExecFinished`]
    /// carries `ExecOrigin::Ticket(ticket)`. A refusal (data lane full, or
    /// the actor stopping) hands the event back in [`DeliverError::Refused`].
    pub fn invoke(
        &self,
        site: SiteId,
        inputs: Vec<(String, Box<dyn SlotValue>)>,
        ticket: u64,
    ) -> Result<(), DeliverError> {
        self.ingress.push_data(IngressEvent::Invoke {
            site,
            inputs,
            ticket,
        })?;
        Ok(())
    }

    /// Queues an app event of `kind` (routed to the Node's `OnTrigger`
    /// subscribers); refusals hand the event back like [`ActorHandle::invoke`].
    pub fn deliver_event(
        &self,
        kind: EventKind,
        value: Box<dyn SlotValue>,
    ) -> Result<(), DeliverError> {
        self.ingress
            .push_data(IngressEvent::AppEvent { kind, value })?;
        Ok(())
    }

    /// A new receiver of every output produced from now on. The channel is
    /// unbounded: a receiver that stops reading grows memory; drop it to
    /// unsubscribe (its slot is freed at the next forwarded output).
    pub fn subscribe(&self) -> Result<Receiver<ActorOutput>, SubscribeError> {
        let cap = self.shared.max_subscribers;
        let mut subscribers = self.shared.subscribers.lock();
        if subscribers.len() >= cap {
            return Err(SubscribeError::TooMany { cap });
        }
        let (tx, rx) = unbounded();
        subscribers.push(tx);
        Ok(rx)
    }

    /// A copy of the live counters. They are read `Relaxed`: recent, not
    /// exact, except that everything counted before an output was sent is
    /// visible once that output has been received.
    pub fn stats(&self) -> ActorStats {
        self.shared.counters.snapshot()
    }

    /// The Node's metrics now: the actor's counters, the Node's counters as
    /// last published, and the mailbox's depth, high-water mark and
    /// counters (see [`ActorMetrics::account`] and
    /// [`ActorMetrics::mean_queue_wait_ns`]).
    pub fn metrics(&self) -> ActorMetrics {
        ActorMetrics {
            peer: self.peer,
            actor: self.shared.counters.snapshot(),
            node: *self.shared.node_stats.lock(),
            ingress: self.ingress.stats(),
            ingress_depth: self.ingress.len(),
            ingress_high_water: self.ingress.data_high_water(),
            ingress_capacity: self.ingress.data_capacity(),
        }
    }

    /// Asks the actor thread for a fresh snapshot of its Node (it answers
    /// between polls) and waits at most `timeout`. For a supervised actor the
    /// snapshot also becomes its restart base.
    pub fn snapshot(&self, timeout: Duration) -> Result<Vec<u8>, SnapshotRequestError> {
        self.snapshot_request()?.wait(timeout)
    }

    /// Asks the actor thread for a fresh snapshot without waiting for it
    /// (see [`ActorHandle::snapshot`]).
    pub fn snapshot_request(&self) -> Result<PendingSnapshot, SnapshotRequestError> {
        let (tx, rx) = bounded(1);
        {
            let mut waiting = self.shared.snapshot_requests.lock();
            if waiting.len() >= self.shared.max_subscribers.max(1) {
                return Err(SnapshotRequestError::Busy);
            }
            waiting.push(tx);
        }
        if self.ingress.is_closed() {
            return Err(SnapshotRequestError::Stopped);
        }
        self.ingress.nudge();
        Ok(PendingSnapshot { reply: rx })
    }

    /// Whether the actor is asleep with an empty mailbox: it will do nothing
    /// until mail, a nudge, its deadline or the clock wakes it. A snapshot
    /// in time, for tests and quiescence checks (every actor of a closed
    /// system idle at once means the system is quiescent).
    pub fn is_idle(&self) -> bool {
        self.shared.sleeping.load(Ordering::SeqCst) && self.ingress.is_empty()
    }

    /// Whether the actor thread has exited.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Phase 1 of a two-phase stop: the Node keeps running until it is
    /// [quiescent](Node::is_quiescent) (or `grace` of clock time has
    /// passed), then closes its own mailbox and exits (lifecycle steps 3–5).
    /// New work should be refused upstream first ([`Router::stop_new_work`]);
    /// join with [`ActorHandle::finish`]. A later call keeps the earlier
    /// deadline if it is sooner.
    pub fn begin_drain(&self, grace: Duration) {
        let grace_ns = u64::try_from(grace.as_nanos()).unwrap_or(u64::MAX);
        let deadline = self
            .clock
            .now_ns()
            .saturating_add(grace_ns)
            .min(u64::MAX - 1);
        self.shared
            .drain_deadline_ns
            .fetch_min(deadline, Ordering::Release);
        self.ingress.nudge();
    }

    /// Waits (real time) until the thread exits or `deadline` passes; past
    /// it, closes the mailbox (the Node stops after handling queued mail)
    /// and waits [`ActorConfig::join_grace`] more; then joins and returns
    /// the report, or [`ActorError::JoinTimedOut`] leaving the thread
    /// detached. Never blocks longer than `deadline + join_grace`.
    pub fn finish(mut self, deadline: Instant) -> Result<ActorReport, ActorError> {
        let peer = self.peer;
        let wait = deadline.saturating_duration_since(Instant::now());
        if !self.wait_exit(wait) {
            self.ingress.close();
            if !self.wait_exit(self.join_grace) {
                // Detach: the thread keeps its Node until its op returns.
                drop(self.thread.take());
                return Err(ActorError::JoinTimedOut { peer });
            }
        }
        self.join()
    }

    /// Both phases with one budget: [`ActorHandle::begin_drain`] with
    /// `grace`, then [`ActorHandle::finish`] at now + `grace`.
    pub fn shutdown(self, grace: Duration) -> Result<ActorReport, ActorError> {
        self.begin_drain(grace);
        self.finish(Instant::now() + grace)
    }

    /// Closes the mailbox now, lets the thread drain queued mail and exit,
    /// joins it and returns its report (lifecycle steps 4–5). Blocks until
    /// the Node has handled its queued mail; work waiting on timers or
    /// compute jobs is abandoned (see [`ActorHandle::shutdown`]).
    pub fn stop(mut self) -> Result<ActorReport, ActorError> {
        self.ingress.close();
        self.join()
    }

    fn wait_exit(&self, timeout: Duration) -> bool {
        !matches!(
            self.exited.recv_timeout(timeout),
            Err(RecvTimeoutError::Timeout)
        )
    }

    fn join(&mut self) -> Result<ActorReport, ActorError> {
        let peer = self.peer;
        let Some(thread) = self.thread.take() else {
            return Err(ActorError::ThreadLost { peer });
        };
        thread
            .join()
            .unwrap_or(Err(ActorError::ThreadLost { peer }))
    }
}

impl Drop for ActorHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.ingress.close();
        }
    }
}

impl ActorReport {
    /// What happened to every event the mailbox accepted (the actor has
    /// exited, so nothing is queued: `accepted == processed +
    /// dropped_at_close + lost_in_restart`).
    pub fn account(&self) -> MessageAccount {
        account(
            &self.ingress,
            self.stats.lost_in_restart,
            self.dropped_at_close,
        )
    }
}

impl ActorError {
    /// The stopped actor's report, when the thread produced one.
    pub fn report(&self) -> Option<&ActorReport> {
        match self {
            Self::Panicked { report, .. }
            | Self::GaveUp { report, .. }
            | Self::RestartFailed { report, .. } => Some(report),
            Self::JoinTimedOut { .. } | Self::ThreadLost { .. } => None,
        }
    }

    /// The peer of the actor that failed.
    pub fn peer(&self) -> PeerId {
        match self {
            Self::Panicked { report, .. }
            | Self::GaveUp { report, .. }
            | Self::RestartFailed { report, .. } => report.peer,
            Self::JoinTimedOut { peer } | Self::ThreadLost { peer } => *peer,
        }
    }
}

impl Clone for ActorOutput {
    fn clone(&self) -> Self {
        match self {
            Self::ExecFinished {
                peer,
                exec,
                site,
                origin,
                outputs,
                missing,
            } => Self::ExecFinished {
                peer: *peer,
                exec: *exec,
                site: *site,
                origin: *origin,
                outputs: outputs.clone(),
                missing: missing.clone(),
            },
            Self::App { peer, output } => Self::App {
                peer: *peer,
                output: AppOutput {
                    exec: output.exec,
                    op: output.op,
                    kind: output.kind,
                    name: output.name.clone(),
                    value: output.value.clone_value(),
                },
            },
        }
    }
}

impl ActorOutput {
    /// The Node that produced the output.
    pub fn peer(&self) -> PeerId {
        match self {
            Self::ExecFinished { peer, .. } | Self::App { peer, .. } => *peer,
        }
    }
}

/// The text of a caught panic's payload (`&str` or `String`), or a
/// placeholder; shared with hosts that catch panics of user code (factories).
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        return text;
    }
    if let Some(text) = payload.downcast_ref::<String>() {
        return text;
    }
    "a panic with a non-string payload"
}
