//! Prometheus metrics: requests by route, method and status, request latency, datapoint writes.
//! Rendered in the text exposition format at `/metrics`.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, seconds: f64) {
        if let Some(bucket) = BUCKETS.iter().position(|&upper| seconds <= upper) {
            self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }
}

type RouteKey = (&'static str, Arc<str>);

/// The server's metrics. Cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    requests: RwLock<HashMap<(RouteKey, u16), AtomicU64>>,
    latency: RwLock<HashMap<RouteKey, Histogram>>,
    datapoint_writes: RwLock<HashMap<String, AtomicU64>>,
}

/// Adds one to the counter under `key`, taking the write lock only the first time.
fn increment<K: std::hash::Hash + Eq + Clone>(map: &RwLock<HashMap<K, AtomicU64>>, key: &K) {
    if let Some(counter) = map.read().unwrap_or_else(|p| p.into_inner()).get(key) {
        counter.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mut map = map.write().unwrap_or_else(|p| p.into_inner());
    map.entry(key.clone()).or_default().fetch_add(1, Ordering::Relaxed);
}

/// Limits the method label to the methods HTTP defines, so clients cannot grow the label set.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

impl Metrics {
    /// Records one finished request.
    pub fn record_request(&self, method: &Method, route: Arc<str>, status: u16, seconds: f64) {
        let key = (method_label(method), route);
        increment(&self.inner.requests, &(key.clone(), status));
        if let Some(histogram) = self.inner.latency.read().unwrap_or_else(|p| p.into_inner()).get(&key)
        {
            histogram.observe(seconds);
            return;
        }
        let mut latency = self.inner.latency.write().unwrap_or_else(|p| p.into_inner());
        latency.entry(key).or_default().observe(seconds);
    }

    /// Records one durable datapoint write.
    pub fn record_datapoint_write(&self, key: &str) {
        increment(&self.inner.datapoint_writes, &key.to_owned());
    }

    /// The metrics in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let escape = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        out.push_str("# HELP http_requests_total HTTP requests answered, by route, method and status.\n");
        out.push_str("# TYPE http_requests_total counter\n");
        let requests = self.inner.requests.read().unwrap_or_else(|p| p.into_inner());
        let mut rows: Vec<_> = requests.iter().collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        for (((method, route), status), count) in rows {
            let _ = writeln!(
                out,
                "http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {}",
                escape(route),
                count.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP http_request_duration_seconds Time to answer HTTP requests.\n");
        out.push_str("# TYPE http_request_duration_seconds histogram\n");
        let latency = self.inner.latency.read().unwrap_or_else(|p| p.into_inner());
        let mut rows: Vec<_> = latency.iter().collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        for ((method, route), histogram) in rows {
            let labels = format!("method=\"{method}\",route=\"{}\"", escape(route));
            let mut cumulative = 0;
            for (upper, bucket) in BUCKETS.iter().zip(&histogram.buckets) {
                cumulative += bucket.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{{labels},le=\"{upper}\"}} {cumulative}"
                );
            }
            let count = histogram.count.load(Ordering::Relaxed);
            let sum = histogram.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "http_request_duration_seconds_sum{{{labels}}} {sum}");
            let _ = writeln!(out, "http_request_duration_seconds_count{{{labels}}} {count}");
        }
        out.push_str("# HELP portico_datapoint_writes_total Durable datapoint writes, by datapoint.\n");
        out.push_str("# TYPE portico_datapoint_writes_total counter\n");
        let writes = self.inner.datapoint_writes.read().unwrap_or_else(|p| p.into_inner());
        let mut rows: Vec<_> = writes.iter().collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        for (key, count) in rows {
            let _ = writeln!(
                out,
                "portico_datapoint_writes_total{{datapoint=\"{}\"}} {}",
                escape(key),
                count.load(Ordering::Relaxed)
            );
        }
        out
    }
}

/// Middleware: times each request and records it under its route pattern (`unmatched` for
/// requests no route took, so unknown paths cannot grow the label set).
pub async fn track(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route: Arc<str> = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| Arc::from("unmatched"), |path| Arc::from(path.as_str()));
    let response = next.run(request).await;
    metrics.record_request(&method, route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}
