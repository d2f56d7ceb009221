//! The small Kafka-protocol admin client behind `kraft quorum`: DescribeCluster to a bootstrap
//! address names the cluster and its leader (Kafka calls it the active controller), then
//! DescribeQuorum, AddRaftVoter or RemoveRaftVoter to that leader, as Kafka's admin client does
//! with `--bootstrap-controller`.
//!
//! Synchronous (std::net, rustls' blocking stream): one request at a time, each bounded by a
//! deadline, each answer by a size limit and the bounds walk before decoding. It must never
//! trust the bytes it reads, never wait without a deadline, and never fall back to plaintext
//! when TLS is configured.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_raft_voter_request::Listener;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, ApiKey, DescribeClusterRequest,
    DescribeClusterResponse, DescribeQuorumRequest, DescribeQuorumResponse, RemoveRaftVoterRequest,
    RemoveRaftVoterResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rustls_pki_types::ServerName;

use super::quorum_info::{METADATA_TOPIC, QuorumAnswerError, QuorumInfo};
use crate::config::{ClientProperties, Endpoint};
use crate::kafka::bounds;

/// Largest answer read. A DescribeQuorum answer is about 60 bytes a replica plus the endpoints,
/// a DescribeCluster answer about as much a node: a few KiB for any real quorum. The limit stops
/// a broken or hostile server from making the tool buffer (and decode) without end.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// DescribeCluster 1 is the first with the endpoint type (controllers or brokers).
const DESCRIBE_CLUSTER_VERSION: i16 = 1;
/// DescribeQuorum 2 is the first with directory ids and the nodes' endpoints.
const DESCRIBE_QUORUM_VERSION: i16 = 2;
/// AddRaftVoter and RemoveRaftVoter v0: what every KIP-853 leader serves (AddRaftVoter v1 only
/// adds a choice to be answered before the commit, which the tool does not want).
const VOTER_CHANGE_VERSION: i16 = 0;
/// DescribeCluster's endpoint types (KIP-919).
pub const ENDPOINT_TYPE_BROKER: i8 = 1;
pub const ENDPOINT_TYPE_CONTROLLER: i8 = 2;
/// Tries of the DescribeCluster, DescribeQuorum pair when the named leader answers that it no
/// longer leads (an election between the two requests); more would only chase a flapping quorum.
const LEADER_ATTEMPTS: usize = 3;
const CLIENT_ID: &str = "kraft-quorum";

/// Why a description could not be had. Each renders as one line.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {address}: {reason}")]
    Unreachable { address: String, reason: String },
    #[error("no answer from {address} within {} ms (request.timeout.ms / socket.connection.setup.timeout.ms)", after.as_millis())]
    Timeout { address: String, after: Duration },
    #[error("TLS with {address} failed: {reason}")]
    Tls { address: String, reason: String },
    #[error(
        "{address} closed the connection (a TLS listener asked in plaintext, or the other way round?)"
    )]
    Closed { address: String },
    #[error(
        "{address} answered with TLS: set security.protocol=SSL and an ssl.truststore in --command-config"
    )]
    TlsExpected { address: String },
    #[error("malformed answer from {address}: {reason}")]
    Malformed { address: String, reason: String },
    #[error("{address} answered DescribeCluster with {error}")]
    Cluster {
        address: String,
        error: ResponseError,
    },
    #[error("no leader: the quorum has not elected one ({address} names none)")]
    NoLeader { address: String },
    #[error("the leader {id} that {address} names is not among the nodes it lists")]
    UnknownLeader { id: i32, address: String },
    #[error("{address}: {error}")]
    Quorum {
        address: String,
        error: QuorumAnswerError,
    },
    #[error("{address} refused the voter change: {}: {}", error_name(error), message.clone().unwrap_or_else(|| error.to_string()))]
    VoterChange {
        address: String,
        error: ResponseError,
        message: Option<String>,
    },
}

/// Longest server message shown: a leader's reasons are a sentence; a hostile server must not
/// fill the terminal.
const MAX_MESSAGE_CHARS: usize = 512;

