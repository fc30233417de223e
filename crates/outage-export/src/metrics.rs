//! Prometheus metrics of the detection side: one set of gauges per
//! (service, region) series, per-service rollups, and the pipeline health
//! figures an operator needs at 3 a.m.
//!
//! Label values come from bounded sets only: regions are ISO 3166-1 codes
//! plus `global` (and `ZZ`); services are bounded by `max_series` (the
//! detector's own bound is the first line); partitions by the topic. Series
//! quiet for `series_ttl` of event time are removed so a region that stops
//! reporting does not linger in /metrics forever.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use outage_detect::ConfigError;
use outage_detect::{Incident, IncidentEvent, Scope, SeriesState, WindowScore};
use prometheus::{
    GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};
use serde::{Deserialize, Serialize};

/// `[metrics]`: bounds on what /metrics exposes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// A series without a scored window for this long (event time)
    /// disappears from /metrics. Default `1h`.
    #[serde(with = "humantime_serde")]
    pub series_ttl: Duration,
    /// Most (service, region) series exported at once; windows of further
    /// series are counted in `outage_radar_exported_series_dropped_total`.
    /// Default `100000`.
    pub max_series: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            series_ttl: Duration::from_secs(3600),
            max_series: 100_000,
        }
    }
}

impl MetricsConfig {
    /// Errors name the `[metrics]` key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.series_ttl.is_zero() {
            return Err(ConfigError::new("metrics.series_ttl", "must be positive"));
        }
        if self.max_series == 0 {
            return Err(ConfigError::new("metrics.max_series", "must be at least 1"));
        }
        Ok(())
    }
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

/// The last scored window of one series, as exported.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LastWindow {
    /// Start of the window, ms since the epoch.
    pub window_start_ms: i64,
    /// Reports counted in it.
    pub observed: u32,
    /// What the baseline expected.
    pub expected: f64,
    /// Its surprise (−log10 p).
    pub surprise: f64,
    /// The series' state after it.
    pub state: SeriesState,
}

struct SeriesEntry {
    last: LastWindow,
    seen_ms: i64,
    reports_total: u64,
}

#[derive(Default)]
struct ServiceEntry {
    in_outage: i64,
    /// Ids of the open global incidents: a set, so that an incident
    /// carried over again (its partition restored here twice) counts once.
    global_incidents: BTreeSet<String>,
    series: usize,
}

#[derive(Default)]
struct Table {
    entries: HashMap<(String, Scope), SeriesEntry>,
    services: HashMap<String, ServiceEntry>,
    next_sweep_ms: i64,
}

outage_detect::label_values!(
    /// The `scope` of `outage_radar_incidents_total`.
    IncidentScope {
        Region => "region",
        Global => "global",
    }
);

outage_detect::label_values!(
    /// The `state` of `outage_radar_partition_starts_total`: how a partition
    /// without a restored snapshot starts.
    PartitionStart {
        /// From the `run --snapshot` warm start.
        Warm => "warm",
        /// With nothing learned.
        Empty => "empty",
    }
);

/// The per-series families, written straight into the exposition text by
/// [`SeriesMetrics::encode`]: with 100,000 series a `prometheus` vector
/// per family costs over a second per scrape (gather clones every child
/// into protobuf structs); a table written in one pass costs tens of
/// milliseconds. The per-service gauges and the counters stay ordinary
/// registry metrics.
const FAMILIES: [(&str, &str, &str); 5] = [
    (
        "outage_radar_series_reports_total",
        "counter",
        "Reports counted per series (after de-duplication), added when their window is scored.",
    ),
    (
        "outage_radar_window_reports",
        "gauge",
        "Reports in the series' last scored window.",
    ),
    (
        "outage_radar_window_expected_reports",
        "gauge",
        "Reports expected in the series' last scored window (level x hour-of-week profile).",
    ),
    (
        "outage_radar_window_surprise",
        "gauge",
        "Surprise of the series' last scored window: -log10 of the upper-tail probability of its count (capped).",
    ),
    (
        "outage_radar_series_state",
        "gauge",
        "Hysteresis state of the series: 0 normal, 1 pending, 2 outage.",
    ),
];

