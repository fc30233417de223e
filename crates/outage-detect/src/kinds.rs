//! How a service's hours on one kind of day (weekday or weekend) compare
//! with the same hours on the other kind, as its countries have shown it.
//!
//! A series' first Saturday is a guess. Until it has seen a day of a kind,
//! [`Baseline::blend`](crate::baseline::Baseline::blend) guesses each hour
//! of it from the same hour on the days it has seen, trusted to about
//! ±20 %. But a weekend moves hours as well as scaling them: an evening
//! peak an hour and a half later makes the first hours of Saturday two or
//! three times Friday's, and a large region pages on it for hours (altsim
//! seed 36, `roblox` US: 2.7 times its guess from local midnight, paged
//! on the first Saturday and again on the Sunday, whose guess leaned on a
//! Saturday not learned because it was an incident).
//!
//! A service's countries live the same week, each in its own local time,
//! and the east sees every local hour before the west: when the United
//! States' first Saturday begins, Japan's and Europe's are known. So each
//! country series, the first time it has seen an hour in full, tells its
//! service the ratio of that hour to the same hour on days of the other
//! kind, if it has seen them ([`KindSample`]). The service keeps, per hour
//! of the week, the precision-weighted mean of those ratios (in logs), and
//! how far one country's ratio is from it: a spread learned as the day
//! spread of one series is, each new ratio compared with the mean before
//! it joins, net of the counting noise of both. A series then guesses an
//! hour of a kind it has not seen (or the other kind's share of an hour it
//! has) as the other kind's mean times that ratio, off by that spread and
//! by the mean's own uncertainty, and never trusted more than a guess
//! without it. Where no country has shown the hour the guess is as before.
//! A service whose countries keep different weeks (different weekends, or
//! none) learns a wide spread, and its guesses are trusted less than that.
//! A series uses the ratio only until it has seen the hour in full: then
//! it has told its own, and its own weeks are the evidence.
//!
//! Must not: allocate after its first sample, or read clocks.

use half::f16;
use serde::{Deserialize, Serialize};

use crate::baseline::SLOTS;

/// Prior relative variance of a service's ratio around 1, and of one
/// country's ratio around its service's before the service has shown how
/// far they are apart: the width of a guess from the other kind of day
/// without a ratio (`baseline::UNSEEN_SLOT_VARIANCE`).
const PRIOR_SPREAD: f64 = 0.04;
/// Floor of the learned spread (±5 %: no two countries are the same).
const MIN_SPREAD: f64 = 0.0025;
/// Ceiling of the learned spread (±200 %).
const MAX_SPREAD: f64 = 4.0;
/// Largest ratio kept, either way (fifty times, as a profile's multiplier).
const MAX_LN_RATIO: f64 = 3.912;
/// Largest precision a mean keeps (what a half-width float holds): past it
/// the mean is as good as known, and new countries still move it a little.
const MAX_PRECISION: f64 = 60_000.0;
/// Weight of one comparison in the learned spread (about a dozen newly
/// seen hours dominate it, as for a series' day spread).
const SPREAD_RATE: f64 = 1.0 / 12.0;

/// One country series' first full hour at `slot`, against the same hour
/// on the days of the other kind it has seen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KindSample {
    /// The hour of the week, in the series' local time.
    pub slot: usize,
    /// Natural log of the hour's multiplier over the other kind's mean.
    pub ln_ratio: f64,
    /// Relative variance of that ratio from counting (both sides).
    pub noise: f64,
}

/// What a service's countries have shown of its two kinds of day (see
/// the module doc).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KindRatios {
    /// Per hour of the week: the precision-weighted mean log ratio and its
    /// summed precision (half-width floats: three significant digits are
    /// more than the spread leaves, and a service keeps 672 bytes of
    /// them); empty until the first sample.
    hours: Vec<(f16, f16)>,
    /// Learned relative variance of one country's ratio around the mean;
    /// 0 before the first comparison.
    spread: f32,
}

impl KindRatios {
    /// The learned spread, or the prior before any comparison.
    fn spread(&self) -> f64 {
        if self.spread > 0.0 {
            f64::from(self.spread)
        } else {
            PRIOR_SPREAD
        }
    }

    /// The ratio of `slot` to the same hour on days of the other kind, as
    /// one more country may expect it, and its relative variance; `None`
    /// where no country has shown the hour. The countries' mean is pooled
    /// with the prior (no ratio, trusted to the prior spread) by what it
    /// rests on: one small country's noisy hour moves the guess little
    /// (altsim seed 49, `roblox`: New Zealand's Monday 17:00 at a seventh
    /// of its Sunday from 0.4 reports a window, which alone would have
    /// had four countries of Europe expect a seventh of their counts). To
    /// the pooled mean's uncertainty one country adds the spread; and the
    /// result is never trusted more than the prior, since one country may
    /// keep its week otherwise in ways the others cannot show (the United
    /// States spans four time zones: altsim seed 59, `discord` US, its
    /// first Saturday evening at 1.6 times its weekdays where the
    /// countries east of it had shown 0.8; trusted as they agreed among
    /// themselves, to ±13 %, it paged).
    pub fn at(&self, slot: usize) -> Option<(f64, f64)> {
        let (mean, precision) = self
            .hours
            .get(slot)
            .map(|&(m, p)| (m.to_f64(), p.to_f64()))?;
        (precision > 0.0).then(|| {
            let precision = precision + 1.0 / PRIOR_SPREAD;
            let mean = mean * (precision - 1.0 / PRIOR_SPREAD) / precision;
            (
                mean.exp(),
                (1.0 / precision + self.spread()).max(PRIOR_SPREAD),
            )
        })
    }

