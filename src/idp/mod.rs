//! The built-in identity provider: realms with their signing keys, clients, users and apps, and
//! the tokens it issues. HTTP lives in `api::oidc` (Keycloak's URL layout) and `api::admin`;
//! this module is what they and `portico admin` share.
//!
//! Realms and their keys are held in memory ([`Realm`]) and reloaded whenever the store's
//! identity generation changes, so a key rotated by `portico admin` on the same database is
//! picked up by running nodes. Clients, users and grants are read from the store per request.
//!
//! Each realm is also a trusted issuer of the [`Verifier`]: its access tokens (`typ: at+jwt`,
//! `aud` the realm's audience) are accepted wherever bearer tokens are.

pub mod apps;
mod checks;
pub mod grants;
mod keys;
pub mod model;
pub mod settings;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::access::Policy;
use crate::clock::Clock;
use crate::jose::claims::ClaimRules;
use crate::jose::issuer::{Issuer, Keys};
use crate::jose::keygen;
use crate::jose::keys::KeySet;
use crate::jose::primitive::Algorithm;
use crate::jose::signer::{REALM_ALGORITHMS, SigningKey};
use crate::jose::verifier::Verifier;
use crate::secrets::{self, Hashed, Sealer};
use crate::store::{ClientRow, RealmKeyRow, RealmRow, Store, StoreError, UserRow};

pub use checks::{RealmName, check_identifier};
use checks::{check_client_settings, check_realm_settings};
use keys::{key_identity, realm_algorithm};
pub use model::{AppSettings, ClientSettings, RealmSettings, UserSettings};

/// The permission (role) that opens the admin API, in tokens of the admin realm.
pub const ADMIN_ROLE: &str = "portico:admin";

/// The permission (role) that opens the webhook API alone, in tokens of the admin realm.
pub const WEBHOOKS_ROLE: &str = "portico:webhooks";

/// Who may use the admin API (and read every event): a token of `admin_realm` with
/// [`ADMIN_ROLE`].
pub fn admin_policy(admin_realm: &RealmName) -> Policy {
    Policy::RealmRole {
        realm: admin_realm.as_str().into(),
        any_of: vec![ADMIN_ROLE].into(),
    }
}

/// Who may manage webhook subscriptions: a token of `admin_realm` with [`ADMIN_ROLE`] or
/// [`WEBHOOKS_ROLE`].
pub fn webhook_managers_policy(admin_realm: &RealmName) -> Policy {
    Policy::RealmRole {
        realm: admin_realm.as_str().into(),
        any_of: vec![ADMIN_ROLE, WEBHOOKS_ROLE].into(),
    }
}

/// Scopes every client may request.
pub const STANDARD_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// Why an identity operation was refused. Messages are safe to show.
#[derive(Debug, thiserror::Error)]
pub enum IdpError {
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// A name already taken.
    #[error("{0} already exists")]
    Conflict(String),
    /// Nothing by that name.
    #[error("{0} does not exist")]
    NotFound(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
    /// Key material failed to load (a wrong sealing key, a damaged row).
    #[error("{0}")]
    Keys(String),
    /// A code or refresh token is not (or no longer) valid: OAuth's `invalid_grant`.
    #[error("{0}")]
    Grant(String),
    /// A scope beyond what was granted: OAuth's `invalid_scope`.
    #[error("{0}")]
    Scope(String),
    /// Too many password checks are running and waiting; try again after the delay.
    #[error("too many sign-ins are being checked; try again in {} s", .0.as_secs())]
    Busy(std::time::Duration),
}

impl From<StoreError> for IdpError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(what) => IdpError::Conflict(what),
            StoreError::NotFound(what) => IdpError::NotFound(what),
            other => IdpError::Store(other),
        }
    }
}

