//! Kafka with authentication and encryption, against a real broker: `run`
//! consumes over SASL/SCRAM-SHA-512 with the password from the environment
//! and over TLS, reads zstd-compressed batches, and says plainly what is
//! wrong when the password, the CA or the broker's name is.
//!
//! tansu 0.6 checks SCRAM credentials for real (users made with `tansu user
//! create`). Its own TLS does not work in 0.6.0 (`--cert` and `--key` are in
//! one clap group, so both cannot be given, and the acceptor it builds is
//! never used), so TLS is terminated by `socat` (OpenSSL) in front of it,
//! and tansu advertises the proxy's port.

use std::path::Path;
use std::time::Duration;

use outage_testkit::{free_port, unique_name, wait_until, Tansu, TestCerts, TlsProxy};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;

mod common;

const USER: &str = "outage-radar";
const PASSWORD: &str = "s3cret-for-the-test";
const REPORTS: usize = 40;

/// A configuration reading `topic` from `brokers` with the given
/// `[kafka.properties]` (and `extra` sections), written to `dir/name`.
fn write_config(
    dir: &Path,
    name: &str,
    brokers: &str,
    topic: &str,
    properties: &[(&str, &str)],
    extra: &str,
) -> std::path::PathBuf {
    let path = dir.join(name);
    let properties: String = properties
        .iter()
        .map(|(k, v)| format!("\"{k}\" = \"{v}\"\n"))
        .collect();
    std::fs::write(
        &path,
        format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n[incidents]\ntopic = \"\"\n[state]\ntopic = \"\"\n\
             [kafka]\nbrokers = \"{brokers}\"\ntopic = \"{topic}\"\ndlq_topic = \"{topic}.dlq\"\ngroup_id = \"{}\"\n\
             [kafka.properties]\n{properties}\
             [kafka.consumer_properties]\n\"fetch.wait.max.ms\" = \"5\"\n{extra}",
            unique_name("group")
        ),
    )
    .unwrap();
    path
}

/// Waits until the radar logging to `log` has counted [`REPORTS`].
fn counts_every_report(log: &Path) -> (bool, String) {
    let counted = format!("outage_radar_reports_counted_total {REPORTS}");
    let mut metrics = String::new();
    let ok = wait_until(Duration::from_secs(60), || {
        let Some(addr) = listen_addr(log) else {
            return false;
        };
        metrics = ureq::get(&format!("http://{addr}/metrics"))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .unwrap_or_default();
        metrics.contains(&counted)
    });
    (ok, metrics)
}

/// Waits until the log of a radar holds `error`; returns whether it did
/// and the status of `/-/ready` then (0: no answer).
fn fails_with(log: &Path, error: &str) -> (bool, Option<u16>) {
    let said = wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains(error)
    });
    let ready = listen_addr(log).map(|addr| {
        ureq::get(&format!("http://{addr}/-/ready"))
            .call()
            .map(|r| r.status())
            .unwrap_or_else(|e| match e {
                ureq::Error::Status(code, _) => code,
                ureq::Error::Transport(_) => 0,
            })
    });
    (said, ready)
}

fn spawn(config: &Path, log: &Path, password: &str) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_outage-radar"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .env("RADAR_KAFKA_PASSWORD", password)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn listen_addr(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let rest = text.split("addr=").nth(1)?;
    Some(rest.split_whitespace().next()?.to_string())
}

