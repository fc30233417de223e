//! Helpers shared by the ingester's integration tests: producing report
//! streams with known bad messages, reading topics back, recording sinks.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outage_detect::Report;
use outage_ingest::{Position, ReportSink};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

pub const BASE_TS: i64 = 1_700_000_000_000;

/// One message to produce and what the ingester must make of it.
#[derive(Clone, Debug)]
pub struct Msg {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub ts_ms: i64,
    /// The reject reason the ingester must give it, or None when it is good.
    pub bad: Option<&'static str>,
}

/// `n` messages of which every `n / bad` -th is malformed, cycling through
/// more than five different kinds of damage.
pub fn report_stream(n: usize, bad: usize) -> Vec<Msg> {
    let services = [
        "alexa", "netflix", "aws.s3", "psn", "outlook", "steam", "uber", "paypal",
    ];
    let regions = ["GB", "DE", "US-CA", "FR", "JP", "AU", "XK", "BR"];
    let stride = n.checked_div(bad).unwrap_or(usize::MAX);
    let now = now_ms();
    type Damage = fn(usize) -> Vec<u8>;
    let kinds: [(&str, Damage); 7] = [
        ("not_json", |i| format!("this is not json {i}").into_bytes()),
        ("not_utf8", |i| {
            let mut v = format!(r#"{{"service":"x{i}","region":"GB"}}"#).into_bytes();
            v[3] = 0xff;
            v
        }),
        ("missing_field", |i| {
            format!(r#"{{"region":"GB","reporter":"r{i}"}}"#).into_bytes()
        }),
        ("bad_service", |i| {
            format!(r#"{{"service":"Bad Service {i}","region":"GB"}}"#).into_bytes()
        }),
        ("bad_region", |i| {
            format!(r#"{{"service":"alexa","region":"Britain{i}"}}"#).into_bytes()
        }),
        ("bad_timestamp", |i| {
            format!(r#"{{"service":"alexa","region":"GB","ts":"yesterday {i}"}}"#).into_bytes()
        }),
        ("future_timestamp", |i| {
            format!(
                r#"{{"service":"alexa","region":"GB","ts":{}}}"#,
                now_ms() + 3_600_000 + i as i64
            )
            .into_bytes()
        }),
    ];
    (0..n)
        .map(|i| {
            let service = services[i % services.len()];
            let ts_ms = now - 3_600_000 + (i as i64 % 3_600_000);
            if bad > 0 && i % stride == stride / 2 && i / stride < bad {
                let (reason, make) = kinds[(i / stride) % kinds.len()];
                Msg { key: service.as_bytes().to_vec(), value: make(i), ts_ms, bad: Some(reason) }
            } else {
                let value = format!(
                    r#"{{"service":"{service}","region":"{}","ts":{ts_ms},"problem":"voice","reporter":"u{}"}}"#,
                    regions[i % regions.len()],
                    i % 5000
                );
                Msg { key: service.as_bytes().to_vec(), value: value.into_bytes(), ts_ms, bad: None }
            }
        })
        .collect()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Produces `msgs` in order and waits until all are acknowledged.
pub fn produce(bootstrap: &str, topic: &str, msgs: &[Msg]) {
    let producer = outage_testkit::test_producer(bootstrap);
    for (i, m) in msgs.iter().enumerate() {
        let headers = OwnedHeaders::new().insert(Header {
            key: "test-seq",
            value: Some(i.to_string().as_bytes()),
        });
        // An empty key is sent as no key at all (a null key).
        let mut record = BaseRecord::<[u8], [u8]>::to(topic)
            .payload(&m.value[..])
            .headers(headers);
        if !m.key.is_empty() {
            record = record.key(&m.key[..]);
        }
        if m.ts_ms != 0 {
            record = record.timestamp(m.ts_ms);
        }
        outage_testkit::send_blocking(&producer, record);
    }
    producer
        .flush(Duration::from_secs(60))
        .expect("all messages acknowledged");
}

/// Every message in `topic`, read from the beginning of each partition
/// until `expected` messages arrived, plus a short grace period to catch any
/// extra. (Not by watermarks: tansu 0.6 reports the last batch's base offset
/// + 1 as the high watermark, and producers batch.)
pub fn read_topic(bootstrap: &str, topic: &str, expected: usize) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", outage_testkit::unique_name("reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .create()
        .expect("reader");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut seen: BTreeMap<(i32, i64), OwnedMessage> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut grace: Option<Instant> = None;
    while grace.is_none_or(|g| g.elapsed() < Duration::from_millis(500)) {
        assert!(
            Instant::now() < deadline,
            "only {} of {expected} messages in {topic}",
            seen.len()
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            seen.insert((m.partition(), m.offset()), m.detach());
        }
        if seen.len() >= expected && grace.is_none() {
            grace = Some(Instant::now());
        }
    }
    seen.into_values().collect()
}

/// End offsets per partition.
pub fn end_offsets(bootstrap: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    (0..partitions)
        .map(|p| {
            (
                p,
                consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .unwrap()
                    .1,
            )
        })
        .collect()
}

/// The group's committed offsets per partition (-1 when none).
pub fn committed_offsets(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    committed
        .elements()
        .iter()
        .map(|e| {
            (
                e.partition(),
                if let Offset::Offset(o) = e.offset() {
                    o
                } else {
                    -1
                },
            )
        })
        .collect()
}

/// A header's value as text.
pub fn header(m: &OwnedMessage, key: &str) -> Option<String> {
    let h = m.headers()?;
    h.iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// What a recording sink saw, shared with the test.
#[derive(Clone, Debug, Default)]
pub struct Recorded(pub Arc<Mutex<Vec<(Position, i64, String)>>>);

impl Recorded {
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    /// Waits until at least `n` reports were recorded.
    pub fn wait_for(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.len() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} reports arrived within {timeout:?}",
                self.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Records (position, event time, service) of every report.
pub struct RecordingSink(pub Recorded);

impl ReportSink for RecordingSink {
    fn accept(&mut self, at: Position, report: &Report<'_>) {
        self.0
             .0
            .lock()
            .unwrap()
            .push((at, report.ts_ms, report.service.to_string()));
    }
}

/// Tansu-friendly consumer settings for the ingester under test.
pub fn kafka_config(
    bootstrap: &str,
    topic: &str,
    dlq: &str,
    group: &str,
) -> outage_ingest::KafkaConfig {
    let mut c = outage_ingest::KafkaConfig {
        brokers: bootstrap.to_string(),
        topic: topic.to_string(),
        dlq_topic: dlq.to_string(),
        group_id: group.to_string(),
        shutdown_timeout: Duration::from_secs(20),
        ..outage_ingest::KafkaConfig::default()
    };
    // librdkafka's default 500 ms stalls consumption against tansu.
    c.consumer_properties
        .insert("fetch.wait.max.ms".into(), "5".into());
    c
}
