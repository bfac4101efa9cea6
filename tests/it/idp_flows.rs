//! The identity provider's browser and token flows over HTTP: the authorization code flow with
//! PKCE through the real login form, ID tokens, refresh rotation and replay, code reuse,
//! redirect URI and PKCE hardening, throttling, userinfo, introspection, revocation and logout.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::Value as Json;

use crate::helpers::{PROTECTED, Reply, TestApp};

const READING: &str = "/api/v1/boiler/temperature";
const PASSWORD: &str = "correct horse battery staple";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const CALLBACK: &str = "http://127.0.0.1/callback";

fn base(realm: &str) -> String {
    format!("/realms/{realm}/protocol/openid-connect")
}

/// A browser: no redirects followed, one cookie jar entry (the login form's).
struct Browser {
    client: reqwest::Client,
    cookie: Option<String>,
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Self::from(app, [127, 0, 0, 1])
    }

    /// A browser whose connections come from `source` (a loopback address).
    fn from(app: &TestApp, source: [u8; 4]) -> Self {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .local_address(std::net::IpAddr::from(source));
        if let Some(pem) = &app.cert_pem {
            let cert = reqwest::Certificate::from_pem(pem).expect("certificate PEM");
            builder = builder.tls_certs_only([cert]);
        }
        Self {
            client: builder.build().expect("client"),
            cookie: None,
        }
    }

    async fn get(&mut self, url: &str) -> Reply {
        let mut request = self.client.get(url);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        self.keep(Reply::from(request.send().await.expect("GET")).await)
    }

    async fn post_form(&mut self, url: &str, form: &[(String, String)]) -> Reply {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut request = self
            .client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        self.keep(Reply::from(request.send().await.expect("POST")).await)
    }

    fn keep(&mut self, reply: Reply) -> Reply {
        if let Some(set) = reply.headers.get("set-cookie") {
            let pair = set
                .to_str()
                .expect("ASCII")
                .split(';')
                .next()
                .expect("pair");
            self.cookie = Some(pair.to_owned());
        }
        reply
    }
}

/// The `name`/`value` pairs of a page's `<input>`s (the form Portico renders).
fn inputs(html: &str) -> Vec<(String, String)> {
    let unescape = |v: &str| {
        v.replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    html.split("<input")
        .skip(1)
        .filter_map(|tag| {
            let tag = &tag[..tag.find('>')?];
            let attr = |name: &str| {
                let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
                let end = start + tag[start..].find('"')?;
                Some(unescape(&tag[start..end]))
            };
            Some((attr("name")?, attr("value").unwrap_or_default()))
        })
        .collect()
}

/// The query parameters of a redirect's `Location`.
fn location_params(reply: &Reply) -> Vec<(String, String)> {
    let location = reply.header("location");
    let query = location.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn claims(token: &str) -> Json {
    let part = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

fn idp(app: &TestApp) -> &portico::idp::Idp {
    app.idp.as_deref().expect("identity provider on")
}

async fn user(app: &TestApp, realm: &str, name: &str, roles: &[&str]) -> String {
    let settings = portico::idp::UserSettings {
        email: Some(format!("{name}@example.com")),
        name: Some(format!("{name} Example")),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ..Default::default()
    };
    idp(app)
        .create_user(
            &crate::helpers::realm_name(realm),
            name,
            Some(PASSWORD.into()),
            settings,
        )
        .await
        .expect("user")
}

/// A public client (PKCE) or a confidential one, with the code and refresh grants.
async fn web_client(app: &TestApp, realm: &str, id: &str, public: bool) -> Option<String> {
    let settings = portico::idp::ClientSettings {
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        redirect_uris: vec![CALLBACK.into(), "https://app.example/cb".into()],
        post_logout_redirect_uris: vec!["https://app.example/bye".into()],
        ..Default::default()
    };
    idp(app)
        .create_client(&crate::helpers::realm_name(realm), id, settings, !public)
        .await
        .expect("client")
}

fn auth_url(app: &TestApp, realm: &str, params: &[(&str, &str)]) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    app.at(&format!("{}/auth?{query}", base(realm)))
}

fn code_request<'a>(client_id: &'a str, redirect_uri: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", "openid profile email"),
        ("state", "st-123"),
        ("nonce", "n-456"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]
}

/// Shows the login page for `params`, signs in, and returns the redirect.
async fn sign_in(
    app: &TestApp,
    browser: &mut Browser,
    realm: &str,
    params: &[(&str, &str)],
    username: &str,
    password: &str,
) -> Reply {
    let page = browser.get(&auth_url(app, realm, params)).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.header("content-type").starts_with("text/html"));
    let mut form = inputs(&page.text);
    for (name, value) in &mut form {
        match name.as_str() {
            "username" => *value = username.to_owned(),
            "password" => *value = password.to_owned(),
            _ => {}
        }
    }
    browser
        .post_form(&app.at(&format!("{}/auth", base(realm))), &form)
        .await
}

