//! One connection, from accept to hyper: its address's share of the connection slots, the TLS
//! handshake, and the protocol it speaks, chosen before hyper sees it.
//!
//! hyper-util's automatic protocol detection reads up to 24 bytes with no timer, so a client
//! that connects and sends nothing (or one byte) held a slot for ever. Here the protocol comes
//! from ALPN under TLS (HTTP/2 only when the client asked for `h2`), and a connection's first
//! bytes must arrive within `limits.header_read_timeout_seconds` on every listener; on a plain
//! listener those bytes tell HTTP/2's preface (prior knowledge) from an HTTP/1 request.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use crate::api;
use crate::api::error::{ErrorCode, ProblemOut};

/// HTTP/2's connection preface (RFC 9113 §3.4), which a client speaking HTTP/2 sends first.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long a refused connection is given to take its 503.
const REFUSAL_WRITE: Duration = Duration::from_secs(2);

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// hyper, set up once for each protocol.
#[derive(Clone)]
pub(super) struct Builders {
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
}

impl Builders {
    /// `builder` restricted to each protocol in turn.
    pub(super) fn new(builder: auto::Builder<TokioExecutor>) -> Self {
        Self {
            http1: builder.clone().http1_only(),
            http2: builder.http2_only(),
        }
    }
}

/// Open connections per address group ([`crate::net::address_group`]), so one host cannot take
/// every slot of `limits.max_connections`. A trusted proxy's connections are not counted: they
/// carry many clients. Entries exist only while connections are open.
#[derive(Debug)]
pub(super) struct PerAddress {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerAddress {
    pub(super) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            open: Mutex::default(),
        })
    }

    /// A slot for one more connection from `peer`'s group, or `None` when it has `limit`.
    pub(super) fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<AddressSlot> {
        let group = crate::net::address_group(peer);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(group).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            owner: self.clone(),
            group,
        })
    }
}

/// One open connection's place in [`PerAddress`], given back when dropped.
#[derive(Debug)]
pub(super) struct AddressSlot {
    owner: Arc<PerAddress>,
    group: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.group) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.group);
            }
        }
    }
}

/// Answers a connection refused for its address's share: 503 with `Retry-After` on a plain
/// listener (a TLS connection is closed before its handshake, which would cost more than the
/// answer is worth to an address already holding its share).
pub(super) async fn refuse(mut tcp: TcpStream, tls: bool) {
    if tls {
        return;
    }
    let _ = tokio::time::timeout(REFUSAL_WRITE, async {
        tcp.write_all(BUSY.as_bytes()).await?;
        tcp.shutdown().await
    })
    .await;
}

/// The refusal's bytes, made once: under a flood of refused connections only they are written.
static BUSY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let code = ErrorCode::Unavailable;
    let body = serde_json::to_string(&ProblemOut {
        type_uri: format!("urn:portico:problem:{}", code.as_str()),
        title: code.title(),
        status: code.status().as_u16(),
        detail: "This address has as many connections open as it may; try again later.".into(),
        code,
    })
    .unwrap_or_default();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n\
         Content-Type: application/problem+json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
});

pub(super) struct Connection {
    pub(super) service: Router,
    pub(super) peer: SocketAddr,
    pub(super) proxies: Arc<crate::net::TrustedProxies>,
    pub(super) builders: Builders,
    pub(super) watcher: hyper_util::server::graceful::Watcher,
    /// Its address's slot (none for a trusted proxy), held while it is open.
    pub(super) slot: Option<AddressSlot>,
    pub(super) handshake_timeout: Duration,
    pub(super) first_bytes_timeout: Duration,
}

impl Connection {
    pub(super) async fn serve(self, tcp: TcpStream, acceptor: Option<TlsAcceptor>) {
        let peer = self.peer;
        match acceptor {
            Some(acceptor) => {
                match tokio::time::timeout(self.handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        // HTTP/2 over TLS is negotiated (RFC 9113 §3.2); without ALPN, HTTP/1.1.
                        let protocol = match stream.get_ref().1.alpn_protocol() {
                            Some(b"h2") => Protocol::Http2,
                            _ => Protocol::Http1,
                        };
                        self.speak(stream, Some(protocol)).await;
                    }
                    Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            }
            None => self.speak(tcp, None).await,
        }
    }

