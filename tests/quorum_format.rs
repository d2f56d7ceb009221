//! Golden tests of `kraft quorum describe`'s two formats against literal text derived from
//! Kafka's MetadataQuorumCommand (labels padded to 24 columns; the replication table's cells
//! padded to their column's width and each followed by a tab; `null` for a zero directory id in
//! the status, its base64 in the table; endpoints only where the answer lists some), and of
//! the dashboard drawn into ratatui's test buffer.

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{BrokerId, DescribeQuorumResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kraft::cli::quorum_client::Description;
use kraft::cli::quorum_dashboard::Dashboard;
use kraft::cli::quorum_format::{FormatError, replication, status};
use kraft::cli::quorum_info::{QuorumAnswerError, QuorumInfo};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const NOW: i64 = 1_700_000_010_000;
const CLUSTER: &str = "MkU3OEVBNTcwNTJENDM2Qg";

fn replica(id: i32, dir: u8, end: i64, fetched: i64, caught_up: i64) -> ReplicaState {
    let mut r = ReplicaState::default();
    r.replica_id = BrokerId(id);
    r.replica_directory_id = uuid::Uuid::from_bytes([dir; 16]);
    r.log_end_offset = end;
    r.last_fetch_timestamp = fetched;
    r.last_caught_up_timestamp = caught_up;
    r
}

fn node(id: i32, listeners: &[(&str, &str, u16)]) -> Node {
    let mut n = Node::default();
    n.node_id = BrokerId(id);
    n.listeners = listeners
        .iter()
        .map(|(name, host, port)| {
            let mut l = Listener::default();
            l.name = StrBytes::from_string(name.to_string());
            l.host = StrBytes::from_string(host.to_string());
            l.port = *port;
            l
        })
        .collect();
    n
}

/// Leader 2 in epoch 7; voter 1 without a directory id, voter 3 furthest behind; observer 4
/// never caught up, observer 5 never fetched; endpoints for 1, 2 (IPv6 and a second listener)
/// and 4.
fn response() -> DescribeQuorumResponse {
    let mut p = PartitionData::default();
    p.partition_index = 0;
    p.leader_id = BrokerId(2);
    p.leader_epoch = 7;
    p.high_watermark = 1500;
    p.current_voters = vec![
        replica(1, 0, 1490, 1_700_000_009_800, 1_700_000_009_500),
        replica(2, 2, 1510, 1_700_000_009_900, 1_700_000_009_900),
        replica(3, 3, 1400, 1_700_000_005_000, 1_700_000_001_000),
    ];
    p.observers = vec![
        replica(4, 4, 1505, 1_700_000_009_950, -1),
        replica(5, 0, -1, -1, -1),
    ];
    let mut t = TopicData::default();
    t.topic_name = TopicName(StrBytes::from_static_str("__cluster_metadata"));
    t.partitions = vec![p];
    let mut r = DescribeQuorumResponse::default();
    r.topics = vec![t];
    r.nodes = vec![
        node(1, &[("CONTROLLER", "localhost", 9093)]),
        node(2, &[("CONTROLLER", "::1", 9094), ("SSL", "h2", 9095)]),
        node(4, &[("CONTROLLER", "o4", 9096)]),
    ];
    r
}

fn quorum() -> QuorumInfo {
    QuorumInfo::from_response(&response()).unwrap()
}

#[test]
fn status_matches_kafkas_format() {
    let expected = "\
ClusterId:              MkU3OEVBNTcwNTJENDM2Qg
LeaderId:               2
LeaderEpoch:            7
HighWatermark:          1500
MaxFollowerLag:         110
MaxFollowerLagTimeMs:   8900
CurrentVoters:          [{\"id\": 1, \"directoryId\": null, \"endpoints\": [\"CONTROLLER://localhost:9093\"]}, {\"id\": 2, \"directoryId\": \"AgICAgICAgICAgICAgICAg\", \"endpoints\": [\"CONTROLLER://[::1]:9094\", \"SSL://h2:9095\"]}, {\"id\": 3, \"directoryId\": \"AwMDAwMDAwMDAwMDAwMDAw\"}]
CurrentObservers:       [{\"id\": 4, \"directoryId\": \"BAQEBAQEBAQEBAQEBAQEBA\", \"endpoints\": [\"CONTROLLER://o4:9096\"]}, {\"id\": 5, \"directoryId\": null}]
";
    assert_eq!(status(CLUSTER, &quorum()).unwrap(), expected);
}

#[test]
fn status_of_a_caught_up_quorum_without_observers_or_endpoints() {
    // Every voter at the leader's offset: the first of them (the leader here) is "furthest
    // behind", so the lag time is 0, as in Kafka.
    let mut r = response();
    r.nodes.clear();
    let p = &mut r.topics[0].partitions[0];
    p.leader_id = BrokerId(1);
    p.observers.clear();
    for v in p.current_voters.iter_mut() {
        v.log_end_offset = 1510;
    }
    let expected = "\
ClusterId:              MkU3OEVBNTcwNTJENDM2Qg
LeaderId:               1
LeaderEpoch:            7
HighWatermark:          1500
MaxFollowerLag:         0
MaxFollowerLagTimeMs:   0
CurrentVoters:          [{\"id\": 1, \"directoryId\": null}, {\"id\": 2, \"directoryId\": \"AgICAgICAgICAgICAgICAg\"}, {\"id\": 3, \"directoryId\": \"AwMDAwMDAwMDAwMDAwMDAw\"}]
CurrentObservers:       []
";
    let q = QuorumInfo::from_response(&r).unwrap();
    assert_eq!(status(CLUSTER, &q).unwrap(), expected);
}

#[test]
fn lag_time_is_minus_one_when_the_slowest_voter_never_caught_up() {
    let mut r = response();
    r.topics[0].partitions[0].current_voters[2].last_caught_up_timestamp = -1;
    let q = QuorumInfo::from_response(&r).unwrap();
    let text = status(CLUSTER, &q).unwrap();
    assert!(text.contains("\nMaxFollowerLagTimeMs:   -1\n"), "{text}");
}

#[test]
fn replication_matches_kafkas_format() {
    let expected = concat!(
        "NodeId\tDirectoryId           \tLogEndOffset\tLag \tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus  \t\n",
        "2     \tAgICAgICAgICAgICAgICAg\t1510        \t0   \t1700000009900     \t1700000009900        \tLeader  \t\n",
        "1     \tAAAAAAAAAAAAAAAAAAAAAA\t1490        \t20  \t1700000009800     \t1700000009500        \tFollower\t\n",
        "3     \tAwMDAwMDAwMDAwMDAwMDAw\t1400        \t110 \t1700000005000     \t1700000001000        \tFollower\t\n",
        "4     \tBAQEBAQEBAQEBAQEBAQEBA\t1505        \t5   \t1700000009950     \t-1                   \tObserver\t\n",
        "5     \tAAAAAAAAAAAAAAAAAAAAAA\t-1          \t1511\t-1                \t-1                   \tObserver\t\n",
    );
    assert_eq!(replication(&quorum(), false, NOW).unwrap(), expected);
}

#[test]
fn human_readable_replication_matches_kafkas_format() {
    let expected = concat!(
        "NodeId\tDirectoryId           \tLogEndOffset\tLag \tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus  \t\n",
        "2     \tAgICAgICAgICAgICAgICAg\t1510        \t0   \t100 ms ago        \t100 ms ago           \tLeader  \t\n",
        "1     \tAAAAAAAAAAAAAAAAAAAAAA\t1490        \t20  \t200 ms ago        \t500 ms ago           \tFollower\t\n",
        "3     \tAwMDAwMDAwMDAwMDAwMDAw\t1400        \t110 \t5000 ms ago       \t9000 ms ago          \tFollower\t\n",
        "4     \tBAQEBAQEBAQEBAQEBAQEBA\t1505        \t5   \t50 ms ago         \t-1                   \tObserver\t\n",
        "5     \tAAAAAAAAAAAAAAAAAAAAAA\t-1          \t1511\t-1                \t-1                   \tObserver\t\n",
    );
    assert_eq!(replication(&quorum(), true, NOW).unwrap(), expected);
}

#[test]
fn a_time_after_now_is_refused_in_human_readable_form_as_kafka_does() {
    let err = replication(&quorum(), true, 1_700_000_009_000).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Error while computing relative time, possible drift in system clock. Current timestamp is 1700000009000, last fetch timestamp is 1700000009900"
    );
}

#[test]
fn no_leader_is_an_error_not_a_panic() {
    let mut r = response();
    r.topics[0].partitions[0].leader_id = BrokerId(-1);
    let q = QuorumInfo::from_response(&r).unwrap();
    assert_eq!(status(CLUSTER, &q), Err(FormatError::NoLeader(-1)));
    assert_eq!(replication(&q, false, NOW), Err(FormatError::NoLeader(-1)));
}

#[test]
fn answers_kafkas_admin_client_refuses_are_refused() {
    let mut wrong_topic = response();
    wrong_topic.topics[0].topic_name = TopicName(StrBytes::from_static_str("other"));
    let mut two_partitions = response();
    let p = two_partitions.topics[0].partitions[0].clone();
    two_partitions.topics[0].partitions.push(p);
    let mut not_leader = response();
    not_leader.topics[0].partitions[0].error_code = 6;
    for r in [wrong_topic, two_partitions] {
        assert!(matches!(
            QuorumInfo::from_response(&r),
            Err(QuorumAnswerError::Shape(_))
        ));
    }
    let err = QuorumInfo::from_response(&not_leader).unwrap_err();
    assert_eq!(err.to_string(), "the server answered NotLeaderOrFollower");
}

/// The buffer's text, one string a row.
fn rows(terminal: &Terminal<TestBackend>) -> Vec<String> {
    let buffer = terminal.backend().buffer();
    (0..buffer.area.height)
        .map(|y| {
            (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
        })
        .collect()
}

#[test]
fn the_dashboard_shows_roles_lag_bars_fetch_ages_rate_and_leader_changes() {
    let mut dashboard = Dashboard::default();
    let described = |hw: i64, leader: i32, epoch: i32| {
        let mut r = response();
        let p = &mut r.topics[0].partitions[0];
        p.high_watermark = hw;
        p.leader_id = BrokerId(leader);
        p.leader_epoch = epoch;
        Ok(Description {
            cluster_id: CLUSTER.to_string(),
            quorum: QuorumInfo::from_response(&r).unwrap(),
        })
    };
    let first = dashboard.observe(NOW - 2000, described(1000, 3, 6));
    assert!(first.is_some());
    assert!(
        dashboard
            .observe(NOW - 1000, described(1200, 2, 7))
            .is_some()
    );
    assert!(dashboard.observe(NOW, described(1500, 2, 7)).is_none());
    assert_eq!(dashboard.rate(), Some(300));

    let mut terminal = Terminal::new(TestBackend::new(90, 24)).unwrap();
    terminal.draw(|f| dashboard.render(f, NOW)).unwrap();
    let screen = rows(&terminal);
    let text = screen.join("\n");
    let row_of = |needle: &str| {
        screen
            .iter()
            .find(|r| r.contains(needle))
            .unwrap_or_else(|| panic!("no row with {needle:?} in\n{text}"))
            .clone()
    };
    assert!(row_of("cluster MkU3OEVBNTcwNTJENDM2Qg").contains("kraft quorum"));
    assert!(
        row_of("high watermark")
            .contains("leader 2  epoch 7  high watermark 1500  updated 0 ms ago")
    );
    // Leader first, then the followers, then the observers, each with its lag bar: voter 5's
    // 1511 fills it, voter 3's 110 takes one cell of ten.
    let leader = screen.iter().find(|r| r.starts_with("│2 ")).unwrap();
    assert!(
        leader.contains("Leader")
            && leader.contains("1510")
            && leader.contains("░░░░░░░░░░ 0")
            && leader.contains("100 ms ago"),
        "{leader}"
    );
    let follower3 = screen.iter().find(|r| r.starts_with("│3 ")).unwrap();
    assert!(
        follower3.contains("Follower")
            && follower3.contains("1400")
            && follower3.contains("█░░░░░░░░░ 110")
            && follower3.contains("5000 ms ago"),
        "{follower3}"
    );
    let observer5 = screen.iter().find(|r| r.starts_with("│5 ")).unwrap();
    assert!(
        observer5.contains("Observer")
            && observer5.contains("██████████ 1511")
            && observer5.contains("never"),
        "{observer5}"
    );
    let order: Vec<char> = screen
        .iter()
        .filter(|r| {
            ["Leader", "Follower", "Observer"]
                .iter()
                .any(|role| r.contains(role))
        })
        .filter_map(|r| r.chars().nth(1).filter(char::is_ascii_digit))
        .collect();
    assert_eq!(order, vec!['2', '1', '3', '4', '5'], "{text}");
    assert!(row_of("Commit rate").contains("Commit rate (offsets/s): 300"));
    let changes = row_of("epoch 7  leader 2");
    assert!(changes.contains("22:13:29"), "{changes}");
    let earlier = row_of("epoch 6  leader 3");
    assert!(earlier.contains("22:13:28"), "{earlier}");
    let newest_first = screen.iter().position(|r| r.contains("epoch 7")).unwrap()
        < screen.iter().position(|r| r.contains("epoch 6")).unwrap();
    assert!(newest_first, "{text}");
}

#[test]
fn the_dashboard_shows_a_voter_change_once_and_in_its_timeline() {
    let mut dashboard = Dashboard::default();
    let described = |drop_voter: Option<usize>| {
        let mut r = response();
        if let Some(i) = drop_voter {
            r.topics[0].partitions[0].current_voters.remove(i);
        }
        Ok(Description {
            cluster_id: CLUSTER.to_string(),
            quorum: QuorumInfo::from_response(&r).unwrap(),
        })
    };
    dashboard.observe(NOW - 2000, described(None));
    assert_eq!(
        dashboard.take_voter_change(),
        None,
        "the first sight is no change"
    );
    dashboard.observe(NOW - 1000, described(Some(2)));
    let change = dashboard.take_voter_change().expect("a voter change");
    assert_eq!(change.text(), "1,2,3 -> 1,2");
    assert_eq!(dashboard.take_voter_change(), None, "reported once");
    dashboard.observe(NOW, described(Some(2)));
    assert_eq!(dashboard.take_voter_change(), None);

    let mut terminal = Terminal::new(TestBackend::new(90, 24)).unwrap();
    terminal.draw(|f| dashboard.render(f, NOW)).unwrap();
    let text = rows(&terminal).join("\n");
    assert!(text.contains("Leader and voter changes"), "{text}");
    assert!(text.contains("22:13:29  voters 1,2,3 -> 1,2"), "{text}");
}

#[test]
fn the_plain_line_carries_the_same_facts() {
    let mut dashboard = Dashboard::default();
    let q = quorum();
    dashboard.observe(
        NOW,
        Ok(Description {
            cluster_id: CLUSTER.into(),
            quorum: q,
        }),
    );
    assert_eq!(
        dashboard.plain_line(NOW + 100),
        "2023-11-14T22:13:30.100Z leader=2 epoch=7 high_watermark=1500 commit_rate=- replicas=2:Leader:1510:0:200ms,1:Follower:1490:20:300ms,3:Follower:1400:110:5100ms,4:Observer:1505:5:150ms,5:Observer:-1:1511:never"
    );
    dashboard.observe(NOW + 1000, Err("no answer".into()));
    assert_eq!(
        dashboard.plain_line(NOW + 1000),
        "2023-11-14T22:13:31.000Z error: no answer"
    );
}

mod hostile_answers {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::{
        ApiKey, DescribeClusterResponse, DescribeQuorumResponse, ResponseHeader,
    };
    use kafka_protocol::protocol::Encodable;
    use kraft::cli::quorum_client::decode_answer;
    use proptest::prelude::*;

    /// A well-formed DescribeQuorum v2 answer frame (header and body), correlation id 7.
    fn valid() -> Vec<u8> {
        let mut header = ResponseHeader::default();
        header.correlation_id = 7;
        let mut out = BytesMut::new();
        header
            .encode(&mut out, ApiKey::DescribeQuorum.response_header_version(2))
            .unwrap();
        super::response().encode(&mut out, 2).unwrap();
        out.to_vec()
    }

    #[test]
    fn a_valid_answer_decodes_and_a_wrong_correlation_id_is_refused() {
        let answer: DescribeQuorumResponse =
            decode_answer(ApiKey::DescribeQuorum, 2, 7, Bytes::from(valid())).unwrap();
        assert_eq!(answer, super::response());
        let wrong = decode_answer::<DescribeQuorumResponse>(
            ApiKey::DescribeQuorum,
            2,
            8,
            Bytes::from(valid()),
        );
        assert_eq!(wrong.unwrap_err(), "correlation id 7, expected 8");
    }

    proptest! {
        // Whatever a server sends, decoding ends in an answer or a reason: no panic, no abort
        // from a claimed count (the bounds walk runs first).
        #[test]
        fn arbitrary_answers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_answer::<DescribeQuorumResponse>(ApiKey::DescribeQuorum, 2, 7, Bytes::from(bytes.clone()));
            let _ = decode_answer::<DescribeClusterResponse>(ApiKey::DescribeCluster, 1, 7, Bytes::from(bytes));
        }

        #[test]
        fn corrupted_valid_answers_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
            let mut bytes = valid();
            for (at, value) in flips {
                let i = at % bytes.len();
                bytes[i] = value;
            }
            bytes.truncate(cut % (bytes.len() + 1));
            let _ = decode_answer::<DescribeQuorumResponse>(ApiKey::DescribeQuorum, 2, 7, Bytes::from(bytes));
        }
    }
}
