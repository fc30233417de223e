//! The TOML configuration file, with `OUTAGE_RADAR_<SECTION>__<FIELD>`
//! environment overrides.
//!
//! Every section owns its struct (`deny_unknown_fields`, documented fields
//! with units and defaults); `deploy/config.example.toml` shows them all and a
//! test parses it. Cross-field rules live in [`Config::validate`].

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use outage_detect::{ConfigError, DecodeOptions, DetectorConfig};
use outage_export::{AlertmanagerConfig, HttpConfig, IncidentsConfig, MetricsConfig, ScoresConfig};
use outage_ingest::{KafkaConfig, StateConfig};
use serde::{Deserialize, Serialize};

/// Prefix of environment overrides: `OUTAGE_RADAR_KAFKA__BROKERS=...`.
pub const ENV_PREFIX: &str = "OUTAGE_RADAR_";

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Kafka brokers, topics, group and client properties.
    pub kafka: KafkaConfig,
    /// Limits applied to each incoming message.
    pub decode: DecodeConfig,
    /// Windows, baselines, scoring thresholds and incidents.
    pub detect: DetectorConfig,
    /// Logging.
    pub log: LogConfig,
    /// Where /metrics and the health endpoints listen.
    pub http: HttpConfig,
    /// Bounds on the per-series metrics.
    pub metrics: MetricsConfig,
    /// Alert push to Alertmanager.
    pub alertmanager: AlertmanagerConfig,
    /// The incidents topic.
    pub incidents: IncidentsConfig,
    /// Per-window scores topic (off by default).
    pub scores: ScoresConfig,
    /// Per-partition state snapshots in a compacted topic.
    pub state: StateConfig,
}

/// `[decode]`: what a report may look like before it is dead-lettered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeConfig {
    /// Largest accepted message value, bytes. Default 16384.
    pub max_message_bytes: usize,
    /// How far a report's `ts` may be ahead of this host's clock before it is
    /// rejected as `future_timestamp`. Default `5m`.
    #[serde(with = "humantime_serde")]
    pub max_clock_skew: Duration,
    /// Longest `reporter` id, bytes. Default 256.
    pub max_reporter_bytes: usize,
    /// Longest `source`, bytes. Default 128.
    pub max_source_bytes: usize,
    /// When not empty, the only services accepted: reports of any other
    /// are dead-lettered as `unknown_service` (a flood of made-up names
    /// then costs nothing but dead letters). Default empty: every slug.
    pub services: Vec<String>,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        let d = DecodeOptions::default();
        DecodeConfig {
            max_message_bytes: d.max_message_bytes,
            max_clock_skew: Duration::from_millis(d.max_clock_skew_ms as u64),
            max_reporter_bytes: d.max_reporter_bytes,
            max_source_bytes: d.max_source_bytes,
            services: Vec::new(),
        }
    }
}

impl DecodeConfig {
    /// Rules serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(256..=16 * 1024 * 1024).contains(&self.max_message_bytes) {
            return Err(ConfigError::new(
                "decode.max_message_bytes",
                format!("{} is outside 256..=16777216", self.max_message_bytes),
            ));
        }
        if self.max_clock_skew > Duration::from_secs(24 * 3600) {
            return Err(ConfigError::new(
                "decode.max_clock_skew",
                format!(
                    "{} is more than a day",
                    humantime::format_duration(self.max_clock_skew)
                ),
            ));
        }
        if let Some(bad) = self
            .services
            .iter()
            .find(|s| !outage_detect::decode::is_service_slug(s))
        {
            return Err(ConfigError::new(
                "decode.services",
                format!("{bad:?} is not a service slug [a-z0-9][a-z0-9._-]{{0,63}}"),
            ));
        }
        Ok(())
    }

    pub fn options(&self) -> DecodeOptions {
        DecodeOptions {
            max_message_bytes: self.max_message_bytes,
            max_clock_skew_ms: self.max_clock_skew.as_millis().min(i64::MAX as u128) as i64,
            max_reporter_bytes: self.max_reporter_bytes,
            max_source_bytes: self.max_source_bytes,
            services: (!self.services.is_empty())
                .then(|| std::sync::Arc::new(self.services.iter().cloned().collect())),
        }
    }
}

/// `[log]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Filter in `RUST_LOG` syntax (`info`, `outage_ingest=debug,info`).
    /// `RUST_LOG`, when set, wins. Default `info`.
    pub level: String,
    /// `text` for people, `json` for log pipelines. Default `text`.
    pub format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

