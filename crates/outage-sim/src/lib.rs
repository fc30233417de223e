//! outage-sim: a deterministic, seeded generator of problem-report streams
//! with ground truth, so detection quality is measured, not guessed.
//!
//! A [`Scenario`] (TOML, see `deploy/scenarios/`) names services, regions
//! with their volumes and UTC offsets, and injected events: outages that
//! fan out across regions, spam bursts, slow drift, data gaps, quiet
//! holidays. [`generate`] writes reports in arrival order (with jitter,
//! late arrivals and malformed lines) and returns the [`Truth`]. The same
//! scenario and seed always give the same bytes.

pub mod family;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};
use std::time::Duration;

use chrono::{DateTime, Datelike, Timelike};
use outage_detect::time::{format_rfc3339_ms as rfc3339, parse_rfc3339_ms};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, Poisson};
use serde::{Deserialize, Serialize};

const MIN: i64 = 60_000;

/// Why a scenario cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Not TOML of the scenario format.
    #[error("cannot parse scenario: {0}")]
    Parse(#[from] toml::de::Error),
    /// Well-formed but impossible (the message says which field and why).
    #[error("{0}")]
    Invalid(String),
}

fn default_dispersion() -> f64 {
    0.03
}
fn default_reporters() -> u64 {
    2_000_000
}
fn default_jitter() -> Duration {
    Duration::from_secs(5)
}

/// A scenario file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Scenario name (reported in the truth file).
    pub name: String,
    /// What it shows, for people.
    #[serde(default)]
    pub description: String,
    /// Seed of every random choice.
    pub seed: u64,
    /// RFC 3339 start of the generated stream.
    pub start: String,
    /// Length of the stream.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Reports arrive up to this long after their `ts` (out of order).
    #[serde(default = "default_jitter", with = "humantime_serde")]
    pub jitter: Duration,
    /// Fraction of reports that arrive 1–5 minutes late.
    #[serde(default)]
    pub late_fraction: f64,
    /// Extra malformed lines, as a fraction of reports.
    #[serde(default)]
    pub malformed_fraction: f64,
    /// Extra reports from devices with broken clocks, as a fraction of
    /// reports: dated 80 years, 1 year, 1 hour or 4 minutes ahead, or 5
    /// years behind. No detector should count them as an outage.
    #[serde(default)]
    pub outlier_fraction: f64,
    /// Services reporting in every region.
    pub services: Vec<ServiceSpec>,
    /// Regions, with their share of the volume and time zone.
    pub regions: Vec<RegionSpec>,
    /// Injected outages, spam, clock shifts, drift, gaps and holidays.
    #[serde(default)]
    pub events: Vec<EventSpec>,
}

/// One service of a scenario.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Service slug as it appears in reports.
    pub name: String,
    /// Worldwide reports per minute on an average hour.
    pub rate_per_minute: f64,
    /// Negative-binomial over-dispersion of the counts (0 = Poisson).
    #[serde(default = "default_dispersion")]
    pub dispersion: f64,
    /// Distinct reporters the reports are drawn from.
    #[serde(default = "default_reporters")]
    pub reporters: u64,
}

/// One region of a scenario.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    /// ISO 3166-1 alpha-2 (or ISO 3166-2) code.
    pub code: String,
    /// Relative volume.
    pub weight: f64,
    /// Local standard time offset from UTC, hours; the country's daylight
    /// saving time is added on its real dates (see `outage_detect::tz`).
    pub utc_offset: f64,
}

/// When an event reaches one region.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegionDelay {
    /// Region code (one of the scenario's regions).
    pub region: String,
    /// Delay after the event's start.
    #[serde(with = "humantime_serde")]
    pub after: Duration,
}

