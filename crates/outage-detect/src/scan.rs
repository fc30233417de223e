//! The rule that decides a page: evidence at every time scale an outage can
//! have, held to thresholds that all follow from one false-alarm budget.
//!
//! Why this shape. Public-health outbreak detection (EARS C1–C3, Farrington,
//! Höhle & Paul's negative-binomial CUSUM and GLR charts in R's
//! *surveillance*, Kulldorff's scan statistic) agrees on two things: score
//! counts against a seasonal expectation with a count distribution that
//! knows over-dispersion, and look at several spans at once, because a
//! sharp outage shows in one window while a moderate one only shows in the
//! sum of many. We keep the trailing-sum view of the scan statistic (an
//! operator reads "the last 8 minutes had 90 reports where 30 were due"),
//! with exponentially weighted sums instead of boxes: O(1) memory and time
//! per scale, and an old outage fades out of the sums instead of falling off
//! a cliff. A CUSUM would need a design shift per scale and a run-length
//! calibration per expectation; a p-value per scale calibrates directly.
//!
//! The statistics, for an exponentially weighted sum with decay `a`:
//! `(1 + a)` times it has the mean and variance of a plain sum of
//! `n = (1 + a) / (1 − a)` independent windows, so it is scored as such a
//! sum under a negative binomial. Windows are not independent in real data:
//! a baseline that is 10 % off stays 10 % off for the hour, and a rate can
//! swing for a quarter of an hour. The dispersion of an `n`-window sum is
//! therefore `k_w / n + k_p + k_c(n) + u`: a white part that averages out, a
//! persistent part that does not, a correlated part learned per short scale
//! (what the 3-, 8- and 24-window sums show beyond the first two: noise
//! correlated over minutes), and the uncertainty `u` of the hour's
//! expectation ([`Baseline::slot_uncertainty`](crate::baseline::Baseline::slot_uncertainty)).
//! All are learned from normal windows ([`Baseline`](crate::baseline::Baseline)
//! learns the window's total `k`, [`ScaleSums`] the rest), and the
//! persistent part net of `u`: the 72-window sum's spread around an hour
//! that is a guess already holds the guess's misfit, and counting it there
//! and again as `u` made a busy series' hour ±12 % uncertain where its
//! windows showed ±7 %.
//!
//! The budget: `B` false incidents per series per 30 days, shared equally by
//! the scales and the problem mix ([`crate::mix`]: one more share, `S` = 6,
//! divided among the eight problems). A sum is tested every window, and
//! its tests are not independent; what costs a false incident is a
//! crossing of the threshold from below. An exponentially weighted sum of
//! span `n` crosses a high level about `√n` times less often than it lies
//! above it (it rises to the level over a few windows and falls back
//! slowly), so scale `n` is held to about `N / √n` tests in 30 days of `N`
//! windows: its p-value threshold is `B / S · √n / N`. Counting `N / n`
//! tests instead (blocks of `n` windows) let pure noise page 5–17 times the
//! budget on the 24- and 72-window sums; `√n` brings every scale within
//! about twice it
//! (`examples/budget_check`, and the test `pure_noise_pages_about_the_budget`).
//! One number an operator can reason about sets every threshold, and means
//! what it says.
//!
//! An outage spreading. Outages of a service come in fan-outs: one region
//! pages, and a minute later the next ones rise, more slowly or from
//! fewer reports. While another region of its service is in an outage, a
//! region is held to the bar of a budget spent over one day instead of
//! thirty ([`Thresholds::spread`], 1.5 less surprise at every scale): the
//! outage elsewhere is what makes this rise likely to be one. It costs
//! little of the budget, because the bar is lowered only while the
//! service has an open incident: an hour of it spends a 24th of a
//! region's monthly budget (at 0.01, a 13-region service's hour-long
//! single-region outage adds a false page elsewhere about once in 200
//! incidents). Only regions: the worldwide series sums the regions and
//! would page on the outage it is told about.
//!
//! Must not: allocate, read clocks, or know about services and incidents.

