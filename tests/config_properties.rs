//! Configuration: the shipped files and the seed documents' older files load; layering
//! defaults < file < KRAFT_* environment < --override; every invalid value is one error naming
//! where it came from, the key, the value and what was expected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kraft::config::{ConfigError, LoadedConfig, NodeConfig};
use kraft::types::NodeId;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    NodeConfig::load(path, &BTreeMap::new(), &[])
}

/// Writes `text` to a temporary `.properties` file.
fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.properties");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

const VALID: &str = "node.id=1\nlisteners=PLAINTEXT://localhost:9092\n\
                     controller.listener.names=PLAINTEXT\n\
                     controller.quorum.voters=1@localhost:9092,2@localhost:9093,3@localhost:9094\n\
                     log.dirs=/tmp/kraft-logs-1\n";

#[test]
fn the_single_voter_config_loads() {
    let loaded = load(&repo("config/kraft.properties")).unwrap();
    let c = &loaded.config;
    assert_eq!(c.node_id, NodeId(0));
    assert!(c.is_voter());
    assert_eq!(c.voters.ids().collect::<Vec<_>>(), vec![NodeId(0)]);
    assert_eq!(
        c.controller_listener().endpoint.to_string(),
        "localhost:9092"
    );
    assert_eq!(c.metadata_log_dir, PathBuf::from("/tmp/kraft-logs"));
    assert_eq!(loaded.warnings, vec![]);
}

#[test]
fn the_three_quorum_configs_load_as_the_seed_readme_writes_them() {
    for i in 1..=3 {
        let path = repo(&format!("config/kraft-quorum-{i}.properties"));
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = format!(
            "node.id={i}\nlisteners=PLAINTEXT://localhost:{}\ncontroller.listener.names=PLAINTEXT\n\
             controller.quorum.voters=1@localhost:9092,2@localhost:9093,3@localhost:9094\n\
             log.dirs=/tmp/kraft-logs-{i}\n",
            9091 + i
        );
        assert_eq!(text, expected);
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.warnings, vec![]);
        let c = loaded.config;
        assert_eq!(c.node_id, NodeId(i));
        assert_eq!(c.voters.0.len(), 3);
        assert_eq!(c.voters.0[&NodeId(i)].port, 9091 + i as u16);
        assert_eq!(c.controller_listener().endpoint.port, 9091 + i as u16);
        assert_eq!(
            c.log_dirs,
            vec![PathBuf::from(format!("/tmp/kraft-logs-{i}"))]
        );
    }
}

/// The older seed README's files (Kafka's raft module before the KRaft renaming), byte for byte.
fn old_seed_quorum_file(i: i32) -> String {
    format!(
        "broker.id={i}\nlisteners=PLAINTEXT://localhost:{}\n\
         quorum.voters=1@localhost:9092,2@localhost:9093,3@localhost:9094\n\
         log.dirs=/tmp/raft-logs-{i}\n\nzookeeper.connect=localhost:2181\n",
        9091 + i
    )
}

/// Each warning's text.
fn warning_texts(loaded: &LoadedConfig) -> Vec<String> {
    loaded.warnings.iter().map(ToString::to_string).collect()
}

#[test]
fn the_older_seed_quorum_configs_load_as_its_readme_writes_them() {
    for i in 1..=3 {
        let path = repo(&format!("config/raft-quorum-{i}.properties"));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            old_seed_quorum_file(i)
        );
        let loaded = load(&path).unwrap();
        let c = &loaded.config;
        assert_eq!(c.node_id, NodeId(i));
        assert!(c.is_voter());
        let voters: Vec<String> = c
            .voters
            .0
            .iter()
            .map(|(id, e)| format!("{}@{e}", id.0))
            .collect();
        assert_eq!(
            voters,
            ["1@localhost:9092", "2@localhost:9093", "3@localhost:9094"]
        );
        // No controller.listener.names in these files: the one listener is the quorum's.
        assert_eq!(c.controller_listener_names, vec!["PLAINTEXT".to_string()]);
        assert_eq!(
            c.controller_listener().endpoint.to_string(),
            format!("localhost:{}", 9091 + i)
        );
        assert_eq!(
            c.log_dirs,
            vec![PathBuf::from(format!("/tmp/raft-logs-{i}"))]
        );
        assert_eq!(
            c.metadata_log_dir,
            PathBuf::from(format!("/tmp/raft-logs-{i}"))
        );
        assert_eq!(c.process_roles, vec!["controller".to_string()]);
        let keys: Vec<&str> = loaded.warnings.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(
            keys,
            ["broker.id", "quorum.voters", "zookeeper.connect"],
            "{:?}",
            loaded.warnings
        );
        let text = warning_texts(&loaded);
        assert!(
            text[0].contains("'broker.id' is deprecated: use 'node.id'"),
            "{text:?}"
        );
        assert!(
            text[1].contains("'quorum.voters' is deprecated: use 'controller.quorum.voters'"),
            "{text:?}"
        );
        assert!(
            text[2].contains("'zookeeper.connect' is unused"),
            "{text:?}"
        );
    }
}

