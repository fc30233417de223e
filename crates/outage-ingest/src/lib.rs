//! outage-ingest: the Kafka edge of outage-radar.
//!
//! Consumes reports with a consumer group, decodes them with
//! `outage_detect::decode`, hands good reports to a [`ReportSink`] and
//! dead-letters bad ones with a reason, storing each offset only once its
//! message has been fully handled (at-least-once). It must not contain
//! detection logic: everything after decoding lives behind the sink.

pub mod config;
mod decoder;
mod dlq;
pub mod ingester;
pub mod metrics;
pub mod offsets;
pub mod sink;
pub mod state;

pub use config::{ConfigError, KafkaConfig, OffsetReset};
pub use ingester::{IngestError, IngestSummary, Ingester, Shutdown, DLQ_HEADER_PREFIX};
pub use metrics::IngestMetrics;
pub use sink::{CountingSink, Position, ReportSink};
pub use state::{LoadOutcome, Manifest, SinkState, StateConfig, StateReader};

/// Locks `m` even if a thread panicked while holding it: the guarded data
/// are plain queues and counters, and carrying on is better than poisoning
/// the whole consumer.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