use serde::{Deserialize, Serialize};

use crate::score;

/// Spans of the scales, in windows: the window itself, then exponentially
/// weighted sums of about 3, 8, 24 and 72 windows (at 1-minute windows,
/// from one minute to a bit over an hour).
pub const SPANS: [f64; 5] = [1.0, 3.0, 8.0, 24.0, 72.0];
/// Number of scales.
pub const SCALES: usize = SPANS.len();
/// Exponentially weighted scales (all but the window itself).
const EW: usize = SCALES - 1;

/// Surprise (−log10 p) from which a window is *suspected*: its series is
/// not learned from while any scale is at least this surprising (1 in
/// 1000), so a slow outage cannot teach its own hour of the week.
pub const SUSPECT_SURPRISE: f64 = 3.0;

/// Surprise at which an outage's window still counts as part of it (1 in
/// 100, on the short scales). Lower than paging on purpose: hysteresis.
pub const HOLD_SURPRISE: f64 = 2.0;

/// While another region of its service is in an outage, a region's tests
/// are counted as one day's instead of 30 days': the windows the budget is
/// spread over are divided by this (module doc, an outage spreading).
const SPREAD_DAYS: f64 = 30.0;

/// Floor of the persistent dispersion: a baseline is never trusted to
/// better than 1 % for an hour.
const MIN_PERSISTENT: f64 = 1e-4;

/// Longest-span sums the persistent and correlated parts are averaged
/// over (the half-life of their averages, in spans of the longest scale).
///
/// Counted in sums, not in time: what makes an average of a sum's spread
/// steady is how many sums went into it. 20 is a day of 1-minute windows
/// (the half-life these averages always had there); with it tied to a day
/// instead, 5-minute windows averaged over four 6-hour sums, so the
/// average was mostly the last few hours, and a rise that lasts hours
/// taught the average its own size and hid itself (NAB's CRM, 2.3× for
/// six hours: the persistent dispersion went 0.12 → 0.29 during it and the
/// rise never reached surprise 2.1).
pub const LEARN_SPANS: f64 = 20.0;

/// Decay per window of each weighted scale.
fn decay(span: f64) -> f64 {
    (span - 1.0) / (span + 1.0)
}

/// Per-scale constants derived from the configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Surprise each scale needs to page.
    pub page: [f64; SCALES],
    /// Surprise each scale needs to page while another region of the
    /// series' service is in an outage (module doc: an outage spreading).
    pub spread: [f64; SCALES],
    /// Reports a scale needs to page (each report counted once, fading
    /// with age on the weighted scales).
    pub min_count: f64,
    /// Weight per window of the persistent and correlated averages
    /// ([`LEARN_SPANS`]).
    pub persistent_rate: f64,
    /// Surprise one problem's count needs to page ([`crate::mix`]: the
    /// problems are one more scale of the window, shared by the eight).
    pub problem_page: f64,
    /// Surprise one problem's count needs to page while the outage spreads.
    pub problem_spread: f64,
    /// What sharing a scale among the eight problems costs in surprise.
    pub problem_allowance: f64,
}

impl Thresholds {
    /// Thresholds for `budget` false incidents per series per 30 days at
    /// `windows_per_30d` windows in 30 days.
    pub fn new(budget: f64, windows_per_30d: f64, min_count: u32) -> Thresholds {
        // Threshold crossings, not blocks of `span` windows (module doc);
        // the problem mix is one more scale (`crate::mix`).
        let shared = (SCALES + 1) as f64;
        let bar = |windows: f64, span: f64, among: f64| {
            let tests = (windows / span.sqrt()).max(1.0);
            -(budget / shared / among / tests).min(0.5).log10()
        };
        let bars = |windows: f64| SPANS.map(|span| bar(windows, span, 1.0));
        let problems = crate::mix::PROBLEMS as f64;
        Thresholds {
            page: bars(windows_per_30d),
            spread: bars(windows_per_30d / SPREAD_DAYS),
            min_count: f64::from(min_count),
            persistent_rate: 1.0 - 0.5f64.powf(1.0 / (LEARN_SPANS * SPANS[SCALES - 1])),
            problem_page: bar(windows_per_30d, 1.0, problems),
            problem_spread: bar(windows_per_30d / SPREAD_DAYS, 1.0, problems),
            problem_allowance: problems.log10(),
        }
    }
}

