//! What the identity provider stores: realms and their keys, clients, users, apps, and grants.
//!
//! The SQL is written once, with `$n` parameters both backends read, and run on either pool by
//! [`on_pool!`] and [`in_tx!`]. Settings travel as JSON text: the store keeps them, the
//! identity module gives them meaning.

use time::OffsetDateTime;

use super::{Store, StoreError, from_micros, to_micros};

/// A realm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealmRow {
    /// Its name, the `{realm}` of its URLs.
    pub name: String,
    /// JSON settings.
    pub settings: String,
    /// When it was created.
    pub created: OffsetDateTime,
}

/// A realm's signing key.
#[derive(Clone, PartialEq, Eq)]
pub struct RealmKeyRow {
    /// The realm.
    pub realm: String,
    /// The key id (RFC 7638 thumbprint).
    pub kid: String,
    /// `access` or `id`.
    pub purpose: String,
    /// The JWS algorithm.
    pub alg: String,
    /// `next`, `active` or `retired`.
    pub state: String,
    /// The public JWK (JSON).
    pub public_jwk: String,
    /// The sealed PKCS#8 private key.
    pub sealed_private: Vec<u8>,
    /// When it was created.
    pub created: OffsetDateTime,
    /// For a retired key: when it leaves the key set.
    pub retire_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for RealmKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealmKeyRow")
            .field("realm", &self.realm)
            .field("kid", &self.kid)
            .field("purpose", &self.purpose)
            .field("alg", &self.alg)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// An OAuth client.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientRow {
    /// The realm.
    pub realm: String,
    /// The `client_id`.
    pub client_id: String,
    /// SHA-256 of the secret; `None` for a public client.
    pub secret_hash: Option<Vec<u8>>,
    /// JSON settings.
    pub settings: String,
    /// When it was created.
    pub created: OffsetDateTime,
}

impl std::fmt::Debug for ClientRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRow")
            .field("realm", &self.realm)
            .field("client_id", &self.client_id)
            .field("confidential", &self.secret_hash.is_some())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A user.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRow {
    /// The realm.
    pub realm: String,
    /// The user's id (`sub`).
    pub id: String,
    /// The login name.
    pub username: String,
    /// Argon2id PHC string; `None`: cannot log in.
    pub password_hash: Option<String>,
    /// JSON settings.
    pub settings: String,
    /// When it was created.
    pub created: OffsetDateTime,
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("realm", &self.realm)
            .field("id", &self.id)
            .field("username", &self.username)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// An app of the app-authentication API.
#[derive(Clone, PartialEq, Eq)]
pub struct AppRow {
    /// The `appId`.
    pub app_id: String,
    /// The realm whose keys sign its tokens.
    pub realm: String,
    /// SHA-256 of its `appSecret`.
    pub secret_hash: Vec<u8>,
    /// JSON settings.
    pub settings: String,
    /// When it was created.
    pub created: OffsetDateTime,
}

impl std::fmt::Debug for AppRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppRow")
            .field("app_id", &self.app_id)
            .field("realm", &self.realm)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A token family: one login's refresh tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyRow {
    /// Its id.
    pub family: String,
    /// The realm.
    pub realm: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The subject (user id, or the client's service account).
    pub subject: String,
    /// When it began.
    pub created: OffsetDateTime,
    /// When it ends at the latest.
    pub expires: OffsetDateTime,
    /// When it was revoked.
    pub revoked: Option<OffsetDateTime>,
}

/// An authorization code or refresh token, by the hash of its text.
#[derive(Clone, PartialEq, Eq)]
pub struct GrantRow {
    /// SHA-256 of the token.
    pub token_hash: Vec<u8>,
    /// `code` or `refresh`.
    pub kind: String,
    /// Its family.
    pub family: String,
    /// JSON payload.
    pub payload: String,
    /// When it was issued.
    pub created: OffsetDateTime,
    /// When it expires.
    pub expires: OffsetDateTime,
    /// When it was redeemed.
    pub used: Option<OffsetDateTime>,
}

impl std::fmt::Debug for GrantRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantRow")
            .field("kind", &self.kind)
            .field("family", &self.family)
            .field("expires", &self.expires)
            .field("used", &self.used)
            .finish_non_exhaustive()
    }
}

/// Who presents a grant: only its own realm and client redeem it.
#[derive(Debug, Clone, Copy)]
pub struct GrantOwner<'a> {
    /// The realm.
    pub realm: &'a str,
    /// The client.
    pub client_id: &'a str,
}

/// A grant being redeemed, and what its state was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    /// The grant as it was before this redemption.
    pub grant: GrantRow,
    /// Its family.
    pub family: FamilyRow,
}

