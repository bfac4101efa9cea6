//! The attack suite's client (`bench/attack` runs it against a real `portico serve`).
//!
//! `attack URL CERT OUTBOX PID CLIENT_ID CLIENT_SECRET` runs each attack from 127.0.0.1 while a
//! probe on 127.0.0.2 reads a datapoint and gets a client-credentials token five times a second
//! (so a ten-second window has fifty samples of each), after an unloaded probe window in the same
//! run. It prints one line per attack: the probe's success rate and p99 against the unloaded
//! p99, and the server's resident memory before and after the attack. Every attack is bounded in
//! count and in time; nothing leaves loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpSocket, TcpStream};

#[path = "xrtc_account.rs"]
mod xrtc_account;

/// How long the probe measures under each attack.
const WINDOW: Duration = Duration::from_secs(10);
/// How long an attack runs before the probe starts measuring.
const RAMP: Duration = Duration::from_secs(3);

struct Target {
    url: String,
    host: String,
    cert: Vec<u8>,
    outbox: String,
    pid: u32,
    client_id: String,
    client_secret: String,
}

/// A client from `source` trusting the server's certificate.
fn client(target: &Target, source: [u8; 4], h2: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(source))
        .tls_certs_only([reqwest::Certificate::from_pem(&target.cert).expect("certificate")])
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64);
    if h2 {
        builder = builder.http2_prior_knowledge();
    }
    builder.build().expect("client")
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// What the probe saw in one window.
struct Probed {
    ok: usize,
    total: usize,
    latencies: Vec<Duration>,
}

impl Probed {
    fn p99_ms(&self) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        if sorted.is_empty() {
            return f64::NAN;
        }
        let at = ((sorted.len() as f64 - 1.0) * 0.99).round() as usize;
        sorted[at].as_secs_f64() * 1000.0
    }
}

/// Reads the datapoint and gets a token every 200 ms for `WINDOW`, from 127.0.0.2.
async fn probe(target: &Target) -> Probed {
    let http = client(target, [127, 0, 0, 2], false);
    let mut out = Probed {
        ok: 0,
        total: 0,
        latencies: Vec::new(),
    };
    let mut ticks = tokio::time::interval(Duration::from_millis(200));
    let end = Instant::now() + WINDOW;
    while Instant::now() < end {
        ticks.tick().await;
        for token in [false, true] {
            let started = Instant::now();
            let request = match token {
                false => http.get(format!("{}/api/v1/boiler/temperature", target.url)),
                true => http
                    .post(format!(
                        "{}/realms/node/protocol/openid-connect/token",
                        target.url
                    ))
                    .basic_auth(&target.client_id, Some(&target.client_secret))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("grant_type=client_credentials"),
            };
            out.total += 1;
            if let Ok(reply) = request.send().await
                && reply.status().is_success()
                && reply.bytes().await.is_ok()
            {
                out.ok += 1;
                out.latencies.push(started.elapsed());
            }
        }
    }
    out
}

/// Runs `attack` until told to stop; the probe measures meanwhile.
async fn measure<F, Fut>(target: &Arc<Target>, name: &str, unloaded_p99: f64, attack: F)
where
    F: FnOnce(Arc<Target>, Arc<AtomicBool>, Arc<AtomicU64>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let before = rss_kib(target.pid);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let running = tokio::spawn(attack(target.clone(), stop.clone(), sent.clone()));
    tokio::time::sleep(RAMP).await;
    let probed = probe(target).await;
    let during = rss_kib(target.pid);
    stop.store(true, Ordering::SeqCst);
    let _ = tokio::time::timeout(Duration::from_secs(30), running).await;
    let after = rss_kib(target.pid);
    let p99 = probed.p99_ms();
    println!(
        "| {name:<40} | {:>9} | {:>6.1}% | {:>8.2} | {:>6.2}x | {:>8} | {:>8} | {:>8} | {:>+7.1} |",
        sent.load(Ordering::SeqCst),
        100.0 * probed.ok as f64 / probed.total.max(1) as f64,
        p99,
        p99 / unloaded_p99,
        before / 1024,
        during / 1024,
        after / 1024,
        (during.max(after) as f64 - before as f64) / 1024.0,
    );
}

