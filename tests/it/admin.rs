//! The admin API (`/api/v1/admin/`), protected by the built-in provider's own tokens, and the
//! app-authentication API (`POST /authentication`) with the apps it manages.

use reqwest::Method;
use serde_json::{Value as Json, json};

use crate::helpers::{PROTECTED, Reply, TestApp};

async fn authenticate(app: &TestApp, body: &Json) -> Reply {
    app.send(
        Method::POST,
        "/authentication",
        Some("application/json"),
        body.to_string(),
    )
    .await
}

fn assert_not_authenticated(reply: &Reply) {
    assert_eq!(reply.status, 401, "{}", reply.text);
    assert_eq!(
        reply.json(),
        json!({
            "name": "NotAuthenticated",
            "message": "Invalid login",
            "code": 401,
            "className": "not-authenticated",
            "data": { "message": "Invalid login" },
            "errors": {}
        })
    );
}

#[tokio::test]
async fn the_admin_api_needs_the_admin_role_in_the_admin_realm() {
    let app = TestApp::spawn_with(PROTECTED).await;
    let path = "/api/v1/admin/realms";
    app.authorized(Method::GET, path, None, None)
        .await
        .assert_problem(401, "unauthenticated");
    let plain = app.token("node", "viewer", &["plant:read"]).await;
    app.call(Method::GET, path, &plain, None)
        .await
        .assert_problem(403, "forbidden");
    let idp = app.idp.as_ref().expect("idp");
    idp.create_realm(&crate::helpers::realm_name("other"), Default::default())
        .await
        .expect("realm");
    let elsewhere = app.token("other", "intruder", &["portico:admin"]).await;
    app.call(Method::GET, path, &elsewhere, None)
        .await
        .assert_problem(403, "forbidden");
    let admin = app.token("node", "operator", &["portico:admin"]).await;
    let realms = app.call(Method::GET, path, &admin, None).await;
    assert_eq!(realms.status, 200, "{}", realms.text);
    let names: Vec<Json> = realms
        .json()
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names, [json!("node"), json!("other")]);
}

