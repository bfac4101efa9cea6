//! An XRTC client for tests: registration (codes read from the outbox), login with the session
//! cookie, set, get and the portal event stream.

#![allow(clippy::unwrap_used)] // a test's helpers fail the test by panicking

use std::net::IpAddr;

use serde_json::Value as Json;

use super::{Reply, TestApp};

/// An XRTC client: its own source address and the session cookie it was given.
pub struct Client {
    pub url: String,
    pub http: reqwest::Client,
    pub cookie: Option<String>,
    pub forwarded: Option<String>,
}

impl Client {
    pub fn new(app: &TestApp) -> Self {
        Self::from(app, [127, 0, 0, 1])
    }

    pub fn from(app: &TestApp, source: [u8; 4]) -> Self {
        Self::to(&app.url, app.cert_pem.as_deref(), source)
    }

    /// A client of the server at `url` (trusting `cert_pem`), from `source`.
    pub fn to(url: &str, cert_pem: Option<&[u8]>, source: [u8; 4]) -> Self {
        let mut builder = reqwest::Client::builder().local_address(IpAddr::from(source));
        if let Some(pem) = cert_pem {
            let cert = reqwest::Certificate::from_pem(pem).expect("certificate PEM");
            builder = builder.tls_certs_only([cert]);
        }
        Self {
            url: url.to_owned(),
            http: builder.build().expect("client"),
            cookie: None,
            forwarded: None,
        }
    }

    /// Follows `portal` as Server-Sent Events with the session cookie.
    pub async fn follow(&self, portal: &str) -> crate::helpers::EventReader {
        let response = self
            .http
            .get(format!("{}/api/v1/portals/{portal}/events", self.url))
            .header(
                "cookie",
                format!("JSESSIONID={}", self.cookie.as_deref().unwrap_or("")),
            )
            .send()
            .await
            .expect("follow");
        crate::helpers::EventReader::from_response(response)
            .await
            .unwrap_or_else(|reply| panic!("{} {}", reply.status, reply.text))
    }

    pub async fn post(&mut self, path: &str, body: &str) -> Reply {
        let mut request = self
            .http
            .post(format!("{}{path}", self.url))
            .body(body.to_owned());
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", format!("JSESSIONID={cookie}"));
        }
        if let Some(forwarded) = &self.forwarded {
            request = request.header("x-forwarded-for", forwarded);
        }
        let reply = Reply::from(request.send().await.expect("POST")).await;
        if let Some(value) = reply.header("set-cookie").strip_prefix("JSESSIONID=") {
            self.cookie = Some(value.split(';').next().unwrap_or("").to_owned());
        }
        reply
    }

    pub async fn login(&mut self, account: &str, key: &str) -> Reply {
        self.post(
            "/v1/auth/login",
            &format!(r#"{{"accountid":"{account}","apikey":"{key}"}}"#),
        )
        .await
    }

    pub async fn set(&mut self, portal: &str, payload: &str) -> Reply {
        self.post(
            "/v1/item/set",
            &format!(r#"{{"items":[{{"portalid":"{portal}","payload":"{payload}"}}]}}"#),
        )
        .await
    }

    /// The payloads a get answered, in order.
    pub async fn get(&mut self, body: &str) -> Vec<String> {
        let reply = self.post("/v1/item/get", body).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        payloads(&reply.json())
    }
}

pub fn payloads(answer: &Json) -> Vec<String> {
    answer["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| item["payload"].as_str().expect("payload").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The newest code e-mailed to `email`, from the outbox.
pub fn code_for(app: &TestApp, email: &str) -> String {
    let mut files: Vec<_> = std::fs::read_dir(app.data_dir.join("outbox"))
        .expect("outbox")
        .map(|entry| entry.expect("entry").path())
        .collect();
    files.sort();
    // Mail goes to the address as normalized (lowercase).
    let to = format!("To: <{}>", email.to_ascii_lowercase());
    files
        .iter()
        .rev()
        .map(|path| std::fs::read_to_string(path).expect("mail"))
        .find(|text| text.contains(&to))
        .and_then(|text| {
            text.lines()
                .find(|line| line.len() == 6 && line.bytes().all(|b| b.is_ascii_digit()))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no code for {email}"))
}

pub async fn start(client: &mut Client, email: &str) -> String {
    let reply = client
        .post(
            "/v1/auth/registrationstart",
            &format!(r#"{{"email":"{email}"}}"#),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()["registrationtoken"]
        .as_str()
        .expect("token")
        .to_owned()
}

pub async fn finish(client: &mut Client, token: &str, code: &str) -> Reply {
    client
        .post(
            "/v1/auth/registrationcode",
            &format!(r#"{{"registrationtoken":"{token}","emailcode":"{code}"}}"#),
        )
        .await
}

/// Registers `email`; returns (account id, API key).
pub async fn register(app: &TestApp, email: &str) -> (String, String) {
    let mut client = Client::new(app);
    let token = start(&mut client, email).await;
    let reply = finish(&mut client, &token, &code_for(app, email)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let json = reply.json();
    (
        json["accountid"].as_str().expect("account").to_owned(),
        json["apikey"].as_str().expect("key").to_owned(),
    )
}

/// A logged-in client of a new account.
pub async fn logged_in(app: &TestApp, email: &str) -> Client {
    let (account, key) = register(app, email).await;
    let mut client = Client::new(app);
    let reply = client.login(&account, &key).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    client
}