/// Per-series and per-service metrics, with TTL and a hard bound. Cloning
/// shares the table (the consumer thread writes, /metrics reads).
#[derive(Clone)]
pub struct SeriesMetrics {
    table: Arc<Mutex<Table>>,
    regions_in_outage: IntGaugeVec,
    global_incident: IntGaugeVec,
    exported: IntGauge,
    dropped: IntCounter,
    ttl_ms: i64,
    max_series: usize,
}

fn state_value(state: SeriesState) -> u8 {
    match state {
        SeriesState::Normal => 0,
        SeriesState::Pending => 1,
        SeriesState::Outage => 2,
    }
}

/// A label value in exposition format (`\`, `"` and newlines escaped).
fn escape_into(out: &mut Vec<u8>, value: &str) {
    if !value.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.extend_from_slice(value.as_bytes());
        return;
    }
    for b in value.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
}

fn float_into(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    }
}

fn int_into(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

impl SeriesMetrics {
    /// Creates the table and registers its per-service gauges and counters.
    pub fn register(registry: &Registry, config: &MetricsConfig) -> prometheus::Result<Self> {
        let m = SeriesMetrics {
            table: Arc::new(Mutex::new(Table {
                next_sweep_ms: i64::MIN,
                ..Table::default()
            })),
            regions_in_outage: IntGaugeVec::new(
                opts(
                    "outage_radar_regions_in_outage",
                    "Regions of the service whose series is in outage (the global series excluded).",
                ),
                &["service"],
            )?,
            global_incident: IntGaugeVec::new(
                opts(
                    "outage_radar_global_incident",
                    "1 while the service has an open global incident, else 0.",
                ),
                &["service"],
            )?,
            exported: IntGauge::with_opts(opts(
                "outage_radar_exported_series",
                "(service, region) series currently exported in /metrics.",
            ))?,
            dropped: IntCounter::with_opts(opts(
                "outage_radar_exported_series_dropped_total",
                "Scored windows not exported, or normal series removed for a series in outage, because metrics.max_series was reached.",
            ))?,
            ttl_ms: config.series_ttl.as_millis() as i64,
            max_series: config.max_series,
        };
        registry.register(Box::new(m.regions_in_outage.clone()))?;
        registry.register(Box::new(m.global_incident.clone()))?;
        registry.register(Box::new(m.exported.clone()))?;
        registry.register(Box::new(m.dropped.clone()))?;
        Ok(m)
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one scored window; `clock_ms` is the event-time end of the
    /// window and drives the TTL.
    pub fn window(&self, w: &WindowScore, clock_ms: i64) {
        let mut guard = self.table();
        let t = &mut *guard;
        self.sweep_locked(t, clock_ms);
        let key = (w.service.clone(), w.scope);
        let entry = match t.entries.get_mut(&key) {
            Some(e) => e,
            None => {
                if t.entries.len() >= self.max_series {
                    // Full: a series in (or entering) an outage takes the
                    // place of the normal series scored longest ago, so
                    // junk series cannot keep an outage off /metrics.
                    let victim = (w.state != SeriesState::Normal)
                        .then(|| {
                            t.entries
                                .iter()
                                .filter(|(_, e)| e.last.state == SeriesState::Normal)
                                .min_by_key(|(_, e)| e.seen_ms)
                                .map(|(k, _)| k.clone())
                        })
                        .flatten();
                    self.dropped.inc();
                    match victim {
                        Some(k) => self.remove_locked(t, &k),
                        None => return,
                    }
                }
                let service = t.services.entry(w.service.clone()).or_default();
                if service.series == 0 {
                    self.regions_in_outage
                        .with_label_values(&[&w.service])
                        .set(service.in_outage);
                    self.global_incident
                        .with_label_values(&[&w.service])
                        .set(service.global_incidents.len() as i64);
                }
                service.series += 1;
                self.exported.inc();
                t.entries.entry(key).or_insert(SeriesEntry {
                    last: LastWindow {
                        window_start_ms: w.window_start_ms,
                        observed: 0,
                        expected: 0.0,
                        surprise: 0.0,
                        state: SeriesState::Normal,
                    },
                    seen_ms: clock_ms,
                    reports_total: 0,
                })
            }
        };
        let was_outage = entry.last.state == SeriesState::Outage;
        let is_outage = w.state == SeriesState::Outage;
        entry.last = LastWindow {
            window_start_ms: w.window_start_ms,
            observed: w.observed,
            expected: w.expected,
            surprise: w.surprise,
            state: w.state,
        };
        entry.seen_ms = clock_ms;
        entry.reports_total += u64::from(w.observed);
        if matches!(w.scope, Scope::Region(_)) && was_outage != is_outage {
            if let Some(s) = t.services.get_mut(&w.service) {
                s.in_outage += if is_outage { 1 } else { -1 };
                self.regions_in_outage
                    .with_label_values(&[&w.service])
                    .set(s.in_outage);
            }
        }
    }

    /// A global incident opened (`open`) or resolved for its service.
    pub fn global_incident(&self, incident: &Incident, open: bool) {
        if incident.scope != Scope::Global {
            return;
        }
        let mut t = self.table();
        let service = t.services.entry(incident.service.clone()).or_default();
        if open {
            service.global_incidents.insert(incident.id.clone());
        } else {
            service.global_incidents.remove(&incident.id);
        }
        self.global_incident
            .with_label_values(&[&incident.service])
            .set(service.global_incidents.len() as i64);
    }

    /// Removes every series of `service` and its per-service gauges (its
    /// partition moved to another instance, which exports them now).
    pub fn withdraw_service(&self, service: &str) {
        let mut guard = self.table();
        let t = &mut *guard;
        let before = t.entries.len();
        t.entries.retain(|(s, _), _| s != service);
        self.exported.sub((before - t.entries.len()) as i64);
        t.services.remove(service);
        let _ = self.regions_in_outage.remove_label_values(&[service]);
        let _ = self.global_incident.remove_label_values(&[service]);
    }

    /// The last exported window of a series.
    pub fn last(&self, service: &str, scope: Scope) -> Option<LastWindow> {
        // The key owns its String: one allocation, off the hot path.
        self.table()
            .entries
            .get(&(service.to_string(), scope))
            .map(|e| e.last)
    }

    /// Every exported series with its last window, sorted (status page).
    pub fn snapshot(&self) -> Vec<(String, Scope, LastWindow)> {
        let mut v: Vec<(String, Scope, LastWindow)> = self
            .table()
            .entries
            .iter()
            .map(|((s, scope), e)| (s.clone(), *scope, e.last))
            .collect();
        v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        v
    }

    /// `series_ttl` in milliseconds.
    pub fn ttl_ms(&self) -> i64 {
        self.ttl_ms
    }

    /// Exported series count.
    pub fn len(&self) -> usize {
        self.table().entries.len()
    }

    /// Whether no series is exported.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes series not scored for `series_ttl`; runs at most once per
    /// tenth of the TTL.
    pub fn sweep(&self, clock_ms: i64) {
        let mut t = self.table();
        self.sweep_locked(&mut t, clock_ms);
    }

    fn sweep_locked(&self, t: &mut Table, clock_ms: i64) {
        if clock_ms < t.next_sweep_ms {
            return;
        }
        t.next_sweep_ms = clock_ms + (self.ttl_ms / 10).max(1);
        let cutoff = clock_ms - self.ttl_ms;
        let gone: Vec<(String, Scope)> = t
            .entries
            .iter()
            .filter(|(_, e)| e.seen_ms < cutoff)
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            self.remove_locked(t, &key);
        }
    }

    /// Removes one series and keeps its service's gauges right.
    fn remove_locked(&self, t: &mut Table, key: &(String, Scope)) {
        let Some(e) = t.entries.remove(key) else {
            return;
        };
        self.exported.dec();
        let (service, scope) = key;
        if let Some(s) = t.services.get_mut(service) {
            if matches!(scope, Scope::Region(_)) && e.last.state == SeriesState::Outage {
                s.in_outage -= 1;
            }
            s.series -= 1;
            if s.series == 0 && s.global_incidents.is_empty() {
                t.services.remove(service);
                let _ = self.regions_in_outage.remove_label_values(&[service]);
                let _ = self.global_incident.remove_label_values(&[service]);
            } else {
                self.regions_in_outage
                    .with_label_values(&[service])
                    .set(s.in_outage);
            }
        }
    }

    /// Appends the per-series families in the Prometheus text format. The
    /// table is locked only while its rows are copied (the consumer writes
    /// it on every scored window), not while they are formatted.
    pub fn encode(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let rows: Vec<(String, Scope, LastWindow, u64)> = self
            .table()
            .entries
            .iter()
            .map(|((service, scope), e)| (service.clone(), *scope, e.last, e.reports_total))
            .collect();
        for (i, (name, kind, help)) in FAMILIES.iter().enumerate() {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
            for (service, scope, last, reports_total) in &rows {
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"{region=\"");
                out.extend_from_slice(scope.label().as_bytes());
                out.extend_from_slice(b"\",service=\"");
                escape_into(out, service);
                out.extend_from_slice(b"\"} ");
                match i {
                    0 => int_into(out, *reports_total),
                    1 => int_into(out, u64::from(last.observed)),
                    2 => float_into(out, last.expected),
                    3 => float_into(out, last.surprise),
                    _ => int_into(out, u64::from(state_value(last.state))),
                }
                out.push(b'\n');
            }
        }
    }
}