impl Config {
    /// Loads defaults, then `path` (if given), then environment overrides,
    /// and validates the result. Errors name the file, the field and the
    /// problem.
    /// Loads and validates the configuration: defaults, then the file, then
    /// `OUTAGE_RADAR_SECTION__FIELD` variables. Any problem is a
    /// [`ConfigInvalid`] naming the file, the field and the problem.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        Config::load_checked(path).map_err(|e| anyhow::Error::new(ConfigInvalid(format!("{e:#}"))))
    }

    fn load_checked(path: Option<&Path>) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = path {
            anyhow::ensure!(
                path.is_file(),
                "config file {} does not exist",
                path.display()
            );
            figment = figment.merge(Toml::file_exact(path));
        }
        // Only `SECTION__FIELD` keys: other OUTAGE_RADAR_* variables (such as
        // OUTAGE_RADAR_CONFIG for --config) are not config fields.
        figment = figment.merge(
            Env::prefixed(ENV_PREFIX)
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
        let context = || match path {
            Some(p) => format!("invalid configuration in {}", p.display()),
            None => "invalid configuration".to_string(),
        };
        let config: Config = figment
            .extract()
            .map_err(|e| {
                let errors: Vec<String> = e
                    .into_iter()
                    .map(|e| e.to_string().replace("key \"default.", "key \""))
                    .collect();
                anyhow::anyhow!("{}", errors.join("; "))
            })
            .with_context(context)?;
        config.validate().with_context(context)?;
        Ok(config)
    }

    /// Cross-field rules.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.kafka.validate()?;
        self.detect.validate()?;
        self.decode.validate()?;
        self.metrics.validate()?;
        self.http.validate()?;
        self.state.validate()?;
        let st = &self.state.topic;
        anyhow::ensure!(
            st.is_empty()
                || (*st != self.kafka.topic
                    && *st != self.kafka.dlq_topic
                    && *st != self.incidents.topic),
            "state.topic: {st:?} must differ from the reports, dead-letter and incidents topics"
        );
        self.alertmanager.validate()?;
        let t = &self.incidents.topic;
        anyhow::ensure!(
            t.is_empty() || (*t != self.kafka.topic && *t != self.kafka.dlq_topic),
            "incidents.topic: {t:?} must differ from kafka.topic and kafka.dlq_topic"
        );
        tracing_subscriber::EnvFilter::try_new(&self.log.level).map_err(|e| {
            anyhow::anyhow!("log.level: {:?} is not a valid filter: {e}", self.log.level)
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn the_documented_example_parses_and_equals_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config.example.toml");
        let config = Config::load(Some(&path)).unwrap();
        // The example documents every option at its default value.
        assert_eq!(config, Config::default());
    }

    #[test]
    fn unknown_fields_name_the_file_and_field() {
        let f = write("[kafka]\nbrokerz = \"x:1\"\n");
        let e = format!("{:#}", Config::load(Some(f.path())).unwrap_err());
        assert!(e.contains(&f.path().display().to_string()), "{e}");
        assert!(e.contains("brokerz"), "{e}");
    }

    #[test]
    fn bad_durations_and_types_are_explained() {
        let f = write("[decode]\nmax_clock_skew = \"five minutes\"\n");
        let e = format!("{:#}", Config::load(Some(f.path())).unwrap_err());
        assert!(e.contains("max_clock_skew"), "{e}");
        let f = write("[decode]\nmax_message_bytes = 10\n");
        let e = format!("{:#}", Config::load(Some(f.path())).unwrap_err());
        assert!(e.contains("decode.max_message_bytes"), "{e}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's own error type
    fn environment_overrides_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "[kafka]\ngroup_id = \"from-file\"\ntopic = \"r\"\n",
            )?;
            jail.set_env("OUTAGE_RADAR_KAFKA__GROUP_ID", "from-env");
            jail.set_env("OUTAGE_RADAR_CONFIG", "ignored.toml");
            let c = Config::load(Some(Path::new("c.toml"))).map_err(|e| format!("{e:#}"))?;
            assert_eq!(c.kafka.group_id, "from-env");
            assert_eq!(c.kafka.topic, "r");
            Ok(())
        });
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let e = format!(
            "{:#}",
            Config::load(Some(Path::new("/nonexistent/x.toml"))).unwrap_err()
        );
        assert!(e.contains("/nonexistent/x.toml"), "{e}");
    }

    #[test]
    fn cross_field_rules_apply() {
        let f = write("[kafka]\ntopic = \"reports\"\ndlq_topic = \"reports\"\n");
        let e = format!("{:#}", Config::load(Some(f.path())).unwrap_err());
        assert!(e.contains("kafka.dlq_topic"), "{e}");
    }
}

/// A configuration that cannot be used (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigInvalid(String);
