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
//! paging bar, a run that begins within the hour after the last one began
//! being that one going on (an outage flapping on and off) — in a
//! decaying count with a one-week half-life. Once that
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
//! The biggest peak fades: it is remembered with the count's one-week
//! half-life from the episode that set it (an episode as big sets it
//! again). Kept for ever, one huge burst silenced a series for as long as
//! it went on recurring (NAB's KO: a burst of 52 times its level on 19
//! March held back one of 62 on 8 April, after twenty days in which no
//! burst passed 50). The long measure does not fade: an episode's excess
//! over hours is a sum of many reports, so "clearly bigger" is a narrow
//! margin for it, narrower than bursts of one kind differ in length;
//! faded, a series bursting twice a day paged twice a week on bursts no
//! bigger than the rest.
//!
//! The same holds for a run that keeps a weekly appointment. A window that
//! pages is never learned (it may be an outage), so an hour of the week
//! that the profile misjudged the first time it came round — a first
//! Friday night, when people stay up later than on the weekdays the hour
//! was guessed from — pages again the next week, and every week after. A
//! run that begins in the hour of the week of the last one (±1 h, in local
//! time), a week or more later, is therefore held to the same test against
//! that episode: it pages only if clearly bigger. One `u16` (the local hour
//! the last episode began, mod 2^16) pays for it; the episode sizes are
//! kept in 16 bits to stay within a series' kilobyte.
//!
//! Must not: allocate, read clocks, or know about services and incidents.

use serde::{Deserialize, Serialize};

/// Half-life of the episode count: a week.
pub const HALF_LIFE_MS: i64 = 7 * 86_400_000;

/// Episode count (with a one-week half-life) from which excursions are the
/// series' behaviour: the steady count of one episode a day is
/// 1 / (1 − 0.5^(1/7)) ≈ 10.6.
pub const RECURRING: f32 = 10.0;

/// Marks "no episode yet" in [`Recurrence::last_hour`].
const NO_HOUR: u16 = u16::MAX;

/// Hours in a week.
const WEEK_HOURS: i32 = 168;
/// Furthest a local clock is taken to be set back (hours): an hour "before"
/// the last episode by more than this is one 7.5 years after it.
const CLOCK_BACK_HOURS: i32 = 24;

/// `hour` (local hours since the epoch) as kept: mod 2^16 (7.5 years),
/// never [`NO_HOUR`].
fn hour_mark(hour: i64) -> u16 {
    (hour.rem_euclid(1 << 16) as u16).min(NO_HOUR - 1)
}

/// An episode size as kept: the upper half of its `f32` (8 bits of
/// mantissa, ±0.2 %; "clearly bigger" allows three standard deviations).
fn pack(size: f64) -> u16 {
    let bits = (size.clamp(0.0, 1e30) as f32).to_bits();
    (bits.saturating_add(0x8000) >> 16) as u16
}

fn unpack(size: u16) -> f64 {
    f64::from(f32::from_bits(u32::from(size) << 16))
}

/// What a series remembers of its episodes. 12 bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recurrence {
    /// Episodes, decaying with [`HALF_LIFE_MS`].
    episodes: f32,
    /// Largest episode size while the series recurs, fading (module doc)
    /// as of the last episode; the last episode's while it does not (see
    /// [`pack`]).
    biggest: u16,
    /// The same for the excess of an episode on the longest scale, over
    /// the level.
    biggest_long: u16,
    /// Local hour (hours since the epoch, mod 2^16) in which the last
    /// episode began; [`NO_HOUR`] before the first.
    last_hour: u16,
}

impl Default for Recurrence {
    fn default() -> Recurrence {
        Recurrence {
            episodes: 0.0,
            biggest: 0,
            biggest_long: 0,
            last_hour: NO_HOUR,
        }
    }
}

impl Recurrence {
    /// Whether every number is finite and not negative.
    pub fn is_sane(&self) -> bool {
        [
            f64::from(self.episodes),
            unpack(self.biggest),
            unpack(self.biggest_long),
        ]
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
    }

