//! Node metrics: Kafka's raft metrics (`kafka.server:type=raft-metrics`) and kraft's own,
//! recorded by the actors and read by `NodeHandle::metrics` and the optional Prometheus
//! endpoint (`metrics.listener`).
//!
//! Owns the metric values ([`NodeMetrics`]), Kafka's windowed avg/max/rate math ([`window`]),
//! the driver's recorder of the raft metrics ([`RaftRecorder`]), the fixed label values
//! ([`labels`]), what readers get ([`MetricsSnapshot`]), the Prometheus names and text
//! ([`Exposition`]) and the HTTP endpoint ([`MetricsEndpoint`]). It must never be used by the
//! protocol core (`crate::raft` stays pure: the actors record what it did), and recording must
//! stay cheap: atomics, and a brief uncontended lock per batch for a windowed sensor.
//! Names and meanings are listed in docs/metrics.md.

pub mod exposition;
pub mod http;
pub mod labels;
pub mod node_metrics;
pub mod raft_recorder;
pub mod snapshot;
pub mod window;

pub use exposition::Exposition;
pub use http::MetricsEndpoint;
pub use labels::{BatchRejection, CurrentState, FrameRejection};
pub use node_metrics::NodeMetrics;
pub use raft_recorder::RaftRecorder;
pub use snapshot::{MetricsSnapshot, RaftMetrics, RaftState};
