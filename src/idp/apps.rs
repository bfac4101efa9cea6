//! Apps of the app-authentication API (`POST /authentication`): an `appId`, a name, an
//! `appSecret` (shown once, stored as a SHA-256 hash) and optionally a P-256 public key for
//! self-signed tokens.
//!
//! An app authenticates in one of three ways, and gets a Portico access token of its realm
//! (`sub` and `app_id` = the app id, its roles in `realm_access.roles`), valid wherever bearer
//! tokens are:
//!
//! - its id and secret;
//! - a token Portico issued to it earlier (revalidation: the same token comes back while valid);
//! - a token it signed itself with ES256 (`iss` = app id, `aud` = the configured app audience,
//!   `sub` = `AppAuth`, `exp` at most one day ahead), verified with its registered key.

use serde_json::Value;

use super::{AppSettings, Idp, IdpError, RealmName, TokenSubject, check_identifier, to_json};
use crate::jose::claims::{ClaimRules, Claims};
use crate::jose::jws::CompactJws;
use crate::jose::keys::{KeySet, PublicKey};
use crate::jose::primitive::Algorithm;
use crate::secrets::{self, Hashed};
use crate::store::AppRow;

/// The longest lifetime a self-signed token may have (the seed: "not more than 1 day").
pub const SELF_SIGNED_MAX_SECONDS: i64 = 86_400;

/// The `sub` of a self-signed token.
pub const SELF_SIGNED_SUBJECT: &str = "AppAuth";

/// Clock skew allowed on self-signed tokens.
const LEEWAY_SECONDS: i64 = 60;

/// An app, authenticated, with its access token.
#[derive(Clone)]
pub struct AppLogin {
    /// The app id.
    pub app_id: String,
    /// Its name.
    pub name: String,
    /// The access token.
    pub access_token: String,
}

impl std::fmt::Debug for AppLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppLogin")
            .field("app_id", &self.app_id)
            .field("name", &self.name)
            .field("access_token", &"[redacted]")
            .finish()
    }
}

/// A new app's credentials, shown once.
#[derive(Clone)]
pub struct NewApp {
    /// The secret.
    pub secret: String,
    /// The private key, PKCS#8 PEM, when Portico generated the key pair.
    pub private_key_pem: Option<String>,
}

