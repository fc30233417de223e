//! The sink behind the ingester in `run`: one detector per assigned
//! partition, fed in offset order, ticked by the wall clock when idle; its
//! events go through the [`Exporter`] (metrics, status, alerts, topics,
//! log).

use outage_detect::time::wall_ms;
use std::collections::{BTreeMap, VecDeque};

use outage_detect::detector::DetectorCounters;
use outage_detect::{Detector, DetectorConfig, Event, Incident, Report};
use outage_export::metrics::PartitionStart;
use outage_export::{Exporter, Readiness};
use outage_ingest::{Position, ReportSink, SinkState};
use prometheus::IntCounter;
use tracing::info;

/// One partition's detector and its bookkeeping for metrics.
struct PartitionState {
    detector: Detector,
    /// Counters already added to the exported totals.
    exported: DetectorCounters,
    /// Newest Kafka timestamp per open window (by start), oldest first.
    newest_kafka_ts: VecDeque<(i64, i64)>,
}

impl PartitionState {
    fn new(detector: Detector) -> PartitionState {
        PartitionState {
            exported: detector.counters().clone(),
            detector,
            newest_kafka_ts: VecDeque::new(),
        }
    }
}

/// Per-partition detectors.
pub struct DetectorSink {
    config: DetectorConfig,
    /// Starting state for partitions without one (warm start).
    warm: Option<Detector>,
    partitions: BTreeMap<i32, PartitionState>,
    /// Assigned partitions waiting for their state: not ready meanwhile.
    waiting_for_state: usize,
    /// Revoked partitions, with what was exported from them (services and
    /// open incidents), until the next assignment says whether they left:
    /// a rebalance revokes every partition and assigns most of them back.
    leaving: BTreeMap<i32, (Vec<String>, Vec<Incident>)>,
    counted: IntCounter,
    export: Exporter,
    readiness: Readiness,
}

impl DetectorSink {
    pub fn new(
        config: DetectorConfig,
        warm: Option<Detector>,
        counted: IntCounter,
        export: Exporter,
        readiness: Readiness,
    ) -> DetectorSink {
        DetectorSink {
            config,
            warm,
            partitions: BTreeMap::new(),
            waiting_for_state: 0,
            leaving: BTreeMap::new(),
            counted,
            export,
            readiness,
        }
    }

    fn fresh(&self, partition: i32) -> PartitionState {
        let (detector, how) = match &self.warm {
            Some(d) => {
                let mut d = d.clone();
                d.dormant();
                (d, PartitionStart::Warm)
            }
            None => (Detector::new(self.config.clone()), PartitionStart::Empty),
        };
        self.export.pipeline().partition_start(how);
        info!(
            partition,
            state = how.as_str(),
            series = detector.series_count(),
            "partition starts detection"
        );
        PartitionState::new(detector)
    }

    /// Hands the partition's pending detector events to the exporter.
    /// Returns whether a window closed.
    fn publish(export: &Exporter, partition: i32, p: &mut PartitionState) -> bool {
        let mut closed_any = false;
        let now = wall_ms();
        for event in p.detector.drain_events() {
            if let Event::Window(w) = &event {
                closed_any = true;
                while let Some(&(start, kafka_ts)) = p.newest_kafka_ts.front() {
                    if start > w.window_start_ms {
                        break;
                    }
                    p.newest_kafka_ts.pop_front();
                    if start == w.window_start_ms {
                        export
                            .pipeline()
                            .scoring_latency
                            .observe((now - kafka_ts).max(0) as f64 / 1000.0);
                    }
                }
            }
            export.publish(partition, &event);
        }
        if closed_any {
            Self::sync_counters(export, partition, p, now);
        }
        closed_any
    }

    /// Adds the detector's counter increments to the exported totals and
    /// refreshes the watermark delay.
    fn sync_counters(export: &Exporter, partition: i32, p: &mut PartitionState, now: i64) {
        let c = p.detector.counters();
        let m = export.pipeline();
        m.late_reports.inc_by(c.late - p.exported.late);
        m.duplicate_reports
            .inc_by(c.duplicates - p.exported.duplicates);
        m.overflow_reports.inc_by(c.overflow - p.exported.overflow);
        m.windows_closed
            .inc_by(c.windows_closed - p.exported.windows_closed);
        m.windows_skipped
            .inc_by(c.windows_skipped - p.exported.windows_skipped);
        m.unchecked_reports
            .inc_by(c.unchecked - p.exported.unchecked);
        m.services_evicted
            .inc_by(c.services_evicted - p.exported.services_evicted);
        p.exported = c.clone();
        if let Some(wm) = p.detector.watermark_ms() {
            m.watermark_delay
                .with_label_values(&[&partition.to_string()])
                .set((now - wm) as f64 / 1000.0);
        }
    }

    fn refresh_series_gauge(&self) {
        let n: usize = self
            .partitions
            .values()
            .map(|p| p.detector.series_count())
            .sum();
        self.export.pipeline().detector_series.set(n as i64);
    }
}

