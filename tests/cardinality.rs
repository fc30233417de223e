//! Hostile or careless producers (issue #13 item 5): a flood of made-up
//! service names and reporter ids costs bounded memory and work, and a real
//! outage in the middle of it is found exactly as without the flood.

use std::path::Path;
use std::process::Command;

mod common;

/// Two quiet days of one service in three countries, then a 40-minute
/// outage in GB.
const SCENARIO: &str = r#"
name = "flooded"
seed = 11
start = "2018-09-24T00:00:00Z"
duration = "2days 14h"
jitter = "2s"
[[services]]
name = "alexa"
rate_per_minute = 40.0
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
start = "2018-09-26T11:00:00Z"
duration = "40m"
multiplier = 8.0
regions = [{ region = "GB", after = "0m" }]
"#;

fn replay(dir: &Path, input: &str, out: &str) -> serde_json::Value {
    let r = Command::new(env!("CARGO_BIN_EXE_outage-radar"))
        .args([
            "replay",
            "--input",
            input,
            "--out",
            out,
            "--config",
            "config.toml",
        ])
        .current_dir(dir)
        .env_remove("OUTAGE_RADAR_CONFIG")
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    serde_json::from_str(&std::fs::read_to_string(dir.join(out).join("summary.json")).unwrap())
        .unwrap()
}

/// The incidents of a replay, without what depends on the flood's noise
/// (peaks): id, scope, region, start and detection time.
fn incidents(dir: &Path, out: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(out).join("incidents.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!(
                "{} {} {} {} {}",
                v["id"], v["scope"], v["region"], v["started_at"], v["detected_at"]
            )
        })
        .collect()
}

#[test]
fn a_flood_of_made_up_services_and_reporters_is_bounded_and_changes_no_incident() {
    let dir = tempfile::tempdir().unwrap();
    let lines = common::simulate(dir.path(), SCENARIO);
    std::fs::write(
        dir.path().join("config.toml"),
        "[detect]\nmax_services = 50\nservice_ttl = \"1h\"\n",
    )
    .unwrap();
    let clean: String = lines.iter().map(|l| format!("{}\n", l.text)).collect();
    std::fs::write(dir.path().join("clean.jsonl"), &clean).unwrap();

    // After the first hour, one junk report per real report: 100,000+
    // services seen once each, every report from its own reporter.
    let first = lines[0].ts_ms;
    let mut flooded = String::with_capacity(clean.len() * 2);
    let mut junk = 0u64;
    for l in &lines {
        flooded.push_str(&l.text);
        flooded.push('\n');
        if l.ts_ms > first + 3_600_000 {
            junk += 1;
            flooded.push_str(&format!(
                r#"{{"service":"junk-{junk:x}","region":"GB","ts":{},"problem":"other","reporter":"bot-{junk}"}}"#,
                l.ts_ms
            ));
            flooded.push('\n');
        }
    }
    assert!(junk > 100_000, "{junk}");
    std::fs::write(dir.path().join("flooded.jsonl"), &flooded).unwrap();

    let quiet = replay(dir.path(), "clean.jsonl", "clean");
    let loud = replay(dir.path(), "flooded.jsonl", "flooded");

    let expected = incidents(dir.path(), "clean");
    assert_eq!(expected.len(), 1, "{expected:?}");
    assert!(expected[0].contains("\"GB\""), "{expected:?}");
    assert_eq!(incidents(dir.path(), "flooded"), expected);
    assert_eq!(
        loud["counted"].as_u64().unwrap(),
        quiet["counted"].as_u64().unwrap() + junk - loud["overflow"].as_u64().unwrap()
    );
    // Bounded: never more than the cap of services, idle ones evicted.
    assert!(loud["services"].as_u64().unwrap() <= 50, "{loud}");
    // alexa's four series and two for each made-up service.
    assert!(loud["series"].as_u64().unwrap() <= 4 + 49 * 2, "{loud}");
    assert!(loud["services_evicted"].as_u64().unwrap() > 1_000, "{loud}");
    assert!(loud["overflow"].as_u64().unwrap() > 0, "{loud}");
    // One plot per busy service, not one per made-up name.
    let plots = std::fs::read_dir(dir.path().join("flooded/plots"))
        .unwrap()
        .count();
    assert!(plots <= 51, "{plots} plots");
}

