//! State snapshots of the partitions the consumer feeds: taken between
//! two batches, written to the state topic once every dead letter below
//! their offset is acknowledged, flushed at revoke, kept in memory at
//! revoke, and restored (from memory or the topic, whichever is newer) at
//! assignment. Offsets are stored only as far as a written snapshot
//! covers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use outage_detect::time::wall_ms;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, info, warn};

use super::{IngestContext, Pipeline, StatePart};
use crate::metrics::{IngestMetrics, KafkaOp, RestoreOutcome, SnapshotResult};
use crate::sink::ReportSink;
use crate::state::{state_key, LoadOutcome, SinkState};

impl<S: ReportSink> Pipeline<S> {
    /// Stores the offsets of snapshots now fully written, and takes the
    /// next round of snapshots when the interval has passed.
    pub(super) fn maintain_state(&mut self, consumer: &BaseConsumer<IngestContext<S>>) {
        self.collect_snapshot_acks(consumer);
        self.write_deferred();
        let due = self
            .state
            .as_ref()
            .is_some_and(|st| Instant::now() >= st.writer.next_at);
        if due {
            let partitions = self.tracker.partitions();
            self.snapshot(&partitions);
            if let Some(st) = &mut self.state {
                st.writer.next_at = Instant::now() + st.writer.config.interval;
            }
        }
    }

    pub(super) fn collect_snapshot_acks(&mut self, consumer: &BaseConsumer<IngestContext<S>>) {
        let Some(st) = &mut self.state else { return };
        let (done, failed) = st.writer.poll_acks();
        for _ in &failed {
            self.metrics.snapshot(SnapshotResult::Failed);
        }
        if done.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::with_capacity(done.len());
        for (partition, offset) in done {
            self.metrics.snapshot(SnapshotResult::Written);
            let _ = tpl.add_partition_offset(&self.topic, partition, Offset::Offset(offset));
        }
        if let Err(e) = consumer.store_offsets(&tpl) {
            self.metrics.kafka_error(KafkaOp::Store);
            debug!(error = %e, "cannot store snapshot offsets");
        }
    }

    /// Snapshots `partitions` whose position moved since their last
    /// snapshot and that have no dead letter outstanding (those wait for
    /// the next round: a snapshot must cover exactly the messages before
    /// its offset).
    pub(super) fn snapshot(&mut self, partitions: &[i32]) {
        let Some(st) = &mut self.state else { return };
        for &partition in partitions {
            if st.writer.in_flight.contains_key(&partition)
                || st.writer.unrestored.contains(&partition)
            {
                continue;
            }
            let Some(offset) = self.tracker.position(partition) else {
                continue;
            };
            if st.writer.last_offset.get(&partition) == Some(&offset) {
                continue;
            }
            let waiting = self.tracker.pending_below(partition, offset);
            if waiting && st.writer.deferred.contains_key(&partition) {
                // The one taken earlier goes out when its letters are in.
                continue;
            }
            let started = Instant::now();
            let Some(state) = self.sink.snapshot(partition) else {
                continue;
            };
            if waiting {
                // A steady trickle of bad messages always has a dead letter
                // in flight: the snapshot is taken now and written once the
                // letters below its offset are acknowledged, so snapshots
                // (and the commits that follow them) keep progressing.
                st.writer.deferred.insert(partition, (offset, state));
                continue;
            }
            st.writer.deferred.remove(&partition);
            Self::write_snapshot(
                st,
                &self.metrics,
                partition,
                offset,
                state,
                started,
                self.clock_ms,
            );
        }
    }

    /// Writes the deferred snapshots whose dead letters are all in.
    pub(super) fn write_deferred(&mut self) {
        let Some(st) = &mut self.state else { return };
        let ready: Vec<i32> = st
            .writer
            .deferred
            .iter()
            .filter(|(&p, (offset, _))| {
                !self.tracker.pending_below(p, *offset) && !st.writer.in_flight.contains_key(&p)
            })
            .map(|(&p, _)| p)
            .collect();
        for partition in ready {
            if let Some((offset, state)) = st.writer.deferred.remove(&partition) {
                let started = Instant::now();
                Self::write_snapshot(
                    st,
                    &self.metrics,
                    partition,
                    offset,
                    state,
                    started,
                    self.clock_ms,
                );
            }
        }
    }

