//! The audit log's Merkle tree, hashed as RFC 9162 §2.1 says (the same
//! tree as RFC 6962 and every C2SP transparency log): no I/O, no storage.
//!
//! - A leaf is `SHA-256(0x00 ‖ record bytes)`, an interior node
//!   `SHA-256(0x01 ‖ left ‖ right)`, so a leaf can never pass for a node.
//! - The tree over `n` leaves splits at the largest power of two below `n`
//!   (§2.1.1); the empty tree's root is `SHA-256("")`.
//! - [`Frontier`] keeps only the roots of the perfect subtrees the size's
//!   bits name (at most 64 hashes): appending a leaf and computing the root
//!   cost O(log n), never O(n). It is what the storage engines keep in the
//!   same transaction as the records, so every replica appends to one tree.
//! - Inclusion proofs (§2.1.3) and consistency proofs (§2.1.4) are
//!   generated from the list of leaf hashes (an export holds it) and
//!   verified from the proof alone. A verification failure says which
//!   input was wrong in shape (index, size, length) but not which hash did
//!   not match: the answer is then only "it does not verify".

use sha2::{Digest, Sha256};

/// A SHA-256 tree hash.
pub type Hash = [u8; 32];

/// The largest number of leaves a tree may hold here: sizes stay below
/// 2^63 so they fit the databases' signed 64-bit integers.
pub const MAX_SIZE: u64 = i64::MAX as u64;

/// The hash of a leaf: `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(data);
    hasher.finalize().into()
}

/// The hash of an interior node: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Why a proof could not be made or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is not inside a tree of {size} leaves")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The tree's size.
        size: u64,
    },
    /// The older size of a consistency proof is zero or larger than the newer.
    #[error("no consistency proof from size {old} to size {new}")]
    SizesOutOfOrder {
        /// The older tree's size.
        old: u64,
        /// The newer tree's size.
        new: u64,
    },
    /// The proof has more or fewer hashes than the sizes call for.
    #[error("the proof has {got} hashes where {expected} are needed")]
    Length {
        /// Hashes the sizes call for.
        expected: usize,
        /// Hashes present.
        got: usize,
    },
    /// The proof's hashes do not lead to the root (or roots) it is checked against.
    #[error("the proof does not verify against the root")]
    Mismatch,
}

/// The roots of the perfect subtrees of a tree of `size` leaves, largest
/// (leftmost) first: one per set bit of `size`. Enough to append a leaf
/// and to compute the root in O(log n).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    nodes: Vec<Hash>,
}

/// Why a stored frontier cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Merkle frontier: {0}")]
pub struct FrontierError(&'static str);

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect subtrees' roots, largest first.
    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    /// A frontier from its stored parts; refused unless there is one node
    /// per set bit of `size`.
    pub fn from_parts(size: u64, nodes: Vec<Hash>) -> Result<Self, FrontierError> {
        if size > MAX_SIZE {
            return Err(FrontierError("size out of range"));
        }
        if nodes.len() != size.count_ones() as usize {
            return Err(FrontierError("one node per set bit of the size"));
        }
        Ok(Self { size, nodes })
    }

    /// The nodes as stored: their 32-byte hashes, concatenated.
    pub fn nodes_bytes(&self) -> Vec<u8> {
        self.nodes.concat()
    }

    /// A frontier from `size` and [`Frontier::nodes_bytes`].
    pub fn from_stored(size: u64, bytes: &[u8]) -> Result<Self, FrontierError> {
        let (chunks, rest) = bytes.as_chunks::<32>();
        if !rest.is_empty() {
            return Err(FrontierError("nodes are 32-byte hashes"));
        }
        Self::from_parts(size, chunks.to_vec())
    }

    /// Appends a leaf hash: the subtrees it completes are merged, one
    /// node hash per trailing one bit of the old size.
    pub fn push(&mut self, leaf: Hash) -> Result<(), FrontierError> {
        if self.size >= MAX_SIZE {
            return Err(FrontierError("the tree is full"));
        }
        let mut node = leaf;
        let mut size = self.size;
        while size & 1 == 1 {
            let left = self
                .nodes
                .pop()
                .ok_or(FrontierError("one node per set bit of the size"))?;
            node = node_hash(&left, &node);
            size >>= 1;
        }
        self.nodes.push(node);
        self.size += 1;
        Ok(())
    }

    /// The tree's root (RFC 9162 §2.1.1): the subtrees folded from the
    /// right, so the tree splits at the largest power of two.
    pub fn root(&self) -> Hash {
        let mut nodes = self.nodes.iter().rev();
        let Some(last) = nodes.next() else {
            return empty_root();
        };
        nodes.fold(*last, |right, left| node_hash(left, &right))
    }
}

