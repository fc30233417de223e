//! Decoding off the consumer thread.
//!
//! The consumer thread copies each polled message's payload and position into
//! a [`Batch`], one byte buffer per batch, and hands full batches to a
//! [`DecodeWorker`] thread. The worker decodes every payload and sends the
//! batch back with one result per message; the consumer thread then feeds
//! the sink, tracks offsets and dead-letters in message order (it keeps the
//! messages themselves until then, for the key and headers of a dead letter:
//! reading every message's headers up front halved the throughput). The
//! sink, offsets and state never leave the consumer thread.
//!
//! What crosses between the threads is kept small, since moving cache lines
//! between cores is most of what this costs: a message is a 32-byte [`Entry`]
//! plus its payload, and a decoded report a 40-byte record of spans into the
//! payloads. Escaped strings and errors, both rare, live in side tables.

use std::borrow::Cow;
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use outage_detect::{decode, DecodeError, DecodeOptions, Problem, Region, Report};
use rdkafka::message::BorrowedMessage;
use rdkafka::Message;

/// Messages per batch: large enough that the hand-over costs little per
/// message, small enough that a batch decodes in well under a millisecond.
pub(crate) const BATCH: usize = 1024;
/// Batches handed over but not yet applied; one more is being filled.
pub(crate) const MAX_IN_FLIGHT: usize = 8;
/// A batch holding this many payload bytes is full whatever its count, so
/// that spans fit in 31 bits (a message is at most 1 GB in Kafka).
const MAX_BATCH_BYTES: usize = 64 << 20;
/// A recycled batch buffer larger than this is dropped (one huge message
/// must not pin its memory).
const KEEP_BYTES: usize = 4 << 20;
/// Marks a [`Span`] that indexes the batch's owned strings.
const OWNED: u32 = 1 << 31;

/// Bytes `start..end` of the batch buffer; `start == u32::MAX`: absent;
/// `start & OWNED`: owned string number `start & !OWNED`.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    const NONE: Span = Span {
        start: u32::MAX,
        end: 0,
    };

    fn is_none(self) -> bool {
        self.start == u32::MAX
    }
}

/// One consumed message, copied out of librdkafka.
#[derive(Debug)]
pub(crate) struct Entry {
    pub partition: i32,
    /// The partition's assignment epoch when the message was consumed: a
    /// message of an earlier assignment is not handed on.
    pub epoch: u32,
    pub offset: i64,
    /// Kafka message timestamp; `i64::MIN`: none.
    kafka_ts_ms: i64,
    payload: Span,
}

impl Entry {
    pub fn kafka_ts_ms(&self) -> Option<i64> {
        (self.kafka_ts_ms != i64::MIN).then_some(self.kafka_ts_ms)
    }
}

/// A decoded report whose strings live in its batch; `region: None` marks
/// a rejected message (its error is in the batch's error table).
#[derive(Debug)]
struct Decoded {
    service: Span,
    reporter: Span,
    source: Span,
    ts_ms: i64,
    region: Option<Region>,
    problem: Problem,
}

/// Messages copied out of the consumer, and once decoded their results.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    results: Vec<Decoded>,
    /// Strings that needed unescaping.
    owned: Vec<Box<str>>,
    /// Rejections by entry number, ascending.
    errors: Vec<(u32, DecodeError)>,
    /// Wall clock for the clock-skew check, taken when the batch was sent.
    pub clock_ms: i64,
}

