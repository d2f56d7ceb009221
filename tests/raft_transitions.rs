//! Unit tests of the protocol core: build a replica in a given state, feed one input, assert
//! the new state and the exact actions. One test per row of the transition table
//! (docs/protocol.md §4.1), the restart rules (§4.2) and the other rules of the core (§5–§14).

mod common;

use std::time::Duration;

use bytes::Bytes;
use kraft::raft::{
    Action, BeginQuorumEpochRequest, EndQuorumEpochRequest, EpochResponse, EpochStart, ErrorCode,
    FETCH_SNAPSHOT_MAX_BYTES, FetchRequest, FetchResponse, FetchSnapshotRequest,
    FetchSnapshotResponse, InboundId, Input, LogView, PersistedElection, ProposalId,
    ProposalOutcome, ProposeError, RaftConfig, Replica, Request, RequestId, Response, RoleKind,
    VoteRequest, VoteResponse,
};
use kraft::record::{BatchBuilder, BatchKind, ControlRecord, RecordBatch};
use kraft::types::{Epoch, NodeId, Offset, OffsetAndEpoch};

const T0: Duration = Duration::from_secs(1_000_000);
const CLUSTER: &str = "c";

fn n(id: i32) -> NodeId {
    NodeId(id)
}

fn config(local: Option<i32>, voters: &[i32]) -> RaftConfig {
    RaftConfig::new(
        CLUSTER,
        local.map(NodeId),
        voters.iter().map(|v| NodeId(*v)),
    )
}

fn election(epoch: i32, leader: Option<i32>, voted: Option<i32>) -> PersistedElection {
    PersistedElection {
        epoch: Epoch(epoch),
        leader_id: leader.map(NodeId),
        voted_id: voted.map(NodeId),
    }
}

fn start(
    local: i32,
    voters: &[i32],
    stored: Option<PersistedElection>,
    log: LogView,
) -> (Replica, Vec<Action>) {
    Replica::start(config(Some(local), voters), stored, log, T0, 7)
}

/// Acknowledges every election persist in `actions` (and any that follow), returning
/// `actions` extended with everything that was held back until then.
fn ack_persists(r: &mut Replica, at: Duration, mut actions: Vec<Action>) -> Vec<Action> {
    let mut pending = persists(&actions).len();
    while pending > 0 {
        let more = r.step(at, Input::ElectionPersisted);
        pending = pending - 1 + persists(&more).len();
        actions.extend(more);
    }
    actions
}

/// Steps `input` and acknowledges the persists it asked for.
fn settle(r: &mut Replica, at: Duration, input: Input) -> Vec<Action> {
    let actions = r.step(at, input);
    ack_persists(r, at, actions)
}

/// A replica started with its startup persists acknowledged, and all the actions of that.
fn boot(
    local: i32,
    voters: &[i32],
    stored: Option<PersistedElection>,
    log: LogView,
) -> (Replica, Vec<Action>) {
    let (mut r, actions) = start(local, voters, stored, log);
    let actions = ack_persists(&mut r, T0, actions);
    (r, actions)
}

fn started(local: i32, voters: &[i32], stored: Option<PersistedElection>) -> Replica {
    boot(local, voters, stored, LogView::empty()).0
}

fn sends(actions: &[Action]) -> Vec<(NodeId, Request)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { to, request, .. } => Some((*to, request.clone())),
            _ => None,
        })
        .collect()
}

fn persists(actions: &[Action]) -> Vec<PersistedElection> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::PersistElection(p) => Some(*p),
            _ => None,
        })
        .collect()
}

fn request_id(actions: &[Action], to: NodeId) -> RequestId {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Send {
                to: t, request_id, ..
            } if *t == to => Some(*request_id),
            _ => None,
        })
        .expect("a request to that node")
}

/// Moves time to the replica's next deadline and ticks.
fn tick_to_deadline(r: &mut Replica) -> (Duration, Vec<Action>) {
    let at = r.next_deadline().expect("a timer is running");
    (at, r.step(at, Input::Tick))
}

fn vote(
    epoch: i32,
    candidate: i32,
    last_epoch: i32,
    last_offset: i64,
    pre_vote: bool,
    to: i32,
) -> Input {
    Input::Request {
        from: InboundId(99),
        request: Request::Vote(VoteRequest {
            cluster_id: CLUSTER.into(),
            voter_id: n(to),
            candidate_epoch: Epoch(epoch),
            candidate_id: n(candidate),
            last_offset_epoch: Epoch(last_epoch),
            last_offset: Offset(last_offset),
            pre_vote,
            candidate_directory_id: None,
            voter_directory_id: None,
        }),
    }
}

fn vote_reply(actions: &[Action]) -> VoteResponse {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Respond {
                response: Response::Vote(v),
                ..
            } => Some(v.clone()),
            _ => None,
        })
        .expect("a vote response")
}

fn granted(epoch: i32, leader: Option<i32>) -> Response {
    Response::Vote(VoteResponse {
        error: ErrorCode::None,
        leader_id: leader.map(NodeId),
        leader_epoch: Epoch(epoch),
        vote_granted: true,
    })
}

fn rejected(epoch: i32) -> Response {
    Response::Vote(VoteResponse {
        error: ErrorCode::None,
        leader_id: None,
        leader_epoch: Epoch(epoch),
        vote_granted: false,
    })
}

fn begin_epoch(epoch: i32, leader: i32, to: i32) -> Input {
    Input::Request {
        from: InboundId(1),
        request: Request::BeginQuorumEpoch(BeginQuorumEpochRequest {
            cluster_id: CLUSTER.into(),
            voter_id: n(to),
            voter_directory_id: None,
            leader_id: n(leader),
            leader_epoch: Epoch(epoch),
        }),
    }
}

/// A three-voter replica 1 that became a Prospective after its election timer.
fn prospective() -> (Replica, Duration, Vec<Action>) {
    let mut r = started(1, &[1, 2, 3], None);
    let (at, actions) = tick_to_deadline(&mut r);
    (r, at, actions)
}

/// A three-voter replica 1 elected leader in epoch 1.
fn leader() -> (Replica, Duration) {
    let (mut r, at, actions) = prospective();
    let id = request_id(&actions, n(2));
    r.step(
        at,
        Input::Response {
            from: n(2),
            request_id: id,
            response: granted(0, None),
        },
    );
    let actions = r.step(at, Input::ElectionPersisted);
    let id = request_id(&actions, n(2));
    r.step(
        at,
        Input::Response {
            from: n(2),
            request_id: id,
            response: granted(1, None),
        },
    );
    r.step(at, Input::ElectionPersisted);
    r.step(at, Input::Flushed { offset: Offset(1) });
    assert_eq!(r.role(), RoleKind::Leader);
    (r, at)
}

// ---- startup (docs/protocol.md §4.2) -----------------------------------------------------------

#[test]
fn a_fresh_voter_starts_unattached_at_epoch_zero_and_persists_it() {
    let (r, actions) = start(1, &[1, 2, 3], None, LogView::empty());
    assert_eq!(r.role(), RoleKind::Unattached);
    assert_eq!(
        actions,
        vec![
            Action::PersistElection(election(0, None, None)),
            Action::LeaderChanged {
                epoch: Epoch(0),
                leader_id: None
            },
        ]
    );
}

#[test]
fn a_single_voter_elects_itself_at_startup_and_writes_leader_change() {
    let (r, actions) = start(1, &[1], None, LogView::empty());
    assert_eq!((r.role(), r.epoch()), (RoleKind::Leader, Epoch(1)));
    assert_eq!(
        persists(&actions),
        vec![
            election(0, None, None),
            election(1, None, Some(1)),
            election(1, Some(1), Some(1))
        ]
    );
    let Some(Action::Append { batches }) =
        actions.iter().find(|a| matches!(a, Action::Append { .. }))
    else {
        panic!("{actions:?}")
    };
    let batch = RecordBatch::decode(batches.clone()).unwrap();
    assert!(batch.is_control());
    assert_eq!((batch.base_offset(), batch.epoch()), (Offset(0), Epoch(1)));
    let record = &batch.decode_records().unwrap()[0];
    let control =
        ControlRecord::decode(record.key.as_ref().unwrap(), record.value.as_ref().unwrap())
            .unwrap();
    let ControlRecord::LeaderChange(change) = control else {
        panic!()
    };
    assert_eq!(
        (change.leader_id, change.voters, change.granting_voters),
        (1, vec![1], vec![1])
    );
    assert!(actions.contains(&Action::Flush));
}

#[test]
fn a_single_voter_commits_its_appends_once_flushed() {
    let (mut r, _) = start(1, &[1], None, LogView::empty());
    r.step(T0, Input::ElectionPersisted);
    r.step(T0, Input::ElectionPersisted);
    r.step(T0, Input::ElectionPersisted);
    let actions = r.step(T0, Input::Flushed { offset: Offset(1) });
    assert_eq!(actions, vec![Action::HighWatermark(Offset(1))]);
    let actions = r.step(
        T0,
        Input::Propose {
            id: ProposalId(5),
            records: vec![Bytes::from_static(b"x")],
        },
    );
    assert!(matches!(actions[0], Action::Append { .. }));
    assert_eq!(actions[1..], [Action::Flush], "committed only once flushed");
    assert_eq!(
        r.step(T0, Input::Flushed { offset: Offset(2) }),
        vec![
            Action::HighWatermark(Offset(2)),
            Action::Proposed {
                id: ProposalId(5),
                outcome: ProposalOutcome::Committed {
                    first: Offset(1),
                    last: Offset(1)
                }
            }
        ]
    );
}

#[test]
fn a_former_leader_restarts_resigned_and_rejects_votes_in_its_epoch() {
    let mut r = started(1, &[1, 2, 3], Some(election(4, Some(1), Some(1))));
    assert_eq!((r.role(), r.epoch()), (RoleKind::Resigned, Epoch(4)));
    let reply = vote_reply(&settle(&mut r, T0, vote(4, 2, 3, 0, false, 1)));
    assert!(!reply.vote_granted);
    // A higher epoch is granted (the log is up to date).
    let actions = r.step(T0, vote(5, 2, 3, 0, false, 1));
    assert_eq!(r.role(), RoleKind::Unattached);
    assert_eq!(
        persists(&actions),
        vec![election(5, None, None), election(5, None, Some(2))]
    );
}

#[test]
fn a_self_vote_restarts_the_candidacy() {
    let (r, _) = start(
        1,
        &[1, 2, 3],
        Some(election(3, None, Some(1))),
        LogView::empty(),
    );
    assert_eq!(
        (r.role(), r.epoch(), r.voted_id()),
        (RoleKind::Candidate, Epoch(3), Some(n(1)))
    );
}

#[test]
fn a_stored_leader_is_followed_after_restart() {
    let (r, _) = start(
        1,
        &[1, 2, 3],
        Some(election(3, Some(2), Some(2))),
        LogView::empty(),
    );
    assert_eq!(
        (r.role(), r.leader_id(), r.voted_id()),
        (RoleKind::Follower, Some(n(2)), Some(n(2)))
    );
}

#[test]
fn a_stored_epoch_behind_the_log_moves_to_the_log_epoch() {
    let log = LogView::new(
        Offset(0),
        Offset(5),
        vec![EpochStart {
            epoch: Epoch(6),
            start_offset: Offset(0),
        }],
    );
    let (r, actions) = start(1, &[1, 2, 3], Some(election(2, None, None)), log);
    assert_eq!((r.role(), r.epoch()), (RoleKind::Unattached, Epoch(6)));
    assert_eq!(persists(&actions), vec![election(6, None, None)]);
}

// ---- elections (docs/protocol.md §4, §6, §7) ---------------------------------------------------

#[test]
fn unattached_to_prospective_sends_pre_votes_at_the_same_epoch_without_persisting() {
    let (r, _, actions) = prospective();
    assert_eq!((r.role(), r.epoch()), (RoleKind::Prospective, Epoch(0)));
    assert!(persists(&actions).is_empty());
    let requests = sends(&actions);
    let votes: Vec<(NodeId, bool, Epoch)> = requests
        .iter()
        .filter_map(|(to, r)| match r {
            Request::Vote(v) => Some((*to, v.pre_vote, v.candidate_epoch)),
            _ => None,
        })
        .collect();
    assert_eq!(votes, vec![(n(2), true, Epoch(0)), (n(3), true, Epoch(0))]);
}

#[test]
fn prospective_with_a_majority_becomes_candidate_and_votes_wait_for_the_persist() {
    let (mut r, at, actions) = prospective();
    let id = request_id(&actions, n(2));
    let actions = r.step(
        at,
        Input::Response {
            from: n(2),
            request_id: id,
            response: granted(0, None),
        },
    );
    assert_eq!(
        (r.role(), r.epoch(), r.voted_id()),
        (RoleKind::Candidate, Epoch(1), Some(n(1)))
    );
    assert_eq!(persists(&actions), vec![election(1, None, Some(1))]);
    assert!(
        sends(&actions).is_empty(),
        "no vote request before the self-vote is durable: {actions:?}"
    );
    let actions = r.step(at, Input::ElectionPersisted);
    let votes: Vec<bool> = sends(&actions)
        .into_iter()
        .filter_map(|(_, r)| match r {
            Request::Vote(v) => Some(v.pre_vote),
            _ => None,
        })
        .collect();
    assert_eq!(votes, vec![false, false]);
}

