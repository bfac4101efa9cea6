//! Graceful shutdown finishes in-flight requests and then stops.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{DATAPOINTS, TestApp};

/// Reads from `stream` until `buffer` contains `needle` (or the peer closes); bounded to 10 s.
async fn read_until(stream: &mut TcpStream, buffer: &mut Vec<u8>, needle: &str) -> String {
    let read = async {
        let mut chunk = [0u8; 4096];
        while !String::from_utf8_lossy(buffer).contains(needle) {
            let n = stream.read(&mut chunk).await.expect("read");
            if n == 0 {
                break;
            }
            buffer.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("answer within 10 s");
    String::from_utf8_lossy(buffer).into_owned()
}

#[tokio::test]
async fn an_in_flight_request_completes_after_shutdown_begins() {
    let mut app = TestApp::spawn_with(&format!("[tls]\nenabled = false\n{DATAPOINTS}")).await;
    let address = app.url.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).await.expect("connect");
    let body = r#"{"value":42}"#;
    let head = format!(
        "PUT /api/v1/t/int HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("send head");
    // "100 Continue" is sent when the handler starts reading the body: the request is in flight.
    let mut buffer = Vec::new();
    let interim = read_until(&mut stream, &mut buffer, "\r\n\r\n").await;
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim}");
    buffer.clear();

    app.begin_shutdown();
    let mut started = app.shutdown_started.clone();
    tokio::time::timeout(Duration::from_secs(10), started.wait_for(|s| *s))
        .await
        .expect("shutdown")
        .expect("watch");
    assert!(
        TcpStream::connect(&address).await.is_err(),
        "no new connections once shutdown began"
    );

    stream.write_all(body.as_bytes()).await.expect("send body");
    let response = read_until(&mut stream, &mut buffer, "}").await;
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains(r#""value":42"#), "{response}");
    tokio::time::timeout(Duration::from_secs(10), app.stopped())
        .await
        .expect("server stops");

    // The write was durable before it was acknowledged.
    let (dir, database) = app.stop().await;
    let app = TestApp::spawn_in(
        dir,
        database,
        &format!("[tls]\nenabled = false\n{DATAPOINTS}"),
    )
    .await;
    assert_eq!(app.get("/api/v1/t/int").await.json()["value"], 42);
}
