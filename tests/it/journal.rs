//! The event journal: datapoint writes, portal items and signed calls share one strictly
//! increasing sequence, also across a `kill -9`; the journal pages, resumes and says when a
//! position was pruned.

use std::sync::Arc;

use portico::clock::{Clock, ManualClock, SystemClock};
use portico::openendpoints::{Environment, hash, hex};
use reqwest::Method;
use serde_json::Value as Json;

use crate::helpers::process::Process;
use crate::helpers::{
    DATAPOINTS, EventReader, Reply, TestApp, TestDatabase, client_credentials, client_for,
};

const SIGNED: &str = r#"
[[application]]
name = "forms"
secrets = ["a-signing-secret-for-the-journal-tests"]

[[application.endpoint]]
name = "ping"
"#;

fn config() -> String {
    format!("{DATAPOINTS}\n{SIGNED}")
}

fn ping_path() -> String {
    let hash = hex(&hash(
        "ping",
        &[],
        Environment::Live,
        b"a-signing-secret-for-the-journal-tests",
    ));
    format!("/forms/ping?hash={hash}")
}

async fn page(app: &TestApp, query: &str, token: Option<&str>) -> Json {
    let header = token.map(|t| format!("Bearer {t}"));
    let reply = app
        .authorized(
            Method::GET,
            &format!("/api/v1/events{query}"),
            header.as_deref(),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()
}

fn seqs(page: &Json) -> Vec<u64> {
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect()
}

async fn write(client: &reqwest::Client, base: &str, value: i64) {
    let reply = client
        .put(format!("{base}/api/v1/t/int"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"value":{value}}}"#))
        .send()
        .await
        .expect("PUT");
    assert_eq!(reply.status(), 200);
}

#[tokio::test]
async fn writes_portal_items_and_signed_calls_share_one_increasing_sequence() {
    let app = TestApp::spawn_with(&config()).await;
    let token = app.admin_token().await;
    let mut stream = EventReader::open_as(&app, "/api/v1/events/stream", &token).await;
    let mut xrtc = crate::helpers::xrtc::logged_in(&app, "journal@example.com").await;

    write(&app.client, &app.url, 1).await;
    assert_eq!(xrtc.set("p1", "aGk=").await.status, 200);
    assert_eq!(app.get(&ping_path()).await.status, 200);
    write(&app.client, &app.url, 2).await;

    let mut seen = Vec::new();
    for _ in 0..4 {
        let event = stream.next().await.expect("an event");
        assert_eq!(event.id, event.data["seq"].to_string());
        seen.push((event.data["seq"].as_u64().expect("seq"), event.event));
    }
    let topics: Vec<&str> = seen.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        topics,
        [
            "datapoint.written",
            "portal.item.set",
            "endpoint.called",
            "datapoint.written"
        ]
    );
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");

    // The journal keeps the durable ones (not the portal item), with their actors.
    let journal = page(&app, "", Some(&token)).await;
    let kept: Vec<(u64, &str)> = journal["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().unwrap_or(0),
                e["topic"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        kept,
        [
            (seen[0].0, "datapoint.written"),
            (seen[2].0, "endpoint.called"),
            (seen[3].0, "datapoint.written")
        ]
    );
    assert_eq!(journal["events"][1]["actor"]["kind"], "signed");
    assert_eq!(journal["events"][1]["actor"]["id"], "forms/ping");
    assert_eq!(journal["events"][0]["actor"]["kind"], "anonymous");
    // Anonymous readers see the open datapoints' writes only.
    let anonymous = page(&app, "", None).await;
    assert_eq!(seqs(&anonymous), [seen[0].0, seen[3].0]);
}

#[tokio::test]
async fn the_journal_pages_resumes_and_reports_a_pruned_position_as_a_gap() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let toml = format!("{DATAPOINTS}\n[events]\nretention_hours = 1\n");
    let app = TestApp::spawn_clocked(&toml, clock.clone()).await;
    for value in 1..=5 {
        write(&app.client, &app.url, value).await;
    }
    let all = seqs(&page(&app, "", None).await);
    assert_eq!(all.len(), 5);
    let mut after = 0;
    let mut paged = Vec::new();
    loop {
        let one = page(&app, &format!("?after={after}&limit=2"), None).await;
        let got = seqs(&one);
        after = one["next"].as_u64().expect("next");
        if got.is_empty() {
            break;
        }
        assert!(got.len() <= 2);
        paged.extend(got);
    }
    assert_eq!(paged, all);
    assert_eq!(after, all[4]);
    assert_eq!(
        seqs(&page(&app, "?topics=datapoint.written,endpoint.called", None).await),
        all
    );

    // A stream resuming after the second event replays the rest from the journal.
    let mut resumed = EventReader::connect(
        &app,
        "/api/v1/events/stream",
        None,
        Some(&all[1].to_string()),
    )
    .await
    .unwrap_or_else(|reply| panic!("{} {}", reply.status, reply.text));
    for expected in &all[2..] {
        let event = resumed.next().await.expect("replayed");
        assert_eq!(event.id, expected.to_string());
        assert_eq!(event.data["topic"], "datapoint.written");
    }
    write(&app.client, &app.url, 6).await;
    let live = resumed.next().await.expect("live");
    assert!(live.id.parse::<u64>().expect("id") > all[4]);

    // Two hours later the journal has dropped them: a reader there is told.
    let (dir, database) = app.stop().await;
    clock.advance(time::Duration::hours(2));
    let app = TestApp::spawn_in_clocked(dir, database, &toml, clock.clone()).await;
    let pruned = page(&app, "?after=0", None).await;
    assert_eq!(seqs(&pruned), Vec::<u64>::new());
    assert_eq!(pruned["gap"]["after"], 0);
    assert!(pruned["gap"]["droppedUpto"].as_u64().expect("upto") > all[4]);
    let mut late = EventReader::connect(
        &app,
        "/api/v1/events/stream",
        None,
        Some(&all[0].to_string()),
    )
    .await
    .unwrap_or_else(|reply| panic!("{} {}", reply.status, reply.text));
    let gap = late.next().await.expect("gap");
    assert_eq!(gap.event, "gap");
    assert_eq!(gap.data["after"], all[0]);

    // Bad parameters are refused with a sentence.
    app.get("/api/v1/events?topics=nope")
        .await
        .assert_problem(422, "invalid_value");
    app.get("/api/v1/events?limit=0")
        .await
        .assert_problem(422, "invalid_value");
}

