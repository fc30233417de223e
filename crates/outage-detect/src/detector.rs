//! The detector of one Kafka partition: event-time windows per series,
//! seasonal baselines, multi-scale scoring, hysteresis and incidents.
//!
//! Pure and deterministic: time comes only from report timestamps, the
//! stream time the caller passes to [`Detector::observe_at`] and the `now`
//! passed to [`Detector::tick`]. All state is plain data (serde), so a
//! snapshot restored elsewhere continues bit-for-bit. Output goes to an
//! event buffer the caller drains; nothing here blocks or allocates per
//! report on the hot path except for a first-seen service or series. The
//! rule that decides a page lives in [`crate::scan`]; one series' window
//! (scored, stepped through its states, learned from) in
//! `detector/series.rs`; the windows still open in `detector/window.rs`;
//! a service's global incident in `detector/global.rs`, the windows held
//! back from learning in `detector/held.rs`, eviction and snapshot checks
//! in `detector/slots.rs`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};

use rustc_hash::FxHasher;
use serde::{Deserialize, Serialize};
use siphasher::sip::SipHasher13;

mod global;
mod held;
mod series;
mod slots;
mod window;

use held::HELD;
use series::{PendingRun, Series, ServiceWindow};
use window::{Acc, OpenWindow};

use crate::baseline::{Baseline, LearnRates, WeekPos};
pub use crate::config::{ConfigError, DetectorConfig};
pub use crate::event::{
    DetectorCounters, Event, Incident, Observed, Scope, SeriesState, SpreadEntry, WindowScore,
};
use crate::mix::Mix;
use crate::recur::Recurrence;
use crate::region::Country;
use crate::regional::RegionalFactors;
use crate::report::Report;
use crate::scan::Thresholds;
pub use crate::snapshot::{SnapshotError, SNAPSHOT_VERSION};

type FxBuild = BuildHasherDefault<FxHasher>;

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
    live: bool,
    /// Event time of its newest report (eviction after `service_ttl`).
    last_report_ms: i64,
    /// The problem mix of its normal windows (`crate::mix`).
    mix: Mix,
}

impl Service {
    fn free() -> Service {
        Service {
            name: String::new(),
            regions: Vec::new(),
            global: u32::MAX,
            series: Vec::new(),
            incident: None,
            low_run: 0,
            live: false,
            last_report_ms: i64::MIN,
            mix: Mix::default(),
        }
    }

    /// An evicted service's slot, kept for reuse (names are never empty).
    fn is_free(&self) -> bool {
        self.name.is_empty()
    }
}

/// Per-window constants derived from the configuration.
#[derive(Clone, Copy)]
struct CloseParams {
    rates: LearnRates,
    thresholds: Thresholds,
    min_history_windows: u32,
    windows_per_day: u32,
    /// Per-window decay of the episode count.
    recur_decay: f32,
}

/// Most distinct reporters one window de-duplicates (a few MB); reports of
/// further reporters in that window are counted without the check, so a
/// flood of made-up reporter ids cannot grow memory without bound.
pub const MAX_REPORTERS_PER_WINDOW: usize = 1 << 20;

/// The detector state of one partition.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Detector {
    config: DetectorConfig,
    /// Indexed by service id; evicted services leave a free slot.
    services: Vec<Service>,
    /// Service ids by name, hashed with a key of this process (names come
    /// from reporters: no one can aim collisions at it). Rebuilt on restore.
    #[serde(skip)]
    service_ids: HashMap<String, u32, std::hash::RandomState>,
    /// Free slots of `services` and `series`, reused before growing.
    free_services: Vec<u32>,
    free_series: Vec<u32>,
    series: Vec<Series>,
    /// SipHash-1-3 key of the (service, reporter) hashes that de-duplicate
    /// reports: secret and random, kept in the snapshot so that a restored
    /// detector recognises the reporters it saw.
    reporter_key: (u64, u64),
    open: VecDeque<OpenWindow>,
    /// The last closed window's reporters (start, hashes): a reporter
    /// counts once per service over any two consecutive windows.
    recent_seen: (i64, HashSet<u64, FxBuild>),
    /// Start of the oldest window that is not closed yet.
    next_close_ms: Option<i64>,
    /// Stream time: what the caller said (record timestamps, a robust
    /// clock), never a lone report's `ts`.
    stream_ms: i64,
    last_activity_wall_ms: Option<i64>,
    activity_since_tick: bool,
    counters: DetectorCounters,
    /// Distinct reporters of the last closed window (sizing hint).
    last_window_reporters: usize,
    /// Service of the previous report (lookup shortcut).
    last_service: u32,
    /// Services of recent reports by a cheap hash of their name (lookup
    /// shortcut; see [`Detector::service_id`]).
    #[serde(skip)]
    service_cache: ServiceCache,
    #[serde(skip)]
    events: Vec<Event>,
    /// Windows released by [`Held`] while a service's windows close:
    /// (series, window index, count), learned once all are scored.
    #[serde(skip)]
    to_learn: Vec<(u32, u32, f32)>,
    /// What each region's services share in the window being closed.
    #[serde(skip)]
    regional: RegionalFactors,
}

