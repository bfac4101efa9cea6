//! Events: the topic catalogue ([`topic`]), what each event carries and who may read it, the
//! journal that numbers, records and publishes them ([`journal`]), and the internal stream
//! every change is published on once it is durable, in sequence order.

pub mod journal;
pub mod topic;

pub use journal::{Draft, Journal, Projection};
pub use topic::{Durability, Readers, SubjectReaders, Topic, Visibility};

use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use tokio::sync::broadcast;

use crate::access::ActorRef;
use crate::datapoint::{DatapointKey, Value};

/// How many events a slow subscriber may fall behind before it is told it lagged.
const CAPACITY: usize = 4096;

/// A state change.
#[derive(Debug, Clone)]
pub struct Event {
    /// The server-wide sequence number of the change, issued by the store: strictly increasing
    /// on the bus, across restarts, and unique across the processes sharing a database.
    pub seq: u64,
    /// When the change happened.
    pub time: OffsetDateTime,
    /// Who caused it.
    pub actor: ActorRef,
    /// What happened.
    pub payload: EventPayload,
}

/// A file a signed call carried: described, never its contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileInfo {
    /// The parameter it came in.
    pub parameter: String,
    /// Its name as sent.
    pub file_name: String,
    /// Its content type as sent.
    pub content_type: String,
    /// Its size in bytes.
    pub size: usize,
}

/// What happened, by topic.
#[derive(Debug, Clone)]
pub enum EventPayload {
    /// A datapoint was written.
    DatapointWritten {
        /// Which datapoint.
        key: DatapointKey,
        /// The value written; `None` for a write-only datapoint, whose value leaves by no way.
        value: Option<Value>,
    },
    /// An item was set in a portal.
    PortalItemSet {
        /// The portal's account.
        account: Arc<str>,
        /// The item, with its portal.
        item: Arc<crate::portal::Item>,
    },
    /// A signed endpoint was called with a valid hash.
    EndpointCalled {
        /// The application.
        application: Arc<str>,
        /// The endpoint.
        endpoint: Arc<str>,
        /// `live` or `preview`.
        environment: &'static str,
        /// The text parameters (after defaults and transformations), as a JSON object.
        parameters: Arc<str>,
        /// The files, described.
        files: Arc<[FileInfo]>,
    },
    /// A value of a stream was received (`stored`: false) or is durable (`stored`: true).
    Value {
        /// Whether this is `value.stored` rather than `value.received`.
        stored: bool,
        /// The stream's id.
        stream: Arc<str>,
        /// The value's timestamp, microseconds since the epoch.
        timestamp_us: i64,
        /// Its bytes.
        value: Arc<[u8]>,
    },
    /// A stream's tree was closed and its root signed.
    ProofStored {
        /// The stream's id.
        stream: Arc<str>,
        /// `ceil(log2(values))`.
        depth: i32,
        /// The tree's last timestamp, microseconds.
        last_us: i64,
        /// The root hash.
        root: Arc<[u8]>,
        /// Its signature.
        signature: Arc<[u8]>,
    },
    /// A device submitted a proof.
    ProofReceived {
        /// The stream's id.
        stream: Arc<str>,
        /// The tree's depth as submitted.
        depth: i32,
        /// The tree's last timestamp, microseconds.
        last_us: i64,
        /// The outcome.
        result: &'static str,
    },
    /// A proof was validated.
    ProofValidated {
        /// The stream's id.
        stream: Arc<str>,
        /// The proof's last timestamp, microseconds.
        last_us: i64,
        /// The verdict's name.
        result: &'static str,
    },
    /// A signed checkpoint covers a proof.
    ProofConfirmed {
        /// The stream's id.
        stream: Arc<str>,
        /// `ceil(log2(values))`.
        depth: i32,
        /// The tree's last timestamp, microseconds.
        last_us: i64,
        /// The root hash.
        root: Arc<[u8]>,
        /// The root's index in the log of roots.
        log_index: u64,
        /// The size of the checkpoint that covers it.
        checkpoint_size: u64,
    },
    /// A stream was deleted.
    StreamDeleted {
        /// Its id.
        stream: Arc<str>,
    },
    /// A webhook subscription was disabled.
    SubscriptionDisabled {
        /// The subscription.
        subscription: Arc<str>,
        /// Its URL.
        url: Arc<str>,
        /// Why.
        reason: Arc<str>,
        /// The id of the delivery's event whose failure disabled it (the webhook's
        /// correlation id).
        cause: Arc<str>,
    },
}