    pub(super) fn write_snapshot(
        st: &mut StatePart,
        metrics: &IngestMetrics,
        partition: i32,
        offset: i64,
        state: SinkState,
        started: Instant,
        now_ms: i64,
    ) {
        match st.writer.write(partition, offset, state, now_ms) {
            Ok(manifest) => {
                metrics
                    .state_snapshot_seconds
                    .observe(started.elapsed().as_secs_f64());
                metrics.state_snapshot_bytes.set(manifest.bytes as i64);
                debug!(
                    partition,
                    offset,
                    items = manifest.items,
                    bytes = manifest.bytes,
                    chunks = manifest.chunks,
                    "state snapshot enqueued"
                );
            }
            Err(e) => {
                metrics.snapshot(SnapshotResult::Failed);
                warn!(partition, offset, error = %e, "cannot enqueue a state snapshot; retrying next interval");
            }
        }
    }

    /// Snapshots `partitions` now and waits (up to `timeout`) until every
    /// snapshot in flight for them is written; stores their offsets.
    pub(super) fn flush_state(
        &mut self,
        consumer: &BaseConsumer<IngestContext<S>>,
        partitions: &[i32],
        timeout: Duration,
    ) {
        if self.state.is_none() {
            return;
        }
        let deadline = Instant::now() + timeout;
        // Two rounds: a snapshot already in flight covers an older position,
        // so once it is written the final position gets its own.
        for _ in 0..2 {
            self.snapshot(partitions);
            loop {
                self.collect_snapshot_acks(consumer);
                let st = self.state.as_ref().expect("checked above");
                let outstanding = partitions
                    .iter()
                    .filter(|p| st.writer.in_flight.contains_key(p))
                    .count();
                if outstanding == 0 {
                    break;
                }
                if Instant::now() >= deadline {
                    warn!(outstanding, "state snapshots unacknowledged; their partitions restart from the previous snapshot");
                    return;
                }
                st.writer.producer.poll(Duration::from_millis(20));
            }
        }
    }

    /// Keeps an in-memory snapshot of each of `partitions` (being revoked)
    /// whose every message below its position is settled; see `kept`.
    pub(super) fn keep(&mut self, partitions: &[i32]) {
        for &partition in partitions {
            let unrestored = self
                .state
                .as_ref()
                .is_some_and(|st| st.writer.unrestored.contains(&partition));
            let Some(offset) = self.tracker.position(partition) else {
                continue;
            };
            if unrestored || self.tracker.pending_below(partition, offset) {
                continue;
            }
            if let Some(state) = self.sink.snapshot(partition) {
                self.kept.insert(partition, (offset, state));
            }
        }
    }

