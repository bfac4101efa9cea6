//! Trusted issuers (`[[issuer]]`): their key sources and claim rules.
//!
//! A key source is one of: an HMAC secret, a PEM public key, a JWKS file (each loaded once at
//! start-up), a JWKS URL, or an OIDC issuer whose discovery document names the JWKS (both
//! fetched over HTTPS; see [`RemoteKeys`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Deserialize;
use time::OffsetDateTime;

use super::claims::ClaimRules;
use super::keys::KeySet;
use super::keys::PublicKey;
use super::pem::public_key_from_pem;
use super::primitive::Algorithm;
use crate::clock::Clock;
use crate::secrets::Secret;

/// `[[issuer]]`: one trusted token issuer. Every key is documented in `portico.example.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// A short name for logs and `token inspect` (default: the issuer URL).
    pub name: Option<String>,
    /// The exact `iss` of its tokens (for OIDC, the issuer URL).
    pub issuer: String,
    /// Accepted `aud` values; a token must name one. Required for an issuer with a public key
    /// (one that may mint tokens for other applications too) unless `any_audience` is set.
    #[serde(default)]
    pub audience: Vec<String>,
    /// Accept tokens whatever their `aud` (only with no `audience`): for an issuer that mints
    /// tokens for Portico alone.
    #[serde(default)]
    pub any_audience: bool,
    /// Accept OpenID Connect ID tokens as bearer tokens. By default a token that carries
    /// `nonce` or `at_hash`, or Keycloak's `"typ": "ID"`, is refused: it says who logged in to a
    /// client, not what its bearer may do here.
    #[serde(default)]
    pub accept_id_tokens: bool,
    /// Algorithms its tokens may use. Required for `hmac_secret` and `public_key_file` (the key
    /// is pinned to them); for key sets, restricts them (default: every supported algorithm,
    /// each key keeping to its own).
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// Key source: a shared HMAC secret (its UTF-8 bytes).
    pub hmac_secret: Option<Secret>,
    /// Key source: a PEM public key (SPKI, PKCS#1 or an X.509 certificate).
    pub public_key_file: Option<PathBuf>,
    /// Key source: a JWKS file.
    pub jwks_file: Option<PathBuf>,
    /// Key source: a JWKS URL (HTTPS).
    pub jwks_url: Option<String>,
    /// Key source: OpenID Connect discovery at `{issuer}/.well-known/openid-configuration`.
    #[serde(default)]
    pub discovery: bool,
    /// PEM CA certificates to trust (only these) for the issuer's HTTPS; default: the system's.
    pub ca_file: Option<PathBuf>,
    /// Claims every token must carry (default `["exp"]`).
    #[serde(default = "default_required")]
    pub required_claims: Vec<String>,
    /// Claim paths that hold permissions (default `scope`, `scp`, `roles`,
    /// `realm_access.roles`).
    #[serde(default = "default_permission_claims")]
    pub permission_claims: Vec<String>,
    /// Header `typ` values accepted (e.g. `["at+jwt"]`, RFC 9068); empty accepts any, and a
    /// token without `typ`. Case-insensitive; `application/` may be left out.
    #[serde(default)]
    pub token_types: Vec<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// How often a remote key set is fetched again.
    #[serde(default = "default_refresh")]
    pub refresh_seconds: u64,
    /// The least time between two fetches caused by unknown `kid`s.
    #[serde(default = "default_cooldown")]
    pub refresh_cooldown_seconds: u64,
    /// Connect-plus-response timeout of one fetch.
    #[serde(default = "default_fetch_timeout")]
    pub fetch_timeout_seconds: u64,
    /// The largest discovery document or key set accepted.
    #[serde(default = "default_max_jwks_bytes")]
    pub max_jwks_bytes: usize,
}

fn default_required() -> Vec<String> {
    vec!["exp".into()]
}
fn default_permission_claims() -> Vec<String> {
    ["scope", "scp", "roles", "realm_access.roles"]
        .map(String::from)
        .into()
}
fn default_leeway() -> u64 {
    60
}
fn default_refresh() -> u64 {
    300
}
fn default_cooldown() -> u64 {
    30
}
fn default_fetch_timeout() -> u64 {
    10
}
fn default_max_jwks_bytes() -> usize {
    256 * 1024
}

/// A checked issuer, with its keys loaded (or ready to fetch).
#[derive(Debug)]
pub struct Issuer {
    /// Its display name.
    pub name: String,
    /// What its tokens' claims must satisfy.
    pub rules: ClaimRules,
    /// Claim paths holding permissions.
    pub permission_claims: Vec<String>,
    /// Accepted header `typ` values; empty accepts any.
    pub token_types: Vec<String>,
    /// Whether an ID token passes as a bearer token.
    pub accept_id_tokens: bool,
    /// For a realm of Portico's identity provider, its name.
    pub realm: Option<String>,
    /// Where its keys come from.
    pub keys: Keys,
}

