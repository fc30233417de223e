//! The HTTP side: `GET /metrics` (Prometheus text format), `GET /-/healthy`
//! and `GET /-/ready`. Further routes (status page) merge into
//! [`router`]'s result.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
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

async fn metrics(State(m): State<Metrics>) -> impl IntoResponse {
    let encoder = TextEncoder::new();
    let mut body = Vec::with_capacity(64 * 1024);
    match encoder.encode(&m.registry.gather(), &mut body) {
        Ok(()) => {
            m.series.encode(&mut body);
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, encoder.format_type().to_string())],
                body,
            )
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain".to_string())],
            format!("cannot encode metrics: {e}").into_bytes(),
        ),
    }
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
