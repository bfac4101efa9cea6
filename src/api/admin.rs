//! The admin API under `/api/v1/admin/`: realms and their keys, clients, users and apps of the
//! built-in identity provider.
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
use axum::extract::{Path, State};
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
use crate::idp::{AppSettings, ClientSettings, Idp, RealmSettings, UserSettings};
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

/// Parses a JSON body (`application/json`).
pub(crate) async fn json_body<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
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

// --- Realms ---

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
    /// Its name (a-z, 0-9, -, _).
    pub name: String,
    /// Its settings (defaults when left out).
    #[serde(default)]
    pub settings: RealmSettings,
}

fn realm_out(idp: &Idp, name: &str) -> Result<RealmOut, ApiError> {
    let realm = idp.realm(name).ok_or_else(|| {
        ApiError::new(ErrorCode::NotFound, format!("There is no realm `{name}`."))
    })?;
    Ok(RealmOut {
        name: realm.name.clone(),
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
        (status = 409, description = "The name is taken.", body = crate::api::error::ProblemOut)))]
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
    security(("bearer" = [])), params(("realm" = String, Path, description = "The realm.")),
    responses((status = 200, description = "The realm.", body = RealmOut)))]
pub async fn get_realm(
    State(state): State<AppState>,
    actor: Actor,
    Path(realm): Path<String>,
) -> Result<Json<RealmOut>, ApiError> {
    let idp = admin(&state, &actor)?;
    Ok(Json(realm_out(&idp, &realm)?))
}

/// Replaces a realm's settings.
#[utoipa::path(put, path = "/api/v1/admin/realms/{realm}", tag = "Admin",
    security(("bearer" = [])), params(("realm" = String, Path, description = "The realm.")),
    request_body = RealmSettings,
    responses((status = 200, description = "The realm.", body = RealmOut)))]
pub async fn update_realm(
    State(state): State<AppState>,
    actor: Actor,
    Path(realm): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<RealmOut>, ApiError> {
    let idp = admin(&state, &actor)?;
    let settings: RealmSettings = json_body(&state, &headers, body).await?;
    idp.update_realm(&realm, settings).await?;
    Ok(Json(realm_out(&idp, &realm)?))
}

/// Deletes a realm and everything in it (not the admin realm).
#[utoipa::path(delete, path = "/api/v1/admin/realms/{realm}", tag = "Admin",
    security(("bearer" = [])), params(("realm" = String, Path, description = "The realm.")),
    responses((status = 204, description = "Deleted.")))]
pub async fn delete_realm(
    State(state): State<AppState>,
    actor: Actor,
    Path(realm): Path<String>,
) -> Result<StatusCode, ApiError> {
    let idp = admin(&state, &actor)?;
    if realm == idp.admin_realm() {
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
    security(("bearer" = [])), params(("realm" = String, Path, description = "The realm.")),
    responses((status = 200, description = "The keys.", body = [KeyOut])))]
pub async fn list_keys(
    State(state): State<AppState>,
    actor: Actor,
    Path(realm): Path<String>,
) -> Result<Json<Vec<KeyOut>>, ApiError> {
    let idp = admin(&state, &actor)?;
    realm_out(&idp, &realm)?;
    let keys = idp.store().realm_keys().await?;
    Ok(Json(
        keys.into_iter()
            .filter(|k| k.realm == realm)
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
    security(("bearer" = [])), params(("realm" = String, Path, description = "The realm.")),
    responses((status = 200, description = "The keys after the rotation.", body = [KeyOut])))]
pub async fn rotate_keys(
    State(state): State<AppState>,
    actor: Actor,
    Path(realm): Path<String>,
) -> Result<Json<Vec<KeyOut>>, ApiError> {
    admin(&state, &actor)?.rotate_keys(&realm).await?;
    list_keys(State(state), actor, Path(realm)).await
}

// --- Clients ---

/// A client.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientOut {
    /// The client id.
    pub client_id: String,
    /// Whether it has a secret.
    pub confidential: bool,
    /// Its settings.
    pub settings: ClientSettings,
    /// Its secret: only in the answer that created or reset it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// A new client.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientIn {
    /// The client id.
    pub client_id: String,
    /// A public client (no secret; PKCE required).
    #[serde(default)]
    pub public: bool,
    /// Its settings.
    #[serde(default)]
    pub settings: ClientSettings,
}