/// The sequence number of the next event of each kind, with a real process killed between.
#[tokio::test]
async fn the_sequence_keeps_increasing_across_kill_9() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = TestDatabase::fresh(dir.path()).await;
    let data = Arc::new(tempfile::TempDir::new_in(dir.path()).expect("data dir"));
    let data_dir = data.path().to_owned();
    // Logging in again right after the restart is allowed here.
    let toml = format!("{}\n[xrtc]\nlogin_timeout_ms = 0\n", config());
    // An XRTC account and an admin client, made on the same data directory and database first.
    let setup = TestApp::spawn_in(data.clone(), database.clone(), &toml).await;
    let (account, key) = crate::helpers::xrtc::register(&setup, "kill@example.com").await;
    let secret = setup
        .client_with_roles("journal-admin", &["portico:admin"])
        .await;
    setup.stop().await;
    let config = dir.path().join("portico.toml");
    std::fs::write(&config, &toml).expect("config");

    let mut before = Vec::new();
    let mut after = Vec::new();
    for round in [&mut before, &mut after] {
        let process = Process::start(&config, &data_dir, &database);
        let cert = std::fs::read(data_dir.join("tls/cert.pem")).expect("cert");
        let client = client_for(Some(&cert));
        let token =
            client_credentials(&client, &process.url, "node", "journal-admin", &secret).await;
        let mut xrtc = crate::helpers::xrtc::Client::to(&process.url, Some(&cert), [127, 0, 0, 1]);
        let login = xrtc.login(&account, &key).await;
        assert_eq!(login.status, 200, "{}", login.text);
        let mut portal = xrtc.follow("p1").await;

        write(&client, &process.url, 1).await;
        assert_eq!(xrtc.set("p1", "aGk=").await.status, 200);
        let called = client
            .get(format!("{}{}", process.url, ping_path()))
            .send()
            .await
            .expect("call");
        assert_eq!(called.status(), 200);
        let item = portal.next().await.expect("item");
        let journal = Reply::from(
            client
                .get(format!("{}/api/v1/events", process.url))
                .bearer_auth(&token)
                .send()
                .await
                .expect("journal"),
        )
        .await;
        let events = journal.json()["events"].as_array().expect("events").clone();
        let newest = |topic: &str| {
            events
                .iter()
                .rev()
                .find(|e| e["topic"] == topic)
                .and_then(|e| e["seq"].as_u64())
                .unwrap_or_else(|| panic!("no {topic} in {events:?}"))
        };
        round.extend([
            newest("datapoint.written"),
            item.id.parse::<u64>().expect("item id"),
            newest("endpoint.called"),
        ]);
        process.kill_9();
    }
    assert!(before.windows(2).all(|w| w[0] < w[1]), "{before:?}");
    assert!(after.windows(2).all(|w| w[0] < w[1]), "{after:?}");
    assert!(
        before.iter().max() < after.iter().min(),
        "after the restart every number is new: {before:?} then {after:?}"
    );
}

#[tokio::test]
async fn a_signed_endpoints_write_is_counted_and_names_its_actor() {
    let toml = format!(
        "{DATAPOINTS}\n{SIGNED}\n[[application.endpoint]]\nname = \"set\"\n\
         parameters = [{{ name = \"value\" }}]\n\
         actions = [{{ type = \"write-datapoint\", datapoint = \"T.Int\", value = \"${{value}}\" }}]\n"
    );
    let app = TestApp::spawn_with(&toml).await;
    let hash = hex(&hash(
        "set",
        &[],
        Environment::Live,
        b"a-signing-secret-for-the-journal-tests",
    ));
    let called = app.get(&format!("/forms/set?value=42&hash={hash}")).await;
    assert_eq!(called.status, 200, "{}", called.text);

    let metrics = app.get("/metrics").await.text;
    assert!(
        metrics.contains(r#"portico_datapoint_writes_total{datapoint="T.Int"} 1"#),
        "the write is counted wherever it came from:\n{metrics}"
    );
    let journal = page(&app, "?topics=datapoint.written", None).await;
    let written = &journal["events"][0];
    assert_eq!(written["data"]["value"], 42);
    assert_eq!(written["actor"]["kind"], "signed");
    assert_eq!(written["actor"]["id"], "forms/set");
}
