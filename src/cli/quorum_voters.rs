//! `kraft quorum add-controller` and `remove-controller`: Kafka's `kafka-metadata-quorum.sh`
//! commands that change a dynamic (kraft.version 1) quorum's voters, one at a time.
//!
//! Owns reading the new controller's identity from its server properties (`node.id`,
//! `process.roles`, the metadata log directory's `directory.id`, its controller listeners'
//! advertised endpoints), Kafka's checks and messages for them and for `--controller-id` /
//! `--controller-directory-id`, and the lines printed on success. It never speaks the protocol
//! itself (`quorum_client`) and never writes anything: a dry run does not even connect.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::CliError;
use super::quorum_client::{AdminClient, NewVoter};
use crate::config::endpoints::{Endpoint, parse_listeners, split_list};
use crate::storage::MetaProperties;
use crate::uuid::Uuid;

const NODE_ID: &str = "node.id";
const PROCESS_ROLES: &str = "process.roles";
const METADATA_LOG_DIR: &str = "metadata.log.dir";
const LOG_DIRS: &str = "log.dirs";
const LISTENERS: &str = "listeners";
const ADVERTISED_LISTENERS: &str = "advertised.listeners";
const CONTROLLER_LISTENER_NAMES: &str = "controller.listener.names";

/// Kafka's hint after every complaint about the file.
const VALID_FILE_HINT: &str = "Is this a valid controller configuration file?";

/// `add-controller`: the controller described by `command_config` (its server properties).
pub fn add_controller(
    client: &AdminClient,
    command_config: Option<&Path>,
    dry_run: bool,
) -> Result<(), CliError> {
    let Some(path) = command_config else {
        return Err(CliError::usage(
            "You must supply the configuration file of the controller you are adding when using add-controller.",
        ));
    };
    let voter = new_voter(&read_properties(path)?)?;
    if !dry_run {
        client.add_voter(&voter).map_err(super::quorum::problem)?;
    }
    println!("{}", added_line(&voter, dry_run));
    Ok(())
}

/// `remove-controller`: the voter `id` whose metadata directory has `directory_id`.
pub fn remove_controller(
    client: &AdminClient,
    id: i32,
    directory_id: &str,
    dry_run: bool,
) -> Result<(), CliError> {
    let directory_id = removed_voter(id, directory_id)?;
    if !dry_run {
        client
            .remove_voter(id, directory_id)
            .map_err(super::quorum::problem)?;
    }
    println!("{}", removed_line(id, directory_id, dry_run));
    Ok(())
}

/// Kafka's checks of `--controller-id` and `--controller-directory-id`; the directory id.
pub fn removed_voter(id: i32, directory_id: &str) -> Result<Uuid, CliError> {
    if id < 0 {
        return Err(CliError::usage(format!(
            "Invalid negative --controller-id: {id}"
        )));
    }
    directory_id
        .parse()
        .map_err(|e| CliError::usage(format!("Failed to parse --controller-directory-id: {e}")))
}

/// What Kafka prints after adding (or pretending to add) a controller: its endpoints in the
/// order of `controller.listener.names`, IPv6 hosts in brackets.
pub fn added_line(voter: &NewVoter, dry_run: bool) -> String {
    let endpoints: Vec<String> = voter
        .endpoints
        .iter()
        .map(|(name, e)| format!("{name}://{e}"))
        .collect();
    format!(
        "{} controller {} with directory id {} and endpoints: {}",
        if dry_run {
            "DRY RUN of adding"
        } else {
            "Added"
        },
        voter.id,
        voter.directory_id,
        endpoints.join(", ")
    )
}

/// What Kafka prints after removing (or pretending to remove) a controller. Kafka's format puts
/// two spaces before "KRaft" (its verb already ends in one); kept, as scripts match it.
pub fn removed_line(id: i32, directory_id: Uuid, dry_run: bool) -> String {
    let verb = if dry_run {
        "DRY RUN of removing "
    } else {
        "Removed "
    };
    format!("{verb} KRaft controller {id} with directory id {directory_id}")
}

pub(super) fn read_properties(path: &Path) -> Result<BTreeMap<String, String>, CliError> {
    let unreadable = |e: String| CliError::usage(format!("{}: {e}", path.display()));
    let text = crate::config::client_properties::read_bounded(path).map_err(unreadable)?;
    let pairs = crate::config::parse_pairs(&text).map_err(unreadable)?;
    Ok(pairs.into_iter().collect())
}

