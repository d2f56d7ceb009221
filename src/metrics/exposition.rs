//! A node's metrics in the Prometheus text exposition format (OpenMetrics 1.0), through the
//! `prometheus-client` crate.
//!
//! Owns the names: Kafka's raft metrics as Prometheus' jmx_exporter renders the MBean
//! `kafka.server:type=raft-metrics` (`kafka_server_raft_metrics_<attribute>`, `current-state` as
//! an `_info` series labelled `state`), so dashboards made for Kafka work unchanged; kraft's own
//! under `kraft_` in base units (seconds, bytes, `_total` counters). Every value comes from one
//! [`NodeMetrics::snapshot`], the same `NodeHandle::metrics` returns. It must never record
//! anything, nor see a socket (the endpoint is `super::http`). The table is in docs/metrics.md.

use std::sync::Arc;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use super::{MetricsSnapshot, NodeMetrics};

/// What the endpoint answers with in `Content-Type`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The prefix jmx_exporter gives the attributes of `kafka.server:type=raft-metrics`.
const KAFKA_RAFT: &str = "kafka_server_raft_metrics_";

/// A node's metrics, ready to render.
#[derive(Debug)]
pub struct Exposition {
    registry: Registry,
}

impl Exposition {
    pub fn new(metrics: Arc<NodeMetrics>) -> Self {
        let mut registry = Registry::default();
        registry.register_with_unit(
            "kraft_fsync_duration",
            "Time an fsync of the log took",
            Unit::Seconds,
            metrics.fsync_seconds.clone(),
        );
        registry.register_with_unit(
            "kraft_snapshot_write_duration",
            "Time writing a snapshot of the state machine took",
            Unit::Seconds,
            metrics.snapshot_seconds.clone(),
        );
        registry.register_with_unit(
            "kraft_snapshot_size",
            "Size of each snapshot written",
            Unit::Bytes,
            metrics.snapshot_bytes.clone(),
        );
        registry.register_collector(Box::new(SnapshotCollector(metrics)));
        Exposition { registry }
    }

    /// The text a scrape gets.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Renders one snapshot of the node's gauges and counters at each scrape.
#[derive(Debug)]
struct SnapshotCollector(Arc<NodeMetrics>);

impl prometheus_client::collector::Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.snapshot();
        encode_kafka(&s, &mut encoder)?;
        encode_kraft(&s, &mut encoder)
    }
}

