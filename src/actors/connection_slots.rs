//! Admission of inbound connections: at most `max.connections` at once, at most
//! `max.connections.per.ip` from one address.
//!
//! Owns the counts, shared by the listener across its restarts and released by each
//! connection's [`ConnectionSlot`] when the connection actor goes away. It must never let an
//! accepted socket outlive its slot, and never block the accept loop on anything but a free
//! slot (the kernel's backlog holds the rest, as Kafka's acceptor does).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::ConnectionLimits;

#[derive(Debug)]
pub struct ConnectionSlots {
    limits: ConnectionLimits,
    /// Where connections opened, closed and refused are counted, and where the connections
    /// holding a slot count the frames they refuse.
    metrics: Arc<crate::metrics::NodeMetrics>,
    total: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// Why an accepted connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{count} connections from {ip} already (max.connections.per.ip)")]
pub struct TooManyFromIp {
    pub ip: IpAddr,
    pub count: usize,
}

impl ConnectionSlots {
    pub fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(ConnectionSlots {
            limits,
            metrics: Default::default(),
            total: Arc::new(Semaphore::new(limits.max_connections)),
            per_ip: Mutex::new(HashMap::new()),
        })
    }

    /// Counts into `metrics` (a node's) instead of a private set.
    pub fn with_metrics(self: Arc<Self>, metrics: Arc<crate::metrics::NodeMetrics>) -> Arc<Self> {
        Arc::new(ConnectionSlots {
            limits: self.limits,
            metrics,
            total: self.total.clone(),
            per_ip: Mutex::new(HashMap::new()),
        })
    }

    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    /// Waits for one of the `max.connections` slots (taken before `accept`).
    pub async fn wait_for_slot(self: &Arc<Self>) -> OwnedSemaphorePermit {
        self.total
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Admits a connection from `ip` into the slot `permit` holds, unless that address has its
    /// share already.
    pub fn admit(
        self: &Arc<Self>,
        permit: OwnedSemaphorePermit,
        ip: IpAddr,
    ) -> Result<ConnectionSlot, TooManyFromIp> {
        let mut per_ip = self
            .per_ip
            .lock()
            .expect("never poisoned: no panics inside");
        let count = per_ip.entry(ip).or_insert(0);
        if *count >= self.limits.max_connections_per_ip {
            self.metrics.connection_refused();
            return Err(TooManyFromIp { ip, count: *count });
        }
        *count += 1;
        self.metrics.connection_opened();
        Ok(ConnectionSlot {
            slots: self.clone(),
            ip,
            _permit: permit,
        })
    }

    fn release(&self, ip: IpAddr) {
        let mut per_ip = self
            .per_ip
            .lock()
            .expect("never poisoned: no panics inside");
        if let Some(count) = per_ip.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&ip);
            }
        }
    }
}

/// One admitted connection's place; dropping it frees the place.
#[derive(Debug)]
pub struct ConnectionSlot {
    slots: Arc<ConnectionSlots>,
    ip: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl ConnectionSlot {
    /// Counts a frame this slot's connection refused (it is closing).
    pub fn rejected_frame(&self, reason: crate::metrics::FrameRejection) {
        self.slots.metrics.record_rejected_frame(reason);
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.slots.metrics.connection_closed();
        self.slots.release(self.ip);
    }
}