/// Resident memory of a process, bytes (Linux).
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS in /proc/PID/status")
        * 1024
}

#[test]
fn a_running_instance_under_a_flood_stays_bounded_and_exports_the_real_outage_first() {
    use outage_testkit::{unique_name, wait_until, Tansu};
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let all = common::simulate(dir.path(), SCENARIO);
    // History up to 2018-09-26T10:00Z warms the detector; the rest is live.
    let split = 1_537_956_000_000;
    let (history, live): (Vec<_>, Vec<_>) = all.iter().partition(|l| l.ts_ms < split);
    common::warm_snapshot(dir.path(), history);

    // Each live report is followed by five junk ones: made-up services
    // (each seen once) and made-up reporters.
    let mut messages: Vec<(String, String)> = Vec::new();
    let mut junk = 0u64;
    for l in &live {
        messages.push((l.service.clone(), l.text.clone()));
        for _ in 0..5 {
            junk += 1;
            let service = format!("junk-{junk:x}");
            messages.push((
                service.clone(),
                format!(
                    r#"{{"service":"{service}","region":"GB","ts":{},"problem":"other","reporter":"bot-{junk}"}}"#,
                    l.ts_ms
                ),
            ));
        }
    }
    assert!(junk >= 40_000, "{junk}");

    let broker = Tansu::start();
    let topic = unique_name("flood");
    broker.create_topic(&topic, 1, false);
    broker.create_topic(&format!("{topic}.dlq"), 1, false);
    broker.create_topic(&format!("{topic}.state"), 1, true);
    broker.produce(
        &topic,
        messages.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[http]\nlisten = \"127.0.0.1:0\"\nrefresh = \"0s\"\n[state]\ntopic = \"{topic}.state\"\n\
             [detect]\nmax_services = 200\nservice_ttl = \"10m\"\n\
             [metrics]\nmax_series = 20\n\
             [kafka]\nbrokers = \"{}\"\ntopic = \"{topic}\"\ndlq_topic = \"{topic}.dlq\"\ngroup_id = \"{}\"\n\
             [kafka.consumer_properties]\n\"fetch.wait.max.ms\" = \"5\"\n",
            broker.bootstrap(),
            unique_name("group")
        ),
    )
    .unwrap();
    let log = dir.path().join("run.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_outage-radar"))
        .args(["run", "--config", "config.toml", "--snapshot", "state.json"])
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr = {
        let mut addr = None;
        wait_until(Duration::from_secs(30), || {
            addr = common::logged_addr(&log);
            addr.is_some()
        });
        addr.unwrap_or_else(|| panic!("{}", std::fs::read_to_string(&log).unwrap()))
    };
    let total = messages.len() as f64;
    let consumed = wait_until(Duration::from_secs(240), || {
        common::sample(
            &common::scrape(&addr),
            "outage_radar_messages_consumed_total",
        )
        .is_some_and(|n| n >= total)
    });
    let metrics = common::scrape(&addr);
    let rss = rss_bytes(child.id());
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(consumed, "not all consumed:\n{metrics}");
    assert!(status.success(), "{text}");

    // The real outage: paged, and on /metrics although junk filled it first.
    assert!(
        text.lines().any(|l| l.contains("incident opened")
            && l.contains("service=alexa")
            && l.contains("scope=\"GB\"")),
        "{text}"
    );
    assert!(
        metrics.contains(r#"outage_radar_series_state{region="GB",service="alexa"}"#),
        "{metrics}"
    );
    assert!(common::sample(&metrics, "outage_radar_exported_series").unwrap() <= 20.0);
    // Bounded: services capped and evicted, memory flat.
    assert!(common::sample(&metrics, "outage_radar_series_overflow_reports_total").unwrap() > 0.0);
    assert!(common::sample(&metrics, "outage_radar_services_evicted_total").unwrap() > 1_000.0);
    assert!(common::sample(&metrics, "outage_radar_detector_series").unwrap() <= 4.0 + 199.0 * 2.0);
    assert!(
        rss < 200 << 20,
        "{} MB resident after {junk} made-up services",
        rss >> 20
    );
    eprintln!("resident after {junk} made-up services: {} MB", rss >> 20);
}
