//! outage-ingest-probe: consume a reports topic with the real ingester and
//! print one line per handled report: `partition offset ts_ms service region`.
//!
//! A diagnostic for operators ("what does outage-radar make of this topic?")
//! and the crash tests' subject: each line is flushed before the ingester may
//! store its offset, so after a SIGKILL the output shows exactly what was
//! handed on. Stop it with SIGINT/SIGTERM (graceful) or SIGKILL (crash).

use std::io::Write;
use std::process::ExitCode;

use outage_detect::{DecodeOptions, Report};
use outage_ingest::{IngestMetrics, Ingester, KafkaConfig, Position, ReportSink, Shutdown};

struct PrintSink(std::io::Stdout);

impl ReportSink for PrintSink {
    fn accept(&mut self, at: Position, report: &Report<'_>) {
        let mut out = self.0.lock();
        // A closed stdout means nobody is listening any more: stop.
        if writeln!(
            out,
            "{} {} {} {} {}",
            at.partition, at.offset, report.ts_ms, report.service, report.region
        )
        .and_then(|()| out.flush())
        .is_err()
        {
            std::process::exit(0);
        }
    }
}

const USAGE: &str = "usage: outage-ingest-probe --brokers HOST:PORT --topic T --dlq-topic D --group G [--property K=V]...";

fn main() -> ExitCode {
    let mut config = KafkaConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        };
        match flag.as_str() {
            "--brokers" => config.brokers = value,
            "--topic" => config.topic = value,
            "--dlq-topic" => config.dlq_topic = value,
            "--group" => config.group_id = value,
            "--property" => match value.split_once('=') {
                Some((k, v)) => {
                    config.consumer_properties.insert(k.into(), v.into());
                }
                None => {
                    eprintln!("--property wants KEY=VALUE\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("unknown argument {flag}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let shutdown = Shutdown::new();
    #[cfg(unix)]
    {
        let s = shutdown.clone();
        if let Err(e) = ctrlc_like(move || s.trigger()) {
            eprintln!("cannot install signal handler: {e}");
        }
    }
    let ingester = match Ingester::new(
        &config,
        DecodeOptions::default(),
        PrintSink(std::io::stdout()),
        IngestMetrics::unregistered(),
    ) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match ingester.run(&shutdown) {
        Ok((summary, _)) => {
            eprintln!(
                "consumed {} decoded {} dead-lettered {}",
                summary.consumed,
                summary.decoded,
                summary.dead_lettered_total()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Triggers `f` on SIGINT or SIGTERM, waiting on a small thread.
#[cfg(unix)]
fn ctrlc_like(f: impl Fn() + Send + 'static) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        rt.block_on(async {
            let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
            let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        });
        f();
    });
    Ok(())
}
