//! The admin API's apps (the app-authentication API's principals).

use super::*;

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
    #[schema(value_type = Option<String>)]
    pub realm: Option<RealmName>,
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
    responses((status = 201, description = "Created, with the secret.", body = AppOut),
        (status = 404, description = "The body names a realm that does not exist (`not_found`)."),
        (status = 409, description = "The app id is taken (`conflict`).")))]
pub async fn create_app(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let idp = admin(&state, &actor)?;
    let input: AppIn = json_body(&state, &headers, body).await?;
    let realm = input.realm.unwrap_or_else(|| idp.default_realm().clone());
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