/// An injected event.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EventSpec {
    /// Reports × `multiplier` in each region from its start for `duration`,
    /// in the given `shape`.
    Outage {
        /// Affected service.
        service: String,
        /// RFC 3339 start.
        start: String,
        /// How long the raised volume lasts.
        #[serde(with = "humantime_serde")]
        duration: Duration,
        /// Volume at the peak, as a multiple of normal.
        multiplier: f64,
        /// Regions it reaches, each after its delay.
        regions: Vec<RegionDelay>,
        /// The problem the extra reports name (default: that of normal reports).
        #[serde(default)]
        problem: Option<String>,
        /// `step` (default), `ramp` (rising to `multiplier` over `period`)
        /// or `flap` (on and off, `period` each).
        #[serde(default)]
        shape: Shape,
        /// Ramp length, or the length of each on and off phase of a flap.
        #[serde(default, with = "humantime_serde")]
        period: Duration,
    },
    /// A region's clocks move by `shift_hours`, on top of its country's
    /// own daylight saving time (which the simulator applies on its real
    /// dates): a change no time-zone database knows about.
    Dst {
        /// Region whose clocks move.
        region: String,
        /// RFC 3339 moment of the shift.
        start: String,
        /// Hours the local clock moves (+1 at the spring change).
        shift_hours: f64,
    },
    /// A few reporters sending many reports.
    Spam {
        /// Service the spam names.
        service: String,
        /// Region it comes from.
        region: String,
        /// RFC 3339 start.
        start: String,
        /// How long it lasts.
        #[serde(with = "humantime_serde")]
        duration: Duration,
        /// Distinct reporters sending it.
        reporters: u32,
        /// Spam reports per minute, in all.
        per_minute: f64,
    },
    /// The service's volume grows by `growth_per_week` (0.3 = +30 %/week).
    Drift {
        /// Service whose volume drifts.
        service: String,
        /// RFC 3339 start of the drift.
        start: String,
        /// Relative growth per week.
        growth_per_week: f64,
    },
    /// No reports at all (an upstream pipeline stall).
    Gap {
        /// RFC 3339 start of the gap.
        start: String,
        /// How long no report arrives.
        #[serde(with = "humantime_serde")]
        duration: Duration,
    },
    /// A region's volume × `factor` (a quiet holiday).
    Holiday {
        /// Region on holiday.
        region: String,
        /// RFC 3339 start.
        start: String,
        /// How long it lasts.
        #[serde(with = "humantime_serde")]
        duration: Duration,
        /// Volume multiplier while it lasts (below 1).
        factor: f64,
    },
}

/// How an outage's excess develops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// The full multiplier from the start.
    #[default]
    Step,
    /// Rising linearly to the multiplier over `period`.
    Ramp,
    /// On and off, `period` each.
    Flap,
}