    /// Whether a run that began in local hour `hour` (hours since the
    /// epoch) began in the hour of the week of the last episode (within an
    /// hour either side), at least a week after it.
    fn weekly(&self, hour: i64) -> bool {
        self.hours_since_last(hour).is_some_and(|since| {
            let off = since.rem_euclid(WEEK_HOURS);
            since >= WEEK_HOURS - 1 && (off <= 1 || off >= WEEK_HOURS - 1)
        })
    }

    /// Local hours from the last episode's to `hour`, kept mod 2^16 (7.5
    /// years) and negative, down to a day, when a local clock was set back
    /// past the last episode's hour (daylight saving time ending). `None`
    /// before the first episode. The one reading of "since" that `weekly`,
    /// `fade` and `record` share.
    fn hours_since_last(&self, hour: i64) -> Option<i32> {
        (self.last_hour != NO_HOUR).then(|| {
            let since = i32::from(hour_mark(hour).wrapping_sub(self.last_hour));
            if since > i32::from(u16::MAX) - CLOCK_BACK_HOURS {
                since - (i32::from(u16::MAX) + 1)
            } else {
                since
            }
        })
    }

    /// Whether a run of peak `size` and excess `long` on the longest scale
    /// (both over the level), begun in local hour `hour`, is the series'
    /// behaviour and does not page: the series recurs (or the run came
    /// back in the hour of the week of the last episode, see below), and
    /// the run is not clearly bigger than those episodes on either
    /// measure. `level` (reports per average window) and the dispersion
    /// `k` turn sizes into counts, whose noise sets "clearly".
    ///
    /// A run that comes back in the hour of the week of the last episode,
    /// a week or more later, is held back against that episode the same
    /// way: a week's shape that the profile could not learn (its first
    /// showing paged, and a paged hour is not learned) would otherwise
    /// page every week at that hour. Real outages do not keep an
    /// appointment; one that does and is bigger still pages.
    pub fn holds_back(&self, size: f64, long: f64, level: f64, k: f64, hour: i64) -> bool {
        let weekly = self.weekly(hour);
        if self.episodes < RECURRING && !weekly {
            return false;
        }
        // A weekly appointment is held to the last episode as it was; a
        // recurring series to its biggest peak as remembered now.
        let fade = if weekly { 1.0 } else { self.fade(hour) };
        let within = |size: f64, biggest: f64| {
            let biggest = biggest * level;
            let sd = (biggest * (1.0 + k * biggest)).sqrt();
            size * level <= biggest + 3.0 * sd
        };
        within(size, unpack(self.biggest) * fade) && within(long, unpack(self.biggest_long))
    }

    /// How much of the biggest peak, as recorded at the last episode, is
    /// remembered at local hour `hour`: it fades with the episode count's
    /// half-life (module doc).
    fn fade(&self, hour: i64) -> f64 {
        self.hours_since_last(hour).map_or(1.0, |since| {
            // A local clock set back (daylight saving time ending) can put
            // a run's hour before the last episode's: nothing has faded.
            let since = f64::from(since.max(0));
            0.5f64.powf(since * 3_600_000.0 / HALF_LIFE_MS as f64)
        })
    }

    /// Records an episode that ended, with its peak `size`, its excess
    /// `long` on the longest scale and the local `hour` it began in.
    ///
    /// A run that began in the local hour of the last one or the next is
    /// that episode going on (an outage flapping on and off resolves and
    /// pages again every quarter of an hour): it is merged into it, not
    /// counted again. Counted, one afternoon's flapping outage made the
    /// series "recurring" at once, and a real outage a day and a half
    /// later was held back for two hours against it (family seed 551,
    /// whatsapp JP: twelve flaps, then a 2.3× step missed).
    pub fn record(&mut self, size: f64, long: f64, hour: i64) {
        // Before the last episode's hour only when a local clock was set
        // back: the same episode, as in `fade`.
        if self.hours_since_last(hour).is_some_and(|since| since <= 1) {
            self.biggest = self.biggest.max(pack(size));
            self.biggest_long = self.biggest_long.max(pack(long));
            self.last_hour = hour_mark(hour);
            return;
        }
        if self.episodes >= RECURRING {
            let fade = self.fade(hour);
            self.biggest = pack(size.max(unpack(self.biggest) * fade));
            self.biggest_long = self.biggest_long.max(pack(long));
        } else {
            // Not recurring before this one: judged afresh from here.
            self.biggest = pack(size);
            self.biggest_long = pack(long);
        }
        self.episodes += 1.0;
        self.last_hour = hour_mark(hour);
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
        assert!(!r.holds_back(50.0, 0.0, 1.0, 0.0, 0));
        r.record(50.0, 0.0, 0);
        days(&mut r, 3.0);
        assert!(!r.holds_back(30.0, 0.0, 1.0, 0.0, 0), "{r:?}");
    }