    /// Restores assigned partitions from what was kept in memory at their
    /// last revoke or from their snapshots, whichever is newer; returns
    /// the offsets to start from (partitions with neither start from their
    /// committed offset with empty state). `committed`: the group's
    /// committed offsets (a kept state behind them is stale: another
    /// instance consumed further meanwhile).
    pub(super) fn restore(
        &mut self,
        partitions: &[i32],
        committed: &BTreeMap<i32, i64>,
    ) -> Vec<(i32, i64)> {
        let mut kept = std::mem::take(&mut self.kept);
        let mut seeks = Vec::new();
        let mut from_topic = Vec::new();
        for &partition in partitions {
            let usable = kept
                .remove(&partition)
                .filter(|(offset, _)| committed.get(&partition).is_some_and(|&c| c <= *offset));
            match usable {
                Some((offset, state)) => from_topic.push((partition, Some((offset, state)))),
                None => from_topic.push((partition, None)),
            }
        }
        let Some(st) = &mut self.state else {
            for (partition, kept) in from_topic {
                if let Some((offset, state)) = kept {
                    self.restore_kept(partition, offset, &state, &mut seeks);
                }
            }
            return seeks;
        };
        let mut kept: BTreeMap<i32, (i64, SinkState)> = from_topic
            .into_iter()
            .filter_map(|(p, k)| Some((p, k?)))
            .collect();
        // One scan per state partition for the whole assignment.
        let wanted: Vec<(String, i32)> = partitions
            .iter()
            .map(|&p| (state_key(&st.group, &self.topic, p), p))
            .collect();
        let mut loaded = st.reader.load_many(&wanted);
        for &partition in partitions {
            let key = state_key(&st.group, &self.topic, partition);
            st.writer.unrestored.remove(&partition);
            let mut outcome = loaded.remove(&key).unwrap_or(Ok(LoadOutcome::Missing));
            if let Some((offset, state)) = kept.remove(&partition) {
                let newer =
                    matches!(&outcome, Ok(LoadOutcome::Found(l)) if l.manifest.offset > offset);
                if !newer {
                    if let Ok(LoadOutcome::Found(l)) = &outcome {
                        st.writer
                            .chunks_written
                            .insert(partition, l.manifest.chunks);
                    }
                    Self::restore_kept_into(
                        &mut self.sink,
                        &self.metrics,
                        partition,
                        offset,
                        &state,
                        &mut seeks,
                    );
                    if seeks.last().is_some_and(|&(p, _)| p == partition) {
                        st.writer.last_offset.insert(partition, offset);
                        continue;
                    }
                    outcome = Ok(LoadOutcome::Missing);
                }
            }
            let outcome = match outcome {
                Ok(o) => o,
                Err(e) => {
                    self.metrics.restore(RestoreOutcome::Error);
                    st.writer.unrestored.insert(partition);
                    warn!(partition, error = %e, "cannot read the state topic; starting the partition empty from its committed offset, without snapshots until its next assignment (its last snapshot is kept)");
                    continue;
                }
            };
            match outcome {
                LoadOutcome::Found(loaded) => {
                    let m = &loaded.manifest;
                    match self.sink.restore(partition, &loaded.payload) {
                        Ok(()) => {
                            self.metrics.restore(RestoreOutcome::Restored);
                            info!(
                                partition,
                                offset = m.offset,
                                items = m.items,
                                bytes = m.bytes,
                                age_s = (wall_ms() - m.created_at_ms) / 1000,
                                "partition state restored from its snapshot"
                            );
                            st.writer.last_offset.insert(partition, m.offset);
                            st.writer.chunks_written.insert(partition, m.chunks);
                            seeks.push((partition, m.offset));
                        }
                        Err(e) => {
                            self.metrics.restore(RestoreOutcome::Incompatible);
                            st.writer.chunks_written.insert(partition, m.chunks);
                            warn!(partition, error = %e, "snapshot refused; starting the partition empty from its committed offset");
                        }
                    }
                }
                LoadOutcome::Missing => {
                    self.metrics.restore(RestoreOutcome::Missing);
                    info!(
                        partition,
                        "no snapshot; starting the partition empty from its committed offset"
                    );
                }
                LoadOutcome::Corrupt(e) => {
                    self.metrics.restore(RestoreOutcome::Corrupt);
                    warn!(partition, error = %e, "corrupt snapshot skipped; starting the partition empty from its committed offset");
                }
            }
        }
        seeks
    }

    pub(super) fn restore_kept(
        &mut self,
        partition: i32,
        offset: i64,
        state: &SinkState,
        seeks: &mut Vec<(i32, i64)>,
    ) {
        Self::restore_kept_into(
            &mut self.sink,
            &self.metrics,
            partition,
            offset,
            state,
            seeks,
        );
    }

    /// Gives the sink the state kept at the partition's last revoke; on
    /// success the partition starts at `offset` (pushed to `seeks`).
    pub(super) fn restore_kept_into(
        sink: &mut S,
        metrics: &IngestMetrics,
        partition: i32,
        offset: i64,
        state: &SinkState,
        seeks: &mut Vec<(i32, i64)>,
    ) {
        match sink.restore(partition, &state.payload) {
            Ok(()) => {
                metrics.restore(RestoreOutcome::Kept);
                info!(
                    partition,
                    offset,
                    items = state.items,
                    "partition continues from the state kept at its last revoke"
                );
                seeks.push((partition, offset));
            }
            Err(e) => {
                warn!(partition, error = %e, "the state kept at revoke was refused");
            }
        }
    }
}
