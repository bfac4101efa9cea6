//! Bearer tokens end to end: 401/403/400 as RFC 6750 says, per-endpoint and native-API
//! policies, the rejection cases over HTTP, PEM and HMAC issuers, and remote key sets (JWKS URL
//! and OIDC discovery) with rotation, a bounded refetch under a random-`kid` flood, and cached
//! keys surviving an unreachable issuer.

use std::sync::Arc;

use portico::clock::{Clock, ManualClock, SystemClock};
use reqwest::Method;
use serde_json::json;

use crate::helpers::tokens::{Idp, Signer, b64, claims, hmac};
use crate::helpers::{Reply, TestApp, rand_u64};

const SECRET: &str = "a shared secret of at least thirty-two bytes";
const ISSUER: &str = "https://hmac.example";

fn plant(issuer_block: &str, extra_auth: &str) -> String {
    format!(
        r#"
[auth]
{extra_auth}

[[datapoint]]
key = "plant.temp"
type = "float"

[[endpoint]]
path = "/plant/temp"
datapoint = "plant.temp"
read = ["plant:read"]
write = ["plant:write"]

{issuer_block}
"#
    )
}

fn hmac_issuer() -> String {
    format!(
        "[[issuer]]\nissuer = \"{ISSUER}\"\naudience = [\"portico\"]\nhmac_secret = \"{SECRET}\"\nalgorithms = [\"HS256\"]\n"
    )
}

