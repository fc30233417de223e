//! The ingester against a real Kafka-compatible broker (tansu, started by
//! outage-testkit): counts, dead letters, committed offsets, restarts.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use outage_detect::DecodeOptions;
use outage_ingest::{IngestMetrics, Ingester, Shutdown};
use outage_testkit::{unique_name, Tansu};

const PARTITIONS: i32 = 4;

fn setup(broker: &Tansu) -> (String, String, String) {
    let topic = unique_name("reports");
    let dlq = format!("{topic}.dlq");
    broker.create_topic(&topic, PARTITIONS, false);
    broker.create_topic(&dlq, PARTITIONS, false);
    (topic, dlq, unique_name("group"))
}

/// Runs an ingester on a thread until `until` is satisfied, then stops it
/// gracefully and returns its summary.
fn run_until(
    config: &outage_ingest::KafkaConfig,
    recorded: &Recorded,
    until: impl FnOnce(&Recorded),
) -> outage_ingest::IngestSummary {
    let ingester = Ingester::new(
        config,
        DecodeOptions::default(),
        RecordingSink(recorded.clone()),
        IngestMetrics::unregistered(),
    )
    .expect("ingester starts");
    let (shutdown, handle) = start(ingester);
    until(recorded);
    shutdown.trigger();
    handle
        .join()
        .expect("ingester thread")
        .expect("ingester ran")
        .0
}

/// What an ingester thread returns.
type Run<S> =
    std::thread::JoinHandle<Result<(outage_ingest::IngestSummary, S), outage_ingest::IngestError>>;

/// Runs `ingester` on a thread; trigger the returned [`Shutdown`] and join.
fn start<S: outage_ingest::ReportSink + Send + 'static>(
    ingester: Ingester<S>,
) -> (Shutdown, Run<S>) {
    let shutdown = Shutdown::new();
    let handle = {
        let shutdown = shutdown.clone();
        std::thread::spawn(move || ingester.run(&shutdown))
    };
    (shutdown, handle)
}

/// An ingester keeping its state in `state_topic`, snapshotting every
/// 200 ms and giving a snapshot `load_timeout` to load.
fn with_snapshots<S: outage_ingest::ReportSink + Send + 'static>(
    config: &outage_ingest::KafkaConfig,
    state_topic: &str,
    load_timeout: Duration,
    sink: S,
    metrics: IngestMetrics,
) -> Ingester<S> {
    Ingester::new(config, DecodeOptions::default(), sink, metrics)
        .unwrap()
        .with_state(
            config,
            &outage_ingest::StateConfig {
                topic: state_topic.to_string(),
                interval: Duration::from_millis(200),
                load_timeout,
                ..outage_ingest::StateConfig::default()
            },
        )
        .unwrap()
}

/// A good report of now, from reporter `r{i}`.
fn report_now(i: usize) -> String {
    format!(
        r#"{{"service":"alexa","region":"GB","ts":{},"problem":"login","reporter":"r{i}"}}"#,
        now_ms()
    )
}

/// Sends `payloads` to partition 0 of `topic`, keyed `alexa`.
fn send_to_partition0(
    producer: &rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext>,
    topic: &str,
    payloads: &[&[u8]],
) {
    for payload in payloads {
        let record = rdkafka::producer::BaseRecord::<[u8], [u8]>::to(topic)
            .partition(0)
            .key(b"alexa".as_slice())
            .payload(payload);
        outage_testkit::send_blocking(producer, record);
    }
}

