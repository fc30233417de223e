//! The learned expectation of one series: level × hour-of-week profile, plus
//! the series' over-dispersion.
//!
//! Updated once per closed window, online, in O(1). The profile is indexed by
//! hour of the week: a country's series in its local wall-clock time (see
//! [`crate::tz`]: a daylight-saving change does not shift its day), the
//! worldwide series in UTC. A slot's own value is trusted in
//! proportion to its evidence: until it has four weeks of visits it is
//! blended with the same hour on the other days (weighted by their visits),
//! so a series is usable after one day, learns its weekly cycle over the
//! following weeks, and one odd hour does not define its slot for a week.
//! Each slot learns its hour's mean; a window is expected on a line
//! through the middles of its hour and the neighbouring ones that keeps
//! that mean ([`WeekPos`], [`Baseline::shape_at`]), so a steep morning is
//! followed within the hour. How far the other days' mean may be from an
//! hour not yet known is learned per series: each hour seen for the first
//! time is compared with it (`Baseline::day_spread`), so a series whose
//! days agree trusts the guess for its unseen hours more than one whose
//! days differ. A guess from the other kind of day (a first Saturday from
//! the weekdays) is also as unsure as that day changes within an hour or
//! two of it (`SHIFT_HOURS`): weekends keep other hours. So is a first
//! Sunday guessed from Saturday (the weekend's days keep different hours
//! too), and an hour no day has seen, guessed at the level, is as unsure
//! as the hours seen are far from it. About 860 bytes.

use serde::{Deserialize, Serialize};

use crate::tz::{self, Zone};

/// Hour-of-week slots.
pub const SLOTS: usize = 168;
/// Weeks of visits a slot's estimate rests on at most (its EWMA forgets
/// older ones).
const SLOT_TRUST_WEEKS: f64 = 4.0;
/// Relative variance of one hour of the week from one week to the next
/// (about ±10 %): one week of visits says that much about the next. Chosen
/// on the development seeds of the scenario families from 0.01, 0.02 and
/// 0.04 (EVALUATION.md).
const WEEK_VARIANCE: f64 = 0.01;
/// Relative variance of an hour of the week not yet seen, before the series
/// has shown how its days differ (and always for a kind of day, weekday or
/// weekend, not seen yet): its value is a guess from other days, trusted to
/// about ±20 % (weekends differ, and the region's time zone is unknown).
/// Chosen on the development seeds of the scenario families (0.01 and 0.02
/// found more slow outages but paged on first weekends; EVALUATION.md).
const UNSEEN_SLOT_VARIANCE: f64 = 0.04;

/// How far a day of one kind (weekday or weekend) is taken to be the
/// other kind's day shifted in time: hour offsets and their weights, a
/// normal distribution of one hour's spread at whole hours. People sleep
/// in and stay up later at weekends; how much, no day of the other kind
/// says. Set a priori, not tuned.
const SHIFT_HOURS: [(i32, f64); 4] = [(-2, 0.054), (-1, 0.242), (1, 0.242), (2, 0.054)];

/// Weight of one comparison in the learned day spread (about half a day
/// of newly seen hours dominates it; set a priori, not tuned).
const DAY_SPREAD_RATE: f64 = 1.0 / 12.0;
/// Floor of the learned day spread (±5 %: no two days are the same).
const MIN_DAY_SPREAD: f64 = 0.0025;
/// Ceiling of the learned day spread (±100 %: what its `u16` holds).
const MAX_DAY_SPREAD: f64 = 65_535.0 / DAY_SPREAD_UNIT;
/// The learned day spread is kept in units of 2⁻¹⁶.
const DAY_SPREAD_UNIT: f64 = 65_536.0;
/// Largest multiplier a slot may hold (fifty times the series' level).
const MAX_MULT: f32 = 50.0;
/// Reports a profile must rest on before it is trusted over a borrowed one
/// (~50 per hour of day), unless it has [`PROFILE_DAYS`].
const PROFILE_MASS: u16 = 1200;
/// Days of windows after which a profile is trusted over a borrowed one
/// however few reports it rests on. The borrowed shape is the worldwide
/// series' at the same instant, a day in UTC: for a small region far from
/// the busiest one it is shifted by hours (seed 118's `psn` TR, UTC+3, 0.2
/// reports a minute: expected at a third of its counts in its busiest
/// hours for the five days its 1200 reports took, and an 18.8× step found
/// after 9 windows; after two days its own hours, each seen twice and
/// pooled with the days of its kind, are noisy but in its own phase, and
/// the blend's counting noise says how noisy: 6 windows). Busier series
/// reach the mass on their first day, where the worldwide series, which
/// learns the hour as it happens from every region, is the better guess.
/// Set a priori (two days: every hour seen twice), not tuned.
const PROFILE_DAYS: f64 = 2.0;

/// Two estimates of one value, each with its variance, pooled by
/// precision (inverse-variance weights): the pooled value and its
/// variance.
fn pool((a, va): (f64, f64), (b, vb): (f64, f64)) -> (f64, f64) {
    let w = vb / (va + vb);
    (w * a + (1.0 - w) * b, va * vb / (va + vb))
}

/// Visits that make a slot's first full hour (one week's).
fn first_hour(rates: &LearnRates) -> f64 {
    rates.visits_per_week.round().clamp(1.0, f64::from(u8::MAX))
}

/// The same hour as `slot` on the other days of the week: (Σ visits ×
/// multiplier, Σ visits) over all of them, and over those of the slot's
/// own kind (weekday or weekend).
fn other_days(profile: &Profile, slot: usize) -> [(f64, f64); 2] {
    let weekend = |day: usize| day >= 5;
    let (hour, kind) = (slot % 24, weekend(slot / 24));
    let mut all = (0.0, 0.0);
    let mut same = (0.0, 0.0);
    for day in 0..7 {
        let s = day * 24 + hour;
        if s != slot {
            let v = f64::from(profile.visits[s]);
            let m = v * f64::from(profile.mult[s]);
            all = (all.0 + m, all.1 + v);
            if weekend(day) == kind {
                same = (same.0 + m, same.1 + v);
            }
        }
    }
    [all, same]
}

/// The multiplier of hour of the day `hour` on the days `from`, averaged
/// over their visits; `None` when none of them saw it.
fn hour_mean(profile: &Profile, hour: usize, from: impl Fn(usize) -> bool) -> Option<f64> {
    let (mut sum, mut visits) = (0.0, 0.0);
    for day in (0..7).filter(|&d| from(d)) {
        let s = day * 24 + hour;
        let v = f64::from(profile.visits[s]);
        sum += v * f64::from(profile.mult[s]);
        visits += v;
    }
    (visits > 0.0).then(|| sum / visits)
}

