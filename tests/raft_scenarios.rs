//! Named scenarios for the protocol core, each driven through the deterministic simulation
//! (`tests/sim`). Every invariant is checked after every event; each test then asserts what the
//! scenario is about.

mod sim;

use std::time::Duration;

use kraft::raft::RoleKind;
use sim::Sim;

const SEED: u64 = 42;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Elects a leader and commits a few proposals; returns the leader's index.
fn settle(sim: &mut Sim) -> usize {
    sim.run_until(secs(30), "a first leader", |s| s.leader().is_some());
    for _ in 0..5 {
        sim.propose();
        sim.run_for(Duration::from_millis(50), 10_000);
    }
    sim.run_until(secs(10), "the first proposals to commit", |s| {
        s.acknowledged.len() >= 5
    });
    sim.leader().unwrap()
}

#[test]
fn first_election_with_one_three_and_five_voters() {
    for voters in [1, 3, 5] {
        let mut sim = Sim::new(SEED + voters as u64, voters, 1, true);
        let leader = settle(&mut sim);
        assert_eq!(sim.role(leader), Some(RoleKind::Leader));
        let epoch = sim.epoch(leader).unwrap();
        assert_eq!(
            epoch.0, 1,
            "{voters} voters: a clean start elects in epoch 1"
        );
        sim.check_progress(secs(30));
        // Everyone, observers and the id-less observer included, follows the same leader.
        for i in 0..sim.nodes.len() {
            assert_eq!(sim.epoch(i), Some(epoch), "{voters} voters: node {i}");
        }
    }
}

#[test]
fn a_killed_leader_is_replaced_and_commits_continue() {
    let mut sim = Sim::new(SEED, 3, 0, false);
    let old = settle(&mut sim);
    let old_epoch = sim.epoch(old).unwrap();
    sim.crash(old);
    sim.run_until(secs(30), "a new leader", |s| {
        s.leader().is_some_and(|l| l != old)
    });
    let new = sim.leader().unwrap();
    assert!(sim.epoch(new).unwrap() > old_epoch);
    sim.start_node(old);
    sim.check_progress(secs(30));
    assert_eq!(sim.role(old), Some(RoleKind::Follower));
}

/// Stops the settled leader gracefully once everyone caught up; returns the new leader's place
/// in the old leader's preferred successors (everyone equal: lowest id first).
fn graceful_handover(voters: usize) -> usize {
    let mut sim = Sim::new(SEED, voters, 0, false);
    let old = settle(&mut sim);
    sim.run_for(secs(1), 10_000);
    let successors: Vec<usize> = (0..voters).filter(|i| *i != old).collect();
    let stopped_at = sim.now;
    sim.shutdown(old);
    sim.run_until(secs(10), "a new leader", |s| {
        s.leader().is_some_and(|l| l != old)
    });
    let new = sim.leader().unwrap();
    let handover = sim.now - stopped_at;
    assert!(handover < secs(1), "graceful handover took {handover:?}");
    assert!(!sim.is_running(old), "the old leader finished its shutdown");
    sim.restart_all();
    sim.check_progress(secs(30));
    successors.iter().position(|s| *s == new).unwrap()
}

#[test]
fn a_gracefully_stopped_leader_hands_over_to_its_preferred_successor() {
    // Three voters: the first successor's pre-vote wins with the resigned leader's grant.
    assert_eq!(graceful_handover(3), 0);
    // Five voters: the followers that fetched from the leader refuse the first successor's
    // pre-vote; the second wins with the first's grant and the resigned leader's.
    assert_eq!(graceful_handover(5), 1);
}

#[test]
fn all_killed_then_a_majority_restarted_makes_progress() {
    let mut sim = Sim::new(SEED, 5, 0, false);
    settle(&mut sim);
    for i in 0..5 {
        sim.crash(i);
    }
    for i in 0..3 {
        sim.start_node(i);
    }
    sim.check_progress(secs(60));
    sim.restart_all();
    sim.check_progress(secs(60));
}

