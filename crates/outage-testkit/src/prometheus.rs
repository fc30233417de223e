//! Prometheus and Alertmanager from the Debian packages, for tests that
//! check real scraping, rule evaluation and alert routing.

use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{find_binary, free_port, Service};

fn http_ok(url: &str) -> bool {
    ureq::get(url)
        .timeout(Duration::from_secs(2))
        .call()
        .is_ok()
}

/// A running Prometheus on 127.0.0.1; killed on drop.
pub struct Prometheus {
    _service: Service,
    port: u16,
    dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `config` (YAML) written to `prometheus.yml` in
    /// its temp dir; `files` are written beside it (rule files, ...).
    pub fn start(config: &str, files: &[(&str, &str)]) -> Prometheus {
        let bin = find_binary("PROMETHEUS_BIN", &["prometheus"]);
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("write prometheus.yml");
        for (name, body) in files {
            std::fs::write(dir.path().join(name), body).expect("write prometheus file");
        }
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir.path())
            .arg("--config.file=prometheus.yml")
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--web.external-url=http://127.0.0.1:{port}/"))
            .arg("--web.enable-lifecycle");
        let mut service = Service::spawn("prometheus", cmd, dir.path().join("prometheus.log"));
        let ready = format!("http://127.0.0.1:{port}/-/ready");
        service.wait_ready(Duration::from_secs(30), || http_ok(&ready));
        Prometheus {
            _service: service,
            port,
            dir,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

/// A running Alertmanager on 127.0.0.1 (gossip disabled); killed on drop.
pub struct Alertmanager {
    _service: Service,
    port: u16,
    dir: TempDir,
}

impl Alertmanager {
    /// Starts Alertmanager with `config` (YAML).
    pub fn start(config: &str) -> Alertmanager {
        let bin = find_binary(
            "ALERTMANAGER_BIN",
            &["prometheus-alertmanager", "alertmanager"],
        );
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("alertmanager.yml"), config)
            .expect("write alertmanager.yml");
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir.path())
            .arg("--config.file=alertmanager.yml")
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--web.external-url=http://127.0.0.1:{port}/"))
            .arg("--cluster.listen-address=");
        let mut service = Service::spawn("alertmanager", cmd, dir.path().join("alertmanager.log"));
        let ready = format!("http://127.0.0.1:{port}/-/ready");
        service.wait_ready(Duration::from_secs(30), || http_ok(&ready));
        Alertmanager {
            _service: service,
            port,
            dir,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}
