//! Merkle trees as RFC 9162 (Certificate Transparency 2.0) defines them, §2.1: the tree of
//! any number of leaves without padding, inclusion proofs ("audit paths") and consistency
//! proofs, built and verified.
//!
//! A leaf's hash is `SHA-256(0x00 ‖ leaf)`, an inner node's `SHA-256(0x01 ‖ left ‖ right)`, and
//! a tree of `n > 1` leaves splits at `k`, the largest power of two below `n`. The empty tree's
//! hash is `SHA-256()`. Paths list siblings from the leaf up.

use aws_lc_rs::digest::{Context, SHA256, digest};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// Why a proof does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The index or sizes do not describe a proof (an index outside the tree, a first tree
    /// larger than the second).
    #[error("the index or sizes are out of range")]
    OutOfRange,
    /// The path has the wrong number of hashes for the index and size.
    #[error("the proof has the wrong number of hashes")]
    WrongLength,
    /// The recomputed root is not the expected one.
    #[error("the recomputed root does not match")]
    RootMismatch,
}

/// `SHA-256(0x00 ‖ leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut context = Context::new(&SHA256);
    context.update(&[0x00]);
    context.update(leaf);
    to_hash(context.finish().as_ref())
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &[u8], right: &[u8]) -> Hash {
    let mut context = Context::new(&SHA256);
    context.update(&[0x01]);
    context.update(left);
    context.update(right);
    to_hash(context.finish().as_ref())
}

/// The hash of the empty tree, `SHA-256()`.
pub fn empty_root() -> Hash {
    to_hash(digest(&SHA256, b"").as_ref())
}

fn to_hash(bytes: &[u8]) -> Hash {
    let mut hash = [0; 32];
    hash.copy_from_slice(bytes);
    hash
}

/// The largest power of two smaller than `n` (`n > 1`).
fn split(n: usize) -> usize {
    debug_assert!(n > 1);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The root of the tree whose leaf hashes are `leaves`, `MTH(D[n])`.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            // Bottom-up, level by level, pairing from the left; a lone last node rises
            // unchanged. This is the same tree as the recursive split at powers of two.
            let mut level: Vec<Hash> = leaves.to_vec();
            let mut len = n;
            while len > 1 {
                let mut next = 0;
                let mut i = 0;
                while i + 1 < len {
                    level[next] = node_hash(&level[i], &level[i + 1]);
                    next += 1;
                    i += 2;
                }
                if i < len {
                    level[next] = level[i];
                    next += 1;
                }
                len = next;
            }
            level[0]
        }
    }
}

/// The audit path of leaf `index` in the tree of `leaves`, `PATH(m, D[n])`; `None` when the
/// index is outside the tree.
pub fn inclusion_path(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    let ranges = inclusion_ranges(index as u64, leaves.len() as u64)?;
    Some(
        ranges
            .into_iter()
            .map(|(start, end)| root(&leaves[start as usize..end as usize]))
            .collect(),
    )
}

/// The consistency proof between the first `old_size` leaves and all of `leaves`,
/// `PROOF(m, D[n])`; `None` when `old_size` is 0 or larger than the tree. Empty for equal sizes.
pub fn consistency_proof(leaves: &[Hash], old_size: usize) -> Option<Vec<Hash>> {
    let ranges = consistency_ranges(old_size as u64, leaves.len() as u64)?;
    Some(
        ranges
            .into_iter()
            .map(|(start, end)| root(&leaves[start as usize..end as usize]))
            .collect(),
    )
}

/// The leaf ranges `[start, end)` whose tree hashes are the audit path of leaf `index` in a
/// tree of `size` leaves, from the leaf up; `None` when the index is outside the tree.
pub fn inclusion_ranges(index: u64, size: u64) -> Option<Vec<(u64, u64)>> {
    if index >= size {
        return None;
    }
    let mut ranges = Vec::new();
    let (mut start, mut end) = (0u64, size);
    // Top-down, then reversed: the path lists siblings from the leaf up.
    while end - start > 1 {
        let k = split((end - start) as usize) as u64;
        if index < start + k {
            ranges.push((start + k, end));
            end = start + k;
        } else {
            ranges.push((start, start + k));
            start += k;
        }
    }
    ranges.reverse();
    Some(ranges)
}

