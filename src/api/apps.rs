//! The app-authentication API of the seed: `POST /authentication`.
//!
//! The seed shows the answers but not the request body; Portico's (stable, in OpenAPI) follows
//! the Feathers convention the answers come from — a `strategy` field:
//!
//! - `{"strategy": "app", "appId": "…", "appSecret": "…"}`: the app's credentials;
//! - `{"strategy": "jwt", "accessToken": "…"}`: a token to revalidate (one Portico issued to
//!   the app, answered with the same token) or a token the app signed itself (ES256, answered
//!   with a new Portico token).
//!
//! Success is `200 {"accessToken", "name", "appId"}`. Every failure — bad body, unknown app,
//! wrong secret, bad or expired token — is `401` with exactly the seed's `NotAuthenticated`
//! body, so a caller learns nothing about which part was wrong. Failures are throttled per client
//! IP and per app (429, Feathers' `TooManyRequests`, with `Retry-After`).

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::AppState;
use super::extract::ClientIp;
use super::oidc::retry_after;
use crate::idp::apps::AppLogin;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/authentication", post(authenticate))
}

/// How an app authenticates.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "strategy", deny_unknown_fields)]
pub enum AuthenticationIn {
    /// The app's id and secret.
    #[serde(rename = "app")]
    App {
        /// The app id.
        #[serde(rename = "appId")]
        app_id: String,
        /// The app secret (shown once when the app was created).
        #[serde(rename = "appSecret")]
        app_secret: String,
    },
    /// A token: one Portico issued to the app (revalidation), or one the app signed itself
    /// with its P-256 key (ES256; `iss` = app id, `aud` = the app audience, `sub` = `AppAuth`,
    /// `exp` at most one day ahead).
    #[serde(rename = "jwt")]
    Jwt {
        /// The token.
        #[serde(rename = "accessToken")]
        access_token: String,
    },
}

impl std::fmt::Debug for AuthenticationIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::App { app_id, .. } => f
                .debug_struct("App")
                .field("app_id", app_id)
                .finish_non_exhaustive(),
            Self::Jwt { .. } => f.debug_struct("Jwt").finish_non_exhaustive(),
        }
    }
}

/// A successful authentication.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthenticationOut {
    /// A Portico bearer token for the app.
    #[serde(rename = "accessToken")]
    pub access_token: String,
    /// The app's name.
    pub name: String,
    /// The app id.
    #[serde(rename = "appId")]
    pub app_id: String,
}

/// The seed's failure body (a Feathers error), exactly: `NotAuthenticated` or, when throttled,
/// `TooManyRequests`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppErrorOut {
    /// `NotAuthenticated` or `TooManyRequests`.
    pub name: &'static str,
    /// `Invalid login`, or when to try again.
    pub message: &'static str,
    /// 401 or 429.
    pub code: u16,
    /// `not-authenticated` or `too-many-requests`.
    #[serde(rename = "className")]
    pub class_name: &'static str,
    /// `{"message": "Invalid login"}`, or `{}`.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// `{}`.
    #[schema(value_type = Object)]
    pub errors: serde_json::Value,
}

fn not_authenticated() -> Response {
    let body = AppErrorOut {
        name: "NotAuthenticated",
        message: "Invalid login",
        code: 401,
        class_name: "not-authenticated",
        data: json!({ "message": "Invalid login" }),
        errors: json!({}),
    };
    (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
}

fn too_many_requests(after: HeaderValue) -> Response {
    let body = AppErrorOut {
        name: "TooManyRequests",
        message: "Too many failed logins; try again after the Retry-After delay.",
        code: 429,
        class_name: "too-many-requests",
        data: json!({}),
        errors: json!({}),
    };
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, after);
    response
}

/// Creates or revalidates an app's access token.
#[utoipa::path(post, path = "/authentication", tag = "App authentication",
    request_body(content = AuthenticationIn, content_type = "application/json"),
    responses(
        (status = 200, description = "Authenticated.", body = AuthenticationOut),
        (status = 401, description = "Any failure: the seed's NotAuthenticated body.",
            body = AppErrorOut),
        (status = 429, description = "Too many failures from this address or for this app \
            (`TooManyRequests`); see Retry-After.", body = AppErrorOut)))]
pub async fn authenticate(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Body,
) -> Response {
    let Some(idp) = state.idp.clone() else {
        return not_authenticated();
    };
    let Ok(bytes) = super::endpoints::read_body(&state, body).await else {
        return not_authenticated();
    };
    let Ok(request) = serde_json::from_slice::<AuthenticationIn>(&bytes) else {
        return not_authenticated();
    };
    // Self-signed tokens count against the app they name; a failed revalidation only against
    // the address (a per-address key), so no one can throttle every app's revalidations.
    let account = match &request {
        AuthenticationIn::App { app_id, .. } => format!("app:{app_id}"),
        AuthenticationIn::Jwt { access_token } => {
            match crate::jose::verifier::decode_unverified(access_token) {
                Ok((_, claims)) if idp.is_self_signed(access_token) => format!(
                    "app-token:{}",
                    claims
                        .get("iss")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                ),
                _ => format!("address:{ip}"),
            }
        }
    };
    let throttle = idp.throttle();
    if let Err(throttled) = throttle.check(ip, &account, Instant::now()) {
        return too_many_requests(retry_after(throttled));
    }
    let outcome = match &request {
        AuthenticationIn::App { app_id, app_secret } => idp.app_login(app_id, app_secret).await,
        AuthenticationIn::Jwt { access_token } if idp.is_self_signed(access_token) => {
            idp.app_self_signed(access_token).await
        }
        AuthenticationIn::Jwt { access_token } => {
            let now = state.clock.now().unix_timestamp();
            match state.auth.verifier.verify(access_token, now).await {
                Ok(verified) => idp.app_revalidate(&verified, access_token).await,
                Err(_) => Ok(None),
            }
        }
    };
    match outcome {
        Ok(Some(AppLogin {
            app_id,
            name,
            access_token,
        })) => {
            throttle.succeeded(ip, &account, Instant::now());
            let mut response = axum::Json(AuthenticationOut {
                access_token,
                name,
                app_id,
            })
            .into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Ok(None) => {
            throttle.failed(ip, &account, Instant::now());
            not_authenticated()
        }
        Err(error) => {
            let error = crate::api::error::ApiError::from(error);
            if error.code().status().is_server_error() {
                return error.into_response();
            }
            throttle.failed(ip, &account, Instant::now());
            not_authenticated()
        }
    }
}
