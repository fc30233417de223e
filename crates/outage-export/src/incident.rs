//! Incident events as JSON: the `incidents.jsonl` of `replay`, the
//! incidents topic, and the status page share this one shape.

use outage_detect::time::format_rfc3339_ms as rfc3339;
use outage_detect::{Incident, IncidentEvent, Problem, Scope};
use serde_json::json;

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// An incident as a JSON object. `id` is stable: the same input always
/// gives the same id, so consumers de-duplicate on it.
pub fn incident_json(inc: &Incident) -> serde_json::Value {
    let problems: serde_json::Map<String, serde_json::Value> = Problem::ALL
        .iter()
        .filter(|&&p| inc.problems[p as usize] > 0)
        .map(|&p| (p.as_str().to_string(), json!(inc.problems[p as usize])))
        .collect();
    let (scope, region) = match inc.scope {
        Scope::Region(c) => ("region", json!(c.as_str())),
        Scope::Global => ("global", serde_json::Value::Null),
    };
    json!({
        "id": inc.id,
        "service": inc.service,
        "scope": scope,
        "region": region,
        "regions": inc.regions.iter().map(|r| json!({
            "region": r.region.as_str(),
            "started_at": rfc3339(r.started_at_ms),
            "peak_ratio": round3(r.peak_ratio),
        })).collect::<Vec<_>>(),
        "first_region": inc.regions.first().map(|r| r.region.as_str()),
        "started_at": rfc3339(inc.started_at_ms),
        "detected_at": rfc3339(inc.detected_at_ms),
        "resolved_at": inc.resolved_at_ms.map(rfc3339),
        "peak_ratio": round3(inc.peak_ratio),
        "peak_surprise": round3(inc.peak_surprise),
        "problems": problems,
    })
}

/// The message on the incidents topic: the incident plus `event`.
pub fn incident_event_json(event: IncidentEvent, inc: &Incident) -> serde_json::Value {
    let mut v = incident_json(inc);
    v["event"] = json!(event.as_str());
    v
}

/// `[incidents]`: the incidents topic.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentsConfig {
    /// Topic the incident events go to, keyed by service; empty turns it
    /// off. Default `incidents`.
    pub topic: String,
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        IncidentsConfig {
            topic: "incidents".into(),
        }
    }
}

/// `[scores]`: every scored window as JSON, for downstream analytics and
/// backtests (the `scores.csv` of `replay`, live).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoresConfig {
    /// Topic of window scores, keyed by service; `""` (the default) turns
    /// it off. A record is identified by (service, region, window_start):
    /// after a crash, windows since the last state snapshot are sent again,
    /// identical.
    pub topic: String,
}

/// A scored window as a JSON object.
pub fn window_json(w: &outage_detect::WindowScore) -> serde_json::Value {
    json!({
        "service": w.service,
        "region": w.scope.label(),
        "window_start": rfc3339(w.window_start_ms),
        "window_start_ms": w.window_start_ms,
        "observed": w.observed,
        "expected": round3(w.expected),
        "surprise": round3(w.surprise),
        "span_windows": w.span,
        "ratio": round3(w.ratio),
        "anomalous": w.anomalous,
        "state": w.state.as_str(),
    })
}

outage_detect::label_values!(
    /// The `output` of `outage_radar_output_messages_total`: which topic.
    Output {
        Incidents => "incidents",
        Scores => "scores",
    }
);

outage_detect::label_values!(
    /// The `result` of `outage_radar_output_messages_total`.
    Delivery {
        /// Acknowledged by the broker.
        Delivered => "delivered",
        /// Refused or timed out after librdkafka's retries.
        Failed => "failed",
        /// Never queued: the producer queue was full.
        Dropped => "dropped",
    }
);

/// Delivery results of the output topics (incidents, scores).
#[derive(Clone)]
pub struct OutputTopicMetrics {
    /// `outage_radar_output_messages_total{output,result}`.
    pub messages: prometheus::IntCounterVec,
}

impl OutputTopicMetrics {
    /// Creates and registers the output metrics (every label pair at 0).
    pub fn register(registry: &prometheus::Registry) -> prometheus::Result<Self> {
        let messages = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "outage_radar_output_messages_total",
                "Messages for the output topics by output (incidents, scores) and result (delivered, failed, dropped).",
            ),
            &["output", "result"],
        )?;
        for output in Output::ALL {
            for r in Delivery::ALL {
                messages.with_label_values(&[output.as_str(), r.as_str()]);
            }
        }
        registry.register(Box::new(messages.clone()))?;
        Ok(OutputTopicMetrics { messages })
    }

    /// Counts one message of `output` with `result`.
    pub fn message(&self, output: Output, result: Delivery) {
        self.messages
            .with_label_values(&[output.as_str(), result.as_str()])
            .inc();
    }
}

