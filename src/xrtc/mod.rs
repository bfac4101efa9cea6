//! XRTC: accounts and API keys by two-step e-mail registration, session login, and portals
//! with set/get, as the XRTC seed specifies them. HTTP lives in `api::xrtc`; this module is the
//! domain: registration, login, sessions and limits, and what a get returns.

mod error;
pub mod lenient;
mod registration;
pub mod session;
mod settings;

pub use error::{XrtcError, code, group};
pub use settings::XrtcSettings;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use time::OffsetDateTime;

use crate::access::{Actor, Credential};
use crate::clock::Clock;
use crate::events::{Event, EventPayload, Journal, Topic};
use crate::mail::{MailError, Mailer, Message};
use crate::portal::{Item, NewItem, Portal, Portals, RingLimits, SetError};
use crate::secrets::Hashed;
use crate::store::{
    KeyRow, LoginCheck, RegistrationCounts, RegistrationRow, StartRefused, Store, StoreError,
};
use crate::timefmt::unix_ms;
use session::{Rates, Session, SessionRefused, Sessions, Usage};

fn month_of(time: OffsetDateTime) -> String {
    format!("{:04}-{:02}", time.year(), u8::from(time.month()))
}

/// An XRTC account id: `AC` and 16 digits, checked once where it comes in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountId(Arc<str>);

impl AccountId {
    /// Parses an account id.
    pub fn parse(id: &str) -> Option<Self> {
        let ok =
            id.len() == 18 && id.starts_with("AC") && id[2..].bytes().all(|b| b.is_ascii_digit());
        ok.then(|| Self(Arc::from(id)))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id, shared.
    pub fn shared(&self) -> &Arc<str> {
        &self.0
    }
}

impl std::ops::Deref for AccountId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `n` characters drawn uniformly from `alphabet` with a CSPRNG.
fn random_from(alphabet: &[u8], n: usize) -> String {
    let rng = SystemRandom::new();
    // Rejection sampling: bytes at or above the largest multiple of the alphabet's size are
    // discarded, so every character is equally likely.
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        rng.fill(&mut buf)
            .expect("the system random generator failed");
        for &b in &buf {
            if usize::from(b) < limit && out.len() < n {
                out.push(char::from(alphabet[usize::from(b) % alphabet.len()]));
            }
        }
    }
    out
}

const DIGITS: &[u8] = b"0123456789";
const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A new API key: 32 alphanumeric characters (about 190 bits), the seed's format.
pub fn new_api_key() -> String {
    random_from(ALPHANUMERIC, 32)
}

fn code_hash(token: &str, code: &str) -> Hashed {
    Hashed::of(&format!("{token}:{code}"))
}

fn refused_set(error: SetError) -> XrtcError {
    match error {
        SetError::TooManyPortals(max) => XrtcError::new(
            group::APPLICATION,
            code::TOO_MANY_PORTALS,
            format!(
                "The account has {max} portals already, the most allowed; use one of them or \
                 wait until one's items expire."
            ),
        ),
        SetError::NodeFull(max) => XrtcError::new(
            group::SYSTEM,
            code::PORTALS_FULL,
            format!(
                "The server's portals hold {max} bytes, the most they may (xrtc.portal_bytes_max); \
                 try again once older items expire."
            ),
        )
        .retry_after(Duration::from_secs(5)),
    }
}

/// Which items a get asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Newest first; the oldest are dropped when the answer is full.
    Lifo,
    /// Oldest first; the newest wait for the next get.
    Fifo,
}

/// One named portal of a get.
#[derive(Debug, Clone)]
pub struct PortalAsk {
    /// The portal.
    pub portal: Arc<Portal>,
    /// Only items after this server timestamp; otherwise after the session's cursor.
    pub since_ms: Option<i64>,
}

/// An item rendered for a get answer, with its length.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The item.
    pub item: Arc<Item>,
    /// `{"portalid":…,"payload":…,"servertimestamp":…}`.
    pub json: String,
}

