//! The store seam: domain-shaped persistence over SQLite (embedded, the default) or PostgreSQL.
//!
//! Callers see [`Store`] and its methods, never SQL or a backend. Each backend owns its
//! migrations (`migrations/{sqlite,postgres}/`), applied at start-up, and translates database
//! errors into [`StoreError`]. One conformance suite (`tests/it/store.rs`) runs on both.

/// Runs `$body` with `$pool` bound to whichever backend's pool the store has.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            Store::Sqlite(store) => {
                let $pool = store.pool();
                $body
            }
            Store::Postgres(store) => {
                let $pool = store.pool();
                $body
            }
        }
    };
}

/// Runs `$body` in a write transaction (`$tx`), committed when `$body` succeeds. On SQLite the
/// transaction takes the write lock up front (`BEGIN IMMEDIATE`), so it never fails half-way
/// for a lock another writer took first.
macro_rules! in_tx {
    ($store:expr, |$tx:ident| $body:expr) => {
        match $store {
            Store::Sqlite(store) => {
                let mut $tx = store.pool().begin_with("BEGIN IMMEDIATE").await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
            Store::Postgres(store) => {
                let mut $tx = store.pool().begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}

mod identity;
mod journal;
mod postgres;
mod series;
mod sqlite;
mod webhooks;
mod xrtc;

pub use identity::{
    AppRow, ClientRow, FamilyRow, GrantOwner, GrantRow, RealmKeyRow, RealmRow, Redeemed, UserRow,
};
pub use journal::{Change, Disable, JournalRow};
pub use series::{
    CheckpointRow, NewValue, ProofKeyRow, ProofRow, Range, SeriesChange, StreamRow, ValidationRow,
    ValueRow, ValuesWrite,
};
pub use webhooks::{
    AttemptRow, DeliveryRow, DeliveryState, Finished, OutboxEvent, Recorded, SubscriptionRow,
};
pub use xrtc::{Completed, KeyRow, LoginCheck, RegistrationCounts, RegistrationRow, StartRefused};

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

/// A stored datapoint value.
#[derive(Debug, Clone, PartialEq)]
pub struct DatapointRow {
    /// The datapoint key.
    pub key: String,
    /// The value as a JSON literal.
    pub value_json: String,
    /// When it was written.
    pub update_time: OffsetDateTime,
    /// The write sequence number.
    pub seq: u64,
}

/// What went wrong in the store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or opened.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database was migrated by a newer Portico.
    #[error("the database schema is at version {found}, newer than this build knows ({known})")]
    SchemaTooNew {
        /// The newest migration applied to the database.
        found: i64,
        /// The newest migration this build has.
        known: i64,
    },
    /// The thing already exists (a unique name taken).
    #[error("{0} already exists")]
    Conflict(String),
    /// The thing to change does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// A commit failed or did not answer, and the store could not be asked whether it took
    /// effect: it may have.
    #[error("the outcome of the write is unknown: {0}")]
    OutcomeUnknown(String),
    /// Any other database failure.
    #[error("database error: {0}")]
    Other(String),
}

impl StoreError {
    /// `Conflict(what)` for a unique-constraint violation, else the error as usual.
    fn conflict(error: sqlx::Error, what: impl FnOnce() -> String) -> Self {
        match &error {
            sqlx::Error::Database(e) if e.is_unique_violation() => StoreError::Conflict(what()),
            _ => error.into(),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
            // Waits that ran out (PostgreSQL: statement or lock timeout, serialization or
            // deadlock; SQLite: busy or locked): the store is busy, not broken.
            sqlx::Error::Database(ref e)
                if e.code().is_some_and(|code| {
                    ["57014", "55P03", "40001", "40P01", "5", "6", "261", "517"]
                        .contains(&code.as_ref())
                }) =>
            {
                StoreError::Unavailable(error.to_string())
            }
            other => StoreError::Other(other.to_string()),
        }
    }
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite database file (created if missing).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl Location {
    /// Reads a `database_url`: `postgres://…`/`postgresql://…`, or `sqlite://PATH`/`sqlite:PATH`.
    pub fn parse(url: &str) -> Result<Self, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Location::Postgres(url.to_owned()))
        } else if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let (path, options) = path.split_once('?').unwrap_or((path, ""));
            if path.is_empty() {
                return Err(
                    "an sqlite: URL needs a file path, e.g. sqlite://data/portico.db".into(),
                );
            }
            if path.starts_with(":memory:") || options.contains("mode=memory") {
                // Not durable, and each pooled connection would see its own empty database.
                return Err("an in-memory SQLite database is not supported; name a file".into());
            }
            Ok(Location::Sqlite(PathBuf::from(path)))
        } else {
            Err("database_url must start with postgres://, postgresql:// or sqlite://".into())
        }
    }

    /// The default: `portico.db` in the data directory.
    pub fn default_in(data_dir: &Path) -> Self {
        Location::Sqlite(data_dir.join("portico.db"))
    }
}

/// A database migration, embedded in the binary.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// The store, on one of its backends.
#[derive(Debug, Clone)]
pub enum Store {
    /// Embedded SQLite.
    Sqlite(sqlite::SqliteStore),
    /// PostgreSQL.
    Postgres(postgres::PostgresStore),
}

