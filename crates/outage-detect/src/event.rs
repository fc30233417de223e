//! What the detector reports: closed-window scores, incidents with their
//! spread, what became of each report, and the counters a caller exports.
//!
//! Plain data only; must not hold detector state or do arithmetic on it.

use serde::{Deserialize, Serialize};

use crate::region::Country;
use crate::report::Problem;

/// Where a series counts: one country, or the service worldwide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    Region(Country),
    Global,
}

impl Scope {
    /// `GB`, `ZZ` or `global`.
    pub fn label(&self) -> &str {
        match self {
            Scope::Region(c) => c.as_str(),
            Scope::Global => "global",
        }
    }
}

/// Hysteresis state of a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeriesState {
    Normal,
    Pending,
    Outage,
}

impl SeriesState {
    pub fn as_str(self) -> &'static str {
        match self {
            SeriesState::Normal => "normal",
            SeriesState::Pending => "pending",
            SeriesState::Outage => "outage",
        }
    }
}

/// One closed window of one series.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowScore {
    pub window_start_ms: i64,
    pub service: String,
    pub scope: Scope,
    pub observed: u32,
    pub expected: f64,
    /// The most surprise any scale saw (−log10 p, 0 below two standard
    /// deviations).
    pub surprise: f64,
    /// Span in windows of the scale that saw it.
    pub span: u32,
    pub ratio: f64,
    pub anomalous: bool,
    pub state: SeriesState,
}

/// A region's place in a global incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpreadEntry {
    pub region: Country,
    pub started_at_ms: i64,
    pub peak_ratio: f64,
}

/// A region outage or a global incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Stable id: the same input always gives the same id.
    pub id: String,
    pub service: String,
    pub scope: Scope,
    /// Regions in spread order (global incidents).
    pub regions: Vec<SpreadEntry>,
    /// Start of the first anomalous window.
    pub started_at_ms: i64,
    /// When the detector declared it (end of the confirming window).
    pub detected_at_ms: i64,
    pub resolved_at_ms: Option<i64>,
    pub peak_ratio: f64,
    pub peak_surprise: f64,
    /// Reports per problem type over the anomalous windows.
    pub problems: [u64; 8],
}

impl Incident {
    /// Problem types with their counts, largest first.
    pub fn top_problems(&self) -> Vec<(Problem, u64)> {
        let mut v: Vec<(Problem, u64)> = Problem::ALL
            .iter()
            .map(|&p| (p, self.problems[p as usize]))
            .filter(|(_, n)| *n > 0)
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

/// What the detector has to say.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Window(WindowScore),
    Opened(Incident),
    Updated(Incident),
    Resolved(Incident),
}

impl Event {
    /// For an incident event, what happened and to which incident.
    pub fn incident(&self) -> Option<(IncidentEvent, &Incident)> {
        match self {
            Event::Window(_) => None,
            Event::Opened(i) => Some((IncidentEvent::Opened, i)),
            Event::Updated(i) => Some((IncidentEvent::Updated, i)),
            Event::Resolved(i) => Some((IncidentEvent::Resolved, i)),
        }
    }
}

crate::label_values!(
    /// What happened to an incident: the `event` of the incidents topic,
    /// the alert pushed and the status page's feed.
    IncidentEvent {
        Opened => "opened",
        /// A global incident spread to another region (or its peaks grew).
        Updated => "updated",
        Resolved => "resolved",
    }
);

/// What became of one report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observed {
    Counted,
    /// Same reporter, same service, same window: counted once already.
    Duplicate,
    /// Its window had already closed.
    Late,
    /// `max_series` reached: not counted in any series.
    Overflow,
}

/// Counters a caller exports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectorCounters {
    pub counted: u64,
    pub duplicates: u64,
    pub late: u64,
    pub overflow: u64,
    pub windows_closed: u64,
    pub windows_skipped: u64,
    /// Reports counted without the reporter check because their window
    /// already held `MAX_REPORTERS_PER_WINDOW` reporters.
    pub unchecked: u64,
    /// Services evicted after `service_ttl` without a report.
    pub services_evicted: u64,
}
