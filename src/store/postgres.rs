//! The PostgreSQL backend. Migrations run under an advisory lock, so concurrent starts are
//! safe, and every write batch is one transaction (values and their webhook outbox rows). One Portico node per database for now:
//! each node keeps its own in-memory values and sequence numbers (multi-node is roadmap item 9).

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::{DatapointRow, Migration, StoreError, check_known, row_from_columns};

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "datapoint_values",
        sql: include_str!("../../migrations/postgres/0001_datapoint_values.sql"),
    },
    Migration {
        version: 2,
        name: "identity",
        sql: include_str!("../../migrations/postgres/0002_identity.sql"),
    },
    Migration {
        version: 3,
        name: "revoked_tokens",
        sql: include_str!("../../migrations/postgres/0003_revoked_tokens.sql"),
    },
    Migration {
        version: 4,
        name: "xrtc",
        sql: include_str!("../../migrations/postgres/0004_xrtc.sql"),
    },
    Migration {
        version: 5,
        name: "webhooks",
        sql: include_str!("../../migrations/postgres/0005_webhooks.sql"),
    },
    Migration {
        version: 6,
        name: "webhook_actors",
        sql: include_str!("../../migrations/postgres/0006_webhook_actors.sql"),
    },
    Migration {
        version: 7,
        name: "journal",
        sql: include_str!("../../migrations/postgres/0007_journal.sql"),
    },
    Migration {
        version: 8,
        name: "registration_gate",
        sql: include_str!("../../migrations/postgres/0008_registration_gate.sql"),
    },
    Migration {
        version: 9,
        name: "series",
        sql: include_str!("../../migrations/postgres/0009_series.sql"),
    },
];

/// Identifies Portico's migration lock among the database's advisory locks ("portico" in ASCII).
const MIGRATION_LOCK: i64 = 0x0070_6f72_7469_636f;

/// A PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    pub(super) timeout: Duration,
}

impl PostgresStore {
    pub(super) async fn open(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let millis = timeout.as_millis().to_string();
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
            .options([
                ("statement_timeout", millis.as_str()),
                ("lock_timeout", millis.as_str()),
                ("idle_in_transaction_session_timeout", millis.as_str()),
            ]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(timeout)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let store = Self { pool, timeout };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS portico_migrations (
                version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at_us BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let (current,): (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(version), 0)::BIGINT FROM portico_migrations")
                .fetch_one(&mut *tx)
                .await?;
        check_known(current, MIGRATIONS)?;
        for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
            sqlx::raw_sql(migration.sql).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO portico_migrations (version, name, applied_at_us)
                 VALUES ($1, $2, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT)",
            )
            .bind(migration.version)
            .bind(migration.name)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub(super) async fn schema_version(&self) -> Result<i64, StoreError> {
        let (version,): (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(version), 0)::BIGINT FROM portico_migrations")
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
