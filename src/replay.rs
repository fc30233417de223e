//! `outage-radar replay`: the identical detector over a file of reports in
//! arrival order, no Kafka. Writes `scores.csv`, `incidents.jsonl` and
//! `summary.json` for backtests.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use outage_detect::clock::{StreamClock, Verdict};
use outage_detect::{Detector, Event, Incident, RejectReason, Report, Scope};
use serde_json::json;

use crate::batches::Batches;
use crate::config::Config;

/// RFC 3339 UTC with seconds, e.g. `2018-09-26T10:02:00Z`.
pub use outage_detect::time::format_rfc3339_ms as rfc3339;

pub use outage_export::incident_json;

/// Appends `n` in decimal.
fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends `x` as `{:.3}` writes it (the same text), without its exact
/// decimal expansion where a scaled integer is certain to round the same
/// way: `scores.csv`'s rows were a fifth of a replay's instructions.
fn push_fixed3(out: &mut Vec<u8>, x: f64) {
    let scaled = x * 1000.0;
    // Away from a tie, and small enough that the product's rounding
    // error (half an ulp of it, under 1e-4 here) cannot cross one.
    if x.is_sign_positive() && scaled < 1e12 && (scaled.fract() - 0.5).abs() > 1e-3 {
        let n = scaled.round() as u64;
        push_u64(out, n / 1000);
        let frac = n % 1000;
        out.extend_from_slice(&[
            b'.',
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ]);
    } else {
        out.extend_from_slice(format!("{x:.3}").as_bytes());
    }
}

/// Reports after a refused one during which it is held for a second look
/// (see [`Intake`]).
const HELD_FOR: u64 = 64;

/// Between the decoder and the detector: stream time from the robust
/// clock, the first reports held until it has a sample, and reports it
/// refused held for a second look.
struct Intake {
    /// Stream time never runs ahead of what many reports agree on (see
    /// `StreamClock`): a device clock 80 years ahead must not close every
    /// window.
    clock: StreamClock,
    /// The first reports, waiting until the clock has its first sample.
    warmup: Vec<Report<'static>>,
    /// Reports the clock refused, each with its sequence number, held for
    /// the next [`HELD_FOR`] reports instead of dropped: after a real data
    /// gap the first reports are ahead of the clock until enough of them
    /// move it (about 16), and they are then counted like the rest. A lone
    /// device clock ahead is not joined by the reports after it; it leaves
    /// the hold as `future_timestamp`.
    held: std::collections::VecDeque<(u64, Report<'static>)>,
    seq: u64,
    rejected: BTreeMap<RejectReason, u64>,
    /// Reports handed to the detector.
    decoded: u64,
}

impl Intake {
    fn new(max_clock_skew_ms: i64) -> Intake {
        Intake {
            clock: StreamClock::new(max_clock_skew_ms),
            warmup: Vec::with_capacity(64),
            held: Default::default(),
            seq: 0,
            rejected: BTreeMap::new(),
            decoded: 0,
        }
    }

    fn reject(&mut self, reason: RejectReason) {
        *self.rejected.entry(reason).or_default() += 1;
    }

    /// The next decoded report of the file.
    fn take(&mut self, report: Report<'_>, detector: &mut Detector) {
        if self.clock.now().is_some() {
            return self.feed(&report, detector, false);
        }
        self.clock.push(report.ts_ms);
        self.warmup.push(report.into_owned());
        if self.clock.warm() {
            self.release_warmup(detector);
        }
    }

    /// Settles the clock on its sample and counts the reports that waited
    /// for it.
    fn release_warmup(&mut self, detector: &mut Detector) {
        self.clock.settle();
        for report in std::mem::take(&mut self.warmup) {
            self.feed(&report, detector, true);
        }
    }