impl Shape {
    /// The name used in scenario files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Step => "step",
            Shape::Ramp => "ramp",
            Shape::Flap => "flap",
        }
    }

    /// Fraction of the multiplier's excess in effect `since_ms` after a
    /// region's start (whole minutes).
    fn factor(self, period: Duration, since_ms: i64) -> f64 {
        let period = period.as_millis() as i64;
        match self {
            _ if period <= 0 => 1.0,
            Shape::Step => 1.0,
            Shape::Ramp => ((since_ms + MIN) as f64 / period as f64).min(1.0),
            Shape::Flap => {
                if (since_ms / period) % 2 == 0 {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }
}

/// Reports above expectation in a window (minute) from which an outage can
/// be seen at all, and in all, for it to count in recall.
pub const DETECTABLE_PEAK: f64 = 4.0;
/// Excess reports over the whole outage below which it is not counted in
/// recall (see [`DETECTABLE_PEAK`]).
pub const DETECTABLE_TOTAL: f64 = 40.0;

/// Ground truth of one event.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct TruthEvent {
    /// `outage`, `spam`, `dst`, `drift`, `gap` or `holiday`.
    pub kind: String,
    /// Service it concerns, if one.
    pub service: Option<String>,
    /// Per affected region: its true start (RFC 3339).
    pub regions: Vec<TruthRegion>,
    /// RFC 3339 start.
    pub start: String,
    /// RFC 3339 end.
    pub end: String,
    /// Whether a detector should raise an incident for it.
    pub expect_incident: bool,
    /// Whether a global incident is expected.
    pub expect_global: bool,
    /// Outages: multiplier, shape and length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub magnitude: Option<f64>,
    /// Outages: how the excess develops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Shape>,
    /// Outages: length in minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_minutes: Option<f64>,
}

/// Ground truth of one region of an event.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct TruthRegion {
    /// Region code.
    pub region: String,
    /// RFC 3339 start in this region.
    pub start: String,
    /// Outages: expected reports above normal over the whole outage, and
    /// the most in one minute.
    #[serde(default)]
    pub excess: f64,
    /// Most excess reports in one minute.
    #[serde(default)]
    pub peak_excess: f64,
    /// Normal reports per minute in this region at its start.
    #[serde(default)]
    pub base_per_minute: f64,
    /// At least [`DETECTABLE_TOTAL`] excess reports in all and
    /// [`DETECTABLE_PEAK`] in some minute: counted in recall.
    #[serde(default = "yes")]
    pub detectable: bool,
    /// The first minute whose excess reaches [`DETECTABLE_PEAK`]: before
    /// it no detector can know; delays are counted from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_at: Option<String>,
}

fn yes() -> bool {
    true
}

/// Ground truth of a generated stream.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Truth {
    /// Scenario name.
    pub scenario: String,
    /// RFC 3339 start of the stream.
    pub start: String,
    /// RFC 3339 end of the stream.
    pub end: String,
    /// Region series (services × regions), for false incidents per
    /// series-month.
    #[serde(default)]
    pub series: usize,
    /// Every injected event with what a detector should do about it.
    pub events: Vec<TruthEvent>,
}

/// What [`generate`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Generated {
    /// Reports written.
    pub reports: u64,
    /// Malformed lines written.
    pub malformed: u64,
    /// Reports written late (after later ones).
    pub late: u64,
    /// Reports dated by a broken clock (see `outlier_fraction`).
    pub outliers: u64,
}

fn parse_time(text: &str, what: &str) -> Result<i64, ScenarioError> {
    parse_rfc3339_ms(text)
        .ok_or_else(|| ScenarioError::Invalid(format!("{what}: {text:?} is not RFC 3339")))
}

/// Scenarios shipped in `deploy/scenarios/`, by name.
pub const BUILTIN: [(&str, &str); 2] = [
    (
        "alexa-2018",
        include_str!("../../../deploy/scenarios/alexa-2018.toml"),
    ),
    (
        "quiet-month",
        include_str!("../../../deploy/scenarios/quiet-month.toml"),
    ),
];

