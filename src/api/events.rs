//! The event journal over HTTP: `GET /api/v1/events` pages through durable events, and
//! `GET /api/v1/events/stream` follows every event live (Server-Sent Events), resuming from the
//! journal with `Last-Event-ID`. Both show only what the caller may read (`events::Visibility`).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use futures_util::Stream;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::broadcast::error::RecvError;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::stream_ending;
use super::extract::ClientIp;
use super::webhooks::query_pairs;
use crate::access::{Actor, Ending};
use crate::api::error::{ApiError, ErrorCode};
use crate::events::{Event, Topic};
use crate::store::JournalRow;
use crate::timefmt::rfc3339;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/events", get(list))
        .route("/api/v1/events/stream", get(stream))
}

/// One event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    /// Its number in the server-wide sequence.
    pub seq: u64,
    /// When it happened (RFC 3339, UTC).
    pub time: String,
    /// Its topic, e.g. `datapoint.written`.
    #[schema(value_type = super::webhooks::TopicName)]
    pub topic: String,
    /// Who caused it: `{"kind", "id", "issuer"}`.
    #[schema(value_type = crate::access::ActorRef)]
    pub actor: Box<RawValue>,
    /// What it is about: a datapoint key, `account/portal`, `application/endpoint`, a
    /// subscription id.
    pub subject: String,
    /// The topic's data.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
}

/// Events the journal had dropped (older than `events.retention_hours`) after a position.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GapOut {
    /// The position asked for.
    pub after: u64,
    /// Events up to this number may be gone.
    pub dropped_upto: u64,
}

/// What an event stream's `data:` carries: an event, or, in a `gap` event, which events are
/// gone.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documents the wire; events are sent as `EventOut` and `GapOut`
pub enum StreamDataOut {
    /// An event.
    Event(EventOut),
    /// A `gap` event.
    Gap(GapOut),
}

/// A page of the journal.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPageOut {
    /// The events the caller may read, oldest first.
    pub events: Vec<EventOut>,
    /// Where the next page starts (`after=`): the last position read, shown or not.
    pub next: u64,
    /// Set when events after `after` were already dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap: Option<GapOut>,
}

/// The journal's query.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Events after this sequence number (default 0: from the oldest kept).
    pub after: Option<u64>,
    /// Comma-separated topic names (default all).
    pub topics: Option<String>,
    /// At most this many rows read (default 100, at most `events.max_page`).
    pub limit: Option<u32>,
}

/// Stored JSON as it is (`null` if it is not JSON, which the journal never writes).
fn raw(json: String) -> Box<RawValue> {
    RawValue::from_string(json).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

fn from_row(row: JournalRow) -> EventOut {
    EventOut {
        seq: row.seq,
        time: rfc3339(row.time),
        topic: row.topic,
        actor: raw(row.actor),
        subject: row.subject,
        data: raw(row.data),
    }
}

fn from_event(event: &Event) -> EventOut {
    EventOut {
        seq: event.seq,
        time: rfc3339(event.time),
        topic: event.topic().name().to_owned(),
        actor: raw(serde_json::to_string(&event.actor).unwrap_or_default()),
        subject: event.subject(),
        data: raw(event.data()),
    }
}

/// Whether `actor` may read a row.
fn visible(state: &AppState, actor: &Actor, topic: &str, subject: &str) -> bool {
    Topic::parse(topic).is_some_and(|topic| state.visibility.allows(actor, topic, subject))
}

fn topics(list: Option<&str>) -> Result<Option<Vec<Topic>>, ApiError> {
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    list.split(',')
        .map(|name| {
            Topic::parse(name.trim()).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidValue,
                    format!(
                        "`{name}` is not a topic; the topics are {}.",
                        Topic::ALL.map(Topic::name).join(", ")
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn number(name: &str, value: &str) -> Result<u64, ApiError> {
    value.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidValue,
            format!("`{name}` must be a whole number, not `{value}`."),
        )
    })
}

fn store_failed(error: crate::store::StoreError) -> ApiError {
    tracing::error!(%error, "reading the event journal failed");
    ApiError::new(
        ErrorCode::Unavailable,
        "The event journal cannot be read now; retry.",
    )
}

/// Pages through the journal: durable events after `after`, oldest first, those the caller may
/// read. Ephemeral events (portal items) are not kept; follow them with the stream.
#[utoipa::path(get, path = "/api/v1/events", tag = "Events", params(EventsQuery),
    security((), ("bearer" = [])),
    responses((status = 200, description = "A page of events.", body = EventPageOut)))]
pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    uri: Uri,
) -> Result<Json<EventPageOut>, ApiError> {
    let mut after = 0;
    let mut limit = 100;
    let mut wanted = None;
    for (name, value) in query_pairs(uri.query(), &["after", "topics", "limit"])? {
        match name.as_str() {
            "after" => after = number(&name, &value)?,
            "limit" => {
                limit = u32::try_from(number(&name, &value)?)
                    .ok()
                    .filter(|n| (1..=state.events.max_page).contains(n))
                    .ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::InvalidValue,
                            format!("`limit` must be 1 to {}.", state.events.max_page),
                        )
                    })?
            }
            _ => wanted = topics(Some(&value))?,
        }
    }
    let pruned = state.journal.pruned_through().await.map_err(store_failed)?;
    let rows = state
        .journal
        .read(after, wanted.as_deref(), limit)
        .await
        .map_err(store_failed)?;
    let next = rows.last().map_or(after, |row| row.seq);
    let events = rows
        .into_iter()
        .filter(|row| visible(&state, &actor, &row.topic, &row.subject))
        .map(from_row)
        .collect();
    Ok(Json(EventPageOut {
        events,
        next,
        gap: (after < pruned).then_some(GapOut {
            after,
            dropped_upto: pruned,
        }),
    }))
}

