//! Health, readiness, metrics.

use crate::helpers::TestApp;

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = TestApp::spawn().await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 200);
    let expected = if app.database.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(
        ready.json(),
        serde_json::json!({"status": "ready", "store": expected})
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_and_time_them() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        assert_eq!(app.get("/api/v1/t/int").await.status, 200);
    }
    assert_eq!(
        app.put_json("/api/v1/t/int", r#"{"value":1}"#).await.status,
        200
    );
    app.put_json("/api/v1/t/int", r#"{"value":"x"}"#)
        .await
        .assert_problem(422, "type_mismatch");
    app.get("/no/such/path/1")
        .await
        .assert_problem(404, "not_found");
    app.get("/no/such/path/2")
        .await
        .assert_problem(404, "not_found");

    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .starts_with("text/plain; version=0.0.4")
    );
    let text = metrics.text;
    for line in [
        r#"http_requests_total{method="GET",route="/api/v1/t/int",status="200"} 3"#,
        r#"http_requests_total{method="PUT",route="/api/v1/t/int",status="200"} 1"#,
        r#"http_requests_total{method="PUT",route="/api/v1/t/int",status="422"} 1"#,
        r#"http_requests_total{method="GET",route="unmatched",status="404"} 2"#,
        r#"http_request_duration_seconds_count{method="GET",route="/api/v1/t/int"} 3"#,
        r#"http_request_duration_seconds_bucket{method="GET",route="/api/v1/t/int",le="+Inf"} 3"#,
        r#"portico_datapoint_writes_total{datapoint="T.Int"} 1"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
}