#[test]
fn the_older_seed_single_node_config_loads() {
    let path = repo("config/raft.properties");
    let text = std::fs::read_to_string(&path).unwrap();
    for line in [
        "broker.id=0\n",
        "listeners=PLAINTEXT://localhost:9092\n",
        "quorum.voters=0@localhost:9092\n",
        "log.dirs=/tmp/raft-logs\n",
        "zookeeper.connect=localhost:2181\n",
    ] {
        assert!(text.contains(line), "no {line:?} in {text}");
    }
    let loaded = load(&path).unwrap();
    let c = &loaded.config;
    assert_eq!(c.node_id, NodeId(0));
    assert_eq!(c.voters.ids().collect::<Vec<_>>(), vec![NodeId(0)]);
    assert_eq!(c.voters.0[&NodeId(0)].to_string(), "localhost:9092");
    assert_eq!(
        c.controller_listener().endpoint.to_string(),
        "localhost:9092"
    );
    assert_eq!(c.log_dirs, vec![PathBuf::from("/tmp/raft-logs")]);
    let zookeeper: Vec<String> = warning_texts(&loaded)
        .into_iter()
        .filter(|w| w.contains("zookeeper.connect"))
        .collect();
    assert_eq!(zookeeper.len(), 1, "{zookeeper:?}");
    assert!(
        zookeeper[0].contains("unused") && zookeeper[0].contains("raft.properties"),
        "{zookeeper:?}"
    );
}

#[test]
fn conflicting_old_and_new_names_are_an_error() {
    let (_d, path) = file(&format!("{VALID}broker.id=2\n"));
    let err = load(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&path.display().to_string())
            && err.contains("'broker.id'")
            && err.contains("'node.id'")
            && err.contains("'2'"),
        "{err}"
    );
    let (_d, path) = file(&format!("{VALID}quorum.voters=1@localhost:9092\n"));
    let err = load(&path).unwrap_err().to_string();
    assert!(
        err.contains("'quorum.voters'") && err.contains("'controller.quorum.voters'"),
        "{err}"
    );
    assert!(!err.contains('\n'), "one line: {err}");
}

#[test]
fn old_and_new_names_with_the_same_value_load() {
    let (_d, path) = file(&format!(
        "{VALID}broker.id=1\nquorum.voters=1@localhost:9092,2@localhost:9093,3@localhost:9094\n"
    ));
    let loaded = load(&path).unwrap();
    assert_eq!(loaded.config.node_id, NodeId(1));
    assert_eq!(loaded.config.voters.0.len(), 3);
}

#[test]
fn zookeeper_connect_is_accepted_and_ignored() {
    let (_d, path) = file(&format!(
        "{VALID}zookeeper.connect=zk1:2181,zk2:2181/kafka\n"
    ));
    let loaded = load(&path).unwrap();
    let (_d, plain) = file(VALID);
    let without = load(&plain).unwrap();
    // Nothing but the source differs: the key changes no setting.
    assert_eq!(
        NodeConfig {
            source: plain.clone(),
            ..loaded.config.clone()
        },
        without.config
    );
    assert_eq!(
        warning_texts(&loaded),
        vec![format!(
            "'zookeeper.connect' is unused and ignored: it is a ZooKeeper setting and kraft runs without ZooKeeper ({})",
            path.display()
        )]
    );
}

