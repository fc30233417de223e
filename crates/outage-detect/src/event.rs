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
    /// One country (subdivisions count in their country).
    Region(Country),
    /// The service worldwide, every report.
    Global,
}

impl Scope {
    /// The clock a country's series keeps its week in; the worldwide
    /// series keeps UTC.
    pub fn zone(&self) -> Option<crate::tz::Zone> {
        match self {
            Scope::Region(c) => crate::tz::Zone::of(*c),
            Scope::Global => None,
        }
    }

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
    /// Within expectations.
    Normal,
    /// Anomalous, not yet confirmed.
    Pending,
    /// Confirmed outage: an incident is open.
    Outage,
}

impl SeriesState {
    /// `normal`, `pending` or `outage`.
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
    /// Start of the window, ms since the epoch.
    pub window_start_ms: i64,
    /// Service slug.
    pub service: String,
    /// Country or worldwide.
    pub scope: Scope,
    /// Reports counted in the window (after de-duplication).
    pub observed: u32,
    /// What the baseline expected for it.
    pub expected: f64,
    /// The most surprise any scale saw (−log10 p, 0 below two standard
    /// deviations).
    pub surprise: f64,
    /// Span in windows of the scale that saw it.
    pub span: u32,
    /// Observed over expected.
    pub ratio: f64,
    /// Whether the window counts towards an outage.
    pub anomalous: bool,
    /// The series' state after this window.
    pub state: SeriesState,
}

/// A region's place in a global incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpreadEntry {
    /// The region.
    pub region: Country,
    /// Start of its first anomalous window.
    pub started_at_ms: i64,
    /// Its largest observed/expected ratio so far.
    pub peak_ratio: f64,
}

/// A region outage or a global incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Stable id: the same input always gives the same id.
    pub id: String,
    /// Service slug.
    pub service: String,
    /// One region, or global.
    pub scope: Scope,
    /// Regions in spread order (global incidents).
    pub regions: Vec<SpreadEntry>,
    /// Start of the first anomalous window.
    pub started_at_ms: i64,
    /// When the detector declared it (end of the confirming window).
    pub detected_at_ms: i64,
    /// When it resolved (`None` while open).
    pub resolved_at_ms: Option<i64>,
    /// Largest observed/expected ratio of its windows.
    pub peak_ratio: f64,
    /// Largest surprise (−log10 p) of its windows.
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
    /// A closed window of one series, scored.
    Window(WindowScore),
    /// An incident opened.
    Opened(Incident),
    /// An open incident changed (it spread, or its peaks grew).
    Updated(Incident),
    /// An incident resolved.
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
    /// Counted in its window.
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
    /// Reports counted in a window.
    pub counted: u64,
    /// Reports of a reporter already counted for the service in this or the previous window.
    pub duplicates: u64,
    /// Reports whose window had closed.
    pub late: u64,
    /// Reports not counted in a series (`max_series` or `max_services` reached).
    pub overflow: u64,
    /// Windows closed and scored.
    pub windows_closed: u64,
    /// Windows skipped over data gaps (neither scored nor learned).
    pub windows_skipped: u64,
    /// Reports counted without the reporter check because their window
    /// already held `MAX_REPORTERS_PER_WINDOW` reporters.
    pub unchecked: u64,
    /// Services evicted after `service_ttl` without a report.
    pub services_evicted: u64,
}
