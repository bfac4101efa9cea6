//! What clients do with tokens they hold: `userinfo` (OpenID Connect Core section 5.3),
//! `token/introspect` (RFC 7662) and `revoke` (RFC 7009).

use axum::body::Body;
use axum::extract::State;

use crate::api::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{
    ClientIp, OAuthError, authenticate_throttled, client_auth, no_store, read_form, realm,
};
use crate::access::Refused;
use crate::api::AppState;
use crate::api::auth::{bearer_token, invalid_request, invalid_token, refusal};
use crate::api::error::ApiError;
use crate::idp::grants::{LoggedIn, profile_claims};
use crate::idp::{Idp, Realm, UserSettings};

/// An access token of this realm that verified, with its claims.
struct AccessClaims {
    claims: Value,
}

impl AccessClaims {
    fn str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    fn scopes(&self) -> Vec<&str> {
        self.str("scope")
            .map(|s| s.split(' ').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    }
}

/// Verifies `token` as a live access token of `realm`: signature, claims, not revoked, and its
/// login (`sid`) not ended.
async fn access_claims(
    state: &AppState,
    idp: &Idp,
    realm: &Realm,
    token: &str,
    live_login: bool,
) -> Result<AccessClaims, String> {
    let now = state.clock.now().unix_timestamp();
    let verified = state
        .auth
        .verifier
        .verify(token, now)
        .await
        .map_err(|e| e.to_string())?;
    if verified.realm.as_deref() != Some(realm.name.as_str()) {
        return Err("the token is not an access token of this realm".into());
    }
    let (_, claims) = crate::jose::verifier::decode_unverified(token)?;
    let claims = AccessClaims { claims };
    if live_login && let Some(session) = claims.str("sid") {
        let live = idp
            .family_is_live(session)
            .await
            .map_err(|e| ApiError::from(e).detail().to_owned())?;
        if !live {
            return Err("the login this token belongs to has ended".into());
        }
    }
    Ok(claims)
}

/// `userinfo`: the signed-in user's claims, as the access token's scope releases them.
#[utoipa::path(method(get, post), path = "/realms/{realm}/protocol/openid-connect/userinfo",
    tag = "OpenID Connect", params(("realm" = String, Path, description = "The realm.", example = "node")), security(("bearer" = [])),
    responses((status = 200, description = "The claims.", body = super::wire::UserinfoOut)))]
pub(crate) async fn userinfo(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (idp, realm) = realm(&state, &name)?;
    let challenge_realm = realm.issuer_url.as_str();
    let token = match bearer_token(&headers) {
        Ok(Some(token)) => token,
        Ok(None) => return Err(refusal(Refused::NoCredentials, challenge_realm)),
        Err(reason) => return Err(invalid_request(challenge_realm, reason)),
    };
    let claims = access_claims(&state, &idp, &realm, token, true)
        .await
        .map_err(|why| invalid_token(challenge_realm, &why))?;
    if !claims.scopes().contains(&"openid") {
        return Err(refusal(
            Refused::InsufficientScope(vec!["openid".into()]),
            challenge_realm,
        ));
    }
    let subject = claims.str("sub").unwrap_or_default();
    let user = idp.store().user(&realm.name, subject).await?;
    let login = user.and_then(|user| {
        let settings: UserSettings = serde_json::from_str(&user.settings).ok()?;
        (!settings.disabled).then_some(LoggedIn { user, settings })
    });
    let Some(login) = login else {
        return Err(invalid_token(
            challenge_realm,
            "the token's subject is not an active user of this realm",
        ));
    };
    let mut out = serde_json::Map::new();
    out.insert("sub".into(), login.user.id.clone().into());
    let scope = claims.scopes().join(" ");
    for (name, value) in profile_claims(&login, &scope) {
        out.insert(name.into(), value);
    }
    let mut response = axum::Json(Value::Object(out)).into_response();
    no_store(response.headers_mut());
    Ok(response)
}

/// `token/introspect` (RFC 7662), for confidential clients: any of them may introspect the
/// realm's access tokens (resource servers do), a refresh token only the client it was issued
/// to. Anything else is `{"active": false}`.
#[utoipa::path(post, path = "/realms/{realm}/protocol/openid-connect/token/introspect",
    tag = "OpenID Connect", params(("realm" = String, Path, description = "The realm.", example = "node")), security((), ("client" = [])),
    request_body(content = super::wire::TokenHintIn,
        content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The token's state.",
            body = super::wire::IntrospectionOut),
        (status = 400, description = "A bad request, or an unknown realm (`invalid_request`).", body = super::wire::OAuthErrorOut),
        (status = 401, description = "Client authentication failed (`invalid_client`).",
            body = super::wire::OAuthErrorOut),
        (status = 429, description = "Too many failures from this address or at this client \
            (`temporarily_unavailable`); see `Retry-After`.", body = super::wire::OAuthErrorOut),
        (status = 503, description = "The store cannot be reached (`server_error`).",
            body = super::wire::OAuthErrorOut)))]
