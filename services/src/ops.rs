//! Operations: `/healthz`, `/readyz`, Prometheus `/metrics`, `/openapi.json`, and the
//! middleware that gives every request an id, a log line and its metrics.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tracing::Instrument;

/// The service's Prometheus metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pub licences_issued: IntCounter,
    pub playback_starts: IntCounter,
    next_request: AtomicU64,
    instance: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "reel_http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "reel_http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["route"],
        )
        .expect("valid metric");
        let licences_issued =
            IntCounter::new("reel_licences_issued_total", "ClearKey licences issued")
                .expect("valid metric");
        let playback_starts =
            IntCounter::new("reel_playback_starts_total", "Playback sessions authorised")
                .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(licences_issued.clone()),
            Box::new(playback_starts.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        Self {
            registry,
            requests,
            latency,
            licences_issued,
            playback_starts,
            next_request: AtomicU64::new(1),
            instance: hex::encode(crate::util::random_bytes::<4>()),
        }
    }

    fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
}

async fn readyz(State(state): State<AppState>) -> Response {
    match sqlx::query_scalar::<_, i64>("SELECT 1")
        .fetch_one(&state.db)
        .await
    {
        Ok(_) => "ready".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: database");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

/// The metrics, for a scraper with the configured token or a signed-in administrator only:
/// they tell request rates per route, licences issued and sign-in failures.
async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let bearer = crate::auth::bearer_token(&headers);
    // Digests compared, so that the time taken says nothing about the token's bytes.
    let digest = |t: &str| <sha2::Sha256 as sha2::Digest>::digest(t.as_bytes());
    let scraper = state
        .config
        .metrics_token
        .as_deref()
        .zip(bearer)
        .is_some_and(|(want, got)| digest(want) == digest(got));
    let admin = || {
        bearer
            .and_then(|t| state.signer.verify_access(t, crate::util::now_ms()))
            .is_some_and(|c| c.role == "admin")
    };
    if !scraper && !admin() {
        return crate::error::ServiceError::Unauthorized.into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// The OpenAPI 3.1 description of the API.
pub const OPENAPI: &str = include_str!("../openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

fn valid_request_id(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Gives each request an id (kept from `x-request-id` when the caller sent a sane one),
/// logs one line per request with its route template (never the raw path: origin and
/// licence paths carry tokens), and records count and latency per route.
pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let method = request.method().to_string();
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_request_id(v))
        .map(str::to_string)
        .unwrap_or_else(|| {
            let n = state.metrics.next_request.fetch_add(1, Ordering::Relaxed);
            format!("{}-{n}", state.metrics.instance)
        });
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::info!(status, latency_ms = elapsed.as_secs_f64() * 1000.0, "done");
    });
    state
        .metrics
        .requests
        .with_label_values(&[route.as_str(), method.as_str(), &status.to_string()])
        .inc();
    state
        .metrics
        .latency
        .with_label_values(&[route.as_str()])
        .observe(elapsed.as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}
