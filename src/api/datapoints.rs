//! The native datapoint API: list and read datapoints with their metadata, and follow a
//! datapoint's changes as Server-Sent Events.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;

use crate::api::extract::Path;
use axum::http::{HeaderMap, Method};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};

use super::AppState;
use super::auth::{authorize, stream_ending};
use super::extract::ClientIp;
use crate::access::{Actor, Ending};
use crate::api::error::{ApiError, ErrorCode, ProblemOut};
use crate::datapoint::registry::DatapointId;
use crate::datapoint::{Access, Sample, Value, ValueType};
use crate::events::EventPayload;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/datapoints", get(list))
        .route("/api/v1/datapoints/{key}", get(get_one))
        .route("/api/v1/datapoints/{key}/events", get(events))
        .route("/api/v1/datapoints/{key}/history", get(history))
}

impl utoipa::PartialSchema for Value {
    fn schema() -> RefOr<Schema> {
        let one = |ty| ObjectBuilder::new().schema_type(ty);
        OneOfBuilder::new()
            .item(one(Type::Boolean))
            .item(
                one(Type::Integer).format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Int64,
                ))),
            )
            .item(
                one(Type::Number).format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Double,
                ))),
            )
            .item(one(Type::String))
            .description(Some(
                "A boolean, integer, number or string, as the datapoint's type says.",
            ))
            .into()
    }
}

impl ToSchema for Value {}

/// A value's quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Quality {
    /// A value that was written.
    Good,
    /// No value has ever been written; `value` and `updateTime` are null.
    Bad,
}

/// A datapoint's current value, as `GET` on its endpoint answers it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueOut {
    /// The value; null if never written.
    pub value: Option<Value>,
    /// `good`, or `bad` if never written.
    pub quality: Quality,
    /// When the value was written (RFC 3339, UTC); null if never written.
    pub update_time: Option<String>,
}

pub use crate::timefmt::rfc3339;

impl ValueOut {
    /// The answer for a datapoint's current sample.
    pub fn from_sample(sample: Option<&Sample>) -> Self {
        match sample {
            Some(sample) => Self {
                value: Some(sample.value.clone()),
                quality: Quality::Good,
                update_time: Some(rfc3339(sample.update_time)),
            },
            None => Self {
                value: None,
                quality: Quality::Bad,
                update_time: None,
            },
        }
    }
}

/// A datapoint with its metadata and, when readable, its current value.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatapointOut {
    /// The primary key.
    pub key: String,
    /// The value type.
    #[serde(rename = "type")]
    pub value_type: ValueType,
    /// Who may read and write.
    pub access: Access,
    /// Unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Smallest accepted number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest accepted number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Most characters of a string value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// The current value; absent for write-only datapoints, which never reveal it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<ValueOut>,
    /// The stream that keeps its history (every write, provable): read it at
    /// `/api/v1/datapoints/{key}/history` or as any stream. Absent for write-only datapoints
    /// and when `values.datapoint_history` is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
}

/// The list of datapoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct DatapointListOut {
    /// Every declared datapoint, in declaration order.
    pub datapoints: Vec<DatapointOut>,
}

fn describe(state: &AppState, id: DatapointId) -> DatapointOut {
    let point = state.datapoints.datapoint(id);
    DatapointOut {
        key: point.key.to_string(),
        value_type: point.value_type,
        access: point.access,
        unit: point.unit.clone(),
        description: point.description.clone(),
        min: point.min,
        max: point.max,
        max_length: (point.value_type == ValueType::String).then_some(point.max_length),
        current: point
            .access
            .readable()
            .then(|| ValueOut::from_sample(state.datapoints.current(id).as_deref())),
        stream: state.datapoints.history(id).map(|s| s.to_string()),
    }
}

fn find(state: &AppState, key: &str) -> Result<DatapointId, ApiError> {
    state.datapoints.id(key).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownDatapoint,
            format!("No datapoint has the key `{key}`."),
        )
    })
}

