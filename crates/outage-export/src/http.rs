//! The HTTP side: `GET /metrics` (Prometheus text format), `GET /-/healthy`,
//! `GET /-/ready` and the status page, served so that no client can hurt
//! the consumer: pages are rendered at most once per `refresh` on a
//! blocking thread (the detectors' tables are locked only to copy rows),
//! and connections are bounded in number and in time.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{Encoder, IntCounterVec, IntGauge, Registry, TextEncoder};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;
use tracing::{debug, warn};

use outage_detect::ConfigError;

use crate::metrics::SeriesMetrics;
use crate::status::StatusBoard;

/// `[http]`: where /metrics, the health endpoints and the status page
/// listen, and the bounds that keep clients from hurting the consumer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Listen address. Default `0.0.0.0:9898`.
    pub listen: SocketAddr,
    /// A connection must send each request's headers within this long,
    /// counted from when the server waits for them (an idle keep-alive
    /// connection included); else it is closed. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A connection is closed after this long: its response in flight
    /// gets `header_timeout` more to finish, so a client that reads slowly
    /// cannot hold a connection for good. Scrapers reconnect. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub max_connection_age: Duration,
    /// Most open connections. One more takes the place of the connection
    /// idle longest; if every one has a request in flight it is answered
    /// 503 and closed. Default 256.
    pub max_connections: usize,
    /// `/metrics` and `/api/status` are rendered at most this often;
    /// requests in between get the last rendering. Default 2 s.
    #[serde(with = "humantime_serde")]
    pub refresh: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 9898)),
            header_timeout: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(60),
            max_connections: 256,
            refresh: Duration::from_secs(2),
        }
    }
}

impl HttpConfig {
    /// Cross-field rules that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.header_timeout.is_zero() {
            return Err(ConfigError::new("http.header_timeout", "must be positive"));
        }
        if self.max_connection_age < self.header_timeout {
            return Err(ConfigError::new(
                "http.max_connection_age",
                format!(
                    "{:?} must be at least http.header_timeout ({:?})",
                    self.max_connection_age, self.header_timeout
                ),
            ));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::new(
                "http.max_connections",
                "must be at least 1",
            ));
        }
        if self.refresh > Duration::from_secs(60) {
            return Err(ConfigError::new(
                "http.refresh",
                format!(
                    "{:?} is over a minute: /metrics would lag the detectors",
                    self.refresh
                ),
            ));
        }
        Ok(())
    }
}

/// Whether this instance owns its partitions and their state. Cloning
/// shares the flag.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks this instance ready (or not) for `/-/ready`.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// What `/-/ready` answers.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

outage_detect::label_values!(
    /// The `reason` of `outage_radar_http_connections_closed_total`: why
    /// the server closed a connection the client had not.
    HttpClose {
        /// `http.max_connections` were open, all busy: answered 503.
        Limit => "limit",
        /// `http.max_connections` were open: the one idle longest made
        /// room for a new one.
        Evicted => "evicted",
        /// No complete request headers within `http.header_timeout`.
        HeaderTimeout => "header_timeout",
        /// Open for `http.max_connection_age`.
        MaxAge => "max_age",
    }
);

/// The HTTP server's own figures.
#[derive(Clone)]
pub struct HttpMetrics {
    open: IntGauge,
    closed: IntCounterVec,
}

impl HttpMetrics {
    /// Creates and registers the HTTP metrics.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = HttpMetrics {
            open: IntGauge::new(
                "outage_radar_http_connections",
                "Open HTTP connections (bounded by http.max_connections).",
            )?,
            closed: IntCounterVec::new(
                prometheus::Opts::new(
                    "outage_radar_http_connections_closed_total",
                    "HTTP connections closed by the server: evicted (idle longest when http.max_connections were open), limit (all busy: answered 503), header_timeout (no request within http.header_timeout), max_age.",
                ),
                &["reason"],
            )?,
        };
        registry.register(Box::new(m.open.clone()))?;
        registry.register(Box::new(m.closed.clone()))?;
        for r in HttpClose::ALL {
            m.closed.with_label_values(&[r.as_str()]);
        }
        Ok(m)
    }

    fn closed(&self, reason: HttpClose) {
        self.closed.with_label_values(&[reason.as_str()]).inc();
    }
}

/// One page rendered at most once per `refresh`: concurrent requests wait
/// for the one rendering in progress instead of starting their own.
struct Cached {
    refresh: Duration,
    slot: tokio::sync::Mutex<Option<Rendered>>,
}

struct Rendered {
    at: Instant,
    plain: Bytes,
    gzip: Option<Bytes>,
}

type Render = Arc<dyn Fn() -> Result<Vec<u8>, String> + Send + Sync>;