/// Service ids by a cheap, unkeyed hash of the name, direct-mapped: a
/// hint checked against the service's name, never the authority (the
/// keyed map is), so names made to collide here cost a miss, nothing more.
#[derive(Clone, Debug)]
struct ServiceCache([u32; ServiceCache::SLOTS]);

impl ServiceCache {
    const SLOTS: usize = 64;

    fn slot(name: &str) -> usize {
        let mut h = FxHasher::default();
        h.write(name.as_bytes());
        (h.finish() >> 58) as usize
    }
}

impl Default for ServiceCache {
    fn default() -> ServiceCache {
        ServiceCache([u32::MAX; ServiceCache::SLOTS])
    }
}

/// A key no reporter can guess: from the OS's randomness via std.
fn random_key() -> (u64, u64) {
    use std::hash::BuildHasher;
    let state = std::hash::RandomState::new();
    (
        state.hash_one(0x6b65_795f_6130u64),
        state.hash_one(0x6b65_795f_6131u64),
    )
}

/// The de-duplication key of `reporter` in service `sid`: SipHash-1-3,
/// with `key`, of what `Hash` feeds a hasher for `(sid, reporter)` (the
/// id's bytes, the reporter's, then 0xff). Hashed in one call from a
/// stack buffer when it fits (three streaming writes cost an eighth more
/// instructions than the copy and the one call), so the keys, and the
/// snapshots that keep them, are the same either way.
#[inline]
fn reporter_hash(key: (u64, u64), sid: u32, reporter: &str) -> u64 {
    let hasher = SipHasher13::new_with_keys(key.0, key.1);
    let bytes = reporter.as_bytes();
    let mut buf = [0u8; 64];
    let n = bytes.len() + 5;
    if n <= buf.len() {
        buf[..4].copy_from_slice(&sid.to_ne_bytes());
        buf[4..n - 1].copy_from_slice(bytes);
        buf[n - 1] = 0xff;
        hasher.hash(&buf[..n])
    } else {
        let mut h = hasher;
        sid.hash(&mut h);
        reporter.hash(&mut h);
        h.finish()
    }
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
    /// A detector that has learned nothing, with `config`.
    pub fn new(config: DetectorConfig) -> Detector {
        Detector {
            config,
            services: Vec::new(),
            service_ids: HashMap::default(),
            free_services: Vec::new(),
            free_series: Vec::new(),
            series: Vec::new(),
            reporter_key: random_key(),
            open: VecDeque::new(),
            recent_seen: (i64::MIN, HashSet::default()),
            next_close_ms: None,
            stream_ms: i64::MIN,
            last_activity_wall_ms: None,
            activity_since_tick: false,
            counters: DetectorCounters::default(),
            last_window_reporters: 0,
            last_service: 0,
            service_cache: ServiceCache::default(),
            events: Vec::new(),
            to_learn: Vec::new(),
            regional: RegionalFactors::default(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// What it counted so far (the caller exports the increments).
    pub fn counters(&self) -> &DetectorCounters {
        &self.counters
    }

    /// Live series (regions and global) of this partition.
    pub fn series_count(&self) -> usize {
        self.series.len() - self.free_series.len()
    }

    /// Services this partition keeps.
    pub fn service_count(&self) -> usize {
        self.services.len() - self.free_services.len()
    }

    /// Names of the services this detector keeps.
    pub fn services(&self) -> impl Iterator<Item = &str> {
        self.services
            .iter()
            .filter(|s| !s.is_free())
            .map(|s| s.name.as_str())
    }

    /// Bytes held by baselines and series bookkeeping (approximate).
    pub fn memory_bytes(&self) -> usize {
        self.series
            .iter()
            .map(|s| {
                std::mem::size_of::<Series>() + s.baseline.memory_bytes()
                    - std::mem::size_of::<Baseline>()
                    + s.pending
                        .as_ref()
                        .map_or(0, |_| std::mem::size_of::<PendingRun>())
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

    #[inline]
    fn service_id(&mut self, name: &str) -> Option<u32> {
        // Reports are keyed by service, so a partition often sees the same
        // service many times in a row: one short compare beats a hash.
        if let Some(svc) = self.services.get(self.last_service as usize) {
            if svc.name == name {
                return Some(self.last_service);
            }
        }
        // A file or a partition that mixes a few services finds them in a
        // small cache before the keyed map (whose SipHash of the name was a
        // quarter of the detector's instructions on a replay of ten
        // services in random order).
        let slot = ServiceCache::slot(name);
        let cached = self.service_cache.0[slot];
        if let Some(svc) = self.services.get(cached as usize) {
            if svc.name == name && !svc.is_free() {
                self.last_service = cached;
                return Some(cached);
            }
        }
        if let Some(&id) = self.service_ids.get(name) {
            self.last_service = id;
            self.service_cache.0[slot] = id;
            return Some(id);
        }
        if self.series_count() >= self.config.max_series
            || self.service_count() >= self.config.max_services
        {
            return None;
        }
        let id = match self.free_services.pop() {
            Some(id) => id,
            None => {
                self.services.push(Service::free());
                (self.services.len() - 1) as u32
            }
        };
        let global = self.new_series(id, Scope::Global);
        self.services[id as usize] = Service {
            name: name.to_string(),
            regions: vec![u32::MAX; Country::COUNT],
            global,
            series: vec![global],
            incident: None,
            low_run: 0,
            live: true,
            last_report_ms: i64::MIN,
            mix: Mix::default(),
        };
        self.service_ids.insert(name.to_string(), id);
        self.service_cache.0[slot] = id;
        Some(id)
    }

    fn new_series(&mut self, service: u32, scope: Scope) -> u32 {
        let fresh = Series::new(service, scope);
        match self.free_series.pop() {
            Some(id) => {
                self.series[id as usize] = fresh;
                id
            }
            None => {
                self.series.push(fresh);
                (self.series.len() - 1) as u32
            }
        }
    }

    /// Counts one report of a stream whose timestamps are trusted (tests,
    /// benchmarks, a warm start from the simulator): stream time is the
    /// newest `ts` seen. Feeds from devices use [`Detector::observe_at`].
    #[inline]
    pub fn observe(&mut self, report: &Report<'_>) -> Observed {
        let stream = self.stream_ms.max(report.ts_ms);
        self.observe_at(report, stream)
    }

    /// Counts one report; `stream_ms` is the partition's stream time, from
    /// something the reporter does not control (the Kafka record
    /// timestamp, a robust clock over many reports). Windows close up to
    /// stream time minus the allowed lateness; a report dated behind that
    /// is late, and a report dated ahead of it waits in its window without
    /// moving the clock.
    #[inline]
    pub fn observe_at(&mut self, report: &Report<'_>, stream_ms: i64) -> Observed {
        self.activity_since_tick = true;
        let Some(sid) = self.service_id(&report.service) else {
            self.counters.overflow += 1;
            return Observed::Overflow;
        };
        let country = report.region.country_code();
        let ci = country.index();
        let svc = &mut self.services[sid as usize];
        svc.live = true;
        svc.last_report_ms = svc.last_report_ms.max(report.ts_ms);
        let mut region_series = self.services[sid as usize].regions[ci];
        if region_series == u32::MAX && self.series_count() < self.config.max_series {
            region_series = self.new_series(sid, Scope::Region(country));
            let svc = &mut self.services[sid as usize];
            svc.regions[ci] = region_series;
            svc.series.push(region_series);
        }
        let global = self.services[sid as usize].global;
        let start = self.config.window_start(report.ts_ms);
        if self.next_close_ms.is_none() {
            // The first window: at this report, unless it is dated ahead of
            // the stream (then at stream time) or far behind it (then it is
            // late, and windows start at the watermark).
            let lateness = self.config.allowed_lateness.as_millis() as i64;
            let floor = stream_ms
                .saturating_sub(lateness)
                .saturating_sub(self.config.max_gap.as_millis() as i64);
            let first = if report.ts_ms < floor {
                stream_ms.saturating_sub(lateness)
            } else {
                report.ts_ms.min(stream_ms)
            };
            self.next_close_ms = Some(self.config.window_start(first));
        }
        if self.next_close_ms.is_some_and(|c| start < c) {
            self.counters.late += 1;
            self.advance_stream(stream_ms);
            return Observed::Late;
        }
        let key = report
            .reporter
            .as_ref()
            .map(|reporter| reporter_hash(self.reporter_key, sid, reporter));
        let seen_before = key.is_some_and(|k| self.seen_in(start - self.config.width_ms(), k));
        let w = self.window_mut(start);
        let mut unchecked = false;
        if let Some(k) = key {
            if w.seen.len() >= MAX_REPORTERS_PER_WINDOW && !w.seen.contains(&k) {
                unchecked = !seen_before;
            }
            if !unchecked && (!w.seen.insert(k) || seen_before) {
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
        self.counters.unchecked += u64::from(unchecked);
        self.advance_stream(stream_ms);
        result
    }

    #[inline]
    fn advance_stream(&mut self, stream_ms: i64) {
        if stream_ms > self.stream_ms {
            self.stream_ms = stream_ms;
            let lateness = self.config.allowed_lateness.as_millis() as i64;
            let watermark = stream_ms.saturating_sub(lateness);
            // Most reports close nothing: checked here, before the call.
            if self
                .next_close_ms
                .is_some_and(|next| next + self.config.width_ms() <= watermark)
            {
                self.advance_to(watermark);
            }
        }
    }

    /// Whether the window starting at `start` (open, or the last closed)
    /// counted the reporter `key` already.
    #[inline]
    fn seen_in(&self, start: i64, key: u64) -> bool {
        if self.recent_seen.0 == start {
            return self.recent_seen.1.contains(&key);
        }
        self.open
            .iter()
            .rev()
            .find(|w| w.start_ms == start)
            .is_some_and(|w| w.seen.contains(&key))
    }

    #[inline]
    fn window_mut(&mut self, start: i64) -> &mut OpenWindow {
        if self.open.back().is_some_and(|w| w.start_ms == start) {
            return self.open.back_mut().expect("checked above");
        }
        self.window_mut_slow(start)
    }

    /// [`Detector::window_mut`] for a window that is not the newest.
    #[inline(never)]
    fn window_mut_slow(&mut self, start: i64) -> &mut OpenWindow {
        let pos = self.open.iter().rposition(|w| w.start_ms <= start);
        // Size a new window like the last one, so the reporter set does not
        // rehash its way up on every window.
        let (series, reporters) = (
            self.series.len(),
            self.last_window_reporters.min(MAX_REPORTERS_PER_WINDOW),
        );
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

    /// Counts as activity for [`Detector::tick`]: the idle time starts
    /// again (the caller could not tell whether reports are on their way,
    /// e.g. while its broker is unreachable).
    pub fn touch(&mut self) {
        self.activity_since_tick = true;
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
                Some(w) => {
                    self.close(&w);
                    self.recent_seen = (w.start_ms, w.seen);
                }
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
        let rates = LearnRates::new(
            width,
            cfg.level_half_life.as_millis() as i64,
            cfg.profile_half_life.as_millis() as i64,
        );
        let params = CloseParams {
            rates,
            thresholds: Thresholds::new(
                cfg.false_alarms_per_month,
                cfg.windows_per_30d(),
                cfg.min_count,
            ),
            min_history_windows: (cfg.min_history.as_millis() as i64 / width) as u32,
            windows_per_day: (86_400_000 / width) as u32,
            recur_decay: Recurrence::decay_per_window(width),
        };
        // Measured before any series takes this window in: every series of
        // a region is scored against the same state of its neighbours.
        self.regional.clear();
        for s in &self.series {
            if let (Scope::Region(country), Some(share)) =
                (s.scope, s.regional_share(params.min_history_windows))
            {
                self.regional.add(country, share);
            }
        }
        for sid in 0..self.services.len() {
            if !self.services[sid].is_free() {
                self.close_service(sid, w, &params);
            }
        }
        // Once an hour of windows, and at every close while the cap is
        // reached.
        if self
            .counters
            .windows_closed
            .is_multiple_of(u64::from(params.windows_per_day / 24).max(1))
            || self.service_count() >= self.config.max_services
        {
            let ttl = self.config.service_ttl.as_millis() as i64;
            self.evict_idle(w.start_ms + width - ttl);
        }
    }

    fn close_service(&mut self, sid: usize, w: &OpenWindow, params: &CloseParams) {
        let cfg = &self.config;
        let width = cfg.width_ms();
        let pos = WeekPos::of(w.start_ms, width);
        let CloseParams {
            rates,
            thresholds,
            min_history_windows,
            windows_per_day,
            ..
        } = *params;
        let global = self.services[sid].global as usize;
        let g_base = &self.series[global].baseline;
        let (global_shape, global_uncertain) = g_base.shape_and_uncertainty_at(pos, &rates);

        // A service far below its expectation has a data gap or a quiet
        // day: learn nothing from it, unless it lasts a day (a new normal).
        // Far below even the low end of what the hour could be (two
        // standard deviations of the worldwide hour's guess down): on a
        // series' first day an hour not seen yet is expected at the
        // level, and where the day swings fourfold its trough is below
        // 0.3 of it, so the whole service learned nothing for hours and
        // those hours stayed unseen (EVALUATION.md, twenty-third session).
        let g_acc = w.get(global as u32);
        let g_mu = g_base.expected_with(global_shape, None, &rates);
        let g_low_end = g_mu * (-2.0 * global_uncertain.sqrt()).exp();
        let low = g_mu >= 20.0 && f64::from(g_acc.count) < 0.3 * g_low_end;
        let svc = &mut self.services[sid];
        svc.low_run = if low {
            svc.low_run.saturating_add(1)
        } else {
            0
        };
        let learn_ok = svc.low_run == 0 || svc.low_run > windows_per_day;

        let n = self.services[sid].series.len();
        // Another region of the service is in an outage (as the window
        // began): the others page on the spreading bar (`scan` module doc).
        let spreading = self.services[sid]
            .series
            .iter()
            .any(|&i| i as usize != global && self.series[i as usize].state == SeriesState::Outage);
        // The service's problem shares, as they stand before this window
        // teaches them (the worldwide series' window is learned last).
        let shares = self.services[sid].mix.shares();
        let win = ServiceWindow {
            cfg,
            params,
            start_ms: w.start_ms,
            at: w.start_ms.div_euclid(width) as u32,
            service: &self.services[sid].name,
            spreading,
            shares: shares.as_ref(),
            learn_ok,
            live: self.services[sid].live,
        };
        let mut mix_learned = None;
        for k in 0..n {
            let idx = self.services[sid].series[k] as usize;
            let acc = w.get(idx as u32);
            let worldwide = idx == global;
            let borrowed = if worldwide { None } else { global_shape };
            let common = match self.series[idx].scope {
                Scope::Region(country) => self.regional.factor(
                    country,
                    self.series[idx].regional_share(min_history_windows),
                ),
                Scope::Global => 1.0,
            };
            let mix_ok = self.series[idx].close_window(
                idx as u32,
                worldwide,
                &acc,
                borrowed,
                common,
                &win,
                &mut self.to_learn,
                &mut self.events,
            );
            if mix_ok && worldwide {
                mix_learned = Some(acc.problems);
            }
        }
        if let Some(problems) = mix_learned {
            self.services[sid].mix.learn(&problems, rates.level);
        }
        self.learn_released(global, w.start_ms, &rates);
        self.update_global_incident(sid, w.start_ms + width, pos, &rates, &thresholds);
    }

    /// Learns the windows [`Held`] released while the windows of a service
    /// closed at `now_start_ms`, each at its own hour of the week.
    fn learn_released(&mut self, global: usize, now_start_ms: i64, rates: &LearnRates) {
        let width = self.config.width_ms();
        let at = now_start_ms.div_euclid(width) as u32;
        let mut released = std::mem::take(&mut self.to_learn);
        // The worldwide shape lent at a released window's start, computed
        // once for all the series that release it (until the worldwide
        // series itself learns), and only for those that still borrow (a
        // learned profile ignores it).
        let mut lent: Option<(u32, Option<f64>)> = None;
        for &(idx, i, count) in &released {
            let start = now_start_ms - i64::from(at.wrapping_sub(i)) * width;
            let idx = idx as usize;
            let borrowed = if idx == global || self.series[idx].baseline.profile_learned(rates) {
                None
            } else {
                match lent {
                    Some((at_i, shape)) if at_i == i => shape,
                    _ => {
                        let shape = self.series[global]
                            .baseline
                            .shape_at(WeekPos::of(start, width), rates);
                        lent = Some((i, shape));
                        shape
                    }
                }
            };
            let s = &mut self.series[idx];
            let pos = WeekPos::local(start, width, s.scope.zone());
            let shape = s.baseline.shape_in_use_at(pos, borrowed, rates);
            s.baseline
                .learn_with_shape(pos.slot, f64::from(count), shape, rates);
            if idx == global {
                // The lender learned: what it lends is computed again.
                lent = None;
            }
        }
        released.clear();
        self.to_learn = released;
    }
}

#[cfg(test)]
mod tests;