#[test]
fn without_controller_listener_names_several_listeners_are_ambiguous() {
    let (_d, path) = file(
        "node.id=1\nlisteners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093\n\
         controller.quorum.voters=1@localhost:9093\n",
    );
    let err = load(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&path.display().to_string())
            && err.contains("missing 'controller.listener.names'")
            && err.contains("PLAINTEXT, CONTROLLER"),
        "{err}"
    );
    // Naming one settles it.
    let (_d, path) = file(
        "node.id=1\nlisteners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093\n\
         controller.listener.names=CONTROLLER\ncontroller.quorum.voters=1@localhost:9093\n",
    );
    let c = load(&path).unwrap().config;
    assert_eq!(c.controller_listener().endpoint.port, 9093);
}

#[test]
fn defaults_are_kafkas() {
    let c = load(&repo("config/kraft-quorum-1.properties"))
        .unwrap()
        .config;
    assert_eq!(c.quorum.election_timeout, Duration::from_millis(1000));
    assert_eq!(c.quorum.fetch_timeout, Duration::from_millis(2000));
    assert_eq!(c.quorum.election_backoff_max, Duration::from_millis(1000));
    // Unset: kraft's adaptive group commit, not Kafka's fixed 25 ms linger.
    assert_eq!(c.quorum.append_linger, None);
    assert_eq!(c.quorum.request_timeout, Duration::from_millis(2000));
    assert_eq!(c.quorum.retry_backoff, Duration::from_millis(20));
    assert!(!c.auto_join);
    assert_eq!(c.metadata_log.segment_bytes, 1 << 30);
    assert_eq!(c.metadata_log.max_record_bytes_between_snapshots, 20 << 20);
    assert_eq!(
        c.metadata_log.max_snapshot_interval,
        Some(Duration::from_secs(3600))
    );
    assert_eq!(c.metadata_log.max_retention_bytes, Some(100 << 20));
    assert_eq!(
        c.metadata_log.max_retention,
        Some(Duration::from_secs(7 * 24 * 3600))
    );
    assert_eq!(c.process_roles, vec!["controller".to_string()]);
    assert!(c.bootstrap_servers.is_empty());
}

#[test]
fn every_documented_key_is_read() {
    let (_d, path) = file(&format!(
        "{VALID}metadata.log.dir=/tmp/meta\ncontroller.quorum.election.timeout.ms=150\n\
         controller.quorum.fetch.timeout.ms=300\ncontroller.quorum.election.backoff.max.ms=50\n\
         controller.quorum.append.linger.ms=0\ncontroller.quorum.request.timeout.ms=400\n\
         controller.quorum.retry.backoff.ms=5\ncontroller.quorum.auto.join.enable=TRUE\n\
         controller.quorum.bootstrap.servers=localhost:9092,[::1]:9093\n\
         metadata.log.segment.min.bytes=1024\nmetadata.log.segment.bytes=4096\n\
         metadata.log.max.record.bytes.between.snapshots=1000\n\
         metadata.log.max.snapshot.interval.ms=0\nmetadata.max.retention.bytes=-1\n\
         metadata.max.retention.ms=-1\nprocess.roles=broker,controller\n"
    ));
    let loaded = load(&path).unwrap();
    assert_eq!(loaded.warnings, vec![]);
    let c = loaded.config;
    assert_eq!(c.metadata_log_dir, PathBuf::from("/tmp/meta"));
    assert_eq!(
        c.all_log_dirs(),
        vec![
            PathBuf::from("/tmp/kraft-logs-1"),
            PathBuf::from("/tmp/meta")
        ]
    );
    assert_eq!(c.quorum.election_timeout, Duration::from_millis(150));
    assert_eq!(c.quorum.fetch_timeout, Duration::from_millis(300));
    assert_eq!(c.quorum.election_backoff_max, Duration::from_millis(50));
    assert_eq!(c.quorum.append_linger, Some(Duration::ZERO));
    assert_eq!(c.quorum.request_timeout, Duration::from_millis(400));
    assert_eq!(c.quorum.retry_backoff, Duration::from_millis(5));
    assert!(c.auto_join);
    assert_eq!(c.bootstrap_servers.len(), 2);
    assert_eq!(c.metadata_log.segment_bytes, 4096);
    assert_eq!(c.metadata_log.max_record_bytes_between_snapshots, 1000);
    assert_eq!(c.metadata_log.max_snapshot_interval, None);
    assert_eq!(c.metadata_log.max_retention_bytes, None);
    assert_eq!(c.metadata_log.max_retention, None);
    assert_eq!(
        c.process_roles,
        vec!["broker".to_string(), "controller".to_string()]
    );
}

