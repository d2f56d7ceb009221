//! `meta.properties`: the identity written into every log dir by `kraft storage format`
//! (docs/protocol.md §16). Written atomically; a file that exists but cannot be read as a
//! valid KRaft identity is an error, never treated as "unformatted". It must never touch the disk
//! except through the [`Fs`] it is handed (the methods without `_in` use the real one).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::error::{IoContext, StorageError};
use super::fs::{Fs, real_fs};
use super::fsutil;
use crate::types::NodeId;
use crate::uuid::Uuid;

/// The identity of a formatted log dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    pub cluster_id: String,
    pub node_id: NodeId,
    pub directory_id: Option<Uuid>,
}

/// Largest `meta.properties` read: the real file is ~150 bytes, so anything near this is not ours.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// `version=1` marks a KRaft dir; 0 was ZooKeeper mode's layout.
const KRAFT_VERSION: &str = "1";

impl MetaProperties {
    pub const FILE_NAME: &'static str = "meta.properties";

    pub fn path(dir: &Path) -> PathBuf {
        dir.join(Self::FILE_NAME)
    }

    /// Reads `dir/meta.properties`; `Ok(None)` when the file does not exist.
    pub fn read(dir: &Path) -> Result<Option<MetaProperties>, StorageError> {
        Self::read_in(&real_fs(), dir)
    }

    /// Reads `dir/meta.properties` on `fs`; `Ok(None)` when the file does not exist.
    pub fn read_in(fs: &Fs, dir: &Path) -> Result<Option<MetaProperties>, StorageError> {
        let path = Self::path(dir);
        let Some(bytes) = fsutil::read_small_file(&**fs, &path, MAX_FILE_BYTES)? else {
            return Ok(None);
        };
        Self::parse(&bytes)
            .map(Some)
            .map_err(|reason| StorageError::corrupt(&path, reason))
    }

    fn parse(bytes: &[u8]) -> Result<MetaProperties, String> {
        let mut map = std::collections::HashMap::new();
        java_properties::PropertiesIter::new_with_encoding(bytes, encoding_rs::UTF_8)
            .read_into(|k, v| {
                map.insert(k, v);
            })
            .map_err(|e| format!("not a properties file: {e}"))?;
        match map.get("version").map(String::as_str) {
            Some(KRAFT_VERSION) => {}
            Some("0") => return Err("version=0 is a ZooKeeper-mode directory, not KRaft".into()),
            Some(v) => return Err(format!("unsupported version '{v}' (expected 1)")),
            None => return Err("missing 'version'".into()),
        }
        let cluster_id = match map.get("cluster.id") {
            Some(id) if !id.is_empty() => id.clone(),
            _ => return Err("missing 'cluster.id'".into()),
        };
        let node_id = map.get("node.id").ok_or("missing 'node.id'")?;
        let node_id = node_id
            .parse::<i32>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("'node.id' is '{node_id}', not a node id >= 0"))?;
        let directory_id = match map.get("directory.id") {
            None => None,
            Some(text) => Some(
                text.parse::<Uuid>()
                    .map_err(|e| format!("'directory.id': {e}"))?,
            ),
        };
        Ok(MetaProperties {
            cluster_id,
            node_id: NodeId(node_id),
            directory_id,
        })
    }

    /// The file's text as Java's `Properties.store` writes it: a comment line, a date line, then
    /// the keys.
    pub fn to_text(&self, now: SystemTime) -> String {
        let mut text = format!("#\n#{}\n", java_date(now));
        text.push_str(&format!("cluster.id={}\n", escape(&self.cluster_id)));
        if let Some(id) = self.directory_id {
            text.push_str(&format!("directory.id={id}\n"));
        }
        text.push_str(&format!(
            "node.id={}\nversion={KRAFT_VERSION}\n",
            self.node_id
        ));
        text
    }

    /// Writes `dir/meta.properties` atomically and durably.
    pub fn write(&self, dir: &Path) -> Result<(), StorageError> {
        self.write_in(&real_fs(), dir)
    }

    /// Writes `dir/meta.properties` on `fs` atomically and durably.
    pub fn write_in(&self, fs: &Fs, dir: &Path) -> Result<(), StorageError> {
        fsutil::create_dir_durably_in(&**fs, dir)?;
        let text = self.to_text(SystemTime::now());
        fsutil::write_atomically_in(&**fs, &Self::path(dir), text.as_bytes())
    }

    /// Whether `dir` holds a `meta.properties` file at all (readable or not).
    pub fn exists(dir: &Path) -> Result<bool, StorageError> {
        Self::exists_in(&real_fs(), dir)
    }

    /// Whether `dir` on `fs` holds a `meta.properties` file at all (readable or not).
    pub fn exists_in(fs: &Fs, dir: &Path) -> Result<bool, StorageError> {
        let path = Self::path(dir);
        fs.exists(&path).at(&path)
    }
}

/// Escapes what `.properties` syntax would otherwise interpret in a value.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        match c {
            '\\' | '=' | ':' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == 0 => out.push_str("\\ "),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out
}

/// `java.util.Date#toString` in UTC, e.g. `Sat Nov 21 05:29:00 UTC 2026`.
fn java_date(now: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        year
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_look_like_java() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_238_940); // 2026-11-21 05:29:00 UTC
        assert_eq!(java_date(t), "Sat Nov 21 05:29:00 UTC 2026");
        assert_eq!(java_date(UNIX_EPOCH), "Thu Jan 01 00:00:00 UTC 1970");
    }

    #[test]
    fn text_round_trips_including_awkward_cluster_ids() {
        for cluster_id in [
            "MkU3OEVBNTcwNTJENDM2Qk",
            "a=b:c#d!e\\f",
            " leading space",
            "café",
        ] {
            let meta = MetaProperties {
                cluster_id: cluster_id.into(),
                node_id: NodeId(3),
                directory_id: Some(Uuid::random()),
            };
            let text = meta.to_text(SystemTime::now());
            assert!(text.starts_with("#\n#"));
            assert_eq!(MetaProperties::parse(text.as_bytes()).unwrap(), meta);
        }
    }

    #[test]
    fn invalid_identity_is_an_error() {
        let cases = [
            ("", "missing 'version'"),
            ("version=0\ncluster.id=x\nbroker.id=1\n", "ZooKeeper"),
            ("version=1\nnode.id=1\n", "missing 'cluster.id'"),
            ("version=1\ncluster.id=x\nnode.id=one\n", "not a node id"),
            (
                "version=1\ncluster.id=x\nnode.id=1\ndirectory.id=nope\n",
                "directory.id",
            ),
        ];
        for (text, needle) in cases {
            let err = MetaProperties::parse(text.as_bytes()).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
