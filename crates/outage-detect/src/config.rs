//! `[detect]` configuration: what an operator can set, its defaults, the
//! cross-field rules, and the window arithmetic every stage shares.
//!
//! Must not: hold state or know about Kafka.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[detect]` configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// Width of the tumbling event-time windows. Default `1m`.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Where windows start: at whole multiples of `window` since the Unix
    /// epoch, plus this offset (less than `window`). For a backtest on data
    /// already counted in buckets that do not start on the minute, so that
    /// each window is exactly one bucket. Default `0s`.
    #[serde(with = "humantime_serde")]
    pub window_offset: Duration,
    /// How far behind stream time a report may arrive and still count.
    /// Default `30s`.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// After this long without reports, windows close by the wall clock
    /// (in `run`, only for a partition known to be caught up with the
    /// broker). Default `30s`.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Half-life of the baseline level: how fast a new normal is accepted.
    /// Default `1d`.
    #[serde(with = "humantime_serde")]
    pub level_half_life: Duration,
    /// Half-life of each hour-of-week profile slot. Default `14d`.
    #[serde(with = "humantime_serde")]
    pub profile_half_life: Duration,
    /// History a series needs before it may alert. Default `1d`.
    #[serde(with = "humantime_serde")]
    pub min_history: Duration,
    /// The false-alarm budget: false incidents per series per 30 days that
    /// ordinary noise may cause. Every scale's threshold follows from it
    /// (see the README's Detection section). Default 0.01 (with 100
    /// series, one false incident a month).
    pub false_alarms_per_month: f64,
    /// Reports the span that pages must hold: a quiet region does not page
    /// on 3 reports where 0.1 were due, however unlikely that is. Reports
    /// are counted once per reporter, and on the weighted scales a report
    /// fades with its age (never counts more than once). Default 10.
    pub min_count: u32,
    /// Cap of the reported surprise. Default 50.
    pub surprise_cap: f64,
    /// Normal windows a pending series may see before it falls back to
    /// normal (a noisy quiet region does not reset on one low count).
    /// Default 1.
    pub pending_tolerance: u32,
    /// How long an outage must stay calm to resolve: no short scale even
    /// 1-in-100 surprising for this long (rounded up to whole windows, at
    /// least one). An outage that flaps on and off within it stays one
    /// incident and one page. Its end is reported as when the calm began.
    /// Default `15m`.
    #[serde(with = "humantime_serde")]
    pub resolve_after: Duration,
    /// Regions in outage within `global_span` that make a global incident.
    /// Default 3.
    pub global_min_regions: u32,
    /// How long ago a region's outage, still open, may have begun and
    /// count towards `global_min_regions`. Default `1day`: a rise that
    /// lasts a day becomes its series' new normal, so every region still
    /// in outage counts, and an outage that spreads over hours is one
    /// global incident (with `1h`, sim3 outages 2's `zoom`, paged in
    /// France at 08:13 and in Brazil and Australia after 09:15, never
    /// opened one). A shorter span counts only outages that began within
    /// it.
    #[serde(with = "humantime_serde")]
    pub global_span: Duration,
    /// Event-time gap after which skipped windows are not learned (data
    /// gap, not silence). Default `15m`.
    #[serde(with = "humantime_serde")]
    pub max_gap: Duration,
    /// Most series this partition keeps; reports beyond are counted as
    /// overflow. Default 1000000.
    pub max_series: usize,
    /// Most services this partition keeps (each costs memory and work at
    /// every window close); reports of further services are counted as
    /// overflow until idle ones are evicted. Default 10000.
    pub max_services: usize,
    /// A service without a report for this long (event time) is evicted
    /// with its series and what they learned, unless an incident of it is
    /// open; its memory is reused. Default `1d`.
    #[serde(with = "humantime_serde")]
    pub service_ttl: Duration,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            window: Duration::from_secs(60),
            window_offset: Duration::ZERO,
            allowed_lateness: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            level_half_life: Duration::from_secs(86_400),
            profile_half_life: Duration::from_secs(14 * 86_400),
            min_history: Duration::from_secs(86_400),
            false_alarms_per_month: 0.01,
            min_count: 10,
            surprise_cap: 50.0,
            resolve_after: Duration::from_secs(15 * 60),
            pending_tolerance: 1,
            global_min_regions: 3,
            global_span: Duration::from_secs(86_400),
            max_gap: Duration::from_secs(900),
            max_series: 1_000_000,
            max_services: 10_000,
            service_ttl: Duration::from_secs(86_400),
        }
    }
}

/// A setting that cannot work: the configuration key at fault, as
/// `section.key`, and why. The one shape of every validation error of the
/// workspace's crates (the binary wraps it with the file it came from).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ConfigError {
    /// The key at fault, `section.key`.
    pub field: String,
    /// What is wrong with its value.
    pub problem: String,
}

impl ConfigError {
    /// The error for `field` (`section.key`).
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl DetectorConfig {
    /// Cross-field rules that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err =
            |field: &str, problem: &str| Err(ConfigError::new(format!("detect.{field}"), problem));
        let ms = |d: Duration| d.as_millis();
        if ms(self.window) < 1000 || ms(self.window) > 3_600_000 || 3_600_000 % ms(self.window) != 0
        {
            return err("window", "must divide one hour and be at least 1s");
        }
        if self.window_offset >= self.window {
            return err("window_offset", "must be less than detect.window");
        }
        if self.allowed_lateness > self.window * 10 {
            return err("allowed_lateness", "at most 10 windows");
        }
        if self.resolve_after > Duration::from_secs(86_400) {
            return err("resolve_after", "at most 1d");
        }
        // Written so that NaN, which TOML can spell, fails too.
        let budget = self.false_alarms_per_month;
        if budget.is_nan() || budget <= 0.0 || budget > 1000.0 {
            return err("false_alarms_per_month", "must be above 0 and at most 1000");
        }
        if self.surprise_cap.is_nan() || self.surprise_cap < 10.0 {
            return err("surprise_cap", "must be at least 10");
        }
        for (field, value) in [
            ("global_min_regions", self.global_min_regions as usize),
            ("max_series", self.max_series),
            ("max_services", self.max_services),
        ] {
            if value == 0 {
                return err(field, "must be at least 1");
            }
        }
        if self.service_ttl < self.window * 10 {
            return err("service_ttl", "at least 10 windows");
        }
        Ok(())
    }

    /// Window width in milliseconds.
    #[inline]
    pub fn width_ms(&self) -> i64 {
        self.window.as_millis() as i64
    }

    /// Start of the window that holds `ts_ms`.
    #[inline]
    pub fn window_start(&self, ts_ms: i64) -> i64 {
        let (width, offset) = (self.width_ms(), self.window_offset.as_millis() as i64);
        (ts_ms - offset).div_euclid(width) * width + offset
    }

    /// Consecutive calm windows that resolve an outage: `resolve_after`
    /// in whole windows, rounded up, at least one.
    pub fn resolve_windows(&self) -> u32 {
        let (after, width) = (
            self.resolve_after.as_millis(),
            self.window.as_millis().max(1),
        );
        u32::try_from(after.div_ceil(width))
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// The calm that resolves an outage, in milliseconds of whole windows:
    /// an incident's end is dated this long before the window that
    /// resolves it.
    pub fn resolve_span_ms(&self) -> i64 {
        i64::from(self.resolve_windows()) * self.width_ms()
    }

    /// Windows in 30 days.
    pub fn windows_per_30d(&self) -> f64 {
        30.0 * 86_400_000.0 / self.width_ms() as f64
    }
}
