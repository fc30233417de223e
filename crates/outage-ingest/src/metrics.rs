//! Pipeline counters of the ingester, registered in the caller's registry.
//!
//! Label values come from bounded sets only (reject reasons, fixed kinds);
//! never from message content or error text.

use outage_detect::RejectReason;
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// The ingester's counters. Cloning shares the underlying series.
#[derive(Clone, Debug)]
pub struct IngestMetrics {
    /// `outage_radar_messages_consumed_total`.
    pub messages_consumed: IntCounter,
    /// `outage_radar_reports_decoded_total`.
    pub reports_decoded: IntCounter,
    /// `outage_radar_messages_dead_lettered_total{reason}`.
    pub dead_lettered: IntCounterVec,
    /// Reports whose Kafka key is not their service (see [`MisKeyed`]).
    pub mis_keyed: IntCounterVec,
    /// `outage_radar_dead_letter_errors_total`: failed deliveries, retried.
    pub dead_letter_errors: IntCounter,
    /// `outage_radar_kafka_errors_total{operation}`.
    pub kafka_errors: IntCounterVec,
    /// `outage_radar_rebalances_total{event}`.
    pub rebalances: IntCounterVec,
    /// `outage_radar_assigned_partitions`.
    pub assigned_partitions: IntGauge,
    /// Assigned partitions waiting for their state (the state topic could
    /// not be read yet): paused, and the instance not ready.
    pub waiting_for_state: IntGauge,
    /// Messages behind the partition's end, from librdkafka statistics.
    pub consumer_lag: IntGaugeVec,
    /// `outage_radar_state_snapshots_total{result}`.
    pub state_snapshots: IntCounterVec,
    /// `outage_radar_state_snapshot_bytes`: size of the last snapshot.
    pub state_snapshot_bytes: IntGauge,
    /// `outage_radar_state_snapshot_seconds`: time to write one.
    pub state_snapshot_seconds: Histogram,
    /// `outage_radar_state_restores_total{outcome}`.
    pub state_restores: IntCounterVec,
}

impl IngestMetrics {
    /// Creates the counters and registers them in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<IngestMetrics> {
        let m = IngestMetrics::unregistered();
        registry.register(Box::new(m.messages_consumed.clone()))?;
        registry.register(Box::new(m.reports_decoded.clone()))?;
        registry.register(Box::new(m.dead_lettered.clone()))?;
        registry.register(Box::new(m.mis_keyed.clone()))?;
        registry.register(Box::new(m.dead_letter_errors.clone()))?;
        registry.register(Box::new(m.kafka_errors.clone()))?;
        registry.register(Box::new(m.rebalances.clone()))?;
        registry.register(Box::new(m.assigned_partitions.clone()))?;
        registry.register(Box::new(m.waiting_for_state.clone()))?;
        registry.register(Box::new(m.consumer_lag.clone()))?;
        registry.register(Box::new(m.state_snapshots.clone()))?;
        registry.register(Box::new(m.state_snapshot_bytes.clone()))?;
        registry.register(Box::new(m.state_snapshot_seconds.clone()))?;
        registry.register(Box::new(m.state_restores.clone()))?;
        Ok(m)
    }

    /// Counters not attached to any registry (tests, benchmarks).
    pub fn unregistered() -> IngestMetrics {
        let counter = |name: &str, help: &str| {
            IntCounter::with_opts(Opts::new(name, help)).expect("static metric definition is valid")
        };
        let vec = |name: &str, help: &str, label: &str| {
            IntCounterVec::new(Opts::new(name, help), &[label])
                .expect("static metric definition is valid")
        };
        let m = IngestMetrics {
            messages_consumed: counter(
                "outage_radar_messages_consumed_total",
                "Kafka messages read from the reports topic.",
            ),
            reports_decoded: counter(
                "outage_radar_reports_decoded_total",
                "Messages decoded into reports and handed to detection.",
            ),
            dead_lettered: vec(
                "outage_radar_messages_dead_lettered_total",
                "Messages that could not be decoded, by reason; each is produced to the dead-letter topic.",
                "reason",
            ),
            mis_keyed: vec(
                "outage_radar_reports_mis_keyed_total",
                "Reports whose Kafka key is not their service (key: other, missing); they are counted all the same, but their service is split over partitions.",
                "key",
            ),
            dead_letter_errors: counter(
                "outage_radar_dead_letter_errors_total",
                "Failed deliveries to the dead-letter topic (each is retried; the offset is held back).",
            ),
            kafka_errors: vec(
                "outage_radar_kafka_errors_total",
                "Kafka client errors by operation (librdkafka retries them).",
                "operation",
            ),
            rebalances: vec(
                "outage_radar_rebalances_total",
                "Consumer group rebalances by event (assign, revoke).",
                "event",
            ),
            assigned_partitions: IntGauge::with_opts(Opts::new(
                "outage_radar_assigned_partitions",
                "Partitions of the reports topic currently assigned to this instance.",
            ))
            .expect("static metric definition is valid"),
            waiting_for_state: IntGauge::with_opts(Opts::new(
                "outage_radar_partitions_waiting_for_state",
                "Assigned partitions whose state could not be read yet: paused, read retried, instance not ready.",
            ))
            .expect("static metric definition is valid"),
            consumer_lag: IntGaugeVec::new(
                Opts::new(
                    "outage_radar_consumer_lag_messages",
                    "Messages between the consumer's position and the partition's end (librdkafka statistics).",
                ),
                &["partition"],
            )
            .expect("static metric definition is valid"),
            state_snapshots: vec(
                "outage_radar_state_snapshots_total",
                "Partition state snapshots by result (written: every record acknowledged; failed).",
                "result",
            ),
            state_snapshot_bytes: IntGauge::with_opts(Opts::new(
                "outage_radar_state_snapshot_bytes",
                "Compressed size of the last state snapshot taken.",
            ))
            .expect("static metric definition is valid"),
            state_snapshot_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "outage_radar_state_snapshot_seconds",
                    "Time the consumer spent taking one partition snapshot (serialize, compress, enqueue).",
                )
                .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
            )
            .expect("static metric definition is valid"),
            state_restores: vec(
                "outage_radar_state_restores_total",
                "Partition assignments by how their state was loaded (restored, kept, missing, corrupt, incompatible, error).",
                "outcome",
            ),
        };
        for reason in RejectReason::ALL {
            m.dead_lettered.with_label_values(&[reason.as_str()]);
        }
        for op in KafkaOp::ALL {
            m.kafka_errors.with_label_values(&[op.as_str()]);
        }
        for ev in RebalanceEvent::ALL {
            m.rebalances.with_label_values(&[ev.as_str()]);
        }
        for r in SnapshotResult::ALL {
            m.state_snapshots.with_label_values(&[r.as_str()]);
        }
        for o in RestoreOutcome::ALL {
            m.state_restores.with_label_values(&[o.as_str()]);
        }
        m
    }

    /// A Kafka operation failed.
    pub fn kafka_error(&self, op: KafkaOp) {
        self.kafka_errors.with_label_values(&[op.as_str()]).inc();
    }

    /// Partitions were assigned or revoked.
    pub fn rebalance(&self, event: RebalanceEvent) {
        self.rebalances.with_label_values(&[event.as_str()]).inc();
    }

    /// A state snapshot was written (acknowledged) or failed.
    pub fn snapshot(&self, result: SnapshotResult) {
        self.state_snapshots
            .with_label_values(&[result.as_str()])
            .inc();
    }

    /// A partition's state was looked up at assignment.
    pub fn restore(&self, outcome: RestoreOutcome) {
        self.state_restores
            .with_label_values(&[outcome.as_str()])
            .inc();
    }
}

