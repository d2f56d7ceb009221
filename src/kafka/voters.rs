//! AddRaftVoter, RemoveRaftVoter and UpdateRaftVoter (KIP-853) on the Kafka face: the checks
//! Kafka's leader makes before a voter change reaches its protocol core (cluster id, leadership,
//! a valid voter, the quorum listener among its endpoints), the voter the core is asked to add
//! or remove, and the answers, with Kafka's error codes and a message.
//!
//! Owns the translation between the wire and `raft::Voter` / `raft::ReplicaKey`, and the bounds
//! on what a request may name (listeners, host and name lengths). It must never decide a
//! change itself: every rule about voter sets (one change at a time, a caught-up observer, the
//! kraft.version) is the core's, reached through the replication driver.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Buf;
use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_raft_voter_request::Listener;
use kafka_protocol::messages::update_raft_voter_response::CurrentLeader;
use kafka_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, BrokerId, RemoveRaftVoterRequest,
    RemoveRaftVoterResponse, UpdateRaftVoterRequest, UpdateRaftVoterResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use super::QuorumView;
use crate::actors::messages::VoterChangeFailure;
use crate::raft::{ListenerAddress, MAX_KRAFT_VERSION, ReplicaKey, Voter};
use crate::types::NodeId;
use crate::uuid::Uuid;

/// Most listeners a new voter may list: a controller has one or two (plaintext and TLS), and a
/// Voters record carries them all to every replica, so a request listing thousands is refused.
pub const MAX_VOTER_LISTENERS: usize = 16;
/// Longest listener name or host accepted: a DNS name is at most 253 characters, and anything
/// longer would be copied into the log for every replica.
pub const MAX_NAME_LEN: usize = 255;
/// How long a change may wait for its commit when the request asks for no usable timeout
/// (RemoveRaftVoter has none): half the Kafka admin client's default request timeout (30 s),
/// so that a client waiting that long gets the leader's answer, even "timed out", first.
pub const DEFAULT_CHANGE_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest a change may wait for its commit, whatever the request asks: the connection holds
/// the request meanwhile, and a change that has not committed in this long is better retried.
pub const MAX_CHANGE_TIMEOUT: Duration = Duration::from_secs(300);

/// An AddRaftVoter request as decoded at any served version.
#[derive(Debug, Clone, PartialEq)]
pub struct AddVoterRequest {
    pub request: AddRaftVoterRequest,
    /// v1 (KIP-1186): whether the leader answers only once the change is committed (true in
    /// v0). kraft always answers on commit, the stronger of the two.
    pub ack_when_committed: bool,
}

/// Why a request is answered without asking the core: Kafka's code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub error: ResponseError,
    pub message: Option<String>,
}

impl Refusal {
    fn new(error: ResponseError, message: impl Into<String>) -> Refusal {
        Refusal {
            error,
            message: Some(message.into()),
        }
    }
}

/// Decodes an AddRaftVoter body: v0 by the crate; v1, which the crate does not know, field by
/// field (the listeners by the crate). The bounds walk has checked the body before; every read
/// is checked again all the same.
pub fn decode_add(buf: &mut Bytes, version: i16) -> anyhow::Result<AddVoterRequest> {
    if version == 0 {
        return Ok(AddVoterRequest {
            request: AddRaftVoterRequest::decode(buf, 0)?,
            ack_when_committed: true,
        });
    }
    anyhow::ensure!(version == 1, "AddRaftVoter v{version} is not known");
    let mut request = AddRaftVoterRequest::default();
    request.cluster_id = wire::compact_string(buf)?;
    request.timeout_ms = wire::take(buf, 4)?.get_i32();
    request.voter_id = wire::take(buf, 4)?.get_i32();
    request.voter_directory_id = uuid::Uuid::from_slice(&wire::take(buf, 16)?)?;
    let count = wire::varint(buf)?.saturating_sub(1) as usize;
    anyhow::ensure!(count <= buf.remaining(), "a listener count past the end");
    request.listeners = (0..count)
        .map(|_| Listener::decode(buf, 0))
        .collect::<anyhow::Result<_>>()?;
    let ack_when_committed = wire::take(buf, 1)?[0] != 0;
    for _ in 0..wire::varint(buf)? {
        let tag = wire::varint(buf)?;
        let size = wire::varint(buf)? as usize;
        let value = wire::take(buf, size)?;
        request.unknown_tagged_fields.insert(tag as i32, value);
    }
    Ok(AddVoterRequest {
        request,
        ack_when_committed,
    })
}

