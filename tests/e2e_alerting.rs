//! Every real part at once: tansu → outage-radar → Prometheus (scraping it,
//! with the rules from deploy/) and Alertmanager (with the routes from
//! deploy/) → a webhook listener in this test.
//!
//! A worldwide outage is produced in three phases of event time, so each
//! step can be watched: GB alone (a RegionOutage page), then the fan-out
//! (a GlobalOutage page; the region alerts inhibited), then recovery
//! (resolutions). The Grafana dashboards' queries run against the same
//! Prometheus.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use outage_testkit::{
    free_port, unique_name, wait_until, Alertmanager, Prometheus, Tansu, WebhookReceiver,
};
use serde_json::Value;

mod common;

const SCENARIO: &str = r#"
name = "fan-out"
seed = 11
start = "2018-09-24T00:00:00Z"
duration = "2days 12h"
jitter = "2s"
[[services]]
name = "alexa"
rate_per_minute = 60.0
[[regions]]
code = "US"
weight = 5.0
utc_offset = -4
[[regions]]
code = "GB"
weight = 3.0
utc_offset = 1
[[regions]]
code = "DE"
weight = 2.0
utc_offset = 2
[[regions]]
code = "FR"
weight = 2.0
utc_offset = 2
[[regions]]
code = "JP"
weight = 2.0
utc_offset = 9
[[events]]
kind = "outage"
service = "alexa"
start = "2018-09-26T10:00:00Z"
duration = "40m"
multiplier = 10.0
regions = [
  { region = "GB", after = "0m" },
  { region = "DE", after = "6m" },
  { region = "FR", after = "8m" },
  { region = "JP", after = "10m" },
]
"#;

const OUTAGE_REGIONS: [&str; 4] = ["GB", "DE", "FR", "JP"];

/// Event-time phase boundaries (epoch ms).
const HISTORY_END: i64 = 1_537_955_700_000; // 09:55
const PHASE1_END: i64 = 1_537_956_300_000; // 10:05, GB alone in outage
const PHASE2_END: i64 = 1_537_957_200_000; // 10:20, every region in outage

fn get_json(url: &str) -> Value {
    ureq::get(url)
        .timeout(Duration::from_secs(5))
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .into_string()
        .map(|s| serde_json::from_str::<Value>(&s).unwrap())
        .unwrap()
}

fn prom_query(prom: &Prometheus, query: &str) -> Value {
    let url = format!("{}/api/v1/query", prom.url());
    match ureq::get(&url).query("query", query).call() {
        Ok(r) => r
            .into_string()
            .map(|s| serde_json::from_str::<Value>(&s).unwrap())
            .unwrap(),
        Err(ureq::Error::Status(_, r)) => r
            .into_string()
            .map(|s| serde_json::from_str::<Value>(&s).unwrap())
            .unwrap(),
        Err(e) => panic!("{query}: {e}"),
    }
}

