//! The admin API's clients: a realm's OAuth clients and their secrets.

use super::*;

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

async fn client_out(idp: &Idp, realm: &RealmName, client_id: &str) -> Result<ClientOut, ApiError> {
    let row = idp
        .store()
        .client(realm.as_str(), client_id)
        .await?
        .ok_or_else(|| {
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
    security(("bearer" = [])), params(("realm" = String, Path, description = "The realm.", example = "node")),
    responses((status = 200, description = "The clients.", body = [ClientOut])))]
pub async fn list_clients(
    State(state): State<AppState>,
    actor: Actor,
    Path(realm): Path<String>,
) -> Result<Json<Vec<ClientOut>>, ApiError> {
    let realm = realm_name(&realm)?;
    let idp = admin(&state, &actor)?;
    realm_out(&idp, &realm)?;
    let rows = idp.store().clients(realm.as_str()).await?;
    let out = rows.into_iter().map(ClientOut::from_row);
    Ok(Json(out.collect::<Result<_, _>>()?))
}

/// Creates a client; a confidential client's secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/admin/realms/{realm}/clients", tag = "Admin",
    security(("bearer" = [])), params(("realm" = String, Path, description = "The realm.", example = "node")),
    request_body = ClientIn,
    responses((status = 201, description = "Created, with the secret.", body = ClientOut),
        (status = 409, description = "The client id is taken (`conflict`).")))]
pub async fn create_client(
    State(state): State<AppState>,
    actor: Actor,
    Path(realm): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let realm = realm_name(&realm)?;
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
    params(("realm" = String, Path, description = "The realm.", example = "node"),
        ("client_id" = String, Path, description = "The client id.")),
    responses((status = 200, description = "The client.", body = ClientOut)))]
pub async fn get_client(
    State(state): State<AppState>,
    actor: Actor,
    Path((realm, client_id)): Path<(String, String)>,
) -> Result<Json<ClientOut>, ApiError> {
    let realm = realm_name(&realm)?;
    let idp = admin(&state, &actor)?;
    Ok(Json(client_out(&idp, &realm, &client_id).await?))
}

/// Replaces a client's settings.
#[utoipa::path(put, path = "/api/v1/admin/realms/{realm}/clients/{client_id}", tag = "Admin",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "The realm.", example = "node"),
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
    let realm = realm_name(&realm)?;
    let idp = admin(&state, &actor)?;
    let settings: ClientSettings = json_body(&state, &headers, body).await?;
    idp.update_client(&realm, &client_id, settings).await?;
    Ok(Json(client_out(&idp, &realm, &client_id).await?))
}

/// Deletes a client.
#[utoipa::path(delete, path = "/api/v1/admin/realms/{realm}/clients/{client_id}", tag = "Admin",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "The realm.", example = "node"),
        ("client_id" = String, Path, description = "The client id.")),
    responses((status = 204, description = "Deleted.")))]
pub async fn delete_client(
    State(state): State<AppState>,
    actor: Actor,
    Path((realm, client_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let realm = realm_name(&realm)?;
    let idp = admin(&state, &actor)?;
    idp.store()
        .delete_client(realm.as_str(), &client_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Gives a confidential client a new secret (in this answer only); the old one stops working.
#[utoipa::path(post, path = "/api/v1/admin/realms/{realm}/clients/{client_id}/secret",
    tag = "Admin", security(("bearer" = [])),
    params(("realm" = String, Path, description = "The realm.", example = "node"),
        ("client_id" = String, Path, description = "The client id.")),
    responses((status = 200, description = "The client with its new secret.", body = ClientOut),
        (status = 422, description = "A public client, which has no secret (`invalid_value`).")))]
pub async fn reset_client_secret(
    State(state): State<AppState>,
    actor: Actor,
    Path((realm, client_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let realm = realm_name(&realm)?;
    let idp = admin(&state, &actor)?;
    let secret = idp.reset_client_secret(&realm, &client_id).await?;
    let mut out = client_out(&idp, &realm, &client_id).await?;
    out.client_secret = Some(secret);
    Ok(no_store(Json(out).into_response()))
}
