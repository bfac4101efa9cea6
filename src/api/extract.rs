//! Extractors every surface shares.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use super::error::{ApiError, ErrorCode};

/// The client's IP address: the peer's, or the one a trusted proxy forwarded (`[proxy]`; the
/// server inserts it per request); unspecified when unknown.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(client) = parts.extensions.get::<ClientIp>() {
            return Ok(*client);
        }
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::from([0, 0, 0, 0]), |info| info.0.ip()),
        ))
    }
}

/// Path parameters, read as axum's `Path` reads them. A path it cannot read (a segment that is
/// not UTF-8, or not the number the route wants) names nothing served here: `404 not_found` as
/// a problem document, on every surface, rather than axum's plain-text 400. Parameters that do
/// not fit the handler are a bug: `500 internal`.
#[derive(Debug, Clone, Copy)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            // A route whose parameters do not fit its handler: a bug, not the client's path.
            Err(rejection) if rejection.status().is_server_error() => {
                Err(ApiError::internal(&rejection.body_text()))
            }
            Err(rejection) => Err(ApiError::new(
                ErrorCode::NotFound,
                format!(
                    "Nothing is served at {}: {}.",
                    crate::jose::jws::truncate(parts.uri.path()),
                    rejection.body_text().trim_end_matches('.')
                ),
            )),
        }
    }
}