async fn client_out(idp: &Idp, realm: &str, client_id: &str) -> Result<ClientOut, ApiError> {
    let row = idp.store().client(realm, client_id).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            format!("There is no client `{client_id}` in realm `{realm}`."),
        )
    })?;
    ClientOut::from_row(row)
}

impl ClientOut {
    fn from_row(row: ClientRow) -> Result<Self, ApiError> {
        Ok(Self {
            confidential: row.secret_hash.is_some(),
            settings: parse(&row.settings)?,
            client_id: row.client_id,
            client_secret: None,
        })
    }
}

/// Lists a realm's clients.
#[utoipa::path(get, path = "/api/v1/admin/realms/{realm}/clients", tag = "Admin",
    security(("bearer" = [])), params(("realm" = String, Path, description = "The realm.")),
    responses((status = 200, description = "The clients.", body = [ClientOut])))]
pub async fn list_clients(
    State(state): State<AppState>,
    actor: Actor,
    Path(realm): Path<String>,
) -> Result<Json<Vec<ClientOut>>, ApiError> {
    let idp = admin(&state, &actor)?;
    realm_out(&idp, &realm)?;
    let rows = idp.store().clients(&realm).await?;
    let out = rows.into_iter().map(ClientOut::from_row);
    Ok(Json(out.collect::<Result<_, _>>()?))
}

/// Creates a client; a confidential client's secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/admin/realms/{realm}/clients", tag = "Admin",
    security(("bearer" = [])), params(("realm" = String, Path, description = "The realm.")),
    request_body = ClientIn,
    responses((status = 201, description = "Created, with the secret.", body = ClientOut)))]
pub async fn create_client(
    State(state): State<AppState>,
    actor: Actor,
    Path(realm): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let idp = admin(&state, &actor)?;
    let input: ClientIn = json_body(&state, &headers, body).await?;
    let secret = idp
        .create_client(&realm, &input.client_id, input.settings, !input.public)
        .await?;
    let mut out = client_out(&idp, &realm, &input.client_id).await?;
    out.client_secret = secret;
    Ok(created(out))
}

/// One client.
#[utoipa::path(get, path = "/api/v1/admin/realms/{realm}/clients/{client_id}", tag = "Admin",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "The realm."),
        ("client_id" = String, Path, description = "The client id.")),
    responses((status = 200, description = "The client.", body = ClientOut)))]
pub async fn get_client(
    State(state): State<AppState>,
    actor: Actor,
    Path((realm, client_id)): Path<(String, String)>,
) -> Result<Json<ClientOut>, ApiError> {
    let idp = admin(&state, &actor)?;
    Ok(Json(client_out(&idp, &realm, &client_id).await?))
}

/// Replaces a client's settings.
#[utoipa::path(put, path = "/api/v1/admin/realms/{realm}/clients/{client_id}", tag = "Admin",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "The realm."),
        ("client_id" = String, Path, description = "The client id.")),
    request_body = ClientSettings,
    responses((status = 200, description = "The client.", body = ClientOut)))]
pub async fn update_client(
    State(state): State<AppState>,
    actor: Actor,
    Path((realm, client_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ClientOut>, ApiError> {
    let idp = admin(&state, &actor)?;
    let settings: ClientSettings = json_body(&state, &headers, body).await?;
    idp.update_client(&realm, &client_id, settings).await?;
    Ok(Json(client_out(&idp, &realm, &client_id).await?))
}

/// Deletes a client.
#[utoipa::path(delete, path = "/api/v1/admin/realms/{realm}/clients/{client_id}", tag = "Admin",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "The realm."),
        ("client_id" = String, Path, description = "The client id.")),
    responses((status = 204, description = "Deleted.")))]
