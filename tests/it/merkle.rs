//! RFC 9162 Merkle trees against the published vectors (`../shared/vectors/merkle/testdata`,
//! transparency-dev's): every inclusion, consistency, subtree inclusion and subtree consistency
//! vector must verify exactly when it should.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use portico::merkle::{
    self, Hash, verify_consistency, verify_inclusion, verify_subtree_consistency,
    verify_subtree_inclusion,
};
use serde_json::Value as Json;

use crate::helpers::vectors;

/// A base64 hash; `None` when it is not 32 bytes (a vector with garbage around a hash).
fn hash(value: &Json) -> Option<Hash> {
    bytes(value)?.try_into().ok()
}

/// A base64 root, compared as given (a vector may hold one that is no hash).
fn bytes(value: &Json) -> Option<Vec<u8>> {
    STANDARD.decode(value.as_str()?).ok()
}

/// The proof's hashes (`null` is none); `None` when one is not a hash.
fn hashes(value: &Json) -> Option<Vec<Hash>> {
    match value {
        Json::Null => Some(Vec::new()),
        Json::Array(items) => items.iter().map(hash).collect(),
        _ => None,
    }
}

fn number(vector: &Json, name: &str) -> u64 {
    vector[name]
        .as_u64()
        .unwrap_or_else(|| panic!("`{name}` in {vector}"))
}

/// Runs `check` on every vector of `kind`; each must fail exactly when `wantErr` says.
fn run(kind: &str, check: impl Fn(&Json) -> Result<(), String>) {
    let vectors = vectors::merkle(kind);
    assert!(vectors.len() > 10, "{kind}: only {} vectors", vectors.len());
    let mut wrong = Vec::new();
    for (path, vector) in &vectors {
        let want_err = vector["wantErr"].as_bool().expect("wantErr");
        let outcome = check(vector);
        if outcome.is_err() != want_err {
            wrong.push(format!(
                "{}: wantErr {want_err}, got {outcome:?}",
                path.display()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {}:\n{}",
        wrong.len(),
        vectors.len(),
        wrong.join("\n")
    );
}

fn leaf(vector: &Json) -> Result<Hash, String> {
    hash(&vector["leafHash"]).ok_or_else(|| "`leafHash` is not a hash".into())
}

fn root(vector: &Json, name: &str) -> Result<Vec<u8>, String> {
    bytes(&vector[name]).ok_or_else(|| format!("`{name}` is not base64"))
}

#[test]
fn every_inclusion_vector() {
    run("inclusion", |v| {
        let (root, leaf) = (root(v, "root")?, leaf(v)?);
        let proof = hashes(&v["proof"]).ok_or("a proof hash is malformed")?;
        verify_inclusion(
            number(v, "leafIdx"),
            number(v, "treeSize"),
            &leaf,
            &proof,
            &root,
        )
        .map_err(|e| e.to_string())
    });
}

#[test]
fn every_consistency_vector() {
    run("consistency", |v| {
        let (root1, root2) = (root(v, "root1")?, root(v, "root2")?);
        let proof = hashes(&v["proof"]).ok_or("a proof hash is malformed")?;
        verify_consistency(
            number(v, "size1"),
            number(v, "size2"),
            &root1,
            &root2,
            &proof,
        )
        .map_err(|e| e.to_string())
    });
}

#[test]
fn every_subtree_inclusion_vector() {
    run("subtreeinclusion", |v| {
        let (root, leaf) = (root(v, "root")?, leaf(v)?);
        let proof = hashes(&v["proof"]).ok_or("a proof hash is malformed")?;
        verify_subtree_inclusion(
            number(v, "leafIdx"),
            number(v, "start"),
            number(v, "end"),
            &leaf,
            &proof,
            &root,
        )
        .map_err(|e| e.to_string())
    });
}

#[test]
fn every_subtree_consistency_vector() {
    run("subtreeconsistency", |v| {
        let (subtree, root) = (root(v, "root1")?, root(v, "root2")?);
        let proof = hashes(&v["proof"]).ok_or("a proof hash is malformed")?;
        verify_subtree_consistency(
            number(v, "start"),
            number(v, "end"),
            number(v, "size"),
            &subtree,
            &root,
            &proof,
        )
        .map_err(|e| e.to_string())
    });
}

#[test]
fn built_proofs_match_the_vectors_trees() {
    // The happy-path inclusion vectors' trees are built from leaves we do not have, but a tree
    // we build must verify with the verifier the vectors passed.
    let leaves: Vec<Hash> = (0u8..13).map(|i| merkle::leaf_hash(&[i])).collect();
    let root = merkle::root(&leaves);
    for (i, leaf) in leaves.iter().enumerate() {
        let path = merkle::inclusion_path(&leaves, i).expect("path");
        verify_inclusion(i as u64, 13, leaf, &path, &root).expect("inclusion");
    }
}