    /// At the end of the file: reports decoded, and rejected by reason.
    fn finish(mut self, detector: &mut Detector) -> (u64, BTreeMap<RejectReason, u64>) {
        // A stream shorter than the clock's sample.
        self.release_warmup(detector);
        // Held to the end: ahead of everything the stream agreed on.
        *self
            .rejected
            .entry(RejectReason::FutureTimestamp)
            .or_default() += self.held.len() as u64;
        self.rejected.retain(|_, n| *n > 0);
        (self.decoded, self.rejected)
    }

    /// Counts `report` at its time, or holds it if the clock refuses it
    /// (`pushed`: the clock has its time already, from the warm-up).
    fn feed(&mut self, report: &Report<'_>, detector: &mut Detector, pushed: bool) {
        self.seq += 1;
        let seq = self.seq;
        while self.held.front().is_some_and(|(s, _)| seq - s > HELD_FOR) {
            self.held.pop_front();
            self.reject(RejectReason::FutureTimestamp);
        }
        let clock = &mut self.clock;
        if clock.judge(report.ts_ms) == Verdict::Future {
            if !pushed {
                clock.push_refused(report.ts_ms);
            }
            self.held.push_back((seq, report.clone().into_owned()));
            return;
        }
        if !pushed {
            clock.push(report.ts_ms);
        }
        let now = clock.now().unwrap_or(report.ts_ms);
        // The clock may have moved: held reports it now accepts count, in
        // time order and each at its own time (the clock's new time is the
        // upper quartile of them, and would make the earliest late).
        let mut due: Vec<Report<'static>> = Vec::new();
        self.held.retain(|(_, h)| {
            if clock.judge(h.ts_ms) == Verdict::Future {
                return true;
            }
            due.push(h.clone());
            false
        });
        due.sort_by_key(|h| h.ts_ms);
        for h in &due {
            detector.observe_at(h, h.ts_ms.min(now));
        }
        // Stream time follows the reports, never beyond what the clock
        // agrees on: the clock's upper quartile can be ahead of a report by
        // a quarter of its sample (seconds in a busy stream, more in a
        // sparse one, and after warm-up), which would make honest reports
        // late.
        detector.observe_at(report, report.ts_ms.min(now));
        self.decoded += 1 + due.len() as u64;
    }
}

/// Plots written besides those of services with an incident: the busiest.
const MAX_PLOTS: usize = 50;

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn open_input(input: &str) -> anyhow::Result<(Box<dyn Read + Send>, Option<u64>)> {
    if input == "-" {
        return Ok((Box::new(io::stdin()), None));
    }
    let file = File::open(input).with_context(|| format!("cannot open {input}"))?;
    let len = file.metadata().ok().map(|m| m.len());
    if input.ends_with(".gz") {
        Ok((Box::new(flate2::read::MultiGzDecoder::new(file)), None))
    } else {
        Ok((Box::new(file), len))
    }
}

pub fn replay(
    input: &str,
    out: &Path,
    config: &Config,
    snapshot_out: Option<&Path>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let (reader, len) = open_input(input)?;
    let progress = if io::stderr().is_terminal() {
        match len {
            Some(n) => indicatif::ProgressBar::new(n).with_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .expect("static template"),
            ),
            None => indicatif::ProgressBar::new_spinner(),
        }
    } else {
        indicatif::ProgressBar::hidden()
    };
    let reader = BufReader::with_capacity(1 << 20, progress.wrap_read(reader));
    let scores_path = out.join("scores.csv");
    let mut scores = BufWriter::new(
        File::create(&scores_path)
            .with_context(|| format!("cannot create {}", scores_path.display()))?,
    );
    writeln!(
        scores,
        "window_start,service,region,observed,expected,score,anomalous"
    )?;

    let opts = config.decode.options();
    let mut detector = Detector::new(config.detect.clone());
    let mut incidents: BTreeMap<String, (usize, Incident)> = BTreeMap::new();
    let mut plots: BTreeMap<String, BTreeMap<String, crate::plot::Series>> = BTreeMap::new();
    let (mut lines, mut windows) = (0u64, 0u64);
    let started = Instant::now();

