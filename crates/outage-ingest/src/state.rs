//! Per-partition state snapshots in a compacted Kafka topic, the way Kafka
//! Streams keeps its stores: the sink's state of one source partition,
//! together with the offset of the next message to process, written on an
//! interval, on revoke and on shutdown, and read back on assignment.
//!
//! One snapshot is a set of records on state partition
//! `source partition % state partitions`:
//!
//! - chunks, key `{group}/{topic}/{partition}/chunk/{i}`: a 16-byte header
//!   (generation u64 LE, index u32 LE, count u32 LE) and up to
//!   `chunk_bytes` of the LZ4-compressed payload (Kafka's default message
//!   limit is 1 MB; a snapshot of many series is larger);
//! - then the manifest, key `{group}/{topic}/{partition}`: JSON with the
//!   format version, generation, offset, chunk count, sizes, CRC-32 of the
//!   compressed payload, item count and creation time.
//!
//! A snapshot counts once its manifest and every chunk are acknowledged;
//! only then is its offset stored for commit. A reader takes the newest
//! manifest of its key and the chunks of that generation, and checks the
//! count and the checksum: a corrupt or incompatible snapshot is reported
//! and skipped, never half-applied. Chunks beyond a smaller snapshot's
//! count are deleted with tombstones so compaction can drop them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use outage_detect::ConfigError;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

mod format;
pub use format::{
    decode_snapshot, encode_snapshot, LoadOutcome, Loaded, Manifest, STATE_FORMAT, STATE_VERSION,
};

/// `[state]`: where and how often partition state is kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// Compacted topic of the snapshots; `""` turns snapshots off (then a
    /// restart starts from the committed offsets with empty state).
    /// Default `outage-radar.state`.
    pub topic: String,
    /// Time between two snapshots of each partition. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Largest chunk of one snapshot record, bytes (keep it under the
    /// topic's `max.message.bytes`). Default 524288.
    pub chunk_bytes: usize,
    /// Longest wait for a partition's snapshot to load at assignment; when
    /// it does not, the partition waits and the read is retried (see the
    /// README). Default `60s`.
    #[serde(with = "humantime_serde")]
    pub load_timeout: Duration,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            topic: "outage-radar.state".into(),
            interval: Duration::from_secs(10),
            chunk_bytes: 512 * 1024,
            load_timeout: Duration::from_secs(60),
        }
    }
}

impl StateConfig {
    /// Whether snapshots are on (a topic is set).
    pub fn enabled(&self) -> bool {
        !self.topic.is_empty()
    }

    /// Errors name the `[state]` key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interval < Duration::from_millis(100) {
            return Err(ConfigError::new("state.interval", "must be at least 100ms"));
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.chunk_bytes) {
            return Err(ConfigError::new(
                "state.chunk_bytes",
                "must be within 1024..=16777216",
            ));
        }
        if self.load_timeout.is_zero() {
            return Err(ConfigError::new("state.load_timeout", "must be positive"));
        }
        Ok(())
    }
}

/// A state the sink gave for snapshotting.
pub struct SinkState {
    /// The serialized state.
    pub payload: Vec<u8>,
    /// What it counts (series, for the detector), for logs and metrics.
    pub items: u64,
}

/// The manifest key of a source partition.
pub fn state_key(group: &str, topic: &str, partition: i32) -> String {
    format!("{group}/{topic}/{partition}")
}

fn chunk_key(key: &str, index: u32) -> String {
    format!("{key}/chunk/{index}")
}

/// Reads snapshots back from the state topic (its own client, no group).
pub struct StateReader {
    consumer: BaseConsumer,
    topic: String,
    partitions: i32,
    timeout: Duration,
}

/// Per key: the newest manifest, and chunks by generation.
#[derive(Default)]
struct KeyRecords {
    manifest: Option<Manifest>,
    manifest_error: Option<String>,
    chunks: HashMap<u64, BTreeMap<u32, Vec<u8>>>,
}

