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

/// Why values were not stored (nothing of the batch was).
#[derive(Debug, Clone, thiserror::Error)]
pub enum InsertRefused {
    /// A value at a timestamp already stored (or twice in the batch).
    #[error("a value of stream {0} at one of these timestamps is already stored")]
    Duplicate(i64),
    /// A value at or before the stream's last proven timestamp.
    #[error("stream {stream} is proven through {proven_through_us}; values before it are closed")]
    Closed {
        /// The stream's number.
        stream: i64,
        /// Its last proven timestamp.
        proven_through_us: i64,
    },
    /// The stream was deleted.
    #[error("stream {0} no longer exists")]
    Gone(i64),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
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

    /// Deletes a stream with its values, proofs and validations; answers whether it existed.
    pub async fn delete_stream(&self, id: &str) -> Result<bool, StoreError> {
        in_tx!(self, |tx| {
            let num: Option<(i64,)> =
                sqlx::query_as("DELETE FROM series_streams WHERE id = $1 RETURNING num")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((num,)) = num else {
                return Ok(false);
            };
            for table in ["series_values", "series_proofs", "series_validations"] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE stream = $1"
                )))
                .bind(num)
                .execute(&mut *tx)
                .await?;
            }
            Ok::<bool, StoreError>(true)
        })
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

    /// Stores `values` (of one or more streams, each listed in `streams`) in one transaction,
    /// `stored_us` their durable time: all or none. Refused when a stream is gone, a timestamp
    /// is taken, or a value falls at or before its stream's last proven timestamp.
    pub async fn insert_values(
        &self,
        streams: &[i64],
        values: &[NewValue],
        stored_us: i64,
    ) -> Result<(), InsertRefused> {
        let mut streams = streams.to_vec();
        streams.sort_unstable();
        streams.dedup();
        // The earliest timestamp per stream, to check against its proven-through time.
        let earliest = |stream: i64| {
            values
                .iter()
                .filter(|v| v.stream == stream)
                .map(|v| v.ts_us)
                .min()
        };
        macro_rules! check_streams {
            ($tx:ident, $lock:expr) => {
                for &stream in &streams {
                    let proven: Option<(i64,)> = sqlx::query_as($lock)
                        .bind(stream)
                        .fetch_optional(&mut *$tx)
                        .await
                        .map_err(StoreError::from)?;
                    let Some((proven_through_us,)) = proven else {
                        return Err(InsertRefused::Gone(stream));
                    };
                    if earliest(stream).is_some_and(|ts| ts <= proven_through_us) {
                        return Err(InsertRefused::Closed {
                            stream,
                            proven_through_us,
                        });
                    }
                }
            };
        }
        let duplicate = |e: sqlx::Error| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                InsertRefused::Duplicate(streams.first().copied().unwrap_or_default())
            }
            _ => InsertRefused::Store(e.into()),
        };
        match self {
            Store::Sqlite(store) => {
                let mut tx = store
                    .pool()
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(StoreError::from)?;
                check_streams!(
                    tx,
                    "SELECT proven_through_us FROM series_streams WHERE num = $1"
                );
                let rows = super::journal::json_rows(values.iter().map(|v| {
                    (
                        v.stream,
                        v.ts_us,
                        stored_us.saturating_sub(v.ts_us),
                        hex(&v.value),
                    )
                }));
                sqlx::query(INSERT_VALUES_SQLITE)
                    .bind(rows)
                    .execute(&mut *tx)
                    .await
                    .map_err(duplicate)?;
                tx.commit().await.map_err(StoreError::from)?;
            }
            Store::Postgres(store) => {
                let mut tx = store.pool().begin().await.map_err(StoreError::from)?;
                check_streams!(
                    tx,
                    "SELECT proven_through_us FROM series_streams WHERE num = $1 FOR UPDATE"
                );
                let nums: Vec<i64> = values.iter().map(|v| v.stream).collect();
                let times: Vec<i64> = values.iter().map(|v| v.ts_us).collect();
                let deltas: Vec<i64> = values
                    .iter()
                    .map(|v| stored_us.saturating_sub(v.ts_us))
                    .collect();
                let bytes: Vec<&[u8]> = values.iter().map(|v| v.value.as_slice()).collect();
                sqlx::query(INSERT_VALUES_PG)
                    .bind(&nums)
                    .bind(&times)
                    .bind(&deltas)
                    .bind(&bytes)
                    .execute(&mut *tx)
                    .await
                    .map_err(duplicate)?;
                tx.commit().await.map_err(StoreError::from)?;
            }
        }
        Ok(())
    }

    /// A stream's values in a range, by timestamp.
    pub async fn values(&self, stream: i64, range: Range) -> Result<Vec<ValueRow>, StoreError> {
        let order = if range.descending { "DESC" } else { "ASC" };
        let rows: Vec<(i64, i64, Vec<u8>)> =
            on_pool!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT ts_us, stored_delta_us, value FROM series_values \
                 WHERE stream = $1 AND ts_us >= $2 AND ts_us < $3 \
                 ORDER BY ts_us {order} LIMIT $4 OFFSET $5"
            )))
            .bind(stream)
            .bind(range.from_us)
            .bind(range.to_us)
            .bind(range.limit)
            .bind(range.offset)
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(value_row).collect())
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

    /// Per stream with values not yet under a proof: how many, and the earliest time one of
    /// them became durable.
    /// Only `stream`'s when given.
    pub async fn unproven(&self, stream: Option<i64>) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_as(
            "SELECT v.stream, COUNT(*), MIN(v.ts_us + v.stored_delta_us) \
             FROM series_values v JOIN series_streams s ON s.num = v.stream \
             WHERE v.ts_us > s.proven_through_us AND ($1 IS NULL OR v.stream = $1) \
             GROUP BY v.stream"
        )
        .bind(stream)
        .fetch_all(pool)
        .await?))
    }

    /// Closes the next tree of `stream`: in one transaction, with the stream's row locked,
    /// reads up to `max_size` values after its last proven timestamp (oldest first), asks
    /// `build` for the proof of them and its leaf in the log of roots (`None`: not yet), and
    /// stores it, appending the leaf to the log and moving the proven-through time to its last
    /// value. Answers the proof stored.
    pub async fn close_tree(
        &self,
        stream: i64,
        max_size: i64,
        build: impl FnOnce(&[ValueRow]) -> Option<(ProofRow, [u8; 32])> + Send,
    ) -> Result<Option<ProofRow>, StoreError> {
        macro_rules! body {
            ($tx:ident, $lock:expr) => {{
                let proven: Option<(i64,)> = sqlx::query_as($lock)
                    .bind(stream)
                    .fetch_optional(&mut *$tx)
                    .await?;
                let Some((proven_through_us,)) = proven else {
                    return Ok(None);
                };
                let rows: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(
                    "SELECT ts_us, stored_delta_us, value FROM series_values \
                     WHERE stream = $1 AND ts_us > $2 ORDER BY ts_us LIMIT $3",
                )
                .bind(stream)
                .bind(proven_through_us)
                .bind(max_size)
                .fetch_all(&mut *$tx)
                .await?;
                let values: Vec<ValueRow> = rows.into_iter().map(value_row).collect();
                let Some((mut proof, leaf)) = build(&values) else {
                    return Ok(None);
                };
                let (size,): (i64,) = sqlx::query_as(
                    "UPDATE proof_log SET size = size + 1 WHERE id = 1 RETURNING size",
                )
                .fetch_one(&mut *$tx)
                .await?;
                proof.log_index = size - 1;
                // The leaf, then each complete subtree it completes.
                let (mut level, mut idx, mut hash) = (0i32, proof.log_index, leaf);
                loop {
                    sqlx::query(
                        "INSERT INTO proof_log_nodes (level, idx, hash) VALUES ($1, $2, $3)",
                    )
                    .bind(level)
                    .bind(idx)
                    .bind(&hash[..])
                    .execute(&mut *$tx)
                    .await?;
                    if idx & 1 == 0 {
                        break;
                    }
                    let (left,): (Vec<u8>,) = sqlx::query_as(
                        "SELECT hash FROM proof_log_nodes WHERE level = $1 AND idx = $2",
                    )
                    .bind(level)
                    .bind(idx - 1)
                    .fetch_one(&mut *$tx)
                    .await?;
                    hash = crate::series::merkle::node_hash(&left, &hash);
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
                    .bind(proof.log_index)
                    .execute(&mut *$tx)
                    .await?;
                sqlx::query("UPDATE series_streams SET proven_through_us = $2 WHERE num = $1")
                    .bind(stream)
                    .bind(proof.last_us)
                    .execute(&mut *$tx)
                    .await?;
                $tx.commit().await?;
                Ok(Some(proof))
            }};
        }
        match self {
            Store::Sqlite(store) => {
                let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await?;
                body!(
                    tx,
                    "SELECT proven_through_us FROM series_streams WHERE num = $1"
                )
            }
            Store::Postgres(store) => {
                let mut tx = store.pool().begin().await?;
                body!(
                    tx,
                    "SELECT proven_through_us FROM series_streams WHERE num = $1 FOR UPDATE"
                )
            }
        }
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

    /// Records a validation of the proof at `(stream, last_us)`.
    pub async fn add_validation(
        &self,
        stream: i64,
        last_us: i64,
        at_us: i64,
        result: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO series_validations (stream, last_us, at_us, result) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(stream)
            .bind(last_us)
            .bind(at_us)
            .bind(result)
            .execute(pool)
            .await?;
        });
        Ok(())
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

    /// The proof at `log_index` in the log of roots.
    pub async fn proof_at_log_index(&self, log_index: i64) -> Result<Option<ProofRow>, StoreError> {
        let row: Option<ProofColumns> = on_pool!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
            format!("SELECT {PROOF_COLUMNS} FROM series_proofs WHERE log_index = $1")
        ))
        .bind(log_index)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(proof_row))
    }

    /// Stores a checkpoint (a size already checkpointed is left as it is).
    pub async fn add_checkpoint(&self, checkpoint: &CheckpointRow) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO proof_checkpoints (size, note, created_us) VALUES ($1, $2, $3) \
                 ON CONFLICT (size) DO NOTHING",
            )
            .bind(checkpoint.size)
            .bind(&checkpoint.note)
            .bind(checkpoint.created_us)
            .execute(pool)
            .await?;
        });
        Ok(())
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

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}
