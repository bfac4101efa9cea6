//! What XRTC stores: accounts, API keys (hashed), pending e-mail registrations and monthly
//! request counts. One SQL text per query for both backends (`on_pool!`, `in_tx!`).

use time::OffsetDateTime;

use super::{Store, StoreError, from_micros, to_micros};

/// A registration in progress (or finished: `state` says).
#[derive(Clone, PartialEq, Eq)]
pub struct RegistrationRow {
    /// SHA-256 of the registration token.
    pub token_hash: Vec<u8>,
    /// The e-mail address, lowercased.
    pub email: String,
    /// The address the registration came from.
    pub client_ip: String,
    /// SHA-256 of the token hash followed by the e-mailed code.
    pub code_hash: Vec<u8>,
    /// `pending`, `failed` (too many wrong codes) or `done`.
    pub state: String,
    /// Wrong codes so far.
    pub tries: i64,
    /// E-mails sent so far.
    pub sends: i64,
    /// When it started.
    pub created: OffsetDateTime,
    /// When the last e-mail was sent.
    pub sent: OffsetDateTime,
    /// When the code stops being accepted.
    pub expires: OffsetDateTime,
}

impl std::fmt::Debug for RegistrationRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrationRow")
            .field("state", &self.state)
            .field("tries", &self.tries)
            .field("sends", &self.sends)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// An API key.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRow {
    /// SHA-256 of the key.
    pub key_hash: Vec<u8>,
    /// Its account.
    pub account_id: String,
    /// The account's n-th key.
    pub serial: i64,
    /// Its name (`apikeyN`).
    pub name: String,
    /// When it was made.
    pub created: OffsetDateTime,
    /// When it was last used.
    pub last_used: OffsetDateTime,
    /// When it last logged in.
    pub last_login: Option<OffsetDateTime>,
    /// When it was disabled.
    pub disabled: Option<OffsetDateTime>,
}

impl std::fmt::Debug for KeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRow")
            .field("account_id", &self.account_id)
            .field("name", &self.name)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A finished registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// The account (new, or the e-mail's existing one).
    pub account_id: String,
    /// The new key's name.
    pub key_name: String,
    /// Whether the account was created now.
    pub new_account: bool,
}

/// What a login attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginCheck {
    /// The key is good; its last login is now.
    Ok,
    /// No such key for this account.
    Unknown,
    /// The key is disabled (now, if it was unused for too long).
    Disabled,
    /// The key logged in less than the minimum gap ago.
    TooSoon,
}

/// Registration counts: how many may be started in the window, or how many were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationCounts {
    /// Started for this e-mail since the window began.
    pub by_email: i64,
    /// Started from this address group since the window began.
    pub by_address: i64,
    /// Pending and not expired, for everyone.
    pub pending: i64,
}

/// Which start limit refused a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartRefused {
    /// Too many for this e-mail address in the window.
    Email,
    /// Too many from this address group in the window.
    Address,
    /// Too many pending in all.
    Pending,
}

type RegistrationColumns = (
    Vec<u8>,
    String,
    String,
    Vec<u8>,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
);

macro_rules! registration_columns {
    () => {
        "token_hash, email, client_ip, code_hash, state, tries, sends, created_us, sent_us, expires_us"
    };
}

fn registration_row(c: RegistrationColumns) -> Result<RegistrationRow, StoreError> {
    Ok(RegistrationRow {
        token_hash: c.0,
        email: c.1,
        client_ip: c.2,
        code_hash: c.3,
        state: c.4,
        tries: c.5,
        sends: c.6,
        created: from_micros(c.7)?,
        sent: from_micros(c.8)?,
        expires: from_micros(c.9)?,
    })
}

type KeyColumns = (
    Vec<u8>,
    String,
    i64,
    String,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
);

macro_rules! key_columns {
    () => {
        "key_hash, account_id, serial, name, created_us, last_used_us, last_login_us, disabled_us"
    };
}

fn key_row(c: KeyColumns) -> Result<KeyRow, StoreError> {
    Ok(KeyRow {
        key_hash: c.0,
        account_id: c.1,
        serial: c.2,
        name: c.3,
        created: from_micros(c.4)?,
        last_used: from_micros(c.5)?,
        last_login: c.6.map(from_micros).transpose()?,
        disabled: c.7.map(from_micros).transpose()?,
    })
}