/// Lists the datapoints the caller may read, with their metadata and current values.
///
/// A datapoint whose `read` policy the caller does not meet is left out.
#[utoipa::path(get, path = "/api/v1/datapoints", tag = "Datapoints", security((), ("bearer" = [])),
    responses((status = 200, description = "The datapoints.", body = DatapointListOut)))]
pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
) -> Result<Json<DatapointListOut>, ApiError> {
    authorize(&state, &state.auth.api_read, &actor)?;
    let datapoints = state
        .datapoints
        .ids()
        .filter(|&id| state.datapoints.datapoint(id).read.allows(&actor))
        .map(|id| describe(&state, id))
        .collect();
    Ok(Json(DatapointListOut { datapoints }))
}

/// The datapoint `key`, if `actor` may read it through the native API (`auth.api_read` and
/// the datapoint's own `read` policy).
fn readable(state: &AppState, actor: &Actor, key: &str) -> Result<DatapointId, ApiError> {
    authorize(state, &state.auth.api_read, actor)?;
    let id = find(state, key)?;
    authorize(state, &state.datapoints.datapoint(id).read, actor)?;
    Ok(id)
}

/// One datapoint with its metadata and current value.
#[utoipa::path(get, path = "/api/v1/datapoints/{key}", tag = "Datapoints",
    security((), ("bearer" = [])),
    params(("key" = String, Path, description = "The datapoint's key.")),
    responses(
        (status = 200, description = "The datapoint.", body = DatapointOut),
        (status = 401, description = "The datapoint's `read` policy needs a token.",
            body = ProblemOut, content_type = "application/problem+json"),
        (status = 403, description = "The token does not meet the datapoint's `read` policy.",
            body = ProblemOut, content_type = "application/problem+json"),
        (status = 404, description = "No such datapoint.", body = ProblemOut,
            content_type = "application/problem+json")))]
pub async fn get_one(
    State(state): State<AppState>,
    actor: Actor,
    Path(key): Path<String>,
) -> Result<Json<DatapointOut>, ApiError> {
    let id = readable(&state, &actor, &key)?;
    Ok(Json(describe(&state, id)))
}

/// A datapoint's history: every write, kept as a value of the datapoint's stream (see
/// `stream` in the datapoint), read as that stream's values are: by range and cursor, cut into
/// buckets, as JSON or CSV, and provable like any stream's values.
#[utoipa::path(get, path = "/api/v1/datapoints/{key}/history", tag = "Datapoints",
    security((), ("bearer" = [])),
    params(("key" = String, Path, description = "The datapoint's key."),
        super::values::ReadQuery),
    responses(
        (status = 200, description = "The writes, as a stream's values (CSV with `Accept: text/csv`).",
            content((super::values::ValuesOut = "application/json"), (String = "text/csv"))),
        (status = 401, description = "The datapoint's `read` policy needs a token.",
            body = ProblemOut, content_type = "application/problem+json"),
        (status = 403, description = "The token does not meet the datapoint's `read` policy.",
            body = ProblemOut, content_type = "application/problem+json"),
        (status = 404, description = "No such datapoint, or it keeps no history (`values.datapoint_history` is off).",
            body = ProblemOut, content_type = "application/problem+json"),
        (status = 405, description = "The datapoint is write-only.", body = ProblemOut,
            content_type = "application/problem+json")))]
pub async fn history(
    State(state): State<AppState>,
    actor: Actor,
    Path(key): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    let id = readable(&state, &actor, &key)?;
    if !state.datapoints.datapoint(id).access.readable() {
        return Err(ApiError::method_not_allowed(&Method::GET, ""));
    }
    let Some(stream) = state.datapoints.history(id) else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("Datapoint `{key}` keeps no history: `values.datapoint_history` is off."),
        ));
    };
    super::values::read_one(&state, &actor, &stream.to_string(), &uri, &headers).await
}

/// One change of a datapoint, as sent in an SSE `data:` line.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatapointWrittenOut {
    /// The datapoint.
    pub key: String,
    /// The new value, its quality and time.
    #[serde(flatten)]
    pub current: ValueOut,
}