/// Pipeline health figures fed by the detection side.
#[derive(Clone)]
pub struct PipelineMetrics {
    /// `outage_radar_late_reports_total`.
    pub late_reports: IntCounter,
    /// `outage_radar_duplicate_reports_total`.
    pub duplicate_reports: IntCounter,
    /// `outage_radar_series_overflow_reports_total`.
    pub overflow_reports: IntCounter,
    /// `outage_radar_windows_closed_total`.
    pub windows_closed: IntCounter,
    /// `outage_radar_windows_skipped_total`.
    pub windows_skipped: IntCounter,
    /// Reports counted without the reporter check (their window's reporter
    /// set was full).
    pub unchecked_reports: IntCounter,
    /// Services evicted after `detect.service_ttl` without a report.
    pub services_evicted: IntCounter,
    /// `outage_radar_detector_series`.
    pub detector_series: IntGauge,
    /// `outage_radar_watermark_delay_seconds{partition}`.
    pub watermark_delay: GaugeVec,
    /// `outage_radar_scoring_latency_seconds`.
    pub scoring_latency: Histogram,
    /// `outage_radar_incidents_total{scope,event}`.
    pub incidents: IntCounterVec,
    /// Partitions that start detection without a restored snapshot, by
    /// how (`warm` from `run --snapshot`, `empty`); restores are counted
    /// by the ingester's `outage_radar_state_restores_total`.
    pub fresh_starts: IntCounterVec,
}

