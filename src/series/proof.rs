//! Proofs: what a leaf is, how a tree's root is signed (the proof kinds), the node's proof keys,
//! and the outcome of a validation.
//!
//! A leaf binds a value to its stream and timestamp; its bytes, defined once here:
//!
//! | bytes | what |
//! |---|---|
//! | 0–15 | the stream id, the UUID's 16 bytes in the order its hex digits are written |
//! | 16–23 | the timestamp, microseconds since 1970-01-01T00:00:00Z, signed 64-bit big-endian |
//! | 24– | the value's bytes as stored (little-endian numbers, UTF-8 text, raw bytes) |
//!
//! A tree's root ([`super::merkle`]) is signed as a 32-byte message with SHA-256 and the
//! stream's proof kind: RSASSA-PSS (MGF1 SHA-256, 32-byte salt) or RSASSA-PKCS1-v1_5 with a
//! 2048-bit key, or ECDSA P-256, its signature DER-encoded (RFC 3279) or `r ‖ s` (IEEE P1363).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, RsaKeyPair};
use serde::{Deserialize, Serialize};

use crate::jose::keys::PublicKey;
use crate::jose::primitive::Algorithm;

/// How a root is signed (Tributech's `ProofKind`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
#[allow(non_camel_case_types)]
pub enum ProofKind {
    /// RSASSA-PSS, SHA-256, 2048-bit key.
    #[default]
    SHA256_RSA2048_PSS,
    /// RSASSA-PKCS1-v1_5, SHA-256, 2048-bit key.
    SHA256_RSA2048_PKCS1,
    /// ECDSA P-256, SHA-256, the signature DER-encoded (RFC 3279).
    SHA256_ECDSAP256_RFC3279,
    /// ECDSA P-256, SHA-256, the signature `r ‖ s` (IEEE P1363).
    SHA256_ECDSAP256_IEEEP1363,
}

impl ProofKind {
    /// Every kind.
    pub const ALL: [ProofKind; 4] = [
        ProofKind::SHA256_RSA2048_PSS,
        ProofKind::SHA256_RSA2048_PKCS1,
        ProofKind::SHA256_ECDSAP256_RFC3279,
        ProofKind::SHA256_ECDSAP256_IEEEP1363,
    ];