#[test]
fn layering_is_file_then_environment_then_overrides() {
    let (_d, path) = file(VALID);
    let env: BTreeMap<String, String> = [
        ("KRAFT_NODE_ID", "2"),
        ("KRAFT_CONTROLLER_QUORUM_FETCH_TIMEOUT_MS", "500"),
        ("KRAFT_TEST_SEED", "not a config key, left alone"),
        ("PATH", "/usr/bin"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let loaded = NodeConfig::load(&path, &env, &[]).unwrap();
    assert_eq!(loaded.config.node_id, NodeId(2));
    assert_eq!(
        loaded.config.quorum.fetch_timeout,
        Duration::from_millis(500)
    );
    assert_eq!(loaded.warnings, vec![]);

    let overrides = vec![
        "node.id=3".to_string(),
        "listeners=PLAINTEXT://127.0.0.1:0".to_string(),
    ];
    let c = NodeConfig::load(&path, &env, &overrides).unwrap().config;
    assert_eq!(c.node_id, NodeId(3));
    assert_eq!(c.listeners[0].endpoint.to_string(), "127.0.0.1:0");
    assert_eq!(c.quorum.fetch_timeout, Duration::from_millis(500));
}

#[test]
fn unknown_keys_are_warned_about_by_name() {
    let (_d, path) = file(&format!("{VALID}num.network.threads=3\n"));
    let overrides = vec!["made.up.key=1".to_string()];
    let loaded = NodeConfig::load(&path, &BTreeMap::new(), &overrides).unwrap();
    let text: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|w| w.contains("'num.network.threads'") && w.contains("node.properties")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|w| w.contains("'made.up.key'") && w.contains("--override")),
        "{text:?}"
    );
}

/// Replaces (or adds) `key` in the valid config and returns the load error's text.
fn error_with(key: &str, value: &str) -> (String, PathBuf) {
    let mut text: String = VALID
        .lines()
        .filter(|l| !l.starts_with(&format!("{key}=")))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(&format!("{key}={value}\n"));
    let (dir, path) = file(&text);
    let err = load(&path).unwrap_err().to_string();
    drop(dir);
    (err, path)
}

#[test]
fn invalid_values_name_the_file_key_value_and_expectation() {
    let cases = [
        (
            "controller.quorum.voters",
            "1@localhost",
            "'1@localhost': no port",
        ),
        (
            "controller.quorum.voters",
            "1@localhost:9092,1@localhost:9093",
            "voter id 1 appears twice",
        ),
        (
            "controller.listener.names",
            "CONTROLLER",
            "CONTROLLER is not",
        ),
        (
            "controller.quorum.election.timeout.ms",
            "-5",
            "an integer >= 0",
        ),
        (
            "controller.quorum.request.timeout.ms",
            "0",
            "an integer >= 1",
        ),
        ("node.id", "one", "an integer >= 0"),
        ("node.id", "-1", "an integer >= 0"),
        ("log.dirs", ",", "at least one directory"),
        ("listeners", "localhost:9092", "NAME://host:port"),
        (
            "metadata.log.segment.bytes",
            "1024",
            "an integer >= 8388608",
        ),
        ("metadata.max.retention.bytes", "-2", "-1 for no limit"),
        ("controller.quorum.auto.join.enable", "yes", "true or false"),
        ("process.roles", "zookeeper", "'broker' and 'controller'"),
        ("controller.quorum.bootstrap.servers", "nohost", "host:port"),
    ];
    for (key, value, expected) in cases {
        let (err, path) = error_with(key, value);
        assert!(!err.contains('\n'), "one line: {err}");
        assert!(
            err.starts_with(&path.display().to_string()),
            "{key}: no file in: {err}"
        );
        assert!(err.contains(&format!("'{key}'")), "{key}: no key in: {err}");
        assert!(
            err.contains(&format!("'{value}'")),
            "{key}: no value in: {err}"
        );
        assert!(
            err.contains(expected),
            "{key}: expected '{expected}' in: {err}"
        );
    }
}

#[test]
fn missing_required_keys_are_named() {
    for (key, line) in [
        ("node.id", "node.id=1"),
        ("listeners", "listeners=PLAINTEXT://localhost:9092"),
    ] {
        let text = VALID.replace(&format!("{line}\n"), "");
        let (_d, path) = file(&text);
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.contains(&format!("missing '{key}'")) && err.contains("node.properties"),
            "{err}"
        );
    }
    let text = VALID.replace(
        "controller.quorum.voters=1@localhost:9092,2@localhost:9093,3@localhost:9094\n",
        "",
    );
    let (_d, path) = file(&text);
    let err = load(&path).unwrap_err().to_string();
    assert!(err.contains("controller.quorum.bootstrap.servers"), "{err}");
}

