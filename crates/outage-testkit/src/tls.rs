//! TLS for tests: a throwaway certificate authority, and a real TLS
//! endpoint (`socat`, OpenSSL) in front of a plain TCP service.
//!
//! tansu 0.6.0 cannot serve TLS itself (its `--cert` and `--key` options
//! exclude each other and its acceptor is never used), so a broker test
//! over TLS puts [`TlsProxy`] in front of it and has tansu advertise the
//! proxy's port: every client connection then goes through TLS.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

use crate::process::{find_binary, free_port, Service};

/// PEM files of a test CA and a server certificate it signed, in a
/// directory of the caller's.
pub struct TestCerts {
    /// The CA certificate clients trust (`ssl.ca.location`).
    pub ca: PathBuf,
    /// The server's certificate chain and its private key.
    pub server_cert: PathBuf,
    /// The server's private key (PEM).
    pub server_key: PathBuf,
    /// Another CA, which signed nothing the server presents.
    pub other_ca: PathBuf,
    /// A client certificate the CA signed, and its key (mutual TLS).
    pub client_cert: PathBuf,
    /// The client's private key (PEM).
    pub client_key: PathBuf,
}

impl TestCerts {
    /// A CA and a server certificate for the names in `server_names`
    /// (DNS names or IP addresses), written to `dir`.
    pub fn generate(dir: &Path, server_names: &[&str]) -> TestCerts {
        let ca_key = KeyPair::generate().expect("CA key");
        let ca = ca_params("outage-radar test CA")
            .self_signed(&ca_key)
            .expect("CA certificate");
        let server_key = KeyPair::generate().expect("server key");
        let names: Vec<String> = server_names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("server names");
        params.distinguished_name.push(
            DnType::CommonName,
            server_names.first().copied().unwrap_or("server"),
        );
        let server = params
            .signed_by(&server_key, &ca, &ca_key)
            .expect("server certificate");
        let client_key = KeyPair::generate().expect("client key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params
            .distinguished_name
            .push(DnType::CommonName, "outage-radar test client");
        let client = params
            .signed_by(&client_key, &ca, &ca_key)
            .expect("client certificate");
        let other_key = KeyPair::generate().expect("other CA key");
        let other = ca_params("some other CA")
            .self_signed(&other_key)
            .expect("other CA certificate");
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).expect("write a PEM file");
            path
        };
        TestCerts {
            ca: write("ca.pem", ca.pem()),
            server_cert: write("server.pem", server.pem()),
            server_key: write("server.key", server_key.serialize_pem()),
            other_ca: write("other-ca.pem", other.pem()),
            client_cert: write("client.pem", client.pem()),
            client_key: write("client.key", client_key.serialize_pem()),
        }
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params
}

/// `socat` terminating TLS on a free loopback port and forwarding each
/// connection in plain TCP to `127.0.0.1:upstream`; killed on drop.
pub struct TlsProxy {
    service: Service,
    port: u16,
}

impl TlsProxy {
    /// Listens on a free port (see [`TlsProxy::start_on`]).
    pub fn start(upstream: u16, certs: &TestCerts, log_dir: &Path) -> TlsProxy {
        TlsProxy::start_on(free_port(), upstream, certs, log_dir)
    }

    /// Listens on `port` with the server certificate of `certs`.
    pub fn start_on(port: u16, upstream: u16, certs: &TestCerts, log_dir: &Path) -> TlsProxy {
        let bin = find_binary("SOCAT_BIN", &["socat"]);
        let mut cmd = Command::new(bin);
        cmd.arg(format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
            certs.server_cert.display(),
            certs.server_key.display()
        ))
        .arg(format!("TCP:127.0.0.1:{upstream}"));
        let mut service = Service::spawn("socat", cmd, log_dir.join("socat.log"));
        service.wait_ready(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        TlsProxy { service, port }
    }

    /// The port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The end of its log (socat reports failed handshakes there).
    pub fn log_tail(&self) -> String {
        self.service.log_tail()
    }
}
