//! The detector of one Kafka partition: event-time windows per series,
//! seasonal baselines, count-aware scoring, hysteresis and incidents.
//!
//! Pure and deterministic: time comes only from report timestamps and from
//! the `now` passed to [`Detector::tick`]. All state is plain data (serde),
//! so a snapshot restored elsewhere continues bit-for-bit. Output goes to an
//! event buffer the caller drains; nothing here blocks or allocates per
//! report on the hot path except for a first-seen service or series.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::time::Duration;

use rustc_hash::FxHasher;
use serde::{Deserialize, Serialize};

use crate::baseline::{slot_of, Baseline, LearnRates};
use crate::region::Country;
use crate::report::{Problem, Report};
use crate::score;

type FxBuild = BuildHasherDefault<FxHasher>;

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
    /// How far behind the newest event a report may arrive and still count.
    /// Default `30s`.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// After this long without reports, windows close by the wall clock.
    /// Default `30s`.
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
    /// Surprise (−log10 p) a window needs to count as anomalous. Default 5.
    pub min_surprise: f64,
    /// Surprise at which one anomalous window opens an outage. Default 12.
    pub instant_surprise: f64,
    /// Cap of the reported surprise. Default 50.
    pub surprise_cap: f64,
    /// Reports a window needs to count as anomalous. Default 10.
    pub min_count: u32,
    /// observed/expected a window needs to count as anomalous. Default 2.5.
    pub min_ratio: f64,
    /// observed/expected the service-wide (`global`) series needs: lower,
    /// since a worldwide outage that starts in one country moves the total
    /// less, and the total has the volume to make the surprise reliable.
    /// Default 1.5.
    pub global_min_ratio: f64,
    /// Consecutive anomalous windows that open an outage. Default 2.
    pub enter_windows: u32,
    /// Normal windows a pending series may see before it falls back to
    /// normal (a noisy quiet region does not reset on one low count).
    /// Default 1.
    pub pending_tolerance: u32,
    /// Consecutive normal windows that resolve an outage. Default 3.
    pub resolve_windows: u32,
    /// Regions in outage within `global_span` that make a global incident.
    /// Default 3.
    pub global_min_regions: u32,
    /// Default `1h`.
    #[serde(with = "humantime_serde")]
    pub global_span: Duration,
    /// Event-time gap after which skipped windows are not learned (data
    /// gap, not silence). Default `15m`.
    #[serde(with = "humantime_serde")]
    pub max_gap: Duration,
    /// Most series this partition keeps; reports beyond are counted as
    /// overflow. Default 1000000.
    pub max_series: usize,
    /// Half-life of a series' burst memory: the biggest of its recent
    /// bursts that paged (or would have). A burst's size is its peak count
    /// over the series' level (its average window), not over the hour's
    /// expectation: a bot or a news story comes back at about the same
    /// number of reports whatever the hour, and a ratio to a night-time
    /// expectation would let one burst at 3 a.m. hide every daytime one. A
    /// new outage opens only once its size beats that memory (decayed by
    /// this half-life) by `burst_margin`, so the smaller bursts that follow
    /// a big one (aftershocks, a bot or a news story coming back) do not
    /// page again; a clearly bigger one still does. `0s` turns it off.
    /// Default `3d`.
    #[serde(with = "humantime_serde")]
    pub burst_memory: Duration,
    /// How much bigger than the burst memory a new burst must be to page:
    /// repeats of one cause vary by a few tens of percent. At least 1.
    /// Default 1.3.
    pub burst_margin: f64,
    /// A second, slower scale: each series also sums its counts and
    /// expectations over about this span (exponentially weighted, each
    /// window's count capped at 5× its expectation, so that a short burst,
    /// the fast scale's business, does not look like a slow rise for hours
    /// after). A window is anomalous too when that sum passes `min_count`,
    /// `slow_min_ratio` and `instant_surprise` while the window itself is
    /// at least 1.5× its expectation. It finds the slow burn that no single
    /// window shows: a small region at several times its usual reports, every
    /// window under `min_count`, or a busy series at twice its usual reports
    /// for hours, none of whose windows stands out alone. `0s` turns it
    /// off; otherwise at least two windows. Default `6h`.
    #[serde(with = "humantime_serde")]
    pub slow_span: Duration,
    /// observed/expected the slow sums need, for every series: lower than
    /// `min_ratio`, since a rise that lasts hours is evidence a single
    /// window is not. At least 1. Default 1.7.
    pub slow_min_ratio: f64,
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
            min_surprise: 5.0,
            instant_surprise: 12.0,
            surprise_cap: 50.0,
            min_count: 10,
            min_ratio: 2.5,
            global_min_ratio: 1.5,
            enter_windows: 2,
            resolve_windows: 3,
            pending_tolerance: 1,
            global_min_regions: 3,
            global_span: Duration::from_secs(3600),
            max_gap: Duration::from_secs(900),
            max_series: 1_000_000,
            burst_memory: Duration::from_secs(3 * 86_400),
            burst_margin: 1.3,
            slow_span: Duration::from_secs(6 * 3600),
            slow_min_ratio: 1.7,
        }
    }
}

impl DetectorConfig {
    /// Cross-field rules, as `field: problem`.
    pub fn validate(&self) -> Result<(), String> {
        let ms = |d: Duration| d.as_millis();
        if ms(self.window) < 1000 || ms(self.window) > 3_600_000 || 3_600_000 % ms(self.window) != 0
        {
            return Err("detect.window: must divide one hour and be at least 1s".into());
        }
        if self.window_offset >= self.window {
            return Err("detect.window_offset: must be less than detect.window".into());
        }
        if self.allowed_lateness > self.window * 10 {
            return Err("detect.allowed_lateness: at most 10 windows".into());
        }
        if self.enter_windows == 0 || self.resolve_windows == 0 {
            return Err("detect.enter_windows / resolve_windows: must be at least 1".into());
        }
        if !(self.min_surprise > 0.0 && self.instant_surprise >= self.min_surprise) {
            return Err("detect.instant_surprise: must be at least min_surprise (> 0)".into());
        }
        if self.surprise_cap < self.instant_surprise {
            return Err("detect.surprise_cap: must be at least instant_surprise".into());
        }
        // `>=` is false for NaN, which TOML can spell.
        let at_least_one = |x: f64| x >= 1.0;
        if ![self.min_ratio, self.global_min_ratio, self.slow_min_ratio]
            .into_iter()
            .all(at_least_one)
        {
            return Err(
                "detect.min_ratio / global_min_ratio / slow_min_ratio: must be at least 1".into(),
            );
        }
        if !at_least_one(self.burst_margin) {
            return Err("detect.burst_margin: must be at least 1".into());
        }
        if !self.slow_span.is_zero() && self.slow_span < self.window * 2 {
            return Err("detect.slow_span: 0s (off) or at least two windows".into());
        }
        if self.global_min_regions == 0 || self.max_series == 0 {
            return Err("detect.global_min_regions / max_series: must be at least 1".into());
        }
        Ok(())
    }

    fn width_ms(&self) -> i64 {
        self.window.as_millis() as i64
    }

    /// Start of the window that holds `ts_ms`.
    fn window_start(&self, ts_ms: i64) -> i64 {
        let (width, offset) = (self.width_ms(), self.window_offset.as_millis() as i64);
        (ts_ms - offset).div_euclid(width) * width + offset
    }
}

/// Where a series counts: one country, or the service worldwide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    Region(Country),
    Global,
}

impl Scope {
    /// `GB`, `ZZ` or `global`.
    pub fn label(&self) -> &str {
        match self {
            Scope::Region(c) => c.as_str(),
            Scope::Global => "global",
        }
    }
}

