//! `[kafka]` configuration: brokers, topics, group, and pass-through
//! librdkafka properties (with secrets read from the environment).
//!
//! Building a client from this config is the only place secrets are read;
//! [`KafkaConfig::describe`] is what may be logged, with secrets redacted.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

/// Properties outage-radar sets itself; setting them by hand would break
/// delivery guarantees or contradict a named field.
const MANAGED_PROPERTIES: [(&str, &str); 5] = [
    ("bootstrap.servers", "use `brokers`"),
    ("group.id", "use `group_id`"),
    (
        "enable.auto.offset.store",
        "offsets are stored only after a message is handled",
    ),
    (
        "enable.auto.commit",
        "auto-commit of stored offsets is required",
    ),
    ("auto.offset.reset", "use `auto_offset_reset`"),
];

/// Where a group without committed offsets starts reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    /// From the oldest retained report: history warms the baselines.
    Earliest,
    /// Only reports produced after the group first starts.
    Latest,
}

/// Kafka connection, topics and client properties.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap brokers, comma-separated `host:port`. Default `127.0.0.1:9092`.
    pub brokers: String,
    /// Topic the reports arrive on. Default `reports`.
    pub topic: String,
    /// Consumer group; instances with the same group share the partitions.
    /// Default `outage-radar`.
    pub group_id: String,
    /// Topic for messages that cannot be decoded. Default `reports.dlq`.
    pub dlq_topic: String,
    /// Where a new group starts: `earliest` or `latest`. Default `earliest`.
    pub auto_offset_reset: OffsetReset,
    /// Longest wait of one consumer poll; bounds shutdown and idle reaction
    /// time. Default `100ms`.
    #[serde(with = "humantime_serde")]
    pub poll_timeout: Duration,
    /// How long a graceful stop waits for dead-letter deliveries before it
    /// commits what is safe and exits. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// librdkafka properties for every client (consumer and producers):
    /// `security.protocol`, `sasl.mechanism`, `ssl.ca.location`, ...
    /// Default: none.
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties for the consumer only, e.g. `fetch.wait.max.ms`.
    pub consumer_properties: BTreeMap<String, String>,
    /// librdkafka properties for the producers only, e.g. `linger.ms`.
    pub producer_properties: BTreeMap<String, String>,
    /// librdkafka properties whose values come from environment variables,
    /// as `property = "ENV_VAR"`, e.g. `"sasl.password" = "KAFKA_PASSWORD"`.
    /// Values are never logged.
    pub properties_from_env: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            topic: "reports".into(),
            group_id: "outage-radar".into(),
            dlq_topic: "reports.dlq".into(),
            auto_offset_reset: OffsetReset::Earliest,
            poll_timeout: Duration::from_millis(100),
            shutdown_timeout: Duration::from_secs(30),
            properties: BTreeMap::new(),
            consumer_properties: BTreeMap::new(),
            producer_properties: BTreeMap::new(),
            properties_from_env: BTreeMap::new(),
        }
    }
}

pub use outage_detect::ConfigError;

/// A `[kafka]` setting that cannot work.
fn err(field: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::new(format!("kafka.{}", field.into()), problem)
}

/// Kafka's rule for topic names.
fn valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether a property's value must never be written in the file or
/// printed: every property librdkafka marks sensitive whose value is a
/// secret (passwords, passphrases, client secrets, private keys, the
/// OAUTHBEARER configuration, which holds its secret), and anything named
/// like one. The test walks librdkafka's own property names.
fn is_secret(property: &str) -> bool {
    [
        "password",
        "passphrase",
        "secret",
        "token",
        "jaas",
        "key.pem",
        "keystore",
        "ssl.key",
        "sasl.oauthbearer.config",
    ]
    .iter()
    .any(|s| property.contains(s))
}