    // Every series of a window shares its start: formatted once.
    let mut stamp: (i64, String) = (i64::MIN, String::new());
    let mut row: Vec<u8> = Vec::with_capacity(128);
    let mut handle = |events: &mut dyn Iterator<Item = Event>| -> io::Result<()> {
        for event in events {
            match event {
                Event::Window(w) => {
                    windows += 1;
                    // Looked up before inserting: no names copied for
                    // series already plotted (most windows).
                    let service = match plots.get_mut(&w.service) {
                        Some(service) => service,
                        None => plots.entry(w.service.clone()).or_default(),
                    };
                    let label = w.scope.label();
                    let series = match service.get_mut(label) {
                        Some(series) => series,
                        None => service.entry(label.to_string()).or_default(),
                    };
                    series.push(crate::plot::Point {
                        ts_ms: w.window_start_ms,
                        observed: f64::from(w.observed),
                        expected: w.expected,
                    });
                    if stamp.0 != w.window_start_ms {
                        stamp = (w.window_start_ms, rfc3339(w.window_start_ms));
                    }
                    // One row, built without the formatting machinery
                    // (most of what writing it cost).
                    row.clear();
                    for field in [stamp.1.as_str(), &w.service, w.scope.label()] {
                        row.extend_from_slice(field.as_bytes());
                        row.push(b',');
                    }
                    push_u64(&mut row, u64::from(w.observed));
                    row.push(b',');
                    push_fixed3(&mut row, w.expected);
                    row.push(b',');
                    push_fixed3(&mut row, w.surprise);
                    row.extend_from_slice(if w.anomalous { b",1\n" } else { b",0\n" });
                    scores.write_all(&row)?;
                }
                Event::Opened(i) | Event::Updated(i) | Event::Resolved(i) => {
                    let order = incidents.len();
                    incidents
                        .entry(i.id.clone())
                        .and_modify(|e| e.1 = i.clone())
                        .or_insert((order, i));
                }
            }
        }
        Ok(())
    };

    let mut intake = Intake::new(opts.max_clock_skew_ms);
    let mut batches = Batches::spawn(reader, opts.clone());
    while let Some(batch) = batches.next() {
        let batch = batch.with_context(|| format!("cannot read {input}"))?;
        for report in batch.reports() {
            lines += 1;
            match report {
                Ok(report) => intake.take(report, &mut detector),
                Err(reason) => intake.reject(reason),
            }
        }
        // The batch's events, in the order they came.
        handle(&mut detector.drain_events())?;
        batches.recycle(batch);
    }
    let (decoded, rejected) = intake.finish(&mut detector);
    detector.flush();
    handle(&mut detector.drain_events())?;
    scores.flush()?;
    progress.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();

    let mut ordered: Vec<&(usize, Incident)> = incidents.values().collect();
    ordered.sort_by_key(|(order, _)| *order);
    let incidents_path = out.join("incidents.jsonl");
    let mut inc_out = BufWriter::new(File::create(&incidents_path)?);
    for (_, inc) in &ordered {
        serde_json::to_writer(&mut inc_out, &incident_json(inc))?;
        writeln!(inc_out)?;
    }
    inc_out.flush()?;

