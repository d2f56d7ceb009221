//! Supervision: the panic guard every handler runs in, the restart budget of each supervised
//! actor, the events actors report to their node's supervisor, and (behind the
//! `fault-injection` feature) the faults tests inject.
//!
//! A panic inside a guarded body stops the actor; actix's `Supervisor` then restarts it on the
//! same address and the actor rebuilds its volatile state from disk in `started()`. When an actor
//! restarts too often its budget is exhausted and the node supervisor restarts the whole node.
//! Nothing here may hold state shared between actors: actors only exchange messages.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::types::NodeId;

/// Restarts of one actor allowed within [`RESTART_WINDOW`]; one more escalates to a node restart,
/// because an actor that keeps failing will not be cured by restarting it alone.
pub const MAX_RESTARTS: usize = 3;
/// The window the restart budget counts over.
pub const RESTART_WINDOW: Duration = Duration::from_secs(10);
/// The pause before the first restart, doubled for each restart still in the window, so that a
/// crash loop does not spin a core.
pub const FIRST_RESTART_BACKOFF: Duration = Duration::from_millis(10);

/// The actors of a node, as faults and supervision events name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActorKind {
    Driver,
    LogStore,
    /// The outbound connection to one peer.
    Peer(NodeId),
    Listener,
    Workload,
    SnapshotWriter,
}

/// What a supervised actor tells its node supervisor.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub enum SupervisionEvent {
    /// The actor restarted after a panic or a stop and rebuilt its state.
    Restarted(ActorKind),
    /// The actor spent its restart budget: the node must restart from its data directory.
    Exhausted(ActorKind),
    /// The node cannot continue (e.g. the disk failed): it stops for good.
    /// The actor cannot go on without risking data (a disk failure, an unloadable snapshot).
    Fatal { actor: ActorKind, reason: String },
}

/// Counts restarts in a sliding window and says how long to pause before the next one.
#[derive(Debug)]
pub struct RestartBudget {
    recent: VecDeque<Instant>,
}

impl Default for RestartBudget {
    fn default() -> Self {
        RestartBudget {
            recent: VecDeque::with_capacity(MAX_RESTARTS + 1),
        }
    }
}

impl RestartBudget {
    /// Records a restart at `now`: `Some(backoff)` while within budget, `None` once exhausted.
    pub fn on_restart(&mut self, now: Instant) -> Option<Duration> {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > RESTART_WINDOW)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        if self.recent.len() > MAX_RESTARTS {
            self.recent.clear();
            return None;
        }
        Some(FIRST_RESTART_BACKOFF * (1 << (self.recent.len() - 1)))
    }
}

/// Runs `body`; if it panics, logs the panic, stops the actor (so its `Supervisor` restarts it on
/// the same address) and returns `None`. State `body` touched may be half-updated, which is why
/// every supervised actor rebuilds its state when it restarts.
pub fn guarded<A, R>(ctx: &mut Context<A>, kind: ActorKind, body: impl FnOnce() -> R) -> Option<R>
where
    A: Actor<Context = Context<A>>,
{
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => Some(value),
        Err(payload) => {
            tracing::error!(actor = ?kind, panic = panic_message(&*payload), "actor panicked; restarting it");
            ctx.stop();
            None
        }
    }
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_string()
    }
}

/// Pauses the actor's mailbox for `delay` (messages stay queued), as a restart backoff or an
/// injected stall.
pub fn pause<A>(ctx: &mut Context<A>, delay: Duration)
where
    A: Actor<Context = Context<A>>,
{
    ctx.wait(actix::fut::wrap_future::<_, A>(tokio::time::sleep(delay)));
}

/// The restart bookkeeping every supervised actor shares: apply the budget's backoff, or tell
/// the node supervisor the budget is spent; either way report the restart.
pub fn on_restart<A>(
    ctx: &mut Context<A>,
    kind: ActorKind,
    budget: &mut RestartBudget,
    node: &Option<Recipient<SupervisionEvent>>,
) where
    A: Actor<Context = Context<A>>,
{
    let event = match budget.on_restart(Instant::now()) {
        Some(backoff) => {
            pause(ctx, backoff);
            SupervisionEvent::Restarted(kind)
        }
        None => SupervisionEvent::Exhausted(kind),
    };
    tracing::warn!(actor = ?kind, ?event, "supervisor restarting actor");
    if let Some(node) = node {
        node.do_send(event);
    }
}

/// A fault injected into one actor by a test.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Panic inside the actor's guarded handler.
    Panic,
    /// Stop the actor as if it had failed.
    Stop,
    /// Process nothing for this long (messages queue up).
    Stall(Duration),
}

/// Delivers a [`Fault`] to an actor.
#[cfg(feature = "fault-injection")]
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct InjectFault(pub Fault);

/// Applies an injected fault to the actor handling it.
#[cfg(feature = "fault-injection")]
pub fn apply_fault<A>(ctx: &mut Context<A>, kind: ActorKind, fault: Fault)
where
    A: Actor<Context = Context<A>>,
{
    tracing::warn!(actor = ?kind, ?fault, "injecting fault");
    match fault {
        Fault::Panic => {
            guarded(ctx, kind, || panic!("injected panic in {kind:?}"));
        }
        Fault::Stop => ctx.stop(),
        Fault::Stall(d) => pause(ctx, d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_backs_off_then_is_exhausted_and_forgets_old_restarts() {
        let mut budget = RestartBudget::default();
        let t0 = Instant::now();
        assert_eq!(budget.on_restart(t0), Some(FIRST_RESTART_BACKOFF));
        assert_eq!(budget.on_restart(t0), Some(FIRST_RESTART_BACKOFF * 2));
        assert_eq!(budget.on_restart(t0), Some(FIRST_RESTART_BACKOFF * 4));
        assert_eq!(budget.on_restart(t0), None);
        // Exhaustion resets the count (the node restarted), and old restarts age out.
        assert_eq!(budget.on_restart(t0), Some(FIRST_RESTART_BACKOFF));
        let later = t0 + RESTART_WINDOW + Duration::from_millis(1);
        assert_eq!(budget.on_restart(later), Some(FIRST_RESTART_BACKOFF));
    }

    #[test]
    fn panic_messages_are_readable() {
        let a = catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(panic_message(&*a), "plain");
        let b = catch_unwind(|| panic!("formatted {}", 7)).unwrap_err();
        assert_eq!(panic_message(&*b), "formatted 7");
    }
}