#[test]
fn candidate_with_a_majority_becomes_leader_and_announces_itself_after_persisting() {
    let (mut r, at, actions) = prospective();
    let id = request_id(&actions, n(2));
    r.step(
        at,
        Input::Response {
            from: n(2),
            request_id: id,
            response: granted(0, None),
        },
    );
    let actions = r.step(at, Input::ElectionPersisted);
    let id = request_id(&actions, n(3));
    let actions = r.step(
        at,
        Input::Response {
            from: n(3),
            request_id: id,
            response: granted(1, None),
        },
    );
    assert_eq!(r.role(), RoleKind::Leader);
    assert_eq!(persists(&actions), vec![election(1, Some(1), Some(1))]);
    assert!(
        matches!(actions[1], Action::Append { .. }) && actions[2] == Action::Flush,
        "{actions:?}"
    );
    assert!(
        sends(&actions).is_empty(),
        "BeginQuorumEpoch waits for the durable leader state"
    );
    let actions = r.step(at, Input::ElectionPersisted);
    let begins: Vec<NodeId> = sends(&actions)
        .into_iter()
        .filter(|(_, r)| matches!(r, Request::BeginQuorumEpoch(_)))
        .map(|(to, _)| to)
        .collect();
    assert_eq!(begins, vec![n(2), n(3)]);
}

#[test]
fn prospective_losing_with_no_leader_returns_to_unattached_keeping_its_epoch() {
    let (mut r, at, actions) = prospective();
    for to in [2, 3] {
        let id = request_id(&actions, n(to));
        r.step(
            at,
            Input::Response {
                from: n(to),
                request_id: id,
                response: rejected(0),
            },
        );
    }
    assert_eq!((r.role(), r.epoch()), (RoleKind::Unattached, Epoch(0)));
}

#[test]
fn prospective_losing_with_a_known_leader_follows_it_again() {
    let mut r = started(1, &[1, 2, 3], Some(election(2, Some(2), None)));
    assert_eq!(r.role(), RoleKind::Follower);
    // The unanswered fetch to the leader times out with the fetch timer; the pre-vote to it
    // then waits out the retry backoff.
    let mut actions = Vec::new();
    let mut at = T0;
    while sends(&actions)
        .iter()
        .filter(|(_, r)| matches!(r, Request::Vote(_)))
        .count()
        < 2
    {
        let (t, more) = tick_to_deadline(&mut r);
        at = t;
        actions.extend(more);
    }
    assert_eq!(r.role(), RoleKind::Prospective);
    for to in [2, 3] {
        let id = request_id(&actions, n(to));
        r.step(
            at,
            Input::Response {
                from: n(to),
                request_id: id,
                response: rejected(2),
            },
        );
    }
    assert_eq!(
        (r.role(), r.epoch(), r.leader_id()),
        (RoleKind::Follower, Epoch(2), Some(n(2)))
    );
}

#[test]
fn candidate_timing_out_goes_back_to_prospective_without_bumping_the_epoch() {
    let (mut r, at, actions) = prospective();
    let id = request_id(&actions, n(2));
    r.step(
        at,
        Input::Response {
            from: n(2),
            request_id: id,
            response: granted(0, None),
        },
    );
    r.step(at, Input::ElectionPersisted);
    assert_eq!(r.role(), RoleKind::Candidate);
    let (_, actions) = tick_to_deadline(&mut r);
    assert_eq!((r.role(), r.epoch()), (RoleKind::Prospective, Epoch(1)));
    assert!(persists(&actions).is_empty());
}

#[test]
fn vote_granting_rules_per_state() {
    // Unattached: one standard vote per epoch (the same candidate again is fine).
    let mut r = started(1, &[1, 2, 3], Some(election(2, None, None)));
    assert!(vote_reply(&settle(&mut r, T0, vote(2, 2, 0, 0, false, 1))).vote_granted);
    r.step(T0, Input::ElectionPersisted);
    assert!(vote_reply(&settle(&mut r, T0, vote(2, 2, 0, 0, false, 1))).vote_granted);
    assert!(!vote_reply(&settle(&mut r, T0, vote(2, 3, 0, 0, false, 1))).vote_granted);
    // ...but any number of pre-votes with an up-to-date log.
    assert!(vote_reply(&settle(&mut r, T0, vote(2, 3, 0, 0, true, 1))).vote_granted);
    // Unattached knowing a leader rejects standard votes.
    let mut r = started(1, &[1, 2, 3], Some(election(2, Some(3), None)));
    r.step(
        T0,
        Input::Request {
            from: InboundId(0),
            request: Request::Fetch(fetch(None, 2, 0, 0)),
        },
    );
    let mut u = started(1, &[1, 2, 3], None);
    u.step(T0, vote(2, 3, 0, 0, true, 1));
    // Follower: rejects standard votes; grants a pre-vote only before it fetched from the leader.
    assert_eq!(r.role(), RoleKind::Follower);
    assert!(!vote_reply(&settle(&mut r, T0, vote(2, 2, 0, 0, false, 1))).vote_granted);
    assert!(vote_reply(&settle(&mut r, T0, vote(2, 2, 0, 0, true, 1))).vote_granted);
    // The leader rejects everything in its epoch (Resigned: see the pre-vote test below).
    let (mut l, at) = leader();
    assert!(!vote_reply(&settle(&mut l, at, vote(1, 2, 1, 1, true, 1))).vote_granted);
    assert!(!vote_reply(&settle(&mut l, at, vote(1, 2, 0, 1, false, 1))).vote_granted);
}

#[test]
fn a_follower_that_fetched_rejects_pre_votes() {
    let (mut r, id) = follower();
    assert!(
        vote_reply(&settle(&mut r, T0, vote(2, 3, 0, 0, true, 2))).vote_granted,
        "not fetched yet"
    );
    r.step(
        T0,
        Input::Response {
            from: n(1),
            request_id: id,
            response: fetch_response(2, Some(0), Bytes::new()),
        },
    );
    assert!(!vote_reply(&settle(&mut r, T0, vote(2, 3, 0, 0, true, 2))).vote_granted);
}

#[test]
fn a_candidate_grants_pre_votes_but_not_standard_votes() {
    let (mut r, at, actions) = prospective();
    let id = request_id(&actions, n(2));
    r.step(
        at,
        Input::Response {
            from: n(2),
            request_id: id,
            response: granted(0, None),
        },
    );
    r.step(at, Input::ElectionPersisted);
    assert!(vote_reply(&settle(&mut r, at, vote(1, 3, 0, 0, true, 1))).vote_granted);
    assert!(!vote_reply(&settle(&mut r, at, vote(1, 3, 0, 0, false, 1))).vote_granted);
}

#[test]
fn a_vote_with_a_higher_epoch_first_moves_to_unattached_even_for_pre_votes() {
    let mut r = started(1, &[1, 2, 3], Some(election(2, Some(2), Some(2))));
    let actions = r.step(T0, vote(5, 3, 0, 0, true, 1));
    assert_eq!(
        (r.role(), r.epoch(), r.leader_id(), r.voted_id()),
        (RoleKind::Unattached, Epoch(5), None, None)
    );
    assert_eq!(persists(&actions), vec![election(5, None, None)]);
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Respond { .. })),
        "the answer waits for the persist"
    );
    let actions = r.step(T0, Input::ElectionPersisted);
    assert!(vote_reply(&actions).vote_granted);
}

#[test]
fn vote_requests_are_validated() {
    let mut r = started(1, &[1, 2, 3], Some(election(3, None, None)));
    assert_eq!(
        vote_reply(&settle(&mut r, T0, vote(2, 2, 0, 0, false, 1))).error,
        ErrorCode::FencedLeaderEpoch
    );
    assert_eq!(
        vote_reply(&settle(&mut r, T0, vote(3, 2, 3, 0, false, 1))).error,
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        vote_reply(&settle(&mut r, T0, vote(3, 2, 4, 0, true, 1))).error,
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        vote_reply(&settle(&mut r, T0, vote(3, 2, 0, -1, false, 1))).error,
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        vote_reply(&settle(&mut r, T0, vote(3, 2, 0, 0, false, 7))).error,
        ErrorCode::InvalidVoterKey
    );
    let mut other = vote(3, 2, 0, 0, false, 1);
    if let Input::Request {
        request: Request::Vote(v),
        ..
    } = &mut other
    {
        v.cluster_id = "other".into();
    }
    assert_eq!(
        vote_reply(&settle(&mut r, T0, other)).error,
        ErrorCode::InconsistentClusterId
    );
    // Lexicographic (epoch, offset): a longer log of an older epoch is not up to date.
    let log = LogView::new(
        Offset(0),
        Offset(5),
        vec![EpochStart {
            epoch: Epoch(2),
            start_offset: Offset(0),
        }],
    );
    let (mut r, _) = start(1, &[1, 2, 3], Some(election(3, None, None)), log);
    r.step(T0, Input::ElectionPersisted);
    assert!(!vote_reply(&settle(&mut r, T0, vote(4, 2, 1, 100, false, 1))).vote_granted);
    r.step(T0, Input::ElectionPersisted);
    assert!(vote_reply(&settle(&mut r, T0, vote(4, 3, 2, 5, false, 1))).vote_granted);
}

// ---- leaders, followers and observers ----------------------------------------------------------

#[test]
fn begin_quorum_epoch_makes_a_voter_follow_the_new_leader() {
    let mut r = started(2, &[1, 2, 3], None);
    let actions = r.step(T0, begin_epoch(3, 1, 2));
    assert_eq!(
        (r.role(), r.epoch(), r.leader_id()),
        (RoleKind::Follower, Epoch(3), Some(n(1)))
    );
    assert_eq!(persists(&actions), vec![election(3, Some(1), None)]);
    let actions = r.step(T0, Input::ElectionPersisted);
    let response = Response::BeginQuorumEpoch(EpochResponse {
        error: ErrorCode::None,
        leader_id: Some(n(1)),
        leader_epoch: Epoch(3),
    });
    assert_eq!(
        actions[0],
        Action::Respond {
            to: InboundId(1),
            response
        }
    );
    let fetches = sends(&actions);
    assert!(
        matches!(&fetches[..], [(to, Request::Fetch(f))] if *to == n(1) && f.current_leader_epoch == Epoch(3))
    );
}

#[test]
fn a_leader_learning_a_higher_epoch_becomes_a_follower() {
    let (mut l, at) = leader();
    l.step(at, begin_epoch(4, 3, 1));
    assert_eq!(
        (l.role(), l.epoch(), l.leader_id()),
        (RoleKind::Follower, Epoch(4), Some(n(3)))
    );
}

fn proposals(actions: &[Action]) -> Vec<(ProposalId, ProposalOutcome)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Proposed { id, outcome } => Some((*id, *outcome)),
            _ => None,
        })
        .collect()
}

/// A leader that loses leadership with a proposal appended but not committed reports it
/// unresolved at once, and never later as committed: the batch that ends up committed at its
/// offsets is another leader's.
#[test]
fn pending_proposals_end_unresolved_when_leadership_is_lost_never_committed_by_offset() {
    let (mut l, at) = leader();
    l.step(
        at,
        Input::Propose {
            id: ProposalId(7),
            records: vec![Bytes::from_static(b"mine")],
        },
    );
    l.step(at, Input::Flushed { offset: Offset(2) });
    let actions = l.step(at, begin_epoch(2, 3, 1));
    assert_eq!(l.role(), RoleKind::Follower);
    let unresolved = ProposalOutcome::Unresolved {
        epoch: Epoch(1),
        first: Offset(1),
        last: Offset(1),
    };
    assert_eq!(proposals(&actions), vec![(ProposalId(7), unresolved)]);
    // The new leader's log replaces offset 1 with its own batch and commits past it.
    let actions = ack_persists(&mut l, at, actions);
    let id = request_id(&actions, n(3));
    let mut response = FetchResponse {
        error: ErrorCode::None,
        leader_id: Some(n(3)),
        leader_epoch: Epoch(2),
        high_watermark: Some(Offset(1)),
        log_start_offset: Offset(0),
        diverging_epoch: Some(OffsetAndEpoch {
            offset: Offset(1),
            epoch: Epoch(1),
        }),
        snapshot_id: None,
        leader_endpoint: None,
        records: Bytes::new(),
    };
    let actions = l.step(
        at,
        Input::Response {
            from: n(3),
            request_id: id,
            response: Response::Fetch(response.clone()),
        },
    );
    assert!(actions.contains(&Action::Truncate { offset: Offset(1) }));
    let id = request_id(&actions, n(3));
    response.diverging_epoch = None;
    response.high_watermark = Some(Offset(2));
    response.records = data_batch(1, 2, b"theirs");
    let mut actions = l.step(
        at,
        Input::Response {
            from: n(3),
            request_id: id,
            response: Response::Fetch(response),
        },
    );
    actions.extend(l.step(at, Input::Flushed { offset: Offset(2) }));
    assert!(actions.contains(&Action::HighWatermark(Offset(2))));
    assert!(proposals(&actions).is_empty(), "{actions:?}");
}

fn fetch(replica: Option<i32>, epoch: i32, offset: i64, last_epoch: i32) -> FetchRequest {
    FetchRequest {
        cluster_id: CLUSTER.into(),
        replica_id: replica.map(NodeId),
        replica_directory_id: None,
        current_leader_epoch: Epoch(epoch),
        fetch_offset: Offset(offset),
        last_fetched_epoch: Epoch(last_epoch),
        high_watermark: None,
        max_wait_ms: 500,
        max_bytes: 1 << 20,
    }
}

