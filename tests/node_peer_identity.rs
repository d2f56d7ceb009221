//! A voter is dialled at its address, but its answers count only if the node there is that
//! voter: node 2, whose voter list puts node 1 at the address where node 3 listens, refuses the
//! connection (naming both) and never leads on node 3's answers. (A bootstrap server, known
//! only by its address, is accepted whatever its id: tests/node_dynamic.rs.)

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::Lines;
use common::cluster::{raft_config, single_node_options, wait_until_leader};
use kraft::node::NodeHandle;
use kraft::raft::RoleKind;
use kraft::types::NodeId;

/// How long the refusal may take to show on a loaded machine.
const SETTLE: Duration = Duration::from_secs(20);

#[actix_rt::test]
async fn a_voter_address_serving_another_node_is_refused() {
    let lines = Lines::default();
    let writer = lines.clone();
    let _ = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_env_filter("warn")
        .try_init();
    // Node 3: a single voter of its own, in the same cluster, listening somewhere.
    let other = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let mut options = single_node_options(other.path(), &[3]);
    options.node_id = Some(NodeId(3));
    options.listener = Some(listener);
    let node3 = NodeHandle::start(options).await.unwrap();
    wait_until_leader(&node3).await;

    // Node 2 thinks node 1 is at node 3's address.
    let dir = tempfile::tempdir().unwrap();
    let mut options = single_node_options(dir.path(), &[1, 2]);
    options.node_id = Some(NodeId(2));
    options.voters = BTreeSet::from([NodeId(1), NodeId(2)]);
    options.voter_addresses = vec![(NodeId(1), address.clone())];
    options.raft = Some(raft_config());
    let node2 = NodeHandle::start(options).await.unwrap();
    let needle = format!("the node at {address} is Some(NodeId(3)), not node 1");
    let deadline = Instant::now() + SETTLE;
    while !lines.text().contains(&needle) {
        assert!(Instant::now() < deadline, "no refusal: {}", lines.text());
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let status = node2.describe().await.unwrap();
    assert_ne!(status.role, RoleKind::Leader, "{status:?}");
    node2.shutdown().await;
    node3.shutdown().await;
}