#[test]
fn errors_from_the_environment_and_overrides_say_so() {
    let (_d, path) = file(VALID);
    let env = BTreeMap::from([("KRAFT_NODE_ID".to_string(), "abc".to_string())]);
    let err = NodeConfig::load(&path, &env, &[]).unwrap_err().to_string();
    assert!(
        err.starts_with("environment variable KRAFT_NODE_ID: invalid value 'abc' for 'node.id'"),
        "{err}"
    );
    let err = NodeConfig::load(&path, &BTreeMap::new(), &["node.id=x".into()])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("--override: invalid value 'x' for 'node.id'"),
        "{err}"
    );
    let err = NodeConfig::load(&path, &BTreeMap::new(), &["node.id".into()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--override 'node.id': expected key=value"),
        "{err}"
    );
}

#[test]
fn unreadable_or_malformed_files_are_named() {
    let err = load(Path::new("/no/such/kraft.properties"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("/no/such/kraft.properties: cannot read config file"),
        "{err}"
    );
    let (_d, path) = file("node.id=1\nbad\\u12=1\n");
    let err = load(&path).unwrap_err().to_string();
    assert!(err.contains("node.properties"), "{err}");
}

#[test]
fn a_higher_layer_setting_the_new_name_beats_an_old_name_in_the_file() {
    let text = VALID.replace("node.id=1\n", "broker.id=1\n");
    let (_d, path) = file(&text);
    let c = NodeConfig::load(&path, &BTreeMap::new(), &["node.id=4".into()])
        .unwrap()
        .config;
    assert_eq!(c.node_id, NodeId(4));
    let env = BTreeMap::from([("KRAFT_NODE_ID".to_string(), "5".to_string())]);
    assert_eq!(
        NodeConfig::load(&path, &env, &[]).unwrap().config.node_id,
        NodeId(5)
    );
}

#[test]
fn keys_stay_flat_and_brackets_are_refused() {
    // Kafka's key space is flat: one key may be a dotted prefix of another, in any layer.
    let (_d, path) = file(&format!(
        "{VALID}node.id.extra=1\nmax.connections=10\nmax.connections.per.ip=2\n"
    ));
    let env = BTreeMap::from([("KRAFT_NODE_ID".to_string(), "2".to_string())]);
    let overrides = ["max.connections.per.ip.overrides=a:1".to_string()];
    let loaded = NodeConfig::load(&path, &env, &overrides).unwrap();
    assert_eq!(loaded.config.node_id.0, 2);
    let warned: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        warned.iter().any(|w| w.contains("'node.id.extra'")),
        "the unknown key keeps its name: {warned:?}"
    );
    let (_d, path) = file(&format!("{VALID}foo[0]=1\n"));
    assert!(load(&path).unwrap_err().to_string().contains("foo[0]"));
    let (_d, path) = file(VALID);
    let err = NodeConfig::load(&path, &BTreeMap::new(), &["foo[0]=1".into()]).unwrap_err();
    assert!(err.to_string().contains("'['"), "{err}");
}

#[test]
fn segment_bytes_below_the_minimum_is_refused_even_by_default() {
    let (_d, path) = file(&format!(
        "{VALID}metadata.log.segment.min.bytes=2000000000\n"
    ));
    let err = load(&path).unwrap_err().to_string();
    assert!(
        err.contains("'metadata.log.segment.min.bytes'") && err.contains("at most"),
        "{err}"
    );
}

