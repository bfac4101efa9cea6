//! One connection, from accept to hyper: its address's share of the connection slots, the TLS
//! handshake, the protocol it speaks (chosen before hyper sees it), and when it ends.
//!
//! hyper-util's automatic protocol detection reads up to 24 bytes with no timer, so a client
//! that connects and sends nothing (or one byte) held a slot for ever. Here the protocol comes
//! from ALPN under TLS (HTTP/2 only when the client asked for `h2`), and a connection's first
//! bytes must arrive within `limits.header_read_timeout_seconds` on every listener; on a plain
//! listener those bytes tell HTTP/2's preface (prior knowledge) from an HTTP/1 request.
//!
//! A connection ends gracefully (HTTP/2: GOAWAY, then its open streams finish; HTTP/1: after the
//! request in progress) when the server shuts down, when it reaches `limits.max_connection_age_seconds`,
//! and, for HTTP/2, when no stream has been open for `limits.idle_timeout_seconds` (keep-alive
//! pings do not count: any client answers them). An idle HTTP/1 connection is closed by hyper's
//! header timeout, which runs from the moment it waits for the next request. A connection that
//! has not finished closing `limits.shutdown_grace_seconds` later is dropped.
//!
//! An answer given before the request's body was read (413, 404, 401, 415) must reach clients
//! that send the whole body before they read: a body dropped unread is drained in the
//! background, up to `limits.linger_bytes` within `limits.linger_seconds` (nginx's lingering
//! close), so the connection is not reset under the answer. Over HTTP/2 the stream is then
//! complete, or reset after the answer.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use futures_util::future::Either;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
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

/// Which connection limit a refused connection met.
#[derive(Debug, Clone, Copy)]
pub(super) enum Refusal {
    /// `limits.max_connections_per_address`.
    Address,
    /// `limits.max_connections`.
    Node,
}

/// Answers a refused connection: 503 with `Retry-After` on a plain listener (a TLS connection
/// is closed before its handshake, which would cost more than the answer is worth when the
/// server or the address is at its limit).
pub(super) async fn refuse(mut tcp: TcpStream, tls: bool, why: Refusal) {
    if tls {
        return;
    }
    let bytes = match why {
        Refusal::Address => &*BUSY_ADDRESS,
        Refusal::Node => &*BUSY_NODE,
    };
    let _ = tokio::time::timeout(REFUSAL_WRITE, async {
        tcp.write_all(bytes.as_bytes()).await?;
        tcp.shutdown().await
    })
    .await;
}

/// The refusals' bytes, made once: under a flood of refused connections only they are written.
static BUSY_ADDRESS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    busy("This address has as many connections open as it may; try again later.")
});
static BUSY_NODE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    busy("The server has as many connections open as it may; try again later.")
});

fn busy(detail: &str) -> String {
    let code = ErrorCode::Busy;
    let body = serde_json::to_string(&ProblemOut {
        type_uri: format!("urn:portico:problem:{}", code.as_str()),
        title: code.title(),
        status: code.status().as_u16(),
        detail: detail.into(),
        code,
    })
    .unwrap_or_default();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n\
         Content-Type: application/problem+json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
}

pub(super) struct Connection {
    pub(super) service: Router,
    pub(super) peer: SocketAddr,
    pub(super) proxies: Arc<crate::net::TrustedProxies>,
    pub(super) builders: Builders,
    /// Becomes `true` when the server shuts down.
    pub(super) shutdown: watch::Receiver<bool>,
    /// Its address's share (none for a trusted proxy), held while it is open.
    pub(super) slot: Option<crate::share::Share<IpAddr>>,
    pub(super) timeouts: Timeouts,
}

/// How long a connection may take, wait and last.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    pub(super) handshake: Duration,
    pub(super) first_bytes: Duration,
    /// HTTP/2: how long no stream may be open.
    pub(super) idle: Duration,
    pub(super) max_age: Duration,
    /// How long a connection closing gracefully is given to finish (a client that never
    /// acknowledges the GOAWAY's PING, a stream that goes on).
    pub(super) drain: Duration,
    /// How much of a body dropped unread is read and discarded, and for how long.
    pub(super) linger: Linger,
}

/// The bounds of draining a request body nobody read.
#[derive(Debug, Clone, Copy)]
pub(super) struct Linger {
    pub(super) bytes: u64,
    pub(super) time: Duration,
}

