//! Alertmanager push (`POST /api/v2/alerts`).
//!
//! The consumer thread hands incident events to [`AlertQueue::push`], which
//! never blocks: a full queue drops and counts. One task keeps the set of
//! firing alerts and re-sends it every `resend_interval` with
//! `endsAt = now + 4 × interval`, so Alertmanager keeps them alive while
//! outage-radar is up and lets them expire if it dies. A resolved incident
//! is sent once more with `endsAt = now`. Each Alertmanager URL has its own
//! worker, so one slow or dead instance of an HA pair never delays the
//! other; a worker coalesces what queued up while it was retrying.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use outage_detect::time::wall_ms;

use outage_detect::time::format_rfc3339_ms as rfc3339;
use outage_detect::ConfigError;
use outage_detect::{Incident, Scope};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::metrics::LastWindow;
use outage_detect::IncidentEvent;

/// `[alertmanager]`: where and how alerts are pushed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerConfig {
    /// Alertmanager base URLs, e.g. `["http://alertmanager:9093"]`; every
    /// one gets every alert (an HA pair de-duplicates). Default: none (no
    /// push; /metrics and the incidents topic still work).
    pub urls: Vec<String>,
    /// How often firing alerts are re-sent. Default `1m`.
    #[serde(with = "humantime_serde")]
    pub resend_interval: Duration,
    /// Timeout of one HTTP request. Default `5s`.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Attempts per push before it is given up (the next re-send carries
    /// firing alerts again). Default `5`.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt up to 10 s. Default `250ms`.
    #[serde(with = "humantime_serde")]
    pub retry_backoff: Duration,
    /// Incident events waiting for the push task; beyond it they are
    /// dropped and counted. Default `10000`.
    pub queue_capacity: usize,
    /// Dashboard link in each alert's `dashboard` annotation; `{service}`
    /// and `{region}` are replaced. Default: the bundled Grafana dashboard
    /// on localhost:3000.
    pub dashboard_url: String,
    /// Where `docs/runbooks.md` is served: each alert's `runbook_url`
    /// annotation is this plus `#` and the alert name in lower case, as in
    /// the Prometheus rules. Default `docs/runbooks.md` (the path in the
    /// repository; set your copy's URL).
    pub runbook_url: String,
    /// `generatorURL` of each alert, e.g. this instance's status page.
    /// Default: empty (omitted).
    pub generator_url: String,
    /// HTTP basic auth user; the password comes from the environment
    /// variable named by `basic_auth_password_env`.
    pub basic_auth_username: Option<String>,
    /// Environment variable holding the basic-auth password (never the password itself).
    pub basic_auth_password_env: Option<String>,
    /// Environment variable holding a bearer token.
    pub bearer_token_env: Option<String>,
    /// PEM file of a CA to trust for https URLs (besides the built-in roots).
    pub tls_ca_file: Option<PathBuf>,
    /// PEM files of a client certificate and its private key, for an
    /// Alertmanager that requires client certificates (mutual TLS:
    /// `client_auth_type: RequireAndVerifyClientCert` in its web config).
    pub tls_cert_file: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS, with `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// Accept any certificate (testing only). Default `false`.
    pub tls_insecure_skip_verify: bool,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        AlertmanagerConfig {
            urls: Vec::new(),
            resend_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            max_attempts: 5,
            retry_backoff: Duration::from_millis(250),
            queue_capacity: 10_000,
            dashboard_url:
                "http://localhost:3000/d/outage-radar-overview/outage-radar?var-service={service}&var-region={region}"
                    .into(),
            runbook_url: "docs/runbooks.md".into(),
            generator_url: String::new(),
            basic_auth_username: None,
            basic_auth_password_env: None,
            bearer_token_env: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_insecure_skip_verify: false,
        }
    }
}

/// A problem of `[alertmanager]`, naming the key.
fn cfg_err(field: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::new(format!("alertmanager.{field}"), problem)
}

impl AlertmanagerConfig {
    /// Checks URLs, intervals and paired settings; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for url in &self.urls {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| cfg_err("urls", format!("{url:?} is not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(cfg_err("urls", format!("{url:?} must be http or https")));
            }
        }
        if self.resend_interval < Duration::from_secs(1) {
            return Err(cfg_err("resend_interval", "must be at least 1s"));
        }
        if self.timeout.is_zero() {
            return Err(cfg_err("timeout", "must be positive"));
        }
        if self.max_attempts == 0 {
            return Err(cfg_err("max_attempts", "must be at least 1"));
        }
        if self.queue_capacity == 0 {
            return Err(cfg_err("queue_capacity", "must be at least 1"));
        }
        if self.basic_auth_password_env.is_some() && self.basic_auth_username.is_none() {
            return Err(cfg_err(
                "basic_auth_password_env",
                "needs basic_auth_username",
            ));
        }
        if self.basic_auth_username.is_some() && self.bearer_token_env.is_some() {
            return Err(cfg_err(
                "bearer_token_env",
                "basic auth and a bearer token cannot both be set",
            ));
        }
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(_), None) => return Err(cfg_err("tls_key_file", "tls_cert_file needs it")),
            (None, Some(_)) => return Err(cfg_err("tls_cert_file", "tls_key_file needs it")),
            _ => {}
        }
        Ok(())
    }

    /// Settings that work but that an operator should not leave as they
    /// are: credentials over plain http, certificates not verified. `run`
    /// logs them at start and `check-config` prints them.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        let credentials = self.basic_auth_username.is_some() || self.bearer_token_env.is_some();
        for url in &self.urls {
            if credentials && url.to_ascii_lowercase().starts_with("http://") {
                w.push(format!(
                    "alertmanager.urls: credentials are sent in clear text to {} (use https)",
                    display_url(url)
                ));
            }
        }
        if self.tls_insecure_skip_verify {
            w.push(
                "alertmanager.tls_insecure_skip_verify: certificates are not verified (testing only)"
                    .to_string(),
            );
        }
        w
    }

    /// The `runbook_url` annotation of alert `alertname`.
    fn runbook(&self, alertname: &str) -> String {
        format!("{}#{}", self.runbook_url, alertname.to_lowercase())
    }

    /// The `dashboard` annotation for one alert.
    fn dashboard(&self, service: &str, region: &str) -> String {
        self.dashboard_url
            .replace("{service}", service)
            .replace("{region}", region)
    }
}

/// Counters of the push path.
#[derive(Clone)]
pub struct AlertMetrics {
    /// `outage_radar_alert_pushes_total{alertmanager,result}`.
    pub pushes: IntCounterVec,
    /// `outage_radar_alert_pushes_abandoned_total`: batches given up after retries.
    pub abandoned: IntCounter,
    /// `outage_radar_alert_events_dropped_total`: events dropped before the push (queue full).
    pub dropped: IntCounter,
    /// `outage_radar_alerts_firing`: alerts being re-sent.
    pub firing: IntGauge,
}

impl AlertMetrics {
    /// Creates and registers the alert metrics.
    pub fn register(registry: &Registry) -> prometheus::Result<AlertMetrics> {
        let m = AlertMetrics {
            pushes: IntCounterVec::new(
                Opts::new(
                    "outage_radar_alert_pushes_total",
                    "HTTP pushes to Alertmanager by target and result (success, error).",
                ),
                &["alertmanager", "result"],
            )?,
            abandoned: IntCounter::with_opts(Opts::new(
                "outage_radar_alert_pushes_abandoned_total",
                "Pushes given up after alertmanager.max_attempts failed attempts.",
            ))?,
            dropped: IntCounter::with_opts(Opts::new(
                "outage_radar_alert_events_dropped_total",
                "Incident events dropped because the alert queue was full.",
            ))?,
            firing: IntGauge::with_opts(Opts::new(
                "outage_radar_alerts_firing",
                "Alerts outage-radar currently keeps firing in Alertmanager.",
            ))?,
        };
        registry.register(Box::new(m.pushes.clone()))?;
        registry.register(Box::new(m.abandoned.clone()))?;
        registry.register(Box::new(m.dropped.clone()))?;
        registry.register(Box::new(m.firing.clone()))?;
        Ok(m)
    }
}

outage_detect::label_values!(
    /// The `result` of `outage_radar_alert_pushes_total`.
    PushResult {
        Success => "success",
        Error => "error",
    }
);

/// One alert, without its `endsAt` (set at each send).
#[derive(Clone, Debug, PartialEq)]
pub struct PendingAlert {
    /// Alertmanager's identity of the alert: its label set, as a key.
    pub key: String,
    /// The alert as Alertmanager's API takes it (`endsAt` added at send).
    pub body: Value,
    /// Whether it is the resolution (sent until Alertmanager has it).
    pub resolved: bool,
}

/// `RegionOutage` / `GlobalOutage` for one incident event. `last` is the
/// series' last scored window, for observed vs expected.
pub fn build_alert(
    config: &AlertmanagerConfig,
    event: IncidentEvent,
    inc: &Incident,
    last: Option<LastWindow>,
) -> PendingAlert {
    let (alertname, severity, scope_label, scope_value) = match inc.scope {
        Scope::Region(c) => ("RegionOutage", "warning", "region", c.as_str().to_string()),
        Scope::Global => ("GlobalOutage", "critical", "scope", "global".to_string()),
    };
    let spread = inc
        .regions
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.region.as_str(),
                &rfc3339(r.started_at_ms)[11..16]
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let total: u64 = inc.problems.iter().sum();
    let top = inc
        .top_problems()
        .iter()
        .take(3)
        .map(|(p, n)| {
            format!(
                "{} {:.0}%",
                p.as_str(),
                100.0 * *n as f64 / total.max(1) as f64
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let where_ = match inc.scope {
        Scope::Region(c) => format!("in {}", c.as_str()),
        Scope::Global => format!(
            "worldwide ({} regions, first {})",
            inc.regions.len(),
            inc.regions
                .first()
                .map(|r| r.region.as_str())
                .unwrap_or("?")
        ),
    };
    let summary = format!("{} outage {}", inc.service, where_);
    let mut description = format!(
        "{} reports {} since {}: peak {:.1}× the expected rate (surprise {:.1}).",
        inc.service,
        where_,
        rfc3339(inc.started_at_ms),
        inc.peak_ratio,
        inc.peak_surprise
    );
    if let Some(w) = last {
        description.push_str(&format!(
            " Last window: {} reports vs {:.1} expected (surprise {:.1}).",
            w.observed, w.expected, w.surprise
        ));
    }
    if !spread.is_empty() && inc.scope == Scope::Global {
        description.push_str(&format!(" Spread: {spread}."));
    }
    if !top.is_empty() {
        description.push_str(&format!(" Top problems: {top}."));
    }
    let mut annotations = json!({
        "summary": summary,
        "description": description,
        "incident_id": inc.id,
        "started_at": rfc3339(inc.started_at_ms),
        "peak_ratio": format!("{:.2}", inc.peak_ratio),
        "peak_surprise": format!("{:.2}", inc.peak_surprise),
        "top_problems": top,
        "dashboard": config.dashboard(&inc.service, if inc.scope == Scope::Global { "" } else { &scope_value }),
        "runbook_url": config.runbook(alertname),
        "event": event.as_str(),
    });
    if let Some(first) = inc.regions.first() {
        annotations["first_region"] = json!(first.region.as_str());
        annotations["spread"] = json!(spread);
    }
    if let Some(w) = last {
        annotations["observed"] = json!(w.observed.to_string());
        annotations["expected"] = json!(format!("{:.2}", w.expected));
        annotations["surprise"] = json!(format!("{:.2}", w.surprise));
    }
    let mut body = json!({
        "labels": {
            "alertname": alertname,
            "service": inc.service,
            scope_label: scope_value,
            "severity": severity,
        },
        "annotations": annotations,
        "startsAt": rfc3339(inc.started_at_ms),
    });
    if !config.generator_url.is_empty() {
        body["generatorURL"] = json!(config.generator_url);
    }
    PendingAlert {
        key: alert_key(inc),
        body,
        resolved: event == IncidentEvent::Resolved,
    }
}

/// The identity of an incident's alert (its label set, as a key): the
/// same for every event of the incident, and for a later incident of the
/// same series.
pub fn alert_key(inc: &Incident) -> String {
    match inc.scope {
        Scope::Region(c) => format!("RegionOutage/{}/{}", inc.service, c.as_str()),
        Scope::Global => format!("GlobalOutage/{}/global", inc.service),
    }
}

/// What the consumer thread hands the keeper.
enum KeeperMsg {
    /// Send it now, and keep re-sending it while it fires.
    Alert(PendingAlert),
    /// Stop re-sending the alert with this key, without resolving it: its
    /// partition moved, and its new owner sends it from now on (before
    /// Alertmanager's `endsAt` for it passes, so it never flaps).
    Withdraw(String),
}

/// The consumer thread's side of the push path.
#[derive(Clone)]
pub struct AlertQueue {
    tx: mpsc::Sender<KeeperMsg>,
    dropped: IntCounter,
}

impl AlertQueue {
    /// Hands an alert to the push task; never blocks.
    pub fn push(&self, alert: PendingAlert) {
        if self.tx.try_send(KeeperMsg::Alert(alert)).is_err() {
            self.dropped.inc();
        }
    }

    /// Stops re-sending the alert with `key` (see [`alert_key`]) without
    /// resolving it; never blocks.
    pub fn withdraw(&self, key: String) {
        if self.tx.try_send(KeeperMsg::Withdraw(key)).is_err() {
            self.dropped.inc();
        }
    }
}

/// How each request authenticates.
#[derive(Clone)]
enum Auth {
    None,
    Basic(String, String),
    Bearer(String),
}

impl Auth {
    fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::None => req,
            Auth::Basic(user, password) => req.basic_auth(user, Some(password)),
            Auth::Bearer(token) => req.bearer_auth(token),
        }
    }
}

/// Builds the HTTP client with the configured TLS, and the auth to apply;
/// secrets are read from the environment here and nowhere else.
fn client(config: &AlertmanagerConfig) -> Result<(reqwest::Client, Auth), ConfigError> {
    let secret = |field: &'static str, var: &str| {
        std::env::var(var)
            .map_err(|_| cfg_err(field, format!("environment variable {var} is not set")))
    };
    let auth = match (&config.basic_auth_username, &config.bearer_token_env) {
        (Some(user), _) => {
            let password = match &config.basic_auth_password_env {
                Some(var) => secret("basic_auth_password_env", var)?,
                None => String::new(),
            };
            Auth::Basic(user.clone(), password)
        }
        (None, Some(var)) => Auth::Bearer(secret("bearer_token_env", var)?.trim().to_string()),
        (None, None) => Auth::None,
    };
    let mut builder = reqwest::Client::builder()
        .timeout(config.timeout)
        .user_agent(concat!("outage-radar/", env!("CARGO_PKG_VERSION")))
        .danger_accept_invalid_certs(config.tls_insecure_skip_verify);
    if let Some(path) = &config.tls_ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            cfg_err(
                "tls_ca_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| cfg_err("tls_ca_file", format!("{}: {e}", path.display())))?;
        builder = builder.add_root_certificate(cert);
    }
    match (&config.tls_cert_file, &config.tls_key_file) {
        (Some(cert), Some(key)) => {
            let read = |field: &'static str, path: &PathBuf| {
                std::fs::read(path)
                    .map_err(|e| cfg_err(field, format!("cannot read {}: {e}", path.display())))
            };
            let mut pem = read("tls_cert_file", cert)?;
            pem.push(b'\n');
            pem.extend(read("tls_key_file", key)?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                cfg_err(
                    "tls_cert_file",
                    format!("{} with {}: {e}", cert.display(), key.display()),
                )
            })?;
            builder = builder.identity(identity);
        }
        (None, None) => {}
        (Some(_), None) => return Err(cfg_err("tls_key_file", "tls_cert_file needs it")),
        (None, Some(_)) => return Err(cfg_err("tls_cert_file", "tls_key_file needs it")),
    }
    let client = builder
        .build()
        .map_err(|e| cfg_err("urls", format!("cannot build the HTTP client: {e}")))?;
    Ok((client, auth))
}

/// The URL without credentials, for labels and logs.
pub fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.as_str().trim_end_matches('/').to_string()
        }
        Err(_) => url.to_string(),
    }
}

/// Starts the push task (and one worker per URL) on the current tokio
/// runtime. Returns the queue for the consumer thread, or `None` when no
/// URL is configured.
pub fn start(
    config: &AlertmanagerConfig,
    metrics: AlertMetrics,
) -> Result<Option<AlertQueue>, ConfigError> {
    config.validate()?;
    if config.urls.is_empty() {
        return Ok(None);
    }
    let (client, auth) = client(config)?;
    let (tx, rx) = mpsc::channel(config.queue_capacity);
    let mut workers = Vec::new();
    for url in &config.urls {
        let (wtx, wrx) = mpsc::channel::<Vec<(String, Value)>>(64);
        let name = display_url(url);
        for result in PushResult::ALL {
            metrics.pushes.with_label_values(&[&name, result.as_str()]);
        }
        let endpoint = format!("{}/api/v2/alerts", url.trim_end_matches('/'));
        tokio::spawn(worker(
            client.clone(),
            auth.clone(),
            endpoint,
            name,
            config.clone(),
            metrics.clone(),
            wrx,
        ));
        workers.push(wtx);
    }
    info!(
        alertmanagers = ?config.urls.iter().map(|u| display_url(u)).collect::<Vec<_>>(),
        resend_interval = ?config.resend_interval,
        "pushing alerts to alertmanager"
    );
    let dropped = metrics.dropped.clone();
    tokio::spawn(keeper(config.resend_interval, metrics, rx, workers));
    Ok(Some(AlertQueue { tx, dropped }))
}

/// Keeps the firing set and fans batches out to the URL workers.
async fn keeper(
    interval: Duration,
    metrics: AlertMetrics,
    mut rx: mpsc::Receiver<KeeperMsg>,
    workers: Vec<mpsc::Sender<Vec<(String, Value)>>>,
) {
    let mut firing: BTreeMap<String, Value> = BTreeMap::new();
    let mut resend = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ends_in = 4 * interval.as_millis() as i64;
    loop {
        let mut batch: Vec<(String, Value)> = Vec::new();
        tokio::select! {
            alert = rx.recv() => {
                let Some(first) = alert else { break };
                let now = wall_ms();
                let mut next = Some(first);
                while let Some(msg) = next {
                    next = rx.try_recv().ok();
                    let a = match msg {
                        KeeperMsg::Alert(a) => a,
                        KeeperMsg::Withdraw(key) => {
                            firing.remove(&key);
                            continue;
                        }
                    };
                    let mut body = a.body;
                    if a.resolved {
                        firing.remove(&a.key);
                        body["endsAt"] = json!(rfc3339(now));
                    } else {
                        firing.insert(a.key.clone(), body.clone());
                        body["endsAt"] = json!(rfc3339(now + ends_in));
                    }
                    batch.push((a.key, body));
                }
            }
            _ = resend.tick() => {
                let ends = json!(rfc3339(wall_ms() + ends_in));
                for (key, body) in &firing {
                    let mut body = body.clone();
                    body["endsAt"] = ends.clone();
                    batch.push((key.clone(), body));
                }
            }
        }
        metrics.firing.set(firing.len() as i64);
        if batch.is_empty() {
            continue;
        }
        for w in &workers {
            if w.try_send(batch.clone()).is_err() {
                metrics.dropped.inc_by(batch.len() as u64);
            }
        }
    }
    debug!("alert keeper stopped");
}

/// Pushes batches to one Alertmanager, with retries; merges whatever
/// queued up meanwhile (latest version of each alert wins).
async fn worker(
    client: reqwest::Client,
    auth: Auth,
    endpoint: String,
    name: String,
    config: AlertmanagerConfig,
    metrics: AlertMetrics,
    mut rx: mpsc::Receiver<Vec<(String, Value)>>,
) {
    let ok = metrics
        .pushes
        .with_label_values(&[&name, PushResult::Success.as_str()]);
    let failed = metrics
        .pushes
        .with_label_values(&[&name, PushResult::Error.as_str()]);
    let mut last_failure_log: Option<tokio::time::Instant> = None;
    while let Some(first) = rx.recv().await {
        let mut merged: BTreeMap<String, Value> = first.into_iter().collect();
        while let Ok(more) = rx.try_recv() {
            merged.extend(more);
        }
        let body = Value::Array(merged.into_values().collect());
        let mut backoff = config.retry_backoff;
        let mut attempt = 1;
        loop {
            let result = auth.apply(client.post(&endpoint)).json(&body).send().await;
            let error = match result {
                Ok(resp) if resp.status().is_success() => None,
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    Some(format!(
                        "HTTP {status}: {}",
                        text.chars().take(200).collect::<String>()
                    ))
                }
                Err(e) => Some(e.to_string()),
            };
            match error {
                None => {
                    ok.inc();
                    break;
                }
                Some(e) => {
                    failed.inc();
                    if last_failure_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        warn!(alertmanager = %name, attempt, error = %e, "alert push failed");
                        last_failure_log = Some(tokio::time::Instant::now());
                    }
                    if attempt >= config.max_attempts {
                        metrics.abandoned.inc();
                        break;
                    }
                    attempt += 1;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outage_detect::detector::SpreadEntry;
    use outage_detect::Country;

    fn incident(scope: Scope) -> Incident {
        let gb = Country::parse("GB").unwrap();
        let de = Country::parse("DE").unwrap();
        let mut problems = [0u64; 8];
        problems[outage_detect::Problem::ALL[0] as usize] = 30;
        problems[outage_detect::Problem::ALL[1] as usize] = 10;
        Incident {
            id: "abc123".into(),
            service: "alexa".into(),
            scope,
            regions: vec![
                SpreadEntry {
                    region: gb,
                    started_at_ms: 1_537_956_120_000,
                    peak_ratio: 9.0,
                },
                SpreadEntry {
                    region: de,
                    started_at_ms: 1_537_956_240_000,
                    peak_ratio: 6.0,
                },
            ],
            started_at_ms: 1_537_956_120_000,
            detected_at_ms: 1_537_956_240_000,
            resolved_at_ms: None,
            peak_ratio: 9.0,
            peak_surprise: 12.0,
            problems,
        }
    }

    #[test]
    fn region_and_global_alerts_carry_labels_and_annotations() {
        let cfg = AlertmanagerConfig::default();
        let gb = Scope::Region(Country::parse("GB").unwrap());
        let last = LastWindow {
            window_start_ms: 0,
            observed: 120,
            expected: 12.5,
            surprise: 12.0,
            state: outage_detect::SeriesState::Outage,
        };
        let a = build_alert(&cfg, IncidentEvent::Opened, &incident(gb), Some(last));
        assert_eq!(a.key, "RegionOutage/alexa/GB");
        assert_eq!(a.body["labels"]["alertname"], "RegionOutage");
        assert_eq!(a.body["labels"]["region"], "GB");
        assert_eq!(a.body["labels"]["severity"], "warning");
        assert_eq!(a.body["annotations"]["observed"], "120");
        assert_eq!(
            a.body["annotations"]["runbook_url"],
            "docs/runbooks.md#regionoutage"
        );
        assert_eq!(a.body["annotations"]["expected"], "12.50");
        assert!(a.body["annotations"]["dashboard"]
            .as_str()
            .unwrap()
            .contains("var-service=alexa&var-region=GB"));
        assert!(!a.resolved);

        let g = build_alert(
            &cfg,
            IncidentEvent::Resolved,
            &incident(Scope::Global),
            None,
        );
        assert_eq!(g.key, "GlobalOutage/alexa/global");
        assert_eq!(g.body["labels"]["scope"], "global");
        assert_eq!(g.body["labels"]["severity"], "critical");
        assert!(g.body["labels"].get("region").is_none());
        assert_eq!(g.body["annotations"]["first_region"], "GB");
        assert_eq!(g.body["annotations"]["spread"], "GB 10:02, DE 10:04");
        let (p0, p1) = (
            outage_detect::Problem::ALL[0],
            outage_detect::Problem::ALL[1],
        );
        assert_eq!(
            g.body["annotations"]["top_problems"],
            format!("{} 75%, {} 25%", p0.as_str(), p1.as_str())
        );
        assert!(g.resolved);
    }

    #[test]
    fn bad_config_names_the_field() {
        let mut cfg = AlertmanagerConfig {
            urls: vec!["ftp://x".into()],
            ..AlertmanagerConfig::default()
        };
        assert_eq!(cfg.validate().unwrap_err().field, "alertmanager.urls");
        cfg.urls = vec!["http://127.0.0.1:9093".into()];
        cfg.basic_auth_password_env = Some("X".into());
        assert_eq!(
            cfg.validate().unwrap_err().field,
            "alertmanager.basic_auth_password_env"
        );
        cfg.basic_auth_password_env = None;
        cfg.tls_cert_file = Some("client.pem".into());
        assert_eq!(
            cfg.validate().unwrap_err().field,
            "alertmanager.tls_key_file"
        );
    }

    #[test]
    fn credentials_never_reach_labels() {
        assert_eq!(display_url("http://u:p@am:9093/"), "http://am:9093");
    }
}
