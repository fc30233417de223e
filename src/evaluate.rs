//! `outage-radar evaluate`: score incidents against ground truth — recall,
//! precision, false incidents per 30 days, detection delays — and fail when
//! a bar is missed.

use std::path::Path;

use anyhow::Context;
use outage_sim::Truth;
use serde_json::Value;

/// Pass/fail bars; `None` = not checked.
#[derive(Clone, Debug, Default)]
pub struct Bars {
    pub min_recall: Option<f64>,
    pub max_median_delay_windows: Option<f64>,
    pub max_delay_windows: Option<f64>,
    pub max_false_per_30d: Option<f64>,
    pub max_global_delay_minutes: Option<f64>,
}

fn ms(text: &str) -> anyhow::Result<i64> {
    outage_detect::time::parse_rfc3339_ms(text).with_context(|| format!("bad time {text:?}"))
}

fn country(code: &str) -> String {
    code.split('-').next().unwrap_or(code).to_ascii_uppercase()
}

struct Inc {
    service: String,
    scope: String,
    region: String,
    started: i64,
    detected: i64,
    resolved: Option<i64>,
    matched: bool,
}

/// Magnitude band, region-volume band, shape.
type OcKey = (usize, usize, String);
/// Detected, detectable, delays from the floor.
type OcRow = (usize, usize, Vec<f64>);

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

