//! The test harness: a real Portico server on port 0 with a fresh database, and a client that
//! verifies the server's generated certificate.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use std::sync::Arc;

use portico::config::Config;
use portico::server::Server;
use portico::store::Location;
use reqwest::StatusCode;
use serde_json::Value as Json;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod process;
pub mod receiver;
pub mod tokens;
pub mod vectors;
pub mod xrtc;

/// Datapoints of every type and access, used by most tests.
pub const DATAPOINTS: &str = r#"
[[datapoint]]
key = "T.Bool"
type = "bool"

[[datapoint]]
key = "T.Int"
type = "int"

[[datapoint]]
key = "T.Float"
type = "float"
unit = "°C"

[[datapoint]]
key = "T.String"
type = "string"
max_length = 8

[[datapoint]]
key = "T.Bounded"
type = "int"
min = 0
max = 100

[[datapoint]]
key = "T.ReadOnly"
type = "float"
access = "read"

[[datapoint]]
key = "T.WriteOnly"
type = "int"
access = "write"

[[endpoint]]
path = "/api/v1/t/bool"
datapoint = "T.Bool"

[[endpoint]]
path = "/api/v1/t/int"
datapoint = "T.Int"

[[endpoint]]
path = "/api/v1/t/float"
datapoint = "T.Float"

[[endpoint]]
path = "/api/v1/t/string"
datapoint = "T.String"

[[endpoint]]
path = "/api/v1/t/bounded"
datapoint = "T.Bounded"

[[endpoint]]
path = "/api/v1/t/read-only"
datapoint = "T.ReadOnly"

[[endpoint]]
path = "/api/v1/t/write-only"
datapoint = "T.WriteOnly"
"#;

/// A database for one test: a new SQLite file, or a new schema in the PostgreSQL database named by
/// `PORTICO_TEST_DATABASE_URL` when that is set (the whole suite then runs on PostgreSQL).
#[derive(Debug, Clone)]
pub struct TestDatabase {
    /// What to put in `database_url`.
    pub url: String,
}

impl TestDatabase {
    pub async fn fresh(dir: &Path) -> Self {
        match std::env::var("PORTICO_TEST_DATABASE_URL") {
            Ok(base) if !base.is_empty() => {
                let schema = format!("portico_t_{:016x}", rand_u64());
                let pool = sqlx::PgPool::connect(&base)
                    .await
                    .expect("connect to PostgreSQL");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&pool)
                    .await
                    .expect("create schema");
                pool.close().await;
                let separator = if base.contains('?') { '&' } else { '?' };
                Self {
                    url: format!("{base}{separator}options[search_path]={schema}"),
                }
            }
            _ => Self {
                url: format!("sqlite://{}", dir.join("portico.db").display()),
            },
        }
    }

    pub fn location(&self) -> Location {
        Location::parse(&self.url).expect("test database url")
    }

    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres")
    }
}

/// A random number from the OS (aws-lc), for unique names.
pub fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).expect("random bytes");
    u64::from_le_bytes(bytes)
}

/// A float datapoint at `/api/v1/boiler/temperature` whose reads need the permission
/// `plant:read` (identity provider tests).
pub const PROTECTED: &str = r#"
[[datapoint]]
key = "temperature"
type = "float"

[[endpoint]]
path = "/api/v1/boiler/temperature"
datapoint = "temperature"
read = ["plant:read"]
"#;

/// A running server and a client for it.
pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    pub data_dir: PathBuf,
    pub database: TestDatabase,
    pub cert_pem: Option<Vec<u8>>,
    pub shutdown_started: tokio::sync::watch::Receiver<bool>,
    pub idp: Option<Arc<portico::idp::Idp>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _dir: Arc<TempDir>,
}

impl TestApp {
    /// A server with [`DATAPOINTS`].
    pub async fn spawn() -> Self {
        Self::spawn_with(DATAPOINTS).await
    }

