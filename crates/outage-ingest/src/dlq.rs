//! The dead-letter queue: bad messages produced to the dead-letter topic
//! with the reason and where they came from, held until the topic
//! acknowledges them, and re-sent until it does.
//!
//! The consumer loop holds a bad message's offset back until
//! [`DeadLetterQueue::poll`] reports it delivered, so nothing is committed
//! past a message whose dead letter could still be lost. Every way the
//! producer can refuse has a policy: a letter too large for it is sent
//! truncated (the original stays at its offset, which the headers name),
//! any other refusal is offered again every [`RETRY`], a failed delivery is
//! re-sent at once. What is held is counted in letters and bytes
//! ([`DeadLetterQueue::held`]) so the loop can pause consumption.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use outage_detect::DecodeError;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext, Message};
use tracing::warn;

use crate::lock;
use crate::metrics::{IngestMetrics, KafkaOp};

/// Prefix of the headers the ingester adds to dead-lettered messages:
/// `outage-radar.reason` (a [`outage_detect::RejectReason`] name),
/// `outage-radar.error` (human detail), `outage-radar.source.topic`,
/// `.partition`, `.offset`, and `outage-radar.truncated` when the value
/// had to be cut.
pub const DLQ_HEADER_PREFIX: &str = "outage-radar.";

/// A dead letter the producer refuses as too large keeps this much of its
/// value (then none), with a header saying how big it was.
const TRUNCATED_VALUE_BYTES: usize = 64 << 10;
/// Wait before a dead letter the producer refused is offered again.
const RETRY: Duration = Duration::from_secs(1);
/// Failed deliveries are logged at most this often (with their count).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// A bad message, kept until the dead-letter topic acknowledges it so it can
/// be re-sent if delivery fails.
pub(crate) struct DeadLetter {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: Option<i64>,
    /// When the producer refused it (it is not in flight): when to offer
    /// it again. `None` while it is in flight.
    retry_at: Option<Instant>,
}

impl DeadLetter {
    /// The letter for `msg`, rejected for `e`: its key, value, headers and
    /// timestamp, plus the reason and the message's origin as headers.
    pub(crate) fn new(msg: &BorrowedMessage<'_>, e: &DecodeError) -> DeadLetter {
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
        headers.push((format!("{p}error"), Some(e.detail.clone().into_bytes())));
        headers.push((format!("{p}source.topic"), Some(msg.topic().into())));
        headers.push((
            format!("{p}source.partition"),
            Some(msg.partition().to_string().into_bytes()),
        ));
        headers.push((
            format!("{p}source.offset"),
            Some(msg.offset().to_string().into_bytes()),
        ));
        DeadLetter {
            key: msg.key().map(<[u8]>::to_vec),
            value: msg.payload().map(<[u8]>::to_vec),
            headers,
            timestamp: msg.timestamp().to_millis(),
            retry_at: None,
        }
    }

    /// Bytes held for it.
    fn bytes(&self) -> usize {
        let opt = |v: &Option<Vec<u8>>| v.as_ref().map_or(0, Vec::len);
        opt(&self.key)
            + opt(&self.value)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + opt(v))
                .sum::<usize>()
    }

    /// Makes a letter the producer refused as too large smaller: first its
    /// value is cut to [`TRUNCATED_VALUE_BYTES`], then dropped with the
    /// original headers (outage-radar's own headers stay). Records the
    /// original size in `outage-radar.truncated`. False when nothing is
    /// left to cut.
    fn shrink(&mut self) -> bool {
        let value_len = self.value.as_ref().map_or(0, Vec::len);
        let truncated = format!("{DLQ_HEADER_PREFIX}truncated");
        let first = !self.headers.iter().any(|(k, _)| *k == truncated);
        if first {
            self.headers.push((
                truncated,
                Some(format!("value of {value_len} bytes").into_bytes()),
            ));
        }
        if value_len > TRUNCATED_VALUE_BYTES {
            if let Some(v) = &mut self.value {
                v.truncate(TRUNCATED_VALUE_BYTES);
            }
            return true;
        }
        let others = self
            .headers
            .iter()
            .any(|(k, _)| !k.starts_with(DLQ_HEADER_PREFIX));
        if value_len > 0 || others {
            self.value = None;
            self.headers
                .retain(|(k, _)| k.starts_with(DLQ_HEADER_PREFIX));
            return true;
        }
        first
    }
}

/// Acknowledgement of one dead-letter delivery.
struct Ack {
    partition: i32,
    offset: i64,
    error: Option<KafkaError>,
}

/// Dead-letter producer context: queues acknowledgements for the loop.
pub(crate) struct DlqContext {
    acks: Mutex<Vec<Ack>>,
}

impl ClientContext for DlqContext {}

impl ProducerContext for DlqContext {
    type DeliveryOpaque = Box<(i32, i64)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let (partition, offset) = *opaque;
        let error = result.as_ref().err().map(|(e, _)| e.clone());
        lock(&self.acks).push(Ack {
            partition,
            offset,
            error,
        });
    }
}

