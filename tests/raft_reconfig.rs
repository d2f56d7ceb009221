//! Unit tests of the core's dynamic quorum (KIP-853): the voter set read from the log, the
//! bootstrap voters copied by the first leader, AddVoter and RemoveVoter with Kafka's
//! preconditions, a change in force from its append and reverted by truncation, a removed
//! leader resigning once its removal commits, and a replaced disk treated as an observer.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kraft::raft::{
    Action, FetchRequest, FetchResponse, InboundId, Input, ListenerAddress, LogView, MAX_VOTERS,
    PersistedElection, RaftConfig, Replica, ReplicaKey, Request, RequestId, Response, RoleKind,
    Voter, VoterChangeError, VoterChangeId, VoterSet, VoterSetHistory,
};
use kraft::record::{BatchBuilder, BatchKind, ControlRecord, KRaftVersionRecord, RecordBatch};
use kraft::types::{Epoch, NodeId, Offset};
use kraft::uuid::Uuid;

const T0: Duration = Duration::from_secs(1_000_000);
const CLUSTER: &str = "c";
const LISTENER: &str = "CONTROLLER";
const TIMEOUT: Duration = Duration::from_secs(30);

fn dir(id: i32) -> Uuid {
    Uuid([id as u8 + 0x40; 16])
}

fn key(id: i32) -> ReplicaKey {
    ReplicaKey {
        id: NodeId(id),
        directory_id: Some(dir(id)),
    }
}

fn voter(id: i32) -> Voter {
    Voter {
        key: key(id),
        endpoints: BTreeMap::from([(
            LISTENER.to_string(),
            ListenerAddress {
                host: format!("host{id}"),
                port: 9000 + id as u16,
            },
        )]),
        kraft_versions: (0, 1),
    }
}

fn set(ids: &[i32]) -> VoterSet {
    VoterSet::new(ids.iter().map(|id| voter(*id))).unwrap()
}

/// An empty log whose bootstrap checkpoint holds kraft.version 1 and `ids` as voters.
fn bootstrapped(ids: &[i32]) -> LogView {
    let mut history = VoterSetHistory::new(None);
    let records = [
        ControlRecord::KRaftVersion(KRaftVersionRecord {
            version: 0,
            kraft_version: 1,
        }),
        ControlRecord::Voters(set(ids).to_record()),
    ];
    history.load_snapshot(Offset(0), &records).unwrap();
    LogView::empty().with_voter_history(history)
}

fn config(local: i32) -> RaftConfig {
    let mut c = RaftConfig::new(CLUSTER, Some(NodeId(local)), []);
    c.local_directory_id = Some(dir(local));
    c.listener_name = Some(LISTENER.to_string());
    c
}

/// Steps `input`, acknowledging every election persist it (and what follows) asks for.
fn settle(r: &mut Replica, at: Duration, input: Input) -> Vec<Action> {
    let mut actions = r.step(at, input);
    let mut i = 0;
    while i < actions.len() {
        if matches!(actions[i], Action::PersistElection(_)) {
            let more = r.step(at, Input::ElectionPersisted);
            actions.extend(more);
        }
        i += 1;
    }
    actions
}

fn flush_all(r: &mut Replica, at: Duration) -> Vec<Action> {
    let end = r.log().log_end_offset();
    settle(r, at, Input::Flushed { offset: end })
}

/// A replica started with its start-up persists acknowledged, and all the actions of that.
fn start(
    cfg: RaftConfig,
    stored: Option<PersistedElection>,
    log: LogView,
) -> (Replica, Vec<Action>) {
    let (mut r, first) = Replica::start(cfg, stored, log, T0, 7);
    let mut actions = first.clone();
    for a in &first {
        if matches!(a, Action::PersistElection(_)) {
            let more = settle(&mut r, T0, Input::ElectionPersisted);
            actions.extend(more);
        }
    }
    (r, actions)
}

/// A dynamic quorum's only voter, started on a bootstrapped log: it elects itself at once.
fn standalone(local: i32) -> (Replica, Vec<Action>) {
    let (mut r, mut actions) = start(config(local), None, bootstrapped(&[local]));
    actions.extend(flush_all(&mut r, T0));
    (r, actions)
}

fn appended(actions: &[Action]) -> Vec<Bytes> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Append { batches } => Some(batches.clone()),
            _ => None,
        })
        .collect()
}

fn control_of(batch: &Bytes) -> Vec<ControlRecord> {
    let batch = RecordBatch::decode(batch.clone()).unwrap();
    kraft::raft::control_records(&batch)
        .unwrap()
        .into_iter()
        .map(|(_, r)| r)
        .collect()
}

