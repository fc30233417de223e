//! Command-line interface (clap derive). Each subcommand's doc comment is
//! its `--help` text.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// outage-radar finds service outages in user problem reports.
///
/// It consumes reports (service, region, time, problem) from a Kafka topic,
/// counts them in event-time windows per service and region, and pages
/// operators when a region's report rate leaves its normal seasonal range.
/// Messages that cannot be read go to a dead-letter topic with a reason.
///
/// Configuration comes from a TOML file (see deploy/config.example.toml) and
/// environment overrides named OUTAGE_RADAR_<SECTION>__<FIELD>, for example
/// OUTAGE_RADAR_KAFKA__BROKERS=kafka-1:9092.
#[derive(Debug, Parser)]
#[command(name = "outage-radar", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume reports from Kafka until SIGINT/SIGTERM.
    ///
    /// Joins the consumer group, decodes every report, dead-letters what
    /// cannot be read and commits offsets only for messages fully handled
    /// (at-least-once). On SIGINT or SIGTERM it finishes the message in hand,
    /// waits for outstanding dead letters, commits and leaves the group.
    Run {
        /// TOML configuration file; without it, defaults and environment
        /// overrides apply.
        #[arg(short, long, env = "OUTAGE_RADAR_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Run the detector over a file of reports (no Kafka), for backtests.
    ///
    /// Reads one JSON report per line in arrival order (plain, .gz, or - for
    /// stdin) and writes DIR/scores.csv (one row per closed window of each
    /// series), DIR/incidents.jsonl (one object per incident) and
    /// DIR/summary.json. The detector and its settings are exactly those of
    /// `run` (the [detect] section of --config).
    Replay {
        /// Reports, one JSON object per line: FILE.jsonl, FILE.jsonl.gz or -.
        #[arg(short, long, value_name = "FILE")]
        input: String,
        /// Directory for the results (created if missing).
        #[arg(short, long, value_name = "DIR")]
        out: PathBuf,
        /// TOML configuration file ([detect] and [decode] apply).
        #[arg(short, long, env = "OUTAGE_RADAR_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Check a configuration file and print the effective settings.
    ///
    /// Exits 0 when the file (plus environment overrides) is valid, 1 with
    /// the file, field and problem otherwise. Secrets are never printed.
    CheckConfig {
        /// TOML configuration file to check.
        #[arg(short, long, env = "OUTAGE_RADAR_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
}
