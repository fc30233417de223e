//! `outage-radar demo`: the whole pipeline in one process on librdkafka's
//! in-process mock cluster, replaying a scenario's outage live.
//!
//! The scenario's history (days of normal traffic) warms the detector the
//! way `replay` does — the mock cluster keeps only ~100k messages per
//! partition, so history does not go through it. The live part around the
//! scenario's main outage is produced to the mock cluster on an accelerated
//! clock, and ingest → detect → export run exactly as in `run`, with the
//! status page and /metrics on `--listen`. At the end the demo proves that
//! every produced report was consumed and prints the detection summary.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use outage_detect::time::{format_rfc3339_ms as rfc3339, parse_rfc3339_ms};
use outage_detect::IncidentEvent;
use outage_detect::{decode, DecodeOptions, Detector, Scope, SeriesState};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use crate::config::Config;
use crate::run::{Handles, Hook};

/// Options of `demo`.
pub struct DemoArgs {
    pub scenario: String,
    pub speed: f64,
    pub listen: SocketAddr,
    pub alertmanager: Vec<String>,
    pub duration: Option<Duration>,
}

const MIN: i64 = 60_000;

struct Counted {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl ClientContext for Counted {}

impl ProducerContext for Counted {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_ok() {
            self.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One live message: key, value, event time.
struct Live {
    key: String,
    value: Vec<u8>,
    ts_ms: i64,
}

pub fn demo(args: DemoArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.speed > 0.0 && args.speed.is_finite(),
        "--speed must be a positive number"
    );
    let scenario = crate::simulate::load_scenario(&args.scenario)?;
    let mut truth = scenario.truth();
    eprintln!("demo: generating scenario {} ...", scenario.name);
    let mut buf = Vec::new();
    outage_sim::generate(&scenario, &mut buf).context("cannot generate the scenario")?;

    // The live window: around the outage that is expected to go global
    // (else the first expected incident).
    let starts = |global: bool| {
        truth
            .events
            .iter()
            .filter(|e| e.expect_incident && (!global || e.expect_global))
            .filter_map(|e| parse_rfc3339_ms(&e.start))
            .min()
    };
    let end_ms = parse_rfc3339_ms(&truth.end).context("scenario end")?;
    let anchor = starts(true)
        .or_else(|| starts(false))
        .unwrap_or(end_ms - 60 * MIN);
    let live_start = anchor - 20 * MIN;
    let live_end = (anchor + 70 * MIN).min(end_ms);
    truth.events.retain(|e| {
        parse_rfc3339_ms(&e.start).is_some_and(|s| (live_start..live_end).contains(&s))
    });
    truth.start = rfc3339(live_start);
    truth.end = rfc3339(live_end);

    // History warms the detector; the live part goes through Kafka.
    let mut config = Config::default();
    config.detect.idle_timeout = Duration::from_secs(3600);
    let options = DecodeOptions {
        max_clock_skew_ms: i64::MAX / 4,
        ..DecodeOptions::default()
    };
    let mut warm = Detector::new(config.detect.clone());
    let mut live: Vec<Live> = Vec::new();
    let mut last_ts = live_start;
    let mut history = 0u64;
    for line in buf.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        match decode(line, None, 0, &options) {
            Ok(r) if r.ts_ms < live_start => {
                warm.observe(&r);
                history += 1;
                if history.is_multiple_of(4096) {
                    warm.drain_events().for_each(drop);
                }
            }
            Ok(r) if r.ts_ms < live_end => {
                last_ts = r.ts_ms;
                live.push(Live {
                    key: r.service.to_string(),
                    value: line.to_vec(),
                    ts_ms: r.ts_ms,
                });
            }
            Ok(_) => {}
            // Malformed lines ride along with the live stream (they go to the
            // dead-letter topic).
            Err(_) if last_ts >= live_start && last_ts < live_end => live.push(Live {
                key: String::new(),
                value: line.to_vec(),
                ts_ms: last_ts,
            }),
            Err(_) => {}
        }
    }
    warm.drain_events().for_each(drop);
    drop(buf);
    eprintln!(
        "demo: {history} reports of history warmed {} series; streaming {} reports from {} to {} at {}x ({:.0} s)",
        warm.series_count(),
        live.len(),
        rfc3339(live_start),
        rfc3339(live_end),
        args.speed,
        (live_end - live_start) as f64 / args.speed / 1000.0
    );

