//! What users say is wrong, as evidence: the problem mix.
//!
//! A service's reports name their problem (login, app, payments, …) in a
//! mix that holds from hour to hour. An outage breaks one thing, and the
//! people it hits say so: Downdetector's "most reported problems" turn
//! to it. A rise in reports of one problem is therefore evidence of an
//! outage that the total hides when the rest of the mix is large: a
//! service whose login fails doubles its total, but its login reports go
//! up several-fold. Each window, every problem's count is scored as the
//! total is, against the series' expectation times the problem's share
//! of the service's reports, under the same negative binomial (a count
//! thinned from a negative binomial keeps its dispersion). Where the mix
//! does not move in an outage (a feed without problems, all `other`)
//! the test says no more than the total and costs only its share of the
//! budget.
//!
//! The budget: the problems are one more scale of [`crate::scan`], shared
//! by the eight problems (Bonferroni), so the total's scales lose a sixth
//! of theirs (0.08 surprise) and one number still sets every threshold.
//! Only the window itself is scored: a sum per problem per scale would
//! cost each series 128 bytes.
//!
//! The shares are the service's, learned from its worldwide series over
//! about a day (the level's half-life), so a region is judged by the mix
//! of all of them. Every window whose *total* is not suspect teaches the
//! mix, whatever its problems say: learned only where they say nothing, a
//! mix that changed for good (a new client labelling problems otherwise)
//! would page every region every day; at this rate an outage's problem
//! moves the shares a few hundredths an hour. Each share is floored at
//! [`MIN_SHARE`] and carries its own sampling uncertainty. A region whose
//! people name other problems than the rest (a device sold only there)
//! would hold "too many" of them in every window: each series learns how
//! far its mix is from its service's ([`Misfit`]) and its problems are
//! scored that much more loosely, so it pages on its total as before.
//!
//! Must not: allocate, read clocks, or know about incidents.

use serde::{Deserialize, Serialize};

use crate::score;

/// Problems a report can name ([`crate::report::Problem`]).
pub const PROBLEMS: usize = 8;

/// Lowest share a problem is expected at (an eighth of an even share): a
/// kind of report the service seldom gets is not an outage for being
/// new, only for being many.
pub const MIN_SHARE: f64 = 1.0 / 64.0;

/// Reports the learned mix must rest on before problems are scored.
pub const MIN_MIX_REPORTS: f64 = 200.0;

/// The problem mix of a service: decayed report counts per problem.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Mix {
    counts: [f32; PROBLEMS],
}

/// How far one series' problem mix is from its service's: a relative
/// dispersion of its problem counts around their expected shares, learned
/// from its windows whose total is not suspect (unbiased; used only where
/// positive). A region whose people report `app` four times as often as
/// the service's other regions learns about 1, and its problems are then
/// scored as loosely as that says (the total still pages as before); a
/// region whose mix is the service's learns about 0. Four bytes per
/// series (they fit its padding).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Misfit(f32);

impl Misfit {
    /// The learned dispersion, at least 0.
    pub fn get(self) -> f64 {
        f64::from(self.0).max(0.0)
    }

    /// Whether it is a finite number in its range.
    pub fn is_sane(self) -> bool {
        self.0.is_finite() && (-1.0..=4.0).contains(&self.0)
    }
}

/// What the problem counts of one window say.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MixVerdict {
    /// Largest surprise of one problem's count, less the multiple-test
    /// allowance of scoring eight (comparable with the total's surprise).
    pub surprise: f64,
    /// That problem's count in the window, and what was expected of it.
    pub observed: f64,
    /// See `observed`.
    pub expected: f64,
    /// Some problem passes the page threshold with enough reports.
    pub page: bool,
    /// Some problem passes the spreading threshold with enough reports.
    pub spread: bool,
}

impl Mix {
    /// Learns one window's problem counts; `rate` is the weight per
    /// window of the past (the level's).
    pub fn learn(&mut self, problems: &[u32; PROBLEMS], rate: f64) {
        let keep = 1.0 - rate;
        for (m, &n) in self.counts.iter_mut().zip(problems) {
            *m = (f64::from(*m) * keep + f64::from(n)) as f32;
        }
    }

    /// Reports the mix rests on (decayed).
    pub fn mass(&self) -> f64 {
        self.counts.iter().map(|&c| f64::from(c)).sum()
    }

    /// Whether every count is finite and not negative.
    pub fn is_sane(&self) -> bool {
        self.counts.iter().all(|c| c.is_finite() && *c >= 0.0)
    }

    /// The shares problems are scored against (each at least
    /// [`MIN_SHARE`]); `None` until the mix rests on [`MIN_MIX_REPORTS`].
    /// Worked out once per window close of the service, for all its series.
    pub fn shares(&self) -> Option<Shares> {
        let mass = self.mass();
        (mass >= MIN_MIX_REPORTS).then(|| Shares {
            mass,
            share: self.counts.map(|c| (f64::from(c) / mass).max(MIN_SHARE)),
        })
    }
}

/// A service's problem shares as of one window close ([`Mix::shares`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shares {
    /// Reports the shares rest on.
    mass: f64,
    share: [f64; PROBLEMS],
}

