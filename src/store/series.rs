//! Streams of values, their Merkle proofs and validations, and the node's proof keys. One SQL
//! text serves both backends except where rows travel in bulk (SQLite reads them from one JSON
//! array, PostgreSQL from arrays) and where a stream's row is locked (PostgreSQL's
//! `FOR UPDATE`; SQLite's write transaction holds the whole database).

use super::{Store, StoreError};

/// A stream as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRow {
    /// Its number, what values and proofs refer to.
    pub num: i64,
    /// Its UUID.
    pub id: String,
    /// Its settings (JSON).
    pub spec: String,
    /// The last timestamp under a proof (`i64::MIN`: none).
    pub proven_through_us: i64,
    /// When it was created.
    pub created_us: i64,
    /// When it was last changed.
    pub updated_us: i64,
}

/// A stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueRow {
    /// Its timestamp (microseconds since the epoch).
    pub ts_us: i64,
    /// When it became durable.
    pub stored_us: i64,
    /// Its bytes.
    pub value: Vec<u8>,
}

/// A value to store.
#[derive(Debug, Clone)]
pub struct NewValue {
    /// The stream's number.
    pub stream: i64,
    /// Its timestamp.
    pub ts_us: i64,
    /// Its bytes.
    pub value: Vec<u8>,
}

/// A closed tree's proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofRow {
    /// The stream's number.
    pub stream: i64,
    /// Its last value's timestamp.
    pub last_us: i64,
    /// Its first value's timestamp.
    pub first_us: i64,
    /// How many values.
    pub size: i64,
    /// `ceil(log2(size))`.
    pub depth: i32,
    /// The proof's UUID.
    pub id: String,
    /// The root hash.
    pub root: Vec<u8>,
    /// The root's signature.
    pub signature: Vec<u8>,
    /// The proof kind.
    pub kind: String,
    /// The signing key's id (`device` for a device's key).
    pub kid: String,
    /// `node` or `device`.
    pub origin: String,
    /// When it was stored.
    pub created_us: i64,
    /// Its leaf's index in the log of roots.
    pub log_index: i64,
}

/// A signed checkpoint of the log of roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    /// How many leaves it covers.
    pub size: i64,
    /// The signed note.
    pub note: String,
    /// When it was made.
    pub created_us: i64,
}

/// A proof's validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationRow {
    /// When.
    pub at_us: i64,
    /// The verdict's name.
    pub result: String,
}

/// A proof key as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ProofKeyRow {
    /// Its id.
    pub kid: String,
    /// The proof kind it signs.
    pub kind: String,
    /// `active` or `retired`.
    pub state: String,
    /// SPKI PEM.
    pub public_pem: String,
    /// The public JWK (JSON).
    pub jwk: String,
    /// The sealed PKCS#8 private key.
    pub sealed_private: Vec<u8>,
    /// When it was made.
    pub created_us: i64,
}

impl std::fmt::Debug for ProofKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofKeyRow")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Values to store in a change: all or none.
#[derive(Debug, Clone, Default)]
pub struct ValuesWrite {
    /// The streams they belong to (each is locked and checked).
    pub streams: Vec<i64>,
    /// The values.
    pub values: Vec<NewValue>,
    /// When they become durable.
    pub stored_us: i64,
}

/// What a change does to streams, in the change's transaction (`Store::commit_change`).
#[derive(Debug, Clone, Default)]
pub enum SeriesChange {
    /// Nothing.
    #[default]
    None,
    /// Values to store: refused (`Conflict`, nothing stored) when a timestamp is taken or at or
    /// before its stream's last proven timestamp, `NotFound` when a stream is gone.
    Values(ValuesWrite),
    /// Consecutive trees of one stream to close, built from values read before the
    /// transaction: stored, each with its leaf appended to the log of roots, only while the
    /// stream is still proven through `after_us` and exactly the trees' values lie after it up
    /// to the last tree's last timestamp (else `Conflict`: build them again).
    Trees {
        /// The stream.
        stream: i64,
        /// The proven-through time the first tree follows.
        after_us: i64,
        /// Each tree's proof (its `log_index` is assigned here) and leaf hash in the log.
        trees: Vec<(ProofRow, [u8; 32])>,
    },
    /// A validation of the proof at `(stream, last_us)` to record (`NotFound`, nothing
    /// recorded, when the proof is gone).
    Validation {
        /// The stream.
        stream: i64,
        /// The proof's last timestamp.
        last_us: i64,
        /// When.
        at_us: i64,
        /// The verdict's name.
        result: String,
    },
    /// A stream to delete with its values, proofs and validations (`NotFound` when gone).
    DeleteStream(String),
    /// A signed checkpoint to store (a size already checkpointed is left as it is).
    Checkpoint(CheckpointRow),
}