impl StateReader {
    /// `client`: the common client properties (brokers, security).
    pub fn new(
        client: &ClientConfig,
        topic: &str,
        timeout: Duration,
    ) -> Result<StateReader, KafkaError> {
        let consumer: BaseConsumer = client
            .clone()
            .set("group.id", "outage-radar-state-reader")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "10")
            .create()?;
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let partitions = md
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map_or(0, |t| t.partitions().len() as i32);
        if partitions == 0 {
            return Err(KafkaError::MetadataFetch(
                rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
            ));
        }
        Ok(StateReader {
            consumer,
            topic: topic.to_string(),
            partitions,
            timeout,
        })
    }

    /// Partitions of the state topic.
    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    /// The configured time a read of the state may take (`load_timeout`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Reads one state partition to its end within `timeout`; returns
    /// records by key.
    fn scan(
        &self,
        state_partition: i32,
        timeout: Duration,
    ) -> Result<HashMap<String, KeyRecords>, KafkaError> {
        let (low, high) = self.consumer.fetch_watermarks(
            &self.topic,
            state_partition,
            Duration::from_secs(10),
        )?;
        let mut keys: HashMap<String, KeyRecords> = HashMap::new();
        if high <= low {
            return Ok(keys);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, state_partition, Offset::Beginning)?;
        self.consumer.assign(&tpl)?;
        let deadline = Instant::now() + timeout;
        let mut next = low;
        while next < high {
            if Instant::now() > deadline {
                self.consumer.unassign()?;
                return Err(KafkaError::MessageConsumption(
                    rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
                ));
            }
            let Some(msg) = self.consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let msg = msg?;
            // A compacted partition read from the start may repeat records.
            if msg.offset() < next {
                continue;
            }
            next = msg.offset() + 1;
            let Some(key) = msg.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                continue;
            };
            if let Some((base, index)) = key.rsplit_once("/chunk/") {
                let Ok(index) = index.parse::<u32>() else {
                    continue;
                };
                let entry = keys.entry(base.to_string()).or_default();
                match msg.payload() {
                    Some(v) if v.len() >= 16 => {
                        let generation = u64::from_le_bytes(v[..8].try_into().expect("8 bytes"));
                        let at = u32::from_le_bytes(v[8..12].try_into().expect("4 bytes"));
                        if at == index {
                            entry
                                .chunks
                                .entry(generation)
                                .or_default()
                                .insert(index, v[16..].to_vec());
                        }
                    }
                    // Tombstone or garbage: forget this index everywhere.
                    _ => {
                        for c in entry.chunks.values_mut() {
                            c.remove(&index);
                        }
                    }
                }
            } else {
                let entry = keys.entry(key.to_string()).or_default();
                match msg.payload().map(serde_json::from_slice::<Manifest>) {
                    Some(Ok(m)) => {
                        // Older generations' chunks are no longer needed.
                        entry.chunks.retain(|g, _| *g >= m.generation);
                        entry.manifest = Some(m);
                        entry.manifest_error = None;
                    }
                    Some(Err(e)) => {
                        entry.manifest = None;
                        entry.manifest_error = Some(format!("unreadable manifest: {e}"));
                    }
                    None => {
                        entry.manifest = None;
                        entry.manifest_error = None;
                    }
                }
            }
        }
        self.consumer.unassign()?;
        Ok(keys)
    }

    fn outcome(records: &KeyRecords) -> LoadOutcome {
        match (&records.manifest, &records.manifest_error) {
            (Some(m), _) => decode_snapshot(
                m,
                records
                    .chunks
                    .get(&m.generation)
                    .unwrap_or(&BTreeMap::new()),
            ),
            (None, Some(e)) => LoadOutcome::Corrupt(e.clone()),
            (None, None) => LoadOutcome::Missing,
        }
    }

    /// The latest snapshots of several source partitions `(key, partition)`,
    /// reading each state partition once.
    pub fn load_many(
        &self,
        wanted: &[(String, i32)],
    ) -> HashMap<String, Result<LoadOutcome, KafkaError>> {
        self.load_many_within(wanted, self.timeout)
    }

    /// [`StateReader::load_many`] with its own time limit (a retry).
    pub fn load_many_within(
        &self,
        wanted: &[(String, i32)],
        timeout: Duration,
    ) -> HashMap<String, Result<LoadOutcome, KafkaError>> {
        let mut by_state: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
        for (key, p) in wanted {
            by_state
                .entry(p.rem_euclid(self.partitions))
                .or_default()
                .push(key.as_str());
        }
        let mut out = HashMap::new();
        for (state_partition, keys) in by_state {
            match self.scan(state_partition, timeout) {
                Ok(records) => {
                    for key in keys {
                        let o = records.get(key).map_or(LoadOutcome::Missing, Self::outcome);
                        out.insert(key.to_string(), Ok(o));
                    }
                }
                Err(e) => {
                    for key in keys {
                        out.insert(key.to_string(), Err(e.clone()));
                    }
                }
            }
        }
        out
    }

    /// Every key in the topic with what it holds (`state inspect`).
    pub fn load_all(&self) -> Result<BTreeMap<String, LoadOutcome>, KafkaError> {
        let mut all = BTreeMap::new();
        for p in 0..self.partitions {
            for (key, records) in self.scan(p, self.timeout)? {
                all.insert(key, Self::outcome(&records));
            }
        }
        Ok(all)
    }
}

