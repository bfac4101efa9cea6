//! Signed webhooks against a real HTTP receiver: the seed's headers and signature, the retry
//! schedule on an injected clock, QoS 1 discards and QoS 2 dead letters, replay, redelivery,
//! auto-disabling, `Retry-After`, no redirects, forgery protection, secret rotation, and
//! delivery after `kill -9`.

#![allow(clippy::unwrap_used)] // a test's helpers fail the test by panicking

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::hmac;
use axum::body::Bytes;
use axum::http::HeaderMap;
use portico::clock::{Clock, ManualClock, SystemClock};
use reqwest::Method;
use serde_json::{Value as Json, json};

use crate::helpers::receiver::{Answer, Receiver};
use crate::helpers::{DATAPOINTS, TestApp};

const ALLOW_LOOPBACK: &str = r#"
[webhooks]
allow_targets = ["127.0.0.0/8"]
poll_ms = 20
min_retry_interval_seconds = 1
"#;

fn config(extra: &str) -> String {
    format!("{DATAPOINTS}\n{ALLOW_LOOPBACK}{extra}")
}

async fn write_int(app: &TestApp, value: i64) {
    let reply = app
        .put_json("/api/v1/t/int", &format!(r#"{{"value":{value}}}"#))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

/// Waits (polling the API, at most 10 s) until the newest delivery has `attempts` recorded.
async fn recorded(app: &TestApp, token: &str, id: &str, attempts: i64) -> Json {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let all = app.deliveries(token, id).await;
        if let Some(newest) = all.first()
            && newest["attempts"] == attempts
            && (newest["state"] != "pending" || newest["next_attempt"].is_string())
        {
            return newest.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "attempt {attempts} was not recorded: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A server on a manual clock with one subscription to a new receiver.
struct Clocked {
    app: TestApp,
    clock: Arc<ManualClock>,
    token: String,
    receiver: Receiver,
    id: String,
    secret: String,
}

async fn clocked(extra: &str, topic: &str) -> Clocked {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app = TestApp::spawn_clocked(&config(extra), clock.clone()).await;
    let token = app.admin_token().await;
    let receiver = Receiver::start().await;
    let (id, secret) = app
        .subscribe(&token, json!({"url": receiver.url, "topics": [topic]}))
        .await;
    Clocked {
        app,
        clock,
        token,
        receiver,
        id,
        secret,
    }
}

/// The seed's `HashHMAC`, written here from the seed's C# text.
fn hash_hmac(secret: &str, payload: &[u8], timestamp: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut message = payload.to_vec();
    message.extend_from_slice(timestamp.as_bytes());
    hmac::sign(&key, &message)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

fn parse_rfc3339(text: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339")
}

fn assert_dotnet_timestamp(text: &str) {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    assert!(
        text.len() == 26
            && digits(0..2)
            && b[2] == b'/'
            && digits(3..5)
            && b[5] == b'/'
            && digits(6..10)
            && &text[10..11] == " "
            && digits(11..13)
            && &text[19..] == " +00:00",
        "`{text}` is not MM/dd/yyyy HH:mm:ss +00:00"
    );
}

#[tokio::test]
async fn deliveries_carry_the_seeds_headers_and_signature() {
    let app = TestApp::spawn_with(&config("")).await;
    let token = app.manager_token().await;
    let mut receiver = Receiver::start().await;
    let (id, secret) = app
        .subscribe(
            &token,
            json!({"url": receiver.url, "topics": ["datapoint.written"],
               "options": {"standard_webhooks": true}}),
        )
        .await;
    assert!(
        secret.starts_with("whsec_") && secret.len() == 50,
        "{secret}"
    );

    let reply = app
        .put_json("/api/v1/t/string", r#"{"value":"Grüße"}"#)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let got = receiver.next().await;

    assert_eq!(got.header("content-type"), "application/json");
    assert_eq!(got.header("x-tributech-event"), "DatapointWrittenEvent");
    let event_id = got.header("x-tributech-eventid").to_owned();
    assert_eq!(event_id.len(), 36);
    assert_eq!(event_id.matches('-').count(), 4);
    assert_eq!(got.header("x-tributech-correlationid").len(), 36);
    let signed_at = got.header("x-tributech-signaturetimestamp");
    assert_dotnet_timestamp(signed_at);
    assert_dotnet_timestamp(got.header("x-tributech-timestamp"));
    // ASCII on the wire, non-ASCII escaped, and signed as sent.
    assert!(got.body.is_ascii());
    let text = std::str::from_utf8(&got.body).unwrap();
    assert!(text.contains(r#""Value":"Gr\u00fc\u00dfe""#), "{text}");
    assert_eq!(
        got.header("x-tributech-signature"),
        format!("sha256={}", hash_hmac(&secret, &got.body, signed_at))
    );
    assert_eq!(
        got.json(),
        json!({"Datapoint": "T.String", "Value": "Grüße",
               "Timestamp": reply.json()["updateTime"], "Sequence": got.json()["Sequence"],
               "EventQoS": 2})
    );
    // Standard Webhooks: id.timestamp.body under the base64-decoded secret.
    assert_eq!(got.header("webhook-id"), event_id);
    let key = base64_decode(&secret["whsec_".len()..]);
    let signed = format!("{}.{}.{}", event_id, got.header("webhook-timestamp"), text);
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), signed.as_bytes());
    assert_eq!(
        got.header("webhook-signature"),
        format!("v1,{}", base64_encode(tag.as_ref()))
    );

    // The secret is never shown again.
    let read = app
        .call(
            Method::GET,
            &format!("/api/v1/webhooks/subscriptions/{id}"),
            &token,
            None,
        )
        .await;
    assert!(!read.text.contains(&secret[6..]), "{}", read.text);
    let list = app
        .call(Method::GET, "/api/v1/webhooks/subscriptions", &token, None)
        .await;
    assert!(!list.text.contains(&secret[6..]), "{}", list.text);
    let delivered = recorded(&app, &token, &id, 1).await;
    assert_eq!(delivered["state"], "delivered");
    assert_eq!(delivered["event_id"], event_id.as_str());
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn the_api_lists_topics_and_manages_subscriptions() {
    let app = TestApp::spawn_with(&config("")).await;
    let token = app.manager_token().await;
    let topics = app
        .call(Method::GET, "/api/v1/webhooks/topics", &token, None)
        .await;
    assert_eq!(topics.status, 200);
    let topics = topics.json();
    let names: Vec<(&str, &str, u64)> = topics
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap(),
                t["event"].as_str().unwrap(),
                t["qos"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("datapoint.written", "DatapointWrittenEvent", 2),
            ("portal.item.set", "PortalItemSetEvent", 1),
            (
                "webhook.subscription.disabled",
                "SubscriptionDisabledEvent",
                2
            ),
            ("endpoint.called", "EndpointCalledEvent", 2),
            ("value.received", "ValueReceivedEvent", 1),
            ("value.stored", "ValueStoredEvent", 1),
            ("proof.stored", "ProofStoredEvent", 2),
            ("proof.received", "ProofReceivedEvent", 2),
            ("proof.validated", "ProofValidatedEvent", 2),
            ("proof.confirmed", "ProofConfirmedEvent", 2),
            ("stream.deleted", "StreamDeletedEvent", 2),
        ]
    );

    // An id that cannot be one names no subscription.
    app.call(
        Method::GET,
        "/api/v1/webhooks/subscriptions/not-a-uuid",
        &token,
        None,
    )
    .await
    .assert_problem(404, "not_found");

    // Who may call it.
    let anonymous = app.get("/api/v1/webhooks/subscriptions").await;
    assert_eq!(anonymous.status, 401);
    let reader = app.token("node", "reader", &["plant:read"]).await;
    app.call(Method::GET, "/api/v1/webhooks/topics", &reader, None)
        .await
        .assert_problem(403, "forbidden");

    // Create, read, replace, delete.
    let (id, _) = app
        .subscribe(
            &token,
            json!({"url": "http://127.0.0.1:9/a", "topics": ["*"], "description": "all"}),
        )
        .await;
    let path = format!("/api/v1/webhooks/subscriptions/{id}");
    let changes = json!({"url": "http://127.0.0.1:9/b",
                         "topics": ["portal.item.set", "datapoint.written"],
                         "enabled": false, "options": {"accept_any_2xx": true}});
    // Portal items are for admins alone: a webhooks-only manager may not name them.
    app.call(Method::PUT, &path, &token, Some(changes.clone()))
        .await
        .assert_problem(403, "forbidden");
    let admin = app.admin_token().await;
    let replaced = app.call(Method::PUT, &path, &admin, Some(changes)).await;
    assert_eq!(replaced.status, 200, "{}", replaced.text);
    let replaced = replaced.json();
    assert_eq!(replaced["url"], "http://127.0.0.1:9/b");
    assert_eq!(
        replaced["topics"],
        json!(["datapoint.written", "portal.item.set"])
    );
    assert_eq!(replaced["enabled"], false);
    assert_eq!(
        replaced["options"],
        json!({"accept_any_2xx": true, "standard_webhooks": false})
    );
    let list = app
        .call(Method::GET, "/api/v1/webhooks/subscriptions", &token, None)
        .await;
    assert_eq!(list.json().as_array().unwrap().len(), 1);
    let deleted = app.call(Method::DELETE, &path, &token, None).await;
    assert_eq!(deleted.status, 204);
    app.call(Method::GET, &path, &token, None)
        .await
        .assert_problem(404, "not_found");

    // Bad input: 4xx with a stable code, nothing created.
    for (body, code) in [
        (
            json!({"url": "http://127.0.0.1:9/", "topics": ["nope"]}),
            "invalid_value",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "topics": []}),
            "invalid_value",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "topics": ["*", "portal.item.set"]}),
            "invalid_value",
        ),
        (
            json!({"url": "ftp://127.0.0.1/", "topics": ["*"]}),
            "target_forbidden",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "topics": ["*"], "secret": "mine"}),
            "invalid_value",
        ),
    ] {
        app.call(
            Method::POST,
            "/api/v1/webhooks/subscriptions",
            &token,
            Some(body),
        )
        .await
        .assert_problem(422, code);
    }
    let list = app
        .call(Method::GET, "/api/v1/webhooks/subscriptions", &token, None)
        .await;
    assert_eq!(list.json(), json!([]));
}

#[tokio::test]
async fn non_global_targets_are_refused_unless_allowed() {
    let app = TestApp::spawn_with(&format!("{DATAPOINTS}\n[webhooks]\npoll_ms = 20\n")).await;
    let token = app.manager_token().await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://localhost:8080/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://0.0.0.0/hook",
    ] {
        let reply = app
            .call(
                Method::POST,
                "/api/v1/webhooks/subscriptions",
                &token,
                Some(json!({"url": url, "topics": ["*"]})),
            )
            .await;
        let problem = reply.assert_problem(422, "target_forbidden");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("allow_targets"),
            "{url}: {problem}"
        );
    }
}