    let plot_dir = out.join("plots");
    std::fs::create_dir_all(&plot_dir)
        .with_context(|| format!("cannot create {}", plot_dir.display()))?;
    let end_ms = plots
        .values()
        .flat_map(|s| s.values())
        .filter_map(|v| v.points().last())
        .map(|p| p.ts_ms)
        .max()
        .unwrap_or(0);
    // Every service with an incident, and the busiest others: a flood of
    // made-up names must not become a flood of files.
    let mut busiest: Vec<(f64, &String)> = plots
        .iter()
        .map(|(service, series)| {
            let total = series
                .get("global")
                .map_or(0.0, |g| g.points().iter().map(|p| p.observed).sum());
            (total, service)
        })
        .collect();
    busiest.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    let with_incident: std::collections::BTreeSet<&str> =
        ordered.iter().map(|(_, i)| i.service.as_str()).collect();
    let plotted: std::collections::BTreeSet<&String> = busiest
        .iter()
        .take(MAX_PLOTS)
        .map(|(_, s)| *s)
        .chain(plots.keys().filter(|s| with_incident.contains(s.as_str())))
        .collect();
    for (service, series) in plots.iter().filter(|(s, _)| plotted.contains(s)) {
        let spans: Vec<crate::plot::Shade<'_>> = ordered
            .iter()
            .filter(|(_, i)| &i.service == service)
            .map(|(_, i)| crate::plot::Shade {
                scope: i.scope.label(),
                start_ms: i.started_at_ms,
                end_ms: i.resolved_at_ms.unwrap_or(end_ms),
            })
            .collect();
        crate::plot::plot_service(&plot_dir, service, series, &spans)?;
    }

    let counters = detector.counters();
    let summary = json!({
        "input": input,
        "reports_read": lines,
        "decoded": decoded,
        "rejected": rejected.iter().map(|(r, n)| (r.as_str().to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "rejected_total": rejected.values().sum::<u64>(),
        "counted": counters.counted,
        "duplicates": counters.duplicates,
        "late": counters.late,
        "overflow": counters.overflow,
        "not_deduplicated": counters.unchecked,
        "services": detector.service_count(),
        "services_evicted": counters.services_evicted,
        "windows_closed": counters.windows_closed,
        "windows_skipped_as_gaps": counters.windows_skipped,
        "score_rows": windows,
        "series": detector.series_count(),
        "incidents": ordered.len(),
        "region_incidents": ordered.iter().filter(|(_, i)| i.scope != Scope::Global).count(),
        "global_incidents": ordered.iter().filter(|(_, i)| i.scope == Scope::Global).count(),
        "elapsed_seconds": round3(elapsed),
        "reports_per_second": if elapsed > 0.0 { (lines as f64 / elapsed).round() } else { 0.0 },
    });
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&summary)? + "\n",
    )?;
    if let Some(path) = snapshot_out {
        std::fs::write(path, detector.to_snapshot())
            .with_context(|| format!("cannot write snapshot {}", path.display()))?;
        eprintln!(
            "detector state ({} series) → {}",
            detector.series_count(),
            path.display()
        );
    }
    eprintln!(
        "replayed {lines} reports ({decoded} decoded, {} rejected) in {elapsed:.1}s: {} incidents → {}",
        rejected.values().sum::<u64>(),
        ordered.len(),
        out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{push_fixed3, push_u64};

    fn fixed3(x: f64) -> String {
        let mut out = Vec::new();
        push_fixed3(&mut out, x);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn integers_are_written_in_decimal() {
        for n in [0, 7, 10, 99, 1000, 123_456_789, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }

    #[test]
    fn floats_are_written_as_format_writes_them() {
        let mut values = vec![
            0.0,
            -0.0,
            -1.25,
            0.0005,
            0.0015,
            2.0625,
            1.0005,
            999.9995,
            50.0,
            1e-9,
            1e11,
            2e12,
            f64::NAN,
            f64::INFINITY,
            f64::MIN_POSITIVE,
        ];
        // Decimal ties and their neighbours, as parsed from text.
        for i in 0..20_000u32 {
            let tie: f64 = format!("{}.{:03}5", i / 7, i % 1000).parse().unwrap();
            values.extend([tie, tie.next_up(), tie.next_down()]);
        }
        // Scores and expectations of every size.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
            values.push(unit * 10f64.powi((x % 13) as i32 - 4));
        }
        for v in values {
            assert_eq!(fixed3(v), format!("{v:.3}"), "{v:e}");
        }
    }
}
