//! Deliveries: claims with a lease and a token, results, the attempt log, redelivery, replay
//! and pruning.

use super::*;

/// On PostgreSQL, lets this transaction's commit return before it is flushed to disk. Only for
/// the dispatcher's own bookkeeping (claims and results), where a commit lost to a crash means
/// a delivery is sent again — at least once, as promised — never that one is lost.
async fn relaxed_commit(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> Result<(), StoreError> {
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The body of [`Store::finish_deliveries`], on either backend's transaction `$tx`.
macro_rules! finish_in {
    ($tx:ident, $results:ident) => {{
        let mut recorded = Vec::with_capacity($results.len());
        for done in $results {
            let finished = (done.state != DeliveryState::Pending)
                .then(|| to_micros(done.attempt.at) + done.attempt.duration_us);
            let changed = sqlx::query(
                "UPDATE webhook_deliveries SET state = $3, attempts = attempts + 1, \
             next_at_us = $4, lease_until_us = NULL, lease_token = NULL, \
             last_status = $5, last_error = $6, finished_us = $7 \
             WHERE id = $1 AND lease_token = $2",
            )
            .bind(done.delivery_id)
            .bind(&done.lease_token)
            .bind(done.state.code())
            .bind(to_micros(done.next_at))
            .bind(done.attempt.status)
            .bind(&done.attempt.error_kind)
            .bind(finished)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
            if changed == 0 {
                recorded.push(Recorded::Stale);
                continue;
            }
            sqlx::query(
                "INSERT INTO webhook_attempts (delivery_id, subscription_id, attempt, at_us, \
             status, duration_us, error_kind, response_start) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(done.delivery_id)
            .bind(&done.subscription_id)
            .bind(done.attempt.attempt)
            .bind(to_micros(done.attempt.at))
            .bind(done.attempt.status)
            .bind(done.attempt.duration_us)
            .bind(&done.attempt.error_kind)
            .bind(&done.attempt.response_start)
            .execute(&mut *$tx)
            .await?;
            let failing: Option<(Option<i64>,)> = if done.attempt.error_kind.is_none() {
                sqlx::query_as(
                    "UPDATE webhook_subscriptions SET failing_since_us = NULL \
                 WHERE id = $1 AND failing_since_us IS NOT NULL RETURNING failing_since_us",
                )
                .bind(&done.subscription_id)
                .fetch_optional(&mut *$tx)
                .await?
            } else {
                let discarded = i64::from(done.state == DeliveryState::Discarded);
                sqlx::query_as(
                    "UPDATE webhook_subscriptions \
                 SET failing_since_us = COALESCE(failing_since_us, $2), \
                     discarded_total = discarded_total + $3 \
                 WHERE id = $1 RETURNING failing_since_us",
                )
                .bind(&done.subscription_id)
                .bind(to_micros(done.attempt.at))
                .bind(discarded)
                .fetch_optional(&mut *$tx)
                .await?
            };
            let since = failing.and_then(|(s,)| s).map(from_micros).transpose()?;
            recorded.push(Recorded::Applied(since));
        }
        recorded
    }};
}

impl Store {
    /// Claims up to `limit` due deliveries of `subscription` (pending, due at `now`, not under
    /// a live lease) until `lease_until`, marked with `token`. Oldest due first.
    pub async fn claim_deliveries(
        &self,
        subscription: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        token: &str,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        const PICK: &str = "SELECT id FROM webhook_deliveries \
             WHERE subscription_id = $3 AND state = 0 AND next_at_us <= $4 \
               AND (lease_until_us IS NULL OR lease_until_us <= $4) \
             ORDER BY next_at_us, id LIMIT $5";
        let rows: Vec<DeliveryColumns> = match self {
            Store::Sqlite(store) => {
                let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await?;
                let sql = format!(
                    "UPDATE webhook_deliveries SET lease_until_us = $1, lease_token = $2 \
                     WHERE id IN ({PICK}) RETURNING {}",
                    delivery_columns!()
                );
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(to_micros(lease_until))
                    .bind(token)
                    .bind(subscription)
                    .bind(to_micros(now))
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                rows
            }
            Store::Postgres(store) => {
                // SKIP LOCKED: rows another node is claiming right now are left to it.
                let sql = format!(
                    "UPDATE webhook_deliveries SET lease_until_us = $1, lease_token = $2 \
                     WHERE id IN ({PICK} FOR UPDATE SKIP LOCKED) RETURNING {}",
                    delivery_columns!()
                );
                let mut tx = store.pool().begin().await?;
                relaxed_commit(&mut tx).await?;
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(to_micros(lease_until))
                    .bind(token)
                    .bind(subscription)
                    .bind(to_micros(now))
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                rows
            }
        };
        let mut rows = rows
            .into_iter()
            .map(delivery_row)
            .collect::<Result<Vec<_>, _>>()?;
        rows.sort_by_key(|r| (r.next_at, r.id));
        Ok(rows)
    }

    /// Records attempts' results in one transaction: each delivery's new state (only if it is
    /// still under the lease it was claimed with), the attempt, and the subscription's failure
    /// streak and discard count.
    pub async fn finish_deliveries(
        &self,
        results: &[Finished],
    ) -> Result<Vec<Recorded>, StoreError> {
        match self {
            Store::Sqlite(store) => {
                let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await?;
                let recorded = finish_in!(tx, results);
                tx.commit().await?;
                Ok(recorded)
            }
            Store::Postgres(store) => {
                let mut tx = store.pool().begin().await?;
                relaxed_commit(&mut tx).await?;
                let recorded = finish_in!(tx, results);
                tx.commit().await?;
                Ok(recorded)
            }
        }
    }

    /// When the earliest pending delivery can be claimed: the earliest due time of those not
    /// claimed, or the earliest expiry of a claim. Both read an index.
    pub async fn next_delivery_due(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        let (due, lease): (Option<i64>, Option<i64>) = on_pool!(self, |pool| sqlx::query_as(
            "SELECT \
             (SELECT MIN(next_at_us) FROM webhook_deliveries \
              WHERE state = 0 AND lease_until_us IS NULL), \
             (SELECT MIN(lease_until_us) FROM webhook_deliveries \
              WHERE lease_until_us IS NOT NULL)"
        )
        .fetch_one(pool)
        .await?);
        let earliest = match (due, lease) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        earliest.map(from_micros).transpose()
    }

    /// Pending deliveries, per subscription.
    pub async fn pending_deliveries(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_as(
            "SELECT subscription_id, COUNT(*) FROM webhook_deliveries WHERE state = 0 \
             GROUP BY subscription_id ORDER BY subscription_id"
        )
        .fetch_all(pool)
        .await?))
    }

    /// A subscription's deliveries, newest first: those with an id below `before`, in `state`
    /// if given, at most `limit`.
    pub async fn deliveries(
        &self,
        subscription: &str,
        state: Option<DeliveryState>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let rows: Vec<DeliveryColumns> = on_pool!(self, |pool| sqlx::query_as(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM webhook_deliveries WHERE subscription_id = $1 \
              AND ($2 < 0 OR state = $2) AND id < $3 ORDER BY id DESC LIMIT $4"
        ))
        .bind(subscription)
        .bind(state.map_or(-1, DeliveryState::code))
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(pool)
        .await?);
        rows.into_iter().map(delivery_row).collect()
    }

    /// One delivery of a subscription.
    pub async fn delivery(
        &self,
        subscription: &str,
        id: i64,
    ) -> Result<Option<DeliveryRow>, StoreError> {
        let row: Option<DeliveryColumns> = on_pool!(self, |pool| sqlx::query_as(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM webhook_deliveries WHERE subscription_id = $1 AND id = $2"
        ))
        .bind(subscription)
        .bind(id)
        .fetch_optional(pool)
        .await?);
        row.map(delivery_row).transpose()
    }

    /// A subscription's attempts, newest first: of one delivery if given, with an id below
    /// `before`, at most `limit`.
    pub async fn attempts(
        &self,
        subscription: &str,
        delivery: Option<i64>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AttemptRow>, StoreError> {
        let rows: Vec<AttemptColumns> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT id, delivery_id, attempt, at_us, status, duration_us, error_kind, \
             response_start FROM webhook_attempts WHERE subscription_id = $1 \
             AND ($2 < 0 OR delivery_id = $2) AND id < $3 ORDER BY id DESC LIMIT $4"
        )
        .bind(subscription)
        .bind(delivery.unwrap_or(-1))
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(pool)
        .await?);
        rows.into_iter().map(attempt_row).collect()
    }

    /// Makes deliveries of `subscription` due now with a fresh attempt count: those whose event
    /// happened in `[from, to)`, in `states`, and (if given) the one with id `only`. Pending
    /// deliveries under a lease are left alone. Returns how many.
    pub async fn redeliver(
        &self,
        subscription: &str,
        only: Option<i64>,
        from: OffsetDateTime,
        to: OffsetDateTime,
        states: &[DeliveryState],
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut total = 0;
        for state in states {
            total += on_pool!(self, |pool| sqlx::query(
                "UPDATE webhook_deliveries SET state = 0, attempts = 0, next_at_us = $1, \
                 finished_us = NULL \
                 WHERE subscription_id = $2 AND ($3 < 0 OR id = $3) \
                   AND event_time_us >= $4 AND event_time_us < $5 AND state = $6 \
                   AND (lease_until_us IS NULL OR lease_until_us <= $1)"
            )
            .bind(to_micros(now))
            .bind(subscription)
            .bind(only.unwrap_or(-1))
            .bind(to_micros(from))
            .bind(to_micros(to))
            .bind(state.code())
            .execute(pool)
            .await?
            .rows_affected());
        }
        Ok(total)
    }

    /// Deletes finished deliveries (and their attempts) that finished before `before`.
    pub async fn prune_deliveries(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        Ok(in_tx!(self, |tx| {
            sqlx::query(
                "DELETE FROM webhook_attempts WHERE delivery_id IN \
                 (SELECT id FROM webhook_deliveries WHERE state <> 0 AND finished_us < $1)",
            )
            .bind(to_micros(before))
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM webhook_deliveries WHERE state <> 0 AND finished_us < $1")
                .bind(to_micros(before))
                .execute(&mut *tx)
                .await?
                .rows_affected()
        }))
    }
}