/// How long a store operation may wait (for a connection, a lock, a statement) by default.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Store {
    /// Connects to (or creates) the database and applies pending migrations; waits are bounded
    /// by [`DEFAULT_TIMEOUT`].
    pub async fn open(location: &Location) -> Result<Self, StoreError> {
        Self::open_with(location, DEFAULT_TIMEOUT).await
    }

    /// [`Self::open`], every wait bounded by `timeout`: taking a connection, a lock (SQLite's
    /// busy timeout), a statement (PostgreSQL's `statement_timeout` and `lock_timeout`).
    pub async fn open_with(
        location: &Location,
        timeout: std::time::Duration,
    ) -> Result<Self, StoreError> {
        Ok(match location {
            Location::Sqlite(path) => {
                Store::Sqlite(sqlite::SqliteStore::open(path, timeout).await?)
            }
            Location::Postgres(url) => {
                Store::Postgres(postgres::PostgresStore::open(url, timeout).await?)
            }
        })
    }

    /// How long one operation may wait.
    pub fn timeout(&self) -> std::time::Duration {
        match self {
            Store::Sqlite(store) => store.timeout,
            Store::Postgres(store) => store.timeout,
        }
    }

    /// Whether the change that took event number `seq` committed. Takes the sequence's lock
    /// first (SQLite's write lock; PostgreSQL's row lock), so a commit still in flight on
    /// another connection has finished, one way or the other, before the journal is read.
    pub async fn change_committed(&self, seq: u64) -> Result<bool, StoreError> {
        Ok(in_tx!(self, |tx| {
            sqlx::query("UPDATE portico_sequence SET value = value WHERE id = 1")
                .execute(&mut *tx)
                .await?;
            let found: Option<(i64,)> = sqlx::query_as("SELECT seq FROM events WHERE seq = $1")
                .bind(seq as i64)
                .fetch_optional(&mut *tx)
                .await?;
            found.is_some()
        }))
    }

    /// The backend's name, for logs and `/readyz`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(store) => store.ping().await,
            Store::Postgres(store) => store.ping().await,
        }
    }

    /// The newest migration applied.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        match self {
            Store::Sqlite(store) => store.schema_version().await,
            Store::Postgres(store) => store.schema_version().await,
        }
    }

    /// Every stored datapoint value.
    pub async fn load_datapoint_values(&self) -> Result<Vec<DatapointRow>, StoreError> {
        match self {
            Store::Sqlite(store) => store.load_datapoint_values().await,
            Store::Postgres(store) => store.load_datapoint_values().await,
        }
    }

    /// Stores `rows` in one transaction, with no event: for tools and the conformance suite
    /// (the server writes datapoints through the journal). Durable when this returns `Ok`;
    /// when a key appears twice the later row wins.
    pub async fn write_datapoint_values(&self, rows: &[DatapointRow]) -> Result<(), StoreError> {
        let datapoints = rows.to_vec();
        self.commit_change(0, 0, move |_| Change {
            datapoints,
            ..Change::default()
        })
        .await?;
        Ok(())
    }

    /// Closes the connections, waiting for those in use.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(store) => store.close().await,
            Store::Postgres(store) => store.close().await,
        }
    }
}

/// The last row of each key, in order of first appearance. A multi-row upsert may not touch one
/// row twice (PostgreSQL refuses it), and the earlier rows would be overwritten anyway.
pub(crate) fn last_per_key(rows: &[DatapointRow]) -> Vec<&DatapointRow> {
    let mut position = std::collections::HashMap::with_capacity(rows.len());
    let mut out: Vec<&DatapointRow> = Vec::with_capacity(rows.len());
    for row in rows {
        match position.get(row.key.as_str()) {
            Some(&at) => out[at] = row,
            None => {
                position.insert(row.key.as_str(), out.len());
                out.push(row);
            }
        }
    }
    out
}

/// Rows as one JSON array of arrays, for SQLite's `json_each` (a tuple serializes as an array).
fn json_rows<T: serde::Serialize>(rows: impl Iterator<Item = T>) -> String {
    let rows: Vec<T> = rows.collect();
    serde_json::to_string(&rows).unwrap_or_else(|_| "[]".into())
}

fn to_micros(time: OffsetDateTime) -> i64 {
    (time.unix_timestamp_nanos() / 1_000) as i64
}

fn from_micros(micros: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_err(|e| StoreError::Other(format!("stored time {micros} is out of range: {e}")))
}

fn row_from_columns(
    (key, value_json, update_time_us, seq): (String, String, i64, i64),
) -> Result<DatapointRow, StoreError> {
    Ok(DatapointRow {
        key,
        value_json,
        update_time: from_micros(update_time_us)?,
        seq: u64::try_from(seq).map_err(|_| StoreError::Other(format!("negative seq {seq}")))?,
    })
}

fn check_known(found: i64, migrations: &[Migration]) -> Result<(), StoreError> {
    let known = migrations.last().map_or(0, |m| m.version);
    if found > known {
        return Err(StoreError::SchemaTooNew { found, known });
    }
    Ok(())
}
