//! Encodes a response: header (the version the api key and request version call for, with the
//! request's correlation id) and body, without the size prefix the codec adds.
//!
//! A body that does not encode at its version is a bug in kraft's answer, never the client's;
//! the caller closes the connection and logs it.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::{Encodable, HeaderVersion};

/// Why an answer could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode the answer at version {version}: {reason}")]
pub struct EncodeError {
    pub version: i16,
    pub reason: String,
}

/// The header and body of one response.
pub fn encode<T: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    body: &T,
) -> Result<Bytes, EncodeError> {
    let fail = |e: anyhow::Error| EncodeError {
        version,
        reason: e.to_string(),
    };
    let mut out = BytesMut::new();
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    header
        .encode(&mut out, T::header_version(version))
        .map_err(fail)?;
    body.encode(&mut out, version).map_err(fail)?;
    Ok(out.freeze())
}