/// A subscription allowed when it was made is refused at delivery time once the allow-list no
/// longer covers its address: the address connected to is the one checked.
#[tokio::test]
async fn targets_are_checked_again_at_delivery() {
    let app = TestApp::spawn_with(&config("")).await;
    let token = app.manager_token().await;
    let mut receiver = Receiver::start().await;
    let (id, _) = app.subscribe(&token,
        json!({"url": receiver.url.replace("127.0.0.1", "localhost"), "topics": ["datapoint.written"]}),
    )
    .await;
    let (dir, database) = app.stop().await;
    let app = TestApp::spawn_in(
        dir,
        database,
        &format!("{DATAPOINTS}\n[webhooks]\npoll_ms = 20\n"),
    )
    .await;
    let token = app.manager_token().await;
    write_int(&app, 1).await;
    let failed = recorded(&app, &token, &id, 1).await;
    assert_eq!(failed["state"], "pending");
    assert_eq!(failed["last_error"], "forbidden_target");
    assert!(receiver.nothing_pending());
}

#[tokio::test]
async fn retries_follow_the_seeds_backoff_and_redirects_are_not_followed() {
    let Clocked {
        app,
        clock,
        token,
        mut receiver,
        id,
        secret,
    } = clocked("", "datapoint.written").await;
    let mut elsewhere = Receiver::start().await;
    receiver.answer([
        Answer::status(500),
        Answer::status(302).with("location", &elsewhere.url),
        Answer::status(204),
    ]);
    write_int(&app, 7).await;

    let first = receiver.next().await;
    let pending = recorded(&app, &token, &id, 1).await;
    assert_eq!(pending["state"], "pending");
    assert_eq!(pending["last_status"], 500);
    // (attempts + 0.7)^4 s + the minimum retry interval (1 s here), from the attempt's end.
    let expected = clock.now() + Duration::from_secs_f64(1.7f64.powi(4) + 1.0);
    let next = parse_rfc3339(pending["next_attempt"].as_str().unwrap());
    assert!(
        (next - expected).abs() < time::Duration::milliseconds(1),
        "{next} vs {expected}"
    );
    assert!(receiver.nothing_pending());

    clock.advance(time::Duration::seconds_f64(1.7f64.powi(4) + 1.0));
    let second = receiver.next().await;
    assert_eq!(
        second.header("x-tributech-eventid"),
        first.header("x-tributech-eventid")
    );
    assert_ne!(
        second.header("x-tributech-signaturetimestamp"),
        first.header("x-tributech-signaturetimestamp"),
        "each attempt is signed afresh"
    );
    assert_eq!(
        second.header("x-tributech-signature"),
        format!(
            "sha256={}",
            hash_hmac(
                &secret,
                &second.body,
                second.header("x-tributech-signaturetimestamp")
            )
        )
    );
    let pending = recorded(&app, &token, &id, 2).await;
    assert_eq!(pending["last_status"], 302, "a redirect is a failure");
    let next = parse_rfc3339(pending["next_attempt"].as_str().unwrap());
    let expected = clock.now() + Duration::from_secs_f64(2.7f64.powi(4) + 1.0);
    assert!((next - expected).abs() < time::Duration::milliseconds(1));

    clock.advance(time::Duration::seconds_f64(2.7f64.powi(4) + 1.0));
    receiver.next().await;
    let failed = recorded(&app, &token, &id, 3).await;
    assert_eq!(
        failed["state"], "pending",
        "only 200 counts by default: {failed}"
    );
    assert_eq!(failed["last_status"], 204);
    assert!(elsewhere.nothing_pending(), "the redirect was not followed");

    let log = app
        .call(
            Method::GET,
            &format!("/api/v1/webhooks/subscriptions/{id}/attempts"),
            &token,
            None,
        )
        .await
        .json();
    let statuses: Vec<&Json> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status"])
        .collect();
    assert_eq!(statuses, [&json!(204), &json!(302), &json!(500)]);
    assert_eq!(log[2]["response"], "ok");
    assert_eq!(log[2]["error"], "status");
    assert_eq!(log[2]["attempt"], 1);
}