impl Scenario {
    /// Parses and validates a scenario file.
    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text)?;
        s.validate()?;
        Ok(s)
    }

    /// A built-in scenario by name: one of [`BUILTIN`], or a randomized
    /// family `family:KIND:SEED` (see [`family`]).
    pub fn builtin(name: &str) -> Option<Scenario> {
        if let Some(rest) = name.strip_prefix("family:") {
            let (kind, seed) = rest.split_once(':')?;
            return family::family(kind, seed.parse().ok()?);
        }
        BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, text)| {
            Scenario::from_toml(text).expect("built-in scenarios are valid (tested)")
        })
    }

    /// Checks what the format cannot: times, regions, rates, events.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError::Invalid(m));
        parse_time(&self.start, "start")?;
        if self.services.is_empty() || self.regions.is_empty() {
            return bad("a scenario needs at least one service and one region".into());
        }
        for r in &self.regions {
            if outage_detect::Region::parse(&r.code).is_none() || r.weight <= 0.0 {
                return bad(format!(
                    "region {:?}: needs an ISO 3166 code and a positive weight",
                    r.code
                ));
            }
        }
        for s in &self.services {
            if !outage_detect::decode::is_service_slug(&s.name) || s.rate_per_minute <= 0.0 {
                return bad(format!(
                    "service {:?}: needs a slug name and a positive rate",
                    s.name
                ));
            }
        }
        let known_service = |n: &str| self.services.iter().any(|s| s.name == n);
        let known_region = |c: &str| self.regions.iter().any(|r| r.code == c);
        for e in &self.events {
            match e {
                EventSpec::Outage {
                    service,
                    start,
                    regions,
                    ..
                } => {
                    parse_time(start, "outage start")?;
                    if !known_service(service) || regions.iter().any(|r| !known_region(&r.region)) {
                        return bad(format!("outage of {service:?}: unknown service or region"));
                    }
                }
                EventSpec::Spam {
                    service,
                    region,
                    start,
                    ..
                } => {
                    parse_time(start, "spam start")?;
                    if !known_service(service) || !known_region(region) {
                        return bad(format!("spam on {service:?}: unknown service or region"));
                    }
                }
                EventSpec::Drift { service, start, .. } => {
                    parse_time(start, "drift start")?;
                    if !known_service(service) {
                        return bad(format!("drift of {service:?}: unknown service"));
                    }
                }
                EventSpec::Gap { start, .. } => {
                    parse_time(start, "gap start")?;
                }
                EventSpec::Dst { region, start, .. } => {
                    parse_time(start, "dst start")?;
                    if !known_region(region) {
                        return bad(format!("dst in {region:?}: unknown region"));
                    }
                }
                EventSpec::Holiday { region, start, .. } => {
                    parse_time(start, "holiday start")?;
                    if !known_region(region) {
                        return bad(format!("holiday in {region:?}: unknown region"));
                    }
                }
            }
        }
        Ok(())
    }

    /// The ground truth of this scenario.
    pub fn truth(&self) -> Truth {
        let start = parse_time(&self.start, "start").expect("validated");
        let end = start + self.duration.as_millis() as i64;
        let times = self.event_times();
        let events = self
            .events
            .iter()
            .map(|e| match e {
                EventSpec::Outage {
                    service,
                    start,
                    duration,
                    regions,
                    multiplier,
                    shape,
                    ..
                } => {
                    let s = parse_time(start, "").expect("validated");
                    let stop = (s + duration.as_millis() as i64).min(end);
                    let svc = self
                        .services
                        .iter()
                        .find(|x| &x.name == service)
                        .expect("validated");
                    TruthEvent {
                        kind: "outage".into(),
                        service: Some(service.clone()),
                        regions: regions
                            .iter()
                            .map(|r| {
                                let rs = s + r.after.as_millis() as i64;
                                let region = self
                                    .regions
                                    .iter()
                                    .find(|x| x.code == r.region)
                                    .expect("validated");
                                let (mut excess, mut peak, mut floor) = (0.0, 0.0f64, None);
                                let mut t = rs;
                                while t < stop {
                                    if !self.in_gap(&times, t) {
                                        let rate = self.rate(&times, svc, region, t);
                                        let x = rate.base * (rate.multiplier - 1.0);
                                        excess += x;
                                        peak = peak.max(x);
                                        if floor.is_none() && x >= DETECTABLE_PEAK {
                                            floor = Some(t);
                                        }
                                    }
                                    t += MIN;
                                }
                                TruthRegion {
                                    region: r.region.clone(),
                                    start: rfc3339(rs),
                                    excess: (excess * 10.0).round() / 10.0,
                                    peak_excess: (peak * 100.0).round() / 100.0,
                                    base_per_minute: (self.rate(&times, svc, region, rs).base
                                        * 1000.0)
                                        .round()
                                        / 1000.0,
                                    detectable: excess >= DETECTABLE_TOTAL
                                        && peak >= DETECTABLE_PEAK,
                                    floor_at: floor.map(rfc3339),
                                }
                            })
                            .collect(),
                        start: rfc3339(s),
                        end: rfc3339(s + duration.as_millis() as i64),
                        expect_incident: true,
                        expect_global: regions.len() >= 3,
                        magnitude: Some(*multiplier),
                        shape: Some(*shape),
                        duration_minutes: Some(duration.as_secs_f64() / 60.0),
                    }
                }
                EventSpec::Spam {
                    service,
                    region,
                    start,
                    duration,
                    ..
                } => plain("spam", Some(service), Some(region), start, *duration),
                EventSpec::Drift { service, start, .. } => plain(
                    "drift",
                    Some(service),
                    None,
                    start,
                    Duration::from_millis(
                        (end - parse_time(start, "").expect("validated")).max(0) as u64
                    ),
                ),
                EventSpec::Gap { start, duration } => plain("gap", None, None, start, *duration),
                EventSpec::Holiday {
                    region,
                    start,
                    duration,
                    ..
                } => plain("holiday", None, Some(region), start, *duration),
                EventSpec::Dst { region, start, .. } => plain(
                    "dst",
                    None,
                    Some(region),
                    start,
                    Duration::from_secs(86_400),
                ),
            })
            .collect();
        Truth {
            scenario: self.name.clone(),
            start: rfc3339(start),
            end: rfc3339(end),
            series: self.services.len() * self.regions.len(),
            events,
        }
    }

    /// Normal reports per minute of every service in every region, minute
    /// by minute from the start (one row per service and region,
    /// service-major, as [`Scenario::services`] × [`Scenario::regions`]):
    /// the rate before the count's noise and without outages, with drift,
    /// daylight saving and holidays as they are. What a detector that knew
    /// the scenario would expect (the yardstick of `examples/oracle.rs`).
    pub fn normal_rates(&self) -> Vec<Vec<f64>> {
        let start = parse_time(&self.start, "start").expect("validated");
        let minutes = (self.duration.as_millis() as i64 / MIN).max(0);
        let times = self.event_times();
        let mut rows = Vec::with_capacity(self.services.len() * self.regions.len());
        for svc in &self.services {
            for region in &self.regions {
                rows.push(
                    (0..minutes)
                        .map(|m| self.rate(&times, svc, region, start + m * MIN).base)
                        .collect(),
                );
            }
        }
        rows
    }

    fn event_times(&self) -> Vec<(i64, &EventSpec)> {
        self.events
            .iter()
            .map(|e| {
                let s = match e {
                    EventSpec::Outage { start, .. }
                    | EventSpec::Spam { start, .. }
                    | EventSpec::Drift { start, .. }
                    | EventSpec::Gap { start, .. }
                    | EventSpec::Holiday { start, .. }
                    | EventSpec::Dst { start, .. } => start,
                };
                (parse_time(s, "").expect("validated"), e)
            })
            .collect()
    }

    fn in_gap(&self, times: &[(i64, &EventSpec)], t: i64) -> bool {
        times
            .iter()
            .any(|(s, e)| matches!(e, EventSpec::Gap { duration, .. } if within(t, *s, duration)))
    }

    /// Mean reports per minute of one service in one region at minute `t`,
    /// before the count's own noise: the normal rate and the outage
    /// multiplier in effect.
    fn rate(
        &self,
        times: &[(i64, &EventSpec)],
        svc: &ServiceSpec,
        region: &RegionSpec,
        t: i64,
    ) -> Rate {
        let total_weight: f64 = self.regions.iter().map(|r| r.weight).sum();
        let mut drift = 1.0;
        let mut offset = region.utc_offset;
        let mut holiday = 1.0;
        let mut multiplier = 1.0;
        let mut problem = None;
        for (s, e) in times {
            match e {
                EventSpec::Drift {
                    service,
                    growth_per_week,
                    ..
                } if service == &svc.name && t >= *s => {
                    drift *= 1.0 + growth_per_week * (t - s) as f64 / (7.0 * 86_400_000.0);
                }
                EventSpec::Dst {
                    region: r,
                    shift_hours,
                    ..
                } if r == &region.code && t >= *s => offset += shift_hours,
                EventSpec::Holiday {
                    region: r,
                    duration,
                    factor,
                    ..
                } if r == &region.code && within(t, *s, duration) => holiday *= factor,
                EventSpec::Outage {
                    service,
                    duration,
                    multiplier: m,
                    regions,
                    problem: p,
                    shape,
                    period,
                    ..
                } if service == &svc.name => {
                    if let Some(rd) = regions.iter().find(|rd| rd.region == region.code) {
                        let rs = s + rd.after.as_millis() as i64;
                        if t >= rs && t < s + duration.as_millis() as i64 {
                            multiplier *= 1.0 + (m - 1.0) * shape.factor(*period, t - rs);
                            problem = p
                                .as_ref()
                                .and_then(|p| PROBLEMS.iter().position(|x| x == p));
                        }
                    }
                }
                _ => {}
            }
        }
        // The country's own daylight saving time, on its real dates.
        if let Some(zone) = outage_detect::region::Region::parse(&region.code)
            .and_then(|r| outage_detect::tz::Zone::of(r.country_code()))
        {
            offset += f64::from(u8::from(zone.daylight(t)));
        }
        let local =
            DateTime::from_timestamp_millis(t + (offset * 3_600_000.0) as i64).expect("in range");
        let hour = f64::from(local.hour()) + f64::from(local.minute()) / 60.0;
        let base = svc.rate_per_minute * region.weight / total_weight
            * diurnal(hour)
            * weekly(local.weekday().num_days_from_monday())
            * drift
            * holiday;
        Rate {
            base,
            multiplier,
            problem,
        }
    }
}

