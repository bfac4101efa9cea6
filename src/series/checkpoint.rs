//! Checkpoints of the log of roots: a C2SP `tlog-checkpoint` body in a C2SP `signed-note`,
//! signed with the node's Ed25519 checkpoint key.
//!
//! ```text
//! <origin>\n
//! <tree size, decimal>\n
//! <root hash, base64>\n
//! \n
//! — <key name> <base64(key ID ‖ Ed25519 signature)>\n
//! ```
//!
//! The signature covers the first three lines (each with its newline). The key name is the
//! origin; the key ID is the first 4 bytes of `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)`, and
//! the verifier key is written `<name>+<key ID, hex>+<base64(0x01 ‖ public key)>`.

use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::merkle::Hash;

/// The signature type byte of Ed25519 in signed notes.
const ED25519: u8 = 0x01;

/// A checkpoint as signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line.
    pub origin: String,
    /// How many leaves.
    pub size: u64,
    /// The root hash.
    pub root: Hash,
}

/// The note's key ID for `name` and an Ed25519 public key.
pub fn key_id(name: &str, public: &[u8]) -> [u8; 4] {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    context.update(name.as_bytes());
    context.update(b"\n");
    context.update(&[ED25519]);
    context.update(public);
    let digest = context.finish();
    let mut id = [0; 4];
    id.copy_from_slice(&digest.as_ref()[..4]);
    id
}

/// The node's checkpoint key.
pub struct CheckpointSigner {
    name: String,
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl CheckpointSigner {
    /// Loads the key (PKCS#8) under the key name `name` (the log's origin).
    pub fn from_pkcs8(name: &str, der: &[u8]) -> Result<Self, String> {
        let pair =
            Ed25519KeyPair::from_pkcs8(der).map_err(|e| format!("the checkpoint key: {e}"))?;
        Ok(Self {
            name: name.to_owned(),
            pair,
        })
    }

    /// The public key.
    pub fn public(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The verifier key, `<name>+<key ID hex>+<base64(0x01 ‖ public key)>`.
    pub fn verifier_key(&self) -> String {
        let id = key_id(&self.name, self.public());
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let mut typed = vec![ED25519];
        typed.extend_from_slice(self.public());
        format!("{}+{hex}+{}", self.name, STANDARD.encode(typed))
    }

    /// The signed checkpoint of a log of `size` leaves with root `root`.
    pub fn sign(&self, size: u64, root: &Hash) -> String {
        let body = body(&self.name, size, root);
        let signature = self.pair.sign(body.as_bytes());
        let mut blob = key_id(&self.name, self.public()).to_vec();
        blob.extend_from_slice(signature.as_ref());
        format!("{body}\n\u{2014} {} {}\n", self.name, STANDARD.encode(blob))
    }
}

fn body(origin: &str, size: u64, root: &Hash) -> String {
    format!("{origin}\n{size}\n{}\n", STANDARD.encode(root))
}

/// Reads a signed checkpoint, checking its signature by `name` with `public`; `None` when it
/// is malformed or no signature line of that key verifies.
pub fn verify(note: &str, name: &str, public: &[u8]) -> Option<Checkpoint> {
    let (body, signatures) = note.split_once("\n\n")?;
    let body = format!("{body}\n");
    let mut lines = body.lines();
    let origin = lines.next()?.to_owned();
    let size: u64 = lines.next()?.parse().ok()?;
    let root: Hash = STANDARD.decode(lines.next()?).ok()?.try_into().ok()?;
    let id = key_id(name, public);
    let key = signature::UnparsedPublicKey::new(&signature::ED25519, public);
    let signed = signatures.lines().any(|line| {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            return false;
        };
        let Some((signer, blob)) = rest.split_once(' ') else {
            return false;
        };
        let Ok(blob) = STANDARD.decode(blob) else {
            return false;
        };
        signer == name
            && blob.len() == 68
            && blob[..4] == id
            && key.verify(body.as_bytes(), &blob[4..]).is_ok()
    });
    signed.then_some(Checkpoint { origin, size, root })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_with_its_key_only() {
        let der = Ed25519KeyPair::generate().unwrap().to_pkcs8v1().unwrap();
        let signer = CheckpointSigner::from_pkcs8("example.com/log", der.as_ref()).unwrap();
        let note = signer.sign(7, &[3; 32]);
        assert!(note.starts_with("example.com/log\n7\nAwMD"));
        assert!(note.contains("\n\n\u{2014} example.com/log "));
        let read = verify(&note, "example.com/log", signer.public()).unwrap();
        assert_eq!((read.size, read.root), (7, [3; 32]));
        assert!(
            verify(
                &note.replace("\n7\n", "\n8\n"),
                "example.com/log",
                signer.public()
            )
            .is_none()
        );
        let other = Ed25519KeyPair::generate().unwrap();
        assert!(verify(&note, "example.com/log", other.public_key().as_ref()).is_none());
        assert!(signer.verifier_key().starts_with("example.com/log+"));
    }
}
