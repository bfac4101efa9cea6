//! Login sessions, per-key request rates and per-account monthly usage: all in memory.
//!
//! Sessions are node-local, as the original service's were (its load balancer pinned a client
//! to a node with the `AWSALBAPP-0` cookie); a session lives while it is used at least once per
//! `session_idle_seconds`. Monthly usage is counted in memory and added to the store by
//! [`Usage::flush`], so every node's requests count and a restart forgets at most one flush
//! interval.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::access::{Actor, XrtcActor};
use crate::portal::lock;

use crate::secrets::Hashed;

const SHARDS: usize = 16;

/// One login.
#[derive(Debug)]
pub struct Session {
    /// The account.
    pub account: super::AccountId,
    /// SHA-256 of the API key it logged in with.
    pub key: [u8; 32],
    /// The client address it is bound to.
    pub ip: IpAddr,
    /// The SHA-256 of its cookie (its key in [`Sessions`]).
    cookie: [u8; 32],
    last_used_ms: AtomicI64,
    /// Per portal: the newest item this session has been given (or skipped). Only portals
    /// holding items need one; `Xrtc::collect` keeps it at most twice the account's portal
    /// count.
    pub cursors: Mutex<HashMap<Arc<str>, u64>>,
}

impl Session {
    /// The session as an actor: its account, and its key named by a prefix of its hash.
    pub fn actor(&self) -> Actor {
        let key = self.key[..6].iter().map(|b| format!("{b:02x}")).collect();
        Actor::Xrtc(Arc::new(XrtcActor {
            account: self.account.shared().clone(),
            key,
        }))
    }

    /// Marks the session used at `now_ms`.
    pub fn touch(&self, now_ms: i64) {
        self.last_used_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    fn idle_since(&self) -> i64 {
        self.last_used_ms.load(Ordering::Relaxed)
    }
}

/// Why a session cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRefused {
    /// No such session (never, or expired and swept).
    Unknown,
    /// Unused for longer than the idle limit.
    Expired,
    /// Used from another address than the one that logged in.
    OtherAddress,
}

/// Every session on this node, by the SHA-256 of its cookie, and each account's sessions.
#[derive(Debug)]
pub struct Sessions {
    shards: Vec<Mutex<HashMap<[u8; 32], Arc<Session>>>>,
    count: AtomicUsize,
    max: usize,
    per_account: usize,
    idle_ms: i64,
    /// Each account's sessions (locked before a shard, never inside one).
    accounts: Mutex<HashMap<Arc<str>, Vec<Weak<Session>>>>,
}

