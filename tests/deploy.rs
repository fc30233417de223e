//! The files in `deploy/` and `docker-compose.yml`, checked with the real
//! tools: promtool (rule unit tests, config), amtool (config, routing),
//! check-jsonschema (the compose specification), and outage-radar's own
//! `check-config`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use outage_testkit::find_binary;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn files(dir: &str, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no {suffix} files in {dir}");
    v
}

/// The source of the crates that define metrics (each name once, as a
/// string literal).
fn exporting_source() -> String {
    let mut source = String::new();
    for dir in [
        "src",
        "crates/outage-export/src",
        "crates/outage-ingest/src",
    ] {
        for f in files(dir, ".rs") {
            source.push_str(&std::fs::read_to_string(f).unwrap());
        }
    }
    source
}

/// `- alert: Name` lines of a rule file.
fn alert_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn every_prometheus_rule_has_a_passing_promtool_unit_test() {
    let promtool = find_binary("PROMTOOL_BIN", &["promtool"]);
    let tests = files("deploy/prometheus/tests", ".test.yml");
    run(Command::new(&promtool)
        .arg("test")
        .arg("rules")
        .args(&tests)
        .current_dir(root()));
    let tested: String = tests
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    for rules in files("deploy/prometheus/rules", ".yml") {
        let text = std::fs::read_to_string(&rules).unwrap();
        let names = alert_names(&text);
        assert!(!names.is_empty(), "{} has no alerts", rules.display());
        for name in names {
            // Each alert must be expected to fire somewhere, not only to stay quiet.
            assert!(
                tested.contains(&format!("alertname: {name}\n              ")),
                "alert {name} ({}) has no promtool test in which it fires",
                rules.display()
            );
        }
    }
    run(Command::new(&promtool)
        .args(["check", "config", "deploy/prometheus/prometheus.yml"])
        .current_dir(root()));
}

/// Every rule names a runbook, and the runbook has a section for it (the
/// section heading is the alert name in lower case, as outage-radar's own
/// pushed alerts link it).
#[test]
fn every_alert_has_a_runbook_section() {
    let runbooks = std::fs::read_to_string(root().join("docs/runbooks.md")).unwrap();
    let sections: BTreeSet<String> = runbooks
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.trim().to_string())
        .collect();
    let mut names = vec!["RegionOutage".to_string(), "GlobalOutage".to_string()];
    for rules in files("deploy/prometheus/rules", ".yml") {
        let text = std::fs::read_to_string(&rules).unwrap();
        for name in alert_names(&text) {
            let link = format!("runbook_url: docs/runbooks.md#{}", name.to_lowercase());
            let block = text
                .split("- alert:")
                .find(|b| b.trim_start().starts_with(&format!("{name}\n")))
                .unwrap_or_else(|| panic!("{name} in {}", rules.display()));
            assert!(
                block.contains(&link),
                "{name} ({}) has no `{link}` annotation",
                rules.display()
            );
            names.push(name);
        }
    }
    for name in names {
        assert!(
            sections.contains(&name.to_lowercase()),
            "docs/runbooks.md has no section `## {}`",
            name.to_lowercase()
        );
    }
}

/// The README's metric list is the registry's, both ways: every metric the
/// source defines is documented, and every documented one exists. The
/// README abbreviates pipeline metrics as `_name` (prefix `outage_radar`).
#[test]
fn the_readme_lists_exactly_the_metrics_outage_radar_exports() {
    let source = exporting_source();
    let defined: BTreeSet<String> = metric_names(&source)
        .into_iter()
        .filter(|n| source.contains(&format!("\"{n}\"")))
        .collect();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("Per (service, region) series")
        .nth(1)
        .and_then(|s| s.split("### Alerts").next())
        .expect("the README's metrics section");
    let mut documented = metric_names(section);
    for token in section.split('`').skip(1).step_by(2) {
        if let Some(rest) = token.strip_prefix('_') {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            documented.insert(format!("outage_radar_{name}"));
        }
    }
    let undocumented: Vec<_> = defined.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&defined).collect();
    assert!(
        undocumented.is_empty() && missing.is_empty(),
        "README metrics drifted: not documented {undocumented:?}; documented but not exported {missing:?}"
    );
}

/// Both shipped scrape configurations keep outage-radar's own `service`
/// label over a target label of the same name (the end-to-end test shows
/// what breaks without it).
#[test]
fn scrape_configs_honor_outage_radars_labels() {
    let prometheus =
        std::fs::read_to_string(root().join("deploy/prometheus/prometheus.yml")).unwrap();
    assert!(
        prometheus.contains("\n    honor_labels: true\n"),
        "{prometheus}"
    );
    let monitor =
        std::fs::read_to_string(root().join("deploy/kubernetes/servicemonitor.yaml")).unwrap();
    assert!(monitor.contains("kind: ServiceMonitor"), "{monitor}");
    assert!(monitor.contains("\n      honorLabels: true\n"), "{monitor}");
}

#[test]
fn alertmanager_config_is_valid_and_routes_by_severity() {
    let amtool = find_binary("AMTOOL_BIN", &["amtool"]);
    let config = "deploy/alertmanager/alertmanager.yml";
    run(Command::new(&amtool)
        .args(["check-config", config])
        .current_dir(root()));
    for (labels, receiver) in [
        (
            &[
                "alertname=GlobalOutage",
                "severity=critical",
                "service=alexa",
            ][..],
            "pager",
        ),
        (
            &[
                "alertname=RegionOutage",
                "severity=warning",
                "service=alexa",
                "region=GB",
            ][..],
            "chat",
        ),
        (&["alertname=Other"][..], "outage-webhook"),
    ] {
        run(Command::new(&amtool)
            .args(["config", "routes", "test", "--config.file", config])
            .arg(format!("--verify.receivers={receiver}"))
            .args(labels)
            .current_dir(root()));
    }
    let text = std::fs::read_to_string(root().join(config)).unwrap();
    assert!(text.contains("group_by: [service]"), "grouped by service");
    assert!(
        text.contains("source_matchers: ['alertname=\"GlobalOutage\"']")
            && text.contains("target_matchers: ['alertname=\"RegionOutage\"']")
            && text.contains("equal: [service]"),
        "GlobalOutage inhibits RegionOutage of the same service"
    );
}

