//! The OpenAPI document at `/api/openapi.json` and Swagger UI at `/api/docs`, and the Tributech
//! Node API's document at `/demeter/api/swagger/v1/swagger.json` with its Swagger UI at
//! `/demeter/api/`, served from assets embedded in the binary (no internet needed).

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;

/// The Content-Security-Policy of the docs pages: everything from this server only (Swagger UI
/// sets inline styles and uses data: images).
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                   frame-ancestors 'none'";

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/openapi.json", get(openapi_json))
        .route(
            "/api/docs",
            get(|| asset("text/html; charset=utf-8", INDEX)),
        )
        .route(
            "/api/docs/",
            get(|| asset("text/html; charset=utf-8", INDEX)),
        )
        .route(
            "/api/docs/swagger-initializer.js",
            get(|| asset("text/javascript", INITIALIZER)),
        )
        .route(
            "/api/docs/swagger-ui-bundle.js",
            get(|| asset("text/javascript", BUNDLE)),
        )
        .route("/api/docs/swagger-ui.css", get(|| asset("text/css", CSS)))
        .route(
            "/demeter/api/",
            get(|| asset("text/html; charset=utf-8", TRIBUTECH_INDEX)),
        )
        .route(
            "/demeter/api/swagger-initializer.js",
            get(|| asset("text/javascript", TRIBUTECH_INITIALIZER)),
        )
        .route("/demeter/api/swagger/v1/swagger.json", get(tributech_json))
}

const TRIBUTECH_INDEX: &[u8] = include_bytes!("../../assets/docs/tributech.html");
const TRIBUTECH_INITIALIZER: &[u8] = include_bytes!("../../assets/docs/tributech-initializer.js");

const INDEX: &[u8] = include_bytes!("../../assets/docs/index.html");
const INITIALIZER: &[u8] = include_bytes!("../../assets/docs/swagger-initializer.js");
const BUNDLE: &[u8] = include_bytes!("../../vendor/swagger-ui/swagger-ui-bundle.js");
const CSS: &[u8] = include_bytes!("../../vendor/swagger-ui/swagger-ui.css");

async fn asset(content_type: &'static str, bytes: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    )
        .into_response()
}

/// The Tributech Node API's own document (title "Tributech Node API", version "v1", its tags).
async fn tributech_json(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.tributech_json.clone(),
    )
        .into_response()
}

async fn openapi_json(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi_json.clone(),
    )
        .into_response()
}