/// The leaf ranges whose tree hashes are the consistency proof from `old_size` to `size`
/// leaves, in proof order; `None` when `old_size` is 0 or larger than `size`.
pub fn consistency_ranges(old_size: u64, size: u64) -> Option<Vec<(u64, u64)>> {
    if old_size == 0 || old_size > size {
        return None;
    }
    let mut ranges = Vec::new();
    if old_size < size {
        subproof_ranges(old_size, 0, size, true, &mut ranges);
    }
    Some(ranges)
}

fn subproof_ranges(m: u64, start: u64, end: u64, whole: bool, out: &mut Vec<(u64, u64)>) {
    let n = end - start;
    if m == n {
        if !whole {
            out.push((start, end));
        }
        return;
    }
    let k = split(n as usize) as u64;
    if m <= k {
        subproof_ranges(m, start, start + k, whole, out);
        out.push((start + k, end));
    } else {
        subproof_ranges(m - k, start + k, end, false, out);
        out.push((start, start + k));
    }
}

/// The perfect subtrees that make up the tree hash of `[start, end)` (a range of an RFC 9162
/// tree: the tree itself, or a range a path or proof names), left to right, each as
/// `(level, index)`: the node over leaves `index·2^level .. (index+1)·2^level`.
pub fn perfect_pieces(start: u64, end: u64) -> Vec<(u32, u64)> {
    let mut pieces = Vec::new();
    let (mut start, mut n) = (start, end.saturating_sub(start));
    while n > 0 {
        let k = if n.is_power_of_two() {
            n
        } else {
            split(n as usize) as u64
        };
        let level = k.trailing_zeros();
        pieces.push((level, start >> level));
        start += k;
        n -= k;
    }
    pieces
}

/// The tree hash of a range from its [`perfect_pieces`]' hashes: each piece is the left child
/// of the rest.
pub fn fold_pieces(pieces: &[Hash]) -> Hash {
    let mut iter = pieces.iter().rev();
    let Some(last) = iter.next() else {
        return empty_root();
    };
    iter.fold(*last, |right, left| node_hash(left, &right))
}