#[test]
fn a_leader_partitioned_away_resigns_and_the_majority_moves_on() {
    let mut sim = Sim::new(SEED, 3, 0, false);
    let old = settle(&mut sim);
    let cut_at = sim.now;
    sim.partition(&[old]);
    sim.run_until(secs(10), "the isolated leader to resign", |s| {
        s.role(old) != Some(RoleKind::Leader)
    });
    let resigned_after = sim.now - cut_at;
    // Check-quorum: 1.5 x the fetch timeout (3 s here), plus a poll's slack.
    assert!(
        resigned_after <= Duration::from_millis(4600),
        "resigned after {resigned_after:?}"
    );
    sim.run_until(secs(30), "a leader on the majority side", |s| {
        s.leader().is_some_and(|l| l != old)
    });
    let before = sim.acknowledged.len();
    for _ in 0..5 {
        sim.propose();
        sim.run_for(Duration::from_millis(50), 10_000);
    }
    sim.run_until(secs(10), "the majority to commit", |s| {
        s.acknowledged.len() >= before + 5
    });
    sim.heal();
    sim.check_progress(secs(30));
}

#[test]
fn a_two_three_split_heals_and_converges() {
    let mut sim = Sim::new(SEED, 5, 0, false);
    settle(&mut sim);
    sim.partition(&[0, 1]);
    sim.run_until(secs(30), "a leader among 2, 3, 4", |s| {
        s.leader().is_some_and(|l| l >= 2)
    });
    let before = sim.acknowledged.len();
    for _ in 0..10 {
        sim.propose();
        sim.run_for(Duration::from_millis(50), 10_000);
    }
    sim.run_until(secs(10), "the majority side to commit", |s| {
        s.acknowledged.len() >= before + 10
    });
    assert!(
        sim.hw(0) < sim.hw(sim.leader().unwrap()),
        "the minority side cannot commit"
    );
    sim.heal();
    sim.check_progress(secs(30));
}

#[test]
fn back_to_back_leader_failures() {
    let mut sim = Sim::new(SEED, 5, 0, false);
    let first = settle(&mut sim);
    sim.partition(&[first]);
    sim.run_until(secs(30), "a second leader", |s| {
        s.leader().is_some_and(|l| l != first)
    });
    let second = sim.leader().unwrap();
    sim.heal();
    sim.partition(&[second]);
    sim.run_until(secs(30), "a third leader", |s| {
        s.leader().is_some_and(|l| l != second)
    });
    sim.heal();
    sim.check_progress(secs(30));
}

#[test]
fn a_partitioned_follower_rejoining_does_not_disturb_the_leader() {
    let mut sim = Sim::new(SEED, 3, 0, false);
    let leader = settle(&mut sim);
    let epoch = sim.epoch(leader).unwrap();
    let follower = (0..3).find(|i| *i != leader).unwrap();
    sim.partition(&[follower]);
    sim.run_for(secs(20), 200_000);
    // Pre-vote kept it from bumping its epoch while alone.
    assert_eq!(sim.epoch(follower), Some(epoch));
    sim.heal();
    sim.check_progress(secs(30));
    assert_eq!(sim.leader(), Some(leader));
    assert_eq!(sim.epoch(leader), Some(epoch), "the leader kept its epoch");
}

#[test]
fn a_divergent_uncommitted_tail_of_many_batches_converges() {
    let mut sim = Sim::new(SEED, 3, 0, false);
    let old = settle(&mut sim);
    sim.partition(&[old]);
    for _ in 0..60 {
        sim.propose();
        sim.run_for(Duration::from_millis(20), 10_000);
    }
    let tail = sim.log_end(old);
    sim.run_until(secs(30), "a new leader", |s| {
        s.leader().is_some_and(|l| l != old)
    });
    for _ in 0..5 {
        sim.propose();
        sim.run_for(Duration::from_millis(50), 10_000);
    }
    sim.heal();
    sim.check_progress(secs(60));
    assert!(
        tail.0 > 60,
        "the old leader had appended a long tail ({tail})"
    );
    let new = sim.leader().unwrap();
    let (old_log, new_log) = (sim.batches(old), sim.batches(new));
    assert_eq!(old_log, new_log[..old_log.len()]);
}

#[test]
fn a_wiped_disk_after_a_new_leader_loses_nothing_committed() {
    let mut sim = Sim::new(SEED, 3, 0, false);
    let old = settle(&mut sim);
    sim.crash(old);
    sim.run_until(secs(30), "a new leader", |s| {
        s.leader().is_some_and(|l| l != old)
    });
    for _ in 0..5 {
        sim.propose();
        sim.run_for(Duration::from_millis(50), 10_000);
    }
    sim.wipe(old);
    sim.start_node(old);
    sim.check_progress(secs(60));
    assert_eq!(sim.role(old), Some(RoleKind::Follower));
}