/// Relative variance of a guess of hour `hour` from the same hour on the
/// days `from` (the other kind's, or the other weekend day), from the
/// day's shape being shifted ([`SHIFT_HOURS`]): the weighted mean square
/// log ratio of the neighbouring hours' means to this hour's, on those
/// days. Large where the day rises or falls steeply (a weekend's late
/// evening guessed from weekdays whose evening has ended), small where it
/// is flat; nothing when those days were not seen. The day is taken as
/// circular: an hour before midnight is the same days' 23:00.
fn shift_variance(profile: &Profile, hour: usize, from: impl Fn(usize) -> bool) -> f64 {
    let mean_at = |h: usize| hour_mean(profile, h, &from).filter(|&m| m > 0.0);
    let Some(m0) = mean_at(hour) else {
        return 0.0;
    };
    SHIFT_HOURS
        .iter()
        .filter_map(|&(d, w)| {
            let m = mean_at((hour as i32 + d).rem_euclid(24) as usize)?;
            Some(w * (m / m0).clamp(0.05, 20.0).ln().powi(2))
        })
        .sum()
}

/// Per-window learning rates, derived from the configured half-lives and
/// the window width.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LearnRates {
    /// Level EWMA weight per window.
    pub level: f64,
    /// Profile slot EWMA weight per visit (once a slot has `1/rate` visits).
    pub profile: f64,
    /// Dispersion EWMA weight per window.
    pub dispersion: f64,
    /// Visits after which a slot's own value is used alone (four weeks of
    /// an hour's windows, at most what the visit counter holds).
    pub slot_trust_visits: f64,
    /// Windows per hour: the visits one week gives a slot.
    pub visits_per_week: f64,
}

impl LearnRates {
    /// Rates for windows of `width_ms` with the given half-lives.
    pub fn new(width_ms: i64, level_half_life_ms: i64, profile_half_life_ms: i64) -> LearnRates {
        let per = |half_life_ms: i64, windows_per: f64| {
            let n = (half_life_ms as f64 / width_ms as f64 / windows_per).max(1.0);
            1.0 - 0.5f64.powf(1.0 / n)
        };
        // A slot is visited (1 h / width) times per week.
        let visits_per_week = 3_600_000.0 / width_ms as f64;
        let weeks = |ms: i64| ms as f64 / (7.0 * 86_400_000.0);
        LearnRates {
            level: per(level_half_life_ms, 1.0),
            profile: 1.0
                - 0.5f64.powf(1.0 / (visits_per_week * weeks(profile_half_life_ms)).max(1.0)),
            dispersion: per(level_half_life_ms, 1.0),
            slot_trust_visits: (SLOT_TRUST_WEEKS * visits_per_week).clamp(1.0, f64::from(u8::MAX)),
            visits_per_week,
        }
    }
}

/// Level, profile and dispersion of one series.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Expected reports per window where the profile is 1.
    level: f32,
    /// Over-dispersion k: variance = μ + kμ².
    dispersion: f32,
    /// Windows learned from.
    windows: u32,
    /// Reports learned from, rounded and saturating (how much evidence the
    /// profile rests on; only whether it reached [`PROFILE_MASS`] matters).
    mass: u16,
    /// Learned relative variance of a new day's hour from the mean of the
    /// same hour on the other days, in units of 2⁻¹⁶ (see
    /// [`Baseline::day_spread`]); 0 before the first comparison.
    day_spread: u16,
    /// Hour-of-week multipliers and visits (none until the first update;
    /// one thin box: a million series make every word count).
    profile: Option<Box<Profile>>,
}

/// The hour-of-week profile of one series.
#[derive(Clone, Debug, PartialEq)]
struct Profile {
    /// Multiplier of the level per slot.
    mult: [f32; SLOTS],
    /// Windows seen per slot, saturating.
    visits: [u8; SLOTS],
}

impl Profile {
    fn new() -> Profile {
        Profile {
            mult: [1.0; SLOTS],
            visits: [0; SLOTS],
        }
    }
}

/// Serialized as two sequences, as the boxed slices it replaced were.
impl Serialize for Profile {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (&self.mult[..], &self.visits[..]).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Profile {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Profile, D::Error> {
        let (mult, visits): (Vec<f32>, Vec<u8>) = Deserialize::deserialize(deserializer)?;
        let bad = |what: &str, n: usize| {
            serde::de::Error::custom(format!("profile has {n} {what}, expected {SLOTS}"))
        };
        let n = mult.len();
        let mult = mult.try_into().map_err(|_| bad("multipliers", n))?;
        let n = visits.len();
        let visits = visits.try_into().map_err(|_| bad("visit counts", n))?;
        Ok(Profile { mult, visits })
    }
}

impl Baseline {
    /// A baseline that has learned nothing yet.
    pub fn new() -> Baseline {
        Baseline::default()
    }

    /// Expected reports per window on an average hour.
    pub fn level(&self) -> f64 {
        f64::from(self.level)
    }

    /// Learned negative-binomial dispersion of one window's count.
    pub fn dispersion(&self) -> f64 {
        f64::from(self.dispersion)
    }

    /// Windows this baseline learned from.
    pub fn windows(&self) -> u32 {
        self.windows
    }

    /// Whether the own profile is trusted over a borrowed one: it rests on
    /// ~50 reports per hour of day ([`PROFILE_MASS`]) or on two days of
    /// windows ([`PROFILE_DAYS`]).
    pub fn profile_learned(&self, rates: &LearnRates) -> bool {
        let days = f64::from(self.windows) / (24.0 * rates.visits_per_week);
        self.windows > 0 && (self.mass >= PROFILE_MASS || days >= PROFILE_DAYS)
    }

    /// The profile's multiplier for `slot`: its own value, blended with the
    /// mean of the same hour on the other days; `None` when that hour was
    /// never seen.
    pub fn shape(&self, slot: usize, rates: &LearnRates) -> Option<f64> {
        self.blend(slot, rates).map(|(shape, _)| shape)
    }

    /// Extra persistent dispersion of the expectation at `slot`: the
    /// relative variance of its multiplier (see [`Baseline::blend`]), or
    /// that of a guess when the hour was never seen.
    pub fn slot_uncertainty(&self, slot: usize, rates: &LearnRates) -> f64 {
        self.variance_of(self.blend(slot, rates))
    }

    /// The relative variance a [`Baseline::blend`] gives, or the unseen
    /// hour's when it gave none.
    fn variance_of(&self, blend: Option<(f64, f64)>) -> f64 {
        blend.map_or_else(|| self.unseen_hour_variance(), |(_, variance)| variance)
    }

    /// Relative variance of the guess for an hour of the day that no day
    /// has seen: the series' level, which could be any of its hours. So
    /// it is as unsure as the hours seen so far differ from the level
    /// (their means' mean square relative deviation), and never surer than
    /// [`UNSEEN_SLOT_VARIANCE`]. Trusted to ±20 % instead, where the day
    /// swings three- or fourfold, such an hour's first windows were
    /// suspect on every visit, so never learned, and the hour paged every
    /// day (EVALUATION.md, twenty-third session).
    fn unseen_hour_variance(&self) -> f64 {
        let Some(profile) = self.profile.as_deref() else {
            return UNSEEN_SLOT_VARIANCE;
        };
        let (mut square, mut hours) = (0.0, 0.0);
        for m in (0..24).filter_map(|hour| hour_mean(profile, hour, |_| true)) {
            square += (m - 1.0).powi(2);
            hours += 1.0;
        }
        if hours > 0.0 {
            (square / hours).max(UNSEEN_SLOT_VARIANCE)
        } else {
            UNSEEN_SLOT_VARIANCE
        }
    }

