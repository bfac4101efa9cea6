//! The seed's error shape and its table of groups and codes.

use std::time::Duration;

use crate::store::StoreError;

/// The seed's error groups.
pub mod group {
    /// System errors (limits, unavailability).
    pub const SYSTEM: u8 = 2;
    /// Registration.
    pub const REGISTRATION: u8 = 3;
    /// Login and sessions.
    pub const LOGIN: u8 = 4;
    /// Items.
    pub const APPLICATION: u8 = 6;
}

/// The seed's error codes, and Portico's for what the seed leaves unnamed.
pub mod code {
    /// The service cannot answer now (mail server or database unreachable); HTTP 503.
    pub const UNAVAILABLE: u32 = 1;
    /// INPUT_BINARYJSON_PARSE_FAIL: not JSON, unknown names, or larger than PAYLOAD_SIZE_MAX.
    pub const PARSE_FAIL: u32 = 20;
    /// INVALID_ARGUMENTS: a value of the wrong type or out of range.
    pub const INVALID_ARGUMENTS: u32 = 30;
    /// INVALID_EMAIL.
    pub const INVALID_EMAIL: u32 = 32;
    /// INVALID_TOKEN: no registration with this token.
    pub const INVALID_TOKEN: u32 = 33;
    /// INVALID_CODE: a wrong code, with tries left.
    pub const INVALID_CODE: u32 = 34;
    /// INVALID_CREDENTIALS: a wrong account id or API key, or a disabled key.
    pub const INVALID_CREDENTIALS: u32 = 35;
    /// MAX_CONCURRENT_REGISTRATIONS.
    pub const MAX_CONCURRENT_REGISTRATIONS: u32 = 40;
    /// MAX_CODE_SEND.
    pub const MAX_CODE_SEND: u32 = 41;
    /// MAX_CODE_RETRY.
    pub const MAX_CODE_RETRY: u32 = 42;
    /// TIMEOUT_CODE.
    pub const TIMEOUT_CODE: u32 = 43;
    /// TOO_FREQUENT_LOGIN.
    pub const TOO_FREQUENT_LOGIN: u32 = 45;
    /// Portico: more requests per second than the API key may make.
    pub const TOO_MANY_REQUESTS: u32 = 50;
    /// Portico: the account's requests for this month are used up.
    pub const MONTHLY_LIMIT: u32 = 51;
    /// Portico: the account has PORTALS_COUNT_MAX portals already.
    pub const TOO_MANY_PORTALS: u32 = 52;
    /// Portico: this node holds the most sessions it may.
    pub const TOO_MANY_SESSIONS: u32 = 53;
    /// Portico: the node, or this account, has as many streams open as it may; HTTP 503.
    pub const TOO_MANY_STREAMS: u32 = 54;
    /// Portico: the node's portals hold `xrtc.portal_bytes_max` bytes; HTTP 503.
    pub const PORTALS_FULL: u32 = 55;
    /// SESSION_INVALIDATED: no session, an expired one, or one used from another address;
    /// HTTP 401.
    pub const SESSION_INVALIDATED: u32 = 10011;
}

/// An error in the seed's shape: `{"error":{"errorgroup","errorcode","errormessage"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XrtcError {
    /// The error group.
    pub group: u8,
    /// The error code.
    pub code: u32,
    /// A sentence for people.
    pub message: String,
    /// When to try again, for limits.
    pub retry_after: Option<Duration>,
}

impl XrtcError {
    /// An error without a retry time.
    pub fn new(group: u8, code: u32, message: impl Into<String>) -> Self {
        Self {
            group,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error, retryable after `after`.
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after.max(Duration::from_secs(1)));
        self
    }

    /// The HTTP status: 401 for a refused session, 503 when unavailable or at the stream
    /// limit, 400 otherwise.
    pub fn status(&self) -> u16 {
        match self.code {
            code::SESSION_INVALIDATED => 401,
            code::UNAVAILABLE | code::TOO_MANY_STREAMS | code::PORTALS_FULL => 503,
            _ => 400,
        }
    }

    pub(crate) fn unavailable(what: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::warn!(%error, "{what}");
        Self::new(
            group::SYSTEM,
            code::UNAVAILABLE,
            format!("{what}; try again shortly."),
        )
        .retry_after(Duration::from_secs(5))
    }
}

impl From<StoreError> for XrtcError {
    fn from(error: StoreError) -> Self {
        Self::unavailable("The database is unavailable", &error)
    }
}