    // The embedded Kafka.
    let cluster: MockCluster<'static, _> =
        MockCluster::new(1).context("cannot start the embedded Kafka")?;
    for (topic, partitions) in [("reports", 4), ("reports.dlq", 1), ("incidents", 1)] {
        cluster
            .create_topic(topic, partitions, 1)
            .with_context(|| format!("cannot create topic {topic}"))?;
    }
    let brokers = cluster.bootstrap_servers();
    config.kafka.brokers = brokers.clone();
    config
        .kafka
        .consumer_properties
        .insert("fetch.wait.max.ms".into(), "10".into());
    config.http.listen = args.listen;
    config.alertmanager.urls = args.alertmanager.clone();
    config.alertmanager.generator_url = format!("http://{}/", args.listen);
    config.state.topic = String::new();
    config.validate()?;

    // The producer: paces the live reports by event time / speed.
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    // Set when the hook ends the run because the stream is through (not
    // Ctrl-C, not --duration).
    let finished = Arc::new(AtomicBool::new(false));
    let producer: ThreadedProducer<Counted> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "5")
        .create_with_context(Counted {
            ok: ok.clone(),
            failed: failed.clone(),
        })
        .context("cannot create the demo producer")?;
    let speed = args.speed;
    let producing = {
        let (done, stop) = (done.clone(), stop.clone());
        std::thread::Builder::new()
            .name("demo-producer".into())
            .spawn(move || {
                let t0 = Instant::now();
                for m in &live {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let due = Duration::from_secs_f64(
                        ((m.ts_ms - live_start).max(0) as f64) / speed / 1000.0,
                    );
                    let now = t0.elapsed();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    let mut record = Some(
                        // The record carries the report's time: `run`'s
                        // stream time is the record timestamp.
                        BaseRecord::to("reports")
                            .key(m.key.as_str())
                            .payload(&m.value[..])
                            .timestamp(m.ts_ms),
                    );
                    while let Some(r) = record.take() {
                        if let Err((_, r)) = producer.send(r) {
                            std::thread::sleep(Duration::from_millis(2));
                            record = Some(r);
                        }
                    }
                }
                let _ = producer.flush(Duration::from_secs(30));
                done.store(true, Ordering::Release);
            })
            .context("cannot start the demo producer")?
    };

    // The view, and when to stop.
    let tty = std::io::stdout().is_terminal();
    let started = Instant::now();
    let mut seen_events = 0usize;
    let mut ticks = 0u64;
    let mut settled = 0;
    let (ok_v, failed_v, done_v, finished_v) =
        (ok.clone(), failed.clone(), done.clone(), finished.clone());
    let duration = args.duration;
    let scenario_name = scenario.name.clone();
    let hook = Hook {
        every: Duration::from_millis(500),
        tick: Box::new(move |h: &Handles| {
            ticks += 1;
            let produced = ok_v.load(Ordering::Relaxed) + failed_v.load(Ordering::Relaxed);
            let consumed = h.ingest.messages_consumed.get();
            let (events, next) = h.board.events_since(seen_events);
            seen_events = next;
            if tty {
                draw(h, &scenario_name, speed, produced, consumed);
            } else {
                for (event, i) in events {
                    println!("{}", event_line(event, &i));
                }
                if ticks.is_multiple_of(20) {
                    println!(
                        "[{}] produced {produced} consumed {consumed}",
                        h.board.clock_ms().map(rfc3339).unwrap_or_default()
                    );
                }
            }
            let caught_up = done_v.load(Ordering::Acquire) && consumed >= produced;
            settled = if caught_up { settled + 1 } else { 0 };
            if settled >= 4 {
                finished_v.store(true, Ordering::Release);
                return true;
            }
            duration.is_some_and(|d| started.elapsed() >= d)
        }),
    };
    let handles = crate::run::run_pipeline(config, Some(warm), Some(hook));
    stop.store(true, Ordering::Relaxed);
    let _ = producing.join();
    let handles = handles?;

