//! Ingest throughput against a real broker (tansu), as a ratio to a bare
//! rdkafka consume loop over the same topic in the same run.
//!
//! `cargo bench -p outage-ingest --bench ingest` (needs tansu: scripts/test
//! installs it). Each side consumes the whole topic with a fresh group; time
//! runs from the first message to the last, so group joins are excluded.
//! Sides alternate, five rounds each; the median of the per-round ratios is
//! reported (the machine is shared, so a round's sides run back to back).

use std::time::{Duration, Instant};

use outage_detect::{DecodeOptions, Report};
use outage_ingest::{IngestMetrics, Ingester, KafkaConfig, Position, ReportSink, Shutdown};
use outage_testkit::{unique_name, Tansu};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message};

const MESSAGES: usize = 1_000_000;
const PARTITIONS: i32 = 4;
/// Both sides use the same consumer settings. Against tansu, librdkafka's
/// defaults stall fetching: 500 ms fetch waits, and a 100k-message prefetch
/// queue that a consumer doing real work per message drains faster than
/// tansu refills it (measured: 48k msg/s at 10k, 160k at 100k, 536k at 1M
/// for a loop that decodes).
const FETCH_WAIT_MAX_MS: &str = "5";
const QUEUED_MIN_MESSAGES: &str = "1000000";

fn produce(bootstrap: &str, topic: &str) -> usize {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let services = [
        "alexa", "aws.s3", "netflix", "whatsapp", "psn", "outlook", "fortnite", "paypal", "steam",
        "uber",
    ];
    let regions = [
        "GB", "US-CA", "DE", "FR", "JP", "AU", "BR", "IN", "ES", "US-NY", "IT", "NL",
    ];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut bytes = 0;
    for i in 0..MESSAGES {
        let service = services[i % services.len()];
        let value = format!(
            r#"{{"service":"{service}","region":"{}","ts":{},"problem":"voice","reporter":"u{:06}","source":"app"}}"#,
            regions[i * 7 % regions.len()],
            now - 600_000 + (i as i64 % 600_000),
            i * 7919 % 1_000_000
        );
        bytes += value.len();
        let mut record = Some(BaseRecord::to(topic).key(service).payload(&value));
        while let Some(r) = record.take() {
            if let Err((_, r)) = producer.send(r) {
                std::thread::sleep(Duration::from_millis(2));
                record = Some(r);
            }
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    bytes / MESSAGES
}

/// A subscribed consumer for the loops below, with a fresh group and the
/// settings every side shares.
fn loop_consumer(bootstrap: &str, topic: &str, group: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_name(group))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", FETCH_WAIT_MAX_MS)
        .set("queued.min.messages", QUEUED_MIN_MESSAGES)
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    consumer
}

/// A consume loop with nothing of ours in it. With `decode_and_store` it
/// also decodes each report and stores its offset every 2048 messages: the
/// least an at-least-once consumer of this format must do.
fn bare_loop(bootstrap: &str, topic: &str, decode_and_store: bool) -> Duration {
    let consumer = loop_consumer(bootstrap, topic, "bare");
    let opts = DecodeOptions::default();
    let mut n = 0;
    let mut sum = 0usize;
    let mut start = None;
    while n < MESSAGES {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            start.get_or_insert_with(Instant::now);
            let payload = m.payload().unwrap_or_default();
            sum += payload.len();
            if decode_and_store {
                let r = outage_detect::decode(payload, None, i64::MAX / 4, &opts);
                sum += r.map_or(0, |r| r.ts_ms as usize & 1);
                if n % 2048 == 0 {
                    let _ = consumer.store_offset(topic, m.partition(), m.offset());
                }
            }
            n += 1;
        }
    }
    std::hint::black_box(sum);
    start.unwrap().elapsed()
}

/// The bare loop with decoding moved to a second thread: the consumer
/// thread copies payloads into 1024-message batches (one buffer each,
/// recycled) and a decoder thread decodes them. An upper bound for an
/// ingester that decodes off the consumer thread.
fn pipelined_loop(bootstrap: &str, topic: &str) -> Duration {
    const BATCH: usize = 1024;
    struct Batch {
        bytes: Vec<u8>,
        ends: Vec<usize>,
    }
    let consumer = loop_consumer(bootstrap, topic, "pipe");
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Batch>(4);
    let (free_tx, free_rx) = std::sync::mpsc::channel::<Batch>();
    for _ in 0..6 {
        free_tx
            .send(Batch {
                bytes: Vec::with_capacity(BATCH * 128),
                ends: Vec::with_capacity(BATCH),
            })
            .unwrap();
    }
    let decoder = std::thread::spawn(move || {
        let opts = DecodeOptions::default();
        let (mut decoded, mut sum) = (0usize, 0usize);
        while let Ok(mut b) = full_rx.recv() {
            let mut from = 0;
            for &end in &b.ends {
                let r = outage_detect::decode(&b.bytes[from..end], None, i64::MAX / 4, &opts);
                sum += r.map_or(0, |r| r.ts_ms as usize & 1);
                decoded += 1;
                from = end;
            }
            b.bytes.clear();
            b.ends.clear();
            if free_tx.send(b).is_err() {
                break;
            }
        }
        std::hint::black_box(sum);
        (decoded, Instant::now())
    });
    let mut n = 0;
    let mut start = None;
    let mut batch = free_rx.recv().unwrap();
    while n < MESSAGES {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            start.get_or_insert_with(Instant::now);
            batch
                .bytes
                .extend_from_slice(m.payload().unwrap_or_default());
            batch.ends.push(batch.bytes.len());
            n += 1;
            if batch.ends.len() == BATCH || n == MESSAGES {
                full_tx.send(batch).unwrap();
                batch = free_rx.recv().unwrap();
                if n % 2048 < BATCH {
                    let _ = consumer.store_offset(topic, m.partition(), m.offset());
                }
            }
        }
    }
    drop(full_tx);
    let (decoded, end) = decoder.join().unwrap();
    assert_eq!(decoded, MESSAGES);
    end - start.unwrap()
}

