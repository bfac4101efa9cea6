//! The built-in identity provider over HTTP: discovery, keys, the token endpoint's client
//! credentials grant, its errors (RFC 6749 section 5.2), and its tokens on protected routes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::Value as Json;

use crate::helpers::{PROTECTED, Reply, TestApp};

const TOKEN: &str = "/realms/node/protocol/openid-connect/token";

async fn app() -> TestApp {
    TestApp::spawn_with(PROTECTED).await
}

/// Creates a confidential client in realm `node` and returns its secret.
async fn client(app: &TestApp, id: &str, roles: &[&str]) -> String {
    let idp = app.idp.as_ref().expect("identity provider on");
    let settings = portico::idp::ClientSettings {
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ..Default::default()
    };
    idp.create_client(&crate::helpers::realm_name("node"), id, settings, true)
        .await
        .unwrap_or_else(|e| panic!("client: {e}"))
        .expect("a secret")
}

async fn token_request(app: &TestApp, basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> Reply {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut request = app
        .client
        .post(app.at(TOKEN))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    Reply::from(request.send().await.expect("token request")).await
}

fn decode(part: &str) -> Json {
    let bytes = URL_SAFE_NO_PAD.decode(part).expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

#[tokio::test]
async fn a_client_credentials_token_reads_a_protected_datapoint() {
    let app = app().await;
    let secret = client(&app, "gateway", &["plant:read"]).await;
    let reply = token_request(
        &app,
        Some(("gateway", &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("cache-control"), "no-store");
    assert_eq!(reply.header("pragma"), "no-cache");
    let body = reply.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    let token = body["access_token"].as_str().expect("access_token");

    // RFC 9068: typ at+jwt, and the required claims.
    let parts: Vec<&str> = token.split('.').collect();
    let header = decode(parts[0]);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    let claims = decode(parts[1]);
    assert_eq!(claims["iss"], app.at("/realms/node"));
    assert_eq!(claims["sub"], "gateway");
    assert_eq!(claims["client_id"], "gateway");
    assert_eq!(claims["aud"], "portico");
    assert!(claims["jti"].is_string() && claims["iat"].is_i64());
    assert_eq!(
        claims["exp"].as_i64(),
        claims["iat"].as_i64().map(|t| t + 300)
    );
    assert_eq!(
        claims["realm_access"]["roles"],
        serde_json::json!(["plant:read"])
    );

    // The key is in the realm's published set.
    let certs = app.get("/realms/node/protocol/openid-connect/certs").await;
    assert_eq!(certs.status, 200);
    assert_eq!(certs.header("content-type"), "application/jwk-set+json");
    let kids: Vec<String> = certs.json()["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        kids.len(),
        4,
        "access and ID keys, active and next: {kids:?}"
    );
    assert!(kids.contains(&header["kid"].as_str().unwrap_or_default().to_owned()));

    let path = "/api/v1/boiler/temperature";
    let bearer = format!("Bearer {token}");
    let read = app.authorized(Method::GET, path, Some(&bearer), None).await;
    assert_eq!(read.status, 200, "{}", read.text);
    app.authorized(Method::GET, path, None, None)
        .await
        .assert_problem(401, "unauthenticated");

    // Without the role: authenticated, not allowed.
    let other = client(&app, "viewer", &[]).await;
    let reply = token_request(
        &app,
        Some(("viewer", &other)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    let token = reply.json()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    app.authorized(Method::GET, path, Some(&format!("Bearer {token}")), None)
        .await
        .assert_problem(403, "insufficient_scope");
}

#[tokio::test]
async fn client_authentication_fails_the_same_way_for_unknown_and_wrong() {
    let app = app().await;
    let secret = client(&app, "gateway", &[]).await;
    let grant = [("grant_type", "client_credentials")];
    let wrong = token_request(&app, Some(("gateway", "not-the-secret")), &grant).await;
    let unknown = token_request(&app, Some(("nobody", "not-the-secret")), &grant).await;
    for reply in [&wrong, &unknown] {
        assert_eq!(reply.status, 401);
        assert_eq!(reply.json()["error"], "invalid_client");
        assert_eq!(
            reply.header("www-authenticate"),
            r#"Basic realm="portico", charset="UTF-8""#
        );
    }
    assert_eq!(wrong.text, unknown.text);

    // client_secret_post: 401 without a Basic challenge.
    let posted = token_request(
        &app,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "gateway"),
            ("client_secret", "x"),
        ],
    )
    .await;
    assert_eq!(posted.status, 401);
    assert_eq!(posted.json()["error"], "invalid_client");
    assert_eq!(posted.header("www-authenticate"), "");
    let good = token_request(
        &app,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "gateway"),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(good.status, 200, "{}", good.text);

    // Two methods at once, a repeated parameter, an unknown grant, a scope not granted.
    let both = token_request(
        &app,
        Some(("gateway", &secret)),
        &[
            ("grant_type", "client_credentials"),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(
        (both.status.as_u16(), both.json()["error"].clone()),
        (400, "invalid_request".into())
    );
    let repeated = token_request(
        &app,
        Some(("gateway", &secret)),
        &[
            ("grant_type", "client_credentials"),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    assert_eq!(repeated.json()["error"], "invalid_request");
    let unknown_grant = token_request(
        &app,
        Some(("gateway", &secret)),
        &[("grant_type", "password")],
    )
    .await;
    assert_eq!(unknown_grant.json()["error"], "unsupported_grant_type");
    let not_allowed = token_request(
        &app,
        Some(("gateway", &secret)),
        &[("grant_type", "authorization_code")],
    )
    .await;
    assert_eq!(not_allowed.json()["error"], "unauthorized_client");
    let scope = token_request(
        &app,
        Some(("gateway", &secret)),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "plant:write"),
        ],
    )
    .await;
    assert_eq!(
        (scope.status.as_u16(), scope.json()["error"].clone()),
        (400, "invalid_scope".into())
    );
    let json_body = app
        .send(
            Method::POST,
            TOKEN,
            Some("application/json"),
            r#"{"grant_type":"client_credentials"}"#,
        )
        .await;
    assert_eq!(json_body.json()["error"], "invalid_request");
}

#[tokio::test]
async fn discovery_names_the_configured_issuer_and_what_works() {
    let app = app().await;
    let reply = app
        .get("/realms/node/.well-known/openid-configuration")
        .await;
    assert_eq!(reply.status, 200);
    let doc = reply.json();
    let issuer = app.at("/realms/node");
    assert_eq!(doc["issuer"], issuer);
    assert_eq!(
        doc["token_endpoint"],
        format!("{issuer}/protocol/openid-connect/token")
    );
    assert_eq!(
        doc["jwks_uri"],
        format!("{issuer}/protocol/openid-connect/certs")
    );
    assert_eq!(
        doc["grant_types_supported"],
        serde_json::json!(["authorization_code", "client_credentials", "refresh_token"])
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    // A Host header does not move the issuer.
    let spoofed = app
        .client
        .get(app.at("/realms/node/.well-known/openid-configuration"))
        .header("host", "evil.example")
        .header("x-forwarded-host", "evil.example")
        .send()
        .await
        .expect("request");
    let spoofed: Json = spoofed.json().await.expect("json");
    assert_eq!(spoofed["issuer"], issuer);
    app.get("/realms/nope/.well-known/openid-configuration")
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn tokens_signed_before_a_rotation_stay_valid_and_new_ones_use_the_next_key() {
    let app = app().await;
    let secret = client(&app, "gateway", &["plant:read"]).await;
    let grant = [("grant_type", "client_credentials")];
    let kid_of = |token: &str| decode(token.split('.').next().unwrap_or_default())["kid"].clone();
    let before = token_request(&app, Some(("gateway", &secret)), &grant)
        .await
        .json()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let published = app
        .get("/realms/node/protocol/openid-connect/certs")
        .await
        .json();
    let idp = app.idp.as_ref().expect("idp");
    idp.rotate_keys(&crate::helpers::realm_name("node"))
        .await
        .expect("rotate");
    let after = token_request(&app, Some(("gateway", &secret)), &grant)
        .await
        .json()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_ne!(kid_of(&before), kid_of(&after));
    let was_published = published["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .any(|k| k["kid"] == kid_of(&after));
    assert!(
        was_published,
        "the key that signs now was published before it signed"
    );
    let now_published = app
        .get("/realms/node/protocol/openid-connect/certs")
        .await
        .json();
    assert_eq!(
        now_published["keys"].as_array().map(Vec::len),
        Some(6),
        "retired keys stay"
    );
    for token in [&before, &after] {
        let read = app
            .authorized(
                Method::GET,
                "/api/v1/boiler/temperature",
                Some(&format!("Bearer {token}")),
                None,
            )
            .await;
        assert_eq!(read.status, 200, "{}", read.text);
    }
}

#[tokio::test]
async fn the_identity_provider_can_be_turned_off() {
    let app = TestApp::spawn_with("[idp]\nenabled = false\n").await;
    assert!(app.idp.is_none());
    app.get("/realms/node/.well-known/openid-configuration")
        .await
        .assert_problem(404, "not_found");
}
