//! Reading values beyond a page: downsampling against hand-computed buckets, CSV, several
//! streams in one read, and every datapoint's history as a stream of its own.

use reqwest::Method;
use serde_json::{Value as Json, json};

use crate::helpers::{PROTECTED, Reply, TestApp};

/// The `n`th second of 2026.
fn ts(n: u32) -> String {
    format!(
        "2026-01-01T{:02}:{:02}:{:02}.000000Z",
        n / 3600,
        n / 60 % 60,
        n % 60
    )
}

async fn create(app: &TestApp, token: &str, spec: Json) -> String {
    let reply = app
        .call(Method::POST, "/api/v1/streams", token, Some(spec))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json()["id"].as_str().expect("id").to_owned()
}

/// Writes `(second, value)` pairs to a stream natively.
async fn put(app: &TestApp, token: &str, id: &str, values: &[(u32, Json)]) {
    let body: Vec<Json> = values
        .iter()
        .map(|(n, v)| json!({"timestamp": ts(*n), "value": v}))
        .collect();
    let reply = app
        .call(
            Method::POST,
            &format!("/api/v1/streams/{id}/values"),
            token,
            Some(Json::Array(body)),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

async fn get(app: &TestApp, token: &str, path: &str) -> Json {
    let reply = app.call(Method::GET, path, token, None).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    reply.json()
}

async fn csv(app: &TestApp, token: &str, path: &str) -> Reply {
    let reply = Reply::from(
        app.client
            .get(app.at(path))
            .bearer_auth(token)
            .header("accept", "text/csv")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    assert_eq!(
        reply.header("content-type"),
        "text/csv; charset=utf-8; header=present"
    );
    reply
}

#[tokio::test]
async fn downsampling_gives_the_hand_computed_buckets() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let id = create(&app, &token, json!({"name": "d", "encoding": "DOUBLE"})).await;
    // Minute 0: 1, 4, -2. Minute 1: 10, 20. Minute 2: nothing. Minute 3: 0.5.
    put(
        &app,
        &token,
        &id,
        &[
            (0, json!(1.0)),
            (10, json!(4.0)),
            (20, json!(-2.0)),
            (60, json!(10.0)),
            (119, json!(20.0)),
            (200, json!(0.5)),
        ],
    )
    .await;
    let base = format!("/api/v1/streams/{id}/values");
    let minutes = get(&app, &token, &format!("{base}?interval=1m")).await;
    assert_eq!(
        minutes,
        json!({"buckets": [
            {"start": ts(0), "count": 3, "min": -2.0, "max": 4.0, "avg": 1.0, "sum": 3.0,
             "first": 1.0, "last": -2.0},
            {"start": ts(60), "count": 2, "min": 10.0, "max": 20.0, "avg": 15.0, "sum": 30.0,
             "first": 10.0, "last": 20.0},
            {"start": ts(180), "count": 1, "min": 0.5, "max": 0.5, "avg": 0.5, "sum": 0.5,
             "first": 0.5, "last": 0.5},
        ]})
    );
    // Two-minute buckets: 1 + 4 - 2 + 10 + 20 = 33 over 5 values.
    let two = get(
        &app,
        &token,
        &format!("{base}?interval=2m&agg=count,avg,max"),
    )
    .await;
    assert_eq!(
        two,
        json!({"buckets": [
            {"start": ts(0), "count": 5, "max": 20.0, "avg": 6.6},
            {"start": ts(120), "count": 1, "max": 0.5, "avg": 0.5},
        ]})
    );
    // A range clips the buckets at its ends; they stay aligned to the interval.
    let clipped = get(
        &app,
        &token,
        &format!(
            "{base}?interval=1m&agg=count,first&from={}&to={}",
            ts(10),
            ts(119)
        ),
    )
    .await;
    assert_eq!(
        clipped,
        json!({"buckets": [
            {"start": ts(0), "count": 2, "first": 4.0},
            {"start": ts(60), "count": 1, "first": 10.0},
        ]})
    );
    // Pages of buckets: the cursor is the next bucket's start, passed as `from`.
    let first = get(
        &app,
        &token,
        &format!("{base}?interval=1m&agg=count&limit=2"),
    )
    .await;
    assert_eq!(first["buckets"].as_array().unwrap().len(), 2);
    assert_eq!(first["next"], ts(180));
    let rest = get(
        &app,
        &token,
        &format!("{base}?interval=1m&agg=count&limit=2&from={}", ts(180)),
    )
    .await;
    assert_eq!(rest, json!({"buckets": [{"start": ts(180), "count": 1}]}));
    // The same buckets as CSV.
    let text = csv(&app, &token, &format!("{base}?interval=1m&agg=count,avg")).await;
    assert_eq!(
        text.text,
        format!(
            "start,count,avg\r\n{},3,1.0\r\n{},2,15.0\r\n{},1,0.5\r\n",
            ts(0),
            ts(60),
            ts(180)
        )
    );

    // Refusals say why.
    for query in [
        "interval=1w",
        "interval=0s",
        "agg=min",
        "interval=1m&agg=median",
        "interval=1m&order=desc",
    ] {
        app.call(Method::GET, &format!("{base}?{query}"), &token, None)
            .await
            .assert_problem(422, "invalid_value");
    }
    let text_stream = create(
        &app,
        &token,
        json!({"name": "t", "encoding": "STRING_UTF8"}),
    )
    .await;
    put(
        &app,
        &token,
        &text_stream,
        &[(0, json!("a")), (1, json!("b"))],
    )
    .await;
    let path = format!("/api/v1/streams/{text_stream}/values?interval=1h");
    let problem = app
        .call(Method::GET, &format!("{path}&agg=avg"), &token, None)
        .await
        .assert_problem(422, "invalid_value");
    assert!(
        problem["detail"].as_str().unwrap().contains("numeric"),
        "{problem}"
    );
    assert_eq!(
        get(&app, &token, &path).await,
        json!({"buckets": [{"start": ts(0), "count": 2, "first": "a", "last": "b"}]})
    );
    // Several streams of mixed encodings share the aggregates that suit them all: one CSV
    // header fits every line.
    let table = csv(
        &app,
        &token,
        &format!("/api/v1/values?streams={id},{text_stream}&interval=1h"),
    )
    .await;
    assert_eq!(
        table.text,
        format!(
            "streamId,start,count,first,last\r\n{id},{t},6,1.0,0.5\r\n{text_stream},{t},2,a,b\r\n",
            t = ts(0)
        )
    );
}

#[tokio::test]
async fn values_read_as_csv_and_several_streams_in_one_read() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let numbers = create(&app, &token, json!({"name": "n", "encoding": "INT32"})).await;
    let words = create(
        &app,
        &token,
        json!({"name": "w", "encoding": "STRING_UTF8"}),
    )
    .await;
    put(
        &app,
        &token,
        &numbers,
        &[(1, json!(7)), (2, json!(-8)), (3, json!(9))],
    )
    .await;
    put(
        &app,
        &token,
        &words,
        &[(1, json!("plain")), (2, json!("a, \"quoted\" word"))],
    )
    .await;

    // CSV of one stream, with the next page's address in `Link`.
    let page = csv(
        &app,
        &token,
        &format!("/api/v1/streams/{words}/values?limit=1"),
    )
    .await;
    let lines: Vec<&str> = page.text.split("\r\n").collect();
    assert_eq!(lines[0], "timestamp,storedAt,value");
    assert!(
        lines[1].starts_with(&format!("{},", ts(1))),
        "{}",
        page.text
    );
    assert!(lines[1].ends_with(",plain"), "{}", page.text);
    assert_eq!(lines.len(), 3, "one value and the final line break");
    let link = page.header("link");
    let next = link
        .strip_prefix('<')
        .and_then(|l| l.strip_suffix(">; rel=\"next\""))
        .unwrap_or_else(|| panic!("Link: {link}"));
    let second = csv(&app, &token, next).await;
    assert!(
        second.text.ends_with(",\"a, \"\"quoted\"\" word\"\r\n"),
        "RFC 4180 quoting: {}",
        second.text
    );

    // Several streams: each its page and cursor, in the order asked.
    let both = get(
        &app,
        &token,
        &format!("/api/v1/values?streams={words},{numbers}&limit=2"),
    )
    .await;
    let streams = both["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2);
    assert_eq!(streams[0]["streamId"], words);
    assert_eq!(streams[1]["streamId"], numbers);
    assert_eq!(
        streams[1]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["value"].clone())
            .collect::<Vec<_>>(),
        [json!(7), json!(-8)]
    );
    assert_eq!(streams[1]["next"], ts(2));
    assert_eq!(streams[0]["next"], ts(2), "a full page may have more");
    let buckets = get(
        &app,
        &token,
        &format!(
            "/api/v1/values?streams={numbers}&interval=1h&agg=count,sum&from={}",
            ts(2)
        ),
    )
    .await;
    assert_eq!(
        buckets,
        json!({"streams": [{"streamId": numbers, "buckets": [
            {"start": ts(0), "count": 2, "sum": 1.0}
        ]}]})
    );
    let table = csv(
        &app,
        &token,
        &format!("/api/v1/values?streams={numbers},{words}&to={}", ts(2)),
    )
    .await;
    let lines: Vec<&str> = table.text.lines().collect();
    assert_eq!(lines[0], "streamId,timestamp,storedAt,value");
    assert!(lines[1].starts_with(&format!("{numbers},{},", ts(1))));
    assert!(lines[1].ends_with(",7"));
    assert!(lines[2].starts_with(&format!("{words},{},", ts(1))));
    assert_eq!(lines.len(), 3);

    // Refusals.
    let unknown = "6e89214f-65a1-429c-8569-c0d14126b3da";
    app.call(
        Method::GET,
        &format!("/api/v1/values?streams={numbers},{unknown}"),
        &token,
        None,
    )
    .await
    .assert_problem(404, "not_found");
    for query in [
        format!("streams={numbers},{numbers}"),
        "streams=".to_owned(),
        "from=2026-01-01T00:00:00Z".to_owned(),
        format!("streams={numbers},{words}&limit=6000"),
        format!("streams={}", vec![numbers.as_str(); 101].join(",")),
    ] {
        app.call(
            Method::GET,
            &format!("/api/v1/values?{query}"),
            &token,
            None,
        )
        .await
        .assert_problem(422, "invalid_value");
    }
    // A stream the reader may not read refuses the whole read.
    let secret = create(
        &app,
        &token,
        json!({"name": "s", "encoding": "INT32", "read": ["plant:secret"]}),
    )
    .await;
    let reader = app.token("node", "reader", &[]).await;
    let refused = app
        .call(
            Method::GET,
            &format!("/api/v1/values?streams={numbers},{secret}"),
            &reader,
            None,
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
}

#[tokio::test]
async fn every_datapoint_write_is_a_value_of_its_stream() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let mut times = Vec::new();
    for value in ["1.5", "2.5", "3.5"] {
        let reply = app
            .put_json("/api/v1/t/float", &format!(r#"{{"value":{value}}}"#))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        times.push(reply.json()["updateTime"].as_str().unwrap().to_owned());
    }
    let point = get(&app, &token, "/api/v1/datapoints/T.Float").await;
    let stream = point["stream"].as_str().expect("stream").to_owned();
    let history = get(&app, &token, "/api/v1/datapoints/T.Float/history").await;
    let values = history["values"].as_array().unwrap();
    assert_eq!(
        values
            .iter()
            .map(|v| v["value"].clone())
            .collect::<Vec<_>>(),
        [json!(1.5), json!(2.5), json!(3.5)]
    );
    // The value's timestamp is the write's update time, to the microsecond.
    let micros = |t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .map(|t| t.unix_timestamp_nanos() / 1000)
            .unwrap_or_else(|e| panic!("{t}: {e}"))
    };
    for (value, written) in values.iter().zip(&times) {
        assert_eq!(
            micros(value["timestamp"].as_str().unwrap()),
            micros(written)
        );
    }
    let summary = get(
        &app,
        &token,
        "/api/v1/datapoints/T.Float/history?interval=1d&agg=count,min,max,avg",
    )
    .await;
    let bucket = &summary["buckets"][0];
    assert_eq!(
        (
            &bucket["count"],
            &bucket["min"],
            &bucket["max"],
            &bucket["avg"]
        ),
        (&json!(3), &json!(1.5), &json!(3.5), &json!(2.5))
    );
    let desc = get(
        &app,
        &token,
        "/api/v1/datapoints/T.Float/history?order=desc&limit=1",
    )
    .await;
    assert_eq!(desc["values"][0]["value"], json!(3.5));

    // The same values as a stream, which takes no writes but the datapoint's.
    let as_stream = get(&app, &token, &format!("/api/v1/streams/{stream}/values")).await;
    assert_eq!(as_stream["values"], history["values"]);
    let described = get(&app, &token, &format!("/api/v1/streams/{stream}")).await;
    assert_eq!(
        (
            &described["encoding"],
            &described["datapoint"],
            &described["unit"]
        ),
        (&json!("DOUBLE"), &json!("T.Float"), &json!("°C"))
    );
    let write = app
        .call(
            Method::POST,
            &format!("/api/v1/streams/{stream}/values"),
            &token,
            Some(json!([{"timestamp": ts(1), "value": 9.0}])),
        )
        .await;
    write.assert_problem(409, "conflict");
    app.call(
        Method::PUT,
        &format!("/api/v1/streams/{stream}"),
        &token,
        Some(json!({"name": "mine", "encoding": "DOUBLE"})),
    )
    .await
    .assert_problem(409, "conflict");
    app.call(
        Method::DELETE,
        &format!("/api/v1/streams/{stream}"),
        &token,
        None,
    )
    .await
    .assert_problem(409, "conflict");
    app.call(
        Method::POST,
        "/api/v1/streams",
        &token,
        Some(json!({"name": "x", "encoding": "DOUBLE", "datapoint": "T.Float"})),
    )
    .await
    .assert_problem(422, "invalid_value");

    // Every type in its encoding; a write-only datapoint keeps no readable history.
    assert_eq!(
        app.put_json("/api/v1/t/string", r#"{"value":"ok, yes"}"#)
            .await
            .status,
        200
    );
    assert_eq!(
        app.put_json("/api/v1/t/bool", r#"{"value":true}"#)
            .await
            .status,
        200
    );
    assert_eq!(
        app.put_json("/api/v1/t/int", r#"{"value":-9223372036854775808}"#)
            .await
            .status,
        200
    );
    for (key, value) in [
        ("T.String", json!("ok, yes")),
        ("T.Bool", json!(true)),
        ("T.Int", json!(i64::MIN)),
    ] {
        let read = get(&app, &token, &format!("/api/v1/datapoints/{key}/history")).await;
        assert_eq!(read["values"][0]["value"], value, "{key}");
    }
    assert_eq!(
        app.put_json("/api/v1/t/write-only", r#"{"value":5}"#)
            .await
            .status,
        200
    );
    let hidden = get(&app, &token, "/api/v1/datapoints/T.WriteOnly").await;
    assert!(hidden.get("stream").is_none(), "{hidden}");
    app.call(
        Method::GET,
        "/api/v1/datapoints/T.WriteOnly/history",
        &token,
        None,
    )
    .await
    .assert_problem(405, "method_not_allowed");

    // A restart keeps the history and its stream; later writes follow.
    let (dir, database) = app.stop().await;
    let app = TestApp::spawn_in(dir, database, crate::helpers::DATAPOINTS).await;
    let token = app.admin_token().await;
    assert_eq!(
        app.put_json("/api/v1/t/float", r#"{"value":4.5}"#)
            .await
            .status,
        200
    );
    let point = get(&app, &token, "/api/v1/datapoints/T.Float").await;
    assert_eq!(point["stream"], stream);
    let history = get(&app, &token, "/api/v1/datapoints/T.Float/history").await;
    assert_eq!(
        history["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["value"].clone())
            .collect::<Vec<_>>(),
        [json!(1.5), json!(2.5), json!(3.5), json!(4.5)]
    );
}

#[tokio::test]
async fn a_datapoint_history_is_proven_like_any_stream() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    // 256 writes fill a tree of a history stream (depth 8).
    for n in 0..256 {
        let reply = app
            .put_json("/api/v1/t/int", &format!(r#"{{"value":{n}}}"#))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let history = get(&app, &token, "/api/v1/datapoints/T.Int/history?limit=256").await;
    let last = history["values"][255]["timestamp"]
        .as_str()
        .unwrap()
        .to_owned();
    let stream = get(&app, &token, "/api/v1/datapoints/T.Int").await["stream"]
        .as_str()
        .unwrap()
        .to_owned();
    // The prover closes the tree and a checkpoint covers it in the background: wait for the
    // verdict to settle, bounded.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let check = app
            .call(
                Method::POST,
                "/demeter/api/validate",
                &token,
                Some(json!({"streamId": stream, "timestamp": last})),
            )
            .await;
        assert_eq!(check.status, 200, "{}", check.text);
        match check.json()["resultCode"].as_str() {
            Some("Success") => break,
            Some("State_ProofPending") => {}
            other => panic!("{other:?}: {}", check.text),
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", check.text);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let proof = get(
        &app,
        &token,
        &format!("/api/v1/streams/{stream}/values/{last}/proof"),
    )
    .await;
    assert_eq!(proof["treeSize"], 256);
    assert_eq!(proof["leafIndex"], 255);
    assert_eq!(proof["proof"]["proofKind"], "SHA256_ECDSAP256_IEEEP1363");
    assert!(proof["checkpoint"].is_object(), "{proof}");
}

#[tokio::test]
async fn a_datapoint_history_is_read_under_the_datapoint_policy() {
    let app = TestApp::spawn_with(PROTECTED).await;
    let stream = {
        let token = app.token("node", "plant", &["plant:read"]).await;
        assert_eq!(
            app.put_json("/api/v1/boiler/temperature", r#"{"value":20.5}"#)
                .await
                .status,
            200
        );
        let history = get(&app, &token, "/api/v1/datapoints/temperature/history").await;
        assert_eq!(history["values"][0]["value"], json!(20.5));
        get(&app, &token, "/api/v1/datapoints/temperature").await["stream"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let anonymous = app.get("/api/v1/datapoints/temperature/history").await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
    let anonymous = app.get(&format!("/api/v1/streams/{stream}/values")).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
    let other = app.token("node", "other", &["other:read"]).await;
    let refused = app
        .call(
            Method::GET,
            &format!("/api/v1/streams/{stream}/values?interval=1h"),
            &other,
            None,
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
}

#[tokio::test]
async fn a_history_stream_is_only_ever_its_datapoint_s() {
    use portico::series::{Encoding, Series, StreamId, StreamSpec, ValueSettings};
    use std::sync::Arc;
    let (_dir, _database, store) = crate::helpers::fresh_store().await;
    let series = Series::open(
        store.clone(),
        portico::events::Journal::new(store.clone(), portico::events::EventBus::default()),
        Arc::new(portico::clock::SystemClock),
        Arc::new(portico::secrets::Sealer::new(&[3; 32])),
        ValueSettings::default(),
    )
    .await
    .expect("series");
    let history = |key: &str| StreamSpec {
        datapoint: Some(key.to_owned()),
        ..StreamSpec::new(key, Encoding::Double)
    };
    let open = portico::access::Policy::Open;
    let anyone = portico::access::Actor::Anonymous;

    // A stream made beforehand with the id a datapoint's history will have is not taken over.
    let squatted = StreamId::derived("datapoint/DOUBLE", "P.Later");
    series
        .create(Some(squatted), StreamSpec::new("mine", Encoding::Double))
        .await
        .expect("stream");
    let refused = series
        .adopt(history("P.Later"), Some(open.clone()))
        .await
        .expect_err("not its history");
    assert!(refused.contains("is not it"), "{refused}");

    // A datapoint that becomes write-only withholds the history it kept.
    let kept = series
        .adopt(history("P.Once"), Some(open.clone()))
        .await
        .expect("adopted")
        .expect("a stream");
    assert_eq!(kept.id, StreamId::derived("datapoint/DOUBLE", "P.Once"));
    assert!(series.stream(&anyone, &kept.id.to_string()).is_ok());
    let withheld = series
        .adopt(history("P.Once"), None)
        .await
        .expect("withheld");
    assert!(withheld.is_none());
    assert!(series.stream(&anyone, &kept.id.to_string()).is_err());
    assert!(
        series.streams(&anyone).iter().all(|s| s.id != kept.id),
        "not listed"
    );
}
