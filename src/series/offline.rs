//! Checking a value's inclusion proof offline, from the document
//! `GET /api/v1/streams/{id}/values/{timestamp}/proof` answers and the key set
//! `GET /api/v1/proofs/keys` answers: the README's procedure ("Checking a value yourself"),
//! trusting nothing of the server but those keys. `portico proof verify` runs it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value as Json;

use super::checkpoint;
use super::proof::{self, ProofKind, StreamId};
use crate::jose::keys::{Jwk, PublicKey};
use crate::merkle::{self, Hash};

/// What a verified proof establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The stream.
    pub stream: String,
    /// The value's timestamp, microseconds.
    pub timestamp_us: i64,
    /// Its index in its tree and the tree's size.
    pub leaf: (u64, u64),
    /// The key that signed the root, and how.
    pub key: (String, ProofKind),
    /// Where the root is in the log of roots and the checkpoint's size and origin.
    pub log: (u64, u64, String),
}

fn text<'a>(doc: &'a Json, path: &str) -> Result<&'a str, String> {
    doc.pointer(path)
        .and_then(Json::as_str)
        .ok_or_else(|| format!("`{path}` is missing or not text"))
}

fn number(doc: &Json, path: &str) -> Result<i64, String> {
    doc.pointer(path)
        .and_then(Json::as_i64)
        .ok_or_else(|| format!("`{path}` is missing or not a whole number"))
}

fn base64(doc: &Json, path: &str) -> Result<Vec<u8>, String> {
    STANDARD
        .decode(text(doc, path)?)
        .map_err(|_| format!("`{path}` is not base64"))
}

fn hash(doc: &Json, path: &str) -> Result<Hash, String> {
    base64(doc, path)?
        .try_into()
        .map_err(|_| format!("`{path}` is not a SHA-256 hash"))
}

fn hashes(doc: &Json, path: &str) -> Result<Vec<Hash>, String> {
    let items = doc
        .pointer(path)
        .and_then(Json::as_array)
        .ok_or_else(|| format!("`{path}` is missing or not an array"))?;
    (0..items.len())
        .map(|n| hash(doc, &format!("{path}/{n}")))
        .collect()
}

/// The key set's key with `kid`, parsed.
fn key(keys: &Json, kid: &str) -> Result<PublicKey, String> {
    let found = keys["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
        .ok_or_else(|| format!("the key set has no key `{kid}`"))?;
    let members = found.as_object().ok_or("a key is not an object")?;
    let jwk = Jwk::parse(members).map_err(|e| format!("key `{kid}`: {e}"))?;
    Ok(jwk.key)
}

/// Checks `doc` (an inclusion proof) with `keys` (the node's proof keys as a JWK set).
pub fn verify(doc: &Json, keys: &Json) -> Result<Verified, String> {
    // 1. The leaf.
    let stream = text(doc, "/streamId")?;
    let id = StreamId::parse(stream).ok_or("`streamId` is not a UUID")?;
    let timestamp_us = number(doc, "/timestampMicros")?;
    let value = base64(doc, "/value")?;
    let leaf = merkle::leaf_hash(&proof::leaf(&id, timestamp_us, &value));
    // 2. The audit path to the signed root.
    let index = number(doc, "/leafIndex")? as u64;
    let size = number(doc, "/treeSize")?;
    let root = hash(doc, "/proof/rootHash")?;
    merkle::verify_inclusion(
        index,
        size as u64,
        &leaf,
        &hashes(doc, "/auditPath")?,
        &root,
    )
    .map_err(|e| format!("the value is not in the tree: {e}"))?;
    // 3. The root's signature.
    let kid = text(doc, "/proof/keyId")?;
    let kind = ProofKind::parse(text(doc, "/proof/proofKind")?).ok_or("unknown `proofKind`")?;
    let public = key(keys, kid)?;
    let signature = base64(doc, "/proof/signature")?;
    if !proof::verify(kind, &public, &root, &signature)? {
        return Err(format!(
            "the root's signature does not verify with key `{kid}`"
        ));
    }
    // 4. The root in the log of roots, under the checkpoint.
    if doc.pointer("/checkpoint").is_none_or(Json::is_null) {
        return Err("no checkpoint covers the root yet; ask again shortly".into());
    }
    let last_us = number(doc, "/proof/lastTimestampMicros")?;
    let log_leaf = merkle::leaf_hash(&proof::log_leaf(&id, last_us, size, &root));
    let log_index = number(doc, "/checkpoint/logIndex")? as u64;
    let log_size = number(doc, "/checkpoint/logSize")? as u64;
    let note = text(doc, "/checkpoint/note")?;
    // 5. The checkpoint's signature, by a checkpoint key of the set.
    let signed = keys["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|k| k["purpose"] == "checkpoint")
        .find_map(|k| {
            let origin = k["origin"].as_str()?;
            let PublicKey::Ed25519(public) = Jwk::parse(k.as_object()?).ok()?.key else {
                return None;
            };
            checkpoint::verify(note, origin, &public)
        })
        .ok_or("the checkpoint's signature does not verify with a checkpoint key of the set")?;
    if signed.size != log_size {
        return Err(format!(
            "the checkpoint covers {} roots, not `logSize` {log_size}",
            signed.size
        ));
    }
    merkle::verify_inclusion(
        log_index,
        log_size,
        &log_leaf,
        &hashes(doc, "/checkpoint/logPath")?,
        &signed.root,
    )
    .map_err(|e| format!("the root is not in the checkpointed log: {e}"))?;
    Ok(Verified {
        stream: id.to_string(),
        timestamp_us,
        leaf: (index, size as u64),
        key: (kid.to_owned(), kind),
        log: (log_index, log_size, signed.origin),
    })
}