impl KafkaConfig {
    /// Cross-field checks that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.brokers.split(',').any(|b| b.trim().is_empty()) {
            return Err(err(
                "brokers",
                "must list at least one host:port, comma-separated",
            ));
        }
        for (field, topic) in [("topic", &self.topic), ("dlq_topic", &self.dlq_topic)] {
            if !valid_topic(topic) {
                return Err(err(
                    field,
                    format!("{topic:?} is not a valid Kafka topic name"),
                ));
            }
        }
        if self.topic == self.dlq_topic {
            return Err(err(
                "dlq_topic",
                "must differ from `topic`, or bad messages would loop",
            ));
        }
        if self.group_id.trim().is_empty() {
            return Err(err("group_id", "must not be empty"));
        }
        if self.poll_timeout.is_zero() || self.poll_timeout > Duration::from_secs(10) {
            return Err(err("poll_timeout", "must be between 1ms and 10s"));
        }
        for (table, props) in [
            ("properties", &self.properties),
            ("consumer_properties", &self.consumer_properties),
            ("producer_properties", &self.producer_properties),
            ("properties_from_env", &self.properties_from_env),
        ] {
            for key in props.keys() {
                if let Some((_, why)) = MANAGED_PROPERTIES.iter().find(|(k, _)| k == key) {
                    return Err(err(
                        format!("{table}.\"{key}\""),
                        format!("cannot be set here: {why}"),
                    ));
                }
            }
        }
        for (table, props) in [
            ("properties", &self.properties),
            ("consumer_properties", &self.consumer_properties),
            ("producer_properties", &self.producer_properties),
        ] {
            for key in props.keys() {
                if is_secret(key) {
                    return Err(err(
                        format!("{table}.\"{key}\""),
                        "looks like a secret: put it in an environment variable and name it under `properties_from_env`",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Properties shared by every client (brokers, security), with secrets
    /// resolved from the environment.
    pub fn common_config(&self) -> Result<ClientConfig, ConfigError> {
        self.common()
    }

    fn common(&self) -> Result<ClientConfig, ConfigError> {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.properties {
            cfg.set(k, v);
        }
        for (k, var) in &self.properties_from_env {
            let value = std::env::var(var).map_err(|_| {
                err(
                    format!("properties_from_env.\"{k}\""),
                    format!("environment variable {var} is not set"),
                )
            })?;
            cfg.set(k, value);
        }
        Ok(cfg)
    }

    /// The consumer's librdkafka configuration.
    pub fn consumer_config(&self) -> Result<ClientConfig, ConfigError> {
        let mut cfg = self.common()?;
        cfg.set("group.id", &self.group_id)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.offset.reset",
                match self.auto_offset_reset {
                    OffsetReset::Earliest => "earliest",
                    OffsetReset::Latest => "latest",
                },
            )
            .set("enable.partition.eof", "false");
        // Consumer lag for /metrics, unless the user chose an interval.
        const STATS: &str = "statistics.interval.ms";
        if !self.properties.contains_key(STATS) && !self.consumer_properties.contains_key(STATS) {
            cfg.set(STATS, "5000");
        }
        for (k, v) in &self.consumer_properties {
            cfg.set(k, v);
        }
        Ok(cfg)
    }

    /// A producer's librdkafka configuration (dead-letter topic, incidents).
    pub fn producer_config(&self) -> Result<ClientConfig, ConfigError> {
        let mut cfg = self.common()?;
        cfg.set("linger.ms", "5").set("acks", "all");
        for (k, v) in &self.producer_properties {
            cfg.set(k, v);
        }
        Ok(cfg)
    }

    /// One line for the log: brokers, topics, group and property names, with
    /// every secret's value redacted.
    pub fn describe(&self) -> String {
        let mut props: Vec<String> = Vec::new();
        for (k, v) in self
            .properties
            .iter()
            .chain(&self.consumer_properties)
            .chain(&self.producer_properties)
        {
            props.push(if is_secret(k) {
                format!("{k}=<redacted>")
            } else {
                format!("{k}={v}")
            });
        }
        for (k, var) in &self.properties_from_env {
            props.push(format!("{k}=<from ${var}>"));
        }
        format!(
            "brokers={} topic={} group={} dlq={} reset={:?} properties=[{}]",
            self.brokers,
            self.topic,
            self.group_id,
            self.dlq_topic,
            self.auto_offset_reset,
            props.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every property of this librdkafka build, from `rd_kafka_conf_dump`
    /// of a fresh configuration.
    fn librdkafka_property_names() -> Vec<String> {
        use rdkafka::bindings as rd;
        let mut names = Vec::new();
        // SAFETY: a fresh configuration is dumped and both are freed; the
        // dump is an array of `cnt` NUL-terminated strings, name then value.
        unsafe {
            let conf = rd::rd_kafka_conf_new();
            let mut cnt = 0usize;
            let arr = rd::rd_kafka_conf_dump(conf, &mut cnt);
            for i in (0..cnt).step_by(2) {
                let name = std::ffi::CStr::from_ptr(*arr.add(i));
                names.push(name.to_string_lossy().into_owned());
            }
            rd::rd_kafka_conf_dump_free(arr, cnt);
            rd::rd_kafka_conf_destroy(conf);
        }
        names
    }

    /// Whether this librdkafka build knows `property` (setting it is not
    /// refused as unknown; the dump above leaves out unset ones).
    fn librdkafka_knows(property: &str) -> bool {
        use rdkafka::bindings as rd;
        let name = std::ffi::CString::new(property).unwrap();
        let value = std::ffi::CString::new("x").unwrap();
        let mut err = [0 as std::ffi::c_char; 512];
        // SAFETY: a fresh configuration, NUL-terminated strings and an
        // error buffer of the size passed; the configuration is freed.
        unsafe {
            let conf = rd::rd_kafka_conf_new();
            let r = rd::rd_kafka_conf_set(
                conf,
                name.as_ptr(),
                value.as_ptr(),
                err.as_mut_ptr(),
                err.len(),
            );
            rd::rd_kafka_conf_destroy(conf);
            r != rd::rd_kafka_conf_res_t::RD_KAFKA_CONF_UNKNOWN
        }
    }

    #[test]
    fn every_secret_librdkafka_property_is_kept_out_of_the_file() {
        let names = librdkafka_property_names();
        assert!(names.len() > 100, "{names:?}");
        // librdkafka marks these sensitive (`_RK_SENSITIVE` in
        // rdkafka_conf.c) and their values are secrets themselves (its
        // other sensitive ones are paths, the user name and a public CA).
        for secret in [
            "ssl.key.password",
            "ssl.key.pem",
            "ssl.keystore.password",
            "sasl.password",
            "sasl.oauthbearer.config",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.assertion.private.key.passphrase",
            "sasl.oauthbearer.assertion.private.key.pem",
        ] {
            assert!(
                librdkafka_knows(secret),
                "{secret} is no longer a librdkafka property: update is_secret"
            );
            assert!(is_secret(secret), "{secret} is not treated as a secret");
        }
        assert!(!librdkafka_knows("no.such.property"));
        // And any property this build has that is named like a secret.
        for name in &names {
            if ["password", "passphrase", "secret", ".pem"]
                .iter()
                .any(|w| name.contains(w))
                && !["ssl.ca.pem", "ssl.certificate.pem", "https.ca.pem"].contains(&name.as_str())
            {
                assert!(is_secret(name), "{name} is named like a secret");
            }
        }
        // Refused in the file, redacted in check-config's description.
        let mut c = KafkaConfig::default();
        c.properties
            .insert("sasl.oauthbearer.config".into(), "clientSecret=x".into());
        assert!(c.validate().is_err());
        assert!(c.describe().contains("sasl.oauthbearer.config=<redacted>"));
    }

    #[test]
    fn defaults_validate() {
        KafkaConfig::default().validate().unwrap();
    }

    #[test]
    fn managed_and_secret_properties_are_refused() {
        let mut c = KafkaConfig::default();
        c.consumer_properties
            .insert("enable.auto.offset.store".into(), "true".into());
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("enable.auto.offset.store"));
        let mut c = KafkaConfig::default();
        c.properties
            .insert("sasl.password".into(), "hunter2".into());
        assert!(c
            .validate()
            .unwrap_err()
            .problem
            .contains("environment variable"));
    }

    #[test]
    fn topics_are_checked() {
        let c = KafkaConfig {
            dlq_topic: "reports".into(),
            ..KafkaConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "kafka.dlq_topic");
        let c = KafkaConfig {
            topic: "bad topic".into(),
            ..KafkaConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "kafka.topic");
    }

    #[test]
    fn secrets_come_from_the_environment_and_are_never_described() {
        let mut c = KafkaConfig::default();
        c.properties
            .insert("security.protocol".into(), "SASL_SSL".into());
        c.properties_from_env.insert(
            "sasl.password".into(),
            "OUTAGE_RADAR_TEST_SECRET_XYZ".into(),
        );
        let e = c.consumer_config().unwrap_err();
        assert!(e.problem.contains("OUTAGE_RADAR_TEST_SECRET_XYZ"), "{e}");
        std::env::set_var("OUTAGE_RADAR_TEST_SECRET_XYZ", "hunter2");
        let cfg = c.consumer_config().unwrap();
        assert_eq!(cfg.get("sasl.password"), Some("hunter2"));
        let described = c.describe();
        assert!(!described.contains("hunter2"), "{described}");
        assert!(described.contains("security.protocol=SASL_SSL"));
    }
}
