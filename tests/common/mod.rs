//! Helpers shared by the black-box tests of the binary.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;
use std::process::Command;

/// One generated report line with its event time and service.
pub struct Line {
    pub ts_ms: i64,
    pub service: String,
    pub text: String,
}

/// Runs `outage-radar simulate` on `scenario` (TOML) in `dir`; the report
/// lines in arrival order.
pub fn simulate(dir: &Path, scenario: &str) -> Vec<Line> {
    std::fs::write(dir.join("scenario.toml"), scenario).unwrap();
    let sim = Command::new(env!("CARGO_BIN_EXE_outage-radar"))
        .args([
            "simulate",
            "--scenario",
            "scenario.toml",
            "--out",
            "all.jsonl",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    std::fs::read_to_string(dir.join("all.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Line {
                ts_ms: v["ts"].as_i64().unwrap(),
                service: v["service"].as_str().unwrap().to_string(),
                text: l.to_string(),
            }
        })
        .collect()
}

/// Replays `history` with `outage-radar replay --snapshot-out` into
/// `dir/state.json`, the warm start of `run --snapshot`.
pub fn warm_snapshot<'a>(dir: &Path, history: impl IntoIterator<Item = &'a Line>) {
    let mut text = String::new();
    for l in history {
        text.push_str(&l.text);
        text.push('\n');
    }
    std::fs::write(dir.join("history.jsonl"), text).unwrap();
    let replay = Command::new(env!("CARGO_BIN_EXE_outage-radar"))
        .args(["replay", "--input", "history.jsonl", "--out", "hist"])
        .args(["--snapshot-out", "state.json"])
        .current_dir(dir)
        .env_remove("OUTAGE_RADAR_CONFIG")
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
}

/// Starts `outage-radar run --config CONFIG` at `info` level, its log going
/// to `log`.
pub fn spawn_run(config: &Path, log: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_outage-radar"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// The `/metrics` address a `run` logged (`addr=…`), once it did.
pub fn logged_addr(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.split("addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string)
}

/// The text of `/metrics` at `addr` (empty when it does not answer).
pub fn scrape(addr: &str) -> String {
    ureq::get(&format!("http://{addr}/metrics"))
        .call()
        .ok()
        .and_then(|r| r.into_string().ok())
        .unwrap_or_default()
}

/// The value of the first sample whose line starts with `name`.
pub fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
}
