//! `outage-radar replay` as a user runs it: a JSONL file in, scores,
//! incidents and a summary out.

use std::fmt::Write as _;
use std::process::Command;

const T0: i64 = 1_537_747_200_000; // Monday 2018-09-24 00:00 UTC
const MIN: i64 = 60_000;

/// Two days of diurnal traffic in three countries, GB ×6 for 20 minutes on
/// day 3, a spammer, and some malformed lines.
fn history() -> String {
    let mut out = String::new();
    let mut x: u64 = 42;
    let mut rand = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 1000) as f64 / 1000.0
    };
    let outage = T0 + (2 * 1440 + 600) * MIN;
    for m in 0..(2 * 1440 + 700) {
        let t = T0 + m * MIN;
        let h = (t / 3_600_000 % 24) as f64;
        for (region, base) in [("GB", 20.0), ("DE", 15.0), ("US-CA", 25.0)] {
            let mut rate = base * (1.0 + 0.5 * ((h - 6.0) / 24.0 * std::f64::consts::TAU).sin());
            if region == "GB" && (outage..outage + 20 * MIN).contains(&t) {
                rate *= 6.0;
            }
            let n = (rate * (0.8 + 0.4 * rand())).round() as i64;
            for i in 0..n {
                writeln!(
                    out,
                    r#"{{"service":"alexa","region":"{region}","ts":{},"problem":"voice","reporter":"{region}-{m}-{i}"}}"#,
                    t + i * 997 % MIN
                )
                .unwrap();
            }
        }
        if m % 500 == 0 {
            out.push_str("{not json\n");
            for _ in 0..200 {
                writeln!(
                    out,
                    r#"{{"service":"alexa","region":"DE","ts":{t},"reporter":"spammer"}}"#
                )
                .unwrap();
            }
        }
    }
    out
}