/// What [`Scenario::rate`] says of one minute.
struct Rate {
    base: f64,
    multiplier: f64,
    problem: Option<usize>,
}

fn within(t: i64, s: i64, d: &Duration) -> bool {
    t >= s && t < s + d.as_millis() as i64
}

fn plain(
    kind: &str,
    service: Option<&String>,
    region: Option<&String>,
    start: &str,
    duration: Duration,
) -> TruthEvent {
    let s = parse_time(start, "").expect("validated");
    TruthEvent {
        kind: kind.into(),
        service: service.cloned(),
        regions: region
            .map(|r| {
                vec![TruthRegion {
                    region: r.clone(),
                    start: rfc3339(s),
                    excess: 0.0,
                    peak_excess: 0.0,
                    base_per_minute: 0.0,
                    detectable: false,
                    floor_at: None,
                }]
            })
            .unwrap_or_default(),
        start: rfc3339(s),
        end: rfc3339(s + duration.as_millis() as i64),
        expect_incident: false,
        expect_global: false,
        magnitude: None,
        shape: None,
        duration_minutes: None,
    }
}

/// Daily shape in local time: quiet at 04:00, busiest in the evening; mean ≈ 1.
fn diurnal(local_hour: f64) -> f64 {
    1.0 + 0.75 * ((local_hour - 10.0) / 24.0 * std::f64::consts::TAU).sin()
}

