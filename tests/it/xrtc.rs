//! XRTC over HTTP: registration (codes read from the outbox), login, sessions, limits, and
//! get semantics (LIFO/FIFO, cutoff, overrun, watch over several portals, streams, isolation),
//! and the portals' native event stream. A manual clock drives every expiry.

use std::sync::Arc;
use std::time::Duration;

use portico::clock::{Clock, ManualClock, SystemClock};
use serde_json::Value as Json;

use crate::helpers::xrtc::*;
use crate::helpers::{Reply, TestApp};

/// Asserts an XRTC error answer.
fn assert_error(reply: &Reply, status: u16, group: u64, code: u64) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text);
    let error = &reply.json()["error"];
    assert_eq!(error["errorgroup"], group, "{}", reply.text);
    assert_eq!(error["errorcode"], code, "{}", reply.text);
    assert!(
        error["errormessage"].as_str().is_some_and(|m| m.len() > 10),
        "{}",
        reply.text
    );
}

async fn clocked(toml: &str) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    (TestApp::spawn_clocked(toml, clock.clone()).await, clock)
}

#[tokio::test]
async fn registration_gives_an_account_and_keys_and_a_known_email_a_new_key() {
    let (app, clock) = clocked("[xrtc]\napi_key_count_max = 2\n").await;
    let (account, key1) = register(&app, "Owner@Example.com").await;
    assert!(
        account.starts_with("AC")
            && account.len() == 18
            && account[2..].bytes().all(|b| b.is_ascii_digit())
    );
    assert!(key1.len() == 32 && key1.bytes().all(|b| b.is_ascii_alphanumeric()));
    clock.advance(time::Duration::seconds(1));
    let (again, key2) = register(&app, "owner@example.com").await;
    assert_eq!(again, account, "a known e-mail gets a key on its account");
    clock.advance(time::Duration::seconds(1));
    let (_, key3) = register(&app, "owner@example.com").await;
    // Two keys at most: the first is gone, the others log in.
    let mut client = Client::new(&app);
    assert_error(&client.login(&account, &key1).await, 400, 4, 35);
    assert_eq!(client.login(&account, &key2).await.status, 200);
    assert_eq!(client.login(&account, &key3).await.status, 200);
}

