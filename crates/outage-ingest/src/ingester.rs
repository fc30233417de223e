//! The consumer loop: poll → decode → sink or dead-letter → store offset.
//!
//! One thread owns the consumer and everything it feeds; there is no lock
//! contention on the hot path (the pipeline mutex is only ever taken by this
//! thread, both in the loop and in the rebalance callbacks that librdkafka
//! runs from inside `poll`). Only decoding runs elsewhere: payloads are
//! copied into batches that a decode thread works on while this thread
//! polls the next ones (see [`crate::decoder`]); the decoded batches come
//! back in order and are handed on here. Shutdown hands on every batch
//! first; a revoke does not wait for them, and messages of a revoked
//! partition still in flight are dropped when they come back (their next
//! owner reads them from the offsets committed at the revoke).
//!
//! Offsets are stored only once a message is fully handled: a good report
//! once the sink returned, a bad message once the dead-letter topic
//! acknowledged it. librdkafka auto-commits what is stored; revoke and
//! shutdown commit synchronously.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outage_detect::time::wall_ms;

use outage_detect::{DecodeError, DecodeOptions, RejectReason};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use tracing::{debug, info, warn};

use crate::config::{ConfigError, KafkaConfig};
use crate::decoder::{Batch, DecodeWorker, Outcome, MAX_IN_FLIGHT};
use crate::dlq::{DeadLetter, DeadLetterQueue};
use crate::lock;
use crate::metrics::{IngestMetrics, KafkaOp, MisKeyed};
use crate::offsets::OffsetTracker;
use crate::sink::{Position, ReportSink};
use crate::state::{SinkState, StateConfig, StateReader, StateWriter};

pub use crate::dlq::DLQ_HEADER_PREFIX;

mod context;
mod snapshots;
use context::{commit_sync, IngestContext};

