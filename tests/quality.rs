//! Detection quality on the shipped scenarios, measured the way EVALUATION.md
//! reports it: simulate → replay → evaluate with the bars.

use std::path::Path;
use std::process::Command;

fn radar(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_outage-radar"))
        .args(args)
        .current_dir(dir)
        .env_remove("OUTAGE_RADAR_CONFIG")
        .output()
        .unwrap()
}

fn backtest(scenario: &str, bars: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let sim = radar(
        &[
            "simulate",
            "--scenario",
            scenario,
            "--out",
            "reports.jsonl.gz",
        ],
        dir.path(),
    );
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    let replay = radar(
        &["replay", "--input", "reports.jsonl.gz", "--out", "out"],
        dir.path(),
    );
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let mut args = vec![
        "evaluate",
        "--truth",
        "reports.truth.json",
        "--incidents",
        "out/incidents.jsonl",
    ];
    args.extend_from_slice(bars);
    let eval = radar(&args, dir.path());
    let report = String::from_utf8_lossy(&eval.stdout).into_owned();
    assert!(eval.status.success(), "bars failed:\n{report}");
    report
}

#[test]
fn alexa_2018_every_region_detected_quickly_and_one_global_incident() {
    let report = backtest(
        "alexa-2018",
        &[
            "--min-recall",
            "1",
            "--max-median-delay",
            "2",
            "--max-delay",
            "4",
            "--max-global-delay",
            "5",
        ],
    );
    assert!(
        report.contains("global incidents: 1 detected, 0 missed"),
        "{report}"
    );
    assert!(
        report.contains("false incidents: 0 region, 0 global"),
        "{report}"
    );
    assert!(report.contains("spam"), "{report}");
}

#[test]
fn a_quiet_month_with_drift_gap_holiday_and_spam_raises_nothing() {
    let report = backtest("quiet-month", &["--max-false-per-30d", "1"]);
    for kind in ["drift", "gap", "holiday", "spam"] {
        assert!(
            report
                .lines()
                .any(|l| l.trim_start().starts_with(kind) && l.ends_with(": 0 incidents")),
            "{kind}:\n{report}"
        );
    }
}
