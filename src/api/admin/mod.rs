//! The admin API under `/api/v1/admin/`: realms and their keys, clients, users and apps of the
//! built-in identity provider; XRTC accounts' API keys.
//!
//! Every route needs a bearer token of the admin realm (`idp.admin_realm`) carrying the
//! `portico:admin` role — a token from Portico's own provider, checked by the same verifier as
//! every other route. Secrets (client and app secrets, generated passwords, generated private
//! keys) appear once, in the answer that created them. Bodies are JSON with snake_case members;
//! unknown members are refused.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;

use crate::api::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use crate::access::Actor;
use crate::api::auth::authorize;
use crate::api::error::{ApiError, ErrorCode};
use crate::idp::{AppSettings, ClientSettings, Idp, RealmName, RealmSettings, UserSettings};
use crate::store::{AppRow, ClientRow, UserRow};

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/realms", get(list_realms).post(create_realm))
        .route(
            "/api/v1/admin/realms/{realm}",
            get(get_realm).put(update_realm).delete(delete_realm),
        )
        .route("/api/v1/admin/realms/{realm}/keys", get(list_keys))
        .route(
            "/api/v1/admin/realms/{realm}/keys/rotate",
            post(rotate_keys),
        )
        .route(
            "/api/v1/admin/realms/{realm}/clients",
            get(list_clients).post(create_client),
        )
        .route(
            "/api/v1/admin/realms/{realm}/clients/{client_id}",
            get(get_client).put(update_client).delete(delete_client),
        )
        .route(
            "/api/v1/admin/realms/{realm}/clients/{client_id}/secret",
            post(reset_client_secret),
        )
        .route(
            "/api/v1/admin/realms/{realm}/users",
            get(list_users).post(create_user),
        )
        .route(
            "/api/v1/admin/realms/{realm}/users/{id}",
            get(get_user).put(update_user).delete(delete_user),
        )
        .route(
            "/api/v1/admin/realms/{realm}/users/{id}/password",
            axum::routing::put(set_password),
        )
        .route("/api/v1/admin/apps", get(list_apps).post(create_app))
        .route(
            "/api/v1/admin/apps/{app_id}",
            get(get_app).put(update_app).delete(delete_app),
        )
        .route("/api/v1/admin/apps/{app_id}/secret", post(reset_app_secret))
        .route(
            "/api/v1/admin/xrtc/accounts/{account}/keys",
            get(list_xrtc_keys),
        )
        .route(
            "/api/v1/admin/xrtc/accounts/{account}/keys/{name}/revoke",
            post(revoke_xrtc_key),
        )
}

/// The identity provider, for an actor the admin policy (`auth.admin`) lets in.
fn admin(state: &AppState, actor: &Actor) -> Result<Arc<Idp>, ApiError> {
    authorize(state, &state.auth.admin, actor)?;
    state.idp.clone().ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            "The built-in identity provider is turned off (`idp.enabled = false`).",
        )
    })
}

/// Whether a media type (without parameters) is JSON: `application/json`, `text/json` or
/// `application/<anything>+json`, as ASP.NET (and so Tributech's API) accepts.
pub(crate) fn is_json_type(media: &str) -> bool {
    let media = media.to_ascii_lowercase();
    media == "application/json"
        || media == "text/json"
        || media
            .strip_prefix("application/")
            .is_some_and(|sub| sub.len() > 5 && sub.ends_with("+json"))
}

/// Parses a JSON body (`application/json`, `text/json` or `application/*+json`).
pub(crate) async fn json_body<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| is_json_type(v.trim()));
    if !is_json {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "The body must be application/json.",
        ));
    }
    let bytes = super::endpoints::read_body(state, body).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        let code = if e.is_data() {
            ErrorCode::InvalidValue
        } else {
            ErrorCode::MalformedJson
        };
        ApiError::new(code, format!("The body is not acceptable: {e}."))
    })
}

pub(crate) fn created<T: Serialize>(body: T) -> Response {
    (StatusCode::CREATED, no_store(Json(body).into_response())).into_response()
}

pub(crate) fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

fn parse<T: DeserializeOwned>(json: &str) -> Result<T, ApiError> {
    serde_json::from_str(json).map_err(|e| ApiError::internal(&e))
}

/// The realm a path names: a segment that cannot be a realm's name names none (404).
fn realm_name(raw: &str) -> Result<RealmName, ApiError> {
    RealmName::parse(raw).map_err(|_| no_realm(raw))
}

fn no_realm(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("There is no realm `{}`.", crate::jose::jws::truncate(name)),
    )
}

/// A realm.
#[derive(Debug, Serialize, ToSchema)]
pub struct RealmOut {
    /// Its name.
    pub name: String,
    /// Its issuer URL.
    pub issuer: String,
    /// Its settings.
    pub settings: RealmSettings,
}

/// A new realm.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RealmIn {
    /// Its name (1 to 64 of a-z, 0-9, -, _).
    #[schema(value_type = String)]
    pub name: RealmName,
    /// Its settings (defaults when left out).
    #[serde(default)]
    pub settings: RealmSettings,
}

fn realm_out(idp: &Idp, name: &RealmName) -> Result<RealmOut, ApiError> {
    let realm = idp.realm(name).ok_or_else(|| no_realm(name.as_str()))?;
    Ok(RealmOut {
        name: realm.name.to_string(),
        issuer: realm.issuer_url.clone(),
        settings: realm.settings.clone(),
    })
}

/// Lists realms.
#[utoipa::path(get, path = "/api/v1/admin/realms", tag = "Admin",
    security(("bearer" = [])),
    responses((status = 200, description = "The realms.", body = [RealmOut])))]
