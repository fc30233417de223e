//! Exact state across restarts and scale-out, against the real broker:
//! per-partition snapshots in a compacted topic, restored on assignment.
//!
//! Each test compares what outage-radar outputs (the scores topic: every
//! scored window; the incidents topic) with an uninterrupted single
//! instance's output over the same reports. Output is at-least-once —
//! windows after the last snapshot are sent again after a crash — so both
//! sides are compared as sets keyed the way consumers de-duplicate:
//! (service, region, window_start) and the incident event itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use outage_testkit::{consume_all, free_port, unique_name, wait_until, Tansu};
use serde_json::Value;

mod common;

const PARTITIONS: i32 = 4;

const SCENARIO: &str = r#"
name = "four-services"
seed = 5
start = "2018-09-26T00:00:00Z"
duration = "8h"
jitter = "2s"
late_fraction = 0.002
[[services]]
name = "alexa"
rate_per_minute = 40.0
[[services]]
name = "netflix"
rate_per_minute = 30.0
[[services]]
name = "psn"
rate_per_minute = 20.0
[[services]]
name = "steam"
rate_per_minute = 20.0
[[regions]]
code = "US"
weight = 4.0
utc_offset = -4
[[regions]]
code = "GB"
weight = 3.0
utc_offset = 1
[[regions]]
code = "DE"
weight = 2.0
utc_offset = 2
[[events]]
kind = "outage"
service = "alexa"
start = "2018-09-26T05:00:00Z"
duration = "30m"
multiplier = 10.0
regions = [{ region = "GB", after = "0m" }, { region = "DE", after = "3m" }, { region = "US", after = "5m" }]
[[events]]
kind = "outage"
service = "psn"
start = "2018-09-26T07:00:00Z"
duration = "20m"
multiplier = 12.0
regions = [{ region = "DE", after = "0m" }]
"#;

/// The scenario's reports as (service, line), in arrival order.
fn reports(dir: &Path) -> Vec<(String, String)> {
    common::simulate(dir, SCENARIO)
        .into_iter()
        .map(|l| (l.service, l.text))
        .collect()
}

struct Topics {
    reports: String,
    state: String,
}

impl Topics {
    fn create(broker: &Tansu) -> Topics {
        let reports = unique_name("reports");
        broker.create_topic(&reports, PARTITIONS, false);
        broker.create_topic(&format!("{reports}.dlq"), 1, false);
        let state = format!("{reports}.state");
        broker.create_topic(&state, 2, true);
        Topics { reports, state }
    }

    /// Output topics of one comparison side.
    fn outputs(&self, broker: &Tansu, side: &str) -> (String, String) {
        let scores = format!("{}.{side}.scores", self.reports);
        let incidents = format!("{}.{side}.incidents", self.reports);
        broker.create_topic(&scores, 1, false);
        broker.create_topic(&incidents, 1, false);
        (scores, incidents)
    }
}

