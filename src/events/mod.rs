//! Events: the topic catalogue ([`topic`]), what each event carries, who may read it, and the
//! internal stream every state change is published on once it is durable.

pub mod topic;

pub use topic::{Durability, Readers, Topic, Visibility};

use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::broadcast;

use crate::access::ActorRef;
use crate::datapoint::{DatapointKey, Value};

/// How many events a slow subscriber may fall behind before it is told it lagged.
const CAPACITY: usize = 4096;

/// A state change.
#[derive(Debug, Clone)]
pub struct Event {
    /// The server-wide sequence number of the change.
    pub seq: u64,
    /// When the change happened.
    pub time: OffsetDateTime,
    /// Who caused it.
    pub actor: ActorRef,
    /// What happened.
    pub payload: EventPayload,
}

/// What happened, by topic.
#[derive(Debug, Clone)]
pub enum EventPayload {
    /// A datapoint was written (topic `datapoint.written`).
    DatapointWritten {
        /// Which datapoint.
        key: DatapointKey,
        /// The value written.
        value: Value,
    },
    /// An item was set in a portal (topic `portal.item.set`).
    PortalItemSet {
        /// The portal's account.
        account: Arc<str>,
        /// The item, with its portal.
        item: Arc<crate::portal::Item>,
    },
    /// A signed endpoint was called with a valid hash (topic `endpoint.called`).
    EndpointCalled {
        /// The application.
        application: Arc<str>,
        /// The endpoint.
        endpoint: Arc<str>,
        /// `live` or `preview`.
        environment: &'static str,
        /// The text parameters (after defaults and transformations), as a JSON object.
        parameters: Arc<str>,
    },
}

impl Event {
    /// The event's topic.
    pub fn topic(&self) -> Topic {
        match self.payload {
            EventPayload::DatapointWritten { .. } => Topic::DatapointWritten,
            EventPayload::PortalItemSet { .. } => Topic::PortalItemSet,
            EventPayload::EndpointCalled { .. } => Topic::EndpointCalled,
        }
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
    /// Publishes an event to every current subscriber.
    pub fn publish(&self, event: Event) {
        // An error only means nobody is listening right now.
        let _ = self.sender.send(Arc::new(event));
    }

    /// Subscribes to events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }
}