impl Event {
    /// The event's topic.
    pub fn topic(&self) -> Topic {
        match self.payload {
            EventPayload::DatapointWritten { .. } => Topic::DatapointWritten,
            EventPayload::PortalItemSet { .. } => Topic::PortalItemSet,
            EventPayload::EndpointCalled { .. } => Topic::EndpointCalled,
            EventPayload::SubscriptionDisabled { .. } => Topic::WebhookSubscriptionDisabled,
            EventPayload::Value { stored: false, .. } => Topic::ValueReceived,
            EventPayload::Value { stored: true, .. } => Topic::ValueStored,
            EventPayload::ProofStored { .. } => Topic::ProofStored,
            EventPayload::ProofReceived { .. } => Topic::ProofReceived,
            EventPayload::ProofValidated { .. } => Topic::ProofValidated,
            EventPayload::ProofConfirmed { .. } => Topic::ProofConfirmed,
            EventPayload::StreamDeleted { .. } => Topic::StreamDeleted,
        }
    }

    /// What the event is about, as [`Visibility`] reads it: a datapoint's key, an item's
    /// `account/portal`, a call's `application/endpoint`, a subscription's id.
    pub fn subject(&self) -> String {
        match &self.payload {
            EventPayload::DatapointWritten { key, .. } => key.to_string(),
            EventPayload::PortalItemSet { account, item } => format!("{account}/{}", item.portal),
            EventPayload::EndpointCalled {
                application,
                endpoint,
                ..
            } => format!("{application}/{endpoint}"),
            EventPayload::SubscriptionDisabled { subscription, .. } => subscription.to_string(),
            EventPayload::Value { stream, .. }
            | EventPayload::ProofStored { stream, .. }
            | EventPayload::ProofReceived { stream, .. }
            | EventPayload::ProofValidated { stream, .. }
            | EventPayload::ProofConfirmed { stream, .. }
            | EventPayload::StreamDeleted { stream } => stream.to_string(),
        }
    }

