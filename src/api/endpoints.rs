//! Configured datapoint endpoints (the Xentara surface): `GET` reads `{"value", "quality",
//! "updateTime"}`; `PUT` or `POST` with `{"value": …}` writes, durably, before answering.

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any};
use bytes::Bytes;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::AppState;
use super::auth::{authorize, refusal};
use super::datapoints::ValueOut;
use crate::access::{Actor, Policy};
use crate::api::error::{ApiError, ErrorCode};
use crate::config::Endpoint;
use crate::datapoint::registry::{DatapointId, Datapoints, WriteError};
use crate::datapoint::{Sample, ValueError};

/// What an endpoint route needs to answer.
#[derive(Debug)]
struct Binding {
    id: DatapointId,
    readable: bool,
    writable: bool,
    allow: &'static str,
    read_policy: Policy,
    write_policy: Policy,
    /// The last `GET` answer and the write it shows (0: never written): a datapoint is read far
    /// more often than written, so each write is rendered once, not once per read.
    rendered: ArcSwap<(u64, Bytes)>,
}

impl Binding {
    /// The `GET` answer for `sample`.
    fn render(&self, sample: Option<&Sample>) -> Bytes {
        let seq = sample.map_or(0, |s| s.seq);
        let cached = self.rendered.load();
        if cached.0 == seq && !cached.1.is_empty() {
            // A copy, not a clone: cloning would make every reader touch one shared counter.
            return Bytes::copy_from_slice(&cached.1);
        }
        let body =
            Bytes::from(serde_json::to_vec(&ValueOut::from_sample(sample)).unwrap_or_default());
        self.rendered.store(Arc::new((seq, body.clone())));
        body
    }
}

/// The route of one configured endpoint. Every method reaches the handler, which answers 405
/// with `Allow` for those the datapoint's access forbids.
pub fn route(datapoints: &Datapoints, endpoint: &Endpoint) -> MethodRouter<AppState> {
    let Some(id) = datapoints.id(endpoint.datapoint.as_str()) else {
        // Config validation guarantees the datapoint exists; refuse rather than panic if not.
        return any(|| async {
            ApiError::new(ErrorCode::NotFound, "This endpoint has no datapoint.")
        });
    };
    let access = datapoints.datapoint(id).access;
    let binding = Arc::new(Binding {
        id,
        readable: access.readable(),
        writable: access.writable(),
        allow: match (access.readable(), access.writable()) {
            (true, true) => "GET, HEAD, PUT, POST, OPTIONS",
            (true, false) => "GET, HEAD, OPTIONS",
            _ => "PUT, POST, OPTIONS",
        },
        read_policy: endpoint.read_policy.clone(),
        write_policy: endpoint.write_policy.clone(),
        rendered: ArcSwap::from_pointee((0, Bytes::new())),
    });
    any(
        move |State(state): State<AppState>, actor: Actor, request: Request| {
            let binding = binding.clone();
            async move {
                handle(&state, &binding, &actor, request)
                    .await
                    .unwrap_or_else(IntoResponse::into_response)
            }
        },
    )
}