pub async fn delete_client(
    State(state): State<AppState>,
    actor: Actor,
    Path((realm, client_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let idp = admin(&state, &actor)?;
    idp.store().delete_client(&realm, &client_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Gives a confidential client a new secret (in this answer only); the old one stops working.
#[utoipa::path(post, path = "/api/v1/admin/realms/{realm}/clients/{client_id}/secret",
    tag = "Admin", security(("bearer" = [])),
    params(("realm" = String, Path, description = "The realm."),
        ("client_id" = String, Path, description = "The client id.")),
    responses((status = 200, description = "The client with its new secret.", body = ClientOut)))]
pub async fn reset_client_secret(
    State(state): State<AppState>,
    actor: Actor,
    Path((realm, client_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let idp = admin(&state, &actor)?;
    let secret = idp.reset_client_secret(&realm, &client_id).await?;
    let mut out = client_out(&idp, &realm, &client_id).await?;
    out.client_secret = Some(secret);
    Ok(no_store(Json(out).into_response()))
}

// --- Users ---

/// A user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    /// Its id (`sub` of its tokens).
    pub id: String,
    /// The login name.
    pub username: String,
    /// Its settings.
    pub settings: UserSettings,
    /// A generated password: only in the answer that created the user without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// A new user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserIn {
    /// The login name.
    pub username: String,
    /// The password (at least 12 characters); left out, one is generated and returned once.
    pub password: Option<String>,
    /// Its settings.
    #[serde(default)]
    pub settings: UserSettings,
}

/// A new password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordIn {
    /// The password (at least 12 characters).
    pub password: String,
}

async fn user_out(idp: &Idp, realm: &str, id: &str) -> Result<UserOut, ApiError> {
    let row = idp.store().user(realm, id).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            format!("There is no user `{id}` in realm `{realm}`."),
        )
    })?;
    UserOut::from_row(row)
}

impl UserOut {
    fn from_row(row: UserRow) -> Result<Self, ApiError> {
        Ok(Self {
            settings: parse(&row.settings)?,
            id: row.id,
            username: row.username,
            password: None,
        })
    }
}

/// Lists a realm's users.
#[utoipa::path(get, path = "/api/v1/admin/realms/{realm}/users", tag = "Admin",
    security(("bearer" = [])), params(("realm" = String, Path, description = "The realm.")),
    responses((status = 200, description = "The users.", body = [UserOut])))]
pub async fn list_users(
    State(state): State<AppState>,
    actor: Actor,
    Path(realm): Path<String>,
) -> Result<Json<Vec<UserOut>>, ApiError> {
    let idp = admin(&state, &actor)?;
    realm_out(&idp, &realm)?;
    let rows = idp.store().users(&realm).await?;
    let out = rows.into_iter().map(UserOut::from_row);
    Ok(Json(out.collect::<Result<_, _>>()?))
}

/// Creates a user.
#[utoipa::path(post, path = "/api/v1/admin/realms/{realm}/users", tag = "Admin",
    security(("bearer" = [])), params(("realm" = String, Path, description = "The realm.")),
    request_body = UserIn,
    responses((status = 201, description = "Created.", body = UserOut)))]
pub async fn create_user(
    State(state): State<AppState>,
    actor: Actor,
    Path(realm): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let idp = admin(&state, &actor)?;
    let input: UserIn = json_body(&state, &headers, body).await?;
    let (password, generated) = match input.password {
        Some(password) => (password, None),
        None => {
            let password = crate::secrets::generate();
            (password.clone(), Some(password))
        }
    };
    let id = idp
        .create_user(&realm, &input.username, Some(password), input.settings)
        .await?;
    let mut out = user_out(&idp, &realm, &id).await?;
    out.password = generated;
    Ok(created(out))
}

