//! Randomized scenario families, deterministic from a seed, so detection is
//! judged on many scenarios nobody tuned for instead of the two shipped ones.
//!
//! Two kinds:
//! - `outages`: five days of history, then four days with ten outages of
//!   random service and region (volumes differ 1000×), magnitude 1.5–20×
//!   (log-uniform), length 5 min–6 h (log-uniform), shape step, ramp
//!   (5–30 min) or flapping, at any hour and day, one of them a fan-out over
//!   3–6 regions; plus late, out-of-order, malformed and broken-clock
//!   reports.
//! - `quiet`: thirty days with no outage: drift, a data gap, a regional
//!   holiday, spam from a handful of reporters, late and broken-clock
//!   reports; daylight-saving changes where the month has one of its
//!   countries' (the simulator keeps every country's real clock).
//!
//! Must not: read anything but the seed.

use std::time::Duration;

use outage_detect::time::format_rfc3339_ms as rfc3339;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{EventSpec, RegionDelay, RegionSpec, Scenario, ServiceSpec, Shape};

const MIN: i64 = 60_000;
const DAY: i64 = 86_400_000;

/// Countries and their standard-time UTC offsets.
const COUNTRIES: [(&str, f64); 24] = [
    ("US", -5.0),
    ("GB", 0.0),
    ("DE", 1.0),
    ("FR", 1.0),
    ("JP", 9.0),
    ("IN", 5.5),
    ("BR", -3.0),
    ("CA", -5.0),
    ("AU", 10.0),
    ("ES", 1.0),
    ("IT", 1.0),
    ("NL", 1.0),
    ("MX", -6.0),
    ("SE", 1.0),
    ("IE", 0.0),
    ("NZ", 12.0),
    ("IS", 0.0),
    ("PL", 1.0),
    ("ZA", 2.0),
    ("KR", 9.0),
    ("AR", -3.0),
    ("TR", 3.0),
    ("EG", 2.0),
    ("SG", 8.0),
];

const SERVICES: [&str; 6] = ["alexa", "netflix", "psn", "steam", "whatsapp", "outlook"];

/// Kinds of family, for `--scenario family:KIND:SEED`.
pub const KINDS: [&str; 2] = ["outages", "quiet"];

fn log_uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    (rng.gen_range(lo.ln()..hi.ln())).exp()
}