/// One `outage-radar run` process.
struct Radar {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl Radar {
    fn start(
        dir: &Path,
        name: &str,
        broker: &Tansu,
        topics: &Topics,
        group: &str,
        outputs: &(String, String),
    ) -> Radar {
        let port = free_port();
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[http]\nlisten = \"127.0.0.1:{port}\"\n\
                 [scores]\ntopic = \"{}\"\n[incidents]\ntopic = \"{}\"\n\
                 [state]\ntopic = \"{}\"\ninterval = \"200ms\"\n\
                 [detect]\nidle_timeout = \"1h\"\nmin_history = \"2h\"\n\
                 [kafka]\nbrokers = \"{}\"\ntopic = \"{}\"\ndlq_topic = \"{}.dlq\"\ngroup_id = \"{group}\"\n\
                 [kafka.consumer_properties]\n\"fetch.wait.max.ms\" = \"5\"\n\
                 \"statistics.interval.ms\" = \"500\"\n\"session.timeout.ms\" = \"6000\"\n\"partition.assignment.strategy\" = \"range\"\n",
                outputs.0,
                outputs.1,
                topics.state,
                broker.bootstrap(),
                topics.reports,
                topics.reports,
            ),
        )
        .unwrap();
        let log = dir.join(format!("{name}.{}.log", unique_name("run")));
        let child = common::spawn_run(&config, &log);
        Radar {
            child: Some(child),
            port,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn metrics(&self) -> String {
        ureq::get(&format!("http://127.0.0.1:{}/metrics", self.port))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
            .unwrap_or_default()
    }

    /// Sum of a metric's samples whose line contains `filter`.
    fn metric(&self, name: &str, filter: &str) -> f64 {
        self.metrics()
            .lines()
            .filter(|l| l.starts_with(name) && l.contains(filter))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn assigned(&self) -> i64 {
        self.metric("outage_radar_assigned_partitions ", "") as i64
    }

    /// Whether every assigned partition is consumed to its end.
    fn caught_up(&self) -> bool {
        let text = self.metrics();
        let lags: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with("outage_radar_consumer_lag_messages{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        let assigned = self.assigned();
        assigned > 0 && lags.len() as i64 == assigned && lags.iter().all(|&l| l == 0.0)
    }

    fn wait_caught_up(&self) {
        assert!(
            wait_until(Duration::from_secs(120), || self.caught_up()),
            "not caught up:\n{}\n{}",
            self.metrics()
                .lines()
                .filter(|l| l.contains("lag") || l.contains("assigned"))
                .collect::<Vec<_>>()
                .join("\n"),
            self.log()
        );
        // Two statistics intervals: the lag was not a stale zero.
        std::thread::sleep(Duration::from_millis(1200));
        assert!(self.caught_up());
    }

    /// Waits until snapshots have caught up with the position: some were
    /// written, and none for a while (positions no longer move).
    fn wait_snapshot(&self) {
        let written = || self.metric("outage_radar_state_snapshots_total", "written");
        let mut last = -1.0;
        assert!(
            wait_until(Duration::from_secs(30), || {
                let now = written();
                let stable = now > 0.0 && now == last;
                last = now;
                if !stable {
                    std::thread::sleep(Duration::from_millis(700));
                }
                stable
            }),
            "no snapshot written:\n{}",
            self.log()
        );
    }

    fn stop(&mut self, signal: &str) {
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status();
        let status = child.wait().unwrap();
        if signal == "TERM" {
            assert!(status.success(), "{}", self.log());
            assert!(self.log().contains("stopped cleanly"), "{}", self.log());
        }
    }
}

impl Drop for Radar {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Windows by (service, region, window_start), and incident events.
type Windows = BTreeMap<(String, String, i64), Value>;
type Output = (Windows, BTreeSet<String>);

/// Scored windows by (service, region, window_start), asserting duplicates
/// are identical.
fn windows(broker: &Tansu, topic: &str) -> Windows {
    let mut out = BTreeMap::new();
    for (_, v) in consume_all(&broker.bootstrap(), topic, 1) {
        let v: Value = serde_json::from_str(&v).unwrap();
        let key = (
            v["service"].as_str().unwrap().to_string(),
            v["region"].as_str().unwrap().to_string(),
            v["window_start_ms"].as_i64().unwrap(),
        );
        if let Some(previous) = out.insert(key.clone(), v.clone()) {
            assert_eq!(
                previous, v,
                "a window sent twice must be identical: {key:?}"
            );
        }
    }
    out
}

/// Incident events as a set of their JSON texts.
fn incidents(broker: &Tansu, topic: &str) -> BTreeSet<String> {
    consume_all(&broker.bootstrap(), topic, 1)
        .into_iter()
        .map(|(_, v)| v)
        .collect()
}

fn produce(broker: &Tansu, topic: &str, part: &[(String, String)]) {
    broker.produce(topic, part.iter().map(|(k, v)| (k.as_str(), v.as_str())));
}

/// The uninterrupted single instance over the whole topic.
fn reference(dir: &Path, broker: &Tansu, topics: &Topics) -> Output {
    let outputs = topics.outputs(broker, "reference");
    let mut r = Radar::start(
        dir,
        "reference",
        broker,
        topics,
        &unique_name("ref"),
        &outputs,
    );
    r.wait_caught_up();
    r.stop("TERM");
    let w = windows(broker, &outputs.0);
    let i = incidents(broker, &outputs.1);
    assert!(w.len() > 5_000, "{} windows", w.len());
    assert!(
        i.iter().any(|e| e.contains("\"event\":\"opened\"")),
        "the scenario's outages open incidents: {i:?}"
    );
    (w, i)
}

fn assert_same(label: &str, got: Output, want: &Output) {
    let missing: Vec<_> = want
        .0
        .keys()
        .filter(|k| !got.0.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<_> = got
        .0
        .keys()
        .filter(|k| !want.0.contains_key(*k))
        .take(5)
        .collect();
    let differ: Vec<_> = want
        .0
        .iter()
        .filter(|(k, v)| got.0.get(*k).is_some_and(|g| g != *v))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "{label}: windows differ from the uninterrupted run: missing {missing:?}, extra {extra:?}, different {differ:?}"
    );
    assert_eq!(got.1, want.1, "{label}: incident events differ");
}

#[test]
fn kill_9_mid_stream_and_restart_outputs_exactly_what_an_uninterrupted_run_does() {
    let dir = tempfile::tempdir().unwrap();
    let all = reports(dir.path());
    let broker = Tansu::start();
    let topics = Topics::create(&broker);
    let (a, rest) = all.split_at(all.len() * 6 / 10);
    let (b, c) = rest.split_at(rest.len() / 2);
    let outputs = topics.outputs(&broker, "crash");
    let group = unique_name("crash");

    // Run 1: catch up on 60 %, snapshot, then die with SIGKILL while the
    // next 20 % streams in (after some of it, before a snapshot covers it).
    produce(&broker, &topics.reports, a);
    let mut run1 = Radar::start(dir.path(), "run1", &broker, &topics, &group, &outputs);
    run1.wait_caught_up();
    run1.wait_snapshot();
    let consumed = run1.metric("outage_radar_messages_consumed_total", "");
    std::thread::scope(|scope| {
        let producing = scope.spawn(|| produce(&broker, &topics.reports, b));
        assert!(
            wait_until(Duration::from_secs(60), || run1
                .metric("outage_radar_messages_consumed_total", "")
                > consumed + 1_000.0),
            "run 1 stalled:\n{}",
            run1.log()
        );
        run1.stop("KILL");
        producing.join().unwrap();
    });

    // Run 2, once the group has dropped the dead member (its session
    // timeout is 6 s; tansu 0.6 hands a newcomer nothing while a dead
    // member is still in the group and does not rebalance when it expires),
    // restores every partition and finishes the stream.
    std::thread::sleep(Duration::from_secs(8));
    let mut run2 = Radar::start(dir.path(), "run2", &broker, &topics, &group, &outputs);
    produce(&broker, &topics.reports, c);
    run2.wait_caught_up();
    let log2 = run2.log();
    // Every partition that had reports comes back from its snapshot (an
    // empty one has none to restore).
    let restored = log2
        .matches("partition state restored from its snapshot")
        .count();
    let empty = log2
        .matches("no snapshot; starting the partition empty")
        .count();
    assert!(
        restored >= 2 && restored + empty == PARTITIONS as usize,
        "{log2}"
    );
    // Each start is counted once: a restore as a restore, an empty start
    // as a start without a snapshot.
    assert_eq!(
        run2.metric("outage_radar_state_restores_total", "outcome=\"restored\""),
        restored as f64
    );
    assert_eq!(
        run2.metric("outage_radar_partition_starts_total", ""),
        empty as f64,
        "{}",
        run2.metrics()
    );
    run2.stop("TERM");

    // `state inspect` shows the snapshots the restart left behind.
    let inspect = Command::new(env!("CARGO_BIN_EXE_outage-radar"))
        .args(["state", "inspect", "--config"])
        .arg(dir.path().join("run2.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{group}/{}/", topics.reports)))
        .collect();
    assert!(
        ours.len() >= 2
            && ours
                .iter()
                .all(|l| l.split_whitespace().nth(1) == Some("ok")),
        "{text}"
    );

    let got = (windows(&broker, &outputs.0), incidents(&broker, &outputs.1));
    let want = reference(dir.path(), &broker, &topics);
    assert_same("kill -9 and restart", got, &want);
}

#[test]
fn a_second_instance_takes_over_partitions_with_their_state() {
    let dir = tempfile::tempdir().unwrap();
    let all = reports(dir.path());
    let broker = Tansu::start();
    let topics = Topics::create(&broker);
    let (a, b) = all.split_at(all.len() / 2);
    let outputs = topics.outputs(&broker, "pair");
    let group = unique_name("pair");

    produce(&broker, &topics.reports, a);
    // Scale out: a second instance joins a running one (started together,
    // tansu 0.6 sometimes keeps rebalancing the pair).
    let mut one = Radar::start(dir.path(), "one", &broker, &topics, &group, &outputs);
    one.wait_caught_up();
    let services = |r: &Radar| -> std::collections::BTreeSet<String> {
        r.metrics()
            .lines()
            .filter(|l| l.starts_with("outage_radar_series_state{"))
            .filter_map(|l| l.split("service=\"").nth(1)?.split('"').next())
            .map(str::to_string)
            .collect()
    };
    let before = services(&one);
    let mut two = Radar::start(dir.path(), "two", &broker, &topics, &group, &outputs);
    assert!(
        wait_until(Duration::from_secs(60), || one.assigned() == 2
            && two.assigned() == 2),
        "the group splits the partitions: {} + {}\n{}\n{}",
        one.assigned(),
        two.assigned(),
        one.log(),
        two.log()
    );
    one.wait_caught_up();
    two.wait_caught_up();
    // `one` gave up half its partitions: what it exported from them went
    // with them (what it kept stays). Each service's series are on one
    // instance only.
    let (on_one, on_two) = (services(&one), services(&two));
    let moved = two.metric("outage_radar_detector_series ", "");
    assert!(
        moved > 0.0 && on_one.len() < before.len() && on_one.is_disjoint(&on_two),
        "after the split: one exports {on_one:?} (all {before:?} before), two {on_two:?} ({moved} series)"
    );

    // Stop one: the other takes over its partitions, with their state.
    two.stop("TERM");
    assert!(
        wait_until(Duration::from_secs(60), || one.assigned()
            == PARTITIONS as i64),
        "{}",
        one.log()
    );
    produce(&broker, &topics.reports, b);
    one.wait_caught_up();
    assert!(
        one.log()
            .matches("partition state restored from its snapshot")
            .count()
            >= 2,
        "{}",
        one.log()
    );
    one.stop("TERM");

    let got = (windows(&broker, &outputs.0), incidents(&broker, &outputs.1));
    let want = reference(dir.path(), &broker, &topics);
    assert_same("two instances, one stopped", got, &want);
}

#[test]
fn snapshots_survive_a_broker_crash_and_compaction() {
    // tansu's sqlite engine compacts at start: the snapshots are read back
    // from a compacted partition (where a record may come twice).
    let dir = tempfile::tempdir().unwrap();
    let all = reports(dir.path());
    let mut broker = Tansu::start_durable();
    let topics = Topics::create(&broker);
    let (a, b) = all.split_at(all.len() / 2);
    let outputs = topics.outputs(&broker, "durable");
    let group = unique_name("durable");

    produce(&broker, &topics.reports, a);
    let mut run1 = Radar::start(dir.path(), "run1", &broker, &topics, &group, &outputs);
    run1.wait_caught_up();
    run1.wait_snapshot();
    run1.stop("TERM");

    broker.restart();
    produce(&broker, &topics.reports, b);
    let mut run2 = Radar::start(dir.path(), "run2", &broker, &topics, &group, &outputs);
    run2.wait_caught_up();
    let log2 = run2.log();
    assert!(
        log2.matches("partition state restored from its snapshot")
            .count()
            >= 2,
        "{log2}"
    );
    run2.stop("TERM");

    let got = (windows(&broker, &outputs.0), incidents(&broker, &outputs.1));
    let want = reference(dir.path(), &broker, &topics);
    assert_same("broker crash and compaction", got, &want);
}

#[test]
fn a_corrupt_snapshot_is_reported_and_skipped_never_half_applied() {
    let dir = tempfile::tempdir().unwrap();
    let all = reports(dir.path());
    let broker = Tansu::start();
    let topics = Topics::create(&broker);
    let outputs = topics.outputs(&broker, "corrupt");
    let group = unique_name("corrupt");
    // A manifest that is not one, for every partition (state partition =
    // source partition % 2).
    let producer = outage_testkit::test_producer(&broker.bootstrap());
    for p in 0..PARTITIONS {
        let key = format!("{group}/{}/{p}", topics.reports);
        outage_testkit::send_blocking(
            &producer,
            rdkafka::producer::BaseRecord::to(&topics.state)
                .partition(p % 2)
                .key(key.as_str())
                .payload("{\"format\":\"something else\"}"),
        );
    }
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(10)).unwrap();

    produce(&broker, &topics.reports, &all[..all.len() / 4]);
    let mut run = Radar::start(dir.path(), "run", &broker, &topics, &group, &outputs);
    run.wait_caught_up();
    let log = run.log();
    assert_eq!(
        log.matches("corrupt snapshot skipped").count(),
        PARTITIONS as usize,
        "{log}"
    );
    assert_eq!(
        run.metric("outage_radar_state_restores_total", "outcome=\"corrupt\""),
        PARTITIONS as f64
    );
    // Started empty, it still counted every report.
    assert_eq!(
        run.metric("outage_radar_reports_decoded_total", ""),
        (all.len() / 4) as f64
    );
    run.stop("TERM");
}

#[test]
fn an_incident_event_not_yet_delivered_is_sent_after_kill_9() {
    // The incidents topic does not exist yet (tansu creates no topic on
    // produce): every incident event waits in the producer. Snapshots of
    // its partition must wait with it, so that after a kill -9 the restart
    // replays from before the incident and sends its events again.
    let dir = tempfile::tempdir().unwrap();
    let all = reports(dir.path());
    let broker = Tansu::start();
    let topics = Topics::create(&broker);
    produce(&broker, &topics.reports, &all);
    let want = reference(dir.path(), &broker, &topics);
    let scores = format!("{}.late.scores", topics.reports);
    broker.create_topic(&scores, 1, false);
    let late = (scores, format!("{}.late.incidents", topics.reports));
    let group = unique_name("late");

    let mut run1 = Radar::start(dir.path(), "run1", &broker, &topics, &group, &late);
    run1.wait_caught_up();
    run1.wait_snapshot();
    assert!(run1.log().contains("incident opened"), "{}", run1.log());
    run1.stop("KILL");

    broker.create_topic(&late.1, 1, false);
    let mut run2 = Radar::start(dir.path(), "run2", &broker, &topics, &group, &late);
    run2.wait_caught_up();
    run2.stop("TERM");
    let got = incidents(&broker, &late.1);
    let opened = |events: &BTreeSet<String>| -> BTreeSet<String> {
        events
            .iter()
            .filter(|e| e.contains("\"event\":\"opened\""))
            .cloned()
            .collect()
    };
    let missing: Vec<_> = opened(&want.1).difference(&got).cloned().collect();
    assert!(
        missing.is_empty(),
        "incident openings lost with the process: {missing:?}\n{}",
        run2.log()
    );
}
