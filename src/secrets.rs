//! Secrets: generating them, hashing the ones Portico only checks, and sealing the ones it must
//! read back (realm signing keys, later webhook secrets).
//!
//! - [`generate`]: 256 random bits as base64url text (43 characters).
//! - [`Hashed`]: SHA-256 of a high-entropy secret (client and app secrets, refresh tokens,
//!   authorization codes), compared in constant time. A slow hash adds nothing to 256 random
//!   bits; passwords, which people choose, use Argon2id instead ([`password`]).
//! - [`Sealer`]: AES-256-GCM under the node's sealing key, with the row's identity as associated
//!   data, so a sealed value copied to another row does not open. The key lives in a file
//!   (`secrets.key` in the data directory unless configured) that a database dump does not
//!   contain; nodes sharing a PostgreSQL database must share it.

use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::constant_time;
use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::jose::jws;

/// 32 random bytes.
pub fn random_bytes() -> [u8; 32] {
    let mut bytes = [0; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random generator failed");
    bytes
}

/// A new secret: 256 random bits, base64url without padding.
pub fn generate() -> String {
    jws::encode(&random_bytes())
}

/// A random UUID (version 4), for identifiers that should look like GUIDs.
pub fn uuid() -> String {
    let mut b = [0u8; 16];
    SystemRandom::new()
        .fill(&mut b)
        .expect("the system random generator failed");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The SHA-256 of a high-entropy secret, as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Hashed(pub [u8; 32]);

impl Hashed {
    /// Hashes `secret`.
    pub fn of(secret: &str) -> Self {
        let mut out = [0; 32];
        out.copy_from_slice(digest::digest(&digest::SHA256, secret.as_bytes()).as_ref());
        Self(out)
    }

    /// Reads a stored hash.
    pub fn from_stored(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// Whether `secret` hashes to this, compared in constant time.
    pub fn matches(&self, secret: &str) -> bool {
        constant_time::verify_slices_are_equal(&Self::of(secret).0, &self.0).is_ok()
    }
}

impl std::fmt::Debug for Hashed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hashed(..)")
    }
}

/// Argon2id password hashing (RFC 9106), in PHC string format.
pub mod password {
    use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
    use argon2::{Algorithm, Argon2, Params, Version};

    /// OWASP's first recommended setting: 19 MiB, 2 passes, 1 lane.
    fn hasher() -> Argon2<'static> {
        let params = Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters");
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    /// The shortest password accepted.
    pub const MIN_LEN: usize = 12;
    /// The longest password accepted (bounds the hashing work).
    pub const MAX_LEN: usize = 1024;

    /// Hashes `password` with a fresh salt. Takes tens of milliseconds: call it off the async
    /// runtime (`spawn_blocking`).
    pub fn hash(password: &str) -> String {
        let salt = SaltString::encode_b64(&super::random_bytes()[..16]).expect("16-byte salt");
        hasher()
            .hash_password(password.as_bytes(), &salt)
            .expect("Argon2id hashing with valid parameters")
            .to_string()
    }

    /// Whether `password` matches the PHC string `stored` (constant-time inside argon2).
    pub fn verify(password: &str, stored: &str) -> bool {
        password.len() <= MAX_LEN
            && PasswordHash::new(stored).is_ok_and(|parsed| {
                hasher()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
    }

    /// A hash of a random password: verifying against it costs what verifying a real one does,
    /// so an unknown user name is not told apart by timing.
    pub fn decoy() -> &'static str {
        static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        DECOY.get_or_init(|| hash(&super::generate()))
    }
}

/// Why the sealing key or a sealed value cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The key file cannot be read or created.
    #[error("sealing key {}: {problem}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A sealed value does not open with this key and identity.
    #[error("a sealed value does not open (wrong sealing key, or the value was altered or moved)")]
    Open,
}

/// Seals and opens values with the node's AES-256-GCM key, and derives values from it.
pub struct Sealer {
    key: LessSafeKey,
    /// HMAC-SHA-256 under a key derived from the sealing key for this use alone.
    derive: aws_lc_rs::hmac::Key,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// The version byte in front of every sealed value.
const SEALED_V1: u8 = 1;

impl Sealer {
    /// A sealer with this 256-bit key.
    pub fn new(key: &[u8; 32]) -> Self {
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(b"portico derive v1\0");
        context.update(key);
        Self {
            key: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key")),
            derive: aws_lc_rs::hmac::Key::new(
                aws_lc_rs::hmac::HMAC_SHA256,
                context.finish().as_ref(),
            ),
        }
    }

    /// A secret derived from `input` for `purpose` (HMAC-SHA-256 under a key of its own):
    /// base64url of 256 bits that only a holder of the sealing key can compute, the same each
    /// time (a refresh token's successor, so a replay gets the same one).
    pub fn derive(&self, purpose: &str, input: &[u8]) -> String {
        let mut context = aws_lc_rs::hmac::Context::with_key(&self.derive);
        context.update(purpose.as_bytes());
        context.update(&[0]);
        context.update(input);
        jws::encode(context.sign().as_ref())
    }

    /// Reads the key file (base64url of 32 bytes), creating it with a new key (mode 0600) when
    /// it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, SealError> {
        let problem = |problem: String| SealError::KeyFile {
            path: path.to_owned(),
            problem,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                use std::os::unix::fs::MetadataExt;
                // A key another user could have written (or can read) is no secret.
                let meta = std::fs::metadata(path).map_err(|e| problem(e.to_string()))?;
                if meta.mode() & 0o022 != 0 {
                    return Err(problem(
                        "other users may write it; it must be writable by its owner only \
                         (chmod 600)"
                            .into(),
                    ));
                }
                if meta.mode() & 0o004 != 0 {
                    tracing::warn!(path = %path.display(), "the sealing key is readable by every user; chmod 600 it");
                }
                let bytes = jws::decode(text.trim(), jws::Part::Payload)
                    .map_err(|_| problem("it is not base64url text".into()))?;
                let key: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| problem("it does not hold 32 bytes".into()))?;
                Ok(Self::new(&key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use std::os::unix::fs::OpenOptionsExt;
                let key = random_bytes();
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| problem(e.to_string()))?;
                file.write_all(format!("{}\n", jws::encode(&key)).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| problem(e.to_string()))?;
                Ok(Self::new(&key))
            }
            Err(e) => Err(problem(e.to_string())),
        }
    }

    /// Seals `plaintext` for the row named by `identity`.
    pub fn seal(&self, identity: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the system random generator failed");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + 16);
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(identity.as_bytes()),
                &mut body,
            )
            .expect("AES-GCM sealing of a small value");
        out.extend_from_slice(&body);
        out
    }

    /// Opens a value sealed for `identity`.
    pub fn open(&self, identity: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let (&version, rest) = sealed.split_first().ok_or(SealError::Open)?;
        if version != SEALED_V1 || rest.len() < NONCE_LEN + 16 {
            return Err(SealError::Open);
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut body = body.to_vec();
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(identity.as_bytes()), &mut body)
            .map_err(|_| SealError::Open)?;
        Ok(plaintext.to_vec())
    }
}