    /// A server with `toml` as its configuration file (data directory, listen address and
    /// database are the test's own).
    pub async fn spawn_with(toml: &str) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let database = TestDatabase::fresh(dir.path()).await;
        Self::spawn_in(dir, database, toml).await
    }

    /// A server on a clock the test moves.
    pub async fn spawn_clocked(toml: &str, clock: Arc<dyn portico::clock::Clock>) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let database = TestDatabase::fresh(dir.path()).await;
        Self::start(dir, database, toml, clock).await
    }

    /// Creates a confidential client of the `node` realm with `roles`; answers its secret.
    pub async fn client_with_roles(&self, id: &str, roles: &[&str]) -> String {
        let settings = portico::idp::ClientSettings {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..Default::default()
        };
        self.idp
            .as_ref()
            .expect("identity provider on")
            .create_client(&realm_name("node"), id, settings, true)
            .await
            .expect("client")
            .expect("secret")
    }

    /// A restart on a clock the test moves.
    pub async fn spawn_in_clocked(
        dir: Arc<TempDir>,
        database: TestDatabase,
        toml: &str,
        clock: Arc<dyn portico::clock::Clock>,
    ) -> Self {
        Self::start(dir, database, toml, clock).await
    }

    /// A server on an existing data directory and database (a restart).
    pub async fn spawn_in(dir: Arc<TempDir>, database: TestDatabase, toml: &str) -> Self {
        Self::start(dir, database, toml, Arc::new(portico::clock::SystemClock)).await
    }

    async fn start(
        dir: Arc<TempDir>,
        database: TestDatabase,
        toml: &str,
        clock: Arc<dyn portico::clock::Clock>,
    ) -> Self {
        let config = test_config(dir.path(), &database, toml);
        let server = Server::build_with_clock(config, clock)
            .await
            .unwrap_or_else(|e| panic!("server start: {e}"));
        let url = server.url();
        let cert_pem = server
            .tls()
            .map(|tls| std::fs::read(&tls.cert_path).expect("cert file"));
        let client = client_for(cert_pem.as_deref());
        let shutdown_started = server.shutdown_started();
        let idp = server.idp();
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stop.await;
        }));
        Self {
            url,
            client,
            data_dir: dir.path().to_owned(),
            database,
            cert_pem,
            shutdown_started,
            idp,
            shutdown: Some(shutdown),
            task: Some(task),
            _dir: dir,
        }
    }

    /// Shuts the server down gracefully and waits until it has stopped.
    pub async fn stop(mut self) -> (Arc<TempDir>, TestDatabase) {
        self.begin_shutdown();
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
        (self._dir.clone(), self.database.clone())
    }

    /// Signals shutdown without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Waits for the server task to end (after [`Self::begin_shutdown`]).
    pub async fn stopped(&mut self) {
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub async fn get(&self, path: &str) -> Reply {
        Reply::from(self.client.get(self.at(path)).send().await.expect("GET")).await
    }

    /// Sends `body` with method `method` and content type `content_type` (none if `None`).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let mut request = self.client.request(method, self.at(path)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        Reply::from(request.send().await.expect("request")).await
    }

    /// Sends `method` to `path` with an `Authorization` header (none if `None`) and `body`.
    pub async fn authorized(
        &self,
        method: reqwest::Method,
        path: &str,
        authorization: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        let mut request = self.client.request(method, self.at(path));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        Reply::from(request.send().await.expect("request")).await
    }

    pub async fn put_json(&self, path: &str, body: &str) -> Reply {
        self.send(
            reqwest::Method::PUT,
            path,
            Some("application/json"),
            body.to_owned(),
        )
        .await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}

/// The configuration for a test server.
pub fn test_config(dir: &Path, database: &TestDatabase, toml: &str) -> Config {
    let mut config = Config::from_toml_str(toml).unwrap_or_else(|e| panic!("test config: {e}"));
    config.listen = "127.0.0.1:0".parse().expect("address");
    config.data_dir = dir.to_owned();
    config.database_url = Some(portico::secrets::Secret::new(database.url.clone()));
    config.log.level = "warn".into();
    config
}

/// A client that trusts only `cert_pem` (or plain HTTP when `None`).
pub fn client_for(cert_pem: Option<&[u8]>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder();
    if let Some(pem) = cert_pem {
        let cert = reqwest::Certificate::from_pem(pem).expect("certificate PEM");
        builder = builder.tls_certs_only([cert]);
    }
    builder.build().expect("client")
}

/// A response, read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub version: reqwest::Version,
    pub text: String,
}

impl Reply {
    pub async fn from(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let version = response.version();
        let text = response.text().await.expect("body");
        Self {
            status,
            headers,
            version,
            text,
        }
    }

    pub fn json(&self) -> Json {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts a problem+json answer with `status` and `code`; returns the document.
    pub fn assert_problem(&self, status: u16, code: &str) -> Json {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(
            self.header("content-type"),
            "application/problem+json",
            "{}",
            self.text
        );
        let problem = self.json();
        assert_eq!(problem["code"], code, "{problem}");
        assert_eq!(problem["status"], status, "{problem}");
        assert_eq!(
            problem["type"],
            format!("urn:portico:problem:{code}"),
            "{problem}"
        );
        assert!(
            problem["detail"].as_str().is_some_and(|d| d.len() > 10),
            "{problem}"
        );
        problem
    }
}

/// A repeatable stream of pseudo-random numbers (xorshift) for generated hostile input.
pub struct Noise(pub u64);

impl Noise {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// One parsed SSE event.
#[derive(Debug)]
pub struct SseEvent {
    pub id: String,
    pub event: String,
    pub data: Json,
}

/// Reads SSE events from a response body.
pub struct EventReader {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl EventReader {
    /// Follows a datapoint's events, anonymously.
    pub async fn open(app: &TestApp, key: &str, last_event_id: Option<&str>) -> Self {
        Self::connect(
            app,
            &format!("/api/v1/datapoints/{key}/events"),
            None,
            last_event_id,
        )
        .await
        .unwrap_or_else(|reply| panic!("subscribing failed: {} {}", reply.status, reply.text))
    }

