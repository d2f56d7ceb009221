//! A test-only transport fault: a hook that rewrites the responses a node's outbound
//! connections receive before the protocol core sees them, so that tests can feed a follower
//! corrupt, truncated, repeated, skipped or future-epoch records, or damaged snapshot chunks
//! (KAFKA-18723), through the real network path. Compiled only with the `fault-injection`
//! feature; the hook is process-wide, so a test that sets it runs in a test binary of its own.

use std::sync::Mutex;

use crate::raft::Response;
use crate::types::NodeId;

type Hook = Box<dyn FnMut(NodeId, &mut Response) + Send>;

static HOOK: Mutex<Option<Hook>> = Mutex::new(None);

/// Installs (or, with `None`, removes) the hook; it gets the responding peer and the response.
pub fn set(hook: Option<Hook>) {
    *HOOK.lock().unwrap_or_else(|e| e.into_inner()) = hook;
}

pub(crate) fn apply(from: NodeId, response: &mut Response) {
    if let Some(hook) = HOOK.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        hook(from, response);
    }
}
