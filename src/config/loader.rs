//! Layering: defaults < `.properties` file < `KRAFT_*` environment < `--override key=value`.
//!
//! Owns reading the file and merging the sources with the `config` crate, then flattening the
//! result into `key → (value, origin)` so that every later error can say where a bad value came
//! from. The environment is passed in (not read here) so tests never race on process state.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::ConfigError;
use super::keys;
use super::properties::{self, JavaProperties};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Env(String),
    Override,
}

impl Origin {
    /// Precedence of the layer: a higher rank overrides a lower one.
    pub fn rank(&self) -> u8 {
        match self {
            Origin::File(_) => 1,
            Origin::Env(_) => 2,
            Origin::Override => 3,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Override => write!(f, "--override"),
        }
    }
}

/// The merged configuration: each key's final value and where it came from.
#[derive(Debug, Clone, Default)]
pub struct RawConfig {
    pub file: PathBuf,
    pub values: BTreeMap<String, (String, Origin)>,
}

/// Prefix of environment variables that set configuration keys.
pub const ENV_PREFIX: &str = "KRAFT_";

/// The config key an environment variable sets (`KRAFT_NODE_ID` → `node.id`), if it is a known
/// key. Other `KRAFT_*` variables are left alone: they may belong to tools or tests.
fn env_key(var: &str) -> Option<String> {
    let key = var
        .strip_prefix(ENV_PREFIX)?
        .to_ascii_lowercase()
        .replace('_', ".");
    keys::KNOWN.contains(&key.as_str()).then_some(key)
}

/// Merges `path`, the `KRAFT_*` entries of `env`, and `overrides` (`key=value`).
pub fn load_raw(
    path: &Path,
    env: &BTreeMap<String, String>,
    overrides: &[String],
) -> Result<RawConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    // Parsed here first for its clear errors; config parses it again as the first layer.
    properties::parse_pairs(&text).map_err(|reason| ConfigError::Syntax {
        path: path.to_path_buf(),
        reason,
    })?;
    let env_vars: BTreeMap<String, String> = env
        .iter()
        .filter(|(k, _)| env_key(k).is_some())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let override_pairs = parse_overrides(overrides)?;
    let env_pairs: Vec<(String, String)> = env_vars
        .iter()
        .filter_map(|(k, v)| Some((env_key(k)?, v.clone())))
        .collect();
    let builder = config::Config::builder()
        .add_source(config::File::from_str(&text, JavaProperties))
        .add_source(FlatPairs(env_pairs))
        .add_source(FlatPairs(override_pairs.clone()));
    let merged = builder.build().map_err(|e| ConfigError::Syntax {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let table = merged
        .try_deserialize::<config::Map<String, config::Value>>()
        .map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let mut flat = BTreeMap::new();
    flatten("", table, &mut flat);

    let origin_of = |key: &str| {
        if override_pairs.iter().any(|(k, _)| k == key) {
            Origin::Override
        } else if let Some(var) = env_vars.keys().find(|v| env_key(v).as_deref() == Some(key)) {
            Origin::Env(var.clone())
        } else {
            Origin::File(path.to_path_buf())
        }
    };
    let values = flat.into_iter().map(|(k, v)| {
        let origin = origin_of(&k);
        (k, (v, origin))
    });
    Ok(RawConfig {
        file: path.to_path_buf(),
        values: values.collect(),
    })
}

fn parse_overrides(overrides: &[String]) -> Result<Vec<(String, String)>, ConfigError> {
    overrides
        .iter()
        .map(|arg| match arg.split_once('=') {
            Some((k, _)) if k.contains(['[', ']', keys::FLAT_DOT]) => {
                Err(ConfigError::BadOverride {
                    arg: arg.clone(),
                    reason: format!("a key cannot contain '[', ']' or '{}'", keys::FLAT_DOT),
                })
            }
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(ConfigError::BadOverride {
                arg: arg.clone(),
                reason: "expected key=value".into(),
            }),
        })
        .collect()
}

/// A layer of `key=value` pairs (the environment's, or the overrides'), handed to config with
/// flat keys like the file's.
#[derive(Debug, Clone)]
struct FlatPairs(Vec<(String, String)>);

impl config::Source for FlatPairs {
    fn clone_into_box(&self) -> Box<dyn config::Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<config::Map<String, config::Value>, config::ConfigError> {
        Ok(self
            .0
            .iter()
            .map(|(k, v)| {
                let value = config::Value::new(None, config::ValueKind::String(v.clone()));
                (keys::flat(k), value)
            })
            .collect())
    }
}

/// Turns config's nested tables back into dotted keys.
fn flatten(
    prefix: &str,
    table: config::Map<String, config::Value>,
    out: &mut BTreeMap<String, String>,
) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k
        } else {
            format!("{prefix}.{k}")
        };
        match v.kind {
            config::ValueKind::Table(inner) => flatten(&key, inner, out),
            _ => {
                out.insert(keys::dotted(&key), v.into_string().unwrap_or_default());
            }
        }
    }
}
