//! Events: the topic catalogue ([`topic`]), what each event carries and who may read it, the
//! journal that numbers, records and publishes them ([`journal`]), and the internal stream
//! every change is published on once it is durable, in sequence order.

pub mod journal;
pub mod topic;

pub use journal::{Draft, Journal, Projection};
pub use topic::{Durability, Readers, Topic, Visibility};

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
        }
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
