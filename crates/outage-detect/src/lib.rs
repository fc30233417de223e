//! outage-detect: the pure domain core of outage-radar.
//!
//! It owns the shared types (a decoded [`Report`], its [`Region`] and
//! [`Problem`]) and the wire-format decoder. It must stay free of I/O: no
//! tokio, no rdkafka, no HTTP. Nothing here reads a clock — time is always
//! a parameter, so the same input gives the same output in tests, replays
//! and production — except [`time::wall_ms`], the project's one wall clock,
//! which only the edges (ingester, alerts, latency) call.

pub mod baseline;
pub mod clock;
pub mod config;
pub mod decode;
pub mod detector;
pub mod event;
pub mod recur;
pub mod region;
pub mod regional;
pub mod report;
pub mod scan;
pub mod score;
pub mod snapshot;
pub mod time;

pub use decode::{decode, DecodeError, DecodeOptions, RejectReason};
pub use detector::{
    Detector, DetectorConfig, Event, Incident, Observed, Scope, SeriesState, WindowScore,
};
pub use event::IncidentEvent;
pub use region::{Country, Region};
pub use report::{Problem, Report};
