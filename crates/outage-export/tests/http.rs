//! The HTTP surface under careless and hostile clients: half-sent and idle
//! connections are cut after `header_timeout`, slow readers after
//! `max_connection_age`, a flood of idle connections cannot lock a scraper
//! out, pages are rendered at most once per `refresh`, and every response
//! carries its security headers. Real sockets on 127.0.0.1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use outage_detect::{Country, Scope, SeriesState, WindowScore};
use outage_export::http::{router, serve};
use outage_export::{
    HttpConfig, HttpMetrics, MetricsConfig, Readiness, SeriesMetrics, StatusBoard,
};
use prometheus::{IntCounter, Registry};

struct Server {
    addr: SocketAddr,
    registry: Registry,
    series: SeriesMetrics,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Server {
    fn start(config: HttpConfig) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let registry = Registry::new();
        let series = SeriesMetrics::register(&registry, &MetricsConfig::default()).unwrap();
        let metrics = HttpMetrics::register(&registry).unwrap();
        let app = router(
            registry.clone(),
            series.clone(),
            StatusBoard::default(),
            Readiness::default(),
            config.refresh,
        );
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(serve(listener, app, config, metrics, async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            registry,
            series,
            stop: Some(stop),
            runtime: Some(runtime),
        }
    }

    fn counter(&self, name: &str, reason: &str) -> u64 {
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| f.get_metric().iter())
            .filter(|m| m.get_label().iter().any(|l| l.value() == reason))
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }

    fn open_connections(&self) -> i64 {
        self.registry
            .gather()
            .iter()
            .find(|f| f.name() == "outage_radar_http_connections")
            .map(|f| f.get_metric()[0].get_gauge().get_value() as i64)
            .unwrap_or(-1)
    }

    /// One request on a new connection: status line and headers, body.
    fn get(&self, path: &str) -> (String, Vec<u8>) {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: radar\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        let split = all
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete response head");
        (
            String::from_utf8_lossy(&all[..split]).to_lowercase(),
            all[split + 4..].to_vec(),
        )
    }

