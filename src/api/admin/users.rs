//! The admin API's users: a realm's people, their settings and passwords.

use super::*;

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

async fn user_out(idp: &Idp, realm: &RealmName, id: &str) -> Result<UserOut, ApiError> {
    let row = idp.store().user(realm.as_str(), id).await?.ok_or_else(|| {
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
    security(("bearer" = [])), params(("realm" = String, Path, description = "The realm.", example = "node")),
    responses((status = 200, description = "The users.", body = [UserOut])))]
pub async fn list_users(
    State(state): State<AppState>,
    actor: Actor,
    Path(realm): Path<String>,
) -> Result<Json<Vec<UserOut>>, ApiError> {
    let realm = realm_name(&realm)?;
    let idp = admin(&state, &actor)?;
    realm_out(&idp, &realm)?;
    let rows = idp.store().users(realm.as_str()).await?;
    let out = rows.into_iter().map(UserOut::from_row);
    Ok(Json(out.collect::<Result<_, _>>()?))
}

/// Creates a user.
#[utoipa::path(post, path = "/api/v1/admin/realms/{realm}/users", tag = "Admin",
    security(("bearer" = [])), params(("realm" = String, Path, description = "The realm.", example = "node")),
    request_body = UserIn,
    responses((status = 201, description = "Created.", body = UserOut),
        (status = 409, description = "The user name is taken (`conflict`)."),
        (status = 429, description = "Too many passwords are being checked; see `Retry-After` \
            (`too_many_requests`).")))]
pub async fn create_user(
    State(state): State<AppState>,
    actor: Actor,
    Path(realm): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let realm = realm_name(&realm)?;
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
    params(("realm" = String, Path, description = "The realm.", example = "node"),
        ("id" = String, Path, description = "The user id.")),
    responses((status = 200, description = "The user.", body = UserOut)))]
pub async fn get_user(
    State(state): State<AppState>,
    actor: Actor,
    Path((realm, id)): Path<(String, String)>,
) -> Result<Json<UserOut>, ApiError> {
    let realm = realm_name(&realm)?;
    let idp = admin(&state, &actor)?;
    Ok(Json(user_out(&idp, &realm, &id).await?))
}

/// Replaces a user's settings (disabling ends their logins at the next refresh).
#[utoipa::path(put, path = "/api/v1/admin/realms/{realm}/users/{id}", tag = "Admin",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "The realm.", example = "node"),
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
    let realm = realm_name(&realm)?;
    let idp = admin(&state, &actor)?;
    let settings: UserSettings = json_body(&state, &headers, body).await?;
    idp.update_user(&realm, &id, settings).await?;
    Ok(Json(user_out(&idp, &realm, &id).await?))
}

/// Sets a user's password.
#[utoipa::path(put, path = "/api/v1/admin/realms/{realm}/users/{id}/password", tag = "Admin",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "The realm.", example = "node"),
        ("id" = String, Path, description = "The user id.")),
    request_body = PasswordIn,
    responses((status = 204, description = "Set."),
        (status = 429, description = "Too many passwords are being checked; see `Retry-After` \
            (`too_many_requests`).")))]
pub async fn set_password(
    State(state): State<AppState>,
    actor: Actor,
    Path((realm, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let realm = realm_name(&realm)?;
    let idp = admin(&state, &actor)?;
    let input: PasswordIn = json_body(&state, &headers, body).await?;
    idp.set_password(&realm, &id, input.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a user (their logins end at the next refresh).
#[utoipa::path(delete, path = "/api/v1/admin/realms/{realm}/users/{id}", tag = "Admin",
    security(("bearer" = [])),
    params(("realm" = String, Path, description = "The realm.", example = "node"),
        ("id" = String, Path, description = "The user id.")),
    responses((status = 204, description = "Deleted.")))]
pub async fn delete_user(
    State(state): State<AppState>,
    actor: Actor,
    Path((realm, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let realm = realm_name(&realm)?;
    let idp = admin(&state, &actor)?;
    idp.store().delete_user(realm.as_str(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
