//! Decoding off the consumer thread.
//!
//! The consumer thread copies each polled message (payload, key, headers and
//! position) into a [`Batch`], one byte buffer per batch, and hands full
//! batches to a [`DecodeWorker`] thread. The worker decodes every payload and
//! sends the batch back with one result per message; the consumer thread then
//! feeds the sink, tracks offsets and dead-letters in message order. The sink,
//! offsets and state never leave the consumer thread, so rebalances and
//! snapshots see exactly the messages handed on so far. Decoded reports refer
//! to the batch's buffer by span, so crossing threads costs no allocation.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use outage_detect::{decode, DecodeError, DecodeOptions, Problem, Region, Report};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::Message;

/// Messages per batch: large enough that the hand-over costs little per
/// message, small enough that a batch decodes in well under a millisecond.
pub(crate) const BATCH: usize = 1024;
/// Batches handed over but not yet applied; one more is being filled.
pub(crate) const MAX_IN_FLIGHT: usize = 8;
/// A recycled batch buffer larger than this is dropped (one huge message
/// must not pin its memory).
const KEEP_BYTES: usize = 4 << 20;

/// A string of a decoded report: a span of the batch buffer, or owned (the
/// JSON used escapes).
#[derive(Debug)]
enum Text {
    Span(u32, u32),
    Owned(Box<str>),
}

impl Text {
    fn new(s: Cow<'_, str>, base: &[u8]) -> Text {
        match s {
            Cow::Borrowed(s) => {
                let start = (s.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
                let end = start.checked_add(s.len()).filter(|&e| e <= base.len());
                match end.and_then(|e| u32::try_from(e).ok()) {
                    Some(end) => Text::Span(start as u32, end),
                    // Not from the batch (cannot happen with `decode` today).
                    _ => Text::Owned(s.into()),
                }
            }
            Cow::Owned(s) => Text::Owned(s.into_boxed_str()),
        }
    }

    fn get<'a>(&'a self, bytes: &'a [u8]) -> Cow<'a, str> {
        match self {
            Text::Span(a, b) => {
                let s = &bytes[*a as usize..*b as usize];
                // SAFETY: a span is made (`Text::new`) only from a `&str`
                // that `decode` borrowed from exactly these bytes, which stay
                // untouched until the batch is recycled: valid UTF-8 on char
                // boundaries. Validating again cost 2 % of the consumer
                // thread.
                Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(s) })
            }
            Text::Owned(s) => Cow::Borrowed(s),
        }
    }
}

/// A decoded report whose strings live in its batch.
#[derive(Debug)]
pub(crate) struct Decoded {
    service: Text,
    region: Region,
    ts_ms: i64,
    problem: Problem,
    reporter: Option<Text>,
    source: Option<Text>,
}

impl Decoded {
    fn new(r: Report<'_>, base: &[u8]) -> Decoded {
        Decoded {
            service: Text::new(r.service, base),
            region: r.region,
            ts_ms: r.ts_ms,
            problem: r.problem,
            reporter: r.reporter.map(|t| Text::new(t, base)),
            source: r.source.map(|t| Text::new(t, base)),
        }
    }

    fn report<'a>(&'a self, bytes: &'a [u8]) -> Report<'a> {
        Report {
            service: self.service.get(bytes),
            region: self.region,
            ts_ms: self.ts_ms,
            problem: self.problem,
            reporter: self.reporter.as_ref().map(|t| t.get(bytes)),
            source: self.source.as_ref().map(|t| t.get(bytes)),
        }
    }
}

/// One consumed message, copied out of librdkafka.
#[derive(Debug)]
pub(crate) struct Entry {
    pub partition: i32,
    pub offset: i64,
    pub kafka_ts_ms: Option<i64>,
    payload: Option<Range<usize>>,
    key: Option<Range<usize>>,
    /// Only messages that carry headers pay for copying them.
    pub headers: Option<Vec<(String, Option<Vec<u8>>)>>,
}

/// Messages copied out of the consumer, and once decoded their results.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    results: Vec<Result<Decoded, DecodeError>>,
    /// Wall clock for the clock-skew check, taken when the batch was sent.
    pub clock_ms: i64,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Copies what handling `msg` needs after it is released.
    pub fn push(&mut self, msg: &BorrowedMessage<'_>) {
        let headers = msg.headers().map(|h| {
            h.iter()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect()
        });
        self.push_parts(
            (msg.partition(), msg.offset(), msg.timestamp().to_millis()),
            msg.payload(),
            msg.key(),
            headers,
        );
    }

    fn push_parts(
        &mut self,
        (partition, offset, kafka_ts_ms): (i32, i64, Option<i64>),
        payload: Option<&[u8]>,
        key: Option<&[u8]>,
        headers: Option<Vec<(String, Option<Vec<u8>>)>>,
    ) {
        let mut copy = |b: &[u8]| {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(b);
            start..self.bytes.len()
        };
        let payload = payload.map(&mut copy);
        let key = key.map(&mut copy);
        self.entries.push(Entry {
            partition,
            offset,
            kafka_ts_ms,
            payload,
            key,
            headers,
        });
    }

    fn decode_all(&mut self, opts: &DecodeOptions) {
        self.results.clear();
        self.results.reserve(self.entries.len());
        for e in &self.entries {
            let value = e.payload.clone().map_or(&[][..], |r| &self.bytes[r]);
            let result = decode(value, e.kafka_ts_ms, self.clock_ms, opts)
                .map(|r| Decoded::new(r, &self.bytes));
            self.results.push(result);
        }
    }

    /// Each message with its decoded report or the reason it was rejected,
    /// in consumption order (after the worker returned the batch).
    pub fn items(&self) -> impl Iterator<Item = (&Entry, Result<Report<'_>, &DecodeError>)> {
        self.entries
            .iter()
            .zip(&self.results)
            .map(|(e, r)| (e, r.as_ref().map(|d| d.report(&self.bytes))))
    }

    pub fn payload(&self, e: &Entry) -> Option<&[u8]> {
        e.payload.clone().map(|r| &self.bytes[r])
    }

    pub fn key(&self, e: &Entry) -> Option<&[u8]> {
        e.key.clone().map(|r| &self.bytes[r])
    }

    fn recycle(&mut self) {
        self.entries.clear();
        self.results.clear();
        self.bytes.clear();
        if self.bytes.capacity() > KEEP_BYTES {
            self.bytes = Vec::new();
        }
    }
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
            clock_ms: 0,
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
            for (entry, result) in batch.items() {
                let i = entry.offset as usize;
                assert_eq!(i, seen, "consumption order");
                seen += 1;
                let value = messages[i].as_deref();
                assert_eq!(batch.payload(entry), value);
                assert_eq!(batch.key(entry), Some(format!("k{i}").as_bytes()));
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
            batch.push_parts(
                (0, i as i64, Some(NOW)),
                value.as_deref(),
                Some(format!("k{i}").as_bytes()),
                None,
            );
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
    fn spans_outside_the_batch_become_owned() {
        let base = b"hello";
        match Text::new(Cow::Borrowed("static"), base) {
            Text::Owned(s) => assert_eq!(&*s, "static"),
            t => panic!("{t:?}"),
        }
        let inside = std::str::from_utf8(&base[1..4]).unwrap();
        assert_eq!(Text::new(Cow::Borrowed(inside), base).get(base), "ell");
    }
}