/// The root of the tree over `leaves` (leaf hashes), O(n).
pub fn root(leaves: &[Hash]) -> Hash {
    let mut frontier = Frontier::new();
    for leaf in leaves {
        // A slice never holds 2^63 hashes.
        let _ = frontier.push(*leaf);
    }
    frontier.root()
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The audit path of leaf `index` in the tree over `leaves` (§2.1.3.1),
/// nearest sibling first.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, ProofError> {
    let size = leaves.len() as u64;
    let position = usize::try_from(index)
        .ok()
        .filter(|i| *i < leaves.len())
        .ok_or(ProofError::IndexOutOfRange { index, size })?;
    let mut proof = Vec::new();
    path(leaves, position, &mut proof);
    Ok(proof)
}

fn path(leaves: &[Hash], index: usize, proof: &mut Vec<Hash>) {
    if leaves.len() <= 1 {
        return;
    }
    let k = split(leaves.len());
    let (left, right) = leaves.split_at(k);
    if index < k {
        path(left, index, proof);
        proof.push(root(right));
    } else {
        path(right, index - k, proof);
        proof.push(root(left));
    }
}

/// Checks that `leaf` is leaf `index` of the tree of `size` leaves whose
/// root is `root` (§2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut f_n = index;
    let mut s_n = size - 1;
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return Err(ProofError::Length {
                expected: inclusion_length(index, size),
                got: proof.len(),
            });
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::Length {
            expected: inclusion_length(index, size),
            got: proof.len(),
        });
    }
    if &r == root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

/// How many hashes the inclusion proof of `index` in `size` holds.
fn inclusion_length(index: u64, size: u64) -> usize {
    let mut f_n = index;
    let mut s_n = size.saturating_sub(1);
    let mut length = 0;
    while s_n != 0 {
        // The steps of `verify_inclusion` that move `f_n` and `s_n`.
        if f_n & 1 == 0 && f_n == s_n {
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        }
        f_n >>= 1;
        s_n >>= 1;
        length += 1;
    }
    length
}

/// The consistency proof from the tree's first `old_size` leaves to the
/// tree over all of `leaves` (§2.1.4.1, `SUBPROOF(m, D[n], true)`).
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Result<Vec<Hash>, ProofError> {
    let new = leaves.len() as u64;
    let m = usize::try_from(old_size)
        .ok()
        .filter(|m| *m > 0 && *m <= leaves.len())
        .ok_or(ProofError::SizesOutOfOrder { old: old_size, new })?;
    let mut proof = Vec::new();
    subproof(m, leaves, true, &mut proof);
    Ok(proof)
}

fn subproof(m: usize, leaves: &[Hash], whole: bool, proof: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !whole {
            proof.push(root(leaves));
        }
        return;
    }
    let k = split(n);
    let (left, right) = leaves.split_at(k);
    if m <= k {
        subproof(m, left, whole, proof);
        proof.push(root(right));
    } else {
        subproof(m - k, right, false, proof);
        proof.push(root(left));
    }
}