impl std::fmt::Debug for NewApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApp")
            .field("secret", &"[redacted]")
            .field(
                "private_key_pem",
                &self.private_key_pem.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

impl Idp {
    /// Creates an app in `realm`. With `generate_key`, a P-256 key pair is made: the public key
    /// is kept, the private key returned once.
    pub async fn create_app(
        &self,
        realm: &RealmName,
        app_id: &str,
        mut settings: AppSettings,
        generate_key: bool,
    ) -> Result<NewApp, IdpError> {
        self.require_realm(realm)?;
        check_identifier("app id", app_id)?;
        for role in &settings.roles {
            check_identifier("role", role)?;
        }
        let mut private_key_pem = None;
        if generate_key {
            let generated =
                crate::jose::keygen::generate(Algorithm::Es256, 0).map_err(IdpError::Keys)?;
            settings.public_key_pem = generated.public_pem;
            private_key_pem = Some(generated.private);
        }
        if let Some(pem) = &settings.public_key_pem {
            app_key(pem)?;
        }
        let secret = secrets::generate();
        let row = AppRow {
            app_id: app_id.to_owned(),
            realm: realm.to_string(),
            secret_hash: Hashed::of(&secret).0.to_vec(),
            settings: to_json(&settings)?,
            created: self.clock.now(),
        };
        self.store.create_app(&row).await?;
        Ok(NewApp {
            secret,
            private_key_pem,
        })
    }

    /// Gives an app a new secret, returned once; the old one stops working.
    pub async fn reset_app_secret(&self, app_id: &str) -> Result<String, IdpError> {
        let app = self
            .store
            .app(app_id)
            .await?
            .ok_or_else(|| IdpError::NotFound(format!("app `{app_id}`")))?;
        let secret = secrets::generate();
        self.store
            .update_app(app_id, &app.settings, Some(&Hashed::of(&secret).0))
            .await?;
        Ok(secret)
    }

    /// Authenticates an app by id and secret. `None` for an unknown app, a wrong secret or a
    /// disabled app alike.
    pub async fn app_login(
        &self,
        app_id: &str,
        secret: &str,
    ) -> Result<Option<AppLogin>, IdpError> {
        let app = self.store.app(app_id).await?;
        let stored = app
            .as_ref()
            .and_then(|a| Hashed::from_stored(&a.secret_hash))
            .unwrap_or(Hashed([0; 32]));
        // The hash is compared even for an unknown app, so timing does not tell them apart.
        let matches = stored.matches(secret);
        match app {
            Some(app) if matches => self.issue_app_token(&app),
            _ => Ok(None),
        }
    }

    /// Revalidates a token Portico issued to an app: the same token, while it verifies and its
    /// app may still log in.
    pub async fn app_revalidate(
        &self,
        verified: &crate::jose::verifier::Verified,
        token: &str,
    ) -> Result<Option<AppLogin>, IdpError> {
        let Some(app_id) = verified.subject.as_deref() else {
            return Ok(None);
        };
        let Some(app) = self.store.app(app_id).await? else {
            return Ok(None);
        };
        let (_, claims) = crate::jose::verifier::decode_unverified(token)
            .map_err(|e| IdpError::Invalid(e.to_string()))?;
        let issued_to_app = claims.get("app_id").and_then(Value::as_str) == Some(app_id);
        if !issued_to_app || verified.realm.as_deref() != Some(app.realm.as_str()) {
            return Ok(None);
        }
        let settings: AppSettings = super::grants::parse_settings(&app.settings)?;
        if settings.disabled {
            return Ok(None);
        }
        Ok(Some(AppLogin {
            app_id: app.app_id,
            name: settings.name,
            access_token: token.to_owned(),
        }))
    }

    /// Whether `token` looks like an app's self-signed token (its `aud` is the app audience).
    pub fn is_self_signed(&self, token: &str) -> bool {
        crate::jose::verifier::decode_unverified(token).is_ok_and(|(_, claims)| {
            match claims.get("aud") {
                Some(Value::String(aud)) => *aud == self.app_audience,
                Some(Value::Array(auds)) => auds.iter().any(|a| *a == *self.app_audience),
                _ => false,
            }
        })
    }

    /// Verifies an app's self-signed ES256 token with its registered key, and issues a Portico
    /// access token for it.
    pub async fn app_self_signed(&self, token: &str) -> Result<Option<AppLogin>, IdpError> {
        let Ok(jws) = CompactJws::parse(token, 8 * 1024) else {
            return Ok(None);
        };
        let Ok(claims) = Claims::parse(jws.payload()) else {
            return Ok(None);
        };
        let Some(app_id) = claims.iss.as_deref() else {
            return Ok(None);
        };
        let Some(app) = self.store.app(app_id).await? else {
            return Ok(None);
        };
        let settings: AppSettings = super::grants::parse_settings(&app.settings)?;
        let Some(pem) = &settings.public_key_pem else {
            return Ok(None);
        };
        let keys = app_key(pem)?;
        if keys.verify(&jws).is_err() {
            return Ok(None);
        }
        let now = self.clock.now().unix_timestamp();
        let rules = ClaimRules {
            issuer: app.app_id.clone(),
            audiences: vec![self.app_audience.clone()],
            required: ["exp", "sub"].map(String::from).into(),
            leeway_seconds: LEEWAY_SECONDS,
        };
        let within_a_day = claims
            .exp
            .is_some_and(|exp| exp <= now + SELF_SIGNED_MAX_SECONDS + LEEWAY_SECONDS);
        let app_id_claim = claims.all.get("appId").map(|raw| raw.get());
        let app_id_ok = app_id_claim
            .is_none_or(|raw| serde_json::from_str::<String>(raw).is_ok_and(|id| id == app.app_id));
        if claims.check(&rules, now).is_err()
            || claims.sub.as_deref() != Some(SELF_SIGNED_SUBJECT)
            || !within_a_day
            || !app_id_ok
        {
            return Ok(None);
        }
        self.issue_app_token(&app)
    }

    /// A Portico access token for an app that may log in.
    fn issue_app_token(&self, app: &AppRow) -> Result<Option<AppLogin>, IdpError> {
        let settings: AppSettings = super::grants::parse_settings(&app.settings)?;
        if settings.disabled {
            return Ok(None);
        }
        let realm = RealmName::parse(&app.realm).ok();
        let Some(realm) = realm.and_then(|name| self.realm(&name)) else {
            return Ok(None);
        };
        let token = self.access_token_with(
            &realm,
            &TokenSubject {
                subject: &app.app_id,
                client_id: &app.app_id,
                scope: "",
                roles: &settings.roles,
                session: None,
            },
            self.app_token_seconds,
            &[("app_id", app.app_id.clone().into())],
        )?;
        Ok(Some(AppLogin {
            app_id: app.app_id.clone(),
            name: settings.name,
            access_token: token.token,
        }))
    }
}

/// Checks that `pem` is a P-256 public key.
pub fn check_app_key(pem: &str) -> Result<(), IdpError> {
    app_key(pem).map(|_| ())
}

/// An app's registered key: P-256, pinned to ES256.
fn app_key(pem: &str) -> Result<KeySet, IdpError> {
    let key = crate::jose::pem::public_key_from_pem(pem.as_bytes())
        .map_err(|e| IdpError::Invalid(format!("the app's public key: {e}")))?;
    if !matches!(&key, PublicKey::Ec { curve, .. } if curve.algorithm() == Algorithm::Es256) {
        return Err(IdpError::Invalid(
            "the app's public key must be an ECDSA P-256 key (ES256)".into(),
        ));
    }
    KeySet::single(&key, &[Algorithm::Es256])
        .map_err(|e| IdpError::Invalid(format!("the app's public key: {e}")))
}
