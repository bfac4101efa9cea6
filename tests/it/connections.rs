//! Connection, request and stream limits: one address's share of the slots, the time a new
//! connection has to send its first bytes, whatever protocol it speaks, how long a connection
//! may idle and live, requests in progress, and event streams' count and lifetime.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{DATAPOINTS, EventReader, TestApp};

/// Reads until the peer closes; answers what it sent. Bounded to 10 s.
async fn read_to_close<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut all))
        .await
        .expect("the server closes the connection within 10 s")
        .unwrap_or_default();
    all
}

/// Sends one HTTP/1.1 `GET /healthz` that closes the connection; answers what came back.
async fn healthz<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
) -> Vec<u8> {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    read_to_close(stream).await
}

/// Whether `check` holds within 200 tries 10 ms apart: for what the server sees a moment after
/// the client (a closed connection, a dropped stream).
async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

fn address(app: &TestApp) -> String {
    app.url
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .to_owned()
}

/// A TLS connection to `app` offering `alpn`, handshaken, with nothing sent.
async fn tls_connection(app: &TestApp, alpn: &[u8]) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = app.cert_pem.as_deref().expect("a TLS server");
    for cert in CertificateDer::pem_slice_iter(pem) {
        roots.add(cert.expect("certificate")).expect("root");
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(address(app)).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    connector.connect(name, tcp).await.expect("handshake")
}

