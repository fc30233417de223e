//! The whole path a user runs: history replayed into a snapshot, then
//! `outage-radar run --snapshot` consuming live reports from a real broker
//! and reporting the outage in them.

use std::process::{Command, Stdio};
use std::time::Duration;

use outage_testkit::{unique_name, wait_until, Tansu};

mod common;
use rdkafka::ClientConfig;

const SCENARIO: &str = r#"
name = "gb-outage"
seed = 7
start = "2018-09-24T00:00:00Z"
duration = "2days 11h"
jitter = "2s"
[[services]]
name = "alexa"
rate_per_minute = 60.0
[[regions]]
code = "GB"
weight = 3.0
utc_offset = 1
[[regions]]
code = "DE"
weight = 2.0
utc_offset = 2
[[regions]]
code = "US"
weight = 5.0
utc_offset = -5
[[events]]
kind = "outage"
service = "alexa"
start = "2018-09-26T10:30:00Z"
duration = "30m"
multiplier = 10.0
regions = [{ region = "GB", after = "0m" }]
"#;

/// 2018-09-26T10:00:00Z: history before, live after.
const SPLIT_MS: i64 = 1_537_956_000_000;

#[test]
fn warm_started_run_detects_an_outage_in_live_kafka_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_outage-radar");
    // Split the stream by event time: history for the replay, the rest live.
    let all = common::simulate(dir.path(), SCENARIO);
    let (history, live): (Vec<_>, Vec<_>) = all.iter().partition(|l| l.ts_ms < SPLIT_MS);
    common::warm_snapshot(dir.path(), history);
    let live: Vec<&str> = live.iter().map(|l| l.text.as_str()).collect();

    let broker = Tansu::start();
    let topic = unique_name("reports");
    broker.create_topic(&topic, 1, false);
    broker.create_topic(&format!("{topic}.dlq"), 1, false);
    broker.create_topic(&format!("{topic}.incidents"), 1, false);
    broker.create_topic(&format!("{topic}.state"), 1, true);
    broker.produce(&topic, live.iter().map(|line| ("alexa", line)));

    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n[incidents]\ntopic = \"{topic}.incidents\"\n[state]\ntopic = \"{topic}.state\"\n\
             [kafka]\nbrokers = \"{}\"\ntopic = \"{topic}\"\ndlq_topic = \"{topic}.dlq\"\ngroup_id = \"{}\"\n\
             [kafka.consumer_properties]\n\"fetch.wait.max.ms\" = \"5\"\n",
            broker.bootstrap(),
            unique_name("group")
        ),
    )
    .unwrap();
    let log = dir.path().join("run.log");
    let mut child = Command::new(bin)
        .args(["run", "--config", "config.toml", "--snapshot", "state.json"])
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let opened = wait_until(Duration::from_secs(90), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .any(|l| {
                l.contains("incident opened")
                    && l.contains("service=alexa")
                    && l.contains("scope=\"GB\"")
            })
    });
    // While it runs: /metrics shows the outage, readiness is up.
    let text = std::fs::read_to_string(&log).unwrap();
    let addr = text
        .split("addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no listen address in the log:\n{text}"))
        .to_string();
    // The log line comes from the incident event; the series' state gauge
    // from its window, a moment later: poll until the scrape has both.
    let scrape = || {
        ureq::get(&format!("http://{addr}/metrics"))
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    };
    let gb_in_outage = r#"outage_radar_series_state{region="GB",service="alexa"} 2"#;
    wait_until(Duration::from_secs(10), || scrape().contains(gb_in_outage));
    let metrics = scrape();
    let ready = ureq::get(&format!("http://{addr}/-/ready")).call();
    let incident_events =
        outage_testkit::consume_all(&broker.bootstrap(), &format!("{topic}.incidents"), 1);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(opened, "no GB incident in the log:\n{text}");
    assert!(ready.is_ok(), "not ready while consuming: {ready:?}");
    assert!(metrics.contains(gb_in_outage), "{metrics}");
    assert!(
        metrics.contains(r#"outage_radar_regions_in_outage{service="alexa"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("outage_radar_build_info{version="),
        "{metrics}"
    );
    // The incidents topic carries the same incident, keyed by service.
    let opened_events: Vec<serde_json::Value> = incident_events
        .iter()
        .map(|(key, value)| {
            assert_eq!(key, "alexa");
            serde_json::from_str(value).unwrap()
        })
        .filter(|v: &serde_json::Value| v["event"] == "opened")
        .collect();
    assert_eq!(opened_events.len(), 1, "{incident_events:?}");
    assert_eq!(opened_events[0]["region"], "GB");
    assert!(
        text.contains(opened_events[0]["id"].as_str().unwrap()),
        "same id in the log"
    );
    assert!(status.success(), "{text}");
    assert!(text.contains("warm start"), "{text}");
    let opened_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("incident opened"))
        .collect();
    assert_eq!(
        opened_lines.len(),
        1,
        "only the GB outage: {opened_lines:?}"
    );
    assert!(
        opened_lines[0].contains("started_at=2018-09-26T10:30:00Z"),
        "{}",
        opened_lines[0]
    );
}