/// An item as it appears in a get answer.
pub fn render(item: &Arc<Item>) -> Rendered {
    Rendered {
        json: format!(
            "{{\"portalid\":\"{}\",\"payload\":{},\"servertimestamp\":{}}}",
            item.portal, item.payload, item.time_ms
        ),
        item: item.clone(),
    }
}

/// The answer body for `items`: `{"items":[…]}`, or `{}` when there are none.
pub fn answer(items: &[Rendered]) -> String {
    if items.is_empty() {
        return "{}".into();
    }
    let mut out = String::from("{\"items\":[");
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&item.json);
    }
    out.push_str("]}");
    out
}

/// XRTC on this node.
#[derive(Debug)]
pub struct Xrtc {
    store: Store,
    clock: Arc<dyn Clock>,
    mailer: Mailer,
    /// Numbers items and publishes their events (and queues their webhooks).
    journal: Arc<Journal>,
    settings: XrtcSettings,
    /// The portals.
    pub portals: Arc<Portals>,
    sessions: Sessions,
    rates: Rates,
    usage: Usage,
}

impl Xrtc {
    /// XRTC over `store`, sending mail with `mailer`, numbering and publishing items through
    /// `journal`.
    pub fn new(
        settings: XrtcSettings,
        store: Store,
        clock: Arc<dyn Clock>,
        mailer: Mailer,
        journal: Arc<Journal>,
    ) -> Self {
        let portals = Arc::new(Portals::new(
            RingLimits {
                capacity: settings.ring_capacity,
                max_bytes: settings.ring_bytes_max,
                item_age_max_ms: (settings.item_age_max_seconds * 1000) as i64,
                portals_per_account: settings.portals_count_max,
                node_bytes_max: settings.portal_bytes_max,
            },
            journal.clone(),
        ));
        Self {
            sessions: Sessions::new(
                settings.max_sessions,
                settings.sessions_per_account_max,
                (settings.session_idle_seconds * 1000) as i64,
            ),
            rates: Rates::new(settings.requests_per_second),
            usage: Usage::new(settings.requests_per_month),
            portals,
            store,
            clock,
            mailer,
            journal,
            settings,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &XrtcSettings {
        &self.settings
    }

    /// Now, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        unix_ms(self.clock.now())
    }

    /// Logs in; answers the session cookie and the server time (ms).
    pub async fn login(
        &self,
        account_id: &str,
        api_key: &str,
        client_ip: IpAddr,
    ) -> Result<(String, i64), XrtcError> {
        let now = self.clock.now();
        let bad = || {
            XrtcError::new(
                group::LOGIN,
                code::INVALID_CREDENTIALS,
                "Wrong account id or API key, or the API key is disabled.",
            )
        };
        if api_key.len() != 32 || !api_key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad());
        }
        let key = Hashed::of(api_key).0;
        let s = &self.settings;
        let check = self
            .store
            .xrtc_login(
                &key,
                account_id,
                now,
                (s.login_timeout_ms * 1000) as i64,
                i64::from(s.api_key_age_max_days) * 86_400 * 1_000_000,
            )
            .await?;
        let account = match (check, AccountId::parse(account_id)) {
            (LoginCheck::Ok, Some(account)) => account,
            (LoginCheck::Ok | LoginCheck::Unknown | LoginCheck::Disabled, _) => return Err(bad()),
            (LoginCheck::TooSoon, _) => {
                return Err(XrtcError::new(
                    group::LOGIN,
                    code::TOO_FREQUENT_LOGIN,
                    format!(
                        "Logins with one API key must be at least {} ms apart; reuse the session.",
                        s.login_timeout_ms
                    ),
                )
                .retry_after(Duration::from_millis(s.login_timeout_ms)));
            }
        };
        let month = month_of(now);
        let used = self.store.xrtc_usage(account_id, &month).await?;
        self.usage.load(account_id, &month, used);
        let now_ms = unix_ms(now);
        let cookie = self
            .sessions
            .open(account, key, client_ip, now_ms)
            .ok_or_else(|| {
                XrtcError::new(
                    group::SYSTEM,
                    code::TOO_MANY_SESSIONS,
                    "The server holds the most sessions it may; try again later.",
                )
                .retry_after(Duration::from_secs(s.session_idle_seconds))
            })?;
        Ok((cookie, now_ms))
    }

    /// The session of `cookie` from `client_ip`, counted as one request of its key and account.
    pub fn session(
        &self,
        cookie: Option<&str>,
        client_ip: IpAddr,
    ) -> Result<Arc<Session>, XrtcError> {
        let now = self.clock.now();
        let now_ms = unix_ms(now);
        let refused = |why: &str| {
            XrtcError::new(
                group::LOGIN,
                code::SESSION_INVALIDATED,
                format!("Server session denied: {why}; log in again."),
            )
        };
        let cookie = cookie.ok_or_else(|| refused("no JSESSIONID cookie"))?;
        let session = self
            .sessions
            .use_session(cookie, client_ip, now_ms)
            .map_err(|why| match why {
                SessionRefused::Unknown => refused("unknown or expired session"),
                SessionRefused::Expired => refused("the session expired"),
                SessionRefused::OtherAddress => {
                    refused("the session belongs to another client address")
                }
            })?;
        if let Err(wait_ms) = self.rates.take(&session.key, now_ms) {
            return Err(XrtcError::new(
                group::SYSTEM,
                code::TOO_MANY_REQUESTS,
                format!(
                    "More than {} requests per second with this API key.",
                    self.settings.requests_per_second
                ),
            )
            .retry_after(Duration::from_millis(wait_ms)));
        }
        if !self
            .usage
            .count(session.account.shared(), &session.key, &month_of(now))
        {
            let next_month = next_month_start(now);
            return Err(XrtcError::new(
                group::SYSTEM,
                code::MONTHLY_LIMIT,
                format!(
                    "The account has made its {} requests for this month.",
                    self.settings.requests_per_month
                ),
            )
            .retry_after((next_month - now).unsigned_abs()));
        }
        Ok(session)
    }

    /// Whether `session` still holds: open on this node, and its API key still valid (not
    /// replaced, not disabled). Streams ask this while they last.
    pub async fn session_holds(&self, session: &Arc<Session>) -> Result<(), String> {
        if !self.sessions.holds(session, self.now_ms()) {
            return Err("the session ended".into());
        }
        let keys = self
            .store
            .xrtc_keys(&session.account)
            .await
            .map_err(|e| e.to_string())?;
        match keys
            .iter()
            .find(|key| key.key_hash.as_slice() == session.key)
        {
            Some(key) if key.disabled.is_none() => Ok(()),
            Some(_) => Err("the session's API key was disabled".into()),
            None => Err("the session's API key no longer exists".into()),
        }
    }

    /// Sets items for the session's account; answers the server time (ms). With webhook
    /// subscribers for `portal.item.set`, the items' events are queued first, so a set that
    /// is answered has its deliveries, and one that fails to queue them sets nothing.
    pub async fn set(&self, session: &Session, items: Vec<NewItem>) -> Result<i64, XrtcError> {
        self.publish(&session.actor(), &session.account, items)
            .await
    }

    /// [`Self::set`] for `account`, by whoever may act for it (a session, a signed endpoint).
    pub async fn publish(
        &self,
        actor: &Actor,
        account: &AccountId,
        items: Vec<NewItem>,
    ) -> Result<i64, XrtcError> {
        let now_ms = self.now_ms();
        let time = self.clock.now();
        let room = self
            .portals
            .reserve(account, &items, now_ms)
            .map_err(refused_set)?;
        let actor = actor.reference();
        let event = |item: Arc<Item>| Event {
            seq: item.seq,
            time,
            actor: actor.clone(),
            payload: EventPayload::PortalItemSet {
                account: account.shared().clone(),
                item,
            },
        };
        if self.journal.wanted(Topic::PortalItemSet) {
            // Queued before the items are set: an answered set has its deliveries.
            let ahead: Vec<Event> = items
                .iter()
                .map(|item| {
                    event(Arc::new(Item {
                        seq: 0,
                        time_ms: now_ms,
                        portal: Arc::from(item.portal.as_str()),
                        payload: item.payload.clone(),
                    }))
                })
                .collect();
            self.journal
                .project_ahead(&ahead)
                .await
                .map_err(|e| XrtcError::unavailable("queueing portal webhooks failed", &e))?;
        }
        let (mut room, mut items) = (room, items);
        loop {
            self.journal
                .ready(items.len() as u64)
                .await
                .map_err(|e| XrtcError::unavailable("numbering portal items failed", &e))?;
            let filled = self.portals.fill(room, items, now_ms);
            for item in filled.set {
                self.journal.publish(event(item));
            }
            match filled.rest {
                None => return Ok(now_ms),
                Some((rest_room, rest)) => (room, items) = (rest_room, rest),
            }
        }
    }

    /// The oldest time an item may have to be delivered now, given a get's `cutoff`.
    fn not_before(&self, now_ms: i64, cutoff_ms: Option<i64>) -> i64 {
        let aged = now_ms - (self.settings.item_age_max_seconds * 1000) as i64;
        match cutoff_ms {
            Some(cutoff) => aged.max(now_ms - cutoff),
            None => aged,
        }
    }

    /// `portals: []`: the newest item of each of the account's portals, newest first, within
    /// the answer limits.
    pub fn latest_of_all(&self, account: &str) -> Vec<Rendered> {
        let not_before = self.not_before(self.now_ms(), None);
        let mut items: Vec<Arc<Item>> = self
            .portals
            .portals_of(account)
            .iter()
            .filter_map(|portal| portal.latest(not_before))
            .collect();
        items.sort_by_key(|item| std::cmp::Reverse(item.seq));
        self.limit(items.iter().map(render))
    }

    /// The named portals' items for this session: after its cursor (or after `since_ms`), not
    /// older than `cutoff_ms`, ordered and limited by `schedule`. Advances the cursors.
    pub fn collect(
        &self,
        session: &Session,
        asks: &[PortalAsk],
        schedule: Schedule,
        cutoff_ms: Option<i64>,
    ) -> Vec<Rendered> {
        let not_before = self.not_before(self.now_ms(), cutoff_ms);
        let mut cursors = crate::portal::lock(&session.cursors);
        let mut candidates = Vec::new();
        let mut newest = Vec::with_capacity(asks.len());
        for ask in asks {
            let id = ask.portal.id();
            let slice = match ask.since_ms {
                Some(since) => ask.portal.read(0, not_before.max(since.saturating_add(1))),
                None => ask
                    .portal
                    .read(cursors.get(id).copied().unwrap_or(0), not_before),
            };
            newest.push((id.clone(), slice.newest, !slice.items.is_empty()));
            candidates.extend(slice.items);
        }
        match schedule {
            Schedule::Lifo => candidates.sort_by_key(|item| std::cmp::Reverse(item.seq)),
            Schedule::Fifo => candidates.sort_by_key(|item| item.seq),
        }
        let delivered = self.limit(candidates.iter().map(render));
        for (id, newest, had_items) in newest {
            let cursor = cursors.entry(id.clone()).or_insert(0);
            let upto = match schedule {
                // LIFO skips what did not fit: the next get starts after the newest.
                Schedule::Lifo => newest,
                // FIFO keeps what did not fit for the next get.
                Schedule::Fifo if had_items => delivered
                    .iter()
                    .filter(|r| r.item.portal == id)
                    .map(|r| r.item.seq)
                    .max()
                    .unwrap_or(*cursor),
                Schedule::Fifo => newest,
            };
            *cursor = (*cursor).max(upto);
        }
        // A cursor of an empty or gone portal says nothing (every later item is numbered
        // higher): such cursors go once the session holds more than its account can have live
        // portals, so asking for random portal ids cannot grow a session.
        if cursors.len() > 2 * self.settings.portals_count_max {
            cursors.retain(|id, _| {
                self.portals
                    .portal(&session.account, id)
                    .is_some_and(|portal| portal.holds_items())
            });
        }
        delivered
    }

    /// Takes items in order while the answer stays within ITEM_COUNT_MAX and PAYLOAD_SIZE_MAX
    /// (the first item always goes, so an item as large as a set request can be delivered).
    fn limit(&self, items: impl Iterator<Item = Rendered>) -> Vec<Rendered> {
        let mut size = "{\"items\":[]}".len();
        let mut out = Vec::new();
        for item in items {
            let added = item.json.len() + usize::from(!out.is_empty());
            if !out.is_empty()
                && (out.len() >= self.settings.item_count_max
                    || size + added > self.settings.payload_size_max)
            {
                break;
            }
            size += added;
            out.push(item);
        }
        out
    }

    /// Ends expired sessions, sweeps rings and rate buckets; adds usage to the store; purges
    /// day-old registrations.
    pub async fn maintain(&self) -> Result<(), StoreError> {
        let now = self.clock.now();
        let now_ms = unix_ms(now);
        self.sessions.sweep(now_ms);
        self.end_sessions_of_invalid_keys().await?;
        self.portals.sweep(now_ms);
        self.rates.sweep(now_ms);
        let (deltas, keys) = self.usage.take_pending();
        for (account, month, requests) in deltas {
            let total = self
                .store
                .xrtc_add_usage(&account, &month, requests)
                .await?;
            self.usage.stored(&account, &month, total);
        }
        self.usage.sweep(&month_of(now));
        self.store.xrtc_touch_keys(&keys, now).await?;
        self.store
            .xrtc_purge_registrations(now - time::Duration::days(1))
            .await?;
        Ok(())
    }
}