    /// The multiplier for `slot` and its relative variance: the slot's own
    /// value and the mean of the same hour on the other days, each weighted
    /// by what it rests on (a precision-weighted mean, as in any shrinkage
    /// estimator). The own value's variance is its counting noise plus
    /// `WEEK_VARIANCE` per week of visits; the other days' mean is a
    /// guess for this day, off by `UNSEEN_SLOT_VARIANCE` on top of its
    /// own noise. A busy hour seen for one week is known well; a quiet one
    /// leans on the other days for weeks. An hour never seen is the other
    /// days' mean alone, off by what the series has shown of how its days
    /// differ (`Baseline::day_spread`). Once the hour has been seen (the
    /// guess's trust goes over to the prior as its first visit goes on),
    /// its own weeks are the evidence: how days differ at first sight says
    /// nothing of how one hour changes from week to week (trusting the
    /// other days over it made an hour that moved 40 % page daily).
    pub fn blend(&self, slot: usize, rates: &LearnRates) -> Option<(f64, f64)> {
        let profile = self.profile.as_deref()?;
        let level = f64::from(self.level);
        let k = f64::from(self.dispersion);
        // Relative variance of a multiplier `p` averaged over `visits`.
        let variance = |p: f64, visits: f64| {
            let v = visits.min(rates.slot_trust_visits);
            let per_window = (level * p).max(1e-3);
            (1.0 / per_window + k) / v + WEEK_VARIANCE * rates.visits_per_week / v
        };
        let own_visits = f64::from(profile.visits[slot]);
        let own = f64::from(profile.mult[slot]);
        let [(sum, visits), (same_sum, same_visits)] = other_days(profile, slot);
        // The mean of the hour on other days of one kind, and how far a
        // new day is off it: `spread`, and a further `1 / n` of it for a
        // mean of `n` days, on top of the mean's counting noise.
        let guess = |sum: f64, visits: f64, spread: f64| {
            let m = sum / visits;
            let days = visits / rates.visits_per_week;
            (m, spread * (1.0 + 1.0 / days) + variance(m, visits))
        };
        // The other days' guess: the days of the hour's own kind (weekday
        // or weekend), off by the day spread the series has shown, pooled
        // with the days of the other kind, off by the prior (a Saturday
        // is not a Tuesday). Each weighted by what it is worth, so the
        // first Sunday leans on Saturday, not on five weekdays.
        // A guess from the other kind of day is also off by how much
        // the day's shape is shifted, while the hour's first week of
        // visits goes on (after it, its own are the evidence). Worked
        // out once, and only where a day of the other kind was seen
        // (elsewhere it is used nowhere, and would be nothing).
        // The two weekend days keep different hours too (a night out,
        // then a late morning): a first Sunday guessed from Saturday
        // carries the same shift, over Saturday's hours. Weekdays keep
        // office hours; how far they agree is the day spread.
        let (hour, day) = (slot % 24, slot / 24);
        let first_week = own_visits < first_hour(rates);
        let kind_prior = UNSEEN_SLOT_VARIANCE
            + if first_week && visits > same_visits {
                shift_variance(profile, hour, |d| (d >= 5) != (day >= 5))
            } else {
                0.0
            };
        let weekend_shift = if first_week && day >= 5 && same_visits > 0.0 {
            shift_variance(profile, hour, |d| d >= 5 && d != day)
        } else {
            0.0
        };
        let same_spread = self.day_spread() + weekend_shift;
        let other = match (same_visits > 0.0, visits > same_visits) {
            (true, true) => Some(pool(
                guess(same_sum, same_visits, same_spread),
                guess(sum - same_sum, visits - same_visits, kind_prior),
            )),
            (true, false) => Some(guess(same_sum, same_visits, same_spread)),
            (false, true) => Some(guess(sum, visits, kind_prior)),
            (false, false) => None,
        };
        match (own_visits > 0.0, other) {
            (false, other) => other,
            (true, None) => Some((own, variance(own, own_visits))),
            (true, Some((other, unseen))) => {
                // Once seen, the hour's own weeks are the evidence; the
                // other days' guess is off by the prior against them. Where
                // the guess was trusted more than that (days that agree),
                // it loses the trust as the hour's first visit goes on, not
                // at its first window: a few windows do not make a week,
                // and the first windows of a rise must not make the hour
                // several times as uncertain as the guess it replaced (and
                // the rise its own expectation). Where the prior is the
                // tighter (a series a day or two old) it holds at once.
                // A guess from days of both kinds leans on its own kind.
                let prior = if same_visits > 0.0 {
                    UNSEEN_SLOT_VARIANCE + weekend_shift
                } else {
                    kind_prior
                } + variance(other, visits);
                let off = if unseen < prior {
                    let seen = (own_visits / rates.visits_per_week).min(1.0);
                    unseen + seen * (prior - unseen)
                } else {
                    prior
                };
                Some(pool((own, variance(own, own_visits)), (other, off)))
            }
        }
    }

    /// How far a new day's hour is from the mean of the same hour on the
    /// other days, as this series has shown it (relative variance; the
    /// prior [`UNSEEN_SLOT_VARIANCE`] until it has shown any).
    fn learned_day_spread(&self) -> f64 {
        if self.day_spread == 0 {
            UNSEEN_SLOT_VARIANCE
        } else {
            f64::from(self.day_spread) / DAY_SPREAD_UNIT
        }
    }

    /// The relative variance [`Baseline::blend`] gives the share of an
    /// unseen hour's guess that days of its kind make: the learned day
    /// spread, never more than the prior. What the series shows narrows
    /// the prior; a series whose days differ more than it does
    /// (news-driven ones) carries that in its persistent dispersion,
    /// learned from the same misfit.
    fn day_spread(&self) -> f64 {
        self.learned_day_spread().min(UNSEEN_SLOT_VARIANCE)
    }