    /// Follows the event stream at `path` with `token`; a refusal fails the test.
    pub async fn open_as(app: &TestApp, path: &str, token: &str) -> Self {
        Self::connect(app, path, Some(token), None)
            .await
            .unwrap_or_else(|reply| panic!("subscribing failed: {} {}", reply.status, reply.text))
    }

    /// Opens the event stream at `path` with an optional bearer token; a refusal comes back as
    /// its reply.
    pub async fn connect(
        app: &TestApp,
        path: &str,
        token: Option<&str>,
        last_event_id: Option<&str>,
    ) -> Result<Self, Reply> {
        let mut request = app.client.get(app.at(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        Self::from_response(request.send().await.expect("subscribe")).await
    }

    /// Reads the event stream `response` carries; a refusal comes back as its reply.
    pub async fn from_response(response: reqwest::Response) -> Result<Self, Reply> {
        if response.status() != 200 {
            return Err(Reply::from(response).await);
        }
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Ok(Self {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        })
    }

    /// The next event, or `None` when the stream ends; fails the test after 10 s.
    pub async fn next(&mut self) -> Option<SseEvent> {
        tokio::time::timeout(Duration::from_secs(10), self.next_unbounded())
            .await
            .expect("an event within 10 s")
    }

    async fn next_unbounded(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|line| line.strip_prefix(&format!("{name}:")))
                        .map(|v| v.trim_start().to_owned())
                };
                let Some(data) = field("data") else { continue }; // a keep-alive comment
                return Some(SseEvent {
                    id: field("id").unwrap_or_default(),
                    event: field("event").unwrap_or_default(),
                    data: serde_json::from_str(&data).expect("JSON data"),
                });
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                Some(Err(_)) | None => return None,
            }
        }
    }
}

/// A client-credentials access token from `realm` of the server at `base`.
pub async fn client_credentials(
    client: &reqwest::Client,
    base: &str,
    realm: &str,
    id: &str,
    secret: &str,
) -> String {
    let reply = client
        .post(format!(
            "{base}/realms/{realm}/protocol/openid-connect/token"
        ))
        .basic_auth(id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("token request");
    let reply = Reply::from(reply).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()["access_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

/// A realm's name, for the identity provider's calls.
pub fn realm_name(name: &str) -> portico::idp::RealmName {
    portico::idp::RealmName::parse(name).unwrap_or_else(|e| panic!("{e}"))
}

/// A store on a fresh database (the conformance suites' start).
pub async fn fresh_store() -> (TempDir, TestDatabase, portico::store::Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = TestDatabase::fresh(dir.path()).await;
    let store = portico::store::Store::open(&database.location())
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    (dir, database, store)
}

impl TestApp {
    /// A client-credentials token of a new confidential client of `realm` with `roles`.
    pub async fn token(&self, realm: &str, id: &str, roles: &[&str]) -> String {
        let idp = self.idp.as_ref().expect("identity provider on");
        let settings = portico::idp::ClientSettings {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..Default::default()
        };
        let secret = idp
            .create_client(&realm_name(realm), id, settings, true)
            .await
            .expect("client")
            .expect("secret");
        client_credentials(&self.client, &self.url, realm, id, &secret).await
    }

    /// A webhook manager's token (`portico:webhooks`), from a new client each time: tests on a
    /// moving clock need fresh ones.
    pub async fn manager_token(&self) -> String {
        let id = format!("hooks-{:08x}", rand_u64() as u32);
        self.token("node", &id, &["portico:webhooks"]).await
    }

    /// An admin's token (`portico:admin`): reads every topic.
    pub async fn admin_token(&self) -> String {
        let id = format!("admin-{:08x}", rand_u64() as u32);
        self.token("node", &id, &["portico:admin"]).await
    }

    /// `method path` with a bearer token and an optional JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Json>,
    ) -> Reply {
        let bearer = format!("Bearer {token}");
        let body = body.map(|b| b.to_string());
        self.authorized(method, path, Some(&bearer), body.as_deref())
            .await
    }

    /// Creates a webhook subscription; answers (id, secret).
    pub async fn subscribe(&self, token: &str, body: Json) -> (String, String) {
        let reply = self
            .call(
                reqwest::Method::POST,
                "/api/v1/webhooks/subscriptions",
                token,
                Some(body),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        let json = reply.json();
        (
            json["id"].as_str().expect("id").to_owned(),
            json["secret"].as_str().expect("secret").to_owned(),
        )
    }

    /// A subscription's deliveries, newest first.
    pub async fn deliveries(&self, token: &str, id: &str) -> Vec<Json> {
        let reply = self
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/webhooks/subscriptions/{id}/deliveries"),
                token,
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.json().as_array().expect("deliveries").clone()
    }
}
