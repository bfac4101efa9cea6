//! Connection limits: one address's share of the slots, and the time a new connection has to
//! send its first bytes, whatever protocol it speaks.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{DATAPOINTS, TestApp};

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
    assert!(answer.contains(r#""code":"unavailable""#), "{answer}");

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