pub async fn list_realms(
    State(state): State<AppState>,
    actor: Actor,
) -> Result<Json<Vec<RealmOut>>, ApiError> {
    let idp = admin(&state, &actor)?;
    let realms = idp
        .realm_names()
        .iter()
        .map(|name| realm_out(&idp, name))
        .collect::<Result<_, _>>()?;
    Ok(Json(realms))
}

/// Creates a realm with fresh signing keys.
#[utoipa::path(post, path = "/api/v1/admin/realms", tag = "Admin",
    security(("bearer" = [])), request_body = RealmIn,
    responses((status = 201, description = "Created.", body = RealmOut),
        (status = 409, description = "The name is taken (`conflict`).")))]
pub async fn create_realm(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let idp = admin(&state, &actor)?;
    let input: RealmIn = json_body(&state, &headers, body).await?;
    idp.create_realm(&input.name, input.settings).await?;
    Ok(created(realm_out(&idp, &input.name)?))
}

/// One realm.
#[utoipa::path(get, path = "/api/v1/admin/realms/{realm}", tag = "Admin",
    security(("bearer" = [])), params(("realm" = String, Path, description = "The realm.", example = "node")),
    responses((status = 200, description = "The realm.", body = RealmOut)))]
pub async fn get_realm(
    State(state): State<AppState>,
    actor: Actor,
    Path(realm): Path<String>,
) -> Result<Json<RealmOut>, ApiError> {
    let realm = realm_name(&realm)?;
    let idp = admin(&state, &actor)?;
    Ok(Json(realm_out(&idp, &realm)?))
}

/// Replaces a realm's settings.
#[utoipa::path(put, path = "/api/v1/admin/realms/{realm}", tag = "Admin",
    security(("bearer" = [])), params(("realm" = String, Path, description = "The realm.", example = "node")),
    request_body = RealmSettings,
    responses((status = 200, description = "The realm.", body = RealmOut)))]
pub async fn update_realm(
    State(state): State<AppState>,
    actor: Actor,
    Path(realm): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<RealmOut>, ApiError> {
    let realm = realm_name(&realm)?;
    let idp = admin(&state, &actor)?;
    let settings: RealmSettings = json_body(&state, &headers, body).await?;
    idp.update_realm(&realm, settings).await?;
    Ok(Json(realm_out(&idp, &realm)?))
}

/// Deletes a realm and everything in it (not the admin realm).
#[utoipa::path(delete, path = "/api/v1/admin/realms/{realm}", tag = "Admin",
    security(("bearer" = [])), params(("realm" = String, Path, description = "The realm.", example = "node")),
    responses((status = 204, description = "Deleted."),
        (status = 409, description = "The admin realm, which cannot be deleted (`conflict`).")))]
pub async fn delete_realm(
    State(state): State<AppState>,
    actor: Actor,
    Path(realm): Path<String>,
) -> Result<StatusCode, ApiError> {
    let realm = realm_name(&realm)?;
    let idp = admin(&state, &actor)?;
    if &realm == idp.admin_realm() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "The admin realm cannot be deleted: its tokens open this API.",
        ));
    }
    idp.delete_realm(&realm).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A realm signing key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyOut {
    /// Its `kid` (RFC 7638 thumbprint).
    pub kid: String,
    /// `access` or `id` tokens.
    pub purpose: String,
    /// Its algorithm.
    pub alg: String,
    /// `next` (published, not yet signing), `active` or `retired`.
    pub state: String,
    /// When a retired key leaves the published set (RFC 3339).
    pub unpublished_at: Option<String>,
}

/// Lists a realm's keys.
#[utoipa::path(get, path = "/api/v1/admin/realms/{realm}/keys", tag = "Admin",
    security(("bearer" = [])), params(("realm" = String, Path, description = "The realm.", example = "node")),
    responses((status = 200, description = "The keys.", body = [KeyOut])))]
pub async fn list_keys(
    State(state): State<AppState>,
    actor: Actor,
    Path(realm): Path<String>,
) -> Result<Json<Vec<KeyOut>>, ApiError> {
    let realm = realm_name(&realm)?;
    let idp = admin(&state, &actor)?;
    realm_out(&idp, &realm)?;
    let keys = idp.store().realm_keys().await?;
    Ok(Json(
        keys.into_iter()
            .filter(|k| realm == *k.realm)
            .map(|k| KeyOut {
                kid: k.kid,
                purpose: k.purpose,
                alg: k.alg,
                state: k.state,
                unpublished_at: k.retire_at.and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                }),
            })
            .collect(),
    ))
}

/// Rotates a realm's keys: the published next keys start signing; the active ones retire
/// (published until their tokens expire); new next keys are published.
#[utoipa::path(post, path = "/api/v1/admin/realms/{realm}/keys/rotate", tag = "Admin",
    security(("bearer" = [])), params(("realm" = String, Path, description = "The realm.", example = "node")),
    responses((status = 200, description = "The keys after the rotation.", body = [KeyOut])))]
pub async fn rotate_keys(
    State(state): State<AppState>,
    actor: Actor,
    Path(realm): Path<String>,
) -> Result<Json<Vec<KeyOut>>, ApiError> {
    let realm = realm_name(&realm)?;
    admin(&state, &actor)?.rotate_keys(&realm).await?;
    list_keys(State(state), actor, Path(realm.to_string())).await
}

mod apps;
mod clients;
mod users;
mod xrtc;

pub use apps::*;
pub use clients::*;
pub use users::*;
pub use xrtc::*;
