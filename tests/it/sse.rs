//! Live changes as Server-Sent Events.

use std::time::Duration;

use crate::helpers::{EventReader, TestApp};

#[tokio::test]
async fn a_subscriber_gets_the_current_value_then_each_write_of_its_datapoint() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.put_json("/api/v1/t/float", r#"{"value":1.5}"#)
            .await
            .status,
        200
    );
    let mut events = EventReader::open(&app, "T.Float", None).await;
    let first = events.next().await.expect("current value");
    assert_eq!(first.event, "datapoint.written");
    assert_eq!(first.data["key"], "T.Float");
    assert_eq!(first.data["value"], 1.5);
    assert_eq!(first.data["quality"], "good");

    assert_eq!(
        app.put_json("/api/v1/t/float", r#"{"value":2.5}"#)
            .await
            .status,
        200
    );
    assert_eq!(
        app.put_json("/api/v1/t/int", r#"{"value":7}"#).await.status,
        200
    );
    assert_eq!(
        app.put_json("/api/v1/t/float", r#"{"value":3.5}"#)
            .await
            .status,
        200
    );
    let second = events.next().await.expect("event");
    let third = events.next().await.expect("event");
    assert_eq!(second.data["value"], 2.5);
    assert_eq!(
        third.data["value"], 3.5,
        "other datapoints' writes are not sent"
    );
    let ids: Vec<u64> = [&first, &second, &third]
        .iter()
        .map(|e| e.id.parse().expect("numeric id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    // A client resuming with Last-Event-ID gets no repeat of what it has.
    let mut resumed = EventReader::open(&app, "T.Float", Some(&third.id)).await;
    assert_eq!(
        app.put_json("/api/v1/t/float", r#"{"value":4.5}"#)
            .await
            .status,
        200
    );
    assert_eq!(resumed.next().await.expect("event").data["value"], 4.5);
}

#[tokio::test]
async fn a_never_written_datapoint_stream_starts_with_its_first_write() {
    let app = TestApp::spawn().await;
    let mut events = EventReader::open(&app, "T.Bool", None).await;
    assert_eq!(
        app.put_json("/api/v1/t/bool", r#"{"value":true}"#)
            .await
            .status,
        200
    );
    assert_eq!(events.next().await.expect("event").data["value"], true);
}

#[tokio::test]
async fn write_only_and_unknown_datapoints_cannot_be_followed() {
    let app = TestApp::spawn().await;
    app.get("/api/v1/datapoints/T.WriteOnly/events")
        .await
        .assert_problem(405, "method_not_allowed");
    app.get("/api/v1/datapoints/Nope/events")
        .await
        .assert_problem(404, "unknown_datapoint");
}

#[tokio::test]
async fn streams_end_when_the_server_shuts_down() {
    let mut app = TestApp::spawn().await;
    let mut events = EventReader::open(&app, "T.Int", None).await;
    app.begin_shutdown();
    assert!(events.next().await.is_none(), "the stream ends");
    tokio::time::timeout(Duration::from_secs(10), app.stopped())
        .await
        .expect("server stops");
}

#[tokio::test]
async fn a_burst_of_writes_arrives_as_one_event_each_in_order() {
    let app = TestApp::spawn().await;
    let mut events = EventReader::open(&app, "T.Int", None).await;
    // Concurrent writes land in shared commit batches, several between two polls of the stream.
    let writes = (0..50).map(|n| {
        let app = &app;
        async move {
            app.put_json("/api/v1/t/int", &format!(r#"{{"value":{n}}}"#))
                .await
        }
    });
    for reply in futures_util::future::join_all(writes).await {
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let mut ids = Vec::new();
    let mut values = Vec::new();
    for _ in 0..50 {
        let event = events.next().await.expect("one event per write");
        ids.push(event.id.parse::<u64>().expect("id"));
        values.push(event.data["value"].as_i64().expect("int"));
    }
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive ids: {ids:?}"
    );
    values.sort_unstable();
    assert_eq!(values, (0..50).collect::<Vec<i64>>());
}
