//! HTTPS: the operator's PEM certificate chain and key, or a self-signed certificate generated
//! into the data directory on first start and reused after.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

/// `[tls]`: HTTPS is on by default with a generated self-signed certificate.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// `false` serves plain HTTP (behind a TLS-terminating proxy).
    pub enabled: bool,
    /// PEM certificate chain (leaf first). With `key`; unset to generate a self-signed one.
    pub cert: Option<PathBuf>,
    /// PEM private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub key: Option<PathBuf>,
    /// Extra DNS names or IP addresses for the generated certificate.
    pub names: Vec<String>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            cert: None,
            key: None,
            names: Vec::new(),
        }
    }
}

/// Names every generated certificate covers.
const DEFAULT_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];
/// How long a generated certificate is valid.
const SELF_SIGNED_DAYS: i64 = 825;

/// A TLS problem that stops start-up; names the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}: {problem}", file.display())]
pub struct TlsError {
    what: &'static str,
    file: PathBuf,
    problem: String,
}

impl TlsError {
    fn new(what: &'static str, file: &Path, problem: impl Into<String>) -> Self {
        Self {
            what,
            file: file.to_owned(),
            problem: problem.into(),
        }
    }
}

/// A ready TLS configuration and what to tell the operator about it.
#[derive(Debug)]
pub struct TlsSetup {
    /// The rustls configuration (HTTP/2 and HTTP/1.1 by ALPN).
    pub server_config: Arc<rustls::ServerConfig>,
    /// The certificate file in use.
    pub cert_path: PathBuf,
    /// SHA-256 of the leaf certificate, as colon-separated upper-case hex.
    pub fingerprint: String,
    /// Whether Portico generated the certificate.
    pub self_signed: bool,
}

/// Loads the configured certificate, or generates/reuses the self-signed one in `data_dir/tls`.
pub fn prepare(
    config: &TlsConfig,
    data_dir: &Path,
    now: OffsetDateTime,
) -> Result<TlsSetup, TlsError> {
    let (cert_path, key_path, self_signed) = match (&config.cert, &config.key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone(), false),
        _ => {
            let dir = data_dir.join("tls");
            ensure_self_signed(&dir, &config.names, now)?;
            (dir.join("cert.pem"), dir.join("key.pem"), true)
        }
    };
    let chain = load_chain(&cert_path)?;
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| {
        TlsError::new(
            "tls.key",
            &key_path,
            match e {
                rustls::pki_types::pem::Error::NoItemsFound => {
                    "no private key found (expected a PKCS#8, PKCS#1 or SEC1 PEM block)".to_owned()
                }
                other => other.to_string(),
            },
        )
    })?;
    let fingerprint = fingerprint(&chain[0]);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::new("tls.cert", &cert_path, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            TlsError::new(
                "tls.key",
                &key_path,
                format!("unusable with the certificate: {e}"),
            )
        })?;
    server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsSetup {
        server_config: Arc::new(server_config),
        cert_path,
        fingerprint,
        self_signed,
    })
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let problem = |e: rustls::pki_types::pem::Error| TlsError::new("tls.cert", path, e.to_string());
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(problem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(problem)?;
    if chain.is_empty() {
        return Err(TlsError::new(
            "tls.cert",
            path,
            "no CERTIFICATE PEM block found",
        ));
    }
    Ok(chain)
}

/// SHA-256 of a DER certificate as `AB:CD:…`, the form `openssl x509 -fingerprint -sha256` prints.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Generates `cert.pem`/`key.pem` in `dir` unless they exist for the same names.
fn ensure_self_signed(dir: &Path, extra: &[String], now: OffsetDateTime) -> Result<(), TlsError> {
    let mut names: Vec<String> = DEFAULT_NAMES.iter().map(|n| n.to_string()).collect();
    names.extend(
        extra
            .iter()
            .filter(|n| !names.contains(n))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let names_file = dir.join("names.txt");
    let wanted = names.join("\n");
    let cert_file = dir.join("cert.pem");
    let key_file = dir.join("key.pem");
    let current = std::fs::read_to_string(&names_file).unwrap_or_default();
    if cert_file.exists() && key_file.exists() && current.trim() == wanted {
        return Ok(());
    }
    let fail = |problem: String| TlsError::new("self-signed certificate", dir, problem);
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| fail(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(names).map_err(|e| fail(e.to_string()))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Portico self-signed");
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(SELF_SIGNED_DAYS);
    let cert = params
        .self_signed(&key_pair)
        .map_err(|e| fail(e.to_string()))?;
    write_atomically(&key_file, key_pair.serialize_pem().as_bytes(), 0o600)
        .map_err(|e| fail(e.to_string()))?;
    write_atomically(&cert_file, cert.pem().as_bytes(), 0o644).map_err(|e| fail(e.to_string()))?;
    write_atomically(&names_file, wanted.as_bytes(), 0o644).map_err(|e| fail(e.to_string()))?;
    tracing::info!(dir = %dir.display(), "generated a self-signed certificate");
    Ok(())
}

/// Writes `bytes` to a temporary file, syncs it and renames it over `path`, so a crash leaves
/// either the old file or the new one.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}