fn stop(mut child: std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// Runs the radar on `config` (password `password`) and checks that its
/// log says `error` and that it never turns ready.
fn assert_refused(config: &Path, log: &Path, password: &str, error: &str) {
    let child = spawn(config, log, password);
    let (said, ready) = fails_with(log, error);
    stop(child);
    let text = std::fs::read_to_string(log).unwrap();
    assert!(said, "no {error:?} in the log:\n{text}");
    assert_ne!(ready, Some(200), "ready without a broker session:\n{text}");
}

/// Reports of now, produced as zstd-compressed batches through `brokers`
/// with the given client properties.
fn produce_zstd(brokers: &str, properties: &[(&str, &str)], topic: &str) {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("compression.type", "zstd")
        .set("linger.ms", "50");
    for (k, v) in properties {
        config.set(*k, *v);
    }
    let producer: ThreadedProducer<DefaultProducerContext> = config
        .create()
        .expect("a zstd producer (rdkafka built with zstd)");
    let now = outage_detect::time::wall_ms();
    for i in 0..REPORTS {
        let line = format!(
            r#"{{"service":"alexa","region":"GB","ts":{},"problem":"login","reporter":"r{i}"}}"#,
            now - 1000 + i as i64
        );
        outage_testkit::send_blocking(
            &producer,
            BaseRecord::to(topic)
                .key("alexa")
                .payload(&line)
                .timestamp(now),
        );
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

#[test]
fn run_consumes_over_sasl_scram_and_refuses_a_wrong_password_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Tansu::start_durable();
    let topic = unique_name("reports");
    broker.create_topic(&topic, 1, false);
    broker.create_topic(&format!("{topic}.dlq"), 1, false);
    produce_zstd(&broker.bootstrap(), &[], &topic);
    broker.create_scram_user(USER, PASSWORD);
    broker.require_authentication(USER, PASSWORD);
    let config = write_config(
        dir.path(),
        "config.toml",
        &broker.bootstrap(),
        &topic,
        &[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", USER),
        ],
        "[kafka.properties_from_env]\n\"sasl.password\" = \"RADAR_KAFKA_PASSWORD\"\n",
    );

    // The right password: every report of the zstd batches is counted.
    let log = dir.path().join("run.log");
    let child = spawn(&config, &log, PASSWORD);
    let (ok, metrics) = counts_every_report(&log);
    stop(child);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        ok,
        "reports not counted over SASL/SCRAM:\n{text}\n{metrics}\n{}",
        broker.log_tail()
    );
    assert!(
        !text.contains(PASSWORD),
        "the password must not be logged:\n{text}"
    );

    // A wrong password: the log says it is an authentication failure, and
    // the radar never reports ready.
    let log = dir.path().join("wrong.log");
    assert_refused(
        &config,
        &log,
        "not-the-password",
        "SASL authentication error",
    );
}

#[test]
fn run_consumes_over_tls_and_says_why_a_wrong_ca_or_name_fails() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(dir.path(), &["127.0.0.1"]);
    let tls_port = free_port();
    let broker = Tansu::start_advertising(tls_port);
    let proxy = TlsProxy::start_on(tls_port, broker.port(), &certs, dir.path());
    let brokers = format!("127.0.0.1:{}", proxy.port());
    let topic = unique_name("reports");
    broker.create_topic(&topic, 1, false);
    broker.create_topic(&format!("{topic}.dlq"), 1, false);
    let ca = certs.ca.display().to_string();
    let tls = [
        ("security.protocol", "SSL"),
        ("ssl.ca.location", ca.as_str()),
    ];
    produce_zstd(&brokers, &tls, &topic);

    // The right CA: every report is counted, over TLS only.
    let config = write_config(dir.path(), "tls.toml", &brokers, &topic, &tls, "");
    let log = dir.path().join("run.log");
    let child = spawn(&config, &log, "");
    let (ok, metrics) = counts_every_report(&log);
    stop(child);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        ok,
        "reports not counted over TLS:\n{text}\n{metrics}\n{}",
        proxy.log_tail()
    );

    // A CA that did not sign the broker's certificate.
    let other = certs.other_ca.display().to_string();
    let config = write_config(
        dir.path(),
        "wrong-ca.toml",
        &brokers,
        &topic,
        &[("security.protocol", "SSL"), ("ssl.ca.location", &other)],
        "",
    );
    let log = dir.path().join("wrong-ca.log");
    assert_refused(&config, &log, "", "certificate verify failed");

    // The right CA, but a certificate for another name than the one dialled.
    let named = tempfile::tempdir().unwrap();
    let misnamed = TestCerts::generate(named.path(), &["broker.example"]);
    let other_proxy = TlsProxy::start(broker.port(), &misnamed, named.path());
    let ca = misnamed.ca.display().to_string();
    let config = write_config(
        dir.path(),
        "wrong-name.toml",
        &format!("127.0.0.1:{}", other_proxy.port()),
        &topic,
        &[("security.protocol", "SSL"), ("ssl.ca.location", &ca)],
        "",
    );
    let log = dir.path().join("wrong-name.log");
    assert_refused(&config, &log, "", "certificate verify failed");
}