/// Signs in and returns the authorization code.
async fn code(app: &TestApp, realm: &str, params: &[(&str, &str)], username: &str) -> String {
    let mut browser = Browser::new(app);
    let reply = sign_in(app, &mut browser, realm, params, username, PASSWORD).await;
    assert_eq!(reply.status, 303, "{}", reply.text);
    let params = location_params(&reply);
    assert_eq!(param(&params, "state"), Some("st-123"));
    assert_eq!(
        param(&params, "iss"),
        Some(app.at(&format!("/realms/{realm}")).as_str())
    );
    param(&params, "code").expect("code").to_owned()
}

async fn form_post(
    app: &TestApp,
    path: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> Reply {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut request = app
        .client
        .post(app.at(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    Reply::from(request.send().await.expect("request")).await
}

async fn redeem(
    app: &TestApp,
    realm: &str,
    client_id: &str,
    code: &str,
    verifier: Option<&str>,
) -> Reply {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("code", code),
        ("redirect_uri", CALLBACK),
    ];
    if let Some(verifier) = verifier {
        form.push(("code_verifier", verifier));
    }
    form_post(app, &format!("{}/token", base(realm)), None, &form).await
}

async fn refresh(app: &TestApp, realm: &str, client_id: &str, token: &str) -> Reply {
    form_post(
        app,
        &format!("{}/token", base(realm)),
        None,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("refresh_token", token),
        ],
    )
    .await
}

fn field(reply: &Reply, name: &str) -> String {
    reply.json()[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name}: {}", reply.text))
        .to_owned()
}

#[tokio::test]
async fn a_user_signs_in_with_pkce_and_the_token_reads_a_protected_datapoint() {
    let app = TestApp::spawn_with(PROTECTED).await;
    let alice = user(&app, "node", "alice", &["plant:read"]).await;
    web_client(&app, "node", "web", true).await;

    // Loopback redirect URIs match on any port (RFC 8252).
    let redirect = "http://127.0.0.1:53111/callback";
    let mut params = code_request("web", redirect);
    let mut browser = Browser::new(&app);
    let page = browser.get(&auth_url(&app, "node", &params)).await;
    assert_eq!(page.header("x-frame-options"), "DENY");
    assert!(page.header("set-cookie").contains("HttpOnly"));
    let reply = sign_in(&app, &mut browser, "node", &params, "alice", PASSWORD).await;
    assert_eq!(reply.status, 303, "{}", reply.text);
    assert!(
        reply.header("location").starts_with(redirect),
        "{}",
        reply.header("location")
    );
    let code = param(&location_params(&reply), "code")
        .expect("code")
        .to_owned();

    params.retain(|(k, _)| *k != "redirect_uri");
    let tokens = form_post(
        &app,
        &format!("{}/token", base("node")),
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "web"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    assert_eq!(tokens.header("cache-control"), "no-store");
    let body = tokens.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "openid profile email");
    assert!(body["refresh_token"].is_string() && body["refresh_expires_in"].is_u64());

    let access = field(&tokens, "access_token");
    let access_claims = claims(&access);
    assert_eq!(access_claims["sub"], alice.as_str());
    assert_eq!(access_claims["client_id"], "web");
    assert_eq!(
        access_claims["realm_access"]["roles"],
        serde_json::json!(["plant:read"])
    );

    let id_token = field(&tokens, "id_token");
    let id = claims(&id_token);
    assert_eq!(id["aud"], "web");
    assert_eq!(id["sub"], alice.as_str());
    assert_eq!(id["nonce"], "n-456");
    assert_eq!(id["iss"], app.at("/realms/node"));
    assert_eq!(id["sid"], access_claims["sid"]);
    assert_eq!(id["preferred_username"], "alice");
    assert_eq!(id["email"], "alice@example.com");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access.as_bytes());
    assert_eq!(
        id["at_hash"],
        URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
    );
    let header: Json = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(id_token.split('.').next().expect("header"))
            .expect("b64"),
    )
    .expect("JSON");
    assert_eq!(header["alg"], "RS256");

    let read = app
        .authorized(
            Method::GET,
            READING,
            Some(&format!("Bearer {access}")),
            None,
        )
        .await;
    assert_eq!(read.status, 200, "{}", read.text);

    let info = app
        .authorized(
            Method::GET,
            &format!("{}/userinfo", base("node")),
            Some(&format!("Bearer {access}")),
            None,
        )
        .await;
    assert_eq!(info.status, 200, "{}", info.text);
    assert_eq!(info.json()["sub"], alice.as_str());
    assert_eq!(info.json()["email"], "alice@example.com");
    assert_eq!(info.json()["name"], "alice Example");
}

