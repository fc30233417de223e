//! `outage-radar simulate`: write a scenario's reports (arrival order) and
//! its ground truth.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use outage_sim::{generate, Scenario};

/// A built-in scenario name or a path to a scenario TOML file.
pub fn load_scenario(name: &str) -> anyhow::Result<Scenario> {
    if let Some(s) = Scenario::builtin(name) {
        return Ok(s);
    }
    let path = Path::new(name);
    anyhow::ensure!(
        path.is_file(),
        "no scenario {name:?}: built-in ones are {}, or give a path to a .toml file",
        outage_sim::BUILTIN
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Scenario::from_toml(&text).with_context(|| format!("invalid scenario {}", path.display()))
}

/// The truth file next to `out`: `reports.jsonl.gz` → `reports.truth.json`.
pub fn truth_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("reports");
    let stem = name.trim_end_matches(".gz").trim_end_matches(".jsonl");
    out.with_file_name(format!("{stem}.truth.json"))
}

pub fn simulate(scenario: &str, out: &Path, truth: Option<&Path>) -> anyhow::Result<()> {
    let scenario = load_scenario(scenario)?;
    let file = File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut writer: Box<dyn Write> = if out.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::write::GzEncoder::new(
            BufWriter::new(file),
            flate2::Compression::fast(),
        ))
    } else {
        Box::new(BufWriter::with_capacity(1 << 20, file))
    };
    let stats = generate(&scenario, &mut writer).context("cannot write reports")?;
    writer.flush()?;
    drop(writer);
    let truth_file = truth
        .map(Path::to_path_buf)
        .unwrap_or_else(|| truth_path(out));
    std::fs::write(
        &truth_file,
        serde_json::to_string_pretty(&scenario.truth())? + "\n",
    )
    .with_context(|| format!("cannot write {}", truth_file.display()))?;
    eprintln!(
        "scenario {}: {} reports ({} late, {} malformed lines) → {}; truth → {}",
        scenario.name,
        stats.reports,
        stats.late,
        stats.malformed,
        out.display(),
        truth_file.display()
    );
    Ok(())
}