/// One user.
#[utoipa::path(get, path = "/api/v1/admin/realms/{realm}/users/{id}", tag = "Admin",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "The realm."),
        ("id" = String, Path, description = "The user id.")),
    responses((status = 200, description = "The user.", body = UserOut)))]
pub async fn get_user(
    State(state): State<AppState>,
    actor: Actor,
    Path((realm, id)): Path<(String, String)>,
) -> Result<Json<UserOut>, ApiError> {
    let idp = admin(&state, &actor)?;
    Ok(Json(user_out(&idp, &realm, &id).await?))
}

/// Replaces a user's settings (disabling ends their logins at the next refresh).
#[utoipa::path(put, path = "/api/v1/admin/realms/{realm}/users/{id}", tag = "Admin",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "The realm."),
        ("id" = String, Path, description = "The user id.")),
    request_body = UserSettings,
    responses((status = 200, description = "The user.", body = UserOut)))]
pub async fn update_user(
    State(state): State<AppState>,
    actor: Actor,
    Path((realm, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UserOut>, ApiError> {
    let idp = admin(&state, &actor)?;
    let settings: UserSettings = json_body(&state, &headers, body).await?;
    idp.update_user(&realm, &id, settings).await?;
    Ok(Json(user_out(&idp, &realm, &id).await?))
}

/// Sets a user's password.
#[utoipa::path(put, path = "/api/v1/admin/realms/{realm}/users/{id}/password", tag = "Admin",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "The realm."),
        ("id" = String, Path, description = "The user id.")),
    request_body = PasswordIn,
    responses((status = 204, description = "Set.")))]
pub async fn set_password(
    State(state): State<AppState>,
    actor: Actor,
    Path((realm, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let idp = admin(&state, &actor)?;
    let input: PasswordIn = json_body(&state, &headers, body).await?;
    idp.set_password(&realm, &id, input.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a user (their logins end at the next refresh).
#[utoipa::path(delete, path = "/api/v1/admin/realms/{realm}/users/{id}", tag = "Admin",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "The realm."),
        ("id" = String, Path, description = "The user id.")),
    responses((status = 204, description = "Deleted.")))]
pub async fn delete_user(
    State(state): State<AppState>,
    actor: Actor,
    Path((realm, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let idp = admin(&state, &actor)?;
    idp.store().delete_user(&realm, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// --- Apps ---

/// An app of the app-authentication API.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppOut {
    /// The app id.
    pub app_id: String,
    /// The realm whose tokens it gets.
    pub realm: String,
    /// Its settings.
    pub settings: AppSettings,
    /// Its secret: only in the answer that created or reset it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_secret: Option<String>,
    /// A generated P-256 private key (PKCS#8 PEM): only in the answer that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_pem: Option<String>,
}

/// A new app.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppIn {
    /// The app id.
    pub app_id: String,
    /// The realm whose tokens it gets (default: the default realm).
    pub realm: Option<String>,
    /// Generate a P-256 key pair for self-signed tokens (the private key is returned once).
    #[serde(default)]
    pub generate_key: bool,
    /// Its settings (`public_key_pem` registers the app's own key).
    #[serde(default)]
    pub settings: AppSettings,
}

async fn app_out(idp: &Idp, app_id: &str) -> Result<AppOut, ApiError> {
    let row = idp.store().app(app_id).await?.ok_or_else(|| {
        ApiError::new(ErrorCode::NotFound, format!("There is no app `{app_id}`."))
    })?;
    AppOut::from_row(row)
}

impl AppOut {
    fn from_row(row: AppRow) -> Result<Self, ApiError> {
        Ok(Self {
            settings: parse(&row.settings)?,
            app_id: row.app_id,
            realm: row.realm,
            app_secret: None,
            private_key_pem: None,
        })
    }
}

/// Lists apps.
#[utoipa::path(get, path = "/api/v1/admin/apps", tag = "Admin", security(("bearer" = [])),
    responses((status = 200, description = "The apps.", body = [AppOut])))]
pub async fn list_apps(
    State(state): State<AppState>,
    actor: Actor,
) -> Result<Json<Vec<AppOut>>, ApiError> {
    let idp = admin(&state, &actor)?;
    let rows = idp.store().apps().await?;
    let out = rows.into_iter().map(AppOut::from_row);
    Ok(Json(out.collect::<Result<_, _>>()?))
}

/// Creates an app; its secret (and generated private key) are in this answer only.
#[utoipa::path(post, path = "/api/v1/admin/apps", tag = "Admin", security(("bearer" = [])),
    request_body = AppIn,
    responses((status = 201, description = "Created, with the secret.", body = AppOut)))]
