//! Commands that look and report, never change anything: `check-config`
//! (what a configuration says, and what an operator should not leave in
//! it), `state inspect` (the snapshots in the state topic) and
//! `healthcheck` (a container's probe of a running radar).

use std::path::Path;

use anyhow::Context;

use crate::config::Config;

/// `check-config`: the configuration as it will be used, and its warnings.
pub fn check_config(path: Option<&Path>) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    println!(
        "configuration OK{}",
        path.map(|p| format!(": {}", p.display()))
            .unwrap_or_default()
    );
    for w in config.alertmanager.warnings() {
        println!("warning: {w}");
    }
    println!("kafka: {}", config.kafka.describe());
    println!("kafka client: {}", kafka_client_features());
    let d = &config.decode;
    println!(
        "decode: max_message_bytes={} max_clock_skew={} max_reporter_bytes={} max_source_bytes={} services={}",
        d.max_message_bytes,
        humantime::format_duration(d.max_clock_skew),
        d.max_reporter_bytes,
        d.max_source_bytes,
        if d.services.is_empty() {
            "any".to_string()
        } else {
            d.services.len().to_string()
        }
    );
    println!(
        "log: level={} format={:?}",
        config.log.level, config.log.format
    );
    let h = &config.http;
    println!(
        "http: listen={} header_timeout={} max_connection_age={} max_connections={} refresh={}",
        h.listen,
        humantime::format_duration(h.header_timeout),
        humantime::format_duration(h.max_connection_age),
        h.max_connections,
        humantime::format_duration(h.refresh)
    );
    println!(
        "metrics: series_ttl={} max_series={}",
        humantime::format_duration(config.metrics.series_ttl),
        config.metrics.max_series
    );
    let am = &config.alertmanager;
    let auth = match (&am.basic_auth_username, &am.bearer_token_env) {
        (Some(u), _) => format!(
            "basic user={u} password=<from ${}>",
            am.basic_auth_password_env.as_deref().unwrap_or("-")
        ),
        (None, Some(var)) => format!("bearer <from ${var}>"),
        (None, None) => "none".into(),
    };
    println!(
        "alertmanager: urls={:?} resend_interval={} auth={auth}",
        am.urls
            .iter()
            .map(|u| outage_export::alert::display_url(u))
            .collect::<Vec<_>>(),
        humantime::format_duration(am.resend_interval)
    );
    println!(
        "incidents: topic={}",
        if config.incidents.topic.is_empty() {
            "(off)"
        } else {
            &config.incidents.topic
        }
    );
    Ok(())
}

/// librdkafka's version and what this build of it supports (TLS, SASL
/// mechanisms, compression codecs): what an operator needs to know before
/// setting `security.protocol` or `compression.type`.
pub fn kafka_client_features() -> String {
    let (_, version) = rdkafka::util::get_rdkafka_version();
    let features = rdkafka::ClientConfig::new()
        .create_native_config()
        .and_then(|c| c.get("builtin.features"))
        .unwrap_or_else(|e| format!("(unknown: {e})"));
    format!("librdkafka {version}, built with {features}")
}

/// `state inspect`: one line per snapshot in the state topic.
pub fn state_inspect(config: &Config) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.state.enabled(),
        "state.topic is empty: snapshots are off in this configuration"
    );
    let reader = outage_ingest::StateReader::new(
        &config.kafka.common_config()?,
        &config.state.topic,
        config.state.load_timeout,
    )
    .with_context(|| format!("cannot read the state topic {}", config.state.topic))?;
    let all = reader
        .load_all()
        .with_context(|| format!("cannot read the state topic {}", config.state.topic))?;
    let now = outage_detect::time::wall_ms();
    println!(
        "{:<48} {:<8} {:>12} {:>9} {:>11} {:>9}",
        "GROUP/TOPIC/PARTITION", "STATUS", "OFFSET", "SERIES", "BYTES", "AGE"
    );
    for (key, outcome) in &all {
        match outcome {
            outage_ingest::LoadOutcome::Found(l) => {
                let m = &l.manifest;
                let age =
                    std::time::Duration::from_secs(((now - m.created_at_ms).max(0) / 1000) as u64);
                println!(
                    "{key:<48} {:<8} {:>12} {:>9} {:>11} {:>9}",
                    "ok",
                    m.offset,
                    m.items,
                    m.bytes,
                    humantime::format_duration(age).to_string()
                );
            }
            outage_ingest::LoadOutcome::Corrupt(e) => {
                println!("{key:<48} {:<8} {e}", "CORRUPT")
            }
            outage_ingest::LoadOutcome::Missing => println!("{key:<48} {:<8}", "deleted"),
        }
    }
    if all.is_empty() {
        println!("(no snapshots in {})", config.state.topic);
    }
    Ok(())
}

/// `healthcheck`: 200 from the readiness URL, or an error that says why.
pub fn healthcheck(url: &str, timeout: std::time::Duration) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the HTTP client")?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .context("cannot build the HTTP client")?;
        let response = client
            .get(url)
            .send()
            .await
            .with_context(|| format!("{url}: no answer"))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        anyhow::ensure!(
            status == reqwest::StatusCode::OK,
            "{url}: {status}: {}",
            body.trim()
        );
        println!("{url}: {status}");
        Ok(())
    })
}