impl Cached {
    fn new(refresh: Duration) -> Self {
        Cached {
            refresh,
            slot: tokio::sync::Mutex::new(None),
        }
    }

    /// The page (gzip-compressed if `gzip`), rendered on a blocking
    /// thread when the last rendering is older than `refresh`. The work
    /// runs in a task of its own: a client that hangs up mid-render does
    /// not cancel it, so the rendering still fills the cache and clients
    /// that hang up cannot make the server render again and again.
    async fn get(self: &Arc<Self>, render: &Render, gzip: bool) -> Result<Bytes, String> {
        let (this, render) = (self.clone(), render.clone());
        tokio::spawn(async move { this.fill(&render, gzip).await })
            .await
            .map_err(|e| format!("rendering failed: {e}"))?
    }

    async fn fill(&self, render: &Render, gzip: bool) -> Result<Bytes, String> {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_none_or(|r| r.at.elapsed() >= self.refresh) {
            let at = Instant::now();
            let render = render.clone();
            let plain = tokio::task::spawn_blocking(move || render())
                .await
                .map_err(|e| format!("rendering failed: {e}"))??;
            *slot = Some(Rendered {
                at,
                plain: plain.into(),
                gzip: None,
            });
        }
        let r = slot.as_mut().expect("rendered above");
        if !gzip {
            return Ok(r.plain.clone());
        }
        if r.gzip.is_none() {
            let plain = r.plain.clone();
            let compressed = tokio::task::spawn_blocking(move || compress(&plain))
                .await
                .map_err(|e| format!("compression failed: {e}"))??;
            r.gzip = Some(compressed.into());
        }
        Ok(r.gzip.clone().expect("compressed above"))
    }
}

fn compress(plain: &[u8]) -> Result<Vec<u8>, String> {
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(plain.len() / 8),
        flate2::Compression::fast(),
    );
    gz.write_all(plain)
        .and_then(|()| gz.finish())
        .map_err(|e| format!("cannot compress: {e}"))
}

/// A rendered page, or the error that kept it from rendering.
#[derive(Clone)]
struct Page {
    cache: Arc<Cached>,
    render: Render,
    content_type: &'static str,
}

async fn page(State(p): State<Page>, headers: axum::http::HeaderMap) -> Response {
    let gzip = accepts_gzip(&headers);
    match p.cache.get(&p.render, gzip).await {
        Ok(body) => {
            let mut res = (StatusCode::OK, body).into_response();
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(p.content_type),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if gzip {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            res
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// Whether `Accept-Encoding` lists gzip (with a non-zero quality).
fn accepts_gzip(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            parts.next().is_some_and(|c| c.eq_ignore_ascii_case("gzip"))
                && parts.all(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f64>().ok())
                        .is_none_or(|q| q > 0.0)
                })
        })
}

async fn ready(State(r): State<Readiness>) -> impl IntoResponse {
    if r.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: waiting for partitions and their state\n",
        )
    }
}

/// The status page: an HTML file with its style and script beside it (no
/// CDN, no external font, nothing inline, so the CSP can forbid inline
/// code).
const STATUS_PAGE: &str = include_str!("status.html");
const STATUS_CSS: &str = include_str!("status.css");
const STATUS_JS: &str = include_str!("status.js");

/// The page may load its own style and script and fetch its own data;
/// nothing else, and no one may frame it.
const STATUS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut res = (StatusCode::OK, body).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

async fn status_page() -> Response {
    let mut res = asset("text/html; charset=utf-8", STATUS_PAGE);
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(STATUS_CSP),
    );
    res
}

