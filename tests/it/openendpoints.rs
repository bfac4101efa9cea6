//! Signed (OpenEndpoints-style) endpoints over HTTPS: the seed's example through a request and
//! through `portico hash`, key rotation, include-in-hash lists, case, refusals that change
//! nothing, every action (datapoint, portal, static file, redirect, HTTP call, e-mail) and the
//! `endpoint.called` event delivered to a webhook.

#![allow(clippy::unwrap_used)] // a test's helpers fail the test by panicking

use std::path::Path;

use portico::openendpoints::{Environment, hash, hex};
use serde_json::{Value as Json, json};

use crate::helpers::receiver::{Answer, Receiver};
use crate::helpers::{Reply, TestApp};

const LIVE: &str = "82bb6e7f675a8d872688cb593a64f615b37f88478d7fed8705496d3e7a1c2699";
const PREVIEW: &str = "4afcbe21891e5be6762f495958659a25950a83e7c52f13594cbebe43cfdd9bf4";

/// The seed's application, plus endpoints for the other cases.
const SEED: &str = r#"
[[datapoint]]
key = "plant.setpoint"
type = "float"

[[datapoint]]
key = "plant.note"
type = "string"

[[application]]
name = "helloapp"
secrets = ["openendpoints"]
allow_weak_secret = true

[[application.endpoint]]
name = "helloworld"
parameters = [{ name = "foo" }, { name = "long" }, { name = "free", default = "" }]
include_in_hash = ["foo", "long"]

[[application.endpoint]]
name = "nolist"
parameters = [{ name = "free", default = "x" }]

[[application.endpoint]]
name = "emptylist"
parameters = [{ name = "free", default = "x" }]
include_in_hash = []

[[application.endpoint]]
name = "setpoint"
parameters = [{ name = "site", transform = ["trim", "lowercase"] }, { name = "value" }]
include_in_hash = ["site"]
actions = [{ type = "write-datapoint", datapoint = "plant.setpoint", value = "${value}" }]

[[application]]
name = "quiet"
secrets = ["s3cret-quiet"]
allow_weak_secret = true
preview = false

[[application.endpoint]]
name = "ping"
"#;

fn sign(endpoint: &str, values: &[&str], environment: Environment, secret: &str) -> String {
    hex(&hash(endpoint, values, environment, secret.as_bytes()))
}