    /// Learns the day spread from `slot`, just seen for a full hour for
    /// the first time: how far its multiplier is from the mean of the same
    /// hour on the other days of its kind, net of the counting noise of
    /// both (nothing when no day of its kind was seen). Each comparison is
    /// weighted by how much of it is signal.
    fn learn_day_spread(&mut self, slot: usize, level: f64, rates: &LearnRates) {
        let Some(profile) = self.profile.as_deref() else {
            return;
        };
        // Against the days of its own kind only: the first Saturday says
        // how weekends differ from weekdays, not how days of one kind do.
        let [_, (sum, visits)] = other_days(profile, slot);
        let hour = first_hour(rates);
        if visits < hour || sum <= 0.0 {
            return;
        }
        let guess = sum / visits;
        let ratio = f64::from(profile.mult[slot]) / guess;
        let k = f64::from(self.dispersion);
        let noise_of = |p: f64, n: f64| (1.0 / (level * p).max(1e-3) + k) / n;
        let noise = noise_of(guess * ratio, hour) * ratio * ratio + noise_of(guess, visits);
        let misfit = (ratio - 1.0).powi(2) - noise;
        let d = self.learned_day_spread();
        let gain = DAY_SPREAD_RATE * d / (d + noise);
        let d = (d + gain * (misfit - d)).clamp(MIN_DAY_SPREAD, MAX_DAY_SPREAD);
        self.day_spread = (d * DAY_SPREAD_UNIT).round() as u16;
    }

    /// Expected count in a window at `slot`, using `borrowed` (another
    /// series' [`Baseline::shape`] at that slot) until this baseline's own
    /// profile is learned.
    pub fn expected(&self, slot: usize, borrowed: Option<f64>, rates: &LearnRates) -> f64 {
        f64::from(self.level) * self.shape_in_use(slot, borrowed, rates)
    }

    /// The multiplier [`Baseline::expected`] uses at `slot`: the own shape
    /// once the profile is learned, `borrowed` before (at least 0.05).
    pub fn shape_in_use(&self, slot: usize, borrowed: Option<f64>, rates: &LearnRates) -> f64 {
        self.in_use(|| self.shape(slot, rates), borrowed, rates)
    }

    /// `own` once the profile is learned, `borrowed` before; at least 0.05.
    /// `own` is computed only when it is used (a borrowing series' own
    /// shape is three blends nobody reads).
    fn in_use(
        &self,
        own: impl FnOnce() -> Option<f64>,
        borrowed: Option<f64>,
        rates: &LearnRates,
    ) -> f64 {
        let shape = if self.profile_learned(rates) {
            own()
        } else {
            borrowed.or_else(own)
        };
        shape.unwrap_or(1.0).max(0.05)
    }

    /// Learns from one window's count at `slot`. `count` should already be
    /// clipped by the caller when the window is not trusted to be normal.
    pub fn learn(&mut self, slot: usize, count: f64, borrowed: Option<f64>, rates: &LearnRates) {
        let shape = self.shape_in_use(slot, borrowed, rates);
        self.learn_with_shape(slot, count, shape, rates);
    }

    /// [`Baseline::learn`] with the window's [`Baseline::shape_in_use`]
    /// already known (the caller scored the window with it).
    pub fn learn_with_shape(&mut self, slot: usize, count: f64, shape: f64, rates: &LearnRates) {
        let mu = f64::from(self.level) * shape;
        let n = f64::from(self.windows);
        // Running means while young, EWMAs once enough windows were seen.
        let a = rates.level.max(1.0 / (n + 1.0));
        self.learn_dispersion(count, mu, rates);
        let old_level = f64::from(self.level);
        let level = old_level + a * (count / shape - old_level);
        self.level = level.max(0.0) as f32;
        let profile = self.profile.get_or_insert_with(|| Box::new(Profile::new()));
        // While the level is a running mean (young), its moves are its
        // estimate settling, not the series changing: the hours already
        // learned keep their expected counts (their multipliers were
        // learned against the level as it stood, and a series' first
        // windows move it by a lot). Without this the hours of a series'
        // first day kept the errors of its first windows: on the
        // families' second days the hours missed their counts by a
        // relative variance of 0.055 instead of 0.012, and a week later
        // the first day's hours came round far off (seed 102, netflix PL:
        // its first night expected at 2.4 times its counts, the day after
        // it 5–25 % low, and a 2.7× step that evening found after 30
        // windows; with this, within 15 % and 5 windows).
        if a > rates.level && level > 0.0 && old_level > 0.0 {
            let f = (old_level / level) as f32;
            // Branch-free, so it runs as a few vector instructions.
            for (m, &v) in profile.mult.iter_mut().zip(profile.visits.iter()) {
                let g = if v > 0 { f } else { 1.0 };
                *m = (*m * g).min(MAX_MULT);
            }
        }
        if level > 0.0 {
            let v = profile.visits[slot];
            let b = rates.profile.max(1.0 / (f64::from(v) + 1.0));
            let p = f64::from(profile.mult[slot]);
            profile.mult[slot] =
                (p + b * (count / level - p)).clamp(0.0, f64::from(MAX_MULT)) as f32;
            profile.visits[slot] = v.saturating_add(1);
            // An hour seen in full for the first time.
            if f64::from(v) + 1.0 == first_hour(rates) {
                self.learn_day_spread(slot, level, rates);
            }
        }
        self.windows = self.windows.saturating_add(1);
        self.mass = self
            .mass
            .saturating_add(count.round().clamp(0.0, 65_535.0) as u16);
    }

    /// Learns the over-dispersion alone from a window that expected `mu`
    /// (also called for windows whose count is not trusted to teach the
    /// level: the caller clips `count` at what noise plausibly gives).
    pub fn learn_dispersion(&mut self, count: f64, mu: f64, rates: &LearnRates) {
        if mu <= 0.0 || self.windows < 10 {
            return;
        }
        // Ratio estimator Σ((c−μ)²−c) / Σμ²: each window weighs μ² (at
        // most 1), so quiet series learn their clustering too. The floor
        // at −1 biases series below one report a window upward (a window
        // of one report at μ = 0.3 teaches −5.7, counted as −1), and is
        // kept on purpose: their hours are learned from few reports and
        // miss by more than the model says; unbiased, the same families
        // had a quarter more false incidents (EVALUATION.md, twelfth
        // session).
        let m2 = mu * mu;
        let e = ((count - mu).powi(2) - count) / m2;
        let w = m2.min(1.0);
        let d = self.dispersion_rate(rates) * w;
        let k = f64::from(self.dispersion);
        self.dispersion = (k + d * (e.clamp(-1.0, 4.0 / w) - k)).clamp(0.0, 4.0) as f32;
    }

    /// Weight of a window that weighs 1 in the dispersion's average: a
    /// running mean while the series is young, the level's half-life
    /// after. Every dispersion learned from the same windows (the
    /// problem mix's misfit too) learns at this rate.
    pub fn dispersion_rate(&self, rates: &LearnRates) -> f64 {
        rates.dispersion.max(1.0 / (f64::from(self.windows) + 1.0))
    }

    /// Moves the level by `factor` at once (a rise or drop that lasted a
    /// day is the new normal; the hour-of-week shape is kept).
    pub fn rebase(&mut self, factor: f64) {
        self.level = (f64::from(self.level) * factor).max(0.0) as f32;
    }

