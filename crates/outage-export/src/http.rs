//! The HTTP side: `GET /metrics` (Prometheus text format), `GET /-/healthy`
//! and `GET /-/ready`. Further routes (status page) merge into
//! [`router`]'s result.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, Registry, TextEncoder};
use serde::{Deserialize, Serialize};

use crate::metrics::SeriesMetrics;
use crate::status::StatusBoard;

/// `[http]`: where /metrics and the health endpoints listen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Listen address. Default `0.0.0.0:9898`.
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 9898)),
        }
    }
}

/// Whether this instance owns its partitions and their state. Cloning
/// shares the flag.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
struct Metrics {
    registry: Registry,
    series: SeriesMetrics,
}

/// `/metrics`, gzip-compressed when the scraper accepts it (Prometheus
/// does): at 100 k series the text is tens of megabytes.
async fn metrics(State(m): State<Metrics>, headers: axum::http::HeaderMap) -> Response {
    let encoder = TextEncoder::new();
    let mut body = Vec::with_capacity(64 * 1024);
    if let Err(e) = encoder.encode(&m.registry.gather(), &mut body) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain".to_string())],
            format!("cannot encode metrics: {e}").into_bytes(),
        )
            .into_response();
    }
    m.series.encode(&mut body);
    let content_type = (header::CONTENT_TYPE, encoder.format_type().to_string());
    if accepts_gzip(&headers) {
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 8),
            flate2::Compression::fast(),
        );
        if gz.write_all(&body).is_ok() {
            if let Ok(compressed) = gz.finish() {
                return (
                    StatusCode::OK,
                    [content_type, (header::CONTENT_ENCODING, "gzip".to_string())],
                    compressed,
                )
                    .into_response();
            }
        }
    }
    (StatusCode::OK, [content_type], body).into_response()
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

/// The status page: one self-contained HTML file (no external assets).
const STATUS_PAGE: &str = include_str!("status.html");

#[derive(Clone)]
struct Status {
    board: StatusBoard,
    series: SeriesMetrics,
}

async fn status(State(s): State<Status>) -> impl IntoResponse {
    axum::Json(s.board.to_json(&s.series))
}

/// `/metrics` (the registry, then the per-series table), `/-/healthy`,
/// `/-/ready`, the status page `/` and its data `/api/status`.
pub fn router(
    registry: Registry,
    series: SeriesMetrics,
    board: StatusBoard,
    readiness: Readiness,
) -> Router {
    Router::new()
        .route("/", get(|| async { axum::response::Html(STATUS_PAGE) }))
        .route(
            "/api/status",
            get(status).with_state(Status {
                board,
                series: series.clone(),
            }),
        )
        .route(
            "/metrics",
            get(metrics).with_state(Metrics { registry, series }),
        )
        .route("/-/healthy", get(|| async { "healthy\n" }))
        .route("/-/ready", get(ready).with_state(readiness))
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
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
