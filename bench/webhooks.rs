//! The webhook benchmark: Portico (in this process, plain HTTP on loopback) delivering
//! `datapoint.written` events to a fast local receiver (hyper, answering 200 at once).
//!
//! `cargo run --release --example webhooks [DATABASE_URL]` (default: a new SQLite file) prints
//! one JSON object:
//! - `deliveries_per_second`: 20,000 events written by 32 concurrent HTTP clients; deliveries
//!   counted at the receiver from the first write to the last delivery (and the write rate, to
//!   show which side is the limit);
//! - `latency_ms` p50/p95/p99 at a paced 200 events/s for 10 s: from the event's own time (the
//!   write's `Timestamp`, taken when the writer accepted it) to its arrival at the receiver.
//!
//! Every event must arrive; the run fails otherwise. Targets on SQLite: ≥ 1,000 deliveries/s and
//! p95 ≤ 50 ms.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use portico::clock::{Clock, SystemClock};
use tokio::sync::{Mutex, Notify};

const BURST: usize = 20_000;
const WRITERS: usize = 32;
const RATE: u64 = 200;
const PACED_SECONDS: u64 = 10;

/// What the receiver saw: arrival time per event timestamp, and a count.
#[derive(Default)]
struct Seen {
    arrivals: Mutex<HashMap<String, time::OffsetDateTime>>,
    count: AtomicUsize,
    changed: Notify,
}

async fn receiver(seen: Arc<Seen>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        async move {
                            let body = request.into_body().collect().await.map(|b| b.to_bytes());
                            let at = SystemClock.now();
                            if let Ok(body) = body
                                && let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body)
                                && let Some(time) = json["Timestamp"].as_str()
                            {
                                seen.arrivals.lock().await.insert(time.to_owned(), at);
                                seen.count.fetch_add(1, Ordering::Relaxed);
                                seen.changed.notify_waiters();
                            }
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::from_static(b"ok"),
                            )))
                        }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    url
}

async fn wait_for(seen: &Seen, count: usize, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let notified = seen.changed.notified();
        if seen.count.load(Ordering::Relaxed) >= count {
            return true;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return seen.count.load(Ordering::Relaxed) >= count;
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

async fn write(http: &reqwest::Client, url: &str, n: u64) -> String {
    let response = http
        .put(format!("{url}/api/v1/bench/value"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"value":{n}}}"#))
        .send()
        .await
        .expect("PUT");
    assert!(response.status().is_success(), "PUT: {}", response.status());
    let json: serde_json::Value = response.json().await.expect("json");
    json["updateTime"].as_str().expect("updateTime").to_owned()
}

#[tokio::main]
async fn main() {
    let database = std::env::args().nth(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let seen = Arc::new(Seen::default());
    let target = receiver(seen.clone()).await;
    let toml = r#"
[tls]
enabled = false

[log]
level = "warn"

[[datapoint]]
key = "bench.value"
type = "int"

[[endpoint]]
path = "/api/v1/bench/value"
datapoint = "bench.value"

[webhooks]
allow_targets = ["127.0.0.0/8"]
"#;
    let mut config: portico::config::Config = toml::from_str(toml).expect("config");
    config.data_dir = dir.path().join("data");
    config.listen = "127.0.0.1:0".parse().expect("listen");
    if let Some(url) = &database {
        config.database_url = Some(portico::secrets::Secret::new(url.clone()));
    }
    let backend = if database.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    std::fs::create_dir_all(&config.data_dir).expect("data dir");

    // The subscription, through the library on the server's own store and sealing key.
    let store = portico::store::Store::open(&config.store_location().expect("location"))
        .await
        .expect("store");
    let webhooks = portico::webhooks::Webhooks::new(
        config.webhooks.clone(),
        store.clone(),
        Arc::new(SystemClock),
        Arc::new(portico::server::load_sealer(&config).expect("sealer")),
        portico::metrics::Metrics::default(),
        Arc::new(portico::events::Visibility::default()),
        portico::events::Journal::new(store.clone(), portico::events::EventBus::default()),
    )
    .expect("webhooks");
    webhooks
        .create(
            portico::webhooks::SubscriptionSpec {
                url: target,
                topics: vec!["datapoint.written".into()],
                enabled: true,
                description: "bench".into(),
                accept_any_2xx: false,
                standard_webhooks: false,
            },
            &portico::access::Actor::Internal("setup"),
        )
        .await
        .expect("subscription");

    let server = portico::server::Server::build(config)
        .await
        .expect("server");
    let url = server.url();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(WRITERS)
        .build()
        .expect("client");

    // Throughput: a burst from 32 writers.
    let start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let writers = (0..WRITERS).map(|_| {
        let http = http.clone();
        let url = url.clone();
        let next = next.clone();
        tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < BURST {
                write(&http, &url, 1).await;
            }
        })
    });
    futures_util::future::join_all(writers).await;
    let written = start.elapsed();
    assert!(
        wait_for(&seen, BURST, Duration::from_secs(300)).await,
        "only {} of {BURST} delivered",
        seen.count.load(Ordering::Relaxed)
    );
    let delivered = start.elapsed();

    // Latency: 200 events/s, paced.
    seen.arrivals.lock().await.clear();
    seen.count.store(0, Ordering::Relaxed);
    let total = (RATE * PACED_SECONDS) as usize;
    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let mut pending = Vec::with_capacity(total);
    for n in 0..total {
        ticks.tick().await;
        let http = http.clone();
        let url = url.clone();
        pending.push(tokio::spawn(
            async move { write(&http, &url, n as u64).await },
        ));
    }
    let mut times = Vec::with_capacity(total);
    for task in pending {
        times.push(task.await.expect("writer"));
    }
    assert!(
        wait_for(&seen, total, Duration::from_secs(60)).await,
        "only {} of {total} paced events delivered",
        seen.count.load(Ordering::Relaxed)
    );
    let arrivals = seen.arrivals.lock().await;
    let mut latencies: Vec<f64> = times
        .iter()
        .map(|time| {
            let event =
                time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339)
                    .expect("time");
            let arrived = arrivals.get(time).expect("every event arrived");
            (*arrived - event).as_seconds_f64() * 1000.0
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let _ = stop.send(());
    let _ = running.await;
    println!(
        "{}",
        serde_json::json!({
            "backend": backend,
            "burst_events": BURST,
            "writes_per_second": (BURST as f64 / written.as_secs_f64()).round(),
            "deliveries_per_second": (BURST as f64 / delivered.as_secs_f64()).round(),
            "paced_events_per_second": RATE,
            "latency_ms": {
                "p50": (percentile(&latencies, 0.50) * 10.0).round() / 10.0,
                "p95": (percentile(&latencies, 0.95) * 10.0).round() / 10.0,
                "p99": (percentile(&latencies, 0.99) * 10.0).round() / 10.0,
            },
        })
    );
}
