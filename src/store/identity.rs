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

/// Inserts a grant row with `$executor` (a transaction).
macro_rules! insert_grant {
    ($executor:expr, $grant:expr) => {{
        let grant: &GrantRow = $grant;
        sqlx::query(concat!(
            "INSERT INTO grants (",
            grant_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(&grant.token_hash)
        .bind(&grant.kind)
        .bind(&grant.family)
        .bind(&grant.payload)
        .bind(to_micros(grant.created))
        .bind(to_micros(grant.expires))
        .bind(grant.used.map(to_micros))
        .execute($executor)
        .await?;
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

    /// Creates a client.
    pub async fn create_client(&self, client: &ClientRow) -> Result<(), StoreError> {
        let sql = concat!(
            "INSERT INTO clients (",
            client_columns!(),
            ") VALUES ($1, $2, $3, $4, $5)"
        );
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(&client.realm)
            .bind(&client.client_id)
            .bind(&client.secret_hash)
            .bind(&client.settings)
            .bind(to_micros(client.created))
            .execute(pool)
            .await
            .map_err(|e| StoreError::conflict(e, || format!("client `{}`", client.client_id)))?
            .rows_affected());
        Ok(())
    }

    /// One client.
    pub async fn client(
        &self,
        realm: &str,
        client_id: &str,
    ) -> Result<Option<ClientRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients WHERE realm = $1 AND client_id = $2"
        );
        let row: Option<ClientColumns> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(realm)
            .bind(client_id)
            .fetch_optional(pool)
            .await?);
        row.map(client_row).transpose()
    }

    /// A realm's clients, by id.
    pub async fn clients(&self, realm: &str) -> Result<Vec<ClientRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients WHERE realm = $1 ORDER BY client_id"
        );
        let rows: Vec<ClientColumns> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(realm)
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(client_row).collect()
    }

    /// Replaces a client's settings and, when `secret_hash` is given, its secret.
    pub async fn update_client(
        &self,
        realm: &str,
        client_id: &str,
        settings: &str,
        secret_hash: Option<Option<&[u8]>>,
    ) -> Result<(), StoreError> {
        let done = match secret_hash {
            None => on_pool!(self, |pool| sqlx::query(
                "UPDATE clients SET settings = $1 WHERE realm = $2 AND client_id = $3"
            )
            .bind(settings)
            .bind(realm)
            .bind(client_id)
            .execute(pool)
            .await?
            .rows_affected()),
            Some(hash) => on_pool!(self, |pool| {
                sqlx::query(
                "UPDATE clients SET settings = $1, secret_hash = $2 WHERE realm = $3 AND client_id = $4"
            )
            .bind(settings)
            .bind(hash)
            .bind(realm)
            .bind(client_id)
            .execute(pool)
            .await?
            .rows_affected()
            }),
        };
        found_or_not_found(done, || format!("client `{client_id}`"))
    }

    /// Deletes a client.
    pub async fn delete_client(&self, realm: &str, client_id: &str) -> Result<(), StoreError> {
        let done = on_pool!(self, |pool| sqlx::query(
            "DELETE FROM clients WHERE realm = $1 AND client_id = $2"
        )
        .bind(realm)
        .bind(client_id)
        .execute(pool)
        .await?
        .rows_affected());
        found_or_not_found(done, || format!("client `{client_id}`"))
    }

    /// Creates a user.
    pub async fn create_user(&self, user: &UserRow) -> Result<(), StoreError> {
        let sql = concat!(
            "INSERT INTO users (",
            user_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6)"
        );
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(&user.realm)
            .bind(&user.id)
            .bind(&user.username)
            .bind(&user.password_hash)
            .bind(&user.settings)
            .bind(to_micros(user.created))
            .execute(pool)
            .await
            .map_err(|e| StoreError::conflict(e, || format!("user `{}`", user.username)))?
            .rows_affected());
        Ok(())
    }

    /// One user, by id.
    pub async fn user(&self, realm: &str, id: &str) -> Result<Option<UserRow>, StoreError> {
        self.user_where(UserKey::Id, realm, id).await
    }

    /// One user, by user name.
    pub async fn user_named(
        &self,
        realm: &str,
        username: &str,
    ) -> Result<Option<UserRow>, StoreError> {
        self.user_where(UserKey::Name, realm, username).await
    }

    async fn user_where(
        &self,
        column: UserKey,
        realm: &str,
        value: &str,
    ) -> Result<Option<UserRow>, StoreError> {
        let sql = match column {
            UserKey::Id => concat!(
                "SELECT ",
                user_columns!(),
                " FROM users WHERE realm = $1 AND id = $2"
            ),
            UserKey::Name => {
                concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE realm = $1 AND username = $2"
                )
            }
        };
        let row: Option<UserColumns> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(realm)
            .bind(value)
            .fetch_optional(pool)
            .await?);
        row.map(user_row).transpose()
    }

    /// A realm's users, by user name.
    pub async fn users(&self, realm: &str) -> Result<Vec<UserRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE realm = $1 ORDER BY username"
        );
        let rows: Vec<UserColumns> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(realm)
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(user_row).collect()
    }

    /// Replaces a user's settings and, when given, password hash.
    pub async fn update_user(
        &self,
        realm: &str,
        id: &str,
        settings: &str,
        password_hash: Option<Option<&str>>,
    ) -> Result<(), StoreError> {
        let done = match password_hash {
            None => on_pool!(self, |pool| sqlx::query(
                "UPDATE users SET settings = $1 WHERE realm = $2 AND id = $3"
            )
            .bind(settings)
            .bind(realm)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()),
            Some(hash) => on_pool!(self, |pool| {
                sqlx::query(
                "UPDATE users SET settings = $1, password_hash = $2 WHERE realm = $3 AND id = $4"
            )
            .bind(settings)
            .bind(hash)
            .bind(realm)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
            }),
        };
        found_or_not_found(done, || format!("user `{id}`"))
    }

    /// Deletes a user.
    pub async fn delete_user(&self, realm: &str, id: &str) -> Result<(), StoreError> {
        let done = on_pool!(self, |pool| sqlx::query(
            "DELETE FROM users WHERE realm = $1 AND id = $2"
        )
        .bind(realm)
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected());
        found_or_not_found(done, || format!("user `{id}`"))
    }

    /// Creates an app.
    pub async fn create_app(&self, app: &AppRow) -> Result<(), StoreError> {
        let sql = concat!(
            "INSERT INTO apps (",
            app_columns!(),
            ") VALUES ($1, $2, $3, $4, $5)"
        );
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(&app.app_id)
            .bind(&app.realm)
            .bind(&app.secret_hash)
            .bind(&app.settings)
            .bind(to_micros(app.created))
            .execute(pool)
            .await
            .map_err(|e| StoreError::conflict(e, || format!("app `{}`", app.app_id)))?
            .rows_affected());
        Ok(())
    }

    /// One app.
    pub async fn app(&self, app_id: &str) -> Result<Option<AppRow>, StoreError> {
        let sql = concat!("SELECT ", app_columns!(), " FROM apps WHERE app_id = $1");
        let row: Option<AppColumns> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(app_id)
            .fetch_optional(pool)
            .await?);
        row.map(app_row).transpose()
    }

    /// Every app, by id.
    pub async fn apps(&self) -> Result<Vec<AppRow>, StoreError> {
        let sql = concat!("SELECT ", app_columns!(), " FROM apps ORDER BY app_id");
        let rows: Vec<AppColumns> =
            on_pool!(self, |pool| sqlx::query_as(sql).fetch_all(pool).await?);
        rows.into_iter().map(app_row).collect()
    }

    /// Replaces an app's settings and, when given, its secret hash.
    pub async fn update_app(
        &self,
        app_id: &str,
        settings: &str,
        secret_hash: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let done = on_pool!(self, |pool| {
            sqlx::query(
            "UPDATE apps SET settings = $1, secret_hash = COALESCE($2, secret_hash) WHERE app_id = $3"
        )
        .bind(settings)
        .bind(secret_hash)
        .bind(app_id)
        .execute(pool)
        .await?
        .rows_affected()
        });
        found_or_not_found(done, || format!("app `{app_id}`"))
    }

    /// Deletes an app.
    pub async fn delete_app(&self, app_id: &str) -> Result<(), StoreError> {
        let done = on_pool!(self, |pool| sqlx::query(
            "DELETE FROM apps WHERE app_id = $1"
        )
        .bind(app_id)
        .execute(pool)
        .await?
        .rows_affected());
        found_or_not_found(done, || format!("app `{app_id}`"))
    }

    /// Starts a token family with its first grant.
    pub async fn create_family(
        &self,
        family: &FamilyRow,
        grant: &GrantRow,
    ) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            sqlx::query(concat!(
                "INSERT INTO families (",
                family_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ))
            .bind(&family.family)
            .bind(&family.realm)
            .bind(&family.client_id)
            .bind(&family.subject)
            .bind(to_micros(family.created))
            .bind(to_micros(family.expires))
            .bind(family.revoked.map(to_micros))
            .execute(&mut *tx)
            .await?;
            insert_grant!(&mut *tx, grant);
        });
        Ok(())
    }

    /// Redeems a grant: marks it used (the first time) and returns it as it was, with its
    /// family. `None` when no grant of `kind` has this hash.
    pub async fn redeem_grant(
        &self,
        token_hash: &[u8],
        kind: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Redeemed>, StoreError> {
        Ok(in_tx!(self, |tx| {
            let sql = concat!(
                "SELECT ",
                grant_columns!(),
                " FROM grants WHERE token_hash = $1 AND kind = $2"
            );
            let row: Option<GrantColumns> = sqlx::query_as(sql)
                .bind(token_hash)
                .bind(kind)
                .fetch_optional(&mut *tx)
                .await?;
            match row {
                None => None,
                Some(columns) => {
                    let mut grant = grant_row(columns)?;
                    let marked = sqlx::query(
                        "UPDATE grants SET used_us = $1 WHERE token_hash = $2 AND used_us IS NULL",
                    )
                    .bind(to_micros(now))
                    .bind(token_hash)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if marked == 0 && grant.used.is_none() {
                        // A concurrent redemption (PostgreSQL, read committed) won the row.
                        grant.used = Some(now);
                    }
                    let sql = concat!(
                        "SELECT ",
                        family_columns!(),
                        " FROM families WHERE family = $1"
                    );
                    let family: FamilyColumns = sqlx::query_as(sql)
                        .bind(&grant.family)
                        .fetch_one(&mut *tx)
                        .await?;
                    Some(Redeemed {
                        grant,
                        family: family_row(family)?,
                    })
                }
            }
        }))
    }

    /// Adds a grant to an existing, unrevoked family. Returns `false` (and adds nothing) when
    /// the family has been revoked meanwhile.
    pub async fn add_grant(&self, grant: &GrantRow) -> Result<bool, StoreError> {
        Ok(in_tx!(self, |tx| {
            let sql = "SELECT revoked_us FROM families WHERE family = $1";
            let revoked: Option<(Option<i64>,)> = sqlx::query_as(sql)
                .bind(&grant.family)
                .fetch_optional(&mut *tx)
                .await?;
            match revoked {
                Some((None,)) => {
                    insert_grant!(&mut *tx, grant);
                    true
                }
                _ => false,
            }
        }))
    }

    /// Revokes a family (every refresh token rotated from one login).
    pub async fn revoke_family(&self, family: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query(
            "UPDATE families SET revoked_us = $1 WHERE family = $2 AND revoked_us IS NULL"
        )
        .bind(to_micros(now))
        .bind(family)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// One family.
    pub async fn family(&self, family: &str) -> Result<Option<FamilyRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            family_columns!(),
            " FROM families WHERE family = $1"
        );
        let row: Option<FamilyColumns> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(family)
            .fetch_optional(pool)
            .await?);
        row.map(family_row).transpose()
    }

    /// A grant by hash, without redeeming it (introspection).
    pub async fn grant(&self, token_hash: &[u8]) -> Result<Option<GrantRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            grant_columns!(),
            " FROM grants WHERE token_hash = $1"
        );
        let row: Option<GrantColumns> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(token_hash)
            .fetch_optional(pool)
            .await?);
        row.map(grant_row).transpose()
    }

    /// Revokes an access token by its `jti` until it expires.
    pub async fn revoke_token(
        &self,
        jti: &str,
        realm: &str,
        expires: OffsetDateTime,
    ) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO revoked_tokens (jti, realm, expires_us) VALUES ($1, $2, $3) \
                 ON CONFLICT (jti) DO NOTHING",
            )
            .bind(jti)
            .bind(realm)
            .bind(to_micros(expires))
            .execute(&mut *tx)
            .await?;
            sqlx::query(BUMP_GENERATION).execute(&mut *tx).await?;
        });
        Ok(())
    }

    /// The `jti`s of revoked access tokens that have not yet expired at `now`.
    pub async fn revoked_tokens(&self, now: OffsetDateTime) -> Result<Vec<String>, StoreError> {
        let sql = "SELECT jti FROM revoked_tokens WHERE expires_us >= $1 ORDER BY jti";
        let rows: Vec<(String,)> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(to_micros(now))
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(|(jti,)| jti).collect())
    }

    /// Deletes revocations of tokens that expired before `before`.
    pub async fn purge_revoked_tokens(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query(
            "DELETE FROM revoked_tokens WHERE expires_us < $1"
        )
        .bind(to_micros(before))
        .execute(pool)
        .await?
        .rows_affected()))
    }

    /// Deletes families (with their grants) that ended before `before`.
    pub async fn purge_families(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query(
            "DELETE FROM families WHERE expires_us < $1"
        )
        .bind(to_micros(before))
        .execute(pool)
        .await?
        .rows_affected()))
    }
}