#[tokio::test]
async fn qos2_becomes_a_dead_letter_after_10_retries_and_replays() {
    let Clocked {
        app,
        clock,
        mut token,
        mut receiver,
        id,
        ..
    } = clocked(
        "disable_after_failing_seconds = 31536000\n",
        "datapoint.written",
    )
    .await;
    receiver.otherwise(Answer::status(500));
    let from = clock.now();
    write_int(&app, 1).await;
    for attempt in 1..=11 {
        receiver.next().await;
        let delivery = recorded(&app, &token, &id, attempt).await;
        if attempt <= 10 {
            assert_eq!(delivery["state"], "pending", "after attempt {attempt}");
            clock.advance(time::Duration::seconds_f64(
                (attempt as f64 + 0.7).powi(4) + 1.0,
            ));
            token = app.admin_token().await;
        } else {
            assert_eq!(delivery["state"], "dead", "after attempt {attempt}");
        }
    }
    assert!(receiver.nothing_pending());

    receiver.otherwise(Answer::status(200));
    let replay = app
        .call(
            Method::POST,
            &format!("/api/v1/webhooks/subscriptions/{id}/replay"),
            &token,
            Some(json!({"from": portico::timefmt::rfc3339(from),
                    "to": portico::timefmt::rfc3339(clock.now()), "states": ["dead"]})),
        )
        .await;
    assert_eq!(replay.status, 200, "{}", replay.text);
    assert_eq!(replay.json(), json!({"replayed": 1}));
    receiver.next().await;
    let delivered = recorded(&app, &token, &id, 1).await;
    assert_eq!(delivered["state"], "delivered");

    // A single delivery can be sent again by hand.
    let again = app
        .call(
            Method::POST,
            &format!(
                "/api/v1/webhooks/subscriptions/{id}/deliveries/{}/redeliver",
                delivered["id"]
            ),
            &token,
            None,
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["state"], "pending");
    receiver.next().await;
    recorded(&app, &token, &id, 1).await;
}