#[test]
fn replay_writes_scores_incidents_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("reports.jsonl");
    std::fs::write(&input, history()).unwrap();
    let out = dir.path().join("out");
    let status = Command::new(env!("CARGO_BIN_EXE_outage-radar"))
        .args(["replay", "--input"])
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .arg("--snapshot-out")
        .arg(dir.path().join("state.json"))
        .env_remove("OUTAGE_RADAR_CONFIG")
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );

    let scores = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    let mut lines = scores.lines();
    assert_eq!(
        lines.next(),
        Some("window_start,service,region,observed,expected,score,anomalous")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.iter().all(|r| r.len() == 7));
    assert!(
        rows.iter().any(|r| r[2] == "global") && rows.iter().any(|r| r[2] == "US"),
        "subdivisions roll up"
    );
    assert!(rows
        .iter()
        .any(|r| r[0] == "2018-09-26T10:00:00Z" && r[2] == "GB" && r[6] == "1"));

    let incidents: Vec<serde_json::Value> = std::fs::read_to_string(out.join("incidents.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(incidents.len(), 1, "only the GB outage: {incidents:?}");
    let gb = &incidents[0];
    assert_eq!(gb["scope"], "region");
    assert_eq!(gb["region"], "GB");
    assert_eq!(gb["started_at"], "2018-09-26T10:00:00Z");
    assert!(gb["resolved_at"].is_string());
    assert!(gb["problems"]["voice"].as_u64().unwrap() > 100);
    assert_eq!(gb["id"].as_str().unwrap().len(), 16);

    let svg = std::fs::read_to_string(out.join("plots/alexa.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("\nglobal\n") && svg.contains("\nGB\n"),
        "plot of the service"
    );

    // A versioned binary snapshot: magic, this build's version (u32 LE),
    // state.
    let state = std::fs::read(dir.path().join("state.json")).unwrap();
    assert_eq!(&state[..8], b"ORDETECT");
    assert_eq!(
        u32::from_le_bytes(state[8..12].try_into().unwrap()),
        outage_detect::detector::SNAPSHOT_VERSION
    );
    assert!(state.len() > 1_000);

    // `run --snapshot` refuses a file that is not a snapshot, naming it.
    let bad = Command::new(env!("CARGO_BIN_EXE_outage-radar"))
        .args(["run", "--snapshot"])
        .arg(&input)
        .env_remove("OUTAGE_RADAR_CONFIG")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot restore snapshot"));

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        summary["rejected"]["not_json"], 8,
        "one malformed line every 500 minutes"
    );
    assert!(summary["duplicates"].as_u64().unwrap() >= 8 * 199);
    assert_eq!(
        summary["reports_read"].as_u64().unwrap(),
        summary["decoded"].as_u64().unwrap() + 8,
        "every line decoded or rejected"
    );
}

/// Replays `text` and returns (scores.csv, incidents.jsonl, summary).
fn replay_text(text: &str) -> (String, String, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("reports.jsonl");
    std::fs::write(&input, text).unwrap();
    let out = dir.path().join("out");
    let status = Command::new(env!("CARGO_BIN_EXE_outage-radar"))
        .args(["replay", "--input"])
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .env_remove("OUTAGE_RADAR_CONFIG")
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
    (
        read("scores.csv"),
        read("incidents.jsonl"),
        serde_json::from_str(&read("summary.json")).unwrap(),
    )
}

#[test]
fn device_clocks_years_ahead_or_behind_change_no_score_and_no_incident() {
    let clean = history();
    // Reports of another service in the same file, dated by broken device
    // clocks: 80 years, 1 year, 1 hour and 4 minutes ahead, 5 years behind.
    // (In a country alexa has no series in: a neighbour in GB would rightly
    // move alexa's GB expectation a little, see `regional.rs`.)
    // One of each near the start (before the clock has its first sample),
    // and again on day 2 and during the outage.
    const YEAR: i64 = 365 * 86_400_000;
    let errors = [80 * YEAR, YEAR, 3_600_000, 240_000, -5 * YEAR];
    let mut dirty = String::new();
    for (n, line) in clean.lines().enumerate() {
        dirty.push_str(line);
        dirty.push('\n');
        if [0, 30, 100_000, 200_000].contains(&n) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let ts = v["ts"].as_i64().unwrap();
            for e in errors {
                writeln!(
                    dirty,
                    r#"{{"service":"clocks","region":"JP","ts":{},"reporter":"c{n}{e}"}}"#,
                    ts + e
                )
                .unwrap();
            }
        }
    }
    let (scores, incidents, summary) = replay_text(&clean);
    let (dirty_scores, dirty_incidents, dirty_summary) = replay_text(&dirty);
    assert_eq!(incidents, dirty_incidents);
    let alexa = |s: &str| {
        s.lines()
            .filter(|l| l.contains(",alexa,"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(alexa(&scores), alexa(&dirty_scores));
    // 80 y, 1 y and 1 h ahead are refused, 5 y behind is late; 4 minutes
    // ahead is within the allowed skew and counts in its own window.
    assert_eq!(dirty_summary["rejected"]["future_timestamp"], 12);
    assert_eq!(
        dirty_summary["late"].as_u64().unwrap(),
        summary["late"].as_u64().unwrap() + 4
    );
}

/// A real data gap (the pipeline stalled for 40 minutes) is not a broken
/// clock: the first reports after it are ahead of the clock until enough of
/// them move it, and they are held and counted, not rejected.
#[test]
fn reports_after_a_data_gap_are_counted_not_rejected() {
    let mut text = String::new();
    let mut n = 0;
    for (from, to) in [(0, 30 * MIN), (70 * MIN, 100 * MIN)] {
        let mut t = T0 + from;
        while t < T0 + to {
            writeln!(
                text,
                r#"{{"service":"alexa","region":"GB","ts":{t},"reporter":"r{n}"}}"#
            )
            .unwrap();
            n += 1;
            t += 2_000;
        }
    }
    let (_, _, summary) = replay_text(&text);
    assert_eq!(summary["rejected_total"], 0, "{summary}");
    assert_eq!(summary["decoded"].as_u64(), Some(n), "{summary}");
    assert_eq!(summary["counted"].as_u64(), Some(n), "{summary}");
}
