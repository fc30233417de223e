//! Cost of one /metrics scrape (gather + text encoding) with 100,000 live
//! (service, region) series, against the same registry with none (the
//! pipeline metrics alone), in one run.
//!
//!   cargo bench -p outage-export --bench scrape

// A bench binary, not an API: criterion_group! makes an undocumented
// public function.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use outage_detect::{Country, Scope, SeriesState, WindowScore};
use outage_export::{MetricsConfig, PipelineMetrics, SeriesMetrics};
use prometheus::{Encoder, Registry, TextEncoder};

fn registry(series: usize) -> (Registry, SeriesMetrics) {
    let r = Registry::new();
    let m = SeriesMetrics::register(&r, &MetricsConfig::default()).unwrap();
    PipelineMetrics::register(&r).unwrap();
    let per_service = 100;
    for i in 0..series {
        let service = format!("service-{:05}", i / per_service);
        let country = Country::from_index(i % per_service + 1);
        m.window(
            &WindowScore {
                window_start_ms: 0,
                service,
                scope: Scope::Region(country),
                observed: 17,
                expected: 12.25,
                surprise: 0.75,
                span: 1,
                ratio: 1.39,
                anomalous: false,
                state: SeriesState::Normal,
            },
            60_000,
        );
    }
    assert_eq!(m.len(), series);
    (r, m)
}

/// What GET /metrics does: the registry, then the per-series table.
fn scrape(r: &Registry, m: &SeriesMetrics, buf: &mut Vec<u8>) -> usize {
    buf.clear();
    TextEncoder::new().encode(&r.gather(), buf).unwrap();
    m.encode(buf);
    buf.len()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("scrape");
    g.sample_size(10);
    let mut buf = Vec::new();
    for series in [0usize, 100_000] {
        let (r, m) = registry(series);
        let bytes = scrape(&r, &m, &mut buf);
        eprintln!("{series} series: {bytes} bytes per scrape");
        g.bench_function(format!("{series}_series"), |b| {
            b.iter(|| scrape(&r, &m, &mut buf))
        });
    }
    // Baseline, same run: the same 100,000 series as five `prometheus`
    // vectors (what a straightforward exporter does).
    let r = Registry::new();
    for (name, help) in [
        ("a_total", "a"),
        ("b", "b"),
        ("c", "c"),
        ("d", "d"),
        ("e", "e"),
    ] {
        let v =
            prometheus::GaugeVec::new(prometheus::Opts::new(name, help), &["service", "region"])
                .unwrap();
        for i in 0..100_000usize {
            let service = format!("service-{:05}", i / 100);
            let country = Country::from_index(i % 100 + 1);
            v.with_label_values(&[service.as_str(), country.as_str()])
                .set(12.25);
        }
        r.register(Box::new(v)).unwrap();
    }
    let empty = SeriesMetrics::register(&Registry::new(), &MetricsConfig::default()).unwrap();
    eprintln!(
        "baseline: {} bytes per scrape",
        scrape(&r, &empty, &mut buf)
    );
    g.bench_function("100000_series_as_prometheus_vecs", |b| {
        b.iter(|| scrape(&r, &empty, &mut buf))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
