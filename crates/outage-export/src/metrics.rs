//! Prometheus metrics of the detection side: one set of gauges per
//! (service, region) series, per-service rollups, and the pipeline health
//! figures an operator needs at 3 a.m.
//!
//! Label values come from bounded sets only: regions are ISO 3166-1 codes
//! plus `global` (and `ZZ`); services are bounded by `max_series` (the
//! detector's own bound is the first line); partitions by the topic. Series
//! quiet for `series_ttl` of event time are removed so a region that stops
//! reporting does not linger in /metrics forever.

use std::collections::HashMap;
use std::time::Duration;

use outage_detect::{Incident, Scope, SeriesState, WindowScore};
use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry,
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
    pub fn validate(&self) -> Result<(), String> {
        if self.series_ttl.is_zero() {
            return Err("metrics.series_ttl: must be positive".into());
        }
        if self.max_series == 0 {
            return Err("metrics.max_series: must be at least 1".into());
        }
        Ok(())
    }
}

const BY_SERIES: [&str; 2] = ["service", "region"];

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

/// The last scored window of one series, as exported.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LastWindow {
    pub window_start_ms: i64,
    pub observed: u32,
    pub expected: f64,
    pub surprise: f64,
    pub state: SeriesState,
}

struct SeriesEntry {
    last: LastWindow,
    seen_ms: i64,
    reports: IntCounter,
    window_reports: IntGauge,
    expected: Gauge,
    surprise: Gauge,
    state: IntGauge,
}

#[derive(Default)]
struct ServiceEntry {
    in_outage: i64,
    global_incidents: i64,
    series: usize,
}

/// Per-series and per-service gauges, with TTL and a hard bound.
pub struct SeriesMetrics {
    reports: IntCounterVec,
    window_reports: IntGaugeVec,
    expected: GaugeVec,
    surprise: GaugeVec,
    state: IntGaugeVec,
    regions_in_outage: IntGaugeVec,
    global_incident: IntGaugeVec,
    exported: IntGauge,
    dropped: IntCounter,
    entries: HashMap<(String, Scope), SeriesEntry>,
    services: HashMap<String, ServiceEntry>,
    ttl_ms: i64,
    max_series: usize,
    next_sweep_ms: i64,
}