    /// Its name.
    pub const fn name(self) -> &'static str {
        match self {
            ProofKind::SHA256_RSA2048_PSS => "SHA256_RSA2048_PSS",
            ProofKind::SHA256_RSA2048_PKCS1 => "SHA256_RSA2048_PKCS1",
            ProofKind::SHA256_ECDSAP256_RFC3279 => "SHA256_ECDSAP256_RFC3279",
            ProofKind::SHA256_ECDSAP256_IEEEP1363 => "SHA256_ECDSAP256_IEEEP1363",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The JOSE algorithm its signatures verify with (ECDSA as `r ‖ s`).
    pub const fn algorithm(self) -> Algorithm {
        match self {
            ProofKind::SHA256_RSA2048_PSS => Algorithm::Ps256,
            ProofKind::SHA256_RSA2048_PKCS1 => Algorithm::Rs256,
            _ => Algorithm::Es256,
        }
    }
}

/// The bytes of a value's leaf (see the module's table).
pub fn leaf(stream: &StreamId, timestamp_us: i64, value: &[u8]) -> Vec<u8> {
    let mut leaf = Vec::with_capacity(24 + value.len());
    leaf.extend_from_slice(&stream.0);
    leaf.extend_from_slice(&timestamp_us.to_be_bytes());
    leaf.extend_from_slice(value);
    leaf
}

/// The bytes of a proof's leaf in the log of roots:
///
/// | bytes | what |
/// |---|---|
/// | 0–15 | the stream id |
/// | 16–23 | the tree's last timestamp, microseconds, signed 64-bit big-endian |
/// | 24–31 | how many values the tree holds, unsigned 64-bit big-endian |
/// | 32–63 | the tree's root hash |
pub fn log_leaf(stream: &StreamId, last_us: i64, size: i64, root: &[u8; 32]) -> Vec<u8> {
    let mut leaf = Vec::with_capacity(64);
    leaf.extend_from_slice(&stream.0);
    leaf.extend_from_slice(&last_us.to_be_bytes());
    leaf.extend_from_slice(&(size.max(0) as u64).to_be_bytes());
    leaf.extend_from_slice(root);
    leaf
}

/// A stream's id: a UUID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub [u8; 16]);

impl StreamId {
    /// Reads a UUID (`8-4-4-4-12` hex digits, either case).
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != 36 || [8, 13, 18, 23].iter().any(|&i| bytes[i] != b'-') {
            return None;
        }
        let hex: Vec<u8> = bytes.iter().copied().filter(|&b| b != b'-').collect();
        if hex.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, pair) in hex.chunks(2).enumerate() {
            let digit = |b: u8| (b as char).to_digit(16);
            out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
        }
        Some(Self(out))
    }

    /// A random (version 4) UUID.
    pub fn random() -> Self {
        Self::parse(&crate::secrets::uuid()).unwrap_or(Self([0; 16]))
    }

    /// The UUID derived from a name (version 5-style: SHA-256 rather than SHA-1, in the
    /// namespace `portico`), so a datapoint's key always names the same stream.
    pub fn derived(namespace: &str, name: &str) -> Self {
        let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        context.update(b"portico:");
        context.update(namespace.as_bytes());
        context.update(b":");
        context.update(name.as_bytes());
        let digest = context.finish();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest.as_ref()[..16]);
        out[6] = (out[6] & 0x0f) | 0x80; // version 8: custom (RFC 9562)
        out[8] = (out[8] & 0x3f) | 0x80; // variant RFC 9562
        Self(out)
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// The outcome of validating a proof (Tributech's `ValidateProofResultEnumeration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[allow(non_camel_case_types)]
pub enum Verdict {
    /// The root recomputed from the stored values matches, and its signature verifies.
    Success,
    /// No value is stored at that timestamp.
    Fail_ValuesNotFound,
    /// No proof covers that timestamp.
    Fail_ProofLocationNotFound,
    /// The proof's location is known but the proof is missing.
    Fail_ProofNotFound,
    /// The stored values do not hash to the signed root: a value was changed.
    Fail_RootHashMismatch,
    /// The root's signature does not verify with the key.
    Fail_SignatureMismatch,
    /// The key that signed the root is unknown or unusable.
    Fail_InvalidPublicKey,
    /// A checkpoint should cover the proof and does not.
    Fail_ProofNotInChain,
    /// The values are not yet under a proof (their tree is still open).
    State_ProofPending,
}

impl Verdict {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Success => "Success",
            Verdict::Fail_ValuesNotFound => "Fail_ValuesNotFound",
            Verdict::Fail_ProofLocationNotFound => "Fail_ProofLocationNotFound",
            Verdict::Fail_ProofNotFound => "Fail_ProofNotFound",
            Verdict::Fail_RootHashMismatch => "Fail_RootHashMismatch",
            Verdict::Fail_SignatureMismatch => "Fail_SignatureMismatch",
            Verdict::Fail_InvalidPublicKey => "Fail_InvalidPublicKey",
            Verdict::Fail_ProofNotInChain => "Fail_ProofNotInChain",
            Verdict::State_ProofPending => "State_ProofPending",
        }
    }

    /// Every verdict.
    pub const ALL: [Verdict; 9] = [
        Verdict::Success,
        Verdict::Fail_ValuesNotFound,
        Verdict::Fail_ProofLocationNotFound,
        Verdict::Fail_ProofNotFound,
        Verdict::Fail_RootHashMismatch,
        Verdict::Fail_SignatureMismatch,
        Verdict::Fail_InvalidPublicKey,
        Verdict::Fail_ProofNotInChain,
        Verdict::State_ProofPending,
    ];

    /// The verdict named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }

    /// A sentence for `resultMessage`.
    pub fn message(self) -> &'static str {
        match self {
            Verdict::Success => "Proof successfully validated",
            Verdict::Fail_ValuesNotFound => "No value is stored at this timestamp",
            Verdict::Fail_ProofLocationNotFound => "No proof covers this timestamp",
            Verdict::Fail_ProofNotFound => "The proof for this location is missing",
            Verdict::Fail_RootHashMismatch => {
                "The stored values do not hash to the signed root hash: a value was changed"
            }
            Verdict::Fail_SignatureMismatch => "The root hash's signature does not verify",
            Verdict::Fail_InvalidPublicKey => {
                "The key that signed the proof is unknown or unusable"
            }
            Verdict::Fail_ProofNotInChain => "No checkpoint covers the proof although one should",
            Verdict::State_ProofPending => "The value's tree is still open; no proof yet",
        }
    }
}

