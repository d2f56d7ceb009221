//! A walk over a Kafka request body that proves every length and element count it declares is
//! backed by bytes actually present, before the `kafka-protocol` crate decodes it.
//!
//! Why it exists: the crate's array decoders reserve room for as many elements as the wire
//! claims, so a 22-byte Metadata request declaring two billion topics makes it allocate
//! hundreds of gigabytes and abort the process. This walk reads only lengths and counts, never
//! allocates, and refuses a body whose structure does not fit inside its own bytes. It knows the
//! shape of exactly the requests kraft decodes (see `schema`), and of the responses `kraft
//! quorum` decodes as a client (see `response_schema`: a server is no more trusted than a
//! client); it does not decode values and must never be used to build answers.

use kafka_protocol::messages::ApiKey;

/// Why a body was refused before decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {at} of the request body")]
pub struct BoundsError {
    pub at: usize,
    pub what: &'static str,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    I8,
    I16,
    I32,
    I64,
    Uuid,
    /// A (nullable) string: INT16 length, or UNSIGNED_VARINT length + 1 when flexible.
    Str,
    /// (Nullable) bytes: INT32 length, or UNSIGNED_VARINT length + 1 when flexible.
    Bytes,
    /// An array of structs with these fields (each struct ends in a tag buffer when flexible).
    Structs(&'static [Field]),
    /// One struct with these fields (ending in a tag buffer when flexible).
    Struct(&'static [Field]),
    Int32s,
    Strs,
}

/// A field present in versions `first..=last`.
#[derive(Debug, Clone, Copy)]
struct Field {
    kind: Kind,
    first: i16,
    last: i16,
}

const ALL: i16 = i16::MAX;

const fn f(kind: Kind, first: i16, last: i16) -> Field {
    Field { kind, first, last }
}

/// A request body: its fields and the first flexible version.
struct Schema {
    fields: &'static [Field],
    flexible_from: i16,
}

use Kind::*;

const API_VERSIONS: Schema = Schema {
    fields: &[f(Str, 3, ALL), f(Str, 3, ALL)],
    flexible_from: 3,
};

const METADATA_TOPIC: &[Field] = &[f(Uuid, 10, ALL), f(Str, 0, ALL)];
const METADATA: Schema = Schema {
    fields: &[
        f(Structs(METADATA_TOPIC), 0, ALL),
        f(I8, 4, ALL),
        f(I8, 8, 10),
        f(I8, 8, ALL),
    ],
    flexible_from: 9,
};

const PRODUCE_PARTITION: &[Field] = &[f(I32, 0, ALL), f(Bytes, 0, ALL)];
const PRODUCE_TOPIC: &[Field] = &[
    f(Str, 0, 12),
    f(Uuid, 13, ALL),
    f(Structs(PRODUCE_PARTITION), 0, ALL),
];
const PRODUCE: Schema = Schema {
    fields: &[
        f(Str, 3, ALL),
        f(I16, 0, ALL),
        f(I32, 0, ALL),
        f(Structs(PRODUCE_TOPIC), 0, ALL),
    ],
    flexible_from: 9,
};

const FETCH_PARTITION: &[Field] = &[
    f(I32, 0, ALL),
    f(I32, 9, ALL),
    f(I64, 0, ALL),
    f(I32, 12, ALL),
    f(I64, 5, ALL),
    f(I32, 0, ALL),
];
const FETCH_TOPIC: &[Field] = &[
    f(Str, 0, 12),
    f(Uuid, 13, ALL),
    f(Structs(FETCH_PARTITION), 0, ALL),
];
const FORGOTTEN_TOPIC: &[Field] = &[f(Str, 7, 12), f(Uuid, 13, ALL), f(Int32s, 7, ALL)];
const FETCH: Schema = Schema {
    fields: &[
        f(I32, 0, 14),
        f(I32, 0, ALL),
        f(I32, 0, ALL),
        f(I32, 3, ALL),
        f(I8, 4, ALL),
        f(I32, 7, ALL),
        f(I32, 7, ALL),
        f(Structs(FETCH_TOPIC), 0, ALL),
        f(Structs(FORGOTTEN_TOPIC), 7, ALL),
        f(Str, 11, ALL),
    ],
    flexible_from: 12,
};

const LIST_OFFSETS_PARTITION: &[Field] =
    &[f(I32, 0, ALL), f(I32, 4, ALL), f(I64, 0, ALL), f(I32, 0, 0)];
const LIST_OFFSETS_TOPIC: &[Field] = &[f(Str, 0, ALL), f(Structs(LIST_OFFSETS_PARTITION), 0, ALL)];
const LIST_OFFSETS: Schema = Schema {
    fields: &[
        f(I32, 0, ALL),
        f(I8, 2, ALL),
        f(Structs(LIST_OFFSETS_TOPIC), 0, ALL),
        f(I32, 10, ALL),
    ],
    flexible_from: 6,
};

const INIT_PRODUCER_ID: Schema = Schema {
    fields: &[
        f(Str, 0, ALL),
        f(I32, 0, ALL),
        f(I64, 3, ALL),
        f(I16, 3, ALL),
    ],
    flexible_from: 2,
};

const DESCRIBE_CLUSTER: Schema = Schema {
    fields: &[f(I8, 0, ALL), f(I8, 1, ALL), f(I8, 2, ALL)],
    flexible_from: 0,
};

const DESCRIBE_QUORUM_PARTITION: &[Field] = &[f(I32, 0, ALL)];
const DESCRIBE_QUORUM_TOPIC: &[Field] = &[
    f(Str, 0, ALL),
    f(Structs(DESCRIBE_QUORUM_PARTITION), 0, ALL),
];
const DESCRIBE_QUORUM: Schema = Schema {
    fields: &[f(Structs(DESCRIBE_QUORUM_TOPIC), 0, ALL)],
    flexible_from: 0,
};

const FIND_COORDINATOR: Schema = Schema {
    fields: &[f(Str, 0, 3), f(I8, 1, ALL), f(Strs, 4, ALL)],
    flexible_from: 3,
};

const VOTER_LISTENER: &[Field] = &[f(Str, 0, ALL), f(Str, 0, ALL), f(I16, 0, ALL)];
const ADD_RAFT_VOTER: Schema = Schema {
    fields: &[
        f(Str, 0, ALL),
        f(I32, 0, ALL),
        f(I32, 0, ALL),
        f(Uuid, 0, ALL),
        f(Structs(VOTER_LISTENER), 0, ALL),
        f(I8, 1, ALL),
    ],
    flexible_from: 0,
};

const REMOVE_RAFT_VOTER: Schema = Schema {
    fields: &[f(Str, 0, ALL), f(I32, 0, ALL), f(Uuid, 0, ALL)],
    flexible_from: 0,
};

const KRAFT_VERSION_FEATURE: &[Field] = &[f(I16, 0, ALL), f(I16, 0, ALL)];
const UPDATE_RAFT_VOTER: Schema = Schema {
    fields: &[
        f(Str, 0, ALL),
        f(I32, 0, ALL),
        f(I32, 0, ALL),
        f(Uuid, 0, ALL),
        f(Structs(VOTER_LISTENER), 0, ALL),
        f(Struct(KRAFT_VERSION_FEATURE), 0, ALL),
    ],
    flexible_from: 0,
};

// Responses, read by `kraft quorum`. Their header (correlation id, then a tag buffer when the
// header is flexible) is walked by `check_response_header`.

const DESCRIBE_CLUSTER_BROKER: &[Field] = &[
    f(I32, 0, ALL),
    f(Str, 0, ALL),
    f(I32, 0, ALL),
    f(Str, 0, ALL),
    f(I8, 2, ALL),
];
const DESCRIBE_CLUSTER_RESPONSE: Schema = Schema {
    fields: &[
        f(I32, 0, ALL),
        f(I16, 0, ALL),
        f(Str, 0, ALL),
        f(I8, 1, ALL),
        f(Str, 0, ALL),
        f(I32, 0, ALL),
        f(Structs(DESCRIBE_CLUSTER_BROKER), 0, ALL),
        f(I32, 0, ALL),
    ],
    flexible_from: 0,
};

const QUORUM_REPLICA: &[Field] = &[
    f(I32, 0, ALL),
    f(Uuid, 2, ALL),
    f(I64, 0, ALL),
    f(I64, 1, ALL),
    f(I64, 1, ALL),
];
const QUORUM_PARTITION: &[Field] = &[
    f(I32, 0, ALL),
    f(I16, 0, ALL),
    f(Str, 2, ALL),
    f(I32, 0, ALL),
    f(I32, 0, ALL),
    f(I64, 0, ALL),
    f(Structs(QUORUM_REPLICA), 0, ALL),
    f(Structs(QUORUM_REPLICA), 0, ALL),
];
const QUORUM_TOPIC: &[Field] = &[f(Str, 0, ALL), f(Structs(QUORUM_PARTITION), 0, ALL)];
const QUORUM_LISTENER: &[Field] = &[f(Str, 2, ALL), f(Str, 2, ALL), f(I16, 2, ALL)];
const QUORUM_NODE: &[Field] = &[f(I32, 2, ALL), f(Structs(QUORUM_LISTENER), 2, ALL)];
const DESCRIBE_QUORUM_RESPONSE: Schema = Schema {
    fields: &[
        f(I16, 0, ALL),
        f(Str, 2, ALL),
        f(Structs(QUORUM_TOPIC), 0, ALL),
        f(Structs(QUORUM_NODE), 2, ALL),
    ],
    flexible_from: 0,
};

/// AddRaftVoter's and RemoveRaftVoter's answers: throttle time, error code and message.
const VOTER_CHANGE_RESPONSE: Schema = Schema {
    fields: &[f(I32, 0, ALL), f(I16, 0, ALL), f(Str, 0, ALL)],
    flexible_from: 0,
};

fn response_schema(key: ApiKey) -> Option<&'static Schema> {
    Some(match key {
        ApiKey::DescribeCluster => &DESCRIBE_CLUSTER_RESPONSE,
        ApiKey::DescribeQuorum => &DESCRIBE_QUORUM_RESPONSE,
        ApiKey::AddRaftVoter | ApiKey::RemoveRaftVoter => &VOTER_CHANGE_RESPONSE,
        _ => return None,
    })
}

fn schema(key: ApiKey) -> Option<&'static Schema> {
    Some(match key {
        ApiKey::ApiVersions => &API_VERSIONS,
        ApiKey::Metadata => &METADATA,
        ApiKey::Produce => &PRODUCE,
        ApiKey::Fetch => &FETCH,
        ApiKey::ListOffsets => &LIST_OFFSETS,
        ApiKey::InitProducerId => &INIT_PRODUCER_ID,
        ApiKey::DescribeCluster => &DESCRIBE_CLUSTER,
        ApiKey::DescribeQuorum => &DESCRIBE_QUORUM,
        ApiKey::FindCoordinator => &FIND_COORDINATOR,
        ApiKey::AddRaftVoter => &ADD_RAFT_VOTER,
        ApiKey::RemoveRaftVoter => &REMOVE_RAFT_VOTER,
        ApiKey::UpdateRaftVoter => &UPDATE_RAFT_VOTER,
        _ => return None,
    })
}