pub async fn create_app(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let idp = admin(&state, &actor)?;
    let input: AppIn = json_body(&state, &headers, body).await?;
    let realm = input
        .realm
        .unwrap_or_else(|| idp.default_realm().to_owned());
    let new = idp
        .create_app(&realm, &input.app_id, input.settings, input.generate_key)
        .await?;
    let mut out = app_out(&idp, &input.app_id).await?;
    out.app_secret = Some(new.secret);
    out.private_key_pem = new.private_key_pem;
    Ok(created(out))
}

/// One app.
#[utoipa::path(get, path = "/api/v1/admin/apps/{app_id}", tag = "Admin",
    security(("bearer" = [])), params(("app_id" = String, Path, description = "The app id.")),
    responses((status = 200, description = "The app.", body = AppOut)))]
pub async fn get_app(
    State(state): State<AppState>,
    actor: Actor,
    Path(app_id): Path<String>,
) -> Result<Json<AppOut>, ApiError> {
    let idp = admin(&state, &actor)?;
    Ok(Json(app_out(&idp, &app_id).await?))
}

/// Replaces an app's settings.
#[utoipa::path(put, path = "/api/v1/admin/apps/{app_id}", tag = "Admin",
    security(("bearer" = [])), params(("app_id" = String, Path, description = "The app id.")),
    request_body = AppSettings,
    responses((status = 200, description = "The app.", body = AppOut)))]
pub async fn update_app(
    State(state): State<AppState>,
    actor: Actor,
    Path(app_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<AppOut>, ApiError> {
    let idp = admin(&state, &actor)?;
    let settings: AppSettings = json_body(&state, &headers, body).await?;
    idp.update_app(&app_id, settings).await?;
    Ok(Json(app_out(&idp, &app_id).await?))
}

/// Deletes an app.
#[utoipa::path(delete, path = "/api/v1/admin/apps/{app_id}", tag = "Admin",
    security(("bearer" = [])), params(("app_id" = String, Path, description = "The app id.")),
    responses((status = 204, description = "Deleted.")))]
pub async fn delete_app(
    State(state): State<AppState>,
    actor: Actor,
    Path(app_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let idp = admin(&state, &actor)?;
    idp.store().delete_app(&app_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Gives an app a new secret (in this answer only); the old one stops working.
#[utoipa::path(post, path = "/api/v1/admin/apps/{app_id}/secret", tag = "Admin",
    security(("bearer" = [])), params(("app_id" = String, Path, description = "The app id.")),
    responses((status = 200, description = "The app with its new secret.", body = AppOut)))]
pub async fn reset_app_secret(
    State(state): State<AppState>,
    actor: Actor,
    Path(app_id): Path<String>,
) -> Result<Response, ApiError> {
    let idp = admin(&state, &actor)?;
    let secret = idp.reset_app_secret(&app_id).await?;
    let mut out = app_out(&idp, &app_id).await?;
    out.app_secret = Some(secret);
    Ok(no_store(Json(out).into_response()))
}
