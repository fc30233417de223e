//! A broker outage mid-stream, with the default `idle_timeout` (30 s):
//! while the broker is away the partition may be behind, so its windows
//! must not close by the wall clock — the reports produced meanwhile
//! arrive once it is back and must count, not be late — and when the group
//! session is lost meanwhile (100 s away; it times out after 45 s), the
//! partition goes on with its state, each report counted once (issue #13,
//! item 1).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use outage_testkit::{test_producer, unique_name, wait_until, Tansu};
use rdkafka::producer::{BaseRecord, Producer};

mod common;

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// What one run through a 100 s broker outage showed.
struct Outage {
    total: f64,
    counted: f64,
    late: f64,
    all_in: bool,
    ticking: bool,
    log: String,
}

/// Runs `outage-radar run` (with `consumer_properties` added) on live
/// reports, stops the broker for 100 s mid-stream, and waits until every
/// report produced is counted and idle windows close again.
fn through_an_outage(consumer_properties: &str) -> Outage {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Tansu::start_durable();
    let topic = unique_name("reports");
    for t in [topic.clone(), format!("{topic}.dlq")] {
        broker.create_topic(&t, 1, false);
    }
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n[incidents]\ntopic = \"\"\n[state]\ntopic = \"\"\n\
             [kafka]\nbrokers = \"{}\"\ntopic = \"{topic}\"\ndlq_topic = \"{topic}.dlq\"\ngroup_id = \"{}\"\n\
             [kafka.consumer_properties]\n\"fetch.wait.max.ms\" = \"10\"\n\"statistics.interval.ms\" = \"1000\"\n{consumer_properties}",
            broker.bootstrap(),
            unique_name("group")
        ),
    )
    .unwrap();
    let log = dir.path().join("run.log");
    let mut child = common::spawn_run(&config, &log);

    // Live reports, 20 a second, stamped with the time they are produced
    // (report and record alike). While the broker is down the producer
    // holds them and delivers them once it is back.
    let producing = Arc::new(AtomicBool::new(true));
    let sent = Arc::new(AtomicU64::new(0));
    let producer_thread = {
        let (producing, sent, bootstrap, topic) = (
            producing.clone(),
            sent.clone(),
            broker.bootstrap(),
            topic.clone(),
        );
        std::thread::spawn(move || {
            let producer = test_producer(&bootstrap);
            let mut i = 0u64;
            while producing.load(Ordering::Relaxed) {
                let ts = wall_ms();
                let service = if i.is_multiple_of(2) {
                    "alexa"
                } else {
                    "netflix"
                };
                let value = format!(
                    r#"{{"service":"{service}","region":"GB","ts":{ts},"reporter":"r{i}"}}"#
                );
                let record = BaseRecord::to(&topic)
                    .key(service)
                    .payload(&value)
                    .timestamp(ts);
                if producer.send(record).is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            producer
                .flush(Duration::from_secs(120))
                .expect("every report delivered once the broker is back");
        })
    };

    let value = |name: &str| -> f64 {
        common::logged_addr(&log)
            .and_then(|a| common::sample(&common::scrape(&a), name))
            .unwrap_or(-1.0)
    };
    assert!(
        wait_until(Duration::from_secs(60), || value(
            "outage_radar_reports_counted_total "
        ) > 100.0),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    std::thread::sleep(Duration::from_secs(10));
    let closed_before = value("outage_radar_windows_closed_total ");

    // The broker goes away for well over `idle_timeout` plus the allowed
    // lateness (30 s each): a clock that followed the wall would close at
    // least one window the held reports belong to.
    let down = Instant::now();
    broker.outage(Duration::from_secs(100));
    eprintln!("broker back after {:?}", down.elapsed());
    std::thread::sleep(Duration::from_secs(15));
    producing.store(false, Ordering::Relaxed);
    producer_thread.join().unwrap();
    // What the detector must count once each is what the topic holds: a
    // produce request whose reply the broker's death cut off is retried,
    // and the test's producer (not idempotent) can then write a report
    // twice (2,614 records for 2,613 sends, once on a loaded machine).
    let records = outage_testkit::consume_all(&broker.bootstrap(), &topic, 1);
    let distinct: std::collections::HashSet<&str> =
        records.iter().map(|(_, v)| v.as_str()).collect();
    let delivered = sent.load(Ordering::Relaxed) as usize;
    assert!(
        distinct.len() >= delivered,
        "the broker holds {} of the {delivered} reports delivered",
        distinct.len()
    );
    let total = records.len() as f64;

    let all_in = wait_until(Duration::from_secs(90), || {
        value("outage_radar_reports_counted_total ") >= total
    });
    let (counted, late) = (
        value("outage_radar_reports_counted_total "),
        value("outage_radar_late_reports_total "),
    );
    // Caught up again with the broker up: idle windows close by the wall
    // clock as before (after `idle_timeout`).
    let ticking = wait_until(Duration::from_secs(90), || {
        value("outage_radar_windows_closed_total ") > closed_before.max(0.0) + 1.0
    });
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    child.kill().ok();
    child.wait().ok();
    Outage {
        total,
        counted,
        late,
        all_in,
        ticking,
        log,
    }
}

/// The checks both runs share: every report once, none late, windows
/// close by the wall clock again once caught up.
fn assert_counted_once_none_late(o: &Outage) {
    let text = &o.log;
    assert!(o.all_in, "counted {} of {}\n{text}", o.counted, o.total);
    assert_eq!(o.counted, o.total, "every report once\n{text}");
    assert_eq!(
        o.late, 0.0,
        "reports of the outage found their windows closed\n{text}"
    );
    assert!(
        o.ticking,
        "windows close by the wall clock again after the outage\n{text}"
    );
}

#[test]
fn a_broker_outage_that_costs_the_session_keeps_state_and_counts_once() {
    // librdkafka's default session (45 s) is lost during the outage: the
    // partition is revoked while the broker is away and assigned back
    // once it returns.
    let o = through_an_outage("");
    assert_counted_once_none_late(&o);
    let text = &o.log;
    assert!(
        text.contains("partitions revoked"),
        "the session was not lost\n{text}"
    );
    // It went on with what it had learned (kept at the revoke), not empty.
    assert_eq!(
        text.matches("partition starts detection").count(),
        1,
        "the partition's state was lost\n{text}"
    );
    assert!(text.contains("partition continues from the state kept at its last revoke"));
}

#[test]
fn a_broker_outage_within_the_session_closes_no_window_by_the_wall_clock() {
    // A session longer than the outage: the detector lives through it, and
    // only the wall clock could close its windows meanwhile.
    let o = through_an_outage("\"session.timeout.ms\" = \"240000\"\n");
    assert!(!o.log.contains("partitions revoked"), "{}", o.log);
    assert_counted_once_none_late(&o);
}