fn now() -> i64 {
    SystemClock.now().unix_timestamp()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn get(app: &TestApp, path: &str, token: Option<&str>) -> Reply {
    let header = token.map(bearer);
    app.authorized(Method::GET, path, header.as_deref(), None)
        .await
}

#[tokio::test]
async fn missing_invalid_and_insufficient_tokens_get_401_and_403_as_rfc_6750_says() {
    let app = TestApp::spawn_with(&plant(&hmac_issuer(), "")).await;
    let signer = Signer::hs256(SECRET.as_bytes());
    let reader = signer.sign(&claims(ISSUER, now(), "plant:read"));
    let writer = signer.sign(&claims(ISSUER, now(), "plant:read plant:write"));

    let none = get(&app, "/plant/temp", None).await;
    none.assert_problem(401, "unauthenticated");
    assert_eq!(none.header("www-authenticate"), r#"Bearer realm="portico""#);

    let mut expired = claims(ISSUER, now() - 1000, "plant:read");
    expired["exp"] = json!(now() - 120);
    let refused = get(&app, "/plant/temp", Some(&signer.sign(&expired))).await;
    refused.assert_problem(401, "invalid_token");
    assert_eq!(
        refused.header("www-authenticate"),
        r#"Bearer realm="portico", error="invalid_token", error_description="the token has expired""#
    );

    let ok = get(&app, "/plant/temp", Some(&reader)).await;
    assert_eq!(ok.status, 200, "{}", ok.text);

    let header = bearer(&reader);
    let denied = app
        .authorized(
            Method::PUT,
            "/plant/temp",
            Some(&header),
            Some(r#"{"value":1.5}"#),
        )
        .await;
    denied.assert_problem(403, "insufficient_scope");
    let challenge = denied.header("www-authenticate");
    assert!(
        challenge.starts_with(
            r#"Bearer realm="portico", error="insufficient_scope", error_description=""#
        ),
        "{challenge}"
    );
    assert!(challenge.ends_with(r#"scope="plant:write""#), "{challenge}");
    // Nothing changed.
    assert_eq!(
        get(&app, "/plant/temp", Some(&reader)).await.json()["value"],
        json!(null)
    );

    let header = bearer(&writer);
    let written = app
        .authorized(
            Method::PUT,
            "/plant/temp",
            Some(&header),
            Some(r#"{"value":1.5}"#),
        )
        .await;
    assert_eq!(written.status, 200, "{}", written.text);
    assert_eq!(
        get(&app, "/plant/temp", Some(&reader)).await.json()["value"],
        json!(1.5)
    );

    // Another scheme is no bearer token: 401 without an error attribute.
    let basic = app
        .authorized(Method::GET, "/plant/temp", Some("Basic dXNlcjpwYXNz"), None)
        .await;
    basic.assert_problem(401, "unauthenticated");
    assert_eq!(
        basic.header("www-authenticate"),
        r#"Bearer realm="portico""#
    );
    // One or more spaces may follow the scheme (RFC 7235).
    let spaced = format!("Bearer   {reader}");
    let reply = app
        .authorized(Method::GET, "/plant/temp", Some(&spaced), None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[tokio::test]
async fn a_malformed_authorization_header_is_400() {
    let app = TestApp::spawn_with(&plant(&hmac_issuer(), "")).await;
    for malformed in [
        "Bearer",
        "Bearer ",
        "Bearer a b",
        "Bearer a,b",
        "Bearer =abc",
    ] {
        let reply = app
            .authorized(Method::GET, "/plant/temp", Some(malformed), None)
            .await;
        reply.assert_problem(400, "invalid_authorization");
        assert!(
            reply
                .header("www-authenticate")
                .contains(r#"error="invalid_request""#),
            "{malformed:?}: {}",
            reply.header("www-authenticate")
        );
    }
    let twice = app
        .client
        .get(app.at("/plant/temp"))
        .header("authorization", "Bearer a.b.c")
        .header("authorization", "Bearer a.b.c")
        .send()
        .await
        .expect("request");
    assert_eq!(twice.status(), 400);
}

#[tokio::test]
async fn the_native_api_follows_its_read_policy() {
    let app = TestApp::spawn_with(&plant(&hmac_issuer(), r#"api_read = ["plant:admin"]"#)).await;
    let signer = Signer::hs256(SECRET.as_bytes());
    let reader = signer.sign(&claims(ISSUER, now(), "plant:read"));
    // The native API needs `api_read` and, per datapoint, the datapoint's own read policy
    // (which takes its endpoint's `read`).
    let admin = signer.sign(&claims(ISSUER, now(), "plant:admin plant:read"));
    let admin_only = signer.sign(&claims(ISSUER, now(), "plant:admin"));
    get(&app, "/api/v1/datapoints/plant.temp", Some(&admin_only))
        .await
        .assert_problem(403, "insufficient_scope");
    let unlisted = get(&app, "/api/v1/datapoints", Some(&admin_only)).await;
    assert_eq!(unlisted.json()["datapoints"], serde_json::json!([]));
    for path in [
        "/api/v1/datapoints",
        "/api/v1/datapoints/plant.temp",
        "/api/v1/datapoints/plant.temp/events",
    ] {
        get(&app, path, None)
            .await
            .assert_problem(401, "unauthenticated");
        get(&app, path, Some(&reader))
            .await
            .assert_problem(403, "insufficient_scope");
    }
    let listed = get(&app, "/api/v1/datapoints", Some(&admin)).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json()["datapoints"][0]["key"], "plant.temp");
    // A token without `alg` is refused before any policy is consulted.
    get(&app, "/api/v1/datapoints", Some("e30.e30.c2ln"))
        .await
        .assert_problem(401, "invalid_token");
    // Operational routes do not look at credentials.
    assert_eq!(
        get(&app, "/healthz", Some("e30.e30.c2ln")).await.status,
        200
    );
}

#[tokio::test]
async fn each_rejection_case_is_refused_over_http() {
    let dir = tempfile::tempdir().expect("dir");
    let es = Signer::es256("k1");
    let pem = dir.path().join("issuer.pem");
    std::fs::write(&pem, es.spki_pem()).expect("pem");
    let pem_issuer = format!(
        "[[issuer]]\nissuer = \"https://pem.example\"\naudience = [\"portico\"]\npublic_key_file = \"{}\"\nalgorithms = [\"ES256\"]\n",
        pem.display()
    );
    let app = TestApp::spawn_with(&plant(&format!("{pem_issuer}\n{}", hmac_issuer()), "")).await;
    let iss = "https://pem.example";
    let good_claims = claims(iss, now(), "plant:read");
    let good = es.sign(&good_claims);
    assert_eq!(get(&app, "/plant/temp", Some(&good)).await.status, 200);

    let (head, rest) = good.split_once('.').unwrap_or_default();
    let (payload, signature) = rest.split_once('.').unwrap_or_default();
    let with_header = |header: serde_json::Value| {
        format!(
            "{}.{payload}.{signature}",
            b64(header.to_string().as_bytes())
        )
    };
    let input =
        |header: &serde_json::Value| format!("{}.{payload}", b64(header.to_string().as_bytes()));
    let none = json!({"alg": "none", "kid": "k1"});
    let confusion_header = json!({"alg": "HS256"});
    let confused = format!(
        "{}.{}",
        input(&confusion_header),
        b64(&hmac(
            es.spki_pem().as_bytes(),
            input(&confusion_header).as_bytes()
        ))
    );
    // A DER-encoded ECDSA signature of the same input: SEQUENCE { INTEGER r, INTEGER s }.
    let der_signature = {
        let sig = base64_decode(signature);
        let (r, s) = sig.split_at(32);
        let int = |v: &[u8]| {
            let mut out = vec![0x02];
            let pad = v[0] & 0x80 != 0;
            out.push((v.len() + usize::from(pad)) as u8);
            if pad {
                out.push(0);
            }
            out.extend_from_slice(v);
            out
        };
        let mut body = int(r);
        body.extend(int(s));
        let mut der = vec![0x30, body.len() as u8];
        der.extend(body);
        format!("{head}.{payload}.{}", b64(&der))
    };
    let long = format!("{good}{}", "A".repeat(9000));
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "alg none",
            format!("{}.{payload}.", b64(none.to_string().as_bytes())),
            "alg",
        ),
        ("alg NONE", with_header(json!({"alg": "NONE"})), "alg: none"),
        (
            "algorithm not allowed for the key",
            with_header(json!({"alg": "ES384", "kid": "k1"})),
            "ES384",
        ),
        (
            "HS256 signed with the issuer's public key",
            confused,
            "HS256",
        ),
        (
            "embedded jwk",
            with_header(json!({"alg": "ES256", "jwk": es.jwk()})),
            "jwk",
        ),
        (
            "jku",
            with_header(json!({"alg": "ES256", "jku": "https://evil.example/jwks"})),
            "jku",
        ),
        (
            "x5u",
            with_header(json!({"alg": "ES256", "x5u": "https://evil.example/cert"})),
            "x5u",
        ),
        (
            "x5c",
            with_header(json!({"alg": "ES256", "x5c": ["MIIB"]})),
            "x5c",
        ),
        (
            "unknown crit",
            with_header(json!({"alg": "ES256", "crit": ["urn:x"], "urn:x": 1})),
            "crit",
        ),
        (
            "b64 false",
            with_header(json!({"alg": "ES256", "b64": false})),
            "b64: false",
        ),
        ("too long", long, "at most 8192"),
        (
            "bad base64url",
            format!("{head}.{payload}.{}+", &signature[1..]),
            "base64url",
        ),
        ("DER-encoded ECDSA", der_signature, "signature"),
        (
            "wrong issuer",
            es.sign(&claims("https://else.example", now(), "plant:read")),
            "issuer",
        ),
        (
            "string exp",
            es.sign(&json!({"iss": iss, "exp": "9999999999"})),
            "exp",
        ),
        (
            "future iat",
            es.sign(&json!({"iss": iss, "exp": now() + 900, "iat": now() + 600})),
            "iat",
        ),
        (
            "not yet valid",
            es.sign(&json!({"iss": iss, "exp": now() + 900, "nbf": now() + 600})),
            "nbf",
        ),
        (
            "wrong audience",
            es.sign(&json!({"iss": iss, "exp": now() + 900, "aud": "else"})),
            "aud",
        ),
        ("missing exp", es.sign(&json!({"iss": iss})), "exp"),
    ];
    for (name, token, reason) in cases {
        let reply = get(&app, "/plant/temp", Some(&token)).await;
        let problem = reply.assert_problem(401, "invalid_token");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(reason), "{name}: {detail}");
    }
    // An HMAC secret shorter than the hash never becomes a key: the configuration is refused.
    let short = plant(
        "[[issuer]]\nissuer = \"https://s\"\nhmac_secret = \"too short\"\nalgorithms = [\"HS256\"]\n",
        "",
    );
    let error = portico::config::Config::from_toml_str(&short)
        .expect("parses")
        .validate()
        .expect_err("short secret");
    assert!(error.to_string().contains("at least 32 bytes"), "{error}");
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64url")
}

/// A server on a manual clock trusting `idp` through `source`.
async fn remote(idp: &Idp, source: &str) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let app = TestApp::spawn_clocked(&plant(&idp.issuer_toml(source), ""), clock.clone()).await;
    (app, clock)
}

#[tokio::test]
async fn jwks_rotation_is_picked_up_without_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let idp = Idp::start(dir.path()).await;
    let old = Signer::es256("2026-old");
    idp.publish(&[old.jwk()]);
    let (app, clock) = remote(&idp, &format!("jwks_url = \"{}/jwks\"", idp.url)).await;
    let at = || clock.now().unix_timestamp();

    let before = old.sign(&claims(&idp.url, at(), "plant:read"));
    assert_eq!(get(&app, "/plant/temp", Some(&before)).await.status, 200);

    // The IdP rotates: the new key is published and signs; the old one is withdrawn.
    let new = Signer::es256("2026-new");
    idp.publish(&[new.jwk()]);
    clock.advance(time::Duration::seconds(31)); // past the unknown-kid cooldown
    let after = new.sign(&claims(&idp.url, at(), "plant:read"));
    let reply = get(&app, "/plant/temp", Some(&after)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    // A token of the withdrawn key is no longer accepted (the cache follows the key set).
    get(&app, "/plant/temp", Some(&before))
        .await
        .assert_problem(401, "invalid_token");
}

#[tokio::test]
async fn a_flood_of_random_kids_causes_a_bounded_number_of_fetches() {
    let dir = tempfile::tempdir().expect("dir");
    let idp = Idp::start(dir.path()).await;
    let signer = Signer::es256("real");
    idp.publish(&[signer.jwk()]);
    let (app, clock) = remote(&idp, &format!("jwks_url = \"{}/jwks\"", idp.url)).await;
    let token = signer.sign(&claims(
        &idp.url,
        clock.now().unix_timestamp(),
        "plant:read",
    ));
    assert_eq!(get(&app, "/plant/temp", Some(&token)).await.status, 200);
    let start = idp.jwks_hits();

    let flood = |count: usize| {
        let app = &app;
        let url = idp.url.clone();
        let now = clock.now().unix_timestamp();
        async move {
            let tokens: Vec<String> = (0..count)
                .map(|_| {
                    let forger = Signer::es256(&format!("random-{}", rand_u64()));
                    forger.sign(&claims(&url, now, "plant:read"))
                })
                .collect();
            let replies = futures_util::future::join_all(
                tokens.iter().map(|t| get(app, "/plant/temp", Some(t))),
            )
            .await;
            for reply in replies {
                reply.assert_problem(401, "invalid_token");
            }
        }
    };
    // Within the cooldown of the start-up fetch: no fetch at all.
    flood(100).await;
    assert_eq!(idp.jwks_hits() - start, 0);
    // After it: one fetch for the whole flood.
    clock.advance(time::Duration::seconds(31));
    flood(100).await;
    assert_eq!(idp.jwks_hits() - start, 1);
    // The real key kept working throughout.
    assert_eq!(get(&app, "/plant/temp", Some(&token)).await.status, 200);
}

#[tokio::test]
async fn oidc_discovery_finds_the_keys_and_cached_keys_outlive_an_unreachable_issuer() {
    let dir = tempfile::tempdir().expect("dir");
    let idp = Idp::start(dir.path()).await;
    let signer = Signer::es256("k");
    idp.publish(&[signer.jwk()]);
    let (app, clock) = remote(&idp, "discovery = true").await;
    let token = |scope: &str| signer.sign(&claims(&idp.url, clock.now().unix_timestamp(), scope));
    assert_eq!(
        get(&app, "/plant/temp", Some(&token("plant:read")))
            .await
            .status,
        200
    );

    idp.set_down(true);
    clock.advance(time::Duration::seconds(600));
    // An unknown kid causes one fetch, which fails; the token is refused.
    let hits = idp.jwks_hits();
    let stranger = Signer::es256("unknown");
    let refused = get(
        &app,
        "/plant/temp",
        Some(&stranger.sign(&claims(
            &idp.url,
            clock.now().unix_timestamp(),
            "plant:read",
        ))),
    )
    .await;
    let problem = refused.assert_problem(401, "invalid_token");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("kid")
    );
    assert_eq!(idp.jwks_hits(), hits + 1, "one failed fetch");
    // After that failure, a new token (not cached) of the known key verifies with the cached set.
    let reply = get(&app, "/plant/temp", Some(&token("plant:read other"))).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(idp.jwks_hits(), hits + 1, "and costs no fetch");
}

#[tokio::test]
async fn a_key_set_with_a_duplicate_kid_is_refused_at_start_up() {
    let dir = tempfile::tempdir().expect("dir");
    let key = Signer::es256("same").jwk();
    let path = dir.path().join("jwks.json");
    std::fs::write(
        &path,
        json!({"keys": [key, Signer::es256("same").jwk()]}).to_string(),
    )
    .expect("jwks");
    let config = plant(
        &format!(
            "[[issuer]]\nissuer = \"https://f\"\naudience = [\"portico\"]\njwks_file = \"{}\"\n",
            path.display()
        ),
        "",
    );
    let error = portico::config::Config::from_toml_str(&config)
        .expect("parses")
        .validate()
        .expect_err("duplicate kid");
    assert!(
        error.to_string().contains("two keys have the kid `same`"),
        "{error}"
    );
}

#[tokio::test]
async fn an_issuer_with_a_public_key_names_its_audience_or_says_it_takes_any() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("jwks.json");
    std::fs::write(
        &path,
        json!({"keys": [Signer::es256("k").jwk()]}).to_string(),
    )
    .expect("jwks");
    let validate = |lines: &str| {
        let config = plant(
            &format!(
                "[[issuer]]\nissuer = \"https://f\"\njwks_file = \"{}\"\n{lines}",
                path.display()
            ),
            "",
        );
        portico::config::Config::from_toml_str(&config)
            .expect("parses")
            .validate()
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let missing = validate("").expect_err("no audience");
    assert!(
        missing.contains("`issuer[0].audience`") && missing.contains("any_audience = true"),
        "{missing}"
    );
    assert_eq!(validate("any_audience = true\n"), Ok(()));
    assert_eq!(validate("audience = [\"portico\"]\n"), Ok(()));
    let both = validate("audience = [\"portico\"]\nany_audience = true\n").expect_err("both");
    assert!(both.contains("`issuer[0].any_audience`"), "{both}");
    // A shared secret is Portico's own: no audience needed.
    let config = plant(
        &format!(
            "[[issuer]]\nissuer = \"{ISSUER}\"\nhmac_secret = \"{SECRET}\"\nalgorithms = [\"HS256\"]\n"
        ),
        "",
    );
    assert!(
        portico::config::Config::from_toml_str(&config)
            .expect("parses")
            .validate()
            .is_ok()
    );
}

#[tokio::test]
async fn an_id_token_is_not_a_bearer_token_unless_its_issuer_says_so() {
    let app = TestApp::spawn_with(&plant(&hmac_issuer(), "")).await;
    let signer = Signer::hs256(SECRET.as_bytes());
    for (claim, value) in [
        ("nonce", json!("n-0S6_WzA2Mj")),
        ("at_hash", json!("77QmUPtjPfzWtF2AnpK9RQ")),
        ("typ", json!("ID")),
    ] {
        let mut id_token = claims(ISSUER, now(), "plant:read");
        id_token[claim] = value;
        let refused = get(&app, "/plant/temp", Some(&signer.sign(&id_token))).await;
        refused.assert_problem(401, "invalid_token");
        assert!(
            refused
                .header("www-authenticate")
                .contains("is an ID token"),
            "{claim}: {}",
            refused.header("www-authenticate")
        );
    }
    // An access token that says `"typ": "Bearer"` (as Keycloak's do) is one.
    let mut access = claims(ISSUER, now(), "plant:read");
    access["typ"] = json!("Bearer");
    assert_eq!(
        get(&app, "/plant/temp", Some(&signer.sign(&access)))
            .await
            .status,
        200
    );

    let lenient = TestApp::spawn_with(&plant(
        &format!("{}accept_id_tokens = true\n", hmac_issuer()),
        "",
    ))
    .await;
    let mut id_token = claims(ISSUER, now(), "plant:read");
    id_token["nonce"] = json!("n-0S6_WzA2Mj");
    assert_eq!(
        get(&lenient, "/plant/temp", Some(&signer.sign(&id_token)))
            .await
            .status,
        200
    );
}
