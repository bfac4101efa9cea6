//! The store conformance suite: the same tests on SQLite and, with `PORTICO_TEST_DATABASE_URL`,
//! on PostgreSQL.

use portico::store::{DatapointRow, Store, StoreError};
use time::OffsetDateTime;

use crate::helpers::fresh_store as fresh;

fn row(key: &str, value_json: &str, micros: i64, seq: u64) -> DatapointRow {
    DatapointRow {
        key: key.to_owned(),
        value_json: value_json.to_owned(),
        update_time: OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
            .expect("time"),
        seq,
    }
}

fn sorted(mut rows: Vec<DatapointRow>) -> Vec<DatapointRow> {
    rows.sort_by(|a, b| a.key.cmp(&b.key));
    rows
}

#[tokio::test]
async fn migrations_apply_once_and_reopen_cleanly() {
    let (_dir, database, store) = fresh().await;
    assert_eq!(store.schema_version().await.expect("version"), 9);
    store.ping().await.expect("ping");
    store.close().await;
    let again = Store::open(&database.location()).await.expect("reopen");
    assert_eq!(again.schema_version().await.expect("version"), 9);
    assert!(
        again
            .load_datapoint_values()
            .await
            .expect("load")
            .is_empty()
    );
}

#[tokio::test]
async fn values_round_trip_exactly() {
    let (_dir, _database, store) = fresh().await;
    let rows = vec![
        row("A", "true", 1_700_000_000_123_456, 1),
        row("B", "-9223372036854775808", 0, 2),
        row("C", "\"ünïcødé \\\"quoted\\\"\"", -1_000_000, 3),
        row("D", "1.2345678901234567", 253_402_300_799_999_999, 4),
    ];
    store.write_datapoint_values(&rows).await.expect("write");
    assert_eq!(
        sorted(store.load_datapoint_values().await.expect("load")),
        rows
    );
}

#[tokio::test]
async fn the_later_write_wins_within_and_across_batches() {
    let (_dir, _database, store) = fresh().await;
    store
        .write_datapoint_values(&[
            row("A", "1", 10, 1),
            row("B", "2", 11, 2),
            row("A", "3", 12, 3),
        ])
        .await
        .expect("batch with a repeated key");
    store
        .write_datapoint_values(&[row("B", "4", 13, 4)])
        .await
        .expect("second batch");
    assert_eq!(
        sorted(store.load_datapoint_values().await.expect("load")),
        vec![row("A", "3", 12, 3), row("B", "4", 13, 4)]
    );
}

#[tokio::test]
async fn empty_and_large_batches_work() {
    let (_dir, _database, store) = fresh().await;
    store
        .write_datapoint_values(&[])
        .await
        .expect("empty batch");
    let rows: Vec<_> = (0..2000)
        .map(|n| row(&format!("K.{n:05}"), &n.to_string(), n, n as u64 + 1))
        .collect();
    store
        .write_datapoint_values(&rows)
        .await
        .expect("large batch");
    assert_eq!(
        sorted(store.load_datapoint_values().await.expect("load")),
        rows
    );
}

#[tokio::test]
async fn a_schema_from_a_newer_portico_is_refused() {
    let (_dir, database, store) = fresh().await;
    let current = store.schema_version().await.expect("version");
    store.close().await;
    let insert =
        "INSERT INTO portico_migrations (version, name, applied_at_us) VALUES (999, 'future', 0)";
    if database.is_postgres() {
        let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
        sqlx::query(insert).execute(&pool).await.expect("insert");
        pool.close().await;
    } else {
        let pool = sqlx::SqlitePool::connect(&database.url)
            .await
            .expect("connect");
        sqlx::query(insert).execute(&pool).await.expect("insert");
        pool.close().await;
    }
    match Store::open(&database.location()).await {
        Err(StoreError::SchemaTooNew { found: 999, known }) if known == current => {}
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_database_is_reported_as_unavailable() {
    let location = portico::store::Location::Postgres("postgres://nobody@127.0.0.1:1/none".into());
    match Store::open(&location).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
