//! Rate limiting: throttling of failed logins and failed token requests, per client IP and per
//! account (the identity provider), and of calls per client IP (signed endpoints).
//!
//! Each key has a leaky bucket of failures: a failure adds one, and one leaks away every
//! `refill` interval. A key whose bucket holds `burst` failures is refused (429 with
//! `Retry-After`) until one has leaked away.
//!
//! Two kinds of key:
//!
//! - **The client IP.** Stops one address guessing many passwords or secrets, whatever the
//!   account.
//! - **The account** (a user name or a client id). Stops many addresses guessing one account.
//!   An attacker could fill this bucket on purpose to lock the owner out, so it applies only
//!   when the recent failures come from at least `account_min_addresses` networks (one address
//!   alone is held by its own bucket), and never to an address that logged in to that account
//!   successfully within `trust_seconds`: the owner keeps working from where they worked before,
//!   and only a distributed attack makes a new address wait.
//!
//! Memory is bounded: each map holds at most `max_entries`; empty buckets and lapsed trust are
//! dropped first, then arbitrary entries.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// `[idp.throttle]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleSettings {
    /// Failures one client IP may have before it is refused.
    pub ip_burst: u32,
    /// Seconds for one failure of an IP to be forgotten.
    pub ip_refill_seconds: u64,
    /// Failures one account may have (from untrusted addresses) before it is refused.
    pub account_burst: u32,
    /// Seconds for one failure of an account to be forgotten.
    pub account_refill_seconds: u64,
    /// How many different networks must have failed at an account recently before its limit
    /// applies (so a single attacking address cannot lock an account).
    pub account_min_addresses: usize,
    /// How long a successful login trusts its address for that account.
    pub trust_seconds: u64,
    /// The most keys tracked per kind.
    pub max_entries: usize,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            ip_burst: 10,
            ip_refill_seconds: 6,
            account_burst: 20,
            account_refill_seconds: 30,
            account_min_addresses: 3,
            trust_seconds: 30 * 86_400,
            max_entries: 65_536,
        }
    }
}

#[derive(Debug, Clone)]
struct Bucket {
    level: f64,
    updated: Instant,
    /// For an account: the networks that failed at it recently (at most [`NETWORKS_KEPT`]).
    networks: Vec<(IpAddr, Instant)>,
}

/// How many recent failing networks an account remembers.
const NETWORKS_KEPT: usize = 8;

impl Bucket {
    fn level_at(&self, now: Instant, refill: Duration) -> f64 {
        let leaked =
            now.saturating_duration_since(self.updated).as_secs_f64() / refill.as_secs_f64();
        (self.level - leaked).max(0.0)
    }
}

#[derive(Debug, Default)]
struct State {
    ips: HashMap<IpAddr, Bucket>,
    accounts: HashMap<String, Bucket>,
    trusted: HashMap<(String, IpAddr), Instant>,
}

/// The throttle of one identity provider.
#[derive(Debug)]
pub struct Throttle {
    settings: ThrottleSettings,
    state: Mutex<State>,
}

/// The address a bucket counts: IPv4 as is, IPv6 by its /64 (one subscriber's prefix), so one
/// network cannot spread its attempts over many addresses.
fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
        v4 => v4,
    }
}

/// An account key of bounded size: long names are replaced by their SHA-256.
fn account_key(account: &str) -> std::borrow::Cow<'_, str> {
    if account.len() <= 160 {
        return account.into();
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, account.as_bytes());
    crate::jose::jws::encode(digest.as_ref()).into()
}

/// Refused: retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled(pub Duration);

impl Throttle {
    /// A throttle with `settings`.
    pub fn new(settings: ThrottleSettings) -> Self {
        Self {
            settings,
            state: Mutex::default(),
        }
    }

    fn ip_refill(&self) -> Duration {
        Duration::from_secs(self.settings.ip_refill_seconds.max(1))
    }

    fn account_refill(&self) -> Duration {
        Duration::from_secs(self.settings.account_refill_seconds.max(1))
    }

    /// Whether `ip` may try to authenticate as `account` now.
    pub fn check(&self, ip: IpAddr, account: &str, now: Instant) -> Result<(), Throttled> {
        let (ip, account) = (network(ip), account_key(account));
        let account = account.as_ref();
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let wait = |bucket: Option<&Bucket>, burst: u32, refill: Duration| {
            let level = bucket.map_or(0.0, |b| b.level_at(now, refill));
            let excess = level - f64::from(burst) + 1.0;
            (excess > 0.0).then(|| Duration::from_secs_f64(excess * refill.as_secs_f64()))
        };
        if let Some(after) = wait(state.ips.get(&ip), self.settings.ip_burst, self.ip_refill()) {
            return Err(Throttled(after));
        }
        let account_bucket = state.accounts.get(account);
        let window = self.account_window();
        let networks = account_bucket.map_or(0, |b| {
            b.networks
                .iter()
                .filter(|(_, at)| now.saturating_duration_since(*at) < window)
                .count()
        });
        if networks >= self.settings.account_min_addresses.max(1)
            && !self.is_trusted(&state, account, ip, now)
            && let Some(after) = wait(
                account_bucket,
                self.settings.account_burst,
                self.account_refill(),
            )
        {
            return Err(Throttled(after));
        }
        Ok(())
    }