/// Times the reports handed to it; returned by `Ingester::run`, so it
/// needs no lock.
struct TimingSink {
    start: Option<Instant>,
    end: Option<Instant>,
    n: usize,
    shutdown: Shutdown,
}

impl ReportSink for TimingSink {
    fn accept(&mut self, _at: Position, report: &Report<'_>) {
        self.start.get_or_insert_with(Instant::now);
        self.n += 1;
        std::hint::black_box(report.ts_ms);
        if self.n == MESSAGES {
            self.end = Some(Instant::now());
            self.shutdown.trigger();
        }
    }
}

fn ingester(bootstrap: &str, topic: &str) -> Duration {
    let mut config = KafkaConfig {
        brokers: bootstrap.into(),
        topic: topic.into(),
        dlq_topic: format!("{topic}.dlq"),
        group_id: unique_name("ours"),
        ..KafkaConfig::default()
    };
    // The same consumer settings as the loops it is compared with.
    for (k, v) in [
        ("fetch.wait.max.ms", FETCH_WAIT_MAX_MS),
        ("queued.min.messages", QUEUED_MIN_MESSAGES),
    ] {
        config.consumer_properties.insert(k.into(), v.into());
    }
    let shutdown = Shutdown::new();
    let sink = TimingSink {
        start: None,
        end: None,
        n: 0,
        shutdown: shutdown.clone(),
    };
    let ingester = Ingester::new(
        &config,
        DecodeOptions::default(),
        sink,
        IngestMetrics::unregistered(),
    )
    .unwrap();
    let (summary, sink) = ingester.run(&shutdown).unwrap();
    assert_eq!(summary.decoded as usize, MESSAGES);
    sink.end.unwrap() - sink.start.unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` / nextest listing: nothing to run quickly.
    }
    let broker = Tansu::start();
    let topic = unique_name("bench");
    broker.create_topic(&topic, PARTITIONS, false);
    broker.create_topic(&format!("{topic}.dlq"), PARTITIONS, false);
    let avg = produce(&broker.bootstrap(), &topic);
    println!("topic: {MESSAGES} messages, {PARTITIONS} partitions, {avg} bytes average");
    let (mut bare, mut minimal, mut ours, mut piped) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let rate = |d: Duration| MESSAGES as f64 / d.as_secs_f64();
    let mut ratios = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=5 {
        let b = rate(bare_loop(&broker.bootstrap(), &topic, false));
        let m = rate(bare_loop(&broker.bootstrap(), &topic, true));
        let o = rate(ingester(&broker.bootstrap(), &topic));
        let p = rate(pipelined_loop(&broker.bootstrap(), &topic));
        println!(
            "round {round}: bare {b:>9.0}  bare+decode+store {m:>9.0}  ingester {o:>9.0}  \
             bare+decode-on-2nd-thread {p:>9.0} msg/s   ingester/bare {:.2}  \
             ingester/(bare+decode+store) {:.2}  decode-on-2nd-thread/bare {:.2}",
            o / b,
            o / m,
            p / b
        );
        ratios.0.push(o / b);
        ratios.1.push(o / m);
        ratios.2.push(p / b);
        piped.push(p);
        bare.push(b);
        minimal.push(m);
        ours.push(o);
    }
    let (b, m, o, p) = (median(bare), median(minimal), median(ours), median(piped));
    println!(
        "median: bare {b:.0}, bare+decode+store {m:.0}, ingester {o:.0}, \
         bare+decode-on-2nd-thread {p:.0} msg/s; ingester/bare {:.2}, \
         ingester/(bare+decode+store) {:.2}, decode-on-2nd-thread/bare {:.2}",
        o / b,
        o / m,
        p / b
    );
    println!(
        "median of per-round ratios: ingester/bare {:.2}, ingester/(bare+decode+store) {:.2}, \
         decode-on-2nd-thread/bare {:.2}",
        median(ratios.0),
        median(ratios.1),
        median(ratios.2)
    );
}