#[test]
fn counts_every_good_report_and_dead_letters_every_bad_one() {
    let broker = Tansu::start();
    let (topic, dlq, group) = setup(&broker);
    let msgs = report_stream(100_000, 1_000);
    let expected_bad: BTreeMap<String, usize> =
        msgs.iter()
            .filter_map(|m| m.bad)
            .fold(BTreeMap::new(), |mut acc, r| {
                *acc.entry(r.to_string()).or_default() += 1;
                acc
            });
    assert_eq!(expected_bad.values().sum::<usize>(), 1_000);
    assert!(expected_bad.len() >= 5, "{expected_bad:?}");
    produce(&broker.bootstrap(), &topic, &msgs);

    let recorded = Recorded::default();
    let summary = run_until(
        &kafka_config(&broker.bootstrap(), &topic, &dlq, &group),
        &recorded,
        |r| {
            r.wait_for(99_000, Duration::from_secs(180));
            // Let any extra (wrong) report arrive before counting.
            std::thread::sleep(Duration::from_millis(500));
        },
    );

    assert_eq!(
        recorded.len(),
        99_000,
        "exactly the good reports are counted"
    );
    assert_eq!(summary.consumed, 100_000);
    assert_eq!(summary.decoded, 99_000);
    assert_eq!(summary.dead_lettered_total(), 1_000);
    assert_eq!(summary.unacknowledged_dead_letters, 0);

    // The dead-letter topic holds exactly the bad messages, each with its
    // reason, origin and original key, value and headers.
    let dead = read_topic(&broker.bootstrap(), &dlq, 1_000);
    assert_eq!(dead.len(), 1_000);
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    for m in &dead {
        let reason = header(m, "outage-radar.reason").expect("reason header");
        *by_reason.entry(reason.clone()).or_default() += 1;
        assert_eq!(
            header(m, "outage-radar.source.topic").as_deref(),
            Some(topic.as_str())
        );
        let seq: usize = header(m, "test-seq")
            .expect("original header kept")
            .parse()
            .unwrap();
        let original = &msgs[seq];
        assert_eq!(
            original.bad,
            Some(reason.as_str()),
            "message {seq} rejected for the right reason"
        );
        use rdkafka::Message;
        assert_eq!(m.payload(), Some(&original.value[..]));
        assert_eq!(m.key(), Some(&original.key[..]));
        assert!(!header(m, "outage-radar.error")
            .unwrap_or_default()
            .is_empty());
        let partition: i32 = header(m, "outage-radar.source.partition")
            .unwrap()
            .parse()
            .unwrap();
        let offset: i64 = header(m, "outage-radar.source.offset")
            .unwrap()
            .parse()
            .unwrap();
        assert!((0..PARTITIONS).contains(&partition) && offset >= 0);
    }
    assert_eq!(by_reason, expected_bad);

    // Every message was handled, so the group committed the end offsets.
    assert_eq!(
        committed_offsets(&broker.bootstrap(), &group, &topic, PARTITIONS),
        end_offsets(&broker.bootstrap(), &topic, PARTITIONS)
    );
}

#[test]
fn graceful_stop_and_restart_counts_every_report_exactly_once() {
    let broker = Tansu::start();
    let (topic, dlq, group) = setup(&broker);
    let msgs = report_stream(60_000, 300);
    produce(&broker.bootstrap(), &topic, &msgs);
    let config = kafka_config(&broker.bootstrap(), &topic, &dlq, &group);

    let first = Recorded::default();
    run_until(&config, &first, |r| {
        r.wait_for(20_000, Duration::from_secs(120))
    });
    let first_count = first.len();
    assert!(first_count < 59_700, "stopped mid-stream ({first_count})");

    let second = Recorded::default();
    run_until(&config, &second, |r| {
        r.wait_for(59_700 - first_count, Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(500));
    });

    let mut seen = BTreeSet::new();
    for (pos, _, _) in first
        .0
        .lock()
        .unwrap()
        .iter()
        .chain(second.0.lock().unwrap().iter())
    {
        assert!(
            seen.insert((pos.partition, pos.offset)),
            "counted twice: {pos:?}"
        );
    }
    assert_eq!(
        seen.len(),
        59_700,
        "every good report counted exactly once across both runs"
    );
    assert_eq!(
        read_topic(&broker.bootstrap(), &dlq, 300).len(),
        300,
        "no bad message dead-lettered twice"
    );
}