fn fetch(from: i32, directory: Uuid, epoch: Epoch, offset: Offset, last_epoch: Epoch) -> Input {
    Input::Request {
        from: InboundId(from as u64),
        request: Request::Fetch(FetchRequest {
            cluster_id: CLUSTER.into(),
            replica_id: Some(NodeId(from)),
            replica_directory_id: Some(directory),
            current_leader_epoch: epoch,
            fetch_offset: offset,
            last_fetched_epoch: last_epoch,
            high_watermark: None,
            max_wait_ms: 0,
            max_bytes: 1 << 20,
        }),
    }
}

/// `id` fetches at the leader's log end with its own directory id.
fn caught_up_fetch(r: &mut Replica, id: i32, at: Duration) -> Vec<Action> {
    let (epoch, end) = (r.epoch(), r.log().log_end_offset());
    settle(r, at, fetch(id, dir(id), epoch, end, epoch))
}

fn changed(actions: &[Action]) -> Vec<(VoterChangeId, Result<(), VoterChangeError>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::VoterChanged { id, result } => Some((*id, result.clone())),
            _ => None,
        })
        .collect()
}

fn add(r: &mut Replica, id: u64, v: Voter, at: Duration) -> Vec<Action> {
    add_within(r, id, v, at, TIMEOUT)
}

fn add_within(r: &mut Replica, id: u64, v: Voter, at: Duration, timeout: Duration) -> Vec<Action> {
    let input = Input::AddVoter {
        id: VoterChangeId(id),
        voter: v,
        timeout,
    };
    settle(r, at, input)
}

fn remove(r: &mut Replica, id: u64, k: ReplicaKey, at: Duration) -> Vec<Action> {
    settle(
        r,
        at,
        Input::RemoveVoter {
            id: VoterChangeId(id),
            voter: k,
            timeout: TIMEOUT,
        },
    )
}

fn ids(r: &Replica) -> Vec<i32> {
    r.voter_set().unwrap().ids().map(|n| n.0).collect()
}

/// Leader 1 of {1, 2}: 2 was added as a caught-up observer, and the change committed.
fn two_voter_leader() -> Replica {
    let (mut r, _) = standalone(1);
    let at = T0 + Duration::from_millis(10);
    caught_up_fetch(&mut r, 2, at);
    add(&mut r, 1, voter(2), at);
    flush_all(&mut r, at);
    let actions = caught_up_fetch(&mut r, 2, at);
    assert_eq!(changed(&actions), vec![(VoterChangeId(1), Ok(()))]);
    r
}

#[test]
fn the_first_leader_copies_the_bootstrap_voters_into_its_leader_change_batch() {
    let (r, actions) = standalone(1);
    assert_eq!(r.role(), RoleKind::Leader);
    let batches = appended(&actions);
    assert_eq!(batches.len(), 1, "{actions:?}");
    let records = control_of(&batches[0]);
    assert!(matches!(records[0], ControlRecord::LeaderChange(_)));
    assert_eq!(
        records[1],
        ControlRecord::KRaftVersion(KRaftVersionRecord {
            version: 0,
            kraft_version: 1
        })
    );
    assert_eq!(records[2], ControlRecord::Voters(set(&[1]).to_record()));
    // The set now lives in the log, at the Voters record's offset (2), and is committed.
    assert_eq!(r.log().voters().latest_entry().unwrap().0, Offset(2));
    assert_eq!(r.high_watermark(), Some(Offset(3)));
    assert!(!r.has_uncommitted_voter_change());
    assert_eq!(r.snapshot_control_records(Offset(3)).len(), 2);
}

#[test]
fn a_later_leader_does_not_copy_the_voters_again() {
    let (r, _) = standalone(1);
    let log = r.log().clone();
    // Restarted as a former leader: resigned, then leads a new epoch with the set from the log.
    let stored = PersistedElection {
        epoch: r.epoch(),
        leader_id: Some(NodeId(1)),
        voted_id: Some(NodeId(1)),
    };
    let (_r2, actions) = start(config(1), Some(stored), log);
    let records: Vec<ControlRecord> = appended(&actions).iter().flat_map(control_of).collect();
    assert_eq!(records.len(), 1, "only a LeaderChange: {records:?}");
}

