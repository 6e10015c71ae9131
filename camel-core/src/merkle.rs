//! Merkle roots over transaction ids, with CVE-2012-2459 mutation detection, and merkle
//! branches for light clients.
//!
//! Bitcoin's construction: the leaves are the txids (internal byte order); each level pairs
//! neighbours and hashes `SHA-256d(left ‖ right)`; a level with an odd number of nodes pairs
//! its last node with itself. The root of a single leaf is the leaf; of no leaves, zero.
//!
//! Duplicating the last node means the lists `[a, b, c]` and `[a, b, c, c]` have the same
//! root. A level that pairs two *identical* nodes (not counting the implicit duplicate) marks
//! the list as mutated: a block whose transaction list is mutated is rejected
//! (`bad-txns-duplicate`) without marking its header invalid, since the same header also
//! commits to the honest list.

use crate::hash::{Hash256, Txid};

fn hash_pair(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(left);
    buf[32..].copy_from_slice(right);
    crate::hash::sha256d(&buf)
}

/// Reduces one level in place; returns whether it paired two identical nodes.
fn reduce_level(level: &mut Vec<[u8; 32]>) -> bool {
    let mut mutated = false;
    let next: Vec<[u8; 32]> = level
        .chunks(2)
        .map(|pair| match pair {
            [left, right] => {
                mutated |= left == right;
                hash_pair(left, right)
            }
            [last] => hash_pair(last, last),
            // chunks(2) yields slices of length 1 or 2.
            _ => [0u8; 32],
        })
        .collect();
    *level = next;
    mutated
}

/// The merkle root of `leaves` and whether any level paired two identical nodes.
pub fn merkle_root_of(leaves: impl IntoIterator<Item = [u8; 32]>) -> (Hash256, bool) {
    let mut level: Vec<[u8; 32]> = leaves.into_iter().collect();
    let mut mutated = false;
    while level.len() > 1 {
        mutated |= reduce_level(&mut level);
    }
    let root = level.first().copied().unwrap_or([0u8; 32]);
    (Hash256::from_byte_array(root), mutated)
}

/// The merkle root of a block's txids, in block order, and the mutation flag.
pub fn merkle_root(txids: &[Txid]) -> (Hash256, bool) {
    merkle_root_of(txids.iter().map(|t| t.to_byte_array()))
}

/// The sibling hashes from leaf `index` up to the root (bottom first): a proof that the leaf
/// is in the tree. `None` if `index` is out of range.
pub fn merkle_branch(txids: &[Txid], index: usize) -> Option<Vec<Hash256>> {
    if index >= txids.len() {
        return None;
    }
    let mut level: Vec<[u8; 32]> = txids.iter().map(|t| t.to_byte_array()).collect();
    let mut pos = index;
    let mut branch = Vec::new();
    while level.len() > 1 {
        // The sibling of the last node of an odd level is itself.
        let sibling = level.get(pos ^ 1).or_else(|| level.get(pos)).copied()?;
        branch.push(Hash256::from_byte_array(sibling));
        reduce_level(&mut level);
        pos >>= 1;
    }
    Some(branch)
}