#[tokio::test]
async fn registration_refusals_carry_the_seeds_codes() {
    let (app, clock) =
        clocked("[xrtc]\nregistrations_per_email_per_hour = 3\ncode_resends_max = 1\n").await;
    let mut client = Client::new(&app);
    // 32: not an e-mail address.
    let reply = client
        .post(
            "/v1/auth/registrationstart",
            r#"{"email":"name.surname@baddomain"}"#,
        )
        .await;
    assert_error(&reply, 400, 3, 32);
    // 30: a value of the wrong type; 20: an unknown name or broken JSON.
    let reply = client
        .post("/v1/auth/registrationstart", r#"{"email":5}"#)
        .await;
    assert_error(&reply, 400, 3, 30);
    let reply = client
        .post("/v1/auth/registrationstart", r#"{"mail":"a@example.com"}"#)
        .await;
    assert_error(&reply, 400, 3, 20);
    let reply = client
        .post("/v1/auth/registrationstart", r#"{"email":"a@example.com""#)
        .await;
    assert_error(&reply, 400, 3, 20);

    let token = start(&mut client, "a@example.com").await;
    // 33: a token that was never issued, or another address's.
    let reply = finish(&mut client, "not-a-token", "123456").await;
    assert_error(&reply, 400, 3, 33);
    let reply = client
        .post(
            "/v1/auth/registrationstart",
            &format!(r#"{{"email":"b@example.com","registrationtoken":"{token}"}}"#),
        )
        .await;
    assert_error(&reply, 400, 3, 33);
    // 41: a re-send too soon; then one re-send; then no more.
    let resend = format!(r#"{{"email":"a@example.com","registrationtoken":"{token}"}}"#);
    let reply = client.post("/v1/auth/registrationstart", &resend).await;
    assert_error(&reply, 400, 3, 41);
    assert!(
        reply
            .header("retry-after")
            .parse::<u64>()
            .is_ok_and(|s| s >= 1)
    );
    clock.advance(time::Duration::seconds(31));
    let reply = client.post("/v1/auth/registrationstart", &resend).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["registrationtoken"], token.as_str());
    let code = code_for(&app, "a@example.com");
    clock.advance(time::Duration::seconds(31));
    let reply = client.post("/v1/auth/registrationstart", &resend).await;
    assert_error(&reply, 400, 3, 41);
    // 34 twice, then 42 on the third wrong code; the right code no longer works.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_error(&finish(&mut client, &token, wrong).await, 400, 3, 34);
    assert_error(&finish(&mut client, &token, wrong).await, 400, 3, 34);
    assert_error(&finish(&mut client, &token, wrong).await, 400, 3, 42);
    assert_error(&finish(&mut client, &token, &code).await, 400, 3, 42);
    // 43: the code came too late.
    let token = start(&mut client, "late@example.com").await;
    clock.advance(time::Duration::seconds(301));
    let code = code_for(&app, "late@example.com");
    assert_error(&finish(&mut client, &token, &code).await, 400, 3, 43);
    // 40: the fourth registration for one address within the hour.
    start(&mut client, "c@example.com").await;
    start(&mut client, "c@example.com").await;
    start(&mut client, "c@example.com").await;
    let reply = client
        .post("/v1/auth/registrationstart", r#"{"email":"c@example.com"}"#)
        .await;
    assert_error(&reply, 400, 3, 40);
    assert!(!reply.header("retry-after").is_empty());
    clock.advance(time::Duration::minutes(61));
    start(&mut client, "c@example.com").await;
}

#[tokio::test]
async fn login_refusals_frequency_and_key_age() {
    let (app, clock) = clocked("").await;
    let (account, key) = register(&app, "login@example.com").await;
    let mut client = Client::new(&app);
    let wrong_key: String = key.chars().rev().collect();
    assert_error(&client.login(&account, &wrong_key).await, 400, 4, 35);
    assert_error(&client.login("AC0000000000000000", &key).await, 400, 4, 35);
    assert_error(&client.login(&account, "short").await, 400, 4, 35);
    let reply = client
        .post("/v1/auth/login", r#"{"accountid":1,"apikey":"x"}"#)
        .await;
    assert_error(&reply, 400, 4, 30);
    let reply = client.login(&account, &key).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json()["servertimestamp"],
        clock.now().unix_timestamp_nanos() as i64 / 1_000_000
    );
    let cookie = reply.header("set-cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Secure"),
        "{cookie}"
    );
    // 45: again within LOGIN_TIMEOUT.
    let reply = client.login(&account, &key).await;
    assert_error(&reply, 400, 4, 45);
    assert_eq!(reply.header("retry-after"), "5");
    clock.advance(time::Duration::seconds(5));
    assert_eq!(client.login(&account, &key).await.status, 200);
    // A key unused for API_KEY_AGE_MAX is disabled.
    clock.advance(time::Duration::days(91));
    assert_error(&client.login(&account, &key).await, 400, 4, 35);
}

#[tokio::test]
async fn sessions_expire_after_a_minute_idle_and_are_bound_to_the_client_address() {
    let (app, clock) = clocked("").await;
    let mut client = logged_in(&app, "s@example.com").await;
    clock.advance(time::Duration::seconds(59));
    assert_eq!(client.set("p", "1").await.status, 200);
    // The same cookie from another address is refused, and does not end the session.
    let mut thief = Client::from(&app, [127, 0, 0, 2]);
    thief.cookie = client.cookie.clone();
    assert_error(&thief.set("p", "2").await, 401, 4, 10011);
    clock.advance(time::Duration::seconds(59));
    assert_eq!(client.set("p", "3").await.status, 200);
    clock.advance(time::Duration::seconds(61));
    assert_error(&client.set("p", "4").await, 401, 4, 10011);
    client.cookie = Some("made-up".into());
    assert_error(&client.set("p", "5").await, 401, 4, 10011);
    client.cookie = None;
    let reply = client.post("/v1/item/get", "{portals:[]}").await;
    assert_error(&reply, 401, 4, 10011);
}

#[tokio::test]
async fn a_trusted_proxy_forwards_the_address_sessions_are_bound_to() {
    let (app, _clock) = clocked("[proxy]\ntrusted = [\"127.0.0.1\"]\n").await;
    let (account, key) = register(&app, "proxy@example.com").await;
    let mut client = Client::new(&app);
    client.forwarded = Some("203.0.113.5".into());
    assert_eq!(client.login(&account, &key).await.status, 200);
    assert_eq!(client.set("p", "1").await.status, 200);
    client.forwarded = Some("203.0.113.6".into());
    assert_error(&client.set("p", "2").await, 401, 4, 10011);
    // An untrusted peer's header is ignored: 127.0.0.2 is who it is.
    let mut other = Client::from(&app, [127, 0, 0, 2]);
    other.cookie = client.cookie.clone();
    other.forwarded = Some("203.0.113.5".into());
    assert_error(&other.set("p", "3").await, 401, 4, 10011);
}

#[tokio::test]
async fn request_limits_answer_with_codes_and_retry_after() {
    let (app, clock) =
        clocked("[xrtc]\nrequests_per_second = 2\nrequests_per_month = 4\nportals_count_max = 2\n")
            .await;
    let mut client = logged_in(&app, "limits@example.com").await;
    assert_eq!(client.set("a", "1").await.status, 200);
    assert_eq!(client.set("b", "1").await.status, 200);
    let reply = client.set("a", "2").await;
    assert_error(&reply, 400, 2, 50);
    assert_eq!(reply.header("retry-after"), "1");
    clock.advance(time::Duration::seconds(1));
    // 52: a third portal; nothing of the request is set.
    let reply = client
        .post(
            "/v1/item/set",
            r#"{"items":[{"portalid":"a","payload":"x"},{"portalid":"c","payload":"x"}]}"#,
        )
        .await;
    assert_error(&reply, 400, 6, 52);
    assert_eq!(client.get(r#"{"portals":[{"portalid":"a"}]}"#).await, ["1"]);
    // 51: the month's four requests are used up (the refused ones did not count).
    clock.advance(time::Duration::seconds(1));
    let reply = client.set("a", "3").await;
    assert_error(&reply, 400, 2, 51);
    assert!(
        reply
            .header("retry-after")
            .parse::<u64>()
            .is_ok_and(|s| s > 0)
    );
}

#[tokio::test]
async fn bad_set_and_get_requests_change_nothing() {
    let (app, _clock) = clocked("").await;
    let mut client = logged_in(&app, "bad@example.com").await;
    let too_big = format!(
        r#"{{"items":[{{"portalid":"p","payload":"{}"}}]}}"#,
        "x".repeat(1024)
    );
    assert_error(&client.post("/v1/item/set", &too_big).await, 400, 6, 20);
    for (body, code) in [
        (r#"{"items":[{"portalid":"p","payload":"x"}"#, 20),
        (
            r#"{"items":[{"portalid":"p","payload":"x","extra":1}]}"#,
            20,
        ),
        (r#"{"items":[{"portalid":"p-q","payload":"x"}]}"#, 30),
        (r#"{"items":[{"portalid":"p","payload":5}]}"#, 30),
        (r#"{"items":[]}"#, 30),
        (r#"{"items":[{"portalid":"p","payload":"\q"}]}"#, 20),
    ] {
        assert_error(&client.post("/v1/item/set", body).await, 400, 6, code);
    }
    for (body, code) in [
        (r#"{"portals":[{"portalid":"p"}],"mode":"sometimes"}"#, 30),
        (r#"{"portals":[{"portalid":"p"}],"schedule":"RANDOM"}"#, 30),
        (r#"{"portals":[{"portalid":"p"}],"cutoff":-2}"#, 30),
        (
            r#"{"portals":[{"portalid":"p","servertimestamp":"soon"}]}"#,
            30,
        ),
        (r#"{"portals":[{"id":"p"}]}"#, 20),
    ] {
        assert_error(&client.post("/v1/item/get", body).await, 400, 6, code);
    }
    assert_eq!(client.get("{portals:null}").await, Vec::<String>::new());
}

#[tokio::test]
async fn payloads_come_back_byte_for_byte_and_lenient_json_is_read() {
    let (app, _clock) = clocked("").await;
    let mut client = logged_in(&app, "bytes@example.com").await;
    let payloads = [
        r#"{\"myapplicationdata\":{\"sensor\":\"0001\"}}"#,
        r#"eyJteWFwcGxpY2F0aW9uZGF0YSI6eyJzZW5zb3IiOiIwMDAxIn19\u003d"#,
        r#"caf\u00e9 and café \/ \\ \n"#,
    ];
    for payload in payloads {
        let body = format!(r#"{{items:[{{portalid:p,"payload":"{payload}"}}]}}"#);
        assert_eq!(client.post("/v1/item/set", &body).await.status, 200);
    }
    let reply = client
        .post("/v1/item/get", "{portals:[{portalid:p}],schedule:FIFO}")
        .await;
    for payload in payloads {
        assert!(
            reply.text.contains(&format!(r#""payload":"{payload}""#)),
            "{payload} not verbatim in {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn lifo_skips_what_does_not_fit_fifo_keeps_it_and_an_overrun_drops_the_oldest() {
    let (app, clock) = clocked("[xrtc]\nring_capacity = 5\nitem_count_max = 2\n").await;
    let mut fifo = logged_in(&app, "order@example.com").await;
    for n in 1..=7 {
        clock.advance(time::Duration::milliseconds(1));
        assert_eq!(fifo.set("p", &n.to_string()).await.status, 200);
    }
    // The ring holds 3..=7: 1 and 2 were overwritten.
    let get = r#"{"portals":[{"portalid":"p"}],"schedule":"FIFO"}"#;
    assert_eq!(fifo.get(get).await, ["3", "4"]);
    assert_eq!(fifo.get(get).await, ["5", "6"]);
    assert_eq!(fifo.get(get).await, ["7"]);
    assert_eq!(fifo.get(get).await, Vec::<String>::new());
    // LIFO gives the newest first and skips what does not fit.
    let mut lifo = logged_in(&app, "order2@example.com").await;
    for n in 1..=4 {
        assert_eq!(lifo.set("q", &n.to_string()).await.status, 200);
    }
    let get = r#"{"portals":[{"portalid":"q"}]}"#;
    assert_eq!(lifo.get(get).await, ["4", "3"]);
    assert_eq!(lifo.get(get).await, Vec::<String>::new());
    assert_eq!(lifo.set("q", "5").await.status, 200);
    assert_eq!(lifo.get(get).await, ["5"]);
    // A given servertimestamp reads from there, whatever the cursor says.
    let since = r#"{"portals":[{"portalid":"q","servertimestamp":1}],"schedule":"FIFO"}"#;
    assert_eq!(lifo.get(since).await, ["1", "2"]);
}

#[tokio::test]
async fn cutoff_and_item_age_leave_old_items_out() {
    let (app, clock) = clocked("[xrtc]\nitem_age_max_seconds = 60\n").await;
    let mut client = logged_in(&app, "age@example.com").await;
    assert_eq!(client.set("p", "old").await.status, 200);
    clock.advance(time::Duration::milliseconds(800));
    assert_eq!(client.set("p", "new").await.status, 200);
    let get = r#"{"portals":[{"portalid":"p"}],"cutoff":500,"schedule":"FIFO"}"#;
    assert_eq!(client.get(get).await, ["new"]);
    // All portals' latest, and nothing once items are older than ITEM_AGE_MAX.
    assert_eq!(client.get("{portals:[]}").await, ["new"]);
    clock.advance(time::Duration::seconds(59));
    assert_eq!(client.set("p", "x").await.status, 200);
    clock.advance(time::Duration::seconds(2));
    let get = r#"{"portals":[{"portalid":"p","servertimestamp":1}],"schedule":"FIFO"}"#;
    assert_eq!(client.get(get).await, ["x"]);
}

#[tokio::test]
async fn a_watch_over_several_portals_returns_the_first_item_set_in_any() {
    let (app, _clock) =
        clocked("[xrtc]\nget_item_timeout_ms = 30000\nstream_max_ms = 30000\n").await;
    let mut watcher = logged_in(&app, "watch@example.com").await;
    // A second session of the same account sets; the watcher's first get sees everything
    // after its cursor, so the set may land before or after the watch begins.
    let (account, key) = register(&app, "watch@example.com").await;
    let mut setter = Client::from(&app, [127, 0, 0, 3]);
    assert_eq!(setter.login(&account, &key).await.status, 200);
    let body = r#"{"portals":[{"portalid":"a"},{"portalid":"b"}],"mode":"watch"}"#;
    let watch = tokio::spawn(async move { watcher.get(body).await });
    assert_eq!(setter.set("b", "hello").await.status, 200);
    let got = tokio::time::timeout(Duration::from_secs(20), watch)
        .await
        .expect("the watch returned before its timeout")
        .expect("task");
    assert_eq!(got, ["hello"]);
}

#[tokio::test]
async fn an_empty_watch_ends_after_get_item_timeout_and_a_stream_writes_lines() {
    let (app, _clock) =
        clocked("[xrtc]\nget_item_timeout_ms = 300\nkeepalive_ms = 100\nstream_max_ms = 5000\n")
            .await;
    let mut client = logged_in(&app, "stream@example.com").await;
    let reply = client
        .post(
            "/v1/item/get",
            r#"{"portals":[{"portalid":"p"}],"mode":"watch"}"#,
        )
        .await;
    assert_eq!(reply.text, "{}");
    assert_eq!(client.set("p", "1").await.status, 200);
    assert_eq!(client.set("p", "2").await.status, 200);
    let reply = client
        .post(
            "/v1/item/get",
            r#"{"portals":[{"portalid":"p"}],"mode":"stream","schedule":"FIFO"}"#,
        )
        .await;
    assert_eq!(reply.status, 200);
    let lines: Vec<Json> = reply
        .text
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is JSON"))
        .collect();
    assert_eq!(payloads(&lines[0]), ["1", "2"]);
    assert!(lines.len() >= 2, "keep-alives follow: {}", reply.text);
    assert!(lines[1..].iter().all(|line| line == &serde_json::json!({})));
    assert!(reply.text.ends_with('\n'));
}

#[tokio::test]
async fn an_account_cannot_see_another_accounts_portals() {
    let (app, _clock) = clocked("").await;
    let mut alice = logged_in(&app, "alice@example.com").await;
    let mut bob = logged_in(&app, "bob@example.com").await;
    assert_eq!(alice.set("shared", "alice's").await.status, 200);
    assert_eq!(
        bob.get(r#"{"portals":[{"portalid":"shared"}]}"#).await,
        Vec::<String>::new()
    );
    assert_eq!(bob.get("{portals:[]}").await, Vec::<String>::new());
    assert_eq!(bob.set("shared", "bob's").await.status, 200);
    assert_eq!(
        alice.get(r#"{"portals":[{"portalid":"shared"}]}"#).await,
        ["alice's"]
    );
}

/// Reads SSE events from `response` until `count` have arrived: (event, id, data).
async fn sse_events(
    response: &mut reqwest::Response,
    count: usize,
) -> Vec<(String, String, String)> {
    let mut text = String::new();
    let mut events = Vec::new();
    while events.len() < count {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("an event in time")
            .expect("chunk")
            .expect("stream open");
        text.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|line| line.strip_prefix(name))
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            };
            if !field("event:").is_empty() {
                events.push((field("event:"), field("id:"), field("data:")));
            }
        }
    }
    events
}

#[tokio::test]
async fn the_native_event_stream_resumes_and_reports_a_gap() {
    let (app, _clock) = clocked("[xrtc]\nring_capacity = 2\n").await;
    let client = logged_in(&app, "sse@example.com").await;
    let cookie = client.cookie.clone().expect("cookie");
    let open = |last: Option<u64>| {
        let mut request = client
            .http
            .get(format!("{}/api/v1/portals/p/events", client.url))
            .header("cookie", format!("JSESSIONID={cookie}"));
        if let Some(last) = last {
            request = request.header("last-event-id", last.to_string());
        }
        request.send()
    };
    let mut live = open(None).await.expect("SSE");
    assert_eq!(live.status(), 200);
    let mut setter = Client::new(&app);
    setter.cookie = client.cookie.clone();
    assert_eq!(setter.set("p", "1").await.status, 200);
    let events = sse_events(&mut live, 1).await;
    assert_eq!(events[0].0, "portal.item.set");
    let first: Json = serde_json::from_str(&events[0].2).expect("JSON");
    assert_eq!(first["payload"], "1");
    let first_id: u64 = events[0].1.parse().expect("numeric id");
    // Three more: the ring keeps two, so a reader resuming after "1" missed one.
    for n in 2..=4 {
        assert_eq!(setter.set("p", &n.to_string()).await.status, 200);
    }
    drop(live);
    let mut resumed = open(Some(first_id)).await.expect("SSE");
    let events = sse_events(&mut resumed, 3).await;
    assert_eq!(events[0].0, "gap");
    // The same gap object as the journal's event stream sends.
    let gap: Json = serde_json::from_str(&events[0].2).expect("JSON");
    assert_eq!(gap["after"], first_id);
    assert!(gap["droppedUpto"].as_u64().expect("droppedUpto") > first_id);
    let payloads: Vec<Json> = events[1..]
        .iter()
        .map(|(_, _, data)| serde_json::from_str::<Json>(data).expect("JSON")["payload"].clone())
        .collect();
    assert_eq!(payloads, ["3", "4"]);
    // No session, no stream.
    let reply = client
        .http
        .get(format!("{}/api/v1/portals/p/events", client.url))
        .send()
        .await
        .expect("request");
    assert_eq!(reply.status(), 401);
}

#[tokio::test]
async fn revoking_a_key_ends_its_sessions_and_streams_and_refuses_its_logins() {
    // Streams ask their credential again every second.
    let app = TestApp::spawn_with("[auth]\nrevocation_check_seconds = 1\n").await;
    let (account, key) = register(&app, "revoked@example.com").await;
    let mut client = Client::new(&app);
    assert_eq!(client.login(&account, &key).await.status, 200);
    let mut events = client.follow("p1").await;
    let admin = app.admin_token().await;
    let keys = app
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/admin/xrtc/accounts/{account}/keys"),
            &admin,
            None,
        )
        .await;
    assert_eq!(keys.status, 200, "{}", keys.text);
    let name = keys.json()[0]["name"]
        .as_str()
        .expect("a key name")
        .to_owned();
    assert_eq!(keys.json()[0]["disabled"], Json::Null);

    let revoked = app
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/admin/xrtc/accounts/{account}/keys/{name}/revoke"),
            &admin,
            None,
        )
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert!(
        revoked.json()[0]["disabled"].is_string(),
        "{}",
        revoked.text
    );
    // The session is over at once, its stream ends, and the key logs in no more.
    assert_error(&client.set("p1", "x").await, 401, 4, 10011);
    assert!(events.next().await.is_none(), "the stream ended");
    let mut again = Client::new(&app);
    assert_error(&again.login(&account, &key).await, 400, 4, 35);
    // An unknown key or account is a 404 and changes nothing.
    let missing = app
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/admin/xrtc/accounts/{account}/keys/nokey/revoke"),
            &admin,
            None,
        )
        .await;
    assert_eq!(missing.status, 404, "{}", missing.text);
    let anonymous = app
        .get(&format!("/api/v1/admin/xrtc/accounts/{account}/keys"))
        .await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test]
async fn concurrent_sets_to_new_portals_never_pass_the_portal_count() {
    let app =
        TestApp::spawn_with("[xrtc]\nportals_count_max = 2\nrequests_per_second = 1000\n").await;
    let (account, key) = register(&app, "racer@example.com").await;
    let mut client = Client::new(&app);
    assert_eq!(client.login(&account, &key).await.status, 200);
    let cookie = client.cookie.clone().expect("cookie");
    // Twenty sets, each to its own new portal, all at once.
    let sets = (0..20).map(|n| {
        client
            .http
            .post(format!("{}/v1/item/set", app.url))
            .header("cookie", format!("JSESSIONID={cookie}"))
            .body(format!(
                r#"{{"items":[{{"portalid":"race{n}","payload":"x"}}]}}"#
            ))
            .send()
    });
    let replies = futures_util::future::join_all(sets).await;
    let mut set = 0;
    for reply in replies {
        let reply = Reply::from(reply.expect("set")).await;
        match reply.status.as_u16() {
            200 => set += 1,
            _ => assert_error(&reply, 400, 6, 52),
        }
    }
    assert_eq!(set, 2, "exactly the portal count was set");
    // The account holds two portals: the latest of all shows two items.
    assert_eq!(client.get(r#"{"portals":[]}"#).await.len(), 2);
}

#[tokio::test]
async fn concurrent_registration_starts_for_one_email_stop_at_the_limit() {
    let app = TestApp::spawn_with("[xrtc]\nregistrations_per_email_per_hour = 3\n").await;
    let client = Client::new(&app);
    let starts = (0..30).map(|_| {
        client
            .http
            .post(format!("{}/v1/auth/registrationstart", app.url))
            .body(r#"{"email":"flood@example.com"}"#)
            .send()
    });
    let replies = futures_util::future::join_all(starts).await;
    let mut started = 0;
    for reply in replies {
        let reply = Reply::from(reply.expect("start")).await;
        match reply.status.as_u16() {
            200 => started += 1,
            _ => assert_error(&reply, 400, 3, 40),
        }
    }
    assert_eq!(started, 3, "exactly the hourly limit was started");
    let mails = std::fs::read_dir(app.data_dir.join("outbox"))
        .expect("outbox")
        .count();
    assert_eq!(mails, 3, "one code mailed per started registration");
}