fn firing(alerts: &[(String, Value)], alertname: &str, status: &str) -> BTreeSet<String> {
    alerts
        .iter()
        .filter(|(_, a)| a["labels"]["alertname"] == alertname && a["status"] == status)
        .map(|(_, a)| {
            a["labels"]["region"]
                .as_str()
                .or(a["labels"]["scope"].as_str())
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

struct Radar(Child);

impl Drop for Radar {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn outage_reaches_alertmanager_prometheus_and_dashboards() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = env!("CARGO_BIN_EXE_outage-radar");

    // Reports, split by event time; history becomes a warm-start snapshot.
    let all = common::simulate(dir.path(), SCENARIO);
    let mut phases: [Vec<&str>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for l in all.iter().filter(|l| l.ts_ms >= HISTORY_END) {
        let phase = if l.ts_ms < PHASE1_END {
            0
        } else if l.ts_ms < PHASE2_END {
            1
        } else {
            2
        };
        phases[phase].push(l.text.as_str());
    }
    common::warm_snapshot(dir.path(), all.iter().filter(|l| l.ts_ms < HISTORY_END));

    // The services.
    let broker = Tansu::start();
    let topic = unique_name("reports");
    for t in [
        topic.clone(),
        format!("{topic}.dlq"),
        format!("{topic}.incidents"),
    ] {
        broker.create_topic(&t, 1, false);
    }
    broker.create_topic(&format!("{topic}.state"), 1, true);
    let webhook = WebhookReceiver::start();
    let am_config = std::fs::read_to_string(root.join("deploy/alertmanager/alertmanager.yml"))
        .unwrap()
        .replace("http://webhook:8080", &webhook.url())
        .replace("group_wait: 10s", "group_wait: 1s")
        .replace("group_wait: 5s", "group_wait: 1s")
        .replace("group_interval: 1m", "group_interval: 2s");
    let am = Alertmanager::start(&am_config);
    let radar_port = free_port();
    let prom_config = std::fs::read_to_string(root.join("deploy/prometheus/prometheus.yml"))
        .unwrap()
        // Target labels as Kubernetes service discovery attaches them: the
        // shipped scrape config must keep outage-radar's own `service`.
        .replace(
            "- targets: [\"outage-radar:9898\"]",
            &format!(
                "- targets: [\"127.0.0.1:{radar_port}\"]\n        labels: {{service: outage-radar-svc, namespace: monitoring, pod: outage-radar-0}}"
            ),
        )
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s");
    // Prometheus-side alerts are checked in Prometheus itself; sending them
    // to the same Alertmanager would hide whether outage-radar's push works.
    let prom_config = {
        let a = prom_config.find("alerting:").unwrap();
        let b = prom_config.find("scrape_configs:").unwrap();
        format!("{}{}", &prom_config[..a], &prom_config[b..])
    };
    let rules: Vec<(String, String)> = ["outages.yml", "pipeline.yml"]
        .iter()
        .map(|f| {
            (
                format!("rules/{f}"),
                std::fs::read_to_string(root.join("deploy/prometheus/rules").join(f)).unwrap(),
            )
        })
        .collect();
    let rule_files: Vec<(&str, &str)> = rules
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_str()))
        .collect();
    let prom = Prometheus::start(&prom_config, &rule_files);

    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[http]\nlisten = \"127.0.0.1:{radar_port}\"\n\
             [alertmanager]\nurls = [\"{}\"]\nresend_interval = \"2s\"\n\
             [incidents]\ntopic = \"{topic}.incidents\"\n[state]\ntopic = \"{topic}.state\"\n\
             [detect]\nidle_timeout = \"1h\"\n\
             [kafka]\nbrokers = \"{}\"\ntopic = \"{topic}\"\ndlq_topic = \"{topic}.dlq\"\ngroup_id = \"{}\"\n\
             [kafka.consumer_properties]\n\"fetch.wait.max.ms\" = \"5\"\n\"statistics.interval.ms\" = \"1000\"\n",
            am.url(),
            broker.bootstrap(),
            unique_name("group")
        ),
    )
    .unwrap();
    let log = dir.path().join("run.log");
    let radar = Radar(
        Command::new(bin)
            .args(["run", "--config", "config.toml", "--snapshot", "state.json"])
            .current_dir(dir.path())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let radar_url = format!("http://127.0.0.1:{radar_port}");
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(30), || ureq::get(&format!(
            "{radar_url}/-/ready"
        ))
        .call()
        .is_ok()),
        "outage-radar never became ready:\n{}",
        log_text()
    );

    // Phase 1: GB alone → a RegionOutage page for GB, no GlobalOutage.
    broker.produce(&topic, phases[0].iter().map(|l| ("alexa", l)));
    assert!(
        wait_until(Duration::from_secs(60), || firing(
            &webhook.alerts(),
            "RegionOutage",
            "firing"
        )
        .contains("GB")),
        "no RegionOutage for GB at the webhook: {:?}\n{}",
        webhook.received(),
        log_text()
    );
    let gb = webhook
        .alerts()
        .into_iter()
        .find(|(_, a)| a["labels"]["region"] == "GB")
        .unwrap();
    assert_eq!(gb.0, "/chat", "warnings route to chat");
    assert_eq!(gb.1["labels"]["severity"], "warning");
    assert_eq!(gb.1["labels"]["service"], "alexa");
    assert!(
        gb.1["annotations"]["incident_id"].as_str().is_some(),
        "{}",
        gb.1
    );
    assert!(gb.1["annotations"]["description"]
        .as_str()
        .unwrap()
        .contains("expected"));
    assert!(firing(&webhook.alerts(), "GlobalOutage", "firing").is_empty());

    // Phase 2: the fan-out → one GlobalOutage page; the regions are in
    // Alertmanager, inhibited by it.
    broker.produce(&topic, phases[1].iter().map(|l| ("alexa", l)));
    assert!(
        wait_until(Duration::from_secs(60), || !firing(
            &webhook.alerts(),
            "GlobalOutage",
            "firing"
        )
        .is_empty()),
        "no GlobalOutage at the webhook: {:?}\n{}",
        webhook.received(),
        log_text()
    );
    let global: Vec<(String, Value)> = webhook
        .alerts()
        .into_iter()
        .filter(|(_, a)| a["labels"]["alertname"] == "GlobalOutage")
        .collect();
    assert_eq!(global[0].0, "/pager", "critical pages");
    assert_eq!(global[0].1["labels"]["scope"], "global");
    assert_eq!(global[0].1["annotations"]["first_region"], "GB");
    assert!(global[0].1["annotations"]["spread"]
        .as_str()
        .unwrap()
        .starts_with("GB "));
    let am_region_alerts = |inhibited_only: bool| -> BTreeSet<String> {
        get_json(&format!("{}/api/v2/alerts", am.url()))
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["labels"]["alertname"] == "RegionOutage")
            .filter(|a| {
                !inhibited_only
                    || !a["status"]["inhibitedBy"]
                        .as_array()
                        .is_none_or(|v| v.is_empty())
            })
            .map(|a| a["labels"]["region"].as_str().unwrap().to_string())
            .collect()
    };
    let expected: BTreeSet<String> = OUTAGE_REGIONS.iter().map(|s| s.to_string()).collect();
    assert!(
        wait_until(Duration::from_secs(30), || am_region_alerts(true)
            == expected),
        "Alertmanager holds RegionOutage for exactly the outage regions, inhibited: {:?} / {:?}",
        am_region_alerts(false),
        am_region_alerts(true)
    );

    // Prometheus: the target is up, the Prometheus-side rules fire.
    let alerts_firing = |name: &str| -> BTreeSet<String> {
        prom_query(
            &prom,
            &format!("ALERTS{{alertname=\"{name}\",alertstate=\"firing\"}}"),
        )["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r["metric"]["region"]
                    .as_str()
                    .or(r["metric"]["scope"].as_str())
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(30), || alerts_firing("RegionOutage")
            == expected
            && alerts_firing("GlobalOutage").contains("global")),
        "Prometheus rules: RegionOutage {:?}, GlobalOutage {:?}",
        alerts_firing("RegionOutage"),
        alerts_firing("GlobalOutage")
    );
    let up = prom_query(&prom, "up{job=\"outage-radar\"}");
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
    // The target's own `service` label did not replace the exported one.
    let renamed = prom_query(
        &prom,
        "count(outage_radar_series_state{exported_service!=\"\"})",
    );
    assert_eq!(
        renamed["data"]["result"],
        serde_json::json!([]),
        "{renamed}"
    );
    let kept = prom_query(&prom, "count(outage_radar_series_state{service=\"alexa\"})");
    assert_ne!(kept["data"]["result"], serde_json::json!([]), "{kept}");

    // Every dashboard query runs against this Prometheus and every panel
    // returns data, except those listed here with the reason they are
    // empty in a healthy run.
    std::thread::sleep(Duration::from_secs(3)); // a few scrapes for rate()
    let panels_empty_here: BTreeMap<&str, &str> = [].into_iter().collect();
    let mut empty = BTreeMap::new();
    let mut titles = BTreeSet::new();
    for file in ["outage-radar-overview.json", "outage-radar-pipeline.json"] {
        let d: Value = serde_json::from_str(
            &std::fs::read_to_string(root.join("deploy/grafana/dashboards").join(file)).unwrap(),
        )
        .unwrap();
        for panel in d["panels"].as_array().unwrap() {
            let title = panel["title"].as_str().unwrap();
            titles.insert(title.to_string());
            let mut rows = 0;
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"]
                    .as_str()
                    .unwrap()
                    .replace("$service", ".*")
                    .replace("$region", ".*")
                    .replace("$__rate_interval", "1m");
                let r = prom_query(&prom, &expr);
                assert_eq!(r["status"], "success", "{file} / {title}: {expr}: {r}");
                rows += r["data"]["result"].as_array().map_or(0, |a| a.len());
            }
            if rows == 0 {
                empty.insert(title.to_string(), file);
            }
        }
        // Annotation queries (incidents on the time axis) run too.
        for a in d["annotations"]["list"].as_array().unwrap() {
            if let Some(expr) = a["expr"].as_str() {
                let expr = expr.replace("$__rate_interval", "1m");
                let r = prom_query(&prom, &expr);
                assert_eq!(r["status"], "success", "{file} / annotation: {expr}: {r}");
            }
        }
    }
    let unexplained: Vec<_> = empty
        .iter()
        .filter(|(t, _)| !panels_empty_here.contains_key(t.as_str()))
        .collect();
    assert!(
        unexplained.is_empty(),
        "panels without data and without a reason: {unexplained:?}"
    );
    for title in panels_empty_here.keys() {
        assert!(
            titles.contains(*title),
            "no panel {title:?} (list is stale)"
        );
    }

    // Every rule Prometheus loaded evaluates without error; in this healthy
    // run no pipeline-health rule is pending or firing, except those listed
    // with the reason.
    let pending_here: BTreeMap<&str, &str> = [(
        "OutageRadarNoReports",
        "this test produces its reports in bursts between scrapes, so the \
         consumed counter can stand still for a scrape or two (it fires only \
         after 10 minutes)",
    )]
    .into_iter()
    .collect();
    let rules = get_json(&format!("{}/api/v1/rules", prom.url()));
    let mut evaluated = 0;
    for group in rules["data"]["groups"].as_array().unwrap() {
        let name = group["name"].as_str().unwrap();
        for rule in group["rules"].as_array().unwrap() {
            let rule_name = rule["name"].as_str().unwrap_or("");
            assert_eq!(rule["health"], "ok", "{name} / {rule_name}: {rule}");
            if name == "outage-radar-pipeline" && !pending_here.contains_key(rule_name) {
                assert_eq!(rule["state"], "inactive", "{name} / {rule_name}: {rule}");
            }
            evaluated += 1;
        }
    }
    assert!(evaluated >= 14, "{rules}");

    // Phase 3: recovery → resolutions reach the webhook.
    broker.produce(&topic, phases[2].iter().map(|l| ("alexa", l)));
    assert!(
        wait_until(Duration::from_secs(90), || {
            let a = webhook.alerts();
            firing(&a, "GlobalOutage", "resolved").contains("global")
                && firing(&a, "RegionOutage", "resolved").contains("GB")
        }),
        "no resolutions at the webhook: {:?}\n{}",
        webhook.received(),
        log_text()
    );
    assert!(
        wait_until(Duration::from_secs(30), || am_region_alerts(false)
            .is_empty()),
        "RegionOutage alerts left in Alertmanager: {:?}",
        am_region_alerts(false)
    );
    // No other alert ever reached the webhook.
    let names: BTreeSet<String> = webhook
        .alerts()
        .iter()
        .map(|(_, a)| a["labels"]["alertname"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        ["GlobalOutage", "RegionOutage"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    let regions_paged = firing(&webhook.alerts(), "RegionOutage", "firing");
    assert!(
        regions_paged.is_subset(&expected),
        "no false region: {regions_paged:?}"
    );
    let metrics = ureq::get(&format!("{radar_url}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "outage_radar_alert_pushes_total{{alertmanager=\"{}\",result=\"success\"}}",
            am.url()
        )),
        "{metrics}"
    );
    drop(radar);
}
