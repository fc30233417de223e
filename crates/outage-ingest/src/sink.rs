//! Where decoded reports go: the seam between Kafka and detection.
//!
//! The ingester calls a [`ReportSink`] on its own thread, in offset order per
//! partition. A sink must not block for long: anything slow belongs behind a
//! bounded channel on the sink's side.

use std::collections::BTreeMap;

use outage_detect::Report;

use crate::state::SinkState;

/// Where a report came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// Kafka partition of the report.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// The Kafka message timestamp, when the message has one.
    pub kafka_ts_ms: Option<i64>,
}

/// Receives decoded reports and partition ownership changes.
pub trait ReportSink: Send {
    /// One decoded report. When this returns the report is considered
    /// handled and its offset may be committed.
    fn accept(&mut self, at: Position, report: &Report<'_>);

    /// These partitions are now ours (after a rebalance).
    fn partitions_assigned(&mut self, _partitions: &[i32]) {}

    /// These partitions are about to be taken away; offsets are committed
    /// right after this returns.
    fn partitions_revoked(&mut self, _partitions: &[i32]) {}

    /// How many assigned partitions wait for their state (the state topic
    /// could not be read yet): they are not fed, and a service that
    /// alerts is not ready while any does.
    fn state_waiting(&mut self, _partitions: usize) {}

    /// Called when a poll returned nothing, with the wall clock.
    /// `caught_up(partition)`: whether the partition is known to be
    /// consumed to the broker's end (its leader reachable, no lag); only
    /// those may close windows by the wall clock.
    fn idle(&mut self, _now_ms: i64, _caught_up: &dyn Fn(i32) -> bool) {}

    /// The partition's state for a snapshot, taken between two messages
    /// (with state snapshots on, see `StateConfig`). `None`: nothing to
    /// keep for it.
    fn snapshot(&mut self, _partition: i32) -> Option<SinkState> {
        None
    }

    /// Replaces the partition's state with a snapshot's, before any of its
    /// messages arrive; called before [`ReportSink::partitions_assigned`].
    /// An error (incompatible state) leaves the sink unchanged: the caller
    /// reports it and starts the partition empty.
    fn restore(&mut self, _partition: i32, _state: &[u8]) -> Result<(), String> {
        Err("this sink keeps no state".into())
    }
}

/// Counts reports per partition: the sink used until detection is wired in,
/// and a cheap way to check delivery guarantees.
#[derive(Debug, Default, Clone)]
pub struct CountingSink {
    /// Reports counted, all partitions.
    pub total: u64,
    /// Reports counted per partition.
    pub per_partition: BTreeMap<i32, u64>,
    counter: Option<prometheus::IntCounter>,
}

impl CountingSink {
    /// A sink that also increments `counter` per report.
    pub fn with_counter(counter: prometheus::IntCounter) -> CountingSink {
        CountingSink {
            counter: Some(counter),
            ..CountingSink::default()
        }
    }
}

impl ReportSink for CountingSink {
    #[inline]
    fn accept(&mut self, at: Position, _report: &Report<'_>) {
        self.total += 1;
        *self.per_partition.entry(at.partition).or_default() += 1;
        if let Some(c) = &self.counter {
            c.inc();
        }
    }

    /// The partition's count, as decimal text.
    fn snapshot(&mut self, partition: i32) -> Option<SinkState> {
        let n = self.per_partition.get(&partition).copied().unwrap_or(0);
        Some(SinkState {
            payload: n.to_string().into_bytes(),
            items: 1,
        })
    }

    fn restore(&mut self, partition: i32, state: &[u8]) -> Result<(), String> {
        let n: u64 = std::str::from_utf8(state)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| "not a count".to_string())?;
        let before = self.per_partition.insert(partition, n).unwrap_or(0);
        self.total = self.total - before + n;
        Ok(())
    }
}
