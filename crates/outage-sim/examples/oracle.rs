//! What a detector that knew the scenario could do: the scales of
//! `outage_detect::scan`, held to the same false-alarm budget, scoring each
//! series' counts against its true normal rate and its true dispersion
//! (nothing learned, no hour uncertain, no spreading bar, no problem mix).
//! The yardstick for the families' recall and delays: where this oracle is
//! late too, the counts do not say more sooner at that budget; where it is
//! on time and the detector is not, the detector's learning is what costs.
//!
//! ```sh
//! cargo run --release -p outage-sim --example oracle -- outages 101 120 [BUDGET [boxes]]
//! ```
//!
//! With `boxes`, plain sums over the last 1 to 89 windows replace the
//! detector's weighted scales (a scan statistic over box lengths, held to
//! the same budget): a yardstick for the scan itself.
//!
//! Prints every detectable outage (its delay, or `MISSED`) and a summary.
//! Delays are counted as `outage-radar evaluate` counts them: in windows
//! from the first minute whose excess reaches the detectability floor to
//! the end of the window that pages.

use std::collections::HashMap;
use std::io::Write;

use chrono::DateTime;
use outage_detect::scan::{ScaleSums, Thresholds, HOLD_SURPRISE};
use outage_detect::score;
use outage_detect::DetectorConfig;
use outage_sim::family::family;
use outage_sim::generate;

const MIN: i64 = 60_000;

fn ms(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("the truth's times are RFC 3339")
        .timestamp_millis()
}

/// Where one series stands between pages: a run opens when a window
/// pages and ends once no window has held it for `resolve` windows, as an
/// incident does. Both scans step it the same way.
#[derive(Default)]
struct Run {
    open: bool,
    quiet: u32,
}

/// What one window did to a [`Run`].
enum Step {
    /// Nothing changed.
    Same,
    /// A run opened: a page (a rising edge).
    Paged,
    /// The run ended: the sums start over, as after an incident.
    Ended,
}

impl Run {
    fn step(&mut self, page: bool, hold: bool, resolve: u32) -> Step {
        if self.open {
            self.quiet = if hold { 0 } else { self.quiet + 1 };
            if self.quiet >= resolve {
                self.open = false;
                return Step::Ended;
            }
        } else if page {
            self.open = true;
            self.quiet = 0;
            return Step::Paged;
        }
        Step::Same
    }
}

/// Rising edges of paging (minute indices) of one series on the
/// detector's weighted scales.
fn pages(counts: &[u32], rates: &[f64], k: f64, t: &Thresholds, resolve: u32) -> Vec<usize> {
    let mut sums = ScaleSums::default();
    let (mut out, mut run) = (Vec::new(), Run::default());
    for (m, (&c, &mu)) in counts.iter().zip(rates).enumerate() {
        let v = sums.push(c, mu, 1.0, k, 0.0, t, 50.0);
        match run.step(v.page, v.hold, resolve) {
            Step::Paged => out.push(m),
            Step::Ended => sums.settle(),
            Step::Same => {}
        }
    }
    out
}

/// Lengths of the plain boxes [`pages_boxes`] scans (Fibonacci, to 89
/// windows: a bit over the longest weighted scale's span).
const BOXES: [usize; 10] = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89];

/// [`pages`] with plain sums over the last `BOXES` windows instead of the
/// detector's weighted scales (a scan statistic over box lengths), each
/// held to `−log10(budget / 10 · √L / N)` for `N` windows in 30 days (the
/// crossings the detector's thresholds count, shared by the ten lengths).
fn pages_boxes(
    counts: &[u32],
    rates: &[f64],
    k: f64,
    budget: f64,
    cfg: &DetectorConfig,
) -> Vec<usize> {
    let n = cfg.windows_per_30d();
    let bars = BOXES.map(|l| -(budget / BOXES.len() as f64 * (l as f64).sqrt() / n).log10());
    let resolve = cfg.resolve_windows();
    let (mut out, mut run, mut since) = (Vec::new(), Run::default(), 0usize);
    for m in 0..counts.len() {
        let (mut page, mut hold) = (false, false);
        for (&l, &bar) in BOXES.iter().zip(&bars) {
            // A box never reaches back past the end of the last run.
            if l > m + 1 - since {
                break;
            }
            let c: u32 = counts[m + 1 - l..=m].iter().sum();
            let e: f64 = rates[m + 1 - l..=m].iter().sum();
            let s = score::surprise(c, e, k / l as f64, 50.0);
            page |= s >= bar && f64::from(c) >= f64::from(cfg.min_count);
            hold |= l <= 8 && s >= HOLD_SURPRISE;
        }
        match run.step(page, hold, resolve) {
            Step::Paged => out.push(m),
            Step::Ended => since = m + 1,
            Step::Same => {}
        }
    }
    out
}

/// Counts the reports [`generate`] writes, per series and minute, as
/// they come (a month of reports is not kept in memory).
struct Counter {
    /// Series index by service, then country.
    index: HashMap<String, HashMap<String, usize>>,
    /// Start of the scenario (ms): minute 0.
    start: i64,
    /// Reports per series per minute, by their `ts`.
    counts: Vec<Vec<u32>>,
    /// The line being written.
    line: Vec<u8>,
}