/// A value that must never appear in logs. `Debug` prints `[redacted]`.
#[derive(Clone, serde::Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; use only where it is needed, never for display.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_secrets_are_stable_per_key_purpose_and_input() {
        let sealer = Sealer::new(&[7; 32]);
        let derived = sealer.derive("purpose", b"input");
        assert_eq!(derived.len(), 43, "256 bits");
        assert_eq!(derived, sealer.derive("purpose", b"input"));
        assert_ne!(derived, sealer.derive("purpose", b"other"));
        assert_ne!(derived, sealer.derive("other", b"input"));
        // The purpose and the input are separated: moving a byte between them changes it.
        assert_ne!(derived, sealer.derive("purposei", b"nput"));
        assert_ne!(derived, Sealer::new(&[8; 32]).derive("purpose", b"input"));
    }

    #[test]
    fn secrets_have_256_bits_and_hashes_compare() {
        let secret = generate();
        assert_eq!(secret.len(), 43);
        assert_ne!(secret, generate());
        let hashed = Hashed::of(&secret);
        assert!(hashed.matches(&secret));
        assert!(!hashed.matches(&generate()));
        assert_eq!(Hashed::from_stored(&hashed.0), Some(hashed));
        let id = uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }

    #[test]
    fn sealed_values_open_only_for_their_identity_and_key() {
        let sealer = Sealer::new(&random_bytes());
        let sealed = sealer.seal("realm-key:node:k1", b"private");
        assert_eq!(
            sealer.open("realm-key:node:k1", &sealed).ok().as_deref(),
            Some(&b"private"[..])
        );
        assert!(sealer.open("realm-key:node:k2", &sealed).is_err());
        assert!(
            Sealer::new(&random_bytes())
                .open("realm-key:node:k1", &sealed)
                .is_err()
        );
        let mut altered = sealed.clone();
        if let Some(last) = altered.last_mut() {
            *last ^= 1;
        }
        assert!(sealer.open("realm-key:node:k1", &altered).is_err());
    }

    #[test]
    fn the_key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("secrets.key");
        let first = Sealer::load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        let sealed = first.seal("x", b"v");
        let again = Sealer::load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(again.open("x", &sealed).is_ok());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
    }

    #[test]
    fn passwords_hash_with_argon2id() {
        let stored = password::hash("correct horse battery");
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(password::verify("correct horse battery", &stored));
        assert!(!password::verify("wrong horse battery", &stored));
        assert!(!password::verify("x", "not a PHC string"));
    }
}
