//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/*`) through the same functions the
//! cargo fuzz targets call (`kraft::fuzzing`), so every input a fuzzer ever kept, and every crash
//! it found once fixed, stays a regression test on stable Rust without cargo fuzz.
//!
//! `cargo test --test fuzz_corpora -- --ignored write_seed_corpora` (re)writes the hand-made
//! seeds the fuzzers start from (`KRAFT_SEED_TARGET=<target>` for one target only).

mod common;

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use kafka_protocol::messages::ApiKey;
use kraft::protocol::{FrameCodec, Handshake, PROTOCOL_VERSION, PeerMessage};
use kraft::raft::{
    EpochResponse, ErrorCode, FetchRequest, FetchResponse, Request, Response, VoteRequest,
    VoteResponse,
};
use kraft::types::{Epoch, NodeId, Offset};
use tokio_util::codec::Encoder;

type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("peer_frames", kraft::fuzzing::peer_frames),
    ("record_batches", kraft::fuzzing::record_batches),
    ("properties", kraft::fuzzing::properties),
    ("quorum_state", kraft::fuzzing::quorum_state),
    ("log_recovery", kraft::fuzzing::log_recovery),
    ("core_messages", kraft::fuzzing::core_messages),
    ("tls_handshake", kraft::fuzzing::tls_handshake),
    ("kafka_requests", kraft::fuzzing::kafka_requests),
];

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

#[test]
fn every_corpus_input_runs_clean() {
    for (target, run) in TARGETS {
        let dir = corpus(target);
        let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{target}: an empty corpus");
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            let result = std::panic::catch_unwind(|| run(&data));
            assert!(result.is_ok(), "{target} panics on {}", input.display());
        }
    }
}

fn frames(messages: &[PeerMessage]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for m in messages {
        FrameCodec.encode(m, &mut out).unwrap();
    }
    out.to_vec()
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let hello = PeerMessage::Handshake(Handshake {
        protocol_version: PROTOCOL_VERSION,
        cluster_id: "fuzz".into(),
        node_id: Some(NodeId(2)),
        rack: None,
        directory_id: None,
    });
    let vote = PeerMessage::Request {
        correlation_id: 1,
        request: Request::Vote(VoteRequest {
            cluster_id: "fuzz".into(),
            voter_id: NodeId(1),
            candidate_epoch: Epoch(1),
            candidate_id: NodeId(2),
            last_offset_epoch: Epoch(0),
            last_offset: Offset(0),
            pre_vote: true,
            candidate_directory_id: None,
            voter_directory_id: None,
        }),
    };
    let fetch = PeerMessage::Request {
        correlation_id: 2,
        request: Request::Fetch(FetchRequest {
            cluster_id: "fuzz".into(),
            replica_id: Some(NodeId(2)),
            replica_directory_id: None,
            current_leader_epoch: Epoch(1),
            fetch_offset: Offset(0),
            last_fetched_epoch: Epoch(0),
            high_watermark: None,
            max_wait_ms: 500,
            max_bytes: 1024,
        }),
    };
    let granted = PeerMessage::Response {
        correlation_id: 0,
        response: Response::Vote(VoteResponse {
            error: ErrorCode::None,
            leader_id: None,
            leader_epoch: Epoch(1),
            vote_granted: true,
        }),
    };
    let begin = PeerMessage::Response {
        correlation_id: 1,
        response: Response::BeginQuorumEpoch(EpochResponse {
            error: ErrorCode::None,
            leader_id: Some(NodeId(1)),
            leader_epoch: Epoch(1),
        }),
    };
    let batches = [
        common::batch(0, 1, 3, 20, 1).to_vec(),
        common::batch(3, 1, 1, 5, 2).to_vec(),
        common::batch(4, 2, 2, 50, 3).to_vec(),
    ]
    .concat();
    let fetched = PeerMessage::Response {
        correlation_id: 3,
        response: Response::Fetch(FetchResponse {
            error: ErrorCode::None,
            leader_id: Some(NodeId(2)),
            leader_epoch: Epoch(2),
            high_watermark: Some(Offset(2)),
            log_start_offset: Offset(0),
            diverging_epoch: None,
            snapshot_id: None,
            leader_endpoint: None,
            records: bytes::Bytes::from(batches.clone()),
        }),
    };
    match target {
        "peer_frames" => vec![
            frames(std::slice::from_ref(&hello)),
            frames(&[hello.clone(), vote.clone(), fetch.clone()]),
            frames(std::slice::from_ref(&fetched)),
        ],
        "record_batches" => vec![batches.clone(), batches[..batches.len() - 7].to_vec()],
        "properties" => vec![
            b"node.id=1\nlisteners=PLAINTEXT://localhost:9092\ncontroller.quorum.voters=1@localhost:9092\n".to_vec(),
            b"node.id=2\nlisteners=CONTROLLER://h:1\ncontroller.listener.names=CONTROLLER\ncontroller.quorum.voters=1@h:1,2@h:2\nmax.connections=5\nmax.connections.per.ip=2\nlistener.security.protocol.map=CONTROLLER:SSL\n".to_vec(),
        ],
        "quorum_state" => vec![
            br#"{"leaderId":1,"leaderEpoch":3,"votedId":-1,"votedDirectoryId":null,"data_version":1}"#.to_vec(),
            br#"{"clusterId":"","leaderId":1,"leaderEpoch":2,"votedId":1,"appliedOffset":0,"currentVoters":[{"voterId":1}],"data_version":0}"#.to_vec(),
        ],
        "log_recovery" => vec![
            [&[128u8][..], &batches].concat(),
            [&[255u8][..], &batches[..batches.len() - 3]].concat(),
        ],
        "core_messages" => vec![
            frames(&[granted.clone(), begin.clone(), vote.clone(), fetch.clone()]),
            frames(&[fetched.clone(), fetch, vote]),
        ],
        "tls_handshake" => kraft::fuzzing::tls_handshake_seeds(),
        "kafka_requests" => kafka_request_seeds(),
        _ => unreachable!(),
    }
}

/// One framed request of every api kraft serves at every version it decodes.
fn kafka_request_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for &(api, min, max) in kraft::kafka::request::SUPPORTED {
        for version in min.max(if api == ApiKey::Produce { 3 } else { 0 })..=max {
            let frame = common::kafka::sample(api, version);
            let mut framed = (frame.len() as u32).to_be_bytes().to_vec();
            framed.extend_from_slice(&frame);
            seeds.push(framed);
        }
    }
    seeds
}

/// The TLS target's seeds come from complete handshakes with its embedded certificates: should
/// they stop working, the target would fuzz nothing but refusals.
#[test]
fn the_tls_target_certificates_complete_real_handshakes() {
    let seeds = kraft::fuzzing::tls_handshake_seeds();
    assert_eq!(seeds.len(), 6);
    for seed in &seeds {
        kraft::fuzzing::tls_handshake(seed);
    }
}

#[test]
#[ignore = "writes the seed corpora into the source tree"]
fn write_seed_corpora() {
    // `KRAFT_SEED_TARGET=name` writes one target's seeds only (the TLS seeds differ per run).
    let only = std::env::var("KRAFT_SEED_TARGET").ok();
    for (target, _) in TARGETS {
        if only.as_deref().is_some_and(|o| o != *target) {
            continue;
        }
        let dir = corpus(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds(target).into_iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
        }
    }
}