    /// Reads the first bytes within the timeout, then hands the connection to hyper in
    /// `protocol` (or the one those bytes show).
    async fn speak<S>(self, mut stream: S, protocol: Option<Protocol>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        let Some((shown, prefix)) = first_bytes(&mut stream, self.first_bytes_timeout).await else {
            tracing::debug!(%peer, "no request within the header timeout; closing");
            return;
        };
        let builder = match protocol.unwrap_or(shown) {
            Protocol::Http1 => &self.builders.http1,
            Protocol::Http2 => &self.builders.http2,
        };
        let proxies = self.proxies;
        // Handlers that need the client's address (throttling, session binding) read
        // `ClientIp`: the peer, or the address a trusted proxy forwarded.
        let service = TowerToHyperService::new(tower::util::MapRequest::new(
            self.service,
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                let forwarded = request
                    .headers()
                    .get_all(proxies.header())
                    .iter()
                    .filter_map(|value| value.to_str().ok());
                let client = proxies.client(peer.ip(), forwarded);
                let extensions = request.extensions_mut();
                extensions.insert(axum::extract::ConnectInfo(peer));
                extensions.insert(api::extract::ClientIp(client));
                request
            },
        ));
        let io = TokioIo::new(Replay {
            prefix,
            at: 0,
            inner: stream,
        });
        let connection = builder.serve_connection(io, service);
        if let Err(error) = self.watcher.watch(connection.into_owned()).await {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
        drop(self.slot);
    }
}

/// Reads a connection's first bytes, within `within`, until they tell HTTP/2's preface from
/// anything else (an HTTP/1 request): at most 24 bytes. Answers what they show and the bytes,
/// or `None` when the client closed or sent too little in time.
async fn first_bytes<S: AsyncRead + Unpin>(
    stream: &mut S,
    within: Duration,
) -> Option<(Protocol, Vec<u8>)> {
    let deadline = tokio::time::Instant::now() + within;
    let mut read = [0u8; PREFACE.len()];
    let mut have = 0;
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut read[have..])).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return None,
        };
        have += n;
        if !PREFACE.starts_with(&read[..have]) {
            return Some((Protocol::Http1, read[..have].to_vec()));
        }
        if have == PREFACE.len() {
            return Some((Protocol::Http2, read.to_vec()));
        }
    }
}

/// A stream whose first bytes were read already: they are read again first.
struct Replay<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.prefix.len() {
            let n = (this.prefix.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
            if this.at == this.prefix.len() {
                // Replayed: the connection keeps no copy while it waits.
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_bytes_tell_http2_from_http1_and_are_replayed() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(PREFACE).await.unwrap_or_default();
        let shown = first_bytes(&mut server, Duration::from_secs(5)).await;
        assert_eq!(
            shown.map(|(p, b)| (p, b.len())),
            Some((Protocol::Http2, 24))
        );

        let (mut client, mut server) = tokio::io::duplex(64);
        client
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .unwrap_or_default();
        let (protocol, prefix) = first_bytes(&mut server, Duration::from_secs(5))
            .await
            .unwrap_or((Protocol::Http2, Vec::new()));
        assert_eq!(protocol, Protocol::Http1);
        let mut replay = Replay {
            prefix,
            at: 0,
            inner: server,
        };
        drop(client);
        let mut all = Vec::new();
        replay.read_to_end(&mut all).await.unwrap_or_default();
        assert_eq!(all, b"GET / HTTP/1.1\r\n\r\n");
    }

    #[tokio::test]
    async fn a_client_that_stops_inside_the_preface_is_dropped_at_the_deadline() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"PRI * HTTP").await.unwrap_or_default();
        // The client is still connected: only the deadline ends the wait.
        assert_eq!(
            first_bytes(&mut server, Duration::from_millis(50)).await,
            None
        );
        drop(client);
    }
}
