//! The snapshot writer's place in the node: a supervised actor on its own Arbiter, so that
//! writing a large snapshot never stalls the driver's timers or the log store's fsyncs.
//!
//! Today it only exists, is supervised and answers `Close` and injected faults; writing,
//! loading and sending snapshots arrive with the snapshot issue. It must never touch the log:
//! only the driver mutates the log, through the log store.

use actix::prelude::*;

use super::messages::Close;
use super::supervision::*;

pub struct SnapshotWriter {
    closed: bool,
    budget: RestartBudget,
    node: Option<Recipient<SupervisionEvent>>,
}

impl SnapshotWriter {
    pub fn new(node: Option<Recipient<SupervisionEvent>>) -> Self {
        SnapshotWriter {
            closed: false,
            budget: RestartBudget::default(),
            node,
        }
    }
}

impl Actor for SnapshotWriter {
    type Context = Context<Self>;
}

impl Supervised for SnapshotWriter {
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        if !self.closed {
            on_restart(ctx, ActorKind::SnapshotWriter, &mut self.budget, &self.node);
        }
    }
}

impl Handler<Close> for SnapshotWriter {
    type Result = ();
    fn handle(&mut self, _: Close, ctx: &mut Context<Self>) {
        self.closed = true;
        ctx.stop();
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<InjectFault> for SnapshotWriter {
    type Result = ();
    fn handle(&mut self, msg: InjectFault, ctx: &mut Context<Self>) {
        apply_fault(ctx, ActorKind::SnapshotWriter, msg.0);
    }
}
