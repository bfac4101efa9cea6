//! The pub/sub benchmark's client (`bench/nchan` runs it against Portico and nginx+nchan).
//!
//! `pubsub portico URL OUTBOX PIDS…` or `pubsub nchan URL PIDS…` measures one server and prints
//! one JSON object: publish throughput with 1 kB payloads, publish→deliver latency p50/p99 with
//! 1, 100 and 1,000 waiting long-poll readers and with 100 streaming readers, and resident memory
//! per idle waiting reader at 10,000 connections (the server processes' RSS, from `/proc`).
//!
//! Both servers get the same protocol shape: long-poll readers re-ask as soon as they are
//! answered (Portico: XRTC `watch` with a session each; nchan: `longpoll` with its
//! `If-Modified-Since`/`If-None-Match` cursor); streaming readers keep one response open
//! (Portico: XRTC `stream`; nchan: `http-raw-stream`). A round publishes one message and waits
//! until every reader has it, so no sleep stands in for synchronisation.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Notify};

#[path = "xrtc_account.rs"]
mod xrtc_account;

const PAYLOAD_BYTES: usize = 1000;

#[derive(Clone)]
enum Target {
    Portico { url: String, outbox: String },
    Nchan { url: String },
}

/// What a reader needs to ask again: Portico's session cookie; nchan's cursor headers.
#[derive(Clone, Default)]
struct Cursor {
    cookie: String,
    last_modified: String,
    etag: String,
}

struct Round {
    sent: Mutex<HashMap<u64, Instant>>,
    samples: Mutex<Vec<Duration>>,
    got: AtomicUsize,
    done: Notify,
}

fn payload(seq: u64) -> String {
    let head = format!("m{seq:012}");
    format!("{head}{}", "x".repeat(PAYLOAD_BYTES - head.len()))
}

fn seqs_in(text: &str) -> Vec<u64> {
    text.match_indices('m')
        .filter_map(|(at, _)| text.get(at + 1..at + 13)?.parse().ok())
        .collect()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .expect("client")
}

impl Target {
    /// A logged-in session (Portico), or nothing to do (nchan).
    async fn session(&self, http: &reqwest::Client, key: &(String, String)) -> Cursor {
        match self {
            Target::Portico { url, .. } => {
                let login = http
                    .post(format!("{url}/v1/auth/login"))
                    .body(format!(
                        r#"{{"accountid":"{}","apikey":"{}"}}"#,
                        key.0, key.1
                    ))
                    .send()
                    .await
                    .expect("login");
                assert!(login.status().is_success(), "login: {}", login.status());
                let cookie = login
                    .headers()
                    .get("set-cookie")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(';').next())
                    .expect("cookie")
                    .to_owned();
                Cursor {
                    cookie,
                    ..Cursor::default()
                }
            }
            Target::Nchan { .. } => Cursor::default(),
        }
    }

    async fn publish(&self, http: &reqwest::Client, session: &Cursor, channel: &str, seq: u64) {
        let response = match self {
            Target::Portico { url, .. } => http
                .post(format!("{url}/v1/item/set"))
                .header("cookie", &session.cookie)
                .body(format!(
                    r#"{{"items":[{{"portalid":"{channel}","payload":"{}"}}]}}"#,
                    payload(seq)
                ))
                .send()
                .await
                .expect("publish"),
            Target::Nchan { url } => http
                .post(format!("{url}/pub?id={channel}"))
                .body(payload(seq))
                .send()
                .await
                .expect("publish"),
        };
        assert!(
            response.status().is_success(),
            "publish: {}",
            response.status()
        );
        let _ = response.bytes().await;
    }

    /// One long-poll request; returns the body and moves the cursor.
    async fn poll(&self, http: &reqwest::Client, cursor: &mut Cursor, channel: &str) -> String {
        match self {
            Target::Portico { url, .. } => portico_get(http, url, cursor, channel, "watch")
                .await
                .text()
                .await
                .expect("poll body"),
            Target::Nchan { url } => {
                let mut request = http.get(format!("{url}/sub?id={channel}"));
                if !cursor.etag.is_empty() {
                    request = request
                        .header("if-modified-since", &cursor.last_modified)
                        .header("if-none-match", &cursor.etag);
                }
                let response = request.send().await.expect("poll");
                let header = |name: &str| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                cursor.last_modified = header("last-modified");
                cursor.etag = header("etag");
                response.text().await.expect("poll body")
            }
        }
    }

    async fn stream(
        &self,
        http: &reqwest::Client,
        cursor: &Cursor,
        channel: &str,
    ) -> reqwest::Response {
        match self {
            Target::Portico { url, .. } => portico_get(http, url, cursor, channel, "stream").await,
            Target::Nchan { url } => http
                .get(format!("{url}/stream?id={channel}"))
                .send()
                .await
                .expect("stream"),
        }
    }
}

/// An XRTC get of one portal, FIFO, in `mode`.
async fn portico_get(
    http: &reqwest::Client,
    url: &str,
    cursor: &Cursor,
    channel: &str,
    mode: &str,
) -> reqwest::Response {
    http.post(format!("{url}/v1/item/get"))
        .header("cookie", &cursor.cookie)
        .body(format!(
            r#"{{"portals":[{{"portalid":"{channel}"}}],"mode":"{mode}","schedule":"FIFO"}}"#
        ))
        .send()
        .await
        .expect("get")
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at].as_secs_f64() * 1000.0
}

