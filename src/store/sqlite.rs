//! The SQLite backend: one file in WAL mode with `synchronous = FULL`, so a committed
//! transaction is on disk before the commit returns.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::SqliteSynchronous;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::{DatapointRow, Migration, StoreError, check_known, row_from_columns};

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "datapoint_values",
        sql: include_str!("../../migrations/sqlite/0001_datapoint_values.sql"),
    },
    Migration {
        version: 2,
        name: "identity",
        sql: include_str!("../../migrations/sqlite/0002_identity.sql"),
    },
    Migration {
        version: 3,
        name: "revoked_tokens",
        sql: include_str!("../../migrations/sqlite/0003_revoked_tokens.sql"),
    },
    Migration {
        version: 4,
        name: "xrtc",
        sql: include_str!("../../migrations/sqlite/0004_xrtc.sql"),
    },
    Migration {
        version: 5,
        name: "webhooks",
        sql: include_str!("../../migrations/sqlite/0005_webhooks.sql"),
    },
    Migration {
        version: 6,
        name: "webhook_actors",
        sql: include_str!("../../migrations/sqlite/0006_webhook_actors.sql"),
    },
    Migration {
        version: 7,
        name: "journal",
        sql: include_str!("../../migrations/sqlite/0007_journal.sql"),
    },
    Migration {
        version: 8,
        name: "registration_gate",
        sql: include_str!("../../migrations/sqlite/0008_registration_gate.sql"),
    },
    Migration {
        version: 9,
        name: "series",
        sql: include_str!("../../migrations/sqlite/0009_series.sql"),
    },
];

/// An SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    pub(super) timeout: Duration,
}

impl SqliteStore {
    pub(super) async fn open(path: &Path, timeout: Duration) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(timeout);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(timeout)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
        let store = Self { pool, timeout };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        // IMMEDIATE takes the write lock up front, so two processes cannot migrate at once.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS portico_migrations (
                version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_us INTEGER NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let (current,): (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(version), 0) FROM portico_migrations")
                .fetch_one(&mut *tx)
                .await?;
        check_known(current, MIGRATIONS)?;
        for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
            sqlx::raw_sql(migration.sql).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO portico_migrations (version, name, applied_at_us)
                 VALUES (?, ?, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER))",
            )
            .bind(migration.version)
            .bind(migration.name)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub(super) async fn schema_version(&self) -> Result<i64, StoreError> {
        let (version,): (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(version), 0) FROM portico_migrations")
                .fetch_one(&self.pool)
                .await?;
        Ok(version)
    }

    pub(super) async fn load_datapoint_values(&self) -> Result<Vec<DatapointRow>, StoreError> {
        let rows: Vec<(String, String, i64, i64)> =
            sqlx::query_as("SELECT key, value, update_time_us, seq FROM datapoint_values")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(row_from_columns).collect()
    }

    pub(super) async fn close(&self) {
        self.pool.close().await;
    }
}
