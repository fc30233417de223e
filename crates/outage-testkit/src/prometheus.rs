//! Prometheus and Alertmanager from the Debian packages, for tests that
//! check real scraping, rule evaluation and alert routing.

use std::path::Path;
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

/// A Prometheus-style HTTP service (both share flags and readiness).
struct HttpService {
    _service: Service,
    port: u16,
    dir: TempDir,
    /// Served over TLS (a web config).
    https: bool,
}

impl HttpService {
    /// Writes `config` to `config_name` (and `files` beside it) in a fresh
    /// temp dir, starts the binary with `--config.file`, its storage flag,
    /// a free loopback port and `extra` flags, and waits for `/-/ready`.
    fn start(
        name: &'static str,
        binary: (&str, &[&str]),
        config_name: &str,
        config: &str,
        files: &[(&str, &str)],
        storage_flag: &str,
        extra: &[&str],
    ) -> HttpService {
        let bin = find_binary(binary.0, binary.1);
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(config_name), config).expect("write config");
        for (file, body) in files {
            let path = dir.path().join(file);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("create config dir");
            }
            std::fs::write(path, body).expect("write config file");
        }
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir.path())
            .arg(format!("--config.file={config_name}"))
            .arg(format!(
                "{storage_flag}={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--web.external-url=http://127.0.0.1:{port}/"))
            .args(extra);
        let mut service = Service::spawn(name, cmd, dir.path().join(format!("{name}.log")));
        let ready = format!("http://127.0.0.1:{port}/-/ready");
        // A web config serves TLS with credentials: an open port is the sign.
        let https = extra.iter().any(|a| a.starts_with("--web.config.file"));
        if https {
            service.wait_ready(Duration::from_secs(30), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
        } else {
            service.wait_ready(Duration::from_secs(30), || http_ok(&ready));
        }
        HttpService {
            _service: service,
            port,
            dir,
            https,
        }
    }
}

/// A running Prometheus on 127.0.0.1; killed on drop.
pub struct Prometheus(HttpService);

impl Prometheus {
    /// Starts Prometheus with `config` (YAML) written to `prometheus.yml` in
    /// its temp dir; `files` are written beside it (rule files, ...).
    pub fn start(config: &str, files: &[(&str, &str)]) -> Prometheus {
        Prometheus(HttpService::start(
            "prometheus",
            ("PROMETHEUS_BIN", &["prometheus"]),
            "prometheus.yml",
            config,
            files,
            "--storage.tsdb.path",
            &["--web.enable-lifecycle"],
        ))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.0.port)
    }

    /// Its working directory (config, data, log).
    pub fn dir(&self) -> &Path {
        self.0.dir.path()
    }
}

/// A running Alertmanager on 127.0.0.1 (gossip disabled); killed on drop.
pub struct Alertmanager(HttpService);

impl Alertmanager {
    /// Starts Alertmanager with `config` (YAML).
    pub fn start(config: &str) -> Alertmanager {
        Alertmanager::launch(config, &[], &[])
    }

    /// Starts Alertmanager with `config` (YAML) serving only https, with
    /// its web configuration `web_config` (YAML: `tls_server_config`,
    /// `basic_auth_users`, …) written to `web.yml`; `files` (certificates,
    /// keys) are written beside it. [`Alertmanager::url`] is then
    /// `https://127.0.0.1:PORT`.
    pub fn start_with_web_config(
        config: &str,
        web_config: &str,
        files: &[(&str, &str)],
    ) -> Alertmanager {
        let mut all: Vec<(&str, &str)> = vec![("web.yml", web_config)];
        all.extend_from_slice(files);
        Alertmanager::launch(config, &all, &["--web.config.file=web.yml"])
    }

    fn launch(config: &str, files: &[(&str, &str)], extra: &[&str]) -> Alertmanager {
        // An empty cluster address disables gossip.
        let mut args = vec!["--cluster.listen-address="];
        args.extend_from_slice(extra);
        Alertmanager(HttpService::start(
            "alertmanager",
            (
                "ALERTMANAGER_BIN",
                &["prometheus-alertmanager", "alertmanager"],
            ),
            "alertmanager.yml",
            config,
            files,
            "--storage.path",
            &args,
        ))
    }

    /// `http://127.0.0.1:PORT` (`https://` with a web config).
    pub fn url(&self) -> String {
        let scheme = if self.0.https { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.0.port)
    }

    /// Its working directory (config, data, log).
    pub fn dir(&self) -> &Path {
        self.0.dir.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_and_alertmanager_start_and_answer() {
        let prom = Prometheus::start("global:\n  scrape_interval: 15s\n", &[]);
        assert!(http_ok(&format!("{}/api/v1/status/buildinfo", prom.url())));
        let am =
            Alertmanager::start("route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n");
        assert!(http_ok(&format!("{}/api/v2/status", am.url())));
    }
}