impl Xrtc {
    /// An account's API keys, oldest first (hashes only; a key is shown once, when made).
    pub async fn keys(&self, account: &str) -> Result<Vec<KeyRow>, StoreError> {
        self.store.xrtc_keys(account).await
    }

    /// Revokes (disables) the account's key named `name` and ends its sessions on this node;
    /// other nodes end theirs at their next upkeep. `false` when there is no such key.
    pub async fn revoke_key(&self, account: &str, name: &str) -> Result<bool, StoreError> {
        let Some(hash) = self
            .store
            .xrtc_disable_key(account, name, self.clock.now())
            .await?
        else {
            return Ok(false);
        };
        if let Ok(hash) = <[u8; 32]>::try_from(hash) {
            let ended = self.sessions.end_key(&hash);
            tracing::info!(account, key = name, ended, "revoked an XRTC API key");
        }
        Ok(true)
    }

    /// Ends the sessions whose key was deleted or disabled elsewhere (another node, `portico
    /// admin xrtc`, a key replaced by a new registration): each upkeep asks the store once.
    async fn end_sessions_of_invalid_keys(&self) -> Result<(), StoreError> {
        let keys: Vec<[u8; 32]> = self.sessions.keys().into_iter().collect();
        if keys.is_empty() {
            return Ok(());
        }
        let valid = self.store.xrtc_valid_keys(&keys).await?;
        for key in keys.iter().filter(|key| !valid.contains(*key)) {
            let ended = self.sessions.end_key(key);
            tracing::info!(
                ended,
                "ended the sessions of a deleted or disabled XRTC API key"
            );
        }
        Ok(())
    }
}