/// The dead-letter producer and the letters it has not delivered yet,
/// keyed by the (partition, offset) they came from.
pub(crate) struct DeadLetterQueue {
    producer: BaseProducer<DlqContext>,
    topic: String,
    letters: BTreeMap<(i32, i64), DeadLetter>,
    /// [`DeadLetter::bytes`] of `letters`.
    bytes: usize,
    metrics: IngestMetrics,
    /// Failed deliveries since the last warning about them, and when that
    /// was: a dead-letter topic that is gone fails every letter, and one
    /// line per letter would bury the log.
    failures: (u64, Option<Instant>),
}

impl DeadLetterQueue {
    /// A queue producing to `topic` with the producer settings `config`.
    pub(crate) fn new(
        config: &ClientConfig,
        topic: &str,
        metrics: IngestMetrics,
    ) -> Result<DeadLetterQueue, KafkaError> {
        let producer = config.create_with_context(DlqContext {
            acks: Mutex::new(Vec::new()),
        })?;
        Ok(DeadLetterQueue {
            producer,
            topic: topic.to_string(),
            letters: BTreeMap::new(),
            bytes: 0,
            metrics,
            failures: (0, None),
        })
    }

    /// Sends the letter of the message at (`partition`, `offset`) and
    /// holds it until [`DeadLetterQueue::poll`] reports it delivered.
    pub(crate) fn send(&mut self, partition: i32, offset: i64, mut letter: DeadLetter) {
        self.offer(partition, offset, &mut letter);
        self.hold(partition, offset, letter);
    }

