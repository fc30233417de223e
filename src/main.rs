//! outage-radar binary: parse the command line, load config, hand over to
//! `app`. No logic lives here.

mod app;
mod cli;
mod config;
mod demo;
mod evaluate;
mod pipeline;
mod plot;
mod replay;
mod simulate;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match app::main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
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