#[test]
fn adding_a_caught_up_observer_takes_effect_on_append_and_answers_on_commit() {
    let (mut r, _) = standalone(1);
    let at = T0 + Duration::from_millis(10);
    caught_up_fetch(&mut r, 2, at);
    let before = r.log().log_end_offset();
    let actions = add(&mut r, 7, voter(2), at);
    let batches = appended(&actions);
    assert_eq!(
        control_of(&batches[0]),
        vec![ControlRecord::Voters(set(&[1, 2]).to_record())]
    );
    // In force from the append: 2 now counts, so the leader's own flush commits nothing.
    assert_eq!(ids(&r), vec![1, 2]);
    assert!(r.has_uncommitted_voter_change());
    let actions = flush_all(&mut r, at);
    assert_eq!(r.high_watermark(), Some(before));
    assert!(changed(&actions).is_empty());
    // The new voter's fetch past the record commits it, and the change is answered.
    let actions = caught_up_fetch(&mut r, 2, at);
    assert_eq!(r.high_watermark(), Some(r.log().log_end_offset()));
    assert_eq!(changed(&actions), vec![(VoterChangeId(7), Ok(()))]);
}

#[test]
fn the_endpoints_of_a_new_voter_are_announced_when_it_is_added() {
    let (mut r, _) = standalone(1);
    let at = T0 + Duration::from_millis(10);
    caught_up_fetch(&mut r, 2, at);
    let actions = add(&mut r, 1, voter(2), at);
    let endpoints = actions.iter().find_map(|a| match a {
        Action::Endpoints(e) => Some(e.clone()),
        _ => None,
    });
    assert_eq!(
        endpoints,
        Some(BTreeMap::from([(
            NodeId(2),
            ListenerAddress {
                host: "host2".into(),
                port: 9002
            }
        )]))
    );
}

#[test]
fn removing_the_last_other_voter_announces_that_no_peer_is_left() {
    let (mut r, _) = standalone(1);
    let at = T0 + Duration::from_millis(10);
    caught_up_fetch(&mut r, 2, at);
    add(&mut r, 1, voter(2), at);
    flush_all(&mut r, at);
    let actions = caught_up_fetch(&mut r, 2, at);
    assert_eq!(changed(&actions), vec![(VoterChangeId(1), Ok(()))]);
    // Alone again: the driver must hear that 2 is no longer a peer, or it keeps dialling it.
    let actions = remove(&mut r, 2, key(2), at);
    let endpoints = actions.iter().rev().find_map(|a| match a {
        Action::Endpoints(e) => Some(e.clone()),
        _ => None,
    });
    assert_eq!(endpoints, Some(BTreeMap::new()));
}

#[test]
fn a_voter_set_grows_to_max_voters_and_no_further() {
    let (mut r, _) = standalone(1);
    let at = T0 + Duration::from_millis(10);
    for id in 2..=MAX_VOTERS as i32 {
        caught_up_fetch(&mut r, id, at);
        let actions = add(&mut r, id as u64, voter(id), at);
        assert!(changed(&actions).is_empty(), "{:?}", changed(&actions));
        flush_all(&mut r, at);
        for other in 2..=id {
            caught_up_fetch(&mut r, other, at);
        }
        assert!(
            !r.has_uncommitted_voter_change(),
            "voter {id} not committed"
        );
    }
    assert_eq!(ids(&r).len(), MAX_VOTERS);
    // One more would be past what the driver dials and what Kafka's tools accept.
    let next = MAX_VOTERS as i32 + 1;
    caught_up_fetch(&mut r, next, at);
    let actions = add(&mut r, 999, voter(next), at);
    assert_eq!(changed(&actions)[0].1.as_ref().unwrap_err().code(), 42);
    assert!(appended(&actions).is_empty());
}

#[test]
fn a_voter_change_is_refused_with_kafkas_reasons() {
    let (mut r, _) = standalone(1);
    let at = T0 + Duration::from_millis(10);
    // Not caught up: 2 never fetched.
    let actions = add(&mut r, 1, voter(2), at);
    assert_eq!(
        changed(&actions),
        vec![(VoterChangeId(1), Err(VoterChangeError::NotCaughtUp(key(2))))]
    );
    assert!(appended(&actions).is_empty());
    // Already a voter.
    let actions = add(&mut r, 2, voter(1), at);
    assert_eq!(changed(&actions)[0].1.as_ref().unwrap_err().code(), 126);
    // No directory id.
    let mut bare = voter(3);
    bare.key.directory_id = None;
    let actions = add(&mut r, 3, bare, at);
    assert_eq!(changed(&actions)[0].1.as_ref().unwrap_err().code(), 42);
    // No endpoint on the quorum listener.
    let mut unreachable = voter(3);
    unreachable.endpoints.clear();
    let actions = add(&mut r, 4, unreachable, at);
    assert_eq!(changed(&actions)[0].1.as_ref().unwrap_err().code(), 42);
    // The last voter cannot be removed; an unknown key is not found.
    let actions = remove(&mut r, 5, key(1), at);
    assert_eq!(
        changed(&actions),
        vec![(
            VoterChangeId(5),
            Err(VoterChangeError::VoterNotFound(key(1)))
        )]
    );
    let mut other_disk = key(1);
    other_disk.directory_id = Some(dir(9));
    let actions = remove(&mut r, 6, other_disk, at);
    assert_eq!(changed(&actions)[0].1.as_ref().unwrap_err().code(), 127);
}