/// Hysteresis state of a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeriesState {
    Normal,
    Pending,
    Outage,
}

impl SeriesState {
    pub fn as_str(self) -> &'static str {
        match self {
            SeriesState::Normal => "normal",
            SeriesState::Pending => "pending",
            SeriesState::Outage => "outage",
        }
    }
}

/// One closed window of one series.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowScore {
    pub window_start_ms: i64,
    pub service: String,
    pub scope: Scope,
    pub observed: u32,
    pub expected: f64,
    pub surprise: f64,
    pub ratio: f64,
    pub anomalous: bool,
    pub state: SeriesState,
}

/// A region's place in a global incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpreadEntry {
    pub region: Country,
    pub started_at_ms: i64,
    pub peak_ratio: f64,
}

/// A region outage or a global incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Stable id: the same input always gives the same id.
    pub id: String,
    pub service: String,
    pub scope: Scope,
    /// Regions in spread order (global incidents).
    pub regions: Vec<SpreadEntry>,
    /// Start of the first anomalous window.
    pub started_at_ms: i64,
    /// When the detector declared it (end of the confirming window).
    pub detected_at_ms: i64,
    pub resolved_at_ms: Option<i64>,
    pub peak_ratio: f64,
    pub peak_surprise: f64,
    /// Reports per problem type over the anomalous windows.
    pub problems: [u64; 8],
}

impl Incident {
    /// Problem types with their counts, largest first.
    pub fn top_problems(&self) -> Vec<(Problem, u64)> {
        let mut v: Vec<(Problem, u64)> = Problem::ALL
            .iter()
            .map(|&p| (p, self.problems[p as usize]))
            .filter(|(_, n)| *n > 0)
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

/// What the detector has to say.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Window(WindowScore),
    Opened(Incident),
    Updated(Incident),
    Resolved(Incident),
}

/// What became of one report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observed {
    Counted,
    /// Same reporter, same service, same window: counted once already.
    Duplicate,
    /// Its window had already closed.
    Late,
    /// `max_series` reached: not counted in any series.
    Overflow,
}

/// Counters a caller exports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectorCounters {
    pub counted: u64,
    pub duplicates: u64,
    pub late: u64,
    pub overflow: u64,
    pub windows_closed: u64,
    pub windows_skipped: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Series {
    service: u32,
    scope: Scope,
    baseline: Baseline,
    state: SeriesState,
    /// Anomalous (pending) or consecutive normal (outage) windows.
    run: u32,
    /// Normal windows seen while pending.
    misses: u32,
    /// Start of the current pending/outage run.
    since_ms: i64,
    late: u64,
    /// Boxed: most series never have one, and the box keeps them small.
    incident: Option<Box<Incident>>,
    /// Problems of the pending run, carried into the incident.
    pending_problems: [u32; 8],
    pending_peak: (f32, f32),
    /// The pending run's peak size (count over level) for the burst memory.
    pending_size: f32,
    /// Observed and expected count of the last closed window.
    last: (u32, f32),
    /// Burst memory: the biggest size (count over level) of recent bursts
    /// that paged or would have, and the minute it was last decayed to.
    #[serde(default)]
    burst: (f32, u32),
    /// Slow scale: weighted sums of observed and expected counts, the same
    /// burst memory for the slow ratio, and the pending run's peak slow
    /// ratio.
    #[serde(default)]
    slow: (f32, f32),
    #[serde(default)]
    slow_burst: (f32, u32),
    #[serde(default)]
    pending_slow: f32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Service {
    name: String,
    /// Series index per country (`u32::MAX` = none yet).
    regions: Vec<u32>,
    global: u32,
    /// Every series of this service, creation order.
    series: Vec<u32>,
    incident: Option<Incident>,
    /// Consecutive windows far below expectation (data gap or holiday).
    low_run: u32,
    /// Reports arrived since the detector was made [`Detector::dormant`]:
    /// only live services report their windows.
    #[serde(default = "yes")]
    live: bool,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct Acc {
    count: u32,
    problems: [u32; 8],
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct OpenWindow {
    start_ms: i64,
    /// Position in `accs` per series, `u32::MAX` when untouched.
    slot: Vec<u32>,
    accs: Vec<(u32, Acc)>,
    seen: HashSet<u64, FxBuild>,
}

impl OpenWindow {
    fn new(start_ms: i64) -> OpenWindow {
        OpenWindow::with_capacity(start_ms, 0, 0)
    }

    fn with_capacity(start_ms: i64, series: usize, reporters: usize) -> OpenWindow {
        OpenWindow {
            start_ms,
            slot: Vec::with_capacity(series),
            accs: Vec::new(),
            seen: HashSet::with_capacity_and_hasher(reporters, FxBuild::default()),
        }
    }

    #[inline]
    fn add(&mut self, series: u32, problem: Problem) {
        let i = series as usize;
        if i >= self.slot.len() {
            self.slot.resize(i + 1, u32::MAX);
        }
        let pos = if self.slot[i] == u32::MAX {
            self.slot[i] = self.accs.len() as u32;
            self.accs.push((series, Acc::default()));
            self.accs.len() - 1
        } else {
            self.slot[i] as usize
        };
        let acc = &mut self.accs[pos].1;
        acc.count += 1;
        acc.problems[problem as usize] += 1;
    }

    fn get(&self, series: u32) -> Acc {
        match self.slot.get(series as usize) {
            Some(&p) if p != u32::MAX => self.accs[p as usize].1,
            _ => Acc::default(),
        }
    }
}

/// Per-window constants derived from the configuration.
#[derive(Clone, Copy)]
struct CloseParams {
    rates: LearnRates,
    min_history_windows: u32,
    windows_per_day: u32,
    /// `burst_memory` half-life in ms (0 = off).
    burst_half_life_ms: f64,
    /// Per-window decay of the slow sums (0 = off) and the number of
    /// windows they weigh in all.
    slow_decay: f64,
    slow_windows: f64,
}

/// The detector state of one partition.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Detector {
    config: DetectorConfig,
    services: Vec<Service>,
    service_ids: HashMap<String, u32, FxBuild>,
    series: Vec<Series>,
    open: VecDeque<OpenWindow>,
    /// Start of the oldest window that is not closed yet.
    next_close_ms: Option<i64>,
    max_event_ms: i64,
    last_activity_wall_ms: Option<i64>,
    activity_since_tick: bool,
    counters: DetectorCounters,
    /// Distinct reporters of the last closed window (sizing hint).
    #[serde(default)]
    last_window_reporters: usize,
    /// Service of the previous report (lookup shortcut).
    #[serde(default)]
    last_service: u32,
    #[serde(skip)]
    events: Vec<Event>,
}

/// Version of the snapshot layout; bumped on any incompatible change.
pub const SNAPSHOT_VERSION: u32 = 5;
const SNAPSHOT_FORMAT: &str = "outage-radar.detector";
/// First bytes of a binary snapshot (version 2 on).
const SNAPSHOT_MAGIC: &[u8; 8] = b"ORDETECT";

/// A snapshot that cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a detector snapshot: {0}")]
    Malformed(String),
    #[error("snapshot format {found:?} is not {SNAPSHOT_FORMAT:?}")]
    Format { found: String },
    #[error(
        "snapshot version {found} is not supported (this build reads version {SNAPSHOT_VERSION})"
    )]
    Version { found: u32 },
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    format: String,
    version: u32,
    detector: T,
}

/// How far above its expectation a window must be for the slow scale to
/// call it anomalous: the slow sums lag, so without this an outage would
/// stay open long after the reports fell back.
const SLOW_WINDOW_MIN_RATIO: f64 = 1.5;

