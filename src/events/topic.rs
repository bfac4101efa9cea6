//! The topic catalogue: the one place that says, for each kind of event, its name, its
//! Tributech-style event name, its webhook QoS, whether the journal keeps it, who may read it,
//! and what it means. Webhooks, the journal, SSE, the OpenAPI enums and the README's table are
//! all read from here.

use std::collections::HashMap;

use serde::Serialize;

use crate::access::{Actor, Policy};
use crate::datapoint::DatapointKey;

/// A kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// `datapoint.written`.
    DatapointWritten,
    /// `portal.item.set`.
    PortalItemSet,
    /// `webhook.subscription.disabled`.
    WebhookSubscriptionDisabled,
    /// `endpoint.called`.
    EndpointCalled,
    /// `value.received`.
    ValueReceived,
    /// `value.stored`.
    ValueStored,
    /// `proof.stored`.
    ProofStored,
    /// `proof.received`.
    ProofReceived,
    /// `proof.validated`.
    ProofValidated,
    /// `proof.confirmed`.
    ProofConfirmed,
    /// `stream.deleted`.
    StreamDeleted,
}

/// Whether the journal keeps a topic's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Kept in the journal for `events.retention_hours`, readable from `/api/v1/events`.
    Durable,
    /// Published and delivered to webhooks, never kept (portal items, ephemeral by the XRTC
    /// seed's definition).
    Ephemeral,
}

/// Who may read a topic's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Readers {
    /// Whoever the datapoint's `read` policy lets read it; nobody for a write-only datapoint.
    DatapointReaders,
    /// The account's own XRTC sessions, and admins.
    Account,
    /// Admins only (a token of the admin realm with `portico:admin`).
    Admins,
    /// Webhook managers (`portico:admin` or `portico:webhooks` in the admin realm).
    WebhookManagers,
    /// Whoever the stream's `read` policy lets read it.
    StreamReaders,
}

impl Topic {
    /// Every topic.
    pub const ALL: [Topic; 11] = [
        Topic::DatapointWritten,
        Topic::PortalItemSet,
        Topic::WebhookSubscriptionDisabled,
        Topic::EndpointCalled,
        Topic::ValueReceived,
        Topic::ValueStored,
        Topic::ProofStored,
        Topic::ProofReceived,
        Topic::ProofValidated,
        Topic::ProofConfirmed,
        Topic::StreamDeleted,
    ];

