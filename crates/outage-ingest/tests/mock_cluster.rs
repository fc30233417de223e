//! Fast check of the decode → sink / dead-letter path on librdkafka's
//! in-process mock cluster (no broker binary needed; seconds, not minutes).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use outage_detect::DecodeOptions;
use outage_ingest::{IngestMetrics, Ingester, Shutdown};
use rdkafka::mocking::MockCluster;

#[test]
fn decode_and_dead_letter_path_on_the_mock_cluster() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("reports", 2, 1).unwrap();
    cluster.create_topic("reports.dlq", 2, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let msgs = report_stream(3_000, 70);
    produce(&bootstrap, "reports", &msgs);

    let registry = prometheus::Registry::new();
    let metrics = IngestMetrics::register(&registry).unwrap();
    let recorded = Recorded::default();
    let config = kafka_config(
        &bootstrap,
        "reports",
        "reports.dlq",
        &outage_testkit::unique_name("mock"),
    );
    let ingester = Ingester::new(
        &config,
        DecodeOptions::default(),
        RecordingSink(recorded.clone()),
        metrics.clone(),
    )
    .unwrap();
    let shutdown = Shutdown::new();
    let handle = {
        let shutdown = shutdown.clone();
        std::thread::spawn(move || ingester.run(&shutdown))
    };
    recorded.wait_for(2_930, Duration::from_secs(60));
    shutdown.trigger();
    let (summary, _) = handle.join().unwrap().unwrap();

    assert_eq!(recorded.len(), 2_930);
    assert_eq!(summary.consumed, 3_000);
    assert_eq!(summary.dead_lettered_total(), 70);
    assert_eq!(metrics.messages_consumed.get(), 3_000);
    assert_eq!(metrics.reports_decoded.get(), 2_930);

    let dead = read_topic(&bootstrap, "reports.dlq", 70);
    assert_eq!(dead.len(), 70);
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for m in &dead {
        *reasons
            .entry(header(m, "outage-radar.reason").unwrap())
            .or_default() += 1;
    }
    for (reason, n) in &reasons {
        assert_eq!(
            metrics.dead_lettered.with_label_values(&[reason]).get(),
            *n,
            "{reason}"
        );
    }
    assert!(reasons.len() >= 5, "{reasons:?}");

    // Events in the exposition: a reason label per dead-lettered message.
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    assert!(
        text.contains("outage_radar_messages_dead_lettered_total{reason=\"not_json\"}"),
        "{text}"
    );
}