#[test]
fn simulate_produces_a_scenario_to_kafka() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("short.toml"),
        SCENARIO.replace(
            "duration = \"2days 11h\"",
            "duration = \"3h\"\nmalformed_fraction = 0.01",
        ),
    )
    .unwrap();
    let broker = Tansu::start();
    let topic = unique_name("sim");
    broker.create_topic(&topic, 2, false);
    let out = Command::new(env!("CARGO_BIN_EXE_outage-radar"))
        .args([
            "simulate",
            "--scenario",
            "short.toml",
            "--to",
            "kafka",
            "--brokers",
            &broker.bootstrap(),
        ])
        .args([
            "--topic",
            &topic,
            "--truth",
            "truth.json",
            "--rate",
            "20000",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    // "scenario gb-outage: N reports (M malformed lines) → ..."
    let words: Vec<&str> = stderr.split_whitespace().collect();
    let reports: usize = words[2].parse().unwrap();
    let malformed: usize = words[4].trim_start_matches('(').parse().unwrap();
    assert!(reports > 5_000 && malformed > 0, "{stderr}");
    assert!(dir.path().join("truth.json").is_file());

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", unique_name("reader"))
        .set("fetch.wait.max.ms", "5")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut n = 0;
    let done = wait_until(Duration::from_secs(60), || {
        while let Some(Ok(_)) = consumer.poll(Duration::from_millis(20)) {
            n += 1;
        }
        n >= reports + malformed
    });
    assert!(done, "read {n} of {} messages", reports + malformed);
}

/// A device clock minutes ahead, in `run`: stream time is the Kafka record
/// timestamp, so the report waits in its own window and no honest report
/// becomes late. Windows carry an offset, as `defaults-5m.toml` has: the
/// scoring latency must still be measured for every closed window.
#[test]
fn a_report_dated_minutes_ahead_makes_no_other_report_late() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Tansu::start();
    let topic = unique_name("reports");
    for t in [topic.clone(), format!("{topic}.dlq")] {
        broker.create_topic(&t, 1, false);
    }
    // Three minutes of live-looking traffic, 20 reports a second of two
    // services; halfway, one report dated 4 minutes ahead of its record.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 10 * 60_000;
    let mut messages = Vec::new();
    for i in 0..3600i64 {
        let ts = now + i * 50;
        let service = if i % 2 == 0 { "alexa" } else { "netflix" };
        messages.push((
            service.to_string(),
            format!(r#"{{"service":"{service}","region":"GB","ts":{ts},"reporter":"r{i}"}}"#),
            Some(ts),
        ));
        if i == 1800 {
            messages.push((
                "alexa".into(),
                format!(
                    r#"{{"service":"alexa","region":"DE","ts":{},"reporter":"fast-clock"}}"#,
                    ts + 4 * 60_000
                ),
                Some(ts),
            ));
        }
    }
    let total = messages.len();
    broker.produce_timed(&topic, messages);
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n[incidents]\ntopic = \"\"\n[state]\ntopic = \"\"\n\
             [detect]\nidle_timeout = \"1h\"\nwindow_offset = \"17s\"\n\
             [kafka]\nbrokers = \"{}\"\ntopic = \"{topic}\"\ndlq_topic = \"{topic}.dlq\"\ngroup_id = \"{}\"\n\
             [kafka.consumer_properties]\n\"fetch.wait.max.ms\" = \"5\"\n",
            broker.bootstrap(),
            unique_name("group")
        ),
    )
    .unwrap();
    let log = dir.path().join("run.log");
    let mut child = common::spawn_run(&config, &log);
    let addr = || common::logged_addr(&log);
    let scrape = common::scrape;
    let value = common::sample;
    let consumed = format!("outage_radar_messages_consumed_total {total}");
    let mut metrics = String::new();
    wait_until(Duration::from_secs(60), || {
        metrics = addr().map(|a| scrape(&a)).unwrap_or_default();
        metrics.contains(&consumed)
    });
    // /metrics: gzip when the scraper asks for it, plain text otherwise,
    // with the standard process metrics beside ours.
    let raw_get = |accept_gzip: bool| -> (String, Vec<u8>) {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(addr().unwrap()).unwrap();
        let extra = if accept_gzip {
            "Accept-Encoding: gzip\r\n"
        } else {
            ""
        };
        write!(
            conn,
            "GET /metrics HTTP/1.1\r\nHost: radar\r\n{extra}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
        (head, raw[split + 4..].to_vec())
    };
    let (head, body) = raw_get(true);
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text).unwrap();
    assert!(
        text.contains("outage_radar_messages_consumed_total"),
        "{text}"
    );
    assert!(text.contains("process_resident_memory_bytes"), "{text}");
    let (head, body) = raw_get(false);
    assert!(!head.contains("content-encoding"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("process_cpu_seconds_total"));

    // The container health check sees a ready instance.
    let health = Command::new(env!("CARGO_BIN_EXE_outage-radar"))
        .args(["healthcheck", "--url"])
        .arg(format!("http://{}/-/ready", addr().unwrap_or_default()))
        .output()
        .unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert!(
        health.status.success(),
        "healthcheck: {}",
        String::from_utf8_lossy(&health.stderr)
    );
    assert!(metrics.contains(&consumed), "{metrics}");
    assert_eq!(
        value(&metrics, "outage_radar_late_reports_total"),
        Some(0.0),
        "{metrics}"
    );
    let dead_lettered: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("outage_radar_messages_dead_lettered_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(dead_lettered, 0.0, "nothing dead-lettered: {metrics}");
    let closed = value(&metrics, "outage_radar_windows_closed_total").unwrap_or(0.0);
    let timed = value(&metrics, "outage_radar_scoring_latency_seconds_count").unwrap_or(0.0);
    assert!(closed >= 1.0, "{metrics}");
    assert!(
        timed >= 1.0,
        "no window's scoring latency measured: {metrics}"
    );
}