/// Every response: no content sniffing.
async fn security_headers(mut res: Response) -> Response {
    res.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// `/metrics` (the registry, then the per-series table), `/-/healthy`,
/// `/-/ready`, the status page `/` and its data `/api/status`. The two
/// rendered pages are rendered at most once per `refresh`.
pub fn router(
    registry: Registry,
    series: SeriesMetrics,
    board: StatusBoard,
    readiness: Readiness,
    refresh: Duration,
) -> Router {
    let metrics = Page {
        cache: Arc::new(Cached::new(refresh)),
        render: {
            let series = series.clone();
            Arc::new(move || {
                let mut body = Vec::with_capacity(64 * 1024);
                TextEncoder::new()
                    .encode(&registry.gather(), &mut body)
                    .map_err(|e| format!("cannot encode metrics: {e}"))?;
                series.encode(&mut body);
                Ok(body)
            })
        },
        content_type: prometheus::TEXT_FORMAT,
    };
    let status = Page {
        cache: Arc::new(Cached::new(refresh)),
        render: Arc::new(move || {
            serde_json::to_vec(&board.to_json(&series))
                .map_err(|e| format!("cannot encode the status: {e}"))
        }),
        content_type: "application/json",
    };
    Router::new()
        .route("/", get(status_page))
        .route(
            "/status.css",
            get(|| async { asset("text/css; charset=utf-8", STATUS_CSS) }),
        )
        .route(
            "/status.js",
            get(|| async { asset("text/javascript; charset=utf-8", STATUS_JS) }),
        )
        .route("/api/status", get(page).with_state(status))
        .route("/metrics", get(page).with_state(metrics))
        .route("/-/healthy", get(|| async { "healthy\n" }))
        .route("/-/ready", get(ready).with_state(readiness))
        .layer(axum::middleware::map_response(security_headers))
}

/// What a new connection gets when `http.max_connections` are open and
/// every one of them has a request in flight.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 26\r\n\
    Connection: close\r\nContent-Type: text/plain\r\n\r\ntoo many open connections\n";

/// An open connection as the accept loop sees it: when it last finished a
/// request (0 while one is in flight), and how to close it.
struct Open {
    idle_since: Arc<AtomicU64>,
    abort: tokio::task::AbortHandle,
}

/// Milliseconds since `epoch`, never 0 (0 means "busy").
fn stamp(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64 + 1
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets each
/// connection finish its response in flight (at most `header_timeout`).
///
/// Bounds: each request's headers must arrive within `header_timeout`
/// (idle keep-alive included), a connection lives at most
/// `max_connection_age`, and at most `max_connections` are open. At the
/// limit a new connection takes the place of the one idle longest (no
/// request in flight), so a flood of idle or half-sent connections cannot
/// lock a scraper out; only when all are busy is it answered 503.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    config: HttpConfig,
    metrics: HttpMetrics,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .max_buf_size(64 * 1024);
    let epoch = Instant::now();
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut open: HashMap<tokio::task::Id, Open> = HashMap::new();
    tokio::pin!(shutdown);
    loop {
        let (mut stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            Some(done) = connections.join_next_with_id() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => e.id(),
                };
                open.remove(&id);
                metrics.open.set(open.len() as i64);
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors or a connection reset while
                    // queued: wait a little rather than spin.
                    warn!(error = %e, "http: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if open.len() >= config.max_connections {
            let idlest = open
                .iter()
                .map(|(id, o)| (o.idle_since.load(Ordering::Acquire), *id))
                .filter(|&(since, _)| since != 0)
                .min();
            match idlest.and_then(|(_, id)| open.remove(&id)) {
                Some(evicted) => {
                    evicted.abort.abort();
                    metrics.closed(HttpClose::Evicted);
                }
                None => {
                    metrics.closed(HttpClose::Limit);
                    debug!(%peer, "http: every connection busy, answered 503");
                    let _ = stream.try_write(BUSY);
                    let _ = stream.shutdown().await;
                    continue;
                }
            }
        }
        let _ = stream.set_nodelay(true);
        let idle_since = Arc::new(AtomicU64::new(stamp(epoch)));
        let service = {
            let (router, idle_since) = (router.clone(), idle_since.clone());
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (router, idle_since) = (router.clone(), idle_since.clone());
                idle_since.store(0, Ordering::Release);
                async move {
                    let res = router.oneshot(req.map(axum::body::Body::new)).await;
                    idle_since.store(stamp(epoch), Ordering::Release);
                    res
                }
            })
        };
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let metrics_ = metrics.clone();
        let mut stopping = stopping.clone();
        let (max_age, grace) = (config.max_connection_age, config.header_timeout);
        let abort = connections.spawn(async move {
            let metrics = metrics_;
            tokio::pin!(conn);
            let finished = tokio::select! {
                done = conn.as_mut() => {
                    if done.as_ref().is_err_and(|e| e.is_timeout()) {
                        metrics.closed(HttpClose::HeaderTimeout);
                    }
                    true
                }
                () = tokio::time::sleep(max_age) => {
                    metrics.closed(HttpClose::MaxAge);
                    false
                }
                _ = stopping.wait_for(|s| *s) => false,
            };
            if !finished {
                // An idle connection closes at once; a response in flight
                // gets `grace` to finish.
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(grace, conn.as_mut()).await;
            }
        });
        open.insert(abort.id(), Open { idle_since, abort });
        metrics.open.set(open.len() as i64);
    }
    drop(listener);
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
    metrics.open.set(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn gzip_is_used_only_when_accepted() {
        assert!(accepts_gzip(&with("gzip")));
        assert!(accepts_gzip(&with("deflate, GZIP;q=0.5")));
        assert!(!accepts_gzip(&with("gzip;q=0")));
        assert!(!accepts_gzip(&with("identity, br")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
