//! Incident events as JSON: the `incidents.jsonl` of `replay`, the
//! incidents topic, and the status page share this one shape.

use outage_detect::decode::format_rfc3339_ms as rfc3339;
use outage_detect::{Incident, Problem, Scope};
use serde_json::json;

/// What happened to an incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncidentEvent {
    Opened,
    /// A global incident spread to another region (or its peaks grew).
    Updated,
    Resolved,
}

impl IncidentEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentEvent::Opened => "opened",
            IncidentEvent::Updated => "updated",
            IncidentEvent::Resolved => "resolved",
        }
    }
}

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

/// Delivery results of the incidents producer.
#[derive(Clone)]
pub struct IncidentTopicMetrics {
    pub messages: prometheus::IntCounterVec,
}

impl IncidentTopicMetrics {
    pub fn register(registry: &prometheus::Registry) -> prometheus::Result<Self> {
        let messages = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "outage_radar_incident_messages_total",
                "Incident events for the incidents topic by result (delivered, failed, dropped).",
            ),
            &["result"],
        )?;
        for r in ["delivered", "failed", "dropped"] {
            messages.with_label_values(&[r]);
        }
        registry.register(Box::new(messages.clone()))?;
        Ok(IncidentTopicMetrics { messages })
    }
}

struct DeliveryCounter(IncidentTopicMetrics);

impl rdkafka::ClientContext for DeliveryCounter {}

impl rdkafka::producer::ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.0.messages.with_label_values(&["delivered"]).inc(),
            Err((e, _)) => {
                self.0.messages.with_label_values(&["failed"]).inc();
                tracing::warn!(error = %e, "incident event not delivered to the incidents topic");
            }
        }
    }
}

/// Produces incident events to the incidents topic without blocking the
/// caller (librdkafka's own thread delivers and retries).
pub struct IncidentProducer {
    producer: rdkafka::producer::ThreadedProducer<DeliveryCounter>,
    topic: String,
    metrics: IncidentTopicMetrics,
}

impl IncidentProducer {
    pub fn new(
        client: &rdkafka::ClientConfig,
        topic: &str,
        metrics: IncidentTopicMetrics,
    ) -> rdkafka::error::KafkaResult<IncidentProducer> {
        let producer = client.create_with_context(DeliveryCounter(metrics.clone()))?;
        Ok(IncidentProducer {
            producer,
            topic: topic.to_string(),
            metrics,
        })
    }

    /// Queues one event, keyed by service; a full queue drops and counts.
    pub fn send(&self, event: IncidentEvent, inc: &Incident) {
        let payload = incident_event_json(event, inc).to_string();
        let record = rdkafka::producer::BaseRecord::to(&self.topic)
            .key(inc.service.as_bytes())
            .payload(payload.as_bytes());
        if let Err((e, _)) = self.producer.send(record) {
            self.metrics.messages.with_label_values(&["dropped"]).inc();
            tracing::warn!(error = %e, "incident event dropped: producer queue refused it");
        }
    }

    /// Waits for queued events (on shutdown).
    pub fn flush(&self, timeout: std::time::Duration) {
        use rdkafka::producer::Producer;
        if let Err(e) = self.producer.flush(timeout) {
            tracing::warn!(error = %e, "incident events still queued at shutdown");
        }
    }
}