async fn handle(
    state: &AppState,
    binding: &Binding,
    actor: &Actor,
    request: Request,
) -> Result<Response, ApiError> {
    let method = request.method().clone();
    match method {
        Method::GET | Method::HEAD if binding.readable => {
            authorize(state, &binding.read_policy, actor)?;
            let body = state
                .datapoints
                .with_current(binding.id, |sample| binding.render(sample));
            Ok((
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response())
        }
        Method::PUT | Method::POST if binding.writable => {
            authorize(state, &binding.write_policy, actor)?;
            let (parts, body) = request.into_parts();
            let literal = read_value(state, &parts.headers, body).await?;
            let sample = state
                .datapoints
                .write_literal(actor, binding.id, literal.get())
                .await
                .map_err(|e| write_refused(state, binding.id, e))?;
            Ok(axum::Json(ValueOut::from_sample(Some(&sample))).into_response())
        }
        Method::OPTIONS => Ok((
            StatusCode::NO_CONTENT,
            [(header::ALLOW, HeaderValue::from_static(binding.allow))],
        )
            .into_response()),
        _ => Err(ApiError::method_not_allowed(&method, binding.allow)),
    }
}

/// The answer for a write the core refused or could not make.
fn write_refused(state: &AppState, id: DatapointId, error: WriteError) -> ApiError {
    match error {
        WriteError::ReadOnly => ApiError::method_not_allowed(&Method::PUT, "GET, HEAD, OPTIONS"),
        WriteError::Refused(refused) => refusal(refused, &state.auth.realm),
        WriteError::Value(error) => rejected(&error),
        WriteError::Stopped => ApiError::new(
            ErrorCode::Unavailable,
            "The server is shutting down; retry.",
        ),
        WriteError::Store(crate::store::StoreError::OutcomeUnknown(why)) => {
            let key = &state.datapoints.datapoint(id).key;
            tracing::error!(%why, datapoint = %key, "write outcome unknown");
            ApiError::new(
                ErrorCode::Unavailable,
                "The store did not confirm the write and could not say whether it took effect; \
                 read the value back before writing again.",
            )
        }
        WriteError::Store(error) => {
            let key = &state.datapoints.datapoint(id).key;
            tracing::error!(%error, datapoint = %key, "write failed");
            ApiError::new(
                ErrorCode::Unavailable,
                "The store could not commit the write; retry.",
            )
        }
    }
}

pub(crate) fn rejected(error: &ValueError) -> ApiError {
    let code = match error {
        ValueError::TypeMismatch { .. } => ErrorCode::TypeMismatch,
        ValueError::IntegerOutOfRange(_) => ErrorCode::IntegerOutOfRange,
        ValueError::NumberOutOfRange(_) => ErrorCode::NumberOutOfRange,
        ValueError::ValueOutOfRange { .. } => ErrorCode::ValueOutOfRange,
        ValueError::StringTooLong { .. } => ErrorCode::StringTooLong,
    };
    ApiError::new(code, format!("`value`: {error}."))
}

/// Whether the content type is JSON: `application/json` or `application/*+json`, any parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Reads the body within the size and time limits and returns the `value` member's literal.
async fn read_value(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Box<RawValue>, ApiError> {
    if !is_json(headers) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "The body must be JSON, sent with Content-Type: application/json.",
        ));
    }
    let bytes = read_body(state, body).await?;
    let members: Members = serde_json::from_slice(&bytes).map_err(|error| {
        if error.is_data() {
            ApiError::new(
                ErrorCode::BodyNotObject,
                "The body must be a JSON object like {\"value\": 1}.",
            )
        } else {
            ApiError::new(
                ErrorCode::MalformedJson,
                format!("The body is not valid JSON: {error}."),
            )
        }
    })?;
    let mut value = None;
    for (name, literal) in members.0 {
        if name != "value" {
            return Err(ApiError::new(
                ErrorCode::UnknownField,
                format!("Unknown member `{name}`; the body has exactly one member, `value`."),
            ));
        }
        if value.replace(literal).is_some() {
            return Err(ApiError::new(
                ErrorCode::DuplicateField,
                "The member `value` appears twice.",
            ));
        }
    }
    value.ok_or_else(|| {
        ApiError::new(
            ErrorCode::MissingValue,
            "The body has no `value` member, e.g. {\"value\": 1}.",
        )
    })
}

pub(crate) async fn read_body(state: &AppState, body: Body) -> Result<Bytes, ApiError> {
    read_body_within(state, body, state.limits.max_body_bytes).await
}

/// The whole body, at most `limit` bytes, within `limits.body_read_timeout_seconds`.
pub(crate) async fn read_body_within(
    state: &AppState,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(state.body_timeout(), axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(ApiError::new(
            ErrorCode::RequestTimeout,
            format!(
                "The body did not arrive within {} s.",
                state.body_timeout().as_secs()
            ),
        )),
        Ok(Err(error)) => {
            if error.into_inner().is::<http_body_util::LengthLimitError>() {
                Err(ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("The body is larger than the limit of {limit} bytes."),
                ))
            } else {
                Err(ApiError::new(
                    ErrorCode::IncompleteBody,
                    "The body could not be read in full.",
                ))
            }
        }
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

/// The members of a JSON object in order, each value kept as its exact literal.
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    members.push((name, map.next_value::<Box<RawValue>>()?));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}
