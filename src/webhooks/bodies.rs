//! What each event's webhook body is: the seed's PascalCase members with `EventQoS`, made from
//! the journal's event (webhooks are the journal's projection).

use serde::Serialize;
use serde_json::value::RawValue;

use super::{Webhooks, sign};
use crate::events::{Event, EventPayload, Projection, Topic};
use crate::store::OutboxEvent;

fn outbox_event(event: &Event, body: impl Serialize, correlation_id: String) -> OutboxEvent {
    let topic = event.topic();
    let json = serde_json::to_string(&body).unwrap_or_else(|_| "{}".into());
    OutboxEvent {
        event_id: crate::secrets::uuid(),
        topic: topic.name(),
        subject: event.subject(),
        needs_admin: topic.needs_admin(),
        qos: i64::from(topic.qos()),
        payload: sign::ascii_json(&json),
        correlation_id,
        time: event.time,
    }
}

/// The webhook body of `event`, in the seed's PascalCase with `EventQoS`; `None` for what never
/// leaves the server (a write-only datapoint's value).
pub fn outbox(event: &Event) -> Option<OutboxEvent> {
    let qos = event.topic().qos();
    let fresh = crate::secrets::uuid;
    let raw = |text: &str, fallback: &'static str| {
        serde_json::from_str::<&RawValue>(text)
            .or_else(|_| serde_json::from_str::<&RawValue>(fallback))
            .map(|raw| raw.to_owned())
            .ok()
    };
    Some(match &event.payload {
        EventPayload::DatapointWritten { key, value } => {
            #[derive(Serialize)]
            #[serde(rename_all = "PascalCase")]
            struct Body<'a> {
                datapoint: &'a str,
                value: Option<Box<RawValue>>,
                timestamp: String,
                sequence: u64,
                #[serde(rename = "EventQoS")]
                event_qos: u8,
            }
            let value = value.as_ref()?;
            let body = Body {
                datapoint: key.as_str(),
                value: raw(&value.to_json(), "null"),
                timestamp: crate::timefmt::rfc3339(event.time),
                sequence: event.seq,
                event_qos: qos,
            };
            outbox_event(event, body, fresh())
        }
        EventPayload::PortalItemSet { account, item } => {
            #[derive(Serialize)]
            #[serde(rename_all = "PascalCase")]
            struct Body<'a> {
                account_id: &'a str,
                portal_id: &'a str,
                payload: Option<Box<RawValue>>,
                server_timestamp: i64,
                #[serde(rename = "EventQoS")]
                event_qos: u8,
            }
            let body = Body {
                account_id: account,
                portal_id: &item.portal,
                payload: raw(&item.payload, "\"\""),
                server_timestamp: item.time_ms,
                event_qos: qos,
            };
            outbox_event(event, body, fresh())
        }
        EventPayload::EndpointCalled {
            application,
            endpoint,
            environment,
            parameters,
            files,
        } => {
            #[derive(Serialize)]
            #[serde(rename_all = "PascalCase")]
            struct File<'a> {
                parameter: &'a str,
                file_name: &'a str,
                content_type: &'a str,
                size: usize,
            }
            #[derive(Serialize)]
            #[serde(rename_all = "PascalCase")]
            struct Body<'a> {
                application: &'a str,
                endpoint: &'a str,
                environment: &'a str,
                parameters: Option<Box<RawValue>>,
                files: Vec<File<'a>>,
                timestamp: String,
                #[serde(rename = "EventQoS")]
                event_qos: u8,
            }
            let body = Body {
                application,
                endpoint,
                environment,
                parameters: raw(parameters, "{}"),
                files: files
                    .iter()
                    .map(|f| File {
                        parameter: &f.parameter,
                        file_name: &f.file_name,
                        content_type: &f.content_type,
                        size: f.size,
                    })
                    .collect(),
                timestamp: crate::timefmt::rfc3339(event.time),
                event_qos: qos,
            };
            outbox_event(event, body, fresh())
        }
        EventPayload::SubscriptionDisabled {
            subscription,
            url,
            reason,
            cause,
        } => {
            #[derive(Serialize)]
            #[serde(rename_all = "PascalCase")]
            struct Body<'a> {
                subscription_id: &'a str,
                url: &'a str,
                reason: &'a str,
                timestamp: String,
                #[serde(rename = "EventQoS")]
                event_qos: u8,
            }
            let body = Body {
                subscription_id: subscription,
                url,
                reason,
                timestamp: crate::timefmt::rfc3339(event.time),
                event_qos: qos,
            };
            outbox_event(event, body, cause.to_string())
        }
    })
}

impl Projection for Webhooks {
    fn wants(&self, topic: Topic) -> bool {
        self.interest.wants(topic)
    }

    fn project(&self, event: &Event) -> Option<OutboxEvent> {
        outbox(event)
    }

    fn committed(&self) {
        self.wake();
    }
}