impl Counter {
    fn count(&mut self) {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&self.line) else {
            return;
        };
        let (Some(svc), Some(region), Some(ts)) = (
            v["service"].as_str(),
            v["region"].as_str(),
            v["ts"].as_i64(),
        ) else {
            return;
        };
        let country = region.split('-').next().unwrap_or(region);
        let m = (ts - self.start).div_euclid(MIN);
        if let Some(&i) = self.index.get(svc).and_then(|r| r.get(country)) {
            if let Some(c) = usize::try_from(m)
                .ok()
                .and_then(|m| self.counts[i].get_mut(m))
            {
                *c += 1;
            }
        }
    }
}

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            if b == b'\n' {
                self.count();
                self.line.clear();
            } else {
                self.line.push(b);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_else(|| "outages".into());
    let from: u64 = args
        .next()
        .map_or(101, |a| a.parse().expect("FROM: a seed"));
    let to: u64 = args.next().map_or(from, |a| a.parse().expect("TO: a seed"));
    let budget: f64 = args
        .next()
        .map_or(0.01, |a| a.parse().expect("BUDGET: a number"));
    let boxes = args.next().is_some_and(|a| a == "boxes");
    let cfg = DetectorConfig::default();
    let t = Thresholds::new(budget, cfg.windows_per_30d(), cfg.min_count);
    let resolve = cfg.resolve_windows();
    let (mut found, mut due, mut delays, mut false_pages, mut series_months): (
        _,
        _,
        Vec<f64>,
        usize,
        f64,
    ) = (0, 0, Vec::new(), 0usize, 0.0);
    for seed in from..=to {
        let scenario = family(&kind, seed).expect("KIND: outages or quiet");
        let truth = scenario.truth();
        let start = ms(&truth.start);
        let rates = scenario.normal_rates();
        let minutes = rates.first().map_or(0, Vec::len);
        let n_regions = scenario.regions.len();
        let index: HashMap<String, HashMap<String, usize>> = scenario
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let regions = scenario.regions.iter().enumerate();
                let by_country = regions.map(|(j, r)| (r.code.clone(), i * n_regions + j));
                (s.name.clone(), by_country.collect())
            })
            .collect();
        let mut counter = Counter {
            index,
            start,
            counts: vec![vec![0u32; minutes]; rates.len()],
            line: Vec::new(),
        };
        generate(&scenario, &mut counter).expect("counting does not fail");
        let Counter { index, counts, .. } = counter;
        let mut paged: Vec<Vec<usize>> = Vec::with_capacity(rates.len());
        for (i, (c, r)) in counts.iter().zip(&rates).enumerate() {
            let k = scenario.services[i / n_regions].dispersion;
            paged.push(if boxes {
                pages_boxes(c, r, k, budget, &cfg)
            } else {
                pages(c, r, k, &t, resolve)
            });
        }
        // Minutes of each series that an event explains (outages and what
        // follows them, spam): a page there is not false.
        let mut explained = vec![Vec::new(); rates.len()];
        for e in &truth.events {
            let (Some(svc), "outage" | "spam") = (e.service.as_deref(), e.kind.as_str()) else {
                continue;
            };
            let end = ((ms(&e.end) - start) / MIN) as usize;
            for r in &e.regions {
                let Some(&i) = index.get(svc).and_then(|c| c.get(&r.region)) else {
                    continue;
                };
                let begin = ((ms(&r.start) - start) / MIN) as usize;
                explained[i].push((begin.saturating_sub(5), end + 60));
                if e.kind != "outage" || !r.detectable {
                    continue;
                }
                due += 1;
                let floor = r
                    .floor_at
                    .as_deref()
                    .map_or(begin, |f| ((ms(f) - start) / MIN) as usize);
                match paged[i].iter().find(|&&p| p + 5 >= begin && p <= end + 30) {
                    Some(&p) => {
                        found += 1;
                        let delay = p as f64 + 1.0 - floor as f64;
                        delays.push(delay);
                        println!(
                            "{kind}-{seed} {svc} {} {} after {delay} ({:.2}x, {:.0} excess, {:.1}/min)",
                            r.region,
                            r.start,
                            e.magnitude.unwrap_or(0.0),
                            r.excess,
                            r.base_per_minute
                        );
                    }
                    None => println!(
                        "{kind}-{seed} {svc} {} {} MISSED ({:.2}x, {:.0} excess, peak {:.1}, {:.1}/min)",
                        r.region,
                        r.start,
                        e.magnitude.unwrap_or(0.0),
                        r.excess,
                        r.peak_excess,
                        r.base_per_minute
                    ),
                }
            }
        }
        for (p, x) in paged.iter().zip(&explained) {
            false_pages += p
                .iter()
                .filter(|&&m| !x.iter().any(|&(a, b)| (a..=b).contains(&m)))
                .count();
        }
        series_months += rates.len() as f64 * minutes as f64 / 43_200.0;
    }
    delays.sort_by(f64::total_cmp);
    let q = |f: f64| {
        delays
            .get(((delays.len() as f64 - 1.0) * f).round() as usize)
            .copied()
    };
    println!(
        "oracle on {kind} {from}-{to} at {budget} per series-month: recall {found}/{due}; \
         delay median {:?}, p90 {:?}, max {:?}; over 5: {}; false pages {false_pages} \
         ({:.4} per series-month)",
        q(0.5),
        q(0.9),
        delays.last(),
        delays.iter().filter(|&&d| d > 5.0).count(),
        false_pages as f64 / series_months.max(1e-9)
    );
}