/// One scale's view of the latest window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Evidence {
    /// Span of the scale, in windows.
    pub span: f64,
    /// Reports in the span (weighted sums scaled to a plain sum's).
    pub observed: f64,
    /// What the baseline expected for the span.
    pub expected: f64,
    /// −log10 p of `observed` under the expectation.
    pub surprise: f64,
}

/// What the scales say about the latest window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Verdict {
    /// The scale with the most surprise (relative to its page threshold).
    pub best: Evidence,
    /// Some scale passes its page threshold with enough reports.
    pub page: bool,
    /// Some scale passes its threshold for an outage spreading
    /// ([`Thresholds::spread`]) with enough reports.
    pub spread: bool,
    /// Some scale is at least [`SUSPECT_SURPRISE`].
    pub suspect: bool,
    /// A short scale (up to 8 windows) is at least [`HOLD_SURPRISE`].
    pub hold: bool,
    /// Surprise of the window on its own.
    pub window_surprise: f64,
    /// A long scale (24 windows or more) is more than three standard
    /// deviations *below* its expectation: a holiday, a partial gap. Not
    /// learned from, so one quiet day does not lower its hours for weeks.
    pub low: bool,
}

/// The weighted sums of one series, and what it learned of its persistent
/// and correlated dispersion. 52 bytes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScaleSums {
    /// Weighted observed and expected sums per weighted scale.
    sums: [(f32, f32); EW],
    /// Persistent dispersion: the part of a window's dispersion that does
    /// not average out over the longest scale.
    persistent: f32,
    /// Correlated dispersion of the 3-, 8- and 24-window sums: what their
    /// spread shows beyond white + persistent (noise correlated over
    /// minutes, which averages out over an hour but not over a few
    /// windows). A signed average; used only where positive.
    block: [f32; EW - 1],
}