#[tokio::test]
async fn one_address_gets_its_share_of_connections_and_503_beyond_it() {
    let app = TestApp::spawn_with(&format!(
        "[tls]\nenabled = false\n[limits]\nmax_connections_per_address = 2\n{DATAPOINTS}"
    ))
    .await;
    let first = TcpStream::connect(address(&app)).await.expect("connect");
    let _second = TcpStream::connect(address(&app)).await.expect("connect");
    let mut third = TcpStream::connect(address(&app)).await.expect("connect");
    let answer = String::from_utf8_lossy(&read_to_close(&mut third).await).into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\r\nRetry-After: 5\r\n"), "{answer}");
    assert!(answer.contains(r#""code":"busy""#), "{answer}");

    // A closed connection gives its slot back: a new one is served once the server has seen
    // the close (it has, at the latest, when a request on the freed slot is answered).
    drop(first);
    let mut served = false;
    for _ in 0..100 {
        let mut stream = TcpStream::connect(address(&app)).await.expect("connect");
        let answer = healthz(&mut stream).await;
        if answer.starts_with(b"HTTP/1.1 200 OK") {
            served = true;
            break;
        }
        assert!(answer.starts_with(b"HTTP/1.1 503 "), "only 200 or 503");
        tokio::task::yield_now().await;
    }
    assert!(served, "the freed slot was never given back");
}

#[tokio::test]
async fn a_plain_connection_that_sends_nothing_or_too_little_is_closed_at_the_header_timeout() {
    let app = TestApp::spawn_with(&format!(
        "[tls]\nenabled = false\n[limits]\nheader_read_timeout_seconds = 1\n{DATAPOINTS}"
    ))
    .await;
    let mut silent = TcpStream::connect(address(&app)).await.expect("connect");
    assert!(read_to_close(&mut silent).await.is_empty());
    // Stopping inside HTTP/2's preface, or inside an HTTP/1 request head, is no better.
    for start in [&b"PRI * HTTP/2.0\r\n"[..], b"GET /healthz HTTP/1.1\r\nHo"] {
        let mut stream = TcpStream::connect(address(&app)).await.expect("connect");
        stream.write_all(start).await.expect("send");
        let answer = String::from_utf8_lossy(&read_to_close(&mut stream).await).into_owned();
        assert!(!answer.contains("200 OK"), "{answer}");
    }
    // A whole request is served, over HTTP/1.1 and with HTTP/2's prior knowledge.
    let mut stream = TcpStream::connect(address(&app)).await.expect("connect");
    assert!(healthz(&mut stream).await.starts_with(b"HTTP/1.1 200 OK"));
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let reply = h2
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .expect("GET");
    assert_eq!(reply.version(), reqwest::Version::HTTP_2);
    assert_eq!(reply.status(), 200);
}

#[tokio::test]
async fn a_tls_connection_speaks_what_alpn_chose_and_must_send_within_the_header_timeout() {
    let app = TestApp::spawn_with(&format!(
        "[limits]\nheader_read_timeout_seconds = 1\n{DATAPOINTS}"
    ))
    .await;
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let mut silent = tls_connection(&app, alpn).await;
        assert_eq!(
            silent.get_ref().1.alpn_protocol(),
            Some(alpn),
            "the server agreed to {}",
            String::from_utf8_lossy(alpn)
        );
        read_to_close(&mut silent).await;
    }
    // Clients get what they negotiate.
    let reply = app
        .client
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .expect("GET");
    assert_eq!(reply.version(), reqwest::Version::HTTP_2);
    let mut http1 = tls_connection(&app, b"http/1.1").await;
    assert!(healthz(&mut http1).await.starts_with(b"HTTP/1.1 200 OK"));
}

#[tokio::test]
async fn the_node_wide_connection_limit_answers_503_too() {
    let app = TestApp::spawn_with(&format!(
        "[tls]\nenabled = false\n[limits]\nmax_connections = 2\n{DATAPOINTS}"
    ))
    .await;
    let _first = TcpStream::connect(address(&app)).await.expect("connect");
    let _second = TcpStream::connect(address(&app)).await.expect("connect");
    let mut third = TcpStream::connect(address(&app)).await.expect("connect");
    let answer = String::from_utf8_lossy(&read_to_close(&mut third).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.contains("\r\nRetry-After: 5\r\n"), "{answer}");
    assert!(
        answer.contains("The server has as many connections open as it may"),
        "{answer}"
    );
}

/// An HTTP/2 frame as read: type, flags, stream, payload.
type Frame = (u8, u8, u32, Vec<u8>);

/// Opens an HTTP/2 connection with prior knowledge: the preface and an empty SETTINGS frame.
async fn h2_connect(app: &TestApp) -> TcpStream {
    let mut stream = TcpStream::connect(address(app)).await.expect("connect");
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    stream.write_all(&hello).await.expect("preface");
    stream
}

/// Sends `GET path` as HEADERS (END_STREAM | END_HEADERS) on `stream_id`, its header block
/// written with HPACK literals and static-table names (RFC 7541, appendix A).
async fn h2_get(stream: &mut TcpStream, stream_id: u32, path: &str) {
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http
    for (name_index, value) in [(0x04u8, path), (0x01, "localhost")] {
        block.push(name_index); // literal without indexing, indexed name (:path, :authority)
        block.push(u8::try_from(value.len()).expect("short value"));
        block.extend_from_slice(value.as_bytes());
    }
    let mut frame = vec![
        0,
        0,
        u8::try_from(block.len()).expect("short block"),
        1,
        0x05,
    ];
    frame.extend_from_slice(&stream_id.to_be_bytes());
    frame.extend_from_slice(&block);
    stream.write_all(&frame).await.expect("HEADERS");
}

/// Reads the next frame, or `None` when the connection closed or `within` passed.
async fn h2_frame(stream: &mut TcpStream, within: Duration) -> Option<Frame> {
    tokio::time::timeout(within, async {
        let mut head = [0u8; 9];
        stream.read_exact(&mut head).await.ok()?;
        let length = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; length];
        stream.read_exact(&mut payload).await.ok()?;
        let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        Some((head[3], head[4], id, payload))
    })
    .await
    .ok()
    .flatten()
}

/// Reads frames until the connection closes or goes quiet for `quiet`, acknowledging SETTINGS
/// and PING as a client must; answers the GOAWAY frames among them (last stream id, error
/// code), in order.
async fn h2_goaways(stream: &mut TcpStream, quiet: Duration) -> Vec<(u32, u32)> {
    let mut goaways = Vec::new();
    while let Some((kind, flags, _, payload)) = h2_frame(stream, quiet).await {
        let ack = match (kind, flags & 1) {
            (4, 0) => Some(vec![0, 0, 0, 4, 1, 0, 0, 0, 0]),
            (6, 0) => {
                let mut pong = vec![0, 0, 8, 6, 1, 0, 0, 0, 0];
                pong.extend_from_slice(&payload);
                Some(pong)
            }
            _ => None,
        };
        if let Some(ack) = ack {
            // The server may have closed already; that is what the caller looks for.
            let _ = stream.write_all(&ack).await;
        }
        if kind == 7 && payload.len() >= 8 {
            let last = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
            let code = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
            goaways.push((last & 0x7fff_ffff, code));
        }
    }
    goaways
}