/// The few flexible-version primitives `decode_add` reads itself.
mod wire {
    use bytes::{Buf, Bytes};
    use kafka_protocol::protocol::StrBytes;

    pub fn take(buf: &mut Bytes, n: usize) -> anyhow::Result<Bytes> {
        anyhow::ensure!(buf.remaining() >= n, "a field runs past the end");
        Ok(buf.split_to(n))
    }

    pub fn varint(buf: &mut Bytes) -> anyhow::Result<u32> {
        let mut value: u32 = 0;
        for shift in (0..35).step_by(7) {
            let byte = take(buf, 1)?[0];
            value |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        anyhow::bail!("an unsigned varint longer than five bytes")
    }

    /// A compact nullable string: length + 1, 0 for null.
    pub fn compact_string(buf: &mut Bytes) -> anyhow::Result<Option<StrBytes>> {
        match varint(buf)? {
            0 => Ok(None),
            n => {
                let bytes = take(buf, n as usize - 1)?;
                Ok(Some(StrBytes::from_utf8(bytes)?))
            }
        }
    }
}

/// Kafka's leader refuses a request for another cluster; a request naming none is accepted.
fn check_cluster(cluster_id: &Option<StrBytes>, view: &QuorumView) -> Result<(), Refusal> {
    match cluster_id {
        Some(id) if id.as_str() != view.cluster_id => Err(Refusal::new(
            ResponseError::InconsistentClusterId,
            format!(
                "the request's cluster id \"{}\" is not this cluster's (\"{}\")",
                id.as_str(),
                view.cluster_id
            ),
        )),
        _ => Ok(()),
    }
}

/// Only the leader takes voter changes; another node names none (the client asks again).
fn check_leader(view: &QuorumView) -> Result<(), Refusal> {
    match view.is_leader {
        true => Ok(()),
        false => Err(Refusal {
            error: ResponseError::NotLeaderOrFollower,
            message: None,
        }),
    }
}

/// The replica a request names: an id >= 0 and a directory id (the zero id means none).
fn replica_key(voter_id: i32, directory_id: uuid::Uuid, what: &str) -> Result<ReplicaKey, Refusal> {
    let key = ReplicaKey::new(NodeId(voter_id), Uuid(directory_id.into_bytes()));
    match voter_id >= 0 && key.directory_id.is_some() {
        true => Ok(key),
        false => Err(Refusal::new(
            ResponseError::InvalidRequest,
            format!("{what} needs a node id >= 0 and a directory id"),
        )),
    }
}

/// The new voter's endpoints by listener name, bounded and without duplicates; the quorum
/// listener must be among them.
fn endpoints(
    listeners: &[Listener],
    view: &QuorumView,
) -> Result<BTreeMap<String, ListenerAddress>, Refusal> {
    let listed: Vec<(&str, &str, u16)> = listeners
        .iter()
        .map(|l| (l.name.as_str(), l.host.as_str(), l.port))
        .collect();
    endpoints_of(&listed, view)
}

/// [`endpoints`] of (name, host, port) triples, whichever request they came in.
fn endpoints_of(
    listeners: &[(&str, &str, u16)],
    view: &QuorumView,
) -> Result<BTreeMap<String, ListenerAddress>, Refusal> {
    let invalid = |message: String| Refusal::new(ResponseError::InvalidRequest, message);
    if listeners.len() > MAX_VOTER_LISTENERS {
        return Err(invalid(format!(
            "the new voter lists {} listeners; at most {MAX_VOTER_LISTENERS} are accepted",
            listeners.len()
        )));
    }
    let mut out = BTreeMap::new();
    for &(name, host, port) in listeners {
        if name.is_empty()
            || name.len() > MAX_NAME_LEN
            || host.is_empty()
            || host.len() > MAX_NAME_LEN
        {
            return Err(invalid(format!(
                "listener names and hosts must be 1 to {MAX_NAME_LEN} characters long"
            )));
        }
        let address = ListenerAddress {
            host: host.to_string(),
            port,
        };
        if out.insert(name.to_string(), address).is_some() {
            return Err(invalid(format!("listener {name} is listed twice")));
        }
    }
    if let Some(quorum) = &view.listener_name
        && !out.contains_key(quorum)
    {
        return Err(invalid(format!(
            "the new voter lists no endpoint for the quorum listener {quorum}"
        )));
    }
    Ok(out)
}

/// The checks Kafka's leader makes before starting an add, in its order; the voter to add.
pub fn check_add(request: &AddRaftVoterRequest, view: &QuorumView) -> Result<Voter, Refusal> {
    check_cluster(&request.cluster_id, view)?;
    check_leader(view)?;
    let key = replica_key(
        request.voter_id,
        request.voter_directory_id,
        "a voter to add",
    )?;
    Ok(Voter {
        key,
        endpoints: endpoints(&request.listeners, view)?,
        kraft_versions: (0, MAX_KRAFT_VERSION),
    })
}

/// The checks Kafka's leader makes before starting a removal; the voter to remove.
pub fn check_remove(
    request: &RemoveRaftVoterRequest,
    view: &QuorumView,
) -> Result<ReplicaKey, Refusal> {
    check_cluster(&request.cluster_id, view)?;
    check_leader(view)?;
    replica_key(
        request.voter_id,
        request.voter_directory_id,
        "a voter to remove",
    )
}

/// How long an add may wait for its commit: the request's timeout, bounded.
pub fn add_timeout(request: &AddRaftVoterRequest) -> Duration {
    match request.timeout_ms {
        t if t > 0 => Duration::from_millis(t as u64).min(MAX_CHANGE_TIMEOUT),
        _ => DEFAULT_CHANGE_TIMEOUT,
    }
}

/// The code and message of a change's outcome.
pub fn outcome(result: Result<(), Refusal>) -> (i16, Option<StrBytes>) {
    match result {
        Ok(()) => (0, None),
        Err(r) => (r.error.code(), r.message.map(StrBytes::from_string)),
    }
}

/// A refusal for what the driver reported.
pub fn refusal_for(failure: &VoterChangeFailure) -> Refusal {
    let code = failure.code();
    let error = ResponseError::try_from_code(code).unwrap_or(ResponseError::Unknown(code));
    Refusal::new(error, failure.to_string())
}

pub fn add_answer(result: Result<(), Refusal>) -> AddRaftVoterResponse {
    let (code, message) = outcome(result);
    let mut response = AddRaftVoterResponse::default();
    response.error_code = code;
    response.error_message = message;
    response
}

pub fn remove_answer(result: Result<(), Refusal>) -> RemoveRaftVoterResponse {
    let (code, message) = outcome(result);
    let mut response = RemoveRaftVoterResponse::default();
    response.error_code = code;
    response.error_message = message;
    response
}

/// The checks Kafka's leader makes on an UpdateRaftVoter, in its order; the voter's new entry.
/// (kraft's own replicas update their entries over the peer protocol; this serves a Kafka
/// client or tool.)
pub fn check_update(request: &UpdateRaftVoterRequest, view: &QuorumView) -> Result<Voter, Refusal> {
    check_cluster(&request.cluster_id, view)?;
    check_leader(view)?;
    let epoch = request.current_leader_epoch;
    if epoch < view.epoch.0 {
        return Err(Refusal::new(
            ResponseError::FencedLeaderEpoch,
            format!("epoch {epoch} is older than the leader's {}", view.epoch),
        ));
    }
    if epoch > view.epoch.0 {
        return Err(Refusal::new(
            ResponseError::UnknownLeaderEpoch,
            format!("epoch {epoch} is newer than the leader's {}", view.epoch),
        ));
    }
    let key = replica_key(
        request.voter_id,
        request.voter_directory_id,
        "a voter to update",
    )?;
    let listed: Vec<(&str, &str, u16)> = request
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), l.host.as_str(), l.port))
        .collect();
    let endpoints = endpoints_of(&listed, view)?;
    let feature = &request.k_raft_version_feature;
    let (min, max) = (feature.min_supported_version, feature.max_supported_version);
    if min < 0 || max < min || !(min..=max).contains(&MAX_KRAFT_VERSION) {
        return Err(Refusal::new(
            ResponseError::InvalidRequest,
            format!("kraft.version {min} to {max} does not include {MAX_KRAFT_VERSION}"),
        ));
    }
    Ok(Voter {
        key,
        endpoints,
        kraft_versions: (min, max),
    })
}