#[tokio::test]
async fn a_wrong_password_shows_the_form_again_and_redirects_nowhere() {
    let app = TestApp::spawn_with(PROTECTED).await;
    user(&app, "node", "alice", &[]).await;
    web_client(&app, "node", "web", true).await;
    let params = code_request("web", CALLBACK);
    for (name, password) in [("alice", "not the password at all"), ("nobody", PASSWORD)] {
        let mut browser = Browser::new(&app);
        let reply = sign_in(&app, &mut browser, "node", &params, name, password).await;
        assert_eq!(reply.status, 401, "{}", reply.text);
        assert_eq!(reply.header("location"), "");
        assert!(reply.text.contains("Invalid user name or password."));
    }
    // Without the login cookie (a cross-site post), the form is refused.
    let mut browser = Browser::new(&app);
    let page = browser.get(&auth_url(&app, "node", &params)).await;
    let mut form = inputs(&page.text);
    for (name, value) in &mut form {
        if name == "username" {
            *value = "alice".into();
        }
        if name == "password" {
            *value = PASSWORD.into();
        }
    }
    browser.cookie = None;
    let reply = browser
        .post_form(&app.at(&format!("{}/auth", base("node"))), &form)
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.header("location"), "");
}

#[tokio::test]
async fn unknown_clients_and_unregistered_redirects_get_an_error_page_never_a_redirect() {
    let app = TestApp::spawn_with(PROTECTED).await;
    web_client(&app, "node", "web", true).await;
    let mut browser = Browser::new(&app);
    for (client, redirect) in [
        ("nobody", CALLBACK),
        ("web", "https://evil.example/cb"),
        ("web", "https://app.example/cb/"),
        ("web", "https://app.example:8443/cb"),
        ("web", "https://app.example/cb?x=1"),
        ("web", "http://127.0.0.1:1/other"),
        ("web", "http://localhost/callback"),
    ] {
        let reply = browser
            .get(&auth_url(&app, "node", &code_request(client, redirect)))
            .await;
        assert_eq!(reply.status, 400, "{client} {redirect}: {}", reply.text);
        assert_eq!(reply.header("location"), "", "{client} {redirect}");
        assert!(reply.header("content-type").starts_with("text/html"));
    }
    // Once the client and redirect URI are good, errors go back to the client.
    let mut params = code_request("web", CALLBACK);
    params.retain(|(k, _)| *k != "response_type");
    params.push(("response_type", "token"));
    let reply = browser.get(&auth_url(&app, "node", &params)).await;
    assert_eq!(reply.status, 303);
    let sent = location_params(&reply);
    assert_eq!(param(&sent, "error"), Some("unsupported_response_type"));
    assert_eq!(param(&sent, "state"), Some("st-123"));
}