fn fetch_response(epoch: i32, hw: Option<i64>, records: Bytes) -> Response {
    Response::Fetch(FetchResponse {
        error: ErrorCode::None,
        leader_id: Some(n(1)),
        leader_epoch: Epoch(epoch),
        high_watermark: hw.map(Offset),
        log_start_offset: Offset(0),
        diverging_epoch: None,
        snapshot_id: None,
        leader_endpoint: None,
        records,
    })
}

fn respond_fetch(actions: &[Action]) -> (FetchResponse, Option<Offset>) {
    actions
        .iter()
        .find_map(|a| match a {
            Action::RespondFetch {
                response,
                read_from,
                ..
            } => Some((response.clone(), *read_from)),
            _ => None,
        })
        .expect("a fetch response")
}

#[test]
fn the_high_watermark_moves_only_once_a_majority_holds_this_epochs_leader_change() {
    let (mut l, at) = leader();
    assert_eq!(l.high_watermark(), None);
    // Follower 2 fetches at 0: it holds nothing yet, so nothing is committed.
    let actions = l.step(
        at,
        Input::Request {
            from: InboundId(1),
            request: Request::Fetch(fetch(Some(2), 1, 0, 0)),
        },
    );
    assert_eq!(
        respond_fetch(&actions).1,
        Some(Offset(0)),
        "records are read from offset 0"
    );
    assert_eq!(l.high_watermark(), None);
    // Its next fetch at 1 acknowledges the LeaderChange record: leader + 2 is a majority of 3.
    let actions = l.step(
        at,
        Input::Request {
            from: InboundId(2),
            request: Request::Fetch(fetch(Some(2), 1, 1, 1)),
        },
    );
    assert_eq!(actions.first(), Some(&Action::HighWatermark(Offset(1))));
    assert_eq!(l.high_watermark(), Some(Offset(1)));
}

#[test]
fn a_fetch_with_nothing_new_is_parked_until_data_arrives() {
    let (mut l, at) = leader();
    // The first fetch at 1 acknowledges the LeaderChange record and moves the high watermark;
    // a fetcher that does not know it yet is answered at once (KIP-1166).
    let actions = l.step(
        at,
        Input::Request {
            from: InboundId(1),
            request: Request::Fetch(fetch(Some(2), 1, 1, 1)),
        },
    );
    assert_eq!(actions[0], Action::HighWatermark(Offset(1)));
    assert_eq!(respond_fetch(&actions).1, Some(Offset(1)));
    // Caught up and knowing the high watermark: parked.
    let mut caught_up = fetch(Some(2), 1, 1, 1);
    caught_up.high_watermark = Some(Offset(1));
    let parked = l.step(
        at,
        Input::Request {
            from: InboundId(2),
            request: Request::Fetch(caught_up.clone()),
        },
    );
    assert!(parked.is_empty(), "{parked:?}");
    let actions = l.step(
        at,
        Input::Propose {
            id: ProposalId(1),
            records: vec![Bytes::from_static(b"v")],
        },
    );
    let (_, from) = respond_fetch(&actions);
    assert_eq!(
        from,
        Some(Offset(1)),
        "the write completes the parked fetch"
    );
    // With nothing arriving, the wait expires and the fetch is answered with what there is.
    caught_up.fetch_offset = Offset(2);
    caught_up.last_fetched_epoch = Epoch(1);
    let parked = l.step(
        at,
        Input::Request {
            from: InboundId(3),
            request: Request::Fetch(caught_up),
        },
    );
    assert!(
        !parked
            .iter()
            .any(|a| matches!(a, Action::RespondFetch { .. })),
        "{parked:?}"
    );
    let (expired_at, actions) = tick_to_deadline(&mut l);
    assert_eq!(expired_at, at + Duration::from_millis(500));
    assert_eq!(respond_fetch(&actions).1, Some(Offset(2)));
}

#[test]
fn the_leader_answers_a_divergent_fetch_with_the_epoch_end() {
    let (mut l, at) = leader();
    // The follower claims offset 5 in epoch 0; the leader's epoch 0 ends at 0.
    let actions = l.step(
        at,
        Input::Request {
            from: InboundId(1),
            request: Request::Fetch(fetch(Some(2), 1, 5, 0)),
        },
    );
    let (response, read) = respond_fetch(&actions);
    assert_eq!(
        response.diverging_epoch,
        Some(OffsetAndEpoch {
            offset: Offset(0),
            epoch: Epoch(0)
        })
    );
    assert_eq!(read, None);
}

#[test]
fn fetches_are_validated_by_epoch_and_leadership() {
    let (mut l, at) = leader();
    let error = |l: &mut Replica, f: FetchRequest| {
        respond_fetch(&l.step(
            at,
            Input::Request {
                from: InboundId(1),
                request: Request::Fetch(f),
            },
        ))
        .0
        .error
    };
    assert_eq!(
        error(&mut l, fetch(Some(2), 0, 0, 0)),
        ErrorCode::FencedLeaderEpoch
    );
    assert_eq!(
        error(&mut l, fetch(Some(2), 2, 0, 0)),
        ErrorCode::UnknownLeaderEpoch
    );
    assert_eq!(
        error(&mut l, fetch(Some(2), 1, 0, 2)),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        error(&mut l, fetch(Some(2), 1, -1, 0)),
        ErrorCode::InvalidRequest
    );
    let mut follower = started(2, &[1, 2, 3], Some(election(1, Some(1), None)));
    let response = respond_fetch(&follower.step(
        at,
        Input::Request {
            from: InboundId(1),
            request: Request::Fetch(fetch(None, 1, 0, 0)),
        },
    ))
    .0;
    assert_eq!(
        (response.error, response.leader_id),
        (ErrorCode::NotLeaderOrFollower, Some(n(1)))
    );
}

fn data_batch(base: i64, epoch: i32, value: &[u8]) -> Bytes {
    let mut b = BatchBuilder::new(BatchKind::Data, Offset(base), Epoch(epoch));
    b.append(0, None, Some(value), &[]).unwrap();
    b.build().unwrap()
}

/// Follower 2 of leader 1 in epoch 2, with its first fetch in flight.
fn follower() -> (Replica, RequestId) {
    let (r, actions) = boot(
        2,
        &[1, 2, 3],
        Some(election(2, Some(1), None)),
        LogView::empty(),
    );
    let id = request_id(&actions, n(1));
    (r, id)
}

#[test]
fn a_follower_appends_the_valid_prefix_only_and_fetches_again_once_flushed() {
    let (mut r, id) = follower();
    let mut records = Vec::new();
    records.extend_from_slice(&data_batch(0, 1, b"a"));
    records.extend_from_slice(&data_batch(1, 2, b"b"));
    let mut corrupt = data_batch(2, 2, b"c").to_vec();
    corrupt[30] ^= 1;
    records.extend_from_slice(&corrupt);
    let actions = r.step(
        T0,
        Input::Response {
            from: n(1),
            request_id: id,
            response: fetch_response(2, Some(1), Bytes::from(records.clone())),
        },
    );
    let expected_append = Bytes::from(records[..data_batch(0, 1, b"a").len() * 2].to_vec());
    assert_eq!(
        actions[0],
        Action::Append {
            batches: expected_append
        }
    );
    assert_eq!(actions[1], Action::Flush);
    // The corrupt third batch is refused, once, naming the leader, where and why.
    assert!(
        matches!(&actions[2], Action::FetchedRecordsRefused { from, offset, reason }
            if *from == n(1) && *offset == Offset(2) && reason.contains("crc mismatch")),
        "{:?}",
        actions[2]
    );
    assert_eq!(actions[3], Action::HighWatermark(Offset(1)));
    assert!(
        sends(&actions).is_empty(),
        "no fetch (acknowledgement) before the flush"
    );
    let actions = r.step(T0, Input::Flushed { offset: Offset(2) });
    assert!(
        matches!(&sends(&actions)[..], [(_, Request::Fetch(f))] if f.fetch_offset == Offset(2) && f.last_fetched_epoch == Epoch(2))
    );
}

#[test]
fn a_follower_skips_batches_above_its_epoch_or_out_of_place() {
    let (mut r, id) = follower();
    let mut records = data_batch(0, 2, b"a").to_vec();
    records.extend_from_slice(&data_batch(1, 3, b"newer epoch"));
    let actions = r.step(
        T0,
        Input::Response {
            from: n(1),
            request_id: id,
            response: fetch_response(2, None, Bytes::from(records)),
        },
    );
    assert_eq!(
        actions[0],
        Action::Append {
            batches: data_batch(0, 2, b"a")
        }
    );
    let refused = |actions: &[Action]| {
        actions.iter().find_map(|a| match a {
            Action::FetchedRecordsRefused { offset, reason, .. } => Some((*offset, reason.clone())),
            _ => None,
        })
    };
    let (offset, reason) = refused(&actions).expect("the newer epoch is refused");
    assert_eq!(offset, Offset(1));
    assert!(reason.contains("above the current epoch 2"), "{reason}");
    let (mut r, id) = follower();
    let actions = r.step(
        T0,
        Input::Response {
            from: n(1),
            request_id: id,
            response: fetch_response(2, None, data_batch(7, 1, b"gap")),
        },
    );
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Append { .. })),
        "{actions:?}"
    );
    assert_eq!(r.log().log_end_offset(), Offset(0));
    let (offset, reason) = refused(&actions).expect("the gap is refused");
    assert_eq!(offset, Offset(0));
    assert!(
        reason.contains("does not continue the log at 0"),
        "{reason}"
    );
}

#[test]
fn a_follower_truncates_where_the_leader_says_the_logs_diverge() {
    let log = LogView::new(
        Offset(0),
        Offset(10),
        vec![
            EpochStart {
                epoch: Epoch(1),
                start_offset: Offset(0),
            },
            EpochStart {
                epoch: Epoch(3),
                start_offset: Offset(6),
            },
        ],
    );
    let (mut r, actions) = boot(2, &[1, 2, 3], Some(election(4, Some(1), None)), log);
    let id = request_id(&actions, n(1));
    let mut response = FetchResponse {
        error: ErrorCode::None,
        leader_id: Some(n(1)),
        leader_epoch: Epoch(4),
        high_watermark: None,
        log_start_offset: Offset(0),
        diverging_epoch: Some(OffsetAndEpoch {
            offset: Offset(4),
            epoch: Epoch(1),
        }),
        snapshot_id: None,
        leader_endpoint: None,
        records: Bytes::new(),
    };
    let actions = r.step(
        T0,
        Input::Response {
            from: n(1),
            request_id: id,
            response: Response::Fetch(response.clone()),
        },
    );
    assert_eq!(actions[0], Action::Truncate { offset: Offset(4) });
    assert_eq!(
        (r.log().log_end_offset(), r.log().last_fetched_epoch()),
        (Offset(4), Epoch(1))
    );
    let Some((_, Request::Fetch(f))) = sends(&actions).into_iter().next() else {
        panic!("{actions:?}")
    };
    assert_eq!(
        (f.fetch_offset, f.last_fetched_epoch),
        (Offset(4), Epoch(1))
    );
    // Below the high watermark it is fatal, never done.
    let id = request_id(&actions, n(1));
    let actions = r.step(
        T0,
        Input::Response {
            from: n(1),
            request_id: id,
            response: fetch_response(4, Some(4), Bytes::new()),
        },
    );
    assert_eq!(actions[0], Action::HighWatermark(Offset(4)));
    let id = request_id(&actions, n(1));
    response.diverging_epoch = Some(OffsetAndEpoch {
        offset: Offset(2),
        epoch: Epoch(1),
    });
    let actions = r.step(
        T0,
        Input::Response {
            from: n(1),
            request_id: id,
            response: Response::Fetch(response),
        },
    );
    assert!(matches!(actions[0], Action::Fatal(_)), "{actions:?}");
}

#[test]
fn a_follower_times_out_into_prospective_and_an_observer_into_unattached() {
    let (mut r, _) = follower();
    tick_to_deadline(&mut r);
    while r.role() == RoleKind::Follower {
        tick_to_deadline(&mut r);
    }
    assert_eq!((r.role(), r.epoch()), (RoleKind::Prospective, Epoch(2)));
    let (mut o, _) = start(
        7,
        &[1, 2, 3],
        Some(election(2, Some(1), None)),
        LogView::empty(),
    );
    o.step(T0, Input::ElectionPersisted);
    while o.role() == RoleKind::Follower {
        tick_to_deadline(&mut o);
    }
    assert_eq!(
        (o.role(), o.epoch(), o.leader_id()),
        (RoleKind::Unattached, Epoch(2), Some(n(1)))
    );
}

#[test]
fn an_idless_observer_fetches_with_no_replica_id_and_finds_the_leader() {
    let (mut o, actions) = Replica::start(config(None, &[1, 2, 3]), None, LogView::empty(), T0, 3);
    assert_eq!(persists(&actions), vec![election(0, None, None)]);
    let actions = o.step(T0, Input::ElectionPersisted);
    let [(to, Request::Fetch(f))] = &sends(&actions)[..] else {
        panic!("{actions:?}")
    };
    assert_eq!(f.replica_id, None);
    let id = request_id(&actions, *to);
    let not_leader = Response::Fetch(FetchResponse {
        error: ErrorCode::NotLeaderOrFollower,
        leader_id: Some(n(1)),
        leader_epoch: Epoch(5),
        high_watermark: None,
        log_start_offset: Offset(0),
        diverging_epoch: None,
        snapshot_id: None,
        leader_endpoint: None,
        records: Bytes::new(),
    });
    o.step(
        T0,
        Input::Response {
            from: *to,
            request_id: id,
            response: not_leader,
        },
    );
    assert_eq!(
        (o.role(), o.epoch(), o.leader_id(), o.voted_id()),
        (RoleKind::Follower, Epoch(5), Some(n(1)), None)
    );
    let actions = o.step(T0, Input::ElectionPersisted);
    assert!(
        matches!(&sends(&actions)[..], [(to, Request::Fetch(f))] if *to == n(1) && f.replica_id.is_none())
    );
    // The leader keeps no state for it.
    let (mut l, at) = leader();
    l.step(
        at,
        Input::Request {
            from: InboundId(4),
            request: Request::Fetch(fetch(None, 1, 1, 1)),
        },
    );
    assert_eq!(l.voter_end_offsets().len(), 3);
    assert_eq!(
        l.high_watermark(),
        None,
        "an id-less fetch acknowledges nothing"
    );
}

