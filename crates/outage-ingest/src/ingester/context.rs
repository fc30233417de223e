//! The librdkafka side of the consumer: statistics (lag, and which
//! partitions are caught up), the rebalance callbacks that restore,
//! flush, keep and commit partitions as they move, and commit results.
//! Runs on the consumer thread, from inside `poll`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{info, warn};

use super::Pipeline;
use crate::lock;
use crate::metrics::{IngestMetrics, KafkaOp, RebalanceEvent};
use crate::sink::ReportSink;

/// Consumer context: rebalance callbacks run on the consumer thread from
/// inside `poll`, and need the pipeline to flush and commit before
/// partitions move.
pub(super) struct IngestContext<S> {
    pub(super) pipeline: Mutex<Pipeline<S>>,
    pub(super) metrics: IngestMetrics,
    pub(super) shutdown_timeout: Duration,
    pub(super) topic: String,
    /// Partitions currently ours (statistics also list former ones).
    pub(super) assigned: Mutex<std::collections::BTreeSet<i32>>,
    /// When the last statistics came, and which of our partitions they
    /// showed caught up (no lag, leader broker up). Windows close by the
    /// wall clock only for those: during a broker outage or a pause the
    /// partition may be behind, and closing its windows would turn the
    /// reports still to come into late ones.
    pub(super) caught_up: Mutex<(Option<Instant>, std::collections::BTreeSet<i32>)>,
    /// `statistics.interval.ms`; `None` when statistics are off (then
    /// nothing is known, and idle partitions tick as before).
    pub(super) stats_interval: Option<Duration>,
}

impl<S> IngestContext<S> {
    /// The group's committed offsets of `partitions` (those it has); empty
    /// when the broker cannot say in time.
    fn committed(&self, consumer: &BaseConsumer<Self>, partitions: &[i32]) -> BTreeMap<i32, i64>
    where
        Self: ConsumerContext,
    {
        let mut tpl = TopicPartitionList::with_capacity(partitions.len());
        for &p in partitions {
            tpl.add_partition(&self.topic, p);
        }
        match consumer.committed_offsets(tpl, Duration::from_secs(10)) {
            Ok(tpl) => tpl
                .elements()
                .iter()
                .map(|e| {
                    let offset = match e.offset() {
                        Offset::Offset(o) => o,
                        _ => -1,
                    };
                    (e.partition(), offset)
                })
                .collect(),
            Err(e) => {
                warn!(error = %e, "cannot read the committed offsets; state kept at revoke is not used");
                BTreeMap::new()
            }
        }
    }

    /// Whether `partition` may close windows by the wall clock now: the
    /// last statistics (no older than three intervals) showed it caught up.
    pub(super) fn may_tick(&self, partition: i32) -> bool {
        let Some(interval) = self.stats_interval else {
            return true;
        };
        let (at, set) = &*lock(&self.caught_up);
        at.is_some_and(|t| t.elapsed() <= 3 * interval) && set.contains(&partition)
    }
}

impl<S: ReportSink> ClientContext for IngestContext<S> {
    /// librdkafka statistics (every `statistics.interval.ms`): consumer lag
    /// per assigned partition.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let up: std::collections::BTreeSet<i32> = statistics
            .brokers
            .values()
            .filter(|b| b.state == "UP")
            .map(|b| b.nodeid)
            .collect();
        let mut caught_up = std::collections::BTreeSet::new();
        for topic in statistics.topics.values() {
            for (&partition, p) in &topic.partitions {
                // -1 is librdkafka's internal "unassigned" partition. The lag
                // is counted from what this consumer has taken (app_offset),
                // not from the last commit: with state snapshots commits
                // follow the snapshot interval.
                if partition < 0 || !lock(&self.assigned).contains(&partition) {
                    continue;
                }
                // Before the first message arrives, the position is the fetch
                // position less what is prefetched (e.g. right after a seek
                // to a snapshot's offset).
                let position = if p.app_offset >= 0 {
                    p.app_offset
                } else if p.next_offset >= 0 && p.fetch_state == "active" {
                    p.next_offset - p.fetchq_cnt.max(0)
                } else {
                    -1
                };
                let lag = if p.hi_offset >= 0 && position >= 0 {
                    (p.hi_offset - position).max(0)
                } else if p.hi_offset >= 0 && p.hi_offset == p.lo_offset {
                    0 // nothing to consume yet
                } else {
                    p.consumer_lag
                };
                if lag >= 0 {
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[&partition.to_string()])
                        .set(lag);
                }
                if lag == 0 && up.contains(&p.leader) {
                    caught_up.insert(partition);
                }
            }
        }
        *lock(&self.caught_up) = (Some(Instant::now()), caught_up);
    }
}

