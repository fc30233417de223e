//! The input side of `replay`: reading, decompressing and decoding a file of
//! reports on a thread of its own, so that the detector's thread does
//! nothing else.
//!
//! On a feed of many series the detector's thread spent about a third of a
//! replay inflating gzip and decoding JSON (BENCHMARKS.md). Both depend only
//! on the bytes, never on the detector, so they run ahead on a second thread
//! and hand over batches of decoded lines, in file order, through a bounded
//! channel: a slow detector stops the reader rather than letting batches
//! pile up in memory.
//!
//! A decoded report borrows its strings from its line, and a line cannot
//! cross threads while borrowed. So a batch carries its bytes and, for each
//! line, where in them the report's strings are; the detector's thread
//! rebuilds each [`Report`] as a view of those bytes, without copying or
//! allocating. A report whose JSON used escapes owns its strings and travels
//! whole.

use std::io::{self, BufRead};
use std::ops::Range;
use std::sync::mpsc;
use std::thread;

use outage_detect::{decode, DecodeOptions, Problem, Region, RejectReason, Report};

/// Bytes of lines per batch: large enough that handing one over costs
/// nothing per report, small enough to stay in cache while it is counted.
const BATCH_BYTES: usize = 1 << 18;

/// Batches decoded ahead of the detector, at most.
const AHEAD: usize = 4;

/// A report whose strings are ranges of its batch's bytes.
struct Spans {
    service: Range<usize>,
    region: Region,
    ts_ms: i64,
    problem: Problem,
    reporter: Option<Range<usize>>,
    source: Option<Range<usize>>,
}

/// What one non-empty line decoded to.
enum Line {
    Spans(Spans),
    /// A report with escaped strings, which own their bytes.
    Owned(Report<'static>),
    Rejected(RejectReason),
}

/// Decoded lines, in file order, with the bytes their reports point into.
pub struct Batch {
    /// The batch's lines, rejected ones blanked: their bytes may not be
    /// UTF-8, and a report's strings are read from here without checking
    /// again.
    text: String,
    lines: Vec<Line>,
}

impl Batch {
    /// Each non-empty line of the batch: its report, or why it was rejected.
    pub fn reports(&self) -> impl Iterator<Item = Result<Report<'_>, RejectReason>> + '_ {
        let text = |range: &Range<usize>| &self.text[range.clone()];
        self.lines.iter().map(move |line| match line {
            Line::Spans(s) => Ok(Report {
                service: text(&s.service).into(),
                region: s.region,
                ts_ms: s.ts_ms,
                problem: s.problem,
                reporter: s.reporter.as_ref().map(|r| text(r).into()),
                source: s.source.as_ref().map(|r| text(r).into()),
            }),
            // Lent, not cloned: no allocation for escaped lines either.
            Line::Owned(r) => Ok(Report {
                service: r.service.as_ref().into(),
                region: r.region,
                ts_ms: r.ts_ms,
                problem: r.problem,
                reporter: r.reporter.as_deref().map(Into::into),
                source: r.source.as_deref().map(Into::into),
            }),
            Line::Rejected(reason) => Err(*reason),
        })
    }
}

/// Where `s` lies in `bytes`, if it borrows from them.
fn span(bytes: &[u8], s: &str) -> Option<Range<usize>> {
    let start = (s.as_ptr() as usize).checked_sub(bytes.as_ptr() as usize)?;
    let end = start + s.len();
    (end <= bytes.len()).then_some(start..end)
}

fn spans(bytes: &[u8], report: &Report<'_>) -> Option<Spans> {
    let optional = |s: &Option<std::borrow::Cow<'_, str>>| match s {
        None => Some(None),
        Some(s) => span(bytes, s).map(Some),
    };
    Some(Spans {
        service: span(bytes, &report.service)?,
        region: report.region,
        ts_ms: report.ts_ms,
        problem: report.problem,
        reporter: optional(&report.reporter)?,
        source: optional(&report.source)?,
    })
}

/// Reads the next batch: whole lines up to about [`BATCH_BYTES`], each
/// decoded as it is read. `None` at the end of the input.
/// `batch` is a used one to fill again, its memory already touched.
fn next_batch(
    reader: &mut impl BufRead,
    opts: &DecodeOptions,
    batch: Option<Batch>,
) -> io::Result<Option<Batch>> {
    let (mut bytes, mut lines) = match batch {
        Some(Batch { text, mut lines }) => {
            let mut bytes = text.into_bytes();
            bytes.clear();
            lines.clear();
            (bytes, lines)
        }
        None => (
            Vec::with_capacity(BATCH_BYTES + 4096),
            Vec::with_capacity(BATCH_BYTES / 64),
        ),
    };
    let mut eof = false;
    while bytes.len() < BATCH_BYTES {
        let start = bytes.len();
        if reader.read_until(b'\n', &mut bytes)? == 0 {
            eof = true;
            break;
        }
        let line = &bytes[start..];
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        if body.is_empty() {
            continue;
        }
        // The skew check is the stream clock's, on the detector's thread:
        // the file's time is the clock.
        lines.push(match decode(body, None, i64::MAX / 4, opts) {
            // Offsets, not pointers: the buffer may still grow and move.
            Ok(report) => match spans(&bytes, &report) {
                Some(spans) => Line::Spans(spans),
                None => Line::Owned(report.into_owned()),
            },
            Err(e) => {
                // Not UTF-8, or too long to have been checked.
                bytes[start..].fill(b' ');
                Line::Rejected(e.reason)
            }
        });
    }
    if eof && lines.is_empty() {
        return Ok(None);
    }
    // The decoder accepts only lines that are UTF-8 whole (it checks before
    // parsing), the rest are blanked and line ends are ASCII: so checking
    // the batch once here spares the detector's thread a check per string.
    let text = String::from_utf8(bytes).expect("accepted lines are UTF-8, the rest blanked");
    Ok(Some(Batch { text, lines }))
}

