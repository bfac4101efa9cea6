//! Acknowledged writes survive `kill -9`: the real binary is killed with SIGKILL and restarted.
//! A stalled store gets a 503 in bounded time, and nothing it did not commit is acknowledged.

use crate::helpers::process::Process;
use crate::helpers::{DATAPOINTS, TestDatabase, client_for};

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = TestDatabase::fresh(dir.path()).await;
    let mut toml = DATAPOINTS.to_owned();
    for n in 0..40 {
        toml.push_str(&format!(
            "[[datapoint]]\nkey = \"K.{n}\"\ntype = \"int\"\n[[endpoint]]\npath = \"/k/{n}\"\ndatapoint = \"K.{n}\"\n"
        ));
    }
    let config = dir.path().join("portico.toml");
    std::fs::write(&config, toml).expect("config");
    let data_dir = dir.path().join("data");

    let server = Process::start(&config, &data_dir, &database);
    let client = client_for(Some(
        &std::fs::read(data_dir.join("tls/cert.pem")).expect("cert"),
    ));
    let mut writes: Vec<(String, String)> = vec![
        ("/api/v1/t/bool".into(), r#"{"value":true}"#.into()),
        ("/api/v1/t/int".into(), r#"{"value":-17}"#.into()),
        ("/api/v1/t/float".into(), r#"{"value":2.718}"#.into()),
        ("/api/v1/t/string".into(), r#"{"value":"Xentara"}"#.into()),
    ];
    writes.extend((0..40).map(|n| {
        (
            format!("/k/{n}"),
            format!(r#"{{"value":{}}}"#, n * 1000 + 7),
        )
    }));
    let sent = writes.iter().map(|(path, body)| {
        let request = client
            .put(format!("{}{path}", server.url))
            .header("content-type", "application/json")
            .body(body.clone());
        async move {
            let response = request.send().await.expect("PUT");
            assert_eq!(response.status(), 200);
            (
                path.clone(),
                response.json::<serde_json::Value>().await.expect("json"),
            )
        }
    });
    let acknowledged = futures_util::future::join_all(sent).await;
    server.kill_9();

    let server = Process::start(&config, &data_dir, &database);
    for (path, written) in acknowledged {
        let read: serde_json::Value = client
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("json");
        assert_eq!(read, written, "{path} after kill -9");
    }
    server.kill_9();
}

#[tokio::test]
async fn a_closed_stdout_does_not_stop_the_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = TestDatabase::fresh(dir.path()).await;
    let config = dir.path().join("portico.toml");
    std::fs::write(&config, DATAPOINTS).expect("config");
    let data_dir = dir.path().join("data");
    let mut server = Process::start(&config, &data_dir, &database);
    drop(server.stdout.take()); // the supervisor stops reading after the first line
    let client = client_for(Some(
        &std::fs::read(data_dir.join("tls/cert.pem")).expect("cert"),
    ));
    for n in 0..3 {
        let response = client
            .put(format!("{}/api/v1/t/int", server.url))
            .header("content-type", "application/json")
            .body(format!(r#"{{"value":{n}}}"#))
            .send()
            .await
            .expect("the server is still up");
        assert_eq!(response.status(), 200);
    }
    assert!(
        server.child.try_wait().expect("status").is_none(),
        "still running"
    );
    server.kill_9();
}

/// Holds the store's write lock from outside Portico until dropped: SQLite's write lock
/// (`BEGIN IMMEDIATE`), or on PostgreSQL an exclusive lock on the sequence every change takes.
enum Stall {
    Sqlite { _held: sqlx::SqliteConnection },
    Postgres { _held: sqlx::PgConnection },
}

async fn stall(database: &crate::helpers::TestDatabase) -> Stall {
    use sqlx::Connection;
    if database.is_postgres() {
        let mut connection = sqlx::PgConnection::connect(&database.url)
            .await
            .expect("connect");
        sqlx::raw_sql("BEGIN; LOCK TABLE portico_sequence IN ACCESS EXCLUSIVE MODE")
            .execute(&mut connection)
            .await
            .expect("lock");
        Stall::Postgres { _held: connection }
    } else {
        let mut connection = sqlx::SqliteConnection::connect(&database.url)
            .await
            .expect("connect");
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut connection)
            .await
            .expect("lock");
        Stall::Sqlite { _held: connection }
    }
}

#[tokio::test]
async fn a_stalled_store_answers_503_in_time_and_acknowledges_nothing_it_did_not_commit() {
    let app = crate::helpers::TestApp::spawn_with(&format!(
        "[limits]\nstore_timeout_seconds = 1\n{DATAPOINTS}"
    ))
    .await;
    let written = app.put_json("/api/v1/t/int", r#"{"value":1}"#).await;
    assert_eq!(written.status, 200, "{}", written.text);

    // The lock is held until this test lets it go: only the store timeout can answer.
    let stalled = stall(&app.database).await;
    let refused = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        app.put_json("/api/v1/t/int", r#"{"value":2}"#),
    )
    .await
    .expect("answered while the store is stalled, not held");
    refused.assert_problem(503, "unavailable");
    // The refused write is nowhere: not in memory, not in the store once it answers again.
    assert_eq!(app.get("/api/v1/t/int").await.json()["value"], 1);
    drop(stalled);
    let written = app.put_json("/api/v1/t/int", r#"{"value":3}"#).await;
    assert_eq!(written.status, 200, "{}", written.text);
    let (dir, database) = app.stop().await;
    let again = crate::helpers::TestApp::spawn_in(dir, database, DATAPOINTS).await;
    assert_eq!(again.get("/api/v1/t/int").await.json()["value"], 3);
}
