//! Composition root: wires config, metrics, the ingester and signals.
//!
//! Owns the only tokio runtime. The consumer runs on a dedicated thread (it
//! blocks in librdkafka's poll); signals and periodic progress logs run on
//! the runtime. Nothing here touches a report.

use std::io::IsTerminal;
use std::path::Path;
use std::thread;
use std::time::Duration;

use anyhow::Context;
use outage_detect::{Detector, RejectReason};
use outage_export::{
    AlertMetrics, JsonTopicProducer, OutputTopicMetrics, PipelineMetrics, Readiness, SeriesMetrics,
    StatusBoard,
};
use outage_ingest::{IngestMetrics, Ingester, Shutdown};
use prometheus::{IntCounter, Registry};
use tracing::{info, warn};

use crate::cli::{Cli, Command};
use crate::config::{Config, LogFormat};
use crate::pipeline::{DetectorSink, Export};

pub fn main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { config, snapshot } => {
            let config = Config::load(config.as_deref())?;
            let warm = snapshot.as_deref().map(load_snapshot).transpose()?;
            init_logging(&config);
            run(config, warm)
        }
        Command::CheckConfig { config } => check_config(config.as_deref()),
        Command::Healthcheck { url, timeout } => healthcheck(&url, timeout),
        Command::Demo {
            scenario,
            speed,
            listen,
            alertmanager,
            duration,
        } => {
            let mut log = Config::default();
            log.log.level = "error".into();
            init_logging(&log);
            crate::demo::demo(crate::demo::DemoArgs {
                scenario,
                speed,
                listen,
                alertmanager,
                duration,
            })
        }
        Command::State(crate::cli::StateCommand::Inspect { config }) => {
            let config = Config::load(config.as_deref())?;
            state_inspect(&config)
        }
        Command::Simulate {
            scenario,
            out,
            truth,
            to,
            brokers,
            topic,
            rate,
        } => match to {
            crate::cli::SimulateTarget::File => crate::simulate::simulate(
                &scenario,
                out.as_deref().expect("clap requires --out with --to file"),
                truth.as_deref(),
            ),
            crate::cli::SimulateTarget::Kafka => crate::simulate::simulate_to_kafka(
                &scenario,
                &brokers,
                &topic,
                rate,
                truth
                    .as_deref()
                    .expect("clap requires --truth with --to kafka"),
            ),
        },
        Command::Evaluate {
            truth,
            incidents,
            window_minutes,
            min_recall,
            max_median_delay,
            max_delay,
            max_false_per_30d,
            max_global_delay,
        } => {
            let bars = crate::evaluate::Bars {
                min_recall,
                max_median_delay_windows: max_median_delay,
                max_delay_windows: max_delay,
                max_false_per_30d,
                max_global_delay_minutes: max_global_delay,
            };
            if crate::evaluate::evaluate(&truth, &incidents, window_minutes, &bars)? {
                Ok(())
            } else {
                Err(crate::evaluate::BarsFailed.into())
            }
        }
        Command::Replay {
            input,
            out,
            config,
            snapshot_out,
        } => {
            let config = Config::load(config.as_deref())?;
            crate::replay::replay(&input, &out, &config, snapshot_out.as_deref())
        }
    }
}

fn check_config(path: Option<&Path>) -> anyhow::Result<()> {
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
    let d = &config.decode;
    println!(
        "decode: max_message_bytes={} max_clock_skew={} max_reporter_bytes={} max_source_bytes={}",
        d.max_message_bytes,
        humantime::format_duration(d.max_clock_skew),
        d.max_reporter_bytes,
        d.max_source_bytes
    );
    println!(
        "log: level={} format={:?}",
        config.log.level, config.log.format
    );
    println!("http: listen={}", config.http.listen);
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

/// `state inspect`: one line per snapshot in the state topic.
fn state_inspect(config: &Config) -> anyhow::Result<()> {
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

fn init_logging(config: &Config) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| config.log.level.clone());
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Reads a detector snapshot written by `replay --snapshot-out`.
fn load_snapshot(path: &Path) -> anyhow::Result<Detector> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read snapshot {}", path.display()))?;
    Detector::from_snapshot(&bytes)
        .with_context(|| format!("cannot restore snapshot {}", path.display()))
}

fn run(config: Config, warm: Option<Detector>) -> anyhow::Result<()> {
    for w in config.alertmanager.warnings() {
        warn!("{w}");
    }
    run_pipeline(config, warm, None).map(|_| ())
}

/// What an embedding command (the demo) sees of a running pipeline.
#[derive(Clone)]
pub struct Handles {
    pub series: SeriesMetrics,
    pub board: StatusBoard,
    pub ingest: IngestMetrics,
    pub addr: std::net::SocketAddr,
}

/// Called every `every` on the runtime while the pipeline runs; returns
/// true to stop it.
pub struct Hook {
    pub every: Duration,
    pub tick: Box<dyn FnMut(&Handles) -> bool + Send>,
}