#[tokio::test]
async fn realms_clients_users_and_keys_are_managed_over_the_admin_api() {
    let app = TestApp::spawn_with(PROTECTED).await;
    let admin = app.token("node", "operator", &["portico:admin"]).await;

    let created = app
        .call(
            Method::POST,
            "/api/v1/admin/realms",
            &admin,
            Some(json!({ "name": "plant", "settings": { "access_token_seconds": 120 } })),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json()["issuer"], app.at("/realms/plant"));
    assert_eq!(created.json()["settings"]["access_token_seconds"], 120);
    app.call(
        Method::POST,
        "/api/v1/admin/realms",
        &admin,
        Some(json!({ "name": "plant" })),
    )
    .await
    .assert_problem(409, "conflict");
    app.call(
        Method::POST,
        "/api/v1/admin/realms",
        &admin,
        Some(json!({ "name": "Bad Name" })),
    )
    .await
    .assert_problem(422, "invalid_value");
    app.call(
        Method::POST,
        "/api/v1/admin/realms",
        &admin,
        Some(json!({ "name": "x", "colour": 1 })),
    )
    .await
    .assert_problem(422, "invalid_value");
    // A path segment that cannot be a realm's name names no realm.
    for path in [
        "/api/v1/admin/realms/Bad%20Name",
        "/api/v1/admin/realms/PLANT/clients",
    ] {
        app.call(Method::GET, path, &admin, None)
            .await
            .assert_problem(404, "not_found");
    }
    let discovery = app
        .get("/realms/plant/.well-known/openid-configuration")
        .await;
    assert_eq!(discovery.status, 200, "the new realm serves at once");

    // A client: the secret is in the creating answer only, and it works.
    let client = app
        .call(
            Method::POST,
            "/api/v1/admin/realms/plant/clients",
            &admin,
            Some(json!({ "client_id": "gateway", "settings": { "roles": ["plant:read"] } })),
        )
        .await;
    assert_eq!(client.status, 201, "{}", client.text);
    assert_eq!(client.header("cache-control"), "no-store");
    let secret = client.json()["client_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    assert_eq!(secret.len(), 43, "256 bits, base64url");
    let read = app
        .call(
            Method::GET,
            "/api/v1/admin/realms/plant/clients/gateway",
            &admin,
            None,
        )
        .await;
    assert_eq!(read.status, 200);
    assert!(read.json().get("client_secret").is_none());
    let reply = app
        .client
        .post(app.at("/realms/plant/protocol/openid-connect/token"))
        .basic_auth("gateway", Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("token");
    let body: Json = reply.json().await.expect("json");
    assert_eq!(body["expires_in"], 120);
    let bearer = format!("Bearer {}", body["access_token"].as_str().expect("token"));
    let datapoint = app
        .authorized(
            Method::GET,
            "/api/v1/boiler/temperature",
            Some(&bearer),
            None,
        )
        .await;
    assert_eq!(datapoint.status, 200, "{}", datapoint.text);

    let updated = app
        .call(
            Method::PUT,
            "/api/v1/admin/realms/plant/clients/gateway",
            &admin,
            Some(json!({ "roles": [], "redirect_uris": ["http://example.com/cb"] })),
        )
        .await;
    updated.assert_problem(422, "invalid_value");
    let reset = app
        .call(
            Method::POST,
            "/api/v1/admin/realms/plant/clients/gateway/secret",
            &admin,
            None,
        )
        .await;
    assert_eq!(reset.status, 200);
    assert_ne!(
        reset.json()["client_secret"].as_str(),
        Some(secret.as_str())
    );

    // A user without a password gets a generated one, once.
    let user = app
        .call(
            Method::POST,
            "/api/v1/admin/realms/plant/users",
            &admin,
            Some(json!({ "username": "ada", "settings": { "roles": ["plant:read"] } })),
        )
        .await;
    assert_eq!(user.status, 201, "{}", user.text);
    assert_eq!(user.json()["password"].as_str().map(str::len), Some(43));
    let id = user.json()["id"].as_str().expect("id").to_owned();
    app.call(
        Method::PUT,
        &format!("/api/v1/admin/realms/plant/users/{id}/password"),
        &admin,
        Some(json!({ "password": "short" })),
    )
    .await
    .assert_problem(422, "invalid_value");
    let users = app
        .call(
            Method::GET,
            "/api/v1/admin/realms/plant/users",
            &admin,
            None,
        )
        .await;
    assert_eq!(users.json()[0]["username"], "ada");
    assert!(users.json()[0].get("password").is_none());

    // Keys: rotation publishes a new next key and retires the active one.
    let rotated = app
        .call(
            Method::POST,
            "/api/v1/admin/realms/plant/keys/rotate",
            &admin,
            None,
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let states: Vec<String> = rotated
        .json()
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["state"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(states.iter().filter(|s| *s == "retired").count(), 2);
    assert_eq!(states.iter().filter(|s| *s == "next").count(), 2);

    app.call(Method::DELETE, "/api/v1/admin/realms/node", &admin, None)
        .await
        .assert_problem(409, "conflict");
    let gone = app
        .call(Method::DELETE, "/api/v1/admin/realms/plant", &admin, None)
        .await;
    assert_eq!(gone.status, 204);
    app.get("/realms/plant/.well-known/openid-configuration")
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn apps_authenticate_by_secret_revalidation_and_self_signed_tokens() {
    // This test fails on purpose more often than the default throttle allows one address.
    let app = TestApp::spawn_with(&format!("{PROTECTED}\n[idp.throttle]\nip_burst = 1000\n")).await;
    let admin = app.token("node", "operator", &["portico:admin"]).await;
    let created = app
        .call(
            Method::POST,
            "/api/v1/admin/apps",
            &admin,
            Some(json!({
                "app_id": "fooApp",
                "generate_key": true,
                "settings": { "name": "Foo App", "roles": ["plant:read"] }
            })),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let secret = created.json()["app_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let private_key = created.json()["private_key_pem"]
        .as_str()
        .expect("key")
        .to_owned();
    assert!(
        created.json()["settings"]["public_key_pem"]
            .as_str()
            .expect("public key")
            .contains("PUBLIC KEY")
    );

    // By secret: a Portico token that reads the protected datapoint.
    let reply = authenticate(
        &app,
        &json!({ "strategy": "app", "appId": "fooApp", "appSecret": secret }),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["name"], "Foo App");
    assert_eq!(reply.json()["appId"], "fooApp");
    let issued = reply.json()["accessToken"]
        .as_str()
        .expect("token")
        .to_owned();
    let read = app
        .authorized(
            Method::GET,
            "/api/v1/boiler/temperature",
            Some(&format!("Bearer {issued}")),
            None,
        )
        .await;
    assert_eq!(read.status, 200, "{}", read.text);

    // Revalidation answers the same token.
    let again = authenticate(&app, &json!({ "strategy": "jwt", "accessToken": issued })).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["accessToken"], issued.as_str());
    // A token of a client (not an app) is not an app token.
    let other = app.token("node", "gateway", &["plant:read"]).await;
    assert_not_authenticated(
        &authenticate(&app, &json!({ "strategy": "jwt", "accessToken": other })).await,
    );

    // Self-signed: ES256 with the app's key, as the seed's Node.js sample signs.
    let der = pem_der(&private_key);
    let key = portico::jose::signer::SigningKey::from_pkcs8(
        portico::jose::primitive::Algorithm::Es256,
        "k",
        &der,
    )
    .expect("key");
    let now = portico::clock::Clock::now(&portico::clock::SystemClock).unix_timestamp();
    let sign = |claims: Json, key: &portico::jose::signer::SigningKey| {
        let Json::Object(map) = claims else {
            panic!("object")
        };
        key.sign("JWT", &map).expect("sign")
    };
    let claims = |exp: i64, aud: &str| json!({ "appId": "fooApp", "iss": "fooApp", "aud": aud, "sub": "AppAuth", "iat": now, "exp": exp });
    let good = sign(claims(now + 3600, "serana"), &key);
    let reply = authenticate(&app, &json!({ "strategy": "jwt", "accessToken": good })).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let exchanged = reply.json()["accessToken"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_ne!(exchanged, good, "a Portico token, not the self-signed one");
    let read = app
        .authorized(
            Method::GET,
            "/api/v1/boiler/temperature",
            Some(&format!("Bearer {exchanged}")),
            None,
        )
        .await;
    assert_eq!(read.status, 200, "{}", read.text);

    let stranger = portico::jose::keygen::generate(portico::jose::primitive::Algorithm::Es256, 0)
        .expect("key");
    let stranger = portico::jose::signer::SigningKey::from_pkcs8(
        portico::jose::primitive::Algorithm::Es256,
        "k",
        &pem_der(&stranger.private),
    )
    .expect("key");
    let tampered = {
        // The signature of `good` over a payload with a later expiry.
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let later = claims(now + 7200, "serana").to_string();
        parts[1] = portico::jose::jws::encode(later.as_bytes());
        parts.join(".")
    };
    for (why, token) in [
        ("expired", sign(claims(now - 120, "serana"), &key)),
        (
            "more than a day ahead",
            sign(claims(now + 2 * 86_400, "serana"), &key),
        ),
        (
            "another audience",
            sign(claims(now + 3600, "portico"), &key),
        ),
        ("another key", sign(claims(now + 3600, "serana"), &stranger)),
        ("tampered", tampered),
        (
            "wrong subject",
            sign(
                json!({ "iss": "fooApp", "aud": "serana", "sub": "Other", "exp": now + 60 }),
                &key,
            ),
        ),
        (
            "unknown app",
            sign(
                json!({ "iss": "nobody", "aud": "serana", "sub": "AppAuth", "exp": now + 60 }),
                &key,
            ),
        ),
    ] {
        let reply = authenticate(&app, &json!({ "strategy": "jwt", "accessToken": token })).await;
        assert_eq!(reply.status, 401, "{why}");
        assert_not_authenticated(&reply);
    }

    // Every other failure answers the same body.
    for body in [
        json!({ "strategy": "app", "appId": "fooApp", "appSecret": "wrong" }),
        json!({ "strategy": "app", "appId": "nobody", "appSecret": "wrong" }),
        json!({ "strategy": "local", "email": "a@b", "password": "x" }),
        json!({ "strategy": "jwt" }),
        json!([]),
    ] {
        assert_not_authenticated(&authenticate(&app, &body).await);
    }
    assert_not_authenticated(
        &app.send(
            Method::POST,
            "/authentication",
            Some("application/json"),
            "{",
        )
        .await,
    );

    // A deleted app can no longer authenticate.
    let gone = app
        .call(Method::DELETE, "/api/v1/admin/apps/fooApp", &admin, None)
        .await;
    assert_eq!(gone.status, 204);
    assert_not_authenticated(
        &authenticate(
            &app,
            &json!({ "strategy": "app", "appId": "fooApp", "appSecret": secret }),
        )
        .await,
    );
    assert_not_authenticated(
        &authenticate(&app, &json!({ "strategy": "jwt", "accessToken": issued })).await,
    );
}

fn pem_der(pem: &str) -> Vec<u8> {
    pem::parse(pem).expect("PEM").into_contents()
}
