//! The identity provider's OpenID Connect endpoints, at Keycloak's paths:
//! `/realms/{realm}/.well-known/openid-configuration` and, under
//! `/realms/{realm}/protocol/openid-connect/`, `auth` and `logout` (browser pages, in
//! [`authorize`]), `token` and `certs` (here), `userinfo`, `token/introspect` and `revoke` (in
//! [`tokens`]).
//!
//! Errors follow RFC 6749 section 5.2: a JSON `{"error", "error_description"}` body, 400, or 401
//! for a failed client authentication (with `WWW-Authenticate: Basic` when the client used it).
//! Every token response carries `Cache-Control: no-store` and `Pragma: no-cache`.
//!
//! Failed client authentications and failed grants are throttled per client IP and per client
//! (`idp::throttle`), answered 429 with `Retry-After`.

pub(crate) mod authorize;
mod pages;
pub(crate) mod tokens;
pub mod wire;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;

use crate::api::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::AppState;
pub use super::extract::ClientIp;
use crate::api::error::{ApiError, ErrorCode};
use crate::idp::grants::GrantClient;
use crate::idp::{ClientSettings, Idp, IdpError, Realm, STANDARD_SCOPES, TokenSubject};
use crate::ratelimit::Throttled;
use crate::secrets::Hashed;
use wire::{DiscoveryOut, JwksOut, OAuthErrorOut, TokenIn, TokenOut};

/// The routes of this module (none when the identity provider is off).
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/realms/{realm}/.well-known/openid-configuration",
            get(discovery),
        )
        .route("/realms/{realm}/protocol/openid-connect/certs", get(certs))
        .route("/realms/{realm}/protocol/openid-connect/token", post(token))
        .route(
            "/realms/{realm}/protocol/openid-connect/auth",
            get(authorize::page).post(authorize::submit),
        )
        .route(
            "/realms/{realm}/protocol/openid-connect/logout",
            get(authorize::logout).post(authorize::logout_post),
        )
        .route(
            "/realms/{realm}/protocol/openid-connect/userinfo",
            get(tokens::userinfo).post(tokens::userinfo),
        )
        .route(
            "/realms/{realm}/protocol/openid-connect/token/introspect",
            post(tokens::introspect),
        )
        .route(
            "/realms/{realm}/protocol/openid-connect/revoke",
            post(tokens::revoke),
        )
}

/// The `Retry-After` value (whole seconds, at least 1) for a throttled request.
pub(crate) fn retry_after(throttled: Throttled) -> HeaderValue {
    let seconds = throttled.0.as_secs_f64().ceil().max(1.0) as u64;
    HeaderValue::from(seconds)
}

/// The throttle's key for a client of a realm.
fn client_account(realm: &Realm, client_id: &str) -> String {
    format!("client:{}:{client_id}", realm.name)
}

/// An OAuth 2.0 error response (RFC 6749 section 5.2).
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    basic_challenge: bool,
    retry_after: Option<HeaderValue>,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            basic_challenge: false,
            retry_after: None,
        }
    }

    /// 429: too many failures from this address or at this client.
    fn throttled(throttled: Throttled) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(retry_after(throttled)),
            ..Self::new(
                "temporarily_unavailable",
                "Too many failed attempts; try again after the Retry-After delay.",
            )
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }

    /// The same answer for an unknown client, a wrong secret and a disabled client.
    fn invalid_client(basic: bool) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: "Client authentication failed.".into(),
            basic_challenge: basic,
            retry_after: None,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        no_store(headers);
        if let Some(after) = self.retry_after {
            headers.insert(header::RETRY_AFTER, after);
        }
        if self.basic_challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"portico\", charset=\"UTF-8\""),
            );
        }
        response
    }
}

impl From<ApiError> for OAuthError {
    fn from(error: ApiError) -> Self {
        let mut out = Self::invalid_request(error.detail().to_owned());
        if error.code().status().is_server_error() {
            out.status = error.code().status();
            out.error = "server_error";
        }
        out
    }
}

impl From<IdpError> for OAuthError {
    fn from(error: IdpError) -> Self {
        match error {
            IdpError::Grant(why) => Self::new("invalid_grant", why),
            IdpError::Scope(why) => Self::new("invalid_scope", why),
            IdpError::Invalid(why) => Self::invalid_request(why),
            IdpError::Conflict(_) | IdpError::NotFound(_) => {
                Self::invalid_request(error.to_string())
            }
            IdpError::Busy(after) => Self::throttled(Throttled(after)),
            IdpError::Store(_) | IdpError::Keys(_) => ApiError::from(error).into(),
        }
    }
}

fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn idp(state: &AppState) -> Result<&Arc<Idp>, ApiError> {
    state.idp.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            "The built-in identity provider is turned off (`idp.enabled = false`).",
        )
    })
}

fn realm(state: &AppState, name: &str) -> Result<(Arc<Idp>, Arc<Realm>), ApiError> {
    let idp = idp(state)?;
    let found = crate::idp::RealmName::parse(name)
        .ok()
        .and_then(|name| idp.realm(&name));
    let realm = found.ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            format!("There is no realm `{}`.", crate::jose::jws::truncate(name)),
        )
    })?;
    Ok((idp.clone(), realm))
}

/// OpenID Connect Discovery 1.0 and RFC 8414 metadata. It advertises exactly what works.
#[utoipa::path(get, path = "/realms/{realm}/.well-known/openid-configuration",
    tag = "OpenID Connect", params(("realm" = String, Path, description = "The realm.", example = "node")),
    responses((status = 200, description = "The metadata.", body = DiscoveryOut)))]
pub(crate) async fn discovery(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let (_, realm) = realm(&state, &name)?;
    let base = format!("{}/protocol/openid-connect", realm.issuer_url);
    let secret_methods = ["client_secret_basic", "client_secret_post"];
    let document = json!({
        "issuer": realm.issuer_url,
        "authorization_endpoint": format!("{base}/auth"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/certs"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "end_session_endpoint": format!("{base}/logout"),
        "introspection_endpoint": format!("{base}/token/introspect"),
        "revocation_endpoint": format!("{base}/revoke"),
        "grant_types_supported": crate::idp::model::GRANT_TYPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [realm.id_key.header_alg()],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": secret_methods,
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "scopes_supported": STANDARD_SCOPES,
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp", "sid", "at_hash",
            "jti", "client_id", "scope", "realm_access", "preferred_username", "name", "email",
        ],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
    });
    let mut response = axum::Json(document).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    Ok(response)
}

/// The realm's published keys (JWKS): next, active and retired.
#[utoipa::path(get, path = "/realms/{realm}/protocol/openid-connect/certs",
    tag = "OpenID Connect", params(("realm" = String, Path, description = "The realm.", example = "node")),
    responses((status = 200, description = "The keys.", body = JwksOut,
        content_type = "application/jwk-set+json")))]
pub(crate) async fn certs(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let (_, realm) = realm(&state, &name)?;
    let mut response = realm.jwks.clone().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    Ok(response)
}

/// A form body's parameters; a parameter sent twice is refused (RFC 6749 section 3.2).
pub(crate) struct Form(BTreeMap<String, String>);

impl Form {
    fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut params = BTreeMap::new();
        for (name, value) in form_urlencoded::parse(body) {
            if value.is_empty() {
                // RFC 6749 section 3.1: a parameter sent without a value is as if omitted.
                continue;
            }
            if params.insert(name.to_string(), value.to_string()).is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "The parameter `{}` appears more than once.",
                    crate::jose::jws::truncate(&name)
                )));
            }
        }
        Ok(Self(params))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name).ok_or_else(|| {
            OAuthError::invalid_request(format!("The parameter `{name}` is missing."))
        })
    }
}

/// Reads a form body (`application/x-www-form-urlencoded`, any charset parameter).
async fn read_form(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Form, OAuthError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(OAuthError::invalid_request(
            "The body must be application/x-www-form-urlencoded.",
        ));
    }
    let bytes = super::endpoints::read_body(state, body).await?;
    Form::parse(&bytes)
}

/// Who is calling the token endpoint.
struct ClientAuth {
    client_id: String,
    secret: Option<String>,
    basic: bool,
}

/// Reads client credentials from `Authorization: Basic` or the form (never both).
fn client_auth(headers: &HeaderMap, form: &Form) -> Result<ClientAuth, OAuthError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => {
            let value = value.to_str().unwrap_or_default();
            let Some((scheme, encoded)) = value.split_once(' ') else {
                return Err(OAuthError::invalid_client(true));
            };
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(OAuthError::invalid_request(
                    "Only Basic client authentication is accepted in the Authorization header.",
                ));
            }
            use base64::Engine;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or(OAuthError::invalid_client(true))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or(OAuthError::invalid_client(true))?;
            // RFC 6749 section 2.3.1: both are form-urlencoded before Basic encoding.
            let unescape = |s: &str| -> String {
                form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            Some((unescape(id), unescape(secret)))
        }
    };
    match basic {
        Some((client_id, secret)) => {
            if form.get("client_secret").is_some() {
                return Err(OAuthError::invalid_request(
                    "The client authenticated twice (Basic and client_secret); use one.",
                ));
            }
            if form.get("client_id").is_some_and(|id| id != client_id) {
                return Err(OAuthError::invalid_request(
                    "The client_id parameter differs from the Basic credentials.",
                ));
            }
            Ok(ClientAuth {
                client_id,
                secret: Some(secret),
                basic: true,
            })
        }
        None => Ok(ClientAuth {
            // RFC 6749 section 5.2: no client authentication at all is `invalid_client`.
            client_id: form
                .get("client_id")
                .ok_or(OAuthError::invalid_client(false))?
                .to_owned(),
            secret: form.get("client_secret").map(str::to_owned),
            basic: false,
        }),
    }
}

