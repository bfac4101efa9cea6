//! The journal's storage: the one event sequence, the durable events, and the transaction every
//! change that records events commits in ([`Store::commit_change`]): its sequence numbers, its
//! own rows (datapoint values, a subscription's disabling), its journal rows and its outbox
//! rows, all or nothing.

use time::OffsetDateTime;

use super::{DatapointRow, OutboxEvent, Store, StoreError, from_micros, to_micros};

/// A durable event as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalRow {
    /// Its sequence number.
    pub seq: u64,
    /// When it happened.
    pub time: OffsetDateTime,
    /// Its topic's name.
    pub topic: String,
    /// Who caused it (JSON).
    pub actor: String,
    /// What it is about.
    pub subject: String,
    /// Its payload (JSON).
    pub data: String,
}

/// A subscription to turn off in a change, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disable {
    /// The subscription.
    pub id: String,
    /// Why.
    pub reason: String,
    /// When.
    pub at: OffsetDateTime,
}

/// What one change writes, in one transaction with its events.
#[derive(Debug, Default)]
pub struct Change {
    /// Datapoint values to store.
    pub datapoints: Vec<DatapointRow>,
    /// A subscription to disable; when it is disabled already, nothing of the change is made.
    pub disable: Option<Disable>,
    /// The change's durable events.
    pub journal: Vec<JournalRow>,
    /// Webhook deliveries for its events.
    pub outbox: Vec<OutboxEvent>,
    /// What it does to streams of values.
    pub series: super::SeriesChange,
}

const NEXT: &str = "UPDATE portico_sequence SET value = value + $1 WHERE id = 1 RETURNING value";

const DISABLE: &str = "UPDATE webhook_subscriptions SET enabled = FALSE, disabled_reason = $2, \
                       updated_us = $3 WHERE id = $1 AND enabled";

const JOURNAL_ALL_SQLITE: &str = "INSERT INTO events (seq, time_us, topic, actor, subject, data) \
     SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
            json_extract(value, '$[2]'), json_extract(value, '$[3]'), \
            json_extract(value, '$[4]'), json_extract(value, '$[5]') \
     FROM json_each($1)";

const JOURNAL_ALL_PG: &str = "INSERT INTO events (seq, time_us, topic, actor, subject, data) \
     SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], \
                          $6::TEXT[])";

// `WHERE true` tells SQLite's parser the `ON CONFLICT` is the upsert's, not a join's.
const DATAPOINT_ALL_SQLITE: &str = "INSERT INTO datapoint_values (key, value, update_time_us, seq) \
     SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
            json_extract(value, '$[2]'), json_extract(value, '$[3]') \
     FROM json_each($1) WHERE true \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
         update_time_us = excluded.update_time_us, seq = excluded.seq";

const DATAPOINT_ALL_PG: &str = "INSERT INTO datapoint_values (key, value, update_time_us, seq) \
     SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[]) \
     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, \
         update_time_us = EXCLUDED.update_time_us, seq = EXCLUDED.seq";

type JournalColumns = (i64, i64, String, String, String, String);

fn journal_row(c: JournalColumns) -> Result<JournalRow, StoreError> {
    Ok(JournalRow {
        seq: u64::try_from(c.0).map_err(|_| StoreError::Other(format!("negative seq {}", c.0)))?,
        time: from_micros(c.1)?,
        topic: c.2,
        actor: c.3,
        subject: c.4,
        data: c.5,
    })
}

/// The first of `count` numbers from a `RETURNING value` that added `count`.
fn first_of(last: i64, count: u64) -> u64 {
    (last as u64).saturating_sub(count) + 1
}

impl Store {
    /// Reserves `count` sequence numbers in a transaction of their own; answers the first.
    /// Durable before it returns, so no number is handed out twice, even after a crash.
    pub async fn reserve_sequence(&self, count: u64) -> Result<u64, StoreError> {
        let (last,): (i64,) = in_tx!(self, |tx| sqlx::query_as(NEXT)
            .bind(count as i64)
            .fetch_one(&mut *tx)
            .await?);
        Ok(first_of(last, count))
    }

    /// Commits a change with `events` durable events: takes `events + spare` sequence numbers
    /// (the change's, then `spare` more for the caller to hand out later), asks `build` for the
    /// change given the first number, and writes it all in one transaction. Sequence numbers
    /// are taken under the transaction's lock on the sequence, so changes commit in the order of
    /// their numbers. Answers the first number, or `None` when the change was not made (its
    /// subscription was disabled already).
    pub async fn commit_change(
        &self,
        events: u64,
        spare: u64,
        build: impl FnOnce(u64) -> Change + Send,
    ) -> Result<Option<u64>, StoreError> {
        let count = events + spare;
        macro_rules! body {
            ($tx:ident, $write:ident, $apply:path) => {{
                // A change with no numbers to take leaves the sequence's row alone.
                let first = if count == 0 {
                    0
                } else {
                    let (last,): (i64,) = sqlx::query_as(NEXT)
                        .bind(count as i64)
                        .fetch_one(&mut *$tx)
                        .await?;
                    first_of(last, count)
                };
                let change = build(first);
                if let Some(disable) = &change.disable {
                    let changed = sqlx::query(DISABLE)
                        .bind(&disable.id)
                        .bind(&disable.reason)
                        .bind(to_micros(disable.at))
                        .execute(&mut *$tx)
                        .await?
                        .rows_affected();
                    if changed == 0 {
                        return Ok(None);
                    }
                }
                $apply(&mut $tx, &change.series).await?;
                $write(&mut $tx, &change).await?;
                $tx.commit().await?;
                Ok(Some(first))
            }};
        }
        match self {
            Store::Sqlite(store) => {
                let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await?;
                body!(tx, write_sqlite, super::series::apply_sqlite)
            }
            Store::Postgres(store) => {
                let mut tx = store.pool().begin().await?;
                body!(tx, write_postgres, super::series::apply_postgres)
            }
        }
    }