    /// The event's data as the journal and its API carry it (JSON, camelCase). Members that
    /// are absent (a write-only datapoint's value) are left out.
    pub fn data(&self) -> String {
        #[derive(Serialize)]
        #[serde(untagged, rename_all_fields = "camelCase")]
        enum Data<'a> {
            DatapointWritten {
                key: &'a str,
                #[serde(skip_serializing_if = "Option::is_none")]
                value: Option<&'a Value>,
                update_time: String,
            },
            PortalItemSet {
                account: &'a str,
                portal: &'a str,
                #[serde(skip_serializing_if = "Option::is_none")]
                payload: Option<&'a RawValue>,
                #[serde(rename = "servertimestamp")]
                server_timestamp: i64,
            },
            EndpointCalled {
                application: &'a str,
                endpoint: &'a str,
                environment: &'a str,
                #[serde(skip_serializing_if = "Option::is_none")]
                parameters: Option<&'a RawValue>,
                files: &'a [FileInfo],
            },
            SubscriptionDisabled {
                subscription_id: &'a str,
                url: &'a str,
                reason: &'a str,
            },
            Value {
                stream_id: &'a str,
                timestamp: String,
                value: String,
            },
            ProofStored {
                stream_id: &'a str,
                merkle_tree_depth: i32,
                last_timestamp: String,
                root_hash: String,
                signature: String,
            },
            ProofReceived {
                stream_id: &'a str,
                merkle_tree_depth: i32,
                last_timestamp: String,
                result_code: &'a str,
            },
            ProofValidated {
                stream_id: &'a str,
                last_timestamp: String,
                result_code: &'a str,
            },
            ProofConfirmed {
                stream_id: &'a str,
                merkle_tree_depth: i32,
                last_timestamp: String,
                root_hash: String,
                log_index: u64,
                checkpoint_size: u64,
            },
            StreamDeleted {
                stream_id: &'a str,
            },
        }
        let time = |us: &i64| {
            crate::timefmt::from_micros(*us).map_or_else(String::new, crate::timefmt::rfc3339)
        };
        let b64 = |bytes: &[u8]| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(bytes)
        };
        fn raw(text: &str) -> Option<&RawValue> {
            serde_json::from_str(text).ok()
        }
        let data = match &self.payload {
            EventPayload::DatapointWritten { key, value } => Data::DatapointWritten {
                key: key.as_str(),
                value: value.as_ref(),
                update_time: crate::timefmt::rfc3339(self.time),
            },
            EventPayload::PortalItemSet { account, item } => Data::PortalItemSet {
                account,
                portal: &item.portal,
                payload: raw(&item.payload),
                server_timestamp: item.time_ms,
            },
            EventPayload::EndpointCalled {
                application,
                endpoint,
                environment,
                parameters,
                files,
            } => Data::EndpointCalled {
                application,
                endpoint,
                environment,
                parameters: raw(parameters),
                files,
            },
            EventPayload::SubscriptionDisabled {
                subscription,
                url,
                reason,
                ..
            } => Data::SubscriptionDisabled {
                subscription_id: subscription,
                url,
                reason,
            },
            EventPayload::Value {
                stream,
                timestamp_us,
                value,
                ..
            } => Data::Value {
                stream_id: stream,
                timestamp: time(timestamp_us),
                value: b64(value),
            },
            EventPayload::ProofStored {
                stream,
                depth,
                last_us,
                root,
                signature,
            } => Data::ProofStored {
                stream_id: stream,
                merkle_tree_depth: *depth,
                last_timestamp: time(last_us),
                root_hash: b64(root),
                signature: b64(signature),
            },
            EventPayload::ProofReceived {
                stream,
                depth,
                last_us,
                result,
            } => Data::ProofReceived {
                stream_id: stream,
                merkle_tree_depth: *depth,
                last_timestamp: time(last_us),
                result_code: result,
            },
            EventPayload::ProofValidated {
                stream,
                last_us,
                result,
            } => Data::ProofValidated {
                stream_id: stream,
                last_timestamp: time(last_us),
                result_code: result,
            },
            EventPayload::ProofConfirmed {
                stream,
                depth,
                last_us,
                root,
                log_index,
                checkpoint_size,
            } => Data::ProofConfirmed {
                stream_id: stream,
                merkle_tree_depth: *depth,
                last_timestamp: time(last_us),
                root_hash: b64(root),
                log_index: *log_index,
                checkpoint_size: *checkpoint_size,
            },
            EventPayload::StreamDeleted { stream } => Data::StreamDeleted { stream_id: stream },
        };
        serde_json::to_string(&data).unwrap_or_default()
    }
}

/// A broadcast of [`Event`]s. Publishing never waits: a subscriber that falls more than
/// `CAPACITY` events behind skips ahead and is told how many it missed.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<Event>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(CAPACITY).0,
        }
    }
}

impl EventBus {
    /// Publishes an event to every current subscriber (the journal does, in sequence order).
    pub(crate) fn publish(&self, event: Arc<Event>) {
        // An error only means nobody is listening right now.
        let _ = self.sender.send(event);
    }

    /// Subscribes to events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }
}
