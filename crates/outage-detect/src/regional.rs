//! What the services of one region have in common.
//!
//! A region's local calendar moves every service in it at once: a clock
//! shift brings the morning rise an hour earlier, a weekend or a holiday
//! lifts or lowers the whole day, and in a series' first weeks nothing it
//! learned says so yet. An outage moves one service. So a region's series
//! is scored against its own baseline times the factor by which the
//! *other* services of its region run above or below theirs right now —
//! leave one out, so that a series' own rise never explains itself away.
//! It is the control group of a difference-in-differences: the services
//! next door saw the same calendar.
//!
//! The factor is the precision-weighted mean of the other services' log
//! ratios observed / expected on a half-hour scale, with a prior of 1 ± 20 %
//! (how much days differ, as [`Baseline::blend`](crate::baseline::Baseline::blend)
//! assumes for an hour not yet seen), so a region whose other services are
//! small or few moves little. A series in an outage does not count (its
//! rise is not the calendar's), and each ratio is clipped to ½…2, so one
//! service's outage barely moves its neighbours. The half-hour scale
//! follows a clock shift's rise and a weekend within the hour, while an
//! outage of several services of one region at once still pages in its
//! first windows, before the factor has caught up; once they page they no
//! longer count.
//!
//! Nothing here is stored: the factors follow from the series' weighted
//! sums at each window close.

use crate::region::Country;

/// Prior variance of a region's log factor: days differ by about ±20 %.
const PRIOR_VARIANCE: f64 = 0.04;
/// Variance of one service's log ratio around the region's, beyond its
/// counting noise: services do not follow their region's calendar exactly
/// (about ±10 %).
const SERVICE_SPREAD: f64 = 0.01;
/// A ratio counts at most this far from 1 (as a log): one service's outage
/// must not set its neighbours' expectations.
const MAX_LOG_RATIO: f64 = std::f64::consts::LN_2;

/// One series' evidence about its region: Σ-able `(w·ℓ, w)`, where ℓ is
/// its log ratio observed / expected (the baseline's own, as plain sums
/// over the scale used) and `w` its precision, from counting noise with
/// the *sum's* relative over-dispersion `k` (a window's white part
/// averages out over the sum: weighed with the window's, a busy
/// neighbour counted for a third of what it showed, and a region-wide
/// rise of 1.45× was excused only to 1.25×) and `SERVICE_SPREAD`.
/// `None` when the span expected less than one report.
pub fn share(observed: f64, expected: f64, k: f64) -> Option<(f64, f64)> {
    if expected < 1.0 {
        return None;
    }
    let log_ratio = ((observed + 0.5) / (expected + 0.5))
        .ln()
        .clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO);
    let w = 1.0 / ((1.0 + k * expected) / expected + SERVICE_SPREAD);
    Some((w * log_ratio, w))
}

/// Per-window scratch: each region's evidence, summed over its series
/// (4 KB per detector; nothing per series).
#[derive(Clone, Debug, Default)]
pub struct RegionalFactors {
    /// Σ w·ℓ and Σ w per country (dense index).
    totals: Vec<(f64, f64)>,
}

impl RegionalFactors {
    /// Starts a window's measurement.
    pub fn clear(&mut self) {
        self.totals.clear();
        self.totals.resize(Country::COUNT, (0.0, 0.0));
    }

    /// Adds one series' [`share`] to its country.
    pub fn add(&mut self, country: Country, share: (f64, f64)) {
        let t = &mut self.totals[country.index()];
        t.0 += share.0;
        t.1 += share.1;
    }

    /// The factor for a series of `country` whose own [`share`] (if it was
    /// added) is `own`: what the *other* series of its region say, shrunk
    /// toward 1, and never below 1: neighbours can excuse a rise, never
    /// accuse. (A factor below 1 would only make a series more sensitive,
    /// and neighbours running low is mostly their own counting noise at
    /// night; drops do not page anyway.)
    pub fn factor(&self, country: Country, own: Option<(f64, f64)>) -> f64 {
        let Some(&(sum, weight)) = self.totals.get(country.index()) else {
            return 1.0;
        };
        let (own_sum, own_w) = own.unwrap_or((0.0, 0.0));
        let (sum, weight) = (sum - own_sum, (weight - own_w).max(0.0));
        (sum / (weight + 1.0 / PRIOR_VARIANCE)).exp().max(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gb() -> Country {
        Country::parse("GB").unwrap()
    }

    /// Factors of each series of `series` (observed, expected), all in GB.
    fn factors(series: &[(f64, f64)], k: f64) -> Vec<f64> {
        let mut r = RegionalFactors::default();
        r.clear();
        let shares: Vec<_> = series.iter().map(|&(o, e)| share(o, e, k)).collect();
        for s in shares.iter().flatten() {
            r.add(gb(), *s);
        }
        shares.iter().map(|&s| r.factor(gb(), s)).collect()
    }

    #[test]
    fn a_series_is_not_explained_by_itself() {
        // Series 0 runs at 3×; 1 and 2 (busy, same region) as expected.
        let f = factors(&[(3000.0, 1000.0), (1000.0, 1000.0), (500.0, 500.0)], 0.01);
        assert!((f[0] - 1.0).abs() < 1e-9, "{f:?}");
        // Its neighbours see its clipped rise, weighed against each other.
        assert!(f[1] > 1.0 && f[1] < 1.5, "{f:?}");
    }

    #[test]
    fn a_region_wide_rise_is_shared() {
        let f = factors(&[(1300.0, 1000.0), (1040.0, 800.0), (780.0, 600.0)], 0.01);
        assert!(f.iter().all(|&f| f > 1.2 && f < 1.3), "{f:?}");
        // Another country is not moved.
        let mut r = RegionalFactors::default();
        r.clear();
        r.add(gb(), share(1300.0, 1000.0, 0.01).unwrap());
        assert_eq!(r.factor(Country::parse("FR").unwrap(), None), 1.0);
    }

    #[test]
    fn small_neighbours_move_little_and_low_ones_not_at_all() {
        // 12 reports where 6 were due: twice as many, but few.
        let f = factors(&[(1000.0, 1000.0), (12.0, 6.0)], 0.05);
        assert!(f[0] > 1.0 && f[0] < 1.15, "{f:?}");
        let f = factors(&[(1000.0, 1000.0), (400.0, 1000.0)], 0.01);
        assert_eq!(f[0], 1.0);
    }
}