/// A scenario of the family `kind` (see [`KINDS`]), the same for the same
/// seed; `None` for an unknown kind.
pub fn family(kind: &str, seed: u64) -> Option<Scenario> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0f0f_5eed_fa11_1e55);
    // Any day of 2017–2022 at midnight UTC.
    let start = 1_483_228_800_000 + rng.gen_range(0..6 * 365) * DAY;
    let mut pool = COUNTRIES.to_vec();
    pool.shuffle(&mut rng);
    let n_regions = rng.gen_range(9..=14);
    let regions: Vec<RegionSpec> = pool[..n_regions]
        .iter()
        .enumerate()
        .map(|(i, (code, offset))| RegionSpec {
            code: (*code).to_string(),
            // The first is the biggest; the rest spread over 1000×.
            weight: if i == 0 {
                300.0
            } else {
                log_uniform(&mut rng, 0.3, 120.0)
            },
            utc_offset: *offset,
        })
        .collect();
    let mut names = SERVICES.to_vec();
    names.shuffle(&mut rng);
    let n_services = rng.gen_range(2..=3);
    let services: Vec<ServiceSpec> = names[..n_services]
        .iter()
        .map(|name| ServiceSpec {
            name: (*name).to_string(),
            rate_per_minute: log_uniform(&mut rng, 30.0, 300.0),
            dispersion: rng.gen_range(0.01..0.06),
            reporters: 2_000_000,
        })
        .collect();
    let at = |ms: i64| rfc3339(ms);
    let mut events = Vec::new();
    let (name, days) = match kind {
        "outages" => {
            let history = 5 * DAY;
            let slots = 10;
            let slot = 4 * DAY / slots;
            let fan_out = rng.gen_range(0..slots);
            for k in 0..slots {
                let service = services[rng.gen_range(0..services.len())].name.clone();
                let duration = log_uniform(&mut rng, 5.0, 360.0).round() as i64 * MIN;
                let latest = (slot - duration - 30 * MIN).max(MIN);
                let begin = start + history + k * slot + rng.gen_range(0..latest) / MIN * MIN;
                let multiplier = (log_uniform(&mut rng, 1.5, 20.0) * 100.0).round() / 100.0;
                let (shape, period) = match rng.gen_range(0..3) {
                    0 => (Shape::Step, 0),
                    1 => (Shape::Ramp, rng.gen_range(5..=30)),
                    _ => (Shape::Flap, rng.gen_range(5..=20)),
                };
                let affected = if k == fan_out {
                    let n = rng.gen_range(3..=6);
                    let mut order: Vec<&RegionSpec> = regions.iter().collect();
                    order.shuffle(&mut rng);
                    order
                        .into_iter()
                        .take(n)
                        .enumerate()
                        .map(|(i, r)| RegionDelay {
                            region: r.code.clone(),
                            after: Duration::from_secs(if i == 0 {
                                0
                            } else {
                                rng.gen_range(1..=20) * 60
                            }),
                        })
                        .collect()
                } else {
                    vec![RegionDelay {
                        region: regions[rng.gen_range(0..regions.len())].code.clone(),
                        after: Duration::ZERO,
                    }]
                };
                events.push(EventSpec::Outage {
                    service,
                    start: at(begin),
                    duration: Duration::from_millis(duration as u64),
                    multiplier,
                    regions: affected,
                    problem: Some("outage".into()),
                    shape,
                    period: Duration::from_secs(period * 60),
                });
            }
            ("outages", 9)
        }
        "quiet" => {
            let pick = |rng: &mut ChaCha8Rng| regions[rng.gen_range(0..regions.len())].code.clone();
            let service =
                |rng: &mut ChaCha8Rng| services[rng.gen_range(0..services.len())].name.clone();
            events.push(EventSpec::Drift {
                service: service(&mut rng),
                start: at(start + rng.gen_range(3..10) * DAY),
                growth_per_week: rng.gen_range(0.1..0.3),
            });
            events.push(EventSpec::Gap {
                start: at(start + rng.gen_range(4 * 24..28 * 24) * 3_600_000),
                duration: Duration::from_secs(rng.gen_range(20..180) * 60),
            });
            events.push(EventSpec::Holiday {
                region: pick(&mut rng),
                start: at(start + rng.gen_range(2..28) * DAY),
                duration: Duration::from_secs(86_400),
                factor: rng.gen_range(0.4..0.7),
            });
            events.push(EventSpec::Spam {
                service: service(&mut rng),
                region: pick(&mut rng),
                start: at(start + rng.gen_range(2 * 24..29 * 24) * 3_600_000),
                duration: Duration::from_secs(rng.gen_range(10..60) * 60),
                reporters: rng.gen_range(2..=5),
                per_minute: rng.gen_range(50.0..300.0),
            });
            ("quiet", 30)
        }
        _ => return None,
    };
    let scenario = Scenario {
        name: format!("family:{name}:{seed}"),
        description: format!("randomized {name} family, seed {seed}"),
        seed,
        start: at(start),
        duration: Duration::from_secs(days * 86_400),
        jitter: Duration::from_secs(5),
        late_fraction: 0.002,
        malformed_fraction: 0.0005,
        outlier_fraction: 0.00002,
        services,
        regions,
        events,
    };
    scenario
        .validate()
        .expect("a family scenario is valid by construction");
    Some(scenario)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_deterministic_and_valid() {
        for kind in KINDS {
            let a = family(kind, 7).unwrap();
            let b = family(kind, 7).unwrap();
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
            assert_ne!(
                format!("{:?}", family(kind, 8).unwrap().events),
                format!("{:?}", a.events)
            );
        }
        assert!(family("nope", 1).is_none());
    }

    #[test]
    fn outage_truth_says_what_is_detectable() {
        let truth = family("outages", 3).unwrap().truth();
        let regions: Vec<_> = truth
            .events
            .iter()
            .filter(|e| e.kind == "outage")
            .flat_map(|e| &e.regions)
            .collect();
        assert!(regions.len() >= 12);
        for r in &regions {
            assert_eq!(
                r.detectable,
                r.excess >= crate::DETECTABLE_TOTAL && r.peak_excess >= crate::DETECTABLE_PEAK
            );
            assert_eq!(
                r.floor_at.is_some(),
                r.peak_excess >= crate::DETECTABLE_PEAK
            );
        }
    }

    #[test]
    fn normal_rates_are_the_truths_base_rate_where_each_outage_starts() {
        let scenario = family("outages", 3).unwrap();
        let truth = scenario.truth();
        let rates = scenario.normal_rates();
        let n = scenario.regions.len();
        assert_eq!(rates.len(), scenario.services.len() * n);
        let ms = |t: &str| {
            chrono::DateTime::parse_from_rfc3339(t)
                .unwrap()
                .timestamp_millis()
        };
        let start = ms(&truth.start);
        let mut checked = 0;
        for e in truth.events.iter().filter(|e| e.kind == "outage") {
            let svc = e.service.as_deref().unwrap();
            let i = scenario
                .services
                .iter()
                .position(|s| s.name == svc)
                .unwrap();
            for r in &e.regions {
                let j = scenario
                    .regions
                    .iter()
                    .position(|x| x.code == r.region)
                    .unwrap();
                let minute = ((ms(&r.start) - start) / MIN) as usize;
                let rate = rates[i * n + j][minute];
                assert!(
                    (rate - r.base_per_minute).abs() < 6e-4,
                    "{svc} {}: {rate}",
                    r.region
                );
                checked += 1;
            }
        }
        assert!(checked >= 12);
    }
}