impl PipelineMetrics {
    /// Creates and registers the pipeline metrics (every label pair at 0).
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = PipelineMetrics {
            late_reports: IntCounter::with_opts(opts(
                "outage_radar_late_reports_total",
                "Reports whose window had already closed (counted, not scored).",
            ))?,
            duplicate_reports: IntCounter::with_opts(opts(
                "outage_radar_duplicate_reports_total",
                "Repeated reports of one reporter for one service within a window, counted once.",
            ))?,
            overflow_reports: IntCounter::with_opts(opts(
                "outage_radar_series_overflow_reports_total",
                "Reports not counted in their series because detect.max_series or detect.max_services was reached.",
            ))?,
            windows_closed: IntCounter::with_opts(opts(
                "outage_radar_windows_closed_total",
                "Event-time windows closed and scored.",
            ))?,
            windows_skipped: IntCounter::with_opts(opts(
                "outage_radar_windows_skipped_total",
                "Windows skipped over a data gap longer than detect.max_gap (not scored, not learned).",
            ))?,
            unchecked_reports: IntCounter::with_opts(opts(
                "outage_radar_reports_not_deduplicated_total",
                "Reports counted without the reporter check: their window already held the most reporters one window de-duplicates.",
            ))?,
            services_evicted: IntCounter::with_opts(opts(
                "outage_radar_services_evicted_total",
                "Services evicted after detect.service_ttl without a report (their series and what they learned).",
            ))?,
            detector_series: IntGauge::with_opts(opts(
                "outage_radar_detector_series",
                "Live series in the detectors of all assigned partitions.",
            ))?,
            watermark_delay: GaugeVec::new(
                opts(
                    "outage_radar_watermark_delay_seconds",
                    "Wall clock minus the event-time watermark, per partition.",
                ),
                &["partition"],
            )?,
            scoring_latency: Histogram::with_opts(
                HistogramOpts::new(
                    "outage_radar_scoring_latency_seconds",
                    "Time from the Kafka timestamp of a window's newest report to the window being scored.",
                )
                .buckets(vec![
                    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0,
                ]),
            )?,
            incidents: IntCounterVec::new(
                opts(
                    "outage_radar_incidents_total",
                    "Incident events by scope (region, global) and event (opened, updated, resolved).",
                ),
                &["scope", "event"],
            )?,
            fresh_starts: IntCounterVec::new(
                opts(
                    "outage_radar_partition_starts_total",
                    "Partitions that started detection without a restored snapshot, by how (warm: from run --snapshot, empty). Restores: outage_radar_state_restores_total.",
                ),
                &["state"],
            )?,
        };
        registry.register(Box::new(m.late_reports.clone()))?;
        registry.register(Box::new(m.duplicate_reports.clone()))?;
        registry.register(Box::new(m.overflow_reports.clone()))?;
        registry.register(Box::new(m.windows_closed.clone()))?;
        registry.register(Box::new(m.windows_skipped.clone()))?;
        registry.register(Box::new(m.unchecked_reports.clone()))?;
        registry.register(Box::new(m.services_evicted.clone()))?;
        registry.register(Box::new(m.detector_series.clone()))?;
        registry.register(Box::new(m.watermark_delay.clone()))?;
        registry.register(Box::new(m.scoring_latency.clone()))?;
        registry.register(Box::new(m.incidents.clone()))?;
        registry.register(Box::new(m.fresh_starts.clone()))?;
        for scope in IncidentScope::ALL {
            for event in IncidentEvent::ALL {
                m.incidents
                    .with_label_values(&[scope.as_str(), event.as_str()]);
            }
        }
        for state in PartitionStart::ALL {
            m.fresh_starts.with_label_values(&[state.as_str()]);
        }
        Ok(m)
    }

    /// Counts one incident event.
    pub fn incident(&self, scope: Scope, event: IncidentEvent) {
        let scope = match scope {
            Scope::Region(_) => IncidentScope::Region,
            Scope::Global => IncidentScope::Global,
        };
        self.incidents
            .with_label_values(&[scope.as_str(), event.as_str()])
            .inc();
    }

    /// Counts a partition that starts without a restored snapshot.
    pub fn partition_start(&self, how: PartitionStart) {
        self.fresh_starts.with_label_values(&[how.as_str()]).inc();
    }
}