impl SeriesMetrics {
    pub fn register(registry: &Registry, config: &MetricsConfig) -> prometheus::Result<Self> {
        let m = SeriesMetrics {
            reports: IntCounterVec::new(
                opts(
                    "outage_radar_series_reports_total",
                    "Reports counted per series (after de-duplication), added when their window is scored.",
                ),
                &BY_SERIES,
            )?,
            window_reports: IntGaugeVec::new(
                opts(
                    "outage_radar_window_reports",
                    "Reports in the series' last scored window.",
                ),
                &BY_SERIES,
            )?,
            expected: GaugeVec::new(
                opts(
                    "outage_radar_window_expected_reports",
                    "Reports expected in the series' last scored window (level × hour-of-week profile).",
                ),
                &BY_SERIES,
            )?,
            surprise: GaugeVec::new(
                opts(
                    "outage_radar_window_surprise",
                    "Surprise of the series' last scored window: -log10 of the upper-tail probability of its count (capped).",
                ),
                &BY_SERIES,
            )?,
            state: IntGaugeVec::new(
                opts(
                    "outage_radar_series_state",
                    "Hysteresis state of the series: 0 normal, 1 pending, 2 outage.",
                ),
                &BY_SERIES,
            )?,
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
                "Scored windows not exported because metrics.max_series was reached.",
            ))?,
            entries: HashMap::new(),
            services: HashMap::new(),
            ttl_ms: config.series_ttl.as_millis() as i64,
            max_series: config.max_series,
            next_sweep_ms: i64::MIN,
        };
        registry.register(Box::new(m.reports.clone()))?;
        registry.register(Box::new(m.window_reports.clone()))?;
        registry.register(Box::new(m.expected.clone()))?;
        registry.register(Box::new(m.surprise.clone()))?;
        registry.register(Box::new(m.state.clone()))?;
        registry.register(Box::new(m.regions_in_outage.clone()))?;
        registry.register(Box::new(m.global_incident.clone()))?;
        registry.register(Box::new(m.exported.clone()))?;
        registry.register(Box::new(m.dropped.clone()))?;
        Ok(m)
    }

    /// Records one scored window; `clock_ms` is the event-time end of the
    /// window and drives the TTL.
    pub fn window(&mut self, w: &WindowScore, clock_ms: i64) {
        self.sweep(clock_ms);
        let key = (w.service.clone(), w.scope);
        let entry = match self.entries.get_mut(&key) {
            Some(e) => e,
            None => {
                if self.entries.len() >= self.max_series {
                    self.dropped.inc();
                    return;
                }
                let labels = [w.service.as_str(), w.scope.label()];
                let e = SeriesEntry {
                    last: LastWindow {
                        window_start_ms: w.window_start_ms,
                        observed: 0,
                        expected: 0.0,
                        surprise: 0.0,
                        state: SeriesState::Normal,
                    },
                    seen_ms: clock_ms,
                    reports: self.reports.with_label_values(&labels),
                    window_reports: self.window_reports.with_label_values(&labels),
                    expected: self.expected.with_label_values(&labels),
                    surprise: self.surprise.with_label_values(&labels),
                    state: self.state.with_label_values(&labels),
                };
                let service = self.services.entry(w.service.clone()).or_default();
                if service.series == 0 {
                    self.regions_in_outage
                        .with_label_values(&[&w.service])
                        .set(0);
                    self.global_incident
                        .with_label_values(&[&w.service])
                        .set(service.global_incidents);
                }
                service.series += 1;
                self.exported.inc();
                self.entries.entry(key).or_insert(e)
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
        entry.reports.inc_by(u64::from(w.observed));
        entry.window_reports.set(i64::from(w.observed));
        entry.expected.set(w.expected);
        entry.surprise.set(w.surprise);
        entry.state.set(match w.state {
            SeriesState::Normal => 0,
            SeriesState::Pending => 1,
            SeriesState::Outage => 2,
        });
        if matches!(w.scope, Scope::Region(_)) && was_outage != is_outage {
            let delta = if is_outage { 1 } else { -1 };
            if let Some(s) = self.services.get_mut(&w.service) {
                s.in_outage += delta;
                self.regions_in_outage
                    .with_label_values(&[&w.service])
                    .set(s.in_outage);
            }
        }
    }

    /// A global incident opened (`open`) or resolved for its service.
    pub fn global_incident(&mut self, incident: &Incident, open: bool) {
        if incident.scope != Scope::Global {
            return;
        }
        let service = self.services.entry(incident.service.clone()).or_default();
        service.global_incidents = (service.global_incidents + if open { 1 } else { -1 }).max(0);
        self.global_incident
            .with_label_values(&[&incident.service])
            .set(service.global_incidents);
    }

    /// The last exported window of a series.
    pub fn last(&self, service: &str, scope: Scope) -> Option<LastWindow> {
        // The key owns its String; a lookup by borrowed parts needs one
        // allocation, fine off the hot path (alerts only).
        self.entries
            .get(&(service.to_string(), scope))
            .map(|e| e.last)
    }

    /// Every exported series with its last window (status page).
    pub fn iter(&self) -> impl Iterator<Item = (&str, Scope, LastWindow)> {
        self.entries
            .iter()
            .map(|((s, scope), e)| (s.as_str(), *scope, e.last))
    }

    /// Exported series count.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes series not scored for `series_ttl`; runs at most once per
    /// tenth of the TTL.
    pub fn sweep(&mut self, clock_ms: i64) {
        if clock_ms < self.next_sweep_ms {
            return;
        }
        self.next_sweep_ms = clock_ms + (self.ttl_ms / 10).max(1);
        let cutoff = clock_ms - self.ttl_ms;
        let stale: Vec<(String, Scope)> = self
            .entries
            .iter()
            .filter(|(_, e)| e.seen_ms < cutoff)
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            let e = self.entries.remove(&key).expect("key just listed");
            let labels = [key.0.as_str(), key.1.label()];
            let _ = self.reports.remove_label_values(&labels);
            let _ = self.window_reports.remove_label_values(&labels);
            let _ = self.expected.remove_label_values(&labels);
            let _ = self.surprise.remove_label_values(&labels);
            let _ = self.state.remove_label_values(&labels);
            self.exported.dec();
            if let Some(s) = self.services.get_mut(&key.0) {
                if matches!(key.1, Scope::Region(_)) && e.last.state == SeriesState::Outage {
                    s.in_outage -= 1;
                }
                s.series -= 1;
                if s.series == 0 && s.global_incidents == 0 {
                    self.services.remove(&key.0);
                    let _ = self.regions_in_outage.remove_label_values(&[&key.0]);
                    let _ = self.global_incident.remove_label_values(&[&key.0]);
                } else {
                    self.regions_in_outage
                        .with_label_values(&[&key.0])
                        .set(s.in_outage);
                }
            }
        }
    }
}