/// Weekends are busier for consumer services.
fn weekly(weekday_from_monday: u32) -> f64 {
    if weekday_from_monday >= 5 {
        1.2
    } else {
        0.92
    }
}

const PROBLEMS: [&str; 8] = [
    "connectivity",
    "login",
    "app",
    "voice",
    "device",
    "outage",
    "payments",
    "other",
];
const SOURCES: [&str; 3] = ["web", "app", "twitter"];

/// Writes the scenario's reports, one JSON object per line in arrival
/// order, to `out`.
pub fn generate(scenario: &Scenario, out: &mut dyn Write) -> io::Result<Generated> {
    let mut rng = ChaCha8Rng::seed_from_u64(scenario.seed);
    let start = parse_time(&scenario.start, "start").expect("validated");
    let minutes = (scenario.duration.as_millis() as i64 / MIN).max(0);
    let jitter_ms = scenario.jitter.as_millis() as i64;
    let mut pending: BinaryHeap<Reverse<(i64, u64, String)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut stats = Generated::default();
    let times = scenario.event_times();
    const YEAR: i64 = 365 * 86_400_000;
    const CLOCK_ERRORS: [i64; 5] = [80 * YEAR, YEAR, 3_600_000, 240_000, -5 * YEAR];

    for m in 0..minutes {
        let t = start + m * MIN;
        if scenario.in_gap(&times, t) {
            continue;
        }
        for svc in &scenario.services {
            for region in &scenario.regions {
                let rate = scenario.rate(&times, svc, region, t);
                let lambda = rate.base * rate.multiplier;
                let problem_bias = rate.problem;
                // The extra reports name the outage's problem (seven in ten
                // of them; the others whatever people say); the usual
                // reports keep the usual mix.
                let named = 0.7 * (1.0 - 1.0 / rate.multiplier.max(1.0));
                let mean = if svc.dispersion > 0.0 {
                    let shape = 1.0 / svc.dispersion;
                    Gamma::new(shape, lambda / shape).map_or(lambda, |g| g.sample(&mut rng))
                } else {
                    lambda
                };
                let n = if mean > 0.0 {
                    Poisson::new(mean).map_or(0.0, |p| p.sample(&mut rng)) as u64
                } else {
                    0
                };
                for _ in 0..n {
                    let ts = t + rng.gen_range(0..MIN);
                    let problem = match problem_bias {
                        Some(p) if rng.gen_bool(named) => PROBLEMS[p],
                        _ => PROBLEMS[rng.gen_range(0..PROBLEMS.len())],
                    };
                    let line = format!(
                        r#"{{"service":"{}","region":"{}","ts":{},"problem":"{}","reporter":"r{:x}","source":"{}"}}"#,
                        svc.name,
                        region.code,
                        ts,
                        problem,
                        rng.gen_range(0..svc.reporters),
                        SOURCES[rng.gen_range(0..SOURCES.len())]
                    );
                    let delay = if rng.gen_bool(scenario.late_fraction.clamp(0.0, 1.0)) {
                        stats.late += 1;
                        rng.gen_range(MIN..5 * MIN)
                    } else {
                        rng.gen_range(0..=jitter_ms)
                    };
                    pending.push(Reverse((ts + delay, seq, line)));
                    seq += 1;
                    stats.reports += 1;
                    if rng.gen_bool(scenario.malformed_fraction.clamp(0.0, 1.0)) {
                        let bad = match rng.gen_range(0..4) {
                            0 => "{\"service\":\"Broken Service\",\"region\":\"GB\"}".to_string(),
                            1 => format!("{{\"service\":\"{}\",\"region\":\"Narnia\"}}", svc.name),
                            2 => "not json at all".to_string(),
                            _ => format!("{{\"service\":\"{}\"}}", svc.name),
                        };
                        pending.push(Reverse((ts + delay, seq, bad)));
                        seq += 1;
                        stats.malformed += 1;
                    }
                    if scenario.outlier_fraction > 0.0
                        && rng.gen_bool(scenario.outlier_fraction.clamp(0.0, 1.0))
                    {
                        let wrong = ts + CLOCK_ERRORS[rng.gen_range(0..CLOCK_ERRORS.len())];
                        let line = format!(
                            r#"{{"service":"{}","region":"{}","ts":{},"problem":"other","reporter":"clock{:x}","source":"app"}}"#,
                            svc.name,
                            region.code,
                            wrong,
                            rng.gen_range(0..u32::MAX)
                        );
                        pending.push(Reverse((ts + delay, seq, line)));
                        seq += 1;
                        stats.outliers += 1;
                    }
                }
            }
        }
        for (s, e) in &times {
            if let EventSpec::Spam {
                service,
                region,
                duration,
                reporters,
                per_minute,
                ..
            } = e
            {
                if within(t, *s, duration) {
                    let n = Poisson::new(*per_minute).map_or(0.0, |p| p.sample(&mut rng)) as u64;
                    for _ in 0..n {
                        let ts = t + rng.gen_range(0..MIN);
                        let line = format!(
                            r#"{{"service":"{service}","region":"{region}","ts":{ts},"problem":"other","reporter":"spammer{}","source":"twitter"}}"#,
                            rng.gen_range(0..*reporters)
                        );
                        pending.push(Reverse((ts, seq, line)));
                        seq += 1;
                        stats.reports += 1;
                    }
                }
            }
        }
        // Everything that arrives before this minute's earliest possible
        // arrival is final: write it out in arrival order.
        while pending.peek().is_some_and(|Reverse((a, _, _))| *a < t) {
            let Reverse((_, _, line)) = pending.pop().expect("peeked");
            writeln!(out, "{line}")?;
        }
    }
    while let Some(Reverse((_, _, line))) = pending.pop() {
        writeln!(out, "{line}")?;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_scenarios_are_valid() {
        for (name, _) in BUILTIN {
            let s = Scenario::builtin(name).unwrap();
            assert_eq!(s.name, name);
        }
    }

    #[test]
    fn an_outages_extra_reports_name_its_problem_and_the_usual_ones_do_not() {
        // netflix BR doubles for 45 minutes from 21:00, naming connectivity.
        let mut s = Scenario::builtin("alexa-2018").unwrap();
        s.start = "2018-09-25T20:00:00Z".into();
        s.duration = Duration::from_secs(2 * 3600);
        for e in &mut s.events {
            if let EventSpec::Outage {
                service,
                multiplier,
                ..
            } = e
            {
                if service == "netflix" {
                    *multiplier = 2.0;
                }
            }
        }
        let mut out = Vec::new();
        generate(&s, &mut out).unwrap();
        let (mut before, mut during) = ((0, 0), (0, 0));
        for line in String::from_utf8(out).unwrap().lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if v["service"] != "netflix" || v["region"] != "BR" {
                continue;
            }
            let Some(ts) = v["ts"].as_i64() else { continue };
            let named = i32::from(v["problem"] == "connectivity");
            let at = parse_time("2018-09-25T21:00:00Z", "t").unwrap();
            if ts < at {
                before = (before.0 + named, before.1 + 1);
            } else if ts >= at + 5 * MIN && ts < at + 40 * MIN {
                during = (during.0 + named, during.1 + 1);
            }
        }
        let share = |(n, all): (i32, i32)| f64::from(n) / f64::from(all);
        // Before: an eighth. During: half the reports are extra, seven in
        // ten of those name it (0.35), and the usual half keeps its eighth.
        assert!((share(before) - 0.125).abs() < 0.03, "{before:?}");
        assert!((share(during) - 0.41).abs() < 0.06, "{during:?}");
    }

    #[test]
    fn generation_is_deterministic_and_in_arrival_order() {
        let mut s = Scenario::builtin("alexa-2018").unwrap();
        s.duration = Duration::from_secs(3 * 3600);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let ga = generate(&s, &mut a).unwrap();
        generate(&s, &mut b).unwrap();
        assert_eq!(a, b);
        assert!(ga.reports > 1000);
        let mut decoded = 0;
        for line in a.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            if outage_detect::decode(
                line,
                None,
                i64::MAX / 4,
                &outage_detect::DecodeOptions::default(),
            )
            .is_ok()
            {
                decoded += 1;
            }
        }
        assert_eq!(
            decoded as u64, ga.reports,
            "every report decodes; malformed lines are extra"
        );
    }
}