fn invalid_token() -> XrtcError {
    XrtcError::new(
        group::REGISTRATION,
        code::INVALID_TOKEN,
        "Unknown registration token; start the registration again.",
    )
}

fn next_month_start(now: OffsetDateTime) -> OffsetDateTime {
    let (year, month) = match now.month() {
        time::Month::December => (now.year() + 1, time::Month::January),
        month => (now.year(), month.next()),
    };
    time::Date::from_calendar_date(year, month, 1)
        .map(|date| date.midnight().assume_utc())
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_codes_have_the_seeds_shapes() {
        let key = new_api_key();
        assert_eq!(key.len(), 32);
        assert!(key.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(key, new_api_key());
        let code = random_from(DIGITS, 6);
        assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));
        assert!(AccountId::parse("AC0123456789012345").is_some());
        assert!(AccountId::parse("AC01234567890123").is_none());
    }

    #[tokio::test]
    async fn asking_for_random_portals_keeps_a_session_s_cursors_bounded() {
        use crate::portal::PortalId;
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&crate::store::Location::Sqlite(dir.path().join("db")))
            .await
            .expect("store");
        let journal = Journal::new(store.clone(), crate::events::EventBus::default());
        let mailer = Mailer::new(&crate::mail::MailConfig::default(), dir.path()).expect("mailer");
        let settings = XrtcSettings::default();
        let max = settings.portals_count_max;
        let xrtc = Xrtc::new(
            settings,
            store,
            Arc::new(crate::clock::SystemClock),
            mailer,
            journal,
        );
        let account = AccountId::parse("AC0000000000000001").expect("account");
        let here = [127, 0, 0, 1].into();
        let cookie = xrtc
            .sessions
            .open(account.clone(), [1; 32], here, xrtc.now_ms())
            .expect("session");
        let session = xrtc.session(Some(&cookie), here).expect("the session");
        // One portal with items, and a thousand asked-for portals that never get any.
        xrtc.portals
            .set(
                &account,
                vec![NewItem {
                    portal: PortalId::parse("kept").expect("id"),
                    payload: "\"x\"".into(),
                }],
                xrtc.now_ms(),
            )
            .expect("set");
        for round in 0..100 {
            let asks: Vec<PortalAsk> = (0..max)
                .map(|n| PortalAsk {
                    portal: xrtc.portals.portal_or_empty(
                        &account,
                        &PortalId::parse(&format!("p{round}x{n}")).expect("id"),
                    ),
                    since_ms: None,
                })
                .chain(std::iter::once(PortalAsk {
                    portal: xrtc
                        .portals
                        .portal_or_empty(&account, &PortalId::parse("kept").expect("id")),
                    since_ms: None,
                }))
                .collect();
            xrtc.collect(&session, &asks, Schedule::Fifo, None);
            let held = crate::portal::lock(&session.cursors).len();
            assert!(held <= 3 * max + 1, "round {round}: {held} cursors");
        }
        // The portal with items keeps its cursor: its item is not delivered twice.
        let kept = PortalAsk {
            portal: xrtc
                .portals
                .portal_or_empty(&account, &PortalId::parse("kept").expect("id")),
            since_ms: None,
        };
        assert!(
            xrtc.collect(&session, &[kept], Schedule::Fifo, None)
                .is_empty()
        );
    }

    #[test]
    fn the_month_rolls_over_at_utc_midnight() {
        let day = |y, m, d| {
            time::Date::from_calendar_date(y, m, d)
                .unwrap()
                .midnight()
                .assume_utc()
        };
        let now = day(2026, time::Month::December, 31) + time::Duration::hours(23);
        assert_eq!(month_of(now), "2026-12");
        assert_eq!(next_month_start(now), day(2027, time::Month::January, 1));
    }
}

/// An XRTC session as a stream's [`Credential`]: it holds while the session is open and its
/// API key valid.
#[derive(Debug, Clone)]
pub struct SessionCredential {
    /// The service.
    pub xrtc: Arc<Xrtc>,
    /// The session.
    pub session: Arc<Session>,
}

impl Credential for SessionCredential {
    fn check(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(self.xrtc.session_holds(&self.session))
    }
}
