//! outage-export: what outage-radar tells the world.
//!
//! - [`metrics`]: per-series gauges and pipeline health for Prometheus;
//! - [`http`]: `/metrics`, `/-/healthy`, `/-/ready`;
//! - [`alert`]: `RegionOutage` / `GlobalOutage` pushed to Alertmanager;
//! - [`incident`]: incident events as JSON, and the incidents topic;
//! - [`status`]: the status page's data (`GET /`, `GET /api/status`);
//! - [`exporter`]: the one door from detector events to all of the above.
//!
//! Nothing here blocks the consumer thread: metrics are atomics, alerts
//! and incident events go through bounded queues that drop and count.

pub mod alert;
pub mod exporter;
pub mod http;
pub mod incident;
pub mod metrics;
pub mod status;

pub use alert::{AlertMetrics, AlertQueue, AlertmanagerConfig};
pub use exporter::Exporter;
pub use http::{HttpConfig, HttpMetrics, Readiness};
pub use incident::{
    incident_json, window_json, Delivery, IncidentsConfig, JsonTopicProducer, Output,
    OutputTopicMetrics, ScoresConfig,
};
pub use metrics::{MetricsConfig, PipelineMetrics, SeriesMetrics};
pub use status::StatusBoard;
