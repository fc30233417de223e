//! `outage-radar simulate`: write a scenario's reports (arrival order) and
//! its ground truth.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use outage_sim::{generate, Scenario};

/// A built-in scenario name or a path to a scenario TOML file.
pub fn load_scenario(name: &str) -> anyhow::Result<Scenario> {
    if let Some(s) = Scenario::builtin(name) {
        return Ok(s);
    }
    let path = Path::new(name);
    anyhow::ensure!(
        path.is_file(),
        "no scenario {name:?}: built-in ones are {}, randomized families \
         family:KIND:SEED with KIND one of {}, or give a path to a .toml file",
        outage_sim::BUILTIN
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", "),
        outage_sim::family::KINDS.join(", ")
    );
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Scenario::from_toml(&text).with_context(|| format!("invalid scenario {}", path.display()))
}

/// The truth file next to `out`: `reports.jsonl.gz` → `reports.truth.json`.
pub fn truth_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("reports");
    let stem = name.trim_end_matches(".gz").trim_end_matches(".jsonl");
    out.with_file_name(format!("{stem}.truth.json"))
}

pub fn simulate(scenario: &str, out: &Path, truth: Option<&Path>) -> anyhow::Result<()> {
    let scenario = load_scenario(scenario)?;
    let file = File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut writer: Box<dyn Write> = if out.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::write::GzEncoder::new(
            BufWriter::new(file),
            flate2::Compression::fast(),
        ))
    } else {
        Box::new(BufWriter::with_capacity(1 << 20, file))
    };
    let stats = generate(&scenario, &mut writer).context("cannot write reports")?;
    writer.flush()?;
    drop(writer);
    let truth_file = truth
        .map(Path::to_path_buf)
        .unwrap_or_else(|| truth_path(out));
    std::fs::write(
        &truth_file,
        serde_json::to_string_pretty(&scenario.truth())? + "\n",
    )
    .with_context(|| format!("cannot write {}", truth_file.display()))?;
    eprintln!(
        "scenario {}: {} reports ({} late, {} malformed lines) → {}; truth → {}",
        scenario.name,
        stats.reports,
        stats.late,
        stats.malformed,
        out.display(),
        truth_file.display()
    );
    Ok(())
}

/// Produces each line written to it as one Kafka message (key = service),
/// at most `rate` per second.
struct KafkaLines {
    producer: rdkafka::producer::BaseProducer,
    topic: String,
    buf: Vec<u8>,
    rate: f64,
    sent: u64,
    started: std::time::Instant,
    /// The simulated collector's clock: records are stamped with what many
    /// reports agree on, as a collector stamps them on arrival, so the
    /// scenario's future-dated reports do not stamp their records ahead.
    clock: outage_detect::clock::StreamClock,
}

impl KafkaLines {
    fn send_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        use rdkafka::producer::BaseRecord;
        let decoded = outage_detect::decode(
            line,
            None,
            i64::MAX / 4,
            &outage_detect::DecodeOptions::default(),
        );
        let stamp = match &decoded {
            Ok(r) => {
                self.clock.push(r.ts_ms);
                if self.clock.now().is_none() {
                    self.clock.settle();
                }
                self.clock.now()
            }
            Err(_) => self.clock.now(),
        };
        let key = decoded.map(|r| r.service.into_owned()).unwrap_or_default();
        loop {
            let mut record = BaseRecord::<str, [u8]>::to(&self.topic)
                .key(key.as_str())
                .payload(line);
            if let Some(ts) = stamp {
                record = record.timestamp(ts);
            }
            match self.producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    _,
                )) => {
                    self.producer.poll(std::time::Duration::from_millis(10));
                }
                Err((e, _)) => return Err(std::io::Error::other(e)),
            }
        }
        self.sent += 1;
        if self.rate > 0.0 {
            let due = std::time::Duration::from_secs_f64(self.sent as f64 / self.rate);
            if let Some(wait) = due.checked_sub(self.started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        if self.sent.is_multiple_of(1024) {
            self.producer.poll(std::time::Duration::ZERO);
        }
        Ok(())
    }
}

impl Write for KafkaLines {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            if line.len() > 1 {
                self.send_line(&line[..line.len() - 1])?;
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        use rdkafka::producer::Producer;
        self.producer
            .flush(std::time::Duration::from_secs(60))
            .map_err(std::io::Error::other)
    }
}

pub fn simulate_to_kafka(
    scenario: &str,
    brokers: &str,
    topic: &str,
    rate: f64,
    truth: &Path,
) -> anyhow::Result<()> {
    let scenario = load_scenario(scenario)?;
    let producer: rdkafka::producer::BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
        .context("cannot create the kafka producer")?;
    let mut out = KafkaLines {
        producer,
        topic: topic.to_string(),
        buf: Vec::new(),
        rate,
        sent: 0,
        started: std::time::Instant::now(),
        clock: outage_detect::clock::StreamClock::new(5 * 60_000),
    };
    std::fs::write(
        truth,
        serde_json::to_string_pretty(&scenario.truth())? + "\n",
    )
    .with_context(|| format!("cannot write {}", truth.display()))?;
    let stats = generate(&scenario, &mut out).context("cannot produce reports")?;
    out.flush().context("not every report was acknowledged")?;
    eprintln!(
        "scenario {}: {} reports ({} malformed lines) → {brokers} topic {topic}; truth → {}",
        scenario.name,
        stats.reports,
        stats.malformed,
        truth.display()
    );
    Ok(())
}
