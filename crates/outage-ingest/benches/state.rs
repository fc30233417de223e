//! State snapshots at scale: size per series, time to snapshot and to
//! restore 100,000 series, and the throughput cost of snapshotting at the
//! default interval (10 s) against none, measured side by side.
//!
//!   cargo bench -p outage-ingest --bench state
//!
//! "Snapshot" is what the consumer thread does per partition: the
//! detector's `to_snapshot` plus gzip and chunking (`encode_snapshot`);
//! "restore" is reassembly, checksum, gunzip and `Detector::from_snapshot`.
//! Producing the chunks happens on librdkafka's threads and is not timed.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use outage_detect::region::ISO_3166_1_ALPHA2;
use outage_detect::{Detector, DetectorConfig, Problem, Region, Report};
use outage_ingest::state::{decode_snapshot, encode_snapshot, LoadOutcome};

const COUNTRIES: usize = 199;
const HOUR: i64 = 3_600_000;
const T0: i64 = 1_537_747_200_000;

/// Reports of one series in one hour: 1..=6, irregular (a regular pattern
/// would make the compressed size meaningless).
fn counts(hour: i64, si: usize, ri: usize) -> usize {
    let h = (hour as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((si as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
        .wrapping_add((ri as u64).wrapping_mul(0x1656_67B1_9E37_79F9));
    1 + ((h ^ (h >> 29)) % 6) as usize
}

/// One hour of one service's reports in every region; returns how many.
fn feed(d: &mut Detector, name: &str, si: usize, regions: &[Region], hour: i64) -> u64 {
    let mut fed = 0;
    for (ri, r) in regions.iter().enumerate() {
        for k in 0..counts(hour, si, ri) {
            d.observe(&Report {
                service: Cow::Borrowed(name),
                region: *r,
                ts_ms: T0 + hour * HOUR + k as i64,
                problem: Problem::App,
                reporter: None,
                source: None,
            });
            fed += 1;
        }
    }
    fed
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let services = 500; // x (199 countries + global) = 100,000 series
    let regions: Vec<Region> = ISO_3166_1_ALPHA2[..COUNTRIES]
        .iter()
        .map(|c| Region::parse(c).unwrap())
        .collect();
    let names: Vec<String> = (0..services).map(|i| format!("svc{i}")).collect();
    let config = DetectorConfig {
        window: Duration::from_secs(3600),
        max_series: 200_000,
        ..DetectorConfig::default()
    };
    // A week of hourly windows: every series learns every hour-of-week slot.
    let mut d = Detector::new(config.clone());
    let started = Instant::now();
    for hour in 0..170i64 {
        for (si, name) in names.iter().enumerate() {
            feed(&mut d, name, si, &regions, hour);
        }
        d.drain_events().for_each(drop);
    }
    let series = d.series_count();
    eprintln!("built {series} series in {:.1?}", started.elapsed());

    // Snapshot and restore, best of 3.
    let mut snap = Duration::MAX;
    let mut restore = Duration::MAX;
    let mut sizes = (0, 0, 0);
    for _ in 0..3 {
        let t = Instant::now();
        let payload = d.to_snapshot();
        let (manifest, chunks) = encode_snapshot(&payload, 1, 0, series as u64, 0, 512 * 1024);
        snap = snap.min(t.elapsed());
        sizes = (payload.len(), manifest.bytes as usize, chunks.len());
        let by_index: BTreeMap<u32, Vec<u8>> = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| (i as u32, c[16..].to_vec()))
            .collect();
        let t = Instant::now();
        let LoadOutcome::Found(loaded) = decode_snapshot(&manifest, &by_index) else {
            panic!("snapshot does not decode")
        };
        let back = Detector::from_snapshot(&loaded.payload).unwrap();
        restore = restore.min(t.elapsed());
        assert_eq!(back.series_count(), series);
    }
    println!(
        "{series} series: snapshot {:.0} ms, restore {:.0} ms; {:.0} B/series raw, {:.0} B/series compressed ({} chunks of 512 KiB)",
        snap.as_secs_f64() * 1e3,
        restore.as_secs_f64() * 1e3,
        sizes.0 as f64 / series as f64,
        sizes.1 as f64 / series as f64,
        sizes.2
    );

    // Throughput with and without a snapshot every 10 s of wall time, in
    // alternating rounds of 30 s each.
    let interval = Duration::from_secs(10);
    let round = Duration::from_secs(30);
    let mut rates = [Vec::new(), Vec::new()];
    let mut hour = 170i64;
    for r in 0..4 {
        let with_snapshots = r % 2 == 1;
        let t = Instant::now();
        let mut last_snapshot = Instant::now();
        let mut reports = 0u64;
        let mut snapshots = 0;
        while t.elapsed() < round {
            for (si, name) in names.iter().enumerate() {
                reports += feed(&mut d, name, si, &regions, hour);
                if with_snapshots && last_snapshot.elapsed() >= interval {
                    let payload = d.to_snapshot();
                    std::hint::black_box(encode_snapshot(&payload, 1, 0, 0, 0, 512 * 1024));
                    snapshots += 1;
                    last_snapshot = Instant::now();
                }
            }
            d.drain_events().for_each(drop);
            hour += 1;
        }
        let rate = reports as f64 / t.elapsed().as_secs_f64();
        eprintln!(
            "round {r}: {} snapshots, {:.2} M reports/s",
            snapshots,
            rate / 1e6
        );
        rates[usize::from(with_snapshots)].push(rate);
    }
    let mean = |v: &Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "throughput: {:.2} M/s without snapshots, {:.2} M/s with one every 10 s: ratio {:.3}",
        mean(&rates[0]) / 1e6,
        mean(&rates[1]) / 1e6,
        mean(&rates[1]) / mean(&rates[0])
    );
}
