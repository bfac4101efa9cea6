//! The values benchmark: Portico (in this process, plain HTTP on loopback) ingesting and
//! reading stream values, each figure against a baseline measured in the same run.
//!
//! `cargo run --release --example values [DATABASE_URL]` (default: new SQLite files; a
//! PostgreSQL URL runs in fresh schemas of that database) prints one JSON object:
//! - `ingest`: values/s written by 8 HTTP clients (one stream each, 1,000 values per request,
//!   `POST /api/v1/streams/{id}/values`), proofs on; `raw_insert`: the same rows inserted by 8
//!   tasks through the same driver with no HTTP (the same statement, one transaction per 1,000
//!   rows); `ingest_vs_raw`: their ratio;
//! - `ingest_proofs_off`: the ingest with `values.proofs = false`; `proof_cost`: how much slower
//!   ingest is with proofs (1 − on/off); `proofs_settled_ms`: how long after the last write the
//!   last tree closed;
//! - `read`: values/s reading one stream's 100,000 values in pages of 10,000 through the
//!   native cursor;
//! - `downsample_ms`: cutting one stream's 1,000,000 values into 1,000 buckets of
//!   `count,min,max,avg` in one request (`interval=1s`); `downsample_rate`: values/s;
//!   `downsample_vs_read`: that rate against `read`'s;
//! - on SQLite, `bytes_per_value`: the database's growth per DOUBLE value (values, proofs, the
//!   log of roots, indexes), and `bytes_per_value_row`: the values table's alone;
//!   `bytes_per_value_ecdsa_256`: the growth with ECDSA P-256 roots over trees of 256 values
//!   (how datapoint histories are proven).
//!
//! Targets on this machine: SQLite ingest ≥ 200,000 values/s and ≥ 60 % of raw; PostgreSQL ≥
//! 60 % of raw; read ≥ 1,000,000 values/s; proofs cost ≤ 15 %; ≤ 40 bytes per value on SQLite.

use std::sync::Arc;
use std::time::{Duration, Instant};

use portico::series::{Encoding, ProofKind, Series, StreamSpec, ValueSettings};

const CLIENTS: usize = 8;
const BATCH: usize = 1_000;
const BATCHES: usize = 50;
const READ: usize = 100_000;
/// Values downsampled, a millisecond apart: 1,000 one-second buckets.
const DOWNSAMPLED: usize = 1_000_000;

/// A fresh place for one server: an SQLite file, or a new schema in the PostgreSQL database.
async fn database(base: Option<&str>, dir: &std::path::Path, name: &str) -> String {
    match base {
        None => format!("sqlite://{}", dir.join(format!("{name}.db")).display()),
        Some(base) => {
            let schema = format!("portico_bench_{name}_{}", std::process::id());
            let pool = sqlx::PgPool::connect(base).await.expect("PostgreSQL");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            )))
            .execute(&pool)
            .await
            .expect("schema");
            pool.close().await;
            let separator = if base.contains('?') { '&' } else { '?' };
            format!("{base}{separator}options[search_path]={schema}")
        }
    }
}

/// Streams made through the library (open policies: no tokens in the measurement), with the
/// default proof kind (RSA-2048 PSS) and trees of 32.
async fn streams(url: &str, count: usize) -> Vec<(i64, String)> {
    streams_of(url, count, ProofKind::SHA256_RSA2048_PSS, 5).await
}

/// Streams of `kind` and trees of `2^depth`.
async fn streams_of(url: &str, count: usize, kind: ProofKind, depth: u8) -> Vec<(i64, String)> {
    let location = portico::store::Location::parse(url).expect("url");
    let store = portico::store::Store::open(&location).await.expect("store");
    let series = Series::open(
        store.clone(),
        portico::events::Journal::new(store.clone(), portico::events::EventBus::default()),
        Arc::new(portico::clock::SystemClock),
        Arc::new(portico::secrets::Sealer::new(&[1; 32])),
        ValueSettings::default(),
    )
    .await
    .expect("series");
    let open = portico::access::PolicyConfig::Named("open".into());
    let mut out = Vec::new();
    for n in 0..count {
        let spec = StreamSpec {
            merkle_tree_depth: depth,
            proof_kind: kind,
            max_merkle_tree_age_seconds: 1,
            read: open.clone(),
            write: open.clone(),
            ..StreamSpec::new(format!("bench {n}"), Encoding::Double)
        };
        let stream = series.create(None, spec).await.expect("stream");
        out.push((stream.num, stream.id.to_string()));
    }
    store.close().await;
    out
}

