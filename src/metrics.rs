//! Prometheus metrics: requests by route, method and status, request latency, datapoint writes.
//! Rendered in the text exposition format at `/metrics`.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Writes the histogram's series (`{name}_bucket`, `_sum`, `_count`) with `labels`.
    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let count = self.count.load(Ordering::Relaxed);
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (upper, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{upper}\"}} {cumulative}"
            );
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braced = match labels {
            "" => String::new(),
            labels => format!("{{{labels}}}"),
        };
        let _ = writeln!(out, "{name}_sum{braced} {sum}");
        let _ = writeln!(out, "{name}_count{braced} {count}");
    }

    fn observe(&self, seconds: f64) {
        if let Some(bucket) = BUCKETS.iter().position(|&upper| seconds <= upper) {
            self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }
}

/// The methods HTTP defines get their own series; anything else counts as `OTHER`, so clients
/// cannot grow the label set.
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER",
];

fn method_index(method: &str) -> usize {
    match method {
        "GET" => 0,
        "HEAD" => 1,
        "POST" => 2,
        "PUT" => 3,
        "DELETE" => 4,
        "PATCH" => 5,
        "OPTIONS" => 6,
        _ => 7,
    }
}

/// One method on one route: its latency and its answers by status.
#[derive(Debug, Default)]
struct Series {
    latency: Histogram,
    statuses: RwLock<Vec<(u16, AtomicU64)>>,
}

impl Series {
    fn count_status(&self, status: u16) {
        let statuses = self.statuses.read().unwrap_or_else(|p| p.into_inner());
        if let Some((_, count)) = statuses.iter().find(|(s, _)| *s == status) {
            count.fetch_add(1, Ordering::Relaxed);
            return;
        }
        drop(statuses);
        let mut statuses = self.statuses.write().unwrap_or_else(|p| p.into_inner());
        match statuses.iter().find(|(s, _)| *s == status) {
            Some((_, count)) => count.fetch_add(1, Ordering::Relaxed),
            None => {
                statuses.push((status, AtomicU64::new(1)));
                statuses.sort_by_key(|(s, _)| *s);
                0
            }
        };
    }
}

/// The series of one route, one per method.
#[derive(Debug, Default)]
struct RouteSeries([Series; METHODS.len()]);

/// The server's metrics. Cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    routes: RwLock<HashMap<Arc<str>, Arc<RouteSeries>>>,
    datapoint_writes: RwLock<HashMap<String, AtomicU64>>,
    webhook_attempts: [AtomicU64; WEBHOOK_OUTCOMES.len()],
    webhook_latency: Histogram,
    webhook_queue_depth: AtomicU64,
}

/// How a webhook attempt can end: `delivered`; `failed` (retried later); `discarded` (QoS 1)
/// or `dead` (QoS 2) after the last retry; `stale` (its claim expired first).
const WEBHOOK_OUTCOMES: [&str; 6] = [
    "delivered",
    "failed",
    "discarded",
    "dead",
    "stale",
    "withheld",
];

impl Metrics {
    fn route(&self, route: &str) -> Arc<RouteSeries> {
        if let Some(series) = self
            .inner
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(route)
        {
            return series.clone();
        }
        let mut routes = self.inner.routes.write().unwrap_or_else(|p| p.into_inner());
        routes.entry(Arc::from(route)).or_default().clone()
    }

    /// Records one finished request.
    pub fn record_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let series = &self.route(route).0[method_index(method)];
        series.count_status(status);
        series.latency.observe(seconds);
    }

    /// Records one durable datapoint write.
    pub fn record_datapoint_write(&self, key: &str) {
        let writes = &self.inner.datapoint_writes;
        if let Some(count) = writes.read().unwrap_or_else(|p| p.into_inner()).get(key) {
            count.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut writes = writes.write().unwrap_or_else(|p| p.into_inner());
        writes
            .entry(key.to_owned())
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one webhook attempt by outcome (one of `WEBHOOK_OUTCOMES`).
    pub fn record_webhook_attempt(&self, outcome: &str) {
        if let Some(i) = WEBHOOK_OUTCOMES.iter().position(|o| *o == outcome) {
            self.inner.webhook_attempts[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records the time from an event to its delivery.
    pub fn observe_webhook_latency(&self, seconds: f64) {
        self.inner.webhook_latency.observe(seconds);
    }

    /// Sets the number of pending webhook deliveries.
    pub fn set_webhook_queue_depth(&self, pending: i64) {
        self.inner
            .webhook_queue_depth
            .store(pending.max(0) as u64, Ordering::Relaxed);
    }

    /// The metrics in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let escape = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        let routes = self.inner.routes.read().unwrap_or_else(|p| p.into_inner());
        let mut routes: Vec<_> = routes.iter().map(|(r, s)| (r.clone(), s.clone())).collect();
        routes.sort_by(|a, b| a.0.cmp(&b.0));
        let series = || {
            routes.iter().flat_map(|(route, all)| {
                METHODS
                    .iter()
                    .zip(&all.0)
                    .map(move |(method, one)| (route, *method, one))
            })
        };
        let mut counts = String::new();
        let mut latency = String::new();
        for (route, method, one) in series() {
            let labels = format!("method=\"{method}\",route=\"{}\"", escape(route));
            for (status, count) in one
                .statuses
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
            {
                let count = count.load(Ordering::Relaxed);
                let _ = writeln!(
                    counts,
                    "http_requests_total{{{labels},status=\"{status}\"}} {count}"
                );
            }
            if one.latency.count.load(Ordering::Relaxed) > 0 {
                one.latency
                    .write(&mut latency, "http_request_duration_seconds", &labels);
            }
        }
        let mut out = String::new();
        out.push_str(
            "# HELP http_requests_total HTTP requests answered, by route, method and status.\n",
        );
        out.push_str("# TYPE http_requests_total counter\n");
        out.push_str(&counts);
        out.push_str("# HELP http_request_duration_seconds Time to answer HTTP requests.\n");
        out.push_str("# TYPE http_request_duration_seconds histogram\n");
        out.push_str(&latency);
        out.push_str(
            "# HELP portico_datapoint_writes_total Durable datapoint writes, by datapoint.\n",
        );
        out.push_str("# TYPE portico_datapoint_writes_total counter\n");
        let writes = self
            .inner
            .datapoint_writes
            .read()
            .unwrap_or_else(|p| p.into_inner());
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
        out.push_str(
            "# HELP portico_webhook_attempts_total Webhook delivery attempts, by outcome.\n",
        );
        out.push_str("# TYPE portico_webhook_attempts_total counter\n");
        for (outcome, count) in WEBHOOK_OUTCOMES.iter().zip(&self.inner.webhook_attempts) {
            let _ = writeln!(
                out,
                "portico_webhook_attempts_total{{outcome=\"{outcome}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP portico_webhook_delivery_seconds Time from an event to its delivery.\n",
        );
        out.push_str("# TYPE portico_webhook_delivery_seconds histogram\n");
        self.inner
            .webhook_latency
            .write(&mut out, "portico_webhook_delivery_seconds", "");
        out.push_str("# HELP portico_webhook_queue_depth Pending webhook deliveries.\n");
        out.push_str("# TYPE portico_webhook_queue_depth gauge\n");
        let _ = writeln!(
            out,
            "portico_webhook_queue_depth {}",
            self.inner.webhook_queue_depth.load(Ordering::Relaxed)
        );
        out
    }
}