#[tokio::test]
async fn qos1_portal_items_are_discarded_after_4_retries_and_counted() {
    let Clocked {
        app,
        clock,
        mut token,
        mut receiver,
        id,
        ..
    } = clocked(
        "disable_after_failing_seconds = 31536000\n",
        "portal.item.set",
    )
    .await;
    receiver.otherwise(Answer::status(503));
    let mut client = crate::helpers::xrtc::logged_in(&app, "hooks@example.com").await;
    let set = client.set("p1", "aGVsbG8=").await;
    assert_eq!(set.status, 200, "{}", set.text);

    let first = receiver.next().await;
    assert_eq!(first.header("x-tributech-event"), "PortalItemSetEvent");
    let body = first.json();
    assert_eq!(body["PortalId"], "p1");
    assert_eq!(body["Payload"], "aGVsbG8=");
    assert_eq!(body["EventQoS"], 1);
    assert!(body["AccountId"].as_str().unwrap().starts_with("AC"));
    for attempt in 1..=5 {
        if attempt > 1 {
            receiver.next().await;
        }
        let delivery = recorded(&app, &token, &id, attempt).await;
        if attempt <= 4 {
            assert_eq!(delivery["state"], "pending");
            clock.advance(time::Duration::seconds_f64(
                (attempt as f64 + 0.7).powi(4) + 1.0,
            ));
            token = app.admin_token().await;
        } else {
            assert_eq!(delivery["state"], "discarded");
        }
    }
    let subscription = app
        .call(
            Method::GET,
            &format!("/api/v1/webhooks/subscriptions/{id}"),
            &token,
            None,
        )
        .await
        .json();
    assert_eq!(subscription["discarded_total"], 1);
    let metrics = app.get("/metrics").await.text;
    assert!(
        metrics.contains("portico_webhook_attempts_total{outcome=\"discarded\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("portico_webhook_attempts_total{outcome=\"failed\"} 4"));
}

#[tokio::test]
async fn retry_after_is_honoured_on_429_and_503() {
    let Clocked {
        app,
        clock,
        token,
        mut receiver,
        id,
        ..
    } = clocked("", "datapoint.written").await;
    receiver.answer([
        Answer::status(429).with("retry-after", "120"),
        Answer::status(503).with("retry-after", "2"),
        Answer::status(500).with("retry-after", "9999"),
    ]);
    write_int(&app, 3).await;
    receiver.next().await;
    let pending = recorded(&app, &token, &id, 1).await;
    let wait = parse_rfc3339(pending["next_attempt"].as_str().unwrap()) - clock.now();
    assert!(
        (wait - time::Duration::seconds(120)).abs() < time::Duration::milliseconds(1),
        "Retry-After beyond the back-off wins: {wait}"
    );

    clock.advance(time::Duration::seconds(120));
    receiver.next().await;
    let pending = recorded(&app, &token, &id, 2).await;
    let wait = parse_rfc3339(pending["next_attempt"].as_str().unwrap()) - clock.now();
    let backoff = time::Duration::seconds_f64(2.7f64.powi(4) + 1.0);
    assert!(
        (wait - backoff).abs() < time::Duration::milliseconds(1),
        "the back-off wins over 2 s"
    );

    clock.advance(backoff);
    receiver.next().await;
    let pending = recorded(&app, &token, &id, 3).await;
    let wait = parse_rfc3339(pending["next_attempt"].as_str().unwrap()) - clock.now();
    let backoff = time::Duration::seconds_f64(3.7f64.powi(4) + 1.0);
    assert!(
        (wait - backoff).abs() < time::Duration::milliseconds(1),
        "only 429 and 503 count"
    );
}

#[tokio::test]
async fn failing_subscriptions_are_disabled_with_a_reason_and_can_be_re_enabled() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app = TestApp::spawn_clocked(
        &config("disable_after_failing_seconds = 30\n"),
        clock.clone(),
    )
    .await;
    let token = app.manager_token().await;
    let mut failing = Receiver::start().await;
    let mut gone = Receiver::start().await;
    let mut watcher = Receiver::start().await;
    failing.otherwise(Answer::status(500));
    gone.otherwise(Answer::status(410));
    let (failing_id, _) = app
        .subscribe(
            &token,
            json!({"url": failing.url, "topics": ["datapoint.written"]}),
        )
        .await;
    let (gone_id, _) = app
        .subscribe(
            &token,
            json!({"url": gone.url, "topics": ["datapoint.written"]}),
        )
        .await;
    app.subscribe(
        &token,
        json!({"url": watcher.url, "topics": ["webhook.subscription.disabled"]}),
    )
    .await;
    write_int(&app, 5).await;

    // 410 Gone: disabled at once.
    gone.next().await;
    let first = watcher.next().await;
    assert_eq!(
        first.header("x-tributech-event"),
        "SubscriptionDisabledEvent"
    );
    assert_eq!(first.json()["SubscriptionId"], gone_id.as_str());
    assert_eq!(first.json()["Reason"], "The endpoint answered 410 Gone.");

    // Failing for longer than the window: disabled at the first failure past it.
    failing.next().await;
    recorded(&app, &token, &failing_id, 1).await;
    clock.advance(time::Duration::seconds_f64(1.7f64.powi(4) + 1.0));
    failing.next().await;
    recorded(&app, &token, &failing_id, 2).await;
    let path = format!("/api/v1/webhooks/subscriptions/{failing_id}");
    let still = app.call(Method::GET, &path, &token, None).await.json();
    assert_eq!(
        still["enabled"], true,
        "9.35 s of failures is within the window"
    );
    assert!(still["failing_since"].is_string());
    clock.advance(time::Duration::seconds_f64(2.7f64.powi(4) + 1.0));
    failing.next().await;
    let second = watcher.next().await;
    assert_eq!(second.json()["SubscriptionId"], failing_id.as_str());
    let disabled = app.call(Method::GET, &path, &token, None).await.json();
    assert_eq!(disabled["enabled"], false);
    let reason = disabled["disabled_reason"].as_str().unwrap();
    assert!(reason.contains("HTTP 500"), "{reason}");

    // Disabled: new events are not queued for it, and it is not disabled twice.
    write_int(&app, 6).await;
    let queued = app.deliveries(&token, &failing_id).await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert!(watcher.nothing_pending(), "one disabling, one event");

    // Re-enabled by the API: the reason goes, the pending delivery is delivered when due.
    failing.otherwise(Answer::status(200));
    let enabled = app
        .call(
            Method::PUT,
            &path,
            &token,
            Some(json!({"url": failing.url, "topics": ["datapoint.written"], "enabled": true})),
        )
        .await
        .json();
    assert_eq!(enabled["enabled"], true);
    assert_eq!(enabled["disabled_reason"], Json::Null);
    assert_eq!(enabled["failing_since"], Json::Null);
    clock.advance(time::Duration::seconds_f64(3.7f64.powi(4) + 1.0));
    failing.next().await;
    let token = app.manager_token().await;
    assert_eq!(
        recorded(&app, &token, &failing_id, 4).await["state"],
        "delivered"
    );
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_old_one_during_the_overlap() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app =
        TestApp::spawn_clocked(&config("secret_overlap_seconds = 600\n"), clock.clone()).await;
    let token = app.manager_token().await;
    let mut receiver = Receiver::start().await;
    let (id, old) = app
        .subscribe(
            &token,
            json!({"url": receiver.url, "topics": ["datapoint.written"],
               "options": {"standard_webhooks": true}}),
        )
        .await;
    let rotated = app
        .call(
            Method::POST,
            &format!("/api/v1/webhooks/subscriptions/{id}/secret"),
            &token,
            None,
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    assert_eq!(rotated.header("cache-control"), "no-store");
    let new = rotated.json()["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);

    write_int(&app, 8).await;
    let got = receiver.next().await;
    let at = got.header("x-tributech-signaturetimestamp");
    assert_eq!(
        got.header("x-tributech-signature"),
        format!(
            "sha256={},sha256={}",
            hash_hmac(&new, &got.body, at),
            hash_hmac(&old, &got.body, at)
        )
    );
    assert_eq!(got.header("webhook-signature").split(' ').count(), 2);

    clock.advance(time::Duration::seconds(601));
    write_int(&app, 9).await;
    let got = receiver.next().await;
    let at = got.header("x-tributech-signaturetimestamp");
    assert_eq!(
        got.header("x-tributech-signature"),
        format!("sha256={}", hash_hmac(&new, &got.body, at))
    );
}

/// `kill -9` in the middle of a burst of QoS 2 events: after a restart every acknowledged
/// write's event reaches the receiver at least once, and no delivery is in flight twice.
#[tokio::test]
async fn no_acknowledged_event_is_lost_to_sigkill() {
    use crate::helpers::process::Process;
    use crate::helpers::{TestDatabase, client_for};

    let dir = tempfile::tempdir().expect("temp dir");
    let database = TestDatabase::fresh(dir.path()).await;
    let data_dir = dir.path().join("data");
    let ledger = Ledger::start().await;
    let toml = format!(
        "{DATAPOINTS}\n[webhooks]\nallow_targets = [\"127.0.0.0/8\"]\npoll_ms = 50\n\
         request_timeout_ms = 1000\nlease_seconds = 2\nconcurrency_per_subscription = 4\n"
    );
    let config = dir.path().join("portico.toml");
    std::fs::write(&config, &toml).expect("config");

    // The subscription is made through the library on the process's own store and key.
    std::fs::create_dir_all(&data_dir).expect("data dir");
    {
        let store = portico::store::Store::open(&database.location())
            .await
            .expect("store");
        let sealer = portico::secrets::Sealer::load_or_create(&data_dir.join("secrets.key"))
            .expect("sealing key");
        let settings: portico::config::Config = toml::from_str(&toml).expect("settings");
        let webhooks = portico::webhooks::Webhooks::new(
            settings.webhooks,
            store.clone(),
            Arc::new(SystemClock),
            Arc::new(sealer),
            portico::metrics::Metrics::default(),
            Arc::new(portico::events::Visibility::default()),
            portico::events::Journal::new(store.clone(), portico::events::EventBus::default()),
        )
        .expect("webhooks");
        webhooks
            .create(
                portico::webhooks::SubscriptionSpec {
                    url: ledger.url.clone(),
                    topics: vec!["datapoint.written".into()],
                    enabled: true,
                    description: String::new(),
                    accept_any_2xx: false,
                    standard_webhooks: false,
                },
                &portico::access::Actor::Internal("setup"),
            )
            .await
            .expect("subscription");
        store.close().await;
    }

    let server = Process::start(&config, &data_dir, &database);
    let client = client_for(Some(
        &std::fs::read(data_dir.join("tls/cert.pem")).expect("cert"),
    ));
    let writes = (0..200).map(|n| {
        let request = client
            .put(format!("{}/api/v1/t/int", server.url))
            .header("content-type", "application/json")
            .body(format!(r#"{{"value":{n}}}"#));
        async move {
            let response = request.send().await.expect("PUT");
            assert_eq!(response.status(), 200);
            let json: Json = response.json().await.expect("json");
            json["updateTime"].as_str().expect("time").to_owned()
        }
    });
    let acknowledged: Vec<String> = futures_util::future::join_all(writes).await;
    // Some deliveries are in flight now (the ledger holds each for 20 ms); kill.
    ledger.wait_for(10).await;
    server.kill_9();
    let before = ledger.count();
    assert!(
        before < acknowledged.len(),
        "the kill came before all were delivered"
    );

    let server = Process::start(&config, &data_dir, &database);
    let delivered = ledger.wait_for_times(&acknowledged).await;
    assert!(
        delivered,
        "every acknowledged write was delivered after the restart"
    );
    assert_eq!(
        ledger.overlaps(),
        0,
        "no delivery was in flight twice at once"
    );
    server.kill_9();
}

/// A receiver that holds each request 20 ms and keeps a ledger: which events arrived, and
/// whether two requests for one event were ever open at once.
struct Ledger {
    url: String,
    state: Arc<Mutex<LedgerState>>,
    changed: Arc<tokio::sync::Notify>,
}

#[derive(Default)]
struct LedgerState {
    times: std::collections::HashSet<String>,
    open: std::collections::HashMap<String, usize>,
    requests: usize,
    overlaps: usize,
}

/// One open request for an event.
struct Open(Arc<Mutex<LedgerState>>, String);

impl Drop for Open {
    fn drop(&mut self) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(open) = s.open.get_mut(&self.1) {
            *open -= 1;
        }
    }
}

impl Ledger {
    async fn start() -> Self {
        let state: Arc<Mutex<LedgerState>> = Arc::default();
        let changed = Arc::new(tokio::sync::Notify::new());
        let app = axum::Router::new().fallback({
            let state = state.clone();
            let changed = changed.clone();
            move |headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                let changed = changed.clone();
                async move {
                    let id = headers
                        .get("x-tributech-eventid")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    {
                        let mut s = state.lock().unwrap();
                        let open = s.open.entry(id.clone()).or_default();
                        *open += 1;
                        if *open > 1 {
                            s.overlaps += 1;
                        }
                    }
                    // Closed when the request ends, also when the sender's connection
                    // drops (the killed process) and this future is cancelled.
                    let _open = Open(state.clone(), id.clone());
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let json: Json = serde_json::from_slice(&body).unwrap_or_default();
                    {
                        let mut s = state.lock().unwrap();
                        s.requests += 1;
                        if let Some(time) = json["Timestamp"].as_str() {
                            s.times.insert(time.to_owned());
                        }
                    }
                    changed.notify_waiters();
                    "ok"
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/ledger", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url,
            state,
            changed,
        }
    }

    fn count(&self) -> usize {
        self.state.lock().unwrap().times.len()
    }

    fn overlaps(&self) -> usize {
        self.state.lock().unwrap().overlaps
    }

    async fn wait_for(&self, count: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.count() < count {
            let notified = self.changed.notified();
            if self.count() >= count {
                break;
            }
            tokio::time::timeout_at(deadline, notified)
                .await
                .expect("deliveries kept coming");
        }
    }

    /// Whether every time in `times` arrived within 60 s.
    async fn wait_for_times(&self, times: &[String]) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let notified = self.changed.notified();
            let missing = {
                let s = self.state.lock().unwrap();
                times.iter().filter(|t| !s.times.contains(*t)).count()
            };
            if missing == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}