#[test]
fn only_one_change_at_a_time_and_only_after_the_last_one_committed() {
    let (mut r, _) = standalone(1);
    let at = T0 + Duration::from_millis(10);
    caught_up_fetch(&mut r, 2, at);
    caught_up_fetch(&mut r, 3, at);
    add(&mut r, 1, voter(2), at);
    let actions = add(&mut r, 2, voter(3), at);
    assert_eq!(
        changed(&actions),
        vec![(VoterChangeId(2), Err(VoterChangeError::ChangeInProgress))]
    );
    assert_eq!(changed(&actions)[0].1.as_ref().unwrap_err().code(), 7);
    assert!(appended(&actions).is_empty());
}

#[test]
fn a_static_quorum_refuses_voter_changes() {
    let cfg = RaftConfig::new(CLUSTER, Some(NodeId(1)), [NodeId(1)]);
    let (mut r, _) = start(cfg, None, LogView::empty());
    flush_all(&mut r, T0);
    assert_eq!(r.role(), RoleKind::Leader);
    assert_eq!(r.kraft_version(), 0);
    let actions = add(&mut r, 1, voter(2), T0);
    assert_eq!(
        changed(&actions),
        vec![(VoterChangeId(1), Err(VoterChangeError::StaticQuorum))]
    );
    assert_eq!(changed(&actions)[0].1.as_ref().unwrap_err().code(), 35);
    assert!(r.snapshot_control_records(Offset(1)).is_empty());
}

#[test]
fn a_follower_is_told_it_is_not_the_leader() {
    let (mut r, _) = start(config(2), None, bootstrapped(&[1, 2, 3]));
    let actions = add(&mut r, 1, voter(4), T0);
    assert!(matches!(
        changed(&actions)[..],
        [(_, Err(VoterChangeError::NotLeader { .. }))]
    ));
    assert_eq!(changed(&actions)[0].1.as_ref().unwrap_err().code(), 6);
}

#[test]
fn a_change_that_does_not_commit_in_time_is_answered_timed_out() {
    let (mut r, _) = standalone(1);
    let at = T0 + Duration::from_millis(10);
    caught_up_fetch(&mut r, 2, at);
    // Shorter than check-quorum (3 s), which would otherwise end the leadership first.
    let timeout = Duration::from_secs(1);
    add_within(&mut r, 1, voter(2), at, timeout);
    flush_all(&mut r, at);
    // 2 never fetches again: the change stays uncommitted until its deadline.
    let late = at + timeout;
    assert!(r.next_deadline().is_some_and(|d| d <= late));
    let actions = settle(&mut r, late, Input::Tick);
    assert_eq!(
        changed(&actions),
        vec![(VoterChangeId(1), Err(VoterChangeError::TimedOut))]
    );
    // The record stays in force; no other change may start until it commits.
    assert_eq!(ids(&r), vec![1, 2]);
    let actions = add(&mut r, 2, voter(3), late);
    assert_eq!(
        changed(&actions),
        vec![(VoterChangeId(2), Err(VoterChangeError::UncommittedChange))]
    );
}

#[test]
fn a_removed_leader_leads_until_its_removal_commits_then_resigns() {
    let mut r = two_voter_leader();
    let at = T0 + Duration::from_millis(20);
    let actions = remove(&mut r, 9, key(1), at);
    assert_eq!(control_of(&appended(&actions)[0]).len(), 1);
    assert_eq!(ids(&r), vec![2]);
    assert_eq!(r.role(), RoleKind::Leader);
    // Its own flush no longer counts: only 2's fetch commits the removal.
    let actions = flush_all(&mut r, at);
    assert!(changed(&actions).is_empty());
    assert_eq!(r.role(), RoleKind::Leader);
    let actions = caught_up_fetch(&mut r, 2, at);
    assert_eq!(changed(&actions), vec![(VoterChangeId(9), Ok(()))]);
    assert_eq!(r.role(), RoleKind::Resigned);
    // It never stands again: once its resignation runs out it is an unattached observer.
    let (at, _) = (r.next_deadline().unwrap(), ());
    settle(&mut r, at, Input::Tick);
    assert_eq!(r.role(), RoleKind::Unattached);
    assert_eq!(r.next_deadline().filter(|d| *d <= at), None);
}