/// A TCP connection from 127.0.0.1 (the attackers' address).
async fn connect(target: &Target) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind("127.0.0.1:0".parse().expect("address"))?;
    socket
        .connect(target.host.parse().expect("host:port"))
        .await
}

/// 4,096 TLS connections that complete the handshake and send nothing.
async fn slowloris(target: Arc<Target>, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&target.cert) {
        roots.add(cert.expect("certificate")).expect("root");
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut held = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4096 {
        let (target, connector, sent) = (target.clone(), connector.clone(), sent.clone());
        tasks.spawn(async move {
            let tcp = connect(&target).await.ok()?;
            sent.fetch_add(1, Ordering::SeqCst);
            let name = ServerName::try_from("localhost").expect("name");
            tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
                .await
                .ok()?
                .ok()
        });
        while tasks.len() >= 256 {
            if let Some(Ok(Some(stream))) = tasks.join_next().await {
                held.push(stream);
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok(Some(stream)) = done {
            held.push(stream);
        }
    }
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(held);
}

/// HTTP/2 connections opening 256 streams each whose bodies never finish.
async fn h2_idle_streams(target: Arc<Target>, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let http = client(&target, [127, 0, 0, 1], true);
        for _ in 0..256 {
            let (http, target, stop, sent) =
                (http.clone(), target.clone(), stop.clone(), sent.clone());
            tasks.spawn(async move {
                let never = futures_util::stream::unfold(stop, |stop| async move {
                    while !stop.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    None::<(Result<Vec<u8>, std::io::Error>, _)>
                });
                sent.fetch_add(1, Ordering::SeqCst);
                let _ = http
                    .put(format!("{}/api/v1/boiler/temperature", target.url))
                    .header("content-type", "application/json")
                    .header("content-length", "100")
                    .body(reqwest::Body::wrap_stream(never))
                    .send()
                    .await;
            });
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// 10,000 SSE subscribers of a datapoint.
async fn sse_subscribers(target: Arc<Target>, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let http = client(&target, [127, 0, 0, 1], true);
        for _ in 0..250 {
            let (http, target, stop, sent) =
                (http.clone(), target.clone(), stop.clone(), sent.clone());
            tasks.spawn(async move {
                sent.fetch_add(1, Ordering::SeqCst);
                let Ok(mut reply) = http
                    .get(format!(
                        "{}/api/v1/datapoints/Boiler.Temperature/events",
                        target.url
                    ))
                    .send()
                    .await
                else {
                    return;
                };
                while !stop.load(Ordering::SeqCst) {
                    match tokio::time::timeout(Duration::from_millis(200), reply.chunk()).await {
                        Ok(Ok(Some(_))) | Err(_) => {}
                        _ => return,
                    }
                }
            });
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// An XRTC session asking for random portal ids, ten per get, as fast as its key may.
async fn cursor_flood(target: Arc<Target>, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    let http = client(&target, [127, 0, 0, 1], false);
    let (account, key) =
        xrtc_account::register(&target.url, &target.outbox, &http, "flood@example.com").await;
    let login = http
        .post(format!("{}/v1/auth/login", target.url))
        .body(format!(r#"{{"accountid":"{account}","apikey":"{key}"}}"#))
        .send()
        .await
        .expect("login");
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_owned();
    let mut n: u64 = 0;
    while !stop.load(Ordering::SeqCst) {
        let portals: Vec<String> = (0..10)
            .map(|_| {
                n += 1;
                format!(r#"{{"portalid":"r{n:x}"}}"#)
            })
            .collect();
        sent.fetch_add(10, Ordering::SeqCst);
        let reply = http
            .post(format!("{}/v1/item/get", target.url))
            .header("cookie", &cookie)
            .body(format!(r#"{{"portals":[{}]}}"#, portals.join(",")))
            .send()
            .await;
        if let Ok(reply) = reply
            && reply.status() == 400
        {
            // The key's rate: wait as asked.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// 1,000 concurrent registration starts for one e-mail address.
async fn registration_race(target: Arc<Target>, _stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    let http = client(&target, [127, 0, 0, 1], true);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (http, target, sent) = (http.clone(), target.clone(), sent.clone());
        tasks.spawn(async move {
            sent.fetch_add(1, Ordering::SeqCst);
            let _ = http
                .post(format!("{}/v1/auth/registrationstart", target.url))
                .body(r#"{"email":"race@example.com"}"#)
                .send()
                .await;
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Tokens with random key ids, as fast as 64 concurrent clients can send them.
async fn random_kids(target: Arc<Target>, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    flood(target, stop, sent, |target, http, n| {
        let header = b64(&format!(
            r#"{{"alg":"ES256","kid":"k{n:016x}","typ":"at+jwt"}}"#
        ));
        let claims = b64(&format!(
            r#"{{"iss":"{}/realms/node","sub":"x","exp":9999999999}}"#,
            target.url
        ));
        http.get(format!("{}/api/v1/boiler/temperature", target.url))
            .bearer_auth(format!("{header}.{claims}.{}", b64("not a signature")))
    })
    .await;
}

/// Wrong client secrets for the probe's own client, as fast as 64 concurrent clients can.
async fn wrong_secrets(target: Arc<Target>, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    flood(target, stop, sent, |target, http, n| {
        http.post(format!(
            "{}/realms/node/protocol/openid-connect/token",
            target.url
        ))
        .basic_auth(&target.client_id, Some(format!("wrong{n}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
    })
    .await;
}

async fn flood(
    target: Arc<Target>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    request: fn(&Target, &reqwest::Client, u64) -> reqwest::RequestBuilder,
) {
    let http = client(&target, [127, 0, 0, 1], false);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (http, target, stop, sent) = (http.clone(), target.clone(), stop.clone(), sent.clone());
        tasks.spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let n = sent.fetch_add(1, Ordering::SeqCst);
                let _ = request(&target, &http, n).send().await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, cert, outbox, pid, client_id, client_secret] = args.as_slice() else {
        eprintln!("usage: attack URL CERT OUTBOX PID CLIENT_ID CLIENT_SECRET");
        std::process::exit(2);
    };
    let target = Arc::new(Target {
        host: url.trim_start_matches("https://").to_owned(),
        url: url.clone(),
        cert: std::fs::read(cert).expect("certificate"),
        outbox: outbox.clone(),
        pid: pid.parse().expect("pid"),
        client_id: client_id.clone(),
        client_secret: client_secret.clone(),
    });
    let unloaded = probe(&target).await;
    let unloaded_p99 = unloaded.p99_ms();
    println!(
        "unloaded probe: {} of {} answered, p99 {unloaded_p99:.2} ms, server RSS {} MiB",
        unloaded.ok,
        unloaded.total,
        rss_kib(target.pid) / 1024
    );
    println!();
    println!(
        "| attack                                   |      sent |  probe ok |  p99 ms | vs unl. | RSS MiB before | during | after | growth |"
    );
    println!(
        "|------------------------------------------|-----------|-----------|---------|---------|--------|--------|-------|--------|"
    );
    measure(
        &target,
        "slowloris: 4,096 idle TLS connections",
        unloaded_p99,
        slowloris,
    )
    .await;
    measure(
        &target,
        "HTTP/2: 16 connections x 256 idle streams",
        unloaded_p99,
        h2_idle_streams,
    )
    .await;
    measure(
        &target,
        "10,000 SSE subscribers",
        unloaded_p99,
        sse_subscribers,
    )
    .await;
    measure(
        &target,
        "XRTC cursor flood (random portal ids)",
        unloaded_p99,
        cursor_flood,
    )
    .await;
    measure(
        &target,
        "1,000 concurrent registrationstart",
        unloaded_p99,
        registration_race,
    )
    .await;
    measure(&target, "tokens with random kid", unloaded_p99, random_kids).await;
    measure(&target, "wrong client secrets", unloaded_p99, wrong_secrets).await;
}