/// The root implied by `leaf` at position `index` and its `branch`; compare it with the
/// header's merkle root to verify inclusion.
///
/// Only the low `branch.len()` bits of `index` are used. Inner nodes are 64-byte
/// preimages, and a valid transaction (at least one input and one output) encodes to at
/// least 92 bytes, so a transaction can never pose as an inner node.
pub fn root_from_branch(leaf: &Txid, index: usize, branch: &[Hash256]) -> Hash256 {
    let mut acc = leaf.to_byte_array();
    let mut pos = index;
    for sibling in branch {
        acc = if pos & 1 == 0 {
            hash_pair(&acc, sibling.as_bytes())
        } else {
            hash_pair(sibling.as_bytes(), &acc)
        };
        pos >>= 1;
    }
    Hash256::from_byte_array(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn txid(n: u8) -> Txid {
        Txid::hash(&[n])
    }

    #[test]
    fn small_trees() {
        assert_eq!(merkle_root(&[]), (Hash256::ZERO, false));
        let a = txid(1);
        assert_eq!(
            merkle_root(&[a]),
            (Hash256::from_byte_array(a.to_byte_array()), false)
        );
        let (b, c) = (txid(2), txid(3));
        let ab = hash_pair(a.as_bytes(), b.as_bytes());
        assert_eq!(merkle_root(&[a, b]).0.to_byte_array(), ab);
        let cc = hash_pair(c.as_bytes(), c.as_bytes());
        assert_eq!(
            merkle_root(&[a, b, c]),
            (Hash256::from_byte_array(hash_pair(&ab, &cc)), false)
        );
    }

    #[test]
    fn duplicate_last_is_detected() {
        let (a, b, c) = (txid(1), txid(2), txid(3));
        let honest = merkle_root(&[a, b, c]);
        let mutated = merkle_root(&[a, b, c, c]);
        assert_eq!(honest.0, mutated.0);
        assert!(!honest.1);
        assert!(mutated.1);
        // Mutation one level up: [a..f] vs [a..f, e, f] (6 leaves pad to 8 by duplicating the pair).
        let six: Vec<Txid> = (1..=6).map(txid).collect();
        let mut eight = six.clone();
        eight.extend_from_slice(&six[4..6]);
        let (r6, m6) = merkle_root(&six);
        let (r8, m8) = merkle_root(&eight);
        assert_eq!(r6, r8);
        assert!(!m6 && m8);
        // Two identical txids side by side are flagged even without a root collision.
        assert!(merkle_root(&[a, a]).1);
        assert!(!merkle_root(&[a, b, a]).1);
    }

    #[test]
    fn bitcoin_block_100000() {
        // Bitcoin block 100000: four transactions and their published merkle root (display order).
        let txids: Vec<Txid> = [
            "8c14f0db3df150123e6f3dbbf30f8b955a8249b62ac1d1ff16284aefa3d06d87",
            "fff2525b8931402dd09222c50775608f75787bd2b87e56995a7bdd30f79702c4",
            "6359f0868171b1d194cbee1af2f16ea598ae8fad666d9b012c8ed2b79a236ec4",
            "e9a66845e05d5abc0ad04ec80f774a7e585c6e8db975962d069a522137b80c1d",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let (root, mutated) = merkle_root(&txids);
        let mut display = root.to_byte_array();
        display.reverse();
        assert_eq!(
            crate::hash::to_hex(&display),
            "f3e94742aca4b5ef85488dc37c06c3282295ffec960994b2c0d5ac2a25a95766"
        );
        assert!(!mutated);
    }

    proptest! {
        #[test]
        fn repeating_the_tail_of_an_odd_level_is_flagged(n in 1usize..30) {
            let txids: Vec<Txid> = (0..n).map(|i| Txid::hash(&i.to_le_bytes())).collect();
            let (root, mutated) = merkle_root(&txids);
            prop_assert!(!mutated);
            if n % 2 == 1 && n > 1 {
                let mut longer = txids.clone();
                longer.push(txids[n - 1]);
                prop_assert_eq!(merkle_root(&longer), (root, true));
            }
        }

        #[test]
        fn branches_verify(n in 1usize..40, pick in any::<proptest::sample::Index>()) {
            let txids: Vec<Txid> = (0..n).map(|i| Txid::hash(&i.to_le_bytes())).collect();
            let (root, _) = merkle_root(&txids);
            let i = pick.index(n);
            let branch = merkle_branch(&txids, i).unwrap();
            prop_assert_eq!(root_from_branch(&txids[i], i, &branch), root);
            // A different leaf or position does not verify (n > 1 so the branch is non-empty).
            if n > 1 {
                prop_assert_ne!(root_from_branch(&Txid::hash(b"other"), i, &branch), root);
            }
            prop_assert!(merkle_branch(&txids, n).is_none());
        }
    }
}
