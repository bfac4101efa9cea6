//! The tracking middleware: each request admitted within the limits on requests in progress
//! (node-wide and per client address), then timed and counted under its route pattern in
//! [`Metrics`].

use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::extract::ClientIp;
use crate::metrics::Metrics;
use crate::share::{AddressShares, Full};

/// A layer that admits each request within `limits.max_requests_in_progress` (and its
/// per-address share; beyond either, 503 with `Retry-After`), times it and records it under its
/// route pattern (`unmatched` for requests no route took, so unknown paths cannot grow the
/// label set). A request is in progress until its answer starts: a long poll counts while it
/// waits, a stream's body does not (streams have their own limits). Written as a plain tower
/// service rather than `from_fn` middleware: it sits on every request's path.
#[derive(Debug, Clone)]
pub struct TrackLayer {
    /// Where requests are counted.
    pub metrics: Metrics,
    /// Requests in progress, per client address group.
    pub in_progress: Arc<AddressShares>,
}

impl<S> tower::Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track {
            inner,
            metrics: self.metrics.clone(),
            in_progress: self.in_progress.clone(),
        }
    }
}

/// The service of [`TrackLayer`].
#[derive(Debug, Clone)]
pub struct Track<S> {
    inner: S,
    metrics: Metrics,
    in_progress: Arc<AddressShares>,
}

/// How long a client refused for the requests in progress is asked to wait.
const RETRY: Duration = Duration::from_secs(1);

impl<S> tower::Service<Request> for Track<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let method = request.method().clone();
        let route = request.extensions().get::<MatchedPath>().cloned();
        let client = request.extensions().get::<ClientIp>().map_or(
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            |ClientIp(ip)| crate::net::address_group(*ip),
        );
        let metrics = self.metrics.clone();
        let admitted = match self.in_progress.take(client) {
            Ok(admitted) => admitted,
            Err(full) => {
                let detail = match full {
                    Full::Node => "The server has as many requests in progress as it may",
                    Full::Holder => "This address has as many requests in progress as it may",
                };
                let response =
                    ApiError::busy(format!("{detail}; try again shortly."), RETRY).into_response();
                let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
                metrics.record_request(method.as_str(), route, 503, 0.0);
                return Box::pin(std::future::ready(Ok(response)));
            }
        };
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            drop(admitted);
            let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
            let seconds = started.elapsed().as_secs_f64();
            metrics.record_request(method.as_str(), route, response.status().as_u16(), seconds);
            Ok(response)
        })
    }
}
