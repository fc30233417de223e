//! `run`'s ingest throughput while its HTTP side is under load, as a ratio
//! to the same run without HTTP load, in one run (issue #13 item 7: ≥ 0.9).
//!
//!   cargo bench --bench http_load      (needs tansu: scripts/test installs it)
//!
//! A topic of 6 M reports over 20,000 services in 5 regions (120,000
//! series, so each /metrics rendering is about 15 MB) is consumed by the
//! real binary from the beginning with a fresh group, twice per round:
//! quiet, and with 1,000 idle connections opened at the start plus a
//! gzip-accepting scrape of /metrics every second (what Prometheus does).
//! Time runs from the first commit to the commit of the last offset
//! (polled every 50 ms with `auto.commit.interval.ms` = 100, snapshots off
//! so that commits follow processing), so start-up and the group join are
//! excluded. Sides alternate, three rounds; the
//! median of the per-round ratios is reported.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use outage_testkit::{unique_name, Tansu};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

const REPORTS: usize = 6_000_000;
const SERVICES: usize = 20_000;
const REGIONS: [&str; 5] = ["GB", "US", "DE", "FR", "JP"];

fn produce(broker: &Tansu, topic: &str) {
    let producer: ThreadedProducer<DefaultProducerContext> = broker
        .client_config()
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Ten minutes of event time ending a minute ago, in order, each record
    // stamped with its report's time (as a replaying producer must).
    let start = now - 660_000;
    for i in 0..REPORTS {
        let service = format!("svc-{:05}", i % SERVICES);
        let ts = start + (i as i64 * 600_000 / REPORTS as i64);
        let value = format!(
            r#"{{"service":"{service}","region":"{}","ts":{ts},"problem":"login","reporter":"u{:07}"}}"#,
            REGIONS[(i / SERVICES) % REGIONS.len()],
            i * 7919 % 10_000_000
        );
        let mut record = Some(
            BaseRecord::to(topic)
                .key(&service)
                .payload(&value)
                .timestamp(ts),
        );
        while let Some(r) = record.take() {
            if let Err((_, r)) = producer.send(r) {
                std::thread::sleep(Duration::from_millis(2));
                record = Some(r);
            }
        }
    }
    producer.flush(Duration::from_secs(600)).unwrap();
}

struct Radar {
    child: Child,
    dir: tempfile::TempDir,
    group: String,
}

impl Radar {
    fn start(broker: &Tansu, topic: &str) -> Radar {
        let dir = tempfile::tempdir().unwrap();
        let group = unique_name("http-load");
        std::fs::write(
            dir.path().join("config.toml"),
            format!(
                "[http]\nlisten = \"127.0.0.1:0\"\n[state]\ntopic = \"\"\n\
                 [kafka]\nbrokers = \"{}\"\ntopic = \"{topic}\"\ndlq_topic = \"{topic}.dlq\"\ngroup_id = \"{group}\"\n\
                 [kafka.consumer_properties]\n\"fetch.wait.max.ms\" = \"5\"\n\"queued.min.messages\" = \"1000000\"\n\
                 \"auto.commit.interval.ms\" = \"100\"\n",
                broker.bootstrap()
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_outage-radar"))
            .args(["run", "--config", "config.toml"])
            .current_dir(dir.path())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("run.log")).unwrap())
            .spawn()
            .unwrap();
        Radar { child, dir, group }
    }

    fn addr(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = std::fs::read_to_string(self.dir.path().join("run.log")).unwrap();
            if let Some(a) = log
                .split("addr=")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
            {
                return a.to_string();
            }
            assert!(Instant::now() < deadline, "no listen address:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Radar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Time from the group's first commit to its commit of the whole topic.
fn consume_time(broker: &Tansu, topic: &str, radar: &mut Radar) -> Duration {
    let group = radar.group.clone();
    let watcher: BaseConsumer = broker
        .client_config()
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let committed = || -> i64 {
        match watcher.committed_offsets(tpl.clone(), Duration::from_secs(5)) {
            Ok(t) => match t.find_partition(topic, 0).map(|p| p.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => 0,
            },
            Err(_) => 0,
        }
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut first = None;
    loop {
        let o = committed();
        if o > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        if o >= REPORTS as i64 {
            return first.unwrap().elapsed();
        }
        assert!(Instant::now() < deadline, "not consumed in 10 minutes");
        if let Ok(Some(status)) = radar.child.try_wait() {
            let log = std::fs::read_to_string(radar.dir.path().join("run.log")).unwrap();
            panic!("outage-radar stopped ({status}):\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// 1,000 idle connections and, from the start, a gzip scrape every second
/// until `stop`.
fn http_load(addr: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(usize, usize)> {
    let idle = {
        let (addr, stop) = (addr.clone(), stop.clone());
        std::thread::spawn(move || {
            let idle: Vec<TcpStream> = (0..1_000)
                .filter_map(|_| TcpStream::connect(&addr).ok())
                .collect();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            drop(idle);
        })
    };
    std::thread::spawn(move || {
        let (mut scrapes, mut bytes) = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            if let Ok(mut s) = TcpStream::connect(&addr) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = write!(
                    s,
                    "GET /metrics HTTP/1.1\r\nHost: radar\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
                );
                let mut body = Vec::new();
                if s.read_to_end(&mut body).is_ok() && body.starts_with(b"HTTP/1.1 200") {
                    scrapes += 1;
                    bytes += body.len();
                }
            }
            std::thread::sleep(Duration::from_secs(1).saturating_sub(started.elapsed()));
        }
        idle.join().unwrap();
        (scrapes, bytes)
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let broker = Tansu::start();
    let topic = unique_name("http-load");
    broker.create_topic(&topic, 1, false);
    broker.create_topic(&format!("{topic}.dlq"), 1, false);
    let t = Instant::now();
    produce(&broker, &topic);
    eprintln!("produced {REPORTS} reports in {:?}", t.elapsed());

    let mut ratios = Vec::new();
    for round in 1..=3 {
        let quiet = {
            let mut radar = Radar::start(&broker, &topic);
            consume_time(&broker, &topic, &mut radar)
        };
        let (loaded, scrapes, bytes) = {
            let mut radar = Radar::start(&broker, &topic);
            let stop = Arc::new(AtomicBool::new(false));
            let load = http_load(radar.addr(), stop.clone());
            let d = consume_time(&broker, &topic, &mut radar);
            stop.store(true, Ordering::Relaxed);
            let (scrapes, bytes) = load.join().unwrap();
            (d, scrapes, bytes)
        };
        let ratio = quiet.as_secs_f64() / loaded.as_secs_f64();
        eprintln!(
            "round {round}: quiet {:.0} k/s, under HTTP load {:.0} k/s ({scrapes} scrapes, {} KB gzip each): ratio {ratio:.3}",
            REPORTS as f64 / quiet.as_secs_f64() / 1e3,
            REPORTS as f64 / loaded.as_secs_f64() / 1e3,
            bytes / scrapes.max(1) / 1024
        );
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "http_load: throughput under HTTP load / quiet, median of 3 rounds: {:.3} (rounds {:?})",
        ratios[1],
        ratios.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>()
    );
}