/// An authenticated client.
struct Client {
    id: String,
    settings: ClientSettings,
    confidential: bool,
}

impl Client {
    /// What the grants need to know of the client.
    fn grant(&self) -> GrantClient<'_> {
        GrantClient {
            id: &self.id,
            confidential: self.confidential,
            refresh: self
                .settings
                .grant_types
                .iter()
                .any(|g| g == "refresh_token"),
            access_token_seconds: self.settings.access_token_seconds,
            refresh_idle_seconds: self.settings.refresh_idle_seconds,
        }
    }
}

/// Authenticates the client: a confidential one by its secret (constant-time), a public one by
/// its id alone. Unknown, wrong and disabled all get the same `invalid_client`.
async fn authenticate(idp: &Idp, realm: &Realm, auth: &ClientAuth) -> Result<Client, OAuthError> {
    let row = idp
        .store()
        .client(&realm.name, &auth.client_id)
        .await
        // A store that cannot answer is a 503 to retry, not a 500.
        .map_err(|e| OAuthError::from(ApiError::from(e)))?;
    let Some(row) = row else {
        // Spend what a real check spends, so timing does not tell unknown ids apart.
        let _ = Hashed([0; 32]).matches(auth.secret.as_deref().unwrap_or_default());
        return Err(OAuthError::invalid_client(auth.basic));
    };
    let settings: ClientSettings = serde_json::from_str(&row.settings)
        .map_err(|e| OAuthError::from(ApiError::internal(&e)))?;
    let authenticated = match (&row.secret_hash, &auth.secret) {
        (Some(stored), Some(secret)) => {
            Hashed::from_stored(stored).is_some_and(|hash| hash.matches(secret))
        }
        (None, None) => true,
        _ => false,
    };
    if !authenticated || !settings.enabled {
        return Err(OAuthError::invalid_client(auth.basic));
    }
    Ok(Client {
        id: row.client_id,
        confidential: row.secret_hash.is_some(),
        settings,
    })
}

/// Authenticates a client under the throttle: a failure counts against the address and the
/// client; a confidential client's success trusts the address for it.
async fn authenticate_throttled(
    idp: &Idp,
    realm: &Realm,
    ip: IpAddr,
    auth: &ClientAuth,
) -> Result<Client, OAuthError> {
    let account = client_account(realm, &auth.client_id);
    let throttle = idp.throttle();
    throttle
        .check(ip, &account, Instant::now())
        .map_err(OAuthError::throttled)?;
    match authenticate(idp, realm, auth).await {
        Ok(client) => {
            if client.confidential {
                throttle.succeeded(ip, &account, Instant::now());
            }
            Ok(client)
        }
        Err(error) => {
            throttle.failed(ip, &account, Instant::now());
            Err(error)
        }
    }
}

/// The token endpoint: the `client_credentials`, `authorization_code` and `refresh_token`
/// grants.
#[utoipa::path(post, path = "/realms/{realm}/protocol/openid-connect/token",
    tag = "OpenID Connect", params(("realm" = String, Path, description = "The realm.", example = "node")), security((), ("client" = [])),
    request_body(content = TokenIn, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Tokens.", body = TokenOut),
        (status = 400, description = "A bad request, grant or scope, a grant this client may not use, or an unknown realm.", body = OAuthErrorOut),
        (status = 401, description = "Client authentication failed (`invalid_client`).",
            body = OAuthErrorOut),
        (status = 429, description = "Too many failures from this address or at this client \
            (`temporarily_unavailable`); see `Retry-After`.", body = OAuthErrorOut),
        (status = 503, description = "The store cannot be reached (`server_error`).",
            body = OAuthErrorOut)))]