/// Follows every event the caller may read, as Server-Sent Events (`id:` is the sequence
/// number, `event:` the topic, `data:` an event object).
///
/// With `Last-Event-ID` the stream first replays the journal after it (durable events; a `gap`
/// event says when some were already dropped), then goes on live; without, it starts with the
/// next event. It ends when the caller's token does.
#[utoipa::path(get, path = "/api/v1/events/stream", tag = "Events",
    security((), ("bearer" = [])),
    params(("topics" = Option<String>, Query, description = "Comma-separated topic names."),
        ("Last-Event-ID" = Option<u64>, Header, description = "The last event id received.")),
    responses((status = 200, description = "An event stream.", body = StreamDataOut,
        content_type = "text/event-stream")))]
pub async fn stream(
    State(state): State<AppState>,
    actor: Actor,
    ClientIp(client): ClientIp,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let mut wanted = None;
    for (_, value) in query_pairs(uri.query(), &["topics"])? {
        wanted = topics(Some(&value))?;
    }
    let resume = match headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        Some(text) => Some(number("Last-Event-ID", text.trim())?),
        None => None,
    };
    let ending = stream_ending(&state, &actor, client)?;
    // Subscribe before reading the journal, so nothing falls between the two.
    let receiver = state.journal.bus().subscribe();
    let mut follow = Follow {
        ending,
        receiver,
        shutdown: state.shutdown.clone(),
        last_sent: 0,
        backfill: false,
        queue: VecDeque::new(),
        wanted,
        actor,
        state,
    };
    if let Some(after) = resume {
        follow.last_sent = after;
        follow.backfill = true;
        let pruned = follow
            .state
            .journal
            .pruned_through()
            .await
            .map_err(store_failed)?;
        if after < pruned {
            follow.queue.push_back(gap(after, pruned));
            follow.last_sent = pruned;
        }
    }
    let stream = futures_util::stream::unfold(follow, |mut follow| async move {
        let event = follow.next().await?;
        Some((Ok(event), follow))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// A `gap` event: events after `after`, up to `dropped_upto`, are gone.
pub(crate) fn gap(after: u64, dropped_upto: u64) -> SseEvent {
    SseEvent::default().event("gap").data(
        serde_json::to_string(&GapOut {
            after,
            dropped_upto,
        })
        .unwrap_or_default(),
    )
}

struct Follow {
    ending: Ending,
    receiver: tokio::sync::broadcast::Receiver<Arc<Event>>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    /// The newest sequence number sent (or skipped).
    last_sent: u64,
    /// Whether the journal after `last_sent` is still to be read.
    backfill: bool,
    queue: VecDeque<SseEvent>,
    wanted: Option<Vec<Topic>>,
    actor: Actor,
    state: AppState,
}

impl Follow {
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            if *self.shutdown.borrow() {
                return None;
            }
            if self.backfill {
                self.read_journal().await?;
                continue;
            }
            tokio::select! {
                received = self.receiver.recv() => match received {
                    Ok(event) => {
                        if event.seq > self.last_sent {
                            self.last_sent = event.seq;
                            if self.shows(event.topic(), &event.subject()) {
                                self.queue.push_back(sse(from_event(&event)));
                            }
                        }
                    }
                    // Fell behind: durable events come back from the journal.
                    Err(RecvError::Lagged(_)) => self.backfill = true,
                    Err(RecvError::Closed) => return None,
                },
                _ = self.shutdown.changed() => return None,
                _ = &mut self.ending => return None,
            }
        }
    }

    fn shows(&self, topic: Topic, subject: &str) -> bool {
        self.wanted.as_ref().is_none_or(|w| w.contains(&topic))
            && self.state.visibility.allows(&self.actor, topic, subject)
    }

    /// Reads the next page of the journal after `last_sent`; the backfill ends with a short
    /// page. `None` ends the stream (the journal cannot be read).
    async fn read_journal(&mut self) -> Option<()> {
        const PAGE: u32 = 500;
        let rows = match self
            .state
            .journal
            .read(self.last_sent, self.wanted.as_deref(), PAGE)
            .await
        {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "reading the event journal for a stream failed");
                return None;
            }
        };
        self.backfill = rows.len() == PAGE as usize;
        for row in rows {
            self.last_sent = row.seq;
            if visible(&self.state, &self.actor, &row.topic, &row.subject) {
                self.queue.push_back(sse(from_row(row)));
            }
        }
        Some(())
    }
}

fn sse(event: EventOut) -> SseEvent {
    SseEvent::default()
        .id(event.seq.to_string())
        .event(event.topic.clone())
        .json_data(event)
        .unwrap_or_default()
}
