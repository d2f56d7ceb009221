//! Kafka's 128-bit ids (cluster, directory and topic ids) in their 22-character base64url form.
//!
//! Owns generation and text conversion. Must never hand out the reserved ids (all zeros, or the
//! metadata topic's id 1) from `random`, nor an id whose text starts with '-', which a command line
//! would take for a flag.

use std::fmt;
use std::str::FromStr;

/// A Kafka `Uuid`: 16 bytes, shown as unpadded base64url.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Uuid(pub [u8; 16]);

/// Length of the unpadded base64url text of 16 bytes.
pub const UUID_TEXT_LEN: usize = 22;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a base64url id of 16 bytes (22 characters of A-Z a-z 0-9 - _)")]
pub struct UuidParseError(pub String);

impl Uuid {
    pub const ZERO: Uuid = Uuid([0; 16]);
    /// `Uuid.ONE_UUID`, reserved by Kafka for the `__cluster_metadata` topic.
    pub const ONE: Uuid = Uuid([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

    /// A random version-4 id that is not reserved and whose text does not start with '-'.
    pub fn random() -> Uuid {
        loop {
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes).expect("the OS random source is available");
            bytes[6] = (bytes[6] & 0x0f) | 0x40;
            bytes[8] = (bytes[8] & 0x3f) | 0x80;
            let id = Uuid(bytes);
            if id != Uuid::ZERO && id != Uuid::ONE && !id.to_string().starts_with('-') {
                return id;
            }
        }
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(UUID_TEXT_LEN);
        for chunk in self.0.chunks(3) {
            let mut group = [0u8; 3];
            group[..chunk.len()].copy_from_slice(chunk);
            let n = u32::from_be_bytes([0, group[0], group[1], group[2]]);
            let chars = chunk.len() + 1;
            for i in 0..chars {
                let sextet = (n >> (18 - 6 * i)) & 0x3f;
                out.push(ALPHABET[sextet as usize] as char);
            }
        }
        f.write_str(&out)
    }
}

impl FromStr for Uuid {
    type Err = UuidParseError;

    fn from_str(text: &str) -> Result<Uuid, UuidParseError> {
        let err = || UuidParseError(text.to_string());
        let text_bytes = text.as_bytes();
        if text_bytes.len() != UUID_TEXT_LEN {
            return Err(err());
        }
        let mut bits: u32 = 0;
        let mut nbits = 0;
        let mut out = Vec::with_capacity(16);
        for &c in text_bytes {
            let v = ALPHABET.iter().position(|&a| a == c).ok_or_else(err)? as u32;
            bits = (bits << 6) | v;
            nbits += 6;
            if nbits >= 8 {
                nbits -= 8;
                out.push((bits >> nbits) as u8);
                bits &= (1 << nbits) - 1;
            }
        }
        // 22 chars carry 132 bits: the 4 spare bits must be zero for a canonical encoding.
        if bits != 0 || out.len() != 16 {
            return Err(err());
        }
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&out);
        Ok(Uuid(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_ids_round_trip() {
        assert_eq!(Uuid::ZERO.to_string(), "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(Uuid::ONE.to_string(), "AAAAAAAAAAAAAAAAAAAAAQ");
        let seed_id: Uuid = "b8tRS7h4TJ2Vt43Dp85v2A".parse().unwrap();
        assert_eq!(seed_id.to_string(), "b8tRS7h4TJ2Vt43Dp85v2A");
        let dashed: Uuid = "4-e97nI7eHPYKfEDtW8rtQ".parse().unwrap();
        assert_eq!(dashed.to_string(), "4-e97nI7eHPYKfEDtW8rtQ");
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in [
            "",
            "short",
            "AAAAAAAAAAAAAAAAAAAAA=",
            "AAAAAAAAAAAAAAAAAAAAAB",
            "AAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(bad.parse::<Uuid>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn random_ids_are_valid_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let id = Uuid::random();
            let text = id.to_string();
            assert_eq!(text.len(), UUID_TEXT_LEN);
            assert!(!text.starts_with('-'));
            assert_ne!(id, Uuid::ZERO);
            assert_eq!(text.parse::<Uuid>().unwrap(), id);
            assert!(seen.insert(id));
        }
    }
}