#[tokio::test]
async fn pkce_downgrades_are_refused() {
    let app = TestApp::spawn_with(PROTECTED).await;
    user(&app, "node", "alice", &[]).await;
    web_client(&app, "node", "web", true).await;
    let secret = web_client(&app, "node", "backend", false)
        .await
        .expect("secret");
    let mut browser = Browser::new(&app);
    let without = |drop: &[&str], extra: &[(&'static str, &'static str)]| {
        let mut params = code_request("web", CALLBACK);
        params.retain(|(k, _)| !drop.contains(k));
        params.extend_from_slice(extra);
        params
    };
    for (params, why) in [
        (
            without(&["code_challenge", "code_challenge_method"], &[]),
            "a public client without PKCE",
        ),
        (
            without(&["code_challenge_method"], &[]),
            "a challenge without a method",
        ),
        (
            without(
                &["code_challenge_method"],
                &[("code_challenge_method", "plain")],
            ),
            "plain",
        ),
        (
            without(&["code_challenge"], &[]),
            "a method without a challenge",
        ),
    ] {
        let reply = browser.get(&auth_url(&app, "node", &params)).await;
        assert_eq!(reply.status, 303, "{why}: {}", reply.text);
        let sent = location_params(&reply);
        assert_eq!(param(&sent, "error"), Some("invalid_request"), "{why}");
        assert_eq!(param(&sent, "code"), None);
    }

    // A confidential client may skip PKCE, but a verifier without a challenge is refused.
    let mut params = code_request("backend", CALLBACK);
    params.retain(|(k, _)| !k.starts_with("code_challenge"));
    let code = code(&app, "node", &params, "alice").await;
    let reply = form_post(
        &app,
        &format!("{}/token", base("node")),
        Some(("backend", &secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn a_failed_pkce_check_burns_the_code_and_a_reused_code_revokes_its_tokens() {
    let app = TestApp::spawn_with(PROTECTED).await;
    user(&app, "node", "alice", &[]).await;
    web_client(&app, "node", "web", true).await;
    let params = code_request("web", CALLBACK);

    let burned = code(&app, "node", &params, "alice").await;
    let wrong = "x".repeat(43);
    let reply = redeem(&app, "node", "web", &burned, Some(&wrong)).await;
    assert_eq!(reply.json()["error"], "invalid_grant");
    let reply = redeem(&app, "node", "web", &burned, Some(VERIFIER)).await;
    assert_eq!(reply.json()["error"], "invalid_grant", "the code is spent");
    let reply = redeem(&app, "node", "web", &burned, None).await;
    assert_eq!(reply.json()["error"], "invalid_grant");

    let reused = code(&app, "node", &params, "alice").await;
    // Another client (public ids are public) presenting it neither uses nor burns it.
    web_client(&app, "node", "other", true).await;
    let stolen = redeem(&app, "node", "other", &reused, Some(VERIFIER)).await;
    assert_eq!(stolen.json()["error"], "invalid_grant");
    let first = redeem(&app, "node", "web", &reused, Some(VERIFIER)).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let second = redeem(&app, "node", "web", &reused, Some(VERIFIER)).await;
    assert_eq!(second.status, 400);
    assert_eq!(second.json()["error"], "invalid_grant");
    let after = refresh(&app, "node", "web", &field(&first, "refresh_token")).await;
    assert_eq!(
        after.json()["error"],
        "invalid_grant",
        "the first tokens are revoked"
    );
}

#[tokio::test]
async fn refresh_tokens_rotate_a_replay_in_the_grace_window_gets_the_same_successor_and_one_after_it_revokes_the_login()
 {
    let app = TestApp::spawn_with(PROTECTED).await;
    let strict = portico::idp::RealmSettings {
        refresh_reuse_grace_seconds: 0,
        ..Default::default()
    };
    idp(&app)
        .create_realm(&crate::helpers::realm_name("strict"), strict)
        .await
        .expect("realm");
    for realm in ["node", "strict"] {
        user(&app, realm, "alice", &[]).await;
        web_client(&app, realm, "web", true).await;
    }
    let params = code_request("web", CALLBACK);

    // Grace window (10 s in `node`): a replay of the same token (a client retrying after a
    // lost answer, or a concurrent refresh) succeeds with the same successor: the login never
    // forks into two live refresh tokens.
    let code = code(&app, "node", &params, "alice").await;
    let first = redeem(&app, "node", "web", &code, Some(VERIFIER)).await;
    let r1 = field(&first, "refresh_token");
    let a = refresh(&app, "node", "web", &r1).await;
    let b = refresh(&app, "node", "web", &r1).await;
    assert_eq!(
        (a.status.as_u16(), b.status.as_u16()),
        (200, 200),
        "{} {}",
        a.text,
        b.text
    );
    let successor = field(&a, "refresh_token");
    assert_ne!(successor, r1, "rotated");
    assert_eq!(field(&b, "refresh_token"), successor, "the same successor");
    // The successor rotates once too; after that, replaying it in the grace window gives its
    // one successor again.
    let c = refresh(&app, "node", "web", &successor).await;
    let d = refresh(&app, "node", "web", &successor).await;
    assert_eq!(field(&c, "refresh_token"), field(&d, "refresh_token"));
    assert_ne!(field(&c, "refresh_token"), successor);

    // No grace: the replay of a used token revokes the family, the latest token included.
    let code = {
        let mut browser = Browser::new(&app);
        let reply = sign_in(&app, &mut browser, "strict", &params, "alice", PASSWORD).await;
        param(&location_params(&reply), "code")
            .expect("code")
            .to_owned()
    };
    let first = redeem(&app, "strict", "web", &code, Some(VERIFIER)).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let r1 = field(&first, "refresh_token");
    let second = refresh(&app, "strict", "web", &r1).await;
    assert_eq!(second.status, 200, "{}", second.text);
    let r2 = field(&second, "refresh_token");
    let replay = refresh(&app, "strict", "web", &r1).await;
    assert_eq!(replay.status, 400);
    assert_eq!(replay.json()["error"], "invalid_grant");
    let latest = refresh(&app, "strict", "web", &r2).await;
    assert_eq!(
        latest.json()["error"],
        "invalid_grant",
        "the family is revoked"
    );
    // Another client cannot use the token either.
    web_client(&app, "strict", "other", true).await;
    let stolen = refresh(&app, "strict", "other", &r2).await;
    assert_eq!(stolen.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn introspection_and_revocation_follow_rfc_7662_and_rfc_7009() {
    let app = TestApp::spawn_with(PROTECTED).await;
    user(&app, "node", "alice", &["plant:read"]).await;
    let secret = web_client(&app, "node", "backend", false)
        .await
        .expect("secret");
    let rs = idp(&app)
        .create_client(
            &crate::helpers::realm_name("node"),
            "resource-server",
            Default::default(),
            true,
        )
        .await
        .expect("client")
        .expect("secret");
    let mut params = code_request("backend", CALLBACK);
    params.retain(|(k, _)| !k.starts_with("code_challenge"));
    let code = code(&app, "node", &params, "alice").await;
    let tokens = form_post(
        &app,
        &format!("{}/token", base("node")),
        Some(("backend", &secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
        ],
    )
    .await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    let access = field(&tokens, "access_token");
    let refresh_token = field(&tokens, "refresh_token");
    let introspect = format!("{}/token/introspect", base("node"));
    let revoke = format!("{}/revoke", base("node"));

    // Any confidential client may introspect an access token; refresh tokens only their own.
    let live = form_post(
        &app,
        &introspect,
        Some(("resource-server", &rs)),
        &[("token", &access)],
    )
    .await;
    assert_eq!(live.status, 200, "{}", live.text);
    let body = live.json();
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], "backend");
    assert_eq!(body["username"], "alice");
    assert_eq!(body["token_type"], "Bearer");
    let theirs = form_post(
        &app,
        &introspect,
        Some(("resource-server", &rs)),
        &[("token", &refresh_token)],
    )
    .await;
    assert_eq!(theirs.json(), serde_json::json!({ "active": false }));
    let own = form_post(
        &app,
        &introspect,
        Some(("backend", &secret)),
        &[
            ("token", &refresh_token),
            ("token_type_hint", "refresh_token"),
        ],
    )
    .await;
    assert_eq!(own.json()["active"], true);
    let garbage = form_post(
        &app,
        &introspect,
        Some(("backend", &secret)),
        &[("token", "garbage")],
    )
    .await;
    assert_eq!(garbage.json(), serde_json::json!({ "active": false }));
    let anonymous = form_post(&app, &introspect, None, &[("token", &access)]).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
    assert_eq!(anonymous.json()["error"], "invalid_client");
    let wrong = form_post(
        &app,
        &introspect,
        Some(("backend", "wrong")),
        &[("token", &access)],
    )
    .await;
    assert_eq!(wrong.status, 401);

    // Revocation: 200 for unknown tokens and for other clients' tokens (left alone).
    let unknown = form_post(
        &app,
        &revoke,
        Some(("backend", &secret)),
        &[("token", "unknown")],
    )
    .await;
    assert_eq!(unknown.status, 200);
    let other = form_post(
        &app,
        &revoke,
        Some(("resource-server", &rs)),
        &[("token", &refresh_token)],
    )
    .await;
    assert_eq!(other.status, 200);
    let still = form_post(
        &app,
        &introspect,
        Some(("backend", &secret)),
        &[("token", &refresh_token)],
    )
    .await;
    assert_eq!(still.json()["active"], true);

    // Revoking the access token: protected routes refuse it and introspection says inactive.
    let done = form_post(
        &app,
        &revoke,
        Some(("backend", &secret)),
        &[("token", &access)],
    )
    .await;
    assert_eq!(done.status, 200);
    let read = app
        .authorized(
            Method::GET,
            READING,
            Some(&format!("Bearer {access}")),
            None,
        )
        .await;
    read.assert_problem(401, "invalid_token");
    let dead = form_post(
        &app,
        &introspect,
        Some(("backend", &secret)),
        &[("token", &access)],
    )
    .await;
    assert_eq!(dead.json(), serde_json::json!({ "active": false }));

    // Revoking the refresh token ends the login.
    let done = form_post(
        &app,
        &revoke,
        Some(("backend", &secret)),
        &[
            ("token", &refresh_token),
            ("token_type_hint", "refresh_token"),
        ],
    )
    .await;
    assert_eq!(done.status, 200);
    let used = form_post(
        &app,
        &format!("{}/token", base("node")),
        Some(("backend", &secret)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
        ],
    )
    .await;
    assert_eq!(used.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn logout_ends_the_login_and_redirects_only_to_registered_uris() {
    let app = TestApp::spawn_with(PROTECTED).await;
    user(&app, "node", "alice", &[]).await;
    web_client(&app, "node", "web", true).await;
    let code = code(&app, "node", &code_request("web", CALLBACK), "alice").await;
    let tokens = redeem(&app, "node", "web", &code, Some(VERIFIER)).await;
    let id_token = field(&tokens, "id_token");
    let refresh_token = field(&tokens, "refresh_token");
    let mut browser = Browser::new(&app);
    let logout = |query: &[(&str, &str)]| {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        app.at(&format!("{}/logout?{query}", base("node")))
    };

    let refused = browser
        .get(&logout(&[
            ("id_token_hint", &id_token),
            ("post_logout_redirect_uri", "https://evil.example/"),
        ]))
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.header("location"), "");
    let still = refresh(&app, "node", "web", &refresh_token).await;
    assert_eq!(
        still.status, 200,
        "a refused logout ends nothing: {}",
        still.text
    );
    let refresh_token = field(&still, "refresh_token");

    let done = browser
        .get(&logout(&[
            ("id_token_hint", &id_token),
            ("post_logout_redirect_uri", "https://app.example/bye"),
            ("state", "s1"),
        ]))
        .await;
    assert_eq!(done.status, 303, "{}", done.text);
    assert_eq!(done.header("location"), "https://app.example/bye?state=s1");
    let after = refresh(&app, "node", "web", &refresh_token).await;
    assert_eq!(after.json()["error"], "invalid_grant");

    let forged = browser.get(&logout(&[("id_token_hint", "a.b.c")])).await;
    assert_eq!(forged.status, 400);
}

#[tokio::test]
async fn failed_sign_ins_and_token_requests_are_throttled_without_locking_out_the_owner() {
    let app = TestApp::spawn_with(&format!(
        "{PROTECTED}\n[idp.throttle]\nip_burst = 1000\naccount_burst = 3\n"
    ))
    .await;
    user(&app, "node", "alice", &[]).await;
    user(&app, "node", "bob", &[]).await;
    web_client(&app, "node", "web", true).await;
    let params = code_request("web", CALLBACK);
    // Attackers on three loopback addresses (Linux routes 127.0.0.0/8 to the loopback).
    let attackers = [[127, 0, 0, 2], [127, 0, 0, 3], [127, 0, 0, 4]];

    // One address alone, however often it fails, does not lock Bob's account.
    for _ in 0..5 {
        let mut browser = Browser::from(&app, attackers[0]);
        let reply = sign_in(
            &app,
            &mut browser,
            "node",
            &params,
            "bob",
            "wrong password!",
        )
        .await;
        assert_eq!(reply.status, 401);
    }
    code(&app, "node", &params, "bob").await;

    // Alice signs in once: 127.0.0.1 is trusted for her account.
    code(&app, "node", &params, "alice").await;
    // Failures from three networks throttle both accounts for addresses they never used...
    for account in ["alice", "bob"] {
        for source in attackers {
            let mut browser = Browser::from(&app, source);
            sign_in(
                &app,
                &mut browser,
                "node",
                &params,
                account,
                "wrong password!",
            )
            .await;
        }
    }
    let mut browser = Browser::from(&app, [127, 0, 0, 5]);
    let reply = sign_in(&app, &mut browser, "node", &params, "bob", PASSWORD).await;
    assert_eq!(reply.status, 429, "{}", reply.text);
    let after: u64 = reply
        .header("retry-after")
        .parse()
        .expect("Retry-After seconds");
    // Bob's account holds 8 failures against a burst of 3: 6 must leak away, one per 30 s.
    assert!((170..=180).contains(&after), "{after}");
    // ...but not for the owner's trusted address.
    code(&app, "node", &params, "alice").await;

    // The token endpoint: a client's failures from three networks throttle it elsewhere, not
    // on the address it authenticated from before.
    let secret = idp(&app)
        .create_client(
            &crate::helpers::realm_name("node"),
            "gateway",
            Default::default(),
            true,
        )
        .await
        .expect("client")
        .expect("secret");
    let token = format!("{}/token", base("node"));
    let grant = [("grant_type", "client_credentials")];
    let ok = form_post(&app, &token, Some(("gateway", &secret)), &grant).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let mut statuses = Vec::new();
    for source in attackers {
        let client = Browser::from(&app, source).client;
        let reply = Reply::from(
            client
                .post(app.at(&token))
                .basic_auth("gateway", Some("wrong"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("grant_type=client_credentials")
                .send()
                .await
                .expect("request"),
        )
        .await;
        statuses.push(reply.status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 401]);
    let elsewhere = Reply::from(
        Browser::from(&app, [127, 0, 0, 6])
            .client
            .post(app.at(&token))
            .basic_auth("gateway", Some(&secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(elsewhere.status, 429, "{}", elsewhere.text);
    assert_eq!(elsewhere.json()["error"], "temporarily_unavailable");
    assert!(!elsewhere.header("retry-after").is_empty());
    let home = form_post(&app, &token, Some(("gateway", &secret)), &grant).await;
    assert_eq!(
        home.status, 200,
        "the trusted address is not locked out: {}",
        home.text
    );
}

#[tokio::test]
async fn a_user_cannot_take_a_role_by_asking_for_it_as_a_scope() {
    let app = TestApp::spawn_with(PROTECTED).await;
    user(&app, "node", "mallory", &[]).await;
    // A client whose service account may read; its users are not given its roles.
    let settings = portico::idp::ClientSettings {
        grant_types: vec!["authorization_code".into(), "client_credentials".into()],
        redirect_uris: vec![CALLBACK.into()],
        roles: vec!["plant:read".into(), "portico:admin".into()],
        ..Default::default()
    };
    let secret = idp(&app)
        .create_client(
            &crate::helpers::realm_name("node"),
            "service",
            settings,
            true,
        )
        .await
        .expect("client")
        .expect("secret");
    let mut params = code_request("service", CALLBACK);
    params.retain(|(k, _)| *k != "scope");
    params.push(("scope", "openid plant:read portico:admin"));
    let mut browser = Browser::new(&app);
    let reply = browser.get(&auth_url(&app, "node", &params)).await;
    assert_eq!(reply.status, 303, "{}", reply.text);
    assert_eq!(
        param(&location_params(&reply), "error"),
        Some("invalid_scope")
    );

    // A scope grants no permission by itself: only roles do.
    params.retain(|(k, _)| *k != "scope");
    params.push(("scope", "openid"));
    let code = code(&app, "node", &params, "mallory").await;
    let tokens = form_post(
        &app,
        &format!("{}/token", base("node")),
        Some(("service", &secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    let access = field(&tokens, "access_token");
    let bearer = format!("Bearer {access}");
    app.authorized(Method::GET, READING, Some(&bearer), None)
        .await
        .assert_problem(403, "insufficient_scope");
    app.authorized(Method::GET, "/api/v1/admin/realms", Some(&bearer), None)
        .await
        .assert_problem(403, "forbidden");
}

#[tokio::test]
async fn an_access_token_revoked_after_its_login_ended_is_refused() {
    let app = TestApp::spawn_with(PROTECTED).await;
    user(&app, "node", "alice", &["plant:read"]).await;
    web_client(&app, "node", "web", true).await;
    let code = code(&app, "node", &code_request("web", CALLBACK), "alice").await;
    let tokens = redeem(&app, "node", "web", &code, Some(VERIFIER)).await;
    let access = field(&tokens, "access_token");
    let bearer = format!("Bearer {access}");
    let revoke = format!("{}/revoke", base("node"));
    // The usual logout order: the refresh token (ending the login), then the access token.
    for token in [field(&tokens, "refresh_token"), access.clone()] {
        let reply = form_post(
            &app,
            &revoke,
            None,
            &[("client_id", "web"), ("token", &token)],
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    app.authorized(Method::GET, READING, Some(&bearer), None)
        .await
        .assert_problem(401, "invalid_token");
}

#[tokio::test]
async fn one_address_failing_at_many_clients_is_throttled_with_retry_after() {
    let app = TestApp::spawn_with(PROTECTED).await;
    let token = format!("{}/token", base("node"));
    let grant = [("grant_type", "client_credentials")];
    // The default limit: 10 failures per address, whatever the account.
    for i in 0..10 {
        let reply = form_post(&app, &token, Some((&format!("guess-{i}"), "wrong")), &grant).await;
        assert_eq!(reply.status, 401, "attempt {i}: {}", reply.text);
    }
    let reply = form_post(&app, &token, Some(("guess-next", "wrong")), &grant).await;
    assert_eq!(reply.status, 429, "{}", reply.text);
    let after: u64 = reply
        .header("retry-after")
        .parse()
        .expect("Retry-After seconds");
    assert!(
        (1..=6).contains(&after),
        "one failure leaks away every 6 s: {after}"
    );
}

#[tokio::test]
async fn sign_ins_beyond_the_password_queue_are_answered_429_at_once() {
    let app = TestApp::spawn_with(&format!(
        "{PROTECTED}\n[idp]\npassword_checks = 1\npassword_queue = 0\n"
    ))
    .await;
    user(&app, "node", "alice", &[]).await;
    web_client(&app, "node", "web", true).await;
    let params = code_request("web", CALLBACK);
    // Twelve browsers hold a filled-in sign-in form each, then all submit at once: one
    // Argon2id check may run and none may wait, so those that find it busy are refused.
    let mut browsers = Vec::new();
    for _ in 0..12 {
        let mut browser = Browser::new(&app);
        let page = browser.get(&auth_url(&app, "node", &params)).await;
        let mut form = inputs(&page.text);
        for (name, value) in &mut form {
            match name.as_str() {
                "username" => *value = "alice".to_owned(),
                "password" => *value = PASSWORD.to_owned(),
                _ => {}
            }
        }
        browsers.push((browser, form));
    }
    let action = app.at(&format!("{}/auth", base("node")));
    let replies = futures_util::future::join_all(
        browsers
            .iter_mut()
            .map(|(browser, form)| browser.post_form(&action, form)),
    )
    .await;
    let signed_in = replies.iter().filter(|r| r.status == 303).count();
    let refused: Vec<&Reply> = replies.iter().filter(|r| r.status == 429).collect();
    assert_eq!(
        signed_in + refused.len(),
        replies.len(),
        "every answer is a sign-in or a refusal: {:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(signed_in >= 1, "the check that ran signed in");
    assert!(!refused.is_empty(), "the others found the queue full");
    for reply in refused {
        assert_eq!(reply.header("retry-after"), "1");
        assert!(reply.text.contains("Too many sign-ins are being checked"));
    }
}