#[test]
fn a_fetch_with_a_voters_id_but_another_directory_id_is_an_observers() {
    let mut r = two_voter_leader();
    let at = T0 + Duration::from_millis(20);
    // A record appended; only voter 2 with its own disk can commit it.
    settle(
        &mut r,
        at,
        Input::Propose {
            id: kraft::raft::ProposalId(1),
            records: vec![Bytes::from_static(b"x")],
        },
    );
    flush_all(&mut r, at);
    let hw = r.high_watermark();
    let (epoch, end) = (r.epoch(), r.log().log_end_offset());
    settle(&mut r, at, fetch(2, dir(99), epoch, end, epoch));
    assert_eq!(r.high_watermark(), hw, "a wiped disk must not commit");
    assert!(r.observer_progress().contains_key(&NodeId(2)));
    caught_up_fetch(&mut r, 2, at);
    assert_eq!(r.high_watermark(), Some(end));
}

#[test]
fn a_replica_whose_directory_id_is_not_the_voters_never_campaigns() {
    let mut cfg = config(2);
    cfg.local_directory_id = Some(dir(77));
    let (r, _) = start(cfg, None, bootstrapped(&[2]));
    assert_eq!(r.role(), RoleKind::Unattached);
    assert_eq!(r.next_deadline(), None);
}

#[test]
fn a_follower_applies_a_fetched_voter_change_and_reverts_it_on_truncation() {
    let (mut r, _) = start(config(2), None, bootstrapped(&[1, 2]));
    let epoch = Epoch(1);
    let leader_change = {
        let mut b = BatchBuilder::new(BatchKind::Control, Offset(0), epoch);
        b.append_control(0, &ControlRecord::Voters(set(&[1, 2]).to_record()))
            .unwrap();
        b.build().unwrap()
    };
    let added = {
        let mut b = BatchBuilder::new(BatchKind::Control, Offset(1), epoch);
        b.append_control(0, &ControlRecord::Voters(set(&[1, 2, 3]).to_record()))
            .unwrap();
        b.build().unwrap()
    };
    let mut records = leader_change.to_vec();
    records.extend_from_slice(&added);
    let id = follow_leader_1(&mut r, 2);
    settle(&mut r, T0, fetch_answer(id, 1, Bytes::from(records), None));
    assert_eq!(ids(&r), vec![1, 2, 3]);
    // A new leader's log diverges at offset 1: the uncommitted change is reverted.
    let actions = flush_all(&mut r, T0);
    let diverging = kraft::types::OffsetAndEpoch {
        offset: Offset(1),
        epoch: Epoch(0),
    };
    let answer = fetch_answer(fetch_id(&actions), 1, Bytes::new(), Some(diverging));
    settle(&mut r, T0, answer);
    assert_eq!(r.log().log_end_offset(), Offset(1));
    assert_eq!(ids(&r), vec![1, 2]);
}

#[test]
fn a_fetched_voter_change_of_two_voters_at_once_is_refused() {
    let (mut r, _) = start(config(2), None, bootstrapped(&[1, 2]));
    let epoch = Epoch(1);
    let mut batches = Vec::new();
    for (offset, voters) in [(0, vec![1, 2]), (1, vec![1, 2, 3, 4])] {
        let mut b = BatchBuilder::new(BatchKind::Control, Offset(offset), epoch);
        b.append_control(0, &ControlRecord::Voters(set(&voters).to_record()))
            .unwrap();
        batches.extend_from_slice(&b.build().unwrap());
    }
    let id = follow_leader_1(&mut r, 2);
    let actions = settle(&mut r, T0, fetch_answer(id, 0, Bytes::from(batches), None));
    assert_eq!(r.log().log_end_offset(), Offset(1));
    assert_eq!(ids(&r), vec![1, 2]);
    assert!(
        actions.iter().any(
            |a| matches!(a, Action::FetchedRecordsRefused { offset, .. } if *offset == Offset(1))
        ),
        "{actions:?}"
    );
}