/// A server's message as one bounded line: control characters (newlines included) become
/// spaces, and it is cut at [`MAX_MESSAGE_CHARS`].
fn one_line(message: &str) -> String {
    let mut line: String = message
        .chars()
        .take(MAX_MESSAGE_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if message.chars().count() > MAX_MESSAGE_CHARS {
        line.push('…');
    }
    line
}

/// Kafka's name of an error code (NOT_LEADER_OR_FOLLOWER), from the crate's variant name.
pub fn error_name(error: &ResponseError) -> String {
    if let ResponseError::Unknown(code) = error {
        return format!("error code {code}");
    }
    let mut name = String::new();
    for (i, c) in format!("{error:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// A controller to add: its id, directory id and endpoints by listener name, in the order
/// `controller.listener.names` gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVoter {
    pub id: i32,
    pub directory_id: crate::uuid::Uuid,
    pub endpoints: Vec<(String, Endpoint)>,
}

/// A description: the cluster id and the quorum.
#[derive(Debug, Clone)]
pub struct Description {
    pub cluster_id: String,
    pub quorum: QuorumInfo,
}

/// Where to ask and how.
#[derive(Debug, Clone)]
pub struct AdminClient {
    bootstrap: Vec<Endpoint>,
    endpoint_type: i8,
    tls: Option<Arc<rustls::ClientConfig>>,
    request_timeout: Duration,
    connect_timeout: Duration,
}

impl AdminClient {
    pub fn new(
        bootstrap: Vec<Endpoint>,
        endpoint_type: i8,
        tls: Option<Arc<rustls::ClientConfig>>,
        props: &ClientProperties,
    ) -> AdminClient {
        AdminClient {
            bootstrap,
            endpoint_type,
            tls,
            request_timeout: props.request_timeout,
            connect_timeout: props.connection_setup_timeout,
        }
    }

    /// Asks a bootstrap address for the cluster and its leader, then the leader for the quorum.
    pub fn describe(&self) -> Result<Description, ClientError> {
        let mut attempt = 1;
        loop {
            let (address, cluster) = self.describe_cluster()?;
            let leader = leader_endpoint(&address, &cluster)?;
            let at = leader.to_string();
            let mut connection = self.connect(&leader)?;
            let answer = connection.describe_quorum()?;
            match QuorumInfo::from_response(&answer) {
                Ok(quorum) => {
                    return Ok(Description {
                        cluster_id: cluster.cluster_id.as_str().to_string(),
                        quorum,
                    });
                }
                Err(QuorumAnswerError::Kafka {
                    error: ResponseError::NotLeaderOrFollower,
                    ..
                }) if attempt < LEADER_ATTEMPTS => attempt += 1,
                Err(error) => return Err(ClientError::Quorum { address: at, error }),
            }
        }
    }

    /// Asks the leader to add `voter` (AddRaftVoter); resolves once the leader reports the new
    /// voter set committed.
    pub fn add_voter(&self, voter: &NewVoter) -> Result<(), ClientError> {
        let mut request = AddRaftVoterRequest::default();
        // As Kafka's admin client: no cluster id unless asked for one.
        request.cluster_id = None;
        request.timeout_ms = self.leader_wait_ms();
        request.voter_id = voter.id;
        request.voter_directory_id = uuid::Uuid::from_bytes(voter.directory_id.0);
        request.listeners = voter
            .endpoints
            .iter()
            .map(|(name, e)| {
                let mut l = Listener::default();
                l.name = StrBytes::from_string(name.clone());
                l.host = StrBytes::from_string(e.host.clone());
                l.port = e.port;
                l
            })
            .collect();
        self.voter_change(|c| {
            let answer: AddRaftVoterResponse =
                c.call(ApiKey::AddRaftVoter, VOTER_CHANGE_VERSION, &request)?;
            Ok((answer.error_code, answer.error_message))
        })
    }

    /// Asks the leader to remove the voter `id` with `directory_id` (RemoveRaftVoter).
    pub fn remove_voter(
        &self,
        id: i32,
        directory_id: crate::uuid::Uuid,
    ) -> Result<(), ClientError> {
        let mut request = RemoveRaftVoterRequest::default();
        request.cluster_id = None;
        request.voter_id = id;
        request.voter_directory_id = uuid::Uuid::from_bytes(directory_id.0);
        self.voter_change(|c| {
            let answer: RemoveRaftVoterResponse =
                c.call(ApiKey::RemoveRaftVoter, VOTER_CHANGE_VERSION, &request)?;
            Ok((answer.error_code, answer.error_message))
        })
    }

    /// How long the leader may wait for a change to commit: half the request timeout, so that
    /// its answer (even "timed out") arrives before this client gives up.
    fn leader_wait_ms(&self) -> i32 {
        i32::try_from(self.request_timeout.as_millis() / 2).unwrap_or(i32::MAX)
    }

    /// Sends one voter change to the leader DescribeCluster names, again to a newly named
    /// leader when the one asked no longer leads.
    fn voter_change(
        &self,
        call: impl Fn(&mut Connection) -> Result<(i16, Option<StrBytes>), ClientError>,
    ) -> Result<(), ClientError> {
        let mut attempt = 1;
        loop {
            let (address, cluster) = self.describe_cluster()?;
            let leader = leader_endpoint(&address, &cluster)?;
            let mut connection = self.connect(&leader)?;
            let (code, message) = call(&mut connection)?;
            let Some(error) = ResponseError::try_from_code(code) else {
                return Ok(());
            };
            if error == ResponseError::NotLeaderOrFollower && attempt < LEADER_ATTEMPTS {
                attempt += 1;
                continue;
            }
            return Err(ClientError::VoterChange {
                address: leader.to_string(),
                error,
                message: message.map(|m| one_line(m.as_str())),
            });
        }
    }

    /// The cluster id and every node DescribeCluster lists (a kraft node lists the voters),
    /// from the first bootstrap address that answers: where `kraft tail` dials.
    pub fn cluster_nodes(&self) -> Result<(String, Vec<(i32, Endpoint)>), ClientError> {
        let (address, cluster) = self.describe_cluster()?;
        cluster_error(&address, &cluster)?;
        let mut nodes = Vec::with_capacity(cluster.brokers.len());
        for b in cluster.brokers.iter() {
            let Some(endpoint) = broker_endpoint(b) else {
                return Err(ClientError::Malformed {
                    address,
                    reason: format!("node {} has port {}", b.broker_id.0, b.port),
                });
            };
            nodes.push((b.broker_id.0, endpoint));
        }
        Ok((cluster.cluster_id.as_str().to_string(), nodes))
    }

    /// DescribeCluster from the first bootstrap address that answers; else the last failure.
    fn describe_cluster(&self) -> Result<(String, DescribeClusterResponse), ClientError> {
        let mut last = None;
        for endpoint in &self.bootstrap {
            let answer = self
                .connect(endpoint)
                .and_then(|mut c| c.describe_cluster(self.endpoint_type));
            match answer {
                Ok(answer) => return Ok((endpoint.to_string(), answer)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Unreachable {
            address: String::new(),
            reason: "no bootstrap address".into(),
        }))
    }

    fn connect(&self, endpoint: &Endpoint) -> Result<Connection, ClientError> {
        let address = endpoint.to_string();
        let tcp = open(endpoint, self.connect_timeout)?;
        let _ = tcp.set_nodelay(true);
        let timed = Deadlined {
            tcp,
            deadline: Instant::now() + self.request_timeout,
        };
        let stream = match &self.tls {
            None => Stream::Plain(timed),
            Some(config) => {
                let name =
                    ServerName::try_from(endpoint.host.clone()).map_err(|e| ClientError::Tls {
                        address: address.clone(),
                        reason: format!("'{}' is not a server name: {e}", endpoint.host),
                    })?;
                let session = rustls::ClientConnection::new(config.clone(), name).map_err(|e| {
                    ClientError::Tls {
                        address: address.clone(),
                        reason: e.to_string(),
                    }
                })?;
                Stream::Tls(Box::new(rustls::StreamOwned::new(session, timed)))
            }
        };
        Ok(Connection {
            stream,
            address,
            request_timeout: self.request_timeout,
            next_correlation: 1,
        })
    }
}

/// The error a DescribeCluster answer carries, if any.
fn cluster_error(address: &str, cluster: &DescribeClusterResponse) -> Result<(), ClientError> {
    match ResponseError::try_from_code(cluster.error_code) {
        Some(error) => Err(ClientError::Cluster {
            address: address.to_string(),
            error,
        }),
        None => Ok(()),
    }
}

/// Where a node DescribeCluster lists can be dialled; `None` for a port outside 1..=65535,
/// which is refused rather than wrapped into another port.
fn broker_endpoint(b: &DescribeClusterBroker) -> Option<Endpoint> {
    let port = u16::try_from(b.port).ok().filter(|p| *p != 0)?;
    Some(Endpoint {
        host: b.host.as_str().to_string(),
        port,
    })
}

/// The leader's address from a DescribeCluster answer.
fn leader_endpoint(
    address: &str,
    cluster: &DescribeClusterResponse,
) -> Result<Endpoint, ClientError> {
    cluster_error(address, cluster)?;
    let id = cluster.controller_id.0;
    if id < 0 {
        return Err(ClientError::NoLeader {
            address: address.to_string(),
        });
    }
    let nodes: BTreeMap<i32, Endpoint> = cluster
        .brokers
        .iter()
        .filter_map(|b| Some((b.broker_id.0, broker_endpoint(b)?)))
        .collect();
    nodes.get(&id).cloned().ok_or(ClientError::UnknownLeader {
        id,
        address: address.to_string(),
    })
}

/// Resolves and connects within `timeout` (to each resolved address in turn).
fn open(endpoint: &Endpoint, timeout: Duration) -> Result<TcpStream, ClientError> {
    let address = endpoint.to_string();
    let unreachable = |reason: String| ClientError::Unreachable {
        address: address.clone(),
        reason,
    };
    let addrs: Vec<_> = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .map_err(|e| unreachable(e.to_string()))?
        .collect();
    let mut last = unreachable("the host name resolves to no address".into());
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(tcp) => return Ok(tcp),
            Err(e) if is_timeout(&e) => {
                last = ClientError::Timeout {
                    address: address.clone(),
                    after: timeout,
                }
            }
            Err(e) => last = unreachable(e.to_string()),
        }
    }
    Err(last)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// A TCP stream whose every read and write ends by one deadline.
struct Deadlined {
    tcp: TcpStream,
    deadline: Instant,
}

impl Deadlined {
    fn remaining(&self) -> io::Result<Duration> {
        match self.deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(left),
            _ => Err(io::ErrorKind::TimedOut.into()),
        }
    }
}

impl Read for Deadlined {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.set_read_timeout(Some(self.remaining()?))?;
        self.tcp.read(buf)
    }
}