/// A private key the node signs roots with, pinned to one proof kind.
pub struct ProofSigner {
    kind: ProofKind,
    kid: String,
    inner: SignerInner,
}

enum SignerInner {
    Rsa(RsaKeyPair, &'static dyn signature::RsaEncoding),
    Ecdsa(EcdsaKeyPair),
}

impl std::fmt::Debug for ProofSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofSigner")
            .field("kind", &self.kind)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A generated proof key: its private half (PKCS#8 DER, to seal), public half (SPKI PEM) and
/// JWK.
#[derive(Debug)]
pub struct NewKey {
    /// The RFC 7638 thumbprint.
    pub kid: String,
    /// PKCS#8 DER.
    pub private_der: Vec<u8>,
    /// SPKI PEM.
    pub public_pem: String,
    /// The public JWK with `kid`, `alg`, `use` and `proofKind`.
    pub jwk: serde_json::Value,
}

impl ProofSigner {
    /// Generates a key for `kind`.
    pub fn generate(kind: ProofKind) -> Result<NewKey, String> {
        let generated = crate::jose::keygen::generate(kind.algorithm(), 2048)?;
        let private_der = ::pem::parse(&generated.private)
            .map_err(|e| e.to_string())?
            .into_contents();
        let mut jwk = generated.jwk;
        if let Some(members) = jwk.as_object_mut() {
            members.insert("proofKind".into(), kind.name().into());
        }
        Ok(NewKey {
            kid: generated.kid,
            private_der,
            public_pem: generated.public_pem.unwrap_or_default(),
            jwk,
        })
    }

    /// Loads a PKCS#8 private key for `kind`.
    pub fn from_pkcs8(kind: ProofKind, kid: &str, der: &[u8]) -> Result<Self, String> {
        let bad = |e: aws_lc_rs::error::KeyRejected| format!("the proof key {kid}: {e}");
        let inner = match kind {
            ProofKind::SHA256_RSA2048_PSS => SignerInner::Rsa(
                RsaKeyPair::from_pkcs8(der).map_err(bad)?,
                &signature::RSA_PSS_SHA256,
            ),
            ProofKind::SHA256_RSA2048_PKCS1 => SignerInner::Rsa(
                RsaKeyPair::from_pkcs8(der).map_err(bad)?,
                &signature::RSA_PKCS1_SHA256,
            ),
            ProofKind::SHA256_ECDSAP256_RFC3279 => SignerInner::Ecdsa(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der)
                    .map_err(bad)?,
            ),
            ProofKind::SHA256_ECDSAP256_IEEEP1363 => SignerInner::Ecdsa(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(bad)?,
            ),
        };
        Ok(Self {
            kind,
            kid: kid.to_owned(),
            inner,
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs a root.
    pub fn sign(&self, root: &[u8; 32]) -> Result<Vec<u8>, String> {
        let random = SystemRandom::new();
        match &self.inner {
            SignerInner::Rsa(pair, encoding) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(*encoding, &random, root, &mut signature)
                    .map_err(|_| "RSA signing failed".to_owned())?;
                Ok(signature)
            }
            SignerInner::Ecdsa(pair) => pair
                .sign(&random, root)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| "ECDSA signing failed".to_owned()),
        }
    }
}

/// Checks `signature` over `root` with `key` in `kind`; `Err` when the key does not suit the
/// kind (not RSA-2048 for an RSA kind, not P-256 for an ECDSA kind).
pub fn verify(
    kind: ProofKind,
    key: &PublicKey,
    root: &[u8; 32],
    signature: &[u8],
) -> Result<bool, String> {
    if let PublicKey::Rsa { n, .. } = key {
        let bits = n.iter().skip_while(|&&b| b == 0).count() * 8;
        if !(2041..=2048).contains(&bits) {
            return Err(format!("{} needs a 2048-bit RSA key", kind.name()));
        }
    }
    let verifying = key.pin(kind.algorithm()).map_err(|e| e.to_string())?;
    let fixed;
    let signature = if kind == ProofKind::SHA256_ECDSAP256_RFC3279 {
        match der_to_fixed(signature) {
            Some(s) => {
                fixed = s;
                &fixed[..]
            }
            None => return Ok(false),
        }
    } else {
        signature
    };
    Ok(verifying.verify(root, signature))
}

/// An ECDSA P-256 signature `SEQUENCE { r INTEGER, s INTEGER }` (DER) as `r ‖ s`.
fn der_to_fixed(der: &[u8]) -> Option<[u8; 64]> {
    let (&tag, rest) = der.split_first()?;
    let (&len, body) = rest.split_first()?;
    if tag != 0x30 || usize::from(len) != body.len() || len >= 0x80 {
        return None;
    }
    let mut out = [0u8; 64];
    let mut body = body;
    for half in 0..2 {
        let (&tag, rest) = body.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let len = usize::from(len);
        if tag != 0x02 || len == 0 || len > 33 || rest.len() < len {
            return None;
        }
        let (int, rest) = rest.split_at(len);
        // Minimal: no leading zero unless the next byte's top bit is set; non-negative.
        if int[0] & 0x80 != 0 || (len > 1 && int[0] == 0 && int[1] & 0x80 == 0) {
            return None;
        }
        let int = if len == 33 { &int[1..] } else { int };
        if int.len() > 32 {
            return None;
        }
        out[half * 32 + 32 - int.len()..half * 32 + 32].copy_from_slice(int);
        body = rest;
    }
    body.is_empty().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_read_and_write_as_uuids() {
        let text = "6e89214f-65a1-429c-8569-c0d14126b3da";
        let id = StreamId::parse(text).unwrap();
        assert_eq!(id.to_string(), text);
        assert_eq!(StreamId::parse(&text.to_uppercase()), Some(id));
        assert_eq!(
            StreamId::parse("6e89214f65a1-429c-8569-c0d14126b3da0"),
            None
        );
        assert_eq!(
            StreamId::derived("datapoint", "a"),
            StreamId::derived("datapoint", "a")
        );
        assert_ne!(
            StreamId::derived("datapoint", "a"),
            StreamId::derived("datapoint", "b")
        );
    }

    #[test]
    fn leaves_bind_stream_time_and_value() {
        let id = StreamId([7; 16]);
        let leaf = leaf(&id, 1, &[0xaa]);
        assert_eq!(&leaf[..16], &[7; 16]);
        assert_eq!(&leaf[16..24], &[0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(&leaf[24..], &[0xaa]);
    }

    #[test]
    fn every_kind_signs_what_it_verifies() {
        let root = [9u8; 32];
        for kind in ProofKind::ALL {
            let new = ProofSigner::generate(kind).unwrap();
            let signer = ProofSigner::from_pkcs8(kind, &new.kid, &new.private_der).unwrap();
            let signature = signer.sign(&root).unwrap();
            let key = crate::jose::pem::public_key_from_pem(new.public_pem.as_bytes()).unwrap();
            assert_eq!(
                verify(kind, &key, &root, &signature),
                Ok(true),
                "{}",
                kind.name()
            );
            assert_eq!(
                verify(kind, &key, &[8; 32], &signature),
                Ok(true).map(|_: bool| false)
            );
        }
    }
}