/// Checks that `body` (the bytes after the request header) of a request `key` at `version` is
/// structurally backed by its bytes. A key without a schema here is refused: kraft never
/// decodes what this walk has not checked.
pub fn check(key: ApiKey, version: i16, body: &[u8]) -> Result<(), BoundsError> {
    let schema = schema(key).ok_or(BoundsError {
        at: 0,
        what: "a request kraft does not decode",
    })?;
    let mut walk = Walk {
        body,
        at: 0,
        version,
        flexible: version >= schema.flexible_from,
    };
    walk.fields(schema.fields)
}

/// Checks a whole response frame (header and body, without the size prefix) of `key` at
/// `version`, as [`check`] does a request body. A key without a response schema is refused.
pub fn check_response(key: ApiKey, version: i16, frame: &[u8]) -> Result<(), BoundsError> {
    let schema = response_schema(key).ok_or(BoundsError {
        at: 0,
        what: "a response kraft does not decode",
    })?;
    let mut walk = Walk {
        body: frame,
        at: 0,
        version,
        flexible: key.response_header_version(version) >= 1,
    };
    walk.field(I32)?;
    if walk.flexible {
        walk.tags()?;
    }
    walk.flexible = version >= schema.flexible_from;
    walk.fields(schema.fields)?;
    match walk.remaining() {
        0 => Ok(()),
        _ => Err(walk.fail("bytes left over after the response")),
    }
}