/// `n` DOUBLE values from `start` (milliseconds apart), as a native request body.
fn body(start: usize, n: usize) -> String {
    let base = time::OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("time");
    let items: Vec<serde_json::Value> = (start..start + n)
        .map(|i| {
            let at = base + time::Duration::milliseconds(i as i64);
            serde_json::json!({"timestamp": portico::timefmt::rfc3339(at), "value": i as f64 * 0.25})
        })
        .collect();
    serde_json::to_string(&items).expect("json")
}

struct Running {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn serve(dir: &std::path::Path, database: &str, proofs: bool) -> Running {
    let toml = format!(
        "[tls]\nenabled = false\n[log]\nlevel = \"warn\"\n[values]\nproofs = {proofs}\n\
         max_page = 10000\n[limits]\nmax_body_bytes = 4194304\n"
    );
    let mut config: portico::config::Config = toml::from_str(&toml).expect("config");
    config.data_dir = dir.join(format!("data-{}", portico::secrets::uuid()));
    config.listen = "127.0.0.1:0".parse().expect("listen");
    config.database_url = Some(portico::secrets::Secret::new(database.to_owned()));
    std::fs::create_dir_all(&config.data_dir).expect("data dir");
    let server = portico::server::Server::build(config)
        .await
        .expect("server");
    let url = server.url();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    Running { url, stop, task }
}

/// Writes `BATCHES` batches per client over HTTP; answers values/s.
async fn ingest(url: &str, streams: &[(i64, String)]) -> f64 {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .expect("client");
    let bodies: Vec<String> = (0..BATCHES).map(|b| body(b * BATCH, BATCH)).collect();
    let bodies = Arc::new(bodies);
    let start = Instant::now();
    let clients: Vec<_> = streams
        .iter()
        .map(|(_, id)| {
            let (http, bodies) = (http.clone(), bodies.clone());
            let target = format!("{url}/api/v1/streams/{id}/values");
            tokio::spawn(async move {
                for body in bodies.iter() {
                    let reply = http
                        .post(&target)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .expect("POST");
                    assert_eq!(
                        reply.status(),
                        200,
                        "{}",
                        reply.text().await.unwrap_or_default()
                    );
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("client");
    }
    (CLIENTS * BATCHES * BATCH) as f64 / start.elapsed().as_secs_f64()
}

/// Writes [`DOWNSAMPLED`] values to one stream (8 clients, disjoint timestamps), then cuts
/// them into 1,000 buckets in one request; answers how long that request took.
async fn downsample(url: &str, stream: &str) -> Duration {
    let http = reqwest::Client::new();
    let target = format!("{url}/api/v1/streams/{stream}/values");
    let batches = DOWNSAMPLED / BATCH;
    let writers: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (http, target) = (http.clone(), target.clone());
            tokio::spawn(async move {
                for b in (c..batches).step_by(CLIENTS) {
                    let reply = http
                        .post(&target)
                        .header("content-type", "application/json")
                        .body(body(b * BATCH, BATCH))
                        .send()
                        .await
                        .expect("POST");
                    assert_eq!(reply.status(), 200);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let start = Instant::now();
    let page = http
        .get(format!(
            "{target}?interval=1s&agg=count,min,max,avg&limit=1000"
        ))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    let took = start.elapsed();
    assert_eq!(page.matches("\"start\"").count(), 1_000, "1,000 buckets");
    assert_eq!(
        page.matches("\"count\":1000,").count(),
        1_000,
        "full buckets"
    );
    took
}

/// The same rows through the same driver, no HTTP: one transaction per batch, 8 tasks.
async fn raw_insert(url: &str, streams: &[(i64, String)]) -> f64 {
    let rows = |stream: i64, start: usize| -> Vec<(i64, i64, i64, Vec<u8>)> {
        (start..start + BATCH)
            .map(|i| {
                let ts = 1_767_225_600_000_000i64 + i as i64 * 1_000;
                (stream, ts, 1_000, (i as f64 * 0.25).to_le_bytes().to_vec())
            })
            .collect()
    };
    let start = Instant::now();
    if url.starts_with("sqlite") {
        let options: sqlx::sqlite::SqliteConnectOptions = url.parse().expect("url");
        let options = options
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30));
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .expect("pool");
        let tasks: Vec<_> = streams
            .iter()
            .map(|(num, _)| {
                let (pool, num) = (pool.clone(), *num);
                tokio::spawn(async move {
                    for b in 0..BATCHES {
                        let json = serde_json::to_string(
                            &rows(num, b * BATCH)
                                .into_iter()
                                .map(|(s, t, d, v)| {
                                    let hex: String = v.iter().map(|x| format!("{x:02x}")).collect();
                                    (s, t, d, hex)
                                })
                                .collect::<Vec<_>>(),
                        )
                        .expect("json");
                        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
                        sqlx::query(
                            "INSERT INTO series_values (stream, ts_us, stored_delta_us, value) \
                             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
                                    json_extract(value, '$[2]'), unhex(json_extract(value, '$[3]')) \
                             FROM json_each($1)",
                        )
                        .bind(json)
                        .execute(&mut *tx)
                        .await
                        .expect("insert");
                        tx.commit().await.expect("commit");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        pool.close().await;
    } else {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(CLIENTS as u32)
            .connect(url)
            .await
            .expect("pool");
        let tasks: Vec<_> = streams
            .iter()
            .map(|(num, _)| {
                let (pool, num) = (pool.clone(), *num);
                tokio::spawn(async move {
                    for b in 0..BATCHES {
                        let rows = rows(num, b * BATCH);
                        let nums: Vec<i64> = rows.iter().map(|r| r.0).collect();
                        let times: Vec<i64> = rows.iter().map(|r| r.1).collect();
                        let deltas: Vec<i64> = rows.iter().map(|r| r.2).collect();
                        let values: Vec<Vec<u8>> = rows.into_iter().map(|r| r.3).collect();
                        let mut tx = pool.begin().await.expect("begin");
                        sqlx::query(
                            "INSERT INTO series_values (stream, ts_us, stored_delta_us, value) \
                             SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], \
                             $4::BYTEA[])",
                        )
                        .bind(&nums)
                        .bind(&times)
                        .bind(&deltas)
                        .bind(&values)
                        .execute(&mut *tx)
                        .await
                        .expect("insert");
                        tx.commit().await.expect("commit");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        pool.close().await;
    }
    (CLIENTS * BATCHES * BATCH) as f64 / start.elapsed().as_secs_f64()
}

/// How long until every written value is under a proof.
async fn settled(url: &str, streams: &[(i64, String)]) -> Duration {
    let location = portico::store::Location::parse(url).expect("url");
    let store = portico::store::Store::open(&location).await.expect("store");
    let start = Instant::now();
    loop {
        let mut left = 0;
        for (num, _) in streams {
            left += store
                .unproven(*num)
                .await
                .expect("unproven")
                .map_or(0, |(n, _)| n);
        }
        if left == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "{left} values never proven"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.close().await;
    start.elapsed()
}

/// Reads every value of `streams` in pages of 10,000 through the native cursor; answers how
/// many and values/s.
async fn read(url: &str, streams: &[(i64, String)]) -> (usize, f64) {
    let http = reqwest::Client::new();
    let start = Instant::now();
    let mut read = 0;
    for (_, stream) in streams {
        let mut path = format!("{url}/api/v1/streams/{stream}/values?limit=10000");
        loop {
            // Counted and followed without parsing the page: the server is measured, not a
            // JSON parser on the same cores.
            let page = http
                .get(&path)
                .send()
                .await
                .expect("GET")
                .text()
                .await
                .expect("body");
            read += page.matches("\"storedAt\"").count();
            let Some(next) = page
                .rsplit_once("\"next\":\"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(next, _)| next.to_owned())
            else {
                break;
            };
            path = format!("{url}/api/v1/streams/{stream}/values?limit=10000&after={next}");
        }
    }
    (read, read as f64 / start.elapsed().as_secs_f64())
}

/// The size of an SQLite database after a checkpoint, and of its values table.
async fn sqlite_bytes(url: &str) -> (u64, u64) {
    let pool = sqlx::SqlitePool::connect(url).await.expect("pool");
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&pool)
        .await
        .expect("checkpoint");
    let (pages, size): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT page_count FROM pragma_page_count()), (SELECT page_size FROM pragma_page_size())",
    )
    .fetch_one(&pool)
    .await
    .expect("size");
    let values: Option<(i64,)> =
        sqlx::query_as("SELECT SUM(pgsize) FROM dbstat WHERE name = 'series_values'")
            .fetch_optional(&pool)
            .await
            .unwrap_or(None);
    pool.close().await;
    (
        (pages * size) as u64,
        values.map_or(0, |(bytes,)| bytes as u64),
    )
}

#[tokio::main]
async fn main() {
    let base = std::env::args().nth(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let total = CLIENTS * BATCHES * BATCH;

    // Proofs on.
    let on_url = database(base.as_deref(), dir.path(), "on").await;
    let on_streams = streams(&on_url, CLIENTS).await;
    let before = match base {
        None => Some(sqlite_bytes(&on_url).await),
        Some(_) => None,
    };
    let server = serve(dir.path(), &on_url, true).await;
    let ingest_on = ingest(&server.url, &on_streams).await;
    let proofs_settled = settled(&on_url, &on_streams).await;
    let streams_to_read = READ.div_ceil(BATCHES * BATCH);
    let (read_count, read) = read(&server.url, &on_streams[..streams_to_read]).await;
    assert_eq!(read_count, READ, "every value read");
    let _ = server.stop.send(());
    server.task.await.expect("server");
    let bytes = match (before, base.as_deref()) {
        (Some((db_before, values_before)), None) => {
            let (db_after, values_after) = sqlite_bytes(&on_url).await;
            Some((
                (db_after - db_before) as f64 / total as f64,
                (values_after - values_before) as f64 / total as f64,
            ))
        }
        _ => None,
    };

    // The database's growth per value with ECDSA P-256 roots over trees of 256 (as datapoint
    // histories are proven): how much of a value's bytes is its proof's.
    let compact = match base {
        None => {
            let url = database(None, dir.path(), "compact").await;
            let streams = streams_of(&url, CLIENTS, ProofKind::SHA256_ECDSAP256_IEEEP1363, 8).await;
            let before = sqlite_bytes(&url).await.0;
            let server = serve(dir.path(), &url, true).await;
            ingest(&server.url, &streams).await;
            settled(&url, &streams).await;
            let _ = server.stop.send(());
            server.task.await.expect("server");
            Some((sqlite_bytes(&url).await.0 - before) as f64 / total as f64)
        }
        Some(_) => None,
    };

    // Proofs off.
    let off_url = database(base.as_deref(), dir.path(), "off").await;
    let off_streams = streams(&off_url, CLIENTS + 1).await;
    let server = serve(dir.path(), &off_url, false).await;
    let ingest_off = ingest(&server.url, &off_streams[..CLIENTS]).await;
    let downsampled = downsample(&server.url, &off_streams[CLIENTS].1).await;
    let downsample_rate = DOWNSAMPLED as f64 / downsampled.as_secs_f64();
    let _ = server.stop.send(());
    server.task.await.expect("server");

    // The baseline: the same rows, the same driver, no HTTP.
    let raw_url = database(base.as_deref(), dir.path(), "raw").await;
    let raw_streams = streams(&raw_url, CLIENTS).await;
    let raw = raw_insert(&raw_url, &raw_streams).await;

    let mut out = serde_json::json!({
        "backend": if base.is_some() { "postgres" } else { "sqlite" },
        "values": total,
        "ingest": ingest_on.round(),
        "raw_insert": raw.round(),
        "ingest_vs_raw": (ingest_on / raw * 1000.0).round() / 1000.0,
        "ingest_proofs_off": ingest_off.round(),
        "proof_cost": ((1.0 - ingest_on / ingest_off) * 1000.0).round() / 1000.0,
        "proofs_settled_ms": proofs_settled.as_millis() as u64,
        "read": read.round(),
        "downsample_ms": downsampled.as_millis() as u64,
        "downsample_rate": downsample_rate.round(),
        "downsample_vs_read": (downsample_rate / read * 1000.0).round() / 1000.0,
    });
    if let Some(compact) = compact {
        out["bytes_per_value_ecdsa_256"] = serde_json::json!((compact * 10.0).round() / 10.0);
    }
    if let Some((all, values)) = bytes {
        out["bytes_per_value"] = serde_json::json!((all * 10.0).round() / 10.0);
        out["bytes_per_value_row"] = serde_json::json!((values * 10.0).round() / 10.0);
    }
    println!("{out}");
}