impl Write for Deadlined {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.set_write_timeout(Some(self.remaining()?))?;
        self.tcp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

enum Stream {
    Plain(Deadlined),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, Deadlined>>),
}

impl Stream {
    fn timed(&mut self) -> &mut Deadlined {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &mut s.sock,
        }
    }
    fn io(&mut self) -> &mut dyn ReadWrite {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.as_mut(),
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// One connection to one node.
struct Connection {
    stream: Stream,
    address: String,
    request_timeout: Duration,
    next_correlation: i32,
}

impl Connection {
    fn describe_cluster(
        &mut self,
        endpoint_type: i8,
    ) -> Result<DescribeClusterResponse, ClientError> {
        let mut request = DescribeClusterRequest::default();
        request.endpoint_type = endpoint_type;
        self.call(ApiKey::DescribeCluster, DESCRIBE_CLUSTER_VERSION, &request)
    }

    fn describe_quorum(&mut self) -> Result<DescribeQuorumResponse, ClientError> {
        let mut partition = PartitionData::default();
        partition.partition_index = 0;
        let mut topic = TopicData::default();
        topic.topic_name = TopicName(StrBytes::from_static_str(METADATA_TOPIC));
        topic.partitions = vec![partition];
        let mut request = DescribeQuorumRequest::default();
        request.topics = vec![topic];
        self.call(ApiKey::DescribeQuorum, DESCRIBE_QUORUM_VERSION, &request)
    }

    /// Sends one request and reads its answer, both within the request timeout.
    fn call<Q: Encodable, A: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &Q,
    ) -> Result<A, ClientError> {
        let correlation_id = self.next_correlation;
        self.next_correlation += 1;
        self.stream.timed().deadline = Instant::now() + self.request_timeout;
        let frame = encode(api, version, correlation_id, body);
        let io = self.stream.io();
        let result = io.write_all(&frame).and_then(|()| io.flush());
        result.map_err(|e| self.io_error(e))?;
        let answer = self.read_frame()?;
        self.decode(api, version, correlation_id, answer)
    }

    fn read_frame(&mut self) -> Result<Bytes, ClientError> {
        let mut size = [0u8; 4];
        self.stream
            .io()
            .read_exact(&mut size)
            .map_err(|e| self.io_error(e))?;
        // A TLS record (alert or handshake, version 3.x) where a size was expected: the
        // listener speaks TLS and this client does not.
        if matches!(size, [0x15 | 0x16, 0x03, _, _]) && self.plaintext() {
            return Err(ClientError::TlsExpected {
                address: self.address.clone(),
            });
        }
        let size = i32::from_be_bytes(size);
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= MAX_RESPONSE_BYTES)
            .ok_or_else(|| {
                self.malformed(format!(
                    "an answer of {size} bytes (the limit is {MAX_RESPONSE_BYTES})"
                ))
            })?;
        let mut body = vec![0u8; size];
        self.stream
            .io()
            .read_exact(&mut body)
            .map_err(|e| self.io_error(e))?;
        Ok(Bytes::from(body))
    }

    fn decode<A: Decodable>(
        &self,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        frame: Bytes,
    ) -> Result<A, ClientError> {
        decode_answer(api, version, correlation_id, frame).map_err(|reason| self.malformed(reason))
    }

    fn plaintext(&self) -> bool {
        matches!(self.stream, Stream::Plain(_))
    }

    fn malformed(&self, reason: String) -> ClientError {
        ClientError::Malformed {
            address: self.address.clone(),
            reason,
        }
    }

    fn io_error(&self, e: io::Error) -> ClientError {
        let address = self.address.clone();
        if let Some(tls) = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return ClientError::Tls {
                address,
                reason: tls.to_string(),
            };
        }
        match e.kind() {
            _ if is_timeout(&e) => ClientError::Timeout {
                address,
                after: self.request_timeout,
            },
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe => ClientError::Closed { address },
            _ => ClientError::Unreachable {
                address,
                reason: e.to_string(),
            },
        }
    }
}