    #[test]
    fn daily_bursts_become_behaviour_and_only_bigger_ones_page() {
        let mut r = Recurrence::default();
        let mut first_held = None;
        let mut hour = 0;
        for day in 0..30 {
            if first_held.is_none() && r.holds_back(80.0, 0.0, 1.0, 0.0, hour) {
                first_held = Some(day);
            }
            r.record(80.0 + f64::from(day % 3), 0.0, hour);
            days(&mut r, 0.5);
            r.record(75.0, 0.0, hour + 12);
            days(&mut r, 0.5);
            hour += 24;
        }
        // Two a day: recurring within the first week or so.
        let day = first_held.expect("bursts are learned");
        assert!((4..=9).contains(&day), "day {day}");
        assert!(r.holds_back(82.0, 0.0, 1.0, 0.0, hour));
        assert!(!r.holds_back(200.0, 0.0, 1.0, 0.0, hour));
        // The bursts stop: after a few weeks a burst pages again.
        days(&mut r, 30.0);
        assert!(!r.holds_back(80.0, 0.0, 1.0, 0.0, hour + 30 * 24), "{r:?}");
    }

    #[test]
    fn a_long_rise_pages_though_no_window_of_it_beats_the_bursts() {
        // Daily bursts of 80 in one window, each about 100 over an hour;
        // then a rise of 20 a window for hours: no window is a record,
        // its hour is.
        let mut r = Recurrence::default();
        for half_day in 0..40 {
            r.record(80.0, 100.0, half_day * 12);
            days(&mut r, 0.5);
        }
        assert!(r.holds_back(60.0, 90.0, 1.0, 0.0, 480));
        assert!(!r.holds_back(20.0, 1000.0, 1.0, 0.0, 480));
    }

    #[test]
    fn one_huge_burst_does_not_silence_a_recurring_series_for_ever() {
        // Bursts of 80 twice a day, one of 400 on day 20, then four more
        // weeks of the usual bursts (local hours passed on).
        let bursts = |n: usize| {
            let mut r = Recurrence::default();
            let mut hour = 10_000;
            for half_day in 0..n {
                r.record(if half_day == 40 { 400.0 } else { 80.0 }, 0.0, hour);
                days(&mut r, 0.5);
                hour += 12;
            }
            (r, hour)
        };
        // Right after the huge one, a run of 200 is held back by it.
        let (r, hour) = bursts(41);
        assert!(r.holds_back(200.0, 0.0, 1.0, 0.0, hour));
        // Also in the hour before it, on a local clock set back an hour.
        assert!(r.holds_back(200.0, 0.0, 1.0, 0.0, hour - 13));
        // Four weeks on, the usual burst is still behaviour, and 200 pages
        // (kept as it was, the 400 held it back for as long as the
        // series went on bursting).
        let (r, hour) = bursts(97);
        assert!(r.episodes() > RECURRING.into());
        assert!(r.holds_back(82.0, 0.0, 1.0, 0.0, hour));
        assert!(!r.holds_back(200.0, 0.0, 1.0, 0.0, hour), "{r:?}");
    }

    #[test]
    fn a_day_without_bursts_does_not_reset_the_memory() {
        let mut r = Recurrence::default();
        for half_day in 0..40 {
            r.record(100.0, 0.0, half_day * 12);
            days(&mut r, 0.5);
        }
        days(&mut r, 1.0);
        assert!(r.holds_back(100.0, 0.0, 1.0, 0.0, 504), "{r:?}");
        assert!(r.episodes() > RECURRING.into());
    }

