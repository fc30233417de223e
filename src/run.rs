//! `run`: the composition root that wires config, metrics, the ingester,
//! the detectors' export and signals, and stops cleanly.
//!
//! Owns the only tokio runtime. The consumer runs on a dedicated thread (it
//! blocks in librdkafka's poll); signals and periodic progress logs run on
//! the runtime. Nothing here touches a report.

use std::path::Path;
use std::thread;
use std::time::Duration;

use anyhow::Context;
use outage_detect::{Detector, RejectReason};
use outage_export::{
    AlertMetrics, Exporter, HttpMetrics, JsonTopicProducer, Output, OutputTopicMetrics,
    PipelineMetrics, Readiness, SeriesMetrics, StatusBoard,
};
use outage_ingest::{IngestMetrics, Ingester, Shutdown};
use prometheus::{IntCounter, Registry};
use tracing::{info, warn};

use crate::config::Config;
use crate::pipeline::DetectorSink;

/// Reads a detector snapshot written by `replay --snapshot-out`.
pub fn load_snapshot(path: &Path) -> anyhow::Result<Detector> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read snapshot {}", path.display()))?;
    Detector::from_snapshot(&bytes)
        .with_context(|| format!("cannot restore snapshot {}", path.display()))
}

pub fn run(config: Config, warm: Option<Detector>) -> anyhow::Result<()> {
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
    let http_metrics = HttpMetrics::register(&registry).context("cannot register metrics")?;

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
    let output = |topic: &str, name: Output| -> anyhow::Result<Option<JsonTopicProducer>> {
        if topic.is_empty() {
            return Ok(None);
        }
        let client = config.kafka.producer_config()?;
        let producer = JsonTopicProducer::new(&client, topic, name, output_metrics.clone())
            .with_context(|| format!("cannot create the {} producer", name.as_str()))?;
        Ok(Some(producer))
    };
    let incidents = output(&config.incidents.topic, Output::Incidents)?;
    let scores = output(&config.scores.topic, Output::Scores)?;

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
    let export = Exporter::new(
        series,
        pipeline,
        board.clone(),
        config.alertmanager.clone(),
        config.detect.width_ms(),
    )
    .with_alerts(alerts)
    .with_incidents(incidents)
    .with_scores(scores);
    let sink = DetectorSink::new(
        config.detect.clone(),
        warm,
        counted.clone(),
        export,
        readiness.clone(),
    );
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
        let router = outage_export::http::router(
            registry.clone(),
            series_view,
            board,
            readiness.clone(),
            config.http.refresh,
        );
        let server = tokio::spawn(outage_export::http::serve(
            listener,
            router,
            config.http.clone(),
            http_metrics,
            async {
                let _ = http_stopped.await;
            },
        ));
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
                    if !ticks.is_multiple_of(10) {
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