fn gauge<N>(e: &mut DescriptorEncoder, name: &str, help: &str, value: N) -> std::fmt::Result
where
    ConstGauge<N>: EncodeMetric,
{
    let g = ConstGauge::new(value);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    let c = ConstCounter::new(value);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn encode_kafka(s: &MetricsSnapshot, e: &mut DescriptorEncoder) -> std::fmt::Result {
    let r = &s.raft;
    let name = |attribute: &str| format!("{KAFKA_RAFT}{attribute}");
    let state_name = name("current_state");
    let mut state = e.encode_descriptor(
        &state_name,
        "The current state of this member (leader, candidate, prospective, voted, follower, observer, unattached)",
        None,
        MetricType::Info,
    )?;
    state.encode_info(&[("state", r.current_state.as_str())])?;
    let ints = [
        (
            "current_leader",
            "The current quorum leader's id; -1 indicates unknown",
            r.current_leader,
        ),
        (
            "current_vote",
            "The current voted id; -1 indicates not voted for anyone",
            r.current_vote,
        ),
        ("current_epoch", "The current quorum epoch", r.current_epoch),
        (
            "high_watermark",
            "The high watermark maintained on this member; -1 if it is unknown",
            r.high_watermark,
        ),
        (
            "log_end_offset",
            "The current raft log end offset",
            r.log_end_offset,
        ),
        (
            "log_end_epoch",
            "The current raft log end epoch",
            r.log_end_epoch,
        ),
        (
            "number_unknown_voter_connections",
            "Number of unknown voters whose connection information is not cached",
            r.number_unknown_voter_connections,
        ),
    ];
    for (attribute, help, value) in ints {
        gauge(e, &name(attribute), help, value)?;
    }
    let floats = [
        (
            "commit_latency_avg",
            "The average time in milliseconds to commit an entry in the raft log (per record, leader only)",
            r.commit_latency_avg,
        ),
        (
            "commit_latency_max",
            "The maximum time in milliseconds to commit an entry in the raft log (per record, leader only)",
            r.commit_latency_max,
        ),
        (
            "election_latency_avg",
            "The average time in milliseconds spent on electing a new leader",
            r.election_latency_avg,
        ),
        (
            "election_latency_max",
            "The maximum time in milliseconds spent on electing a new leader",
            r.election_latency_max,
        ),
        (
            "append_records_rate",
            "The average number of records appended per sec as the leader of the raft quorum",
            r.append_records_rate,
        ),
        (
            "fetch_records_rate",
            "The average number of records fetched from the leader of the raft quorum",
            r.fetch_records_rate,
        ),
        (
            "poll_idle_ratio_avg",
            "The ratio of time the replication driver is idle as opposed to doing work",
            r.poll_idle_ratio_avg,
        ),
    ];
    for (attribute, help, value) in floats {
        gauge(e, &name(attribute), help, value)?;
    }
    Ok(())
}

fn encode_kraft(s: &MetricsSnapshot, e: &mut DescriptorEncoder) -> std::fmt::Result {
    counter(
        e,
        "kraft_appended_records",
        "Data records appended to the log, as leader or follower",
        s.appended_records,
    )?;
    counter(
        e,
        "kraft_appended_bytes",
        "Bytes of record batches appended to the log (control batches included)",
        s.appended_bytes,
    )?;
    let mut frames = e.encode_descriptor(
        "kraft_rejected_frames",
        "Frames refused on the listener (the connection is closed), by reason",
        None,
        MetricType::Counter,
    )?;
    for (reason, n) in s.rejected_frames {
        let labels = [("reason", reason.as_str())];
        ConstCounter::new(n).encode(frames.encode_family(&labels)?)?;
    }
    let mut batches = e.encode_descriptor(
        "kraft_rejected_batches",
        "Record batches or snapshot data fetched from the leader and refused, by reason",
        None,
        MetricType::Counter,
    )?;
    for (reason, n) in s.rejected_batches {
        let labels = [("reason", reason.as_str())];
        ConstCounter::new(n).encode(batches.encode_family(&labels)?)?;
    }
    gauge(
        e,
        "kraft_connections",
        "Connections open on the quorum listener (peers and Kafka clients)",
        s.connections_open,
    )?;
    counter(
        e,
        "kraft_connections_accepted",
        "Connections admitted on the quorum listener",
        s.connections_accepted,
    )?;
    counter(
        e,
        "kraft_connections_refused",
        "Connections turned away by max.connections.per.ip",
        s.connections_refused,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::CurrentState;

    #[test]
    fn renders_kafka_names_and_kraft_names() {
        let metrics = Arc::new(NodeMetrics::new());
        metrics.set_raft_state(crate::metrics::RaftState {
            state: CurrentState::Leader,
            leader: 2,
            vote: 2,
            epoch: 7,
            high_watermark: 40,
            log_end_offset: 41,
            log_end_epoch: 7,
        });
        metrics.record_fsync(std::time::Duration::from_millis(2));
        let text = Exposition::new(metrics).render();
        for line in [
            "kafka_server_raft_metrics_current_state_info{state=\"leader\"} 1",
            "kafka_server_raft_metrics_current_leader 2",
            "kafka_server_raft_metrics_current_epoch 7",
            "kafka_server_raft_metrics_high_watermark 40",
            "kafka_server_raft_metrics_log_end_offset 41",
            "kafka_server_raft_metrics_commit_latency_avg NaN",
            "kafka_server_raft_metrics_poll_idle_ratio_avg 1.0",
            "kafka_server_raft_metrics_fetch_records_rate 0.0",
            "kraft_fsync_duration_seconds_count 1",
            "kraft_rejected_frames_total{reason=\"peer_bad_frame\"} 0",
            "# TYPE kraft_appended_bytes counter",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "no '{line}' in:\n{text}");
        }
    }
}