#[test]
fn proposals_to_a_non_leader_name_the_leader() {
    let mut r = started(2, &[1, 2, 3], Some(election(3, Some(1), None)));
    let actions = r.step(
        T0,
        Input::Propose {
            id: ProposalId(1),
            records: vec![Bytes::from_static(b"x")],
        },
    );
    let refused = ProposeError::NotLeader {
        leader_id: Some(n(1)),
        epoch: Epoch(3),
    };
    assert_eq!(
        actions,
        vec![Action::Proposed {
            id: ProposalId(1),
            outcome: ProposalOutcome::Refused(refused)
        }]
    );
}

// ---- resignation (docs/protocol.md §9) ---------------------------------------------------------

#[test]
fn a_leader_without_a_quorum_resigns_after_one_and_a_half_fetch_timeouts() {
    let (mut l, at) = leader();
    let mut now = at;
    while l.role() == RoleKind::Leader {
        now = l.next_deadline().unwrap();
        l.step(now, Input::Tick);
    }
    assert_eq!(l.role(), RoleKind::Resigned);
    assert_eq!(
        now - at,
        Duration::from_millis(3000),
        "1.5 x the 2 s fetch timeout"
    );
}

#[test]
fn a_fetching_majority_keeps_the_leader_in_office() {
    let (mut l, at) = leader();
    let mut now = at;
    for i in 0..20 {
        now += Duration::from_millis(500);
        l.step(
            now,
            Input::Request {
                from: InboundId(i),
                request: Request::Fetch(fetch(Some(2), 1, 1, 1)),
            },
        );
        l.step(now, Input::Tick);
    }
    assert_eq!(l.role(), RoleKind::Leader);
}

#[test]
fn graceful_shutdown_resigns_and_names_successors_by_fetch_offset() {
    let (mut l, at) = leader();
    l.step(
        at,
        Input::Request {
            from: InboundId(1),
            request: Request::Fetch(fetch(Some(3), 1, 1, 1)),
        },
    );
    l.step(
        at,
        Input::Request {
            from: InboundId(2),
            request: Request::Fetch(fetch(Some(2), 1, 0, 0)),
        },
    );
    let actions = l.step(at, Input::Shutdown);
    assert_eq!(l.role(), RoleKind::Resigned);
    let ends: Vec<(NodeId, Vec<NodeId>)> = sends(&actions)
        .into_iter()
        .filter_map(|(to, r)| match r {
            Request::EndQuorumEpoch(e) => Some((to, e.preferred_successors)),
            _ => None,
        })
        .collect();
    assert_eq!(
        ends,
        vec![(n(2), vec![n(3), n(2)]), (n(3), vec![n(3), n(2)])]
    );
    // Completes once another leader is known.
    let actions = l.step(at, begin_epoch(2, 3, 1));
    assert!(actions.contains(&Action::ShutdownComplete), "{actions:?}");
}

/// A leader whose latest appends no other voter holds yet: it refuses new appends and waits.
fn leader_shutting_down_ahead_of_everyone() -> (Replica, Duration) {
    let (mut l, at) = leader();
    for (from, replica, offset) in [(1, 3, 1), (2, 2, 0)] {
        l.step(
            at,
            Input::Request {
                from: InboundId(from),
                request: Request::Fetch(fetch(Some(replica), 1, offset, 1.min(offset as i32))),
            },
        );
    }
    let actions = l.step(
        at,
        Input::Propose {
            id: ProposalId(1),
            records: vec![Bytes::from_static(b"last")],
        },
    );
    assert!(actions.iter().any(|a| matches!(a, Action::Append { .. })));
    l.step(at, Input::Flushed { offset: Offset(2) });
    let actions = l.step(at, Input::Shutdown);
    assert_eq!(l.role(), RoleKind::Leader, "drains first: {actions:?}");
    assert!(
        sends(&actions).is_empty(),
        "no EndQuorumEpoch yet: {actions:?}"
    );
    let refused = l.step(
        at,
        Input::Propose {
            id: ProposalId(2),
            records: vec![Bytes::from_static(b"too late")],
        },
    );
    assert!(
        refused.iter().any(|a| matches!(
            a,
            Action::Proposed {
                outcome: ProposalOutcome::Refused(ProposeError::NotLeader { .. }),
                ..
            }
        )),
        "{refused:?}"
    );
    (l, at)
}

fn end_quorum_successors(actions: &[Action]) -> Vec<Vec<NodeId>> {
    sends(actions)
        .into_iter()
        .filter_map(|(_, r)| match r {
            Request::EndQuorumEpoch(e) => Some(e.preferred_successors),
            _ => None,
        })
        .collect()
}

#[test]
fn a_leader_shutting_down_resigns_once_a_voter_holds_its_whole_log_and_names_it_first() {
    let (mut l, at) = leader_shutting_down_ahead_of_everyone();
    // Voter 2, behind until now, fetches everything: it becomes the first preferred successor.
    let actions = l.step(
        at,
        Input::Request {
            from: InboundId(3),
            request: Request::Fetch(fetch(Some(2), 1, 2, 1)),
        },
    );
    assert_eq!(l.role(), RoleKind::Resigned);
    assert_eq!(
        end_quorum_successors(&actions),
        vec![vec![n(2), n(3)], vec![n(2), n(3)]]
    );
}

#[test]
fn a_leader_shutting_down_resigns_after_the_drain_limit_if_nobody_catches_up() {
    let (mut l, at) = leader_shutting_down_ahead_of_everyone();
    // DRAIN_LIMIT (500 ms) after the shutdown began.
    assert_eq!(l.next_deadline(), Some(at + Duration::from_millis(500)));
    let actions = l.step(at + Duration::from_millis(499), Input::Tick);
    assert_eq!(l.role(), RoleKind::Leader, "{actions:?}");
    let actions = l.step(at + Duration::from_millis(500), Input::Tick);
    assert_eq!(l.role(), RoleKind::Resigned);
    assert_eq!(
        end_quorum_successors(&actions),
        vec![vec![n(3), n(2)], vec![n(3), n(2)]]
    );
}

#[test]
fn end_quorum_epoch_shortens_a_followers_timeout_by_its_place_in_the_list() {
    let end = |successors: Vec<i32>| Input::Request {
        from: InboundId(1),
        request: Request::EndQuorumEpoch(EndQuorumEpochRequest {
            cluster_id: CLUSTER.into(),
            leader_id: n(1),
            leader_epoch: Epoch(2),
            preferred_successors: successors.into_iter().map(NodeId).collect(),
        }),
    };
    // First in the list: no wait, a pre-vote at once.
    let (mut r, _) = follower();
    r.step(T0, end(vec![2, 3]));
    assert_eq!((r.role(), r.epoch()), (RoleKind::Prospective, Epoch(2)));
    // Second of two: half the election backoff (1 s), then a pre-vote.
    let (mut r, _) = follower();
    r.step(T0, end(vec![3, 2]));
    assert_eq!(r.role(), RoleKind::Follower);
    assert_eq!(r.next_deadline(), Some(T0 + Duration::from_millis(500)));
}

#[test]
fn resigned_moves_to_a_new_epoch_when_its_timer_expires_and_campaigns() {
    let mut r = started(1, &[1, 2, 3], Some(election(4, Some(1), Some(1))));
    let (_, actions) = tick_to_deadline(&mut r);
    assert_eq!((r.role(), r.epoch()), (RoleKind::Prospective, Epoch(5)));
    assert_eq!(persists(&actions), vec![election(5, None, None)]);
}

#[test]
fn a_resigned_replica_follows_a_leader_of_a_newer_epoch() {
    let mut r = started(1, &[1, 2, 3], Some(election(4, Some(1), Some(1))));
    assert_eq!(r.role(), RoleKind::Resigned);
    let actions = r.step(T0, begin_epoch(5, 2, 1));
    assert_eq!(
        (r.role(), r.epoch(), r.leader_id()),
        (RoleKind::Follower, Epoch(5), Some(n(2)))
    );
    assert_eq!(persists(&actions), vec![election(5, Some(2), None)]);
}

#[test]
fn answers_to_requests_of_a_previous_state_are_ignored() {
    // A fetch answered after its follower became Prospective appends nothing.
    let (mut r, id) = follower();
    let mut now = T0;
    while r.role() == RoleKind::Follower {
        now = tick_to_deadline(&mut r).0;
    }
    let late = fetch_response(2, Some(1), data_batch(0, 1, b"late"));
    let actions = r.step(
        now,
        Input::Response {
            from: n(1),
            request_id: id,
            response: late,
        },
    );
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Append { .. })),
        "{actions:?}"
    );
    assert_eq!(
        (r.role(), r.log().log_end_offset()),
        (RoleKind::Prospective, Offset(0))
    );
    // A pre-vote granted after the prospective started following a leader changes nothing.
    let (mut p, at, actions) = prospective();
    let id = request_id(&actions, n(2));
    settle(&mut p, at, begin_epoch(0, 3, 1));
    assert_eq!(p.role(), RoleKind::Follower);
    p.step(
        at,
        Input::Response {
            from: n(2),
            request_id: id,
            response: granted(0, None),
        },
    );
    assert_eq!(
        (p.role(), p.epoch(), p.leader_id()),
        (RoleKind::Follower, Epoch(0), Some(n(3)))
    );
}

// ---- snapshots: Fetch redirect and FetchSnapshot (docs/protocol.md §14) ------------------------

const SNAPSHOT: OffsetAndEpoch = OffsetAndEpoch {
    offset: Offset(1),
    epoch: Epoch(1),
};

/// Leader 1 whose log start moved to 1, covered by a snapshot ending at 1.
fn leader_with_snapshot() -> (Replica, Duration) {
    let (mut l, at) = leader();
    l.step(at, Input::SnapshotWritten { id: SNAPSHOT });
    l.step(at, Input::LogStartAdvanced { offset: Offset(1) });
    (l, at)
}

fn fetch_snapshot(epoch: i32, id: OffsetAndEpoch, position: u64) -> Request {
    Request::FetchSnapshot(FetchSnapshotRequest {
        cluster_id: CLUSTER.into(),
        replica_id: Some(n(2)),
        current_leader_epoch: Epoch(epoch),
        snapshot_id: id,
        position,
        max_bytes: u32::MAX,
    })
}

fn fetch_snapshot_error(actions: &[Action]) -> ErrorCode {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Respond {
                response: Response::FetchSnapshot(r),
                ..
            } => Some(r.error),
            _ => None,
        })
        .expect("a FetchSnapshot error answer")
}

#[test]
fn a_fetch_below_the_log_start_is_told_the_snapshot_id() {
    let (mut l, at) = leader_with_snapshot();
    let actions = l.step(
        at,
        Input::Request {
            from: InboundId(1),
            request: Request::Fetch(fetch(Some(2), 1, 0, 0)),
        },
    );
    let (response, read_from) = respond_fetch(&actions);
    assert_eq!(response.snapshot_id, Some(SNAPSHOT));
    assert_eq!(read_from, None, "no records with a snapshot id");
    // At the log start, records as usual.
    let actions = l.step(
        at,
        Input::Request {
            from: InboundId(2),
            request: Request::Fetch(fetch(Some(3), 1, 1, 1)),
        },
    );
    let (response, read_from) = respond_fetch(&actions);
    assert_eq!((response.snapshot_id, read_from), (None, Some(Offset(1))));
}

#[test]
fn fetch_snapshot_is_served_by_position_and_its_errors_are_answered() {
    let (mut l, at) = leader_with_snapshot();
    let actions = l.step(
        at,
        Input::Request {
            from: InboundId(1),
            request: fetch_snapshot(1, SNAPSHOT, 7),
        },
    );
    let served = actions.iter().find_map(|a| match a {
        Action::RespondFetchSnapshot {
            response,
            max_bytes,
            ..
        } => Some((response.clone(), *max_bytes)),
        _ => None,
    });
    let (response, max_bytes) = served.expect("a chunk to read");
    assert_eq!(
        (response.error, response.snapshot_id, response.position),
        (ErrorCode::None, SNAPSHOT, 7)
    );
    assert_eq!(max_bytes, FETCH_SNAPSHOT_MAX_BYTES, "capped");

    let unknown = OffsetAndEpoch {
        offset: Offset(5),
        epoch: Epoch(1),
    };
    for (request, error) in [
        (fetch_snapshot(1, unknown, 0), ErrorCode::SnapshotNotFound),
        (fetch_snapshot(0, SNAPSHOT, 0), ErrorCode::FencedLeaderEpoch),
        (
            fetch_snapshot(2, SNAPSHOT, 0),
            ErrorCode::UnknownLeaderEpoch,
        ),
    ] {
        let actions = l.step(
            at,
            Input::Request {
                from: InboundId(9),
                request,
            },
        );
        assert_eq!(fetch_snapshot_error(&actions), error);
    }
}