/// Prints the evaluation; returns whether every bar passed.
pub fn evaluate(
    truth: &Path,
    incidents: &Path,
    window_minutes: f64,
    bars: &Bars,
) -> anyhow::Result<bool> {
    let truth: Truth = serde_json::from_str(
        &std::fs::read_to_string(truth)
            .with_context(|| format!("cannot read {}", truth.display()))?,
    )
    .with_context(|| format!("{} is not a truth file", truth.display()))?;
    let mut incs = Vec::new();
    for (n, line) in std::fs::read_to_string(incidents)
        .with_context(|| format!("cannot read {}", incidents.display()))?
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}", incidents.display(), n + 1))?;
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        incs.push(Inc {
            service: s("service"),
            scope: s("scope"),
            region: s("region"),
            started: ms(&s("started_at"))?,
            detected: ms(&s("detected_at"))?,
            resolved: v["resolved_at"].as_str().map(ms).transpose()?,
            matched: false,
        });
    }
    let window_ms = window_minutes * 60_000.0;
    let mut delays: Vec<f64> = Vec::new();
    let (mut expected_regions, mut detected_regions) = (0usize, 0usize);
    let mut lines: Vec<String> = Vec::new();
    let mut global_delays: Vec<f64> = Vec::new();
    let mut missed_global = 0;

    // Operating characteristic: (magnitude band, volume band, shape) →
    // (detected, detectable, delays from the floor).
    let mut oc: std::collections::BTreeMap<OcKey, OcRow> = Default::default();
    let mut start_delays: Vec<f64> = Vec::new();
    let (mut undetectable, mut undetectable_found) = (0usize, 0usize);
    for ev in truth.events.iter().filter(|e| e.expect_incident) {
        let service = ev.service.clone().unwrap_or_default();
        let (start, end) = (ms(&ev.start)?, ms(&ev.end)?);
        for r in &ev.regions {
            let rs = ms(&r.start)?;
            let found = incs.iter_mut().find(|i| {
                i.scope == "region"
                    && i.service == service
                    && i.region == country(&r.region)
                    && i.detected >= rs
                    && i.started <= end
                    && (i.started as f64) >= rs as f64 - 2.0 * window_ms
            });
            if !r.detectable {
                undetectable += 1;
                if let Some(i) = found {
                    i.matched = true;
                    undetectable_found += 1;
                }
                lines.push(format!(
                    "  {service} {:<3} start {}  not detectable ({:.0} excess, peak {:.1}/min)",
                    r.region, r.start, r.excess, r.peak_excess
                ));
                continue;
            }
            expected_regions += 1;
            let floor = r.floor_at.as_deref().map(ms).transpose()?.unwrap_or(rs);
            let band =
                |x: f64, edges: [f64; 2]| usize::from(x >= edges[0]) + usize::from(x >= edges[1]);
            let key = (
                band(ev.magnitude.unwrap_or(0.0), [3.0, 8.0]),
                band(r.base_per_minute, [1.0, 10.0]),
                ev.shape.map_or("step", |s| s.as_str()).to_string(),
            );
            let row = oc.entry(key).or_default();
            row.1 += 1;
            match found {
                Some(i) => {
                    i.matched = true;
                    detected_regions += 1;
                    // Counted from the window in which the excess first
                    // reaches the floor: before it no detector can know.
                    let d = ((i.detected - floor) as f64 / window_ms).max(0.0);
                    let from_start = (i.detected - rs) as f64 / window_ms;
                    delays.push(d);
                    start_delays.push(from_start);
                    row.0 += 1;
                    row.2.push(d);
                    lines.push(format!(
                        "  {service} {:<3} start {}  detected after {d:.1} windows ({from_start:.1} from the start)",
                        r.region, r.start
                    ));
                }
                None => lines.push(format!(
                    "  {service} {:<3} start {}  MISSED ({:.0} excess, peak {:.1}/min, {:.2}x {})",
                    r.region,
                    r.start,
                    r.excess,
                    r.peak_excess,
                    ev.magnitude.unwrap_or(0.0),
                    ev.shape.map_or("step", |s| s.as_str())
                )),
            }
        }
        // Region incidents of this event that came later than the matching
        // window (e.g. re-opened after a flap) are part of it, not false.
        for i in incs.iter_mut().filter(|i| {
            i.scope == "region"
                && i.service == service
                && ev.regions.iter().any(|r| country(&r.region) == i.region)
                && i.started >= start - (2.0 * window_ms) as i64
                && i.started <= end
        }) {
            i.matched = true;
        }
        // A global incident is due once the outage has reached its third
        // region that can be seen at all (the third detectability floor):
        // before that it cannot honestly be declared.
        let mut floors = ev
            .regions
            .iter()
            .filter(|r| r.detectable)
            .map(|r| r.floor_at.as_deref().map_or_else(|| ms(&r.start), ms))
            .collect::<anyhow::Result<Vec<_>>>()?;
        floors.sort_unstable();
        let third = floors.get(2).copied();
        if ev.expect_global {
            let first = ev
                .regions
                .iter()
                .map(|r| ms(&r.start))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let first = first.into_iter().min().unwrap_or(start);
            let mut hit = false;
            for i in incs.iter_mut().filter(|i| {
                i.scope == "global"
                    && i.service == service
                    && i.detected >= start
                    && i.started <= end
            }) {
                if !hit {
                    let after_first = (i.detected - first) as f64 / 60_000.0;
                    match third {
                        Some(t) => {
                            let after_third = (i.detected - t) as f64 / 60_000.0;
                            global_delays.push(after_third.max(0.0));
                            lines.push(format!(
                                "  {service} global  detected {after_third:.1} min after the third region ({after_first:.1} after the first)"
                            ));
                        }
                        None => lines.push(format!(
                            "  {service} global  detected {after_first:.1} min after the first region (fewer than 3 detectable regions)"
                        )),
                    }
                }
                hit = true;
                i.matched = true;
            }
            if !hit && third.is_some() {
                missed_global += 1;
                lines.push(format!("  {service} global  MISSED"));
            } else if !hit {
                lines.push(format!(
                    "  {service} global  not expected: fewer than 3 detectable regions"
                ));
            }
        }
    }

    let days = (ms(&truth.end)? - ms(&truth.start)?) as f64 / 86_400_000.0;
    let false_incs: Vec<&Inc> = incs.iter().filter(|i| !i.matched).collect();
    let false_region = false_incs.iter().filter(|i| i.scope == "region").count();
    let false_per_30d = false_region as f64 / days * 30.0;
    let recall = if expected_regions == 0 {
        1.0
    } else {
        detected_regions as f64 / expected_regions as f64
    };
    let precision = if incs.is_empty() {
        1.0
    } else {
        incs.iter().filter(|i| i.matched).count() as f64 / incs.len() as f64
    };
    delays.sort_by(f64::total_cmp);
    let (median, p90, worst) = (
        percentile(&delays, 0.5),
        percentile(&delays, 0.9),
        delays.last().copied().unwrap_or(f64::NAN),
    );

    println!(
        "scenario {} ({days:.1} days, {} incidents)",
        truth.scenario,
        incs.len()
    );
    println!("outage regions detected: {detected_regions}/{expected_regions} (recall {recall:.3})");
    println!("precision: {precision:.3}");
    println!(
        "delay in windows (from the detectability floor): median {median:.1}, p90 {p90:.1}, max {worst:.1}"
    );
    start_delays.sort_by(f64::total_cmp);
    println!(
        "delay in windows (from the true start): median {:.1}, max {:.1}",
        percentile(&start_delays, 0.5),
        start_delays.last().copied().unwrap_or(f64::NAN)
    );
    if undetectable > 0 {
        println!(
            "not detectable (< {} excess reports or < {}/window at peak): {undetectable}, {undetectable_found} found anyway",
            outage_sim::DETECTABLE_TOTAL,
            outage_sim::DETECTABLE_PEAK
        );
    }
    if !oc.is_empty() {
        const MAG: [&str; 3] = ["1.5-3x", "3-8x", "8-20x"];
        const VOL: [&str; 3] = ["<1/min", "1-10/min", ">=10/min"];
        println!("operating characteristic (magnitude × region volume × shape):");
        println!(
            "  {:<7} {:<9} {:<5} {:>9} {:>7} {:>5}",
            "mag", "volume", "shape", "recall", "median", "max"
        );
        for ((m, v, shape), (hit, total, mut d)) in oc {
            d.sort_by(f64::total_cmp);
            println!(
                "  {:<7} {:<9} {:<5} {:>4}/{:<4} {:>7.1} {:>5.1}",
                MAG[m],
                VOL[v],
                shape,
                hit,
                total,
                percentile(&d, 0.5),
                d.last().copied().unwrap_or(f64::NAN)
            );
        }
    }
    if !global_delays.is_empty() || missed_global > 0 {
        println!(
            "global incidents: {} detected, {missed_global} missed",
            global_delays.len()
        );
    }
    println!(
        "false incidents: {} region, {} global ({false_per_30d:.2} region per 30 days)",
        false_region,
        false_incs.len() - false_region
    );
    if truth.series > 0 {
        println!(
            "false incidents per series-month: {:.4} ({} region series)",
            false_region as f64 / truth.series as f64 / (days / 30.0),
            truth.series
        );
    }
    for ev in truth.events.iter().filter(|e| !e.expect_incident) {
        let (s, e) = (ms(&ev.start)?, ms(&ev.end)?);
        let n = false_incs
            .iter()
            .filter(|i| i.started < e && i.resolved.is_none_or(|r| r >= s))
            .filter(|i| ev.service.as_ref().is_none_or(|svc| *svc == i.service))
            .count();
        println!("  {:<8} {} → {}: {n} incidents", ev.kind, ev.start, ev.end);
    }
    for i in &false_incs {
        println!(
            "  false: {} {} {} started {}",
            i.service,
            i.scope,
            i.region,
            crate::replay::rfc3339(i.started)
        );
    }
    println!("per region:");
    for l in &lines {
        println!("{l}");
    }

    let mut ok = true;
    let mut check = |name: &str, pass: bool, detail: String| {
        println!("{} {name}: {detail}", if pass { "PASS" } else { "FAIL" });
        ok &= pass;
    };
    if let Some(min) = bars.min_recall {
        check(
            "recall",
            recall >= min,
            format!("{recall:.3} (bar ≥ {min})"),
        );
    }
    if let Some(max) = bars.max_median_delay_windows {
        check(
            "median delay",
            delays.is_empty() || median <= max,
            format!("{median:.1} windows (bar ≤ {max})"),
        );
    }
    if let Some(max) = bars.max_delay_windows {
        check(
            "max delay",
            delays.is_empty() || worst <= max,
            format!("{worst:.1} windows (bar ≤ {max})"),
        );
    }
    if let Some(max) = bars.max_false_per_30d {
        check(
            "false incidents",
            false_per_30d <= max,
            format!("{false_per_30d:.2} per 30 days (bar ≤ {max})"),
        );
    }
    if let Some(max) = bars.max_global_delay_minutes {
        let worst_global = global_delays.iter().copied().fold(0.0, f64::max);
        check(
            "global delay",
            missed_global == 0 && worst_global <= max,
            format!("{worst_global:.1} min, {missed_global} missed (bar ≤ {max} min)"),
        );
    }
    Ok(ok)
}

/// Some evaluation bar was not met (exit code 4).
#[derive(Debug, thiserror::Error)]
#[error("evaluation bars failed")]
pub struct BarsFailed;
