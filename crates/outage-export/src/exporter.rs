//! The one door from detection to export. Every detector event goes
//! through [`Exporter::publish`]; a partition that arrives with open
//! incidents goes through [`Exporter::carry_over`], one that leaves
//! through [`Exporter::withdraw`]. Which event feeds which output — the
//! per-series metrics, the status board, the alerts, the incidents and
//! scores topics, the log — is decided here and nowhere else.

use outage_detect::time::format_rfc3339_ms as rfc3339;
use outage_detect::{Event, Incident, IncidentEvent};
use tracing::{info, warn};

use crate::alert::{alert_key, build_alert, AlertQueue, AlertmanagerConfig};
use crate::incident::{window_json, JsonTopicProducer};
use crate::metrics::{PipelineMetrics, SeriesMetrics};
use crate::status::StatusBoard;

/// Where detector events go.
pub struct Exporter {
    series: SeriesMetrics,
    pipeline: PipelineMetrics,
    board: StatusBoard,
    alert_config: AlertmanagerConfig,
    alerts: Option<AlertQueue>,
    incidents: Option<JsonTopicProducer>,
    scores: Option<JsonTopicProducer>,
    /// Window width: a scored window's metrics are stamped with its end.
    window_ms: i64,
}

impl Exporter {
    /// An exporter to metrics and the status board; the optional outputs
    /// are added with the `with_*` methods.
    pub fn new(
        series: SeriesMetrics,
        pipeline: PipelineMetrics,
        board: StatusBoard,
        alert_config: AlertmanagerConfig,
        window_ms: i64,
    ) -> Exporter {
        Exporter {
            series,
            pipeline,
            board,
            alert_config,
            alerts: None,
            incidents: None,
            scores: None,
            window_ms,
        }
    }

    /// Alerts pushed to Alertmanager (none when `None`).
    pub fn with_alerts(mut self, alerts: Option<AlertQueue>) -> Exporter {
        self.alerts = alerts;
        self
    }

    /// Incident events produced to the incidents topic.
    pub fn with_incidents(mut self, incidents: Option<JsonTopicProducer>) -> Exporter {
        self.incidents = incidents;
        self
    }

    /// Scored windows produced to the scores topic.
    pub fn with_scores(mut self, scores: Option<JsonTopicProducer>) -> Exporter {
        self.scores = scores;
        self
    }

    /// The pipeline's own health metrics.
    pub fn pipeline(&self) -> &PipelineMetrics {
        &self.pipeline
    }

    /// One event of the detector of `partition`.
    pub fn publish(&self, partition: i32, event: &Event) {
        let Some((what, i)) = event.incident() else {
            if let Event::Window(w) = event {
                let clock = w.window_start_ms + self.window_ms;
                self.series.window(w, clock);
                self.board.window(w);
                // A service's chart goes when its series leave /metrics.
                self.board.forget_before(clock - self.series.ttl_ms());
                if let Some(t) = &self.scores {
                    t.send(&w.service, &window_json(w));
                }
            }
            return;
        };
        let regions: Vec<&str> = i.regions.iter().map(|r| r.region.as_str()).collect();
        match what {
            IncidentEvent::Opened => warn!(
                partition,
                id = %i.id,
                service = %i.service,
                scope = i.scope.label(),
                started_at = %rfc3339(i.started_at_ms),
                peak_ratio = format_args!("{:.1}", i.peak_ratio),
                ?regions,
                "incident opened"
            ),
            IncidentEvent::Updated => info!(
                partition,
                id = %i.id,
                service = %i.service,
                ?regions,
                "incident spread"
            ),
            IncidentEvent::Resolved => info!(
                partition,
                id = %i.id,
                service = %i.service,
                scope = i.scope.label(),
                resolved_at = %i.resolved_at_ms.map(rfc3339).unwrap_or_default(),
                "incident resolved"
            ),
        }
        self.pipeline.incident(i.scope, what);
        self.board.incident(what, i);
        match what {
            IncidentEvent::Opened => self.series.global_incident(i, true),
            IncidentEvent::Resolved => self.series.global_incident(i, false),
            IncidentEvent::Updated => {}
        }
        if let Some(q) = &self.alerts {
            let last = self.series.last(&i.service, i.scope);
            q.push(build_alert(&self.alert_config, what, i, last));
        }
        if let Some(t) = &self.incidents {
            t.send_incident(Some(partition), what, i);
        }
    }

    /// Whether every incident event of `partition` was delivered: its
    /// state may be snapshotted only then, so that the events are
    /// at-least-once across a crash (a restart replays from the snapshot
    /// before the undelivered event and sends it again).
    pub fn settled(&self, partition: i32) -> bool {
        self.incidents.as_ref().is_none_or(|t| t.settled(partition))
    }

    /// `partition` was revoked: its undelivered events are its next
    /// owner's to send again (it replays from the last snapshot).
    pub fn forget_deliveries(&self, partition: i32) {
        if let Some(t) = &self.incidents {
            t.forget(partition);
        }
    }

    /// An incident that was open when its partition's state was restored
    /// here: shown, counted and alerted again under the same id and label
    /// set (Alertmanager forgets alerts that are not re-sent; the same
    /// labels mean no new page). Not produced to the incidents topic
    /// again: its opening is there already.
    pub fn carry_over(&self, incident: &Incident) {
        self.board.incident(IncidentEvent::Opened, incident);
        self.series.global_incident(incident, true);
        if let Some(q) = &self.alerts {
            q.push(build_alert(
                &self.alert_config,
                IncidentEvent::Opened,
                incident,
                None,
            ));
        }
    }