/// The controller a server properties file describes, with Kafka's checks in Kafka's order.
pub fn new_voter(props: &BTreeMap<String, String>) -> Result<NewVoter, CliError> {
    let id = controller_id(props)?;
    let dir = metadata_directory(props)?;
    let directory_id = directory_id(&dir)?;
    let endpoints = controller_endpoints(props)?;
    Ok(NewVoter {
        id,
        directory_id,
        endpoints,
    })
}

fn controller_id(props: &BTreeMap<String, String>) -> Result<i32, CliError> {
    let Some(value) = props.get(NODE_ID) else {
        return Err(CliError::usage(format!(
            "{NODE_ID} not found in configuration file. {VALID_FILE_HINT}"
        )));
    };
    let id: i32 = value.trim().parse().map_err(|_| {
        CliError::usage(format!(
            "{NODE_ID} '{value}' is not an integer in configuration file. {VALID_FILE_HINT}"
        ))
    })?;
    if id < 0 {
        return Err(CliError::usage(format!(
            "{NODE_ID} was negative in configuration file. {VALID_FILE_HINT}"
        )));
    }
    if !props
        .get(PROCESS_ROLES)
        .is_some_and(|r| r.contains("controller"))
    {
        return Err(CliError::usage(format!(
            "{PROCESS_ROLES} did not contain 'controller' in configuration file. {VALID_FILE_HINT}"
        )));
    }
    Ok(id)
}

/// `metadata.log.dir`, else the first of `log.dirs`.
fn metadata_directory(props: &BTreeMap<String, String>) -> Result<PathBuf, CliError> {
    if let Some(dir) = props.get(METADATA_LOG_DIR) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(first) = props
        .get(LOG_DIRS)
        .and_then(|dirs| dirs.trim().split(',').next())
    {
        return Ok(PathBuf::from(first));
    }
    Err(CliError::usage(format!(
        "Neither {METADATA_LOG_DIR} nor {LOG_DIRS} were found. {VALID_FILE_HINT}"
    )))
}

/// The `directory.id` in the metadata directory's `meta.properties` (`kraft storage format`
/// wrote it).
fn directory_id(dir: &Path) -> Result<Uuid, CliError> {
    let shown = dir.display();
    let meta = match MetaProperties::read(dir) {
        Ok(Some(meta)) => meta,
        Ok(None) => {
            return Err(CliError::usage(format!(
                "Unable to read meta.properties from {shown}"
            )));
        }
        Err(e) => {
            return Err(CliError::usage(format!(
                "Unable to read meta.properties from {shown}: {e}"
            )));
        }
    };
    meta.directory_id
        .ok_or_else(|| CliError::usage(format!("No directory id found in {shown}")))
}