/// The most a window adds to the slow sums, as a multiple of its
/// expectation (or what its noise can give, μ + 4σ + 2, if that is more, so
/// a quiet series' slow burn still counts in full): a burst is the fast
/// scale's business, and uncapped it would hold the slow ratio up for hours
/// after it ended.
const SLOW_WINDOW_MAX_RATIO: f64 = 5.0;

/// A burst memory's time: whole minutes since the epoch (a `u32` lasts
/// until the year 10000 and keeps a series under 1 KB).
fn burst_minute(ms: i64) -> u32 {
    (ms.max(0) / 60_000).min(i64::from(u32::MAX)) as u32
}

/// `burst` (ratio, at minute) decayed to `now_ms` by the half-life (0 when
/// off).
#[inline]
fn decayed(burst: (f32, u32), now_ms: i64, half_life_ms: f64) -> f64 {
    if half_life_ms <= 0.0 || burst.0 <= 0.0 {
        return 0.0;
    }
    let age = (now_ms - i64::from(burst.1) * 60_000).max(0) as f64;
    f64::from(burst.0) * (-std::f64::consts::LN_2 * age / half_life_ms).exp()
}

fn stable_id(parts: &[&str]) -> String {
    // FNV-1a: fixed across platforms and releases, unlike std's hashers.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0x1f)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

impl Detector {
    pub fn new(config: DetectorConfig) -> Detector {
        Detector {
            config,
            services: Vec::new(),
            service_ids: HashMap::default(),
            series: Vec::new(),
            open: VecDeque::new(),
            next_close_ms: None,
            max_event_ms: i64::MIN,
            last_activity_wall_ms: None,
            activity_since_tick: false,
            counters: DetectorCounters::default(),
            last_window_reporters: 0,
            last_service: 0,
            events: Vec::new(),
        }
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    pub fn counters(&self) -> &DetectorCounters {
        &self.counters
    }

    /// Live series (regions and global) of this partition.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Bytes held by baselines and series bookkeeping (approximate).
    pub fn memory_bytes(&self) -> usize {
        self.series
            .iter()
            .map(|s| {
                std::mem::size_of::<Series>() + s.baseline.memory_bytes()
                    - std::mem::size_of::<Baseline>()
            })
            .sum::<usize>()
            + self
                .services
                .iter()
                .map(|s| {
                    std::mem::size_of::<Service>()
                        + s.regions.capacity() * 4
                        + s.series.capacity() * 4
                        + s.name.capacity()
                })
                .sum::<usize>()
    }

    /// Event time up to which windows are closed.
    pub fn watermark_ms(&self) -> Option<i64> {
        self.next_close_ms
    }

    /// The whole state as a versioned binary document: `ORDETECT`, the
    /// version (u32 LE), then the state in postcard's compact encoding
    /// (take it after draining events; they are not part of it).
    pub fn to_snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.series.len() * 1024);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        postcard::to_io(self, &mut out).expect("detector state always serializes");
        out
    }

    /// Restores a detector from [`Detector::to_snapshot`] (or a version 1
    /// JSON snapshot of earlier builds); a snapshot of another format or
    /// version is refused, never half-applied.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Detector, SnapshotError> {
        if let Some(rest) = bytes.strip_prefix(SNAPSHOT_MAGIC) {
            let version = rest
                .get(..4)
                .map(|v| u32::from_le_bytes(v.try_into().expect("4 bytes")))
                .ok_or_else(|| SnapshotError::Malformed("truncated header".into()))?;
            if version != SNAPSHOT_VERSION {
                return Err(SnapshotError::Version { found: version });
            }
            return postcard::from_bytes(&rest[4..])
                .map_err(|e| SnapshotError::Malformed(e.to_string()));
        }
        #[derive(Deserialize)]
        struct Header {
            format: String,
            version: u32,
        }
        let malformed = |e: serde_json::Error| SnapshotError::Malformed(e.to_string());
        let header: Header = serde_json::from_slice(bytes).map_err(malformed)?;
        if header.format != SNAPSHOT_FORMAT {
            return Err(SnapshotError::Format {
                found: header.format,
            });
        }
        if header.version != 1 {
            return Err(SnapshotError::Version {
                found: header.version,
            });
        }
        let envelope: Envelope<Detector> = serde_json::from_slice(bytes).map_err(malformed)?;
        Ok(envelope.detector)
    }

    /// Replaces the configuration (e.g. a warm start from a snapshot made
    /// with other thresholds); learned state is kept.
    pub fn set_config(&mut self, config: DetectorConfig) {
        self.config = config;
    }

    /// Marks every service dormant: its series keep learning, but its
    /// windows are not reported until its next report. For a warm start
    /// shared by several partitions, each of which sees only its own
    /// services (reports are keyed by service): the others stay quiet
    /// instead of reporting empty windows.
    pub fn dormant(&mut self) {
        for s in &mut self.services {
            s.live = false;
        }
    }

    /// Takes the events produced so far.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, Event> {
        self.events.drain(..)
    }

    /// Incidents currently open, region and global.
    pub fn open_incidents(&self) -> impl Iterator<Item = &Incident> {
        self.series
            .iter()
            .filter_map(|s| s.incident.as_deref())
            .chain(self.services.iter().filter_map(|s| s.incident.as_ref()))
    }

    fn service_id(&mut self, name: &str) -> Option<u32> {
        // Reports are keyed by service, so a partition often sees the same
        // service many times in a row: one short compare beats a hash.
        if let Some(svc) = self.services.get(self.last_service as usize) {
            if svc.name == name {
                return Some(self.last_service);
            }
        }
        if let Some(&id) = self.service_ids.get(name) {
            self.last_service = id;
            return Some(id);
        }
        if self.series.len() >= self.config.max_series {
            return None;
        }
        let id = self.services.len() as u32;
        let global = self.new_series(id, Scope::Global);
        self.services.push(Service {
            name: name.to_string(),
            regions: vec![u32::MAX; Country::COUNT],
            global,
            series: vec![global],
            incident: None,
            low_run: 0,
            live: true,
        });
        self.service_ids.insert(name.to_string(), id);
        Some(id)
    }

    fn new_series(&mut self, service: u32, scope: Scope) -> u32 {
        self.series.push(Series {
            service,
            scope,
            baseline: Baseline::new(),
            state: SeriesState::Normal,
            run: 0,
            misses: 0,
            since_ms: 0,
            late: 0,
            incident: None,
            pending_problems: [0; 8],
            pending_peak: (0.0, 0.0),
            pending_size: 0.0,
            last: (0, 0.0),
            burst: (0.0, 0),
            slow: (0.0, 0.0),
            slow_burst: (0.0, 0),
            pending_slow: 0.0,
        });
        (self.series.len() - 1) as u32
    }

    /// Counts one report.
    #[inline]
    pub fn observe(&mut self, report: &Report<'_>) -> Observed {
        self.activity_since_tick = true;
        let Some(sid) = self.service_id(&report.service) else {
            self.counters.overflow += 1;
            return Observed::Overflow;
        };
        let country = report.region.country_code();
        let ci = country.index();
        self.services[sid as usize].live = true;
        let mut region_series = self.services[sid as usize].regions[ci];
        if region_series == u32::MAX && self.series.len() < self.config.max_series {
            region_series = self.new_series(sid, Scope::Region(country));
            let svc = &mut self.services[sid as usize];
            svc.regions[ci] = region_series;
            svc.series.push(region_series);
        }
        let global = self.services[sid as usize].global;
        let start = self.config.window_start(report.ts_ms);
        if self.next_close_ms.is_some_and(|c| start < c) {
            self.counters.late += 1;
            if region_series != u32::MAX {
                self.series[region_series as usize].late += 1;
            }
            return Observed::Late;
        }
        if self.next_close_ms.is_none() {
            self.next_close_ms = Some(start);
        }
        let w = self.window_mut(start);
        if let Some(reporter) = &report.reporter {
            let mut h = FxHasher::default();
            sid.hash(&mut h);
            reporter.hash(&mut h);
            if !w.seen.insert(h.finish()) {
                self.counters.duplicates += 1;
                return Observed::Duplicate;
            }
        }
        w.add(global, report.problem);
        let result = if region_series == u32::MAX {
            self.counters.overflow += 1;
            Observed::Overflow
        } else {
            w.add(region_series, report.problem);
            Observed::Counted
        };
        self.counters.counted += 1;
        if report.ts_ms > self.max_event_ms {
            self.max_event_ms = report.ts_ms;
            let lateness = self.config.allowed_lateness.as_millis() as i64;
            self.advance_to(self.max_event_ms - lateness);
        }
        result
    }

    fn window_mut(&mut self, start: i64) -> &mut OpenWindow {
        if self.open.back().is_some_and(|w| w.start_ms == start) {
            return self.open.back_mut().expect("checked above");
        }
        let pos = self.open.iter().rposition(|w| w.start_ms <= start);
        // Size a new window like the last one, so the reporter set does not
        // rehash its way up on every window.
        let (series, reporters) = (self.series.len(), self.last_window_reporters);
        match pos {
            Some(i) if self.open[i].start_ms == start => &mut self.open[i],
            Some(i) => {
                self.open
                    .insert(i + 1, OpenWindow::with_capacity(start, series, reporters));
                &mut self.open[i + 1]
            }
            None => {
                self.open
                    .push_front(OpenWindow::with_capacity(start, series, reporters));
                &mut self.open[0]
            }
        }
    }

    /// Wall-clock progress: when no report arrived for `idle_timeout`, the
    /// watermark follows `now_ms` so windows still close.
    pub fn tick(&mut self, now_ms: i64) {
        if self.activity_since_tick || self.last_activity_wall_ms.is_none() {
            self.activity_since_tick = false;
            self.last_activity_wall_ms = Some(now_ms);
            return;
        }
        let idle = now_ms - self.last_activity_wall_ms.unwrap_or(now_ms);
        if idle >= self.config.idle_timeout.as_millis() as i64 {
            let lateness = self.config.allowed_lateness.as_millis() as i64;
            self.advance_to(now_ms - lateness);
        }
    }

    /// Closes every open window (end of a replay).
    pub fn flush(&mut self) {
        if let Some(last) = self.open.back().map(|w| w.start_ms) {
            self.advance_to(last + self.config.width_ms());
        }
    }

    /// Closes every window that ends at or before `watermark_ms`.
    pub fn advance_to(&mut self, watermark_ms: i64) {
        let width = self.config.width_ms();
        let Some(mut next) = self.next_close_ms else {
            return;
        };
        let max_gap = self.config.max_gap.as_millis() as i64;
        while next + width <= watermark_ms {
            let window = match self.open.front() {
                Some(w) if w.start_ms == next => self.open.pop_front(),
                _ => None,
            };
            match window {
                Some(w) => self.close(&w),
                None => {
                    // No report at all in this window. A short silence is
                    // learned as zeros; a long one is a data gap: skip to
                    // the next window that has data, learning nothing.
                    let next_data = self.open.front().map(|w| w.start_ms);
                    let gap_end = next_data.unwrap_or(self.config.window_start(watermark_ms));
                    if gap_end - next > max_gap {
                        let skip_to = next_data
                            .unwrap_or(gap_end)
                            .min(self.config.window_start(watermark_ms));
                        self.counters.windows_skipped += ((skip_to - next) / width) as u64;
                        next = skip_to;
                        continue;
                    }
                    self.close(&OpenWindow::new(next));
                }
            }
            next += width;
        }
        self.next_close_ms = Some(next);
    }

    fn close(&mut self, w: &OpenWindow) {
        self.counters.windows_closed += 1;
        if !w.seen.is_empty() {
            self.last_window_reporters = w.seen.len();
        }
        let cfg = &self.config;
        let width = cfg.width_ms();
        // Same for every service of this window: derive once.
        let params = CloseParams {
            rates: LearnRates::new(
                width,
                cfg.level_half_life.as_millis() as i64,
                cfg.profile_half_life.as_millis() as i64,
            ),
            min_history_windows: (cfg.min_history.as_millis() as i64 / width) as u32,
            windows_per_day: (86_400_000 / width) as u32,
            burst_half_life_ms: cfg.burst_memory.as_millis() as f64,
            slow_decay: if cfg.slow_span.is_zero() {
                0.0
            } else {
                (-(width as f64) / cfg.slow_span.as_millis() as f64).exp()
            },
            slow_windows: if cfg.slow_span.is_zero() {
                0.0
            } else {
                cfg.slow_span.as_millis() as f64 / width as f64
            },
        };
        for sid in 0..self.services.len() {
            self.close_service(sid, w, &params);
        }
    }

    fn close_service(&mut self, sid: usize, w: &OpenWindow, params: &CloseParams) {
        let cfg = &self.config;
        let width = cfg.width_ms();
        let slot = slot_of(w.start_ms);
        let CloseParams {
            rates,
            min_history_windows,
            windows_per_day,
            burst_half_life_ms,
            slow_decay,
            slow_windows,
        } = *params;
        let global = self.services[sid].global as usize;
        let global_shape = self.series[global].baseline.shape(slot, &rates);

        // A service far below its expectation has a data gap or a quiet
        // day: learn nothing from it, unless it lasts a day (a new normal).
        let g_acc = w.get(global as u32);
        let g_mu = self.series[global].baseline.expected(slot, None, &rates);
        let low = g_mu >= 20.0 && f64::from(g_acc.count) < 0.3 * g_mu;
        let svc = &mut self.services[sid];
        svc.low_run = if low {
            svc.low_run.saturating_add(1)
        } else {
            0
        };
        let learn_ok = svc.low_run == 0 || svc.low_run > windows_per_day;

        let n = self.services[sid].series.len();
        for k in 0..n {
            let idx = self.services[sid].series[k] as usize;
            let acc = w.get(idx as u32);
            let borrowed = if idx == global { None } else { global_shape };
            let s = &mut self.series[idx];
            let c = acc.count;
            // Computed once: the window is scored and learned with it.
            let shape = s.baseline.shape_in_use(slot, borrowed, &rates);
            let mu = s.baseline.level() * shape;
            let k_disp = s.baseline.dispersion();
            let trusted = s.baseline.windows() >= min_history_windows;
            // At or below expectation the tail probability is ≥ ~0.4: not
            // worth the incomplete beta function; report 0.
            let surprise = if f64::from(c) > mu {
                score::surprise(c, mu, k_disp, cfg.surprise_cap)
            } else {
                0.0
            };
            let ratio = score::ratio(c, mu);
            let min_ratio = if idx == global {
                cfg.global_min_ratio
            } else {
                cfg.min_ratio
            };
            let fast =
                trusted && c >= cfg.min_count && ratio >= min_ratio && surprise >= cfg.min_surprise;
            // The slow scale: weighted sums over about `slow_span`, scored
            // like one window of their size (the dispersion of a sum of n
            // windows is k / n). With no single window as evidence, the sum
            // must be as surprising as a window that opens an outage at once.
            let mut slow_ratio = 0.0;
            let mut slow = false;
            if slow_decay > 0.0 {
                let decay = slow_decay as f32;
                let cap = (SLOW_WINDOW_MAX_RATIO * mu).max(score::noise_ceiling(mu, k_disp));
                let counted = f64::from(c).min(cap);
                s.slow = (
                    s.slow.0 * decay + counted as f32,
                    s.slow.1 * decay + mu as f32,
                );
                let (observed, expected) = (s.slow.0.round() as u32, f64::from(s.slow.1));
                slow_ratio = score::ratio(observed, expected);
                slow = trusted
                    && !fast
                    && f64::from(c) >= SLOW_WINDOW_MIN_RATIO * mu
                    && observed >= cfg.min_count
                    && slow_ratio >= cfg.slow_min_ratio
                    && f64::from(observed) > expected
                    && score::surprise(
                        observed,
                        expected,
                        k_disp / slow_windows.max(1.0),
                        cfg.surprise_cap,
                    ) >= cfg.instant_surprise;
            }
            let anomalous = fast || slow;
            // The burst memory learns from bursts that paged or would have
            // (not from a lone anomalous window that never opened anything),
            // and a pending run is judged against the memory from before it
            // began: its own windows join the memory when it opens an
            // outage or ends.
            let remember = |s: &mut Series, size: f64| {
                if burst_half_life_ms > 0.0 {
                    let bar = decayed(s.burst, w.start_ms, burst_half_life_ms);
                    s.burst = (bar.max(size) as f32, burst_minute(w.start_ms));
                }
            };
            // The window's burst size: reports over the series' level.
            let size = score::ratio(c, s.baseline.level());
            let window_end = w.start_ms + width;
            let service_name = &self.services[sid].name;

            match s.state {
                SeriesState::Normal | SeriesState::Pending if anomalous => {
                    if s.state == SeriesState::Normal {
                        s.state = SeriesState::Pending;
                        s.run = 0;
                        s.misses = 0;
                        s.since_ms = w.start_ms;
                        s.pending_problems = [0; 8];
                        s.pending_peak = (0.0, 0.0);
                        s.pending_size = 0.0;
                        s.pending_slow = 0.0;
                    }
                    s.run += 1;
                    for (p, n) in s.pending_problems.iter_mut().zip(acc.problems) {
                        *p = p.saturating_add(n);
                    }
                    s.pending_peak = (
                        s.pending_peak.0.max(ratio as f32),
                        s.pending_peak.1.max(surprise as f32),
                    );
                    s.pending_size = s.pending_size.max(size as f32);
                    if slow {
                        s.pending_slow = s.pending_slow.max(slow_ratio as f32);
                    }
                    let confirmed = s.run >= cfg.enter_windows || surprise >= cfg.instant_surprise;
                    // A burst not clearly bigger than recent ones (on either
                    // scale) stays pending.
                    let bar = decayed(s.burst, w.start_ms, burst_half_life_ms);
                    let slow_bar = decayed(s.slow_burst, w.start_ms, burst_half_life_ms);
                    let bigger = f64::from(s.pending_size) > cfg.burst_margin * bar
                        || (s.pending_slow > 0.0 && f64::from(s.pending_slow) > slow_bar);
                    if confirmed && bigger {
                        remember(s, f64::from(s.pending_size));
                        s.state = SeriesState::Outage;
                        s.run = 0;
                        let region = s.scope.label().to_string();
                        let incident = Incident {
                            id: stable_id(&[
                                service_name,
                                "region",
                                &region,
                                &s.since_ms.to_string(),
                            ]),
                            service: service_name.clone(),
                            scope: s.scope,
                            regions: Vec::new(),
                            started_at_ms: s.since_ms,
                            detected_at_ms: window_end,
                            resolved_at_ms: None,
                            peak_ratio: f64::from(s.pending_peak.0),
                            peak_surprise: f64::from(s.pending_peak.1),
                            problems: s.pending_problems.map(u64::from),
                        };
                        // The global series' own outage is reported through
                        // the service's global incident, not on its own.
                        if idx != global {
                            self.events.push(Event::Opened(incident.clone()));
                        }
                        s.incident = Some(Box::new(incident));
                    }
                }
                SeriesState::Pending => {
                    s.misses += 1;
                    if s.misses > cfg.pending_tolerance {
                        let confirmed = s.run >= cfg.enter_windows
                            || f64::from(s.pending_peak.1) >= cfg.instant_surprise;
                        if confirmed {
                            remember(s, f64::from(s.pending_size));
                        }
                        s.state = SeriesState::Normal;
                        s.run = 0;
                    }
                }
                SeriesState::Normal => {}
                SeriesState::Outage => {
                    if anomalous {
                        if fast {
                            remember(s, size);
                        }
                        s.run = 0;
                        if let Some(inc) = &mut s.incident {
                            inc.peak_ratio = inc.peak_ratio.max(ratio);
                            inc.peak_surprise = inc.peak_surprise.max(surprise);
                            for (p, n) in inc.problems.iter_mut().zip(acc.problems) {
                                *p += u64::from(n);
                            }
                        }
                    } else {
                        s.run += 1;
                        if s.run >= cfg.resolve_windows {
                            s.state = SeriesState::Normal;
                            s.run = 0;
                            // The slow sums restart as if the span had been
                            // normal: the outage's excess must not linger in
                            // them for hours and page its own tail.
                            s.slow.0 = s.slow.1;
                            if let Some(mut inc) = s.incident.take() {
                                inc.resolved_at_ms =
                                    Some(window_end - i64::from(cfg.resolve_windows) * width);
                                if idx != global {
                                    self.events.push(Event::Resolved(*inc));
                                }
                            }
                        }
                    }
                }
            }

            // Every anomalous window sets the slow memory too: the slow sums
            // of an outage's tail must not page it again.
            if anomalous && slow_decay > 0.0 && burst_half_life_ms > 0.0 {
                let bar = decayed(s.slow_burst, w.start_ms, burst_half_life_ms);
                s.slow_burst = (bar.max(slow_ratio) as f32, burst_minute(w.start_ms));
            }
            s.last = (c, mu as f32);
            if s.state == SeriesState::Normal && !anomalous && learn_ok {
                let mut learned = f64::from(c);
                if trusted {
                    learned = learned.min(score::noise_ceiling(mu, k_disp));
                }
                s.baseline.learn_with_shape(slot, learned, shape, &rates);
            }
            if (c > 0 || mu >= 0.5) && self.services[sid].live {
                self.events.push(Event::Window(WindowScore {
                    window_start_ms: w.start_ms,
                    service: service_name.clone(),
                    scope: s.scope,
                    observed: c,
                    expected: mu,
                    surprise,
                    ratio,
                    anomalous,
                    state: s.state,
                }));
            }
        }
        self.update_global_incident(sid, w.start_ms + width);
    }

    fn update_global_incident(&mut self, sid: usize, window_end: i64) {
        let cfg = &self.config;
        let span = cfg.global_span.as_millis() as i64;
        let svc = &self.services[sid];
        let global = &self.series[svc.global as usize];
        let global_out = global.state == SeriesState::Outage;
        let mut regions: Vec<SpreadEntry> = svc
            .series
            .iter()
            .map(|&i| &self.series[i as usize])
            .filter(|s| s.scope != Scope::Global)
            .filter_map(|s| s.incident.as_ref().map(|inc| (s, inc)))
            .map(|(s, inc)| SpreadEntry {
                region: match s.scope {
                    Scope::Region(c) => c,
                    Scope::Global => Country::UNKNOWN,
                },
                started_at_ms: inc.started_at_ms,
                peak_ratio: inc.peak_ratio,
            })
            .collect();
        regions.sort_by(|a, b| {
            a.started_at_ms
                .cmp(&b.started_at_ms)
                .then(a.region.cmp(&b.region))
        });
        let recent = regions
            .iter()
            .filter(|r| r.started_at_ms >= window_end - span)
            .count() as u32;
        let name = svc.name.clone();
        let problems = |regions: &[SpreadEntry], series: &[Series], svc: &Service| {
            let mut p = [0u64; 8];
            if let Some(inc) = &series[svc.global as usize].incident {
                p = inc.problems;
            } else {
                for &i in &svc.series {
                    if let Some(inc) = &series[i as usize].incident {
                        if regions
                            .iter()
                            .any(|r| Scope::Region(r.region) == series[i as usize].scope)
                        {
                            for (a, b) in p.iter_mut().zip(inc.problems) {
                                *a += b;
                            }
                        }
                    }
                }
            }
            p
        };
        match &self.services[sid].incident {
            None => {
                // The global series alone opens a global incident when no
                // single region explains it: a diffuse worldwide rise (no
                // region in outage) or a spreading one (several).
                let explained_by_one = regions.len() == 1 && {
                    let lone = svc
                        .series
                        .iter()
                        .map(|&i| &self.series[i as usize])
                        .find(|s| s.scope != Scope::Global && s.incident.is_some());
                    let excess = |s: &Series| f64::from(s.last.0) - f64::from(s.last.1);
                    lone.is_some_and(|r| excess(r) >= 0.8 * excess(global))
                };
                // Only while the worldwide series' latest window is itself
                // anomalous (in outage, `run` counts the normal windows
                // since): in its resolve tail every window is near its
                // expectation, and a lone region's excess no longer
                // explains anything.
                let global_rising = global_out && global.run == 0;
                if (global_rising && !explained_by_one) || recent >= cfg.global_min_regions {
                    let started = regions
                        .iter()
                        .map(|r| r.started_at_ms)
                        .chain(global.incident.as_ref().map(|i| i.started_at_ms))
                        .min()
                        .unwrap_or(window_end);
                    let incident = Incident {
                        id: stable_id(&[&name, "global", &started.to_string()]),
                        service: name,
                        scope: Scope::Global,
                        problems: problems(&regions, &self.series, &self.services[sid]),
                        peak_ratio: global.incident.as_ref().map_or(0.0, |i| i.peak_ratio),
                        peak_surprise: global.incident.as_ref().map_or(0.0, |i| i.peak_surprise),
                        regions,
                        started_at_ms: started,
                        detected_at_ms: window_end,
                        resolved_at_ms: None,
                    };
                    self.events.push(Event::Opened(incident.clone()));
                    self.services[sid].incident = Some(incident);
                }
            }
            Some(current) => {
                let mut inc = current.clone();
                if let Some(g) = &global.incident {
                    inc.peak_ratio = inc.peak_ratio.max(g.peak_ratio);
                    inc.peak_surprise = inc.peak_surprise.max(g.peak_surprise);
                }
                let mut joined = false;
                for r in &regions {
                    match inc.regions.iter_mut().find(|e| e.region == r.region) {
                        Some(e) => e.peak_ratio = e.peak_ratio.max(r.peak_ratio),
                        None => {
                            inc.regions.push(r.clone());
                            joined = true;
                        }
                    }
                }
                let p = problems(&regions, &self.series, &self.services[sid]);
                for (a, b) in inc.problems.iter_mut().zip(p) {
                    *a = (*a).max(b);
                }
                if !global_out && regions.is_empty() {
                    inc.resolved_at_ms = Some(window_end);
                    self.events.push(Event::Resolved(inc));
                    self.services[sid].incident = None;
                } else {
                    if joined {
                        self.events.push(Event::Updated(inc.clone()));
                    }
                    self.services[sid].incident = Some(inc);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::Region;
    use std::borrow::Cow;

    const MIN: i64 = 60_000;
    const T0: i64 = 1_537_747_200_000; // Monday 2018-09-24 00:00 UTC

    fn report(
        service: &str,
        region: &str,
        ts_ms: i64,
        reporter: Option<String>,
    ) -> Report<'static> {
        Report {
            service: Cow::Owned(service.into()),
            region: Region::parse(region).unwrap(),
            ts_ms,
            problem: Problem::Voice,
            reporter: reporter.map(Cow::Owned),
            source: None,
        }
    }

    /// Deterministic pseudo-random count around `mean` (±30 %).
    fn noisy(mean: f64, seed: u64) -> u32 {
        let x = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let u = ((x >> 33) as f64) / f64::from(u32::MAX >> 1);
        (mean * (0.7 + 0.6 * u)).round() as u32
    }

    /// Feeds `minutes` of traffic: `rate(region, minute)` reports per minute.
    fn feed(
        d: &mut Detector,
        from: i64,
        minutes: i64,
        regions: &[&str],
        rate: impl Fn(&str, i64) -> f64,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        for m in 0..minutes {
            let t = from + m * MIN;
            for (ri, r) in regions.iter().enumerate() {
                let n = noisy(rate(r, t), (t / MIN) as u64 * 31 + ri as u64);
                for i in 0..n {
                    d.observe(&report(
                        "alexa",
                        r,
                        t + i64::from(i) * 50,
                        Some(format!("{r}{t}{i}")),
                    ));
                }
            }
            events.extend(d.drain_events());
        }
        events
    }

    fn diurnal(base: f64, t: i64) -> f64 {
        let h = (t / 3_600_000 % 24) as f64;
        base * (1.0 + 0.6 * ((h - 6.0) / 24.0 * std::f64::consts::TAU).sin())
    }

    fn opened(events: &[Event]) -> Vec<&Incident> {
        events
            .iter()
            .filter_map(|e| {
                if let Event::Opened(i) = e {
                    Some(i)
                } else {
                    None
                }
            })
            .collect()
    }

    #[test]
    fn quiet_on_normal_traffic_then_detects_an_outage_and_resolves() {
        let mut d = Detector::new(DetectorConfig::default());
        let regions = ["GB", "DE", "FR", "US"];
        let warm = feed(&mut d, T0, 3 * 1440, &regions, |_, t| diurnal(20.0, t));
        assert!(
            opened(&warm).is_empty(),
            "false incidents: {:?}",
            opened(&warm)
        );
        let start = T0 + 3 * 1440 * MIN;
        let outage = feed(&mut d, start, 30, &regions, |r, t| {
            let base = diurnal(20.0, t);
            if r == "GB" && t >= start + 10 * MIN {
                base * 6.0
            } else {
                base
            }
        });
        let inc = opened(&outage);
        assert_eq!(inc.len(), 1, "{inc:?}");
        assert_eq!(inc[0].scope, Scope::Region(Country::parse("GB").unwrap()));
        assert_eq!(inc[0].started_at_ms, start + 10 * MIN);
        assert!(
            inc[0].detected_at_ms <= start + 12 * MIN,
            "detected within 2 windows"
        );
        let after = feed(&mut d, start + 30 * MIN, 30, &regions, |_, t| {
            diurnal(20.0, t)
        });
        assert!(after
            .iter()
            .any(|e| matches!(e, Event::Resolved(i) if i.id == inc[0].id)));
    }

    #[test]
    fn spam_from_few_reporters_is_not_an_outage() {
        let mut d = Detector::new(DetectorConfig::default());
        feed(&mut d, T0, 2 * 1440, &["GB", "DE"], |_, t| diurnal(20.0, t));
        let start = T0 + 2 * 1440 * MIN;
        for m in 0..10 {
            for i in 0..500 {
                d.observe(&report(
                    "alexa",
                    "GB",
                    start + m * MIN + i,
                    Some(format!("spammer{}", i % 4)),
                ));
            }
            feed(&mut d, start + m * MIN, 1, &["GB", "DE"], |_, t| {
                diurnal(20.0, t)
            });
        }
        let events = feed(&mut d, start + 10 * MIN, 5, &["GB", "DE"], |_, t| {
            diurnal(20.0, t)
        });
        assert!(opened(&events).is_empty());
        assert!(d.counters().duplicates >= 4_900);
    }

    /// 10-minute bursts of ×factor in GB at 09:00 on the given days: the
    /// days on which a GB region incident opens.
    fn gb_burst_pages(config: DetectorConfig, bursts: &[(i64, f64)]) -> Vec<i64> {
        let at_nine: Vec<_> = bursts.iter().map(|&(day, f)| (day, 540, 10, f)).collect();
        gb_bursts_at(config, &at_nine)
    }

    /// Bursts in GB of (day, minute of the day, minutes, ×factor) over a
    /// diurnal 8–32 reports a minute: the days on which a GB region
    /// incident opens.
    fn gb_bursts_at(config: DetectorConfig, bursts: &[(i64, i64, i64, f64)]) -> Vec<i64> {
        let mut d = Detector::new(config);
        let days = bursts.iter().map(|b| b.0).max().unwrap() + 1;
        let events = feed(&mut d, T0, days * 1440, &["GB", "DE"], |r, t| {
            let base = diurnal(20.0, t);
            let (day, minute) = ((t - T0) / (1440 * MIN), (t - T0) / MIN % 1440);
            let burst = bursts
                .iter()
                .find(|b| b.0 == day && (b.1..b.1 + b.2).contains(&minute));
            match burst {
                Some(&(.., factor)) if r == "GB" => base * factor,
                _ => base,
            }
        });
        opened(&events)
            .into_iter()
            .filter(|i| i.scope != Scope::Global)
            .map(|i| (i.started_at_ms - T0) / (1440 * MIN))
            .collect()
    }

    #[test]
    fn smaller_bursts_after_a_big_one_do_not_page_until_it_fades() {
        let bursts = [(2, 20.0), (3, 6.0), (4, 6.0), (5, 30.0)];
        assert_eq!(gb_burst_pages(DetectorConfig::default(), &bursts), [2, 5]);
        let forgetful = DetectorConfig {
            burst_memory: Duration::ZERO,
            ..DetectorConfig::default()
        };
        assert_eq!(gb_burst_pages(forgetful, &bursts), [2, 3, 4, 5]);
        // A week later the memory has faded: the small burst pages.
        let weekly = [(2, 20.0), (9, 6.0)];
        assert_eq!(gb_burst_pages(DetectorConfig::default(), &weekly), [2, 9]);
    }

    #[test]
    fn windows_start_at_the_configured_offset() {
        let config = DetectorConfig {
            window: Duration::from_secs(300),
            window_offset: Duration::from_secs(173),
            ..DetectorConfig::default()
        };
        assert!(config.validate().is_ok());
        let mut d = Detector::new(config.clone());
        // 10:02:53 opens a window; 10:07:52 is still in it, 10:07:53 is not.
        let t = T0 + 10 * 3_600_000 + 173_000;
        for ts in [t, t + 299_999, t + 300_000, t + 600_000 + 29_000] {
            d.observe(&report("alexa", "GB", ts, None));
        }
        let starts: Vec<i64> = d
            .drain_events()
            .filter_map(|e| match e {
                Event::Window(w) if w.scope == Scope::Global => Some(w.window_start_ms),
                _ => None,
            })
            .collect();
        assert_eq!(starts, [t]);
        let w = d.open.iter().map(|w| w.start_ms).collect::<Vec<_>>();
        assert_eq!(w, [t + 300_000, t + 600_000]);
        let too_far = DetectorConfig {
            window_offset: Duration::from_secs(300),
            ..config
        };
        assert!(too_far.validate().unwrap_err().contains("window_offset"));
    }

    #[test]
    fn burst_and_slow_settings_below_one_or_nan_are_refused() {
        for (margin, slow_ratio, field) in [
            (0.9, 1.7, "burst_margin"),
            (f64::NAN, 1.7, "burst_margin"),
            (1.3, 0.5, "slow_min_ratio"),
            (1.3, f64::NAN, "slow_min_ratio"),
        ] {
            let config = DetectorConfig {
                burst_margin: margin,
                slow_min_ratio: slow_ratio,
                ..DetectorConfig::default()
            };
            let e = config.validate().unwrap_err();
            assert!(e.contains(field), "{e}");
        }
        assert!(DetectorConfig::default().validate().is_ok());
    }

    #[test]
    fn a_burst_is_sized_against_the_series_level_not_the_hour() {
        // 20× at midnight, when 8 a minute are due: 160 a minute.
        let night = (2, 0, 10, 20.0);
        // At noon 32 are due. 7× is 224 a minute: a third of the ratio but
        // a bigger burst, so it pages ...
        assert_eq!(
            gb_bursts_at(DetectorConfig::default(), &[night, (2, 720, 10, 7.0)]),
            [2, 2]
        );
        // ... while 5× is the same 160 a minute again: held back.
        assert_eq!(
            gb_bursts_at(DetectorConfig::default(), &[night, (2, 720, 10, 5.0)]),
            [2]
        );
    }

    #[test]
    fn a_burst_held_back_pages_once_it_outgrows_the_memory() {
        // 10× for ten minutes on day 2; on day 3 a burst that starts below
        // that and climbs 1× a minute to 24×. Its own held-back windows do
        // not raise the bar it is judged against, so it pages on the way up.
        let mut bursts = vec![(2, 540, 10, 10.0)];
        bursts.extend((0..19).map(|i| (3, 540 + i, 1, 6.0 + i as f64)));
        assert_eq!(gb_bursts_at(DetectorConfig::default(), &bursts), [2, 3]);
    }

    #[test]
    fn a_lone_anomalous_window_leaves_no_burst_memory() {
        // LU sees one report a minute. On day 2 one minute has ~14:
        // anomalous (and bigger than what follows) but alone, so it opens
        // nothing (no window opens an outage at once here). On day 3 ten
        // minutes of ~11 a minute are an outage that must page.
        let config = DetectorConfig {
            instant_surprise: 20.0,
            ..DetectorConfig::default()
        };
        let lu_pages = |blip: bool| {
            let mut d = Detector::new(config.clone());
            let events = feed(&mut d, T0, 4 * 1440, &["GB", "LU"], |r, t| {
                let minute = (t - T0) / MIN;
                match r {
                    "LU" if blip && minute == 2 * 1440 + 540 => 14.0,
                    "LU" if (3 * 1440 + 540..3 * 1440 + 550).contains(&minute) => 11.0,
                    "LU" => 1.0,
                    _ => diurnal(20.0, t),
                }
            });
            let lu = Scope::Region(Country::parse("LU").unwrap());
            opened(&events)
                .into_iter()
                .filter(|i| i.scope == lu)
                .map(|i| (i.started_at_ms - T0) / (1440 * MIN))
                .collect::<Vec<_>>()
        };
        assert_eq!(lu_pages(false), [3]);
        assert_eq!(lu_pages(true), [3]);
    }

    #[test]
    fn a_slow_burn_under_min_count_opens_an_outage_on_the_slow_scale() {
        let run = |config: DetectorConfig| {
            let mut d = Detector::new(config);
            let regions = ["GB", "LU"];
            let rate = |r: &str, t: i64| if r == "LU" { 1.0 } else { diurnal(20.0, t) };
            // A month: the hour of the week of the burn is well known.
            let warm = feed(&mut d, T0, 30 * 1440, &regions, rate);
            assert!(opened(&warm).is_empty(), "{:?}", opened(&warm));
            let start = T0 + 30 * 1440 * MIN;
            // LU at seven times its usual report a minute: at most 9 with
            // the noise, under min_count in every window.
            let burn = feed(&mut d, start, 90, &regions, |r, t| {
                rate(r, t) * if r == "LU" { 7.0 } else { 1.0 }
            });
            let after = feed(&mut d, start + 90 * MIN, 30, &regions, rate);
            let lu = opened(&burn)
                .into_iter()
                .filter(|i| i.scope == Scope::Region(Country::parse("LU").unwrap()))
                .cloned()
                .collect::<Vec<_>>();
            let resolved = after
                .iter()
                .any(|e| matches!(e, Event::Resolved(i) if lu.iter().any(|o| o.id == i.id)));
            (lu, resolved)
        };
        let (lu, resolved) = run(DetectorConfig::default());
        assert_eq!(lu.len(), 1, "{lu:?}");
        let start = T0 + 30 * 1440 * MIN;
        // The 6-hour sums pass 1.7× after about an hour (the hour's slot
        // learns part of the burn while nothing is flagged yet).
        assert!(lu[0].detected_at_ms <= start + 75 * MIN, "{lu:?}");
        assert!(resolved, "resolves once the reports fall back");
        let fast_only = DetectorConfig {
            slow_span: Duration::ZERO,
            ..DetectorConfig::default()
        };
        assert!(run(fast_only).0.is_empty());
    }

    #[test]
    fn a_global_incident_follows_the_spread() {
        let mut d = Detector::new(DetectorConfig::default());
        let regions = ["GB", "DE", "FR", "US", "JP", "AU"];
        feed(&mut d, T0, 2 * 1440, &regions, |_, t| diurnal(15.0, t));
        let start = T0 + 2 * 1440 * MIN;
        let events = feed(&mut d, start, 60, &regions, |r, t| {
            let i = regions.iter().position(|x| *x == r).unwrap() as i64;
            let base = diurnal(15.0, t);
            let joins = if i < 3 { i * 2 } else { i * 6 };
            if t >= start + 5 * MIN + joins * MIN {
                base * 8.0
            } else {
                base
            }
        });
        let global: Vec<&Event> = events
            .iter()
            .filter(
                |e| matches!(e, Event::Opened(i) | Event::Updated(i) if i.scope == Scope::Global),
            )
            .collect();
        let Event::Opened(first) = global[0] else {
            panic!("{global:?}")
        };
        assert!(
            first.detected_at_ms <= start + 5 * MIN + 5 * MIN,
            "global within 5 min of the first region"
        );
        let last = match global.last().unwrap() {
            Event::Opened(i) | Event::Updated(i) => i,
            _ => unreachable!(),
        };
        let order: Vec<&str> = last.regions.iter().map(|r| r.region.as_str()).collect();
        assert_eq!(order, regions.to_vec());
    }

    #[test]
    fn dormant_services_stay_quiet_until_their_next_report() {
        let windows = |d: &mut Detector| -> Vec<String> {
            d.drain_events()
                .filter_map(|e| match e {
                    Event::Window(w) => Some(w.service),
                    _ => None,
                })
                .collect()
        };
        let mut d = Detector::new(DetectorConfig::default());
        for m in 0..10 {
            d.observe(&report("a", "GB", T0 + m * MIN, None));
            d.observe(&report("b", "GB", T0 + m * MIN, None));
        }
        assert!(windows(&mut d).contains(&"a".to_string()));
        d.dormant();
        for m in 10..20 {
            d.observe(&report("b", "GB", T0 + m * MIN, None));
        }
        let w = windows(&mut d);
        assert!(
            w.contains(&"b".to_string()) && !w.contains(&"a".to_string()),
            "{w:?}"
        );
        d.observe(&report("a", "GB", T0 + 20 * MIN, None));
        d.observe(&report("b", "GB", T0 + 22 * MIN, None));
        assert!(windows(&mut d).contains(&"a".to_string()), "live again");
    }

    #[test]
    fn late_reports_are_counted_as_late() {
        let mut d = Detector::new(DetectorConfig::default());
        d.observe(&report("s", "GB", T0 + 10 * MIN, None));
        assert_eq!(
            d.observe(&report("s", "GB", T0 + 8 * MIN, None)),
            Observed::Late
        );
        assert_eq!(
            d.observe(&report("s", "GB", T0 + 10 * MIN - 20_000, None)),
            Observed::Late,
            "window closed at T0+10m - 30s"
        );
        assert_eq!(
            d.observe(&report("s", "GB", T0 + 10 * MIN + 5, None)),
            Observed::Counted
        );
        assert_eq!(d.counters().late, 2);
    }

    #[test]
    fn idle_partitions_close_windows_by_the_wall_clock() {
        let mut d = Detector::new(DetectorConfig::default());
        d.observe(&report("s", "GB", T0, None));
        d.tick(T0);
        assert!(d.drain_events().next().is_none());
        d.tick(T0 + 20_000);
        d.tick(T0 + 95_000);
        let rows: Vec<Event> = d.drain_events().collect();
        assert!(rows
            .iter()
            .any(|e| matches!(e, Event::Window(w) if w.observed == 1 && w.window_start_ms == T0)));
    }

    #[test]
    fn snapshot_restore_continue_is_identical() {
        let regions = ["GB", "DE", "FR"];
        let rate = |r: &str, t: i64| {
            let base = diurnal(10.0, t);
            if r == "DE" && (T0 + 1500 * MIN..T0 + 1530 * MIN).contains(&t) {
                base * 7.0
            } else {
                base
            }
        };
        let mut a = Detector::new(DetectorConfig::default());
        let mut whole = feed(&mut a, T0, 1600, &regions, rate);
        let mut b = Detector::new(DetectorConfig::default());
        let mut split = feed(&mut b, T0, 1000, &regions, rate);
        let mut c = Detector::from_snapshot(&b.to_snapshot()).unwrap();
        split.extend(feed(&mut c, T0 + 1000 * MIN, 600, &regions, rate));
        a.flush();
        c.flush();
        whole.extend(a.drain_events());
        split.extend(c.drain_events());
        assert_eq!(whole.len(), split.len());
        assert!(whole == split, "restored detector diverged");
        assert!(
            !opened(&whole).is_empty(),
            "the scenario has an outage to compare"
        );
    }

    #[test]
    fn foreign_or_newer_snapshots_are_refused() {
        let d = Detector::new(DetectorConfig::default());
        let mut newer = d.to_snapshot();
        newer[8..12].copy_from_slice(&99u32.to_le_bytes());
        assert!(matches!(
            Detector::from_snapshot(&newer),
            Err(SnapshotError::Version { found: 99 })
        ));
        let mut truncated = d.to_snapshot();
        truncated.truncate(truncated.len() / 2);
        assert!(matches!(
            Detector::from_snapshot(&truncated),
            Err(SnapshotError::Malformed(_))
        ));
        // Version 1 (JSON, earlier builds) still restores.
        let v1 = serde_json::to_vec(&Envelope {
            format: SNAPSHOT_FORMAT.into(),
            version: 1,
            detector: &d,
        })
        .unwrap();
        assert!(Detector::from_snapshot(&v1).is_ok());
        let v9 = String::from_utf8(v1)
            .unwrap()
            .replacen("\"version\":1", "\"version\":9", 1);
        assert!(matches!(
            Detector::from_snapshot(v9.as_bytes()),
            Err(SnapshotError::Version { found: 9 })
        ));
        assert!(matches!(
            Detector::from_snapshot(b"{\"format\":\"x\",\"version\":1}"),
            Err(SnapshotError::Format { .. })
        ));
        assert!(matches!(
            Detector::from_snapshot(b"garbage"),
            Err(SnapshotError::Malformed(_))
        ));
    }

    #[test]
    fn incident_ids_are_stable() {
        assert_eq!(
            stable_id(&["alexa", "region", "GB", "1"]),
            stable_id(&["alexa", "region", "GB", "1"])
        );
        assert_ne!(
            stable_id(&["alexa", "region", "GB", "1"]),
            stable_id(&["alexa", "region", "GB1", ""])
        );
    }
}
