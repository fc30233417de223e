//! The Kafka-compatible broker `tansu` (crates.io, 0.6.0).
//!
//! In memory for speed; with the sqlite engine when a test needs the data to
//! survive a broker restart. Topics are not auto-created by tansu, so tests
//! create them with [`Tansu::create_topic`].

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use tempfile::TempDir;

use crate::process::{find_binary, free_port, wait_until, Service};

/// A name unique within this test process and across processes, for group
/// ids and topics (tansu groups must not be shared between tests).
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Storage {
    Memory,
    Sqlite,
}

/// A running tansu broker on 127.0.0.1; killed on drop.
pub struct Tansu {
    service: Service,
    port: u16,
    storage: Storage,
    dir: TempDir,
    /// SCRAM-SHA-512 user and password every client must authenticate
    /// with (see [`Tansu::require_authentication`]).
    auth: Option<(String, String)>,
}

impl Tansu {
    /// A broker with in-memory storage (fast, gone when stopped).
    pub fn start() -> Tansu {
        Tansu::launch(
            Storage::Memory,
            tempfile::tempdir().expect("temp dir"),
            free_port(),
        )
    }

    /// A broker with sqlite storage in its own temp dir: topics, data and
    /// committed offsets survive [`Tansu::restart`].
    pub fn start_durable() -> Tansu {
        Tansu::launch(
            Storage::Sqlite,
            tempfile::tempdir().expect("temp dir"),
            free_port(),
        )
    }

    /// A broker with in-memory storage that tells clients (in metadata) to
    /// connect to `127.0.0.1:advertised`, e.g. a [`crate::TlsProxy`] in
    /// front of it. Only the bootstrap connection reaches it directly.
    pub fn start_advertising(advertised: u16) -> Tansu {
        let dir = tempfile::tempdir().expect("temp dir");
        Tansu::launch_with(Storage::Memory, dir, free_port(), None, Some(advertised))
    }

    fn launch(storage: Storage, dir: TempDir, port: u16) -> Tansu {
        Tansu::launch_with(storage, dir, port, None, None)
    }

