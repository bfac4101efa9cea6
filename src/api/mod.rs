//! The HTTP surface: application state, the router, and the native API's resources.
//!
//! Each resource module exports a `router()` and keeps its handlers and wire types together.
//! Wire types are named by direction (`…Out`) and are the only types that derive `Serialize`
//! for the API.

pub mod admin;
pub mod apps;
pub mod auth;
pub mod datapoints;
pub mod demeter;
pub mod docs;
pub mod endpoints;
pub mod error;
pub mod events;
pub mod extract;
pub mod oidc;
pub mod openapi;
pub mod openendpoints;
pub mod ops;
pub mod series;
pub mod streams;
pub mod track;
pub mod values;
pub mod webhooks;
pub mod xrtc;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::Uri;
use bytes::Bytes;
use tokio::sync::watch;

use crate::api::error::{ApiError, ErrorCode};
use crate::clock::Clock;
use crate::config::{Catalog, Limits};
use crate::datapoint::registry::Datapoints;
use crate::events::journal::EventSettings;
use crate::events::{Journal, Visibility};
use crate::metrics::Metrics;
use crate::store::Store;

/// What handlers share: one `Arc`, so handing it to a handler costs one atomic increment.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl From<Shared> for AppState {
    fn from(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The application's shared state.
#[derive(Debug)]
pub struct Shared {
    /// The datapoints and their current values.
    pub datapoints: Datapoints,
    /// Streams of values and their proofs.
    pub series: Arc<crate::series::Series>,
    /// The store, for readiness.
    pub store: Store,
    /// The journal: numbers, records and publishes every event.
    pub journal: Arc<Journal>,
    /// Who may read which event.
    pub visibility: Arc<Visibility>,
    /// `[events]`.
    pub events: EventSettings,
    /// Metrics.
    pub metrics: Metrics,
    /// The source of "now".
    pub clock: Arc<dyn Clock>,
    /// Request limits.
    pub limits: Arc<Limits>,
    /// Requests in progress, per client address group (`limits.max_requests_in_progress`).
    pub in_progress: Arc<crate::share::AddressShares>,
    /// Open event streams and their limits.
    pub streams: streams::Streams,
    /// The OpenAPI document, serialized once at start-up.
    pub openapi_json: Bytes,
    /// The Tributech Node API's document (`/demeter/api`), serialized once at start-up.
    pub tributech_json: Bytes,
    /// Bearer-token verification and the native API's policy.
    pub auth: auth::Auth,
    /// The built-in identity provider, unless turned off.
    pub idp: Option<Arc<crate::idp::Idp>>,
    /// XRTC accounts, sessions and portals, unless turned off.
    pub xrtc: Option<Arc<crate::xrtc::Xrtc>>,
    /// Webhook subscriptions and delivery, unless turned off.
    pub webhooks: Option<Arc<crate::webhooks::Webhooks>>,
    /// Signed (OpenEndpoints-style) endpoints' actions, when any are configured.
    pub openendpoints: Option<Arc<crate::openendpoints::run::Runner>>,
    /// Whether the server speaks HTTPS (cookies get `Secure`).
    pub tls: bool,
    /// Becomes `true` when the server starts shutting down; long-lived responses end then.
    pub shutdown: watch::Receiver<bool>,
}

impl Shared {
    /// How long a client may take to send a request body.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.body_read_timeout_seconds)
    }
}

/// The whole application: every route, the error fallbacks and the middleware.
pub fn router(state: AppState, catalog: &Catalog) -> Router {
    let metrics = state.metrics.clone();
    let mut router = Router::new()
        .merge(ops::router())
        .merge(datapoints::router())
        .merge(series::router())
        .merge(demeter::router())
        .merge(events::router())
        .merge(oidc::router())
        .merge(apps::router())
        .merge(admin::router())
        .merge(docs::router());
    if state.xrtc.is_some() {
        router = router.merge(xrtc::router());
    }
    if state.webhooks.is_some() {
        router = router.merge(webhooks::router());
    }
    router = router.merge(openendpoints::router(&catalog.signed));
    for endpoint in &catalog.endpoints {
        router = router.route(
            &endpoint.path,
            endpoints::route(&state.datapoints, endpoint),
        );
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(track::TrackLayer {
            metrics,
            in_progress: state.in_progress.clone(),
        })
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("Nothing is served at {}.", uri.path()),
    )
}

/// Axum adds the `Allow` header listing the route's methods.
async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed here; the Allow header lists the methods that are."),
    )
}

impl From<crate::idp::IdpError> for ApiError {
    fn from(error: crate::idp::IdpError) -> Self {
        use crate::idp::IdpError;
        use crate::store::StoreError;
        match error {
            IdpError::Invalid(why) => ApiError::new(ErrorCode::InvalidValue, format!("{why}.")),
            IdpError::Conflict(what) => {
                ApiError::new(ErrorCode::Conflict, format!("{what} already exists."))
            }
            IdpError::NotFound(what) => {
                ApiError::new(ErrorCode::NotFound, format!("{what} does not exist."))
            }
            IdpError::Grant(why) | IdpError::Scope(why) => ApiError::new(ErrorCode::Forbidden, why),
            IdpError::Busy(after) => ApiError::new(
                ErrorCode::TooManyRequests,
                "Too many passwords are being checked right now; try again shortly.",
            )
            .with_header(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(after.as_secs().max(1)),
            ),
            IdpError::Store(StoreError::OutcomeUnknown(why)) => ApiError::new(
                ErrorCode::Unavailable,
                format!(
                    "The store did not confirm the change ({why}); read it back before retrying."
                ),
            ),
            IdpError::Store(StoreError::Unavailable(why)) => ApiError::new(
                ErrorCode::Unavailable,
                format!("The database is unavailable ({why}); retry."),
            ),
            other => ApiError::internal(&other),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        crate::idp::IdpError::from(error).into()
    }
}
