//! Kafka with authentication, against a real broker: `run` consumes over
//! SASL/SCRAM-SHA-512 with the password from the environment, reads
//! zstd-compressed batches, and says so plainly when the password is wrong.
//!
//! tansu 0.6 checks SCRAM credentials for real (users made with `tansu user
//! create`). Its TLS does not work in 0.6.0 (`--cert` and `--key` are in
//! one clap group, so both cannot be given, and the acceptor it builds is
//! never used), so TLS is not tested here against a broker; see README.

use std::path::Path;
use std::time::Duration;

use outage_testkit::{unique_name, wait_until, Tansu};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;

mod common;

const USER: &str = "outage-radar";
const PASSWORD: &str = "s3cret-for-the-test";
const REPORTS: usize = 40;

/// `[kafka]` of a configuration that authenticates as [`USER`] with the
/// password in `$RADAR_KAFKA_PASSWORD`.
fn write_config(dir: &Path, broker: &Tansu, topic: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n[incidents]\ntopic = \"\"\n[state]\ntopic = \"\"\n\
             [kafka]\nbrokers = \"{}\"\ntopic = \"{topic}\"\ndlq_topic = \"{topic}.dlq\"\ngroup_id = \"{}\"\n\
             [kafka.properties]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n\
             \"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\"sasl.username\" = \"{USER}\"\n\
             [kafka.properties_from_env]\n\"sasl.password\" = \"RADAR_KAFKA_PASSWORD\"\n\
             [kafka.consumer_properties]\n\"fetch.wait.max.ms\" = \"5\"\n",
            broker.bootstrap(),
            unique_name("group")
        ),
    )
    .unwrap();
    path
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

/// Reports of now, produced as zstd-compressed batches.
fn produce_zstd(broker: &Tansu, topic: &str) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("compression.type", "zstd")
        .set("linger.ms", "50")
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
    produce_zstd(&broker, &topic);
    broker.create_scram_user(USER, PASSWORD);
    broker.require_authentication(USER, PASSWORD);
    let config = write_config(dir.path(), &broker, &topic);

    // The right password: every report of the zstd batches is counted.
    let log = dir.path().join("run.log");
    let child = spawn(&config, &log, PASSWORD);
    let counted = format!("outage_radar_reports_counted_total {REPORTS}");
    let mut metrics = String::new();
    let ok = wait_until(Duration::from_secs(60), || {
        let Some(addr) = listen_addr(&log) else {
            return false;
        };
        metrics = ureq::get(&format!("http://{addr}/metrics"))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .unwrap_or_default();
        metrics.contains(&counted)
    });
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
    let child = spawn(&config, &log, "not-the-password");
    let said = wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("SASL authentication error")
    });
    let ready = listen_addr(&log).map(|addr| {
        ureq::get(&format!("http://{addr}/-/ready"))
            .call()
            .map(|r| r.status())
            .unwrap_or_else(|e| match e {
                ureq::Error::Status(code, _) => code,
                ureq::Error::Transport(_) => 0,
            })
    });
    stop(child);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(said, "no authentication error in the log:\n{text}");
    assert_ne!(ready, Some(200), "ready without a broker session:\n{text}");
}
