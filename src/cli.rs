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

/// Where `simulate` sends reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SimulateTarget {
    File,
    Kafka,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume reports from Kafka until SIGINT/SIGTERM.
    ///
    /// Joins the consumer group, decodes every report, dead-letters what
    /// cannot be read, detects outages and exports them (/metrics,
    /// Alertmanager, incidents topic). Each partition's state is snapshotted
    /// to the state topic with its offset and restored on assignment;
    /// offsets are committed only as far as a snapshot covers. On SIGINT or
    /// SIGTERM it finishes the message in hand, waits for outstanding dead
    /// letters, writes final snapshots, commits and leaves the group.
    Run {
        /// TOML configuration file; without it, defaults and environment
        /// overrides apply.
        #[arg(short, long, env = "OUTAGE_RADAR_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// Warm start: detector state written by `replay --snapshot-out`
        /// (baselines learned from history), used for every partition that
        /// has no state yet.
        #[arg(long, value_name = "FILE")]
        snapshot: Option<PathBuf>,
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
        /// Also write the final detector state here, for `run --snapshot`.
        #[arg(long, value_name = "FILE")]
        snapshot_out: Option<PathBuf>,
    },
    /// Generate a scenario's reports with ground truth (deterministic).
    ///
    /// Writes reports in arrival order (with jitter, late arrivals and
    /// malformed lines as the scenario says) to --out, and the truth next to
    /// it as NAME.truth.json. Scenarios: built-in names (alexa-2018,
    /// quiet-month; see deploy/scenarios/) or a path to a TOML file.
    Simulate {
        /// Built-in scenario name or scenario TOML file.
        #[arg(short, long, default_value = "alexa-2018")]
        scenario: String,
        /// Output file: FILE.jsonl or FILE.jsonl.gz (with --to file).
        #[arg(short, long, value_name = "FILE", required_if_eq("to", "file"))]
        out: Option<PathBuf>,
        /// Where to write the truth (default: next to --out; required with
        /// --to kafka).
        #[arg(long, value_name = "FILE", required_if_eq("to", "kafka"))]
        truth: Option<PathBuf>,
        /// Write to a file, or produce to a Kafka topic (key = service).
        #[arg(long, value_enum, default_value = "file")]
        to: SimulateTarget,
        /// Bootstrap brokers (with --to kafka).
        #[arg(long, default_value = "127.0.0.1:9092")]
        brokers: String,
        /// Topic to produce to (with --to kafka).
        #[arg(long, default_value = "reports")]
        topic: String,
        /// Reports per second to produce (with --to kafka); 0 = as fast as
        /// the broker takes them.
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
    },
    /// Score incidents against ground truth; exit 4 when a bar fails.
    ///
    /// Prints recall over outage regions, precision, false incidents per 30
    /// days, and detection delays (median, p90, max) in windows, per region
    /// and for global incidents. Works on any labelled history in the same
    /// truth format.
    Evaluate {
        /// Truth file written by `simulate` (or by you).
        #[arg(long, value_name = "FILE")]
        truth: PathBuf,
        /// incidents.jsonl written by `replay`.
        #[arg(long, value_name = "FILE")]
        incidents: PathBuf,
        /// Window width the delays are counted in, minutes.
        #[arg(long, default_value_t = 1.0)]
        window_minutes: f64,
        /// Fail when fewer outage regions than this fraction are detected.
        #[arg(long)]
        min_recall: Option<f64>,
        /// Fail when the median delay exceeds this many windows.
        #[arg(long)]
        max_median_delay: Option<f64>,
        /// Fail when any delay exceeds this many windows.
        #[arg(long)]
        max_delay: Option<f64>,
        /// Fail when false region incidents per 30 days exceed this.
        #[arg(long)]
        max_false_per_30d: Option<f64>,
        /// Fail when a global incident comes later than this many minutes
        /// after its first region's start, or is missed.
        #[arg(long)]
        max_global_delay: Option<f64>,
    },
    /// Check a configuration file and print the effective settings.
    ///
    /// Exits 0 when the file (plus environment overrides) is valid, 3 with
    /// the file, field and problem otherwise. Secrets are never printed.
    CheckConfig {
        /// TOML configuration file to check.
        #[arg(short, long, env = "OUTAGE_RADAR_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// See outage-radar work, with nothing installed: the Alexa outage of
    /// 26 September 2018 replayed live through the whole pipeline.
    ///
    /// Starts an embedded Kafka (librdkafka's in-process mock cluster),
    /// warms the detector with the scenario's days of history, then streams
    /// the hours around its outage through Kafka on an accelerated clock;
    /// ingest, detection and export run exactly as in `run`. Shows a live
    /// view (redrawn in place on a terminal, plain lines otherwise), serves
    /// the status page and /metrics on --listen, optionally pushes alerts to
    /// Alertmanager, and ends with a summary: per region the injected start
    /// and the detection delay, the global incident, any false incident, and
    /// proof that every produced report was consumed. Ctrl-C stops.
    Demo {
        /// Built-in scenario name or scenario TOML file.
        #[arg(long, default_value = "alexa-2018", value_name = "NAME|FILE")]
        scenario: String,
        /// Event time per wall-clock time (90 = 90 minutes per minute).
        #[arg(long, default_value_t = 90.0)]
        speed: f64,
        /// Address of the status page, /metrics and health endpoints.
        #[arg(long, default_value = "127.0.0.1:9898", value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// Alertmanager base URL to push alerts to (repeatable).
        #[arg(long, value_name = "URL")]
        alertmanager: Vec<String>,
        /// Stop after this long (e.g. "30s"), even if the stream is not done.
        #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
        duration: Option<std::time::Duration>,
    },
    /// Partition state kept in the state topic.
    #[command(subcommand)]
    State(StateCommand),
    /// Check a running instance's readiness, for container health checks
    /// (the image has no curl).
    ///
    /// GETs /-/ready and exits 0 when it answers 200 (every assigned
    /// partition restored and consuming), 1 otherwise, saying why.
    Healthcheck {
        /// Readiness URL of the instance.
        #[arg(
            long,
            default_value = "http://127.0.0.1:9898/-/ready",
            value_name = "URL"
        )]
        url: String,
        /// Longest wait for the answer.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration, value_name = "DURATION")]
        timeout: std::time::Duration,
    },
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Print what the state topic holds per (group, topic, partition).
    ///
    /// One line per snapshot: its key, whether it is usable, the offset a
    /// restore continues from, the series in it, its compressed size and its
    /// age. Reads the topic named by [state] topic with the [kafka]
    /// connection settings; changes nothing.
    Inspect {
        /// TOML configuration file (for [kafka] and [state]).
        #[arg(short, long, env = "OUTAGE_RADAR_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
}
