//! Portals: per-account, in-memory ring buffers of items, read by cursor.
//!
//! Each portal is a bounded ring (item count, bytes, age). Every item gets a number from one
//! server-wide sequence, so a reader's position in a portal is a single `u64` cursor and items
//! from several portals merge in arrival order. Readers hold cursors, never queues: memory is
//! O(rings), whatever the number of readers. A publish wakes the portal's waiters once
//! ([`Notify::notify_waiters`]); a waiter registers ([`Waiter::register`]) before it looks at
//! the ring, so an item set between the look and the wait still wakes it.
//!
//! Portal contents are ephemeral by design (the XRTC seed: "ephemeral up to ITEM_AGE_MAX"):
//! they live in this process only and are gone after a restart.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

/// Shards of the account map; accounts are spread over them by hash.
const SHARDS: usize = 32;

/// How big portals may grow and how long items live.
#[derive(Debug, Clone, Copy)]
pub struct RingLimits {
    /// Most items a portal keeps; the oldest are dropped beyond it.
    pub capacity: usize,
    /// Most payload bytes a portal keeps; the oldest items are dropped beyond it.
    pub max_bytes: usize,
    /// Items older than this (milliseconds) are gone.
    pub item_age_max_ms: i64,
    /// Most live portals per account.
    pub portals_per_account: usize,
    /// Most payload bytes all portals on the node hold together.
    pub node_bytes_max: usize,
}

/// One item in a portal.
#[derive(Debug)]
pub struct Item {
    /// Its number in the server-wide sequence (strictly increasing per portal).
    pub seq: u64,
    /// When it arrived (Unix milliseconds).
    pub time_ms: i64,
    /// The portal it was set in.
    pub portal: Arc<str>,
    /// The payload exactly as received: a JSON string literal with its quotes and escapes.
    pub payload: Box<str>,
}

/// A portal's id: 1 to 32 ASCII letters and digits (the XRTC seed's rule), checked once where
/// it comes in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortalId(Arc<str>);

