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
            ExitCode::FAILURE
        }
    }
}