/// A realm, ready to issue and verify tokens.
#[derive(Debug)]
pub struct Realm {
    /// Its name.
    pub name: RealmName,
    /// Its settings.
    pub settings: RealmSettings,
    /// Its issuer URL, `{public_url}/realms/{name}`.
    pub issuer_url: String,
    /// The key signing access tokens.
    pub access_key: SigningKey,
    /// The key signing ID tokens.
    pub id_key: SigningKey,
    /// The published ID token keys (to check `id_token_hint`s).
    pub id_keys: Arc<KeySet>,
    /// The published key set (`certs`): next, active and retired keys, as JSON.
    pub jwks: bytes::Bytes,
    /// The realm as a trusted issuer of access tokens.
    pub issuer: Arc<Issuer>,
}

/// Whom an access token is for.
#[derive(Debug, Clone, Copy)]
pub struct TokenSubject<'a> {
    /// `sub`: a user id, or the client id for client credentials.
    pub subject: &'a str,
    /// The client it is issued to.
    pub client_id: &'a str,
    /// The scope granted.
    pub scope: &'a str,
    /// `realm_access.roles`.
    pub roles: &'a [String],
    /// `sid`: the login (token family), for a user's token.
    pub session: Option<&'a str>,
}

/// An issued access token.
#[derive(Clone)]
pub struct AccessToken {
    /// The JWT.
    pub token: String,
    /// Its lifetime in seconds.
    pub expires_in: u64,
    /// `jti`.
    pub id: String,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_in", &self.expires_in)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The identity provider.
pub struct Idp {
    store: Store,
    sealer: Sealer,
    clock: Arc<dyn Clock>,
    public_url: String,
    realms: ArcSwap<HashMap<RealmName, Arc<Realm>>>,
    generation: std::sync::atomic::AtomicI64,
    verifier: Option<Arc<Verifier>>,
    throttle: crate::ratelimit::Throttle,
    app_audience: String,
    app_token_seconds: u64,
    admin_realm: RealmName,
    default_realm: RealmName,
    /// Bounds password checks, running and waiting.
    password_checks: PasswordChecks,
}

/// Argon2id runs (19 MiB and tens of milliseconds each): at most `running` at once and at most
/// `queue` more waiting for them; beyond that a check is refused with [`IdpError::Busy`] at
/// once, so a flood of sign-ins costs bounded memory and a bounded wait.
#[derive(Debug)]
pub(crate) struct PasswordChecks {
    running: tokio::sync::Semaphore,
    admitted: Arc<crate::share::Shares<()>>,
}

impl PasswordChecks {
    /// How long a refused sign-in is asked to wait.
    const RETRY: std::time::Duration = std::time::Duration::from_secs(1);

    pub(crate) fn new(running: usize, queue: usize) -> Self {
        Self {
            running: tokio::sync::Semaphore::new(running),
            admitted: crate::share::Shares::new(running + queue, usize::MAX),
        }
    }

    /// Runs `work` on a blocking thread once a place is free, or refuses at once when the
    /// queue is full.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, IdpError> {
        let _admitted = self
            .admitted
            .take(())
            .map_err(|_| IdpError::Busy(Self::RETRY))?;
        let _running = self
            .running
            .acquire()
            .await
            .map_err(|e| IdpError::Keys(format!("password check failed: {e}")))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| IdpError::Keys(format!("password check failed: {e}")))
    }
}

