//! The identity provider's OpenID Connect endpoints, at Keycloak's paths:
//! `/realms/{realm}/.well-known/openid-configuration` and
//! `/realms/{realm}/protocol/openid-connect/{certs,token}`.
//!
//! Errors follow RFC 6749 section 5.2: a JSON `{"error", "error_description"}` body, 400, or 401
//! for a failed client authentication (with `WWW-Authenticate: Basic` when the client used it).
//! Every token response carries `Cache-Control: no-store` and `Pragma: no-cache`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::idp::{ClientSettings, Idp, Realm, STANDARD_SCOPES};
use crate::secrets::Hashed;

/// The routes of this module (none when the identity provider is off).
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/realms/{realm}/.well-known/openid-configuration",
            get(discovery),
        )
        .route("/realms/{realm}/protocol/openid-connect/certs", get(certs))
        .route("/realms/{realm}/protocol/openid-connect/token", post(token))
}

/// An OAuth 2.0 error response (RFC 6749 section 5.2).
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    basic_challenge: bool,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            basic_challenge: false,
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
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        no_store(headers);
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
    let realm = idp.realm(name).ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            format!("There is no realm `{}`.", crate::jose::jws::truncate(name)),
        )
    })?;
    Ok((idp.clone(), realm))
}

/// OpenID Connect Discovery 1.0 and RFC 8414 metadata. It advertises exactly what works.
async fn discovery(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let (_, realm) = realm(&state, &name)?;
    let base = format!("{}/protocol/openid-connect", realm.issuer_url);
    let document = json!({
        "issuer": realm.issuer_url,
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/certs"),
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [realm.id_key.header_alg()],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": STANDARD_SCOPES,
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "realm_access"],
    });
    let mut response = axum::Json(document).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    Ok(response)
}

/// The realm's published keys (JWKS): next, active and retired.
async fn certs(
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
            client_id: form.require("client_id")?.to_owned(),
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

/// Authenticates the client: a confidential one by its secret (constant-time), a public one by
/// its id alone. Unknown, wrong and disabled all get the same `invalid_client`.
async fn authenticate(idp: &Idp, realm: &Realm, auth: &ClientAuth) -> Result<Client, OAuthError> {
    let row = idp
        .store()
        .client(&realm.name, &auth.client_id)
        .await
        .map_err(|e| OAuthError::from(ApiError::internal(&e)))?;
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

/// The token endpoint.
async fn token(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OAuthError> {
    let (idp, realm) = realm(&state, &name)?;
    let form = read_form(&state, &headers, body).await?;
    let grant_type = form.require("grant_type")?.to_owned();
    let auth = client_auth(&headers, &form)?;
    let client = authenticate(&idp, &realm, &auth).await?;
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
                    "Supported grant types: client_credentials.",
                )
            },
        );
    }
    let body = match grant_type.as_str() {
        "client_credentials" => client_credentials(&idp, &realm, &client, &form)?,
        _ => {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                "Supported grant types: client_credentials.",
            ));
        }
    };
    let mut response = axum::Json(body).into_response();
    no_store(response.headers_mut());
    Ok(response)
}

/// The scopes granted: those requested (all must be allowed), or every allowed scope the client
/// has roles for when none are requested.
fn granted_scope(client: &Client, requested: Option<&str>) -> Result<String, OAuthError> {
    let Some(requested) = requested else {
        return Ok(String::new());
    };
    let mut granted = Vec::new();
    for scope in requested.split(' ').filter(|s| !s.is_empty()) {
        let allowed = STANDARD_SCOPES.contains(&scope)
            || client.settings.scopes.iter().any(|s| s == scope)
            || client.settings.roles.iter().any(|r| r == scope);
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
    let scope = granted_scope(client, form.get("scope"))?;
    let lifetime = client
        .settings
        .access_token_seconds
        .unwrap_or(realm.settings.access_token_seconds);
    let token = idp
        .access_token(
            realm,
            &client.id,
            &client.id,
            &scope,
            &client.settings.roles,
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