/// Leader 1 announces epoch 1 to `r` (replica `local`); returns the id of the fetch `r` then
/// sends it.
fn follow_leader_1(r: &mut Replica, local: i32) -> RequestId {
    let begin = Input::Request {
        from: InboundId(1),
        request: Request::BeginQuorumEpoch(kraft::raft::BeginQuorumEpochRequest {
            cluster_id: CLUSTER.into(),
            voter_id: NodeId(local),
            voter_directory_id: None,
            leader_id: NodeId(1),
            leader_epoch: Epoch(1),
        }),
    };
    let mut actions = settle(r, T0, begin);
    actions.extend(settle(r, T0, Input::Tick));
    fetch_id(&actions)
}

/// Leader 1's answer (epoch 1) to the fetch `id`.
fn fetch_answer(
    id: RequestId,
    hw: i64,
    records: Bytes,
    diverging: Option<kraft::types::OffsetAndEpoch>,
) -> Input {
    Input::Response {
        from: NodeId(1),
        request_id: id,
        response: Response::Fetch(FetchResponse {
            error: kraft::raft::ErrorCode::None,
            leader_id: Some(NodeId(1)),
            leader_epoch: Epoch(1),
            high_watermark: Some(Offset(hw)),
            log_start_offset: Offset(0),
            diverging_epoch: diverging,
            snapshot_id: None,
            leader_endpoint: None,
            records,
        }),
    }
}

fn fetch_id(actions: &[Action]) -> RequestId {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Send {
                request_id,
                request: Request::Fetch(_),
                ..
            } => Some(*request_id),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no fetch sent: {actions:?}"))
}

// ---- a replica changing its own entry: auto-join, a replaced disk's entry, endpoints ----------

fn with_endpoint(mut c: RaftConfig, id: i32, port: u16) -> RaftConfig {
    c.local_endpoints = BTreeMap::from([(
        LISTENER.to_string(),
        ListenerAddress {
            host: format!("host{id}"),
            port,
        },
    )]);
    c
}

/// Replica `cfg` following leader 1 of `voters` in epoch 1 after one empty fetch answer (high
/// watermark 0: caught up); returns the actions of that answer.
fn following(cfg: RaftConfig, voters: &[i32]) -> (Replica, Vec<Action>) {
    let local = cfg.local_id.unwrap();
    let (mut r, _) = start(cfg, None, bootstrapped(voters));
    let id = follow_leader_1(&mut r, local.0);
    let actions = settle(&mut r, T0, fetch_answer(id, 0, Bytes::new(), None));
    (r, actions)
}

