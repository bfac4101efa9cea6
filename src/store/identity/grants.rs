//! Login families, authorization codes and refresh tokens, and revoked access tokens.

use super::*;

impl Store {
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
            if insert_grant!(&mut *tx, grant) == 0 {
                return Err(StoreError::Conflict("the grant".into()));
            }
        });
        Ok(())
    }

    /// Redeems a grant for `owner`: marks it used (the first time) and returns it as it was,
    /// with its family. `None` when no grant of `kind` has this hash, or it belongs to another
    /// realm or client (then it stays as it was).
    pub async fn redeem_grant(
        &self,
        token_hash: &[u8],
        kind: &str,
        owner: GrantOwner<'_>,
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
                    let sql = concat!(
                        "SELECT ",
                        family_columns!(),
                        " FROM families WHERE family = $1"
                    );
                    let family: FamilyColumns = sqlx::query_as(sql)
                        .bind(&grant.family)
                        .fetch_one(&mut *tx)
                        .await?;
                    let family = family_row(family)?;
                    if family.realm != owner.realm || family.client_id != owner.client_id {
                        // Another client (public ids are public) neither uses nor burns it.
                        None
                    } else {
                        let marked = sqlx::query(
                            "UPDATE grants SET used_us = $1 \
                             WHERE token_hash = $2 AND used_us IS NULL",
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
                        Some(Redeemed { grant, family })
                    }
                }
            }
        }))
    }
    /// Adds a grant to an existing, unrevoked family. Returns `true` when the grant is stored,
    /// now or before (the same token, derived again, in the same family); `false` (and adds
    /// nothing) when the family has been revoked meanwhile or the hash belongs to another family.
    pub async fn add_grant(&self, grant: &GrantRow) -> Result<bool, StoreError> {
        Ok(in_tx!(self, |tx| {
            let sql = "SELECT revoked_us FROM families WHERE family = $1";
            let revoked: Option<(Option<i64>,)> = sqlx::query_as(sql)
                .bind(&grant.family)
                .fetch_optional(&mut *tx)
                .await?;
            match revoked {
                Some((None,)) => {
                    if insert_grant!(&mut *tx, grant) == 1 {
                        true
                    } else {
                        let sql = "SELECT family FROM grants WHERE token_hash = $1";
                        let stored: Option<(String,)> = sqlx::query_as(sql)
                            .bind(&grant.token_hash)
                            .fetch_optional(&mut *tx)
                            .await?;
                        stored.is_some_and(|(family,)| family == grant.family)
                    }
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