/// Handled messages between two looks at the clock.
const CHECK_EVERY: u32 = 1024;
/// Milliseconds between two offset stores while busy. librdkafka commits
/// stored offsets every `auto.commit.interval.ms` (5 s), so storing more
/// often buys nothing, and each store takes locks the fetcher needs.
const MAINTAIN_INTERVAL_MS: i64 = 100;
/// Longest wait for a next message while consumed ones are not handed on
/// yet (a fetch arrives well within it under load, so batches keep
/// filling; a trickle is handed on this much later).
const PENDING_POLL_TIMEOUT: Duration = Duration::from_millis(2);
/// Unacknowledged dead-letter messages at which consumption pauses.
const MAX_PENDING_DLQ: usize = 10_000;
/// Bytes of unacknowledged dead letters held in memory at which
/// consumption pauses (it resumes below half).
const MAX_PENDING_DLQ_BYTES: usize = 64 << 20;
/// Asks a running ingester to stop gracefully. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    /// A shutdown not yet triggered.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }
    /// Asks the ingester to stop (a final commit, then `run` returns).
    pub fn trigger(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether a stop was asked for.
    pub fn is_triggered(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Failures that stop the ingester from starting.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The `[kafka]` configuration cannot work.
    #[error("invalid configuration")]
    Config(#[from] ConfigError),
    /// librdkafka refused to create a client.
    #[error("cannot create the kafka {client}")]
    Client {
        /// Which client: consumer, dead-letter producer, state reader…
        client: &'static str,
        /// librdkafka's reason.
        #[source]
        source: KafkaError,
    },
    /// The subscription to the reports topic failed.
    #[error("cannot subscribe to topic {topic}")]
    Subscribe {
        /// The reports topic.
        topic: String,
        /// librdkafka's reason.
        #[source]
        source: KafkaError,
    },
    /// The `[state]` configuration cannot work.
    #[error("{0}")]
    State(String),
    /// The state topic cannot be used.
    #[error("cannot use the state topic {topic} (create it with cleanup.policy=compact)")]
    StateTopic {
        /// The state topic.
        topic: String,
        /// librdkafka's reason.
        #[source]
        source: KafkaError,
    },
}

/// What one run of the ingester did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestSummary {
    /// Messages consumed.
    pub consumed: u64,
    /// Reports decoded and handed to the sink.
    pub decoded: u64,
    /// Messages dead-lettered, by reason.
    pub dead_lettered: BTreeMap<RejectReason, u64>,
    /// Reports counted although their Kafka key is not their service (see
    /// [`MisKeyed`]).
    pub mis_keyed: u64,
    /// Dead-letter deliveries still unacknowledged when the stop deadline
    /// passed; their offsets were not committed, so they will be re-read.
    pub unacknowledged_dead_letters: usize,
}

impl IngestSummary {
    /// Messages dead-lettered, all reasons.
    pub fn dead_lettered_total(&self) -> u64 {
        self.dead_lettered.values().sum()
    }
}

/// Everything the consumer thread feeds; lives in the consumer context so the
/// rebalance callbacks can flush and commit it.
struct Pipeline<S> {
    sink: S,
    tracker: OffsetTracker,
    dlq: DeadLetterQueue,
    topic: String,
    metrics: IngestMetrics,
    summary: IngestSummary,
    clock_ms: i64,
    maintained_ms: i64,
    since_check: u32,
    paused: bool,
    /// State snapshots (when `[state]` is on): offsets are then stored only
    /// as far as a written snapshot covers.
    state: Option<StatePart>,
    /// Messages consumed but not yet handed to the decode thread.
    filling: Batch,
    worker: DecodeWorker,
    /// Assignment epoch per partition, bumped when it is revoked.
    epochs: BTreeMap<i32, u32>,
    /// The last (partition, epoch) looked up while consuming.
    last_epoch: (i32, u32),
    /// In-memory snapshots taken at revoke, by partition: (offset, state).
    /// When the partition is assigned back (a rebalance, or the group
    /// session lost while the broker was unreachable) and nobody consumed
    /// past that offset since, it continues from here: no state lost,
    /// nothing counted twice, even when the revoke's commit or snapshot
    /// could not reach the broker.
    kept: BTreeMap<i32, (i64, SinkState)>,
    /// Partitions whose state could not be read at assignment yet (see
    /// `snapshots::Waiting`).
    waiting: BTreeMap<i32, snapshots::Waiting>,
}

/// The epoch of `partition`, remembering the last lookup in `last`
/// (messages come in runs of one partition).
#[inline]
fn epoch_of(epochs: &BTreeMap<i32, u32>, last: &mut (i32, u32), partition: i32) -> u32 {
    if last.0 != partition {
        *last = (partition, epochs.get(&partition).copied().unwrap_or(0));
    }
    last.1
}

struct StatePart {
    writer: StateWriter,
    reader: StateReader,
    group: String,
}

/// The consumed messages not handed on yet, kept by the consumer loop (they
/// borrow the consumer) for the key, headers and timestamp of a dead letter;
/// in step with the pipeline's batch being filled and its batches in flight.
#[derive(Default)]
struct Held<'c> {
    filling: Vec<BorrowedMessage<'c>>,
    in_flight: VecDeque<Vec<BorrowedMessage<'c>>>,
}