/// A graceful close as RFC 9113 §6.8 describes it: GOAWAY with the largest stream id and
/// NO_ERROR, then the final GOAWAY naming the last stream processed, then the close.
fn graceful(goaways: &[(u32, u32)], last_stream: u32) -> bool {
    goaways.first() == Some(&(0x7fff_ffff, 0)) && goaways.last() == Some(&(last_stream, 0))
}

#[tokio::test]
async fn an_http2_connection_without_open_streams_is_closed_at_the_idle_timeout() {
    let app = TestApp::spawn_with(&format!(
        "[tls]\nenabled = false\n[limits]\nidle_timeout_seconds = 1\n{DATAPOINTS}"
    ))
    .await;
    // Nothing asked: GOAWAY with NO_ERROR, then the close.
    let mut idle = h2_connect(&app).await;
    let goaways = h2_goaways(&mut idle, Duration::from_secs(10)).await;
    assert!(graceful(&goaways, 0), "{goaways:?}");

    // A connection whose stream is open is not idle, however long the stream lasts.
    let mut busy = h2_connect(&app).await;
    h2_get(&mut busy, 1, "/api/v1/datapoints/T.Int/events").await;
    let mut answered = false;
    while let Some((kind, _, id, _)) = h2_frame(&mut busy, Duration::from_secs(5)).await {
        if kind == 1 && id == 1 {
            answered = true;
            break;
        }
    }
    assert!(answered, "the stream's HEADERS arrived");
    assert_eq!(
        h2_goaways(&mut busy, Duration::from_secs(3)).await,
        [],
        "no GOAWAY in three idle timeouts while a stream is open"
    );
    // The stream ends (RST_STREAM, CANCEL): the connection is idle, and closed.
    let mut reset = vec![0, 0, 4, 3, 0];
    reset.extend_from_slice(&1u32.to_be_bytes());
    reset.extend_from_slice(&8u32.to_be_bytes());
    busy.write_all(&reset).await.expect("RST_STREAM");
    let goaways = h2_goaways(&mut busy, Duration::from_secs(10)).await;
    assert!(graceful(&goaways, 1), "{goaways:?}");
}

#[tokio::test]
async fn a_connection_is_closed_gracefully_at_its_maximum_age() {
    let app = TestApp::spawn_with(&format!(
        "[tls]\nenabled = false\n[limits]\nmax_connection_age_seconds = 1\n\
         header_read_timeout_seconds = 60\n{DATAPOINTS}"
    ))
    .await;
    let mut h2 = h2_connect(&app).await;
    let goaways = h2_goaways(&mut h2, Duration::from_secs(10)).await;
    assert!(graceful(&goaways, 0), "{goaways:?}");
    // HTTP/1.1: a kept-alive connection is closed after its answer, long before the header
    // timeout would close it.
    let mut h1 = TcpStream::connect(address(&app)).await.expect("connect");
    h1.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("send");
    let answer = read_to_close(&mut h1).await;
    assert!(answer.starts_with(b"HTTP/1.1 200 OK"));
}

#[tokio::test]
async fn requests_in_progress_are_capped_per_address_with_503() {
    let app = TestApp::spawn_with(&format!(
        "[tls]\nenabled = false\n[limits]\nmax_requests_in_progress_per_address = 1\n{DATAPOINTS}"
    ))
    .await;
    // A token request whose body has not all arrived is in progress while it is read.
    let mut slow = TcpStream::connect(address(&app)).await.expect("connect");
    slow.write_all(
        b"POST /realms/node/protocol/openid-connect/token HTTP/1.1\r\nHost: x\r\n\
          Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant",
    )
    .await
    .expect("send");
    let mut refused = None;
    for _ in 0..100 {
        let reply = app
            .client
            .get(format!("{}/healthz", app.url))
            .send()
            .await
            .expect("GET");
        if reply.status() == 503 {
            refused = Some(reply);
            break;
        }
        // The slow request has not reached the server yet: it will.
        tokio::task::yield_now().await;
    }
    let refused = refused.expect("a second request from the address is refused");
    assert_eq!(
        refused.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let problem: serde_json::Value = refused.json().await.expect("problem");
    assert_eq!(problem["code"], "busy");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("This address has as many requests in progress")),
        "{problem}"
    );
    // Once it is done (here: the client gives up), the address is served again.
    drop(slow);
    let served = eventually(|| async {
        let reply = app.client.get(format!("{}/healthz", app.url)).send().await;
        reply.expect("GET").status() == 200
    })
    .await;
    assert!(served);
}