impl<S: ReportSink> ConsumerContext for IngestContext<S> {
    /// librdkafka's default, plus: newly assigned partitions are restored
    /// from their snapshots and start at the snapshots' offsets.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let rebalance = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                // The committed offsets say whether a state kept at revoke
                // is still current; a broker round trip only when one is.
                let kept = lock(&self.pipeline)
                    .kept
                    .keys()
                    .any(|p| partitions.contains(p));
                let committed = if kept {
                    self.committed(consumer, &partitions)
                } else {
                    BTreeMap::new()
                };
                let seeks = lock(&self.pipeline).restore(&partitions, &committed);
                for (partition, offset) in seeks {
                    if let Err(e) =
                        tpl.set_partition_offset(&self.topic, partition, Offset::Offset(offset))
                    {
                        warn!(partition, offset, error = %e, "cannot start at the snapshot offset");
                    }
                }
                Rebalance::Assign(tpl)
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Rebalance::Revoke(tpl),
            e => Rebalance::Error(KafkaError::Rebalance(e.into())),
        };
        self.pre_rebalance(consumer, &rebalance);
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match (&rebalance, cooperative) {
            (Rebalance::Assign(tpl), true) => consumer.incremental_assign(tpl),
            (Rebalance::Assign(tpl), false) => consumer.assign(tpl),
            (Rebalance::Revoke(tpl), true) => consumer.incremental_unassign(tpl),
            (_, false) => consumer.unassign(),
            (Rebalance::Error(_), true) => Ok(()),
        };
        if let Err(e) = result {
            self.metrics.kafka_error(KafkaOp::Consume);
            warn!(error = %e, "cannot apply the rebalance");
        }
        self.post_rebalance(consumer, &rebalance);
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            self.metrics.rebalance(RebalanceEvent::Revoke);
            let mut p = lock(&self.pipeline);
            // Messages of these partitions still being decoded are dropped
            // when they come back: the snapshot and commit below cover
            // exactly what was handed on, and the next owner (perhaps us
            // again) reads on from there.
            for partition in &partitions {
                *p.epochs.entry(*partition).or_default() += 1;
            }
            p.last_epoch = (-1, 0);
            let left = p.drain(consumer, self.shutdown_timeout);
            if left > 0 {
                warn!(left, "dead letters unacknowledged at revoke; their partitions will be re-read from the last safe offset");
            }
            p.keep(&partitions);
            p.flush_state(consumer, &partitions, self.shutdown_timeout);
            p.sink.partitions_revoked(&partitions);
            commit_sync(consumer, &self.metrics);
            for partition in &partitions {
                lock(&self.assigned).remove(partition);
                p.waiting.remove(partition);
                if let Some(st) = &mut p.state {
                    st.writer.forget(*partition);
                }
                let _ = self
                    .metrics
                    .consumer_lag
                    .remove_label_values(&[&partition.to_string()]);
                p.tracker.forget(*partition);
                p.dlq.forget(*partition);
            }
            self.metrics
                .assigned_partitions
                .sub(partitions.len() as i64);
            info!(?partitions, "partitions revoked; offsets committed");
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                self.metrics.rebalance(RebalanceEvent::Assign);
                lock(&self.assigned).extend(partitions.iter().copied());
                self.metrics
                    .assigned_partitions
                    .add(partitions.len() as i64);
                info!(?partitions, "partitions assigned");
                let mut p = lock(&self.pipeline);
                // Those whose state could not be read wait, paused, and
                // reach the sink once it is (see `Pipeline::retry_waiting`).
                let mut waiting = TopicPartitionList::new();
                for &partition in &partitions {
                    if p.waiting.contains_key(&partition) {
                        waiting.add_partition(&self.topic, partition);
                    }
                }
                if waiting.count() > 0 {
                    if let Err(e) = consumer.pause(&waiting) {
                        warn!(error = %e, "cannot pause the partitions waiting for their state");
                    }
                }
                let ready: Vec<i32> = partitions
                    .iter()
                    .copied()
                    .filter(|q| !p.waiting.contains_key(q))
                    .collect();
                p.sink.partitions_assigned(&ready);
                let n = p.waiting.len();
                self.metrics.waiting_for_state.set(n as i64);
                p.sink.state_waiting(n);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                self.metrics.kafka_error(KafkaOp::Consume);
                warn!(error = %e, "rebalance failed");
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => {
                self.metrics.kafka_error(KafkaOp::Commit);
                warn!(error = %e, "offset commit failed; it is retried at the next interval");
            }
        }
    }
}

pub(super) fn commit_sync<C: ConsumerContext>(consumer: &BaseConsumer<C>, metrics: &IngestMetrics) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        // NoOffset: auto-commit already committed everything stored.
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => {
            metrics.kafka_error(KafkaOp::Commit);
            warn!(error = %e, "synchronous offset commit failed");
        }
    }
}