impl<S: ReportSink> Pipeline<S> {
    /// Takes one consumed message; returns whether any message is not
    /// handed on yet.
    #[inline]
    fn push<'c>(
        &mut self,
        consumer: &BaseConsumer<IngestContext<S>>,
        msg: BorrowedMessage<'c>,
        held: &mut Held<'c>,
    ) -> bool {
        let epoch = epoch_of(&self.epochs, &mut self.last_epoch, msg.partition());
        self.filling.push(&msg, epoch);
        held.filling.push(msg);
        if self.filling.is_full() {
            self.dispatch(held);
        }
        self.since_check += 1;
        if self.since_check >= CHECK_EVERY {
            self.since_check = 0;
            self.clock_ms = wall_ms();
            if self.clock_ms - self.maintained_ms >= MAINTAIN_INTERVAL_MS {
                self.maintain(consumer);
            }
        }
        self.has_pending()
    }

    fn has_pending(&self) -> bool {
        !self.filling.is_empty() || self.worker.in_flight() > 0
    }

    /// Sends the batch being filled to the decode thread, after applying
    /// the batches already decoded (and waiting for the oldest when enough
    /// are in flight).
    fn dispatch(&mut self, held: &mut Held<'_>) {
        if self.filling.is_empty() {
            return;
        }
        while let Some(batch) = self.worker.receive(false) {
            self.apply(batch, held);
        }
        if self.worker.in_flight() >= MAX_IN_FLIGHT {
            if let Some(batch) = self.worker.receive(true) {
                self.apply(batch, held);
            }
        }
        let mut batch = std::mem::replace(&mut self.filling, self.worker.empty());
        batch.clock_ms = self.clock_ms;
        self.worker.send(batch);
        held.in_flight.push_back(std::mem::take(&mut held.filling));
    }

    /// Hands on every message consumed so far: decodes the batch being
    /// filled and applies every batch in flight.
    fn finish(&mut self, held: &mut Held<'_>) {
        self.dispatch(held);
        while let Some(batch) = self.worker.receive(true) {
            self.apply(batch, held);
        }
    }

    /// Feeds a decoded batch to the sink (good reports) and the dead-letter
    /// topic (bad messages), in consumption order. Messages of a partition
    /// revoked since they were consumed are dropped: their new owner reads
    /// them from the committed offset.
    fn apply(&mut self, batch: Batch, held: &mut Held<'_>) {
        let messages = held
            .in_flight
            .pop_front()
            .expect("the messages of every batch in flight are held");
        debug_assert_eq!(messages.len(), batch.len());
        let mut decoded = 0;
        let mut consumed = 0;
        // The newest handled offset of the current run of one partition's
        // messages: the tracker hears of each run once, not of each message.
        let mut run: Option<(i32, i64)> = None;
        let mut current = (-1, 0);
        for ((entry, outcome), msg) in batch.items().zip(&messages) {
            if epoch_of(&self.epochs, &mut current, entry.partition) != entry.epoch {
                continue;
            }
            consumed += 1;
            match outcome {
                Outcome::Report(report) => {
                    if let Some(how) = MisKeyed::check(msg.key(), &report.service) {
                        self.mis_keyed(entry.partition, &report.service, how);
                    }
                    self.sink.accept(
                        Position {
                            partition: entry.partition,
                            offset: entry.offset,
                            // Stream time for detection: the record's
                            // timestamp, never ahead of the wall clock (a
                            // producer's clock is not trusted further).
                            kafka_ts_ms: entry.kafka_ts_ms().map(|k| k.min(batch.clock_ms)),
                        },
                        &report,
                    );
                    match &mut run {
                        Some((p, o)) if *p == entry.partition => *o = entry.offset,
                        _ => {
                            if let Some((p, o)) = run {
                                self.tracker.handled(p, o);
                            }
                            run = Some((entry.partition, entry.offset));
                        }
                    }
                    decoded += 1;
                }
                Outcome::Rejected(e) => {
                    if let Some((p, o)) = run.take() {
                        self.tracker.handled(p, o);
                    }
                    self.dead_letter(msg, e);
                }
            }
        }
        if let Some((p, o)) = run {
            self.tracker.handled(p, o);
        }
        if consumed < messages.len() {
            debug!(
                dropped = messages.len() - consumed,
                "messages of revoked partitions dropped; their new owner reads them"
            );
        }
        self.summary.consumed += consumed as u64;
        self.metrics.messages_consumed.inc_by(consumed as u64);
        self.summary.decoded += decoded;
        self.metrics.reports_decoded.inc_by(decoded);
        self.worker.recycle(batch);
    }

    /// Counts a report whose key is not its service; it is kept (counted
    /// like any other). Logged at the 1st, 10th, 100th… occurrence, so a
    /// producer that keys nothing cannot flood the log.
    fn mis_keyed(&mut self, partition: i32, service: &str, how: MisKeyed) {
        self.metrics
            .mis_keyed
            .with_label_values(&[how.as_str()])
            .inc();
        self.summary.mis_keyed += 1;
        let n = self.summary.mis_keyed;
        if n == 10u64.pow(n.ilog10()) {
            warn!(
                partition,
                service,
                key = how.as_str(),
                count = n,
                "reports keyed other than by their service: counted, but their service is split over partitions (key producers' records by service)"
            );
        }
    }

    fn dead_letter(&mut self, msg: &BorrowedMessage<'_>, e: &DecodeError) {
        let (partition, offset) = (msg.partition(), msg.offset());
        debug!(partition, offset, reason = e.reason.as_str(), detail = %e.detail, "dead-lettering message");
        *self.summary.dead_lettered.entry(e.reason).or_default() += 1;
        self.metrics
            .dead_lettered
            .with_label_values(&[e.reason.as_str()])
            .inc();
        self.tracker.begin_pending(partition, offset);
        self.dlq.send(partition, offset, DeadLetter::new(msg, e));
    }

    /// Serves dead-letter acknowledgements (re-sending failures), stores the
    /// offsets that became safe, and pauses or resumes consumption when too
    /// many dead letters are outstanding.
    fn maintain(&mut self, consumer: &BaseConsumer<IngestContext<S>>) {
        self.clock_ms = wall_ms();
        self.maintained_ms = self.clock_ms;
        for (partition, offset) in self.dlq.poll() {
            self.tracker.finish_pending(partition, offset);
        }
        if self.state.is_some() {
            if !self.waiting.is_empty() {
                self.retry_waiting(consumer);
            }
            self.maintain_state(consumer);
        } else {
            self.store_offsets(consumer);
        }
        let pending = self.tracker.pending();
        let (_, bytes) = self.dlq.held();
        if !self.paused && (pending >= MAX_PENDING_DLQ || bytes >= MAX_PENDING_DLQ_BYTES) {
            warn!(
                pending,
                bytes, "too many unacknowledged dead letters; pausing consumption"
            );
            self.set_paused(consumer, true);
        } else if self.paused && pending < MAX_PENDING_DLQ / 2 && bytes < MAX_PENDING_DLQ_BYTES / 2
        {
            info!(
                pending,
                bytes, "dead letters acknowledged; resuming consumption"
            );
            self.set_paused(consumer, false);
        }
    }

    fn set_paused(&mut self, consumer: &BaseConsumer<IngestContext<S>>, paused: bool) {
        let Ok(mut assignment) = consumer.assignment() else {
            return;
        };
        if !paused && !self.waiting.is_empty() {
            // Partitions waiting for their state stay paused.
            let mut keep = TopicPartitionList::new();
            for e in assignment.elements() {
                if !self.waiting.contains_key(&e.partition()) {
                    keep.add_partition(e.topic(), e.partition());
                }
            }
            assignment = keep;
        }
        let result = if paused {
            consumer.pause(&assignment)
        } else {
            consumer.resume(&assignment)
        };
        match result {
            Ok(()) => self.paused = paused,
            Err(e) => warn!(error = %e, "cannot pause or resume consumption"),
        }
    }

    fn store_offsets(&mut self, consumer: &BaseConsumer<IngestContext<S>>) {
        let stores = self.tracker.take_stores();
        if stores.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::with_capacity(stores.len());
        for (partition, offset) in stores {
            if let Err(e) = tpl.add_partition_offset(&self.topic, partition, Offset::Offset(offset))
            {
                warn!(partition, offset, error = %e, "cannot build offset list");
            }
        }
        if let Err(e) = consumer.store_offsets(&tpl) {
            // Happens for a partition revoked a moment ago; its new owner
            // re-reads from the last commit (at-least-once).
            self.metrics.kafka_error(KafkaOp::Store);
            debug!(error = %e, "cannot store offsets");
        }
    }

    /// Waits (up to `timeout`) for every outstanding dead letter to be
    /// acknowledged, then stores what is safe. Returns how many are still
    /// unacknowledged.
    fn drain(&mut self, consumer: &BaseConsumer<IngestContext<S>>, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            self.maintain(consumer);
            if self.tracker.pending() == 0 || Instant::now() >= deadline {
                return self.tracker.pending();
            }
            self.dlq.wait(Duration::from_millis(20));
        }
    }
}

