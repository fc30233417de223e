//! Decoding throughput on realistic report JSON (see BENCHMARKS.md).

// A bench binary, not an API: criterion_group! makes an undocumented
// public function.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use outage_detect::{decode, DecodeOptions};

/// A realistic mix: RFC 3339 and epoch-ms timestamps, subdivisions, all fields.
fn corpus() -> Vec<Vec<u8>> {
    let services = [
        "alexa", "aws.s3", "netflix", "whatsapp", "psn", "outlook", "fortnite", "paypal", "steam",
        "uber",
    ];
    let regions = [
        "GB", "US-CA", "DE", "FR", "JP", "AU", "BR", "IN", "ES", "US-NY", "IT", "NL",
    ];
    let problems = [
        "voice",
        "connectivity",
        "login",
        "app",
        "device",
        "outage",
        "payments",
        "other",
    ];
    let sources = ["web", "app", "twitter"];
    (0..10_000u64)
        .map(|i| {
            let ts_ms = 1_537_963_200_000 + i as i64 * 37;
            let ts = if i % 2 == 0 {
                chrono::DateTime::from_timestamp_millis(ts_ms)
                    .unwrap()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            } else {
                ts_ms.to_string()
            };
            let ts = if i % 2 == 0 { format!("\"{ts}\"") } else { ts };
            format!(
                r#"{{"service":"{}","region":"{}","ts":{},"problem":"{}","reporter":"u{:08x}","source":"{}"}}"#,
                services[(i % 10) as usize],
                regions[(i * 7 % 12) as usize],
                ts,
                problems[(i * 3 % 8) as usize],
                i.wrapping_mul(2_654_435_761) % 1_000_000,
                sources[(i % 3) as usize]
            )
            .into_bytes()
        })
        .collect()
}

fn bench_decode(c: &mut Criterion) {
    let corpus = corpus();
    let opts = DecodeOptions::default();
    let now = 1_537_963_200_000 + 10_000 * 37;
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(corpus.len() as u64));
    group.bench_function("realistic_reports", |b| {
        b.iter(|| {
            let mut ok = 0usize;
            for msg in &corpus {
                if decode(black_box(msg), Some(now), now, &opts).is_ok() {
                    ok += 1;
                }
            }
            assert_eq!(ok, corpus.len());
            ok
        })
    });
    group.bench_function("serde_json_value_baseline", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for msg in &corpus {
                let v: serde_json::Value = serde_json::from_slice(black_box(msg)).unwrap();
                n += v.as_object().map_or(0, |o| o.len());
            }
            n
        })
    });
    group.finish();
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
