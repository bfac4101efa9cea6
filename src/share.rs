//! Shares of a bounded resource (connections, requests in progress, streams): at most `total`
//! held at once on the node, and at most `each` by one holder (an address group, an actor), so
//! one holder cannot take everyone's. A [`Share`] is given back when dropped; a holder's entry
//! exists only while it holds something, so memory follows what is held, not who ever asked.

use std::collections::HashMap;
use std::hash::Hash;
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
}