impl PortalId {
    /// Parses a portal id.
    pub fn parse(id: &str) -> Result<Self, InvalidPortalId> {
        if (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(Self(Arc::from(id)))
        } else {
            Err(InvalidPortalId)
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PortalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Not a portal id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a portal id is 1 to 32 ASCII letters and digits")]
pub struct InvalidPortalId;

/// An item to set.
#[derive(Debug)]
pub struct NewItem {
    /// The portal (created on first set).
    pub portal: PortalId,
    /// The payload as a JSON string literal.
    pub payload: Box<str>,
}

/// The portals a set's items go to, in order, and the node's bytes claimed for them
/// ([`Portals::reserve`]). Each target counts as live for its account until its item is in
/// its ring; what is dropped unfilled is given back.
#[derive(Debug)]
pub struct Reserved {
    targets: Vec<Arc<Portal>>,
    bytes: usize,
    node_bytes: Arc<AtomicUsize>,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        for portal in &self.targets {
            portal.pending.fetch_sub(1, Ordering::SeqCst);
        }
        self.node_bytes.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// Why a set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// The account would have more live portals than allowed.
    #[error("the account already has {0} portals, the most allowed")]
    TooManyPortals(usize),
    /// The node's portals hold as many bytes as they may.
    #[error("the node's portals hold {0} bytes, the most allowed")]
    NodeFull(usize),
}

/// What a read found in one portal.
#[derive(Debug, Default)]
pub struct Slice {
    /// Items after the cursor, oldest first, none older than the age limit.
    pub items: Vec<Arc<Item>>,
    /// The newest sequence number seen, delivered or not (0 when the portal is empty).
    pub newest: u64,
    /// The highest sequence number this portal ever dropped (overrun or age).
    pub dropped_upto: u64,
}

/// All portals of all accounts on this node.
#[derive(Debug)]
pub struct Portals {
    shards: Vec<Mutex<HashMap<Arc<str>, Account>>>,
    numbering: Arc<dyn Numbering>,
    limits: RingLimits,
    /// Payload bytes in every ring, and claimed by sets in progress.
    node_bytes: Arc<AtomicUsize>,
}

/// Where items get their numbers: the server-wide event sequence (`events::Journal`).
pub trait Numbering: Send + Sync + std::fmt::Debug {
    /// The next number, without waiting; `None` when none is at hand right now.
    fn take(&self) -> Option<u64>;
}

/// What [`Portals::fill`] set, and what it could not number yet (to fill again once numbers are
/// at hand).
#[derive(Debug)]
pub struct Filled {
    /// The items set, in order.
    pub set: Vec<Arc<Item>>,
    /// The items still to set, with their portals.
    pub rest: Option<(Reserved, Vec<NewItem>)>,
}

#[derive(Debug, Default)]
struct Account {
    portals: HashMap<Arc<str>, Arc<Portal>>,
}

/// One portal: its ring and the waiters to wake.
#[derive(Debug)]
pub struct Portal {
    id: Arc<str>,
    ring: Mutex<Ring>,
    notify: Notify,
    /// Items reserved for it and not yet in its ring (changed under the ring's lock when
    /// filled, so "empty and nothing pending" is one observation).
    pending: AtomicUsize,
    /// The node's byte count, which its ring's bytes are part of.
    node_bytes: Arc<AtomicUsize>,
}

#[derive(Debug, Default)]
struct Ring {
    items: VecDeque<Arc<Item>>,
    bytes: usize,
    dropped_upto: u64,
}

/// Locks `mutex`; a panic elsewhere while it was held leaves data that is still consistent here
/// (every critical section is a few assignments), so poisoning is ignored.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Ring {
    /// Drops items older than `oldest_ms`, giving their bytes back to `node_bytes`.
    fn expire(&mut self, oldest_ms: i64, node_bytes: &AtomicUsize) {
        while let Some(front) = self.items.front() {
            if front.time_ms >= oldest_ms {
                break;
            }
            self.drop_front(node_bytes);
        }
    }

    fn drop_front(&mut self, node_bytes: &AtomicUsize) {
        if let Some(item) = self.items.pop_front() {
            self.bytes -= item.payload.len();
            node_bytes.fetch_sub(item.payload.len(), Ordering::SeqCst);
            self.dropped_upto = item.seq;
        }
    }
}

impl Portal {
    fn new(id: Arc<str>, node_bytes: Arc<AtomicUsize>) -> Arc<Self> {
        Arc::new(Self {
            id,
            ring: Mutex::default(),
            notify: Notify::new(),
            pending: AtomicUsize::new(0),
            node_bytes,
        })
    }

    /// Drops aged items; answers whether the portal is live: it holds items or a set is
    /// filling it.
    fn expire_and_check(&self, oldest_ms: i64) -> bool {
        let mut ring = lock(&self.ring);
        ring.expire(oldest_ms, &self.node_bytes);
        !ring.items.is_empty() || self.pending.load(Ordering::SeqCst) > 0
    }

    /// Whether the portal holds items or a set is filling it.
    fn is_live(&self) -> bool {
        let ring = lock(&self.ring);
        !ring.items.is_empty() || self.pending.load(Ordering::SeqCst) > 0
    }
}

impl Portal {
    /// The portal's id.
    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    /// The items after `after` (and at or after `not_before_ms`), oldest first.
    pub fn read(&self, after: u64, not_before_ms: i64) -> Slice {
        let ring = lock(&self.ring);
        let newest = ring.items.back().map_or(0, |item| item.seq);
        // Items are in sequence order: find the first after the cursor from the back, since
        // readers are usually near the head.
        let start = ring.items.partition_point(|item| item.seq <= after);
        let items = ring
            .items
            .range(start..)
            .filter(|item| item.time_ms >= not_before_ms)
            .cloned()
            .collect();
        Slice {
            items,
            newest,
            dropped_upto: ring.dropped_upto,
        }
    }

    /// Whether the portal holds any item.
    pub fn holds_items(&self) -> bool {
        !lock(&self.ring).items.is_empty()
    }

    /// The newest item, if it is not older than `not_before_ms`.
    pub fn latest(&self, not_before_ms: i64) -> Option<Arc<Item>> {
        let ring = lock(&self.ring);
        ring.items
            .back()
            .filter(|item| item.time_ms >= not_before_ms)
            .cloned()
    }

    /// A future that completes at the next publish to this portal; see [`Waiter`].
    pub fn waiter(&self) -> Waiter<'_> {
        Waiter(Box::pin(self.notify.notified()))
    }
}

/// A registration for the next publish to a portal. Call [`Waiter::register`] before looking at
/// the portal; a publish after that completes the waiter even if it happens before the await.
#[derive(Debug)]
pub struct Waiter<'a>(Pin<Box<Notified<'a>>>);

