//! The sink behind the ingester in `run`: one detector per assigned
//! partition, fed in offset order, ticked by the wall clock when idle.
//!
//! Incidents are logged here; export (metrics, alerts, incidents topic)
//! attaches to the same events.

use std::collections::BTreeMap;

use outage_detect::{Detector, DetectorConfig, Event, Report};
use outage_ingest::{Position, ReportSink};
use prometheus::IntCounter;
use tracing::{info, warn};

use crate::replay::rfc3339;

/// Per-partition detectors.
pub struct DetectorSink {
    config: DetectorConfig,
    /// Starting state for partitions without one (warm start).
    warm: Option<Detector>,
    detectors: BTreeMap<i32, Detector>,
    counted: IntCounter,
}

impl DetectorSink {
    pub fn new(
        config: DetectorConfig,
        warm: Option<Detector>,
        counted: IntCounter,
    ) -> DetectorSink {
        DetectorSink {
            config,
            warm,
            detectors: BTreeMap::new(),
            counted,
        }
    }

    fn fresh(config: &DetectorConfig, warm: &Option<Detector>) -> Detector {
        warm.clone()
            .unwrap_or_else(|| Detector::new(config.clone()))
    }

    fn publish(partition: i32, detector: &mut Detector) {
        for event in detector.drain_events() {
            match event {
                Event::Window(_) => {}
                Event::Opened(i) => warn!(
                    partition,
                    id = %i.id,
                    service = %i.service,
                    scope = i.scope.label(),
                    started_at = %rfc3339(i.started_at_ms),
                    peak_ratio = format_args!("{:.1}", i.peak_ratio),
                    regions = ?i.regions.iter().map(|r| r.region.as_str()).collect::<Vec<_>>(),
                    "incident opened"
                ),
                Event::Updated(i) => info!(
                    partition,
                    id = %i.id,
                    service = %i.service,
                    regions = ?i.regions.iter().map(|r| r.region.as_str()).collect::<Vec<_>>(),
                    "incident spread"
                ),
                Event::Resolved(i) => info!(
                    partition,
                    id = %i.id,
                    service = %i.service,
                    scope = i.scope.label(),
                    resolved_at = %i.resolved_at_ms.map(rfc3339).unwrap_or_default(),
                    "incident resolved"
                ),
            }
        }
    }
}

impl ReportSink for DetectorSink {
    #[inline]
    fn accept(&mut self, at: Position, report: &Report<'_>) {
        let (config, warm) = (&self.config, &self.warm);
        let detector = self
            .detectors
            .entry(at.partition)
            .or_insert_with(|| DetectorSink::fresh(config, warm));
        detector.observe(report);
        self.counted.inc();
        DetectorSink::publish(at.partition, detector);
    }

    fn partitions_assigned(&mut self, partitions: &[i32]) {
        for &p in partitions {
            let (config, warm) = (&self.config, &self.warm);
            self.detectors
                .entry(p)
                .or_insert_with(|| DetectorSink::fresh(config, warm));
        }
    }

    fn partitions_revoked(&mut self, partitions: &[i32]) {
        for p in partitions {
            if let Some(d) = self.detectors.remove(p) {
                info!(
                    partition = p,
                    series = d.series_count(),
                    "partition revoked; its detector state is dropped"
                );
            }
        }
    }

    fn idle(&mut self, now_ms: i64) {
        for (&p, d) in &mut self.detectors {
            d.tick(now_ms);
            DetectorSink::publish(p, d);
        }
    }
}
