//! Seeded simulation of 1–5 voters, 0–3 observers and sometimes an id-less observer, running
//! the protocol core and the real storage executors over simulated disks, with message loss,
//! duplication, delay, reordering, corruption, partitions, process crashes (the page cache
//! survives), power losses (only durable bytes survive, unsynced appends may tear), fsync
//! failures (the node stops, its machine reboots), restarts, graceful shutdowns, observers'
//! disks wiped, snapshots, log cleaning and FetchSnapshot catch-up. Invariants are checked
//! after every event; at the end the faults stop and the quorum must make progress.
//!
//! `KRAFT_SIM_SEEDS=N` runs N seeds (default 500), `KRAFT_SIM_SEED=S` replays one seed,
//! `KRAFT_SIM_EVENTS=E` sets the events per seed (default 2000).

mod sim;

use std::time::Duration;

use sim::{NetConfig, Rng, Sim};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn random_net(rng: &mut Rng) -> NetConfig {
    let max_delay_ms = 2 + rng.below(40);
    NetConfig {
        drop_per_mille: rng.below(100),
        dup_per_mille: rng.below(50),
        corrupt_per_mille: rng.below(50),
        min_delay_ms: 1,
        max_delay_ms,
    }
}

/// One seeded run: random topology, random faults for `events` events, then heal and progress.
/// Returns the process crashes, power losses, disk-error stops and repairs it saw, and the
/// voter changes that committed.
///
/// `dynamic`: a kraft.version 1 quorum of 1–3 initial voters and 1–3 nodes that may join, with
/// voters added and removed at random (the leader itself included) among the faults.
fn run_seed(seed: u64, events: u64, dynamic: bool) -> ((u64, u64, u64, u64), u64) {
    let mut rng = Rng::new(seed);
    let voters = 1 + rng.below(if dynamic { 3 } else { 5 }) as usize;
    let observers = rng.below(4) as usize;
    let idless = rng.chance(300);
    // A fifth of the seeds have leaders linger up to 5 ms before each flush.
    let linger = rng
        .chance(200)
        .then(|| Duration::from_millis(1 + rng.below(5)));
    let mut sim = match dynamic {
        true => Sim::dynamic(seed, voters, observers.max(1), linger),
        false => Sim::with_linger(seed, voters, observers, idless, linger),
    };
    sim.net = random_net(&mut rng);
    // Half the seeds run with disk faults: up to one fsync in 500 fails, and disks fill up.
    let disk_faults = rng.chance(500);
    if disk_faults {
        sim.set_sync_faults(rng.below(2000));
    }
    let n = sim.nodes.len();
    while sim.events_run < events {
        match rng.below(100) {
            0..=7 if dynamic => sim.reconfigure(),
            0..=49 => sim.propose(),
            50..=52 => sim.crash(rng.below(n as u64) as usize),
            53..=54 => sim.crash_unflushed(rng.below(n as u64) as usize),
            55..=57 => sim.power_loss(rng.below(n as u64) as usize),
            58..=69 => {
                let i = rng.below(n as u64) as usize;
                if !sim.is_running(i) {
                    sim.start_node(i);
                }
            }
            70..=72 => sim.shutdown(rng.below(n as u64) as usize),
            // An observer's disk wiped: it must re-replicate everything. (A voter's wipe can lose
            // committed data or a vote, Raft's known limit; it has its own scenario.)
            73 => {
                if let Some(observer) =
                    (voters..n).nth(rng.below((n - voters).max(1) as u64) as usize)
                {
                    sim.wipe_observer(observer);
                }
            }
            74..=79 => {
                let side: Vec<usize> = (0..n).filter(|_| rng.chance(400)).collect();
                sim.partition(&side);
            }
            80..=84 => {
                // An asymmetric cut: one direction of one link.
                let (a, b) = (rng.below(n as u64) as usize, rng.below(n as u64) as usize);
                sim.blocked.insert((a, b));
            }
            85..=90 => sim.heal(),
            91..=93 => sim.snapshot(rng.below(n as u64) as usize),
            94..=95 => sim.clean(rng.below(n as u64) as usize),
            96 if disk_faults => {
                let room = rng.below(64 * 1024);
                sim.fill_disk(rng.below(n as u64) as usize, room);
            }
            // Data rots at rest on a stopped node; its next start refuses, and the operator
            // repairs it.
            97 => sim.rot(rng.below(n as u64) as usize),
            _ => sim.net = random_net(&mut rng),
        }
        let budget = events.saturating_sub(sim.events_run);
        sim.run_for(Duration::from_millis(10 + rng.below(400)), budget.max(1));
    }
    sim.net = NetConfig::PERFECT;
    sim.set_sync_faults(0);
    sim.free_disks();
    sim.heal();
    sim.restart_all();
    sim.check_progress(Duration::from_secs(60));
    let changes = sim.change_outcomes.values().filter(|r| r.is_ok()).count() as u64;
    (sim.crashes, changes)
}

#[test]
fn seeded_simulation_keeps_every_invariant() {
    run_seeds(false, 500);
}

/// The same faults on dynamic quorums whose voters change while they run.
#[test]
fn seeded_dynamic_quorum_simulation_keeps_every_invariant() {
    run_seeds(true, 200);
}

fn run_seeds(dynamic: bool, default_seeds: u64) {
    let events = env_u64("KRAFT_SIM_EVENTS").unwrap_or(2000);
    if let Some(seed) = env_u64("KRAFT_SIM_SEED") {
        run_seed(seed, events, dynamic);
        return;
    }
    let seeds = env_u64("KRAFT_SIM_SEEDS").unwrap_or(default_seeds);
    let base = env_u64("KRAFT_SIM_BASE").unwrap_or(0);
    let started = std::time::Instant::now();
    let mut faults = (0, 0, 0, 0);
    let mut changes = 0;
    for seed in base..base + seeds {
        let ((crashes, power_losses, disk_errors, repairs), changed) =
            run_seed(seed, events, dynamic);
        changes += changed;
        faults = (
            faults.0 + crashes,
            faults.1 + power_losses,
            faults.2 + disk_errors,
            faults.3 + repairs,
        );
    }
    eprintln!(
        "{} {seeds} seeds x {events} events in {:.1}s: {} process crashes, {} power losses, {} nodes stopped by disk errors, {} repaired after data rotted, {changes} voter changes committed",
        if dynamic { "dynamic" } else { "static" },
        started.elapsed().as_secs_f64(),
        faults.0,
        faults.1,
        faults.2,
        faults.3
    );
}