/// Checks that `leaf` (a leaf hash) is leaf `index` of the tree of `size` leaves whose root is
/// `root`, given its audit path (RFC 9162 §2.1.3.2). Roots are compared as given: a root that
/// is not a SHA-256 hash matches nothing computed.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    path: &[Hash],
    root: &[u8],
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange);
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if r[..] != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that the tree of `size1` leaves with root `root1` is a prefix of the tree of `size2`
/// leaves with root `root2`, given a consistency proof (RFC 9162 §2.1.4.2). Equal sizes need an
/// empty proof and identical roots. A first tree of size 0 proves nothing and is refused.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    root1: &[u8],
    root2: &[u8],
    proof: &[Hash],
) -> Result<(), ProofError> {
    if size2 < size1 || size1 == 0 {
        return Err(ProofError::OutOfRange);
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if root1 == root2 {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let mut hashes: Vec<&[u8]> = Vec::with_capacity(proof.len() + 1);
    if size1.is_power_of_two() {
        hashes.push(root1);
    }
    hashes.extend(proof.iter().map(|h| &h[..]));
    let (mut f, mut s) = (size1 - 1, size2 - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (hashes[0].to_vec(), hashes[0].to_vec());
    for c in &hashes[1..] {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr).to_vec();
            sr = node_hash(c, &sr).to_vec();
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c).to_vec();
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr != root1 || sr != root2 {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Whether `[start, end)` is a subtree in the sense of the Merkle Tree Certificates draft
/// (draft-davidben-tls-merkle-tree-certs, §4.1): non-empty, and `start` a multiple of the
/// smallest power of two at least its size, so it is a node of every tree that holds it (or,
/// at the right edge, the left part of one).
pub fn is_subtree(start: u64, end: u64) -> bool {
    start < end
        && (end - start)
            .checked_next_power_of_two()
            .is_some_and(|p| start.is_multiple_of(p))
}

/// Checks that the subtree `[start, end)`, whose hash is `subtree_hash`, is part of the tree
/// of `size` leaves with root `root`, given a subtree consistency proof (the Merkle Tree
/// Certificates draft, appendix B). An empty subtree (`start == end <= size`) is part of
/// every tree, with the empty tree's hash and no proof.
pub fn verify_subtree_consistency(
    start: u64,
    end: u64,
    size: u64,
    subtree_hash: &[u8],
    root: &[u8],
    proof: &[Hash],
) -> Result<(), ProofError> {
    if start == end && start <= size {
        return if !proof.is_empty() {
            Err(ProofError::WrongLength)
        } else if subtree_hash == empty_root() {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if !is_subtree(start, end) || size < end {
        return Err(ProofError::OutOfRange);
    }
    // Paths from the root to the subtree's first and last leaves and to the tree's last leaf;
    // each level up drops their lowest bit.
    let (mut first, mut last, mut tree_last) = (start, end - 1, size - 1);
    if last == tree_last {
        // The subtree ends where the tree does: its top is a node of the tree.
        while first != last {
            first >>= 1;
            last >>= 1;
            tree_last >>= 1;
        }
    } else {
        // Up the subtree's right edge while it stays the right edge of a full node.
        while first != last && last & 1 == 1 {
            first >>= 1;
            last >>= 1;
            tree_last >>= 1;
        }
    }
    let mut rest = proof.iter();
    let seed: &[u8] = if first == last {
        subtree_hash
    } else {
        rest.next().ok_or(ProofError::WrongLength)?
    };
    let (mut node, mut top) = (seed.to_vec(), seed.to_vec());
    for p in rest {
        if tree_last == 0 {
            return Err(ProofError::WrongLength);
        }
        if last & 1 == 1 || last == tree_last {
            if first < last {
                node = node_hash(p, &node).to_vec();
            }
            top = node_hash(p, &top).to_vec();
            while last & 1 == 0 {
                first >>= 1;
                last >>= 1;
                tree_last >>= 1;
            }
        } else {
            top = node_hash(&top, p).to_vec();
        }
        first >>= 1;
        last >>= 1;
        tree_last >>= 1;
    }
    if tree_last != 0 {
        return Err(ProofError::WrongLength);
    }
    if node != subtree_hash || top != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that `leaf` is leaf `index` of the subtree `[start, end)` whose hash is
/// `subtree_hash`, given its inclusion proof in that subtree.
pub fn verify_subtree_inclusion(
    index: u64,
    start: u64,
    end: u64,
    leaf: &Hash,
    proof: &[Hash],
    subtree_hash: &[u8],
) -> Result<(), ProofError> {
    if !is_subtree(start, end) || !(start..end).contains(&index) {
        return Err(ProofError::OutOfRange);
    }
    verify_inclusion(index - start, end - start, leaf, proof, subtree_hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    /// The definition, recursively, to check the bottom-up root against.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n);
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    #[test]
    fn the_ranges_proofs_name_fold_from_their_perfect_pieces() {
        for n in 1..40u64 {
            let tree = leaves(n as usize);
            let mut ranges = vec![(0, n)];
            for i in 0..n {
                ranges.extend(inclusion_ranges(i, n).unwrap());
                ranges.extend(consistency_ranges(i + 1, n).unwrap());
            }
            for (start, end) in ranges {
                let hashes: Vec<Hash> = perfect_pieces(start, end)
                    .iter()
                    .map(|&(level, index)| {
                        root(&tree[(index << level) as usize..((index + 1) << level) as usize])
                    })
                    .collect();
                assert_eq!(
                    fold_pieces(&hashes),
                    root(&tree[start as usize..end as usize]),
                    "[{start}, {end}) of {n}"
                );
            }
        }
    }

    #[test]
    fn every_built_proof_verifies_and_a_changed_leaf_does_not() {
        for n in 0..40usize {
            let tree = leaves(n);
            let top = root(&tree);
            assert_eq!(top, mth(&tree), "root of {n}");
            for i in 0..n {
                let path = inclusion_path(&tree, i).unwrap();
                verify_inclusion(i as u64, n as u64, &tree[i], &path, &top).unwrap();
                let other = leaf_hash(b"changed");
                assert_eq!(
                    verify_inclusion(i as u64, n as u64, &other, &path, &top),
                    Err(ProofError::RootMismatch)
                );
            }
            for m in 1..=n {
                let proof = consistency_proof(&tree, m).unwrap();
                verify_consistency(m as u64, n as u64, &root(&tree[..m]), &top, &proof)
                    .unwrap_or_else(|e| panic!("consistency {m} → {n}: {e}"));
            }
        }
    }
}