    /// Whether every learned number is finite and in its range (a restored
    /// snapshot is checked with it).
    pub fn is_sane(&self) -> bool {
        let ok = |x: f32| x.is_finite() && x >= 0.0;
        ok(self.level)
            && ok(self.dispersion)
            && self
                .profile
                .as_ref()
                .is_none_or(|p| p.mult.iter().all(|&m| ok(m)))
    }

    /// Heap plus inline bytes of this baseline.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Baseline>()
            + self
                .profile
                .as_ref()
                .map_or(0, |_| std::mem::size_of::<Profile>())
    }
}

/// Where a window falls in the week: the hour it is learned into, and
/// which part of that hour it covers, for an expectation that follows the
/// day smoothly. A profile that is constant within each hour misses a
/// steep morning by ±10 % at the hour's edges (±30 % on a sharp peak), in
/// the same direction for half an hour: an error that no spread of the
/// counts explains, and the kind a slow outage hides in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WeekPos {
    /// Hour-of-week slot the window's middle is in (what it teaches).
    pub slot: usize,
    /// Where the window starts and ends, as fractions of that hour (below
    /// 0 or above 1 when `window_offset` lays it across two hours).
    from: f64,
    to: f64,
}

impl WeekPos {
    /// The place, in the local week of `zone` (UTC without one), of the
    /// window starting at `start_ms` (see [`crate::tz`]).
    pub fn local(start_ms: i64, width_ms: i64, zone: Option<Zone>) -> WeekPos {
        WeekPos::of(tz::local_ms(start_ms, zone), width_ms)
    }

    /// The place of the window starting at `start_ms`, `width_ms` wide, in
    /// the UTC week.
    pub fn of(start_ms: i64, width_ms: i64) -> WeekPos {
        const HOUR: f64 = 3_600_000.0;
        let middle = start_ms + width_ms / 2;
        let hour_start = middle - middle.rem_euclid(3_600_000);
        WeekPos {
            slot: slot_of(middle),
            from: (start_ms - hour_start) as f64 / HOUR,
            to: (start_ms + width_ms - hour_start) as f64 / HOUR,
        }
    }
}

impl Baseline {
    /// [`Baseline::shape`] over the window at `pos`: a line through the
    /// middles of the hour and its neighbours, shifted so that over the
    /// hour it averages to the hour's own value (each hour's mean is what
    /// the profile learns, and a smooth day keeps it), averaged over the
    /// part of the hour the window covers (an hour-long window gets the
    /// hour's own value). On a steady slope that is the slope; an hour
    /// unlike both neighbours keeps most of its own value across it.
    pub fn shape_at(&self, pos: WeekPos, rates: &LearnRates) -> Option<f64> {
        let own = self.shape(pos.slot, rates)?;
        Some(self.line_at(pos, own, rates))
    }

    /// [`Baseline::shape_at`] and the [`Baseline::slot_uncertainty`] of
    /// `pos.slot`, from one blend of the hour.
    pub fn shape_and_uncertainty_at(&self, pos: WeekPos, rates: &LearnRates) -> (Option<f64>, f64) {
        let blend = self.blend(pos.slot, rates);
        let shape = blend.map(|(own, _)| self.line_at(pos, own, rates));
        (shape, self.variance_of(blend))
    }

    /// [`Baseline::shape_at`] given the hour's own shape `own`.
    fn line_at(&self, pos: WeekPos, own: f64, rates: &LearnRates) -> f64 {
        let side = |step: usize| self.shape((pos.slot + step) % SLOTS, rates).unwrap_or(own);
        let (before, after) = (side(SLOTS - 1), side(1));
        // Two straight pieces, meeting at the hour's middle: the mean of
        // each over a stretch is its value at the stretch's middle.
        let line = |x: f64| {
            if x < 0.5 {
                before + (x + 0.5) * (own - before)
            } else {
                own + (x - 0.5) * (after - own)
            }
        };
        let (from, to) = (pos.from, pos.to);
        let mean = if to <= 0.5 || to > 1.0 || !(0.0..0.5).contains(&from) {
            // Within one piece, or across two hours (taken at its middle).
            line((from + to) / 2.0)
        } else {
            (line((from + 0.5) / 2.0) * (0.5 - from) + line((0.5 + to) / 2.0) * (to - 0.5))
                / (to - from)
        };
        // The line averages 0.75 own + 0.125 (before + after) over the hour.
        // Never below the lowest of the three hours: the middle of an hour
        // below both neighbours is not expected lower still (expecting too
        // little pages; too much, at the top of a peak, only waits).
        let lowest = own.min(before).min(after);
        (mean + 0.25 * own - 0.125 * (before + after)).max(lowest)
    }

    /// [`Baseline::shape_in_use`] at `pos` (see [`Baseline::shape_at`]).
    pub fn shape_in_use_at(&self, pos: WeekPos, borrowed: Option<f64>, rates: &LearnRates) -> f64 {
        self.in_use(|| self.shape_at(pos, rates), borrowed, rates)
    }

    /// [`Baseline::shape_in_use_at`] and the [`Baseline::slot_uncertainty`]
    /// of `pos.slot` together, from one blend of the hour (blends are most
    /// of what closing a window costs: a quarter of a replay's time).
    pub fn shape_in_use_and_uncertainty_at(
        &self,
        pos: WeekPos,
        borrowed: Option<f64>,
        rates: &LearnRates,
    ) -> (f64, f64) {
        let blend = self.blend(pos.slot, rates);
        let shape = || blend.map(|(own, _)| self.line_at(pos, own, rates));
        (self.in_use(shape, borrowed, rates), self.variance_of(blend))
    }

    /// [`Baseline::expected`] at `pos` (see [`Baseline::shape_at`]).
    pub fn expected_at(&self, pos: WeekPos, borrowed: Option<f64>, rates: &LearnRates) -> f64 {
        f64::from(self.level) * self.shape_in_use_at(pos, borrowed, rates)
    }

    /// [`Baseline::expected_at`] given this baseline's own
    /// [`Baseline::shape_at`] there, already computed.
    pub fn expected_with(
        &self,
        own: Option<f64>,
        borrowed: Option<f64>,
        rates: &LearnRates,
    ) -> f64 {
        f64::from(self.level) * self.in_use(|| own, borrowed, rates)
    }
}