impl Store {
    /// Records a new registration unless a start limit refuses it, in one transaction that
    /// first takes the registration gate (so concurrent starts, on any node, are counted one
    /// after the other): started for this e-mail and from this address group since `since`, and
    /// pending ones not expired at `row.created`, each against its limit.
    pub async fn xrtc_start_registration(
        &self,
        row: &RegistrationRow,
        since: OffsetDateTime,
        limits: RegistrationCounts,
    ) -> Result<Option<StartRefused>, StoreError> {
        Ok(in_tx!(self, |tx| {
            sqlx::query("UPDATE xrtc_registration_gate SET starts = starts + 1 WHERE id = 1")
                .execute(&mut *tx)
                .await?;
            let sql = "SELECT \
                 (SELECT COUNT(*) FROM xrtc_registrations WHERE email = $1 AND created_us >= $3), \
                 (SELECT COUNT(*) FROM xrtc_registrations WHERE client_ip = $2 AND created_us >= $3), \
                 (SELECT COUNT(*) FROM xrtc_registrations \
                  WHERE state = 'pending' AND expires_us >= $4)";
            let (by_email, by_address, pending): (i64, i64, i64) = sqlx::query_as(sql)
                .bind(&row.email)
                .bind(&row.client_ip)
                .bind(to_micros(since))
                .bind(to_micros(row.created))
                .fetch_one(&mut *tx)
                .await?;
            let refused = if by_email >= limits.by_email {
                Some(StartRefused::Email)
            } else if by_address >= limits.by_address {
                Some(StartRefused::Address)
            } else if pending >= limits.pending {
                Some(StartRefused::Pending)
            } else {
                None
            };
            if refused.is_none() {
                let sql = concat!(
                    "INSERT INTO xrtc_registrations (",
                    registration_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                );
                sqlx::query(sql)
                    .bind(&row.token_hash)
                    .bind(&row.email)
                    .bind(&row.client_ip)
                    .bind(&row.code_hash)
                    .bind(&row.state)
                    .bind(row.tries)
                    .bind(row.sends)
                    .bind(to_micros(row.created))
                    .bind(to_micros(row.sent))
                    .bind(to_micros(row.expires))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| StoreError::conflict(e, || "registration token".into()))?;
            }
            refused
        }))
    }

    /// A registration by the hash of its token.
    pub async fn xrtc_registration(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<RegistrationRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            registration_columns!(),
            " FROM xrtc_registrations WHERE token_hash = $1"
        );
        let row: Option<RegistrationColumns> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(token_hash)
            .fetch_optional(pool)
            .await?);
        row.map(registration_row).transpose()
    }

    /// Replaces a pending registration's code after a re-send. `false` when it is no longer
    /// pending.
    pub async fn xrtc_resend(
        &self,
        token_hash: &[u8],
        code_hash: &[u8],
        now: OffsetDateTime,
        expires: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, |pool| sqlx::query(
            "UPDATE xrtc_registrations SET code_hash = $1, sends = sends + 1, sent_us = $2, \
             expires_us = $3 WHERE token_hash = $4 AND state = 'pending'"
        )
        .bind(code_hash)
        .bind(to_micros(now))
        .bind(to_micros(expires))
        .bind(token_hash)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(done == 1)
    }

    /// Counts a wrong code; at `max_tries` the registration fails. Returns the wrong codes so
    /// far, or `None` when it was no longer pending.
    pub async fn xrtc_wrong_code(
        &self,
        token_hash: &[u8],
        max_tries: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row: Option<(i64,)> = on_pool!(self, |pool| sqlx::query_as(
            "UPDATE xrtc_registrations SET tries = tries + 1, \
             state = CASE WHEN tries + 1 >= $1 THEN 'failed' ELSE state END \
             WHERE token_hash = $2 AND state = 'pending' RETURNING tries"
        )
        .bind(max_tries)
        .bind(token_hash)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|(tries,)| tries))
    }

    /// Ends a pending registration (its e-mail could not be sent); it still counts against the
    /// start limits.
    pub async fn xrtc_end_registration(&self, token_hash: &[u8]) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query(
            "UPDATE xrtc_registrations SET state = 'failed' WHERE token_hash = $1"
        )
        .bind(token_hash)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Finishes a pending registration in one transaction: the e-mail's account (created with
    /// `new_account_id` when it has none) gets a key with hash `key_hash`, and loses its oldest
    /// keys beyond `keys_max`. `None` when the registration is no longer pending.
    pub async fn xrtc_complete_registration(
        &self,
        token_hash: &[u8],
        new_account_id: &str,
        key_hash: &[u8],
        keys_max: i64,
        now: OffsetDateTime,
    ) -> Result<Option<Completed>, StoreError> {
        let now_us = to_micros(now);
        Ok(in_tx!(self, |tx| {
            let claimed = sqlx::query(
                "UPDATE xrtc_registrations SET state = 'done' \
                 WHERE token_hash = $1 AND state = 'pending'",
            )
            .bind(token_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed == 0 {
                None
            } else {
                let (email,): (String,) =
                    sqlx::query_as("SELECT email FROM xrtc_registrations WHERE token_hash = $1")
                        .bind(token_hash)
                        .fetch_one(&mut *tx)
                        .await?;
                let existing: Option<(String, i64)> = sqlx::query_as(
                    "UPDATE xrtc_accounts SET keys_made = keys_made + 1 WHERE email = $1 \
                     RETURNING account_id, keys_made",
                )
                .bind(&email)
                .fetch_optional(&mut *tx)
                .await?;
                let new_account = existing.is_none();
                let (account_id, serial) = match existing {
                    Some(found) => found,
                    None => {
                        sqlx::query(
                            "INSERT INTO xrtc_accounts (account_id, email, keys_made, created_us) \
                             VALUES ($1, $2, 1, $3)",
                        )
                        .bind(new_account_id)
                        .bind(&email)
                        .bind(now_us)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| {
                            StoreError::conflict(e, || format!("account `{new_account_id}`"))
                        })?;
                        (new_account_id.to_owned(), 1)
                    }
                };
                let key_name = format!("apikey{serial}");
                let sql = concat!(
                    "INSERT INTO xrtc_api_keys (",
                    key_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $5, NULL, NULL)"
                );
                sqlx::query(sql)
                    .bind(key_hash)
                    .bind(&account_id)
                    .bind(serial)
                    .bind(&key_name)
                    .bind(now_us)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| StoreError::conflict(e, || "API key".into()))?;
                sqlx::query(
                    "DELETE FROM xrtc_api_keys WHERE account_id = $1 AND serial <= $2 - $3",
                )
                .bind(&account_id)
                .bind(serial)
                .bind(keys_max)
                .execute(&mut *tx)
                .await?;
                Some(Completed {
                    account_id,
                    key_name,
                    new_account,
                })
            }
        }))
    }

    /// Checks a login with the key whose hash is `key_hash` for `account_id`, in one
    /// transaction: a key unused for longer than `max_unused_us` is disabled now; a key that
    /// logged in less than `min_gap_us` ago is refused; otherwise the login is recorded.
    pub async fn xrtc_login(
        &self,
        key_hash: &[u8],
        account_id: &str,
        now: OffsetDateTime,
        min_gap_us: i64,
        max_unused_us: i64,
    ) -> Result<LoginCheck, StoreError> {
        let now_us = to_micros(now);
        Ok(in_tx!(self, |tx| {
            let row: Option<(String, i64, Option<i64>, Option<i64>)> = sqlx::query_as(
                "SELECT account_id, last_used_us, last_login_us, disabled_us \
                 FROM xrtc_api_keys WHERE key_hash = $1",
            )
            .bind(key_hash)
            .fetch_optional(&mut *tx)
            .await?;
            match row {
                None => LoginCheck::Unknown,
                Some((account, ..)) if account != account_id => LoginCheck::Unknown,
                Some((_, _, _, Some(_))) => LoginCheck::Disabled,
                Some((_, last_used, ..)) if now_us - last_used > max_unused_us => {
                    sqlx::query("UPDATE xrtc_api_keys SET disabled_us = $1 WHERE key_hash = $2")
                        .bind(now_us)
                        .bind(key_hash)
                        .execute(&mut *tx)
                        .await?;
                    LoginCheck::Disabled
                }
                Some(_) => {
                    let recorded = sqlx::query(
                        "UPDATE xrtc_api_keys SET last_login_us = $1, last_used_us = $1 \
                         WHERE key_hash = $2 AND (last_login_us IS NULL OR last_login_us <= $3)",
                    )
                    .bind(now_us)
                    .bind(key_hash)
                    .bind(now_us - min_gap_us)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if recorded == 1 {
                        LoginCheck::Ok
                    } else {
                        LoginCheck::TooSoon
                    }
                }
            }
        }))
    }

    /// Records that keys were used at `now` (sessions keep keys alive between logins).
    pub async fn xrtc_touch_keys(
        &self,
        key_hashes: &[Vec<u8>],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if key_hashes.is_empty() {
            return Ok(());
        }
        in_tx!(self, |tx| {
            for key_hash in key_hashes {
                sqlx::query(
                    "UPDATE xrtc_api_keys SET last_used_us = $1 \
                     WHERE key_hash = $2 AND last_used_us < $1",
                )
                .bind(to_micros(now))
                .bind(key_hash)
                .execute(&mut *tx)
                .await?;
            }
        });
        Ok(())
    }

    /// An account's keys, oldest first.
    pub async fn xrtc_keys(&self, account_id: &str) -> Result<Vec<KeyRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            key_columns!(),
            " FROM xrtc_api_keys WHERE account_id = $1 ORDER BY serial"
        );
        let rows: Vec<KeyColumns> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(account_id)
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(key_row).collect()
    }

    /// Which of `key_hashes` name keys that exist and are not disabled.
    pub async fn xrtc_valid_keys(
        &self,
        key_hashes: &[[u8; 32]],
    ) -> Result<std::collections::HashSet<[u8; 32]>, StoreError> {
        let mut valid = std::collections::HashSet::new();
        for chunk in key_hashes.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
            // Only generated placeholders are spliced in; the hashes are bound.
            let sql = format!(
                "SELECT key_hash FROM xrtc_api_keys \
                 WHERE disabled_us IS NULL AND key_hash IN ({})",
                placeholders.join(", ")
            );
            let rows: Vec<(Vec<u8>,)> = on_pool!(self, |pool| {
                let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
                for hash in chunk {
                    query = query.bind(hash.as_slice());
                }
                query.fetch_all(pool).await?
            });
            valid.extend(
                rows.into_iter()
                    .filter_map(|(hash,)| <[u8; 32]>::try_from(hash).ok()),
            );
        }
        Ok(valid)
    }

    /// Disables the account's key named `name` (revocation); answers its hash, or `None` when
    /// the account has no such key. Revoking a disabled key again changes nothing.
    pub async fn xrtc_disable_key(
        &self,
        account_id: &str,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(in_tx!(self, |tx| {
            let found: Option<(Vec<u8>,)> = sqlx::query_as(
                "SELECT key_hash FROM xrtc_api_keys WHERE account_id = $1 AND name = $2",
            )
            .bind(account_id)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((hash,)) = &found {
                sqlx::query(
                    "UPDATE xrtc_api_keys SET disabled_us = $1 \
                     WHERE key_hash = $2 AND disabled_us IS NULL",
                )
                .bind(to_micros(now))
                .bind(hash)
                .execute(&mut *tx)
                .await?;
            }
            found.map(|(hash,)| hash)
        }))
    }

    /// Adds `requests` to an account's count for `month` and returns the new total.
    pub async fn xrtc_add_usage(
        &self,
        account_id: &str,
        month: &str,
        requests: i64,
    ) -> Result<i64, StoreError> {
        let (total,): (i64,) = on_pool!(self, |pool| sqlx::query_as(
            "INSERT INTO xrtc_usage (account_id, month, requests) VALUES ($1, $2, $3) \
             ON CONFLICT (account_id, month) \
             DO UPDATE SET requests = xrtc_usage.requests + excluded.requests RETURNING requests"
        )
        .bind(account_id)
        .bind(month)
        .bind(requests)
        .fetch_one(pool)
        .await?);
        Ok(total)
    }

    /// An account's request count for `month`.
    pub async fn xrtc_usage(&self, account_id: &str, month: &str) -> Result<i64, StoreError> {
        let row: Option<(i64,)> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT requests FROM xrtc_usage WHERE account_id = $1 AND month = $2"
        )
        .bind(account_id)
        .bind(month)
        .fetch_optional(pool)
        .await?);
        Ok(row.map_or(0, |(n,)| n))
    }

    /// Deletes registrations started before `before`.
    pub async fn xrtc_purge_registrations(
        &self,
        before: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query(
            "DELETE FROM xrtc_registrations WHERE created_us < $1"
        )
        .bind(to_micros(before))
        .execute(pool)
        .await?
        .rows_affected()))
    }
}