/// A follower part-way through an older snapshot is still served it after a newer one is
/// written: answering SNAPSHOT_NOT_FOUND would restart its transfer with every new snapshot.
#[test]
fn an_older_snapshot_still_on_disk_is_served() {
    let (mut l, at) = leader_with_snapshot();
    let newer = OffsetAndEpoch {
        offset: Offset(1),
        epoch: Epoch(2),
    };
    l.step(at, Input::SnapshotWritten { id: newer });
    let actions = l.step(
        at,
        Input::Request {
            from: InboundId(1),
            request: fetch_snapshot(1, SNAPSHOT, 0),
        },
    );
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::RespondFetchSnapshot { response, .. } if response.snapshot_id == SNAPSHOT)),
        "{actions:?}"
    );
}

fn snapshot_chunk(position: u64, bytes: &'static [u8], size: u64, error: ErrorCode) -> Response {
    Response::FetchSnapshot(FetchSnapshotResponse {
        error,
        leader_id: Some(n(1)),
        leader_epoch: Epoch(2),
        snapshot_id: BIG_SNAPSHOT,
        size,
        position,
        bytes: Bytes::from_static(bytes),
    })
}

const BIG_SNAPSHOT: OffsetAndEpoch = OffsetAndEpoch {
    offset: Offset(100),
    epoch: Epoch(2),
};

/// The request the follower sent to leader 1 in these actions, and its id.
fn sent_to_leader(actions: &[Action]) -> (RequestId, Request) {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Send {
                to,
                request_id,
                request,
            } if *to == n(1) => Some((*request_id, request.clone())),
            _ => None,
        })
        .expect("a request to the leader")
}

fn answer(r: &mut Replica, id: RequestId, response: Response) -> Vec<Action> {
    r.step(
        T0,
        Input::Response {
            from: n(1),
            request_id: id,
            response,
        },
    )
}

#[test]
fn a_follower_pulls_the_snapshot_in_chunks_resumes_and_installs_it() {
    let (mut r, id) = follower();
    let mut redirect = match fetch_response(2, Some(100), Bytes::new()) {
        Response::Fetch(f) => f,
        _ => unreachable!(),
    };
    redirect.snapshot_id = Some(BIG_SNAPSHOT);
    let actions = answer(&mut r, id, Response::Fetch(redirect));
    let (id, request) = sent_to_leader(&actions);
    assert!(
        matches!(&request, Request::FetchSnapshot(f) if f.position == 0 && f.snapshot_id == BIG_SNAPSHOT),
        "{request:?}"
    );

    // A first chunk: written at 0, then the next position is asked for.
    let actions = answer(
        &mut r,
        id,
        snapshot_chunk(0, b"0123456789", 25, ErrorCode::None),
    );
    assert!(actions.contains(&Action::WriteSnapshotChunk {
        id: BIG_SNAPSHOT,
        position: 0,
        bytes: Bytes::from_static(b"0123456789"),
    }));
    let (id, request) = sent_to_leader(&actions);
    assert!(matches!(&request, Request::FetchSnapshot(f) if f.position == 10));

    // A lost answer (the connection dropped): after the retry backoff the same position is
    // asked for again.
    r.step(
        T0,
        Input::RequestFailed {
            to: n(1),
            request_id: id,
        },
    );
    let (_, actions) = tick_to_deadline(&mut r);
    let (id, request) = sent_to_leader(&actions);
    assert!(
        matches!(&request, Request::FetchSnapshot(f) if f.position == 10),
        "{request:?}"
    );

    // The leader says the position is out of range: start over from 0.
    let actions = answer(
        &mut r,
        id,
        snapshot_chunk(10, b"", 25, ErrorCode::PositionOutOfRange),
    );
    let (id, request) = sent_to_leader(&actions);
    assert!(matches!(&request, Request::FetchSnapshot(f) if f.position == 0));

    // The whole snapshot in one chunk: written, then installed; no fetch until installed.
    let actions = answer(
        &mut r,
        id,
        snapshot_chunk(0, b"0123456789012345678901234", 25, ErrorCode::None),
    );
    assert!(actions.contains(&Action::InstallSnapshot {
        id: BIG_SNAPSHOT,
        from: n(1)
    }));
    assert!(sends(&actions).is_empty(), "{actions:?}");
    let actions = r.step(
        T0,
        Input::SnapshotInstalled {
            id: BIG_SNAPSHOT,
            control: Vec::new(),
        },
    );
    assert!(
        actions.contains(&Action::HighWatermark(Offset(100))),
        "{actions:?}"
    );
    let (_, request) = sent_to_leader(&actions);
    match request {
        Request::Fetch(f) => {
            assert_eq!(
                (f.fetch_offset, f.last_fetched_epoch),
                (Offset(100), Epoch(2))
            )
        }
        other => panic!("expected a Fetch, got {other:?}"),
    }
    assert_eq!(r.log().log_start_offset(), Offset(100));
}

#[test]
fn a_snapshot_chunk_other_than_the_one_asked_for_is_refused_and_asked_for_again() {
    let (mut r, id) = follower();
    let mut redirect = match fetch_response(2, Some(100), Bytes::new()) {
        Response::Fetch(f) => f,
        _ => unreachable!(),
    };
    redirect.snapshot_id = Some(BIG_SNAPSHOT);
    let actions = answer(&mut r, id, Response::Fetch(redirect));
    let (mut id, _) = sent_to_leader(&actions);
    let other_snapshot = |mut chunk: Response| {
        if let Response::FetchSnapshot(c) = &mut chunk {
            c.snapshot_id = OffsetAndEpoch {
                offset: Offset(101),
                epoch: Epoch(2),
            };
        }
        chunk
    };
    let bad = [
        (
            other_snapshot(snapshot_chunk(0, b"0123456789", 25, ErrorCode::None)),
            "snapshot",
        ),
        (
            snapshot_chunk(10, b"0123456789", 25, ErrorCode::None),
            "where byte 0",
        ),
        (
            snapshot_chunk(0, b"0123456789", 5, ErrorCode::None),
            "past the snapshot's size",
        ),
        (
            snapshot_chunk(0, b"", 25, ErrorCode::None),
            "before the snapshot's size",
        ),
    ];
    for (chunk, why) in bad {
        let actions = answer(&mut r, id, chunk);
        let refused: Vec<_> = actions
            .iter()
            .filter_map(|a| match a {
                Action::FetchedSnapshotRefused {
                    from,
                    id,
                    position,
                    reason,
                } => Some((*from, *id, *position, reason.clone())),
                _ => None,
            })
            .collect();
        assert!(
            matches!(&refused[..], [(from, snapshot, 0, reason)]
                if *from == n(1) && *snapshot == BIG_SNAPSHOT && reason.contains(why)),
            "{why}: {actions:?}"
        );
        assert!(
            !actions.iter().any(|a| matches!(
                a,
                Action::WriteSnapshotChunk { .. } | Action::InstallSnapshot { .. }
            )),
            "{why}: nothing is written: {actions:?}"
        );
        // The same chunk is asked for again.
        let (next, request) = sent_to_leader(&actions);
        assert!(
            matches!(&request, Request::FetchSnapshot(f) if f.position == 0 && f.snapshot_id == BIG_SNAPSHOT),
            "{why}: {request:?}"
        );
        id = next;
    }
    // A good answer is still taken.
    let actions = answer(
        &mut r,
        id,
        snapshot_chunk(0, b"0123456789012345678901234", 25, ErrorCode::None),
    );
    assert!(actions.contains(&Action::InstallSnapshot {
        id: BIG_SNAPSHOT,
        from: n(1)
    }));
}

#[test]
fn a_follower_told_the_snapshot_is_gone_fetches_again() {
    let (mut r, id) = follower();
    let mut redirect = match fetch_response(2, Some(100), Bytes::new()) {
        Response::Fetch(f) => f,
        _ => unreachable!(),
    };
    redirect.snapshot_id = Some(BIG_SNAPSHOT);
    let actions = answer(&mut r, id, Response::Fetch(redirect));

    let (id, _) = sent_to_leader(&actions);
    let actions = answer(
        &mut r,
        id,
        snapshot_chunk(0, b"", 0, ErrorCode::SnapshotNotFound),
    );
    let (_, request) = sent_to_leader(&actions);
    assert!(matches!(request, Request::Fetch(_)), "{request:?}");
}

#[test]
fn a_transfer_resumes_at_its_position_with_a_new_leader() {
    let (mut r, id) = follower();
    let mut redirect = match fetch_response(2, Some(100), Bytes::new()) {
        Response::Fetch(f) => f,
        _ => unreachable!(),
    };
    redirect.snapshot_id = Some(BIG_SNAPSHOT);
    let actions = answer(&mut r, id, Response::Fetch(redirect));
    let (id, _) = sent_to_leader(&actions);
    let actions = answer(
        &mut r,
        id,
        snapshot_chunk(0, b"0123456789", 25, ErrorCode::None),
    );
    let (in_flight, _) = sent_to_leader(&actions);
    // Voter 3 becomes leader in epoch 3 and the request to the old leader fails: once the new
    // epoch is persisted, the transfer goes on with the new leader from byte 10.
    r.step(T0, begin_epoch(3, 3, 2));
    r.step(
        T0,
        Input::RequestFailed {
            to: n(1),
            request_id: in_flight,
        },
    );
    let actions = r.step(T0, Input::ElectionPersisted);
    let request = actions
        .iter()
        .find_map(|a| match a {
            Action::Send { to, request, .. } if *to == n(3) => Some(request.clone()),
            _ => None,
        })
        .expect("a request to the new leader");
    match request {
        Request::FetchSnapshot(f) => {
            assert_eq!((f.snapshot_id, f.position), (BIG_SNAPSHOT, 10));
            assert_eq!(f.current_leader_epoch, Epoch(3));
        }
        other => panic!("expected FetchSnapshot, got {other:?}"),
    }
}

/// A follower that installed the leader's snapshot fetches at its end in the snapshot's epoch;
/// a leader whose cleaned log starts in a later epoch still knows that epoch ends at the
/// snapshot and serves records instead of sending the snapshot again.
#[test]
fn a_fetch_at_the_snapshot_end_in_its_epoch_is_served_records() {
    let snapshot = OffsetAndEpoch {
        offset: Offset(60),
        epoch: Epoch(8),
    };
    // A single voter whose log was cleaned to 60, where epoch 9 begins.
    let log = LogView::new(
        Offset(60),
        Offset(70),
        vec![EpochStart {
            epoch: Epoch(9),
            start_offset: Offset(60),
        }],
    )
    .with_snapshot(Some(snapshot));
    let (mut l, _) = boot(1, &[1], Some(election(9, Some(1), Some(1))), log);
    l.step(T0, Input::Flushed { offset: Offset(71) });
    assert_eq!(l.role(), RoleKind::Leader);
    let epoch = l.epoch().0;
    let actions = l.step(
        T0,
        Input::Request {
            from: InboundId(1),
            request: Request::Fetch(fetch(None, epoch, 60, 8)),
        },
    );
    let (response, read_from) = respond_fetch(&actions);
    assert_eq!(response.snapshot_id, None, "{response:?}");
    assert_eq!(response.diverging_epoch, None);
    assert_eq!(read_from, Some(Offset(60)));
    // One epoch older than the snapshot's: where it ended is below the log start.
    let actions = l.step(
        T0,
        Input::Request {
            from: InboundId(2),
            request: Request::Fetch(fetch(None, epoch, 60, 7)),
        },
    );
    assert_eq!(respond_fetch(&actions).0.snapshot_id, Some(snapshot));
}

/// After a restart, a transfer of the same snapshot resumes at the bytes already on disk.
#[test]
fn a_restarted_follower_resumes_a_snapshot_fetch_where_it_stopped() {
    let log = LogView::empty().with_fetched_so_far(Some((BIG_SNAPSHOT, 10)));
    let (mut r, actions) = boot(2, &[1, 2, 3], Some(election(2, Some(1), None)), log);
    let id = request_id(&actions, n(1));
    let mut redirect = match fetch_response(2, Some(100), Bytes::new()) {
        Response::Fetch(f) => f,
        _ => unreachable!(),
    };
    redirect.snapshot_id = Some(BIG_SNAPSHOT);
    let actions = answer(&mut r, id, Response::Fetch(redirect));
    let (_, request) = sent_to_leader(&actions);
    assert!(
        matches!(&request, Request::FetchSnapshot(f) if f.position == 10),
        "{request:?}"
    );
}

// ---- Kafka-faithful corners ----------------------------------------------------------------------

/// Only a replica with an id can have voted: a stored vote on an id-less replica is refused
/// (Kafka fails to start), not silently cleared.
#[test]
fn an_idless_replica_with_a_stored_vote_fails_to_start() {
    let (_, actions) = Replica::start(
        config(None, &[1, 2, 3]),
        Some(election(3, None, Some(2))),
        LogView::empty(),
        T0,
        7,
    );
    assert!(
        actions.iter().any(|a| matches!(a, Action::Fatal(_))),
        "{actions:?}"
    );
    // Without a vote it starts as usual.
    let (_, actions) = Replica::start(
        config(None, &[1, 2, 3]),
        Some(election(3, Some(1), None)),
        LogView::empty(),
        T0,
        7,
    );
    assert!(!actions.iter().any(|a| matches!(a, Action::Fatal(_))));
}