type KeyColumns = (
    String,
    String,
    String,
    String,
    String,
    String,
    Vec<u8>,
    i64,
    Option<i64>,
);
macro_rules! key_columns {
    () => {
        "realm, kid, purpose, alg, state, public_jwk, sealed_private, created_us, retire_at_us"
    };
}

fn key_row(c: KeyColumns) -> Result<RealmKeyRow, StoreError> {
    Ok(RealmKeyRow {
        realm: c.0,
        kid: c.1,
        purpose: c.2,
        alg: c.3,
        state: c.4,
        public_jwk: c.5,
        sealed_private: c.6,
        created: from_micros(c.7)?,
        retire_at: c.8.map(from_micros).transpose()?,
    })
}

type ClientColumns = (String, String, Option<Vec<u8>>, String, i64);
macro_rules! client_columns {
    () => {
        "realm, client_id, secret_hash, settings, created_us"
    };
}

fn client_row(c: ClientColumns) -> Result<ClientRow, StoreError> {
    Ok(ClientRow {
        realm: c.0,
        client_id: c.1,
        secret_hash: c.2,
        settings: c.3,
        created: from_micros(c.4)?,
    })
}

type UserColumns = (String, String, String, Option<String>, String, i64);
macro_rules! user_columns {
    () => {
        "realm, id, username, password_hash, settings, created_us"
    };
}

fn user_row(c: UserColumns) -> Result<UserRow, StoreError> {
    Ok(UserRow {
        realm: c.0,
        id: c.1,
        username: c.2,
        password_hash: c.3,
        settings: c.4,
        created: from_micros(c.5)?,
    })
}

type AppColumns = (String, String, Vec<u8>, String, i64);
macro_rules! app_columns {
    () => {
        "app_id, realm, secret_hash, settings, created_us"
    };
}

fn app_row(c: AppColumns) -> Result<AppRow, StoreError> {
    Ok(AppRow {
        app_id: c.0,
        realm: c.1,
        secret_hash: c.2,
        settings: c.3,
        created: from_micros(c.4)?,
    })
}

type FamilyColumns = (String, String, String, String, i64, i64, Option<i64>);
macro_rules! family_columns {
    () => {
        "family, realm, client_id, subject, created_us, expires_us, revoked_us"
    };
}

fn family_row(c: FamilyColumns) -> Result<FamilyRow, StoreError> {
    Ok(FamilyRow {
        family: c.0,
        realm: c.1,
        client_id: c.2,
        subject: c.3,
        created: from_micros(c.4)?,
        expires: from_micros(c.5)?,
        revoked: c.6.map(from_micros).transpose()?,
    })
}

type GrantColumns = (Vec<u8>, String, String, String, i64, i64, Option<i64>);
macro_rules! grant_columns {
    () => {
        "token_hash, kind, family, payload, created_us, expires_us, used_us"
    };
}

fn grant_row(c: GrantColumns) -> Result<GrantRow, StoreError> {
    Ok(GrantRow {
        token_hash: c.0,
        kind: c.1,
        family: c.2,
        payload: c.3,
        created: from_micros(c.4)?,
        expires: from_micros(c.5)?,
        used: c.6.map(from_micros).transpose()?,
    })
}

fn found_or_not_found(done: u64, what: impl FnOnce() -> String) -> Result<(), StoreError> {
    if done == 0 {
        Err(StoreError::NotFound(what()))
    } else {
        Ok(())
    }
}

/// How a user is looked up.
#[derive(Clone, Copy)]
enum UserKey {
    Id,
    Name,
}

const BUMP_GENERATION: &str =
    "UPDATE identity_generation SET generation = generation + 1 WHERE id = 1";

/// Inserts a grant row with `$executor` (a transaction), unless its hash is stored already;
/// evaluates to the number of rows inserted.
macro_rules! insert_grant {
    ($executor:expr, $grant:expr) => {{
        let grant: &GrantRow = $grant;
        sqlx::query(concat!(
            "INSERT INTO grants (",
            grant_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (token_hash) DO NOTHING"
        ))
        .bind(&grant.token_hash)
        .bind(&grant.kind)
        .bind(&grant.family)
        .bind(&grant.payload)
        .bind(to_micros(grant.created))
        .bind(to_micros(grant.expires))
        .bind(grant.used.map(to_micros))
        .execute($executor)
        .await?
        .rows_affected()
    }};
}

