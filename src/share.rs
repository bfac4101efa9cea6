//! Shares of a bounded resource (connections, requests in progress, streams): at most `total`
//! held at once on the node, and at most `each` by one holder (an address group, an actor), so
//! one holder cannot take everyone's. A [`Share`] is given back when dropped; a holder's entry
//! exists only while it holds something, so memory follows what is held, not who ever asked.
//! [`AddressShares`] does the same per address without a lock, for every request's path.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Which bound refused a share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The node holds `total` already.
    Node,
    /// This holder holds `each` already.
    Holder,
}

/// The bounds and what is held.
#[derive(Debug)]
pub struct Shares<K> {
    total: usize,
    each: usize,
    held: Mutex<Held<K>>,
}

#[derive(Debug)]
struct Held<K> {
    total: usize,
    by: HashMap<K, usize>,
}

impl<K: Hash + Eq + Clone> Shares<K> {
    /// At most `total` at once, `each` per holder.
    pub fn new(total: usize, each: usize) -> Arc<Self> {
        Arc::new(Self {
            total,
            each,
            held: Mutex::new(Held {
                total: 0,
                by: HashMap::new(),
            }),
        })
    }

    /// The node-wide bound.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The per-holder bound.
    pub fn each(&self) -> usize {
        self.each
    }

    /// One more for `holder`, or which bound it would pass.
    pub fn take(self: &Arc<Self>, holder: K) -> Result<Share<K>, Full> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.total >= self.total {
            return Err(Full::Node);
        }
        let count = held.by.entry(holder.clone()).or_insert(0);
        if *count >= self.each {
            return Err(Full::Holder);
        }
        *count += 1;
        held.total += 1;
        Ok(Share {
            owner: self.clone(),
            holder: Some(holder),
        })
    }

    /// How many `holder` holds now.
    pub fn held_by(&self, holder: &K) -> usize {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.by.get(holder).copied().unwrap_or(0)
    }

    /// How many are held now, node-wide.
    pub fn held(&self) -> usize {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

/// One held share, given back when dropped.
#[derive(Debug)]
pub struct Share<K: Hash + Eq + Clone> {
    owner: Arc<Shares<K>>,
    holder: Option<K>,
}

impl<K: Hash + Eq + Clone> Drop for Share<K> {
    fn drop(&mut self) {
        let Some(holder) = self.holder.take() else {
            return;
        };
        let mut held = self.owner.held.lock().unwrap_or_else(|p| p.into_inner());
        held.total -= 1;
        if let Some(count) = held.by.get_mut(&holder) {
            *count -= 1;
            if *count == 0 {
                held.by.remove(&holder);
            }
        }
    }
}

/// Per-address shares on the request path, without a lock: each address group counts in two
/// cells of a table of atomic counters, chosen by a keyed hash, and its count is the smaller of
/// the two (a count-min sketch). Another address can only raise that count by landing in both
/// cells, so an address may be refused a little early under a flood from many networks, never
/// admitted beyond its share; the node-wide total is exact.
#[derive(Debug)]
pub struct AddressShares {
    total: usize,
    each: u32,
    held: AtomicUsize,
    cells: Box<[AtomicU32]>,
    hasher: std::hash::RandomState,
}

/// How many cells [`AddressShares`] counts in (a power of two).
const CELLS: usize = 1 << 14;

impl AddressShares {
    /// At most `total` at once, `each` per address group.
    pub fn new(total: usize, each: usize) -> Arc<Self> {
        Arc::new(Self {
            total,
            each: u32::try_from(each).unwrap_or(u32::MAX),
            held: AtomicUsize::new(0),
            cells: (0..CELLS).map(|_| AtomicU32::new(0)).collect(),
            hasher: std::hash::RandomState::new(),
        })
    }

    fn cells_of(&self, group: IpAddr) -> [usize; 2] {
        use std::hash::BuildHasher;
        let hash = self.hasher.hash_one(group);
        [
            (hash as usize) & (CELLS - 1),
            ((hash >> 32) as usize) & (CELLS - 1),
        ]
    }

    /// One more for `group` (an address group, [`crate::net::address_group`]), or which bound
    /// it would pass.
    pub fn take(self: &Arc<Self>, group: IpAddr) -> Result<AddressShare, Full> {
        if self.held.fetch_add(1, Ordering::Relaxed) >= self.total {
            self.held.fetch_sub(1, Ordering::Relaxed);
            return Err(Full::Node);
        }
        let cells = self.cells_of(group);
        let before = cells.map(|cell| self.cells[cell].fetch_add(1, Ordering::Relaxed));
        let share = AddressShare {
            owner: self.clone(),
            cells,
        };
        if before[0].min(before[1]) >= self.each {
            return Err(Full::Holder); // the share, dropped, gives back what it took
        }
        Ok(share)
    }
}

/// One request's place in [`AddressShares`], given back when dropped.
#[derive(Debug)]
pub struct AddressShare {
    owner: Arc<AddressShares>,
    cells: [usize; 2],
}

impl Drop for AddressShare {
    fn drop(&mut self) {
        for cell in self.cells {
            self.owner.cells[cell].fetch_sub(1, Ordering::Relaxed);
        }
        self.owner.held.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_gets_its_share_and_the_node_its_total() {
        let shares = Shares::new(3, 2);
        let a1 = shares.take("a").ok();
        let a2 = shares.take("a").ok();
        assert!(a1.is_some() && a2.is_some());
        assert_eq!(shares.take("a").err(), Some(Full::Holder));
        let b1 = shares.take("b").ok();
        assert!(b1.is_some());
        assert_eq!(shares.take("c").err(), Some(Full::Node));
        drop(a1);
        assert_eq!(shares.held_by(&"a"), 1);
        assert!(shares.take("c").is_ok(), "a share given back is free again");
        drop((a2, b1));
        assert_eq!(shares.held(), 0);
        assert!(
            shares.held.lock().map(|h| h.by.is_empty()).unwrap_or(false),
            "no entry outlives what its holder held"
        );
    }

    #[test]
    fn an_address_gets_its_share_without_a_lock_and_the_node_its_total() {
        let shares = AddressShares::new(5, 2);
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        let a1 = shares.take(a).ok();
        let a2 = shares.take(a).ok();
        assert!(a1.is_some() && a2.is_some());
        assert_eq!(shares.take(a).err(), Some(Full::Holder));
        let b1 = shares.take(b).ok();
        let b2 = shares.take(b).ok();
        assert!(
            b1.is_some() && b2.is_some(),
            "another address has its own share"
        );
        let c = shares.take([192, 0, 2, 3].into()).ok();
        assert!(c.is_some());
        assert_eq!(shares.take([192, 0, 2, 4].into()).err(), Some(Full::Node));
        drop((a1, c));
        assert!(shares.take(a).is_ok(), "a share given back is free again");
        drop((a2, b1, b2));
        assert_eq!(shares.held.load(Ordering::Relaxed), 0);
        assert!(shares.cells.iter().all(|c| c.load(Ordering::Relaxed) == 0));
    }
}
