//! `outage-radar run` as a process against the real broker: it consumes,
//! dead-letters, and on SIGTERM/SIGINT commits everything and exits 0.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use outage_testkit::{unique_name, wait_until, Tansu};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

mod common;

/// `n` reports, one in ten malformed, keyed over both partitions.
fn batch(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let value = if i % 10 == 0 {
                "garbage".to_string()
            } else {
                format!(
                    r#"{{"service":"svc{}","region":"GB","problem":"login"}}"#,
                    i % 3
                )
            };
            (format!("svc{}", i % 7), value)
        })
        .collect()
}

fn offsets(bootstrap: &str, group: Option<&str>, topic: &str) -> BTreeMap<i32, i64> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap);
    if let Some(g) = group {
        cfg.set("group.id", g);
    }
    let consumer: BaseConsumer = cfg.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition(topic, p);
    }
    match group {
        Some(_) => consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .unwrap()
            .elements()
            .iter()
            .map(|e| {
                let o = if let Offset::Offset(o) = e.offset() {
                    o
                } else {
                    -1
                };
                (e.partition(), o)
            })
            .collect(),
        None => (0..2)
            .map(|p| {
                let (_, high) = consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .unwrap();
                (p, high)
            })
            .collect(),
    }
}

#[test]
fn sigterm_and_sigint_stop_gracefully_with_a_final_commit() {
    let broker = Tansu::start();
    let topic = unique_name("reports");
    let dlq = format!("{topic}.dlq");
    broker.create_topic(&topic, 2, false);
    broker.create_topic(&dlq, 2, false);
    broker.create_topic(&format!("{topic}.state"), 2, true);
    let group = unique_name("group");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n[incidents]\ntopic = \"\"\n[state]\ntopic = \"{topic}.state\"\n\
             [kafka]\nbrokers = \"{}\"\ntopic = \"{topic}\"\ndlq_topic = \"{dlq}\"\ngroup_id = \"{group}\"\n\
             [kafka.consumer_properties]\n\"fetch.wait.max.ms\" = \"5\"\n\
             # commit only on the way out, so the test sees the final commit\n\
             \"auto.commit.interval.ms\" = \"600000\"\n",
            broker.bootstrap()
        ),
    )
    .unwrap();

    for (round, signal) in [(1, "TERM"), (2, "INT")] {
        broker.produce(&topic, batch(1_000));
        let log = dir.path().join(format!("run{round}.log"));
        let mut child = common::spawn_run(&config, &log);
        // Wait until every message is handled (the progress line comes
        // every 10 s).
        let handled = wait_until(Duration::from_secs(60), || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("consumed=1000")
        });
        let started = Instant::now();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = child.wait().unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            handled,
            "run {round} did not consume the batch in time:\n{text}"
        );
        assert!(exit.success(), "exit status {exit:?}:\n{text}");
        assert!(started.elapsed() < Duration::from_secs(15), "slow shutdown");
        assert!(text.contains(&format!("SIG{signal}")), "{text}");
        assert!(text.contains("stopped cleanly"), "{text}");
        assert!(
            text.contains("counted=900") && text.contains("dead_lettered=100"),
            "{text}"
        );
        let ends = offsets(&broker.bootstrap(), None, &topic);
        assert!(
            ends.values().all(|&e| e > 0),
            "both partitions hold reports"
        );
        assert_eq!(
            offsets(&broker.bootstrap(), Some(&group), &topic),
            ends,
            "committed offsets reach the end offsets after round {round}"
        );
    }
}