impl ScaleSums {
    /// Adds one window (`observed` reports, `expected` due, dispersion `k`)
    /// and scores every scale (a normal window then teaches the dispersion
    /// through [`ScaleSums::learn`]).
    /// `uncertain` adds to the persistent dispersion for this window (an
    /// expectation that is a guess, see `Baseline::slot_uncertainty`).
    /// `common` scales every scale's expectation as it is scored (what the
    /// series' region shares, see [`crate::regional`]); the sums keep the
    /// baseline's own expectation.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        observed: u32,
        expected: f64,
        common: f64,
        k: f64,
        uncertain: f64,
        t: &Thresholds,
        cap: f64,
    ) -> Verdict {
        let c = f64::from(observed);
        let mu = expected.max(score::MIN_EXPECTED);
        let mut verdict = Verdict::default();
        let mut best_margin = f64::NEG_INFINITY;
        for (i, &span) in SPANS.iter().enumerate() {
            // `reports`: the span's reports, each counted once and fading
            // with age. The scaled sum `o` weighs the latest window up to
            // twice (that is what gives it a plain sum's mean and
            // variance), so a handful of reports in the last minutes would
            // pass `min_count` on it while they are still a handful.
            let (o, e, reports) = if i == 0 {
                (c, mu * common, c)
            } else {
                let a = decay(span);
                let s = &mut self.sums[i - 1];
                *s = (
                    (f64::from(s.0) * a + c) as f32,
                    (f64::from(s.1) * a + mu) as f32,
                );
                (
                    f64::from(s.0) * (1.0 + a),
                    f64::from(s.1) * (1.0 + a) * common,
                    f64::from(s.0),
                )
            };
            let k_span = self.dispersion(i, k, uncertain);
            if span >= 24.0 && e >= 10.0 {
                let sd = (e * (1.0 + k_span * e)).sqrt();
                verdict.low |= o < e - 3.0 * sd;
            }
            let surprise = tail_surprise(o, e, k_span, cap);
            if i == 0 {
                verdict.window_surprise = surprise;
            }
            let margin = surprise - t.page[i];
            if margin > best_margin {
                best_margin = margin;
                verdict.best = Evidence {
                    span,
                    observed: o,
                    expected: e,
                    surprise,
                };
            }
            verdict.page |= margin >= 0.0 && reports >= t.min_count;
            verdict.spread |= surprise >= t.spread[i] && reports >= t.min_count;
            verdict.suspect |= surprise >= SUSPECT_SURPRISE;
            verdict.hold |= span <= 8.0 && surprise >= HOLD_SURPRISE;
        }
        verdict
    }

    /// Relative dispersion of the window's own count as scored (what
    /// [`crate::mix`] scores each problem's count with).
    pub fn window_dispersion(&self, k: f64, uncertain: f64) -> f64 {
        self.dispersion(0, k, uncertain)
    }

    /// Relative dispersion of scale `scale`'s sum beyond counting noise,
    /// as scored: [`ScaleSums::modelled`] and the correlated part.
    fn dispersion(&self, scale: usize, k: f64, uncertain: f64) -> f64 {
        self.modelled(scale, k, uncertain) + self.correlated(scale)
    }

    /// The part of [`ScaleSums::dispersion`] the model gives: the window's
    /// white part (`k` less the persistent part) averaged over the span,
    /// and the persistent part with the hour's `uncertain` added.
    fn modelled(&self, scale: usize, k: f64, uncertain: f64) -> f64 {
        let persistent = f64::from(self.persistent).max(MIN_PERSISTENT) + uncertain;
        (k - persistent).max(0.0) / SPANS[scale] + persistent
    }

    /// The correlated dispersion of scale `scale` (none for the window
    /// itself and the longest scale, whose spread is the persistent part).
    fn correlated(&self, scale: usize) -> f64 {
        match scale.checked_sub(1).and_then(|i| self.block.get(i)) {
            Some(&b) => f64::from(b).max(0.0),
            None => 0.0,
        }
    }

    /// Whether every sum is finite and not negative, and the correlated
    /// parts finite (a restored snapshot is checked with it).
    pub fn is_sane(&self) -> bool {
        let ok = |x: f32| x.is_finite() && x >= 0.0;
        ok(self.persistent)
            && self.sums.iter().all(|&(o, e)| ok(o) && ok(e))
            && self.block.iter().all(|b| b.is_finite())
    }

    /// Learns the persistent dispersion from the longest scale's spread, and
    /// the correlated part of each short scale from its own (call after
    /// [`ScaleSums::push`], for a window that was normal, with the
    /// window's `k`, `common` and `uncertain` as scored): both net of what
    /// the model already allows, so nothing is counted twice.
    pub fn learn(&mut self, k: f64, rate: f64, common: f64, uncertain: f64) {
        // Unbiased for the span's dispersion k_w / n + k_p, from which the
        // persistent part follows given the window's k = k_w + k_p.
        let Some(span_k) = self.spread(SCALES - 1, common) else {
            return;
        };
        let n = SPANS[SCALES - 1];
        // Each sample floored at 0 before it is averaged: more than the
        // misfit where it is small, and kept so (unlike the correlated
        // parts below): the hour's misfit is heavy-tailed, and a signed
        // average let altsim's quiet months page 3.5 times a month
        // (EVALUATION.md, twelfth session).
        let p = ((span_k - k / n) / (1.0 - 1.0 / n) - uncertain).clamp(0.0, 4.0);
        let cur = f64::from(self.persistent);
        self.persistent = (cur + rate * (p - cur)) as f32;
        // Each short sum's spread beyond what the model gives (unbiased,
        // so kept signed and used only where positive).
        for scale in 1..EW {
            let Some(spread) = self.spread(scale, common) else {
                continue;
            };
            let x = (spread - self.modelled(scale, k, uncertain)).clamp(-4.0, 4.0);
            let b = &mut self.block[scale - 1];
            *b = (f64::from(*b) + rate * (x - f64::from(*b))) as f32;
        }
    }

    /// Weighted scale `scale`'s observed and expected, as plain sums.
    fn plain(&self, scale: usize) -> (f64, f64) {
        let a = decay(SPANS[scale]);
        let (o, e) = self.sums[scale - 1];
        (f64::from(o) * (1.0 + a), f64::from(e) * (1.0 + a))
    }

    /// Unbiased estimate of weighted scale `scale`'s relative dispersion
    /// beyond counting noise, around its expectation times `common`; none
    /// when it expected less than one report.
    fn spread(&self, scale: usize, common: f64) -> Option<f64> {
        let (o, e) = self.plain(scale);
        let e = e * common;
        (e >= 1.0).then(|| ((o - e).powi(2) - e) / (e * e))
    }

    /// Forgets the excess in the sums: they restart as if every window had
    /// been as expected (after an outage, so its tail does not page again,
    /// and after a data gap).
    pub fn settle(&mut self) {
        for s in &mut self.sums {
            s.0 = s.1;
        }
    }

    /// Scales the expectations (the baseline moved to a new normal).
    pub fn rebase(&mut self, factor: f64) {
        for s in &mut self.sums {
            s.1 = (f64::from(s.1) * factor) as f32;
        }
        self.settle();
    }

    /// Excess (observed − expected, as a plain sum's) of weighted scale
    /// `scale` (1 ..= 4; 0, the window itself, is not kept here).
    pub fn excess(&self, scale: usize) -> f64 {
        let a = decay(SPANS[scale]);
        let (o, e) = self.sums[scale - 1];
        (f64::from(o) - f64::from(e)) * (1.0 + a)
    }

    /// Standard deviation of scale `scale`'s sum under its expectation, as
    /// [`ScaleSums::push`] scored it (`expected`, `k` and `uncertain` are
    /// the window's, as given to it).
    pub fn sd(&self, scale: usize, expected: f64, k: f64, uncertain: f64) -> f64 {
        let e = self.expected_sum(scale, expected);
        let k_span = self.dispersion(scale, k, uncertain);
        (e * (1.0 + k_span * e)).sqrt()
    }

    /// Surprise of scale `scale` had its sum been `excess` over its
    /// expectation (`expected`, `k` and `uncertain` are the window's, as
    /// given to [`ScaleSums::push`]): what a rise of that size would
    /// score in a series without a regional factor (the worldwide one).
    pub fn surprise_of_excess(
        &self,
        scale: usize,
        excess: f64,
        expected: f64,
        k: f64,
        uncertain: f64,
        cap: f64,
    ) -> f64 {
        let e = self.expected_sum(scale, expected);
        tail_surprise(e + excess, e, self.dispersion(scale, k, uncertain), cap)
    }

    /// What scale `scale`'s sum expects as a plain sum's (the window's
    /// `expected` for the window itself).
    fn expected_sum(&self, scale: usize, expected: f64) -> f64 {
        if scale == 0 {
            expected.max(score::MIN_EXPECTED)
        } else {
            self.plain(scale).1
        }
    }

    /// Index of the scale whose span is `span` windows.
    pub fn scale_of(span: f64) -> usize {
        SPANS.iter().position(|&s| s == span).unwrap_or(0)
    }

    /// Observed and expected (the baseline's own, as plain sums) of the
    /// weighted scale whose span is about half an hour at 1-minute windows,
    /// and that sum's relative dispersion beyond counting noise (white part
    /// averaged over the span, persistent and correlated parts; `k` the
    /// window's): what [`crate::regional`] compares the services of a
    /// region on, and how far it trusts each.
    pub fn regional(&self, k: f64) -> (f64, f64, f64) {
        const SCALE: usize = 3;
        let (o, e) = self.plain(SCALE);
        (o, e, self.dispersion(SCALE, k, 0.0))
    }

    /// observed / expected of the longest scale.
    pub fn long_ratio(&self) -> f64 {
        let (o, e) = self.sums[EW - 1];
        f64::from(o) / f64::from(e).max(0.5)
    }

    /// The persistent dispersion learned so far.
    pub fn persistent(&self) -> f64 {
        f64::from(self.persistent)
    }
}

