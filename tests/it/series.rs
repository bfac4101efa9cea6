//! Streams of values and their proofs, over HTTP: every encoding in and out (the Tributech
//! golden values among them), the timestamp rules, refusals that store nothing, paging and the
//! cursor, trees closing by size and by age, validation catching a changed value and a
//! re-signed root, inclusion proofs, and `kill -9` during ingest.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Value as Json, json};

use crate::helpers::{TestApp, TestDatabase, client_for};

/// The `n`th second of 2026 as a value timestamp.
fn ts(n: u32) -> String {
    format!(
        "2026-01-01T{:02}:{:02}:{:02}.000000Z",
        n / 3600,
        n / 60 % 60,
        n % 60
    )
}

/// The same instant as the Tributech API writes it.
fn dotnet(n: u32) -> String {
    ts(n).replace('Z', "+00:00")
}

async fn create(app: &TestApp, token: &str, spec: Json) -> String {
    let reply = app
        .call(Method::POST, "/api/v1/streams", token, Some(spec))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json()["id"].as_str().expect("id").to_owned()
}

async fn write(app: &TestApp, token: &str, kind: &str, items: Json) -> crate::helpers::Reply {
    app.call(
        Method::POST,
        &format!("/demeter/api/values/{kind}"),
        token,
        Some(items),
    )
    .await
}

