//! Every way out applies the reader's permissions: a datapoint protected on its endpoint is
//! protected on the native API, its event stream and webhooks; a write-only value leaves by no
//! way; streams end with their token.

use std::sync::Arc;
use std::time::Duration;

use portico::clock::{Clock, ManualClock, SystemClock};
use reqwest::Method;
use serde_json::{Value as Json, json};

use crate::helpers::receiver::Receiver;
use crate::helpers::tokens::{Signer, claims};
use crate::helpers::{EventReader, TestApp, client_credentials};

const SECRET: &str = "a shared secret of at least thirty-two bytes";
const ISSUER: &str = "https://hmac.example";

/// The README's way of protecting a datapoint: `read` on its endpoint only.
fn plant(extra: &str) -> String {
    format!(
        r#"
{extra}

[[issuer]]
issuer = "{ISSUER}"
audience = ["portico"]
hmac_secret = "{SECRET}"
algorithms = ["HS256"]

[[datapoint]]
key = "plant.temp"
type = "float"

[[endpoint]]
path = "/plant/temp"
datapoint = "plant.temp"
read = ["plant:read"]

[[datapoint]]
key = "plant.secret"
type = "int"
access = "write"

[[endpoint]]
path = "/plant/secret"
datapoint = "plant.secret"

[[datapoint]]
key = "open.marker"
type = "int"

[[endpoint]]
path = "/open/marker"
datapoint = "open.marker"

[webhooks]
allow_targets = ["127.0.0.0/8"]
poll_ms = 20
"#
    )
}

fn token(scope: &str, now: i64) -> String {
    Signer::hs256(SECRET.as_bytes()).sign(&claims(ISSUER, now, scope))
}

fn now() -> i64 {
    SystemClock.now().unix_timestamp()
}

async fn get(app: &TestApp, path: &str, token: Option<&str>) -> crate::helpers::Reply {
    let header = token.map(|t| format!("Bearer {t}"));
    app.authorized(Method::GET, path, header.as_deref(), None)
        .await
}