/// A follower that knew a high watermark and is elected forgets it: as leader it has none until
/// it commits in its own epoch.
#[test]
fn a_new_leader_has_no_high_watermark_until_it_commits_in_its_epoch() {
    let (mut r, id) = follower();
    let mut records = data_batch(0, 1, b"a").to_vec();
    records.extend_from_slice(&data_batch(1, 2, b"b"));
    r.step(
        T0,
        Input::Response {
            from: n(1),
            request_id: id,
            response: fetch_response(2, Some(2), Bytes::from(records)),
        },
    );
    r.step(T0, Input::Flushed { offset: Offset(2) });
    assert_eq!(r.high_watermark(), Some(Offset(2)));
    // The leader goes quiet: pre-vote, then vote, with voter 3 granting both.
    let mut at = T0;
    let mut actions = Vec::new();
    while r.role() != RoleKind::Prospective {
        let (t, a) = tick_to_deadline(&mut r);
        at = t;
        actions = a;
    }
    let id = request_id(&actions, n(3));
    let actions = r.step(
        at,
        Input::Response {
            from: n(3),
            request_id: id,
            response: granted(2, None),
        },
    );
    let actions = ack_persists(&mut r, at, actions);
    let id = request_id(&actions, n(3));
    let actions = r.step(
        at,
        Input::Response {
            from: n(3),
            request_id: id,
            response: granted(3, None),
        },
    );
    ack_persists(&mut r, at, actions);
    assert_eq!((r.role(), r.epoch()), (RoleKind::Leader, Epoch(3)));
    assert_eq!(r.high_watermark(), None, "nothing committed in epoch 3 yet");
    // Its LeaderChange at 2, flushed and fetched past by voter 3: committed in its epoch.
    r.step(at, Input::Flushed { offset: Offset(3) });
    r.step(
        at,
        Input::Request {
            from: InboundId(5),
            request: Request::Fetch(fetch(Some(3), 3, 3, 3)),
        },
    );
    assert_eq!(r.high_watermark(), Some(Offset(3)));
}

/// A restarted former leader knows nothing of how far the others got, so its EndQuorumEpoch
/// names no preferred successor; every voter is still told.
#[test]
fn a_restarted_former_leader_names_no_preferred_successors() {
    let (r, actions) = boot(
        1,
        &[1, 2, 3],
        Some(election(4, Some(1), Some(1))),
        LogView::empty(),
    );
    assert_eq!(r.role(), RoleKind::Resigned);
    let ends: Vec<(NodeId, Vec<NodeId>)> = sends(&actions)
        .into_iter()
        .filter_map(|(to, r)| match r {
            Request::EndQuorumEpoch(e) => Some((to, e.preferred_successors)),
            _ => None,
        })
        .collect();
    assert_eq!(ends, vec![(n(2), vec![]), (n(3), vec![])]);
}

/// An EndQuorumEpoch naming nobody holds nobody back: every follower of that leader may
/// campaign at once.
#[test]
fn an_end_quorum_epoch_with_no_successors_lets_a_follower_campaign_at_once() {
    let (mut r, _) = follower();
    r.step(
        T0,
        Input::Request {
            from: InboundId(1),
            request: Request::EndQuorumEpoch(EndQuorumEpochRequest {
                cluster_id: CLUSTER.into(),
                leader_id: n(1),
                leader_epoch: Epoch(2),
                preferred_successors: vec![],
            }),
        },
    );
    assert_eq!((r.role(), r.epoch()), (RoleKind::Prospective, Epoch(2)));
}

/// The only voter restarting with a vote for itself needs no other vote: its candidacy of the
/// stored epoch is already won, so it leads that epoch rather than campaigning in a new one.
#[test]
fn a_lone_voter_restarting_as_candidate_leads_its_stored_epoch() {
    let (r, actions) = start(1, &[1], Some(election(3, None, Some(1))), LogView::empty());
    assert_eq!((r.role(), r.epoch()), (RoleKind::Leader, Epoch(3)));
    assert_eq!(persists(&actions), vec![election(3, Some(1), Some(1))]);
    let Some(Action::Append { batches }) =
        actions.iter().find(|a| matches!(a, Action::Append { .. }))
    else {
        panic!("{actions:?}")
    };
    let batch = RecordBatch::decode(batches.clone()).unwrap();
    assert_eq!((batch.base_offset(), batch.epoch()), (Offset(0), Epoch(3)));
}

/// The EndQuorumEpoch requests each voter has been sent, in order.
fn end_quorum_targets(actions: &[Action]) -> Vec<NodeId> {
    sends(actions)
        .into_iter()
        .filter(|(_, r)| matches!(r, Request::EndQuorumEpoch(_)))
        .map(|(to, _)| to)
        .collect()
}

/// A resigned replica re-sends EndQuorumEpoch on the request timers alone: to a voter that did
/// not answer as soon as the request times out, to one that answered with an error once the
/// retry backoff has passed. Its own election timer and the fetch timeout play no part.
#[test]
fn a_resigned_replica_retries_end_quorum_epoch_when_the_request_times_out() {
    let mut config = config(Some(1), &[1, 2, 3]);
    config.election_timeout = Duration::from_secs(10);
    config.request_timeout = Duration::from_millis(1500);
    config.fetch_timeout = Duration::from_millis(4000);
    let (mut r, actions) = Replica::start(
        config,
        Some(election(4, Some(1), Some(1))),
        LogView::empty(),
        T0,
        7,
    );
    let actions = ack_persists(&mut r, T0, actions);
    assert_eq!(end_quorum_targets(&actions), vec![n(2), n(3)]);
    let to_3 = request_id(&actions, n(3));
    let error = Response::EndQuorumEpoch(EpochResponse {
        error: ErrorCode::BrokerNotAvailable,
        leader_id: Some(n(1)),
        leader_epoch: Epoch(4),
    });
    let at = T0 + Duration::from_millis(100);
    let actions = r.step(
        at,
        Input::Response {
            from: n(3),
            request_id: to_3,
            response: error,
        },
    );
    assert!(end_quorum_targets(&actions).is_empty(), "{actions:?}");
    let retried = r.step(at + Duration::from_millis(20), Input::Tick);
    assert_eq!(end_quorum_targets(&retried), vec![n(3)]);
    let quiet = r.step(T0 + Duration::from_millis(1499), Input::Tick);
    assert!(end_quorum_targets(&quiet).is_empty(), "{quiet:?}");
    let timed_out = r.step(T0 + Duration::from_millis(1500), Input::Tick);
    assert_eq!(end_quorum_targets(&timed_out), vec![n(2)]);
    assert_eq!(r.role(), RoleKind::Resigned);
}

/// Hearing that its leader resigns shortens a follower's wait but does not make the leader
/// unheard-of: a follower that fetched from it keeps rejecting pre-votes until its own timer
/// runs out (as Prospective it grants them again).
#[test]
fn end_quorum_epoch_leaves_a_followers_fetched_state_alone() {
    let (mut r, id) = follower();
    r.step(
        T0,
        Input::Response {
            from: n(1),
            request_id: id,
            response: fetch_response(2, Some(0), Bytes::new()),
        },
    );
    r.step(
        T0,
        Input::Request {
            from: InboundId(1),
            request: Request::EndQuorumEpoch(EndQuorumEpochRequest {
                cluster_id: CLUSTER.into(),
                leader_id: n(1),
                leader_epoch: Epoch(2),
                preferred_successors: vec![n(3), n(2)],
            }),
        },
    );
    assert_eq!(r.role(), RoleKind::Follower);
    assert!(!vote_reply(&settle(&mut r, T0, vote(2, 3, 0, 0, true, 2))).vote_granted);
    let (at, _) = tick_to_deadline(&mut r);
    assert_eq!(r.role(), RoleKind::Prospective);
    assert!(vote_reply(&settle(&mut r, at, vote(2, 3, 0, 0, true, 2))).vote_granted);
}

/// A pre-vote from a newer epoch moves `r` to Unattached there; returns its election deadline.
fn unattached_by_a_newer_epoch(r: &mut Replica, at: Duration) -> Duration {
    settle(r, at, vote(9, 3, 0, 0, true, 1));
    assert_eq!((r.role(), r.epoch()), (RoleKind::Unattached, Epoch(9)));
    r.next_deadline().expect("a voter's election timer")
}

/// Learning a newer epoch never restarts an election timer that was already running: from
/// Unattached, Prospective (not yet rejected), Candidate or Resigned the Unattached state keeps
/// what remained of it. Only a replica that had none running (Follower, Leader) or whose
/// pre-vote was rejected draws a fresh one.
#[test]
fn unattached_keeps_the_election_timer_that_was_running() {
    let later = Duration::from_millis(100);
    let timeout = Duration::from_millis(1000);
    // Unattached.
    let mut r = started(1, &[1, 2, 3], Some(election(2, None, None)));
    let running = r.next_deadline().unwrap();
    assert_eq!(unattached_by_a_newer_epoch(&mut r, T0 + later), running);
    // Prospective.
    let (mut r, at, _) = prospective();
    let running = r.next_deadline().unwrap();
    assert_eq!(unattached_by_a_newer_epoch(&mut r, at + later), running);
    // Candidate.
    let (mut r, at, actions) = prospective();
    let id = request_id(&actions, n(2));
    settle(
        &mut r,
        at,
        Input::Response {
            from: n(2),
            request_id: id,
            response: granted(0, None),
        },
    );
    assert_eq!(r.role(), RoleKind::Candidate);
    let running = r.next_deadline().unwrap();
    assert_eq!(unattached_by_a_newer_epoch(&mut r, at + later), running);
    // Resigned.
    let mut r = started(1, &[1, 2, 3], Some(election(4, Some(1), Some(1))));
    let running = r.next_deadline().unwrap();
    assert_eq!(unattached_by_a_newer_epoch(&mut r, T0 + later), running);
    // Follower and Leader had none: a fresh one.
    let mut r = started(1, &[1, 2, 3], Some(election(2, Some(2), None)));
    assert!(unattached_by_a_newer_epoch(&mut r, T0 + later) >= T0 + later + timeout);
    let (mut l, at) = leader();
    assert!(unattached_by_a_newer_epoch(&mut l, at + later) >= at + later + timeout);
}

/// A pre-vote that failed without knowing a leader: rejected, it waits a fresh election timer
/// before trying again; merely timed out, its timer has already run, so it tries again at once.
#[test]
fn a_prospective_without_a_leader_retries_at_once_only_when_not_rejected() {
    let (mut r, at, actions) = prospective();
    for to in [2, 3] {
        let id = request_id(&actions, n(to));
        r.step(
            at,
            Input::Response {
                from: n(to),
                request_id: id,
                response: rejected(0),
            },
        );
    }
    assert_eq!(r.role(), RoleKind::Unattached);
    assert!(r.next_deadline().unwrap() >= at + Duration::from_millis(1000));
    let (mut r, _, _) = prospective();
    let (_, actions) = tick_to_deadline(&mut r);
    assert_eq!((r.role(), r.epoch()), (RoleKind::Prospective, Epoch(0)));
    let pre_votes: Vec<NodeId> = sends(&actions)
        .into_iter()
        .filter(|(_, r)| matches!(r, Request::Vote(v) if v.pre_vote))
        .map(|(to, _)| to)
        .collect();
    assert_eq!(pre_votes, vec![n(2), n(3)]);
}

/// A resigned leader has stepped aside, so it grants pre-votes to voters whose log is up to date
/// (letting a preferred successor reach its majority); it still refuses stale logs and standard
/// votes in its epoch.
#[test]
fn a_resigned_replica_grants_up_to_date_pre_votes_only() {
    let log = LogView::new(
        Offset(0),
        Offset(5),
        vec![EpochStart {
            epoch: Epoch(4),
            start_offset: Offset(0),
        }],
    );
    let (mut r, _) = boot(1, &[1, 2, 3], Some(election(4, Some(1), Some(1))), log);
    assert_eq!(r.role(), RoleKind::Resigned);
    assert!(vote_reply(&settle(&mut r, T0, vote(4, 2, 4, 5, true, 1))).vote_granted);
    assert!(!vote_reply(&settle(&mut r, T0, vote(4, 2, 4, 4, true, 1))).vote_granted);
    assert_eq!((r.role(), r.epoch()), (RoleKind::Resigned, Epoch(4)));
    // Standard votes in its epoch stay refused.
    let mut r = started(1, &[1, 2, 3], Some(election(4, Some(1), Some(1))));
    assert!(!vote_reply(&settle(&mut r, T0, vote(4, 2, 3, 0, false, 1))).vote_granted);
}

/// A new state starts with every destination ready: a retry backoff earned in the old state
/// (here a fetch the leader answered with an error) does not hold back the new state's
/// requests, as Kafka resets its connections on every transition.
#[test]
fn a_new_state_does_not_inherit_retry_backoffs() {
    let (mut r, id) = follower();
    let refused = Response::Fetch(FetchResponse {
        error: ErrorCode::NotLeaderOrFollower,
        leader_id: Some(n(1)),
        leader_epoch: Epoch(2),
        high_watermark: None,
        log_start_offset: Offset(0),
        diverging_epoch: None,
        snapshot_id: None,
        leader_endpoint: None,
        records: Bytes::new(),
    });
    let just_before = T0 + Duration::from_millis(1990);
    r.step(
        just_before,
        Input::Response {
            from: n(1),
            request_id: id,
            response: refused,
        },
    );
    let actions = r.step(T0 + Duration::from_millis(2000), Input::Tick);
    assert_eq!(r.role(), RoleKind::Prospective);
    let pre_votes: Vec<NodeId> = sends(&actions)
        .into_iter()
        .filter(|(_, r)| matches!(r, Request::Vote(_)))
        .map(|(to, _)| to)
        .collect();
    assert_eq!(pre_votes, vec![n(1), n(3)]);
}