    /// Learns one country's first full hour: compared with the mean as it
    /// stands (the spread learns from the misfit, net of the noise of
    /// both), then pooled into it.
    pub fn learn(&mut self, sample: KindSample) {
        let KindSample {
            slot,
            ln_ratio,
            noise,
        } = sample;
        if slot >= SLOTS || !ln_ratio.is_finite() || !noise.is_finite() || noise <= 0.0 {
            return;
        }
        if self.hours.is_empty() {
            self.hours = vec![(f16::ZERO, f16::ZERO); SLOTS];
        }
        let (mean, precision) = self.hours[slot];
        let (mean, precision) = (mean.to_f64(), precision.to_f64());
        let d = self.spread();
        if precision > 0.0 {
            let off = noise + 1.0 / precision;
            let misfit = (ln_ratio - mean).powi(2) - off;
            let gain = SPREAD_RATE * d / (d + off);
            self.spread = (d + gain * (misfit - d)).clamp(MIN_SPREAD, MAX_SPREAD) as f32;
        }
        let w = 1.0 / (noise + self.spread());
        let pooled = (mean * precision + ln_ratio * w) / (precision + w);
        self.hours[slot] = (
            f16::from_f64(pooled.clamp(-MAX_LN_RATIO, MAX_LN_RATIO)),
            f16::from_f64((precision + w).min(MAX_PRECISION)),
        );
    }

    /// Whether every learned number is finite and in its range.
    pub fn is_sane(&self) -> bool {
        (self.hours.is_empty() || self.hours.len() == SLOTS)
            && self
                .hours
                .iter()
                .all(|&(m, p)| m.is_finite() && p.is_finite() && p >= f16::ZERO)
            && self.spread.is_finite()
            && self.spread >= 0.0
    }

    /// Heap bytes.
    pub fn heap_bytes(&self) -> usize {
        self.hours.capacity() * std::mem::size_of::<(f16, f16)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(slot: usize, ratio: f64, noise: f64) -> KindSample {
        KindSample {
            slot,
            ln_ratio: ratio.ln(),
            noise,
        }
    }

    #[test]
    fn an_hour_no_country_has_shown_has_no_ratio() {
        let mut k = KindRatios::default();
        assert_eq!(k.at(120), None);
        k.learn(sample(120, 2.0, 0.001));
        assert_eq!(k.at(121), None);
        let (ratio, variance) = k.at(120).unwrap();
        // One country that counted well is worth about the prior (both
        // are one country's distance from the service): halfway.
        let w = 1.0 / (0.001 + PRIOR_SPREAD);
        let p = w + 1.0 / PRIOR_SPREAD;
        assert!((ratio - (2f64.ln() * w / p).exp()).abs() < 2e-3, "{ratio}");
        assert!(ratio > 1.35 && ratio < 1.45, "{ratio}");
        assert!(
            (variance - (1.0 / p + PRIOR_SPREAD)).abs() < 1e-3,
            "{variance}"
        );
    }

    #[test]
    fn one_small_countrys_noisy_hour_moves_the_ratio_little() {
        let mut k = KindRatios::default();
        // A seventh, from an hour of 0.4 reports a window.
        k.learn(sample(17, 1.0 / 7.0, 1.14));
        let (ratio, _) = k.at(17).unwrap();
        assert!(ratio > 0.9, "{ratio}");
    }

    /// Countries `n` whose ratios at every hour of the weekend are
    /// `ratio(country, hour)`, each with little counting noise.
    fn after(n: usize, ratio: impl Fn(usize, usize) -> f64) -> KindRatios {
        let mut k = KindRatios::default();
        for country in 0..n {
            for slot in 120..SLOTS {
                k.learn(sample(slot, ratio(country, slot), 0.0005));
            }
        }
        k
    }

    #[test]
    fn countries_that_agree_set_the_ratio() {
        let k = after(6, |c, s| {
            1.5 + 0.3 * ((s % 24) as f64 / 24.0) * [1.0, 1.02, 0.98][c % 3]
        });
        let (ratio, variance) = k.at(130).unwrap();
        assert!(
            (ratio / (1.5 + 0.3 * 10.0 / 24.0) - 1.0).abs() < 0.02,
            "{ratio}"
        );
        // Set by them, but never trusted more than the prior: one more
        // country may keep its week otherwise.
        assert!((variance - PRIOR_SPREAD).abs() < 1e-9, "{variance}");
    }

    #[test]
    fn countries_that_differ_keep_the_ratio_loose() {
        // Half keep a weekend twice their weekdays, half half of them.
        let k = after(6, |c, _| if c % 2 == 0 { 2.0 } else { 0.5 });
        let (_, variance) = k.at(130).unwrap();
        // ln 4 apart: one country is about ±70 % off the mean.
        assert!(variance > 0.3, "{variance}");
    }

    #[test]
    fn nonsense_is_not_learned() {
        let mut k = KindRatios::default();
        k.learn(sample(200, 2.0, 0.01));
        k.learn(KindSample {
            slot: 3,
            ln_ratio: f64::NAN,
            noise: 0.01,
        });
        k.learn(sample(4, 2.0, 0.0));
        assert!(k.is_sane());
        assert_eq!(k, KindRatios::default());
    }
}