/// A client that shows redirects instead of following them.
fn no_redirects(app: &TestApp) -> reqwest::Client {
    let cert = reqwest::Certificate::from_pem(app.cert_pem.as_deref().unwrap()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([cert])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get(app: &TestApp, path_and_query: &str) -> Reply {
    Reply::from(
        no_redirects(app)
            .get(app.at(path_and_query))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn post(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> Reply {
    Reply::from(
        no_redirects(app)
            .post(app.at(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn assert_problem(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.json()["code"], code, "{}", reply.text);
}

async fn setpoint(app: &TestApp) -> Json {
    app.get("/api/v1/datapoints/plant.setpoint").await.json()["current"]["value"].clone()
}

#[tokio::test]
async fn the_seed_example_verifies_through_a_request_and_portico_hash() {
    let app = TestApp::spawn_with(SEED).await;
    assert_eq!(
        sign(
            "helloworld",
            &["abc", "def"],
            Environment::Live,
            "openendpoints"
        ),
        LIVE
    );
    let reply = get(
        &app,
        &format!("/helloapp/helloworld?foo=abc&long=def&hash={LIVE}"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json(),
        json!({"application": "helloapp", "endpoint": "helloworld", "environment": "live"})
    );
    let upper = LIVE.to_uppercase();
    let reply = get(
        &app,
        &format!("/helloapp/helloworld?foo=abc&long=def&hash={upper}"),
    )
    .await;
    assert_eq!(reply.status, 200, "uppercase hex: {}", reply.text);
    let reply = get(
        &app,
        &format!("/helloapp/helloworld?foo=abc&long=def&environment=preview&hash={PREVIEW}"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["environment"], "preview");
    for wrong in [
        format!("foo=abc&long=def&environment=preview&hash={LIVE}"),
        format!("foo=abc&long=def&hash={PREVIEW}"),
    ] {
        let reply = get(&app, &format!("/helloapp/helloworld?{wrong}")).await;
        assert_problem(&reply, 403, "hash_mismatch");
        assert!(!reply.text.contains(LIVE) && !reply.text.contains(PREVIEW));
    }

    // `portico hash` prints the same values, and its link works as it is.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("portico.toml");
    std::fs::write(&file, SEED).unwrap();
    for (env, expected) in [("live", LIVE), ("preview", PREVIEW)] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_portico"))
            .args([
                "hash",
                "--config",
                file.to_str().unwrap(),
                "--app",
                "helloapp",
            ])
            .args([
                "--endpoint",
                "helloworld",
                "--env",
                env,
                "-p",
                "foo=abc",
                "-p",
                "long=def",
            ])
            .args(["--base-url", &app.url])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let text = String::from_utf8(output.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], expected);
        let link = lines[1].strip_prefix(app.url.as_str()).unwrap();
        let reply = get(&app, link).await;
        assert_eq!(reply.status, 200, "{link}: {}", reply.text);
        assert_eq!(reply.json()["environment"], env);
    }
    // Without a configuration, from the secret and the parameters in order.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_portico"))
        .args([
            "hash",
            "--app",
            "helloapp",
            "--endpoint",
            "helloworld",
            "--secret",
        ])
        .args(["openendpoints", "-p", "foo=abc", "-p", "long=def"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8(output.stdout).unwrap().starts_with(LIVE));
}

#[tokio::test]
async fn include_in_hash_lists_decide_what_a_hash_covers() {
    let app = TestApp::spawn_with(SEED).await;
    // A changed hashed parameter is refused; an unhashed one may change.
    let reply = get(
        &app,
        &format!("/helloapp/helloworld?foo=abd&long=def&hash={LIVE}"),
    )
    .await;
    assert_problem(&reply, 403, "hash_mismatch");
    let reply = get(
        &app,
        &format!("/helloapp/helloworld?long=def&foo=abc&free=any&hash={LIVE}"),
    )
    .await;
    assert_eq!(
        reply.status, 200,
        "order of the query and unhashed values do not matter"
    );
    // No list, or an empty one: the endpoint's name, the environment and the secret alone.
    for name in ["nolist", "emptylist"] {
        let good = sign(name, &[], Environment::Live, "openendpoints");
        let reply = get(&app, &format!("/helloapp/{name}?free=whatever&hash={good}")).await;
        assert_eq!(reply.status, 200, "{name}: {}", reply.text);
    }
    // Transformations run before hashing, as the seed warns.
    let good = sign("setpoint", &["north"], Environment::Live, "openendpoints");
    let reply = get(
        &app,
        &format!("/helloapp/setpoint?site=%20NORTH%20&value=21.5&hash={good}"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(setpoint(&app).await, json!(21.5));
}

#[tokio::test]
async fn any_listed_secret_is_valid_and_a_removed_one_no_longer_is() {
    let rotating = |secrets: &str| {
        format!(
            "[[application]]\nname = \"rot\"\nsecrets = {secrets}\nallow_weak_secret = true\n\n\
             [[application.endpoint]]\nname = \"ping\"\n"
        )
    };
    let app = TestApp::spawn_with(&rotating(r#"["old-secret", "new-secret"]"#)).await;
    let old = sign("ping", &[], Environment::Live, "old-secret");
    let new = sign("ping", &[], Environment::Live, "new-secret");
    for good in [&old, &new] {
        assert_eq!(
            get(&app, &format!("/rot/ping?hash={good}")).await.status,
            200
        );
    }
    let (dir, database) = app.stop().await;
    let app = TestApp::spawn_in(dir, database, &rotating(r#"["new-secret"]"#)).await;
    assert_problem(
        &get(&app, &format!("/rot/ping?hash={old}")).await,
        403,
        "hash_mismatch",
    );
    assert_eq!(
        get(&app, &format!("/rot/ping?hash={new}")).await.status,
        200
    );
}

#[tokio::test]
async fn refusals_answer_codes_and_change_nothing() {
    let app = TestApp::spawn_with(SEED).await;
    let good = sign("setpoint", &["a"], Environment::Live, "openendpoints");
    let cases: Vec<(String, u16, &str)> = vec![
        ("site=a&value=1".into(), 403, "hash_missing"),
        (
            format!("site=a&value=1&hash={}", &good[..63]),
            403,
            "hash_mismatch",
        ),
        ("site=a&value=1&hash=zz".into(), 403, "hash_mismatch"),
        (format!("site=b&value=1&hash={good}"), 403, "hash_mismatch"),
        (
            format!("site=a&value=1&other=2&hash={good}"),
            400,
            "unknown_parameter",
        ),
        (format!("site=a&hash={good}"), 400, "missing_parameter"),
        (
            format!("site=a&value=1&hash={good}&hash={good}"),
            400,
            "invalid_parameter",
        ),
        (
            format!("site=a&value=1&environment=staging&hash={good}"),
            400,
            "invalid_environment",
        ),
        (
            format!("site=a&value=hot&hash={good}"),
            422,
            "type_mismatch",
        ),
        (
            format!("site=a&value=%22x%22&hash={good}"),
            422,
            "type_mismatch",
        ),
    ];
    // What would be right for the values sent, in either environment: never in an answer.
    let expected = [
        good.clone(),
        sign("setpoint", &["b"], Environment::Live, "openendpoints"),
        sign("setpoint", &["a"], Environment::Preview, "openendpoints"),
    ];
    for (query, status, code) in &cases {
        let reply = get(&app, &format!("/helloapp/setpoint?{query}")).await;
        assert_problem(&reply, *status, code);
        for hash in &expected {
            assert!(
                !reply.text.contains(&hash[..16]),
                "{hash} shown: {}",
                reply.text
            );
            assert!(!format!("{:?}", reply.headers).contains(&hash[..16]));
        }
    }
    // Too many parameters (query and body counted together), too large a body, HEAD.
    let many = (0..70)
        .map(|n| format!("p{n}=1"))
        .collect::<Vec<_>>()
        .join("&");
    let reply = get(&app, &format!("/helloapp/setpoint?{many}&hash={good}")).await;
    assert_problem(&reply, 400, "invalid_parameter");
    let half = (0..40)
        .map(|n| format!("p{n}=1"))
        .collect::<Vec<_>>()
        .join("&");
    let reply = post(
        &app,
        &format!("/helloapp/setpoint?{half}"),
        "application/x-www-form-urlencoded",
        half.clone(),
    )
    .await;
    assert_problem(&reply, 400, "invalid_parameter");
    assert!(reply.text.contains("more than 64"), "{}", reply.text);
    let big = format!("site=a&value=1&hash={good}&pad={}", "x".repeat(1 << 20));
    let reply = post(
        &app,
        "/helloapp/setpoint",
        "application/x-www-form-urlencoded",
        big,
    )
    .await;
    assert_problem(&reply, 413, "payload_too_large");
    let reply = Reply::from(
        no_redirects(&app)
            .head(app.at(&format!("/helloapp/setpoint?site=a&value=1&hash={good}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 405, "HEAD would run the actions unseen");
    let ping = sign("ping", &[], Environment::Preview, "s3cret-quiet");
    let reply = get(
        &app,
        &format!("/quiet/ping?environment=preview&hash={ping}"),
    )
    .await;
    assert_problem(&reply, 400, "invalid_environment");
    let path = format!("/helloapp/setpoint?hash={good}");
    assert_problem(
        &post(&app, &path, "text/plain", "site=a&value=1").await,
        415,
        "unsupported_media_type",
    );
    let reply = post(
        &app,
        &path,
        "multipart/form-data; boundary=zz",
        "--zz\r\nbroken",
    )
    .await;
    assert_problem(&reply, 400, "invalid_parameter");
    let reply = post(
        &app,
        &path,
        "application/json",
        r#"{"site":"a","value":{"x":1}}"#,
    )
    .await;
    assert_problem(&reply, 400, "invalid_parameter");
    let reply = Reply::from(
        no_redirects(&app)
            .put(app.at(&format!("/helloapp/setpoint?site=a&value=1&hash={good}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 405);
    assert_eq!(setpoint(&app).await, Json::Null, "nothing was written");
    assert_problem(
        &get(&app, "/helloapp/nowhere?hash=00").await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn parameters_arrive_in_queries_forms_multipart_and_json() {
    let app = TestApp::spawn_with(SEED).await;
    let good = sign("setpoint", &["a"], Environment::Live, "openendpoints");
    let path = "/helloapp/setpoint";
    let form = format!("site=a&value=1.5&hash={good}");
    let reply = post(&app, path, "application/x-www-form-urlencoded", form).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(setpoint(&app).await, json!(1.5));
    let multipart = format!(
        "--b0\r\nContent-Disposition: form-data; name=\"site\"\r\n\r\na\r\n\
         --b0\r\nContent-Disposition: form-data; name=\"value\"\r\n\r\n2.5\r\n\
         --b0\r\nContent-Disposition: form-data; name=\"hash\"\r\n\r\n{good}\r\n--b0--\r\n"
    );
    let reply = post(&app, path, "multipart/form-data; boundary=b0", multipart).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(setpoint(&app).await, json!(2.5));
    // The hash in the query, the values in a JSON body (a number as its literal).
    let reply = post(
        &app,
        &format!("{path}?hash={good}"),
        "application/json",
        r#"{"site":"a","value":3.5}"#,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(setpoint(&app).await, json!(3.5));
}

/// A configuration whose endpoints exercise every action against the given receiver, static
/// folder and XRTC account.
fn actions_config(receiver: &str, static_dir: &Path, account: &str) -> String {
    format!(
        r#"
[openendpoints]
prefix = "/forms"
allow_targets = ["127.0.0.0/8"]

[webhooks]
allow_targets = ["127.0.0.0/8"]
poll_ms = 20

[[datapoint]]
key = "plant.note"
type = "string"

[[datapoint]]
key = "plant.level"
type = "float"

[[application]]
name = "plant"
secrets = ["plant-secret"]
allow_weak_secret = true
static_dir = "{static_dir}"

[[application.endpoint]]
name = "page"
parameters = [{{ name = "name", default = "form.html" }}]
static_file = "${{name}}"

[[application.endpoint]]
name = "contact"
parameters = [{{ name = "who" }}, {{ name = "note" }}, {{ name = "topping", default = "" }}, {{ name = "cv", file = true }}]
include_in_hash = ["who"]
redirect = "https://shop.example/thanks/${{who}}?t=${{topping}}"
error_redirect = "/forms/plant/page?name=sorry.html"
actions = [
  {{ type = "write-datapoint", datapoint = "plant.note", value = "${{note}}" }},
  {{ type = "publish-portal", account = "{account}", portal = "forms", payload = "${{who}}: ${{note}}" }},
  {{ type = "http-request", url = "{receiver}/crm/${{who}}" }},
  {{ type = "email", to = "ops@example.com", subject = "Contact from ${{who}}", body = "${{note}}", attach_uploads = true }},
]

[[application.endpoint]]
name = "relay"
parameters = [{{ name = "who" }}]
actions = [{{ type = "http-request", url = "{receiver}/relay", content_type = "application/x-www-form-urlencoded", body = "name=${{who}}&fixed=1" }}]

[[application.endpoint]]
name = "two"
methods = ["POST"]
parameters = [{{ name = "note" }}, {{ name = "level" }}]
actions = [
  {{ type = "write-datapoint", datapoint = "plant.note", value = "${{note}}" }},
  {{ type = "write-datapoint", datapoint = "plant.level", value = "${{level}}" }},
]

[[application.endpoint]]
name = "hop"
parameters = [{{ name = "a" }}, {{ name = "b" }}]
redirect = "/${{a}}/${{b}}"
"#,
        static_dir = static_dir.display()
    )
}

#[tokio::test]
async fn every_action_runs_and_the_call_is_an_event() {
    let files = tempfile::tempdir().unwrap();
    let statics = files.path().join("static");
    std::fs::create_dir(&statics).unwrap();
    std::fs::write(statics.join("form.html"), "<form>hello</form>").unwrap();
    std::fs::write(statics.join("sorry.html"), "sorry").unwrap();
    std::fs::write(files.path().join("outside.txt"), "secret").unwrap();
    let mut hooks = Receiver::start().await;
    let mut crm = Receiver::start().await;
    let base = crm.url.trim_end_matches("/hook").to_owned();
    // An XRTC account first: the configuration names it.
    let app = TestApp::spawn_with("").await;
    let (account, key) = crate::helpers::xrtc::register(&app, "forms@example.com").await;
    let (dir, database) = app.stop().await;
    let app = TestApp::spawn_in(dir, database, &actions_config(&base, &statics, &account)).await;
    let token = app.admin_token().await;
    let (hook, _) = app
        .subscribe(
            &token,
            json!({"url": hooks.url, "topics": ["endpoint.called"]}),
        )
        .await;

    // The static file answer, and no way out of the folder.
    let page = sign("page", &[], Environment::Live, "plant-secret");
    let reply = get(&app, &format!("/forms/plant/page?hash={page}")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text, "<form>hello</form>");
    assert_eq!(reply.header("content-type"), "text/html; charset=utf-8");
    assert_eq!(reply.header("x-content-type-options"), "nosniff");
    let reply = get(
        &app,
        &format!("/forms/plant/page?name=..%2Foutside.txt&hash={page}"),
    )
    .await;
    assert_problem(&reply, 400, "invalid_parameter");
    let reply = get(
        &app,
        &format!("/forms/plant/page?name=missing.html&hash={page}"),
    )
    .await;
    assert_problem(&reply, 404, "not_found");
    std::os::unix::fs::symlink(files.path().join("outside.txt"), statics.join("link.txt")).unwrap();
    let reply = get(
        &app,
        &format!("/forms/plant/page?name=link.txt&hash={page}"),
    )
    .await;
    assert_problem(&reply, 404, "not_found");
    // Only the call that could be answered is an event; refused ones change nothing.
    let event = hooks.next().await.json();
    assert_eq!(event["Endpoint"], "page", "an authentic call is an event");
    assert_eq!(app.deliveries(&token, &hook).await.len(), 1);

    // contact: datapoint, portal, HTTP call, e-mail with the upload; then the success redirect.
    let who = "Zoë & co";
    let contact = sign("contact", &[who], Environment::Live, "plant-secret");
    let mut body = Vec::new();
    for (name, value) in [
        ("who", who),
        ("note", "Grüße aus dem Werk"),
        ("topping", "cheese"),
        ("topping", "olives"),
        ("hash", contact.as_str()),
    ] {
        body.extend(
            format!("--XbX\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend(
        b"--XbX\r\nContent-Disposition: form-data; name=\"cv\"; filename=\"cv.pdf\"\r\n\
          Content-Type: application/pdf\r\n\r\n%PDF-1.4 fake\r\n--XbX--\r\n",
    );
    let reply = post(
        &app,
        "/forms/plant/contact",
        "multipart/form-data; boundary=XbX",
        body,
    )
    .await;
    assert_eq!(reply.status, 303, "{}", reply.text);
    assert_eq!(
        reply.header("location"),
        "https://shop.example/thanks/Zo%C3%AB%20%26%20co?t=cheese%7C%7Colives"
    );
    let note = app.get("/api/v1/datapoints/plant.note").await.json();
    assert_eq!(note["current"]["value"], "Grüße aus dem Werk");
    let mut xrtc = crate::helpers::xrtc::Client::new(&app);
    assert_eq!(xrtc.login(&account, &key).await.status, 200);
    let items = xrtc.get(r#"{"portals":[{"portalid":"forms"}]}"#).await;
    assert_eq!(items, ["Zoë & co: Grüße aus dem Werk"]);
    let got = hooks.next().await;
    let event = got.json();
    assert_eq!(got.header("x-tributech-event"), "EndpointCalledEvent");
    assert_eq!(event["Application"], "plant");
    assert_eq!(event["Endpoint"], "contact");
    assert_eq!(event["Environment"], "live");
    assert_eq!(event["Parameters"]["who"], who);
    assert_eq!(event["Parameters"]["topping"], "cheese||olives");
    assert_eq!(event["Files"][0]["FileName"], "cv.pdf");
    assert_eq!(event["Files"][0]["Size"], 13);
    let got = crm.next().await;
    assert_eq!(
        got.path, "/crm/Zo%C3%AB%20%26%20co",
        "the value is one path segment"
    );
    assert_eq!(
        got.json()["who"],
        who,
        "the default body is the parameters as JSON"
    );
    assert_eq!(got.header("content-type"), "application/json");
    let mail = newest_mail(&app.data_dir);
    assert!(mail.contains("To: <ops@example.com>"), "{mail}");
    assert!(mail.contains("Subject: =?UTF-8?B?"), "{mail}");
    assert!(
        mail.contains("Content-Disposition: attachment; filename=\"cv.pdf\""),
        "{mail}"
    );
    let parts: Vec<String> = mail
        .split("Content-Transfer-Encoding: base64\r\n\r\n")
        .skip(1)
        .map(|part| part.split("\r\n--").next().unwrap().replace("\r\n", ""))
        .collect();
    assert_eq!(
        base64_text(&parts[0]),
        "Grüße aus dem Werk\r\n",
        "the text, in UTF-8"
    );
    assert_eq!(
        base64_text(&parts[1]),
        "%PDF-1.4 fake",
        "the upload, byte for byte"
    );

    // Input that cannot be used changes nothing: the first action's value is fine, the
    // second's is not, so neither is written and no event is queued.
    let two = sign("two", &[], Environment::Live, "plant-secret");
    let reply = post(
        &app,
        &format!("/forms/plant/two?hash={two}"),
        "application/x-www-form-urlencoded",
        "note=changed&level=hot",
    )
    .await;
    assert_problem(&reply, 422, "type_mismatch");
    let note = app.get("/api/v1/datapoints/plant.note").await.json();
    assert_eq!(note["current"]["value"], "Grüße aus dem Werk");
    assert_eq!(app.deliveries(&token, &hook).await.len(), 2);
    let reply = get(&app, &format!("/forms/plant/two?note=a&level=1&hash={two}")).await;
    assert_eq!(reply.status, 405, "methods = [\"POST\"]");
    // Values never move a request or a redirect: `..` as a path segment, `//` from an empty one.
    let reply = post(
        &app,
        "/forms/plant/contact",
        "application/x-www-form-urlencoded",
        format!(
            "who=..&note=n&hash={}",
            sign("contact", &[".."], Environment::Live, "plant-secret")
        ),
    )
    .await;
    assert_eq!(
        reply.header("location"),
        "/forms/plant/page?name=sorry.html&error=invalid_parameter"
    );
    let hop = sign("hop", &[], Environment::Live, "plant-secret");
    let reply = get(
        &app,
        &format!("/forms/plant/hop?a=&b=evil.example&hash={hop}"),
    )
    .await;
    assert_problem(&reply, 400, "invalid_parameter");
    let reply = get(&app, &format!("/forms/plant/hop?a=x&b=y&hash={hop}")).await;
    assert_eq!(reply.header("location"), "/x/y");
    assert_eq!(app.deliveries(&token, &hook).await.len(), 3);

    // An HTTP call with a templated form body.
    let relay = sign("relay", &[], Environment::Live, "plant-secret");
    let reply = get(
        &app,
        &format!("/forms/plant/relay?who=a%26b%3Dc&hash={relay}"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let got = crm.next().await;
    assert_eq!(
        std::str::from_utf8(&got.body).unwrap(),
        "name=a%26b%3Dc&fixed=1"
    );

    // A failing call: 424, and a form's error redirect with the code.
    crm.answer([Answer::status(500)]);
    let reply = get(&app, &format!("/forms/plant/relay?who=x&hash={relay}")).await;
    assert_problem(&reply, 424, "action_failed");
    assert!(reply.json()["detail"].as_str().unwrap().contains("500"));
    let wrong = sign(
        "contact",
        &["someone else"],
        Environment::Live,
        "plant-secret",
    );
    let reply = post(
        &app,
        "/forms/plant/contact",
        "application/x-www-form-urlencoded",
        format!("who=x&note=n&hash={wrong}"),
    )
    .await;
    assert_eq!(reply.status, 303);
    assert_eq!(
        reply.header("location"),
        "/forms/plant/page?name=sorry.html&error=hash_mismatch"
    );
}

fn base64_text(encoded: &str) -> String {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

/// The newest e-mail in the outbox.
fn newest_mail(data_dir: &Path) -> String {
    let mut files: Vec<_> = std::fs::read_dir(data_dir.join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    std::fs::read_to_string(files.last().unwrap()).unwrap()
}

#[test]
fn configuration_mistakes_are_named() {
    let bad = r#"
[openendpoints]
prefix = "forms/"

[[application]]
name = "api"
secrets = []

[[application.endpoint]]
name = "e"
parameters = [{ name = "hash" }]
include_in_hash = ["nope"]
redirect = "https://${x}.example/"
actions = [{ type = "write-datapoint", datapoint = "missing", value = "1" }]

[[application]]
name = "ok"
secrets = ["s"]
allow_weak_secret = true

[[application.endpoint]]
name = "r"
parameters = [{ name = "p" }]
redirect = "//evil.example/${p}"
error_redirect = "https://a.example/${p}"
methods = ["PUT"]
actions = [
  { type = "email", to = "${p}", subject = "s", body = "b" },
  { type = "http-request", url = "https://a.example/x", body = "{\"n\":${p}}" },
  { type = "http-request", url = "https://a.example/x", content_type = "application/xml", body = "<n>${p}</n>" },
  { type = "http-request", url = "http://10.1.2.3/x" },
]

[[application.endpoint]]
name = "f"
static_file = "../secret"
"#;
    let error = portico::config::Config::from_toml_str(bad)
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    for expected in [
        "openendpoints.prefix",
        "application[0].name",
        "application[0].secrets",
        "application[0].endpoint[0].parameters[0].name",
        "application[0].endpoint[0].include_in_hash[0]",
        "application[0].endpoint[0].redirect",
        "application[0].endpoint[0].actions[0].datapoint",
        "application[1].endpoint[0].redirect",
        "application[1].endpoint[0].error_redirect",
        "application[1].endpoint[0].methods",
        "application[1].endpoint[0].actions[0].to",
        "application[1].endpoint[0].actions[1].body",
        "application[1].endpoint[0].actions[2].body",
        "application[1].endpoint[0].actions[3].url",
        "openendpoints.allow_targets",
        "application[1].endpoint[1].static_file",
    ] {
        assert!(error.contains(expected), "`{expected}` in:\n{error}");
    }
    let unknown = portico::config::Config::from_toml_str(
        "[[application]]\nname = \"a\"\nsecrets = [\"s\"]\nallow_weak_secret = true\n[[application.endpoint]]\nname = \"e\"\n\
         actions = [{ type = \"email\", to = \"a@b.example\", subject = \"s\", body = \"b\", cc = \"x\" }]\n",
    );
    assert!(unknown.unwrap_err().to_string().contains("cc"));
}

#[test]
fn a_secret_shorter_than_128_bits_needs_allow_weak_secret_and_is_warned_of() {
    let config = |secret: &str, extra: &str| {
        portico::config::Config::from_toml_str(&format!(
            "[[application]]\nname = \"a\"\nsecrets = [\"{secret}\"]\n{extra}\
             [[application.endpoint]]\nname = \"e\"\n"
        ))
        .unwrap()
    };
    let refused = config("short-secret", "")
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("application[0].secrets") && refused.contains("128 bits"),
        "{refused}"
    );
    let allowed = config("short-secret", "allow_weak_secret = true\n");
    let catalog = allowed.validate().unwrap();
    assert!(
        allowed
            .warnings(&catalog)
            .iter()
            .any(|w| w.contains("allow_weak_secret"))
    );
    let strong = config("a-secret-of-at-least-sixteen-bytes", "");
    let catalog = strong.validate().unwrap();
    assert!(strong.warnings(&catalog).is_empty());
}

#[test]
fn the_readmes_contact_form_configuration_is_valid_and_hashes_its_source_only() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let at = readme.find("A contact form that records a note").unwrap();
    let start = readme[at..].find("```toml").unwrap() + at + "```toml".len();
    let end = readme[start..].find("```").unwrap() + start;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shop.key"), "a-key-for-the-test\n").unwrap();
    let toml = readme[start..end]
        .replace(
            "/etc/portico/shop.key",
            dir.path().join("shop.key").to_str().unwrap(),
        )
        .replace("/srv/shop/static", dir.path().to_str().unwrap());
    let catalog = portico::config::Config::from_toml_str(&toml)
        .unwrap()
        .validate()
        .unwrap_or_else(|e| panic!("README example: {e}"));
    let contact = catalog.signed.find("shop", "contact").unwrap();
    let pairs = [("source".to_owned(), "spring-flyer".to_owned())];
    let digest = contact
        .hash_for(&pairs, Environment::Live, &catalog.signed.settings)
        .unwrap();
    assert_eq!(
        hex(&digest),
        sign(
            "contact",
            &["spring-flyer"],
            Environment::Live,
            "a-key-for-the-test"
        )
    );
}

#[tokio::test]
async fn an_address_that_calls_too_often_waits() {
    let app = TestApp::spawn_with(&format!(
        "[openendpoints]\ncalls_burst = 2\ncalls_refill_seconds = 60\n{SEED}"
    ))
    .await;
    let path = format!("/helloapp/helloworld?foo=abc&long=def&hash={LIVE}");
    assert_eq!(get(&app, &path).await.status, 200);
    let wrong = "/helloapp/helloworld?foo=abc&long=def&hash=00";
    assert_problem(&get(&app, wrong).await, 403, "hash_mismatch");
    let reply = get(&app, &path).await;
    assert_problem(&reply, 429, "too_many_requests");
    let after: u64 = reply.header("retry-after").parse().unwrap();
    assert!((1..=60).contains(&after), "{after}");
}

#[tokio::test]
async fn a_name_that_resolves_to_a_private_address_is_never_called() {
    let app = TestApp::spawn_with(
        r#"
[[application]]
name = "a"
secrets = ["s"]
allow_weak_secret = true

[[application.endpoint]]
name = "call"
actions = [{ type = "http-request", url = "http://localhost:9/never" }]
"#,
    )
    .await;
    let hash = sign("call", &[], Environment::Live, "s");
    let reply = get(&app, &format!("/a/call?hash={hash}")).await;
    assert_problem(&reply, 424, "action_failed");
    assert!(reply.text.contains("not global"), "{}", reply.text);
    assert!(
        reply.text.contains("openendpoints.allow_targets"),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn hostile_requests_never_get_a_5xx() {
    let app = TestApp::spawn_with(&format!("[openendpoints]\ncalls_burst = 100000\n{SEED}")).await;
    let mut noise = crate::helpers::Noise(0x0e_5eed_0042_abcd);
    let good = sign("setpoint", &["a"], Environment::Live, "openendpoints");
    let names = [
        "site",
        "value",
        "hash",
        "environment",
        "x",
        "",
        "site[]",
        "%00",
    ];
    let values = [
        "a",
        "A ",
        "1",
        "1e999",
        "-0",
        "NaN",
        "",
        "%ZZ",
        "%C3%A9",
        "%00",
        "true",
        "[1]",
        "{}",
        "preview",
        "live",
        &good,
        "..",
        "/",
        "%2F%2Fevil",
        "\"",
    ];
    let bodies = [
        "",
        "site=a",
        "{\"site\":\"a\"}",
        "--b\r\n",
        "value=2&value=3",
        "%%%",
        "{\"a\":",
    ];
    let content_types = [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=b",
        "application/json",
        "text/plain",
        "multipart/form-data",
    ];
    for _ in 0..300 {
        let query: Vec<String> = (0..noise.next() % 6)
            .map(|_| format!("{}={}", noise.pick(&names), noise.pick(&values)))
            .collect();
        let path = format!("/helloapp/setpoint?{}", query.join("&"));
        let reply = if noise.next().is_multiple_of(2) {
            get(&app, &path).await
        } else {
            let body = noise.pick(&bodies).to_owned();
            post(&app, &path, noise.pick(&content_types), body).await
        };
        assert!(
            reply.status.as_u16() < 500,
            "{path}: {} {}",
            reply.status,
            reply.text
        );
        if !reply.status.is_success() {
            assert!(reply.json()["code"].is_string(), "{path}: {}", reply.text);
        }
    }
}

#[tokio::test]
async fn listed_origins_may_call_from_javascript() {
    let app = TestApp::spawn_with(
        r#"
[[application]]
name = "shop"
secrets = ["s"]
allow_weak_secret = true
cors_origins = ["https://shop.example"]

[[application.endpoint]]
name = "ping"
methods = ["POST"]
"#,
    )
    .await;
    let hash = sign("ping", &[], Environment::Live, "s");
    let client = no_redirects(&app);
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, app.at("/shop/ping"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let reply = Reply::from(preflight("https://shop.example").await.unwrap()).await;
    assert_eq!(reply.status, 204);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        "https://shop.example"
    );
    assert_eq!(reply.header("access-control-allow-methods"), "POST");
    assert_eq!(reply.header("access-control-allow-headers"), "content-type");
    assert!(
        reply
            .headers
            .get("access-control-allow-credentials")
            .is_none()
    );
    let reply = Reply::from(preflight("https://evil.example").await.unwrap()).await;
    assert_eq!(reply.status, 204);
    assert!(reply.headers.get("access-control-allow-origin").is_none());
    for (origin, allowed) in [
        ("https://shop.example", true),
        ("https://evil.example", false),
    ] {
        let reply = Reply::from(
            client
                .post(app.at(&format!("/shop/ping?hash={hash}")))
                .header("origin", origin)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.header("vary"), "origin");
        assert_eq!(
            reply.headers.get("access-control-allow-origin").is_some(),
            allowed
        );
    }
    let bad = portico::config::Config::from_toml_str(
        "[[application]]\nname = \"a\"\nsecrets = [\"s\"]\nallow_weak_secret = true\ncors_origins = [\"*\", \"https://a.example/\"]\n",
    )
    .unwrap()
    .validate()
    .unwrap_err()
    .to_string();
    assert!(
        bad.contains("cors_origins[0]") && bad.contains("cors_origins[1]"),
        "{bad}"
    );
}
