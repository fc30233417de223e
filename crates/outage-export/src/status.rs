//! The status board: what the status page (`GET /`, `GET /api/status`) and
//! the demo's terminal view show — active and recent incidents, and the
//! recent reports-vs-expected history of each service's global series.
//!
//! Fed by the consumer thread (one lock per scored window or incident
//! event), read by HTTP handlers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use outage_detect::time::format_rfc3339_ms as rfc3339;
use outage_detect::{Incident, Scope, WindowScore};
use serde_json::{json, Value};

use crate::incident::incident_json;
use crate::metrics::SeriesMetrics;
use outage_detect::IncidentEvent;

/// Windows of history kept per service.
const HISTORY: usize = 180;
/// Resolved incidents kept.
const RECENT: usize = 50;
/// Incident events kept for the event feed.
const EVENTS: usize = 200;

#[derive(Default)]
struct Board {
    open: BTreeMap<String, Incident>,
    recent: VecDeque<Incident>,
    /// Per service: (window start, observed, expected) of the global series.
    history: BTreeMap<String, VecDeque<(i64, u32, f64)>>,
    events: VecDeque<(IncidentEvent, Incident)>,
    /// Incident events ever pushed (positions for `events_since`).
    pushed: usize,
    /// Event time of the newest scored window.
    clock_ms: Option<i64>,
    /// Histories are pruned again from this time on.
    next_prune_ms: i64,
}

/// Shared, cheap to clone.
#[derive(Clone, Default)]
pub struct StatusBoard(Arc<Mutex<Board>>);

impl StatusBoard {
    fn board(&self) -> MutexGuard<'_, Board> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a scored window (the clock; the history of global series).
    pub fn window(&self, w: &WindowScore) {
        let mut b = self.board();
        b.clock_ms = Some(
            b.clock_ms
                .map_or(w.window_start_ms, |c| c.max(w.window_start_ms)),
        );
        if w.scope != Scope::Global {
            return;
        }
        let h = b.history.entry(w.service.clone()).or_default();
        h.push_back((w.window_start_ms, w.observed, w.expected));
        if h.len() > HISTORY {
            h.pop_front();
        }
    }

    /// Records an incident event (open and recent incidents, the feed).
    pub fn incident(&self, event: IncidentEvent, inc: &Incident) {
        let mut b = self.board();
        match event {
            IncidentEvent::Opened | IncidentEvent::Updated => {
                b.open.insert(inc.id.clone(), inc.clone());
            }
            IncidentEvent::Resolved => {
                b.open.remove(&inc.id);
                b.recent.push_front(inc.clone());
                b.recent.truncate(RECENT);
            }
        }
        b.events.push_back((event, inc.clone()));
        b.pushed += 1;
        if b.events.len() > EVENTS {
            b.events.pop_front();
        }
    }

    /// Forgets the open incident `id` without resolving it (its partition
    /// moved to another instance, which shows it from now on).
    pub fn withdraw(&self, id: &str) {
        self.board().open.remove(id);
    }

    /// Forgets the history of every service whose newest window started
    /// before `before_ms` (a service that stopped, or a flood of made-up
    /// names); prunes at most every few minutes of event time.
    pub fn forget_before(&self, before_ms: i64) {
        let mut b = self.board();
        if before_ms < b.next_prune_ms {
            return;
        }
        b.next_prune_ms = before_ms + 300_000;
        b.history
            .retain(|_, h| h.back().is_some_and(|&(start, _, _)| start >= before_ms));
    }

    /// How many services have a history (memory bound checks).
    pub fn history_len(&self) -> usize {
        self.board().history.len()
    }

    /// Forgets a service's history of reports vs expected (its partition
    /// moved to another instance).
    pub fn withdraw_service(&self, service: &str) {
        self.board().history.remove(service);
    }

    /// Every incident seen (open ones in their latest version, then the
    /// resolved ones), oldest first.
    pub fn all_incidents(&self) -> Vec<Incident> {
        let b = self.board();
        let mut v: Vec<Incident> = b.open.values().cloned().collect();
        v.extend(b.recent.iter().cloned());
        v.sort_by(|a, b| (a.detected_at_ms, &a.id).cmp(&(b.detected_at_ms, &b.id)));
        v
    }

    /// Incident events since position `from` of the feed, and the next
    /// position (for a view that prints each once).
    pub fn events_since(&self, from: usize) -> (Vec<(IncidentEvent, Incident)>, usize) {
        let b = self.board();
        // Positions count every event ever pushed; the deque keeps the tail.
        let first = b.pushed - b.events.len();
        let skip = from.saturating_sub(first).min(b.events.len());
        (b.events.iter().skip(skip).cloned().collect(), b.pushed)
    }

    /// Event time of the newest scored window.
    pub fn clock_ms(&self) -> Option<i64> {
        self.board().clock_ms
    }

    /// The `GET /api/status` document.
    pub fn to_json(&self, series: &SeriesMetrics) -> Value {
        // The series table first, then the board: neither lock is held
        // while the other is waited for by this call.
        let rows = series.snapshot();
        let b = self.board();
        let mut services: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for (service, scope, w) in &rows {
            services.entry(service.as_str()).or_default().push(json!({
                "region": scope.label(),
                "state": w.state.as_str(),
                "observed": w.observed,
                "expected": (w.expected * 10.0).round() / 10.0,
                "surprise": (w.surprise * 10.0).round() / 10.0,
                "window_start": rfc3339(w.window_start_ms),
            }));
        }
        let services: Vec<Value> = services
            .into_iter()
            .map(|(name, regions)| {
                let in_outage = regions
                    .iter()
                    .filter(|r| r["state"] == "outage" && r["region"] != "global")
                    .count();
                let history: Vec<Value> = b
                    .history
                    .get(name)
                    .map(|h| {
                        h.iter()
                            .map(|(t, o, e)| json!([t, o, (e * 10.0).round() / 10.0]))
                            .collect()
                    })
                    .unwrap_or_default();
                json!({
                    "service": name,
                    "regions_in_outage": in_outage,
                    "global_incident": b.open.values().any(|i| i.service == name && i.scope == Scope::Global),
                    "regions": regions,
                    "history": history,
                })
            })
            .collect();
        json!({
            "clock": b.clock_ms.map(rfc3339),
            "services": services,
            "active_incidents": b.open.values().map(incident_json).collect::<Vec<_>>(),
            "recent_incidents": b.recent.iter().map(incident_json).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outage_detect::SeriesState;

    fn global(service: &str, start: i64) -> WindowScore {
        WindowScore {
            window_start_ms: start,
            service: service.into(),
            scope: Scope::Global,
            observed: 3,
            expected: 2.0,
            surprise: 0.1,
            span: 1,
            ratio: 1.5,
            anomalous: false,
            state: SeriesState::Normal,
        }
    }

    #[test]
    fn histories_of_services_that_stopped_are_forgotten() {
        let board = StatusBoard::default();
        let hour = 3_600_000;
        for i in 0..1000 {
            board.window(&global(&format!("junk-{i}"), 10 * hour));
        }
        board.window(&global("alexa", 12 * hour));
        board.forget_before(11 * hour);
        assert_eq!(board.history_len(), 1);
        // Pruning is rate-limited, never wrong: a newer window keeps it.
        board.window(&global("alexa", 13 * hour));
        board.forget_before(12 * hour + 1);
        assert_eq!(board.history_len(), 1);
    }
}
