//! ACLs with librdkafka and `shoal acl`: an ACL matrix over SASL/SCRAM principals
//! (operations x allowed / denied, LITERAL and PREFIXED patterns, DENY over ALLOW, WRITE
//! implying DESCRIBE, `super.users`), Metadata hiding topics a principal may not describe,
//! Kafka's errors (TOPIC_/GROUP_/CLUSTER_AUTHORIZATION_FAILED), ACLs kept across a restart, and
//! SECURITY_DISABLED without an authorizer.

mod common;

use std::time::Duration;

use common::Shoal;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, TopicPartitionList};

const AUTHORIZER: &str =
    "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer";

fn cli(broker: &Shoal, as_user: Option<&str>, args: &[&str]) -> (bool, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_shoal"));
    cmd.args(args);
    match as_user {
        Some(u) => {
            cmd.args(["--bootstrap-server", broker.listener("SASL_PLAINTEXT")])
                .args(["--sasl-mechanism", "SCRAM-SHA-256", "--sasl-username", u])
                .args(["--sasl-password", &format!("{u}-pw")]);
        }
        None => {
            cmd.args(["--bootstrap-server", &broker.addr]);
        }
    }
    let out = cmd.output().expect("run shoal");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn start(dir: &std::path::Path, addr: &str, authorizer: bool) -> Shoal {
    let mut sets = vec![
        "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        "connection.failed.authentication.delay.ms=0",
    ];
    if authorizer {
        sets.extend([AUTHORIZER, "super.users=User:admin"]);
    }
    let mut b = Shoal::start_on(dir, addr, &sets);
    b.allowed_errors.push("authoriz");
    b
}

fn client(broker: &Shoal, user: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", broker.listener("SASL_PLAINTEXT"))
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanism", "SCRAM-SHA-256")
        .set("sasl.username", user)
        .set("sasl.password", format!("{user}-pw"))
        .set("message.timeout.ms", "5000")
        .set("allow.auto.create.topics", "false");
    c
}

fn produce(broker: &Shoal, user: &str, topic: &str) -> Result<(), RDKafkaErrorCode> {
    let p: FutureProducer = client(broker, user).create().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(p.send(
        FutureRecord::to(topic).key("k").payload("v"),
        Duration::from_secs(6),
    ))
    .map(|_| ())
    .map_err(|(e, _)| e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail))
}

/// Consumes the first record of partition 0 as `user` in `group` (committing it), or the
/// error librdkafka reports.
fn consume(
    broker: &Shoal,
    user: &str,
    topic: &str,
    group: &str,
) -> Result<String, RDKafkaErrorCode> {
    let mut cfg = client(broker, user);
    cfg.set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    let c: BaseConsumer = cfg.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    c.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                return match c.commit_message(&m, rdkafka::consumer::CommitMode::Sync) {
                    Ok(()) => Ok(v),
                    Err(e) => Err(e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail)),
                };
            }
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => return Err(e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail)),
        }
    }
    Err(RDKafkaErrorCode::RequestTimedOut)
}

/// A per-name admin result as (name, Ok or the error code).
fn outcome(
    r: Result<String, (String, RDKafkaErrorCode)>,
) -> (String, Result<(), RDKafkaErrorCode>) {
    match r {
        Ok(name) => (name, Ok(())),
        Err((name, e)) => (name, Err(e)),
    }
}

fn visible_topics(broker: &Shoal, user: &str) -> Vec<String> {
    let c: BaseConsumer = client(broker, user).create().unwrap();
    let md = c
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    let mut names: Vec<String> = md.topics().iter().map(|t| t.name().to_string()).collect();
    names.sort();
    names
}