    fn launch_with(
        storage: Storage,
        dir: TempDir,
        port: u16,
        auth: Option<(String, String)>,
        advertised: Option<u16>,
    ) -> Tansu {
        let bin = find_binary("TANSU_BIN", &["tansu"]);
        let url = format!("tcp://127.0.0.1:{port}");
        let advertised_url = format!("tcp://127.0.0.1:{}", advertised.unwrap_or(port));
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir.path())
            .arg("broker")
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &advertised_url])
            .args([
                "--storage-engine",
                match storage {
                    Storage::Memory => "memory://tansu/",
                    // Must be relative to the working directory (absolute paths fail).
                    Storage::Sqlite => "sqlite://tansu.db",
                },
            ]);
        if auth.is_some() {
            cmd.arg("--authentication");
        }
        let log = dir.path().join("tansu.log");
        let mut service = Service::spawn("tansu", cmd, log);
        let bootstrap = format!("127.0.0.1:{port}");
        service.wait_ready(Duration::from_secs(30), || {
            metadata_ok(&bootstrap, None, auth.as_ref())
        });
        Tansu {
            service,
            port,
            storage,
            dir,
            auth,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Base client settings (`bootstrap.servers`). Consumers against tansu
    /// also want `fetch.wait.max.ms` ≈ 5: librdkafka's default of 500 stalls.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap());
        c
    }

    /// Produces `(key, value)` messages in order and waits until all are
    /// acknowledged (see [`test_producer`]). A value that is a report with a
    /// numeric `ts` is stamped with it as the record's timestamp, as a
    /// producer replaying history must (outage-radar's stream time in `run`
    /// is the record timestamp); anything else gets the producer's clock.
    pub fn produce<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        topic: &str,
        messages: impl IntoIterator<Item = (K, V)>,
    ) {
        self.produce_timed(
            topic,
            messages.into_iter().map(|(k, v)| {
                let ts = report_ts(v.as_ref());
                (k, v, ts)
            }),
        );
    }

    /// Produces `(key, value, record timestamp)` messages in order (`None`:
    /// the producer's clock) and waits until all are acknowledged.
    pub fn produce_timed<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        topic: &str,
        messages: impl IntoIterator<Item = (K, V, Option<i64>)>,
    ) {
        let producer = test_producer(&self.bootstrap());
        for (key, value, ts) in messages {
            let mut record = BaseRecord::to(topic)
                .key(key.as_ref())
                .payload(value.as_ref());
            if let Some(ts) = ts {
                record = record.timestamp(ts);
            }
            send_blocking(&producer, record);
        }
        producer
            .flush(Duration::from_secs(60))
            .expect("every message acknowledged");
    }

    /// Creates a topic and waits until its metadata shows every partition.
    pub fn create_topic(&self, name: &str, partitions: i32, compacted: bool) {
        let bin = find_binary("TANSU_BIN", &["tansu"]);
        let mut cmd = Command::new(bin);
        cmd.current_dir(self.dir.path())
            .args([
                "topic",
                "create",
                "--broker",
                &format!("tcp://127.0.0.1:{}", self.port),
            ])
            .args(["--partitions", &partitions.to_string()]);
        if compacted {
            cmd.args(["--config", "cleanup.policy=compact"]);
        }
        cmd.arg(name);
        let out = cmd.output().expect("tansu topic create runs");
        assert!(
            out.status.success(),
            "tansu topic create {name} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let bootstrap = self.bootstrap();
        assert!(
            wait_until(Duration::from_secs(20), || metadata_ok(
                &bootstrap,
                Some((name, partitions)),
                self.auth.as_ref()
            )),
            "topic {name} did not appear with {partitions} partitions"
        );
    }

    /// Kills the broker (like a crash) and starts it again on the same port
    /// and storage. Only meaningful for [`Tansu::start_durable`].
    pub fn restart(&mut self) {
        assert_eq!(
            self.storage,
            Storage::Sqlite,
            "a memory broker loses everything on restart"
        );
        self.service.kill();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        let fresh = Tansu::launch_with(self.storage, dir, self.port, self.auth.take(), None);
        *self = fresh;
    }

    /// Kills the broker, keeps it down for `down_for` (clients see
    /// connections refused), then starts it again on the same port and
    /// storage. Only meaningful for [`Tansu::start_durable`].
    pub fn outage(&mut self, down_for: std::time::Duration) {
        assert_eq!(
            self.storage,
            Storage::Sqlite,
            "a memory broker loses everything"
        );
        self.service.kill();
        std::thread::sleep(down_for);
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        let fresh = Tansu::launch_with(self.storage, dir, self.port, self.auth.take(), None);
        *self = fresh;
    }

    /// Creates a SCRAM-SHA-512 user (`tansu user create`). Only before
    /// [`Tansu::require_authentication`]: tansu 0.6 lets no unauthenticated
    /// client in once it requires authentication, not even to add users.
    pub fn create_scram_user(&self, name: &str, password: &str) {
        let bin = find_binary("TANSU_BIN", &["tansu"]);
        let out = Command::new(bin)
            .current_dir(self.dir.path())
            .args(["user", "create", "--broker"])
            .arg(format!("tcp://127.0.0.1:{}", self.port))
            .args([name, password])
            .output()
            .expect("tansu user create runs");
        assert!(
            out.status.success(),
            "tansu user create {name} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Restarts the broker requiring SASL authentication (`--authentication`)
    /// and checks that `user` / `password` (a SCRAM-SHA-512 user made with
    /// [`Tansu::create_scram_user`]) gets in. Only for
    /// [`Tansu::start_durable`], which keeps the users across the restart.
    pub fn require_authentication(&mut self, user: &str, password: &str) {
        self.auth = Some((user.to_string(), password.to_string()));
        self.restart();
    }

    /// The broker's working directory (its log and sqlite file live here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The broker's output so far, for failure messages.
    pub fn log_tail(&self) -> String {
        self.service.log_tail()
    }
}

/// A producer for tests, one record per batch: tansu 0.6 answers a fetch
/// from the middle of a batch with the *next* batch (skipping records after
/// a restart from a committed offset) and reports the last batch's base
/// offset + 1 as the high watermark; single-record batches make both exact,
/// as they are on Apache Kafka. Works against any broker.
pub fn test_producer(bootstrap: &str) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("batch.num.messages", "1")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("a producer for the test broker")
}

/// Enqueues `record`, waiting while the producer's queue is full.
pub fn send_blocking<K, P>(
    producer: &ThreadedProducer<DefaultProducerContext>,
    record: BaseRecord<'_, K, P>,
) where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    let mut record = Some(record);
    while let Some(r) = record.take() {
        if let Err((_, r)) = producer.send(r) {
            std::thread::sleep(Duration::from_millis(5));
            record = Some(r);
        }
    }
}