use outage_detect::label_values;

label_values!(
    /// The `op` of `outage_radar_kafka_errors_total`.
    KafkaOp {
        Consume => "consume",
        Store => "store",
        Commit => "commit",
        Produce => "produce",
    }
);

label_values!(
    /// The `event` of `outage_radar_rebalances_total`.
    RebalanceEvent {
        Assign => "assign",
        Revoke => "revoke",
    }
);

label_values!(
    /// The `result` of `outage_radar_state_snapshots_total`.
    SnapshotResult {
        Written => "written",
        Failed => "failed",
    }
);

label_values!(
    /// The `outcome` of `outage_radar_state_restores_total`.
    RestoreOutcome {
        /// The snapshot was applied.
        Restored => "restored",
        /// The state kept in memory at the partition's last revoke was
        /// newer than any snapshot and applied (see `Pipeline::kept`).
        Kept => "kept",
        /// No snapshot (a new partition, or snapshots were off).
        Missing => "missing",
        /// The snapshot could not be decoded.
        Corrupt => "corrupt",
        /// The sink refused it (e.g. another version's layout).
        Incompatible => "incompatible",
        /// The state topic could not be read.
        Error => "error",
    }
);

/// How a report's Kafka key disagrees with its `service`. Reports are keyed
/// by service so that one partition, and one detector, sees all of a
/// service; a report keyed otherwise is still counted (nothing is lost), but
/// its service's reports are split over detectors, each seeing a part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MisKeyed {
    /// The key names another service.
    Other,
    /// No key: the producer's partitioner spreads the service.
    Missing,
}

impl MisKeyed {
    /// Both values, to pre-register the label.
    pub const ALL: [MisKeyed; 2] = [MisKeyed::Other, MisKeyed::Missing];

    /// The `key` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            MisKeyed::Other => "other",
            MisKeyed::Missing => "missing",
        }
    }

    /// How `key` disagrees with `service`, if it does.
    pub fn check(key: Option<&[u8]>, service: &str) -> Option<MisKeyed> {
        match key {
            Some(k) if k == service.as_bytes() => None,
            Some(_) => Some(MisKeyed::Other),
            None => Some(MisKeyed::Missing),
        }
    }
}
