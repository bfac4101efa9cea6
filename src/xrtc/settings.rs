//! `[xrtc]`: the seed's limits and their checks.

use serde::Deserialize;

/// `[xrtc]`: the seed's limits, with its values as defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct XrtcSettings {
    /// `false` serves none of the XRTC routes.
    pub enabled: bool,
    /// API_KEY_COUNT_MAX: keys per account; a new key beyond it replaces the oldest.
    pub api_key_count_max: u32,
    /// API_KEY_AGE_MAX, in days: a key unused this long is disabled.
    pub api_key_age_max_days: u32,
    /// PORTALS_COUNT_MAX: live portals per account.
    pub portals_count_max: usize,
    /// ITEM_AGE_MAX: how long items are kept.
    pub item_age_max_seconds: u64,
    /// PAYLOAD_SIZE_MAX: largest set/get request, and largest get answer (serialized JSON).
    pub payload_size_max: usize,
    /// ITEM_COUNT_MAX: most items in one get answer (or stream line).
    pub item_count_max: usize,
    /// Items a portal's ring holds; the oldest are overwritten beyond it.
    pub ring_capacity: usize,
    /// Payload bytes a portal's ring holds; the oldest are overwritten beyond it.
    pub ring_bytes_max: usize,
    /// Payload bytes all portals on the node hold together; a set beyond it is refused
    /// (code 55, HTTP 503) until items expire.
    pub portal_bytes_max: usize,
    /// Most sessions of one account; a login beyond it ends the account's least recently
    /// used session.
    pub sessions_per_account_max: usize,
    /// GET_ITEM_TIMEOUT: how long watch waits, and how long a stream waits for a new item.
    pub get_item_timeout_ms: u64,
    /// The longest a stream stays open (below the SDK's 20 s total timeout).
    pub stream_max_ms: u64,
    /// A stream with nothing to send writes `{}` this often.
    pub keepalive_ms: u64,
    /// LOGIN_TIMEOUT: the shortest time between two logins with one key.
    pub login_timeout_ms: u64,
    /// A session unused this long expires.
    pub session_idle_seconds: u64,
    /// Most sessions on this node.
    pub max_sessions: usize,
    /// Requests per second per API key.
    pub requests_per_second: u32,
    /// Requests per calendar month (UTC) per account.
    pub requests_per_month: u64,
    /// How long an e-mailed code is valid.
    pub code_ttl_seconds: u64,
    /// Wrong codes allowed; the last one ends the registration.
    pub code_tries: u32,
    /// Re-sends allowed per registration (after the first e-mail).
    pub code_resends_max: u32,
    /// The shortest time between two e-mails of one registration.
    pub code_resend_interval_seconds: u64,
    /// Registrations started per e-mail address per hour.
    pub registrations_per_email_per_hour: u32,
    /// Registrations started per client address per hour.
    pub registrations_per_address_per_hour: u32,
    /// Registrations pending at once, for everyone.
    pub pending_registrations_max: u32,
}

impl Default for XrtcSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            api_key_count_max: 10,
            api_key_age_max_days: 90,
            portals_count_max: 10,
            item_age_max_seconds: 3600,
            payload_size_max: 1024,
            item_count_max: 100,
            ring_capacity: 100,
            ring_bytes_max: 64 * 1024,
            portal_bytes_max: 256 * 1024 * 1024,
            sessions_per_account_max: 20,
            get_item_timeout_ms: 5000,
            stream_max_ms: 15_000,
            keepalive_ms: 4000,
            login_timeout_ms: 5000,
            session_idle_seconds: 60,
            max_sessions: 100_000,
            requests_per_second: 20,
            requests_per_month: 1_000_000,
            code_ttl_seconds: 300,
            code_tries: 3,
            code_resends_max: 3,
            code_resend_interval_seconds: 30,
            registrations_per_email_per_hour: 5,
            registrations_per_address_per_hour: 20,
            pending_registrations_max: 10_000,
        }
    }
}

impl XrtcSettings {
    /// The settings' problems, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut positive = |name: &str, value: u64| {
            if value == 0 {
                problems.push(format!("xrtc.{name} must be at least 1"));
            }
        };
        positive("api_key_count_max", self.api_key_count_max.into());
        positive("api_key_age_max_days", self.api_key_age_max_days.into());
        positive("portals_count_max", self.portals_count_max as u64);
        positive("item_age_max_seconds", self.item_age_max_seconds);
        positive("item_count_max", self.item_count_max as u64);
        positive("ring_capacity", self.ring_capacity as u64);
        positive("get_item_timeout_ms", self.get_item_timeout_ms);
        positive("keepalive_ms", self.keepalive_ms);
        positive("session_idle_seconds", self.session_idle_seconds);
        positive("max_sessions", self.max_sessions as u64);
        positive(
            "sessions_per_account_max",
            self.sessions_per_account_max as u64,
        );
        positive("requests_per_second", self.requests_per_second.into());
        positive("code_ttl_seconds", self.code_ttl_seconds);
        positive("code_tries", self.code_tries.into());
        // Bounds that keep every derived duration inside i64 milliseconds or microseconds.
        if self.item_age_max_seconds > 365 * 86_400 {
            problems.push("xrtc.item_age_max_seconds must be at most a year (31536000)".into());
        }
        if self.api_key_age_max_days > 36_500 {
            problems.push("xrtc.api_key_age_max_days must be at most 36500".into());
        }
        if self.payload_size_max < 64 {
            problems.push("xrtc.payload_size_max must be at least 64 bytes".into());
        }
        if self.ring_bytes_max < self.payload_size_max {
            problems.push("xrtc.ring_bytes_max must be at least payload_size_max".into());
        }
        if self.portal_bytes_max < self.ring_bytes_max {
            problems.push("xrtc.portal_bytes_max must be at least ring_bytes_max".into());
        }

        if self.stream_max_ms < self.get_item_timeout_ms {
            problems.push("xrtc.stream_max_ms must be at least get_item_timeout_ms".into());
        }
        problems
    }
}