/// Surprise of `observed` (a possibly fractional sum) under a negative
/// binomial with mean `expected` and dispersion `k`. The tail (an incomplete
/// beta function) is computed only above two standard deviations over the
/// mean: below that no distribution used here (k ≤ 4) reaches 1 in 1000,
/// and 0 is reported.
fn tail_surprise(observed: f64, expected: f64, k: f64, cap: f64) -> f64 {
    let sd = (expected * (1.0 + k * expected)).sqrt();
    if observed < expected + 2.0 * sd {
        return 0.0;
    }
    score::surprise(
        observed.floor().min(f64::from(u32::MAX)) as u32,
        expected,
        k,
        cap,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Thresholds {
        Thresholds::new(0.02, 43_200.0, 10)
    }

    #[test]
    fn thresholds_follow_from_the_budget() {
        let t = t();
        // The window alone: 0.02 / 6 / 43200 (five scales and the
        // problem mix) → 7.7e-8.
        assert!((t.page[0] - 7.11).abs() < 0.01, "{:?}", t.page);
        // Each of the eight problems has an eighth of the window's share.
        assert!((t.problem_page - t.page[0] - 8f64.log10()).abs() < 1e-9);
        assert!((t.problem_spread - t.spread[0] - 8f64.log10()).abs() < 1e-9);
        // Longer scales make fewer independent tests: lower thresholds.
        assert!(t.page.windows(2).all(|w| w[0] > w[1]), "{:?}", t.page);
        // An outage spreading: a day's tests instead of 30 days', so
        // every scale needs log10(30) ≈ 1.5 less surprise.
        for (spread, page) in t.spread.iter().zip(t.page) {
            assert!((page - spread - 30f64.log10()).abs() < 1e-9, "{t:?}");
        }
        // A bigger budget lowers every threshold.
        let loose = Thresholds::new(1.0, 43_200.0, 10);
        assert!(loose.page.iter().zip(t.page).all(|(a, b)| *a < b));
    }

    #[test]
    fn a_sharp_outage_pages_on_the_window_itself() {
        let mut s = ScaleSums::default();
        for _ in 0..100 {
            assert!(!s.push(20, 20.0, 1.0, 0.02, 0.0, &t(), 50.0).page);
        }
        let v = s.push(120, 20.0, 1.0, 0.02, 0.0, &t(), 50.0);
        assert!(v.page, "{v:?}");
        assert!(v.window_surprise >= t().page[0], "{v:?}");
    }

    #[test]
    fn a_moderate_outage_pages_on_a_longer_scale() {
        // 3 per window rising to 9: no single window is enough, a few are.
        let mut s = ScaleSums::default();
        for _ in 0..200 {
            s.push(3, 3.0, 1.0, 0.02, 0.0, &t(), 50.0);
        }
        let mut paged_at = None;
        for w in 0..10 {
            let v = s.push(9, 3.0, 1.0, 0.02, 0.0, &t(), 50.0);
            if v.page {
                paged_at = Some((w, v.best.span));
                break;
            }
        }
        let (w, span) = paged_at.expect("pages within 10 windows");
        assert!(w >= 1 && span > 1.0, "window {w}, span {span}");
    }

    #[test]
    fn few_reports_never_page_however_unlikely() {
        // Iceland: 0.02 per window, then 4 in one window.
        let mut s = ScaleSums::default();
        for _ in 0..100 {
            s.push(0, 0.02, 1.0, 0.0, 0.0, &t(), 50.0);
        }
        let v = s.push(4, 0.02, 1.0, 0.0, 0.0, &t(), 50.0);
        assert!(!v.page && v.suspect, "{v:?}");
    }

    #[test]
    fn min_count_counts_reports_not_the_scaled_sum() {
        // 0.05 per window, then 4 and 4: the 8-window sum, scaled to a
        // plain sum's mean, reads about 12.6 — but only 8 reports came.
        let mut s = ScaleSums::default();
        for _ in 0..200 {
            s.push(0, 0.05, 1.0, 0.0, 0.0, &t(), 50.0);
        }
        assert!(!s.push(4, 0.05, 1.0, 0.0, 0.0, &t(), 50.0).page);
        let v = s.push(4, 0.05, 1.0, 0.0, 0.0, &t(), 50.0);
        assert!(v.suspect && !v.page, "{v:?}");
        // Two more such windows are enough reports.
        s.push(4, 0.05, 1.0, 0.0, 0.0, &t(), 50.0);
        assert!(s.push(4, 0.05, 1.0, 0.0, 0.0, &t(), 50.0).page);
    }

    #[test]
    fn persistent_dispersion_damps_long_scales_of_a_misfit_baseline() {
        // A busy series whose expectation is 5 % off for long stretches:
        // learned as persistent, so a 5 % excess does not page at 72.
        let mut s = ScaleSums::default();
        let k = 0.003;
        for w in 0..20_000 {
            let off = if (w / 300) % 2 == 0 { 1.05 } else { 0.95 };
            let c = (1000.0 * off) as u32;
            let v = s.push(c, 1000.0, 1.0, k, 0.0, &t(), 50.0);
            if w > 5_000 {
                assert!(!v.page, "window {w}: {v:?}");
            }
            s.learn(k, 0.001, 1.0, 0.0);
        }
        assert!(s.persistent() > 0.001, "{}", s.persistent());
    }

    #[test]
    fn a_rise_of_hours_teaches_the_persistent_average_little_at_any_width() {
        // A series whose days run ±30 % off its profile, at 1- and at
        // 5-minute windows (43,200 and 8,640 a month); then 72 windows
        // (72 minutes, or six hours) at 2.3 times the expectation, learned
        // as normal because no scale was sure of them. The average is
        // over as many long sums at either width, so the rise moves it
        // a thirtieth of the way to its own size, not (at 5 minutes, with
        // a day's half-life) a sixth.
        for windows_per_30d in [43_200.0, 8_640.0] {
            let t = Thresholds::new(0.01, windows_per_30d, 10);
            let per_day = windows_per_30d / 30.0;
            let mut s = ScaleSums::default();
            for w in 0..(20.0 * per_day) as usize {
                let off = if (w / per_day as usize).is_multiple_of(2) {
                    1.3
                } else {
                    0.7
                };
                s.push((100.0 * off) as u32, 100.0, 1.0, 0.0, 0.0, &t, 50.0);
                s.learn(0.0, t.persistent_rate, 1.0, 0.0);
            }
            let before = s.persistent();
            assert!(before > 0.03, "{before}");
            for _ in 0..72 {
                s.push(230, 100.0, 1.0, 0.0, 0.0, &t, 50.0);
                s.learn(0.0, t.persistent_rate, 1.0, 0.0);
            }
            let after = s.persistent();
            assert!(
                after < 1.5 * before,
                "{windows_per_30d}: {before} -> {after}"
            );
        }
    }

    #[test]
    fn pure_noise_pages_about_the_budget() {
        // Poisson counts at a known expectation: the scales alone, held to
        // a budget of one false incident per series-month (a budget that
        // pages often enough to count in a test; `examples/budget_check`
        // runs the default's 0.01 over 400 series-months).
        let budget = 1.0;
        let t = Thresholds::new(budget, 43_200.0, 10);
        let months = 20;
        let mut uniform = xorshift(0x2545_F491_4F6C_DD1D);
        for mean in [2.5_f64, 10.0] {
            let (mut s, mut pages, mut was) = (ScaleSums::default(), 0, false);
            for _ in 0..months * 43_200 {
                // Poisson by inversion of its distribution function.
                let (u, mut p, mut n) = (uniform(), (-mean).exp(), 0u32);
                let mut cdf = p;
                while cdf < u {
                    n += 1;
                    p *= mean / f64::from(n);
                    cdf += p;
                }
                let page = s.push(n, mean, 1.0, 0.0, 0.0, &t, 50.0).page;
                if page && !was {
                    pages += 1;
                    s.settle();
                }
                was = page;
            }
            let rate = f64::from(pages) / months as f64;
            assert!(
                (budget / 3.0..=budget * 3.0).contains(&rate),
                "mean {mean}: {rate} pages per series-month at a budget of {budget}"
            );
        }
    }

    /// Uniform numbers in [0, 1) from a xorshift generator.
    fn xorshift(mut state: u64) -> impl FnMut() -> f64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn noise_correlated_over_minutes_is_learned_on_the_short_scales() {
        // A busy series (200 a window) whose rate is off by up to ±25 % for
        // a quarter of an hour at a time: white + persistent would expect
        // an 8-window sum within a few percent, and page on the swings.
        let mut uniform = xorshift(0x9E37_79B9_7F4A_7C15);
        let mut s = ScaleSums::default();
        let (k, mut off, mut late_pages) = (0.025, 1.0, 0);
        for w in 0..60_000 {
            if w % 15 == 0 {
                off = 1.0 + 0.5 * (uniform() - 0.5);
            }
            let c = (200.0 * off + 14.0 * (uniform() - 0.5)) as u32;
            let v = s.push(c, 200.0, 1.0, k, 0.0, &t(), 50.0);
            if v.page {
                s.settle();
                late_pages += u32::from(w > 30_000);
            }
            s.learn(k, 0.002, 1.0, 0.0);
        }
        assert!(s.correlated(2) > 0.003, "{:?}", s.block);
        assert_eq!(late_pages, 0, "{:?}", s.block);
    }

    #[test]
    fn a_misfit_the_hour_is_known_to_have_is_not_learned_again() {
        // A busy series 10 % off its expectation for hours at a time
        // (relative variance 0.01), scored with `uncertain` as the
        // allowance for its hours: what that allowance covers is not
        // learned a second time as persistent.
        let learned = |uncertain: f64| {
            let mut s = ScaleSums::default();
            for w in 0..20_000 {
                let off = if (w / 300) % 2 == 0 { 1.1 } else { 0.9 };
                s.push(
                    (1000.0 * off) as u32,
                    1000.0,
                    1.0,
                    0.003,
                    uncertain,
                    &t(),
                    50.0,
                );
                s.learn(0.003, 0.001, 1.0, uncertain);
            }
            s.persistent()
        };
        let (known, unknown) = (learned(0.01), learned(0.0));
        assert!(known < 0.004 && unknown > 0.006, "{known} {unknown}");
    }

    #[test]
    fn settling_forgets_an_outage() {
        let mut s = ScaleSums::default();
        for _ in 0..50 {
            s.push(10, 10.0, 1.0, 0.02, 0.0, &t(), 50.0);
        }
        for _ in 0..30 {
            s.push(60, 10.0, 1.0, 0.02, 0.0, &t(), 50.0);
        }
        s.settle();
        let v = s.push(10, 10.0, 1.0, 0.02, 0.0, &t(), 50.0);
        assert!(!v.suspect, "{v:?}");
    }
}