    /// Counts one attempt of `ip`, whatever its outcome (a rate limit per address, on the same
    /// buckets): refused, and not counted, once the bucket holds `ip_burst`.
    pub fn take(&self, ip: IpAddr, now: Instant) -> Result<(), Throttled> {
        let ip = network(ip);
        let refill = self.ip_refill();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let level = state.ips.get(&ip).map_or(0.0, |b| b.level_at(now, refill));
        let excess = level - f64::from(self.settings.ip_burst) + 1.0;
        if excess > 0.0 {
            return Err(Throttled(Duration::from_secs_f64(
                excess * refill.as_secs_f64(),
            )));
        }
        add(&mut state.ips, ip, now, refill, self.settings.max_entries);
        Ok(())
    }

    /// Records a failed attempt of `ip` at `account`.
    pub fn failed(&self, ip: IpAddr, account: &str, now: Instant) {
        let (ip, account) = (network(ip), account_key(account));
        let account = account.as_ref();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let trusted = self.is_trusted(&state, account, ip, now);
        let (ip_refill, account_refill) = (self.ip_refill(), self.account_refill());
        let max = self.settings.max_entries;
        add(&mut state.ips, ip, now, ip_refill, max);
        if !trusted {
            let window = self.account_window();
            let bucket = add(
                &mut state.accounts,
                account.to_owned(),
                now,
                account_refill,
                max,
            );
            bucket
                .networks
                .retain(|(net, at)| *net != ip && now.saturating_duration_since(*at) < window);
            if bucket.networks.len() >= NETWORKS_KEPT {
                bucket.networks.remove(0);
            }
            bucket.networks.push((ip, now));
        }
    }

    /// How long a failing network counts toward an account's distinct networks: until a full
    /// bucket would have leaked away.
    fn account_window(&self) -> Duration {
        self.account_refill() * self.settings.account_burst.max(1)
    }

    /// Records a successful login of `ip` to `account`: the address is trusted for it.
    pub fn succeeded(&self, ip: IpAddr, account: &str, now: Instant) {
        let (ip, account) = (network(ip), account_key(account));
        let account = account.as_ref();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let window = Duration::from_secs(self.settings.trust_seconds);
        if state.trusted.len() >= self.settings.max_entries {
            state
                .trusted
                .retain(|_, at| now.saturating_duration_since(*at) < window);
            // The oldest trust goes first.
            shrink(&mut state.trusted, self.settings.max_entries, |at| {
                -now.saturating_duration_since(*at).as_secs_f64()
            });
        }
        state.trusted.insert((account.to_owned(), ip), now);
    }

    fn is_trusted(&self, state: &State, account: &str, ip: IpAddr, now: Instant) -> bool {
        let window = Duration::from_secs(self.settings.trust_seconds);
        // The key is (String, IpAddr); a lookup needs an owned String, but only when tracked.
        !state.trusted.is_empty()
            && state
                .trusted
                .get(&(account.to_owned(), ip))
                .is_some_and(|at| now.saturating_duration_since(*at) < window)
    }
}

/// Adds a failure to `key`'s bucket, keeping the map within `max` entries.
fn add<K: std::hash::Hash + Eq + Clone>(
    map: &mut HashMap<K, Bucket>,
    key: K,
    now: Instant,
    refill: Duration,
    max: usize,
) -> &mut Bucket {
    if !map.contains_key(&key) && map.len() >= max {
        map.retain(|_, bucket| bucket.level_at(now, refill) > 0.0);
        // The emptiest buckets go first: a flood of new keys cannot flush a full one (an
        // attacker's own, or the account it is guessing at).
        shrink(map, max, |bucket| bucket.level_at(now, refill));
    }
    let bucket = map.entry(key).or_insert(Bucket {
        level: 0.0,
        updated: now,
        networks: Vec::new(),
    });
    bucket.level = bucket.level_at(now, refill) + 1.0;
    bucket.updated = now;
    bucket
}

