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
/// A generated certificate is renewed when it has fewer days left than this.
const RENEW_DAYS_BEFORE: i64 = 30;

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
    /// For a generated certificate: what renews it while the server runs.
    pub renewal: Option<Renewal>,
}

/// The certificate the server presents, swapped whole when it is renewed.
#[derive(Debug)]
struct Presented(arc_swap::ArcSwap<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Presented {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// Renews the generated certificate before it expires, in place: new connections get the new
/// one, open ones keep theirs.
#[derive(Debug, Clone)]
pub struct Renewal {
    dir: PathBuf,
    names: Vec<String>,
    presented: Arc<Presented>,
}

impl Renewal {
    /// Renews the certificate if it expires within 30 days of `now`; answers the new
    /// fingerprint when it did.
    pub fn renew_if_due(&self, now: OffsetDateTime) -> Result<Option<String>, TlsError> {
        if !ensure_self_signed(&self.dir, &self.names, now)? {
            return Ok(None);
        }
        let cert_path = self.dir.join("cert.pem");
        let key_path = self.dir.join("key.pem");
        let chain = load_chain(&cert_path)?;
        let fingerprint = fingerprint(&chain[0]);
        self.presented
            .0
            .store(Arc::new(certified_key(chain, &key_path)?));
        Ok(Some(fingerprint))
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The chain and the private key in `key_path`, ready to present.
fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key_path: &Path,
) -> Result<rustls::sign::CertifiedKey, TlsError> {
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
        TlsError::new(
            "tls.key",
            key_path,
            match e {
                rustls::pki_types::pem::Error::NoItemsFound => {
                    "no private key found (expected a PKCS#8, PKCS#1 or SEC1 PEM block)".to_owned()
                }
                other => other.to_string(),
            },
        )
    })?;
    rustls::sign::CertifiedKey::from_der(chain, key, &provider()).map_err(|e| {
        TlsError::new(
            "tls.key",
            key_path,
            format!("unusable with the certificate: {e}"),
        )
    })
}

/// Loads the configured certificate, or generates/reuses the self-signed one in `data_dir/tls`.
pub fn prepare(
    config: &TlsConfig,
    data_dir: &Path,
    now: OffsetDateTime,
) -> Result<TlsSetup, TlsError> {
    let (cert_path, key_path, generated) = match (&config.cert, &config.key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone(), None),
        _ => {
            let dir = data_dir.join("tls");
            let names = names_for(&config.names);
            ensure_self_signed(&dir, &names, now)?;
            (
                dir.join("cert.pem"),
                dir.join("key.pem"),
                Some((dir, names)),
            )
        }
    };
    let chain = load_chain(&cert_path)?;
    let fingerprint = fingerprint(&chain[0]);
    let presented = Arc::new(Presented(arc_swap::ArcSwap::from_pointee(certified_key(
        chain, &key_path,
    )?)));
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::new("tls.cert", &cert_path, e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(presented.clone());
    server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsSetup {
        server_config: Arc::new(server_config),
        cert_path,
        fingerprint,
        self_signed: generated.is_some(),
        renewal: generated.map(|(dir, names)| Renewal {
            dir,
            names,
            presented,
        }),
    })
}

/// The names a generated certificate covers: the defaults, then `extra`.
fn names_for(extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = DEFAULT_NAMES.iter().map(|n| n.to_string()).collect();
    for name in extra {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
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

/// When the generated certificate in `dir` expires: as `expires.txt` says (Unix seconds), or,
/// for one made before that file was written, its file's age plus the validity it was given.
fn generated_expiry(dir: &Path) -> Option<OffsetDateTime> {
    if let Ok(text) = std::fs::read_to_string(dir.join("expires.txt")) {
        return text
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok());
    }
    let modified = std::fs::metadata(dir.join("cert.pem"))
        .ok()?
        .modified()
        .ok()?;
    Some(OffsetDateTime::from(modified) + time::Duration::days(SELF_SIGNED_DAYS))
}

/// Generates `cert.pem`/`key.pem` in `dir` unless they exist for the same names and are not
/// due for renewal (30 days before they expire); answers whether it generated them.
fn ensure_self_signed(dir: &Path, names: &[String], now: OffsetDateTime) -> Result<bool, TlsError> {
    let names_file = dir.join("names.txt");
    let wanted = names.join("\n");
    let cert_file = dir.join("cert.pem");
    let key_file = dir.join("key.pem");
    let current = std::fs::read_to_string(&names_file).unwrap_or_default();
    let fresh = generated_expiry(dir)
        .is_some_and(|expires| expires - now > time::Duration::days(RENEW_DAYS_BEFORE));
    if cert_file.exists() && key_file.exists() && current.trim() == wanted && fresh {
        return Ok(false);
    }
    let fail = |problem: String| TlsError::new("self-signed certificate", dir, problem);
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| fail(e.to_string()))?;
    let mut params =
        rcgen::CertificateParams::new(names.to_vec()).map_err(|e| fail(e.to_string()))?;
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
    let expires = params.not_after.unix_timestamp().to_string();
    write_atomically(&dir.join("expires.txt"), expires.as_bytes(), 0o644)
        .map_err(|e| fail(e.to_string()))?;
    tracing::info!(dir = %dir.display(), "generated a self-signed certificate");
    Ok(true)
}

/// Writes `bytes` to a temporary file, syncs it and renames it over `path`, so a crash leaves
/// either the old file or the new one. The temporary file is always created new with `mode`
/// (one a crash left behind is removed first), so a private key is never readable by others,
/// not even while it is written.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("tmp");
    match std::fs::remove_file(&temporary) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_generated_certificate_is_renewed_before_it_expires_and_presented_at_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
        let setup = prepare(&TlsConfig::default(), dir.path(), now).expect("prepared");
        let renewal = setup.renewal.expect("a generated certificate renews");
        let first = renewal.presented.0.load_full();
        // Reused while it has more than 30 days left.
        let later = now + time::Duration::days(SELF_SIGNED_DAYS - 31);
        assert_eq!(renewal.renew_if_due(later).ok(), Some(None));
        // Renewed with 30 days left, and presented to new connections.
        let due = now + time::Duration::days(SELF_SIGNED_DAYS - 30);
        let renewed = renewal.renew_if_due(due).ok().flatten().expect("renewed");
        assert_ne!(renewed, setup.fingerprint);
        assert_ne!(renewal.presented.0.load_full().cert, first.cert);
        assert_eq!(renewal.renew_if_due(due).ok(), Some(None), "once");
        let key = std::fs::metadata(dir.path().join("tls").join("key.pem")).expect("key");
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_file_written_atomically_has_its_mode_even_over_a_stale_temporary() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("key.pem");
        let stale = path.with_extension("tmp");
        std::fs::write(&stale, "left by a crash").expect("write");
        std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        write_atomically(&path, b"secret", 0o600).expect("written");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read(&path).ok().as_deref(), Some(&b"secret"[..]));
    }
}
