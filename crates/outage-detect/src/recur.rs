//! Excursions that come back every day are the series' behaviour, not
//! outages.
//!
//! The negative binomial describes a series' ordinary noise, and the budget
//! assumes that noise is all there is. Some series also carry excursions of
//! their own: a bot that posts for half an hour several times a day, a
//! broadcast that sends people to complain, a batch job. Each one is far
//! outside the noise, so each one pages, and the series pages every day
//! while its budget allows one false page in about four years.
//!
//! Real outages of one service in one region do not come back every day
//! for a week. So a series counts its *episodes* — runs that reached the
//! paging bar — in a decaying count with a one-week half-life. Once that
//! count says "about one a day for a week" ([`RECURRING`]), excursions are
//! part of what the series does: a new run pages only if it is clearly
//! bigger than every episode the series has shown since — by more than
//! three standard deviations of the series' own noise at that count, so
//! that the next burst of the same kind does not page by setting a record
//! by a hair. Below that rate nothing changes, so a service that fails
//! twice in a week pages twice.
//!
//! Episodes are sized by their peak window's reports over the series'
//! level (its average window), not by their ratio to the hour's
//! expectation: a night-time blip's huge ratio must not hide a daytime
//! burst of twice its reports. They are also sized by their excess on the
//! longest scale (about an hour and more), and a new run must beat the
//! episodes on one of the two: a rise that lasts hours at a few times the
//! usual rate has no record window, but its hours are bigger than any
//! burst's (NAB's KO, a day of mentions at ten times the usual, after
//! daily bot bursts of hundreds).
//!
//! Must not: allocate, read clocks, or know about services and incidents.

use serde::{Deserialize, Serialize};

/// Half-life of the episode count: a week.
pub const HALF_LIFE_MS: i64 = 7 * 86_400_000;

/// Episode count (with a one-week half-life) from which excursions are the
/// series' behaviour: the steady count of one episode a day is
/// 1 / (1 − 0.5^(1/7)) ≈ 10.6.
pub const RECURRING: f32 = 10.0;

/// What a series remembers of its episodes. 12 bytes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Recurrence {
    /// Episodes, decaying with [`HALF_LIFE_MS`].
    episodes: f32,
    /// Largest episode size while the series recurs (0 when it does not).
    biggest: f32,
    /// Largest excess of an episode on the longest scale, over the level.
    biggest_long: f32,
}

impl Recurrence {
    /// Whether every number is finite and not negative.
    pub fn is_sane(&self) -> bool {
        [self.episodes, self.biggest, self.biggest_long]
            .iter()
            .all(|x| x.is_finite() && *x >= 0.0)
    }

    /// Per-window decay factor of the episode count for windows of
    /// `width_ms`.
    pub fn decay_per_window(width_ms: i64) -> f32 {
        0.5f64.powf(width_ms as f64 / HALF_LIFE_MS as f64) as f32
    }

    /// Ages the count by one window.
    pub fn age(&mut self, factor: f32) {
        self.episodes *= factor;
        if self.episodes < RECURRING {
            // No longer recurring: the next run is judged afresh.
            self.biggest = 0.0;
            self.biggest_long = 0.0;
        }
    }

    /// Whether the series recurs and a run of peak `size` and excess
    /// `long` on the longest scale (both over the level) is not clearly
    /// bigger than its episodes on either: such a run is its behaviour and
    /// does not page. `level` (reports per average window) and the
    /// dispersion `k` turn sizes into counts, whose noise sets "clearly".
    pub fn holds_back(&self, size: f64, long: f64, level: f64, k: f64) -> bool {
        if self.episodes < RECURRING {
            return false;
        }
        let within = |size: f64, biggest: f32| {
            let biggest = f64::from(biggest) * level;
            let sd = (biggest * (1.0 + k * biggest)).sqrt();
            size * level <= biggest + 3.0 * sd
        };
        within(size, self.biggest) && within(long, self.biggest_long)
    }

    /// Records an episode that ended, with its peak `size` and its excess
    /// `long` on the longest scale.
    pub fn record(&mut self, size: f64, long: f64) {
        self.episodes += 1.0;
        if self.episodes >= RECURRING {
            self.biggest = self.biggest.max(size as f32);
            self.biggest_long = self.biggest_long.max(long as f32);
        }
    }

    /// Episodes counted (decayed).
    pub fn episodes(&self) -> f64 {
        f64::from(self.episodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_MIN: i64 = 300_000;

    fn days(r: &mut Recurrence, n: f64) {
        let f = Recurrence::decay_per_window(FIVE_MIN);
        for _ in 0..(n * 288.0) as usize {
            r.age(f);
        }
    }

    #[test]
    fn two_outages_in_a_week_both_page() {
        let mut r = Recurrence::default();
        assert!(!r.holds_back(50.0, 0.0, 1.0, 0.0));
        r.record(50.0, 0.0);
        days(&mut r, 3.0);
        assert!(!r.holds_back(30.0, 0.0, 1.0, 0.0), "{r:?}");
    }

    #[test]
    fn daily_bursts_become_behaviour_and_only_bigger_ones_page() {
        let mut r = Recurrence::default();
        let mut first_held = None;
        for day in 0..30 {
            if first_held.is_none() && r.holds_back(80.0, 0.0, 1.0, 0.0) {
                first_held = Some(day);
            }
            r.record(80.0 + f64::from(day % 3), 0.0);
            days(&mut r, 0.5);
            r.record(75.0, 0.0);
            days(&mut r, 0.5);
        }
        // Two a day: recurring within the first week or so.
        let day = first_held.expect("bursts are learned");
        assert!((4..=9).contains(&day), "day {day}");
        assert!(r.holds_back(82.0, 0.0, 1.0, 0.0));
        assert!(!r.holds_back(200.0, 0.0, 1.0, 0.0));
        // The bursts stop: after a few weeks a burst pages again.
        days(&mut r, 30.0);
        assert!(!r.holds_back(80.0, 0.0, 1.0, 0.0), "{r:?}");
    }

    #[test]
    fn a_long_rise_pages_though_no_window_of_it_beats_the_bursts() {
        // Daily bursts of 80 in one window, each about 100 over an hour;
        // then a rise of 20 a window for hours: no window is a record,
        // its hour is.
        let mut r = Recurrence::default();
        for _ in 0..40 {
            r.record(80.0, 100.0);
            days(&mut r, 0.5);
        }
        assert!(r.holds_back(60.0, 90.0, 1.0, 0.0));
        assert!(!r.holds_back(20.0, 1000.0, 1.0, 0.0));
    }

    #[test]
    fn a_day_without_bursts_does_not_reset_the_memory() {
        let mut r = Recurrence::default();
        for _ in 0..40 {
            r.record(100.0, 0.0);
            days(&mut r, 0.5);
        }
        days(&mut r, 1.0);
        assert!(r.holds_back(100.0, 0.0, 1.0, 0.0), "{r:?}");
        assert!(r.episodes() > RECURRING.into());
    }
}
