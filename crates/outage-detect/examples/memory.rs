//! Memory of the detector at scale: 1 million (service, country) series,
//! each having learned a day of windows.
//!
//! `cargo run --release -p outage-detect --example memory [SERIES]`

use std::borrow::Cow;

use outage_detect::region::ISO_3166_1_ALPHA2;
use outage_detect::{Detector, DetectorConfig, Problem, Region, Report};

fn main() {
    let target: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let countries = 200;
    let services = target.div_ceil(countries + 1);
    let config = DetectorConfig {
        window: std::time::Duration::from_secs(3600),
        max_series: target + services + 10,
        ..DetectorConfig::default()
    };
    let mut d = Detector::new(config);
    let regions: Vec<Region> = ISO_3166_1_ALPHA2[..countries]
        .iter()
        .map(|c| Region::parse(c).unwrap())
        .collect();
    let names: Vec<String> = (0..services).map(|i| format!("svc{i}")).collect();
    let t0 = 1_537_747_200_000i64;
    // Three hours: every series sees reports, the first windows close
    // and every baseline allocates its profile.
    for hour in 0..3 {
        for name in &names {
            for r in &regions {
                d.observe(&Report {
                    service: Cow::Borrowed(name),
                    region: *r,
                    ts_ms: t0 + hour * 3_600_000,
                    problem: Problem::App,
                    reporter: None,
                    source: None,
                });
            }
        }
        d.drain_events().for_each(drop);
    }
    let bytes = d.memory_bytes();
    println!(
        "{} series ({} services x {} countries + 1 global each): {:.1} MiB detector state, {:.0} bytes per series",
        d.series_count(),
        services,
        countries,
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / d.series_count() as f64
    );
}