impl Shares {
    /// Learns a series' [`Misfit`] from one of its windows that
    /// expected `expected` reports in all at dispersion `k` (the window's,
    /// as scored): the ratio estimator Σ((c − e)² − c) / Σe² over the
    /// problems, less `k` (what the whole window's noise and misfit give
    /// every problem alike: a thinned negative binomial keeps its
    /// dispersion), each window weighing Σe² up to 1, as the window's
    /// own dispersion is learned; `rate` is the weight of a window that
    /// weighs 1.
    pub fn learn_misfit(
        &self,
        misfit: &mut Misfit,
        problems: &[u32; PROBLEMS],
        (expected, k): (f64, f64),
        rate: f64,
    ) {
        if expected <= 0.0 {
            return;
        }
        let (mut num, mut den) = (0.0, 0.0);
        for (&share, &n) in self.share.iter().zip(problems) {
            let e = expected * share;
            let c = f64::from(n);
            num += (c - e).powi(2) - c;
            den += e * e;
        }
        let w = den.min(1.0);
        let x = (num / den - k).clamp(-1.0, 4.0);
        let m = f64::from(misfit.0);
        misfit.0 = (m + rate * w * (x - m)).clamp(-1.0, 4.0) as f32;
    }

    /// Scores each problem's count in a window that expected `expected`
    /// reports in all, at dispersion `k` (the window's, as the total was
    /// scored). `page` and `spread` are the thresholds of one problem
    /// (already divided among the eight); `allowance` is what dividing
    /// costs in surprise.
    #[allow(clippy::too_many_arguments)]
    pub fn score(
        &self,
        problems: &[u32; PROBLEMS],
        expected: f64,
        k: f64,
        page: f64,
        spread: f64,
        allowance: f64,
        min_count: f64,
        cap: f64,
    ) -> MixVerdict {
        let mut verdict = MixVerdict::default();
        for (&share, &n) in self.share.iter().zip(problems) {
            let c = f64::from(n);
            if c < min_count {
                continue;
            }
            // The share is a proportion of `mass` reports: its relative
            // variance adds to the expectation's.
            let k_share = k + (1.0 - share).max(0.0) / (self.mass * share);
            let e = expected * share;
            let sd = (e * (1.0 + k_share * e)).sqrt();
            if c < e + 2.0 * sd {
                continue;
            }
            let surprise = score::surprise(n, e, k_share, cap);
            if surprise - allowance > verdict.surprise {
                verdict.surprise = surprise - allowance;
                verdict.observed = c;
                verdict.expected = e;
            }
            verdict.page |= surprise >= page;
            verdict.spread |= surprise >= spread;
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mix learned from `counts` at once.
    fn learned(counts: [u32; PROBLEMS]) -> Mix {
        let mut m = Mix::default();
        m.learn(&counts, 0.0);
        m
    }

    /// `n` reports of problem `p` and `rest` of each other.
    fn counts(p: usize, n: u32, rest: u32) -> [u32; PROBLEMS] {
        let mut c = [rest; PROBLEMS];
        c[p] = n;
        c
    }

    /// Scores `problems` in a window that expected `expected` reports at
    /// dispersion 0.05, against bars of 8 (page) and 6 (spread), an
    /// allowance of 0.9 and `min_count` 4.
    fn score(m: &Mix, problems: [u32; PROBLEMS], expected: f64) -> MixVerdict {
        m.shares().map_or_else(MixVerdict::default, |s| {
            s.score(&problems, expected, 0.05, 8.0, 6.0, 0.9, 4.0, 50.0)
        })
    }

    #[test]
    fn one_problem_rising_is_evidence_the_total_does_not_show() {
        // 16 reports where 8 were due, 12 of them of one problem (1 due).
        let mut p = counts(2, 12, 0);
        p[0] = 4;
        let v = score(&learned([1000; PROBLEMS]), p, 8.0);
        assert!(v.page && v.observed == 12.0 && v.expected == 1.0, "{v:?}");
        let total = score::surprise(16, 8.0, 0.05, 50.0);
        assert!(total < 3.0, "the total alone: {total}");
    }

    #[test]
    fn the_usual_mix_at_a_higher_count_is_not_a_problem_rise() {
        // Twice the reports, in the usual mix: no problem reaches the
        // count a problem needs, nor stands out.
        let v = score(&learned([1000; PROBLEMS]), [2; PROBLEMS], 8.0);
        assert!(!v.page && v.surprise <= 0.0, "{v:?}");
    }

    #[test]
    fn a_feed_of_one_problem_scores_it_as_the_total() {
        let v = score(&learned(counts(7, 1000, 0)), counts(7, 20, 0), 10.0);
        let total = score::surprise(20, 10.0, 0.05, 50.0);
        assert!(v.surprise < total, "{v:?} vs {total}");
        assert!(!v.page);
    }

    #[test]
    fn a_problem_never_seen_pages_only_when_many_name_it() {
        let m = learned(counts(6, 0, 100));
        assert!(!score(&m, counts(6, 4, 1), 8.0).page);
        assert!(score(&m, counts(6, 30, 1), 8.0).page);
    }

    #[test]
    fn a_series_learns_how_far_its_mix_is_from_its_services() {
        let service = learned([1000; PROBLEMS]).shares().unwrap();
        let learn = |problems: [u32; PROBLEMS]| {
            let mut misfit = Misfit::default();
            for _ in 0..2000 {
                service.learn_misfit(&mut misfit, &problems, (80.0, 0.0), 0.01);
            }
            misfit.get()
        };
        // The service's mix, exactly: the counting noise it expects
        // (−1/e per problem) and nothing more.
        assert!(learn([10; PROBLEMS]) < 0.01);
        // Half its reports `app` (an eighth is due): far off.
        assert!(learn(counts(2, 40, 6)) > 0.5);
    }

    #[test]
    fn nothing_is_scored_before_the_mix_is_learned() {
        assert_eq!(learned([10; PROBLEMS]).shares(), None);
        let v = score(&learned([10; PROBLEMS]), counts(1, 50, 0), 8.0);
        assert_eq!(v, MixVerdict::default());
        assert!(learned([25; PROBLEMS]).shares().is_some());
    }
}