/// What became of one message of a decoded batch.
pub(crate) enum Outcome<'a> {
    Report(Report<'a>),
    Rejected(&'a DecodeError),
}

/// The span of a string `decode` returned for `bytes`: in place when it
/// was borrowed from them, else kept in `owned`.
fn text_span(s: Cow<'_, str>, bytes: &[u8], owned: &mut Vec<Box<str>>) -> Span {
    if let Cow::Borrowed(b) = &s {
        let start = (b.as_ptr() as usize).wrapping_sub(bytes.as_ptr() as usize);
        let end = start
            .checked_add(b.len())
            .filter(|&e| e <= bytes.len() && e < OWNED as usize);
        if let Some(end) = end {
            return Span {
                start: start as u32,
                end: end as u32,
            };
        }
        // Not from the buffer (cannot happen with `decode` today).
    }
    owned.push(s.into_owned().into_boxed_str());
    Span {
        start: OWNED | (owned.len() - 1) as u32,
        end: 0,
    }
}

impl Batch {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Time to hand the batch over.
    pub fn is_full(&self) -> bool {
        self.entries.len() >= BATCH || self.bytes.len() >= MAX_BATCH_BYTES
    }

    /// Copies what decoding `msg` needs.
    pub fn push(&mut self, msg: &BorrowedMessage<'_>, epoch: u32) {
        self.push_parts(
            (
                msg.partition(),
                epoch,
                msg.offset(),
                msg.timestamp().to_millis(),
            ),
            msg.payload(),
        );
    }

    fn push_parts(
        &mut self,
        (partition, epoch, offset, kafka_ts_ms): (i32, u32, i64, Option<i64>),
        payload: Option<&[u8]>,
    ) {
        let payload = match payload {
            Some(b) => {
                let start = self.bytes.len() as u32;
                self.bytes.extend_from_slice(b);
                Span {
                    start,
                    end: self.bytes.len() as u32,
                }
            }
            None => Span::NONE,
        };
        self.entries.push(Entry {
            partition,
            epoch,
            offset,
            kafka_ts_ms: kafka_ts_ms.unwrap_or(i64::MIN),
            payload,
        });
    }

    fn decode_all(&mut self, opts: &DecodeOptions) {
        let Batch {
            bytes,
            entries,
            results,
            owned,
            errors,
            clock_ms,
            ..
        } = self;
        results.clear();
        owned.clear();
        errors.clear();
        results.reserve(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let value = span_bytes(bytes, e.payload).unwrap_or_default();
            // A report is judged against its record's timestamp (capped by
            // the wall clock), not the consumer's clock alone: a report dated
            // minutes ahead of when it was produced is a device clock, and
            // stream time follows record timestamps (see the ingester).
            let reference = e.kafka_ts_ms().map_or(*clock_ms, |k| k.min(*clock_ms));
            results.push(match decode(value, e.kafka_ts_ms(), reference, opts) {
                Ok(r) => Decoded {
                    service: text_span(r.service, bytes, owned),
                    reporter: r
                        .reporter
                        .map_or(Span::NONE, |t| text_span(t, bytes, owned)),
                    source: r.source.map_or(Span::NONE, |t| text_span(t, bytes, owned)),
                    ts_ms: r.ts_ms,
                    region: Some(r.region),
                    problem: r.problem,
                },
                Err(err) => {
                    errors.push((i as u32, err));
                    Decoded {
                        service: Span::NONE,
                        reporter: Span::NONE,
                        source: Span::NONE,
                        ts_ms: 0,
                        region: None,
                        problem: Problem::Other,
                    }
                }
            });
        }
    }

    fn str_of(&self, span: Span) -> Option<&str> {
        if span.is_none() {
            None
        } else if span.start & OWNED != 0 {
            Some(&self.owned[(span.start & !OWNED) as usize])
        } else {
            let s = &self.bytes[span.start as usize..span.end as usize];
            // SAFETY: a buffer span is made (`text_span`) only from a `&str`
            // that `decode` borrowed from exactly these bytes, which stay
            // untouched until the batch is recycled: valid UTF-8 on char
            // boundaries. Validating again cost 2 % of the consumer thread.
            Some(unsafe { std::str::from_utf8_unchecked(s) })
        }
    }

    /// Each message with its decoded report or the reason it was rejected,
    /// in consumption order (after the worker returned the batch).
    pub fn items(&self) -> impl Iterator<Item = (&Entry, Outcome<'_>)> {
        let mut errors = self.errors.iter();
        self.entries.iter().zip(&self.results).map(move |(e, d)| {
            let outcome = match d.region {
                Some(region) => Outcome::Report(Report {
                    service: Cow::Borrowed(self.str_of(d.service).unwrap_or_default()),
                    region,
                    ts_ms: d.ts_ms,
                    problem: d.problem,
                    reporter: self.str_of(d.reporter).map(Cow::Borrowed),
                    source: self.str_of(d.source).map(Cow::Borrowed),
                }),
                // Errors are kept in entry order, one per rejected result.
                None => Outcome::Rejected(&errors.next().expect("one error per rejection").1),
            };
            (e, outcome)
        })
    }

    #[cfg(test)]
    fn payload(&self, e: &Entry) -> Option<&[u8]> {
        span_bytes(&self.bytes, e.payload)
    }

    fn recycle(&mut self) {
        self.entries.clear();
        self.results.clear();
        self.owned.clear();
        self.errors.clear();
        self.bytes.clear();
        if self.bytes.capacity() > KEEP_BYTES {
            self.bytes = Vec::new();
        }
    }
}

fn span_bytes(bytes: &[u8], span: Span) -> Option<&[u8]> {
    (!span.is_none()).then(|| &bytes[span.start as usize..span.end as usize])
}

/// The decoding thread and the batches travelling to and from it.
pub(crate) struct DecodeWorker {
    to_worker: Option<SyncSender<Batch>>,
    from_worker: Receiver<Batch>,
    free: Vec<Batch>,
    in_flight: usize,
    thread: Option<JoinHandle<()>>,
}

impl DecodeWorker {
    pub fn start(opts: DecodeOptions) -> DecodeWorker {
        let (to_worker, work) = sync_channel::<Batch>(MAX_IN_FLIGHT);
        let (done, from_worker) = channel::<Batch>();
        let thread = std::thread::Builder::new()
            .name("decode".into())
            .spawn(move || {
                while let Ok(mut batch) = work.recv() {
                    batch.decode_all(&opts);
                    if done.send(batch).is_err() {
                        break;
                    }
                }
            })
            .expect("spawn the decode thread");
        DecodeWorker {
            to_worker: Some(to_worker),
            from_worker,
            free: Vec::new(),
            in_flight: 0,
            thread: Some(thread),
        }
    }

    /// An empty batch to fill.
    pub fn empty(&mut self) -> Batch {
        self.free.pop().unwrap_or_else(|| Batch {
            bytes: Vec::with_capacity(BATCH * 160),
            entries: Vec::with_capacity(BATCH),
            results: Vec::with_capacity(BATCH),
            ..Batch::default()
        })
    }

    /// Hands a filled batch to the worker.
    pub fn send(&mut self, batch: Batch) {
        self.in_flight += 1;
        self.to_worker
            .as_ref()
            .expect("worker running")
            .send(batch)
            .expect("the decode thread never exits while its sender lives");
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The oldest decoded batch: waits for it when `wait`, else only if
    /// ready.
    pub fn receive(&mut self, wait: bool) -> Option<Batch> {
        if self.in_flight == 0 {
            return None;
        }
        let batch = if wait {
            self.from_worker.recv().ok()
        } else {
            self.from_worker.try_recv().ok()
        }?;
        self.in_flight -= 1;
        Some(batch)
    }

    /// Returns an applied batch for reuse.
    pub fn recycle(&mut self, mut batch: Batch) {
        batch.recycle();
        if self.free.len() <= MAX_IN_FLIGHT + 1 {
            self.free.push(batch);
        }
    }
}

impl Drop for DecodeWorker {
    fn drop(&mut self) {
        self.to_worker.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_115_200_000;

    fn payloads() -> Vec<Option<Vec<u8>>> {
        let mut v: Vec<Option<Vec<u8>>> = (0..2500)
            .map(|i| {
                Some(
                    format!(
                        r#"{{"service":"svc{}","region":"US-CA","ts":{},"problem":"login","reporter":"r{i}"}}"#,
                        i % 7,
                        NOW - i
                    )
                    .into_bytes(),
                )
            })
            .collect();
        // Escapes make owned strings; bad messages keep their reason.
        v[3] = Some(
            br#"{"service":"a\u0062c","region":"GB","ts":1764115200000,"reporter":"x\"y"}"#
                .to_vec(),
        );
        v[10] = Some(b"not json".to_vec());
        v[11] = None;
        v[2000] = Some(br#"{"service":"svc","region":"GB"}"#.to_vec());
        v
    }

    #[test]
    fn the_worker_decodes_like_decode_in_order_across_batches() {
        let opts = DecodeOptions::default();
        let messages = payloads();
        let mut worker = DecodeWorker::start(opts.clone());
        let mut batch = worker.empty();
        let mut seen = 0;
        let mut check = |batch: &Batch| {
            for (entry, outcome) in batch.items() {
                let result = match outcome {
                    Outcome::Report(r) => Ok(r),
                    Outcome::Rejected(e) => Err(e),
                };
                let i = entry.offset as usize;
                assert_eq!(i, seen, "consumption order");
                seen += 1;
                let value = messages[i].as_deref();
                assert_eq!(batch.payload(entry), value);
                if i == 3 {
                    let r = result.as_ref().expect("escaped strings decode");
                    assert_eq!((&*r.service, r.reporter.as_deref()), ("abc", Some("x\"y")));
                }
                let expected = decode(value.unwrap_or_default(), Some(NOW), NOW, &opts);
                match (result, expected) {
                    (Ok(got), Ok(want)) => assert_eq!(got, want),
                    (Err(got), Err(want)) => assert_eq!(got.reason, want.reason),
                    (got, want) => panic!("message {i}: {got:?} vs {want:?}"),
                }
            }
        };
        for (i, value) in messages.iter().enumerate() {
            batch.push_parts((0, 0, i as i64, Some(NOW)), value.as_deref());
            if batch.len() == BATCH || i + 1 == messages.len() {
                batch.clock_ms = NOW;
                let fresh = worker.empty();
                worker.send(std::mem::replace(&mut batch, fresh));
                if worker.in_flight() == MAX_IN_FLIGHT || i + 1 == messages.len() {
                    while let Some(done) = worker.receive(true) {
                        check(&done);
                        worker.recycle(done);
                    }
                }
            }
        }
        assert_eq!(seen, messages.len());
        assert_eq!(worker.in_flight(), 0);
    }

    #[test]
    fn strings_outside_the_buffer_become_owned() {
        let bytes = b"hello";
        let mut owned = Vec::new();
        let inside = text_span(
            Cow::Borrowed(std::str::from_utf8(&bytes[1..4]).unwrap()),
            bytes,
            &mut owned,
        );
        assert_eq!((inside.start, inside.end), (1, 4));
        let outside = text_span(Cow::Borrowed("static"), bytes, &mut owned);
        assert_eq!(outside.start, OWNED);
        assert_eq!(&*owned[0], "static");
    }

    #[test]
    fn entries_are_small_and_keep_their_message_timestamp() {
        assert!(std::mem::size_of::<Entry>() <= 32);
        assert!(std::mem::size_of::<Decoded>() <= 40);
        let mut b = Batch::default();
        b.push_parts((3, 7, 0, None), Some(b"{}"));
        b.push_parts((3, 7, 1, Some(5)), None);
        assert_eq!(b.entries[0].kafka_ts_ms(), None);
        assert_eq!(b.entries[1].kafka_ts_ms(), Some(5));
        assert_eq!(b.payload(&b.entries[0]), Some(&b"{}"[..]));
        assert_eq!(b.payload(&b.entries[1]), None);
    }
}
