//! Operations: liveness, readiness and Prometheus metrics.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::api::error::{ApiError, ErrorCode, ProblemOut};

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// A health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthOut {
    /// `ok` (alive) or `ready` (able to serve).
    pub status: &'static str,
    /// The store backend, on `/readyz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<&'static str>,
}

/// Whether the process is alive; answers without touching the store.
#[utoipa::path(get, path = "/healthz", tag = "Operations",
    responses((status = 200, description = "The server is alive.", body = HealthOut)))]
pub async fn healthz() -> Json<HealthOut> {
    Json(HealthOut {
        status: "ok",
        store: None,
    })
}

/// Whether the server can serve: the store answers.
#[utoipa::path(get, path = "/readyz", tag = "Operations", responses(
    (status = 200, description = "Ready.", body = HealthOut),
    (status = 503, description = "The store does not answer.", body = crate::api::error::ProblemOut,
        content_type = "application/problem+json")))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<HealthOut>, ApiError> {
    match state.store.ping().await {
        Ok(()) => Ok(Json(HealthOut {
            status: "ready",
            store: Some(state.store.backend()),
        })),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            Err(ApiError::new(
                ErrorCode::Unavailable,
                "The store does not answer.",
            ))
        }
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "Operations", security((), ("bearer" = [])),
    responses(
    (status = 200, description = "Metrics.", body = String, content_type = "text/plain"),
    (status = 401, description = "`auth.metrics_read` needs a token.", body = ProblemOut,
        content_type = "application/problem+json"),
    (status = 403, description = "The token does not meet `auth.metrics_read`.",
        body = ProblemOut, content_type = "application/problem+json")))]
pub async fn metrics(
    State(state): State<AppState>,
    actor: crate::access::Actor,
) -> Result<impl IntoResponse, ApiError> {
    super::auth::authorize(&state, &state.auth.metrics_read, &actor)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    ))
}
