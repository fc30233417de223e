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
pub mod mix;
pub mod recur;
pub mod region;
pub mod regional;
pub mod report;
pub mod scan;
pub mod score;
pub mod snapshot;
pub mod time;
pub mod tz;

pub use decode::{decode, DecodeError, DecodeOptions, RejectReason};
pub use detector::{
    ConfigError, Detector, DetectorConfig, Event, Incident, Observed, Scope, SeriesState,
    WindowScore,
};
pub use event::IncidentEvent;
pub use region::{Country, Region};
pub use report::{Problem, Report};

/// A label whose values are a fixed set (a metric label, a reason): the
/// enum, its `ALL` and the label value of each (`as_str`). Used by the
/// edges' metrics; the domain's own such sets (`RejectReason`, `Problem`)
/// predate it.
#[macro_export]
macro_rules! label_values {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $value:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* #[doc = concat!("Label value `", $value, "`.")] $variant),+
        }

        impl $name {
            /// Every value, to pre-register a metric's label values.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The label value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $value),+
                }
            }
        }
    };
}