/// Drops the entries that `keep` scores lowest until the map is below 90% of `max`.
fn shrink<K: std::hash::Hash + Eq + Clone, V>(
    map: &mut HashMap<K, V>,
    max: usize,
    keep: impl Fn(&V) -> f64,
) {
    let target = max - max / 10;
    if map.len() < max {
        return;
    }
    let excess = map.len().saturating_sub(target.max(1) - 1);
    let mut scored: Vec<(f64, &K)> = map.iter().map(|(key, value)| (keep(value), key)).collect();
    if excess < scored.len() {
        scored.select_nth_unstable_by(excess, |a, b| a.0.total_cmp(&b.0));
    }
    let victims: Vec<K> = scored[..excess.min(scored.len())]
        .iter()
        .map(|(_, key)| (*key).clone())
        .collect();
    for key in victims {
        map.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        Throttle::new(ThrottleSettings {
            ip_burst: 3,
            ip_refill_seconds: 10,
            account_burst: 5,
            account_refill_seconds: 60,
            account_min_addresses: 3,
            trust_seconds: 3600,
            max_entries: 100,
        })
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn a_flood_of_new_addresses_cannot_flush_a_full_bucket() {
        let t = throttle();
        let now = Instant::now();
        for _ in 0..3 {
            t.failed(A, "someone", now);
        }
        assert!(t.check(A, "someone", now).is_err());
        for n in 0..1000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            t.failed(ip, &format!("other{n}"), now);
        }
        assert!(t.check(A, "someone", now).is_err(), "still refused");
    }

    #[test]
    fn an_ip_is_refused_after_its_burst_and_admitted_after_one_refill() {
        let t = throttle();
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(t.check(A, "alice", now), Ok(()));
            t.failed(A, "alice", now);
        }
        assert_eq!(
            t.check(A, "bob", now),
            Err(Throttled(Duration::from_secs(10)))
        );
        assert_eq!(
            t.check(B, "bob", now),
            Ok(()),
            "other addresses are not affected"
        );
        let later = now + Duration::from_secs(10);
        assert_eq!(t.check(A, "bob", later), Ok(()));
    }

    #[test]
    fn an_account_is_refused_for_new_addresses_but_not_for_trusted_ones() {
        let t = throttle();
        let now = Instant::now();
        t.succeeded(A, "alice", now);
        // An attacker spreads failures over many addresses.
        for i in 0..5u8 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, i));
            t.failed(ip, "alice", now);
        }
        assert!(t.check(B, "alice", now).is_err(), "a new address waits");
        assert_eq!(
            t.check(A, "alice", now),
            Ok(()),
            "the owner's address is exempt"
        );
        assert_eq!(
            t.check(B, "bob", now),
            Ok(()),
            "other accounts are not affected"
        );
    }

    #[test]
    fn one_address_alone_cannot_lock_an_account() {
        let t = Throttle::new(ThrottleSettings {
            ip_burst: 1000,
            ..throttle().settings
        });
        let now = Instant::now();
        for _ in 0..50 {
            t.failed(A, "alice", now);
        }
        assert_eq!(t.check(B, "alice", now), Ok(()), "the owner's new address");
        let c: IpAddr = std::net::Ipv4Addr::new(203, 0, 113, 9).into();
        t.failed(B, "alice", now);
        t.failed(c, "alice", now);
        let d: IpAddr = std::net::Ipv4Addr::new(203, 0, 113, 10).into();
        assert!(
            t.check(d, "alice", now).is_err(),
            "three networks: the limit applies"
        );
    }

    #[test]
    fn an_ipv6_network_counts_as_one_address_and_long_names_are_bounded() {
        let t = throttle();
        let now = Instant::now();
        for i in 0..3u16 {
            let ip: IpAddr = std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, i, i, i, i).into();
            t.failed(ip, "alice", now);
        }
        let other: IpAddr = std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 9, 9, 9, 9).into();
        assert!(t.check(other, "bob", now).is_err(), "the same /64");
        let next: IpAddr = std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1).into();
        assert_eq!(t.check(next, "bob", now), Ok(()), "another /64");
        let long = "x".repeat(100_000);
        t.failed(next, &long, now);
        let state = t.state.lock().expect("lock");
        assert!(state.accounts.keys().all(|k| k.len() <= 160));
    }

    #[test]
    fn maps_stay_bounded_under_a_flood_of_addresses() {
        let t = throttle();
        let now = Instant::now();
        for i in 0..10_000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(i));
            t.failed(ip, &format!("user{i}"), now);
            t.succeeded(ip, &format!("user{i}"), now);
        }
        let state = t.state.lock().expect("lock");
        assert!(state.ips.len() <= 100, "{}", state.ips.len());
        assert!(state.accounts.len() <= 100);
        assert!(state.trusted.len() <= 100);
    }
}
