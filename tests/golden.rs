//! Golden files: every fixture in `crates/outage-detect/tests/fixtures/`
//! (reports made once by `outage-radar simulate` from the TOML beside them)
//! replays to exactly its expected scores and incidents. A change of
//! detection shows up as a diff of these files in review. After looking at
//! such a change, rewrite them with
//!
//! ```sh
//! UPDATE_GOLDEN=1 cargo test --release --test golden
//! ```
//!
//! Each fixture holds a day of history and then its event on the afternoon
//! of 2019-03-05 (UTC); only scores from 12:00 that day are kept.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const CASES: [&str; 6] = ["step", "ramp", "spam", "gap", "fanout", "late-malformed"];

/// Scores before this instant are history, not part of the golden file.
const SCORES_FROM: &str = "2019-03-05T12:00:00Z";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/outage-detect/tests/fixtures")
}

/// Replays one fixture: (scores from [`SCORES_FROM`] with the header,
/// incidents).
fn replay(case: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let status = Command::new(env!("CARGO_BIN_EXE_outage-radar"))
        .arg("replay")
        .arg("--input")
        .arg(fixtures().join(format!("{case}.jsonl.gz")))
        .arg("--out")
        .arg(&out)
        .arg("--config")
        .arg(fixtures().join("golden.toml"))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "replay of {case} failed");
    let scores = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    let mut kept = String::new();
    for (i, line) in scores.lines().enumerate() {
        // RFC 3339 in UTC with a fixed width sorts as text.
        if i == 0 || line[..SCORES_FROM.len()] >= *SCORES_FROM {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    let incidents = std::fs::read_to_string(out.join("incidents.jsonl")).unwrap();
    (kept, incidents)
}

#[test]
fn fixtures_replay_to_their_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut diffs = Vec::new();
    for case in CASES {
        let (scores, incidents) = replay(case);
        for (ext, got) in [("scores.csv", scores), ("incidents.jsonl", incidents)] {
            let path = fixtures().join(format!("{case}.{ext}"));
            if update {
                std::fs::write(&path, &got).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
                panic!(
                    "{} is missing: UPDATE_GOLDEN=1 cargo test --release --test golden",
                    path.display()
                )
            });
            if want != got {
                let (n, (w, g)) = want
                    .lines()
                    .chain(std::iter::repeat(""))
                    .zip(got.lines().chain(std::iter::repeat("")))
                    .enumerate()
                    .find(|(_, (w, g))| w != g)
                    .expect("texts differ somewhere");
                diffs.push(format!(
                    "{case}.{ext}, line {}:\n  want {w}\n  got  {g}",
                    n + 1
                ));
            }
        }
    }
    assert!(
        diffs.is_empty(),
        "detection changed (look, then rewrite with UPDATE_GOLDEN=1):\n{}",
        diffs.join("\n")
    );
}

/// What the golden files say, in words, so that rewriting them cannot hide
/// a lost outage or a new false page.
#[test]
fn fixtures_show_what_an_operator_expects() {
    let incidents = |case: &str| -> Vec<serde_json::Value> {
        replay(case)
            .1
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let regions = |incs: &[serde_json::Value]| -> Vec<String> {
        incs.iter()
            .filter(|i| i["scope"] == "region")
            .map(|i| i["region"].as_str().unwrap().to_string())
            .collect()
    };
    for case in ["step", "late-malformed"] {
        let incs = incidents(case);
        assert_eq!(regions(&incs), ["GB"], "{case}: {incs:?}");
        let started = incs[0]["started_at"].as_str().unwrap();
        let detected = incs[0]["detected_at"].as_str().unwrap();
        // The outage starts at 14:10; declared within five windows.
        assert!(
            started.as_bytes() >= b"2019-03-05T14:10".as_slice(),
            "{case}: {incs:?}"
        );
        assert!(
            detected.as_bytes() <= b"2019-03-05T14:15:00Z".as_slice(),
            "{case}: {incs:?}"
        );
    }
    for case in ["spam", "gap"] {
        let incs = incidents(case);
        assert!(incs.is_empty(), "{case}: {incs:?}");
    }
    let fanout = incidents("fanout");
    let mut r = regions(&fanout);
    r.sort();
    assert_eq!(r, ["DE", "GB", "US"], "{fanout:?}");
    let global: Vec<_> = fanout.iter().filter(|i| i["scope"] == "global").collect();
    assert_eq!(global.len(), 1, "{fanout:?}");
    assert_eq!(
        global[0]["regions"].as_array().unwrap().len(),
        3,
        "{fanout:?}"
    );
}
