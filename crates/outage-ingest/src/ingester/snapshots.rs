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

/// A partition whose state could not be read at assignment: paused (not
/// consumed, so nothing is counted on an empty state), not ready, and its
/// read retried.
pub(super) struct Waiting {
    pub(super) since: Instant,
    pub(super) attempts: u32,
    pub(super) next_at: Instant,
}

/// Shortest time a retried read is given (a `load_timeout` set very low
/// must not make every retry fail).
const MIN_RETRY_READ: Duration = Duration::from_secs(1);
/// Longest a retried read may block the consumer thread.
const MAX_RETRY_READ: Duration = Duration::from_secs(30);
/// How long a partition waits for its state before it starts empty.
const GIVE_UP_AFTER: Duration = Duration::from_secs(300);

/// Pause before retry `attempt` (1 s, doubling, at most 30 s).
fn retry_backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}
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
        // Kept states of partitions not assigned back are dropped here.
        let mut kept: BTreeMap<i32, (i64, SinkState)> = std::mem::take(&mut self.kept)
            .into_iter()
            .filter(|(p, (offset, _))| {
                partitions.contains(p) && committed.get(p).is_some_and(|&c| c <= *offset)
            })
            .collect();
        let mut seeks = Vec::new();
        let Some(st) = &mut self.state else {
            for (partition, (offset, state)) in kept {
                Self::restore_kept(
                    &mut self.sink,
                    &self.metrics,
                    partition,
                    offset,
                    &state,
                    &mut seeks,
                );
            }
            return seeks;
        };
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
                    Self::restore_kept(
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
                    warn!(partition, error = %e, "cannot read the state topic; the partition waits for its state (not consumed, not ready) and the read is retried");
                    let now = Instant::now();
                    self.waiting.insert(
                        partition,
                        Waiting {
                            since: now,
                            attempts: 1,
                            next_at: now + retry_backoff(1),
                        },
                    );
                    continue;
                }
            };
            Self::apply_loaded(
                &mut self.sink,
                &self.metrics,
                st,
                partition,
                outcome,
                &mut seeks,
            );
        }
        seeks
    }

    /// Applies what the state topic held for `partition`: a snapshot is
    /// restored (and its offset pushed to `seeks`); without one the
    /// partition starts empty from its committed offset.
    fn apply_loaded(
        sink: &mut S,
        metrics: &IngestMetrics,
        st: &mut StatePart,
        partition: i32,
        outcome: LoadOutcome,
        seeks: &mut Vec<(i32, i64)>,
    ) {
        {
            let (sink, metrics) = (&mut *sink, metrics);
            match outcome {
                LoadOutcome::Found(loaded) => {
                    let m = &loaded.manifest;
                    match sink.restore(partition, &loaded.payload) {
                        Ok(()) => {
                            metrics.restore(RestoreOutcome::Restored);
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
                            metrics.restore(RestoreOutcome::Incompatible);
                            st.writer.chunks_written.insert(partition, m.chunks);
                            warn!(partition, error = %e, "snapshot refused; starting the partition empty from its committed offset");
                        }
                    }
                }
                LoadOutcome::Missing => {
                    metrics.restore(RestoreOutcome::Missing);
                    info!(
                        partition,
                        "no snapshot; starting the partition empty from its committed offset"
                    );
                }
                LoadOutcome::Corrupt(e) => {
                    metrics.restore(RestoreOutcome::Corrupt);
                    warn!(partition, error = %e, "corrupt snapshot skipped; starting the partition empty from its committed offset");
                }
            }
        }
    }

    /// Retries the state reads of the partitions waiting for their state
    /// (see `Pipeline::waiting`) whose time has come, each with twice the
    /// time of the try before (from `load_timeout`, at least
    /// [`MIN_RETRY_READ`], at most [`MAX_RETRY_READ`]). A partition whose state is read is restored,
    /// starts at its snapshot's offset and is handed to the sink; one still
    /// unreadable after [`GIVE_UP_AFTER`] starts empty from its committed
    /// offset, as before retries, and is not snapshotted until its next
    /// assignment (its good snapshot is kept).
    pub(super) fn retry_waiting(&mut self, consumer: &BaseConsumer<IngestContext<S>>) {
        let Some(st) = &mut self.state else {
            self.waiting.clear();
            return;
        };
        let now = Instant::now();
        let due: Vec<i32> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.next_at <= now)
            .map(|(&p, _)| p)
            .collect();
        if due.is_empty() {
            return;
        }
        let attempts = due
            .iter()
            .map(|p| self.waiting[p].attempts)
            .max()
            .unwrap_or(1);
        let timeout = (st.reader.timeout() * 2u32.saturating_pow(attempts.min(16)))
            .clamp(MIN_RETRY_READ, MAX_RETRY_READ.max(st.reader.timeout()));
        let wanted: Vec<(String, i32)> = due
            .iter()
            .map(|&p| (state_key(&st.group, &self.topic, p), p))
            .collect();
        let mut loaded = st.reader.load_many_within(&wanted, timeout);
        let mut ready = Vec::new();
        for (key, partition) in wanted {
            let mut seeks = Vec::new();
            match loaded.remove(&key).unwrap_or(Ok(LoadOutcome::Missing)) {
                Ok(outcome) => {
                    let waited = self.waiting[&partition].since.elapsed();
                    info!(
                        partition,
                        ?waited,
                        attempts = self.waiting[&partition].attempts + 1,
                        "state topic read on retry"
                    );
                    Self::apply_loaded(
                        &mut self.sink,
                        &self.metrics,
                        st,
                        partition,
                        outcome,
                        &mut seeks,
                    );
                }
                Err(e) => {
                    self.metrics.restore(RestoreOutcome::Error);
                    let w = self.waiting.get_mut(&partition).expect("due");
                    if w.since.elapsed() < GIVE_UP_AFTER {
                        w.attempts += 1;
                        w.next_at = Instant::now() + retry_backoff(w.attempts);
                        warn!(partition, attempts = w.attempts, error = %e, "state topic still unreadable; retrying");
                        continue;
                    }
                    st.writer.unrestored.insert(partition);
                    warn!(partition, error = %e, waited = ?w.since.elapsed(), "state topic unreadable; giving up: the partition starts empty from its committed offset, without snapshots until its next assignment (its last snapshot is kept)");
                }
            }
            for (p, offset) in seeks {
                if let Err(e) = consumer.seek(
                    &self.topic,
                    p,
                    Offset::Offset(offset),
                    Duration::from_secs(10),
                ) {
                    warn!(partition = p, offset, error = %e, "cannot start at the snapshot offset");
                }
            }
            self.waiting.remove(&partition);
            ready.push(partition);
        }
        if ready.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::with_capacity(ready.len());
        for &p in &ready {
            tpl.add_partition(&self.topic, p);
        }
        if !self.paused {
            if let Err(e) = consumer.resume(&tpl) {
                warn!(error = %e, "cannot resume partitions whose state was read");
            }
        }
        self.sink.partitions_assigned(&ready);
        self.metrics
            .waiting_for_state
            .set(self.waiting.len() as i64);
        self.sink.state_waiting(self.waiting.len());
    }

    /// Gives the sink the state kept at the partition's last revoke; on
    /// success the partition starts at `offset` (pushed to `seeks`).
    pub(super) fn restore_kept(
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
