//! Test-side token minting (aws-lc-rs signs; Portico only verifies) and a small HTTPS identity
//! provider serving a JWKS and an OIDC discovery document, counting the requests it answers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value as Json, json};

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token signer.
pub enum Signer {
    /// ES256 with a fresh P-256 key.
    Es256 { key: EcdsaKeyPair, kid: String },
    /// HS256 with a shared secret.
    Hs256 { secret: Vec<u8> },
}

impl Signer {
    pub fn es256(kid: &str) -> Self {
        let key =
            EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).expect("P-256 key");
        Self::Es256 {
            key,
            kid: kid.to_owned(),
        }
    }

    pub fn hs256(secret: &[u8]) -> Self {
        Self::Hs256 {
            secret: secret.to_vec(),
        }
    }

    /// The public JWK (with `kid`, `alg` and `use`).
    pub fn jwk(&self) -> Json {
        match self {
            Self::Es256 { key, kid } => {
                let point = key.public_key().as_ref();
                json!({
                    "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
                    "x": b64(&point[1..33]), "y": b64(&point[33..65]),
                })
            }
            Self::Hs256 { secret } => json!({"kty": "oct", "alg": "HS256", "k": b64(secret)}),
        }
    }

    /// The public key as PEM SubjectPublicKeyInfo.
    pub fn spki_pem(&self) -> String {
        let Self::Es256 { key, .. } = self else {
            panic!("no public key");
        };
        let der = key.public_key().as_der().expect("SPKI");
        let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// A token with the usual header (`alg`, `typ`, and `kid` for key-set keys).
    pub fn sign(&self, claims: &Json) -> String {
        let header = match self {
            Self::Es256 { kid, .. } => json!({"alg": "ES256", "typ": "JWT", "kid": kid}),
            Self::Hs256 { .. } => json!({"alg": "HS256", "typ": "JWT"}),
        };
        self.sign_with_header(&header, claims)
    }

    /// A token with exactly `header`, signed with this key whatever the header says.
    pub fn sign_with_header(&self, header: &Json, claims: &Json) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        format!("{input}.{}", b64(&self.signature(input.as_bytes())))
    }

    fn signature(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::Es256 { key, .. } => key
                .sign(&SystemRandom::new(), message)
                .expect("sign")
                .as_ref()
                .to_vec(),
            Self::Hs256 { secret } => hmac(secret, message),
        }
    }
}

/// HMAC-SHA256, for forging tokens with arbitrary secrets.
pub fn hmac(secret: &[u8], message: &[u8]) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    aws_lc_rs::hmac::sign(&key, message).as_ref().to_vec()
}

/// Claims from `iss` valid around `now` (seconds), granting `scope`.
pub fn claims(iss: &str, now: i64, scope: &str) -> Json {
    json!({"iss": iss, "sub": "device-7", "aud": "portico", "iat": now, "exp": now + 300, "scope": scope})
}

/// An identity provider on HTTPS: `/.well-known/openid-configuration` and `/jwks`.
pub struct Idp {
    /// `https://127.0.0.1:port` (also the issuer).
    pub url: String,
    /// The PEM of its self-signed certificate (for `ca_file`).
    pub ca_file: PathBuf,
    state: Arc<IdpState>,
    task: tokio::task::JoinHandle<()>,
}

struct IdpState {
    url: String,
    jwks: Mutex<Json>,
    jwks_hits: AtomicUsize,
    down: AtomicBool,
}

impl Idp {
    pub async fn start(dir: &Path) -> Self {
        let tls = portico::tls::prepare(
            &portico::tls::TlsConfig::default(),
            dir,
            portico::clock::Clock::now(&portico::clock::SystemClock),
        )
        .expect("IdP certificate");
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let url = format!("https://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(IdpState {
            url: url.clone(),
            jwks: Mutex::new(json!({"keys": []})),
            jwks_hits: AtomicUsize::new(0),
            down: AtomicBool::new(false),
        });
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .with_state(state.clone());
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let service = hyper_util::service::TowerToHyperService::new(router.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
            }
        });
        Self {
            url,
            ca_file: tls.cert_path.clone(),
            state,
            task,
        }
    }

    /// Publishes these JWKs.
    pub fn publish(&self, keys: &[Json]) {
        *self.state.jwks.lock().unwrap_or_else(|p| p.into_inner()) = json!({ "keys": keys });
    }

    /// JWKS requests answered so far.
    pub fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }

    /// Makes every answer a 503 (or normal again).
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// The `[[issuer]]` block for this IdP with `source` (`jwks_url = …` or `discovery = true`).
    pub fn issuer_toml(&self, source: &str) -> String {
        format!(
            "[[issuer]]\nissuer = \"{url}\"\naudience = [\"portico\"]\n{source}\nca_file = \"{ca}\"\n",
            url = self.url,
            ca = self.ca_file.display()
        )
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn discovery(State(state): State<Arc<IdpState>>) -> axum::response::Response {
    if state.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    axum::Json(json!({"issuer": state.url, "jwks_uri": format!("{}/jwks", state.url)}))
        .into_response()
}

async fn jwks(State(state): State<Arc<IdpState>>) -> axum::response::Response {
    state.jwks_hits.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let body = state.jwks.lock().unwrap_or_else(|p| p.into_inner()).clone();
    axum::Json(body).into_response()
}