/// Checks and decodes one answer frame (without its size prefix); any fault is a reason.
pub fn decode_answer<A: Decodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    mut frame: Bytes,
) -> Result<A, String> {
    bounds::check_response(api, version, &frame).map_err(|e| e.to_string())?;
    let header = ResponseHeader::decode(&mut frame, api.response_header_version(version))
        .map_err(|e| e.to_string())?;
    if header.correlation_id != correlation_id {
        return Err(format!(
            "correlation id {}, expected {correlation_id}",
            header.correlation_id
        ));
    }
    A::decode(&mut frame, version).map_err(|e| e.to_string())
}

/// A request frame with its size prefix.
fn encode<Q: Encodable>(api: ApiKey, version: i16, correlation_id: i32, body: &Q) -> Bytes {
    let mut header = RequestHeader::default();
    header.request_api_key = api as i16;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_static_str(CLIENT_ID));
    let mut out = BytesMut::new();
    out.extend_from_slice(&[0; 4]);
    // Encoding our own well-formed messages into a growable buffer cannot fail.
    header
        .encode(&mut out, api.request_header_version(version))
        .expect("request header encodes");
    body.encode(&mut out, version)
        .expect("request body encodes");
    let size = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&size.to_be_bytes());
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_servers_message_is_one_bounded_line() {
        assert_eq!(one_line("two\nlines\x1b[31m"), "two lines [31m");
        let long = one_line(&"x".repeat(10_000));
        assert_eq!(long.chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(
            error_name(&ResponseError::NotLeaderOrFollower),
            "NOT_LEADER_OR_FOLLOWER"
        );
        assert_eq!(
            error_name(&ResponseError::UnsupportedVersion),
            "UNSUPPORTED_VERSION"
        );
        assert_eq!(error_name(&ResponseError::Unknown(999)), "error code 999");
    }
}