/// `outage_radar_build_info{version}` = 1.
pub fn register_build_info(registry: &Registry, version: &str) -> prometheus::Result<()> {
    let info = IntGaugeVec::new(
        opts(
            "outage_radar_build_info",
            "Build of the running outage-radar; always 1.",
        ),
        &["version"],
    )?;
    info.with_label_values(&[version]).set(1);
    registry.register(Box::new(info))
}

#[cfg(test)]
mod tests {
    use super::*;
    use outage_detect::Country;
    use prometheus::{Encoder, TextEncoder};

    fn score(service: &str, region: &str, start: i64, n: u32, state: SeriesState) -> WindowScore {
        WindowScore {
            window_start_ms: start,
            service: service.into(),
            scope: if region == "global" {
                Scope::Global
            } else {
                Scope::Region(Country::parse(region).unwrap())
            },
            observed: n,
            expected: 10.0,
            surprise: 1.5,
            span: 1,
            ratio: n as f64 / 10.0,
            anomalous: false,
            state,
        }
    }

    fn text(r: &Registry, m: &SeriesMetrics) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&r.gather(), &mut buf).unwrap();
        m.encode(&mut buf);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn exports_windows_counts_outages_and_forgets_quiet_series() {
        let r = Registry::new();
        let cfg = MetricsConfig {
            series_ttl: Duration::from_secs(600),
            max_series: 3,
        };
        let m = SeriesMetrics::register(&r, &cfg).unwrap();
        let min = 60_000;
        m.window(&score("alexa", "GB", 0, 12, SeriesState::Normal), min);
        m.window(&score("alexa", "DE", 0, 7, SeriesState::Outage), min);
        m.window(&score("alexa", "GB", min, 30, SeriesState::Outage), 2 * min);
        let t = text(&r, &m);
        assert!(
            t.contains(r#"outage_radar_series_reports_total{region="GB",service="alexa"} 42"#),
            "{t}"
        );
        assert!(t.contains(r#"outage_radar_window_reports{region="GB",service="alexa"} 30"#));
        assert!(t.contains(r#"outage_radar_series_state{region="GB",service="alexa"} 2"#));
        assert!(
            t.contains(r#"outage_radar_regions_in_outage{service="alexa"} 2"#),
            "{t}"
        );
        assert_eq!(m.last("alexa", Scope::Global), None);
        assert_eq!(
            m.last("alexa", Scope::Region(Country::parse("GB").unwrap()))
                .unwrap()
                .observed,
            30
        );

        // The bound: a third series fits, a fourth is dropped and counted.
        m.window(
            &score("alexa", "global", min, 37, SeriesState::Normal),
            2 * min,
        );
        m.window(&score("alexa", "FR", min, 1, SeriesState::Normal), 2 * min);
        let t = text(&r, &m);
        assert!(
            t.contains("outage_radar_exported_series_dropped_total 1"),
            "{t}"
        );
        assert!(!t.contains(r#"region="FR""#));

        // DE stops; after the TTL it disappears and stops counting as an outage.
        for i in 2..14 {
            m.window(
                &score("alexa", "GB", i * min, 30, SeriesState::Outage),
                (i + 1) * min,
            );
        }
        let t = text(&r, &m);
        assert!(!t.contains(r#"region="DE""#), "{t}");
        assert!(
            t.contains(r#"outage_radar_regions_in_outage{service="alexa"} 1"#),
            "{t}"
        );
        assert!(t.contains("outage_radar_exported_series 1"), "{t}");
    }

    #[test]
    fn a_series_in_outage_takes_the_place_of_a_normal_one_when_full() {
        let r = Registry::new();
        let cfg = MetricsConfig {
            series_ttl: Duration::from_secs(3600),
            max_series: 2,
        };
        let m = SeriesMetrics::register(&r, &cfg).unwrap();
        let min = 60_000;
        // Junk fills the table first.
        m.window(&score("junk-1", "GB", 0, 1, SeriesState::Normal), min);
        m.window(&score("junk-2", "GB", min, 1, SeriesState::Normal), 2 * min);
        // A normal newcomer is dropped; one entering an outage is exported
        // in place of the normal series scored longest ago.
        m.window(
            &score("alexa", "DE", 2 * min, 9, SeriesState::Normal),
            3 * min,
        );
        assert_eq!(
            m.last("alexa", Scope::Region(Country::parse("DE").unwrap())),
            None
        );
        m.window(
            &score("alexa", "DE", 3 * min, 90, SeriesState::Pending),
            4 * min,
        );
        m.window(
            &score("alexa", "GB", 3 * min, 90, SeriesState::Outage),
            4 * min,
        );
        let t = text(&r, &m);
        assert!(
            t.contains(r#"outage_radar_series_state{region="DE",service="alexa"} 1"#),
            "{t}"
        );
        assert!(
            t.contains(r#"outage_radar_series_state{region="GB",service="alexa"} 2"#),
            "{t}"
        );
        assert!(!t.contains("junk-"), "{t}");
        assert!(t.contains("outage_radar_exported_series 2"), "{t}");
        assert!(
            t.contains(r#"outage_radar_regions_in_outage{service="alexa"} 1"#),
            "{t}"
        );
        // Full of series in trouble: a further one is dropped, none removed.
        m.window(
            &score("other", "FR", 4 * min, 90, SeriesState::Outage),
            5 * min,
        );
        assert_eq!(m.len(), 2);
        assert!(text(&r, &m).contains("outage_radar_exported_series_dropped_total 4"));
    }
}