    /// Serves acknowledgements: re-sends failed deliveries and the letters
    /// whose retry is due, and returns the (partition, offset) of the
    /// letters now delivered.
    pub(crate) fn poll(&mut self) -> Vec<(i32, i64)> {
        self.producer.poll(Duration::ZERO);
        let acks = std::mem::take(&mut *lock(&self.producer.context().acks));
        let mut delivered = Vec::new();
        for ack in acks {
            let key = (ack.partition, ack.offset);
            match ack.error {
                None => {
                    if let Some(letter) = self.letters.remove(&key) {
                        self.bytes -= letter.bytes();
                    }
                    delivered.push(key);
                }
                Some(e) => {
                    self.metrics.dead_letter_errors.inc();
                    self.failures.0 += 1;
                    if self.failures.1.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                        warn!(partition = ack.partition, offset = ack.offset, error = %e, failures = self.failures.0, "dead-letter deliveries failed; re-sending (offsets held back until they succeed)");
                        self.failures = (0, Some(Instant::now()));
                    }
                    if let Some(mut letter) = self.take(key) {
                        self.offer(ack.partition, ack.offset, &mut letter);
                        self.hold(ack.partition, ack.offset, letter);
                    }
                }
            }
        }
        let now = Instant::now();
        let due: Vec<(i32, i64)> = self
            .letters
            .iter()
            .filter(|(_, l)| l.retry_at.is_some_and(|t| t <= now))
            .map(|(&k, _)| k)
            .collect();
        for key in due {
            if let Some(mut letter) = self.take(key) {
                self.offer(key.0, key.1, &mut letter);
                self.hold(key.0, key.1, letter);
            }
        }
        delivered
    }

    /// Waits up to `timeout` for delivery reports (collected by the next
    /// [`DeadLetterQueue::poll`]).
    pub(crate) fn wait(&self, timeout: Duration) {
        self.producer.poll(timeout);
    }

    /// Letters and bytes held.
    pub(crate) fn held(&self) -> (usize, usize) {
        (self.letters.len(), self.bytes)
    }

    /// Forgets the letters of a partition that is no longer ours (its new
    /// owner reads those messages again from the committed offset).
    pub(crate) fn forget(&mut self, partition: i32) {
        self.letters.retain(|(p, _), _| *p != partition);
        self.bytes = self.letters.values().map(DeadLetter::bytes).sum();
    }

    fn take(&mut self, key: (i32, i64)) -> Option<DeadLetter> {
        let letter = self.letters.remove(&key)?;
        self.bytes -= letter.bytes();
        Some(letter)
    }

    fn hold(&mut self, partition: i32, offset: i64, letter: DeadLetter) {
        self.bytes += letter.bytes();
        self.letters.insert((partition, offset), letter);
    }

    /// Hands a letter to the producer. One it refuses as too large is made
    /// smaller and offered again; one refused for another reason is
    /// offered again after [`RETRY`] by [`DeadLetterQueue::poll`] (its
    /// offset stays held back meanwhile, so nothing is committed past it).
    fn offer(&mut self, partition: i32, offset: i64, letter: &mut DeadLetter) {
        loop {
            let Err(e) = self.produce(partition, offset, letter) else {
                letter.retry_at = None;
                return;
            };
            self.metrics.dead_letter_errors.inc();
            self.metrics.kafka_error(KafkaOp::Produce);
            let too_large = matches!(
                e,
                KafkaError::MessageProduction(
                    RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize
                )
            );
            if too_large && letter.shrink() {
                warn!(partition, offset, error = %e, "dead letter too large for the producer; sending it truncated (the original stays at its offset)");
                continue;
            }
            self.failures.0 += 1;
            if self.failures.1.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                warn!(partition, offset, error = %e, failures = self.failures.0, "cannot enqueue dead-letter messages; retrying every second, offsets held back");
                self.failures = (0, Some(Instant::now()));
            }
            letter.retry_at = Some(Instant::now() + RETRY);
            return;
        }
    }

    fn produce(&self, partition: i32, offset: i64, letter: &DeadLetter) -> Result<(), KafkaError> {
        loop {
            let mut headers = OwnedHeaders::new_with_capacity(letter.headers.len());
            for (key, value) in &letter.headers {
                headers = headers.insert(Header {
                    key,
                    value: value.as_deref(),
                });
            }
            let mut record: BaseRecord<'_, [u8], [u8], Box<(i32, i64)>> =
                BaseRecord::with_opaque_to(&self.topic, Box::new((partition, offset)))
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
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.producer.poll(Duration::from_millis(50));
                }
                // Not retriable by librdkafka (e.g. too large for the
                // producer): `offer` decides.
                Err((e, _)) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::mocking::MockCluster;

    fn letter(value: usize, headers: &[&str]) -> DeadLetter {
        DeadLetter {
            key: Some(b"alexa".to_vec()),
            value: Some(vec![b'x'; value]),
            headers: headers
                .iter()
                .map(|k| (k.to_string(), Some(b"v".to_vec())))
                .collect(),
            timestamp: None,
            retry_at: None,
        }
    }

    /// A queue on librdkafka's in-process mock cluster, whose producer
    /// takes messages of up to 1 MB.
    fn queue(
        cluster: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    ) -> DeadLetterQueue {
        cluster.create_topic("dlq", 1, 1).unwrap();
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("message.max.bytes", "1000000");
        DeadLetterQueue::new(&config, "dlq", IngestMetrics::unregistered()).unwrap()
    }

    fn poll_until(q: &mut DeadLetterQueue, n: usize) -> Vec<(i32, i64)> {
        let mut delivered = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while delivered.len() < n && Instant::now() < deadline {
            q.wait(Duration::from_millis(20));
            delivered.extend(q.poll());
        }
        delivered
    }

    #[test]
    fn letters_are_held_until_delivered_and_counted_in_bytes() {
        let cluster = MockCluster::new(1).unwrap();
        let mut q = queue(&cluster);
        q.send(0, 7, letter(100, &["a"]));
        q.send(1, 3, letter(50, &[]));
        let (count, bytes) = q.held();
        assert_eq!(count, 2);
        assert_eq!(bytes, (5 + 100 + 2) + (5 + 50));
        let mut delivered = poll_until(&mut q, 2);
        delivered.sort();
        assert_eq!(delivered, [(0, 7), (1, 3)]);
        assert_eq!(q.held(), (0, 0));
    }

    #[test]
    fn a_letter_too_large_for_the_producer_is_delivered_truncated() {
        let cluster = MockCluster::new(1).unwrap();
        let mut q = queue(&cluster);
        q.send(0, 1, letter(2 << 20, &[]));
        assert!(q.held().1 <= TRUNCATED_VALUE_BYTES + 100, "{:?}", q.held());
        assert_eq!(poll_until(&mut q, 1), [(0, 1)]);
    }

    #[test]
    fn a_revoked_partition_is_forgotten() {
        let cluster = MockCluster::new(1).unwrap();
        let mut q = queue(&cluster);
        q.send(0, 1, letter(10, &[]));
        q.send(1, 1, letter(20, &[]));
        q.forget(0);
        assert_eq!(q.held(), (1, 5 + 20));
    }

    #[test]
    fn a_letter_too_large_is_cut_then_stripped_then_given_up() {
        let reason = format!("{DLQ_HEADER_PREFIX}reason");
        let mut l = letter(2 << 20, &[&reason, "traceparent"]);
        let before = l.bytes();
        assert!(l.shrink());
        assert_eq!(l.value.as_ref().map(Vec::len), Some(TRUNCATED_VALUE_BYTES));
        let truncated = format!("{DLQ_HEADER_PREFIX}truncated");
        let said = l.headers.iter().find(|(k, _)| *k == truncated);
        assert_eq!(
            said.and_then(|(_, v)| v.clone()),
            Some(format!("value of {} bytes", 2 << 20).into_bytes())
        );
        assert!(l.bytes() < before);
        // Still refused: the value and foreign headers go, ours stay.
        assert!(l.shrink());
        assert_eq!(l.value, None);
        let keys: Vec<&str> = l.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, [reason.as_str(), truncated.as_str()]);
        // Nothing left to cut: the queue retries instead.
        assert!(!l.shrink());
        assert_eq!(l.key.as_deref(), Some(&b"alexa"[..]), "the key stays");
    }
}