#[test]
fn acl_matrix_with_librdkafka_and_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Users first (no authorizer yet), then the broker restarts with ACLs on.
    let broker = start(&data, "127.0.0.1:0", false);
    for u in ["admin", "alice", "bob"] {
        let (ok, out) = cli(
            &broker,
            None,
            &["user", "create", u, "--password", &format!("{u}-pw")],
        );
        assert!(ok, "{out}");
    }
    let (ok, out) = cli(&broker, None, &["acl", "list"]);
    assert!(!ok && out.contains("SecurityDisabled"), "{out}");
    let addr = broker.addr.clone();
    drop(broker);
    let broker = start(&data, &addr, true);

    // The super user creates topics and grants.
    for t in ["orders", "logs-app", "logs-secret"] {
        let (ok, out) = cli(&broker, Some("admin"), &["topic", "create", t]);
        assert!(ok, "{out}");
    }
    let grant = |args: &[&str]| {
        let mut a = vec!["acl", "add"];
        a.extend_from_slice(args);
        let (ok, out) = cli(&broker, Some("admin"), &a);
        assert!(ok, "{args:?}: {out}");
    };
    grant(&[
        "--principal",
        "User:alice",
        "--operation",
        "write",
        "--topic",
        "orders",
    ]);
    grant(&[
        "--principal",
        "User:*",
        "--operation",
        "read",
        "--topic",
        "logs-",
        "--pattern-type",
        "prefixed",
    ]);
    grant(&[
        "--principal",
        "User:bob",
        "--deny",
        "--operation",
        "read",
        "--topic",
        "logs-secret",
    ]);
    grant(&[
        "--principal",
        "User:alice",
        "--operation",
        "read",
        "--group",
        "g1",
    ]);
    grant(&[
        "--principal",
        "User:bob",
        "--operation",
        "read",
        "--group",
        "g-bob",
    ]);
    for t in ["logs-app", "logs-secret"] {
        assert_eq!(
            produce(&broker, "admin", t),
            Ok(()),
            "super user writes {t}"
        );
    }

    // WRITE: allowed for alice on orders, denied for bob (no ACL) and alice elsewhere.
    assert_eq!(produce(&broker, "alice", "orders"), Ok(()));
    assert_eq!(
        produce(&broker, "bob", "orders"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    assert_eq!(
        produce(&broker, "alice", "logs-app"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    // READ: the PREFIXED User:* grant, with the group's READ.
    assert_eq!(
        consume(&broker, "alice", "logs-app", "g1").as_deref(),
        Ok("v")
    );
    assert_eq!(
        consume(&broker, "bob", "logs-app", "g-bob").as_deref(),
        Ok("v")
    );
    // DENY beats ALLOW; no READ on the group; WRITE does not give READ.
    assert_eq!(
        consume(&broker, "bob", "logs-secret", "g-bob"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    assert_eq!(
        consume(&broker, "alice", "logs-app", "g2"),
        Err(RDKafkaErrorCode::GroupAuthorizationFailed)
    );
    assert_eq!(
        consume(&broker, "alice", "orders", "g1"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    // DESCRIBE: implied by WRITE/READ; Metadata shows only what each may describe.
    assert_eq!(
        visible_topics(&broker, "alice"),
        ["logs-app", "logs-secret", "orders"]
    );
    assert_eq!(visible_topics(&broker, "bob"), ["logs-app", "logs-secret"]);
    assert!(visible_topics(&broker, "admin").contains(&"__consumer_offsets".to_string()));
    // CREATE and cluster operations: only the super user.
    let (ok, out) = cli(&broker, Some("alice"), &["topic", "create", "alice-topic"]);
    assert!(!ok && out.contains("TopicAuthorizationFailed"), "{out}");
    let (ok, out) = cli(&broker, Some("alice"), &["acl", "list"]);
    assert!(!ok && out.contains("ClusterAuthorizationFailed"), "{out}");
    let (ok, out) = cli(
        &broker,
        Some("alice"),
        &["user", "create", "eve", "--password", "x"],
    );
    assert!(!ok && out.contains("ClusterAuthorizationFailed"), "{out}");
    // An anonymous PLAINTEXT client is nobody: it sees nothing and writes nothing.
    let (ok, out) = cli(&broker, None, &["topic", "list"]);
    assert!(ok && !out.contains("orders"), "{out}");

    // The ACLs as the CLI lists them, and kept across a restart.
    let (ok, out) = cli(&broker, Some("admin"), &["acl", "list", "--output", "json"]);
    assert!(ok, "{out}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 5, "{out}");
    assert!(
        out.contains("\"PREFIXED\"") && out.contains("\"DENY\""),
        "{out}"
    );
    drop(broker);
    let broker = start(&data, &addr, true);
    let (ok, out) = cli(
        &broker,
        Some("admin"),
        &[
            "acl",
            "remove",
            "--principal",
            "User:alice",
            "--topic",
            "orders",
        ],
    );
    assert!(ok && out.contains("Removed 1"), "{out}");
    assert_eq!(
        produce(&broker, "alice", "orders"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    // g1 committed past the first record: a second one is read after the restart.
    assert_eq!(produce(&broker, "admin", "logs-app"), Ok(()));
    assert_eq!(
        consume(&broker, "alice", "logs-app", "g1").as_deref(),
        Ok("v"),
        "after restart"
    );
}

/// Group APIs checked per group, as Kafka does (no ALTER on the cluster needed): ListGroups
/// shows only the groups a principal may DESCRIBE, DescribeGroups refuses the others, and
/// DeleteGroups deletes only those it may DELETE (GROUP_AUTHORIZATION_FAILED for the rest);
/// DescribeConfigs, AlterConfigs and CreatePartitions per topic (TOPIC_AUTHORIZATION_FAILED).
#[test]
fn group_and_topic_admin_apis_follow_per_resource_acls() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let broker = start(&data, "127.0.0.1:0", false);
    for u in ["admin", "carol"] {
        let (ok, out) = cli(
            &broker,
            None,
            &["user", "create", u, "--password", &format!("{u}-pw")],
        );
        assert!(ok, "{out}");
    }
    let addr = broker.addr.clone();
    drop(broker);
    let broker = start(&data, &addr, true);
    let (ok, out) = cli(&broker, Some("admin"), &["topic", "create", "events"]);
    assert!(ok, "{out}");
    assert_eq!(produce(&broker, "admin", "events"), Ok(()));
    for g in ["team-a", "team-b", "team-c"] {
        assert_eq!(consume(&broker, "admin", "events", g).as_deref(), Ok("v"));
    }
    for (op, group) in [
        ("describe", "team-a"),
        ("describe", "team-b"),
        ("delete", "team-b"),
    ] {
        let (ok, out) = cli(
            &broker,
            Some("admin"),
            &[
                "acl",
                "add",
                "--principal",
                "User:carol",
                "--operation",
                op,
                "--group",
                group,
            ],
        );
        assert!(ok, "{out}");
    }
    let carol: BaseConsumer = client(&broker, "carol").create().unwrap();
    let listed = carol
        .fetch_group_list(None, Duration::from_secs(10))
        .expect("ListGroups and DescribeGroups as carol");
    let mut names: Vec<&str> = listed.groups().iter().map(|g| g.name()).collect();
    names.sort();
    assert_eq!(
        names,
        ["team-a", "team-b"],
        "carol sees the groups she may describe"
    );
    let one = carol
        .fetch_group_list(Some("team-c"), Duration::from_secs(10))
        .expect("DescribeGroups of a group carol may not describe");
    assert!(
        one.groups()
            .iter()
            .all(|g| g.name() != "team-c" || g.state().is_empty()),
        "team-c is not described to carol"
    );

    let admin: AdminClient<DefaultClientContext> = client(&broker, "carol").create().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = rt
        .block_on(admin.delete_groups(&["team-a", "team-b"], &AdminOptions::new()))
        .expect("DeleteGroups as carol");
    let by_group: std::collections::BTreeMap<String, Result<(), RDKafkaErrorCode>> =
        results.into_iter().map(outcome).collect();
    assert_eq!(
        by_group.get("team-a"),
        Some(&Err(RDKafkaErrorCode::GroupAuthorizationFailed))
    );
    assert_eq!(by_group.get("team-b"), Some(&Ok(())));
    let (ok, out) = cli(&broker, Some("admin"), &["group", "list"]);
    assert!(
        ok && out.contains("team-a") && !out.contains("team-b"),
        "{out}"
    );

    // Topic configs and partitions, per topic: DESCRIBE_CONFIGS, ALTER_CONFIGS, ALTER.
    let (ok, out) = cli(&broker, Some("admin"), &["topic", "create", "other"]);
    assert!(ok, "{out}");
    for op in ["describe-configs", "alter-configs", "alter"] {
        let (ok, out) = cli(
            &broker,
            Some("admin"),
            &[
                "acl",
                "add",
                "--principal",
                "User:carol",
                "--operation",
                op,
                "--topic",
                "events",
            ],
        );
        assert!(ok, "{out}");
    }
    use rdkafka::admin::{AlterConfig, NewPartitions, ResourceSpecifier};
    let opts = AdminOptions::new();
    let described = rt
        .block_on(admin.describe_configs(
            &[
                ResourceSpecifier::Topic("events"),
                ResourceSpecifier::Topic("other"),
            ],
            &opts,
        ))
        .expect("DescribeConfigs as carol");
    // rust-rdkafka drops a described resource's error: a refused one comes back empty.
    let entries: std::collections::BTreeMap<String, usize> = described
        .into_iter()
        .map(|r| {
            let c = r.expect("a described resource");
            (format!("{:?}", c.specifier), c.entries.len())
        })
        .collect();
    assert!(entries["Topic(\"events\")"] > 0, "{entries:?}");
    assert_eq!(entries["Topic(\"other\")"], 0, "{entries:?}");
    let altered = rt
        .block_on(admin.alter_configs(
            &[
                AlterConfig::new(ResourceSpecifier::Topic("events")).set("retention.ms", "60000"),
                AlterConfig::new(ResourceSpecifier::Topic("other")).set("retention.ms", "60000"),
            ],
            &opts,
        ))
        .expect("AlterConfigs as carol");
    // Likewise for AlterConfigs: the super user sees which topic changed.
    let _ = altered;
    let root: AdminClient<DefaultClientContext> = client(&broker, "admin").create().unwrap();
    let retention = |topic: &str| -> Option<String> {
        let got = rt
            .block_on(root.describe_configs(&[ResourceSpecifier::Topic(topic)], &opts))
            .expect("DescribeConfigs as admin");
        got.into_iter()
            .next()?
            .ok()?
            .entries
            .into_iter()
            .find(|e| e.name == "retention.ms")?
            .value
    };
    assert_eq!(retention("events").as_deref(), Some("60000"));
    assert_ne!(retention("other").as_deref(), Some("60000"));
    let grown = rt
        .block_on(admin.create_partitions(
            &[
                NewPartitions::new("events", 2),
                NewPartitions::new("other", 2),
            ],
            &opts,
        ))
        .expect("CreatePartitions as carol");
    let grown: std::collections::BTreeMap<String, Result<(), RDKafkaErrorCode>> =
        grown.into_iter().map(outcome).collect();
    assert_eq!(grown.get("events"), Some(&Ok(())));
    assert_eq!(
        grown.get("other"),
        Some(&Err(RDKafkaErrorCode::TopicAuthorizationFailed))
    );
}
