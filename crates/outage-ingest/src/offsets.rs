//! Which offset is safe to commit, per partition.
//!
//! Messages are handled in offset order, but a dead-lettered message is only
//! handled once the dead-letter topic acknowledges it, which happens later.
//! The committable offset is therefore the lowest offset still waiting for
//! such an acknowledgement, or one past the newest handled message. Committing
//! anything beyond that could lose a bad message if the process died.
//!
//! Pure bookkeeping: no Kafka calls here, so it is unit-tested directly.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default, Clone)]
struct PartitionOffsets {
    /// One past the newest message seen (handled or pending).
    next_seen: Option<i64>,
    /// Offsets whose dead-letter delivery is not yet acknowledged.
    pending: BTreeSet<i64>,
    /// Committable offset last handed out by [`OffsetTracker::take_stores`].
    stored: Option<i64>,
}

impl PartitionOffsets {
    fn committable(&self) -> Option<i64> {
        self.pending.first().copied().or(self.next_seen)
    }
}

/// Committable offsets of the partitions this consumer owns.
#[derive(Debug, Default, Clone)]
pub struct OffsetTracker {
    partitions: BTreeMap<i32, PartitionOffsets>,
    pending_total: usize,
}

impl OffsetTracker {
    /// Tracks nothing yet.
    pub fn new() -> OffsetTracker {
        OffsetTracker::default()
    }

    /// `offset` was fully handled (its report handed to the sink).
    #[inline]
    pub fn handled(&mut self, partition: i32, offset: i64) {
        let p = self.partitions.entry(partition).or_default();
        p.next_seen = Some(p.next_seen.map_or(offset + 1, |n| n.max(offset + 1)));
    }

    /// `offset` was sent to the dead-letter topic and awaits acknowledgement.
    pub fn begin_pending(&mut self, partition: i32, offset: i64) {
        let p = self.partitions.entry(partition).or_default();
        p.next_seen = Some(p.next_seen.map_or(offset + 1, |n| n.max(offset + 1)));
        if p.pending.insert(offset) {
            self.pending_total += 1;
        }
    }

    /// The dead-letter topic acknowledged `offset`.
    pub fn finish_pending(&mut self, partition: i32, offset: i64) {
        if let Some(p) = self.partitions.get_mut(&partition) {
            if p.pending.remove(&offset) {
                self.pending_total -= 1;
            }
        }
    }

    /// Dead-letter deliveries not yet acknowledged, all partitions.
    pub fn pending(&self) -> usize {
        self.pending_total
    }

    /// Whether `offset` of `partition` still awaits acknowledgement.
    pub fn is_pending(&self, partition: i32, offset: i64) -> bool {
        self.partitions
            .get(&partition)
            .is_some_and(|p| p.pending.contains(&offset))
    }

    /// The committable offset of one partition (next offset to consume).
    pub fn committable(&self, partition: i32) -> Option<i64> {
        self.partitions
            .get(&partition)
            .and_then(PartitionOffsets::committable)
    }

    /// One past the newest message seen of `partition` (handled or
    /// waiting for its dead letter).
    pub fn position(&self, partition: i32) -> Option<i64> {
        self.partitions.get(&partition).and_then(|p| p.next_seen)
    }

    /// Whether a dead letter of `partition` below `offset` is still
    /// unacknowledged.
    pub fn pending_below(&self, partition: i32, offset: i64) -> bool {
        self.partitions
            .get(&partition)
            .and_then(|p| p.pending.first())
            .is_some_and(|&first| first < offset)
    }

    /// Partitions with a position, i.e. that handled a message.
    pub fn partitions(&self) -> Vec<i32> {
        self.partitions.keys().copied().collect()
    }

    /// Partitions whose committable offset moved since the last call, with
    /// that offset; marks them stored.
    pub fn take_stores(&mut self) -> Vec<(i32, i64)> {
        let mut out = Vec::new();
        for (&partition, p) in &mut self.partitions {
            if let Some(c) = p.committable() {
                if p.stored.is_none_or(|s| c > s) {
                    p.stored = Some(c);
                    out.push((partition, c));
                }
            }
        }
        out
    }

    /// Drops a partition that is no longer ours; returns the number of
    /// dead-letter deliveries it still had outstanding.
    pub fn forget(&mut self, partition: i32) -> usize {
        let n = self
            .partitions
            .remove(&partition)
            .map_or(0, |p| p.pending.len());
        self.pending_total -= n;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handled_messages_advance_the_offset() {
        let mut t = OffsetTracker::new();
        assert!(t.take_stores().is_empty());
        t.handled(0, 10);
        t.handled(0, 11);
        t.handled(3, 0);
        assert_eq!(t.take_stores(), vec![(0, 12), (3, 1)]);
        assert!(t.take_stores().is_empty(), "nothing moved");
    }

    #[test]
    fn a_pending_dead_letter_holds_the_offset_back() {
        let mut t = OffsetTracker::new();
        t.handled(1, 4);
        t.begin_pending(1, 5);
        t.handled(1, 6);
        t.begin_pending(1, 7);
        t.handled(1, 8);
        assert_eq!(t.take_stores(), vec![(1, 5)]);
        assert_eq!(t.pending(), 2);
        t.finish_pending(1, 7);
        assert!(t.take_stores().is_empty(), "5 still pending");
        t.finish_pending(1, 5);
        assert_eq!(t.take_stores(), vec![(1, 9)]);
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn forgetting_a_partition_drops_its_pending() {
        let mut t = OffsetTracker::new();
        t.begin_pending(2, 0);
        t.begin_pending(2, 1);
        assert_eq!(t.forget(2), 2);
        assert_eq!(t.pending(), 0);
        assert_eq!(t.committable(2), None);
        t.finish_pending(2, 0); // late acknowledgement of a revoked partition
        assert_eq!(t.pending(), 0);
    }
}