#[tokio::test]
async fn a_reader_gets_its_share_of_event_streams_and_503_beyond_it() {
    let app = TestApp::spawn_with(&format!(
        "[tls]\nenabled = false\n[limits]\nmax_streams_per_reader = 2\n{DATAPOINTS}"
    ))
    .await;
    let first = EventReader::open(&app, "T.Int", None).await;
    let _second = EventReader::open(&app, "T.Bool", None).await;
    let refused = EventReader::connect(&app, "/api/v1/datapoints/T.Float/events", None, None)
        .await
        .err()
        .expect("a third stream of the same reader is refused");
    assert_eq!(refused.status, 503);
    assert_eq!(refused.headers["retry-after"], "5");
    assert!(
        refused.text.contains(r#""code":"busy""#),
        "{}",
        refused.text
    );
    assert!(
        refused
            .text
            .contains("This reader has as many event streams open"),
        "{}",
        refused.text
    );
    // A closed stream gives its share back once the server has seen it close.
    drop(first);
    let opened = eventually(|| async {
        EventReader::connect(&app, "/api/v1/datapoints/T.Float/events", None, None)
            .await
            .is_ok()
    })
    .await;
    assert!(opened);
}

#[tokio::test]
async fn an_event_stream_ends_at_its_maximum_lifetime_and_resumes() {
    let app = TestApp::spawn_with(&format!(
        "[tls]\nenabled = false\n[limits]\nstream_max_seconds = 1\n{DATAPOINTS}"
    ))
    .await;
    let mut events = EventReader::open(&app, "T.Int", None).await;
    let written = app.put_json("/api/v1/t/int", r#"{"value":7}"#).await;
    assert_eq!(written.status, 200, "{}", written.text);
    let first = events.next().await.expect("the write's event");
    assert_eq!(first.data["value"], 7);
    // Nothing more is written: the stream ends by its lifetime (`next` fails after 10 s).
    assert!(events.next().await.is_none());
    // The client reconnects where it left off and misses nothing written meanwhile.
    let written = app.put_json("/api/v1/t/int", r#"{"value":8}"#).await;
    assert_eq!(written.status, 200, "{}", written.text);
    let mut resumed = EventReader::open(&app, "T.Int", Some(&first.id)).await;
    let next = resumed
        .next()
        .await
        .expect("the write made between the streams");
    assert_eq!(next.data["value"], 8);
}

/// Sends `head` and then the whole `body` before reading anything (as Python's `urllib`
/// does), then reads the answer until the server closes or 10 s pass.
async fn send_all_then_read(app: &TestApp, head: String, body: Vec<u8>) -> String {
    let stream = TcpStream::connect(address(app)).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let sent = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        writer.write_all(&body).await?;
        writer.flush().await?;
        Ok::<_, std::io::Error>(writer)
    });
    let sent = tokio::time::timeout(Duration::from_secs(10), sent)
        .await
        .expect("the whole body is taken within 10 s")
        .expect("task")
        .expect("the whole body is taken, not refused with a reset");
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut answer))
        .await
        .expect("an answer within 10 s")
        .expect("read");
    drop(sent);
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

#[tokio::test]
async fn an_early_answer_reaches_a_client_that_sends_the_whole_body_first() {
    let app = TestApp::spawn_with(&format!("[tls]\nenabled = false\n{DATAPOINTS}")).await;
    let body = vec![b'1'; 8 * 1024 * 1024];
    for (path, status) in [
        ("/api/v1/t/int", "413 Payload Too Large"),
        ("/no/such/path", "404 Not Found"),
    ] {
        let head = format!(
            "PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        let answer = send_all_then_read(&app, head, body.clone()).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}\r\n")),
            "{answer}"
        );
    }
    // Over HTTP/2 the answer arrives as well, the stream is not reset under it.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let reply = h2
        .put(format!("{}/api/v1/t/int", app.url))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("an answer, not a reset stream");
    assert_eq!(reply.status(), 413);
}