/// Hour-of-week slot of a UTC instant (Monday 00:00 = 0).
pub fn slot_of(ts_ms: i64) -> usize {
    // 1970-01-01 was a Thursday: 72 hours after the Monday before.
    ((ts_ms.div_euclid(3_600_000) + 72).rem_euclid(SLOTS as i64)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn rates() -> LearnRates {
        LearnRates::new(MIN, 86_400_000, 14 * 86_400_000)
    }

    /// Monday 2018-09-24 00:00 UTC.
    const START: i64 = 1_537_747_200_000;

    /// A baseline that learned three days at 10 per window, except the
    /// hour 10:00-11:00 UTC at `value`; and that hour's start on day 4.
    fn one_odd_hour(value: f64) -> (Baseline, i64) {
        let b = trained(3, |t| {
            if (t - START).rem_euclid(86_400_000) / 3_600_000 == 10 {
                value
            } else {
                10.0
            }
        });
        (b, START + 3 * 86_400_000 + 10 * 3_600_000)
    }

    /// A baseline that learned `days` of 1-minute windows of `truth`.
    fn trained(days: i64, truth: impl Fn(i64) -> f64) -> Baseline {
        let mut b = Baseline::new();
        for w in 0..days * 1440 {
            let t = START + w * MIN;
            b.learn(slot_of(t), truth(t), None, &rates());
        }
        b
    }

    #[test]
    fn slots_start_on_monday() {
        // 2018-09-24 was a Monday.
        assert_eq!(slot_of(1_537_747_200_000), 0);
        assert_eq!(slot_of(1_537_747_200_000 + 25 * 3_600_000), 25);
        assert_eq!(slot_of(1_537_747_200_000 + 7 * 86_400_000), 0);
    }

    #[test]
    fn learns_a_daily_cycle_within_a_day() {
        let mut b = Baseline::new();
        let r = rates();
        let start = 1_537_747_200_000;
        let truth = |t: i64| {
            10.0 + 8.0 * ((t / 3_600_000 % 24) as f64 / 24.0 * std::f64::consts::TAU).sin()
        };
        for w in 0..2 * 1440 {
            let t = start + w * MIN;
            b.learn(slot_of(t), truth(t), None, &r);
        }
        for h in [2, 6, 12, 18] {
            let t = start + 2 * 86_400_000 + h * 3_600_000 + 30 * MIN;
            let e = b.expected(slot_of(t), None, &r);
            assert!(
                (e / truth(t) - 1.0).abs() < 0.15,
                "hour {h}: expected {e}, truth {}",
                truth(t)
            );
        }
        assert!(b.memory_bytes() < 1024, "{}", b.memory_bytes());
    }

    #[test]
    fn a_series_first_hours_are_expected_right_a_week_later() {
        // A quiet series (nights at 1 a window, days at 4) in whole
        // reports, from a Monday's midnight: its first windows move the
        // level by a lot, and the hours learned against the level as it
        // stood must keep their counts as it settles.
        let truth = |t: i64| {
            let hour = (t - START).rem_euclid(86_400_000) / 3_600_000;
            if (7..23).contains(&hour) {
                4.0
            } else {
                1.0
            }
        };
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut noisy = |t: i64| {
            // Counts of mean `truth`: uniform from 0 to twice it, rounded
            // (xorshift).
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (truth(t) * 2.0 * (state % 1000) as f64 / 1000.0).round()
        };
        let mut b = Baseline::new();
        let r = rates();
        for w in 0..7 * 1440 {
            let t = START + w * MIN;
            b.learn(slot_of(t), noisy(t), None, &r);
        }
        for hour in [0, 2, 5, 12] {
            let t = START + 7 * 86_400_000 + hour * 3_600_000 + 30 * MIN;
            let e = b.expected_at(WeekPos::of(t, MIN), None, &r);
            assert!(
                (e / truth(t) - 1.0).abs() < 0.15,
                "hour {hour}: expected {e}, truth {}",
                truth(t)
            );
        }
    }

    #[test]
    fn a_smooth_day_is_followed_within_the_hour() {
        // A day that rises steadily: an hour's own value is its mean, so
        // its first and last minutes are off by half the hour's rise; the
        // line through the hours' middles is not, and it keeps each
        // hour's mean.
        let r = rates();
        let truth = |t: i64| 10.0 + (t - START).rem_euclid(86_400_000) as f64 / 3_600_000.0;
        let b = trained(3, truth);
        let day = START + 3 * 86_400_000;
        let (mut sum, mut flat_err, mut line_err) = (0.0, 0.0f64, 0.0f64);
        for m in 0..60 {
            let t = day + 12 * 3_600_000 + m * MIN;
            let line = b.expected_at(WeekPos::of(t, MIN), None, &r);
            let flat = b.expected(slot_of(t), None, &r);
            sum += line;
            flat_err = flat_err.max((flat - truth(t + MIN / 2)).abs());
            line_err = line_err.max((line - truth(t + MIN / 2)).abs());
        }
        assert!(flat_err > 0.4, "the flat hour misses its edges: {flat_err}");
        assert!(
            line_err < flat_err / 2.0,
            "the line follows them: {line_err} vs {flat_err}"
        );
        let mean = b.expected(slot_of(day + 12 * 3_600_000), None, &r);
        assert!((sum / 60.0 - mean).abs() < 0.05, "{} vs {mean}", sum / 60.0);
    }

    #[test]
    fn an_hour_below_both_neighbours_is_not_expected_lower_still() {
        // One quiet hour at 2 between hours at 10: keeping the hour's mean
        // on the line would expect less than nothing in its middle.
        let r = rates();
        let (b, ten) = one_odd_hour(2.0);
        let own = b.expected(slot_of(ten), None, &r);
        for m in 0..60 {
            let e = b.expected_at(WeekPos::of(ten + m * MIN, MIN), None, &r);
            assert!(e >= own - 1e-9, "minute {m}: {e} below the hour's {own}");
        }
    }

    #[test]
    fn an_hour_long_window_is_expected_at_its_hours_value() {
        let r = rates();
        let b = trained(3, |t| {
            10.0 + 5.0
                * ((t - START).rem_euclid(86_400_000) as f64 / 86_400_000.0 * std::f64::consts::TAU)
                    .sin()
        });
        for h in [3, 9, 15, 21] {
            let t = START + 3 * 86_400_000 + h * 3_600_000;
            let hour = b.expected_at(WeekPos::of(t, 3_600_000), None, &r);
            let own = b.expected(slot_of(t), None, &r);
            assert!((hour - own).abs() < 1e-9, "hour {h}: {hour} vs {own}");
        }
    }

    #[test]
    fn an_hour_unlike_its_neighbours_keeps_its_own_value() {
        // One hour at 14 between hours at 10 (a broadcast): over the
        // hour the expectation still averages 14, and its middle is the
        // highest.
        let r = rates();
        let (b, ten) = one_odd_hour(14.0);
        let at = |m: i64| b.expected_at(WeekPos::of(ten + m * MIN, MIN), None, &r);
        let mean = (0..60).map(at).sum::<f64>() / 60.0;
        let own = b.expected(slot_of(ten), None, &r);
        assert!((mean - own).abs() < 0.05, "{mean} vs {own}");
        assert!(
            at(30) > at(0) && at(30) > at(59),
            "{} {} {}",
            at(0),
            at(30),
            at(59)
        );
        assert!(
            at(0) > 12.0,
            "most of the hour's own value at its edge: {}",
            at(0)
        );
    }

    #[test]
    fn one_odd_hour_does_not_define_its_slot() {
        let mut b = Baseline::new();
        let r = rates();
        let start = 1_537_747_200_000;
        for w in 0..3 * 1440 {
            b.learn(slot_of(start + w * MIN), 10.0, None, &r);
        }
        // Day 4, 10:00: twenty minutes at 40 (a rise nobody flagged) teach
        // a slot that has never been seen before.
        let ten = start + 3 * 86_400_000 + 10 * 3_600_000;
        for m in 0..20 {
            b.learn(slot_of(ten + m * MIN), 40.0, None, &r);
        }
        let e = b.expected(slot_of(ten + 30 * MIN), None, &r);
        // A third of an hour's visit is weighed against ±10 % week to
        // week and ±20 % between days: the other days keep most weight.
        assert!(e < 30.0, "the same hour on other days still counts: {e}");
        // Four weeks of visits later the slot stands on its own.
        for week in 1..=4 {
            for m in 0..60 {
                b.learn(
                    slot_of(ten + week * 7 * 86_400_000 + m * MIN),
                    40.0,
                    None,
                    &r,
                );
            }
        }
        let e = b.expected(slot_of(ten + 5 * 7 * 86_400_000), None, &r);
        assert!(e > 30.0, "{e}");
    }

    #[test]
    fn a_quiet_series_trusts_its_own_day_after_two_days() {
        // 0.2 reports a minute on average, busy from 10:00 to 16:00; the
        // borrowed day (the worldwide series', in another time zone) is
        // busy at night. Two days are 576 reports, short of the mass.
        let r = rates();
        let start = 1_537_747_200_000; // a Monday
        let busy = |t: i64| (10..16).contains(&((t / 3_600_000) % 24));
        let mut b = Baseline::new();
        let noon = slot_of(start + 2 * 86_400_000 + 12 * 3_600_000);
        let mut before = None;
        for w in 0..(5 * 1440 / 2) {
            if w == 3 * 1440 / 2 {
                before = Some(b.shape_in_use(noon, Some(0.5), &r));
            }
            let t = start + w * MIN;
            let borrowed = if busy(t) { 0.5 } else { 1.5 };
            b.learn(
                slot_of(t),
                if busy(t) { 0.5 } else { 0.1 },
                Some(borrowed),
                &r,
            );
        }
        // A day and a half in: still the borrowed day.
        assert_eq!(before, Some(0.5));
        // Two and a half: its own (noon at 2.5 times its level, where the
        // borrowed day said half of it).
        assert!(b.profile_learned(&r));
        let own = b.shape_in_use(noon, Some(0.5), &r);
        assert!(own > 1.5, "{own}");
    }

    #[test]
    fn a_busy_hour_seen_once_is_trusted_more_than_a_quiet_one() {
        // Weekdays at 1.0, then one Saturday at 1.3: a series of 100 per
        // window knows its Saturday hour after one visit; one of 0.2 per
        // window still leans on the weekdays.
        let r = rates();
        let start = 1_537_747_200_000; // a Monday
        let mut shapes = Vec::new();
        for level in [100.0, 0.2] {
            let mut b = Baseline::new();
            for w in 0..6 * 1440 {
                let t = start + w * MIN;
                let sat = (5 * 1440..6 * 1440).contains(&w);
                b.learn(slot_of(t), level * if sat { 1.3 } else { 1.0 }, None, &r);
            }
            let sat_noon = slot_of(start + 5 * 86_400_000 + 12 * 3_600_000);
            let (shape, variance) = b.blend(sat_noon, &r).unwrap();
            let weekday = b.blend(slot_of(start + 12 * 3_600_000), &r).unwrap().0;
            shapes.push((shape / weekday, variance));
        }
        let (busy, quiet) = (shapes[0], shapes[1]);
        assert!(busy.0 > 1.1 && busy.0 > quiet.0 + 0.05, "{shapes:?}");
        assert!(
            busy.1 < quiet.1 && busy.1 < UNSEEN_SLOT_VARIANCE / 2.0,
            "{shapes:?}"
        );
    }

    /// Uncertainty of an unseen Friday noon and an unseen Saturday noon
    /// after Monday to Thursday at 50 per window, each day scaled by its
    /// factor.
    fn after_four_weekdays(factors: [f64; 4]) -> (f64, f64) {
        let r = rates();
        let start = 1_537_747_200_000; // a Monday
        let mut b = Baseline::new();
        for w in 0..4 * 1440 {
            let t = start + w * MIN;
            b.learn(slot_of(t), 50.0 * factors[(w / 1440) as usize], None, &r);
        }
        let noon = |day: i64| slot_of(start + day * 86_400_000 + 12 * 3_600_000);
        (
            b.slot_uncertainty(noon(4), &r),
            b.slot_uncertainty(noon(5), &r),
        )
    }

    #[test]
    fn days_that_agree_make_an_unseen_hour_of_their_kind_trusted_more() {
        let (friday, saturday) = after_four_weekdays([1.0, 1.02, 0.98, 1.01]);
        assert!(friday < UNSEEN_SLOT_VARIANCE / 4.0, "{friday}");
        // The first Saturday: weekdays say nothing of how weekends differ.
        assert!(saturday >= UNSEEN_SLOT_VARIANCE, "{saturday}");
    }

    #[test]
    fn an_hour_no_day_has_seen_is_as_unsure_as_the_day_swings() {
        // Two days with the hour 15:00-16:00 never learned (it was
        // suspect, or the feed had a gap). A flat day: the level is a
        // good guess for it. A day that swings between 2 and 8 per
        // window: the hour could be anywhere in that range.
        let r = rates();
        let skip = |t: i64| (t - START).rem_euclid(86_400_000) / 3_600_000 == 15;
        let learn = |truth: &dyn Fn(i64) -> f64| {
            let mut b = Baseline::new();
            for w in 0..2 * 1440 {
                let t = START + w * MIN;
                if !skip(t) {
                    b.learn(slot_of(t), truth(t), None, &r);
                }
            }
            b
        };
        let hour = |t: i64| (t - START).rem_euclid(86_400_000) / 3_600_000;
        let flat = learn(&|_| 5.0);
        let swing = learn(&|t| if (8..20).contains(&hour(t)) { 8.0 } else { 2.0 });
        let at = slot_of(START + 2 * 86_400_000 + 15 * 3_600_000);
        assert!(flat.shape(at, &r).is_none() && swing.shape(at, &r).is_none());
        let flat_u = flat.slot_uncertainty(at, &r);
        let swing_u = swing.slot_uncertainty(at, &r);
        assert_eq!(flat_u, UNSEEN_SLOT_VARIANCE);
        // The guess is the level, and the hours seen are far from it
        // (the level follows the latest windows, the night's): the guess
        // is as far off as they are, on average.
        let seen: Vec<f64> = (0..24)
            .filter_map(|h| swing.shape(slot_of(START + 86_400_000 + h * 3_600_000), &r))
            .collect();
        let square = seen.iter().map(|m| (m - 1.0).powi(2)).sum::<f64>() / seen.len() as f64;
        assert_eq!(seen.len(), 23);
        assert!(
            square > 1.0 && (swing_u / square - 1.0).abs() < 1e-6,
            "{swing_u} {square}"
        );
    }

    #[test]
    fn days_that_differ_keep_the_prior_for_an_unseen_hour() {
        let (friday, _) = after_four_weekdays([1.0, 1.5, 0.7, 1.3]);
        assert!(friday >= UNSEEN_SLOT_VARIANCE, "{friday}");
    }

    #[test]
    fn an_hours_first_windows_do_not_undo_what_the_days_said() {
        // Monday to Thursday agree; Friday noon is unseen and trusted
        // as they agree. Then its first five windows, at 1.8× (the start
        // of a rise nobody flagged yet), are learned: the hour must stay
        // about as trusted, and be moved little, not be left to five
        // windows weighed against a ±20 % prior.
        let r = rates();
        let start = 1_537_747_200_000; // a Monday
        let mut b = Baseline::new();
        for w in 0..4 * 1440 {
            b.learn(slot_of(start + w * MIN), 50.0, None, &r);
        }
        let noon = start + 4 * 86_400_000 + 12 * 3_600_000;
        let before = b.slot_uncertainty(slot_of(noon), &r);
        let expected = b.expected(slot_of(noon), None, &r);
        for m in 0..5 {
            b.learn(slot_of(noon + m * MIN), 90.0, None, &r);
        }
        let after = b.slot_uncertainty(slot_of(noon), &r);
        assert!(before < UNSEEN_SLOT_VARIANCE / 4.0, "{before}");
        assert!(after < 2.0 * before, "{before} -> {after}");
        let moved = b.expected(slot_of(noon + 5 * MIN), None, &r) / expected;
        assert!(moved < 1.1, "{moved}");
    }

    #[test]
    fn an_unseen_day_is_guessed_from_the_days_of_its_kind() {
        // Tuesday to Friday at 50 per window, Saturday at 65: the first
        // Sunday is guessed from Saturday, the first Monday from the
        // weekdays (all days together would guess both at 1.06).
        let r = rates();
        let start = 1_537_747_200_000 + 86_400_000; // a Tuesday
        let mut b = Baseline::new();
        for w in 0..5 * 1440 {
            let t = start + w * MIN;
            let sat = w >= 4 * 1440;
            b.learn(slot_of(t), if sat { 65.0 } else { 50.0 }, None, &r);
        }
        let noon = |day: i64| slot_of(start + day * 86_400_000 + 12 * 3_600_000);
        let weekday = b.blend(noon(1), &r).unwrap().0;
        let (sunday, sunday_var) = b.blend(noon(5), &r).unwrap();
        let (monday, monday_var) = b.blend(noon(6), &r).unwrap();
        assert!(sunday / weekday > 1.15, "{}", sunday / weekday);
        assert!(
            (monday / weekday - 1.0).abs() < 0.02,
            "{}",
            monday / weekday
        );
        // Each as trusted as its own kind has shown: one Saturday is
        // little to go on, four weekdays that agree are much.
        assert!(monday_var < UNSEEN_SLOT_VARIANCE / 4.0, "{monday_var}");
        assert!(monday_var < sunday_var, "{monday_var} {sunday_var}");
    }

    #[test]
    fn a_first_weekend_hour_is_less_sure_where_the_weekdays_rise_or_fall() {
        // Five weekdays whose evening ends steeply at 22:00 (60, 30, then
        // 8 through the night). The first Saturday's midnight is guessed
        // from the weekdays' midnight, but a weekend evening that ends an
        // hour or two later is several times it: the guess is that much
        // less sure. Its noon, where the weekdays are flat, is not.
        let r = rates();
        let start = 1_537_747_200_000; // a Monday
        let hourly = |h: i64| match h {
            18..=21 => 60.0,
            22 => 30.0,
            23 | 0..=6 => 8.0,
            _ => 40.0,
        };
        let mut b = Baseline::new();
        for w in 0..5 * 1440 {
            let t = start + w * MIN;
            b.learn(slot_of(t), hourly(w / 60 % 24), None, &r);
        }
        let saturday = |h: i64| slot_of(start + 5 * 86_400_000 + h * 3_600_000);
        let midnight = b.slot_uncertainty(saturday(0), &r);
        let noon = b.slot_uncertainty(saturday(12), &r);
        assert!(noon < 1.5 * UNSEEN_SLOT_VARIANCE, "{noon}");
        assert!(midnight > 2.0 * noon, "{midnight} vs {noon}");
        // A weekday's hour, guessed from the days of its kind, is not
        // touched: a Friday's midnight after four weekdays that agree.
        let mut b = Baseline::new();
        for w in 0..4 * 1440 {
            let t = start + w * MIN;
            b.learn(slot_of(t), hourly(w / 60 % 24), None, &r);
        }
        let friday = b.slot_uncertainty(slot_of(start + 4 * 86_400_000), &r);
        assert!(friday < UNSEEN_SLOT_VARIANCE / 4.0, "{friday}");
    }

    #[test]
    fn a_first_sunday_is_less_sure_where_saturday_rises_or_falls() {
        // Six days: weekdays flat at 40; Saturday the same but with a
        // morning that rises steeply from 04:00 (8, then 20, then 40).
        // The first Sunday's 04:00 is guessed from Saturday's, and a
        // Sunday that rises an hour or two earlier or later is several
        // times it: that guess is less sure than its noon, where Saturday
        // is flat.
        let r = rates();
        let start = 1_537_747_200_000; // a Monday
        let hourly = |day: i64, h: i64| match (day, h) {
            (5, 0..=3) => 8.0,
            (5, 4) => 20.0,
            _ => 40.0,
        };
        let mut b = Baseline::new();
        for w in 0..6 * 1440 {
            let t = start + w * MIN;
            b.learn(slot_of(t), hourly(w / 1440, w / 60 % 24), None, &r);
        }
        let sunday = |h: i64| slot_of(start + 6 * 86_400_000 + h * 3_600_000);
        let dawn = b.slot_uncertainty(sunday(4), &r);
        let noon = b.slot_uncertainty(sunday(12), &r);
        assert!(dawn > 2.0 * noon, "{dawn} vs {noon}");
        assert!(noon < UNSEEN_SLOT_VARIANCE, "{noon}");
    }

    #[test]
    fn follows_slow_growth() {
        let mut b = Baseline::new();
        let r = rates();
        let start = 1_537_747_200_000;
        let weeks = 3;
        for w in 0..weeks * 7 * 1440 {
            let growth = 1.0 + 0.3 * w as f64 / (7.0 * 1440.0);
            b.learn(slot_of(start + w * MIN), 20.0 * growth, None, &r);
        }
        let now = 20.0 * (1.0 + 0.3 * weeks as f64);
        let e = b.expected(slot_of(start + weeks * 7 * 1440 * MIN), None, &r);
        assert!((e / now - 1.0).abs() < 0.08, "expected {e} vs {now}");
    }
}
