//! Detector throughput on already-decoded reports: 10 services × 50
//! regions, reporters mostly unique, windows closing as event time moves
//! (see BENCHMARKS.md).

use std::borrow::Cow;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use outage_detect::region::ISO_3166_1_ALPHA2;
use outage_detect::{Detector, DetectorConfig, Problem, Region, Report};

const T0: i64 = 1_537_747_200_000;

fn reports(n: usize) -> Vec<Report<'static>> {
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
                // ~5,000 reports per minute: windows close as time moves.
                ts_ms: T0 + i as i64 * 12,
                problem: Problem::ALL[((x >> 20) % 8) as usize],
                reporter: Some(Cow::Owned(format!("u{}", (x >> 24) % 1_000_000))),
                source: None,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let input = reports(200_000);
    let mut group = c.benchmark_group("detector");
    group.throughput(Throughput::Elements(input.len() as u64));
    group.bench_function("observe_10x50", |b| {
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
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