    // The summary.
    let produced = ok.load(Ordering::Relaxed);
    let consumed = handles.ingest.messages_consumed.get();
    let lost = failed.load(Ordering::Relaxed);
    println!();
    println!("== outage-radar demo: {} ==", scenario.name);
    println!(
        "embedded Kafka: produced {produced}, consumed {consumed}{}",
        if produced == consumed && lost == 0 && finished.load(Ordering::Acquire) {
            " — nothing dropped"
        } else {
            ""
        }
    );
    let dir = tempfile_dir()?;
    let truth_path = dir.join("truth.json");
    std::fs::write(&truth_path, serde_json::to_vec_pretty(&truth)?)?;
    let incidents_path = dir.join("incidents.jsonl");
    let mut out = std::fs::File::create(&incidents_path)?;
    for i in handles.board.all_incidents() {
        serde_json::to_writer(&mut out, &outage_export::incident_json(&i))?;
        writeln!(out)?;
    }
    drop(out);
    let window_minutes = Duration::from_secs(60).as_secs_f64() / 60.0;
    let bars = crate::evaluate::Bars {
        min_recall: Some(1.0),
        max_median_delay_windows: Some(2.0),
        max_delay_windows: Some(4.0),
        // Any false incident in the demo's window fails.
        max_false_per_30d: Some(0.0),
        max_global_delay_minutes: Some(5.0),
    };
    let passed = crate::evaluate::evaluate(&truth_path, &incidents_path, window_minutes, &bars)?;
    let _ = std::fs::remove_dir_all(&dir);
    if !finished.load(Ordering::Acquire) {
        println!("(stopped before the stream was through: the figures above cover what was seen)");
        return Ok(());
    }
    anyhow::ensure!(
        produced == consumed && lost == 0,
        "reports were lost on the embedded Kafka: produced {produced}, consumed {consumed}, failed {lost}"
    );
    anyhow::ensure!(passed, "the demo's detection bars failed (see above)");
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("outage-radar-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// One incident event as a log line (non-terminal output).
fn event_line(event: IncidentEvent, i: &outage_detect::Incident) -> String {
    let at = match event {
        IncidentEvent::Resolved => i.resolved_at_ms.unwrap_or(i.detected_at_ms),
        _ => i.detected_at_ms,
    };
    let what = match i.scope {
        Scope::Region(c) => format!("{} outage in {}", i.service, c.as_str()),
        Scope::Global => format!(
            "{} GLOBAL outage, spread {}",
            i.service,
            i.regions
                .iter()
                .map(|r| format!(
                    "{} {}",
                    r.region.as_str(),
                    &rfc3339(r.started_at_ms)[11..16]
                ))
                .collect::<Vec<_>>()
                .join(" → ")
        ),
    };
    format!(
        "[{}] incident {}: {what} (started {}, peak {:.1}x)",
        rfc3339(at),
        event.as_str(),
        &rfc3339(i.started_at_ms)[11..16],
        i.peak_ratio
    )
}

/// Redraws the terminal view in place.
fn draw(h: &Handles, scenario: &str, speed: f64, produced: u64, consumed: u64) {
    let mut s = String::new();
    s.push_str("\x1b[H\x1b[2J");
    s.push_str(&format!(
        "outage-radar demo — {scenario} at {speed}x — event time {} — produced {produced} · consumed {consumed}\n\n",
        h.board.clock_ms().map(rfc3339).unwrap_or_else(|| "–".into())
    ));
    let mut rows = h.series.snapshot();
    rows.sort_by(|a, b| {
        let rank = |s: SeriesState| match s {
            SeriesState::Outage => 0,
            SeriesState::Pending => 1,
            SeriesState::Normal => 2,
        };
        rank(a.2.state)
            .cmp(&rank(b.2.state))
            .then(b.2.observed.cmp(&a.2.observed))
    });
    s.push_str(&format!(
        "{:<10} {:<7} {:<8} {:>8} {:>9} {:>9}\n",
        "SERVICE", "REGION", "STATE", "REPORTS", "EXPECTED", "SURPRISE"
    ));
    for (service, scope, w) in rows.iter().take(18) {
        let color = match w.state {
            SeriesState::Outage => "\x1b[31;1m",
            SeriesState::Pending => "\x1b[33m",
            SeriesState::Normal => "\x1b[32m",
        };
        s.push_str(&format!(
            "{service:<10} {:<7} {color}{:<8}\x1b[0m {:>8} {:>9.1} {:>9.1}\n",
            scope.label(),
            w.state.as_str(),
            w.observed,
            w.expected,
            w.surprise
        ));
    }
    s.push_str("\nINCIDENTS\n");
    for i in h.board.all_incidents().iter().rev().take(12) {
        let state = if i.resolved_at_ms.is_some() {
            "resolved"
        } else {
            "OPEN"
        };
        s.push_str(&format!(
            "  {state:<8} {}\n",
            event_line(IncidentEvent::Opened, i)
        ));
    }
    s.push_str(&format!(
        "\nstatus page http://{}/ · metrics http://{}/metrics · Ctrl-C stops\n",
        h.addr, h.addr
    ));
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}