/// Which values a range read returns.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    /// Timestamps from (inclusive).
    pub from_us: i64,
    /// Timestamps to (exclusive).
    pub to_us: i64,
    /// Newest first.
    pub descending: bool,
    /// How many to skip.
    pub offset: i64,
    /// How many at most.
    pub limit: i64,
}

impl Range {
    /// Timestamps `from_us..to_us`, oldest first, at most `limit`.
    pub fn ascending(from_us: i64, to_us: i64, limit: i64) -> Self {
        Self {
            from_us,
            to_us,
            descending: false,
            offset: 0,
            limit,
        }
    }
}

type StreamColumns = (i64, String, String, i64, i64, i64);
type ProofColumns = (
    i64,
    i64,
    i64,
    i64,
    i32,
    String,
    Vec<u8>,
    Vec<u8>,
    String,
    String,
    String,
    i64,
    i64,
);

type KeyColumns = (String, String, String, String, String, Vec<u8>, i64);

const STREAM_COLUMNS: &str = "num, id, spec, proven_through_us, created_us, updated_us";
const PROOF_COLUMNS: &str = "stream, last_us, first_us, size, depth, id, root, signature, kind, \
                             kid, origin, created_us, log_index";

fn stream_row(c: StreamColumns) -> StreamRow {
    StreamRow {
        num: c.0,
        id: c.1,
        spec: c.2,
        proven_through_us: c.3,
        created_us: c.4,
        updated_us: c.5,
    }
}

fn proof_row(c: ProofColumns) -> ProofRow {
    ProofRow {
        stream: c.0,
        last_us: c.1,
        first_us: c.2,
        size: c.3,
        depth: c.4,
        id: c.5,
        root: c.6,
        signature: c.7,
        kind: c.8,
        kid: c.9,
        origin: c.10,
        created_us: c.11,
        log_index: c.12,
    }
}

fn value_row((ts_us, delta, value): (i64, i64, Vec<u8>)) -> ValueRow {
    ValueRow {
        ts_us,
        stored_us: ts_us.saturating_add(delta),
        value,
    }
}

const INSERT_PROOF: &str = "INSERT INTO series_proofs \
     (stream, last_us, first_us, size, depth, id, root, signature, kind, kid, origin, created_us, \
      log_index) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

const LOCK_SQLITE: &str = "SELECT proven_through_us FROM series_streams WHERE num = $1";
const LOCK_PG: &str = "SELECT proven_through_us FROM series_streams WHERE num = $1 FOR UPDATE";

const INSERT_VALUES_SQLITE: &str = "INSERT INTO series_values (stream, ts_us, stored_delta_us, value) \
     SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
            json_extract(value, '$[2]'), unhex(json_extract(value, '$[3]')) \
     FROM json_each($1)";

const INSERT_VALUES_PG: &str = "INSERT INTO series_values (stream, ts_us, stored_delta_us, value) \
     SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BYTEA[])";

impl Store {
    /// Creates a stream; `Conflict` when its id is taken. Answers its number.
    pub async fn create_stream(
        &self,
        id: &str,
        spec: &str,
        now_us: i64,
    ) -> Result<i64, StoreError> {
        let (num,): (i64,) = on_pool!(self, |pool| sqlx::query_as(
            "INSERT INTO series_streams (id, spec, proven_through_us, created_us, updated_us) \
             VALUES ($1, $2, $3, $4, $4) RETURNING num"
        )
        .bind(id)
        .bind(spec)
        .bind(i64::MIN)
        .bind(now_us)
        .fetch_one(pool)
        .await
        .map_err(|e| StoreError::conflict(e, || format!("stream {id}")))?);
        Ok(num)
    }