/// A consumer-group member that feeds a [`ReportSink`].
pub struct Ingester<S: ReportSink + 'static> {
    consumer: BaseConsumer<IngestContext<S>>,
    topic: String,
    poll_timeout: Duration,
    shutdown_timeout: Duration,
}

impl<S: ReportSink + 'static> Ingester<S> {
    /// Creates the consumer and the dead-letter producer. Nothing is read
    /// until [`Ingester::run`].
    pub fn new(
        config: &KafkaConfig,
        decode: DecodeOptions,
        sink: S,
        metrics: IngestMetrics,
    ) -> Result<Ingester<S>, IngestError> {
        config.validate()?;
        let dlq = DeadLetterQueue::new(
            &config.producer_config()?,
            &config.dlq_topic,
            metrics.clone(),
        )
        .map_err(|source| IngestError::Client {
            client: "dead-letter producer",
            source,
        })?;
        let pipeline = Pipeline {
            sink,
            tracker: OffsetTracker::new(),
            dlq,
            topic: config.topic.clone(),
            metrics: metrics.clone(),
            summary: IngestSummary::default(),
            clock_ms: wall_ms(),
            maintained_ms: 0,
            since_check: 0,
            paused: false,
            state: None,
            filling: Batch::default(),
            worker: DecodeWorker::start(decode),
            epochs: BTreeMap::new(),
            last_epoch: (-1, 0),
            kept: BTreeMap::new(),
            waiting: BTreeMap::new(),
        };
        let client_config = config.consumer_config()?;
        let context = IngestContext {
            pipeline: Mutex::new(pipeline),
            metrics,
            shutdown_timeout: config.shutdown_timeout,
            topic: config.topic.clone(),
            assigned: Mutex::new(std::collections::BTreeSet::new()),
            caught_up: Mutex::new((None, std::collections::BTreeSet::new())),
            stats_interval: client_config
                .get("statistics.interval.ms")
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|&ms| ms > 0)
                .map(Duration::from_millis),
        };
        let consumer: BaseConsumer<IngestContext<S>> = client_config
            .create_with_context(context)
            .map_err(|source| IngestError::Client {
            client: "consumer",
            source,
        })?;
        info!(config = %config.describe(), "kafka clients created");
        Ok(Ingester {
            consumer,
            topic: config.topic.clone(),
            poll_timeout: config.poll_timeout,
            shutdown_timeout: config.shutdown_timeout,
        })
    }

    /// Keeps per-partition state in the compacted topic of `state`: the
    /// sink's [`ReportSink::snapshot`] with the next offset, every
    /// `state.interval`, on revoke and on shutdown; partitions restore from
    /// it on assignment. Offsets are then committed only as far as a written
    /// snapshot covers. The topic must exist.
    pub fn with_state(
        self,
        config: &KafkaConfig,
        state: &StateConfig,
    ) -> Result<Self, IngestError> {
        if !state.enabled() {
            return Ok(self);
        }
        state
            .validate()
            .map_err(|e| IngestError::State(e.to_string()))?;
        let reader = StateReader::new(&config.common_config()?, &state.topic, state.load_timeout)
            .map_err(|source| IngestError::StateTopic {
            topic: state.topic.clone(),
            source,
        })?;
        let writer = StateWriter::new(
            &config.producer_config()?,
            state.clone(),
            reader.partitions(),
            &config.group_id,
            &config.topic,
        )
        .map_err(|source| IngestError::Client {
            client: "state producer",
            source,
        })?;
        info!(topic = %state.topic, partitions = reader.partitions(), interval = ?state.interval, "partition state is kept in the state topic");
        lock(&self.consumer.context().pipeline).state = Some(StatePart {
            writer,
            reader,
            group: config.group_id.clone(),
        });
        Ok(self)
    }

    /// Consumes until `shutdown` is triggered, then waits for outstanding
    /// dead letters, commits, leaves the group and returns the sink.
    pub fn run(self, shutdown: &Shutdown) -> Result<(IngestSummary, S), IngestError> {
        self.consumer
            .subscribe(&[&self.topic])
            .map_err(|source| IngestError::Subscribe {
                topic: self.topic.clone(),
                source,
            })?;
        info!(topic = %self.topic, "consuming");
        let mut last_error_log: Option<Instant> = None;
        // Messages not handed on yet: poll briefly, and hand them on as soon
        // as nothing more arrives.
        let mut pending = false;
        let mut held = Held::default();
        while !shutdown.is_triggered() {
            let timeout = if pending {
                self.poll_timeout.min(PENDING_POLL_TIMEOUT)
            } else {
                self.poll_timeout
            };
            match self.consumer.poll(timeout) {
                Some(Ok(msg)) => {
                    pending =
                        lock(&self.consumer.context().pipeline).push(&self.consumer, msg, &mut held)
                }
                None if pending => {
                    let mut p = lock(&self.consumer.context().pipeline);
                    p.finish(&mut held);
                    pending = false;
                    // A steady trickle never leaves `poll` idle and may take
                    // long to reach `CHECK_EVERY` messages: offsets, dead
                    // letters and snapshots are looked after by time too.
                    p.clock_ms = wall_ms();
                    if p.clock_ms - p.maintained_ms >= MAINTAIN_INTERVAL_MS {
                        p.maintain(&self.consumer);
                    }
                }
                None => {
                    let context = self.consumer.context();
                    let mut p = lock(&context.pipeline);
                    p.maintain(&self.consumer);
                    let now = p.clock_ms;
                    p.sink.idle(now, &|partition| context.may_tick(partition));
                }
                Some(Err(e)) => {
                    self.consumer
                        .context()
                        .metrics
                        .kafka_error(KafkaOp::Consume);
                    // librdkafka retries on its own; keep the log readable.
                    if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        warn!(error = %e, "kafka consume error (retrying)");
                        last_error_log = Some(Instant::now());
                    }
                }
            }
        }
        info!("stopping: waiting for dead letters and committing offsets");
        let left = {
            let mut p = lock(&self.consumer.context().pipeline);
            p.finish(&mut held);
            drop(held);
            let left = p.drain(&self.consumer, self.shutdown_timeout);
            let partitions = p.tracker.partitions();
            p.flush_state(&self.consumer, &partitions, self.shutdown_timeout);
            left
        };
        commit_sync(&self.consumer, &self.consumer.context().metrics);
        let context = Arc::clone(self.consumer.context());
        // Closing the consumer leaves the group (running the revoke callback,
        // which commits again: harmless, and covers a revoke-time flush).
        drop(self.consumer);
        let context = Arc::try_unwrap(context)
            .map_err(|_| ())
            .expect("the consumer is closed, so its context is ours");
        let pipeline = context
            .pipeline
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        let mut summary = pipeline.summary;
        summary.unacknowledged_dead_letters = left;
        info!(
            consumed = summary.consumed,
            decoded = summary.decoded,
            dead_lettered = summary.dead_lettered_total(),
            "stopped"
        );
        Ok((summary, pipeline.sink))
    }
}