/// The first preferred successor's wait is zero, but it campaigns the usual way: its fetch
/// timer runs out at once and it starts a pre-vote in the leader's epoch, persisting nothing,
/// rather than skipping to a standard election in a new epoch.
#[test]
fn the_first_preferred_successor_starts_with_a_pre_vote() {
    let (mut r, _) = follower();
    let actions = r.step(
        T0,
        Input::Request {
            from: InboundId(1),
            request: Request::EndQuorumEpoch(EndQuorumEpochRequest {
                cluster_id: CLUSTER.into(),
                leader_id: n(1),
                leader_epoch: Epoch(2),
                preferred_successors: vec![n(2), n(3)],
            }),
        },
    );
    assert_eq!(
        (r.role(), r.epoch(), r.voted_id()),
        (RoleKind::Prospective, Epoch(2), None)
    );
    assert!(persists(&actions).is_empty(), "{actions:?}");
    let votes: Vec<(NodeId, bool, Epoch)> = sends(&actions)
        .into_iter()
        .filter_map(|(to, r)| match r {
            Request::Vote(v) => Some((to, v.pre_vote, v.candidate_epoch)),
            _ => None,
        })
        .collect();
    assert_eq!(votes, vec![(n(1), true, Epoch(2)), (n(3), true, Epoch(2))]);
}

/// Keeps voter 2 sending `request` to leader `l` every 500 ms for 4 s; returns the role then.
fn leader_after_requests_from_voter_2(
    mut l: Replica,
    at: Duration,
    request: impl Fn() -> Request,
) -> RoleKind {
    for i in 1..=8 {
        let now = at + Duration::from_millis(500 * i);
        l.step(
            now,
            Input::Request {
                from: InboundId(i),
                request: request(),
            },
        );
        l.step(now, Input::Tick);
    }
    l.role()
}

/// Check-quorum counts a voter only for a fetch the leader served from its log (or a
/// FetchSnapshot it served): a fetch sent off to a snapshot says nothing about the voter
/// following this leader's log, so a leader hearing only those resigns.
#[test]
fn a_fetch_redirected_to_a_snapshot_does_not_count_for_check_quorum() {
    let (l, at) = leader_with_snapshot();
    let redirected = || Request::Fetch(fetch(Some(2), 1, 0, 0));
    assert_eq!(
        leader_after_requests_from_voter_2(l, at, redirected),
        RoleKind::Resigned
    );
    let (l, at) = leader_with_snapshot();
    let served = || fetch_snapshot(1, SNAPSHOT, 0);
    assert_eq!(
        leader_after_requests_from_voter_2(l, at, served),
        RoleKind::Leader
    );
}

// ---- a repaired replica (kraft's protocol-aware recovery) ------------------------------------

/// A log repaired after damage: it holds offsets [0, 1) of epoch 1 but had reached offset 3 of
/// epoch 2 before.
fn repaired_log() -> LogView {
    LogView::new(
        Offset(0),
        Offset(1),
        vec![EpochStart {
            epoch: Epoch(1),
            start_offset: Offset(0),
        }],
    )
    .with_repair_point(Some(OffsetAndEpoch {
        offset: Offset(3),
        epoch: Epoch(2),
    }))
}

fn no_vote_requests(actions: &[Action]) -> bool {
    !sends(actions)
        .iter()
        .any(|(_, r)| matches!(r, Request::Vote(_)))
}

#[test]
fn a_repaired_replica_grants_no_vote_until_its_durable_log_is_back_at_the_repair_point() {
    let (mut r, _) = boot(
        2,
        &[1, 2, 3],
        Some(election(2, Some(1), None)),
        repaired_log(),
    );
    // Up to date by the usual rule (epoch 1, offset 5 beats its epoch 1, offset 1): still
    // refused, pre-vote and standard alike.
    for pre_vote in [true, false] {
        let actions = settle(&mut r, T0, vote(3, 3, 1, 5, pre_vote, 2));
        assert!(!vote_reply(&actions).vote_granted, "pre_vote={pre_vote}");
    }
    // The leader of epoch 3 brings it back: two more records of epoch 2 and one of epoch 3.
    let mut records = data_batch(1, 2, b"b").to_vec();
    records.extend_from_slice(&data_batch(2, 2, b"c"));
    let actions = settle(&mut r, T0, begin_epoch(3, 1, 2));
    let id = request_id(&actions, n(1));
    let actions = r.step(
        T0,
        Input::Response {
            from: n(1),
            request_id: id,
            response: fetch_response(3, Some(1), Bytes::from(records)),
        },
    );
    assert!(
        !actions.contains(&Action::RepairPointReached),
        "not durable yet"
    );
    let actions = r.step(T0, Input::Flushed { offset: Offset(3) });
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == Action::RepairPointReached)
            .count(),
        1,
        "{actions:?}"
    );
    // Back at offset 3: it votes again (asked in a newer epoch, where it is unattached: a
    // follower that fetched refuses pre-votes for that reason alone).
    let actions = settle(&mut r, T0, vote(4, 3, 2, 3, false, 2));
    assert!(vote_reply(&actions).vote_granted, "{actions:?}");
}

#[test]
fn a_repaired_replica_does_not_stand_for_election_even_when_its_timer_expires() {
    let (mut r, _) = boot(1, &[1, 2, 3], None, repaired_log());
    for _ in 0..3 {
        let (_, actions) = tick_to_deadline(&mut r);
        assert_eq!(r.role(), RoleKind::Unattached, "{actions:?}");
        assert!(no_vote_requests(&actions), "{actions:?}");
    }
}

#[test]
fn a_repaired_replica_that_had_voted_for_itself_does_not_resume_its_candidacy() {
    let (r, actions) = boot(
        1,
        &[1, 2, 3],
        Some(election(2, None, Some(1))),
        repaired_log(),
    );
    assert_eq!(r.role(), RoleKind::Unattached);
    assert_eq!(r.voted_id(), Some(n(1)), "the vote it cast stays cast");
    assert!(no_vote_requests(&actions), "{actions:?}");
}

#[test]
fn a_repaired_lone_voter_is_not_held_back_and_a_log_already_there_clears_the_point() {
    // A lone voter has nobody to get its records back from: it leads at once.
    let (r, _) = boot(1, &[1], None, repaired_log());
    assert_eq!(r.role(), RoleKind::Leader);
    // A log that already reaches the point clears it at start.
    let log = LogView::new(
        Offset(0),
        Offset(4),
        vec![EpochStart {
            epoch: Epoch(2),
            start_offset: Offset(0),
        }],
    )
    .with_repair_point(Some(OffsetAndEpoch {
        offset: Offset(3),
        epoch: Epoch(2),
    }));
    let (_, actions) = boot(2, &[1, 2, 3], None, log);
    assert!(actions.contains(&Action::RepairPointReached), "{actions:?}");
}

/// Kafka returns a prospective that lost its pre-vote to the leader it knew as a Follower with
/// a whole fresh fetch timeout, even when that leader is resigning: its retry waits that long.
#[test]
fn a_pre_vote_lost_while_the_leader_resigns_retries_after_a_fresh_fetch_timeout() {
    let (mut r, _) = follower();
    let actions = r.step(
        T0,
        Input::Request {
            from: InboundId(1),
            request: Request::EndQuorumEpoch(EndQuorumEpochRequest {
                cluster_id: CLUSTER.into(),
                leader_id: n(1),
                leader_epoch: Epoch(2),
                preferred_successors: vec![n(2), n(3)],
            }),
        },
    );
    assert_eq!(r.role(), RoleKind::Prospective);
    let lost_at = T0 + Duration::from_millis(5);
    for voter in [1, 3] {
        r.step(
            lost_at,
            Input::Response {
                from: n(voter),
                request_id: request_id(&actions, n(voter)),
                response: rejected(2),
            },
        );
    }
    assert_eq!((r.role(), r.leader_id()), (RoleKind::Follower, Some(n(1))));
    let fetch_timeout = config(Some(2), &[1, 2, 3]).fetch_timeout;
    let just_before = lost_at + fetch_timeout - Duration::from_millis(1);
    r.step(just_before, Input::Tick);
    assert_eq!(
        r.role(),
        RoleKind::Follower,
        "retried before a fetch timeout"
    );
    r.step(lost_at + fetch_timeout, Input::Tick);
    assert_eq!(r.role(), RoleKind::Prospective);
}

#[test]
fn a_later_epoch_alone_does_not_bring_a_repaired_replica_back() {
    // The log's last epoch (5) is past the point's (2), but its end (2) is short of offset 3:
    // what the replica lost lies below that offset, so it is still held back.
    let log = LogView::new(
        Offset(0),
        Offset(2),
        vec![EpochStart {
            epoch: Epoch(5),
            start_offset: Offset(0),
        }],
    )
    .with_repair_point(Some(OffsetAndEpoch {
        offset: Offset(3),
        epoch: Epoch(2),
    }));
    let (mut r, actions) = boot(2, &[1, 2, 3], Some(election(5, None, None)), log);
    assert!(
        !actions.contains(&Action::RepairPointReached),
        "{actions:?}"
    );
    let actions = settle(&mut r, T0, vote(6, 3, 5, 9, false, 2));
    assert!(!vote_reply(&actions).vote_granted, "{actions:?}");
}

// ---- hostile peers: ids and epochs a correct peer never sends (issue 12) ----------------------

fn epoch_error(actions: &[Action]) -> ErrorCode {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Respond {
                response: Response::BeginQuorumEpoch(e) | Response::EndQuorumEpoch(e),
                ..
            } => Some(e.error),
            _ => None,
        })
        .expect("an epoch response")
}

#[test]
fn a_vote_from_a_candidate_that_is_not_a_voter_is_refused_and_changes_nothing() {
    let (mut r, _) = leader();
    let before = (r.epoch(), r.role(), r.leader_id(), r.voted_id());
    for pre_vote in [true, false] {
        let actions = r.step(T0, vote(2_147_483_646, 7, 5, 100, pre_vote, 1));
        let reply = vote_reply(&actions);
        assert_eq!(reply.error, ErrorCode::InconsistentVoterSet);
        assert!(!reply.vote_granted);
        assert!(persists(&actions).is_empty(), "{actions:?}");
        assert_eq!((r.epoch(), r.role(), r.leader_id(), r.voted_id()), before);
    }
}

#[test]
fn begin_and_end_quorum_epoch_naming_a_leader_that_is_not_a_voter_change_nothing() {
    let (mut r, _) = follower();
    let before = (r.epoch(), r.role(), r.leader_id());
    let begin = Input::Request {
        from: InboundId(1),
        request: Request::BeginQuorumEpoch(BeginQuorumEpochRequest {
            cluster_id: CLUSTER.into(),
            voter_id: n(2),
            voter_directory_id: None,
            leader_id: n(7),
            leader_epoch: Epoch(9),
        }),
    };
    let actions = r.step(T0, begin);
    assert_eq!(epoch_error(&actions), ErrorCode::InconsistentVoterSet);
    assert!(persists(&actions).is_empty(), "{actions:?}");
    let end = Input::Request {
        from: InboundId(2),
        request: Request::EndQuorumEpoch(EndQuorumEpochRequest {
            cluster_id: CLUSTER.into(),
            leader_id: n(7),
            leader_epoch: Epoch(9),
            preferred_successors: vec![n(2)],
        }),
    };
    let actions = r.step(T0, end);
    assert_eq!(epoch_error(&actions), ErrorCode::InconsistentVoterSet);
    assert!(persists(&actions).is_empty(), "{actions:?}");
    assert_eq!((r.epoch(), r.role(), r.leader_id()), before);
}

#[test]
fn a_fetch_claiming_the_leaders_own_id_is_refused_and_moves_no_progress() {
    let (mut r, at) = leader();
    let hw = r.high_watermark();
    let progress = r.voter_end_offsets();
    for request in [
        Request::Fetch(fetch(Some(1), 1, 1, 1)),
        Request::FetchSnapshot(FetchSnapshotRequest {
            cluster_id: CLUSTER.into(),
            replica_id: Some(n(1)),
            current_leader_epoch: Epoch(1),
            snapshot_id: OffsetAndEpoch {
                offset: Offset(0),
                epoch: Epoch(0),
            },
            position: 0,
            max_bytes: 1024,
        }),
    ] {
        let actions = r.step(
            at,
            Input::Request {
                from: InboundId(5),
                request,
            },
        );
        let error = actions.iter().find_map(|a| match a {
            Action::RespondFetch { response, .. } => Some(response.error),
            Action::RespondFetchSnapshot { response, .. } => Some(response.error),
            Action::Respond {
                response: Response::Fetch(f),
                ..
            } => Some(f.error),
            Action::Respond {
                response: Response::FetchSnapshot(f),
                ..
            } => Some(f.error),
            _ => None,
        });
        assert_eq!(error, Some(ErrorCode::InvalidRequest), "{actions:?}");
    }
    assert_eq!((r.high_watermark(), r.voter_end_offsets()), (hw, progress));
}

