//! Acknowledged writes survive `kill -9`: the real binary is killed with SIGKILL and restarted.

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