/// Each of `controller.listener.names`' endpoint: from `advertised.listeners`, else from
/// `listeners` (an empty host is localhost, as Kafka reads it).
pub(super) fn controller_endpoints(
    props: &BTreeMap<String, String>,
) -> Result<Vec<(String, Endpoint)>, CliError> {
    let mut known: BTreeMap<String, Endpoint> = BTreeMap::new();
    for key in [LISTENERS, ADVERTISED_LISTENERS] {
        let Some(value) = props.get(key).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let listeners =
            parse_listeners(value).map_err(|e| CliError::usage(format!("{key}: {e}")))?;
        for l in listeners {
            known.insert(l.name, l.endpoint);
        }
    }
    let Some(names) = props.get(CONTROLLER_LISTENER_NAMES) else {
        return Err(CliError::usage(format!(
            "{CONTROLLER_LISTENER_NAMES} was not found. {VALID_FILE_HINT}"
        )));
    };
    let mut out: Vec<(String, Endpoint)> = Vec::new();
    for name in split_list(names) {
        let name = name.to_ascii_uppercase();
        let Some(endpoint) = known.get(&name) else {
            return Err(CliError::usage(format!(
                "Cannot find information about controller listener name: {name}"
            )));
        };
        let mut endpoint = endpoint.clone();
        if endpoint.host.is_empty() {
            endpoint.host = "localhost".into();
        }
        if !out.iter().any(|(n, _)| *n == name) {
            out.push((name, endpoint));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn formatted(dir: &Path, id: &str) -> Uuid {
        let directory_id: Uuid = id.parse().unwrap();
        let meta = MetaProperties {
            cluster_id: "MkU3OEVBNTcwNTJENDM2Qg".into(),
            node_id: crate::types::NodeId(5),
            directory_id: Some(directory_id),
        };
        meta.write(dir).unwrap();
        directory_id
    }

    #[test]
    fn a_controllers_properties_name_its_id_directory_and_advertised_endpoints() {
        let dir = tempfile::tempdir().unwrap();
        let directory_id = formatted(dir.path(), "_KWDkTahTVaiVVVTaugNew");
        let path = dir.path().display().to_string();
        let p = props(&[
            ("node.id", "5"),
            ("process.roles", "controller"),
            ("log.dirs", &format!("{path},/elsewhere")),
            (
                "listeners",
                "CONTROLLER://:9093,CONTROLLER2://0.0.0.0:9094,PLAINTEXT://:9092",
            ),
            (
                "advertised.listeners",
                "CONTROLLER2://[::1]:19094,PLAINTEXT://b:9092",
            ),
            ("controller.listener.names", "CONTROLLER,controller2"),
        ]);
        let voter = new_voter(&p).unwrap();
        assert_eq!(voter.id, 5);
        assert_eq!(voter.directory_id, directory_id);
        assert_eq!(
            added_line(&voter, false),
            "Added controller 5 with directory id _KWDkTahTVaiVVVTaugNew and endpoints: \
             CONTROLLER://localhost:9093, CONTROLLER2://[::1]:19094"
        );
        assert_eq!(
            added_line(&voter, true),
            "DRY RUN of adding controller 5 with directory id _KWDkTahTVaiVVVTaugNew and \
             endpoints: CONTROLLER://localhost:9093, CONTROLLER2://[::1]:19094"
        );
    }

    #[test]
    fn kafkas_messages_for_a_file_that_is_not_a_controllers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().display().to_string();
        let message = |pairs: &[(&str, &str)]| new_voter(&props(pairs)).unwrap_err().message;
        assert_eq!(
            message(&[("process.roles", "controller")]),
            "node.id not found in configuration file. Is this a valid controller configuration file?"
        );
        assert_eq!(
            message(&[("node.id", "-1"), ("process.roles", "controller")]),
            "node.id was negative in configuration file. Is this a valid controller configuration file?"
        );
        assert_eq!(
            message(&[("node.id", "1"), ("process.roles", "broker")]),
            "process.roles did not contain 'controller' in configuration file. Is this a valid controller configuration file?"
        );
        assert_eq!(
            message(&[("node.id", "1"), ("process.roles", "controller")]),
            "Neither metadata.log.dir nor log.dirs were found. Is this a valid controller configuration file?"
        );
        let base = [
            ("node.id", "1"),
            ("process.roles", "broker,controller"),
            ("metadata.log.dir", path.as_str()),
        ];
        assert_eq!(
            message(&base),
            format!("Unable to read meta.properties from {path}")
        );
        formatted(dir.path(), "_KWDkTahTVaiVVVTaugNew");
        assert_eq!(
            message(&base),
            "controller.listener.names was not found. Is this a valid controller configuration file?"
        );
        let mut pairs = base.to_vec();
        pairs.extend([
            ("controller.listener.names", "CONTROLLER"),
            ("listeners", "PLAINTEXT://:9092"),
        ]);
        assert_eq!(
            message(&pairs),
            "Cannot find information about controller listener name: CONTROLLER"
        );
    }

    #[test]
    fn removal_arguments_and_lines_are_kafkas() {
        assert_eq!(
            removed_voter(-1, "_KWDkTahTVaiVVVTaugNew")
                .unwrap_err()
                .message,
            "Invalid negative --controller-id: -1"
        );
        let bad = removed_voter(2, "nope").unwrap_err().message;
        assert!(
            bad.starts_with("Failed to parse --controller-directory-id: "),
            "{bad}"
        );
        let id = removed_voter(2, "_KWDkTahTVaiVVVTaugNew").unwrap();
        assert_eq!(
            removed_line(2, id, true),
            "DRY RUN of removing  KRaft controller 2 with directory id _KWDkTahTVaiVVVTaugNew"
        );
        assert_eq!(
            removed_line(2, id, false),
            "Removed  KRaft controller 2 with directory id _KWDkTahTVaiVVVTaugNew"
        );
    }
}