#[test]
fn a_replica_at_the_highest_epoch_never_wraps_it() {
    let max = i32::MAX;
    // A voter whose stored epoch is the highest: its election cannot start a new epoch.
    let mut r = started(1, &[1, 2, 3], Some(election(max, None, None)));
    let mut all = Vec::new();
    for _ in 0..3 {
        let (at, actions) = tick_to_deadline(&mut r);
        all.extend(actions.clone());
        for (to, req) in sends(&actions) {
            if let Request::Vote(v) = req {
                let id = request_id(&actions, to);
                all.extend(r.step(
                    at,
                    Input::Response {
                        from: to,
                        request_id: id,
                        response: granted(v.candidate_epoch.0, None),
                    },
                ));
            }
        }
        assert_eq!(r.epoch(), Epoch(max));
        assert_ne!(r.role(), RoleKind::Candidate);
    }
    assert!(
        persists(&all).iter().all(|p| p.epoch == Epoch(max)),
        "{:?}",
        persists(&all)
    );
    // A former leader of the highest epoch resigns but cannot move to a new one.
    let (mut r, _) = boot(
        1,
        &[1, 2, 3],
        Some(election(max, Some(1), Some(1))),
        LogView::empty(),
    );
    assert_eq!(r.role(), RoleKind::Resigned);
    for _ in 0..3 {
        let (_, actions) = tick_to_deadline(&mut r);
        assert!(persists(&actions).iter().all(|p| p.epoch == Epoch(max)));
        assert_eq!(r.epoch(), Epoch(max));
    }
}

#[test]
fn the_leader_caps_what_one_fetch_may_read_whatever_it_asks() {
    let (mut r, at) = leader();
    let mut request = fetch(Some(2), 1, 0, 0);
    request.max_bytes = 64 << 20;
    let actions = r.step(
        at,
        Input::Request {
            from: InboundId(5),
            request: Request::Fetch(request),
        },
    );
    let max_bytes = actions.iter().find_map(|a| match a {
        Action::RespondFetch { max_bytes, .. } => Some(*max_bytes),
        _ => None,
    });
    assert_eq!(max_bytes, Some(kraft::raft::FETCH_MAX_BYTES), "{actions:?}");
}

/// A single voter leading at epoch 1 with its leader-change batch committed (log end 1).
fn lone_leader() -> Replica {
    let (mut r, _) = start(1, &[1], None, LogView::empty());
    r.step(T0, Input::ElectionPersisted);
    r.step(T0, Input::ElectionPersisted);
    r.step(T0, Input::ElectionPersisted);
    r.step(T0, Input::Flushed { offset: Offset(1) });
    r
}

/// A client's batch of `n` records, as a Kafka producer sends it: base offset 0, epoch -1.
fn client_batch(n: usize) -> Bytes {
    let mut b =
        kraft::record::BatchBuilder::new(kraft::record::BatchKind::Data, Offset(0), Epoch(-1));
    for i in 0..n {
        b.append(1_234, Some(b"k"), Some(&[i as u8; 3]), &[])
            .unwrap();
    }
    b.build().unwrap()
}

#[test]
fn a_client_batch_is_appended_at_the_log_end_in_the_leader_epoch_and_otherwise_as_sent() {
    let mut r = lone_leader();
    let sent = client_batch(3);
    let actions = r.step(
        T0,
        Input::ProposeBatch {
            id: ProposalId(9),
            batch: sent.clone(),
        },
    );
    let Action::Append { batches } = &actions[0] else {
        panic!("{actions:?}");
    };
    let appended = kraft::record::RecordBatch::decode(batches.clone()).expect("valid");
    assert_eq!(appended.base_offset(), Offset(1));
    assert_eq!(appended.epoch(), r.epoch());
    // Everything the CRC covers is the client's, byte for byte.
    assert_eq!(batches[21..], sent[21..]);
    assert_eq!(
        r.step(T0, Input::Flushed { offset: Offset(4) }),
        vec![
            Action::HighWatermark(Offset(4)),
            Action::Proposed {
                id: ProposalId(9),
                outcome: ProposalOutcome::Committed {
                    first: Offset(1),
                    last: Offset(3)
                }
            }
        ]
    );
}

#[test]
fn an_invalid_client_batch_is_refused_and_nothing_is_appended() {
    let mut r = lone_leader();
    let mut corrupt = client_batch(2).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x10;
    let control = common::leader_change_batch();
    for (i, batch) in [Bytes::from(corrupt), control, Bytes::new()]
        .into_iter()
        .enumerate()
    {
        let id = ProposalId(20 + i as u64);
        assert_eq!(
            r.step(T0, Input::ProposeBatch { id, batch }),
            vec![Action::Proposed {
                id,
                outcome: ProposalOutcome::Refused(ProposeError::InvalidBatch)
            }]
        );
    }
    assert_eq!(r.log().log_end_offset(), Offset(1));
}

#[test]
fn a_client_batch_sent_to_a_follower_is_refused_naming_the_leader() {
    let mut r = started(1, &[1, 2, 3], Some(election(4, Some(2), None)));
    let actions = r.step(
        T0,
        Input::ProposeBatch {
            id: ProposalId(1),
            batch: client_batch(1),
        },
    );
    assert_eq!(
        actions,
        vec![Action::Proposed {
            id: ProposalId(1),
            outcome: ProposalOutcome::Refused(ProposeError::NotLeader {
                leader_id: Some(n(2)),
                epoch: Epoch(4)
            })
        }]
    );
}

/// `batch` as idempotent producer `pid` sent it, at `epoch` from `sequence` (CRC made valid).
fn from_producer(batch: &Bytes, pid: i64, epoch: i16, sequence: i32) -> Bytes {
    let mut b = batch.to_vec();
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&sequence.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

fn propose_batch(r: &mut Replica, id: u64, batch: Bytes) -> Vec<Action> {
    r.step(
        T0,
        Input::ProposeBatch {
            id: ProposalId(id),
            batch,
        },
    )
}

fn outcome(actions: &[Action]) -> Option<ProposalOutcome> {
    actions.iter().find_map(|a| match a {
        Action::Proposed { outcome, .. } => Some(*outcome),
        _ => None,
    })
}

#[test]
fn a_retried_producer_batch_is_not_appended_again_and_answers_with_the_original_offsets() {
    let mut r = lone_leader();
    let first = from_producer(&client_batch(2), 77, 0, 0);
    assert!(matches!(
        propose_batch(&mut r, 1, first.clone())[0],
        Action::Append { .. }
    ));
    // A retry before the original committed waits for it, appending nothing.
    let retry = propose_batch(&mut r, 2, first.clone());
    assert_eq!(retry, vec![]);
    let actions = r.step(T0, Input::Flushed { offset: Offset(3) });
    let committed = |id| Action::Proposed {
        id: ProposalId(id),
        outcome: ProposalOutcome::Committed {
            first: Offset(1),
            last: Offset(2),
        },
    };
    assert!(
        actions.contains(&committed(1)) && actions.contains(&committed(2)),
        "{actions:?}"
    );
    // A retry after the commit is answered at once, still appending nothing.
    assert_eq!(propose_batch(&mut r, 3, first), vec![committed(3)]);
    assert_eq!(r.log().log_end_offset(), Offset(3));
}

#[test]
fn producer_sequences_must_follow_on_and_epochs_never_go_back() {
    let mut r = lone_leader();
    let b = client_batch(2);
    assert!(
        matches!(
            propose_batch(&mut r, 1, from_producer(&b, 5, 3, 10))[0],
            Action::Append { .. }
        ),
        "an unknown producer may start anywhere"
    );
    // The next must start at 12 (10 and 11 were used).
    assert_eq!(
        outcome(&propose_batch(&mut r, 2, from_producer(&b, 5, 3, 13))),
        Some(ProposalOutcome::Refused(ProposeError::OutOfOrderSequence))
    );
    assert_eq!(
        outcome(&propose_batch(&mut r, 3, from_producer(&b, 5, 2, 12))),
        Some(ProposalOutcome::Refused(ProposeError::InvalidProducerEpoch))
    );
    // A new epoch starts again at 0, and nowhere else.
    assert_eq!(
        outcome(&propose_batch(&mut r, 4, from_producer(&b, 5, 4, 12))),
        Some(ProposalOutcome::Refused(ProposeError::OutOfOrderSequence))
    );
    assert!(matches!(
        propose_batch(&mut r, 5, from_producer(&b, 5, 3, 12))[0],
        Action::Append { .. }
    ));
    assert!(matches!(
        propose_batch(&mut r, 6, from_producer(&b, 5, 4, 0))[0],
        Action::Append { .. }
    ));
    assert_eq!(r.log().log_end_offset(), Offset(7));
}

#[test]
fn producer_state_follows_truncation() {
    use kraft::raft::ProducerStates;
    let mut states = ProducerStates::default();
    let header = |base: i64, seq: i32| {
        let b = from_producer(&client_batch(1), 9, 0, seq);
        let mut b = b.to_vec();
        b[..8].copy_from_slice(&base.to_be_bytes());
        kraft::record::BatchHeader::parse(&b).unwrap()
    };
    for (base, seq) in [(1, 0), (2, 1), (3, 2)] {
        states.record(&header(base, seq), Offset(2));
    }
    assert_eq!(
        states.check(&header(0, 2)),
        kraft::raft::SequenceCheck::Duplicate {
            first: Offset(3),
            last: Offset(3)
        }
    );
    // Truncated at 3: sequence 2 is no longer in the log, and is the next one expected.
    states.truncate(Offset(3));
    assert_eq!(
        states.check(&header(0, 2)),
        kraft::raft::SequenceCheck::Append
    );
    assert_eq!(
        states.check(&header(0, 3)),
        kraft::raft::SequenceCheck::OutOfOrder
    );
}

// ---- observers at the leader (DescribeQuorum's CurrentObservers) --------------------------------

fn fetch_from(l: &mut Replica, at: Duration, inbound: u64, request: FetchRequest) -> Vec<Action> {
    l.step(
        at,
        Input::Request {
            from: InboundId(inbound),
            request: Request::Fetch(request),
        },
    )
}

#[test]
fn an_observers_fetch_is_remembered_but_never_counts_towards_the_high_watermark() {
    let (mut l, at) = leader();
    // Observer 4 holds the LeaderChange record (offset 1); with voters 2 and 3 silent nothing
    // commits: only voters make a majority.
    fetch_from(&mut l, at, 1, fetch(Some(4), 1, 1, 1));
    assert_eq!(l.high_watermark(), None);
    let observers = l.observer_progress();
    assert_eq!(observers.keys().copied().collect::<Vec<_>>(), vec![n(4)]);
    let progress = observers[&n(4)];
    assert_eq!(progress.end_offset, Some(Offset(1)));
    assert_eq!(progress.last_fetch, Some(at));
    assert_eq!(
        progress.last_caught_up,
        Some(at),
        "fetching at the leader's log end"
    );
    assert!(!l.voter_progress().contains_key(&n(4)));
    // An id-less fetcher leaves no trace.
    fetch_from(&mut l, at, 2, fetch(None, 1, 1, 1));
    assert_eq!(l.observer_progress().len(), 1);
    // A voter's fetch is a voter's, not an observer's.
    fetch_from(&mut l, at, 3, fetch(Some(2), 1, 1, 1));
    assert_eq!(l.high_watermark(), Some(Offset(1)));
    assert_eq!(l.observer_progress().len(), 1);
}

#[test]
fn observers_fetching_never_keep_a_leader_without_voters_in_office() {
    let (mut l, at) = leader();
    let mut now = at;
    let mut i = 0;
    while l.role() == RoleKind::Leader {
        now += Duration::from_millis(100);
        fetch_from(&mut l, now, i, fetch(Some(4), 1, 1, 1));
        fetch_from(&mut l, now, i + 1, fetch(Some(5), 1, 1, 1));
        l.step(now, Input::Tick);
        i += 2;
    }
    assert_eq!(l.role(), RoleKind::Resigned);
    assert_eq!(
        now - at,
        Duration::from_millis(3000),
        "check-quorum counts voters only: resigned as if nobody fetched"
    );
}

#[test]
fn the_leader_forgets_silent_observers_and_bounds_how_many_it_remembers() {
    use kraft::raft::{MAX_TRACKED_OBSERVERS, OBSERVER_SESSION_TIMEOUT};
    let (mut l, at) = leader();
    // Keep the leader in office with voter 2's fetches throughout.
    fetch_from(&mut l, at, 0, fetch(Some(2), 1, 1, 1));
    fetch_from(&mut l, at, 1, fetch(Some(4), 1, 1, 1));
    let mut now = at;
    while now < at + OBSERVER_SESSION_TIMEOUT {
        now += Duration::from_millis(1000);
        fetch_from(&mut l, now, 2, fetch(Some(2), 1, 1, 1));
        l.step(now, Input::Tick);
    }
    assert_eq!(l.role(), RoleKind::Leader);
    assert!(
        l.observer_progress().is_empty(),
        "observer 4 went silent 5 minutes ago"
    );

    // More distinct ids than the bound: the least recently fetching are forgotten.
    let first_id = 1000;
    let count = MAX_TRACKED_OBSERVERS as i32 + 10;
    for (i, id) in (first_id..first_id + count).enumerate() {
        let t = now + Duration::from_millis(i as u64);
        fetch_from(&mut l, t, 10 + i as u64, fetch(Some(id), 1, 1, 1));
    }
    let observers = l.observer_progress();
    assert_eq!(observers.len(), MAX_TRACKED_OBSERVERS);
    assert_eq!(
        observers.keys().next(),
        Some(&n(first_id + 10)),
        "the ten oldest were dropped"
    );
}