#[test]
fn compose_file_follows_the_compose_spec_and_mounts_files_that_exist() {
    let checker = find_binary("CHECK_JSONSCHEMA_BIN", &["check-jsonschema"]);
    run(Command::new(checker)
        .args([
            "--builtin-schema",
            "vendor.compose-spec",
            "docker-compose.yml",
        ])
        .current_dir(root()));
    let compose = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let mut mounts = 0;
    for line in compose.lines() {
        let Some(spec) = line.trim().strip_prefix("- ./") else {
            continue;
        };
        let host = spec.split(':').next().unwrap();
        assert!(root().join(host).exists(), "mounted {host} does not exist");
        mounts += 1;
    }
    assert!(
        mounts >= 5,
        "expected the config, prometheus, alertmanager and grafana mounts"
    );
    assert!(
        root().join("Dockerfile").is_file(),
        "outage-radar is built from ./Dockerfile"
    );
    // The container checks its own readiness (the slim image has no curl)
    // and gets longer to stop than outage-radar takes to stop gracefully.
    assert!(
        compose.contains(r#"test: ["CMD", "outage-radar", "healthcheck"]"#),
        "outage-radar's healthcheck in compose"
    );
    let seconds = |text: &str, key: &str| -> u64 {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix(key))
            .filter_map(|v| {
                let v = v
                    .trim_start_matches([' ', ':', '='])
                    .trim()
                    .trim_matches('"');
                humantime::parse_duration(v).ok()
            })
            .map(|d| d.as_secs())
            .next()
            .unwrap_or_else(|| panic!("no {key}"))
    };
    let grace = seconds(&compose, "stop_grace_period");
    let in_compose =
        std::fs::read_to_string(root().join("deploy/compose/outage-radar.toml")).unwrap();
    let shutdown = if in_compose.contains("shutdown_timeout") {
        seconds(&in_compose, "shutdown_timeout")
    } else {
        let example = std::fs::read_to_string(root().join("deploy/config.example.toml")).unwrap();
        seconds(&example, "shutdown_timeout")
    };
    assert!(
        grace > shutdown,
        "stop_grace_period {grace}s must exceed shutdown_timeout {shutdown}s"
    );
    // The configuration outage-radar gets in compose parses.
    let out = run(Command::new(env!("CARGO_BIN_EXE_outage-radar"))
        .args([
            "check-config",
            "--config",
            "deploy/compose/outage-radar.toml",
        ])
        .current_dir(root())
        .env_remove("OUTAGE_RADAR_CONFIG"));
    assert!(out.contains("configuration OK"), "{out}");
}

/// `outage_radar_*` metric names in a text (histogram suffixes removed).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("outage_radar_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|n| n.ends_with("_seconds")))
            .unwrap_or(name);
        names.insert(name.to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn dashboards_and_rules_use_only_metrics_outage_radar_exports() {
    // Every metric name is defined once, as a string literal in the source.
    let source = exporting_source();
    let mut used = String::new();
    for f in files("deploy/grafana/dashboards", ".json")
        .into_iter()
        .chain(files("deploy/prometheus/rules", ".yml"))
    {
        used.push_str(&std::fs::read_to_string(f).unwrap());
    }
    let names = metric_names(&used);
    assert!(names.len() > 15, "{names:?}");
    for name in names {
        assert!(
            source.contains(&format!("\"{name}\"")),
            "{name} is used in deploy/ but outage-radar does not export it"
        );
    }

    for f in files("deploy/grafana/dashboards", ".json") {
        let d: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        assert!(d["uid"]
            .as_str()
            .is_some_and(|u| u.starts_with("outage-radar")));
        // The datasource is a dashboard variable (any Prometheus the
        // operator picks), not a hard-coded uid.
        let vars = d["templating"]["list"].as_array().unwrap();
        assert!(
            vars.iter()
                .any(|v| v["name"] == "datasource" && v["type"] == "datasource"),
            "{}: no datasource variable",
            f.display()
        );
        for p in d["panels"].as_array().unwrap() {
            assert_eq!(
                p["datasource"]["uid"],
                "${datasource}",
                "{}: {}",
                f.display(),
                p["title"]
            );
            for t in p["targets"].as_array().unwrap() {
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            }
            assert!(
                p["type"] == "table" || p["fieldConfig"]["defaults"]["unit"].as_str().is_some(),
                "{}: {} has no unit",
                f.display(),
                p["title"]
            );
            assert!(!p["targets"].as_array().unwrap().is_empty());
        }
    }
    let datasource = std::fs::read_to_string(
        root().join("deploy/grafana/provisioning/datasources/prometheus.yml"),
    )
    .unwrap();
    assert!(datasource.contains("uid: prometheus"));
    let overview = std::fs::read_to_string(
        root().join("deploy/grafana/dashboards/outage-radar-overview.json"),
    )
    .unwrap();
    assert!(overview.contains("\"type\": \"geomap\""), "a world map");
    assert!(
        overview.contains("\"type\": \"heatmap\""),
        "a surprise heat map"
    );
}