#[test]
fn kill_without_commit_then_restart_counts_every_report_at_least_once() {
    let broker = Tansu::start();
    let (topic, dlq, group) = setup(&broker);
    let msgs = report_stream(40_000, 200);
    produce(&broker.bootstrap(), &topic, &msgs);
    let probe = env!("CARGO_BIN_EXE_outage-ingest-probe");
    let spawn = || {
        Command::new(probe)
            .args([
                "--brokers",
                &broker.bootstrap(),
                "--topic",
                &topic,
                "--dlq-topic",
                &dlq,
                "--group",
                &group,
            ])
            .args(["--property", "fetch.wait.max.ms=5"])
            // The killed member must time out of the group before the next run
            // gets its partitions; keep that short.
            .args(["--property", "session.timeout.ms=6000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("probe starts")
    };

    // First run: killed with SIGKILL mid-stream, so nothing is committed
    // on the way out; only what auto-commit already stored survives.
    let mut child = spawn();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen: BTreeMap<(i32, i64), u32> = BTreeMap::new();
    let parse = |line: String| -> (i32, i64) {
        let mut it = line.split_whitespace();
        (
            it.next().unwrap().parse().unwrap(),
            it.next().unwrap().parse().unwrap(),
        )
    };
    for line in lines.by_ref().take(15_000) {
        *seen.entry(parse(line.unwrap())).or_default() += 1;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Whatever was already written to the pipe was handled by the sink.
    for line in lines.map_while(Result::ok) {
        *seen.entry(parse(line)).or_default() += 1;
    }
    let first = seen.len();
    assert!(first < 39_800, "killed mid-stream");

    // Second run resumes from the last commit and finishes the topic.
    let mut child = spawn();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut second = 0usize;
    for line in lines.map_while(Result::ok) {
        *seen.entry(parse(line)).or_default() += 1;
        second += 1;
        if seen.len() == 39_800 {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        seen.len(),
        39_800,
        "every good report counted at least once ({second} in the second run)"
    );
    let ends = end_offsets(&broker.bootstrap(), &topic, PARTITIONS);
    for &(p, o) in seen.keys() {
        assert!(o < ends[&p]);
    }
    // Re-delivery after a crash is expected, but only of what came after
    // the last auto-commit: never more than the first run saw.
    let redelivered = seen.values().filter(|&&n| n > 1).count();
    assert!(
        redelivered <= first,
        "{redelivered} redelivered > {first} seen before the kill"
    );
}

#[test]
fn a_report_without_ts_is_placed_at_its_message_timestamp() {
    let broker = Tansu::start();
    let (topic, dlq, group) = setup(&broker);
    let ts = now_ms() - 120_000;
    let msgs = vec![
        Msg {
            key: b"alexa".to_vec(),
            value: br#"{"service":"alexa","region":"GB"}"#.to_vec(),
            ts_ms: ts,
            bad: None,
        },
        Msg {
            key: b"alexa".to_vec(),
            value: br#"{"service":"alexa","region":"GB","ts":"2023-11-14T22:13:20Z"}"#.to_vec(),
            ts_ms: ts,
            bad: None,
        },
    ];
    produce(&broker.bootstrap(), &topic, &msgs);
    let recorded = Recorded::default();
    run_until(
        &kafka_config(&broker.bootstrap(), &topic, &dlq, &group),
        &recorded,
        |r| r.wait_for(2, Duration::from_secs(60)),
    );
    let got = recorded.0.lock().unwrap().clone();
    let mut ts_of: Vec<(i64, Option<i64>)> = got
        .iter()
        .map(|(pos, ts, _)| (*ts, pos.kafka_ts_ms))
        .collect();
    ts_of.sort();
    assert_eq!(ts_of, vec![(1_700_000_000_000, Some(ts)), (ts, Some(ts))]);
}

/// Reports are keyed by service so that one detector sees all of a service.
/// One keyed by another service, or not keyed, is counted all the same (no
/// report is lost) and counted as mis-keyed, so the operator can fix the
/// producer.
#[test]
fn mis_keyed_reports_are_counted_and_kept() {
    let broker = Tansu::start();
    let (topic, dlq, group) = setup(&broker);
    let ts = now_ms() - 60_000;
    let report = |service: &str| {
        format!(r#"{{"service":"{service}","region":"GB","ts":{ts}}}"#).into_bytes()
    };
    let msgs = vec![
        Msg {
            key: b"alexa".to_vec(),
            value: report("alexa"),
            ts_ms: ts,
            bad: None,
        },
        Msg {
            key: b"netflix".to_vec(),
            value: report("alexa"),
            ts_ms: ts,
            bad: None,
        },
        Msg {
            key: Vec::new(),
            value: report("steam"),
            ts_ms: ts,
            bad: None,
        },
    ];
    produce(&broker.bootstrap(), &topic, &msgs);
    let recorded = Recorded::default();
    let summary = run_until(
        &kafka_config(&broker.bootstrap(), &topic, &dlq, &group),
        &recorded,
        |r| r.wait_for(3, Duration::from_secs(60)),
    );
    assert_eq!(recorded.0.lock().unwrap().len(), 3, "every report is kept");
    assert_eq!(summary.mis_keyed, 2, "{summary:?}");
    assert_eq!(summary.dead_lettered_total(), 0, "{summary:?}");
}

/// A dead letter bigger than the producer takes (here a 2 MB message,
/// dead-lettered as too large, whose letter the producer's 1 MB
/// `message.max.bytes` refuses): it goes out truncated with a header that
/// says so, and offsets are committed past it. Before, it was never sent
/// and no offset of its partition was committed again.
#[test]
fn a_dead_letter_too_large_for_the_producer_goes_out_truncated_and_commits_go_on() {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let broker = Tansu::start();
    let (topic, dlq, group) = setup(&broker);
    let producer: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("message.max.bytes", "4000000")
        .create()
        .unwrap();
    let big = vec![b'x'; 2 << 20];
    let lines = [
        report_now(0).into_bytes(),
        big.clone(),
        report_now(1).into_bytes(),
    ];
    for line in &lines {
        let record = BaseRecord::<[u8], [u8]>::to(&topic)
            .partition(0)
            .key(b"alexa".as_slice())
            .payload(line.as_slice());
        outage_testkit::send_blocking(&producer, record);
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    let recorded = Recorded::default();
    let summary = run_until(
        &kafka_config(&broker.bootstrap(), &topic, &dlq, &group),
        &recorded,
        |r| {
            r.wait_for(2, Duration::from_secs(60));
            std::thread::sleep(Duration::from_secs(2));
        },
    );
    assert_eq!(recorded.len(), 2);
    assert_eq!(summary.dead_lettered_total(), 1);
    assert_eq!(summary.unacknowledged_dead_letters, 0);
    let dead = read_topic(&broker.bootstrap(), &dlq, 1);
    assert_eq!(dead.len(), 1);
    use rdkafka::Message;
    assert_eq!(
        header(&dead[0], "outage-radar.truncated").as_deref(),
        Some(format!("value of {} bytes", big.len()).as_str())
    );
    assert_eq!(
        header(&dead[0], "outage-radar.source.offset").as_deref(),
        Some("1")
    );
    assert_eq!(dead[0].payload(), Some(&big[..64 << 10]));
    assert_eq!(
        committed_offsets(&broker.bootstrap(), &group, &topic, PARTITIONS).get(&0),
        Some(&3),
        "offsets committed past the big message"
    );
}

/// The dead-letter topic does not exist when a bad message arrives: good
/// reports go on being counted, the bad message's offset is held back (no
/// commit passes it, so nothing is lost if the radar stops), and once the
/// topic is created the letter is delivered and commits go past it.
#[test]
fn a_missing_dead_letter_topic_holds_offsets_back_until_it_exists() {
    let broker = Tansu::start();
    let topic = unique_name("reports");
    let dlq = format!("{topic}.dlq");
    let group = unique_name("group");
    broker.create_topic(&topic, 1, false);
    let lines = [report_now(0), "not json".to_string(), report_now(1)];
    broker.produce(&topic, lines.iter().map(|l| ("alexa", l)));

    let recorded = Recorded::default();
    let committed_while_missing = std::cell::Cell::new(None);
    let summary = run_until(
        &kafka_config(&broker.bootstrap(), &topic, &dlq, &group),
        &recorded,
        |r| {
            r.wait_for(2, Duration::from_secs(60));
            // Auto-commit runs every 5 s: give it time to (wrongly) pass
            // the bad message.
            std::thread::sleep(Duration::from_secs(7));
            committed_while_missing.set(
                committed_offsets(&broker.bootstrap(), &group, &topic, 1)
                    .get(&0)
                    .copied(),
            );
            broker.create_topic(&dlq, 1, false);
            assert_eq!(
                read_topic(&broker.bootstrap(), &dlq, 1).len(),
                1,
                "the letter arrives once its topic exists"
            );
        },
    );
    assert_eq!(recorded.len(), 2, "good reports counted meanwhile");
    assert!(
        committed_while_missing.get().unwrap_or(-1) <= 1,
        "committed past the bad message while its letter was undelivered: {:?}",
        committed_while_missing.get()
    );
    assert_eq!(summary.unacknowledged_dead_letters, 0);
    assert_eq!(
        committed_offsets(&broker.bootstrap(), &group, &topic, 1).get(&0),
        Some(&3),
        "commits go past it once delivered"
    );
}

/// With state snapshots on, a steady trickle of bad messages through a
/// producer that lingers (`linger.ms = 300`, as operators set it for
/// throughput) keeps a dead letter in flight at every moment. Snapshots —
/// and the commits that follow them — must still progress: each is taken
/// on time and written once the letters below its offset are in. Before,
/// a snapshot needed a moment with no letter in flight, and got none until
/// the trickle stopped.
#[test]
fn snapshots_keep_progressing_under_a_steady_trickle_of_bad_messages() {
    use rdkafka::producer::Producer;
    let broker = Tansu::start();
    let (topic, dlq, group) = setup(&broker);
    let state_topic = format!("{topic}.state");
    broker.create_topic(&state_topic, 1, true);
    let mut config = kafka_config(&broker.bootstrap(), &topic, &dlq, &group);
    config
        .producer_properties
        .insert("linger.ms".into(), "300".into());
    let metrics = IngestMetrics::unregistered();
    let written = metrics
        .state_snapshots
        .with_label_values(&[outage_ingest::metrics::SnapshotResult::Written.as_str()]);
    let ingester = with_snapshots(
        &config,
        &state_topic,
        Duration::from_secs(60),
        outage_ingest::CountingSink::default(),
        metrics.clone(),
    );
    let (shutdown, handle) = start(ingester);
    // Four seconds of a good and a bad message every 50 ms on partition 0.
    let producer = outage_testkit::test_producer(&broker.bootstrap());
    let start = std::time::Instant::now();
    let mut i = 0usize;
    while start.elapsed() < Duration::from_secs(4) {
        let good = report_now(i);
        send_to_partition0(&producer, &topic, &[good.as_bytes(), b"not json"]);
        producer.poll(Duration::ZERO);
        i += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let written_during = written.get();
    producer.flush(Duration::from_secs(30)).unwrap();
    shutdown.trigger();
    let summary = handle.join().unwrap().unwrap().0;
    assert!(summary.dead_lettered_total() >= 40, "{summary:?}");
    assert_eq!(summary.unacknowledged_dead_letters, 0);
    assert!(
        written_during >= 3,
        "only {written_during} snapshots written during 4 s of the trickle"
    );
}

/// A steady trickle (a report every 50 ms) never leaves `poll` idle and
/// takes long to add up to a thousand messages: offsets must still be
/// stored and committed as it goes, not only when it stops.
#[test]
fn a_steady_trickle_of_reports_is_committed_as_it_goes() {
    let broker = Tansu::start();
    let (topic, dlq, group) = setup(&broker);
    let config = kafka_config(&broker.bootstrap(), &topic, &dlq, &group);
    let ingester = Ingester::new(
        &config,
        DecodeOptions::default(),
        outage_ingest::CountingSink::default(),
        IngestMetrics::unregistered(),
    )
    .unwrap();
    let (shutdown, handle) = start(ingester);
    let producer = outage_testkit::test_producer(&broker.bootstrap());
    let start = std::time::Instant::now();
    let mut i = 0usize;
    let mut committed_during = None;
    while start.elapsed() < Duration::from_secs(8) {
        let good = report_now(i);
        send_to_partition0(&producer, &topic, &[good.as_bytes()]);
        producer.poll(Duration::ZERO);
        i += 1;
        std::thread::sleep(Duration::from_millis(50));
        // librdkafka commits what is stored every 5 s.
        if committed_during.is_none() && start.elapsed() > Duration::from_secs(7) {
            committed_during = committed_offsets(&broker.bootstrap(), &group, &topic, 1)
                .get(&0)
                .copied();
        }
    }
    shutdown.trigger();
    handle.join().unwrap().unwrap();
    assert!(
        committed_during.is_some_and(|c| c >= 20),
        "committed while the trickle ran: {committed_during:?} of {i}"
    );
}

/// The state topic cannot be read in time when a partition is assigned
/// (here: `load_timeout` of 1 ms). The partition runs from its committed
/// offset with empty state, but its good snapshot is not overwritten by
/// that state: the next assignment restores it and counts every report
/// exactly once. Before, the first snapshot of the empty state replaced
/// it, and the reports before it were lost from the count.
#[test]
fn a_state_topic_too_slow_at_assignment_is_waited_for_and_its_snapshot_used() {
    let broker = Tansu::start();
    let (topic, dlq, group) = setup(&broker);
    let state_topic = format!("{topic}.state");
    broker.create_topic(&state_topic, 1, true);
    let config = kafka_config(&broker.bootstrap(), &topic, &dlq, &group);
    let producer = outage_testkit::test_producer(&broker.bootstrap());
    let produce = |from: usize, n: usize| {
        for i in from..from + n {
            send_to_partition0(&producer, &topic, &[report_now(i).as_bytes()]);
        }
    };
    // Runs until `n` reports were counted and a few snapshot intervals
    // passed; returns the sink's total (restored count plus new reports).
    let run = |load_timeout: Duration, n: u64, waits: bool| -> u64 {
        let counted = prometheus::IntCounter::new("counted", "counted").unwrap();
        let metrics = IngestMetrics::unregistered();
        let ingester = with_snapshots(
            &config,
            &state_topic,
            load_timeout,
            outage_ingest::CountingSink::with_counter(counted.clone()),
            metrics.clone(),
        );
        let (shutdown, handle) = start(ingester);
        let mut waited = false;
        assert!(
            outage_testkit::wait_until(Duration::from_secs(60), || {
                waited |= metrics.waiting_for_state.get() > 0;
                // Nothing is counted while the partition waits.
                assert!(
                    metrics.waiting_for_state.get() == 0 || counted.get() == 0,
                    "counted while waiting for its state"
                );
                counted.get() >= n
            }),
            "{} of {n} reports counted",
            counted.get()
        );
        assert_eq!(waited, waits, "waited for the state");
        assert_eq!(metrics.waiting_for_state.get(), 0);
        std::thread::sleep(Duration::from_secs(1));
        shutdown.trigger();
        handle.join().unwrap().unwrap().1.total
    };
    produce(0, 100);
    assert_eq!(run(Duration::from_secs(10), 100, false), 100);
    produce(100, 50);
    // The snapshot cannot be read in time at assignment (a slow state
    // topic): the partition waits, paused and not ready, and the read is
    // retried with more time; then the good snapshot (100) is restored and
    // the 50 new reports counted on top, each once.
    assert_eq!(run(Duration::from_millis(1), 50, true), 150);
}