/// Acknowledgement of one state record.
pub(crate) struct StateAck {
    pub partition: i32,
    pub generation: u64,
    pub ok: bool,
}

/// State producer context: queues acknowledgements for the loop.
pub(crate) struct StateContext {
    pub acks: Mutex<Vec<StateAck>>,
}

impl ClientContext for StateContext {}

impl ProducerContext for StateContext {
    type DeliveryOpaque = Box<(i32, u64)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let (partition, generation) = *opaque;
        if let Err((e, _)) = result {
            tracing::warn!(partition, generation, error = %e, "state snapshot record not delivered");
        }
        self.acks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(StateAck {
                partition,
                generation,
                ok: result.is_ok(),
            });
    }
}

/// A snapshot in flight.
pub(crate) struct InFlight {
    pub generation: u64,
    pub offset: i64,
    pub outstanding: u32,
    pub failed: bool,
}

/// Writes snapshots; owned by the consumer thread's pipeline.
pub(crate) struct StateWriter {
    pub producer: BaseProducer<StateContext>,
    pub config: StateConfig,
    pub state_partitions: i32,
    pub group: String,
    pub source_topic: String,
    pub next_at: Instant,
    last_generation: u64,
    /// Chunk count last written per source partition (for tombstones).
    pub chunks_written: HashMap<i32, u32>,
    /// Offset of the last snapshot written per source partition.
    pub last_offset: HashMap<i32, i64>,
    pub in_flight: HashMap<i32, InFlight>,
    /// Snapshots taken while a dead letter below their offset was still
    /// unacknowledged: (offset, state), written once it is.
    pub deferred: HashMap<i32, (i64, SinkState)>,
    /// Partitions whose snapshot could not be read at assignment: they run
    /// from their committed offset with empty state and are not
    /// snapshotted, so the snapshot they could not read is not overwritten
    /// by a state that never saw it (it is restored at their next
    /// assignment, and their commits wait until then).
    pub unrestored: std::collections::HashSet<i32>,
}

impl StateWriter {
    pub fn new(
        producer_config: &ClientConfig,
        config: StateConfig,
        state_partitions: i32,
        group: &str,
        source_topic: &str,
    ) -> Result<StateWriter, KafkaError> {
        let producer = producer_config
            .clone()
            // One record per batch and one request in flight: chunks land
            // before their manifest, and tansu's offsets stay exact.
            .set("batch.num.messages", "1")
            .set("max.in.flight.requests.per.connection", "1")
            .set(
                "message.max.bytes",
                (config.chunk_bytes + 64 * 1024).to_string(),
            )
            .create_with_context(StateContext {
                acks: Mutex::new(Vec::new()),
            })?;
        Ok(StateWriter {
            producer,
            next_at: Instant::now() + config.interval,
            config,
            state_partitions,
            group: group.to_string(),
            source_topic: source_topic.to_string(),
            last_generation: 0,
            chunks_written: HashMap::new(),
            last_offset: HashMap::new(),
            in_flight: HashMap::new(),
            deferred: HashMap::new(),
            unrestored: std::collections::HashSet::new(),
        })
    }

