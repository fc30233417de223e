//! The consumer loop: poll → decode → sink or dead-letter → store offset.
//!
//! One thread owns the consumer and everything it feeds; there is no lock
//! contention on the hot path (the pipeline mutex is only ever taken by this
//! thread, both in the loop and in the rebalance callbacks that librdkafka
//! runs from inside `poll`). Offsets are stored only once a message is fully
//! handled: a good report once the sink returned, a bad message once the
//! dead-letter topic acknowledged it. librdkafka auto-commits what is stored;
//! revoke and shutdown commit synchronously.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use outage_detect::{decode, DecodeError, DecodeOptions, RejectReason};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tracing::{debug, info, warn};

use crate::config::{ConfigError, KafkaConfig};
use crate::metrics::IngestMetrics;
use crate::offsets::OffsetTracker;
use crate::sink::{Position, ReportSink};

/// Prefix of the headers the ingester adds to dead-lettered messages:
/// `outage-radar.reason` (a [`RejectReason`] name), `outage-radar.error`
/// (human detail), `outage-radar.source.topic`, `.partition`, `.offset`.
pub const DLQ_HEADER_PREFIX: &str = "outage-radar.";

/// Handled messages between two looks at the clock.
const CHECK_EVERY: u32 = 1024;
/// Milliseconds between two offset stores while busy. librdkafka commits
/// stored offsets every `auto.commit.interval.ms` (5 s), so storing more
/// often buys nothing, and each store takes locks the fetcher needs.
const MAINTAIN_INTERVAL_MS: i64 = 100;
/// Unacknowledged dead-letter messages at which consumption pauses.
const MAX_PENDING_DLQ: usize = 10_000;

/// Asks a running ingester to stop gracefully. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }
    pub fn trigger(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_triggered(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Failures that stop the ingester from starting.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("invalid configuration")]
    Config(#[from] ConfigError),
    #[error("cannot create the kafka {client}")]
    Client {
        client: &'static str,
        #[source]
        source: KafkaError,
    },
    #[error("cannot subscribe to topic {topic}")]
    Subscribe {
        topic: String,
        #[source]
        source: KafkaError,
    },
}

/// What one run of the ingester did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestSummary {
    pub consumed: u64,
    pub decoded: u64,
    pub dead_lettered: BTreeMap<RejectReason, u64>,
    /// Dead-letter deliveries still unacknowledged when the stop deadline
    /// passed; their offsets were not committed, so they will be re-read.
    pub unacknowledged_dead_letters: usize,
}

impl IngestSummary {
    pub fn dead_lettered_total(&self) -> u64 {
        self.dead_lettered.values().sum()
    }
}

/// A bad message, kept until the dead-letter topic acknowledges it so it can
/// be re-sent if delivery fails.
struct DeadLetter {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: Option<i64>,
}

/// Acknowledgement of one dead-letter delivery.
struct DlqAck {
    partition: i32,
    offset: i64,
    error: Option<KafkaError>,
}

/// Dead-letter producer context: queues acknowledgements for the loop.
struct DlqContext {
    acks: Mutex<Vec<DlqAck>>,
}

impl ClientContext for DlqContext {}