async fn put(app: &TestApp, path: &str, value: &str) {
    let reply = app.put_json(path, &format!(r#"{{"value":{value}}}"#)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

fn keys(list: &Json) -> Vec<String> {
    list["datapoints"]
        .as_array()
        .expect("datapoints")
        .iter()
        .map(|d| d["key"].as_str().expect("key").to_owned())
        .collect()
}

#[tokio::test]
async fn a_datapoint_protected_on_its_endpoint_is_protected_on_the_native_api() {
    let app = TestApp::spawn_with(&plant("")).await;
    put(&app, "/plant/temp", "21.5").await;
    let reader = token("plant:read", now());
    let other = token("plant:other", now());

    for path in [
        "/api/v1/datapoints/plant.temp",
        "/api/v1/datapoints/plant.temp/events",
    ] {
        get(&app, path, None)
            .await
            .assert_problem(401, "unauthenticated");
        get(&app, path, Some(&other))
            .await
            .assert_problem(403, "insufficient_scope");
    }
    let one = get(&app, "/api/v1/datapoints/plant.temp", Some(&reader)).await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.json()["current"]["value"], 21.5);
    let mut stream =
        EventReader::open_as(&app, "/api/v1/datapoints/plant.temp/events", &reader).await;
    assert_eq!(stream.next().await.expect("current").data["value"], 21.5);

    let anonymous = get(&app, "/api/v1/datapoints", None).await;
    assert_eq!(keys(&anonymous.json()), ["plant.secret", "open.marker"]);
    let without = get(&app, "/api/v1/datapoints", Some(&other)).await;
    assert_eq!(keys(&without.json()), ["plant.secret", "open.marker"]);
    let with = get(&app, "/api/v1/datapoints", Some(&reader)).await;
    assert_eq!(
        keys(&with.json()),
        ["plant.temp", "plant.secret", "open.marker"]
    );
    assert!(
        with.json()["datapoints"][1].get("current").is_none(),
        "a write-only value is never listed"
    );
}

/// The deliveries of a subscription once none is pending, by subject (the datapoint's key).
async fn settled(app: &TestApp, token: &str, id: &str, count: usize) -> Vec<(String, String)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let all = app.deliveries(token, id).await;
        if all.len() >= count && all.iter().all(|d| d["state"] != "pending") {
            return all
                .iter()
                .map(|d| {
                    let body: Json = serde_json::from_str(d["payload"].as_str().expect("payload"))
                        .expect("JSON");
                    (
                        body["Datapoint"].as_str().unwrap_or_default().to_owned(),
                        d["state"].as_str().expect("state").to_owned(),
                    )
                })
                .collect();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries did not settle: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn webhooks_deliver_only_what_the_subscriptions_maker_may_read() {
    let app = TestApp::spawn_with(&plant("")).await;
    let manager = app.token("node", "hooks", &["portico:webhooks"]).await;
    let admin = app
        .token("node", "ops", &["portico:admin", "plant:read"])
        .await;
    let mut managers = Receiver::start().await;
    let mut admins = Receiver::start().await;
    let (manager_sub, _) = app
        .subscribe(&manager, json!({"url": managers.url, "topics": ["*"]}))
        .await;
    let (admin_sub, _) = app
        .subscribe(&admin, json!({"url": admins.url, "topics": ["*"]}))
        .await;

    put(&app, "/plant/temp", "21.5").await;
    put(&app, "/plant/secret", "42").await;
    put(&app, "/open/marker", "1").await;

    // The manager lacks plant:read: the protected write is withheld, never sent.
    let got = managers.next().await;
    let body: Json = serde_json::from_slice(&got.body).expect("JSON");
    assert_eq!(body["Datapoint"], "open.marker");
    let mut seen = settled(&app, &manager, &manager_sub, 2).await;
    seen.sort();
    assert_eq!(
        seen,
        [
            ("open.marker".to_owned(), "delivered".to_owned()),
            ("plant.temp".to_owned(), "withheld".to_owned()),
        ],
        "no delivery of the write-only datapoint exists"
    );
    assert!(managers.nothing_pending(), "nothing else was sent");

    // The admin reads plant.temp; nobody ever gets the write-only value.
    let mut seen = settled(&app, &admin, &admin_sub, 2).await;
    seen.sort();
    assert_eq!(
        seen,
        [
            ("open.marker".to_owned(), "delivered".to_owned()),
            ("plant.temp".to_owned(), "delivered".to_owned()),
        ]
    );
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let got = admins.next().await;
        bodies.push(String::from_utf8_lossy(&got.body).into_owned());
    }
    assert!(admins.nothing_pending());
    assert!(
        bodies.iter().all(|b| !b.contains("plant.secret")),
        "{bodies:?}"
    );

    // Portal items and signed calls are for admins alone.
    let refused = app
        .authorized(
            Method::POST,
            "/api/v1/webhooks/subscriptions",
            Some(&format!("Bearer {manager}")),
            Some(&json!({"url": managers.url, "topics": ["portal.item.set"]}).to_string()),
        )
        .await;
    refused.assert_problem(403, "forbidden");
}

#[tokio::test]
async fn a_stream_ends_when_its_token_expires() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app = TestApp::spawn_clocked(
        &plant("[auth]\nrevocation_check_seconds = 1"),
        clock.clone(),
    )
    .await;
    put(&app, "/plant/temp", "1.5").await;
    let start = clock.now().unix_timestamp();
    let mut expiring = claims(ISSUER, start, "plant:read");
    expiring["exp"] = json!(start + 120);
    let expiring = Signer::hs256(SECRET.as_bytes()).sign(&expiring);
    let mut stream =
        EventReader::open_as(&app, "/api/v1/datapoints/plant.temp/events", &expiring).await;
    assert_eq!(stream.next().await.expect("current").data["value"], 1.5);
    put(&app, "/plant/temp", "2.5").await;
    assert_eq!(stream.next().await.expect("a write").data["value"], 2.5);

    // Past exp and the leeway, the stream ends by itself (no write needed to notice).
    clock.advance(time::Duration::seconds(240));
    assert!(stream.next().await.is_none(), "the stream ended");
}

#[tokio::test]
async fn a_stream_ends_when_its_token_is_revoked() {
    let app = TestApp::spawn_with(&plant("[auth]\nrevocation_check_seconds = 1")).await;
    put(&app, "/plant/temp", "1.5").await;
    let secret = app.client_with_roles("viewer", &["plant:read"]).await;
    let access = client_credentials(&app.client, &app.url, "node", "viewer", &secret).await;
    let mut stream =
        EventReader::open_as(&app, "/api/v1/datapoints/plant.temp/events", &access).await;
    assert_eq!(stream.next().await.expect("current").data["value"], 1.5);

    let revoked = app
        .client
        .post(app.at("/realms/node/protocol/openid-connect/revoke"))
        .basic_auth("viewer", Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={access}&token_type_hint=access_token"))
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 200);
    assert!(stream.next().await.is_none(), "the stream ended");
    get(&app, "/api/v1/datapoints/plant.temp", Some(&access))
        .await
        .assert_problem(401, "invalid_token");
}

#[tokio::test]
async fn a_portal_stream_ends_when_its_api_key_is_replaced() {
    // One key per account: registering the address again replaces (deletes) the first key.
    let toml = "[xrtc]\napi_key_count_max = 1\n[auth]\nrevocation_check_seconds = 1\n";
    let app = TestApp::spawn_with(toml).await;
    let mut owner = crate::helpers::xrtc::logged_in(&app, "owner@example.com").await;
    let mut stream = owner.follow("p1").await;
    assert_eq!(owner.set("p1", "aGk=").await.status, 200);
    let item = stream.next().await.expect("an item while the key is valid");
    assert_eq!(item.event, "portal.item.set");

    crate::helpers::xrtc::register(&app, "owner@example.com").await;
    assert!(
        stream.next().await.is_none(),
        "the stream ended with its key"
    );
}
