//! The admin API's XRTC keys: list an account's API keys, revoke one.

use super::*;

/// An XRTC API key (never the key itself: it was shown once, when made).
#[derive(Debug, Serialize, ToSchema)]
pub struct XrtcKeyOut {
    /// Its name (`apikeyN`).
    pub name: String,
    /// When it was made (RFC 3339).
    pub created: String,
    /// When it was last used (RFC 3339).
    pub last_used: String,
    /// When it last logged in (RFC 3339), if ever.
    pub last_login: Option<String>,
    /// When it was disabled or revoked (RFC 3339); a disabled key logs in no more.
    pub disabled: Option<String>,
}

impl From<crate::store::KeyRow> for XrtcKeyOut {
    fn from(row: crate::store::KeyRow) -> Self {
        use crate::timefmt::rfc3339;
        Self {
            name: row.name,
            created: rfc3339(row.created),
            last_used: rfc3339(row.last_used),
            last_login: row.last_login.map(rfc3339),
            disabled: row.disabled.map(rfc3339),
        }
    }
}

/// XRTC, for an actor the admin policy lets in.
fn xrtc_admin(state: &AppState, actor: &Actor) -> Result<Arc<crate::xrtc::Xrtc>, ApiError> {
    authorize(state, &state.auth.admin, actor)?;
    state.xrtc.clone().ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            "XRTC is turned off (`xrtc.enabled = false`).",
        )
    })
}

async fn keys_out(xrtc: &crate::xrtc::Xrtc, account: &str) -> Result<Vec<XrtcKeyOut>, ApiError> {
    let keys = xrtc.keys(account).await?;
    if keys.is_empty() {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!(
                "There is no XRTC account `{}` with keys.",
                crate::jose::jws::truncate(account)
            ),
        ));
    }
    Ok(keys.into_iter().map(XrtcKeyOut::from).collect())
}

/// Lists an XRTC account's API keys, oldest first.
#[utoipa::path(get, path = "/api/v1/admin/xrtc/accounts/{account}/keys", tag = "Admin",
    security(("bearer" = [])), params(("account" = String, Path, description = "The account id.")),
    responses((status = 200, description = "The account's keys.", body = [XrtcKeyOut])))]
pub async fn list_xrtc_keys(
    State(state): State<AppState>,
    actor: Actor,
    Path(account): Path<String>,
) -> Result<Json<Vec<XrtcKeyOut>>, ApiError> {
    let xrtc = xrtc_admin(&state, &actor)?;
    Ok(Json(keys_out(&xrtc, &account).await?))
}

/// Revokes an XRTC API key: it logs in no more, and its sessions end (on this node at once,
/// on other nodes at their next upkeep, within seconds). Answers the account's keys.
#[utoipa::path(post, path = "/api/v1/admin/xrtc/accounts/{account}/keys/{name}/revoke",
    tag = "Admin", security(("bearer" = [])),
    params(("account" = String, Path, description = "The account id."),
        ("name" = String, Path, description = "The key's name (`apikeyN`).")),
    responses((status = 200, description = "The account's keys after the revocation.",
        body = [XrtcKeyOut])))]
pub async fn revoke_xrtc_key(
    State(state): State<AppState>,
    actor: Actor,
    Path((account, name)): Path<(String, String)>,
) -> Result<Json<Vec<XrtcKeyOut>>, ApiError> {
    let xrtc = xrtc_admin(&state, &actor)?;
    if !xrtc.revoke_key(&account, &name).await? {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!(
                "The XRTC account `{}` has no key `{}`.",
                crate::jose::jws::truncate(&account),
                crate::jose::jws::truncate(&name)
            ),
        ));
    }
    Ok(Json(keys_out(&xrtc, &account).await?))
}