impl ProducerContext for DlqContext {
    type DeliveryOpaque = Box<(i32, i64)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let (partition, offset) = *opaque;
        let error = result.as_ref().err().map(|(e, _)| e.clone());
        lock(&self.acks).push(DlqAck {
            partition,
            offset,
            error,
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain counters behind; carrying
    // on is better than poisoning the whole consumer.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Everything the consumer thread feeds; lives in the consumer context so the
/// rebalance callbacks can flush and commit it.
struct Pipeline<S> {
    sink: S,
    tracker: OffsetTracker,
    dlq: BaseProducer<DlqContext>,
    dlq_topic: String,
    topic: String,
    decode: DecodeOptions,
    metrics: IngestMetrics,
    dead_letters: BTreeMap<(i32, i64), DeadLetter>,
    summary: IngestSummary,
    clock_ms: i64,
    maintained_ms: i64,
    since_check: u32,
    paused: bool,
}

impl<S: ReportSink> Pipeline<S> {
    #[inline]
    fn handle(&mut self, consumer: &BaseConsumer<IngestContext<S>>, msg: &BorrowedMessage<'_>) {
        self.summary.consumed += 1;
        self.metrics.messages_consumed.inc();
        let partition = msg.partition();
        let offset = msg.offset();
        let kafka_ts_ms = msg.timestamp().to_millis();
        let value = msg.payload().unwrap_or_default();
        match decode(value, kafka_ts_ms, self.clock_ms, &self.decode) {
            Ok(report) => {
                self.sink.accept(
                    Position {
                        partition,
                        offset,
                        kafka_ts_ms,
                    },
                    &report,
                );
                self.tracker.handled(partition, offset);
                self.summary.decoded += 1;
                self.metrics.reports_decoded.inc();
            }
            Err(e) => self.dead_letter(msg, e),
        }
        self.since_check += 1;
        if self.since_check >= CHECK_EVERY {
            self.since_check = 0;
            self.clock_ms = now_ms();
            if self.clock_ms - self.maintained_ms >= MAINTAIN_INTERVAL_MS {
                self.maintain(consumer);
            }
        }
    }

    fn dead_letter(&mut self, msg: &BorrowedMessage<'_>, e: DecodeError) {
        let (partition, offset) = (msg.partition(), msg.offset());
        debug!(partition, offset, reason = e.reason.as_str(), detail = %e.detail, "dead-lettering message");
        *self.summary.dead_lettered.entry(e.reason).or_default() += 1;
        self.metrics
            .dead_lettered
            .with_label_values(&[e.reason.as_str()])
            .inc();
        let mut headers: Vec<(String, Option<Vec<u8>>)> = msg
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        let p = DLQ_HEADER_PREFIX;
        headers.push((format!("{p}reason"), Some(e.reason.as_str().into())));
        headers.push((format!("{p}error"), Some(e.detail.into_bytes())));
        headers.push((format!("{p}source.topic"), Some(msg.topic().into())));
        headers.push((
            format!("{p}source.partition"),
            Some(partition.to_string().into_bytes()),
        ));
        headers.push((
            format!("{p}source.offset"),
            Some(offset.to_string().into_bytes()),
        ));
        let letter = DeadLetter {
            key: msg.key().map(<[u8]>::to_vec),
            value: msg.payload().map(<[u8]>::to_vec),
            headers,
            timestamp: msg.timestamp().to_millis(),
        };
        self.tracker.begin_pending(partition, offset);
        self.send_dead_letter(partition, offset, &letter);
        self.dead_letters.insert((partition, offset), letter);
    }

    fn send_dead_letter(&self, partition: i32, offset: i64, letter: &DeadLetter) {
        loop {
            let mut headers = OwnedHeaders::new_with_capacity(letter.headers.len());
            for (key, value) in &letter.headers {
                headers = headers.insert(Header {
                    key,
                    value: value.as_deref(),
                });
            }
            let mut record: BaseRecord<'_, [u8], [u8], Box<(i32, i64)>> =
                BaseRecord::with_opaque_to(&self.dlq_topic, Box::new((partition, offset)))
                    .headers(headers);
            if let Some(key) = &letter.key {
                record = record.key(key.as_slice());
            }
            if let Some(value) = &letter.value {
                record = record.payload(value.as_slice());
            }
            if let Some(ts) = letter.timestamp {
                record = record.timestamp(ts);
            }
            match self.dlq.send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.dlq.poll(Duration::from_millis(50));
                }
                Err((e, _)) => {
                    // Not retriable by librdkafka (e.g. message too large for the
                    // DLQ): the offset stays held back and we try again later.
                    self.metrics.dead_letter_errors.inc();
                    self.metrics
                        .kafka_errors
                        .with_label_values(&["produce"])
                        .inc();
                    warn!(partition, offset, error = %e, "cannot enqueue dead-letter message; will retry");
                    return;
                }
            }
        }
    }

    /// Serves dead-letter acknowledgements (re-sending failures), stores the
    /// offsets that became safe, and pauses or resumes consumption when too
    /// many dead letters are outstanding.
    fn maintain(&mut self, consumer: &BaseConsumer<IngestContext<S>>) {
        self.clock_ms = now_ms();
        self.maintained_ms = self.clock_ms;
        self.dlq.poll(Duration::ZERO);
        let acks = std::mem::take(&mut *lock(&self.dlq.context().acks));
        for ack in acks {
            match ack.error {
                None => {
                    self.tracker.finish_pending(ack.partition, ack.offset);
                    self.dead_letters.remove(&(ack.partition, ack.offset));
                }
                Some(e) => {
                    self.metrics.dead_letter_errors.inc();
                    if let Some(letter) = self.dead_letters.get(&(ack.partition, ack.offset)) {
                        warn!(partition = ack.partition, offset = ack.offset, error = %e, "dead-letter delivery failed; re-sending");
                        self.send_dead_letter(ack.partition, ack.offset, letter);
                    }
                }
            }
        }
        self.store_offsets(consumer);
        let pending = self.tracker.pending();
        if !self.paused && pending >= MAX_PENDING_DLQ {
            warn!(
                pending,
                "too many unacknowledged dead letters; pausing consumption"
            );
            self.set_paused(consumer, true);
        } else if self.paused && pending < MAX_PENDING_DLQ / 2 {
            info!(pending, "dead letters acknowledged; resuming consumption");
            self.set_paused(consumer, false);
        }
    }

    fn set_paused(&mut self, consumer: &BaseConsumer<IngestContext<S>>, paused: bool) {
        let Ok(assignment) = consumer.assignment() else {
            return;
        };
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
            self.metrics
                .kafka_errors
                .with_label_values(&["store"])
                .inc();
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
            self.dlq.poll(Duration::from_millis(20));
        }
    }
}