impl Waiter<'_> {
    /// Registers for the next publish without waiting yet.
    pub fn register(&mut self) {
        self.0.as_mut().enable();
    }
}

impl Future for Waiter<'_> {
    type Output = ();

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl Portals {
    /// No portals yet; items numbered by `numbering`.
    pub fn new(limits: RingLimits, numbering: Arc<dyn Numbering>) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            numbering,
            limits,
            node_bytes: Arc::default(),
        }
    }

    /// The limits portals keep to.
    pub fn limits(&self) -> RingLimits {
        self.limits
    }

    /// Payload bytes held by every portal on the node (and claimed by sets in progress).
    pub fn bytes(&self) -> usize {
        self.node_bytes.load(Ordering::SeqCst)
    }

    fn shard(&self, account: &str) -> &Mutex<HashMap<Arc<str>, Account>> {
        use std::hash::BuildHasher;
        // A fixed hasher: the shard only spreads load; accounts are not attacker-chosen.
        let hash =
            std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default().hash_one(account);
        &self.shards[hash as usize % SHARDS]
    }

    /// Sets items at `now_ms`, creating portals on first use. Either every item is set or, when
    /// the account would exceed its portal count, none is. Returns the items set, in order.
    pub fn set(
        &self,
        account: &str,
        items: Vec<NewItem>,
        now_ms: i64,
    ) -> Result<Vec<Arc<Item>>, SetError> {
        let room = self.reserve(account, &items, now_ms)?;
        Ok(self.fill(room, items, now_ms).set)
    }

    /// The first half of [`Self::set`]: the portals `items` go to, created if new, or an error
    /// (and nothing set) when the account would exceed its portal count or the node its bytes.
    /// The portals and bytes are held for the set from here: a concurrent set sees them.
    pub fn reserve(
        &self,
        account: &str,
        items: &[NewItem],
        now_ms: i64,
    ) -> Result<Reserved, SetError> {
        let oldest = now_ms - self.limits.item_age_max_ms;
        let bytes: usize = items.iter().map(|item| item.payload.len()).sum();
        let mut shard = lock(self.shard(account));
        let entry = shard.entry(Arc::from(account)).or_default();
        // A portal whose items all aged out no longer counts; it goes unless a reader holds
        // it (and waits on it) or a set is filling it.
        entry
            .portals
            .retain(|_, portal| portal.expire_and_check(oldest) || Arc::strong_count(portal) > 1);
        let count = entry.portals.values().filter(|p| p.is_live()).count();
        let new: std::collections::HashSet<&str> = items
            .iter()
            .map(|item| item.portal.as_str())
            .filter(|id| !entry.portals.get(*id).is_some_and(|p| p.is_live()))
            .collect();
        if count + new.len() > self.limits.portals_per_account {
            return Err(SetError::TooManyPortals(self.limits.portals_per_account));
        }
        let held = self.node_bytes.fetch_add(bytes, Ordering::SeqCst);
        if held + bytes > self.limits.node_bytes_max {
            self.node_bytes.fetch_sub(bytes, Ordering::SeqCst);
            return Err(SetError::NodeFull(self.limits.node_bytes_max));
        }
        let mut targets = Vec::with_capacity(items.len());
        for item in items {
            let portal = entry
                .portals
                .entry(item.portal.0.clone())
                .or_insert_with_key(|id| Portal::new(id.clone(), self.node_bytes.clone()))
                .clone();
            portal.pending.fetch_add(1, Ordering::SeqCst);
            targets.push(portal);
        }
        Ok(Reserved {
            targets,
            bytes,
            node_bytes: self.node_bytes.clone(),
        })
    }

    /// The second half of [`Self::set`]: puts `items` in the portals reserved for them, each
    /// numbered under its ring's lock, so each ring stays in sequence order. Stops where no
    /// number is at hand and answers the rest.
    pub fn fill(&self, mut reserved: Reserved, items: Vec<NewItem>, now_ms: i64) -> Filled {
        let oldest = now_ms - self.limits.item_age_max_ms;
        let mut set = Vec::with_capacity(items.len());
        let mut pairs = items.into_iter().zip(std::mem::take(&mut reserved.targets));
        while let Some((item, portal)) = pairs.next() {
            let mut ring = lock(&portal.ring);
            let Some(seq) = self.numbering.take() else {
                drop(ring);
                let (items, targets): (Vec<NewItem>, Vec<Arc<Portal>>) =
                    std::iter::once((item, portal)).chain(pairs).unzip();
                reserved.targets = targets;
                return Filled {
                    set,
                    rest: Some((reserved, items)),
                };
            };
            // The item's bytes were claimed at reservation: the ring holds them from now.
            reserved.bytes -= item.payload.len();
            let item = Arc::new(Item {
                seq,
                time_ms: now_ms,
                portal: portal.id.clone(),
                payload: item.payload,
            });
            ring.expire(oldest, &portal.node_bytes);
            ring.bytes += item.payload.len();
            ring.items.push_back(item.clone());
            portal.pending.fetch_sub(1, Ordering::SeqCst);
            while ring.items.len() > self.limits.capacity
                || (ring.bytes > self.limits.max_bytes && ring.items.len() > 1)
            {
                ring.drop_front(&portal.node_bytes);
            }
            drop(ring);
            portal.notify.notify_waiters();
            set.push(item);
        }
        Filled { set, rest: None }
    }

    /// The account's portal named `id`, if it exists.
    pub fn portal(&self, account: &str, id: &str) -> Option<Arc<Portal>> {
        lock(self.shard(account))
            .get(account)
            .and_then(|entry| entry.portals.get(id).cloned())
    }

    /// The account's portal named `id`, created empty if it does not exist yet (a reader may
    /// wait for a portal before anything was set). An empty portal does not count against the
    /// account's portal limit and is removed by [`Self::sweep`] once nobody holds it.
    pub fn portal_or_empty(&self, account: &str, id: &PortalId) -> Arc<Portal> {
        let mut shard = lock(self.shard(account));
        let entry = shard.entry(Arc::from(account)).or_default();
        entry
            .portals
            .entry(id.0.clone())
            .or_insert_with_key(|id| Portal::new(id.clone(), self.node_bytes.clone()))
            .clone()
    }

    /// The account's portals, by id.
    pub fn portals_of(&self, account: &str) -> Vec<Arc<Portal>> {
        let shard = lock(self.shard(account));
        let mut portals: Vec<_> = shard
            .get(account)
            .map(|entry| entry.portals.values().cloned().collect())
            .unwrap_or_default();
        portals.sort_by(|a, b| a.id.cmp(&b.id));
        portals
    }

    /// Drops aged items, and portals with nothing left that no reader holds; accounts with no
    /// portals go too. Returns the number of live portals.
    pub fn sweep(&self, now_ms: i64) -> usize {
        let oldest = now_ms - self.limits.item_age_max_ms;
        let mut live = 0;
        for shard in &self.shards {
            let mut shard = lock(shard);
            shard.retain(|_, account| {
                account.portals.retain(|_, portal| {
                    portal.expire_and_check(oldest) || Arc::strong_count(portal) > 1
                });
                live += account.portals.len();
                !account.portals.is_empty()
            });
        }
        live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers from a counter, as the journal would give them.
    #[derive(Debug, Default)]
    struct Counter(std::sync::atomic::AtomicU64);

    impl Numbering for Counter {
        fn take(&self) -> Option<u64> {
            Some(self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1)
        }
    }

    fn portals() -> Portals {
        Portals::new(limits(), Arc::new(Counter::default()))
    }

    fn limits() -> RingLimits {
        RingLimits {
            capacity: 3,
            max_bytes: 1000,
            item_age_max_ms: 10_000,
            portals_per_account: 2,
            node_bytes_max: 12,
        }
    }

    fn item(portal: &str, payload: &str) -> NewItem {
        NewItem {
            portal: PortalId::parse(portal).unwrap(),
            payload: format!("\"{payload}\"").into(),
        }
    }

    #[test]
    fn a_ring_keeps_the_newest_items_and_remembers_what_it_dropped() {
        let portals = portals();
        for n in 0..5 {
            portals
                .set("AC1", vec![item("p", &n.to_string())], 1000)
                .unwrap();
        }
        let slice = portals.portal("AC1", "p").unwrap().read(0, 0);
        let payloads: Vec<_> = slice.items.iter().map(|i| &*i.payload).collect();
        assert_eq!(payloads, ["\"2\"", "\"3\"", "\"4\""]);
        assert_eq!(slice.dropped_upto, 2);
        assert_eq!(slice.newest, 5);
    }

    #[test]
    fn the_portal_limit_refuses_the_whole_set_and_aged_portals_stop_counting() {
        let portals = portals();
        portals
            .set("AC1", vec![item("a", "1"), item("b", "1")], 0)
            .unwrap();
        let refused = portals.set("AC1", vec![item("a", "2"), item("c", "1")], 0);
        assert_eq!(refused.unwrap_err(), SetError::TooManyPortals(2));
        assert_eq!(
            portals.portal("AC1", "a").unwrap().read(0, 0).items.len(),
            1
        );
        // Another account has its own portals.
        portals.set("AC2", vec![item("c", "1")], 0).unwrap();
        // After the age limit, a and b are gone and c can be created.
        portals.set("AC1", vec![item("c", "1")], 10_001).unwrap();
        assert!(portals.portal("AC1", "a").is_none());
    }

    #[test]
    fn a_reserved_portal_counts_before_it_is_filled_and_stops_when_given_up() {
        let portals = portals();
        portals.set("AC1", vec![item("a", "1")], 0).unwrap();
        // A set for `b` is between its reservation and its fill (numbering, an await): a
        // concurrent set for `c` must see `b` and find the account full.
        let b = portals.reserve("AC1", &[item("b", "1")], 0).unwrap();
        let refused = portals.reserve("AC1", &[item("c", "1")], 0);
        assert_eq!(refused.unwrap_err(), SetError::TooManyPortals(2));
        // A reservation given up unfilled frees its place.
        drop(b);
        let c = portals.reserve("AC1", &[item("c", "1")], 0).unwrap();
        let filled = portals.fill(c, vec![item("c", "1")], 0);
        assert_eq!(filled.set.len(), 1);
        assert!(portals.set("AC1", vec![item("b", "1")], 0).is_err());
    }

    #[test]
    fn the_node_holds_at_most_its_bytes_and_gets_them_back_as_items_go() {
        let portals = portals();
        // Each payload is 3 bytes with its quotes; the node holds 12.
        for account in ["AC1", "AC2"] {
            portals
                .set(account, vec![item("a", "1"), item("b", "2")], 0)
                .unwrap();
        }
        assert_eq!(portals.bytes(), 12);
        let refused = portals.set("AC3", vec![item("a", "1")], 0);
        assert_eq!(refused.unwrap_err(), SetError::NodeFull(12));
        assert_eq!(portals.bytes(), 12, "a refused set claims nothing");
        // Aged items give their bytes back.
        portals.sweep(20_000);
        assert_eq!(portals.bytes(), 0);
        portals.set("AC3", vec![item("a", "1")], 20_000).unwrap();
        assert_eq!(portals.bytes(), 3);
        // So does an item pushed out of its ring (capacity 3: the fourth drops the first).
        for n in 0..3 {
            portals
                .set("AC3", vec![item("a", &n.to_string())], 20_000)
                .unwrap();
        }
        assert_eq!(portals.bytes(), 9);
    }

    #[tokio::test]
    async fn a_registered_waiter_sees_a_publish_that_happens_before_it_awaits() {
        let portals = portals();
        let portal = portals.portal_or_empty("AC1", &PortalId::parse("p").unwrap());
        let mut waiter = portal.waiter();
        waiter.register();
        assert!(portal.read(0, 0).items.is_empty());
        portals.set("AC1", vec![item("p", "x")], 0).unwrap();
        // Completes at once: the publish happened after registration.
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken");
        assert_eq!(portal.read(0, 0).items.len(), 1);
    }

    #[test]
    fn sweep_removes_empty_unheld_portals() {
        let portals = portals();
        portals.set("AC1", vec![item("p", "x")], 0).unwrap();
        let held = portals.portal_or_empty("AC1", &PortalId::parse("q").unwrap());
        assert_eq!(portals.sweep(20_000), 1, "q is held by a reader");
        drop(held);
        assert_eq!(portals.sweep(20_000), 0);
    }
}