async fn read(app: &TestApp, token: &str, kind: &str, query: &str) -> Vec<Json> {
    let reply = app
        .call(
            Method::GET,
            &format!("/demeter/api/values/{kind}?{query}"),
            token,
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json().as_array().expect("array").clone()
}

/// Values `0..count` (seconds) of a DOUBLE stream, `n * 1.5` each.
fn doubles(stream: &str, range: std::ops::Range<u32>) -> Json {
    Json::Array(
        range
            .map(|n| json!({"streamId": stream, "timestamp": ts(n), "value": f64::from(n) * 1.5}))
            .collect(),
    )
}

/// Writes [`doubles`] and expects them stored.
async fn write_doubles(app: &TestApp, token: &str, stream: &str, range: std::ops::Range<u32>) {
    let reply = write(app, token, "double", doubles(stream, range)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

/// Polls `locations/multiple` until `count` proofs exist (the prover closes trees in the
/// background; this waits for that condition, bounded).
async fn proofs(app: &TestApp, token: &str, stream: &str, count: usize) -> Vec<Json> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let reply = app
            .call(
                Method::GET,
                &format!("/demeter/api/locations/multiple?StreamId={stream}"),
                token,
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let found = reply.json().as_array().expect("array").clone();
        if found.len() >= count {
            // The test's other streams have no proofs: the log holds this stream's.
            checkpointed(app, count).await;
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{count} proofs were not built: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the latest checkpoint until it covers `size` roots; answers the note.
async fn checkpointed(app: &TestApp, size: usize) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let reply = app.get("/api/v1/checkpoints/latest").await;
        if reply.status == 200 {
            let covered: usize = reply
                .text
                .lines()
                .nth(1)
                .and_then(|size| size.parse().ok())
                .expect("a checkpoint's second line is its size");
            if covered >= size {
                return reply.text;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no checkpoint covers {size} roots: {}",
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn validate(app: &TestApp, token: &str, stream: &str, at: &str) -> Json {
    let reply = app
        .call(
            Method::POST,
            "/demeter/api/validate",
            token,
            Some(json!({"streamId": stream, "timestamp": at})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()
}

#[tokio::test]
async fn every_encoding_goes_in_and_comes_out_as_dotnet_writes_it() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let utf8 = "Grüße ✓";
    let cases = [
        ("DOUBLE", "double", json!(2.3), Some("ZmZmZmZmAkA=")),
        ("FLOAT", "float", json!(16.5), Some("AACEQQ==")),
        ("INT32", "int", json!(-2), Some("/v///w==")),
        (
            "INT64",
            "long",
            json!(9_007_199_254_740_993i64),
            Some("AQAAAAAAIAA="),
        ),
        ("BOOL", "bool", json!(true), Some("AQ==")),
        ("STRING_UTF8", "stringUtf8", json!(utf8), None),
        (
            "STRING_BASE64",
            "string",
            json!("AAEC/w=="),
            Some("AAEC/w=="),
        ),
        ("BYTEARRAY", "byte", json!("AAEC"), Some("AAEC")),
    ];
    for (encoding, kind, value, bytes) in cases {
        let id = create(&app, &token, json!({"name": kind, "encoding": encoding})).await;
        let reply = write(
            &app,
            &token,
            kind,
            json!([{"streamId": id, "timestamp": ts(1), "value": value}]),
        )
        .await;
        assert_eq!(reply.status, 200, "{kind}: {}", reply.text);
        assert_eq!(reply.json(), json!({"insertedCount": 1}));

        let typed = read(&app, &token, kind, &format!("StreamId={id}")).await;
        assert_eq!(typed.len(), 1, "{kind}");
        assert_eq!(typed[0]["value"], value, "{kind} read back");
        assert_eq!(typed[0]["streamId"], id.as_str());
        assert_eq!(typed[0]["timestamp"], dotnet(1));
        assert!(
            typed[0]["storedAt"]
                .as_str()
                .is_some_and(|t| t.ends_with("+00:00"))
        );

        let raw = read(&app, &token, "byte", &format!("StreamId={id}")).await;
        let expected = bytes.map_or_else(|| STANDARD.encode(utf8), str::to_owned);
        assert_eq!(raw[0]["value"], expected, "{kind} bytes");

        let native = app
            .call(
                Method::GET,
                &format!("/api/v1/streams/{id}/values"),
                &token,
                None,
            )
            .await;
        assert_eq!(native.status, 200, "{}", native.text);
        assert_eq!(
            native.json()["values"][0]["value"],
            value,
            "{kind} natively"
        );
        assert_eq!(native.json()["values"][0]["timestamp"], ts(1));
    }

    // The raw endpoint takes base64, a byte array, or an array of doubles.
    let id = create(&app, &token, json!({"name": "raw", "encoding": "DOUBLE"})).await;
    let reply = app
        .call(
            Method::POST,
            "/demeter/api/values",
            &token,
            Some(json!([
                {"streamId": id, "timestamp": ts(1), "value": "ZmZmZmZmAkA="},
                {"streamId": id, "timestamp": ts(2), "value": [0, 0, 0, 0, 0, 0, 8, 64]},
                {"StreamId": id, "Timestamp": ts(3), "Value": [4.5]},
            ])),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["insertedCount"], 3);
    let values: Vec<Json> = read(&app, &token, "double", &format!("StreamId={id}"))
        .await
        .iter()
        .map(|v| v["value"].clone())
        .collect();
    assert_eq!(values, [json!(2.3), json!(3.0), json!(4.5)]);

    // Bodies as ASP.NET takes them: text/json and application/*+json.
    for content_type in ["text/json", "application/json-patch+json"] {
        let reply = app
            .client
            .post(app.at("/demeter/api/values/double"))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(json!([{"streamId": id, "timestamp": ts(10 + content_type.len() as u32), "value": 1.0}]).to_string())
            .send()
            .await
            .expect("POST");
        assert_eq!(reply.status(), 200, "{content_type}");
    }
}

#[tokio::test]
async fn timestamps_keep_microseconds_in_utc_and_finer_ones_are_refused() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let id = create(&app, &token, json!({"name": "t", "encoding": "DOUBLE"})).await;
    let reply = write(
        &app,
        &token,
        "double",
        json!([{"streamId": id, "timestamp": "2020-08-03T14:41:01.2074910+02:00", "value": 1.0}]),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = write(
        &app,
        &token,
        "double",
        json!([{"streamId": id, "timestamp": "2020-08-03T12:41:01.2074913Z", "value": 2.0}]),
    )
    .await;
    let problem = reply.assert_problem(422, "invalid_value");
    assert!(
        problem["detail"].as_str().unwrap().contains("microsecond"),
        "{problem}"
    );
    let values = read(&app, &token, "double", &format!("StreamId={id}")).await;
    assert_eq!(values.len(), 1);
    assert_eq!(values[0]["timestamp"], "2020-08-03T12:41:01.207491+00:00");
    // Query times without an offset are UTC, as .NET clients send them.
    let from = read(
        &app,
        &token,
        "double",
        &format!("StreamId={id}&From=2020-08-03T12:41:01.207492"),
    )
    .await;
    assert!(from.is_empty());
}

#[tokio::test]
async fn a_refused_batch_stores_nothing() {
    let app = TestApp::spawn_with(&format!(
        "{}\n[values]\nmax_batch = 5\n",
        crate::helpers::DATAPOINTS
    ))
    .await;
    let token = app.admin_token().await;
    let id = create(
        &app,
        &token,
        json!({"name": "r", "encoding": "INT32", "merkleTreeDepth": 1}),
    )
    .await;
    let other = create(&app, &token, json!({"name": "f", "encoding": "FLOAT"})).await;
    let good = |n: u32| json!({"streamId": id, "timestamp": ts(n), "value": n});
    assert_eq!(
        write(&app, &token, "int", json!([good(1)])).await.status,
        200
    );
    let count = || async {
        read(&app, &token, "byte", &format!("StreamId={id}"))
            .await
            .len()
    };

    let unknown = "00000000-0000-4000-8000-000000000000";
    let cases = [
        (
            json!([good(2), {"streamId": unknown, "timestamp": ts(3), "value": 1}]),
            "int",
            404,
            "not_found",
        ),
        (
            json!([good(2), {"streamId": id, "timestamp": ts(3), "value": 2_147_483_648u64}]),
            "int",
            422,
            "invalid_value",
        ),
        (json!([good(2), good(2)]), "int", 409, "conflict"),
        (json!([good(2), good(1)]), "int", 409, "conflict"),
        (
            json!([good(2), good(3), good(4), good(5), good(6), good(7)]),
            "int",
            413,
            "payload_too_large",
        ),
        (
            json!([good(2), {"streamId": other, "timestamp": ts(3), "value": 1}]),
            "int",
            422,
            "invalid_value",
        ),
        (
            json!([{"streamId": id, "timestamp": ts(2)}]),
            "int",
            422,
            "invalid_value",
        ),
        (json!([good(2)]), "long", 422, "invalid_value"),
        (json!([good(2)]), "nope", 404, "not_found"),
        (
            json!([{"streamId": id, "timestamp": ts(2), "value": "AAAA"}]),
            "string",
            422,
            "invalid_value",
        ),
    ];
    for (body, kind, status, code) in cases {
        let reply = write(&app, &token, kind, body.clone()).await;
        reply.assert_problem(status, code);
        assert_eq!(count().await, 1, "{body} stored something");
    }
    let anonymous = app
        .authorized(
            Method::POST,
            "/demeter/api/values/int",
            None,
            Some(&json!([good(2)]).to_string()),
        )
        .await;
    anonymous.assert_problem(401, "unauthenticated");

    // A value at or before a closed tree's last timestamp is refused.
    assert_eq!(
        write(&app, &token, "int", json!([good(4)])).await.status,
        200
    );
    proofs(&app, &token, &id, 1).await;
    write(&app, &token, "int", json!([good(3), good(9)]))
        .await
        .assert_problem(409, "conflict");
    assert_eq!(count().await, 2);
}

#[tokio::test]
async fn pages_follow_the_tributech_paging_and_the_native_cursor_holds_while_values_arrive() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let id = create(&app, &token, json!({"name": "p", "encoding": "DOUBLE"})).await;
    let reply = write(&app, &token, "double", doubles(&id, 0..250)).await;
    assert_eq!(reply.json()["insertedCount"], 250);

    let page = |n: u32, extra: &str| {
        let query = format!("StreamId={id}&PageSize=100&PageNumber={n}{extra}");
        let (app, token) = (&app, &token);
        async move { read(app, token, "double", &query).await }
    };
    let (p1, p2, p3, p4) = (
        page(1, "").await,
        page(2, "").await,
        page(3, "").await,
        page(4, "").await,
    );
    assert_eq!((p1.len(), p2.len(), p3.len(), p4.len()), (100, 100, 50, 0));
    assert_eq!(p1[0]["timestamp"], dotnet(0));
    assert_eq!(p2[0]["timestamp"], dotnet(100));
    assert_eq!(p3[49]["value"], json!(249.0 * 1.5));
    let desc = page(1, "&orderby=desc").await;
    assert_eq!(desc[0]["timestamp"], dotnet(249));
    let ranged = read(
        &app,
        &token,
        "double",
        &format!("StreamId={id}&From={}&To={}", ts(10), ts(20)),
    )
    .await;
    assert_eq!(ranged.len(), 10, "From inclusive, To exclusive");
    assert_eq!(ranged[0]["timestamp"], dotnet(10));

    // The native cursor: values arriving after the cursor are read once, in order.
    let mut seen = Vec::new();
    let mut path = format!("/api/v1/streams/{id}/values?limit=100");
    let mut added = false;
    loop {
        let reply = app.call(Method::GET, &path, &token, None).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let body = reply.json();
        seen.extend(
            body["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["timestamp"].as_str().unwrap().to_owned()),
        );
        if !added {
            let more = write(&app, &token, "double", doubles(&id, 250..260)).await;
            assert_eq!(more.status, 200);
            added = true;
        }
        match body["next"].as_str() {
            Some(next) => path = format!("/api/v1/streams/{id}/values?limit=100&after={next}"),
            None => break,
        }
    }
    let all: Vec<String> = (0..260).map(ts).collect();
    assert_eq!(seen, all);

    app.call(
        Method::GET,
        &format!("/api/v1/streams/{id}/values?limit=0"),
        &token,
        None,
    )
    .await
    .assert_problem(422, "invalid_value");
    app.call(
        Method::GET,
        &format!("/demeter/api/values/double?StreamId={id}&PageNumber=0"),
        &token,
        None,
    )
    .await
    .assert_problem(422, "invalid_value");
}

#[tokio::test]
async fn trees_close_by_size_and_validate() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let id = create(
        &app,
        &token,
        json!({"name": "s", "encoding": "DOUBLE", "merkleTreeDepth": 2}),
    )
    .await;
    write_doubles(&app, &token, &id, 0..10).await;
    let found = proofs(&app, &token, &id, 2).await;
    assert_eq!(found.len(), 2, "two full trees of 4, two values still open");
    assert_eq!(found[0]["lastTimestamp"], dotnet(3));
    assert_eq!(found[1]["lastTimestamp"], dotnet(7));
    assert_eq!(found[0]["merkleTreeDepth"], 2);
    assert_eq!(found[0]["transactionId"], "");
    assert_eq!(found[0]["validationProofResult"], Json::Null);

    let verdict = validate(&app, &token, &id, &ts(5)).await;
    assert_eq!(
        verdict,
        json!({"validProofExists": true, "resultMessage": "Proof successfully validated", "resultCode": "Success"})
    );
    assert_eq!(
        validate(&app, &token, &id, &ts(9)).await["resultCode"],
        "State_ProofPending"
    );
    assert_eq!(
        validate(&app, &token, &id, &ts(99)).await["resultCode"],
        "Fail_ValuesNotFound"
    );

    let history = app
        .call(
            Method::GET,
            &format!(
                "/demeter/api/proofhistory?StreamId={id}&Timestamp={}",
                ts(5)
            ),
            &token,
            None,
        )
        .await;
    assert_eq!(history.status, 200, "{}", history.text);
    let history = history.json();
    assert_eq!(history["lastTimestamp"], dotnet(7));
    assert_eq!(
        history["validationHistory"][0]["validationProofResult"],
        "Success"
    );
    assert_eq!(
        STANDARD
            .decode(history["rootHash"].as_str().unwrap())
            .unwrap()
            .len(),
        32
    );
    assert_eq!(
        STANDARD
            .decode(history["signature"].as_str().unwrap())
            .unwrap()
            .len(),
        256
    );
    let located = proofs(&app, &token, &id, 2).await;
    assert_eq!(located[1]["validationProofResult"], "Success");

    // The inclusion proof recomputes to the signed root.
    let reply = app
        .call(
            Method::GET,
            &format!("/api/v1/streams/{id}/values/{}/proof", ts(6)),
            &token,
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let proof = reply.json();
    assert_eq!(proof["leafIndex"], 2);
    assert_eq!(proof["treeSize"], 4);
    let stream = portico::series::StreamId::parse(&id).unwrap();
    let value = STANDARD.decode(proof["value"].as_str().unwrap()).unwrap();
    assert_eq!(value, 9.0f64.to_le_bytes());
    let leaf = portico::merkle::leaf_hash(&portico::series::proof::leaf(
        &stream,
        proof["timestampMicros"].as_i64().unwrap(),
        &value,
    ));
    let path: Vec<[u8; 32]> = proof["auditPath"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            STANDARD
                .decode(h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect();
    let root = STANDARD
        .decode(proof["proof"]["rootHash"].as_str().unwrap())
        .unwrap();
    portico::merkle::verify_inclusion(2, 4, &leaf, &path, &root).expect("inclusion");
    app.call(
        Method::GET,
        &format!("/api/v1/streams/{id}/values/{}/proof", ts(9)),
        &token,
        None,
    )
    .await
    .assert_problem(409, "conflict");

    // The root is leaf `logIndex` of the log under the signed checkpoint.
    let checkpoint = &proof["checkpoint"];
    let note = checkpoint["note"].as_str().unwrap();
    assert!(note.starts_with("portico/proofs\n2\n"), "{note}");
    let vkey = app.get("/api/v1/checkpoints/key").await.text;
    let public = STANDARD
        .decode(vkey.splitn(3, '+').nth(2).unwrap())
        .unwrap();
    assert_eq!(public[0], 1, "Ed25519");
    let signed = portico::series::checkpoint::verify(note, "portico/proofs", &public[1..])
        .expect("the checkpoint verifies");
    let root: [u8; 32] = root.try_into().unwrap();
    let log_leaf = portico::merkle::leaf_hash(&portico::series::proof::log_leaf(
        &stream,
        proof["proof"]["lastTimestampMicros"].as_i64().unwrap(),
        4,
        &root,
    ));
    let log_path: Vec<[u8; 32]> = checkpoint["logPath"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            STANDARD
                .decode(h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect();
    portico::merkle::verify_inclusion(
        checkpoint["logIndex"].as_u64().unwrap(),
        signed.size,
        &log_leaf,
        &log_path,
        &signed.root,
    )
    .expect("in the log");

    let keys = app.get("/api/v1/proofs/keys").await.json();

    // `portico proof verify` checks the same offline, and refuses a changed value.
    let dir = tempfile::tempdir().expect("temp dir");
    let verify = |doc: &Json| {
        let (file, jwks) = (dir.path().join("proof.json"), dir.path().join("keys.json"));
        std::fs::write(&file, doc.to_string()).expect("proof file");
        std::fs::write(&jwks, keys.to_string()).expect("keys file");
        std::process::Command::new(env!("CARGO_BIN_EXE_portico"))
            .args(["proof", "verify"])
            .arg(&file)
            .arg("--keys")
            .arg(&jwks)
            .output()
            .expect("portico proof verify")
    };
    let ok = verify(&proof);
    let said = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{said}");
    assert!(
        said.starts_with("verified: ") && said.contains("leaf 2 of a tree of 4"),
        "{said}"
    );
    let mut changed = proof.clone();
    changed["value"] = json!(STANDARD.encode(9.5f64.to_le_bytes()));
    let refused = verify(&changed);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stdout).contains("not in the tree"),
        "{}",
        String::from_utf8_lossy(&refused.stdout)
    );
    let mut resigned = proof.clone();
    resigned["proof"]["signature"] = json!(STANDARD.encode([7u8; 256]));
    assert_eq!(verify(&resigned).status.code(), Some(1));
    let signing = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == proof["proof"]["keyId"])
        .expect("the proof key is published");
    assert_eq!(signing["proofKind"], "SHA256_RSA2048_PSS");
    assert!(
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["purpose"] == "checkpoint"),
        "{keys}"
    );

    // More trees: the bigger log is consistent with the smaller.
    write_doubles(&app, &token, &id, 10..18).await;
    let later = proofs(&app, &token, &id, 4).await;
    assert_eq!(later.len(), 4);
    let newest = checkpointed(&app, 4).await;
    let newer = portico::series::checkpoint::verify(&newest, "portico/proofs", &public[1..])
        .expect("verifies");
    let reply = app
        .get(&format!(
            "/api/v1/checkpoints/consistency?from={}&to={}",
            signed.size, newer.size
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let consistency: Vec<[u8; 32]> = reply.json()["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            STANDARD
                .decode(h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect();
    portico::merkle::verify_consistency(
        signed.size,
        newer.size,
        &signed.root,
        &newer.root,
        &consistency,
    )
    .expect("consistent");
    app.get("/api/v1/checkpoints/consistency?from=0&to=1")
        .await
        .assert_problem(422, "invalid_value");

    let range = app
        .call(
            Method::POST,
            &format!("/api/v1/streams/{id}/validate"),
            &token,
            Some(json!({})),
        )
        .await;
    assert_eq!(
        range.json(),
        json!({"streamId": id, "valid": true, "numberOfProofs": 4, "validProofs": 4, "failures": []})
    );
}

#[tokio::test]
async fn a_smaller_tree_closes_when_its_first_value_is_old_enough() {
    use portico::clock::{Clock, ManualClock, SystemClock};
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app = TestApp::spawn_clocked(crate::helpers::DATAPOINTS, clock.clone()).await;
    let token = app.admin_token().await;
    let id = create(
        &app,
        &token,
        json!({"name": "a", "encoding": "DOUBLE", "maxMerkleTreeAgeSeconds": 60,
               "proofKind": "SHA256_ECDSAP256_IEEEP1363"}),
    )
    .await;
    write_doubles(&app, &token, &id, 0..3).await;
    clock.advance(time::Duration::seconds(61));
    let found = proofs(&app, &token, &id, 1).await;
    assert_eq!(found[0]["lastTimestamp"], dotnet(2));
    assert_eq!(
        found[0]["merkleTreeDepth"], 2,
        "3 values: depth ceil(log2 3)"
    );
    assert_eq!(
        validate(&app, &token, &id, &ts(0)).await["resultCode"],
        "Success"
    );
    let history = app
        .call(
            Method::GET,
            &format!(
                "/demeter/api/proofhistory?StreamId={id}&Timestamp={}",
                ts(1)
            ),
            &token,
            None,
        )
        .await
        .json();
    let signature = STANDARD
        .decode(history["signature"].as_str().unwrap())
        .unwrap();
    assert_eq!(signature.len(), 64, "P-256 r ‖ s");
}

/// Runs `sql` on the test's database, behind Portico's back.
async fn tamper(database: &TestDatabase, sql: &str) {
    if database.is_postgres() {
        let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&pool)
            .await
            .expect("tamper");
        pool.close().await;
    } else {
        let pool = sqlx::SqlitePool::connect(&database.url)
            .await
            .expect("connect");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&pool)
            .await
            .expect("tamper");
        pool.close().await;
    }
}

fn hex_literal(database: &TestDatabase, bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if database.is_postgres() {
        format!("'\\x{hex}'::bytea")
    } else {
        format!("X'{hex}'")
    }
}

#[tokio::test]
async fn a_value_changed_behind_portico_fails_and_a_re_signed_root_too() {
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let id = create(
        &app,
        &token,
        json!({"name": "x", "encoding": "DOUBLE", "merkleTreeDepth": 2}),
    )
    .await;
    write_doubles(&app, &token, &id, 0..8).await;
    proofs(&app, &token, &id, 2).await;
    assert_eq!(
        validate(&app, &token, &id, &ts(1)).await["resultCode"],
        "Success"
    );

    // The second tree's leaf in the log changed: the signed checkpoint no longer holds the
    // first tree's root on the path through it.
    tamper(
        &app.database,
        &format!(
            "UPDATE proof_log_nodes SET hash = {} WHERE level = 0 AND idx = 1",
            hex_literal(&app.database, &[0; 32])
        ),
    )
    .await;
    assert_eq!(
        validate(&app, &token, &id, &ts(1)).await["resultCode"],
        "Fail_ProofNotInChain"
    );

    // 1.5 becomes 99.0 in the database.
    let micros = |n: u32| 1_767_225_600_000_000i64 + i64::from(n) * 1_000_000;
    let changed = 99.0f64.to_le_bytes();
    tamper(
        &app.database,
        &format!(
            "UPDATE series_values SET value = {} WHERE ts_us = {}",
            hex_literal(&app.database, &changed),
            micros(1)
        ),
    )
    .await;
    let verdict = validate(&app, &token, &id, &ts(2)).await;
    assert_eq!(verdict["resultCode"], "Fail_RootHashMismatch");
    assert_eq!(verdict["validProofExists"], false);

    // The forger recomputes the root and signs it with a key of their own.
    use portico::merkle;
    use portico::series::proof;
    let stream = portico::series::StreamId::parse(&id).unwrap();
    let leaves: Vec<merkle::Hash> = (0..4u32)
        .map(|n| {
            let value = if n == 1 {
                changed
            } else {
                (f64::from(n) * 1.5).to_le_bytes()
            };
            merkle::leaf_hash(&proof::leaf(&stream, micros(n), &value))
        })
        .collect();
    let root = merkle::root(&leaves);
    let kind = proof::ProofKind::SHA256_RSA2048_PSS;
    let forged = proof::ProofSigner::generate(kind).unwrap();
    let signature = proof::ProofSigner::from_pkcs8(kind, &forged.kid, &forged.private_der)
        .unwrap()
        .sign(&root)
        .unwrap();
    tamper(
        &app.database,
        &format!(
            "UPDATE series_proofs SET root = {}, signature = {} WHERE log_index = 0",
            hex_literal(&app.database, &root),
            hex_literal(&app.database, &signature)
        ),
    )
    .await;
    let verdict = validate(&app, &token, &id, &ts(2)).await;
    assert_eq!(verdict["resultCode"], "Fail_SignatureMismatch");
    let history = app
        .call(
            Method::GET,
            &format!(
                "/demeter/api/proofhistory?StreamId={id}&Timestamp={}",
                ts(0)
            ),
            &token,
            None,
        )
        .await
        .json();
    let results: Vec<&str> = history["validationHistory"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["validationProofResult"].as_str().unwrap())
        .collect();
    assert_eq!(
        results,
        [
            "Fail_SignatureMismatch",
            "Fail_RootHashMismatch",
            "Fail_ProofNotInChain",
            "Success"
        ],
        "newest first"
    );
}

#[tokio::test]
async fn streams_are_managed_by_admins_and_read_by_their_policy() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let reader = app.token("node", "plant-reader", &["plant:read"]).await;
    let id = create(
        &app,
        &admin,
        json!({"id": "6e89214f-65a1-429c-8569-c0d14126b3da", "name": "plant", "unit": "°C",
               "encoding": "FLOAT", "read": ["plant:read"], "write": ["plant:write"]}),
    )
    .await;
    assert_eq!(id, "6e89214f-65a1-429c-8569-c0d14126b3da");
    let again = app
        .call(
            Method::POST,
            "/api/v1/streams",
            &admin,
            Some(json!({"id": id, "name": "x", "encoding": "FLOAT"})),
        )
        .await;
    again.assert_problem(409, "conflict");
    app.call(
        Method::POST,
        "/api/v1/streams",
        &reader,
        Some(json!({"name": "x", "encoding": "FLOAT"})),
    )
    .await
    .assert_problem(403, "forbidden");
    app.call(
        Method::POST,
        "/api/v1/streams",
        &admin,
        Some(json!({"name": "x", "encoding": "FLOAT", "merkleTreeDepth": 17})),
    )
    .await
    .assert_problem(422, "invalid_value");

    let got = app
        .call(Method::GET, &format!("/api/v1/streams/{id}"), &reader, None)
        .await;
    assert_eq!(got.status, 200, "{}", got.text);
    let got = got.json();
    assert_eq!(got["merkleTreeDepth"], 5);
    assert_eq!(got["maxMerkleTreeAgeSeconds"], 600);
    assert_eq!(got["proofKind"], "SHA256_RSA2048_PSS");
    assert_eq!(got["read"], json!(["plant:read"]));
    // Without plant:read the stream is not even listed.
    let other = app.token("node", "other", &[]).await;
    let listed = app
        .call(Method::GET, "/api/v1/streams", &other, None)
        .await
        .json();
    let listed: Vec<&Json> = listed["streams"].as_array().unwrap().iter().collect();
    assert!(listed.iter().all(|s| s["id"] != id.as_str()), "{listed:?}");
    // The datapoints' history streams are listed, under their datapoints' policies.
    assert!(listed.iter().all(|s| s["datapoint"].is_string()));
    app.call(
        Method::GET,
        &format!("/api/v1/streams/{id}/values"),
        &other,
        None,
    )
    .await
    .assert_problem(403, "insufficient_scope");
    write(
        &app,
        &reader,
        "float",
        json!([{"streamId": id, "timestamp": ts(1), "value": 1.0}]),
    )
    .await
    .assert_problem(403, "insufficient_scope");

    let mut changed = got.clone();
    changed["name"] = json!("renamed");
    for field in ["id", "createdAt", "updatedAt"] {
        changed.as_object_mut().unwrap().remove(field);
    }
    let put = app
        .call(
            Method::PUT,
            &format!("/api/v1/streams/{id}"),
            &admin,
            Some(changed.clone()),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.json()["name"], "renamed");
    changed["encoding"] = json!("DOUBLE");
    app.call(
        Method::PUT,
        &format!("/api/v1/streams/{id}"),
        &admin,
        Some(changed),
    )
    .await
    .assert_problem(422, "invalid_value");

    let deleted = app
        .call(
            Method::DELETE,
            &format!("/api/v1/streams/{id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(deleted.status, 204);
    app.call(Method::GET, &format!("/api/v1/streams/{id}"), &admin, None)
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn kill_9_during_ingest_loses_no_acknowledged_value_and_every_value_is_in_one_tree() {
    use crate::helpers::process::Process;
    use portico::series::{Encoding, Series, StreamSpec, ValueSettings};
    let dir = tempfile::tempdir().expect("temp dir");
    let database = TestDatabase::fresh(dir.path()).await;
    let config = dir.path().join("portico.toml");
    std::fs::write(&config, crate::helpers::DATAPOINTS).expect("config");
    let data_dir = dir.path().join("data");

    // Open streams, made through the library (no token is needed to write to them).
    let store = portico::store::Store::open(&database.location())
        .await
        .expect("store");
    let series = Series::open(
        store.clone(),
        portico::events::Journal::new(store.clone(), portico::events::EventBus::default()),
        Arc::new(portico::clock::SystemClock),
        Arc::new(portico::secrets::Sealer::new(&[7; 32])),
        ValueSettings::default(),
    )
    .await
    .expect("series");
    let open = portico::access::PolicyConfig::Named("open".into());
    let mut streams = Vec::new();
    for n in 0..8 {
        let spec = StreamSpec {
            merkle_tree_depth: 3,
            max_merkle_tree_age_seconds: 1,
            read: open.clone(),
            write: open.clone(),
            ..StreamSpec::new(format!("crash {n}"), Encoding::Int64)
        };
        streams.push(series.create(None, spec).await.expect("stream"));
    }

    let server = Process::start(&config, &data_dir, &database);
    let client = client_for(Some(
        &std::fs::read(data_dir.join("tls/cert.pem")).expect("cert"),
    ));
    let start = time::OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("time");
    // 8 writers, one stream each, in timestamp order; each batch acknowledged or not.
    let writers: Vec<_> = streams
        .iter()
        .map(|stream| {
            let client = client.clone();
            let url = format!("{}/api/v1/streams/{}/values", server.url, stream.id);
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for batch in 0..2000i64 {
                    let values: Vec<Json> = (0..25i64)
                        .map(|i| {
                            let n = batch * 25 + i;
                            let at = start + time::Duration::milliseconds(n);
                            json!({"timestamp": portico::timefmt::rfc3339(at), "value": n})
                        })
                        .collect();
                    match client.post(&url).json(&values).send().await {
                        Ok(reply) if reply.status() == 200 => {
                            acknowledged.extend((0..25).map(|i| batch * 25 + i));
                        }
                        Ok(reply) => panic!("refused: {}", reply.text().await.unwrap_or_default()),
                        Err(_) => break,
                    }
                }
                acknowledged
            })
        })
        .collect();
    let all = portico::store::Range {
        from_us: i64::MIN,
        to_us: i64::MAX,
        descending: false,
        offset: 0,
        limit: i64::MAX,
    };
    // Kill once the node has closed some trees.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while store
        .proofs(streams[0].num, all)
        .await
        .expect("proofs")
        .len()
        < 5
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no trees were closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill_9();
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.push(writer.await.expect("writer"));
    }

    // Restarted, the node closes the trees left open (their age is 1 s).
    let server = Process::start(&config, &data_dir, &database);
    let mut total_trees = 0;
    for (stream, acknowledged) in streams.iter().zip(&acknowledged) {
        let stored = store.values(stream.num, all).await.expect("values");
        let stored_values: std::collections::HashSet<i64> = stored
            .iter()
            .map(|v| i64::from_le_bytes(v.value[..].try_into().unwrap()))
            .collect();
        for value in acknowledged {
            assert!(
                stored_values.contains(value),
                "acknowledged value {value} was lost"
            );
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let trees = loop {
            let trees = store.proofs(stream.num, all).await.expect("proofs");
            let covered: i64 = trees.iter().map(|t| t.size).sum();
            if covered == stored.len() as i64 {
                break trees;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{covered} of {} values are under a proof",
                stored.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // Trees tile the values: consecutive, disjoint, each holding exactly its range's.
        let mut at = 0usize;
        for tree in &trees {
            assert_eq!(stored[at].ts_us, tree.first_us);
            at += tree.size as usize;
            assert_eq!(stored[at - 1].ts_us, tree.last_us);
        }
        assert_eq!(at, stored.len());
        total_trees += trees.len();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while store
            .latest_checkpoint()
            .await
            .expect("checkpoint")
            .is_none_or(|c| (c.size as usize) < total_trees)
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no checkpoint covers the trees"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let range: Json = client
            .post(format!(
                "{}/api/v1/streams/{}/validate",
                server.url, stream.id
            ))
            .json(&json!({}))
            .send()
            .await
            .expect("validate")
            .json()
            .await
            .expect("json");
        assert_eq!(range["valid"], true, "{range}");
        assert_eq!(range["numberOfProofs"], trees.len());
    }
    server.kill_9();
    store.close().await;
}

#[tokio::test]
async fn values_and_proofs_reach_webhooks_in_the_seeds_bodies_for_readers_of_the_stream() {
    use crate::helpers::receiver::Receiver;
    let app = TestApp::spawn_with(&format!(
        "{}\n[webhooks]\nallow_targets = [\"127.0.0.0/8\"]\npoll_ms = 20\n",
        crate::helpers::DATAPOINTS
    ))
    .await;
    let admin = app.admin_token().await;
    let manager = app.manager_token().await;
    let id = create(
        &app,
        &admin,
        json!({"name": "hooked", "encoding": "DOUBLE", "merkleTreeDepth": 1}),
    )
    .await;
    let secret_stream = create(
        &app,
        &admin,
        json!({"name": "secret", "encoding": "DOUBLE", "read": ["plant:secret"]}),
    )
    .await;
    let mut receiver = Receiver::start().await;
    let (_, secret) = app
        .subscribe(
            &manager,
            json!({"url": receiver.url, "topics": ["value.received", "proof.stored", "proof.confirmed"]}),
        )
        .await;

    // The manager may not read the secret stream: its values never reach the subscription.
    let hidden = json!([{"streamId": secret_stream, "timestamp": ts(1), "value": 1.0}]);
    assert_eq!(write(&app, &admin, "double", hidden).await.status, 200);
    let values = json!([
        {"streamId": id, "timestamp": "2023-06-16T05:08:40.991585+00:00", "value": -1.5e-39},
        {"streamId": id, "timestamp": "2023-06-16T05:08:41Z", "value": 2.3},
    ]);
    assert_eq!(write(&app, &admin, "double", values).await.status, 200);

    let mut received = Vec::new();
    let mut raw = Vec::new();
    let mut stored = None;
    let mut confirmed = None;
    while received.len() < 2 || stored.is_none() || confirmed.is_none() {
        let got = receiver.next().await;
        assert!(
            got.header("x-tributech-signature").starts_with("sha256="),
            "signed"
        );
        assert!(!secret.is_empty());
        match got.header("x-tributech-event") {
            "ValueReceivedEvent" => {
                received.push(got.json());
                raw.push(String::from_utf8(got.body.to_vec()).expect("ASCII"));
            }
            "ProofStoredEvent" => stored = Some(got.json()),
            "ProofConfirmedEvent" => confirmed = Some(got.json()),
            other => panic!("unexpected {other}"),
        }
    }
    // The seed's body, exactly: member order, bytes as a number array, QoS 1.
    assert_eq!(
        raw[0],
        format!(
            r#"{{"StreamId":"{id}","Timestamp":"2023-06-16T05:08:40.991585+00:00","Value":{},"EventQoS":1}}"#,
            serde_json::to_string(&(-1.5e-39f64).to_le_bytes().to_vec()).expect("json")
        )
    );
    assert_eq!(received[1]["Value"], json!(2.3f64.to_le_bytes().to_vec()));
    let stored = stored.expect("proof");
    assert_eq!(stored["TransactionId"], Json::Null);
    assert_eq!(stored["StreamId"], id.as_str());
    assert_eq!(stored["MerkleTreeDepth"], 1);
    assert_eq!(stored["LastTimestamp"], "2023-06-16T05:08:41.000000+00:00");
    assert_eq!(stored["RootHash"].as_array().expect("bytes").len(), 32);
    assert_eq!(stored["Signature"].as_array().expect("bytes").len(), 256);
    assert_eq!(stored["EventQoS"], 2);
    // Once a signed checkpoint covers the root: its place in the log of roots.
    let confirmed = confirmed.expect("confirmation");
    assert_eq!(confirmed["StreamId"], id.as_str());
    assert_eq!(confirmed["MerkleTreeDepth"], 1);
    assert_eq!(confirmed["LastTimestamp"], stored["LastTimestamp"]);
    assert_eq!(confirmed["RootHash"], stored["RootHash"]);
    assert_eq!(confirmed["LogIndex"], 0, "the log's first root");
    assert_eq!(confirmed["CheckpointSize"], 1);
    assert_eq!(confirmed["EventQoS"], 2);
    assert!(
        receiver.nothing_pending(),
        "the hidden stream's value must not arrive"
    );
}

#[tokio::test]
async fn the_tributech_surface_has_its_own_document_and_swagger_ui() {
    let app = TestApp::spawn().await;
    let page = app.get("/demeter/api/").await;
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(page.text.contains("/demeter/api/swagger-initializer.js"));
    let script = app.get("/demeter/api/swagger-initializer.js").await;
    assert!(script.text.contains("/demeter/api/swagger/v1/swagger.json"));
    let reply = app.get("/demeter/api/swagger/v1/swagger.json").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let doc = reply.json();
    assert_eq!(doc["info"]["title"], "Tributech Node API");
    assert_eq!(doc["info"]["version"], "v1");
    assert_eq!(doc["servers"][0]["url"], "/demeter/api");
    let tags: Vec<&str> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        tags,
        [
            "Agent",
            "Agents",
            "Credentials",
            "Graph",
            "Model",
            "ModelManagement",
            "Proof",
            "Relationships",
            "Twins",
            "Validation",
            "Values",
            "WebHookSubscription",
            "WebHookTopic"
        ]
    );
    let paths = doc["paths"].as_object().expect("paths");
    for path in [
        "/values/{kind}",
        "/values",
        "/locations/multiple",
        "/proofhistory",
        "/validate",
    ] {
        assert!(paths.contains_key(path), "{path} in {:?}", paths.keys());
    }
    assert!(!paths.keys().any(|p| p.starts_with("/demeter")));
    assert_eq!(
        paths["/api/v1/webhooks/subscriptions"]["servers"][0]["url"],
        "/"
    );
    assert!(!paths.contains_key("/api/v1/streams"), "native only");
}

#[tokio::test]
async fn devices_submit_proofs_that_are_checked_stored_or_refused() {
    use portico::merkle;
    use portico::series::proof;
    let app = TestApp::spawn().await;
    let token = app.admin_token().await;
    let kind = proof::ProofKind::SHA256_ECDSAP256_IEEEP1363;
    let device = proof::ProofSigner::generate(kind).expect("key");
    let signer =
        proof::ProofSigner::from_pkcs8(kind, &device.kid, &device.private_der).expect("signer");
    let id = create(
        &app,
        &token,
        json!({"name": "device", "encoding": "DOUBLE", "merkleTreeDepth": 2,
               "proofKind": kind.name(), "publicKey": device.public_pem}),
    )
    .await;
    let stream = portico::series::StreamId::parse(&id).expect("id");
    let micros = |n: u32| 1_767_225_600_000_000i64 + i64::from(n) * 1_000_000;
    let root_of = |range: std::ops::Range<u32>| {
        let leaves: Vec<merkle::Hash> = range
            .map(|n| {
                merkle::leaf_hash(&proof::leaf(
                    &stream,
                    micros(n),
                    &(f64::from(n) * 1.5).to_le_bytes(),
                ))
            })
            .collect();
        merkle::root(&leaves)
    };
    let submit = |root: [u8; 32], signature: Vec<u8>, last: u32| {
        let body = json!({
            "Proof": {"Id": portico::secrets::uuid(), "RootHash": STANDARD.encode(root),
                      "Signature": STANDARD.encode(signature)},
            "ProofLocation": {"StreamId": id, "MerkleTreeDepth": 2, "LastTimestamp": ts(last)}
        });
        let (app, token) = (&app, &token);
        async move {
            let reply = app
                .call(Method::POST, "/demeter/api/proofs", token, Some(body))
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            reply.json()
        }
    };
    write_doubles(&app, &token, &id, 0..8).await;

    // The right root, signed by the device.
    let root = root_of(0..4);
    let stored = submit(root, signer.sign(&root).expect("sign"), 3).await;
    assert_eq!(stored["resultCode"], "Success", "{stored}");
    assert_eq!(
        stored["createdProofLocations"],
        json!([{"streamId": id, "merkleTreeDepth": 2, "lastTimestamp": dotnet(3)}])
    );
    let again = submit(root, signer.sign(&root).expect("sign"), 3).await;
    assert_eq!(again["resultCode"], "Fail_DuplicateProofLocation");

    // The next tree: a wrong root, a stranger's signature, a location with no tree.
    let next = root_of(4..8);
    let wrong = root_of(4..7);
    let refused = submit(wrong, signer.sign(&wrong).expect("sign"), 7).await;
    assert_eq!(refused["resultCode"], "Fail_RootHashMismatch");
    let stranger = proof::ProofSigner::generate(kind).expect("key");
    let stranger =
        proof::ProofSigner::from_pkcs8(kind, &stranger.kid, &stranger.private_der).expect("signer");
    let forged = submit(next, stranger.sign(&next).expect("sign"), 7).await;
    assert_eq!(forged["resultCode"], "Fail_SignatureMismatch");
    let early = submit(next, signer.sign(&next).expect("sign"), 6).await;
    assert_eq!(early["resultCode"], "Fail_ValuesNotFound");
    assert_eq!(
        submit(next, signer.sign(&next).expect("sign"), 7).await["resultCode"],
        "Success"
    );

    // The node built none itself; the device's proofs validate with the device's key.
    let found = proofs(&app, &token, &id, 2).await;
    assert_eq!(found.len(), 2);
    assert_eq!(
        validate(&app, &token, &id, &ts(5)).await["resultCode"],
        "Success"
    );

    // A stream the node proves takes no device proofs.
    let own = create(&app, &token, json!({"name": "own", "encoding": "DOUBLE"})).await;
    let body = json!({"proof": {"id": portico::secrets::uuid(), "rootHash": STANDARD.encode(root),
                                "signature": STANDARD.encode([0u8; 64])},
                      "proofLocation": {"streamId": own, "merkleTreeDepth": 2,
                                        "lastTimestamp": ts(3)}});
    app.call(Method::POST, "/demeter/api/proofs", &token, Some(body))
        .await
        .assert_problem(422, "invalid_value");
    // A key that does not suit the kind is refused when the stream is made.
    app.call(
        Method::POST,
        "/api/v1/streams",
        &token,
        Some(json!({"name": "x", "encoding": "DOUBLE", "publicKey": device.public_pem})),
    )
    .await
    .assert_problem(422, "invalid_value");
}

/// Now, `seconds_ago` seconds back, as a value timestamp.
fn ago(seconds_ago: i64) -> String {
    use portico::clock::Clock;
    let at = portico::clock::SystemClock.now() - time::Duration::seconds(seconds_ago);
    at.replace_nanosecond(0)
        .expect("whole second")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339")
}

#[tokio::test]
async fn values_past_their_retention_go_tree_by_tree() {
    let app = TestApp::spawn_with(&format!(
        "{}\n[values]\nretention_sweep_seconds = 1\n",
        crate::helpers::DATAPOINTS
    ))
    .await;
    let token = app.admin_token().await;
    let id = create(
        &app,
        &token,
        json!({"name": "kept a day", "encoding": "DOUBLE", "merkleTreeDepth": 1,
               "maxMerkleTreeAgeSeconds": 2592000, "retentionDays": 1}),
    )
    .await;
    // Seven values from January and two from the last minute: trees of two, by timestamp, so
    // January's last value shares a tree with a recent one, and the latest waits for its tree.
    write_doubles(&app, &token, &id, 0..7).await;
    let recent = [ago(60), ago(30)];
    let items: Vec<Json> = recent
        .iter()
        .map(|t| json!({"streamId": id, "timestamp": t, "value": 1.0}))
        .collect();
    assert_eq!(
        write(&app, &token, "double", Json::Array(items))
            .await
            .status,
        200
    );

    // The sweep runs every second: wait (bounded) until the old trees are gone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (values, proofs) = loop {
        let values = app
            .call(
                Method::GET,
                &format!("/api/v1/streams/{id}/values"),
                &token,
                None,
            )
            .await
            .json()["values"]
            .as_array()
            .expect("values")
            .clone();
        let proofs = app
            .call(
                Method::GET,
                &format!("/demeter/api/locations/multiple?StreamId={id}"),
                &token,
                None,
            )
            .await
            .json()
            .as_array()
            .expect("proofs")
            .clone();
        if values.len() == 3 && proofs.len() == 1 {
            break (values, proofs);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old trees stayed: {values:?} {proofs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Only whole trees go: the tree that ends a minute ago stays, January's value in it too,
    // and its proof still validates once a checkpoint covers it.
    assert_eq!(values[0]["timestamp"], ts(6));
    assert_eq!(values[0]["value"], json!(9.0));
    let last = proofs[0]["lastTimestamp"]
        .as_str()
        .expect("last")
        .to_owned();
    checkpointed(&app, 4).await;
    let check = validate(&app, &token, &id, &last).await;
    assert_eq!(check["resultCode"], "Success", "{check}");
}