pub(crate) async fn token(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OAuthError> {
    let (idp, realm) = realm(&state, &name)?;
    let form = read_form(&state, &headers, body).await?;
    let grant_type = form.require("grant_type")?.to_owned();
    let auth = client_auth(&headers, &form)?;
    let account = client_account(&realm, &auth.client_id);
    let throttle = idp.throttle();
    let client = authenticate_throttled(&idp, &realm, ip, &auth).await?;
    if !client.settings.grant_types.contains(&grant_type) {
        return Err(
            if crate::idp::model::GRANT_TYPES.contains(&grant_type.as_str()) {
                OAuthError::new(
                    "unauthorized_client",
                    format!("This client may not use the {grant_type} grant."),
                )
            } else {
                OAuthError::new(
                    "unsupported_grant_type",
                    "Supported grant types: authorization_code, client_credentials, refresh_token.",
                )
            },
        );
    }
    let outcome = match grant_type.as_str() {
        "client_credentials" => client_credentials(&idp, &realm, &client, &form),
        "authorization_code" => {
            let code = form.require("code")?;
            idp.redeem_code(
                &realm,
                client.grant(),
                code,
                form.get("redirect_uri"),
                form.get("code_verifier"),
            )
            .await
            .map(token_set_body)
            .map_err(OAuthError::from)
        }
        "refresh_token" => {
            let token = form.require("refresh_token")?;
            idp.refresh(&realm, client.grant(), token, form.get("scope"))
                .await
                .map(token_set_body)
                .map_err(OAuthError::from)
        }
        _ => unreachable!("grant types are checked against GRANT_TYPES"),
    };
    match &outcome {
        Ok(_) => throttle.succeeded(ip, &account, Instant::now()),
        Err(error) if error.error == "invalid_grant" => {
            throttle.failed(ip, &account, Instant::now())
        }
        Err(_) => {}
    }
    let mut response = axum::Json(outcome?).into_response();
    no_store(response.headers_mut());
    Ok(response)
}

/// The token response of a code or refresh grant.
fn token_set_body(tokens: crate::idp::grants::TokenSet) -> Value {
    let mut body = json!({
        "access_token": tokens.access_token,
        "token_type": "Bearer",
        "expires_in": tokens.expires_in,
        "scope": tokens.scope,
    });
    if let Some((refresh, lifetime)) = tokens.refresh_token {
        body["refresh_token"] = refresh.into();
        body["refresh_expires_in"] = lifetime.into();
    }
    if let Some(id_token) = tokens.id_token {
        body["id_token"] = id_token.into();
    }
    body
}

/// The scopes granted: those requested, each of which must be a standard scope, one of the
/// client's `scopes`, or — for its own client-credentials tokens only (`own_roles`) — one of its
/// roles. Nothing when nothing is requested. Scopes grant no permission by themselves: a realm
/// token's permissions are its `realm_access.roles`.
fn granted_scope(
    client: &ClientSettings,
    requested: Option<&str>,
    own_roles: bool,
) -> Result<String, OAuthError> {
    let Some(requested) = requested else {
        return Ok(String::new());
    };
    let mut granted = Vec::new();
    for scope in requested.split(' ').filter(|s| !s.is_empty()) {
        let allowed = STANDARD_SCOPES.contains(&scope)
            || client.scopes.iter().any(|s| s == scope)
            || (own_roles && client.roles.iter().any(|r| r == scope));
        if !allowed {
            return Err(OAuthError::new(
                "invalid_scope",
                format!(
                    "The scope `{}` is not granted to this client.",
                    crate::jose::jws::truncate(scope)
                ),
            ));
        }
        if !granted.contains(&scope) {
            granted.push(scope);
        }
    }
    Ok(granted.join(" "))
}

/// RFC 6749 section 4.4: a confidential client's own access token; no refresh token.
fn client_credentials(
    idp: &Idp,
    realm: &Realm,
    client: &Client,
    form: &Form,
) -> Result<Value, OAuthError> {
    if !client.confidential {
        return Err(OAuthError::new(
            "unauthorized_client",
            "A public client cannot use client_credentials.",
        ));
    }
    let scope = granted_scope(&client.settings, form.get("scope"), true)?;
    let lifetime = client
        .settings
        .access_token_seconds
        .unwrap_or(realm.settings.access_token_seconds);
    let token = idp
        .access_token(
            realm,
            &TokenSubject {
                subject: &client.id,
                client_id: &client.id,
                scope: &scope,
                roles: &client.settings.roles,
                session: None,
            },
            lifetime,
        )
        .map_err(|e| OAuthError::from(ApiError::internal(&e)))?;
    let mut body = json!({
        "access_token": token.token,
        "token_type": "Bearer",
        "expires_in": token.expires_in,
    });
    if !scope.is_empty() {
        body["scope"] = scope.into();
    }
    Ok(body)
}