impl Sessions {
    /// No sessions; at most `max` at once and `per_account` per account, each expiring after
    /// `idle_ms` unused.
    pub fn new(max: usize, per_account: usize, idle_ms: i64) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            count: AtomicUsize::new(0),
            max,
            per_account,
            idle_ms,
            accounts: Mutex::default(),
        }
    }

    /// Ends `session` if it is still open; answers whether it was.
    fn end(&self, session: &Session) -> bool {
        let mut shard = lock(self.shard(&session.cookie));
        let held = shard
            .get(&session.cookie)
            .is_some_and(|held| std::ptr::eq(Arc::as_ptr(held), session));
        if held {
            shard.remove(&session.cookie);
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        held
    }

    /// Ends every session logged in with the key whose hash is `key` (deleted or disabled);
    /// answers how many.
    pub fn end_key(&self, key: &[u8; 32]) -> usize {
        let mut ended = 0;
        for shard in &self.shards {
            let mut shard = lock(shard);
            let before = shard.len();
            shard.retain(|_, session| session.key != *key);
            ended += before - shard.len();
        }
        self.count.fetch_sub(ended, Ordering::Relaxed);
        ended
    }

    /// The keys open sessions logged in with.
    pub fn keys(&self) -> HashSet<[u8; 32]> {
        let mut keys = HashSet::new();
        for shard in &self.shards {
            keys.extend(lock(shard).values().map(|session| session.key));
        }
        keys
    }

    fn shard(&self, hash: &[u8; 32]) -> &Mutex<HashMap<[u8; 32], Arc<Session>>> {
        &self.shards[usize::from(hash[0]) % SHARDS]
    }

    /// Opens a session and returns its cookie value, or `None` when the node holds the most
    /// sessions allowed. An account with `per_account` sessions loses its least recently used
    /// one first (a device that logs in again after a crash is not locked out).
    pub fn open(
        &self,
        account: super::AccountId,
        key: [u8; 32],
        ip: IpAddr,
        now_ms: i64,
    ) -> Option<String> {
        let mut accounts = lock(&self.accounts);
        let own = accounts.entry(account.shared().clone()).or_default();
        own.retain(|session| {
            session.upgrade().is_some_and(|session| {
                now_ms - session.idle_since() <= self.idle_ms && self.holds_now(&session)
            })
        });
        if own.len() >= self.per_account {
            let least_recent = own
                .iter()
                .enumerate()
                .filter_map(|(at, session)| session.upgrade().map(|session| (at, session)))
                .min_by_key(|(_, session)| session.idle_since());
            if let Some((at, session)) = least_recent {
                self.end(&session);
                own.swap_remove(at);
            }
        }
        if self.count.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let cookie = crate::secrets::generate();
        let hash = Hashed::of(&cookie).0;
        let session = Arc::new(Session {
            account,
            key,
            ip,
            cookie: hash,
            last_used_ms: AtomicI64::new(now_ms),
            cursors: Mutex::default(),
        });
        own.push(Arc::downgrade(&session));
        lock(self.shard(&hash)).insert(hash, session);
        Some(cookie)
    }

    /// Whether `session` is the one its cookie names now.
    fn holds_now(&self, session: &Arc<Session>) -> bool {
        lock(self.shard(&session.cookie))
            .get(&session.cookie)
            .is_some_and(|held| Arc::ptr_eq(held, session))
    }

    /// The session of `cookie`, used now from `ip`. A use from another address is refused and
    /// the session left as it is (ending it would let whoever took the cookie log its owner
    /// out).
    pub fn use_session(
        &self,
        cookie: &str,
        ip: IpAddr,
        now_ms: i64,
    ) -> Result<Arc<Session>, SessionRefused> {
        let hash = Hashed::of(cookie).0;
        let mut shard = lock(self.shard(&hash));
        let session = shard.get(&hash).ok_or(SessionRefused::Unknown)?.clone();
        if now_ms - session.idle_since() > self.idle_ms {
            shard.remove(&hash);
            self.count.fetch_sub(1, Ordering::Relaxed);
            return Err(SessionRefused::Expired);
        }
        if session.ip != ip {
            return Err(SessionRefused::OtherAddress);
        }
        session.touch(now_ms);
        Ok(session)
    }

    /// Whether `session` is still open at `now_ms` (not ended, not idle too long); a stream that
    /// asks is using it, so it counts as use.
    pub fn holds(&self, session: &Arc<Session>, now_ms: i64) -> bool {
        let shard = lock(self.shard(&session.cookie));
        let open = shard
            .get(&session.cookie)
            .is_some_and(|held| Arc::ptr_eq(held, session))
            && now_ms - session.idle_since() <= self.idle_ms;
        if open {
            session.touch(now_ms);
        }
        open
    }

    /// Removes expired sessions; returns how many are left.
    pub fn sweep(&self, now_ms: i64) -> usize {
        for shard in &self.shards {
            let mut shard = lock(shard);
            let before = shard.len();
            shard.retain(|_, session| now_ms - session.idle_since() <= self.idle_ms);
            self.count
                .fetch_sub(before - shard.len(), Ordering::Relaxed);
        }
        lock(&self.accounts).retain(|_, own| {
            own.retain(|session| session.strong_count() > 0);
            !own.is_empty()
        });
        self.count.load(Ordering::Relaxed)
    }
}

/// Token buckets per API key: `rate` requests per second, bursts of `rate`.
#[derive(Debug)]
pub struct Rates {
    buckets: Mutex<HashMap<[u8; 32], Bucket>>,
    rate: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

impl Rates {
    /// `rate` requests per second per key.
    pub fn new(rate: u32) -> Self {
        Self {
            buckets: Mutex::default(),
            rate: f64::from(rate.max(1)),
        }
    }