/// Whether the broker answers a metadata request (for `topic`, expecting
/// `partitions`, when given).
fn metadata_ok(
    bootstrap: &str,
    topic: Option<(&str, i32)>,
    auth: Option<&(String, String)>,
) -> bool {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("log_level", "0");
    if let Some((user, password)) = auth {
        config
            .set("security.protocol", "SASL_PLAINTEXT")
            .set("sasl.mechanism", "SCRAM-SHA-512")
            .set("sasl.username", user)
            .set("sasl.password", password);
    }
    let consumer: BaseConsumer = match config.create() {
        Ok(c) => c,
        Err(_) => return false,
    };
    match consumer.fetch_metadata(topic.map(|(t, _)| t), Duration::from_secs(2)) {
        Ok(md) => match topic {
            None => !md.brokers().is_empty(),
            Some((name, n)) => md.topics().iter().any(|t| {
                t.name() == name && t.error().is_none() && t.partitions().len() == n as usize
            }),
        },
        Err(_) => false,
    }
}

/// Every `(key, value)` on `topic` (partitions `0..partitions`), read from
/// the beginning until nothing new arrives for a second (at most 60 s).
/// Records are de-duplicated by offset: a compacted tansu partition read
/// from 0 may return one twice.
pub fn consume_all(bootstrap: &str, topic: &str, partitions: i32) -> Vec<(String, String)> {
    use rdkafka::consumer::Consumer;
    use rdkafka::message::Message;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_name("consume-all"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .create()
        .expect("a consumer for the test broker");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .expect("valid partition");
    }
    // A topic that holds something gets up to 15 s for its first record (a
    // busy machine, sqlite storage); after that, a second without news ends.
    let holds_data = (0..partitions).any(|p| {
        consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .is_ok_and(|(low, high)| high > low)
    });
    consumer.assign(&tpl).expect("assign");
    let mut seen = std::collections::BTreeMap::new();
    let started = std::time::Instant::now();
    let mut last_new = std::time::Instant::now();
    let patience = |seen: usize| {
        if seen == 0 && holds_data {
            Duration::from_secs(15)
        } else {
            Duration::from_secs(1)
        }
    };
    while last_new.elapsed() < patience(seen.len()) && started.elapsed() < Duration::from_secs(60) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            if seen
                .insert((m.partition(), m.offset()), (key, value))
                .is_none()
            {
                last_new = std::time::Instant::now();
            }
        }
    }
    seen.into_values().collect()
}

/// The numeric `ts` of a JSON report, if it has one.
fn report_ts(value: &[u8]) -> Option<i64> {
    serde_json::from_slice::<serde_json::Value>(value)
        .ok()?
        .get("ts")?
        .as_i64()
}
