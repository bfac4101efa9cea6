//! The identity provider's settings records, as stored (JSON) and as the admin API shows them.

use serde::{Deserialize, Serialize};

/// A realm's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RealmSettings {
    /// Access token lifetime.
    pub access_token_seconds: u64,
    /// ID token lifetime.
    pub id_token_seconds: u64,
    /// A refresh token expires when unused this long.
    pub refresh_idle_seconds: u64,
    /// A login's refresh tokens end this long after it, however they are used.
    pub refresh_max_seconds: u64,
    /// Authorization code lifetime.
    pub code_seconds: u64,
    /// A rotated refresh token may be used again within this window (concurrent refreshes);
    /// later, its use revokes the whole family.
    pub refresh_reuse_grace_seconds: u64,
    /// Access tokens' signing algorithm: ES256, ES384, RS256, PS256 or EdDSA.
    pub access_token_alg: String,
    /// ID tokens' signing algorithm (RS256 unless clients are known to accept another).
    pub id_token_alg: String,
    /// The `aud` of its access tokens: the resource server, Portico.
    pub audience: String,
}

impl Default for RealmSettings {
    fn default() -> Self {
        Self {
            access_token_seconds: 300,
            id_token_seconds: 300,
            refresh_idle_seconds: 1800,
            refresh_max_seconds: 36_000,
            code_seconds: 60,
            refresh_reuse_grace_seconds: 10,
            access_token_alg: "ES256".into(),
            id_token_alg: "RS256".into(),
            audience: "portico".into(),
        }
    }
}

/// The grant types a client may use.
pub const GRANT_TYPES: &[&str] = &["authorization_code", "client_credentials", "refresh_token"];

/// A client's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ClientSettings {
    /// A display name for the login page.
    pub name: String,
    /// Whether it may get tokens.
    pub enabled: bool,
    /// Grant types it may use.
    pub grant_types: Vec<String>,
    /// Redirect URIs, matched exactly (any port for loopback IP literals over `http`).
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the browser, matched exactly.
    pub post_logout_redirect_uris: Vec<String>,
    /// Roles of its service account (client credentials) and scopes it may request.
    pub roles: Vec<String>,
    /// Scopes it may request besides `openid`, `profile`, `email` and `offline_access`.
    pub scopes: Vec<String>,
    /// Overrides the realm's access token lifetime.
    pub access_token_seconds: Option<u64>,
    /// Overrides the realm's refresh idle time.
    pub refresh_idle_seconds: Option<u64>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            name: String::new(),
            enabled: true,
            grant_types: vec!["client_credentials".into()],
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            roles: Vec::new(),
            scopes: Vec::new(),
            access_token_seconds: None,
            refresh_idle_seconds: None,
        }
    }
}

/// A user's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct UserSettings {
    /// E-mail address.
    pub email: Option<String>,
    /// Full name.
    pub name: Option<String>,
    /// Roles granted.
    pub roles: Vec<String>,
    /// Whether the user may log in (new users may).
    pub disabled: bool,
}

/// An app's settings (the app-authentication API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AppSettings {
    /// Its name, returned by `POST /authentication`.
    pub name: String,
    /// Its P-256 public key (SPKI PEM) for self-signed tokens, if registered.
    pub public_key_pem: Option<String>,
    /// Roles its tokens carry.
    pub roles: Vec<String>,
    /// Whether it may get tokens (new apps may).
    pub disabled: bool,
}