fn own_changes(actions: &[Action]) -> Vec<kraft::raft::VoterChange> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                to,
                request: Request::VoterChange(r),
                ..
            } if *to == NodeId(1) => Some(r.change.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn an_observer_with_auto_join_adds_itself_once_caught_up() {
    let mut cfg = with_endpoint(config(2), 2, 9002);
    cfg.auto_join = true;
    let (_, actions) = following(cfg.clone(), &[1]);
    assert_eq!(
        own_changes(&actions),
        vec![kraft::raft::VoterChange::Add(voter(2))]
    );
    // Without auto-join it stays an observer.
    cfg.auto_join = false;
    let (_, actions) = following(cfg, &[1]);
    assert!(own_changes(&actions).is_empty());
}

#[test]
fn an_observer_on_a_replaced_disk_first_removes_its_old_entry() {
    let mut cfg = with_endpoint(config(2), 2, 9002);
    cfg.auto_join = true;
    cfg.local_directory_id = Some(dir(50));
    let (_, actions) = following(cfg, &[1, 2]);
    assert_eq!(
        own_changes(&actions),
        vec![kraft::raft::VoterChange::Remove(key(2))]
    );
}

#[test]
fn a_voter_whose_endpoints_changed_updates_them_once_per_leader() {
    let cfg = with_endpoint(config(2), 2, 9999);
    let (mut r, actions) = following(cfg, &[1, 2]);
    let mut moved = voter(2);
    moved.endpoints.get_mut(LISTENER).unwrap().port = 9999;
    assert_eq!(
        own_changes(&actions),
        vec![kraft::raft::VoterChange::Update(moved)]
    );
    let id = actions
        .iter()
        .find_map(|a| match a {
            Action::Send {
                request_id,
                request: Request::VoterChange(_),
                ..
            } => Some(*request_id),
            _ => None,
        })
        .unwrap();
    let ok = Input::Response {
        from: NodeId(1),
        request_id: id,
        response: Response::VoterChange(kraft::raft::VoterChangeResponse {
            result: Ok(()),
            leader_id: Some(NodeId(1)),
            leader_epoch: Epoch(1),
        }),
    };
    settle(&mut r, T0, ok);
    let later = settle(&mut r, T0 + Duration::from_secs(5), Input::Tick);
    assert!(own_changes(&later).is_empty(), "{later:?}");
}

fn peer_change(from: u64, change: kraft::raft::VoterChange, cluster: &str) -> Input {
    Input::Request {
        from: InboundId(from),
        request: Request::VoterChange(kraft::raft::VoterChangeRequest {
            cluster_id: cluster.into(),
            change,
        }),
    }
}

fn peer_answers(actions: &[Action], to: u64) -> Vec<Result<(), VoterChangeError>> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Respond {
                to: t,
                response: Response::VoterChange(r),
            } if *t == InboundId(to) => Some(r.result.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_leader_answers_a_joining_replica_once_its_addition_commits() {
    let (mut r, _) = standalone(1);
    let at = T0 + Duration::from_millis(10);
    caught_up_fetch(&mut r, 2, at);
    let actions = settle(
        &mut r,
        at,
        peer_change(42, kraft::raft::VoterChange::Add(voter(2)), CLUSTER),
    );
    assert_eq!(appended(&actions).len(), 1);
    assert!(peer_answers(&actions, 42).is_empty());
    flush_all(&mut r, at);
    let actions = caught_up_fetch(&mut r, 2, at);
    assert_eq!(peer_answers(&actions, 42), vec![Ok(())]);
    assert_eq!(ids(&r), vec![1, 2]);
}

#[test]
fn the_leader_applies_an_endpoint_update_and_answers_at_once() {
    let mut r = two_voter_leader();
    let at = T0 + Duration::from_millis(20);
    let mut moved = voter(2);
    moved.endpoints.get_mut(LISTENER).unwrap().port = 9999;
    let actions = settle(
        &mut r,
        at,
        peer_change(43, kraft::raft::VoterChange::Update(moved.clone()), CLUSTER),
    );
    assert_eq!(peer_answers(&actions, 43), vec![Ok(())]);
    assert_eq!(r.voter_set().unwrap().get(NodeId(2)), Some(&moved));
    assert_eq!(appended(&actions).len(), 1);
    // The same endpoints again: nothing to append.
    flush_all(&mut r, at);
    caught_up_fetch(&mut r, 2, at);
    let actions = settle(
        &mut r,
        at,
        peer_change(44, kraft::raft::VoterChange::Update(moved), CLUSTER),
    );
    assert_eq!(peer_answers(&actions, 44), vec![Ok(())]);
    assert!(appended(&actions).is_empty());
    // Another cluster's request is refused.
    let actions = settle(
        &mut r,
        at,
        peer_change(45, kraft::raft::VoterChange::Remove(key(2)), "other"),
    );
    assert_eq!(
        peer_answers(&actions, 45),
        vec![Err(VoterChangeError::InconsistentClusterId)]
    );
}

#[test]
fn an_update_without_the_kraft_version_in_force_is_refused() {
    let mut r = two_voter_leader();
    let at = T0 + Duration::from_millis(20);
    // Kafka's leader refuses an entry that does not support the kraft.version in force (1).
    let mut old = voter(2);
    old.kraft_versions = (0, 0);
    let actions = settle(
        &mut r,
        at,
        peer_change(46, kraft::raft::VoterChange::Update(old), CLUSTER),
    );
    let answers = peer_answers(&actions, 46);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].as_ref().unwrap_err().code(), 42);
    assert!(appended(&actions).is_empty());
    assert_eq!(r.voter_set().unwrap().get(NodeId(2)), Some(&voter(2)));
}

// ---- elections across voter sets ------------------------------------------------------------

/// A log of epoch 1 whose Voters records set `sets` at offsets 0, 1, … (one batch each).
fn log_with_sets(sets: &[&[i32]]) -> LogView {
    let mut history = VoterSetHistory::new(None);
    history.add_kraft_version_at(Offset(-1), 1).unwrap();
    for (i, ids) in sets.iter().enumerate() {
        history.add_voters_at(Offset(i as i64), set(ids)).unwrap();
    }
    let epochs = vec![kraft::raft::EpochStart {
        epoch: Epoch(1),
        start_offset: Offset(0),
    }];
    LogView::new(Offset(0), Offset(sets.len() as i64), epochs).with_voter_history(history)
}

fn votes_sent(actions: &[Action]) -> Vec<NodeId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send {
                to,
                request: Request::Vote(_),
                ..
            } => Some(*to),
            _ => None,
        })
        .collect()
}