    /// Takes one request from `key`'s bucket, or says how many milliseconds until one is there.
    pub fn take(&self, key: &[u8; 32], now_ms: i64) -> Result<(), u64> {
        let mut buckets = lock(&self.buckets);
        let bucket = buckets.entry(*key).or_insert(Bucket {
            tokens: self.rate,
            at_ms: now_ms,
        });
        let elapsed = (now_ms - bucket.at_ms).max(0) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.rate);
        bucket.at_ms = bucket.at_ms.max(now_ms);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.rate * 1000.0).ceil() as u64)
        }
    }

    /// Forgets full buckets (their keys have been idle for at least a second).
    pub fn sweep(&self, now_ms: i64) {
        let rate = self.rate;
        lock(&self.buckets).retain(|_, bucket| {
            bucket.tokens + (now_ms - bucket.at_ms).max(0) as f64 / 1000.0 * rate < rate
        });
    }
}

/// Requests counted but not yet stored: account, month, count.
pub type Pending = (Arc<str>, String, i64);

/// Requests per account and calendar month (UTC).
#[derive(Debug)]
pub struct Usage {
    counters: Mutex<HashMap<Arc<str>, Counter>>,
    touched: Mutex<HashSet<[u8; 32]>>,
    limit: i64,
}

#[derive(Debug, Clone)]
struct Counter {
    month: String,
    /// The store's total when last read or flushed.
    stored: i64,
    /// Counted here since.
    pending: i64,
}

impl Usage {
    /// At most `limit` requests per account and month.
    pub fn new(limit: u64) -> Self {
        Self {
            counters: Mutex::default(),
            touched: Mutex::default(),
            limit: i64::try_from(limit).unwrap_or(i64::MAX),
        }
    }

    /// Sets what the store says `account` used in `month` (at login).
    pub fn load(&self, account: &str, month: &str, stored: i64) {
        let mut counters = lock(&self.counters);
        let counter = counters.entry(Arc::from(account)).or_insert(Counter {
            month: month.to_owned(),
            stored,
            pending: 0,
        });
        if counter.month != month {
            *counter = Counter {
                month: month.to_owned(),
                stored,
                pending: 0,
            };
        } else {
            counter.stored = counter.stored.max(stored);
        }
    }

    /// Counts one request by `account` with `key` in `month`; `false` when the month's limit is
    /// reached (the request is not counted).
    pub fn count(&self, account: &Arc<str>, key: &[u8; 32], month: &str) -> bool {
        {
            let mut counters = lock(&self.counters);
            let counter = counters.entry(account.clone()).or_insert(Counter {
                month: month.to_owned(),
                stored: 0,
                pending: 0,
            });
            if counter.month != month {
                *counter = Counter {
                    month: month.to_owned(),
                    stored: 0,
                    pending: 0,
                };
            }
            if counter.stored + counter.pending >= self.limit {
                return false;
            }
            counter.pending += 1;
        }
        lock(&self.touched).insert(*key);
        true
    }

    /// Takes what was counted since the last flush: per account and month the requests, and
    /// the keys used.
    pub fn take_pending(&self) -> (Vec<Pending>, Vec<Vec<u8>>) {
        let mut counters = lock(&self.counters);
        let deltas = counters
            .iter_mut()
            .filter(|(_, counter)| counter.pending > 0)
            .map(|(account, counter)| {
                let delta = counter.pending;
                counter.stored += delta;
                counter.pending = 0;
                (account.clone(), counter.month.clone(), delta)
            })
            .collect();
        let keys = lock(&self.touched)
            .drain()
            .map(|key| key.to_vec())
            .collect();
        (deltas, keys)
    }

    /// Records the store's total after a flush (it includes other nodes' requests).
    pub fn stored(&self, account: &str, month: &str, total: i64) {
        if let Some(counter) = lock(&self.counters).get_mut(account)
            && counter.month == month
        {
            counter.stored = counter.stored.max(total);
        }
    }