#[test]
fn connection_limits_use_kafkas_names_and_defaults() {
    let (_d, path) = file(VALID);
    let c = load(&path).unwrap().config.connections;
    assert_eq!(c.max_connections_per_ip, i32::MAX as usize);
    assert_eq!(c.idle, std::time::Duration::from_secs(600));
    assert_eq!(c.handshake_timeout, std::time::Duration::from_secs(10));
    assert!(c.max_connections >= 1);
    assert_eq!(
        c.max_connections,
        kraft::config::within_descriptors(i32::MAX as u64),
        "the default is capped by the descriptor limit"
    );
    let (_d, path) = file(&format!(
        "{VALID}max.connections=7\nmax.connections.per.ip=3\nconnections.max.idle.ms=1500\nkraft.handshake.timeout.ms=250\n"
    ));
    let c = load(&path).unwrap().config.connections;
    assert_eq!(
        (c.max_connections, c.max_connections_per_ip),
        (kraft::config::within_descriptors(7), 3)
    );
    assert_eq!(c.idle, std::time::Duration::from_millis(1500));
    assert_eq!(c.handshake_timeout, std::time::Duration::from_millis(250));
    let (_d, path) = file(&format!("{VALID}max.connections=0\n"));
    let err = load(&path).unwrap_err().to_string();
    assert!(err.contains("'max.connections'"), "{err}");
}

#[test]
fn an_ssl_quorum_listener_reads_kafkas_pem_keys() {
    use kraft::config::{KeyStore, ListenerSecurity, TrustStore};
    let ssl = "listener.security.protocol.map=PLAINTEXT:SSL\nssl.keystore.type=PEM\n\
               ssl.truststore.type=pem\nssl.client.auth=REQUIRED\n";
    let (_d, path) = file(&format!(
        "{VALID}{ssl}ssl.keystore.location=/k.pem\nssl.truststore.location=/ca.pem\n"
    ));
    match load(&path).unwrap().config.security {
        ListenerSecurity::Ssl(s) => {
            assert_eq!(s.keystore, KeyStore::File("/k.pem".into()));
            assert_eq!(s.truststore, TrustStore::File("/ca.pem".into()));
            assert!(s.check_hostname, "https is the default");
        }
        other => panic!("{other:?}"),
    }
    let (_d, path) = file(&format!(
        "{VALID}{ssl}ssl.keystore.certificate.chain=-----BEGIN CERTIFICATE----- \\\n  AAAA \\\n  -----END CERTIFICATE-----\n\
         ssl.keystore.key=KEY\nssl.truststore.certificates=CAS\nssl.endpoint.identification.algorithm=\n"
    ));
    match load(&path).unwrap().config.security {
        ListenerSecurity::Ssl(s) => {
            assert!(matches!(s.keystore, KeyStore::Inline { ref key, .. } if key == "KEY"));
            assert_eq!(s.truststore, TrustStore::Inline("CAS".into()));
            assert!(!s.check_hostname, "empty turns the host name check off");
        }
        other => panic!("{other:?}"),
    }
    // Without a map, a listener not named SSL is PLAINTEXT (Kafka's KRaft rule).
    let (_d, path) = file(VALID);
    assert_eq!(
        load(&path).unwrap().config.security,
        ListenerSecurity::Plaintext
    );
    // Location and inline together, or a chain without its key, are refused by name.
    let (_d, path) = file(&format!(
        "{VALID}{ssl}ssl.keystore.location=/k.pem\nssl.keystore.key=KEY\nssl.truststore.location=/ca.pem\n"
    ));
    assert!(
        load(&path)
            .unwrap_err()
            .to_string()
            .contains("'ssl.keystore.location'")
    );
    let (_d, path) = file(&format!(
        "{VALID}{ssl}ssl.keystore.certificate.chain=C\nssl.truststore.location=/ca.pem\n"
    ));
    assert!(
        load(&path)
            .unwrap_err()
            .to_string()
            .contains("'ssl.keystore.key'")
    );
    let (_d, path) = file(&format!(
        "{VALID}{ssl}ssl.keystore.location=/k.pem\nssl.truststore.location=/ca.pem\nssl.key.password=x\n"
    ));
    assert!(
        load(&path)
            .unwrap_err()
            .to_string()
            .contains("'ssl.key.password'")
    );
}

#[test]
fn broker_rack_is_read_and_empty_means_none() {
    let (_d, path) = file(&format!("{VALID}broker.rack=us-east-1a\n"));
    let loaded = load(&path).unwrap();
    assert_eq!(loaded.config.rack.as_deref(), Some("us-east-1a"));
    assert_eq!(loaded.warnings, vec![]);
    let (_d, path) = file(&format!("{VALID}broker.rack=\n"));
    assert_eq!(load(&path).unwrap().config.rack, None);
    let (_d, path) = file(VALID);
    assert_eq!(load(&path).unwrap().config.rack, None);
}

