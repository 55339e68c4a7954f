//! The service's Prometheus metrics: requests by route template, method and status, and
//! their latency. Route labels are templates (`/v1/items/{item_id}/trace`), so bounded.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

#[derive(Debug, Clone)]
pub struct HttpMetrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("catalog_admin_requests_total", "Admin API requests by route, method and status."),
            &["route", "method", "status"],
        )
        .expect("static metric definition is valid");
        let latency = HistogramVec::new(
            HistogramOpts::new("catalog_admin_request_seconds", "Admin API request latency by route.")
                .buckets(vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0]),
            &["route"],
        )
        .expect("static metric definition is valid");
        registry.register(Box::new(requests.clone())).expect("each metric is registered once");
        registry.register(Box::new(latency.clone())).expect("each metric is registered once");
        Self { registry, requests, latency }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding gathered metrics into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// A request's method as a label: the standard ones by name, any other `other`. The layer runs
/// before authentication, and hyper takes any token as a method: named, every made-up method a
/// client sent was a counter kept for good, without limit.
fn method_label(method: &axum::http::Method) -> String {
    use axum::http::Method;
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    if STANDARD.contains(method) { method.as_str() } else { "other" }.to_owned()
}

/// Middleware: counts and times every request once.
pub async fn track(State(metrics): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.latency.with_label_values(&[route.as_str()]).observe(started.elapsed().as_secs_f64());
    metrics.requests.with_label_values(&[route.as_str(), method.as_str(), response.status().as_str()]).inc();
    response
}