impl Store {
    /// The identity generation: it changes whenever a realm or a realm key changes.
    pub async fn identity_generation(&self) -> Result<i64, StoreError> {
        let sql = "SELECT generation FROM identity_generation WHERE id = 1";
        let (generation,): (i64,) =
            on_pool!(self, |pool| sqlx::query_as(sql).fetch_one(pool).await?);
        Ok(generation)
    }

    /// Creates a realm with its first keys.
    pub async fn create_realm(
        &self,
        realm: &RealmRow,
        keys: &[RealmKeyRow],
    ) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            sqlx::query("INSERT INTO realms (name, settings, created_us) VALUES ($1, $2, $3)")
                .bind(&realm.name)
                .bind(&realm.settings)
                .bind(to_micros(realm.created))
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::conflict(e, || format!("realm `{}`", realm.name)))?;
            for key in keys {
                sqlx::query(concat!(
                    "INSERT INTO realm_keys (",
                    key_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ))
                .bind(&key.realm)
                .bind(&key.kid)
                .bind(&key.purpose)
                .bind(&key.alg)
                .bind(&key.state)
                .bind(&key.public_jwk)
                .bind(&key.sealed_private)
                .bind(to_micros(key.created))
                .bind(key.retire_at.map(to_micros))
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(BUMP_GENERATION).execute(&mut *tx).await?;
        });
        Ok(())
    }

    /// Replaces a realm's settings.
    pub async fn update_realm(&self, name: &str, settings: &str) -> Result<(), StoreError> {
        let done = in_tx!(self, |tx| {
            let done = sqlx::query("UPDATE realms SET settings = $1 WHERE name = $2")
                .bind(settings)
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(BUMP_GENERATION).execute(&mut *tx).await?;
            done
        });
        found_or_not_found(done, || format!("realm `{name}`"))
    }

    /// Deletes a realm and everything in it.
    pub async fn delete_realm(&self, name: &str) -> Result<(), StoreError> {
        let done = in_tx!(self, |tx| {
            let done = sqlx::query("DELETE FROM realms WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(BUMP_GENERATION).execute(&mut *tx).await?;
            done
        });
        found_or_not_found(done, || format!("realm `{name}`"))
    }

    /// Every realm, by name.
    pub async fn realms(&self) -> Result<Vec<RealmRow>, StoreError> {
        let sql = "SELECT name, settings, created_us FROM realms ORDER BY name";
        let rows: Vec<(String, String, i64)> =
            on_pool!(self, |pool| sqlx::query_as(sql).fetch_all(pool).await?);
        rows.into_iter()
            .map(|(name, settings, created)| {
                Ok(RealmRow {
                    name,
                    settings,
                    created: from_micros(created)?,
                })
            })
            .collect()
    }

    /// Every realm key, oldest first.
    pub async fn realm_keys(&self) -> Result<Vec<RealmKeyRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            key_columns!(),
            " FROM realm_keys ORDER BY realm, created_us, kid"
        );
        let rows: Vec<KeyColumns> =
            on_pool!(self, |pool| sqlx::query_as(sql).fetch_all(pool).await?);
        rows.into_iter().map(key_row).collect()
    }

    /// Rotates a realm's keys in one transaction: for each purpose of `next`, the active key
    /// retires (published until `retire_at`), the `next` key becomes active, and `next` is
    /// published; retired keys past their time leave.
    pub async fn rotate_realm_keys(
        &self,
        realm: &str,
        next: &[RealmKeyRow],
        retire_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            for key in next {
                sqlx::query(
                    "UPDATE realm_keys SET state = 'retired', retire_at_us = $1
                     WHERE realm = $2 AND purpose = $3 AND state = 'active'",
                )
                .bind(to_micros(retire_at))
                .bind(realm)
                .bind(&key.purpose)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE realm_keys SET state = 'active'
                     WHERE realm = $1 AND purpose = $2 AND state = 'next'",
                )
                .bind(realm)
                .bind(&key.purpose)
                .execute(&mut *tx)
                .await?;
                sqlx::query(concat!(
                    "INSERT INTO realm_keys (",
                    key_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ))
                .bind(realm)
                .bind(&key.kid)
                .bind(&key.purpose)
                .bind(&key.alg)
                .bind("next")
                .bind(&key.public_jwk)
                .bind(&key.sealed_private)
                .bind(to_micros(key.created))
                .bind(Option::<i64>::None)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "DELETE FROM realm_keys WHERE realm = $1 AND state = 'retired' AND retire_at_us <= $2",
            )
            .bind(realm)
            .bind(to_micros(now))
            .execute(&mut *tx)
            .await?;
            sqlx::query(BUMP_GENERATION).execute(&mut *tx).await?;
        });
        Ok(())
    }
}

mod grants;
mod principals;
