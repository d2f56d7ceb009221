//! Turns one Kafka request frame into a typed request: the header read by hand first (so an
//! unknown api key or version is answered or refused by name), the body's bounds proven by
//! [`super::bounds`], and only then decoded by the `kafka-protocol` crate.
//!
//! Owns the decision of which api keys and versions kraft serves ([`SUPPORTED`]); it never
//! answers anything itself.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, DescribeClusterRequest, DescribeQuorumRequest, FetchRequest,
    FindCoordinatorRequest, InitProducerIdRequest, ListOffsetsRequest, MetadataRequest,
    ProduceRequest, RemoveRaftVoterRequest, UpdateRaftVoterRequest,
};
use kafka_protocol::protocol::{Decodable, decode_request_header_from_buffer};

use super::bounds::{self, BoundsError};
use super::voters::{self, AddVoterRequest};

/// The api keys and version ranges kraft advertises in ApiVersions.
///
/// Produce's range starts at 0 although versions 0–2 (message formats v0 and v1) are refused:
/// librdkafka before 2.11.1 (Debian's kcat) compresses only when a broker's Produce range
/// includes version 0, and never sends below 3 to a broker that also accepts 3. FindCoordinator
/// is advertised (and answered "not available") for the same client, which uses lz4 only when
/// it sees it. Fetch stops at 16: 17 and 18 carry fields only replicas use. AddRaftVoter v1
/// (AckWhenCommitted) is decoded by [`voters::decode_add`], the crate knowing only v0;
/// UpdateRaftVoter is answered UNSUPPORTED_VERSION (see [`voters::update_answer`]).
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 11),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::AddRaftVoter, 0, 1),
    (ApiKey::RemoveRaftVoter, 0, 0),
    (ApiKey::UpdateRaftVoter, 0, 0),
];

/// The lowest Produce version whose body the decoder reads (record batch v2 only).
pub const MIN_DECODED_PRODUCE_VERSION: i16 = 3;

/// Who sent a request and how to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMeta {
    pub api_key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
}

/// A request kraft serves, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum KafkaRequest {
    ApiVersions(ApiVersionsRequest),
    Metadata(MetadataRequest),
    Produce(ProduceRequest),
    Fetch(FetchRequest),
    ListOffsets(ListOffsetsRequest),
    InitProducerId(InitProducerIdRequest),
    DescribeCluster(DescribeClusterRequest),
    DescribeQuorum(DescribeQuorumRequest),
    FindCoordinator(FindCoordinatorRequest),
    AddRaftVoter(AddVoterRequest),
    RemoveRaftVoter(RemoveRaftVoterRequest),
    UpdateRaftVoter(UpdateRaftVoterRequest),
}

/// What a frame turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Request {
        meta: RequestMeta,
        request: Box<KafkaRequest>,
    },
    /// ApiVersions at a version kraft does not know: Kafka answers it (in version 0, with
    /// UNSUPPORTED_VERSION and its own ApiVersions range) so the client can retry lower.
    ApiVersionsTooNew { correlation_id: i32 },
}

/// Why a frame is refused; each closes the connection, as Kafka does, with this as the log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("unknown api key {api_key} (correlation id {correlation_id})")]
    UnknownApi { api_key: i16, correlation_id: i32 },
    #[error("{api:?} v{version} is not supported (correlation id {correlation_id})")]
    UnsupportedVersion {
        api: ApiKey,
        version: i16,
        correlation_id: i32,
    },
    #[error("{api:?} v{version}: undecodable request header: {reason}")]
    Header {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("{api:?} v{version}: {error}")]
    Bounds {
        api: ApiKey,
        version: i16,
        error: BoundsError,
    },
    #[error("{api:?} v{version}: undecodable request body: {reason}")]
    Body {
        api: ApiKey,
        version: i16,
        reason: String,
    },
}

/// The advertised range for `api`, if kraft serves it.
pub fn supported_range(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(key, _, _)| *key == api)
        .map(|&(_, min, max)| (min, max))
}

/// Parses one frame (header and body, without the size prefix).
pub fn parse(frame: Bytes) -> Result<Parsed, RequestError> {
    let mut peek = &frame[..];
    let (raw_key, version, correlation_id) = (peek.get_i16(), peek.get_i16(), peek.get_i32());
    let Ok(api) = ApiKey::try_from(raw_key) else {
        return Err(RequestError::UnknownApi {
            api_key: raw_key,
            correlation_id,
        });
    };
    let unsupported = RequestError::UnsupportedVersion {
        api,
        version,
        correlation_id,
    };
    match supported_range(api) {
        None => return Err(unsupported),
        Some((_, max)) if api == ApiKey::ApiVersions && version > max => {
            return Ok(Parsed::ApiVersionsTooNew { correlation_id });
        }
        Some((min, max)) if version < min || version > max => return Err(unsupported),
        Some(_) if api == ApiKey::Produce && version < MIN_DECODED_PRODUCE_VERSION => {
            return Err(unsupported);
        }
        Some(_) => {}
    }
    let mut buf = frame;
    let header = decode_request_header_from_buffer(&mut buf).map_err(|e| RequestError::Header {
        api,
        version,
        reason: e.to_string(),
    })?;
    bounds::check(api, version, &buf).map_err(|error| RequestError::Bounds {
        api,
        version,
        error,
    })?;
    let request = decode_body(api, version, &mut buf).map_err(|e| RequestError::Body {
        api,
        version,
        reason: e.to_string(),
    })?;
    let meta = RequestMeta {
        api_key: api,
        version,
        correlation_id,
        client_id: header.client_id.map(|c| c.as_str().to_owned()),
    };
    Ok(Parsed::Request {
        meta,
        request: Box::new(request),
    })
}

fn decode_body(api: ApiKey, v: i16, buf: &mut Bytes) -> anyhow::Result<KafkaRequest> {
    use KafkaRequest as R;
    Ok(match api {
        ApiKey::ApiVersions => R::ApiVersions(ApiVersionsRequest::decode(buf, v)?),
        ApiKey::Metadata => R::Metadata(MetadataRequest::decode(buf, v)?),
        ApiKey::Produce => R::Produce(ProduceRequest::decode(buf, v)?),
        ApiKey::Fetch => R::Fetch(FetchRequest::decode(buf, v)?),
        ApiKey::ListOffsets => R::ListOffsets(ListOffsetsRequest::decode(buf, v)?),
        ApiKey::InitProducerId => R::InitProducerId(InitProducerIdRequest::decode(buf, v)?),
        ApiKey::DescribeCluster => R::DescribeCluster(DescribeClusterRequest::decode(buf, v)?),
        ApiKey::DescribeQuorum => R::DescribeQuorum(DescribeQuorumRequest::decode(buf, v)?),
        ApiKey::FindCoordinator => R::FindCoordinator(FindCoordinatorRequest::decode(buf, v)?),
        ApiKey::AddRaftVoter => R::AddRaftVoter(voters::decode_add(buf, v)?),
        ApiKey::RemoveRaftVoter => R::RemoveRaftVoter(RemoveRaftVoterRequest::decode(buf, v)?),
        ApiKey::UpdateRaftVoter => R::UpdateRaftVoter(UpdateRaftVoterRequest::decode(buf, v)?),
        other => anyhow::bail!("{other:?} is not decoded by kraft"),
    })
}