    /// Replaces a stream's settings; `NotFound` when there is no such stream.
    pub async fn update_stream(&self, id: &str, spec: &str, now_us: i64) -> Result<(), StoreError> {
        let changed = on_pool!(self, |pool| sqlx::query(
            "UPDATE series_streams SET spec = $2, updated_us = $3 WHERE id = $1"
        )
        .bind(id)
        .bind(spec)
        .bind(now_us)
        .execute(pool)
        .await?
        .rows_affected());
        if changed == 0 {
            return Err(StoreError::NotFound(format!("stream {id}")));
        }
        Ok(())
    }

    /// Every stream.
    pub async fn streams(&self) -> Result<Vec<StreamRow>, StoreError> {
        let rows: Vec<StreamColumns> = on_pool!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
            format!("SELECT {STREAM_COLUMNS} FROM series_streams ORDER BY num")
        ))
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(stream_row).collect())
    }

    /// One stream.
    pub async fn stream(&self, id: &str) -> Result<Option<StreamRow>, StoreError> {
        let row: Option<StreamColumns> =
            on_pool!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {STREAM_COLUMNS} FROM series_streams WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(stream_row))
    }

    /// A stream's values in a range, by timestamp.
    pub async fn values(&self, stream: i64, range: Range) -> Result<Vec<ValueRow>, StoreError> {
        let order = if range.descending { "DESC" } else { "ASC" };
        match self {
            // SQLite hands each row across from its worker thread: a page comes as one text
            // (`ts,delta,hex;…`) instead, read here in one pass.
            Store::Sqlite(store) => {
                let (text,): (Option<String>,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT group_concat(ts_us || ',' || stored_delta_us || ',' || hex(value), ';') \
                     FROM (SELECT ts_us, stored_delta_us, value FROM series_values \
                           WHERE stream = $1 AND ts_us >= $2 AND ts_us < $3 \
                           ORDER BY ts_us {order} LIMIT $4 OFFSET $5)"
                )))
                .bind(stream)
                .bind(range.from_us)
                .bind(range.to_us)
                .bind(range.limit)
                .bind(range.offset)
                .fetch_one(store.pool())
                .await?;
                text.as_deref().map_or(Ok(Vec::new()), parse_packed)
            }
            Store::Postgres(store) => {
                let rows: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT ts_us, stored_delta_us, value FROM series_values \
                     WHERE stream = $1 AND ts_us >= $2 AND ts_us < $3 \
                     ORDER BY ts_us {order} LIMIT $4 OFFSET $5"
                )))
                .bind(stream)
                .bind(range.from_us)
                .bind(range.to_us)
                .bind(range.limit)
                .bind(range.offset)
                .fetch_all(store.pool())
                .await?;
                Ok(rows.into_iter().map(value_row).collect())
            }
        }
    }

    /// The value of `stream` at `ts_us`.
    pub async fn value_at(&self, stream: i64, ts_us: i64) -> Result<Option<ValueRow>, StoreError> {
        let row: Option<(i64, i64, Vec<u8>)> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT ts_us, stored_delta_us, value FROM series_values \
             WHERE stream = $1 AND ts_us = $2"
        )
        .bind(stream)
        .bind(ts_us)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(value_row))
    }

    /// How many of `stream`'s values are not yet under a proof, and the earliest time one of
    /// them became durable (`None`: none are).
    pub async fn unproven(&self, stream: i64) -> Result<Option<(i64, i64)>, StoreError> {
        let (count, oldest): (i64, Option<i64>) = on_pool!(self, |pool| sqlx::query_as(
            "SELECT COUNT(*), MIN(ts_us + stored_delta_us) FROM series_values \
             WHERE stream = $1 AND ts_us > \
                 (SELECT proven_through_us FROM series_streams WHERE num = $1)"
        )
        .bind(stream)
        .fetch_one(pool)
        .await?);
        Ok(oldest.filter(|_| count > 0).map(|oldest| (count, oldest)))
    }

    /// The values after `stream`'s last proven timestamp, oldest first, at most `limit`: the
    /// next tree's, as of now. Answers the proven-through time they follow (`None`: no stream).
    pub async fn unproven_values(
        &self,
        stream: i64,
        limit: i64,
    ) -> Result<Option<(i64, Vec<ValueRow>)>, StoreError> {
        let proven: Option<(i64,)> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT proven_through_us FROM series_streams WHERE num = $1"
        )
        .bind(stream)
        .fetch_optional(pool)
        .await?);
        let Some((after_us,)) = proven else {
            return Ok(None);
        };
        let rows: Vec<(i64, i64, Vec<u8>)> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT ts_us, stored_delta_us, value FROM series_values \
             WHERE stream = $1 AND ts_us > $2 ORDER BY ts_us LIMIT $3"
        )
        .bind(stream)
        .bind(after_us)
        .bind(limit)
        .fetch_all(pool)
        .await?);
        Ok(Some((after_us, rows.into_iter().map(value_row).collect())))
    }

    /// A stream's proofs whose last timestamp is in a range.
    pub async fn proofs(&self, stream: i64, range: Range) -> Result<Vec<ProofRow>, StoreError> {
        let order = if range.descending { "DESC" } else { "ASC" };
        let rows: Vec<ProofColumns> =
            on_pool!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {PROOF_COLUMNS} FROM series_proofs \
                 WHERE stream = $1 AND last_us >= $2 AND last_us < $3 \
                 ORDER BY last_us {order} LIMIT $4 OFFSET $5"
            )))
            .bind(stream)
            .bind(range.from_us)
            .bind(range.to_us)
            .bind(range.limit)
            .bind(range.offset)
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(proof_row).collect())
    }

    /// The proof whose tree covers `ts_us` (the first whose last timestamp is at or after it,
    /// if its first is at or before it).
    pub async fn proof_covering(
        &self,
        stream: i64,
        ts_us: i64,
    ) -> Result<Option<ProofRow>, StoreError> {
        let row: Option<ProofColumns> =
            on_pool!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {PROOF_COLUMNS} FROM series_proofs \
                 WHERE stream = $1 AND last_us >= $2 ORDER BY last_us LIMIT 1"
            )))
            .bind(stream)
            .bind(ts_us)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(proof_row).filter(|p| p.first_us <= ts_us))
    }

    /// The validations of the proof at `(stream, last_us)`, newest first.
    pub async fn validations(
        &self,
        stream: i64,
        last_us: i64,
    ) -> Result<Vec<ValidationRow>, StoreError> {
        let rows: Vec<(i64, String)> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT at_us, result FROM series_validations \
             WHERE stream = $1 AND last_us = $2 ORDER BY at_us DESC"
        )
        .bind(stream)
        .bind(last_us)
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .map(|(at_us, result)| ValidationRow { at_us, result })
            .collect())
    }

    /// How many leaves the log of roots has.
    pub async fn log_size(&self) -> Result<i64, StoreError> {
        let (size,): (i64,) = on_pool!(self, |pool| sqlx::query_as(
            "SELECT size FROM proof_log WHERE id = 1"
        )
        .fetch_one(pool)
        .await?);
        Ok(size)
    }

    /// The hashes of the log's complete subtrees `(level, idx)`, in the order asked; `None`
    /// when one is missing.
    pub async fn log_nodes(
        &self,
        nodes: &[(u32, u64)],
    ) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
        if nodes.is_empty() {
            return Ok(Some(Vec::new()));
        }
        // A handful of nodes (a few per level at most): one query each keeps the SQL plain.
        let mut out = Vec::with_capacity(nodes.len());
        for &(level, idx) in nodes {
            let row: Option<(Vec<u8>,)> = on_pool!(self, |pool| sqlx::query_as(
                "SELECT hash FROM proof_log_nodes WHERE level = $1 AND idx = $2"
            )
            .bind(level as i32)
            .bind(idx as i64)
            .fetch_optional(pool)
            .await?);
            match row {
                Some((hash,)) => out.push(hash),
                None => return Ok(None),
            }
        }
        Ok(Some(out))
    }

    /// The proofs whose roots are leaves `from..to` of the log of roots, in log order.
    pub async fn proofs_in_log(&self, from: i64, to: i64) -> Result<Vec<ProofRow>, StoreError> {
        let rows: Vec<ProofColumns> =
            on_pool!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {PROOF_COLUMNS} FROM series_proofs \
                 WHERE log_index >= $1 AND log_index < $2 ORDER BY log_index"
            )))
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(proof_row).collect())
    }

    /// Deletes `stream`'s oldest values before `cutoff_us`, at most `most` trees of them in one
    /// transaction: with `whole_trees`, only trees whose last value is before the cutoff go,
    /// each with its values, proof and validations (so every proof left still validates);
    /// otherwise (the node builds no proofs) at most `most` values. Answers how many values
    /// went.
    pub async fn expire(
        &self,
        stream: i64,
        cutoff_us: i64,
        whole_trees: bool,
        most: i64,
    ) -> Result<u64, StoreError> {
        let through_sql = match whole_trees {
            true => {
                "SELECT MAX(last_us) FROM (SELECT last_us FROM series_proofs \
                 WHERE stream = $1 AND last_us < $2 ORDER BY last_us LIMIT $3) AS t"
            }
            false => {
                "SELECT MAX(ts_us) FROM (SELECT ts_us FROM series_values \
                 WHERE stream = $1 AND ts_us < $2 ORDER BY ts_us LIMIT $3) AS t"
            }
        };
        macro_rules! body {
            ($tx:ident) => {{
                let (through,): (Option<i64>,) = sqlx::query_as(through_sql)
                    .bind(stream)
                    .bind(cutoff_us)
                    .bind(most)
                    .fetch_one(&mut *$tx)
                    .await?;
                let Some(through) = through else {
                    return Ok(0);
                };
                let values =
                    sqlx::query("DELETE FROM series_values WHERE stream = $1 AND ts_us <= $2")
                        .bind(stream)
                        .bind(through)
                        .execute(&mut *$tx)
                        .await?
                        .rows_affected();
                for table in ["series_proofs", "series_validations"] {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DELETE FROM {table} WHERE stream = $1 AND last_us <= $2"
                    )))
                    .bind(stream)
                    .bind(through)
                    .execute(&mut *$tx)
                    .await?;
                }
                $tx.commit().await?;
                Ok(values)
            }};
        }
        match self {
            Store::Sqlite(store) => {
                let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await?;
                body!(tx)
            }
            Store::Postgres(store) => {
                let mut tx = store.pool().begin().await?;
                body!(tx)
            }
        }
    }

    /// The latest checkpoint.
    pub async fn latest_checkpoint(&self) -> Result<Option<CheckpointRow>, StoreError> {
        let row: Option<(i64, String, i64)> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT size, note, created_us FROM proof_checkpoints ORDER BY size DESC LIMIT 1"
        )
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|(size, note, created_us)| CheckpointRow {
            size,
            note,
            created_us,
        }))
    }

    /// Every proof key, oldest first.
    pub async fn proof_keys(&self) -> Result<Vec<ProofKeyRow>, StoreError> {
        let rows: Vec<KeyColumns> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT kid, kind, state, public_pem, jwk, sealed_private, created_us \
                 FROM proof_keys ORDER BY created_us, kid"
        )
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .map(|c| ProofKeyRow {
                kid: c.0,
                kind: c.1,
                state: c.2,
                public_pem: c.3,
                jwk: c.4,
                sealed_private: c.5,
                created_us: c.6,
            })
            .collect())
    }

    /// Makes `key` the active key of its kind, retiring the one before.
    pub async fn activate_proof_key(&self, key: &ProofKeyRow) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            sqlx::query("UPDATE proof_keys SET state = 'retired' WHERE kind = $1")
                .bind(&key.kind)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO proof_keys \
                 (kid, kind, state, public_pem, jwk, sealed_private, created_us) \
                 VALUES ($1, $2, 'active', $3, $4, $5, $6)",
            )
            .bind(&key.kid)
            .bind(&key.kind)
            .bind(&key.public_pem)
            .bind(&key.jwk)
            .bind(&key.sealed_private)
            .bind(key.created_us)
            .execute(&mut *tx)
            .await?;
            Ok::<(), StoreError>(())
        })
    }
}

