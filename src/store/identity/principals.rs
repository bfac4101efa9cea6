//! Clients, users and apps: the principals of the identity provider's realms.

use super::*;

impl Store {
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
}