pub(crate) async fn introspect(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OAuthError> {
    let (idp, realm) = realm(&state, &name)?;
    let form = read_form(&state, &headers, body).await?;
    let client = authenticate_throttled(&idp, &realm, ip, &client_auth(&headers, &form)?).await?;
    if !client.confidential {
        return Err(OAuthError::invalid_client(false));
    }
    let token = form.require("token")?;
    let refresh_first = form.get("token_type_hint") == Some("refresh_token");
    let mut answer = None;
    for refresh in [refresh_first, !refresh_first] {
        answer = if refresh {
            idp.introspect_refresh_token(&realm, &client.id, token)
                .await?
        } else {
            introspect_access(&state, &idp, &realm, token).await?
        };
        if answer.is_some() {
            break;
        }
    }
    let mut response =
        axum::Json(answer.unwrap_or_else(|| json!({ "active": false }))).into_response();
    no_store(response.headers_mut());
    Ok(response)
}

async fn introspect_access(
    state: &AppState,
    idp: &Idp,
    realm: &Realm,
    token: &str,
) -> Result<Option<Value>, OAuthError> {
    if token.bytes().filter(|b| *b == b'.').count() != 2 {
        return Ok(None);
    }
    let Ok(access) = access_claims(state, idp, realm, token, true).await else {
        return Ok(None);
    };
    let mut out = json!({ "active": true, "token_type": "Bearer" });
    for name in [
        "scope",
        "client_id",
        "sub",
        "aud",
        "iss",
        "exp",
        "iat",
        "nbf",
        "jti",
        "sid",
        "realm_access",
    ] {
        if let Some(value) = access.claims.get(name) {
            out[name] = value.clone();
        }
    }
    if let Some(subject) = access.str("sub")
        && let Some(user) = idp
            .store()
            .user(&realm.name, subject)
            .await
            .map_err(|e| OAuthError::from(ApiError::from(e)))?
    {
        out["username"] = user.username.into();
    }
    Ok(Some(out))
}

/// `revoke` (RFC 7009): a refresh token ends its whole login; an access token is refused from
/// now on. Always 200 once the client authenticated, also for unknown tokens and for tokens of
/// other clients (which are left alone).
#[utoipa::path(post, path = "/realms/{realm}/protocol/openid-connect/revoke",
    tag = "OpenID Connect", params(("realm" = String, Path, description = "The realm.", example = "node")), security((), ("client" = [])),
    request_body(content = super::wire::TokenHintIn,
        content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Revoked, or not a token of this client."),
        (status = 400, description = "A bad request, or an unknown realm (`invalid_request`).", body = super::wire::OAuthErrorOut),
        (status = 401, description = "Client authentication failed (`invalid_client`).",
            body = super::wire::OAuthErrorOut),
        (status = 429, description = "Too many failures from this address or at this client \
            (`temporarily_unavailable`); see `Retry-After`.", body = super::wire::OAuthErrorOut),
        (status = 503, description = "The store cannot be reached (`server_error`).",
            body = super::wire::OAuthErrorOut)))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OAuthError> {
    let (idp, realm) = realm(&state, &name)?;
    let form = read_form(&state, &headers, body).await?;
    let client = authenticate_throttled(&idp, &realm, ip, &client_auth(&headers, &form)?).await?;
    let token = form.require("token")?;
    let revoked = idp.revoke_refresh_token(&realm, &client.id, token).await?;
    if !revoked
        && token.bytes().filter(|b| *b == b'.').count() == 2
        // Revocation works also after the login ended (a logout revokes refresh, then access).
        && let Ok(access) = access_claims(&state, &idp, &realm, token, false).await
        && access.str("client_id") == Some(client.id.as_str())
        && let (Some(jti), Some(exp)) = (
            access.str("jti"),
            access.claims.get("exp").and_then(Value::as_i64),
        )
    {
        idp.revoke_access_token(&realm, jti, exp).await?;
    }
    let mut response = StatusCode::OK.into_response();
    no_store(response.headers_mut());
    Ok(response)
}