    /// The topic's name, e.g. `datapoint.written`.
    pub const fn name(self) -> &'static str {
        match self {
            Topic::DatapointWritten => "datapoint.written",
            Topic::PortalItemSet => "portal.item.set",
            Topic::WebhookSubscriptionDisabled => "webhook.subscription.disabled",
            Topic::EndpointCalled => "endpoint.called",
            Topic::ValueReceived => "value.received",
            Topic::ValueStored => "value.stored",
            Topic::ProofStored => "proof.stored",
            Topic::ProofReceived => "proof.received",
            Topic::ProofValidated => "proof.validated",
            Topic::ProofConfirmed => "proof.confirmed",
            Topic::StreamDeleted => "stream.deleted",
        }
    }

    /// The event's name in `x-tributech-event`, e.g. `DatapointWrittenEvent`.
    pub const fn event_name(self) -> &'static str {
        match self {
            Topic::DatapointWritten => "DatapointWrittenEvent",
            Topic::PortalItemSet => "PortalItemSetEvent",
            Topic::WebhookSubscriptionDisabled => "SubscriptionDisabledEvent",
            Topic::EndpointCalled => "EndpointCalledEvent",
            Topic::ValueReceived => "ValueReceivedEvent",
            Topic::ValueStored => "ValueStoredEvent",
            Topic::ProofStored => "ProofStoredEvent",
            Topic::ProofReceived => "ProofReceivedEvent",
            Topic::ProofValidated => "ProofValidatedEvent",
            Topic::ProofConfirmed => "ProofConfirmedEvent",
            Topic::StreamDeleted => "StreamDeletedEvent",
        }
    }

    /// Webhook QoS: 1, high-frequency, retried 4 times, then discarded; 2, retried 10 times,
    /// then kept as a dead letter.
    pub const fn qos(self) -> u8 {
        match self {
            Topic::PortalItemSet | Topic::ValueReceived | Topic::ValueStored => 1,
            _ => 2,
        }
    }

    /// Whether the journal keeps it.
    pub const fn durability(self) -> Durability {
        match self {
            // A value's row is the durable record of its two events, a proof's of its, and a
            // checkpoint with the proof's place in the log of `proof.confirmed`.
            Topic::PortalItemSet
            | Topic::ValueReceived
            | Topic::ValueStored
            | Topic::ProofStored
            | Topic::ProofConfirmed => Durability::Ephemeral,
            _ => Durability::Durable,
        }
    }

    /// Who may read it.
    pub const fn readers(self) -> Readers {
        match self {
            Topic::DatapointWritten => Readers::DatapointReaders,
            Topic::PortalItemSet => Readers::Account,
            Topic::WebhookSubscriptionDisabled => Readers::WebhookManagers,
            Topic::EndpointCalled => Readers::Admins,
            Topic::ValueReceived
            | Topic::ValueStored
            | Topic::ProofStored
            | Topic::ProofReceived
            | Topic::ProofValidated
            | Topic::ProofConfirmed => Readers::StreamReaders,
            // The stream and its policy are gone.
            Topic::StreamDeleted => Readers::Admins,
        }
    }

    /// What happened.
    pub const fn description(self) -> &'static str {
        match self {
            Topic::DatapointWritten => {
                "A datapoint was written (through a configured endpoint or a signed endpoint's \
                 action). Carries the key, the value (never for a write-only datapoint) and \
                 its update time."
            }
            Topic::PortalItemSet => {
                "An item was set in an XRTC portal. Carries the account, the portal and the \
                 payload."
            }
            Topic::WebhookSubscriptionDisabled => {
                "A webhook subscription was disabled after failing (or on 410 Gone). Carries \
                 the subscription, its URL and the reason."
            }
            Topic::EndpointCalled => {
                "A signed (OpenEndpoints-style) endpoint was called with a valid hash. Carries \
                 the application, endpoint, environment, text parameters and file names."
            }
            Topic::ValueReceived => {
                "A value of a stream was received. Carries the stream, the timestamp and the \
                 value's bytes. Its value's row is its record: queued for webhooks only while \
                 a subscription names the topic."
            }
            Topic::ValueStored => {
                "A value of a stream is durable. Carries what `value.received` carries; \
                 queued for webhooks only while a subscription names the topic."
            }
            Topic::ProofStored => {
                "A stream's Merkle tree was closed and its root signed. Carries the stream, the \
                 tree's depth and last timestamp, the root hash and its signature. The proof is \
                 its record (`/demeter/api/locations/multiple`)."
            }
            Topic::ProofReceived => {
                "A device submitted a proof for a tree of its stream. Carries the stream, the \
                 tree's depth and last timestamp, and the outcome: `Success` (stored; \
                 `proof.stored` follows), `Fail_DuplicateProofLocation`, or the check that \
                 failed."
            }
            Topic::ProofValidated => {
                "A proof was validated. Carries the stream, the proof's last timestamp and the \
                 verdict."
            }
            Topic::ProofConfirmed => {
                "A signed checkpoint of the log of roots now covers a proof (Portico's \
                 counterpart of Tributech's ledger confirmation). Carries the stream, the \
                 tree's depth, last timestamp and root, its index in the log and the \
                 checkpoint's size; queued for webhooks only while a subscription names the \
                 topic."
            }
            Topic::StreamDeleted => "A stream was deleted with its values and proofs.",
        }
    }

    /// The topic named `name`.
    pub fn parse(name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Whether a reader that cannot see every subject (no admin) can ever read this topic:
    /// webhook subscriptions skip the others when their maker could not.
    pub const fn needs_admin(self) -> bool {
        matches!(self.readers(), Readers::Admins | Readers::Account)
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Who may read a subject that lives outside the configuration (a stream, by its id).
pub trait SubjectReaders: Send + Sync + std::fmt::Debug {
    /// Whether `actor` may read what `subject` names.
    fn allows(&self, actor: &Actor, subject: &str) -> bool;
}

/// Decides who may read which event: the topic's [`Readers`] applied to the event's subject.
/// Every way out (the journal, SSE, webhooks) asks this one place.
#[derive(Debug, Clone, Default)]
pub struct Visibility {
    /// Each datapoint's read policy; `None` for a write-only datapoint, which nobody reads.
    datapoints: HashMap<DatapointKey, Option<Policy>>,
    admins: Policy,
    webhook_managers: Policy,
    /// Each stream's read policy, as the streams hold it.
    streams: Option<std::sync::Arc<dyn SubjectReaders>>,
}

impl Visibility {
    /// Visibility for these datapoints (`(key, read policy, readable)`) and gate policies.
    pub fn new(
        datapoints: impl IntoIterator<Item = (DatapointKey, Policy, bool)>,
        admins: Policy,
        webhook_managers: Policy,
    ) -> Self {
        Self {
            datapoints: datapoints
                .into_iter()
                .map(|(key, policy, readable)| (key, readable.then_some(policy)))
                .collect(),
            admins,
            webhook_managers,
            streams: None,
        }
    }

    /// The same, with the streams' read policies.
    pub fn with_streams(mut self, streams: std::sync::Arc<dyn SubjectReaders>) -> Self {
        self.streams = Some(streams);
        self
    }

    /// Whether `actor` may read an event of `topic` about `subject` (a datapoint key, an
    /// account's `account/portal`, …).
    pub fn allows(&self, actor: &Actor, topic: Topic, subject: &str) -> bool {
        match topic.readers() {
            Readers::DatapointReaders => DatapointKey::parse(subject)
                .ok()
                .and_then(|key| self.datapoints.get(&key))
                .and_then(Option::as_ref)
                .is_some_and(|policy| policy.allows(actor)),
            Readers::Account => {
                let account = subject.split('/').next().unwrap_or_default();
                let own = matches!(actor, Actor::Xrtc(session) if &*session.account == account);
                own || self.admins.allows(actor)
            }
            Readers::Admins => self.admins.allows(actor),
            Readers::WebhookManagers => self.webhook_managers.allows(actor),
            Readers::StreamReaders => self
                .streams
                .as_ref()
                .is_some_and(|streams| streams.allows(actor, subject)),
        }
    }

    /// Whether `actor` passes the admins' policy (reads every topic's subjects).
    pub fn is_admin(&self, actor: &Actor) -> bool {
        self.admins.allows(actor)
    }
}

/// The README's table of topics, made from the catalogue (a test keeps the README in step).
pub fn markdown_table() -> String {
    let mut table = String::from(
        "| topic | event | QoS | kept | who may read | carries |\n|---|---|---|---|---|---|\n",
    );
    for topic in Topic::ALL {
        let kept = match topic.durability() {
            Durability::Durable => "journal",
            Durability::Ephemeral => "live only",
        };
        let readers = match topic.readers() {
            Readers::DatapointReaders => "the datapoint's `read` policy",
            Readers::Account => "the account's sessions, admins",
            Readers::Admins => "admins",
            Readers::WebhookManagers => "webhook managers",
            Readers::StreamReaders => "the stream's `read` policy",
        };
        table.push_str(&format!(
            "| `{}` | `{}` | {} | {kept} | {readers} | {} |\n",
            topic.name(),
            topic.event_name(),
            topic.qos(),
            topic.description()
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_lists_the_catalogue() {
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&markdown_table()),
            "README.md's topic table is out of date; it should read:\n{}",
            markdown_table()
        );
    }

    #[test]
    fn names_parse_back() {
        for topic in Topic::ALL {
            assert_eq!(Topic::parse(topic.name()), Some(topic));
        }
        assert_eq!(Topic::parse("nope"), None);
    }
}