/// A node whose quorum listener CONTROLLER is SSL beside a PLAINTEXT BROKER listener.
const TWO_LISTENERS: &str = "node.id=1\n\
                             listeners=CONTROLLER://localhost:9093,BROKER://localhost:9092\n\
                             controller.listener.names=CONTROLLER\n\
                             controller.quorum.voters=1@localhost:9093\n\
                             listener.security.protocol.map=CONTROLLER:SSL,BROKER:PLAINTEXT\n\
                             log.dirs=/tmp/kraft-logs-1\n";

/// The plain `ssl.*` keys of a valid SSL quorum listener.
const PLAIN_SSL: &str = "ssl.keystore.type=PEM\nssl.truststore.type=PEM\nssl.client.auth=required\n\
                         ssl.keystore.location=/plain/k.pem\nssl.truststore.location=/plain/ca.pem\n";

fn tls_of(loaded: LoadedConfig) -> kraft::config::TlsSettings {
    match loaded.config.security {
        kraft::config::ListenerSecurity::Ssl(s) => s,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_listener_scoped_ssl_key_wins_over_the_plain_one() {
    use kraft::config::{KeyStore, TrustStore, keys};
    let (_d, path) = file(&format!(
        "{TWO_LISTENERS}{PLAIN_SSL}\
         listener.name.controller.ssl.keystore.location=/scoped/k.pem\n\
         listener.name.controller.ssl.endpoint.identification.algorithm=\n"
    ));
    let loaded = load(&path).unwrap();
    assert_eq!(
        loaded.warnings,
        vec![],
        "a scoped key read is no unknown key"
    );
    let s = tls_of(loaded);
    assert_eq!(s.keystore, KeyStore::File("/scoped/k.pem".into()));
    assert!(!s.check_hostname, "the scoped empty algorithm wins");
    // Keys without a scoped form stay plain.
    assert_eq!(s.truststore, TrustStore::File("/plain/ca.pem".into()));
    assert_eq!(
        s.key_name(keys::SSL_KEYSTORE_LOCATION),
        "listener.name.controller.ssl.keystore.location"
    );
    assert_eq!(
        s.key_name(keys::SSL_TRUSTSTORE_LOCATION),
        "ssl.truststore.location"
    );
    // The scoped key wins even when the plain one comes from a higher layer.
    let loaded = NodeConfig::load(
        &path,
        &BTreeMap::new(),
        &["ssl.keystore.location=/override/k.pem".to_string()],
    )
    .unwrap();
    assert_eq!(
        tls_of(loaded).keystore,
        KeyStore::File("/scoped/k.pem".into())
    );
}

#[test]
fn listener_scoped_ssl_keys_alone_configure_the_quorum_listener() {
    use kraft::config::{KeyStore, TrustStore};
    let scoped = PLAIN_SSL.replace("ssl.", "listener.name.controller.ssl.");
    let inline = "listener.name.controller.ssl.keystore.certificate.chain=CHAIN\n\
                  listener.name.controller.ssl.keystore.key=KEY\n\
                  listener.name.controller.ssl.truststore.certificates=CAS\n";
    let (_d, path) = file(&format!("{TWO_LISTENERS}{scoped}"));
    let loaded = load(&path).unwrap();
    assert_eq!(loaded.warnings, vec![]);
    let s = tls_of(loaded);
    assert_eq!(s.keystore, KeyStore::File("/plain/k.pem".into()));
    assert_eq!(s.truststore, TrustStore::File("/plain/ca.pem".into()));
    assert!(s.check_hostname);
    // Inline PEM in the scoped form, too.
    let without_files: String = scoped
        .lines()
        .filter(|l| !l.contains("location"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (_d, path) = file(&format!("{TWO_LISTENERS}{without_files}{inline}"));
    let s = tls_of(load(&path).unwrap());
    assert_eq!(
        s.keystore,
        KeyStore::Inline {
            chain: "CHAIN".into(),
            key: "KEY".into()
        }
    );
    assert_eq!(s.truststore, TrustStore::Inline("CAS".into()));
    // Without any store at all, the missing key named is the plain one.
    let (_d, path) = file(&format!("{TWO_LISTENERS}{without_files}"));
    let err = load(&path).unwrap_err().to_string();
    assert!(err.contains("missing 'ssl.keystore.location'"), "{err}");
}

#[test]
fn an_error_names_the_listener_scoped_key_it_read() {
    use kraft::security::PeerTls;
    let cases = [
        (
            "listener.name.controller.ssl.client.auth=none\n",
            "'listener.name.controller.ssl.client.auth'",
        ),
        (
            "listener.name.controller.ssl.keystore.type=JKS\n",
            "'listener.name.controller.ssl.keystore.type'",
        ),
        (
            "listener.name.controller.ssl.key.password=secret\n",
            "'listener.name.controller.ssl.key.password'",
        ),
        (
            "listener.name.controller.ssl.endpoint.identification.algorithm=dns\n",
            "'listener.name.controller.ssl.endpoint.identification.algorithm'",
        ),
        // Location and inline both set: the scoped location is the one named, and the inline
        // keys are named as read.
        (
            "listener.name.controller.ssl.keystore.key=KEY\n",
            "'listener.name.controller.ssl.keystore.location'",
        ),
        (
            "listener.name.controller.ssl.truststore.certificates=CAS\n",
            "'listener.name.controller.ssl.truststore.certificates', not both",
        ),
    ];
    for (bad, named) in cases {
        let scoped_location = "listener.name.controller.ssl.keystore.location=/scoped/k.pem\n";
        let (_d, path) = file(&format!("{TWO_LISTENERS}{PLAIN_SSL}{scoped_location}{bad}"));
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains(named), "{bad}: {err}");
    }
    // A store that cannot be read at start-up is reported under the scoped key too.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let (_d, path) = file(&format!(
        "{TWO_LISTENERS}{PLAIN_SSL}listener.name.controller.ssl.keystore.location={}\n",
        missing.display()
    ));
    let err = PeerTls::load(&tls_of(load(&path).unwrap()))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("listener.name.controller.ssl.keystore.location ("),
        "{err}"
    );
}

