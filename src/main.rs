//! outage-radar binary: parse the command line, set up logging, hand each
//! subcommand to its module, and turn errors into exit codes.

mod batches;
mod cli;
mod config;
mod demo;
mod evaluate;
mod inspect;
mod pipeline;
mod plot;
mod replay;
mod run;
mod simulate;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::{Config, LogFormat};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// Runs one subcommand.
fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { config, snapshot } => {
            let config = Config::load(config.as_deref())?;
            let warm = snapshot.as_deref().map(run::load_snapshot).transpose()?;
            init_logging(&config);
            run::run(config, warm)
        }
        Command::CheckConfig { config } => inspect::check_config(config.as_deref()),
        Command::Healthcheck { url, timeout } => inspect::healthcheck(&url, timeout),
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
            inspect::state_inspect(&config)
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

/// Exit codes by kind of failure (the README's table): 2 is clap's for a
/// bad command line.
mod exit {
    pub const OTHER: u8 = 1;
    pub const CONFIG: u8 = 3;
    pub const BARS: u8 = 4;
    pub const IO: u8 = 5;
    pub const KAFKA: u8 = 6;
}

fn exit_code(e: &anyhow::Error) -> u8 {
    let kind = |cause: &(dyn std::error::Error + 'static)| {
        if cause.is::<config::ConfigInvalid>() {
            Some(exit::CONFIG)
        } else if cause.is::<evaluate::BarsFailed>() {
            Some(exit::BARS)
        } else if let Some(e) = cause.downcast_ref::<outage_ingest::IngestError>() {
            Some(match e {
                outage_ingest::IngestError::Config(_) => exit::CONFIG,
                _ => exit::KAFKA,
            })
        } else if cause.is::<rdkafka::error::KafkaError>() {
            Some(exit::KAFKA)
        } else {
            None
        }
    };
    e.chain()
        .find_map(kind)
        .or_else(|| {
            e.chain()
                .any(|c| c.is::<std::io::Error>())
                .then_some(exit::IO)
        })
        .unwrap_or(exit::OTHER)
}