    fn generation(&mut self, now_ms: i64) -> u64 {
        self.last_generation = (now_ms.max(0) as u64).max(self.last_generation + 1);
        self.last_generation
    }

    /// Enqueues one snapshot; returns its manifest, or an error when the
    /// producer refused a record (the snapshot then does not count).
    pub fn write(
        &mut self,
        partition: i32,
        offset: i64,
        state: SinkState,
        now_ms: i64,
    ) -> Result<Manifest, KafkaError> {
        let generation = self.generation(now_ms);
        let (manifest, chunks) = encode_snapshot(
            &state.payload,
            generation,
            offset,
            state.items,
            now_ms,
            self.config.chunk_bytes,
        );
        let key = state_key(&self.group, &self.source_topic, partition);
        let target = partition.rem_euclid(self.state_partitions);
        let manifest_json = serde_json::to_vec(&manifest).expect("manifest serializes");
        let previous = self.chunks_written.get(&partition).copied().unwrap_or(0);
        let mut records: Vec<(String, Option<&[u8]>)> = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| (chunk_key(&key, i as u32), Some(c.as_slice())))
            .collect();
        for i in manifest.chunks..previous {
            records.push((chunk_key(&key, i), None));
        }
        records.push((key.clone(), Some(manifest_json.as_slice())));
        let total = records.len() as u32;
        self.in_flight.insert(
            partition,
            InFlight {
                generation,
                offset,
                outstanding: total,
                failed: false,
            },
        );
        for (k, value) in records {
            let mut record: BaseRecord<'_, str, [u8], Box<(i32, u64)>> =
                BaseRecord::with_opaque_to(&self.config.topic, Box::new((partition, generation)))
                    .partition(target)
                    .key(k.as_str());
            if let Some(v) = value {
                record = record.payload(v);
            }
            let mut record = Some(record);
            while let Some(r) = record.take() {
                match self.producer.send(r) {
                    Ok(()) => {}
                    Err((
                        KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                        r,
                    )) => {
                        self.producer.poll(Duration::from_millis(10));
                        record = Some(r);
                    }
                    Err((e, _)) => {
                        if let Some(f) = self.in_flight.get_mut(&partition) {
                            f.failed = true;
                        }
                        return Err(e);
                    }
                }
            }
        }
        self.chunks_written.insert(partition, manifest.chunks);
        self.last_offset.insert(partition, offset);
        Ok(manifest)
    }

    /// Serves acknowledgements; returns `(partition, offset)` of snapshots
    /// now fully written, and the partitions whose snapshot failed.
    pub fn poll_acks(&mut self) -> (Vec<(i32, i64)>, Vec<i32>) {
        self.producer.poll(Duration::ZERO);
        let acks = std::mem::take(
            &mut *self
                .producer
                .context()
                .acks
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let (mut done, mut failed) = (Vec::new(), Vec::new());
        for ack in acks {
            let Some(f) = self.in_flight.get_mut(&ack.partition) else {
                continue;
            };
            if f.generation != ack.generation {
                continue;
            }
            f.outstanding = f.outstanding.saturating_sub(1);
            f.failed |= !ack.ok;
            if f.outstanding == 0 {
                let f = self.in_flight.remove(&ack.partition).expect("present");
                if f.failed {
                    // Written partly: the next snapshot rewrites every chunk.
                    self.last_offset.remove(&ack.partition);
                    failed.push(ack.partition);
                } else {
                    done.push((ack.partition, f.offset));
                }
            }
        }
        (done, failed)
    }

    /// Forgets a partition that is no longer ours.
    pub fn forget(&mut self, partition: i32) {
        self.in_flight.remove(&partition);
        self.deferred.remove(&partition);
        self.unrestored.remove(&partition);
        self.last_offset.remove(&partition);
        self.chunks_written.remove(&partition);
    }
}
