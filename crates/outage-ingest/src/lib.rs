//! outage-ingest: the Kafka edge of outage-radar.
//!
//! Consumes reports with a consumer group, decodes them with
//! `outage_detect::decode`, hands good reports to a [`ReportSink`] and
//! dead-letters bad ones with a reason, storing each offset only once its
//! message has been fully handled (at-least-once). It must not contain
//! detection logic: everything after decoding lives behind the sink.

pub mod config;
mod decoder;
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