#[test]
fn another_listeners_ssl_keys_are_ignored_with_a_warning() {
    use kraft::config::KeyStore;
    let (_d, path) = file(&format!(
        "{TWO_LISTENERS}{PLAIN_SSL}\
         listener.name.broker.ssl.keystore.location=/broker/k.pem\n\
         listener.name.broker.ssl.client.auth=none\n\
         listener.name.CONTROLLER.ssl.keystore.location=/upper/k.pem\n"
    ));
    let loaded = load(&path).unwrap();
    let warned: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(warned.len(), 3, "{warned:?}");
    assert!(
        warned.iter().any(|w| w.contains(
            "'listener.name.broker.ssl.keystore.location' is for listener 'broker', not the quorum listener CONTROLLER"
        )),
        "{warned:?}"
    );
    // Kafka spells the listener in lower case: another spelling is not the quorum listener's.
    assert!(
        warned
            .iter()
            .any(|w| w.contains("'listener.name.CONTROLLER.ssl.keystore.location'")),
        "{warned:?}"
    );
    let s = tls_of(loaded);
    assert_eq!(s.keystore, KeyStore::File("/plain/k.pem".into()));
    assert!(s.scoped_keys.is_empty(), "{:?}", s.scoped_keys);
}

#[test]
fn metrics_listener_is_off_by_default_and_takes_an_http_address() {
    let (_d, path) = file(VALID);
    assert_eq!(load(&path).unwrap().config.metrics_listener, None);
    for (value, host, port) in [
        ("http://127.0.0.1:9404", "127.0.0.1", 9404),
        ("http://[::1]:0", "::1", 0),
        ("http://metrics.local:80", "metrics.local", 80),
    ] {
        let (_d, path) = file(&format!("{VALID}metrics.listener={value}\n"));
        let loaded = load(&path).unwrap();
        let endpoint = loaded.config.metrics_listener.unwrap();
        assert_eq!((endpoint.host.as_str(), endpoint.port), (host, port));
        assert!(
            loaded.warnings.is_empty(),
            "a known key: {:?}",
            loaded.warnings
        );
    }
    // Empty is off, as unset.
    let (_d, path) = file(&format!("{VALID}metrics.listener=\n"));
    assert_eq!(load(&path).unwrap().config.metrics_listener, None);
    let (_d, path) = file(&format!("{VALID}metrics.listener=tcp://0.0.0.0:9404\n"));
    let error = load(&path).unwrap_err().to_string();
    assert_eq!(
        error,
        format!(
            "{}: invalid value 'tcp://0.0.0.0:9404' for 'metrics.listener': expected http://host:port (e.g. http://127.0.0.1:9404; port 0 picks a free one)",
            path.display()
        )
    );
}