/// Rows packed by `group_concat` as `ts,delta,HEX;ts,delta,HEX;…`.
fn parse_packed(text: &str) -> Result<Vec<ValueRow>, StoreError> {
    let bad = || StoreError::Other("a packed page of values is malformed".into());
    let mut rows = Vec::with_capacity(text.len() / 32 + 1);
    for row in text.split(';') {
        let mut parts = row.splitn(3, ',');
        let ts_us: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let delta: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let hex = parts.next().ok_or_else(bad)?.as_bytes();
        if hex.len() % 2 != 0 {
            return Err(bad());
        }
        let digit = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        };
        let value = hex
            .chunks(2)
            .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(bad)?;
        rows.push(ValueRow {
            ts_us,
            stored_us: ts_us.saturating_add(delta),
            value,
        });
    }
    Ok(rows)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// The series part of a change, for either backend: `$lock` locks a stream's row and reads its
/// proven-through time; `$insert` stores a `ValuesWrite`'s rows.
macro_rules! apply {
    ($tx:ident, $change:expr, $lock:expr, |$write:ident| $insert:expr) => {{
        match $change {
            SeriesChange::None => Ok(()),
            SeriesChange::Values($write) => {
                let mut streams = $write.streams.clone();
                streams.sort_unstable();
                streams.dedup();
                for &stream in &streams {
                    let proven: Option<(i64,)> = sqlx::query_as($lock)
                        .bind(stream)
                        .fetch_optional(&mut **$tx)
                        .await?;
                    let Some((proven_through_us,)) = proven else {
                        return Err(StoreError::NotFound(format!("stream {stream}")));
                    };
                    let earliest = $write
                        .values
                        .iter()
                        .filter(|v| v.stream == stream)
                        .map(|v| v.ts_us)
                        .min();
                    if earliest.is_some_and(|ts| ts <= proven_through_us) {
                        let through = crate::timefmt::from_micros(proven_through_us)
                            .map_or_else(|| proven_through_us.to_string(), crate::timefmt::rfc3339);
                        return Err(StoreError::Conflict(format!(
                            "The stream's values through {through} are under a proof already; a \
                             value must be later than that. Nothing was stored."
                        )));
                    }
                }
                match $insert {
                    Ok(_) => Ok(()),
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        Err(StoreError::Conflict(
                            "A value at one of these timestamps is already stored (or the batch \
                             names one twice); nothing was stored."
                                .into(),
                        ))
                    }
                    Err(e) => Err(e.into()),
                }
            }
            SeriesChange::Trees {
                stream,
                after_us,
                trees,
            } => {
                let Some((last, _)) = trees.last() else {
                    return Ok(());
                };
                let proven: Option<(i64,)> = sqlx::query_as($lock)
                    .bind(*stream)
                    .fetch_optional(&mut **$tx)
                    .await?;
                let (count,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM series_values \
                     WHERE stream = $1 AND ts_us > $2 AND ts_us <= $3",
                )
                .bind(*stream)
                .bind(*after_us)
                .bind(last.last_us)
                .fetch_one(&mut **$tx)
                .await?;
                let sizes: i64 = trees.iter().map(|(proof, _)| proof.size).sum();
                if proven != Some((*after_us,)) || count != sizes {
                    return Err(StoreError::Conflict("the trees' values changed".into()));
                }
                for (proof, leaf) in trees {
                    let (size,): (i64,) = sqlx::query_as(
                        "UPDATE proof_log SET size = size + 1 WHERE id = 1 RETURNING size",
                    )
                    .fetch_one(&mut **$tx)
                    .await?;
                    let log_index = size - 1;
                    // The leaf, then each complete subtree it completes.
                    let (mut level, mut idx, mut hash) = (0i32, log_index, *leaf);
                    loop {
                        sqlx::query(
                            "INSERT INTO proof_log_nodes (level, idx, hash) VALUES ($1, $2, $3)",
                        )
                        .bind(level)
                        .bind(idx)
                        .bind(&hash[..])
                        .execute(&mut **$tx)
                        .await?;
                        if idx & 1 == 0 {
                            break;
                        }
                        let (left,): (Vec<u8>,) = sqlx::query_as(
                            "SELECT hash FROM proof_log_nodes WHERE level = $1 AND idx = $2",
                        )
                        .bind(level)
                        .bind(idx - 1)
                        .fetch_one(&mut **$tx)
                        .await?;
                        hash = crate::merkle::node_hash(&left, &hash);
                        level += 1;
                        idx >>= 1;
                    }
                    sqlx::query(INSERT_PROOF)
                        .bind(proof.stream)
                        .bind(proof.last_us)
                        .bind(proof.first_us)
                        .bind(proof.size)
                        .bind(proof.depth)
                        .bind(&proof.id)
                        .bind(&proof.root)
                        .bind(&proof.signature)
                        .bind(&proof.kind)
                        .bind(&proof.kid)
                        .bind(&proof.origin)
                        .bind(proof.created_us)
                        .bind(log_index)
                        .execute(&mut **$tx)
                        .await?;
                }
                sqlx::query("UPDATE series_streams SET proven_through_us = $2 WHERE num = $1")
                    .bind(*stream)
                    .bind(last.last_us)
                    .execute(&mut **$tx)
                    .await?;
                Ok(())
            }
            SeriesChange::Validation {
                stream,
                last_us,
                at_us,
                result,
            } => {
                // Only while the proof is there: retention may have taken it since it was read.
                let added = sqlx::query(
                    "INSERT INTO series_validations (stream, last_us, at_us, result) \
                     SELECT $1, $2, $3, $4 WHERE EXISTS \
                         (SELECT 1 FROM series_proofs WHERE stream = $1 AND last_us = $2)",
                )
                .bind(*stream)
                .bind(*last_us)
                .bind(*at_us)
                .bind(result)
                .execute(&mut **$tx)
                .await?
                .rows_affected();
                if added == 0 {
                    return Err(StoreError::NotFound(format!("the proof at {last_us}")));
                }
                Ok(())
            }
            SeriesChange::Checkpoint(checkpoint) => {
                sqlx::query(
                    "INSERT INTO proof_checkpoints (size, note, created_us) VALUES ($1, $2, $3) \
                     ON CONFLICT (size) DO NOTHING",
                )
                .bind(checkpoint.size)
                .bind(&checkpoint.note)
                .bind(checkpoint.created_us)
                .execute(&mut **$tx)
                .await?;
                Ok(())
            }
            SeriesChange::DeleteStream(id) => {
                let num: Option<(i64,)> =
                    sqlx::query_as("DELETE FROM series_streams WHERE id = $1 RETURNING num")
                        .bind(id)
                        .fetch_optional(&mut **$tx)
                        .await?;
                let Some((num,)) = num else {
                    return Err(StoreError::NotFound(format!("stream {id}")));
                };
                for table in ["series_values", "series_proofs", "series_validations"] {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DELETE FROM {table} WHERE stream = $1"
                    )))
                    .bind(num)
                    .execute(&mut **$tx)
                    .await?;
                }
                Ok(())
            }
        }
    }};
}