impl Connection {
    pub(super) async fn serve(self, tcp: TcpStream, acceptor: Option<TlsAcceptor>) {
        let peer = self.peer;
        match acceptor {
            Some(acceptor) => {
                match tokio::time::timeout(self.timeouts.handshake, acceptor.accept(tcp)).await {
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
    /// `protocol` (or the one those bytes show) until it ends.
    async fn speak<S>(self, mut stream: S, protocol: Option<Protocol>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        let Some((shown, prefix)) = first_bytes(&mut stream, self.timeouts.first_bytes).await
        else {
            tracing::debug!(%peer, "no request within the header timeout; closing");
            return;
        };
        let protocol = protocol.unwrap_or(shown);
        let (builder, activity) = match protocol {
            Protocol::Http1 => (&self.builders.http1, None),
            Protocol::Http2 => (&self.builders.http2, Some(Arc::new(Activity::default()))),
        };
        let proxies = self.proxies;
        let linger = self.timeouts.linger;
        // Handlers that need the client's address (throttling, session binding) read
        // `ClientIp`: the peer, or the address a trusted proxy forwarded.
        let service = tower::util::MapRequest::new(
            self.service,
            move |request: axum::http::Request<hyper::body::Incoming>| {
                let mut request = request.map(|body| Lingering {
                    body: Some(body),
                    linger,
                });
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
        );
        let service = TowerToHyperService::new(Counted {
            inner: service,
            activity: activity.clone(),
        });
        let io = TokioIo::new(Replay {
            prefix,
            at: 0,
            inner: stream,
        });
        let connection = builder.serve_connection(io, service);
        tokio::pin!(connection);
        let aged = tokio::time::sleep(self.timeouts.max_age);
        tokio::pin!(aged);
        let idle = async {
            match &activity {
                Some(activity) => activity.idle_for(self.timeouts.idle).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(idle);
        let drain = tokio::time::sleep(self.timeouts.max_age + self.timeouts.drain);
        tokio::pin!(drain);
        let mut shutdown = self.shutdown;
        let mut closing = false;
        loop {
            let why = tokio::select! {
                ended = connection.as_mut() => {
                    if let Err(error) = ended {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                    break;
                }
                () = &mut drain, if closing => {
                    tracing::debug!(%peer, "the connection did not finish closing in time; dropping it");
                    break;
                }
                () = &mut aged, if !closing => "it reached its maximum age",
                () = &mut idle, if !closing => "it was idle",
                Ok(_) = shutdown.wait_for(|stopping| *stopping), if !closing => "the server is stopping",
            };
            tracing::debug!(%peer, why, "closing the connection gracefully");
            closing = true;
            drain
                .as_mut()
                .reset(tokio::time::Instant::now() + self.timeouts.drain);
            connection.as_mut().graceful_shutdown();
        }
        drop(self.slot);
    }
}

/// How many requests an HTTP/2 connection has in progress (a stream's answer counts until its
/// body has been sent or dropped), and a signal when that changes to or from none.
#[derive(Debug, Default)]
struct Activity {
    active: AtomicUsize,
    changed: Notify,
}

impl Activity {
    fn enter(self: &Arc<Self>) -> Active {
        if self.active.fetch_add(1, Ordering::SeqCst) == 0 {
            self.changed.notify_waiters();
        }
        Active(self.clone())
    }

    /// Resolves once no request has been in progress for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.active.load(Ordering::SeqCst) == 0 {
                if tokio::time::timeout(timeout, changed).await.is_err() {
                    return;
                }
            } else {
                changed.await;
            }
        }
    }
}

/// One request in progress on an HTTP/2 connection.
#[derive(Debug)]
struct Active(Arc<Activity>);

impl Drop for Active {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.changed.notify_waiters();
        }
    }
}

/// A request body that, when dropped before its end, is drained in the background within
/// [`Linger`]'s bounds, so the client can finish sending and read the answer.
struct Lingering {
    body: Option<Incoming>,
    linger: Linger,
}

impl hyper::body::Body for Lingering {
    type Data = axum::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        match &mut self.body {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body
            .as_ref()
            .is_none_or(hyper::body::Body::is_end_stream)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body
            .as_ref()
            .map_or_else(hyper::body::SizeHint::default, hyper::body::Body::size_hint)
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(body) = self.body.take() else {
            return;
        };
        if hyper::body::Body::is_end_stream(&body) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let linger = self.linger;
        runtime.spawn(async move {
            use http_body_util::BodyExt;
            let mut body = body;
            let mut left = linger.bytes;
            let _ = tokio::time::timeout(linger.time, async {
                while let Some(Ok(frame)) = body.frame().await {
                    let n = frame.data_ref().map_or(0, |data| data.len() as u64);
                    match left.checked_sub(n) {
                        Some(rest) => left = rest,
                        None => break,
                    }
                }
            })
            .await;
        });
    }
}

/// The connection's service: on HTTP/2 each request is [`Active`] from its call until its
/// answer's body is done; on HTTP/1 the request passes untouched.
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    activity: Option<Arc<Activity>>,
}

type Answer = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl<S> tower::Service<Request<Incoming>> for Counted<S>
where
    S: tower::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<S::Future, Answer>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let Some(activity) = &self.activity else {
            return Either::Left(self.inner.call(request));
        };
        let active = activity.enter();
        let answer = self.inner.call(request);
        Either::Right(Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| {
                Body::new(Tracked {
                    body,
                    _active: active,
                })
            }))
        }))
    }
}

/// An answer's body that keeps its request [`Active`] until it is done.
struct Tracked {
    body: Body,
    _active: Active,
}

impl hyper::body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        hyper::body::Body::poll_frame(Pin::new(&mut self.body), cx)
    }

    fn is_end_stream(&self) -> bool {
        hyper::body::Body::is_end_stream(&self.body)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::Body::size_hint(&self.body)
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