/// Checks that the tree of `old_size` leaves with root `old_root` is a
/// prefix of the tree of `new_size` leaves with root `new_root`
/// (§2.1.4.2): the log only grew between them.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size == 0 || old_size > new_size {
        return Err(ProofError::SizesOutOfOrder {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::Length {
                expected: 0,
                got: proof.len(),
            });
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    let length_error = || ProofError::Length {
        expected: consistency_length(old_size, new_size),
        got: proof.len(),
    };
    // An old size that is a power of two is itself a node of the new tree:
    // the proof starts from its root rather than carrying it.
    let mut rest = proof.iter();
    let first = if old_size.is_power_of_two() {
        *old_root
    } else {
        *rest.next().ok_or_else(length_error)?
    };
    let mut f_n = old_size - 1;
    let mut s_n = new_size - 1;
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let mut f_r = first;
    let mut s_r = first;
    for c in rest {
        if s_n == 0 {
            return Err(length_error());
        }
        if f_n & 1 == 1 || f_n == s_n {
            f_r = node_hash(c, &f_r);
            s_r = node_hash(c, &s_r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            s_r = node_hash(&s_r, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(length_error());
    }
    if &f_r == old_root && &s_r == new_root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

/// How many hashes the consistency proof from `old_size` to `new_size` holds.
fn consistency_length(old_size: u64, new_size: u64) -> usize {
    if old_size >= new_size {
        return 0;
    }
    let mut length = usize::from(!old_size.is_power_of_two());
    let mut f_n = old_size.saturating_sub(1);
    let mut s_n = new_size.saturating_sub(1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    while s_n != 0 {
        if f_n & 1 == 0 && f_n == s_n {
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        }
        f_n >>= 1;
        s_n >>= 1;
        length += 1;
    }
    length
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        reason = "test code"
    )]
    use super::*;
    use crate::test_vectors::{hex, load_json};
    use proptest::prelude::*;

    fn vectors() -> serde_json::Value {
        load_json("merkle/rfc6962-vectors.json")
    }

    fn hash(value: &serde_json::Value) -> Hash {
        hex(value).try_into().unwrap()
    }

    fn hashes(value: &serde_json::Value) -> Vec<Hash> {
        value.as_array().unwrap().iter().map(hash).collect()
    }

    fn vector_leaves() -> Vec<Hash> {
        vectors()["leaves_hex"]
            .as_array()
            .unwrap()
            .iter()
            .map(|data| leaf_hash(&hex(data)))
            .collect()
    }

    fn as_u64(value: &serde_json::Value) -> u64 {
        value.as_u64().unwrap()
    }

    /// The root of every size 0..8, from the frontier and from the list.
    #[test]
    fn roots_of_every_size_match_the_published_vectors() {
        let vectors = vectors();
        assert_eq!(empty_root(), hash(&vectors["empty_tree_root"]));
        assert_eq!(Frontier::new().root(), empty_root());
        let leaves = vector_leaves();
        let roots = vectors["roots_by_size"].as_object().unwrap();
        assert_eq!(roots.len(), leaves.len());
        let mut frontier = Frontier::new();
        for (i, leaf) in leaves.iter().enumerate() {
            frontier.push(*leaf).unwrap();
            let size = i + 1;
            let expected = hash(&roots[&size.to_string()]);
            assert_eq!(frontier.root(), expected, "frontier root of size {size}");
            assert_eq!(root(&leaves[..size]), expected, "root of size {size}");
            assert_eq!(frontier.nodes().len(), size.count_ones() as usize);
            let stored = Frontier::from_stored(size as u64, &frontier.nodes_bytes()).unwrap();
            assert_eq!(stored, frontier);
        }
    }

    /// Every published inclusion proof is generated exactly and verifies.
    #[test]
    fn inclusion_proofs_match_the_published_vectors() {
        let leaves = vector_leaves();
        let vectors = vectors();
        for case in vectors["inclusion_proofs"].as_array().unwrap() {
            let (index, size) = (as_u64(&case["leaf_index"]), as_u64(&case["tree_size"]));
            let expected = hashes(&case["proof"]);
            let tree = &leaves[..size as usize];
            assert_eq!(inclusion_proof(tree, index).unwrap(), expected);
            let root = root(tree);
            verify_inclusion(&leaves[index as usize], index, size, &expected, &root).unwrap();
        }
    }

    /// Every published consistency proof is generated exactly and verifies.
    #[test]
    fn consistency_proofs_match_the_published_vectors() {
        let leaves = vector_leaves();
        let vectors = vectors();
        for case in vectors["consistency_proofs"].as_array().unwrap() {
            let (old, new) = (as_u64(&case["size1"]), as_u64(&case["size2"]));
            let expected = hashes(&case["proof"]);
            let tree = &leaves[..new as usize];
            assert_eq!(consistency_proof(tree, old).unwrap(), expected);
            let (old_root, new_root) = (root(&leaves[..old as usize]), root(tree));
            verify_consistency(old, new, &old_root, &new_root, &expected).unwrap();
        }
    }

    /// Every corruption of an inclusion proof the vectors' README lists.
    fn inclusion_corruptions(
        leaf: Hash,
        index: u64,
        size: u64,
        proof: &[Hash],
        root: Hash,
    ) -> Vec<(String, Hash, u64, u64, Vec<Hash>, Hash)> {
        let mut cases = Vec::new();
        let mut case = |name: String, leaf, index, size, proof: Vec<Hash>, root| {
            cases.push((name, leaf, index, size, proof, root));
        };
        let flipped = |mut h: Hash, bit: usize| {
            h[bit / 8] ^= 1 << (bit % 8);
            h
        };
        case(
            "index - 1".into(),
            leaf,
            index.wrapping_sub(1),
            size,
            proof.to_vec(),
            root,
        );
        case(
            "index + 1".into(),
            leaf,
            index + 1,
            size,
            proof.to_vec(),
            root,
        );
        case(
            "index ^ 2".into(),
            leaf,
            index ^ 2,
            size,
            proof.to_vec(),
            root,
        );
        // A size of another height (a size one off may share the path:
        // the root, signed with its size, is what binds the size).
        case(
            "size * 2".into(),
            leaf,
            index,
            size * 2,
            proof.to_vec(),
            root,
        );
        case(
            "size / 2".into(),
            leaf,
            index,
            size / 2,
            proof.to_vec(),
            root,
        );
        case(
            "wrong leaf".into(),
            flipped(leaf, 0),
            index,
            size,
            proof.to_vec(),
            root,
        );
        case(
            "wrong root".into(),
            leaf,
            index,
            size,
            proof.to_vec(),
            flipped(root, 255),
        );
        case(
            "leaf as root".into(),
            leaf,
            index,
            size,
            proof.to_vec(),
            leaf,
        );
        case(
            "empty root".into(),
            leaf,
            index,
            size,
            proof.to_vec(),
            empty_root(),
        );
        for i in 0..proof.len() {
            for bit in [0, 7, 128, 255] {
                let mut p = proof.to_vec();
                p[i] = flipped(p[i], bit);
                case(format!("element {i} bit {bit}"), leaf, index, size, p, root);
            }
        }
        let extra = [0u8; 32];
        let mut p = proof.to_vec();
        p.push(extra);
        case(
            "element added at the end".into(),
            leaf,
            index,
            size,
            p,
            root,
        );
        let mut p = vec![extra];
        p.extend_from_slice(proof);
        case(
            "element added at the start".into(),
            leaf,
            index,
            size,
            p,
            root,
        );
        if !proof.is_empty() {
            case(
                "last element removed".into(),
                leaf,
                index,
                size,
                proof[..proof.len() - 1].to_vec(),
                root,
            );
            case(
                "first element removed".into(),
                leaf,
                index,
                size,
                proof[1..].to_vec(),
                root,
            );
        }
        cases
    }

    #[test]
    fn corrupted_inclusion_proofs_are_refused() {
        let leaves = vector_leaves();
        let vectors = vectors();
        for case in vectors["inclusion_proofs"].as_array().unwrap() {
            let (index, size) = (as_u64(&case["leaf_index"]), as_u64(&case["tree_size"]));
            let proof = hashes(&case["proof"]);
            let root = root(&leaves[..size as usize]);
            let leaf = leaves[index as usize];
            for (name, leaf, index, size, proof, root) in
                inclusion_corruptions(leaf, index, size, &proof, root)
            {
                assert!(
                    verify_inclusion(&leaf, index, size, &proof, &root).is_err(),
                    "{name} (index {index}, size {size}) verified"
                );
            }
        }
    }

    #[test]
    fn corrupted_consistency_proofs_are_refused() {
        let leaves = vector_leaves();
        let vectors = vectors();
        let flipped = |mut h: Hash, bit: usize| {
            h[bit / 8] ^= 1 << (bit % 8);
            h
        };
        for case in vectors["consistency_proofs"].as_array().unwrap() {
            let (old, new) = (as_u64(&case["size1"]), as_u64(&case["size2"]));
            let proof = hashes(&case["proof"]);
            let (r1, r2) = (root(&leaves[..old as usize]), root(&leaves[..new as usize]));
            let check = |name: &str, o: u64, n: u64, a: &Hash, b: &Hash, p: &[Hash]| {
                assert!(
                    verify_consistency(o, n, a, b, p).is_err(),
                    "{name} ({old} -> {new}) verified"
                );
            };
            check("swapped roots", old, new, &r2, &r1, &proof);
            check("old size - 1", old - 1, new, &r1, &r2, &proof);
            check("old size + 1", old + 1, new, &r1, &r2, &proof);
            check("old size ^ 2", old ^ 2, new, &r1, &r2, &proof);
            check("new size * 2", old, new * 2, &r1, &r2, &proof);
            check("new size / 2", old, new / 2, &r1, &r2, &proof);
            check("empty old root", old, new, &empty_root(), &r2, &proof);
            check("empty new root", old, new, &r1, &empty_root(), &proof);
            check("sizes swapped", new, old, &r2, &r1, &proof);
            check("wrong old root", old, new, &flipped(r1, 3), &r2, &proof);
            check("wrong new root", old, new, &r1, &flipped(r2, 250), &proof);
            for i in 0..proof.len() {
                for bit in [0, 9, 200, 255] {
                    let mut p = proof.clone();
                    p[i] = flipped(p[i], bit);
                    check(&format!("element {i} bit {bit}"), old, new, &r1, &r2, &p);
                }
            }
            let mut p = proof.clone();
            p.push([0; 32]);
            check("element added at the end", old, new, &r1, &r2, &p);
            let mut p = vec![[0; 32]];
            p.extend_from_slice(&proof);
            check("element added at the start", old, new, &r1, &r2, &p);
            check(
                "last removed",
                old,
                new,
                &r1,
                &r2,
                &proof[..proof.len() - 1],
            );
            check("first removed", old, new, &r1, &r2, &proof[1..]);
            check("no proof", old, new, &r1, &r2, &[]);
        }
        // A proof between equal sizes is empty, and the roots must be equal.
        let r = root(&leaves);
        verify_consistency(8, 8, &r, &r, &[]).unwrap();
        assert!(verify_consistency(8, 8, &r, &r, &[r]).is_err());
        assert!(verify_consistency(8, 8, &r, &flipped(r, 1), &[]).is_err());
        assert!(verify_consistency(0, 8, &empty_root(), &r, &[]).is_err());
    }

    #[test]
    fn stored_frontiers_must_match_their_size() {
        assert!(
            Frontier::from_stored(3, &[0; 32]).is_err(),
            "3 needs two nodes"
        );
        assert!(Frontier::from_stored(2, &[0; 33]).is_err());
        assert!(Frontier::from_stored(MAX_SIZE + 1, &[0; 32 * 64]).is_err());
        assert!(inclusion_proof(&[], 0).is_err());
        assert!(consistency_proof(&[[0; 32]], 2).is_err());
        assert!(consistency_proof(&[[0; 32]], 0).is_err());
    }

    fn leaves_of(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&(i as u64).to_be_bytes()))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Proofs made for any size verify, with the lengths the verifier
        /// expects, and fail after any single-bit edit of any element.
        #[test]
        fn inclusion_proofs_of_random_trees_verify_and_break_on_any_edit(
            size in 1usize..300, index_seed in any::<usize>(), bit in 0usize..256,
        ) {
            let leaves = leaves_of(size);
            let index = index_seed % size;
            let root = root(&leaves);
            let proof = inclusion_proof(&leaves, index as u64).unwrap();
            prop_assert_eq!(proof.len(), inclusion_length(index as u64, size as u64));
            prop_assert!(verify_inclusion(&leaves[index], index as u64, size as u64, &proof, &root).is_ok());
            for i in 0..proof.len() {
                let mut edited = proof.clone();
                edited[i][bit / 8] ^= 1 << (bit % 8);
                prop_assert!(verify_inclusion(&leaves[index], index as u64, size as u64, &edited, &root).is_err());
            }
            let mut leaf = leaves[index];
            leaf[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(verify_inclusion(&leaf, index as u64, size as u64, &proof, &root).is_err());
            if size > 1 {
                let other = (index + 1) % size;
                prop_assert!(verify_inclusion(&leaves[index], other as u64, size as u64, &proof, &root).is_err());
            }
        }

        #[test]
        fn consistency_proofs_of_random_trees_verify_and_break_on_any_edit(
            new in 1usize..300, old_seed in any::<usize>(), bit in 0usize..256,
        ) {
            let leaves = leaves_of(new);
            let old = old_seed % new + 1;
            let (r1, r2) = (root(&leaves[..old]), root(&leaves));
            let proof = consistency_proof(&leaves, old as u64).unwrap();
            prop_assert_eq!(proof.len(), consistency_length(old as u64, new as u64));
            prop_assert!(verify_consistency(old as u64, new as u64, &r1, &r2, &proof).is_ok());
            for i in 0..proof.len() {
                let mut edited = proof.clone();
                edited[i][bit / 8] ^= 1 << (bit % 8);
                prop_assert!(verify_consistency(old as u64, new as u64, &r1, &r2, &edited).is_err());
            }
            // A log rewritten inside the old prefix is caught.
            let mut rewritten = leaves.clone();
            rewritten[old_seed % old][bit / 8] ^= 1 << (bit % 8);
            let forged = consistency_proof(&rewritten, old as u64).unwrap();
            prop_assert!(verify_consistency(old as u64, new as u64, &r1, &root(&rewritten), &forged).is_err());
        }

        /// The frontier agrees with the recursive definition at every size.
        #[test]
        fn the_frontier_root_is_the_tree_root(size in 0usize..600) {
            let leaves = leaves_of(size);
            let mut frontier = Frontier::new();
            for leaf in &leaves {
                frontier.push(*leaf).unwrap();
            }
            prop_assert_eq!(frontier.root(), reference_root(&leaves));
        }
    }

    /// RFC 9162 §2.1.1 as written, for comparison only.
    fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n);
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }
}