    /// Durable events after `after`, oldest first, at most `limit`; only `topics` when given.
    pub async fn journal_after(
        &self,
        after: u64,
        topics: Option<&[&str]>,
        limit: u32,
    ) -> Result<Vec<JournalRow>, StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let rows: Vec<JournalColumns> = match topics {
            None => on_pool!(self, |pool| sqlx::query_as(
                "SELECT seq, time_us, topic, actor, subject, data FROM events \
                 WHERE seq > $1 ORDER BY seq LIMIT $2"
            )
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?),
            Some(topics) => {
                // A handful of topics at most: one small IN list, as placeholders.
                let list = (0..topics.len())
                    .map(|n| format!("${}", n + 3))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "SELECT seq, time_us, topic, actor, subject, data FROM events \
                     WHERE seq > $1 AND topic IN ({list}) ORDER BY seq LIMIT $2"
                );
                on_pool!(self, |pool| {
                    // Only numbered placeholders are spliced in; the topics are bound.
                    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                        .bind(after)
                        .bind(i64::from(limit));
                    for topic in topics {
                        query = query.bind(*topic);
                    }
                    query.fetch_all(pool).await?
                })
            }
        };
        rows.into_iter().map(journal_row).collect()
    }

    /// The newest sequence number the journal may have dropped (0: none).
    pub async fn journal_pruned_through(&self) -> Result<u64, StoreError> {
        let (pruned,): (i64,) = on_pool!(self, |pool| sqlx::query_as(
            "SELECT pruned_through FROM portico_sequence WHERE id = 1"
        )
        .fetch_one(pool)
        .await?);
        Ok(pruned.max(0) as u64)
    }

    /// Drops durable events that happened before `before`; answers how many.
    pub async fn prune_journal(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let before = to_micros(before);
        in_tx!(self, |tx| {
            let (newest,): (Option<i64>,) =
                sqlx::query_as("SELECT MAX(seq) FROM events WHERE time_us < $1")
                    .bind(before)
                    .fetch_one(&mut *tx)
                    .await?;
            let Some(newest) = newest else {
                return Ok(0);
            };
            let dropped = sqlx::query("DELETE FROM events WHERE seq <= $1")
                .bind(newest)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(
                "UPDATE portico_sequence SET pruned_through = $1 \
                 WHERE id = 1 AND pruned_through < $1",
            )
            .bind(newest)
            .execute(&mut *tx)
            .await?;
            Ok::<u64, StoreError>(dropped)
        })
    }
}

/// SQLite: a change's rows in one round trip to the database's worker, whatever its size: one
/// statement per table, in one query text, each reading its rows from one JSON array
/// (`json_each`; an empty array writes nothing).
static CHANGE_SQLITE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    // Each statement's rows are its own numbered parameter.
    [
        DATAPOINT_ALL_SQLITE.to_owned(),
        JOURNAL_ALL_SQLITE.replace("$1", "$2"),
        super::webhooks::ENQUEUE_ALL_SQLITE.replace("$1", "$3"),
    ]
    .join(";\n")
});

async fn write_sqlite(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    change: &Change,
) -> Result<(), StoreError> {
    let rows = super::last_per_key(&change.datapoints);
    let datapoints = super::json_rows(rows.iter().map(|r| {
        (
            &r.key,
            &r.value_json,
            to_micros(r.update_time),
            r.seq as i64,
        )
    }));
    let journal = super::json_rows(change.journal.iter().map(|r| {
        (
            r.seq as i64,
            to_micros(r.time),
            &r.topic,
            &r.actor,
            &r.subject,
            &r.data,
        )
    }));
    // The text is fixed: it is prepared once and cached with the connection.
    sqlx::query(sqlx::AssertSqlSafe(CHANGE_SQLITE.as_str()))
        .bind(datapoints)
        .bind(journal)
        .bind(super::webhooks::outbox_json(&change.outbox))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn write_postgres(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    change: &Change,
) -> Result<(), StoreError> {
    let rows = super::last_per_key(&change.datapoints);
    if !rows.is_empty() {
        let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        let values: Vec<&str> = rows.iter().map(|r| r.value_json.as_str()).collect();
        let times: Vec<i64> = rows.iter().map(|r| to_micros(r.update_time)).collect();
        let seqs: Vec<i64> = rows.iter().map(|r| r.seq as i64).collect();
        sqlx::query(DATAPOINT_ALL_PG)
            .bind(&keys)
            .bind(&values)
            .bind(&times)
            .bind(&seqs)
            .execute(&mut **tx)
            .await?;
    }
    let journal = &change.journal;
    if !journal.is_empty() {
        let seqs: Vec<i64> = journal.iter().map(|r| r.seq as i64).collect();
        let times: Vec<i64> = journal.iter().map(|r| to_micros(r.time)).collect();
        let topics: Vec<&str> = journal.iter().map(|r| r.topic.as_str()).collect();
        let actors: Vec<&str> = journal.iter().map(|r| r.actor.as_str()).collect();
        let subjects: Vec<&str> = journal.iter().map(|r| r.subject.as_str()).collect();
        let data: Vec<&str> = journal.iter().map(|r| r.data.as_str()).collect();
        sqlx::query(JOURNAL_ALL_PG)
            .bind(&seqs)
            .bind(&times)
            .bind(&topics)
            .bind(&actors)
            .bind(&subjects)
            .bind(&data)
            .execute(&mut **tx)
            .await?;
    }
    super::webhooks::enqueue_postgres(tx, &change.outbox).await
}