/// `run`, with an optional hook; returns the handles after a clean stop.
pub fn run_pipeline(
    config: Config,
    warm: Option<Detector>,
    hook: Option<Hook>,
) -> anyhow::Result<Handles> {
    let registry = Registry::new();
    // process_cpu_seconds_total, process_resident_memory_bytes, open file
    // descriptors…: what every exporter offers, under the standard names.
    registry
        .register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .context("cannot register process metrics")?;
    let metrics = IngestMetrics::register(&registry).context("cannot register metrics")?;
    let counted = IntCounter::new(
        "outage_radar_reports_counted_total",
        "Reports handed to the detectors (before de-duplication).",
    )
    .context("cannot create metric")?;
    registry
        .register(Box::new(counted.clone()))
        .context("cannot register metrics")?;
    outage_export::metrics::register_build_info(&registry, env!("CARGO_PKG_VERSION"))
        .context("cannot register metrics")?;
    let series =
        SeriesMetrics::register(&registry, &config.metrics).context("cannot register metrics")?;
    let pipeline = PipelineMetrics::register(&registry).context("cannot register metrics")?;
    let alert_metrics = AlertMetrics::register(&registry).context("cannot register metrics")?;
    let output_metrics =
        OutputTopicMetrics::register(&registry).context("cannot register metrics")?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let listener = std::net::TcpListener::bind(config.http.listen)
        .with_context(|| format!("http.listen: cannot listen on {}", config.http.listen))?;
    listener
        .set_nonblocking(true)
        .context("cannot configure the http listener")?;
    let readiness = Readiness::default();
    let alerts = {
        let _guard = runtime.enter();
        outage_export::alert::start(&config.alertmanager, alert_metrics)?
    };
    let output = |topic: &str, name: &'static str| -> anyhow::Result<Option<JsonTopicProducer>> {
        if topic.is_empty() {
            return Ok(None);
        }
        let client = config.kafka.producer_config()?;
        let producer = JsonTopicProducer::new(&client, topic, name, output_metrics.clone())
            .with_context(|| format!("cannot create the {name} producer"))?;
        Ok(Some(producer))
    };
    let incidents = output(&config.incidents.topic, "incidents")?;
    let scores = output(&config.scores.topic, "scores")?;

    let mut warm = warm;
    if let Some(d) = &mut warm {
        d.set_config(config.detect.clone());
        info!(
            series = d.series_count(),
            "warm start: partitions without state begin from the snapshot"
        );
    }
    let series_view = series.clone();
    let board = StatusBoard::default();
    let export = Export {
        board: board.clone(),
        series,
        pipeline,
        alert_config: config.alertmanager.clone(),
        alerts,
        incidents,
        scores,
        readiness: readiness.clone(),
    };
    let sink = DetectorSink::new(config.detect.clone(), warm, counted.clone(), export);
    let ingester = Ingester::new(
        &config.kafka,
        config.decode.options(),
        sink,
        metrics.clone(),
    )
    .context("cannot start the kafka ingester")?
    .with_state(&config.kafka, &config.state)
    .context("cannot set up partition state")?;

    let shutdown = Shutdown::new();
    let consumer = {
        let shutdown = shutdown.clone();
        thread::Builder::new()
            .name("consumer".into())
            .spawn(move || ingester.run(&shutdown))
            .context("cannot spawn the consumer thread")?
    };

    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let addr = listener.local_addr()?;
        let handles = Handles {
            series: series_view.clone(),
            board: board.clone(),
            ingest: metrics.clone(),
            addr,
        };
        let router =
            outage_export::http::router(registry.clone(), series_view, board, readiness.clone());
        let server = tokio::spawn(outage_export::http::serve(listener, router, async {
            let _ = http_stopped.await;
        }));
        info!(%addr, "serving /metrics, /-/healthy, /-/ready and the status page /");
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut ticks = 0u64;
        let (mut hook_tick, hook_every) = match hook {
            Some(h) => (Some(h.tick), h.every),
            None => (None, Duration::from_secs(3600)),
        };
        let mut hook_timer = tokio::time::interval(hook_every);
        loop {
            tokio::select! {
                biased;
                signal = shutdown_signal() => {
                    info!(%signal, "shutting down");
                    break;
                }
                _ = hook_timer.tick(), if hook_tick.is_some() => {
                    if consumer.is_finished() {
                        break;
                    }
                    if let Some(f) = hook_tick.as_mut() {
                        if f(&handles) {
                            break;
                        }
                    }
                }
                _ = tick.tick() => {
                    if consumer.is_finished() {
                        break;
                    }
                    ticks += 1;
                    if ticks % 10 != 0 {
                        continue;
                    }
                    info!(
                        consumed = metrics.messages_consumed.get(),
                        decoded = metrics.reports_decoded.get(),
                        dead_lettered = RejectReason::ALL
                            .iter()
                            .map(|r| metrics.dead_lettered.with_label_values(&[r.as_str()]).get())
                            .sum::<u64>(),
                        "progress"
                    );
                }
            }
        }
        shutdown.trigger();
        readiness.set(false);
        // Keep serving /metrics until the consumer has committed, so the
        // last scrape sees the final counts.
        let joined = tokio::task::spawn_blocking(move || consumer.join())
            .await
            .map_err(|e| anyhow::anyhow!("cannot join the consumer thread: {e}"))?;
        let _ = stop_http.send(());
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "http server failed"),
            Err(e) => warn!(error = %e, "http server task failed"),
        }
        let (summary, sink) = joined
            .map_err(|_| anyhow::anyhow!("the consumer thread panicked"))?
            .context("the kafka ingester failed")?;
        sink.flush();
        info!(
            consumed = summary.consumed,
            decoded = summary.decoded,
            counted = counted.get(),
            dead_lettered = summary.dead_lettered_total(),
            "stopped cleanly"
        );
        anyhow::Ok(handles)
    })
}

/// Resolves on SIGINT or SIGTERM with the signal's name.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term =
            signal(SignalKind::terminate()).expect("installing a SIGTERM handler cannot fail");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

/// `healthcheck`: 200 from the readiness URL, or an error that says why.
fn healthcheck(url: &str, timeout: std::time::Duration) -> anyhow::Result<()> {
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