/// Pipeline health figures fed by the detection side.
#[derive(Clone)]
pub struct PipelineMetrics {
    pub late_reports: IntCounter,
    pub duplicate_reports: IntCounter,
    pub overflow_reports: IntCounter,
    pub windows_closed: IntCounter,
    pub windows_skipped: IntCounter,
    pub detector_series: IntGauge,
    pub watermark_delay: GaugeVec,
    pub scoring_latency: Histogram,
    pub incidents: IntCounterVec,
    pub state_restores: IntCounterVec,
}

impl PipelineMetrics {
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
                "Reports not counted because detect.max_series was reached.",
            ))?,
            windows_closed: IntCounter::with_opts(opts(
                "outage_radar_windows_closed_total",
                "Event-time windows closed and scored.",
            ))?,
            windows_skipped: IntCounter::with_opts(opts(
                "outage_radar_windows_skipped_total",
                "Windows skipped over a data gap longer than detect.max_gap (not scored, not learned).",
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
            state_restores: IntCounterVec::new(
                opts(
                    "outage_radar_partition_starts_total",
                    "Partitions taken on, by how their state began (empty, warm).",
                ),
                &["state"],
            )?,
        };
        registry.register(Box::new(m.late_reports.clone()))?;
        registry.register(Box::new(m.duplicate_reports.clone()))?;
        registry.register(Box::new(m.overflow_reports.clone()))?;
        registry.register(Box::new(m.windows_closed.clone()))?;
        registry.register(Box::new(m.windows_skipped.clone()))?;
        registry.register(Box::new(m.detector_series.clone()))?;
        registry.register(Box::new(m.watermark_delay.clone()))?;
        registry.register(Box::new(m.scoring_latency.clone()))?;
        registry.register(Box::new(m.incidents.clone()))?;
        registry.register(Box::new(m.state_restores.clone()))?;
        for scope in ["region", "global"] {
            for event in ["opened", "updated", "resolved"] {
                m.incidents.with_label_values(&[scope, event]);
            }
        }
        for state in ["empty", "warm"] {
            m.state_restores.with_label_values(&[state]);
        }
        Ok(m)
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
            ratio: n as f64 / 10.0,
            anomalous: false,
            state,
        }
    }

    fn text(r: &Registry) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&r.gather(), &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn exports_windows_counts_outages_and_forgets_quiet_series() {
        let r = Registry::new();
        let cfg = MetricsConfig {
            series_ttl: Duration::from_secs(600),
            max_series: 3,
        };
        let mut m = SeriesMetrics::register(&r, &cfg).unwrap();
        let min = 60_000;
        m.window(&score("alexa", "GB", 0, 12, SeriesState::Normal), min);
        m.window(&score("alexa", "DE", 0, 7, SeriesState::Outage), min);
        m.window(&score("alexa", "GB", min, 30, SeriesState::Outage), 2 * min);
        let t = text(&r);
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
        let t = text(&r);
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
        let t = text(&r);
        assert!(!t.contains(r#"region="DE""#), "{t}");
        assert!(
            t.contains(r#"outage_radar_regions_in_outage{service="alexa"} 1"#),
            "{t}"
        );
        assert!(t.contains("outage_radar_exported_series 1"), "{t}");
    }
}
