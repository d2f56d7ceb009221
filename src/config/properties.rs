//! A `config` crate [`Format`](config::Format) for Java `.properties` files, built on the
//! `java-properties` crate (config's INI format silently corrupts them: docs/architecture.md §1).
//!
//! Owns the file syntax only: comments (`#`, `!`), `=`/`:`/whitespace separators, line
//! continuations, `\uXXXX` escapes. Keys reach config flat (see [`super::keys::flat`]), so one
//! key may be a dotted prefix of another, as in Kafka.

use super::keys::{FLAT_DOT, flat};

/// The `.properties` format.
#[derive(Debug, Clone, Copy)]
pub struct JavaProperties;

/// Parses properties text into (key, value) pairs in file order; a later duplicate wins, as in
/// Java.
pub fn parse_pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    // config hands over already-decoded text, so decode as UTF-8, not the crate's Latin-1 default.
    java_properties::PropertiesIter::new_with_encoding(text.as_bytes(), encoding_rs::UTF_8)
        .read_into(|k, v| {
            pairs.retain(|(existing, _)| existing != &k);
            pairs.push((k, v));
        })
        .map_err(|e| e.to_string())?;
    if let Some((key, _)) = pairs.iter().find(|(k, _)| k.contains(['[', ']', FLAT_DOT])) {
        // config would read `a[0]` as an array index and silently rename the key; the flat dot
        // would come back as a '.'.
        return Err(format!(
            "key '{key}' cannot contain '[', ']' or '{FLAT_DOT}'"
        ));
    }
    Ok(pairs)
}

impl config::Format for JavaProperties {
    fn parse(
        &self,
        uri: Option<&String>,
        text: &str,
    ) -> Result<config::Map<String, config::Value>, Box<dyn std::error::Error + Send + Sync>> {
        let mut map = config::Map::new();
        for (k, v) in parse_pairs(text)? {
            map.insert(
                flat(&k),
                config::Value::new(uri, config::ValueKind::String(v)),
            );
        }
        Ok(map)
    }
}

impl config::FileStoredFormat for JavaProperties {
    fn file_extensions(&self) -> &'static [&'static str] {
        &["properties"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_syntax_that_ini_gets_wrong() {
        let text = "! bang comment\nprocess.roles=controller\nlog.dirs /tmp/kraft-1\n\
                    long.value=first,\\\n    second\nunicode.value=caf\\u00e9\n\
                    controller.listener.names:CONTROLLER\n# comment\nnode.id = 3\n";
        let pairs = parse_pairs(text).unwrap();
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("process.roles"), Some("controller"));
        assert_eq!(get("log.dirs"), Some("/tmp/kraft-1"));
        assert_eq!(get("long.value"), Some("first,second"));
        assert_eq!(get("unicode.value"), Some("café"));
        assert_eq!(get("controller.listener.names"), Some("CONTROLLER"));
        assert_eq!(get("node.id"), Some("3"));
        assert_eq!(pairs.len(), 6);
    }

    #[test]
    fn keys_that_prefix_one_another_are_both_kept() {
        let pairs = parse_pairs("max.connections=10\nmax.connections.per.ip=2\nmax=1\n").unwrap();
        assert_eq!(pairs.len(), 3);
    }
}