/// Batches of decoded lines from a reader on its own thread, in order.
pub struct Batches {
    rx: mpsc::Receiver<io::Result<Batch>>,
    /// Batches counted, back to the reader to be filled again.
    used: mpsc::Sender<Batch>,
    reader: Option<thread::JoinHandle<()>>,
}

impl Batches {
    /// Starts reading `reader` on a new thread.
    pub fn spawn(mut reader: impl BufRead + Send + 'static, opts: DecodeOptions) -> Self {
        let (tx, rx) = mpsc::sync_channel(AHEAD);
        let (used, used_rx) = mpsc::channel::<Batch>();
        let reader = thread::Builder::new()
            .name("replay-reader".into())
            .spawn(move || loop {
                let next = next_batch(&mut reader, &opts, used_rx.try_recv().ok());
                let last = !matches!(next, Ok(Some(_)));
                let Some(sent) = next.transpose() else { break };
                // The receiver gone means the replay stopped on an error.
                if tx.send(sent).is_err() || last {
                    break;
                }
            })
            .expect("spawning the reader thread");
        Batches {
            rx,
            used,
            reader: Some(reader),
        }
    }

    /// Hands a counted batch back for reuse: fresh buffers of this size
    /// cost page faults and zeroing, about 2.5 % of a replay on one core.
    pub fn recycle(&self, batch: Batch) {
        // The reader gone (at the end) just drops it.
        let _ = self.used.send(batch);
    }
}

impl Iterator for Batches {
    type Item = io::Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.rx.recv() {
            Ok(batch) => Some(batch),
            Err(mpsc::RecvError) => {
                // The reader finished; a panic there is a bug to surface.
                if let Some(reader) = self.reader.take() {
                    if let Err(panic) = reader.join() {
                        std::panic::resume_unwind(panic);
                    }
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &'static [u8]) -> Vec<Result<Report<'static>, RejectReason>> {
        let mut out = Vec::new();
        let mut batches = Batches::spawn(input, DecodeOptions::default());
        while let Some(batch) = batches.next() {
            let batch = batch.expect("reading from memory");
            out.extend(batch.reports().map(|r| r.map(|r| r.into_owned())));
            // Reused batches must come back as clean as new ones.
            batches.recycle(batch);
        }
        out
    }

    #[test]
    fn every_line_comes_back_in_order_as_the_decoder_read_it() {
        let mut text: Vec<u8> = Vec::new();
        // Enough lines for several batches, escaped strings among them, bad
        // lines (not JSON, not UTF-8, too long to check), blank lines, CRLF
        // and a last line without a newline.
        for i in 0..20_000 {
            let line = match i % 500 {
                7 => "not json\n".to_string(),
                8 => "\r\n\n".to_string(),
                9 => format!(
                    "{{\"service\":\"a\\u0062c\",\"region\":\"US\",\"ts\":{i},\"problem\":\"app\",\"reporter\":\"r\\\"{i}\"}}\r\n"
                ),
                10 => format!("{{\"service\":\"x\",\"region\":\"US\",\"ts\":{i},\"reporter\":\"été\"}}\n"),
                11 => {
                    text.extend_from_slice(b"{\"service\":\"x\xff\xfe\",\"region\":\"US\"}\n");
                    continue;
                }
                12 => {
                    text.extend_from_slice(b"{\"service\":\"x\",\"source\":\"");
                    text.extend(std::iter::repeat_n(0xe9, 20_000));
                    text.extend_from_slice(b"\"}\n");
                    continue;
                }
                _ => format!(
                    "{{\"service\":\"svc{}\",\"region\":\"FR\",\"ts\":{i},\"problem\":\"login\",\"reporter\":\"u{i}\",\"source\":\"web\"}}\n",
                    i % 7
                ),
            };
            text.extend_from_slice(line.as_bytes());
        }
        text.extend_from_slice(
            b"{\"service\":\"last\",\"region\":\"DE\",\"ts\":1,\"problem\":\"app\"}",
        );
        let text: &'static [u8] = Box::leak(text.into_boxed_slice());
        let expected: Vec<_> = text
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .filter(|l| !l.is_empty())
            .map(|l| {
                decode(l, None, i64::MAX / 4, &DecodeOptions::default())
                    .map(|r| r.into_owned())
                    .map_err(|e| e.reason)
            })
            .collect();
        assert!(text.len() > 3 * BATCH_BYTES, "several batches");
        for reason in [
            RejectReason::NotJson,
            RejectReason::NotUtf8,
            RejectReason::Oversize,
        ] {
            assert!(expected.iter().any(|r| r.as_ref().err() == Some(&reason)));
        }
        assert!(expected
            .iter()
            .any(|r| r.as_ref().is_ok_and(|r| r.service == "abc")));
        assert!(expected.iter().any(|r| r
            .as_ref()
            .is_ok_and(|r| r.reporter.as_deref() == Some("été"))));
        assert_eq!(read_all(text), expected);
    }

    #[test]
    fn an_empty_input_is_no_batch() {
        assert!(read_all(b"").is_empty());
        assert!(read_all(b"\n\n").is_empty());
    }

    struct Failing;
    impl io::Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("disk on fire"))
        }
    }

    #[test]
    fn a_read_error_reaches_the_detector_thread() {
        let mut batches = Batches::spawn(io::BufReader::new(Failing), DecodeOptions::default());
        let err = batches.next().expect("an item").err().expect("the error");
        assert_eq!(err.to_string(), "disk on fire");
        assert!(batches.next().is_none());
    }
}