    /// A partition left this instance: everything derived from its
    /// detector — the `services`' series and gauges, their status, and the
    /// re-sending of the `open` incidents' alerts — is withdrawn, without
    /// resolving anything. The partition's new owner restores its state
    /// and carries the incidents over under the same ids and labels.
    pub fn withdraw<'a>(
        &self,
        services: impl IntoIterator<Item = &'a str>,
        open: impl IntoIterator<Item = &'a Incident>,
    ) {
        for incident in open {
            if let Some(q) = &self.alerts {
                q.withdraw(alert_key(incident));
            }
            self.board.withdraw(&incident.id);
        }
        for service in services {
            self.series.withdraw_service(service);
            self.board.withdraw_service(service);
        }
    }

    /// Waits for queued topic messages (shutdown).
    pub fn flush(&self) {
        for t in [&self.incidents, &self.scores].into_iter().flatten() {
            t.flush(std::time::Duration::from_secs(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::MetricsConfig;
    use outage_detect::{Country, Scope, SeriesState, WindowScore};
    use prometheus::Registry;

    const T: i64 = 1_537_956_000_000;

    fn exporter() -> (Exporter, Registry, SeriesMetrics, StatusBoard) {
        let registry = Registry::new();
        let series = SeriesMetrics::register(&registry, &MetricsConfig::default()).unwrap();
        let pipeline = PipelineMetrics::register(&registry).unwrap();
        let board = StatusBoard::default();
        let e = Exporter::new(
            series.clone(),
            pipeline,
            board.clone(),
            AlertmanagerConfig::default(),
            60_000,
        );
        (e, registry, series, board)
    }

    fn window(service: &str, scope: Scope, state: SeriesState) -> Event {
        Event::Window(WindowScore {
            window_start_ms: T,
            service: service.into(),
            scope,
            observed: 50,
            expected: 10.0,
            surprise: 9.0,
            span: 1,
            ratio: 5.0,
            anomalous: state == SeriesState::Outage,
            state,
        })
    }

    fn incident(service: &str, scope: Scope) -> Incident {
        Incident {
            id: format!("{service}-{}", scope.label()),
            service: service.into(),
            scope,
            regions: Vec::new(),
            started_at_ms: T,
            detected_at_ms: T + 60_000,
            resolved_at_ms: None,
            peak_ratio: 5.0,
            peak_surprise: 9.0,
            problems: [0; 8],
        }
    }

    /// The value of `outage_radar_<name>{service="<service>"}`, if exported.
    fn gauge(registry: &Registry, name: &str, service: &str) -> Option<f64> {
        registry
            .gather()
            .iter()
            .filter(|f| f.name() == format!("outage_radar_{name}"))
            .flat_map(|f| f.get_metric().to_vec())
            .find(|m| m.get_label().iter().any(|l| l.value() == service))
            .map(|m| m.get_gauge().get_value())
    }

    #[test]
    fn a_withdrawn_partition_leaves_nothing_behind_and_comes_back_counted_once() {
        let (e, registry, series, board) = exporter();
        let gb = Scope::Region(Country::parse("GB").unwrap());
        // alexa (the partition that moves) has a regional outage and a
        // global incident; psn (staying) has a series too.
        e.publish(0, &window("alexa", gb, SeriesState::Outage));
        e.publish(0, &window("alexa", Scope::Global, SeriesState::Outage));
        e.publish(1, &window("psn", gb, SeriesState::Normal));
        let (regional, global) = (incident("alexa", gb), incident("alexa", Scope::Global));
        e.publish(0, &Event::Opened(regional.clone()));
        e.publish(0, &Event::Opened(global.clone()));
        assert_eq!(gauge(&registry, "global_incident", "alexa"), Some(1.0));
        assert_eq!(gauge(&registry, "regions_in_outage", "alexa"), Some(1.0));
        assert_eq!(board.all_incidents().len(), 2);
        assert_eq!(series.len(), 3);

        e.withdraw(["alexa"], [&regional, &global]);
        assert_eq!(gauge(&registry, "global_incident", "alexa"), None);
        assert_eq!(gauge(&registry, "regions_in_outage", "alexa"), None);
        assert!(board.all_incidents().is_empty(), "withdrawn, not resolved");
        assert_eq!(series.len(), 1, "psn's series stays");
        assert!(series.last("alexa", gb).is_none());

        // The partition comes back with its state: carried over, counted
        // once (not on top of what it had before it left).
        e.carry_over(&regional);
        e.carry_over(&global);
        assert_eq!(gauge(&registry, "global_incident", "alexa"), Some(1.0));
        // Restored here once more (a rebalance that assigned it back):
        // still one.
        e.carry_over(&global);
        assert_eq!(gauge(&registry, "global_incident", "alexa"), Some(1.0));
        assert_eq!(board.all_incidents().len(), 2);
        let mut resolved = global.clone();
        resolved.resolved_at_ms = Some(T + 600_000);
        e.publish(0, &Event::Resolved(resolved));
        assert_eq!(gauge(&registry, "global_incident", "alexa"), Some(0.0));
    }
}