/// UpdateRaftVoter's answer, with the leader this node knows (Kafka's followers read it).
pub fn update_answer(result: Result<(), Refusal>, view: &QuorumView) -> UpdateRaftVoterResponse {
    let mut response = UpdateRaftVoterResponse::default();
    response.error_code = outcome(result).0;
    let mut leader = CurrentLeader::default();
    leader.leader_id = BrokerId(view.leader_id.map_or(-1, |n| n.0));
    leader.leader_epoch = view.epoch.0;
    if let Some(e) = view.leader_endpoint() {
        leader.host = StrBytes::from_string(e.host.clone());
        leader.port = i32::from(e.port);
    }
    response.current_leader = leader;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::VoterChangeError;
    use crate::types::{Epoch, Offset};

    fn view(is_leader: bool) -> QuorumView {
        QuorumView {
            cluster_id: "cluster".into(),
            local_id: Some(NodeId(1)),
            endpoints: vec![],
            listener_name: Some("CONTROLLER".into()),
            leader_id: Some(NodeId(1)),
            epoch: Epoch(3),
            is_leader,
            high_watermark: Some(Offset(1)),
            log_start_offset: Offset(0),
            log_end_offset: Offset(1),
            voter_progress: Default::default(),
            racks: Default::default(),
            directory_ids: Default::default(),
            voter_times: Default::default(),
            observers: Default::default(),
            voter_set: Default::default(),
            now_ms: 0,
        }
    }

    fn listener(name: &str, host: &str, port: u16) -> Listener {
        let mut l = Listener::default();
        l.name = StrBytes::from_string(name.into());
        l.host = StrBytes::from_string(host.into());
        l.port = port;
        l
    }

    fn add(
        cluster: Option<&str>,
        id: i32,
        dir: u8,
        listeners: Vec<Listener>,
    ) -> AddRaftVoterRequest {
        let mut r = AddRaftVoterRequest::default();
        r.cluster_id = cluster.map(|c| StrBytes::from_string(c.into()));
        r.voter_id = id;
        r.voter_directory_id = uuid::Uuid::from_bytes([dir; 16]);
        r.listeners = listeners;
        r.timeout_ms = 5000;
        r
    }

    fn code(r: Result<impl std::fmt::Debug, Refusal>) -> ResponseError {
        r.expect_err("refused").error
    }

    #[test]
    fn a_valid_add_becomes_the_voter_with_its_endpoints() {
        let r = add(
            Some("cluster"),
            4,
            9,
            vec![
                listener("CONTROLLER", "h4", 9094),
                listener("SSL", "h4", 9095),
            ],
        );
        let voter = check_add(&r, &view(true)).unwrap();
        assert_eq!(voter.key, ReplicaKey::new(NodeId(4), Uuid([9; 16])));
        assert_eq!(
            voter.endpoints["CONTROLLER"],
            ListenerAddress {
                host: "h4".into(),
                port: 9094
            }
        );
        assert_eq!(voter.endpoints.len(), 2);
        assert_eq!(voter.kraft_versions, (0, MAX_KRAFT_VERSION));
        // A request naming no cluster is accepted, as Kafka's leader accepts it.
        assert!(check_add(&add(None, 4, 9, r.listeners.clone()), &view(true)).is_ok());
    }

    #[test]
    fn the_checks_come_in_kafkas_order() {
        let ok = vec![listener("CONTROLLER", "h", 1)];
        // A wrong cluster id first, even on a non-leader and for an invalid voter.
        let wrong = add(Some("other"), -1, 0, ok.clone());
        let refusal = check_add(&wrong, &view(false)).unwrap_err();
        assert_eq!(refusal.error, ResponseError::InconsistentClusterId);
        assert!(refusal.message.unwrap().contains("\"other\""));
        // Then leadership, before the voter's validity.
        assert_eq!(
            code(check_add(&add(None, -1, 0, ok.clone()), &view(false))),
            ResponseError::NotLeaderOrFollower
        );
        // Then the voter: no directory id, a negative id.
        assert_eq!(
            code(check_add(&add(None, 4, 0, ok.clone()), &view(true))),
            ResponseError::InvalidRequest
        );
        assert_eq!(
            code(check_add(&add(None, -4, 1, ok), &view(true))),
            ResponseError::InvalidRequest
        );
    }

    #[test]
    fn listeners_are_bounded_unique_and_include_the_quorum_listener() {
        let v = view(true);
        let missing = add(None, 4, 1, vec![listener("OTHER", "h", 1)]);
        let refusal = check_add(&missing, &v).unwrap_err();
        assert_eq!(refusal.error, ResponseError::InvalidRequest);
        assert!(refusal.message.unwrap().contains("CONTROLLER"));
        let twice = add(
            None,
            4,
            1,
            vec![
                listener("CONTROLLER", "a", 1),
                listener("CONTROLLER", "b", 2),
            ],
        );
        assert_eq!(code(check_add(&twice, &v)), ResponseError::InvalidRequest);
        let many = (0..=MAX_VOTER_LISTENERS)
            .map(|i| listener(&format!("L{i}"), "h", 1))
            .chain([listener("CONTROLLER", "h", 1)])
            .collect();
        assert_eq!(
            code(check_add(&add(None, 4, 1, many), &v)),
            ResponseError::InvalidRequest
        );
        let long_host = "h".repeat(MAX_NAME_LEN + 1);
        let long = add(None, 4, 1, vec![listener("CONTROLLER", &long_host, 1)]);
        assert_eq!(code(check_add(&long, &v)), ResponseError::InvalidRequest);
    }

    #[test]
    fn a_removal_names_the_voter_exactly() {
        let mut r = RemoveRaftVoterRequest::default();
        r.cluster_id = None;
        r.voter_id = 2;
        r.voter_directory_id = uuid::Uuid::from_bytes([5; 16]);
        assert_eq!(
            check_remove(&r, &view(true)).unwrap(),
            ReplicaKey::new(NodeId(2), Uuid([5; 16]))
        );
        assert_eq!(
            code(check_remove(&r, &view(false))),
            ResponseError::NotLeaderOrFollower
        );
        r.voter_directory_id = uuid::Uuid::nil();
        assert_eq!(
            code(check_remove(&r, &view(true))),
            ResponseError::InvalidRequest
        );
        r.cluster_id = Some(StrBytes::from_static_str("x"));
        assert_eq!(
            code(check_remove(&r, &view(true))),
            ResponseError::InconsistentClusterId
        );
    }

    #[test]
    fn the_cores_refusals_keep_their_codes_and_messages() {
        let cases = [
            (
                VoterChangeFailure::Refused(VoterChangeError::StaticQuorum),
                ResponseError::UnsupportedVersion,
            ),
            (
                VoterChangeFailure::Refused(VoterChangeError::DuplicateVoter(NodeId(2))),
                ResponseError::DuplicateVoter,
            ),
            (
                VoterChangeFailure::Refused(VoterChangeError::TimedOut),
                ResponseError::RequestTimedOut,
            ),
            (
                VoterChangeFailure::Stopped,
                ResponseError::BrokerNotAvailable,
            ),
            (
                VoterChangeFailure::Interrupted,
                ResponseError::RequestTimedOut,
            ),
        ];
        for (failure, error) in cases {
            let answer = add_answer(Err(refusal_for(&failure)));
            assert_eq!(answer.error_code, error.code(), "{failure}");
            assert_eq!(
                answer.error_message.as_deref(),
                Some(failure.to_string().as_str())
            );
        }
        let ok = remove_answer(Ok(()));
        assert_eq!((ok.error_code, ok.error_message), (0, None));
    }

    #[test]
    fn timeouts_are_the_requests_within_bounds() {
        let mut r = add(None, 1, 1, vec![]);
        r.timeout_ms = 1500;
        assert_eq!(add_timeout(&r), Duration::from_millis(1500));
        r.timeout_ms = i32::MAX;
        assert_eq!(add_timeout(&r), MAX_CHANGE_TIMEOUT);
        r.timeout_ms = -1;
        assert_eq!(add_timeout(&r), DEFAULT_CHANGE_TIMEOUT);
    }

    #[test]
    fn version_1_carries_ack_when_committed() {
        use kafka_protocol::protocol::Encodable;
        let r = add(Some("c"), 4, 1, vec![listener("CONTROLLER", "h", 9)]);
        let mut v0 = bytes::BytesMut::new();
        r.encode(&mut v0, 0).unwrap();
        // v1 is v0 with AckWhenCommitted between the listeners and the tag buffer.
        let mut v1 = v0.to_vec();
        let tags = v1.pop().unwrap();
        v1.extend([0, tags]);
        let decoded = decode_add(&mut Bytes::from(v1), 1).unwrap();
        assert_eq!(decoded.request, r);
        assert!(!decoded.ack_when_committed);
        let decoded = decode_add(&mut v0.freeze(), 0).unwrap();
        assert!(decoded.ack_when_committed);
    }

    #[test]
    fn an_update_is_checked_in_kafkas_order_and_answered_with_the_leader() {
        let mut v = view(true);
        v.leader_id = Some(NodeId(2));
        v.endpoints = super::super::Endpoint::parse(NodeId(2), "h2:9093")
            .into_iter()
            .collect();
        let update = |epoch: i32, min: i16, max: i16| {
            let mut r = UpdateRaftVoterRequest::default();
            r.cluster_id = None;
            r.current_leader_epoch = epoch;
            r.voter_id = 4;
            r.voter_directory_id = uuid::Uuid::from_bytes([7; 16]);
            let mut l = kafka_protocol::messages::update_raft_voter_request::Listener::default();
            l.name = StrBytes::from_static_str("CONTROLLER");
            l.host = StrBytes::from_static_str("h4");
            l.port = 9094;
            r.listeners = vec![l];
            r.k_raft_version_feature.min_supported_version = min;
            r.k_raft_version_feature.max_supported_version = max;
            r
        };
        let voter = check_update(&update(3, 0, 1), &v).unwrap();
        assert_eq!(voter.key.id, NodeId(4));
        assert_eq!(voter.kraft_versions, (0, 1));
        assert_eq!(voter.endpoints["CONTROLLER"].port, 9094);
        assert_eq!(
            code(check_update(&update(2, 0, 1), &v)),
            ResponseError::FencedLeaderEpoch
        );
        assert_eq!(
            code(check_update(&update(4, 0, 1), &v)),
            ResponseError::UnknownLeaderEpoch
        );
        assert_eq!(
            code(check_update(&update(3, 0, 0), &v)),
            ResponseError::InvalidRequest
        );
        assert_eq!(
            code(check_update(&update(3, 1, 0), &v)),
            ResponseError::InvalidRequest
        );
        let mut other = update(3, 0, 1);
        other.cluster_id = Some(StrBytes::from_static_str("x"));
        assert_eq!(
            code(check_update(&other, &v)),
            ResponseError::InconsistentClusterId
        );
        assert_eq!(
            code(check_update(&update(3, 0, 1), &view(false))),
            ResponseError::NotLeaderOrFollower
        );

        let answer = update_answer(Ok(()), &v);
        assert_eq!(answer.error_code, 0);
        assert_eq!(answer.current_leader.leader_id, BrokerId(2));
        assert_eq!(answer.current_leader.leader_epoch, 3);
        assert_eq!(
            (
                answer.current_leader.host.as_str(),
                answer.current_leader.port
            ),
            ("h2", 9093)
        );
    }
}