    fn fill(&self, series: usize) {
        for i in 0..series {
            self.series.window(
                &WindowScore {
                    window_start_ms: 0,
                    service: format!("service-{:05}", i / 100),
                    scope: Scope::Region(Country::from_index(i % 100 + 1)),
                    observed: 17,
                    expected: 12.25,
                    surprise: 0.75,
                    span: 1,
                    ratio: 1.39,
                    anomalous: false,
                    state: SeriesState::Normal,
                },
                60_000,
            );
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

fn config() -> HttpConfig {
    HttpConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        header_timeout: Duration::from_secs(1),
        max_connection_age: Duration::from_secs(30),
        max_connections: 256,
        refresh: Duration::ZERO,
    }
}

/// How long until the server closes `s` (reads until EOF or a reset;
/// whatever the server sent first, e.g. a 408, is skipped).
fn closed_after(mut s: TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

#[test]
fn half_sent_and_idle_connections_are_cut_after_the_header_timeout() {
    let server = Server::start(config());
    let idle = TcpStream::connect(server.addr).unwrap();
    let mut half = TcpStream::connect(server.addr).unwrap();
    // A slowloris: the request line and one header, never the blank line.
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: radar\r\n")
        .unwrap();
    // A scraper that finished a request and keeps the connection open.
    let mut kept = TcpStream::connect(server.addr).unwrap();
    kept.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: radar\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 12];
    kept.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    for (what, s) in [("idle", idle), ("half-sent", half), ("kept-alive", kept)] {
        let after = closed_after(s, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("the {what} connection is still open after 5 s"));
        assert!(
            after < Duration::from_secs(3),
            "the {what} connection was closed only after {after:?}"
        );
    }
    assert!(
        server.counter(
            "outage_radar_http_connections_closed_total",
            "header_timeout"
        ) >= 2
    );
    // Still serving.
    let (head, body) = server.get("/-/healthy");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(body, b"healthy\n");
}

#[test]
fn a_slow_reader_is_cut_at_the_connection_age_limit() {
    let server = Server::start(HttpConfig {
        header_timeout: Duration::from_secs(1),
        max_connection_age: Duration::from_secs(5),
        refresh: Duration::from_secs(600),
        ..config()
    });
    // About 30 MB of /metrics, more than the socket buffers hold, rendered
    // once up front (a debug build takes seconds), so the slow reader's
    // connection gets its bytes at once and only its reading is slow.
    server.fill(300_000);
    let (head, _) = server.get("/metrics");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: radar\r\n\r\n")
        .unwrap();
    // Read a little, then nothing for the age limit and its grace.
    let mut first = [0u8; 1024];
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.read_exact(&mut first).unwrap();
    let head = String::from_utf8_lossy(&first).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("a content-length");
    assert!(length > 20_000_000, "{length} bytes");
    std::thread::sleep(Duration::from_secs(8));
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(
        rest.len() + first.len() < length,
        "the whole response ({length} bytes) was delivered to a client that stopped reading"
    );
    assert_eq!(
        server.counter("outage_radar_http_connections_closed_total", "max_age"),
        1
    );
}

#[test]
fn a_thousand_idle_connections_cannot_lock_a_scraper_out() {
    let server = Server::start(HttpConfig {
        header_timeout: Duration::from_secs(60),
        max_connection_age: Duration::from_secs(120),
        ..config()
    });
    server.fill(1_000);
    let idle: Vec<TcpStream> = (0..1_000)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    // Every connection has been accepted (the 745th and later each took
    // the place of the one idle longest).
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.counter("outage_radar_http_connections_closed_total", "evicted") < 744 {
        assert!(Instant::now() < deadline, "the flood was not accepted");
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..5 {
        let (head, body) = server.get("/metrics");
        assert!(head.starts_with("http/1.1 200"), "{head}");
        let text = String::from_utf8(body).unwrap();
        assert_eq!(text.matches("outage_radar_series_state{").count(), 1_000);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        server.open_connections() <= 256,
        "{}",
        server.open_connections()
    );
    // The oldest idle connections were the ones closed.
    assert!(closed_after(idle[0].try_clone().unwrap(), Duration::from_secs(2)).is_some());
    assert!(closed_after(idle[999].try_clone().unwrap(), Duration::from_millis(300)).is_none());
}

#[test]
fn pages_are_rendered_at_most_once_per_refresh() {
    let server = Server::start(HttpConfig {
        refresh: Duration::from_secs(2),
        ..config()
    });
    let c = IntCounter::new("probe_total", "a counter that moves").unwrap();
    server.registry.register(Box::new(c.clone())).unwrap();
    let value = |server: &Server| -> String {
        let (_, body) = server.get("/metrics");
        String::from_utf8(body)
            .unwrap()
            .lines()
            .find(|l| l.starts_with("probe_total "))
            .unwrap()
            .to_string()
    };
    assert_eq!(value(&server), "probe_total 0");
    c.inc();
    assert_eq!(
        value(&server),
        "probe_total 0",
        "rendered again within refresh"
    );
    std::thread::sleep(Duration::from_millis(2_100));
    assert_eq!(value(&server), "probe_total 1");
}

#[test]
fn every_response_says_nosniff_and_the_page_forbids_inline_code() {
    let server = Server::start(config());
    let (head, page) = server.get("/");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let csp = head
        .lines()
        .find_map(|l| l.strip_prefix("content-security-policy: "))
        .expect("a CSP on the page");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let page = String::from_utf8(page).unwrap();
    assert!(!page.contains("<script>") && !page.contains("<style>"));
    for path in [
        "/",
        "/status.js",
        "/status.css",
        "/metrics",
        "/api/status",
        "/-/ready",
    ] {
        let (head, _) = server.get(path);
        assert!(
            head.contains("x-content-type-options: nosniff"),
            "{path}: {head}"
        );
    }
    let (head, js) = server.get("/status.js");
    assert!(head.contains("content-type: text/javascript"), "{head}");
    assert!(String::from_utf8(js).unwrap().contains("/api/status"));
}
