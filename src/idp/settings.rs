//! `[idp]`: the built-in identity provider's settings and their checks.

use std::path::PathBuf;

use serde::Deserialize;

use super::RealmName;

/// `[idp]`: the built-in OpenID Connect provider and the app-authentication API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdpConfig {
    /// `false` serves none of its routes and trusts none of its realms.
    pub enabled: bool,
    /// The URL clients reach Portico at (`https://host:port`, no path); realm issuers are
    /// `{public_url}/realms/{realm}`. Default: `https://localhost:{port}` (or the listen address
    /// when it is a specific IP). Never taken from a request.
    pub public_url: Option<String>,
    /// The realm created on first start.
    pub default_realm: RealmName,
    /// The realm whose tokens may use the admin API (with the `portico:admin` role).
    pub admin_realm: RealmName,
    /// The file holding the key that seals realm signing keys; default `secrets.key` in the
    /// data directory. Nodes sharing a database must share it.
    pub sealing_key_file: Option<PathBuf>,
    /// How often a running node checks the store for realm and key changes.
    pub reload_seconds: u64,
    /// `[idp.throttle]`: failed logins and token requests, per client IP and per account.
    pub throttle: crate::ratelimit::ThrottleSettings,
    /// The `aud` an app's self-signed token must carry (`POST /authentication`); the seed's
    /// `serana` by default, so its clients work unchanged.
    pub app_audience: String,
    /// Lifetime of the access tokens `POST /authentication` issues to apps.
    pub app_token_seconds: u64,
    /// Password checks (Argon2id: 19 MiB and tens of milliseconds each) run at once.
    pub password_checks: usize,
    /// Password checks that may wait for one of those; more sign-ins are answered 429 with
    /// `Retry-After` instead of queueing without bound.
    pub password_queue: usize,
}

impl Default for IdpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            public_url: None,
            default_realm: RealmName::node(),
            admin_realm: RealmName::node(),
            sealing_key_file: None,
            reload_seconds: 5,
            throttle: Default::default(),
            app_audience: "serana".into(),
            app_token_seconds: 3600,
            password_checks: 4,
            password_queue: 64,
        }
    }
}

impl IdpConfig {
    /// What is wrong with these settings.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(url) = &self.public_url {
            let ok = (url.starts_with("https://") || url.starts_with("http://"))
                && !url.ends_with('/')
                && !url.contains(['?', '#', ' '])
                && url.splitn(4, '/').nth(3).is_none();
            if !ok {
                problems.push(format!(
                    "key `idp.public_url`: `{url}` must be a scheme, host and optional port, \
                     like https://portico.example:8443 (no path, no trailing slash)"
                ));
            }
        }
        if !(1..=3600).contains(&self.reload_seconds) {
            problems.push("key `idp.reload_seconds` must be between 1 and 3600".into());
        }
        if !(1..=256).contains(&self.password_checks) {
            problems.push("key `idp.password_checks` must be between 1 and 256".into());
        }
        if self.password_queue > 100_000 {
            problems.push("key `idp.password_queue` must be at most 100000".into());
        }
        problems
    }
}