    /// An episode that began in local hour `hour`.
    fn episode(r: &mut Recurrence, hour: i64, size: f64) {
        r.record(size, 0.0, hour);
    }

    #[test]
    fn an_outage_flapping_for_hours_is_one_episode() {
        // Five hours of an outage that resolves and pages again every
        // twenty minutes or so, its biggest flap in the middle: one
        // episode, however many incidents.
        let mut r = Recurrence::default();
        let f = Recurrence::decay_per_window(FIVE_MIN);
        for flap in 0..15 {
            let size = if flap == 7 { 300.0 } else { 30.0 };
            episode(&mut r, 3000 + flap * 20 / 60, size);
            for _ in 0..4 {
                r.age(f);
            }
        }
        assert!(r.episodes() < 1.5, "{r:?}");
        // A day and a half later a run of its size pages: one episode
        // does not make the series recurring.
        days(&mut r, 1.5);
        assert!(!r.holds_back(300.0, 0.0, 1.0, 0.0, 3036), "{r:?}");
        // It is remembered by its biggest flap: a week after its last
        // one, at that hour, a run of 250 is held back as a weekly repeat.
        days(&mut r, 5.5);
        assert!(r.holds_back(250.0, 0.0, 1.0, 0.0, 3004 + 168), "{r:?}");
        // Episodes hours apart are counted apart.
        let before = r.episodes();
        episode(&mut r, 3200, 40.0);
        episode(&mut r, 3204, 40.0);
        assert!(r.episodes() > before + 1.99, "{r:?}");
    }

    #[test]
    fn an_hour_of_the_week_that_paged_does_not_page_again_next_week() {
        // Saturday 00:00 local paged once (hour 1000 since the epoch).
        let mut r = Recurrence::default();
        episode(&mut r, 1000, 40.0);
        days(&mut r, 7.0);
        // A week later, within the hour either side: held back.
        for hour in [1000 + 167, 1000 + 168, 1000 + 169] {
            assert!(r.holds_back(40.0, 0.0, 1.0, 0.0, hour), "{hour}");
        }
        // Clearly bigger pages; another hour of the week pages.
        assert!(!r.holds_back(200.0, 0.0, 1.0, 0.0, 1000 + 168));
        assert!(!r.holds_back(40.0, 0.0, 1.0, 0.0, 1000 + 165));
        // Held back, it is still an episode: the week after as well.
        episode(&mut r, 1000 + 168, 41.0);
        days(&mut r, 7.0);
        assert!(r.holds_back(40.0, 0.0, 1.0, 0.0, 1000 + 2 * 168));
    }

    #[test]
    fn a_clock_set_back_is_read_alike_by_fading_and_recording() {
        let mut r = Recurrence::default();
        r.record(80.0, 0.0, 7000);
        // Two hours before the last episode's hour (a clock set back by
        // two): nothing has faded, and it is that episode going on.
        assert_eq!(r.fade(6998), 1.0);
        r.record(90.0, 0.0, 6998);
        assert_eq!(r.episodes(), 1.0, "{r:?}");
        // Four years on (past half the hours kept) is not "before": the
        // peak has faded, and it is an episode of its own.
        let later = 6998 + 35_000;
        assert!(r.fade(later) < 1e-6, "{}", r.fade(later));
        r.record(80.0, 0.0, later);
        assert_eq!(r.episodes(), 2.0, "{r:?}");
    }

    #[test]
    fn an_outage_that_comes_back_within_the_hour_or_the_day_pages() {
        // A flapping outage resolves and returns 20 minutes later, or
        // the next day at the same hour: not a weekly repeat.
        let mut r = Recurrence::default();
        episode(&mut r, 5000, 40.0);
        assert!(!r.holds_back(40.0, 0.0, 1.0, 0.0, 5000));
        assert!(!r.holds_back(40.0, 0.0, 1.0, 0.0, 5001));
        assert!(!r.holds_back(40.0, 0.0, 1.0, 0.0, 5024));
        // Hours are kept mod 2^16: a week across the wrap still counts.
        let mut r = Recurrence::default();
        episode(&mut r, (1 << 16) - 10, 40.0);
        assert!(r.holds_back(40.0, 0.0, 1.0, 0.0, (1 << 16) + 158));
    }
}