impl std::fmt::Debug for Idp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idp")
            .field("public_url", &self.public_url)
            .field("realms", &self.realms.load().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Idp {
    /// Opens the provider on `store`; realms are loaded (and published to `verifier`).
    pub async fn open(
        store: Store,
        sealer: Sealer,
        clock: Arc<dyn Clock>,
        public_url: String,
        verifier: Option<Arc<Verifier>>,
        config: &settings::IdpConfig,
    ) -> Result<Self, IdpError> {
        let idp = Self {
            store,
            sealer,
            clock,
            public_url,
            realms: ArcSwap::default(),
            generation: std::sync::atomic::AtomicI64::new(-1),
            verifier,
            throttle: crate::ratelimit::Throttle::new(config.throttle.clone()),
            app_audience: config.app_audience.clone(),
            app_token_seconds: config.app_token_seconds,
            admin_realm: config.admin_realm.clone(),
            default_realm: config.default_realm.clone(),
            password_checks: PasswordChecks::new(config.password_checks, config.password_queue),
        };
        idp.reload().await?;
        Ok(idp)
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The throttle of failed logins and token requests.
    pub fn throttle(&self) -> &crate::ratelimit::Throttle {
        &self.throttle
    }

    /// The realm whose tokens (with [`ADMIN_ROLE`]) open the admin API.
    pub fn admin_realm(&self) -> &RealmName {
        &self.admin_realm
    }

    /// The realm created on first start, where new apps go by default.
    pub fn default_realm(&self) -> &RealmName {
        &self.default_realm
    }

    /// The clock.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// The URL clients reach Portico at.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The issuer URL of a realm.
    pub fn issuer_url(&self, realm: &RealmName) -> String {
        format!("{}/realms/{realm}", self.public_url)
    }

    /// A loaded realm.
    pub fn realm(&self, name: &RealmName) -> Option<Arc<Realm>> {
        self.realms.load().get(name).cloned()
    }

    /// The loaded realms' names.
    pub fn realm_names(&self) -> Vec<RealmName> {
        let mut names: Vec<RealmName> = self.realms.load().keys().cloned().collect();
        names.sort();
        names
    }

    /// Reloads realms and keys if the store's identity generation moved.
    pub async fn reload_if_changed(&self) -> Result<bool, IdpError> {
        use std::sync::atomic::Ordering;
        let generation = self.store.identity_generation().await?;
        if generation == self.generation.load(Ordering::Acquire) {
            return Ok(false);
        }
        self.reload().await?;
        Ok(true)
    }

    /// Loads every realm and its keys from the store.
    pub async fn reload(&self) -> Result<(), IdpError> {
        use std::sync::atomic::Ordering;
        let generation = self.store.identity_generation().await?;
        let rows = self.store.realms().await?;
        let keys = self.store.realm_keys().await?;
        let now = self.clock.now();
        let mut realms = HashMap::new();
        for row in rows {
            let realm_keys: Vec<&RealmKeyRow> =
                keys.iter().filter(|k| k.realm == row.name).collect();
            let realm = self.build_realm(&row, &realm_keys, now)?;
            realms.insert(realm.name.clone(), Arc::new(realm));
        }
        if let Some(verifier) = &self.verifier {
            let revoked = self.store.revoked_tokens(now).await?;
            verifier.set_revoked(revoked.into_iter().collect());
            verifier.set_local(realms.values().map(|r| r.issuer.clone()).collect());
        }
        self.realms.store(Arc::new(realms));
        self.generation.store(generation, Ordering::Release);
        Ok(())
    }

    fn build_realm(
        &self,
        row: &RealmRow,
        keys: &[&RealmKeyRow],
        now: OffsetDateTime,
    ) -> Result<Realm, IdpError> {
        let name = RealmName::parse(&row.name).map_err(IdpError::Keys)?;
        let settings: RealmSettings = serde_json::from_str(&row.settings).map_err(|e| {
            IdpError::Keys(format!("realm `{}` has unreadable settings: {e}", row.name))
        })?;
        let published: Vec<&&RealmKeyRow> = keys
            .iter()
            .filter(|k| k.retire_at.is_none_or(|at| at > now))
            .collect();
        let active = |purpose: &str| -> Result<SigningKey, IdpError> {
            let key = keys
                .iter()
                .find(|k| k.purpose == purpose && k.state == "active")
                .ok_or_else(|| {
                    IdpError::Keys(format!("realm `{}` has no active {purpose} key", row.name))
                })?;
            let der = self
                .sealer
                .open(&key_identity(&key.realm, &key.kid), &key.sealed_private)
                .map_err(|e| {
                    IdpError::Keys(format!("realm `{}` key {}: {e}", row.name, key.kid))
                })?;
            let alg = realm_algorithm(&key.alg).map_err(IdpError::Keys)?;
            SigningKey::from_pkcs8(alg, &key.kid, &der).map_err(IdpError::Keys)
        };
        let jwk = |k: &RealmKeyRow| -> Result<Value, IdpError> {
            serde_json::from_str(&k.public_jwk)
                .map_err(|e| IdpError::Keys(format!("realm `{}` key {}: {e}", row.name, k.kid)))
        };
        let all: Vec<Value> = published.iter().map(|k| jwk(k)).collect::<Result<_, _>>()?;
        let access: Vec<Value> = published
            .iter()
            .filter(|k| k.purpose == "access")
            .map(|k| jwk(k))
            .collect::<Result<_, _>>()?;
        let id: Vec<Value> = published
            .iter()
            .filter(|k| k.purpose == "id")
            .map(|k| jwk(k))
            .collect::<Result<_, _>>()?;
        let key_set = |keys: Vec<Value>| {
            KeySet::from_jwks(
                json!({ "keys": keys }).to_string().as_bytes(),
                REALM_ALGORITHMS,
            )
            .map_err(|e| IdpError::Keys(format!("realm `{}` keys: {e}", row.name)))
        };
        let access_set = key_set(access)?;
        let id_keys = Arc::new(key_set(id)?);
        let issuer_url = self.issuer_url(&name);
        let issuer = Issuer {
            name: format!("realm {}", row.name),
            rules: ClaimRules {
                issuer: issuer_url.clone(),
                audiences: vec![settings.audience.clone()],
                required: ["exp", "iat", "sub", "jti"].map(String::from).into(),
                leeway_seconds: 60,
            },
            // Roles are the permissions: a scope is what a client asked for, not what the
            // subject may do (a user could otherwise ask for a role they lack).
            permission_claims: vec!["realm_access.roles".to_owned()],
            token_types: vec!["at+jwt".into()],
            accept_id_tokens: false,
            realm: Some(row.name.clone()),
            keys: Keys::Static(Arc::new(access_set)),
        };
        Ok(Realm {
            name,
            access_key: active("access")?,
            id_key: active("id")?,
            id_keys,
            jwks: json!({ "keys": all }).to_string().into(),
            issuer: Arc::new(issuer),
            issuer_url,
            settings,
        })
    }

    /// Creates a realm with fresh keys (active and next, for access and ID tokens).
    pub async fn create_realm(
        &self,
        name: &RealmName,
        settings: RealmSettings,
    ) -> Result<(), IdpError> {
        check_realm_settings(&settings)?;
        let now = self.clock.now();
        let mut keys = Vec::new();
        for (purpose, alg) in [
            ("access", &settings.access_token_alg),
            ("id", &settings.id_token_alg),
        ] {
            for state in ["active", "next"] {
                keys.push(self.new_key(name, purpose, alg, state, now)?);
            }
        }
        let row = RealmRow {
            name: name.to_string(),
            settings: serde_json::to_string(&settings)
                .map_err(|e| IdpError::Invalid(e.to_string()))?,
            created: now,
        };
        self.store.create_realm(&row, &keys).await?;
        self.reload().await
    }

    /// Creates the default realm when the store has no realm at all (a fresh data directory).
    pub async fn ensure_default_realm(&self, name: &RealmName) -> Result<bool, IdpError> {
        if !self.store.realms().await?.is_empty() {
            return Ok(false);
        }
        match self.create_realm(name, RealmSettings::default()).await {
            Ok(()) => Ok(true),
            // Another node created it first.
            Err(IdpError::Conflict(_)) => self.reload().await.map(|()| false),
            Err(other) => Err(other),
        }
    }

    /// Creates a client; returns its secret (shown once) when it is confidential.
    pub async fn create_client(
        &self,
        realm: &RealmName,
        client_id: &str,
        settings: ClientSettings,
        confidential: bool,
    ) -> Result<Option<String>, IdpError> {
        self.require_realm(realm)?;
        check_identifier("client id", client_id)?;
        check_client_settings(&settings, confidential)?;
        let secret = confidential.then(secrets::generate);
        let row = ClientRow {
            realm: realm.to_string(),
            client_id: client_id.to_owned(),
            secret_hash: secret.as_deref().map(|s| Hashed::of(s).0.to_vec()),
            settings: to_json(&settings)?,
            created: self.clock.now(),
        };
        self.store.create_client(&row).await?;
        Ok(secret)
    }

    /// Gives a confidential client a new secret (shown once); the old one stops working.
    pub async fn reset_client_secret(
        &self,
        realm: &RealmName,
        client_id: &str,
    ) -> Result<String, IdpError> {
        let client = self
            .store
            .client(realm, client_id)
            .await?
            .ok_or_else(|| IdpError::NotFound(format!("client `{client_id}`")))?;
        if client.secret_hash.is_none() {
            return Err(IdpError::Invalid(format!(
                "client `{client_id}` is public: it has no secret"
            )));
        }
        let secret = secrets::generate();
        self.store
            .update_client(
                realm,
                client_id,
                &client.settings,
                Some(Some(&Hashed::of(&secret).0)),
            )
            .await?;
        Ok(secret)
    }

    /// Creates a user with `password` (Argon2id-hashed off the async runtime).
    pub async fn create_user(
        &self,
        realm: &RealmName,
        username: &str,
        password: Option<String>,
        settings: UserSettings,
    ) -> Result<String, IdpError> {
        self.require_realm(realm)?;
        check_identifier("user name", username)?;
        for role in &settings.roles {
            check_identifier("role", role)?;
        }
        let password_hash = match password {
            Some(password) => Some(self.hash_password(password).await?),
            None => None,
        };
        let id = secrets::uuid();
        let row = UserRow {
            realm: realm.to_string(),
            id: id.clone(),
            username: username.to_owned(),
            password_hash,
            settings: to_json(&settings)?,
            created: self.clock.now(),
        };
        self.store.create_user(&row).await?;
        Ok(id)
    }

    /// Sets a user's password.
    pub async fn set_password(
        &self,
        realm: &RealmName,
        id: &str,
        password: String,
    ) -> Result<(), IdpError> {
        let user = self
            .store
            .user(realm, id)
            .await?
            .ok_or_else(|| IdpError::NotFound(format!("user `{id}`")))?;
        let hash = self.hash_password(password).await?;
        self.store
            .update_user(realm, &user.id, &user.settings, Some(Some(&hash)))
            .await?;
        Ok(())
    }

    /// Signs an access token (RFC 9068).
    pub fn access_token(
        &self,
        realm: &Realm,
        subject: &TokenSubject<'_>,
        lifetime: u64,
    ) -> Result<AccessToken, IdpError> {
        self.access_token_with(realm, subject, lifetime, &[])
    }

    /// Signs an access token with `extra` claims.
    fn access_token_with(
        &self,
        realm: &Realm,
        subject: &TokenSubject<'_>,
        lifetime: u64,
        extra: &[(&str, Value)],
    ) -> Result<AccessToken, IdpError> {
        let TokenSubject {
            subject,
            client_id,
            scope,
            roles,
            session,
        } = *subject;
        let now = self.clock.now().unix_timestamp();
        let id = secrets::uuid();
        let mut claims = Map::new();
        claims.insert("iss".into(), realm.issuer_url.clone().into());
        claims.insert("sub".into(), subject.into());
        claims.insert("aud".into(), realm.settings.audience.clone().into());
        claims.insert("exp".into(), (now + lifetime as i64).into());
        claims.insert("iat".into(), now.into());
        claims.insert("jti".into(), id.clone().into());
        claims.insert("client_id".into(), client_id.into());
        claims.insert("azp".into(), client_id.into());
        if !scope.is_empty() {
            claims.insert("scope".into(), scope.into());
        }
        claims.insert("realm_access".into(), json!({ "roles": roles }));
        if let Some(session) = session {
            claims.insert("sid".into(), session.into());
        }
        for (name, value) in extra {
            claims.insert((*name).into(), value.clone());
        }
        let token = realm
            .access_key
            .sign("at+jwt", &claims)
            .map_err(IdpError::Keys)?;
        Ok(AccessToken {
            token,
            expires_in: lifetime,
            id,
        })
    }

    /// Replaces a realm's settings. A new signing algorithm applies from the next key
    /// rotation (the next keys are made with it).
    pub async fn update_realm(
        &self,
        name: &RealmName,
        settings: RealmSettings,
    ) -> Result<(), IdpError> {
        self.require_realm(name)?;
        check_realm_settings(&settings)?;
        self.store
            .update_realm(name.as_str(), &to_json(&settings)?)
            .await?;
        self.reload().await
    }

    /// Deletes a realm with its keys, clients, users, apps and grants.
    pub async fn delete_realm(&self, name: &RealmName) -> Result<(), IdpError> {
        self.store.delete_realm(name.as_str()).await?;
        self.reload().await
    }

    /// Replaces a client's settings.
    pub async fn update_client(
        &self,
        realm: &RealmName,
        client_id: &str,
        settings: ClientSettings,
    ) -> Result<(), IdpError> {
        let client = self
            .store
            .client(realm, client_id)
            .await?
            .ok_or_else(|| IdpError::NotFound(format!("client `{client_id}`")))?;
        check_client_settings(&settings, client.secret_hash.is_some())?;
        self.store
            .update_client(realm, client_id, &to_json(&settings)?, None)
            .await?;
        Ok(())
    }

    /// Replaces a user's settings (a disabled user's logins end at their next refresh).
    pub async fn update_user(
        &self,
        realm: &RealmName,
        id: &str,
        settings: UserSettings,
    ) -> Result<(), IdpError> {
        for role in &settings.roles {
            check_identifier("role", role)?;
        }
        self.store
            .update_user(realm, id, &to_json(&settings)?, None)
            .await?;
        Ok(())
    }

    /// Replaces an app's settings.
    pub async fn update_app(&self, app_id: &str, settings: AppSettings) -> Result<(), IdpError> {
        for role in &settings.roles {
            check_identifier("role", role)?;
        }
        if let Some(pem) = &settings.public_key_pem {
            apps::check_app_key(pem)?;
        }
        self.store
            .update_app(app_id, &to_json(&settings)?, None)
            .await?;
        Ok(())
    }

    fn require_realm(&self, realm: &RealmName) -> Result<Arc<Realm>, IdpError> {
        self.realm(realm)
            .ok_or_else(|| IdpError::NotFound(format!("realm `{realm}`")))
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, IdpError> {
    serde_json::to_string(value).map_err(|e| IdpError::Invalid(e.to_string()))
}

impl Idp {
    /// Hashes a password after checking its length, on a blocking thread within the bound on
    /// password work.
    async fn hash_password(&self, password: String) -> Result<String, IdpError> {
        let chars = password.chars().count();
        if chars < secrets::password::MIN_LEN || password.len() > secrets::password::MAX_LEN {
            return Err(IdpError::Invalid(format!(
                "a password needs at least {} characters (and at most {} bytes)",
                secrets::password::MIN_LEN,
                secrets::password::MAX_LEN
            )));
        }
        self.password_checks
            .run(move || secrets::password::hash(&password))
            .await
    }
}