impl ReportSink for DetectorSink {
    #[inline]
    fn accept(&mut self, at: Position, report: &Report<'_>) {
        if !self.partitions.contains_key(&at.partition) {
            let state = self.fresh(at.partition);
            self.partitions.insert(at.partition, state);
        }
        let p = self
            .partitions
            .get_mut(&at.partition)
            .expect("inserted above");
        // Stream time is the record's timestamp (the ingester caps it by
        // the wall clock), never the report's own `ts`: a device clock
        // minutes ahead must not make every other report late.
        let stream = at.kafka_ts_ms.unwrap_or(report.ts_ms);
        p.detector.observe_at(report, stream);
        self.counted.inc();
        if let Some(kafka_ts) = at.kafka_ts_ms {
            // The detector's own window arithmetic (offset included), or
            // the latency match below never fires with `window_offset` set.
            let start = self.config.window_start(report.ts_ms);
            match p
                .newest_kafka_ts
                .iter_mut()
                .rev()
                .find(|(s, _)| *s == start)
            {
                Some((_, newest)) => *newest = (*newest).max(kafka_ts),
                None => {
                    // Windows open in event-time order; a late report's
                    // window has closed and is not tracked.
                    if p.newest_kafka_ts.back().is_none_or(|(s, _)| *s < start) {
                        p.newest_kafka_ts.push_back((start, kafka_ts));
                        if p.newest_kafka_ts.len() > 64 {
                            p.newest_kafka_ts.pop_front();
                        }
                    }
                }
            }
        }
        if DetectorSink::publish(&self.export, at.partition, p) {
            self.refresh_series_gauge();
        }
    }

    fn partitions_assigned(&mut self, partitions: &[i32]) {
        // Revoked and not assigned back: its new owner exports it from now
        // on, and nothing derived from it may stay here (an alert it
        // resolves must not be re-sent from here, its series not shown
        // twice). One that came back keeps its exports: its restore
        // carried its incidents over again under the same ids.
        let leaving = std::mem::take(&mut self.leaving);
        for (p, (services, open)) in leaving {
            if !partitions.contains(&p) {
                self.export
                    .withdraw(services.iter().map(String::as_str), open.iter());
                info!(
                    partition = p,
                    ?services,
                    "partition moved away; its series, status and alerts are withdrawn here"
                );
            }
        }
        for &p in partitions {
            if !self.partitions.contains_key(&p) {
                let state = self.fresh(p);
                self.partitions.insert(p, state);
            }
        }
        self.refresh_series_gauge();
        self.readiness.set(self.waiting_for_state == 0);
    }

    fn state_waiting(&mut self, partitions: usize) {
        self.waiting_for_state = partitions;
        self.readiness.set(partitions == 0);
    }

    fn partitions_revoked(&mut self, partitions: &[i32]) {
        self.readiness.set(false);
        for p in partitions {
            self.export.forget_deliveries(*p);
            if let Some(state) = self.partitions.remove(p) {
                let _ = self
                    .export
                    .pipeline()
                    .watermark_delay
                    .remove_label_values(&[&p.to_string()]);
                let services = state.detector.services().map(str::to_string).collect();
                let open = state.detector.open_incidents().cloned().collect();
                self.leaving.insert(*p, (services, open));
                info!(
                    partition = p,
                    series = state.detector.series_count(),
                    "partition revoked; its detector state is dropped"
                );
            }
        }
        self.refresh_series_gauge();
    }

    fn snapshot(&mut self, partition: i32) -> Option<SinkState> {
        // A snapshot says everything before its offset is done, incident
        // events included: while one is undelivered, wait (commits wait
        // with it, so a crash replays and sends it again).
        if !self.export.settled(partition) {
            return None;
        }
        let p = self.partitions.get(&partition)?;
        Some(SinkState {
            payload: p.detector.to_snapshot(),
            items: p.detector.series_count() as u64,
        })
    }

    fn restore(&mut self, partition: i32, state: &[u8]) -> Result<(), String> {
        let mut detector = Detector::from_snapshot(state).map_err(|e| e.to_string())?;
        detector.set_config(self.config.clone());
        // Counted by the ingester (`outage_radar_state_restores_total`):
        // `partition_starts_total` counts only starts without a snapshot.
        for incident in detector.open_incidents() {
            self.export.carry_over(incident);
        }
        info!(
            partition,
            series = detector.series_count(),
            open_incidents = detector.open_incidents().count(),
            "partition detector restored"
        );
        self.partitions
            .insert(partition, PartitionState::new(detector));
        Ok(())
    }

    fn idle(&mut self, now_ms: i64, caught_up: &dyn Fn(i32) -> bool) {
        for (&partition, p) in &mut self.partitions {
            // Behind the broker (or cut off from it), the reports still to
            // come would find their windows closed: wait for them. The idle
            // time counts only while caught up, so after an outage the
            // backlog producers still hold has `idle_timeout` to arrive.
            if caught_up(partition) {
                p.detector.tick(now_ms);
            } else {
                p.detector.touch();
            }
            DetectorSink::publish(&self.export, partition, p);
            DetectorSink::sync_counters(&self.export, partition, p, now_ms);
        }
        self.refresh_series_gauge();
    }
}

impl DetectorSink {
    /// Flushes queued incident events (shutdown).
    pub fn flush(&self) {
        self.export.flush();
    }
}