/// Follows a datapoint's changes as Server-Sent Events.
///
/// The stream opens with the current value (unless `Last-Event-ID` shows the client has it),
/// then sends one `datapoint.written` event per write; each event's `id` is the write's sequence
/// number. A client that falls far behind receives the latest value rather than every write.
/// The stream ends when its token does: at its `exp` (plus leeway), or within
/// `auth.revocation_check_seconds` of its revocation.
#[utoipa::path(get, path = "/api/v1/datapoints/{key}/events", tag = "Datapoints",
    security((), ("bearer" = [])),
    params(("key" = String, Path, description = "The datapoint's key."),
        ("Last-Event-ID" = Option<u64>, Header, description = "The last event id received.")),
    responses(
        (status = 200, description = "An event stream of `datapoint.written` events.",
            body = DatapointWrittenOut, content_type = "text/event-stream"),
        (status = 401, description = "The datapoint's `read` policy needs a token.",
            body = ProblemOut, content_type = "application/problem+json"),
        (status = 403, description = "The token does not meet the datapoint's `read` policy.",
            body = ProblemOut, content_type = "application/problem+json"),
        (status = 404, description = "No such datapoint.", body = ProblemOut,
            content_type = "application/problem+json"),
        (status = 405, description = "The datapoint is write-only.", body = ProblemOut,
            content_type = "application/problem+json")))]
pub async fn events(
    State(state): State<AppState>,
    actor: Actor,
    ClientIp(client): ClientIp,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let id = readable(&state, &actor, &key)?;
    if !state.datapoints.datapoint(id).access.readable() {
        return Err(ApiError::method_not_allowed(&Method::GET, ""));
    }
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let ending = stream_ending(&state, &actor, client)?;
    // Subscribe before reading the current value, so no write falls between the two.
    let follow = Follow {
        ending,
        receiver: state.journal.bus().subscribe(),
        shutdown: state.shutdown.clone(),
        id,
        key,
        last_sent: last_seen,
        started: false,
        state,
    };
    let stream = futures_util::stream::unfold(follow, |mut follow| async move {
        let event = follow.next().await?;
        Some((Ok(event), follow))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

struct Follow {
    /// Resolves when the reader's credential ends, and the stream with it.
    ending: Ending,
    receiver: tokio::sync::broadcast::Receiver<std::sync::Arc<crate::events::Event>>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    id: DatapointId,
    key: String,
    last_sent: u64,
    started: bool,
    state: AppState,
}

impl Follow {
    /// The next event to send; `None` ends the stream (shutdown). The current value is sent
    /// only first and after a lag: otherwise every write arrives as its own event, even when
    /// several land between two polls.
    async fn next(&mut self) -> Option<SseEvent> {
        if !self.started {
            self.started = true;
            if let Some(event) = self.current_if_newer() {
                return Some(event);
            }
        }
        loop {
            if *self.shutdown.borrow() {
                return None;
            }
            tokio::select! {
                received = self.receiver.recv() => match received {
                    Ok(event) => {
                        let EventPayload::DatapointWritten { key, value: Some(value) } = &event.payload else {
                            continue;
                        };
                        if key.as_str() == self.key && event.seq > self.last_sent {
                            let sample = Sample { value: value.clone(), update_time: event.time, seq: event.seq };
                            return Some(self.sse(&sample));
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        if let Some(event) = self.current_if_newer() {
                            return Some(event);
                        }
                    }
                    Err(RecvError::Closed) => return None,
                },
                _ = self.shutdown.changed() => return None,
                _ = &mut self.ending => return None,
            }
        }
    }

    fn current_if_newer(&mut self) -> Option<SseEvent> {
        let sample = self.state.datapoints.current(self.id)?;
        (sample.seq > self.last_sent).then(|| self.sse(&sample))
    }

    fn sse(&mut self, sample: &Sample) -> SseEvent {
        self.last_sent = sample.seq;
        let out = DatapointWrittenOut {
            key: self.key.clone(),
            current: ValueOut::from_sample(Some(sample)),
        };
        SseEvent::default()
            .id(sample.seq.to_string())
            .event("datapoint.written")
            .json_data(out)
            .unwrap_or_default()
    }
}