/// Consumer context: rebalance callbacks run on the consumer thread from
/// inside `poll`, and need the pipeline to flush and commit before
/// partitions move.
struct IngestContext<S> {
    pipeline: Mutex<Pipeline<S>>,
    metrics: IngestMetrics,
    shutdown_timeout: Duration,
}

impl<S: ReportSink> ClientContext for IngestContext<S> {
    /// librdkafka statistics (every `statistics.interval.ms`): consumer lag
    /// per assigned partition.
    fn stats(&self, statistics: rdkafka::Statistics) {
        for topic in statistics.topics.values() {
            for (&partition, p) in &topic.partitions {
                // -1 is librdkafka's internal "unassigned" partition; a lag
                // of -1 means not known yet.
                if partition >= 0 && p.consumer_lag >= 0 {
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[&partition.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl<S: ReportSink> ConsumerContext for IngestContext<S> {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            self.metrics.rebalances.with_label_values(&["revoke"]).inc();
            let mut p = lock(&self.pipeline);
            let left = p.drain(consumer, self.shutdown_timeout);
            if left > 0 {
                warn!(left, "dead letters unacknowledged at revoke; their partitions will be re-read from the last safe offset");
            }
            p.sink.partitions_revoked(&partitions);
            commit_sync(consumer, &self.metrics);
            for partition in &partitions {
                let _ = self
                    .metrics
                    .consumer_lag
                    .remove_label_values(&[&partition.to_string()]);
                p.tracker.forget(*partition);
                p.dead_letters.retain(|(pp, _), _| pp != partition);
            }
            self.metrics
                .assigned_partitions
                .sub(partitions.len() as i64);
            info!(?partitions, "partitions revoked; offsets committed");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                self.metrics.rebalances.with_label_values(&["assign"]).inc();
                self.metrics
                    .assigned_partitions
                    .add(partitions.len() as i64);
                info!(?partitions, "partitions assigned");
                lock(&self.pipeline).sink.partitions_assigned(&partitions);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                self.metrics
                    .kafka_errors
                    .with_label_values(&["consume"])
                    .inc();
                warn!(error = %e, "rebalance failed");
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                self.metrics
                    .kafka_errors
                    .with_label_values(&["commit"])
                    .inc();
                warn!(error = %e, "offset commit failed; it is retried at the next interval");
            }
        }
    }
}

fn commit_sync<C: ConsumerContext>(consumer: &BaseConsumer<C>, metrics: &IngestMetrics) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        // NoOffset: auto-commit already committed everything stored.
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => {
            metrics.kafka_errors.with_label_values(&["commit"]).inc();
            warn!(error = %e, "synchronous offset commit failed");
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
        let dlq: BaseProducer<DlqContext> = config
            .producer_config()?
            .create_with_context(DlqContext {
                acks: Mutex::new(Vec::new()),
            })
            .map_err(|source| IngestError::Client {
                client: "dead-letter producer",
                source,
            })?;
        let pipeline = Pipeline {
            sink,
            tracker: OffsetTracker::new(),
            dlq,
            dlq_topic: config.dlq_topic.clone(),
            topic: config.topic.clone(),
            decode,
            metrics: metrics.clone(),
            dead_letters: BTreeMap::new(),
            summary: IngestSummary::default(),
            clock_ms: now_ms(),
            maintained_ms: 0,
            since_check: 0,
            paused: false,
        };
        let context = IngestContext {
            pipeline: Mutex::new(pipeline),
            metrics,
            shutdown_timeout: config.shutdown_timeout,
        };
        let consumer: BaseConsumer<IngestContext<S>> = config
            .consumer_config()?
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
        while !shutdown.is_triggered() {
            match self.consumer.poll(self.poll_timeout) {
                Some(Ok(msg)) => {
                    lock(&self.consumer.context().pipeline).handle(&self.consumer, &msg)
                }
                None => {
                    let mut p = lock(&self.consumer.context().pipeline);
                    p.maintain(&self.consumer);
                    let now = p.clock_ms;
                    p.sink.idle(now);
                }
                Some(Err(e)) => {
                    self.consumer
                        .context()
                        .metrics
                        .kafka_errors
                        .with_label_values(&["consume"])
                        .inc();
                    // librdkafka retries on its own; keep the log readable.
                    if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        warn!(error = %e, "kafka consume error (retrying)");
                        last_error_log = Some(Instant::now());
                    }
                }
            }
        }
        info!("stopping: waiting for dead letters and committing offsets");
        let left =
            lock(&self.consumer.context().pipeline).drain(&self.consumer, self.shutdown_timeout);
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
