//! The OpenID Connect endpoints' wire, as the OpenAPI document describes it: the forms they
//! read and the JSON they answer. The handlers read forms with [`super::Form`] and write JSON
//! with `serde_json`; these types only document them.
#![allow(dead_code)]

use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

/// An OAuth 2.0 error (RFC 6749 section 5.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthErrorOut {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `temporarily_unavailable` or `server_error`.
    error: String,
    /// A sentence for people.
    error_description: String,
}

/// A token request (RFC 6749 section 4); the client authenticates with HTTP Basic or with
/// `client_id` and `client_secret` here, a public client with `client_id` alone.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenIn {
    /// `client_credentials`, `authorization_code` or `refresh_token`.
    grant_type: String,
    client_id: Option<String>,
    client_secret: Option<String>,
    /// The authorization code (`authorization_code`).
    code: Option<String>,
    /// The redirect URI the code was sent to (`authorization_code`).
    redirect_uri: Option<String>,
    /// The PKCE verifier (RFC 7636).
    code_verifier: Option<String>,
    /// The refresh token (`refresh_token`).
    refresh_token: Option<String>,
    /// Space-separated scopes.
    scope: Option<String>,
}

/// Tokens (RFC 6749 section 5.1).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenOut {
    access_token: String,
    /// `Bearer`.
    token_type: String,
    /// Seconds.
    expires_in: u64,
    scope: Option<String>,
    refresh_token: Option<String>,
    /// Seconds.
    refresh_expires_in: Option<u64>,
    /// With the `openid` scope.
    id_token: Option<String>,
}

/// A token to introspect (RFC 7662) or revoke (RFC 7009).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenHintIn {
    token: String,
    /// `access_token` or `refresh_token`.
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// An introspection (RFC 7662 section 2.2): `{"active": false}`, or `true` with the token's
/// claims.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntrospectionOut {
    active: bool,
}

/// The realm's OpenID Provider metadata (OpenID Connect Discovery 1.0, RFC 8414).
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscoveryOut {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

/// The realm's public keys (RFC 7517 section 5).
#[derive(Debug, Serialize, ToSchema)]
pub struct JwksOut {
    /// The keys: next, active and retired.
    keys: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// The signed-in user's claims, as the access token's scope releases them.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserinfoOut {
    sub: String,
}

/// An authorization request (RFC 6749 section 4.1.1, OpenID Connect Core 3.1.2.1, RFC 7636):
/// the query of `GET auth`, and part of the form of `POST auth`.
#[derive(Debug, Serialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct AuthorizeQuery {
    /// `code`.
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    /// Space-separated scopes.
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    /// `query` (the default and only one).
    response_mode: Option<String>,
    /// `login` or `none`.
    prompt: Option<String>,
    code_challenge: Option<String>,
    /// `S256`.
    code_challenge_method: Option<String>,
}

/// The login form (with the authorization request's parameters, which the page carries), or an
/// authorization request sent as a form.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginIn {
    username: Option<String>,
    password: Option<String>,
    /// The page's anti-forgery token.
    csrf: Option<String>,
    /// The authorization request, which the page carries.
    #[serde(flatten)]
    request: AuthorizeQuery,
}

/// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogoutQuery {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

/// A logout form: as the query, or a `refresh_token` with client authentication (Keycloak's
/// adapters), which ends that login.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogoutIn {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    refresh_token: Option<String>,
}