/// An issuer's keys.
#[derive(Debug)]
pub enum Keys {
    /// Loaded once from the configuration.
    Static(Arc<KeySet>),
    /// Fetched and refreshed.
    Remote(Box<RemoteKeys>),
}

impl Keys {
    /// The generation of the current key set (which changes when the set is replaced).
    pub fn generation(&self) -> u64 {
        match self {
            Self::Static(_) => 0,
            Self::Remote(remote) => remote.generation(),
        }
    }

    /// The current key set and its generation (which changes when the set is replaced).
    pub fn current(&self) -> (Arc<KeySet>, u64) {
        match self {
            Self::Static(set) => (set.clone(), 0),
            // The generation first: `fetch` stores the set before bumping it, so a reader may pair
            // an old generation with a new set (the cache then re-verifies), never the reverse.
            Self::Remote(remote) => {
                let generation = remote.generation();
                (remote.keys.load_full(), generation)
            }
        }
    }
}

impl Issuer {
    /// Checks `config` and loads file-based keys; `at` names it in messages.
    pub fn from_config(
        config: &IssuerConfig,
        at: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut algorithms = Vec::new();
        for name in &config.algorithms {
            match Algorithm::parse(name) {
                Some(alg) => algorithms.push(alg),
                None if name == "EdDSA" => {
                    algorithms.extend([Algorithm::Ed25519, Algorithm::Ed448]);
                }
                None => problems.push(format!(
                    "key `{at}.algorithms`: `{name}` is not a supported algorithm (HS256, HS384, \
                     HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES256K, ES384, ES512, \
                     EdDSA, Ed25519, Ed448)"
                )),
            }
        }
        let sources = [
            config.hmac_secret.is_some(),
            config.public_key_file.is_some(),
            config.jwks_file.is_some(),
            config.jwks_url.is_some(),
            config.discovery,
        ]
        .iter()
        .filter(|set| **set)
        .count();
        if sources != 1 {
            problems.push(format!(
                "key `{at}`: give exactly one key source: `hmac_secret`, `public_key_file`, \
                 `jwks_file`, `jwks_url` or `discovery = true`"
            ));
        }
        if config.issuer.is_empty() {
            problems.push(format!("key `{at}.issuer` must not be empty"));
        }
        // A shared secret is Portico's alone; a public key may sign tokens for any application
        // of the issuer, which must not be accepted here.
        match (config.audience.is_empty(), config.any_audience) {
            (true, false) if config.hmac_secret.is_none() => problems.push(format!(
                "key `{at}.audience`: name the `aud` value(s) tokens for Portico carry (e.g. \
                 [\"portico\"]), or set `any_audience = true` to accept tokens this issuer \
                 minted for any application"
            )),
            (false, true) => problems.push(format!(
                "key `{at}.any_audience`: `audience` is given, so tokens must name one of it; \
                 leave out one of the two"
            )),
            _ => {}
        }
        for (name, value, min, max) in [
            ("leeway_seconds", config.leeway_seconds, 0, 3600),
            ("refresh_seconds", config.refresh_seconds, 10, 86_400),
            (
                "refresh_cooldown_seconds",
                config.refresh_cooldown_seconds,
                1,
                3600,
            ),
            (
                "fetch_timeout_seconds",
                config.fetch_timeout_seconds,
                1,
                120,
            ),
            (
                "max_jwks_bytes",
                config.max_jwks_bytes as u64,
                1024,
                16 * 1024 * 1024,
            ),
        ] {
            if !(min..=max).contains(&value) {
                problems.push(format!("key `{at}.{name}` must be between {min} and {max}"));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let allowed: Vec<Algorithm> = if algorithms.is_empty() {
            Algorithm::ALL.to_vec()
        } else {
            algorithms.clone()
        };
        let keys = if let Some(secret) = &config.hmac_secret {
            let key = PublicKey::Secret(secret.expose().as_bytes().to_vec());
            pinned(&key, &algorithms, at, "hmac_secret")?
        } else if let Some(path) = &config.public_key_file {
            let text = std::fs::read(path).map_err(|e| {
                vec![format!(
                    "key `{at}.public_key_file`: {}: {e}",
                    path.display()
                )]
            })?;
            let key = public_key_from_pem(&text).map_err(|e| {
                vec![format!(
                    "key `{at}.public_key_file`: {}: {e}",
                    path.display()
                )]
            })?;
            pinned(&key, &algorithms, at, "public_key_file")?
        } else if let Some(path) = &config.jwks_file {
            let place = format!("key `{at}.jwks_file`: {}", path.display());
            let text = std::fs::read(path).map_err(|e| vec![format!("{place}: {e}")])?;
            let set =
                KeySet::from_jwks(&text, &allowed).map_err(|e| vec![format!("{place}: {e}")])?;
            if set.is_empty() {
                return Err(vec![format!(
                    "{place}: no usable signature key ({})",
                    set.skipped.join("; ")
                )]);
            }
            Keys::Static(Arc::new(set))
        } else {
            let source = match &config.jwks_url {
                Some(url) => RemoteSource::Jwks(url.clone()),
                None => RemoteSource::Discovery(format!(
                    "{}/.well-known/openid-configuration",
                    config.issuer.trim_end_matches('/')
                )),
            };
            let url = match &source {
                RemoteSource::Jwks(url) | RemoteSource::Discovery(url) => url,
            };
            if !url.starts_with("https://") {
                return Err(vec![format!(
                    "key `{at}`: keys are fetched over HTTPS only; `{url}` is not an https URL"
                )]);
            }
            let client = http_client(config).map_err(|e| vec![format!("key `{at}`: {e}")])?;
            Keys::Remote(Box::new(RemoteKeys {
                issuer: config.issuer.clone(),
                source,
                client,
                allowed,
                max_bytes: config.max_jwks_bytes,
                cooldown: time::Duration::seconds(config.refresh_cooldown_seconds as i64),
                refresh_every: Duration::from_secs(config.refresh_seconds),
                clock,
                keys: ArcSwap::from_pointee(KeySet::default()),
                jwks_uri: std::sync::Mutex::new(None),
                generation: AtomicU64::new(0),
                last_attempt: std::sync::Mutex::new(None),
                last_digest: std::sync::Mutex::new(None),
                refresh_lock: tokio::sync::Mutex::new(()),
            }))
        };
        Ok(Self {
            name: config.name.clone().unwrap_or_else(|| config.issuer.clone()),
            rules: ClaimRules {
                issuer: config.issuer.clone(),
                audiences: config.audience.clone(),
                required: config.required_claims.clone(),
                leeway_seconds: config.leeway_seconds as i64,
            },
            permission_claims: config.permission_claims.clone(),
            token_types: config.token_types.clone(),
            accept_id_tokens: config.accept_id_tokens,
            realm: None,
            keys,
        })
    }
}

/// A single configured key pinned to the issuer's algorithms (which must be given).
fn pinned(
    key: &PublicKey,
    algorithms: &[Algorithm],
    at: &str,
    field: &str,
) -> Result<Keys, Vec<String>> {
    if algorithms.is_empty() {
        return Err(vec![format!(
            "key `{at}.algorithms`: `{field}` needs the algorithm(s) its tokens use, e.g. [\"{}\"]",
            key.family()[0]
        )]);
    }
    // `EdDSA` names both curves; keep the algorithms this key can serve.
    let fitting: Vec<Algorithm> = algorithms
        .iter()
        .copied()
        .filter(|alg| key.family().contains(alg))
        .collect();
    if fitting.is_empty() {
        return Err(vec![format!(
            "key `{at}.algorithms`: none of them fits a {} key (it takes {})",
            key.kind(),
            key.family()
                .iter()
                .map(|a| a.name())
                .collect::<Vec<_>>()
                .join(", ")
        )]);
    }
    KeySet::single(key, &fitting)
        .map(|set| Keys::Static(Arc::new(set)))
        .map_err(|e| vec![format!("key `{at}.{field}`: {e}")])
}

fn http_client(config: &IssuerConfig) -> Result<reqwest::Client, String> {
    let timeout = Duration::from_secs(config.fetch_timeout_seconds);
    let mut builder = reqwest::Client::builder()
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(concat!("portico/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &config.ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("`ca_file` {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("`ca_file` {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("`ca_file` {} holds no certificate", path.display()));
        }
        builder = builder.tls_certs_only(certs);
    }
    builder.build().map_err(|e| format!("HTTPS client: {e}"))
}

/// Where remote keys come from.
#[derive(Debug, Clone)]
pub enum RemoteSource {
    /// A JWKS URL.
    Jwks(String),
    /// A discovery document URL naming the JWKS (`jwks_uri`).
    Discovery(String),
}

/// A key set fetched over HTTPS: cached, refreshed on a schedule and on an unknown `kid`.
///
/// Refreshes are single-flight (one fetch at a time; those waiting see its result) and fetches
/// caused by unknown `kid`s are at most one per cooldown, so a flood of random `kid`s costs a
/// bounded number of requests to the issuer. A failed fetch keeps the cached keys.
#[derive(Debug)]
pub struct RemoteKeys {
    issuer: String,
    source: RemoteSource,
    client: reqwest::Client,
    allowed: Vec<Algorithm>,
    max_bytes: usize,
    cooldown: time::Duration,
    refresh_every: Duration,
    clock: Arc<dyn Clock>,
    keys: ArcSwap<KeySet>,
    jwks_uri: std::sync::Mutex<Option<String>>,
    generation: AtomicU64,
    last_attempt: std::sync::Mutex<Option<OffsetDateTime>>,
    last_digest: std::sync::Mutex<Option<[u8; 32]>>,
    refresh_lock: tokio::sync::Mutex<()>,
}

impl RemoteKeys {
    /// Incremented each time a fetched set that differs replaces the cached one.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// How often the scheduled refresh runs.
    pub fn refresh_every(&self) -> Duration {
        self.refresh_every
    }

    /// The scheduled fetch (the first at start-up), after any fetch in flight; skipped when a
    /// fetch caused by a token happened within the cooldown.
    pub async fn refresh(&self) {
        let _flight = self.refresh_lock.lock().await;
        if !self.fetched_recently() {
            self.fetch().await;
        }
    }

    fn fetched_recently(&self) -> bool {
        let now = self.clock.now();
        self.last_attempt
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|last| now - last < self.cooldown)
    }

    /// Fetches because a token named an unknown `kid`, unless another fetch replaced the set
    /// since `seen` (the generation the caller looked at) or the last one was within the
    /// cooldown. Returns whether the set changed since `seen`.
    pub async fn refresh_for_unknown_kid(&self, seen: u64) -> bool {
        let _flight = self.refresh_lock.lock().await;
        if self.generation() != seen {
            return true;
        }
        if self.fetched_recently() {
            return false;
        }
        self.fetch().await;
        self.generation() != seen
    }

    async fn fetch(&self) {
        *self.last_attempt.lock().unwrap_or_else(|p| p.into_inner()) = Some(self.clock.now());
        match self.fetch_set().await {
            Ok((set, digest)) => {
                let mut last = self.last_digest.lock().unwrap_or_else(|p| p.into_inner());
                if *last == Some(digest) {
                    // The same set: keep the generation, so cached tokens stay cached.
                    return;
                }
                *last = Some(digest);
                for skipped in &set.skipped {
                    tracing::info!(issuer = %self.issuer, "key skipped: {skipped}");
                }
                tracing::debug!(issuer = %self.issuer, keys = set.keys().len(), "keys fetched");
                self.keys.store(Arc::new(set));
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
            Err(error) => {
                tracing::warn!(issuer = %self.issuer, %error, "fetching keys failed; keeping the cached keys");
            }
        }
    }

    /// The key set and the SHA-256 of the document it came from.
    async fn fetch_set(&self) -> Result<(KeySet, [u8; 32]), String> {
        let jwks_uri = match &self.source {
            RemoteSource::Jwks(url) => url.clone(),
            RemoteSource::Discovery(url) => {
                let known = self
                    .jwks_uri
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                match known {
                    Some(uri) => uri,
                    None => {
                        let uri = self.discover(url).await?;
                        *self.jwks_uri.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(uri.clone());
                        uri
                    }
                }
            }
        };
        let body = self.get(&jwks_uri).await;
        let body = match (body, &self.source) {
            (Ok(body), _) => body,
            // The discovery document may have moved the key set: look again next time.
            (Err(e), RemoteSource::Discovery(_)) => {
                *self.jwks_uri.lock().unwrap_or_else(|p| p.into_inner()) = None;
                return Err(e);
            }
            (Err(e), _) => return Err(e),
        };
        let set =
            KeySet::from_jwks(&body, &self.allowed).map_err(|e| format!("{jwks_uri}: {e}"))?;
        if set.is_empty() {
            return Err(format!(
                "{jwks_uri}: no usable signature key ({})",
                set.skipped.join("; ")
            ));
        }
        let mut digest = [0u8; 32];
        digest
            .copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &body).as_ref());
        Ok((set, digest))
    }

    async fn discover(&self, url: &str) -> Result<String, String> {
        let body = self.get(url).await?;
        let document = super::json::parse_object(&body).map_err(|e| format!("{url}: {e}"))?;
        // OpenID Connect Discovery 1.0 section 4.3: the document must name the same issuer.
        if document.get("issuer").and_then(|v| v.as_str()) != Some(self.issuer.as_str()) {
            return Err(format!(
                "{url}: the document's `issuer` is not `{}`",
                self.issuer
            ));
        }
        let uri = document
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("{url}: the document has no `jwks_uri`"))?;
        if !uri.starts_with("https://") {
            return Err(format!("{url}: `jwks_uri` {uri} is not an https URL"));
        }
        Ok(uri.to_owned())
    }

    /// GETs `url`, refusing anything but 200 and bodies over the size cap.
    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut response = self
            .client
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(format!("{url}: answered {}", response.status()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > self.max_bytes as u64)
        {
            return Err(format!("{url}: larger than {} bytes", self.max_bytes));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(format!("{url}: larger than {} bytes", self.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}