/// Applies `change`'s series part in its transaction (SQLite).
pub(super) async fn apply_sqlite(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    change: &SeriesChange,
) -> Result<(), StoreError> {
    apply!(tx, change, LOCK_SQLITE, |write| {
        let rows = super::json_rows(write.values.iter().map(|v| {
            (
                v.stream,
                v.ts_us,
                write.stored_us.saturating_sub(v.ts_us),
                hex(&v.value),
            )
        }));
        sqlx::query(INSERT_VALUES_SQLITE)
            .bind(rows)
            .execute(&mut **tx)
            .await
    })
}

/// Applies `change`'s series part in its transaction (PostgreSQL).
pub(super) async fn apply_postgres(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    change: &SeriesChange,
) -> Result<(), StoreError> {
    apply!(tx, change, LOCK_PG, |write| {
        let nums: Vec<i64> = write.values.iter().map(|v| v.stream).collect();
        let times: Vec<i64> = write.values.iter().map(|v| v.ts_us).collect();
        let deltas: Vec<i64> = write
            .values
            .iter()
            .map(|v| write.stored_us.saturating_sub(v.ts_us))
            .collect();
        let bytes: Vec<&[u8]> = write.values.iter().map(|v| v.value.as_slice()).collect();
        sqlx::query(INSERT_VALUES_PG)
            .bind(&nums)
            .bind(&times)
            .bind(&deltas)
            .bind(&bytes)
            .execute(&mut **tx)
            .await
    })
}
