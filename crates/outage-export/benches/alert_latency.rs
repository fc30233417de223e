//! Alert latency: from the moment the detector's incident event is handed
//! to the exporter (the window that makes the incident has just closed) to
//! the alert being visible in Alertmanager's `GET /api/v2/alerts`, against
//! a real Alertmanager (Debian's, started by the testkit).
//!
//!   cargo bench -p outage-export --bench alert_latency
//!
//! Prints median, p90 and max over 50 incidents, polled every millisecond.

use std::time::{Duration, Instant};

use outage_detect::detector::SpreadEntry;
use outage_detect::IncidentEvent;
use outage_detect::{Country, Incident, Scope};
use outage_export::alert::{build_alert, start};
use outage_export::{AlertMetrics, AlertmanagerConfig};
use outage_testkit::Alertmanager;
use prometheus::Registry;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and test discovery
    }
    let am =
        Alertmanager::start("route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n");
    let config = AlertmanagerConfig {
        urls: vec![am.url()],
        ..AlertmanagerConfig::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let queue = {
        let _g = rt.enter();
        start(&config, AlertMetrics::register(&Registry::new()).unwrap())
            .unwrap()
            .unwrap()
    };
    let gb = Country::parse("GB").unwrap();
    let agent = ureq::AgentBuilder::new().build();
    let mut latencies = Vec::new();
    for i in 0..50 {
        let service = format!("latency-{i}");
        let inc = Incident {
            id: format!("id-{i}"),
            service: service.clone(),
            scope: Scope::Region(gb),
            regions: vec![SpreadEntry {
                region: gb,
                started_at_ms: 1_537_956_000_000,
                peak_ratio: 8.0,
            }],
            started_at_ms: 1_537_956_000_000,
            detected_at_ms: 1_537_956_120_000,
            resolved_at_ms: None,
            peak_ratio: 8.0,
            peak_surprise: 14.0,
            problems: [9, 0, 0, 0, 0, 0, 0, 0],
        };
        let url = format!("{}/api/v2/alerts", am.url());
        let filter = format!("service=\"{service}\"");
        let t0 = Instant::now();
        queue.push(build_alert(&config, IncidentEvent::Opened, &inc, None));
        loop {
            let body = agent
                .get(&url)
                .query("filter", &filter)
                .call()
                .unwrap()
                .into_string()
                .unwrap();
            if body.contains(&service) {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "alert {i} never arrived"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        latencies.push(t0.elapsed());
    }
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "alert latency over {} incidents: median {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        latencies.len(),
        ms(latencies[latencies.len() / 2]),
        ms(latencies[latencies.len() * 9 / 10]),
        ms(*latencies.last().unwrap())
    );
}