/// Publishes with `concurrency` publishers for `seconds`; messages per second.
async fn throughput(target: &Target, session: &Cursor, seconds: u64, concurrency: usize) -> f64 {
    let http = client();
    let count = Arc::new(AtomicUsize::new(0));
    let end = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..concurrency {
        let (target, session, http, count) =
            (target.clone(), session.clone(), http.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let mut seq = (n as u64) << 32;
            while Instant::now() < end {
                target.publish(&http, &session, "throughput", seq).await;
                seq += 1;
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.expect("publisher");
    }
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Notes the messages in `text` a reader received now; `true` once it has the last round's.
async fn record(text: &str, round: &Round, seen: &mut u64, readers: usize, rounds: u64) -> bool {
    let at = Instant::now();
    for seq in seqs_in(text) {
        if seq < *seen {
            continue;
        }
        *seen = seq + 1;
        if let Some(sent) = round.sent.lock().await.get(&seq) {
            round.samples.lock().await.push(at - *sent);
        }
        if round.got.fetch_add(1, Ordering::AcqRel) + 1 == readers {
            round.done.notify_one();
        }
    }
    *seen > rounds
}

/// Latency with `readers` long-poll (or streaming) readers over `rounds` publishes: (p50, p99) ms.
async fn latency(
    target: &Target,
    publisher: &Cursor,
    sessions: &[Cursor],
    streaming: bool,
    rounds: u64,
    channel: &str,
) -> (f64, f64) {
    let round = Arc::new(Round {
        sent: Mutex::default(),
        samples: Mutex::default(),
        got: AtomicUsize::new(0),
        done: Notify::new(),
    });
    let readers = sessions.len();
    let http = client();
    let mut tasks = Vec::new();
    for session in sessions {
        let (target, http, round, channel) = (
            target.clone(),
            http.clone(),
            round.clone(),
            channel.to_owned(),
        );
        let mut cursor = session.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = 0u64;
            if streaming {
                let mut response = target.stream(&http, &cursor, &channel).await;
                while let Ok(Some(chunk)) = response.chunk().await {
                    let text = String::from_utf8_lossy(&chunk).into_owned();
                    if record(&text, &round, &mut seen, readers, rounds).await {
                        return;
                    }
                }
            } else {
                loop {
                    let text = target.poll(&http, &mut cursor, &channel).await;
                    if record(&text, &round, &mut seen, readers, rounds).await {
                        return;
                    }
                }
            }
        }));
    }
    let http = client();
    // Round 0 is a warm-up: every reader is connected once everyone has it.
    for seq in 0..=rounds {
        round.got.store(0, Ordering::Release);
        round.sent.lock().await.insert(seq, Instant::now());
        let notified = round.done.notified();
        target.publish(&http, publisher, channel, seq).await;
        tokio::time::timeout(Duration::from_secs(60), notified)
            .await
            .expect("every reader got the message");
        if seq == 0 {
            round.samples.lock().await.clear();
        }
    }
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
    }
    let mut samples = round.samples.lock().await.clone();
    samples.sort();
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

fn rss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum()
}

/// Bytes per idle waiting reader with `readers` of them open.
async fn idle_memory(target: &Target, session: &Cursor, pids: &[u32], readers: usize) -> f64 {
    let before = rss_kib(pids);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let mut tasks = Vec::new();
    for _ in 0..readers {
        let (target, http, mut cursor) = (target.clone(), http.clone(), session.clone());
        tasks.push(tokio::spawn(async move {
            let _ = target.poll(&http, &mut cursor, "idle").await;
        }));
    }
    // Let every request arrive, then wait for the resident size to settle.
    let mut last = rss_kib(pids);
    let mut steady = 0;
    while steady < 5 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let now = rss_kib(pids);
        steady = if now.abs_diff(last) < 64 {
            steady + 1
        } else {
            0
        };
        last = now;
    }
    for task in &tasks {
        task.abort();
    }
    (last.saturating_sub(before) * 1024) as f64 / readers as f64
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (target, pids) = match args.first().map(String::as_str) {
        Some("portico") => (
            Target::Portico {
                url: args[1].clone(),
                outbox: args[2].clone(),
            },
            &args[3..],
        ),
        Some("nchan") => (
            Target::Nchan {
                url: args[1].clone(),
            },
            &args[2..],
        ),
        _ => panic!("usage: pubsub portico URL OUTBOX PIDS… | pubsub nchan URL PIDS…"),
    };
    let pids: Vec<u32> = pids.iter().map(|p| p.parse().expect("pid")).collect();
    let rounds: u64 = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let idle_readers: usize = std::env::var("BENCH_IDLE_READERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let http = client();
    let key = match &target {
        Target::Portico { url, outbox } => {
            let email = format!("bench{}@example.com", std::process::id());
            xrtc_account::register(url, outbox, &http, &email).await
        }
        Target::Nchan { .. } => (String::new(), String::new()),
    };
    let publisher = target.session(&http, &key).await;
    let mut out = serde_json::Map::new();
    out.insert(
        "publish_per_s".into(),
        throughput(&target, &publisher, 5, 16).await.into(),
    );
    let mut sessions = Vec::new();
    for (readers, streaming, name) in [
        (1, false, "longpoll_1"),
        (100, false, "longpoll_100"),
        (1000, false, "longpoll_1000"),
        (100, true, "stream_100"),
    ] {
        while sessions.len() < readers {
            sessions.push(target.session(&http, &key).await);
        }
        // A fresh channel per measure; portal ids are letters and digits.
        let channel = name.replace('_', "");
        let (p50, p99) = latency(
            &target,
            &publisher,
            &sessions[..readers],
            streaming,
            rounds,
            &channel,
        )
        .await;
        out.insert(format!("{name}_p50_ms"), p50.into());
        out.insert(format!("{name}_p99_ms"), p99.into());
    }
    out.insert(
        "idle_bytes_per_reader".into(),
        idle_memory(&target, &publisher, &pids, idle_readers)
            .await
            .into(),
    );
    println!("{}", serde_json::Value::Object(out));
}
