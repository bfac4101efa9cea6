//! Configured endpoints: every type read and written over HTTPS, every bad input refused with its
//! code (and nothing changed), access enforced with 405 + Allow.

use reqwest::Method;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn a_never_written_datapoint_reads_as_null_with_bad_quality() {
    let app = TestApp::spawn().await;
    let reply = app.get("/api/v1/t/float").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({"value": null, "quality": "bad", "updateTime": null})
    );
}

#[tokio::test]
async fn the_seed_examples_are_written_and_read_back_over_https() {
    let app = TestApp::spawn().await;
    let cases = [
        ("/api/v1/t/bool", r#"{"value":true}"#, json!(true)),
        ("/api/v1/t/bool", r#"{"value":false}"#, json!(false)),
        (
            "/api/v1/t/string",
            r#"{"value":"Xentara"}"#,
            json!("Xentara"),
        ),
        ("/api/v1/t/int", r#"{"value":1}"#, json!(1)),
        ("/api/v1/t/float", r#"{"value":1.23}"#, json!(1.23)),
        ("/api/v1/t/float", r#"{"value":1}"#, json!(1.0)),
    ];
    for (path, body, expected) in cases {
        let written = app.put_json(path, body).await;
        assert_eq!(written.status, 200, "{path} {body}: {}", written.text);
        assert_eq!(written.json()["value"], expected);
        let read = app.get(path).await;
        assert_eq!(read.status, 200);
        let read = read.json();
        assert_eq!(read["value"], expected, "{path}");
        assert_eq!(read["quality"], "good");
        let time = read["updateTime"].as_str().expect("updateTime");
        assert!(
            time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "{time}"
        );
        assert!(time.ends_with('Z'), "UTC: {time}");
        assert_eq!(read["updateTime"], written.json()["updateTime"]);
    }
}

#[tokio::test]
async fn post_writes_like_put_and_json_media_types_with_parameters_are_accepted() {
    let app = TestApp::spawn().await;
    let reply = app
        .send(
            Method::POST,
            "/api/v1/t/int",
            Some("application/json; charset=utf-8"),
            r#"{"value":-42}"#,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(app.get("/api/v1/t/int").await.json()["value"], -42);
    let reply = app
        .send(
            Method::POST,
            "/api/v1/t/int",
            Some("application/merge-patch+json"),
            r#"{"value":7}"#,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[tokio::test]
async fn integer_limits_are_exact() {
    let app = TestApp::spawn().await;
    let max = app
        .put_json("/api/v1/t/int", r#"{"value":9223372036854775807}"#)
        .await;
    assert_eq!(max.status, 200);
    assert_eq!(
        app.get("/api/v1/t/int").await.json()["value"],
        json!(i64::MAX)
    );
    let min = app
        .put_json("/api/v1/t/int", r#"{"value":-9223372036854775808}"#)
        .await;
    assert_eq!(min.status, 200);
    assert_eq!(
        app.get("/api/v1/t/int").await.json()["value"],
        json!(i64::MIN)
    );
}

#[tokio::test]
async fn bad_bodies_get_their_codes_and_change_nothing() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.put_json("/api/v1/t/int", r#"{"value":5}"#).await.status,
        200
    );
    assert_eq!(
        app.put_json("/api/v1/t/string", r#"{"value":"ok"}"#)
            .await
            .status,
        200
    );
    let json = Some("application/json");
    let cases: Vec<(&str, Option<&str>, String, u16, &str)> = vec![
        (
            "/api/v1/t/int",
            json,
            r#"{"value":"5"}"#.into(),
            422,
            "type_mismatch",
        ),
        (
            "/api/v1/t/int",
            json,
            r#"{"value":5.0}"#.into(),
            422,
            "type_mismatch",
        ),
        (
            "/api/v1/t/int",
            json,
            r#"{"value":true}"#.into(),
            422,
            "type_mismatch",
        ),
        (
            "/api/v1/t/int",
            json,
            r#"{"value":null}"#.into(),
            422,
            "type_mismatch",
        ),
        (
            "/api/v1/t/int",
            json,
            r#"{"value":[1]}"#.into(),
            422,
            "type_mismatch",
        ),
        (
            "/api/v1/t/bool",
            json,
            r#"{"value":1}"#.into(),
            422,
            "type_mismatch",
        ),
        (
            "/api/v1/t/string",
            json,
            r#"{"value":1}"#.into(),
            422,
            "type_mismatch",
        ),
        (
            "/api/v1/t/float",
            json,
            r#"{"value":"1.5"}"#.into(),
            422,
            "type_mismatch",
        ),
        ("/api/v1/t/int", json, r#"{}"#.into(), 422, "missing_value"),
        (
            "/api/v1/t/int",
            json,
            r#"{"valeu":1}"#.into(),
            422,
            "unknown_field",
        ),
        (
            "/api/v1/t/int",
            json,
            r#"{"value":1,"quality":"good"}"#.into(),
            422,
            "unknown_field",
        ),
        (
            "/api/v1/t/int",
            json,
            r#"{"value":1,"value":2}"#.into(),
            422,
            "duplicate_field",
        ),
        (
            "/api/v1/t/int",
            json,
            r#"[{"value":1}]"#.into(),
            422,
            "body_not_object",
        ),
        ("/api/v1/t/int", json, r#"1"#.into(), 422, "body_not_object"),
        (
            "/api/v1/t/int",
            json,
            r#"{"value":9223372036854775808}"#.into(),
            422,
            "integer_out_of_range",
        ),
        (
            "/api/v1/t/int",
            json,
            r#"{"value":-9223372036854775809}"#.into(),
            422,
            "integer_out_of_range",
        ),
        (
            "/api/v1/t/float",
            json,
            r#"{"value":1e999}"#.into(),
            422,
            "number_out_of_range",
        ),
        (
            "/api/v1/t/bounded",
            json,
            r#"{"value":101}"#.into(),
            422,
            "value_out_of_range",
        ),
        (
            "/api/v1/t/bounded",
            json,
            r#"{"value":-1}"#.into(),
            422,
            "value_out_of_range",
        ),
        (
            "/api/v1/t/string",
            json,
            r#"{"value":"123456789"}"#.into(),
            422,
            "string_too_long",
        ),
        (
            "/api/v1/t/int",
            json,
            r#"{"value":1"#.into(),
            400,
            "malformed_json",
        ),
        (
            "/api/v1/t/int",
            json,
            "value=1".into(),
            400,
            "malformed_json",
        ),
        (
            "/api/v1/t/int",
            json,
            r#"{"value":1} x"#.into(),
            400,
            "malformed_json",
        ),
        ("/api/v1/t/int", json, "".into(), 400, "malformed_json"),
        (
            "/api/v1/t/int",
            json,
            "{\"value\":\"\u{0}\"".into(),
            400,
            "malformed_json",
        ),
        (
            "/api/v1/t/int",
            None,
            r#"{"value":1}"#.into(),
            415,
            "unsupported_media_type",
        ),
        (
            "/api/v1/t/int",
            Some("text/plain"),
            r#"{"value":1}"#.into(),
            415,
            "unsupported_media_type",
        ),
        (
            "/api/v1/t/int",
            Some("application/x-www-form-urlencoded"),
            "value=1".into(),
            415,
            "unsupported_media_type",
        ),
        (
            "/api/v1/t/string",
            json,
            format!(r#"{{"value":"{}"}}"#, "x".repeat(70_000)),
            413,
            "payload_too_large",
        ),
    ];
    for (path, content_type, body, status, code) in cases {
        let reply = app
            .send(Method::PUT, path, content_type, body.clone())
            .await;
        let shown: String = body.chars().take(60).collect();
        assert_eq!(
            reply.status.as_u16(),
            status,
            "{path} {shown}: {}",
            reply.text
        );
        reply.assert_problem(status, code);
    }
    assert_eq!(
        app.get("/api/v1/t/int").await.json()["value"],
        5,
        "refused writes changed nothing"
    );
    assert_eq!(app.get("/api/v1/t/string").await.json()["value"], "ok");
    assert_eq!(app.get("/api/v1/t/bounded").await.json()["quality"], "bad");
}

#[tokio::test]
async fn non_utf8_and_binary_bodies_are_malformed_json() {
    let app = TestApp::spawn().await;
    let reply = app
        .send(
            Method::PUT,
            "/api/v1/t/string",
            Some("application/json"),
            vec![b'{', 0xff, 0xfe, b'}'],
        )
        .await;
    reply.assert_problem(400, "malformed_json");
}

#[tokio::test]
async fn access_is_enforced_with_405_and_allow() {
    let app = TestApp::spawn().await;
    let reply = app
        .put_json("/api/v1/t/read-only", r#"{"value":1.5}"#)
        .await;
    reply.assert_problem(405, "method_not_allowed");
    assert_eq!(reply.header("allow"), "GET, HEAD, OPTIONS");

    let reply = app.get("/api/v1/t/write-only").await;
    reply.assert_problem(405, "method_not_allowed");
    assert_eq!(reply.header("allow"), "PUT, POST, OPTIONS");
    assert!(
        !reply.text.contains("value\":"),
        "a write-only value is never shown"
    );

    let written = app.put_json("/api/v1/t/write-only", r#"{"value":3}"#).await;
    assert_eq!(written.status, 200, "{}", written.text);

    let reply = app.send(Method::DELETE, "/api/v1/t/int", None, "").await;
    reply.assert_problem(405, "method_not_allowed");
    assert_eq!(reply.header("allow"), "GET, HEAD, PUT, POST, OPTIONS");

    let reply = app
        .send(Method::OPTIONS, "/api/v1/t/read-only", None, "")
        .await;
    assert_eq!(reply.status, 204);
    assert_eq!(reply.header("allow"), "GET, HEAD, OPTIONS");
}

#[tokio::test]
async fn unknown_paths_are_404_problems_and_paths_match_exactly() {
    let app = TestApp::spawn().await;
    app.get("/nothing/here")
        .await
        .assert_problem(404, "not_found");
    app.get("/api/v1/t/int/")
        .await
        .assert_problem(404, "not_found");
    app.get("/API/V1/T/INT")
        .await
        .assert_problem(404, "not_found");
    let reply = app.send(Method::DELETE, "/healthz", None, "").await;
    reply.assert_problem(405, "method_not_allowed");
    assert!(reply.header("allow").contains("GET"));
}

#[tokio::test]
async fn the_list_shows_metadata_and_current_values_but_never_write_only_values() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.put_json("/api/v1/t/float", r#"{"value":21.5}"#)
            .await
            .status,
        200
    );
    assert_eq!(
        app.put_json("/api/v1/t/write-only", r#"{"value":987654321}"#)
            .await
            .status,
        200
    );
    let list = app.get("/api/v1/datapoints").await;
    assert_eq!(list.status, 200);
    let list = list.json();
    let points = list["datapoints"].as_array().expect("array");
    assert_eq!(points.len(), 7);
    assert_eq!(points[2]["key"], "T.Float");
    assert_eq!(points[2]["type"], "float");
    assert_eq!(points[2]["unit"], "°C");
    assert_eq!(points[2]["current"]["value"], 21.5);
    assert_eq!(points[4]["min"], 0.0);
    assert_eq!(points[3]["maxLength"], 8);
    let write_only = &points[6];
    assert_eq!(write_only["access"], "write");
    assert!(write_only.get("current").is_none(), "{write_only}");
    assert!(
        !list.to_string().contains("987654321"),
        "the write-only value leaked: {list}"
    );

    let one = app.get("/api/v1/datapoints/T.Float").await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["current"]["value"], 21.5);
    app.get("/api/v1/datapoints/No.Such")
        .await
        .assert_problem(404, "unknown_datapoint");
}

#[tokio::test]
async fn http2_is_negotiated_over_tls() {
    let app = TestApp::spawn().await;
    let reply = app.get("/api/v1/t/int").await;
    assert_eq!(reply.version, reqwest::Version::HTTP_2);
    let http1 = reqwest::Client::builder()
        .tls_certs_only([
            reqwest::Certificate::from_pem(app.cert_pem.as_deref().expect("tls")).expect("pem"),
        ])
        .http1_only()
        .build()
        .expect("client");
    let response = http1
        .get(app.at("/api/v1/t/int"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn concurrent_writes_are_all_acknowledged_and_ordered_by_update_time() {
    let app = TestApp::spawn().await;
    let writes = (0..200).map(|n| {
        let app = &app;
        async move {
            app.put_json("/api/v1/t/int", &format!(r#"{{"value":{n}}}"#))
                .await
        }
    });
    let replies = futures_util::future::join_all(writes).await;
    let mut acknowledged: Vec<(String, i64)> = replies
        .iter()
        .map(|reply| {
            assert_eq!(reply.status, 200, "{}", reply.text);
            let json = reply.json();
            (
                json["updateTime"].as_str().expect("time").to_owned(),
                json["value"].as_i64().expect("int"),
            )
        })
        .collect();
    acknowledged.sort();
    acknowledged.dedup_by(|a, b| a.0 == b.0);
    assert_eq!(
        acknowledged.len(),
        200,
        "every write has its own update time"
    );
    let last = app.get("/api/v1/t/int").await.json();
    let newest = acknowledged.last().expect("writes");
    assert_eq!(last["updateTime"], newest.0.as_str());
    assert_eq!(last["value"], newest.1);
    let metrics = app.get("/metrics").await.text;
    assert!(
        metrics.contains("portico_datapoint_writes_total{datapoint=\"T.Int\"} 200"),
        "{metrics}"
    );
}

/// A small deterministic generator (xorshift), so a failure reproduces.
#[tokio::test]
async fn hostile_bodies_never_get_a_5xx() {
    let app = TestApp::spawn().await;
    let mut noise = crate::helpers::Noise(0x5eed_1234_abcd_0042);
    let pieces = [
        "{",
        "}",
        "[",
        "]",
        "\"value\"",
        ":",
        ",",
        "1",
        "-0",
        "1e999",
        "1.5",
        "true",
        "null",
        "\"Xentara\"",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "9223372036854775808",
        " ",
        "\n",
        "\u{feff}",
        "\"value\":",
        "{\"value\":",
        "ä",
        "\\",
        "\"",
        "NaN",
        "Infinity",
        "0x10",
        "+1",
        ".5",
    ];
    let paths = [
        "/api/v1/t/bool",
        "/api/v1/t/int",
        "/api/v1/t/float",
        "/api/v1/t/string",
        "/api/v1/t/bounded",
    ];
    let content_types = [
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        Some("text/plain"),
        None,
    ];
    for _ in 0..400 {
        let body: String = (0..noise.next() % 12)
            .map(|_| noise.pick(&pieces))
            .collect();
        let path = noise.pick(&paths);
        let content_type = content_types[(noise.next() % 4) as usize];
        let method = if noise.next().is_multiple_of(2) {
            Method::PUT
        } else {
            Method::POST
        };
        let reply = app.send(method, path, content_type, body.clone()).await;
        assert!(
            reply.status.as_u16() < 500,
            "{path} {content_type:?} {body:?} got {}: {}",
            reply.status,
            reply.text
        );
        if !reply.status.is_success() {
            reply.assert_problem(
                reply.status.as_u16(),
                reply.json()["code"].as_str().unwrap_or(""),
            );
        }
    }
}
