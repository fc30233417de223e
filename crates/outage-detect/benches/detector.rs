//! Detector throughput on already-decoded reports: 10 services × 50
//! regions, reporters mostly unique, windows closing as event time moves
//! (see BENCHMARKS.md). `observe_10x50_sparse` keeps the earlier, sparser
//! stream (5,000 reports per minute) where window closing weighs more.

// A bench binary, not an API: criterion_group! makes an undocumented
// public function.
#![allow(missing_docs)]

use std::borrow::Cow;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use outage_detect::region::ISO_3166_1_ALPHA2;
use outage_detect::{Detector, DetectorConfig, Problem, Region, Report};

const T0: i64 = 1_537_747_200_000;

fn reports(n: usize, step_ms: i64) -> Vec<Report<'static>> {
    let services = [
        "alexa", "aws.s3", "netflix", "whatsapp", "psn", "outlook", "fortnite", "paypal", "steam",
        "uber",
    ];
    let regions: Vec<Region> = ISO_3166_1_ALPHA2[..50]
        .iter()
        .map(|c| Region::parse(c).unwrap())
        .collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Report {
                service: Cow::Borrowed(services[(x % 10) as usize]),
                region: regions[((x >> 8) % 50) as usize],
                // 60,000 reports per minute on this partition (1,000/s):
                // windows close as time moves.
                ts_ms: T0 + i as i64 * step_ms,
                problem: Problem::ALL[((x >> 20) % 8) as usize],
                reporter: Some(Cow::Owned(format!("u{}", (x >> 24) % 1_000_000))),
                source: None,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("detector");
    for (name, step_ms) in [("observe_10x50", 1), ("observe_10x50_sparse", 12)] {
        let input = reports(200_000, step_ms);
        group.throughput(Throughput::Elements(input.len() as u64));
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || Detector::new(DetectorConfig::default()),
                |d| {
                    for r in &input {
                        d.observe(r);
                    }
                    d.drain_events().count()
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