    /// Forgets counters of months other than `month`.
    pub fn sweep(&self, month: &str) {
        lock(&self.counters).retain(|_, counter| counter.month == month || counter.pending > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> super::super::AccountId {
        super::super::AccountId::parse("AC0000000000000001").unwrap()
    }

    #[test]
    fn a_bucket_allows_its_rate_then_says_when_to_retry() {
        let rates = Rates::new(20);
        let key = [1; 32];
        for _ in 0..20 {
            rates.take(&key, 1000).unwrap();
        }
        assert_eq!(rates.take(&key, 1000), Err(50));
        rates.take(&key, 1050).unwrap();
        assert!(rates.take(&[2; 32], 1050).is_ok(), "keys are separate");
    }

    #[test]
    fn usage_stops_at_the_limit_and_starts_again_next_month() {
        let usage = Usage::new(3);
        let account: Arc<str> = Arc::from("AC1");
        usage.load("AC1", "2026-11", 1);
        assert!(usage.count(&account, &[0; 32], "2026-11"));
        assert!(usage.count(&account, &[0; 32], "2026-11"));
        assert!(!usage.count(&account, &[0; 32], "2026-11"));
        let (deltas, keys) = usage.take_pending();
        assert_eq!(deltas, vec![(account.clone(), "2026-11".to_owned(), 2)]);
        assert_eq!(keys.len(), 1);
        assert!(usage.count(&account, &[0; 32], "2026-12"));
    }

    #[test]
    fn sessions_expire_when_idle_and_are_bound_to_their_address() {
        let sessions = Sessions::new(2, 10, 60_000);
        let here: IpAddr = [127, 0, 0, 1].into();
        let cookie = sessions.open(account(), [0; 32], here, 0).unwrap();
        assert!(sessions.use_session(&cookie, here, 59_000).is_ok());
        assert_eq!(
            sessions
                .use_session(&cookie, [127, 0, 0, 2].into(), 60_000)
                .err(),
            Some(SessionRefused::OtherAddress)
        );
        assert!(sessions.use_session(&cookie, here, 119_000).is_ok());
        assert_eq!(
            sessions.use_session(&cookie, here, 179_001).err(),
            Some(SessionRefused::Expired)
        );
        assert_eq!(
            sessions.use_session(&cookie, here, 179_001).err(),
            Some(SessionRefused::Unknown)
        );
        sessions.open(account(), [0; 32], here, 0).unwrap();
        sessions.open(account(), [0; 32], here, 0).unwrap();
        assert!(
            sessions.open(account(), [0; 32], here, 0).is_none(),
            "at most two"
        );
        assert_eq!(sessions.sweep(60_001), 0);
    }

    #[test]
    fn an_account_holds_its_share_of_sessions_and_a_new_login_ends_its_least_recent() {
        let sessions = Sessions::new(100, 2, 60_000);
        let here: IpAddr = [127, 0, 0, 1].into();
        let first = sessions.open(account(), [1; 32], here, 0).unwrap();
        let second = sessions.open(account(), [1; 32], here, 10).unwrap();
        assert!(
            sessions.use_session(&first, here, 20).is_ok(),
            "first used last"
        );
        let third = sessions.open(account(), [2; 32], here, 30).unwrap();
        assert_eq!(
            sessions.use_session(&second, here, 40).err(),
            Some(SessionRefused::Unknown),
            "the least recently used session ended"
        );
        assert!(sessions.use_session(&first, here, 40).is_ok());
        assert!(sessions.use_session(&third, here, 40).is_ok());
        assert_eq!(sessions.sweep(40), 2);
        // Ending a key ends its sessions, and only those.
        assert_eq!(sessions.keys(), HashSet::from([[1; 32], [2; 32]]));
        assert_eq!(sessions.end_key(&[1; 32]), 1);
        assert!(sessions.use_session(&first, here, 50).is_err());
        assert!(sessions.use_session(&third, here, 50).is_ok());
        assert_eq!(sessions.sweep(50), 1);
    }
}