struct Walk<'a> {
    body: &'a [u8],
    at: usize,
    version: i16,
    flexible: bool,
}

impl Walk<'_> {
    fn fail(&self, what: &'static str) -> BoundsError {
        BoundsError { at: self.at, what }
    }

    fn remaining(&self) -> usize {
        self.body.len() - self.at
    }

    fn skip(&mut self, n: usize, what: &'static str) -> Result<(), BoundsError> {
        if n > self.remaining() {
            return Err(self.fail(what));
        }
        self.at += n;
        Ok(())
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], BoundsError> {
        let bytes = self
            .body
            .get(self.at..self.at + N)
            .ok_or_else(|| self.fail("a field runs past the end"))?;
        self.at += N;
        Ok(bytes.try_into().expect("N bytes"))
    }

    fn varint(&mut self) -> Result<u32, BoundsError> {
        let mut value: u32 = 0;
        for shift in (0..35).step_by(7) {
            let [byte] = self.take::<1>()?;
            value |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.fail("an unsigned varint longer than five bytes"))
    }

    /// A length or count: `None` for null.
    fn length(&mut self, wide: bool) -> Result<Option<usize>, BoundsError> {
        let value = match (self.flexible, wide) {
            (true, _) => i64::from(self.varint()?) - 1,
            (false, false) => i64::from(i16::from_be_bytes(self.take()?)),
            (false, true) => i64::from(i32::from_be_bytes(self.take()?)),
        };
        match value {
            -1 => Ok(None),
            n if n < 0 => Err(self.fail("a negative length")),
            n => Ok(Some(n as usize)),
        }
    }

    /// An element count, which may not exceed the bytes left: every element takes at least one.
    fn count(&mut self) -> Result<usize, BoundsError> {
        let count = self.length(true)?.unwrap_or(0);
        if count > self.remaining() {
            return Err(self.fail("an element count larger than the bytes left"));
        }
        Ok(count)
    }

    fn fields(&mut self, fields: &[Field]) -> Result<(), BoundsError> {
        for field in fields {
            if (field.first..=field.last).contains(&self.version) {
                self.field(field.kind)?;
            }
        }
        if self.flexible {
            self.tags()?;
        }
        Ok(())
    }

    fn field(&mut self, kind: Kind) -> Result<(), BoundsError> {
        match kind {
            I8 => self.skip(1, "a field runs past the end"),
            I16 => self.skip(2, "a field runs past the end"),
            I32 => self.skip(4, "a field runs past the end"),
            I64 => self.skip(8, "a field runs past the end"),
            Uuid => self.skip(16, "a field runs past the end"),
            Str => {
                let n = self.length(false)?.unwrap_or(0);
                self.skip(n, "a string runs past the end")
            }
            Bytes => {
                let n = self.length(true)?.unwrap_or(0);
                self.skip(n, "bytes run past the end")
            }
            Structs(fields) => {
                for _ in 0..self.count()? {
                    self.fields(fields)?;
                }
                Ok(())
            }
            Struct(fields) => self.fields(fields),
            Int32s => {
                let n = self.count()?;
                self.skip(n.saturating_mul(4), "an array runs past the end")
            }
            Strs => {
                for _ in 0..self.count()? {
                    self.field(Str)?;
                }
                Ok(())
            }
        }
    }

    /// A tag buffer: a count, then (tag, size, bytes) each.
    fn tags(&mut self) -> Result<(), BoundsError> {
        let count = self.varint()? as usize;
        if count > self.remaining() {
            return Err(self.fail("a tagged-field count larger than the bytes left"));
        }
        for _ in 0..count {
            self.varint()?;
            let size = self.varint()? as usize;
            self.skip(size, "a tagged field runs past the end")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metadata_request_claiming_two_billion_topics_is_refused() {
        // Metadata v4: topics count i32::MAX, then nothing.
        let body = [0x7f, 0xff, 0xff, 0xff, 0x01];
        let err = check(ApiKey::Metadata, 4, &body).unwrap_err();
        assert_eq!(err.what, "an element count larger than the bytes left");
    }

    #[test]
    fn a_flexible_count_is_checked_too() {
        // Metadata v12: compact array count 2^28, nothing after.
        let body = [0x80, 0x80, 0x80, 0x80, 0x01];
        assert!(check(ApiKey::Metadata, 12, &body).is_err());
    }

    #[test]
    fn a_describe_quorum_response_claiming_a_billion_voters_is_refused() {
        // Header: correlation id 1, no tags; error 0, error message null; one topic "t" with
        // one partition whose voters array claims 2^28 elements.
        let mut frame = vec![0, 0, 0, 1, 0, 0, 0, 0, 2, 2, b't', 2];
        // Index, error, null message, leader, epoch, high watermark: 23 bytes.
        frame.extend([0u8; 23]);
        frame.extend([0x80, 0x80, 0x80, 0x80, 0x01]);
        let err = check_response(ApiKey::DescribeQuorum, 2, &frame).unwrap_err();
        assert_eq!(err.what, "an element count larger than the bytes left");
    }

    #[test]
    fn a_well_formed_body_passes() {
        // Metadata v4: one topic "t", allow auto creation false.
        let body = [0, 0, 0, 1, 0, 1, b't', 0];
        assert_eq!(check(ApiKey::Metadata, 4, &body), Ok(()));
    }
}
