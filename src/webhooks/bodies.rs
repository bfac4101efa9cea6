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
        // The seed's body, exactly: `{"StreamId","Timestamp","Value":[bytes…],"EventQoS":1}`.
        EventPayload::Value {
            stream,
            timestamp_us,
            value,
            ..
        } => {
            #[derive(Serialize)]
            #[serde(rename_all = "PascalCase")]
            struct Body<'a> {
                stream_id: &'a str,
                timestamp: String,
                value: &'a [u8],
                #[serde(rename = "EventQoS")]
                event_qos: u8,
            }
            let body = Body {
                stream_id: stream,
                timestamp: dotnet_time(*timestamp_us),
                value,
                event_qos: qos,
            };
            outbox_event(event, body, fresh())
        }
        // The documented body: byte arrays as JSON number arrays, `TransactionId` null.
        EventPayload::ProofStored {
            stream,
            depth,
            last_us,
            root,
            signature,
        } => {
            #[derive(Serialize)]
            #[serde(rename_all = "PascalCase")]
            struct Body<'a> {
                transaction_id: Option<&'a str>,
                stream_id: &'a str,
                merkle_tree_depth: i32,
                last_timestamp: String,
                root_hash: &'a [u8],
                signature: &'a [u8],
                agent_id: Option<&'a str>,
                #[serde(rename = "EventQoS")]
                event_qos: u8,
            }
            let body = Body {
                transaction_id: None,
                stream_id: stream,
                merkle_tree_depth: *depth,
                last_timestamp: dotnet_time(*last_us),
                root_hash: root,
                signature,
                agent_id: None,
                event_qos: qos,
            };
            outbox_event(event, body, fresh())
        }
        // Tributech's body is not public: `ProofStoredEvent`'s fields, with the root's place
        // in the log of roots and the covering checkpoint's size in place of a transaction.
        EventPayload::ProofConfirmed {
            stream,
            depth,
            last_us,
            root,
            log_index,
            checkpoint_size,
        } => {
            #[derive(Serialize)]
            #[serde(rename_all = "PascalCase")]
            struct Body<'a> {
                stream_id: &'a str,
                merkle_tree_depth: i32,
                last_timestamp: String,
                root_hash: &'a [u8],
                log_index: u64,
                checkpoint_size: u64,
                #[serde(rename = "EventQoS")]
                event_qos: u8,
            }
            let body = Body {
                stream_id: stream,
                merkle_tree_depth: *depth,
                last_timestamp: dotnet_time(*last_us),
                root_hash: root,
                log_index: *log_index,
                checkpoint_size: *checkpoint_size,
                event_qos: qos,
            };
            outbox_event(event, body, fresh())
        }
        EventPayload::ProofValidated {
            stream,
            last_us,
            result,
        } => {
            #[derive(Serialize)]
            #[serde(rename_all = "PascalCase")]
            struct Body<'a> {
                stream_id: &'a str,
                last_timestamp: String,
                validation_proof_result: &'a str,
                #[serde(rename = "EventQoS")]
                event_qos: u8,
            }
            let body = Body {
                stream_id: stream,
                last_timestamp: dotnet_time(*last_us),
                validation_proof_result: result,
                event_qos: qos,
            };
            outbox_event(event, body, fresh())
        }
        EventPayload::ProofReceived {
            stream,
            depth,
            last_us,
            result,
        } => {
            #[derive(Serialize)]
            #[serde(rename_all = "PascalCase")]
            struct Body<'a> {
                stream_id: &'a str,
                merkle_tree_depth: i32,
                last_timestamp: String,
                result_code: &'a str,
                #[serde(rename = "EventQoS")]
                event_qos: u8,
            }
            let body = Body {
                stream_id: stream,
                merkle_tree_depth: *depth,
                last_timestamp: dotnet_time(*last_us),
                result_code: result,
                event_qos: qos,
            };
            outbox_event(event, body, fresh())
        }
        EventPayload::StreamDeleted { stream } => {
            #[derive(Serialize)]
            #[serde(rename_all = "PascalCase")]
            struct Body<'a> {
                stream_id: &'a str,
                #[serde(rename = "EventQoS")]
                event_qos: u8,
            }
            let body = Body {
                stream_id: stream,
                event_qos: qos,
            };
            outbox_event(event, body, fresh())
        }
    })
}

/// A time as the Tributech node writes it in webhooks: `2023-06-16T05:08:40.991585+00:00`.
fn dotnet_time(us: i64) -> String {
    crate::timefmt::from_micros(us).map_or_else(String::new, crate::timefmt::rfc3339_dotnet)
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