/// Messages of one source partition not yet acknowledged, and whether one
/// of them failed for good.
#[derive(Clone, Copy, Debug, Default)]
struct Pending {
    in_flight: u64,
    failed: bool,
}

type PendingByPartition =
    std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<i32, Pending>>>;

fn lock_pending(
    p: &PendingByPartition,
) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<i32, Pending>> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

struct DeliveryCounter {
    metrics: OutputTopicMetrics,
    output: Output,
    pending: PendingByPartition,
}

impl rdkafka::ClientContext for DeliveryCounter {}

impl rdkafka::producer::ProducerContext for DeliveryCounter {
    /// The source partition + 1 of a tracked message, 0 for an untracked one.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, tag: usize) {
        let ok = result.is_ok();
        match result {
            Ok(_) => self.metrics.message(self.output, Delivery::Delivered),
            Err((e, _)) => {
                self.metrics.message(self.output, Delivery::Failed);
                tracing::warn!(output = self.output.as_str(), error = %e, "output message not delivered");
            }
        }
        if tag > 0 {
            let mut pending = lock_pending(&self.pending);
            if let Some(p) = pending.get_mut(&((tag - 1) as i32)) {
                p.in_flight = p.in_flight.saturating_sub(1);
                p.failed |= !ok;
            }
        }
    }
}

/// Produces JSON messages to one output topic without blocking the caller
/// (librdkafka's own thread delivers and retries).
pub struct JsonTopicProducer {
    producer: rdkafka::producer::ThreadedProducer<DeliveryCounter>,
    topic: String,
    output: Output,
    metrics: OutputTopicMetrics,
    /// What each source partition has in flight (see
    /// [`JsonTopicProducer::settled`]).
    pending: PendingByPartition,
}

impl JsonTopicProducer {
    /// `output` names it in metrics and logs.
    pub fn new(
        client: &rdkafka::ClientConfig,
        topic: &str,
        output: Output,
        metrics: OutputTopicMetrics,
    ) -> rdkafka::error::KafkaResult<JsonTopicProducer> {
        let pending = PendingByPartition::default();
        let producer = client.create_with_context(DeliveryCounter {
            metrics: metrics.clone(),
            output,
            pending: pending.clone(),
        })?;
        Ok(JsonTopicProducer {
            producer,
            topic: topic.to_string(),
            output,
            metrics,
            pending,
        })
    }

    /// Queues one message; a full queue drops and counts.
    pub fn send(&self, key: &str, value: &serde_json::Value) {
        self.send_from(None, key, value);
    }

    /// Queues one message derived from source partition `partition` (if
    /// given): until it is acknowledged that partition is not
    /// [`settled`](JsonTopicProducer::settled).
    pub fn send_from(&self, partition: Option<i32>, key: &str, value: &serde_json::Value) {
        let payload = value.to_string();
        let tag = partition.map_or(0, |p| p as usize + 1);
        if let Some(p) = partition {
            lock_pending(&self.pending).entry(p).or_default().in_flight += 1;
        }
        let record = rdkafka::producer::BaseRecord::with_opaque_to(&self.topic, tag)
            .key(key.as_bytes())
            .payload(payload.as_bytes());
        if let Err((e, _)) = self.producer.send(record) {
            self.metrics.message(self.output, Delivery::Dropped);
            if let Some(p) = partition {
                let mut pending = lock_pending(&self.pending);
                let entry = pending.entry(p).or_default();
                entry.in_flight = entry.in_flight.saturating_sub(1);
                entry.failed = true;
            }
            tracing::warn!(output = self.output.as_str(), error = %e, "output message dropped: producer queue refused it");
        }
    }

    /// An incident event of source partition `partition`, keyed by service.
    pub fn send_incident(&self, partition: Option<i32>, event: IncidentEvent, inc: &Incident) {
        self.send_from(partition, &inc.service, &incident_event_json(event, inc));
    }

    /// Whether every message of source `partition` was delivered: only
    /// then may its state be snapshotted (the snapshot's offset says its
    /// events are out). After a failed delivery it stays unsettled until
    /// [`JsonTopicProducer::forget`]: the partition's next owner replays
    /// from the last snapshot and sends the event again.
    pub fn settled(&self, partition: i32) -> bool {
        lock_pending(&self.pending)
            .get(&partition)
            .is_none_or(|p| p.in_flight == 0 && !p.failed)
    }

    /// Stops tracking source `partition` (it was revoked: whoever gets it
    /// next replays from its last snapshot).
    pub fn forget(&self, partition: i32) {
        lock_pending(&self.pending).remove(&partition);
    }

    /// Waits for queued messages (on shutdown).
    pub fn flush(&self, timeout: std::time::Duration) {
        use rdkafka::producer::Producer;
        if let Err(e) = self.producer.flush(timeout) {
            tracing::warn!(output = self.output.as_str(), error = %e, "output messages still queued at shutdown");
        }
    }
}