#[test]
fn a_leader_whose_removal_did_not_commit_may_stand_but_its_vote_does_not_count() {
    // 1 led {1, 2}, appended its own removal ({2}) and restarted before it committed: it may
    // hold the only copy, so it stands; only 2's vote can elect it.
    let stored = PersistedElection {
        epoch: Epoch(1),
        leader_id: Some(NodeId(1)),
        voted_id: Some(NodeId(1)),
    };
    let (mut r, _) = start(config(1), Some(stored), log_with_sets(&[&[1, 2], &[2]]));
    assert_eq!(r.role(), RoleKind::Resigned);
    let mut asked = Vec::new();
    for _ in 0..4 {
        let at = r.next_deadline().unwrap();
        let actions = settle(&mut r, at, Input::Tick);
        asked.extend(votes_sent(&actions));
        if r.role() == RoleKind::Prospective {
            break;
        }
    }
    assert_eq!(r.role(), RoleKind::Prospective);
    assert_eq!(asked, vec![NodeId(2)]);
}

#[test]
fn a_lagging_voter_of_a_dynamic_quorum_answers_a_candidate_it_does_not_know_yet() {
    // 2 knows {1, 2}; 3 was added after 2's log ends, and asks with a longer log.
    let (mut r, _) = start(config(2), None, log_with_sets(&[&[1, 2]]));
    let request = |candidate: i32, last_offset: i64| Input::Request {
        from: InboundId(9),
        request: Request::Vote(kraft::raft::VoteRequest {
            cluster_id: CLUSTER.into(),
            voter_id: NodeId(2),
            candidate_epoch: Epoch(2),
            candidate_id: NodeId(candidate),
            last_offset_epoch: Epoch(1),
            last_offset: Offset(last_offset),
            pre_vote: true,
            candidate_directory_id: Some(dir(candidate)),
            voter_directory_id: Some(dir(2)),
        }),
    };
    let granted = |actions: &[Action]| {
        actions.iter().find_map(|a| match a {
            Action::Respond {
                response: Response::Vote(v),
                ..
            } => Some((v.error, v.vote_granted)),
            _ => None,
        })
    };
    let actions = settle(&mut r, T0, request(3, 5));
    assert_eq!(
        granted(&actions),
        Some((kraft::raft::ErrorCode::None, true))
    );
    // A stranger whose log is not ahead is still no voter.
    let actions = settle(&mut r, T0, request(4, 1));
    assert_eq!(
        granted(&actions),
        Some((kraft::raft::ErrorCode::InconsistentVoterSet, false))
    );
}

#[test]
fn a_log_below_its_snapshot_fetches_the_covered_voter_records_again_without_refusing_them() {
    // A follower snapshotted at 3 what it knew committed, then a power loss took its unflushed
    // log: the snapshot's voter set is in the history at 2, the log is empty. The leader's
    // records at 0..3 come again and must neither be refused nor applied twice.
    let mut history = VoterSetHistory::new(None);
    let snapshot = kraft::types::OffsetAndEpoch {
        offset: Offset(3),
        epoch: Epoch(1),
    };
    history
        .load_snapshot(
            snapshot.offset,
            &[
                ControlRecord::KRaftVersion(KRaftVersionRecord {
                    version: 0,
                    kraft_version: 1,
                }),
                ControlRecord::Voters(set(&[1, 2]).to_record()),
            ],
        )
        .unwrap();
    let log = LogView::empty()
        .with_snapshot(Some(snapshot))
        .with_voter_history(history);
    let (mut r, _) = start(config(2), None, log);
    let id = follow_leader_1(&mut r, 2);
    let mut first = BatchBuilder::new(BatchKind::Control, Offset(0), Epoch(1));
    for record in [
        ControlRecord::KRaftVersion(KRaftVersionRecord {
            version: 0,
            kraft_version: 1,
        }),
        ControlRecord::KRaftVersion(KRaftVersionRecord {
            version: 0,
            kraft_version: 1,
        }),
        ControlRecord::Voters(set(&[1, 2]).to_record()),
    ] {
        first.append_control(0, &record).unwrap();
    }
    let actions = settle(
        &mut r,
        T0,
        fetch_answer(id, 3, first.build().unwrap(), None),
    );
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::FetchedRecordsRefused { .. })),
        "{actions:?}"
    );
    assert_eq!(r.log().log_end_offset(), Offset(3));
    assert_eq!(ids(&r), vec![1, 2]);
    assert_eq!(r.log().voters().latest_entry().unwrap().0, Offset(2));
}
