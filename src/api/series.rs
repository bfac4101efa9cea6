//! The native streams API: streams (`/api/v1/streams`), their values, a value's inclusion
//! proof, and the node's proof keys.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json_;
use utoipa::ToSchema;

use super::AppState;
use super::admin::{created, json_body};
use super::auth::{authorize, refusal};
use super::error::{ApiError, ErrorCode};
use super::extract::Path;
use crate::access::Actor;
use crate::series::{Inclusion, SeriesError, Stream, StreamId, StreamSpec, Verdict};
use crate::timefmt::{from_micros, parse_micros, rfc3339};

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/streams", get(list_streams).post(create_stream))
        .route(
            "/api/v1/streams/{id}",
            get(get_stream).put(update_stream).delete(delete_stream),
        )
        .route(
            "/api/v1/streams/{id}/values",
            get(super::values::read_values).post(write_values),
        )
        .route(
            "/api/v1/streams/{id}/values/{timestamp}/proof",
            get(value_proof),
        )
        .route(
            "/api/v1/streams/{id}/validate",
            axum::routing::post(validate_range),
        )
        .route("/api/v1/values", get(super::values::read_many))
        .route("/api/v1/proofs/keys", get(proof_keys))
        .route("/api/v1/checkpoints/latest", get(latest_checkpoint))
        .route("/api/v1/checkpoints/key", get(checkpoint_key))
        .route("/api/v1/checkpoints/consistency", get(consistency))
}

/// The answer for a refused series operation.
pub(crate) fn series_error(state: &AppState, error: SeriesError) -> ApiError {
    match error {
        SeriesError::NoStream(id) => {
            ApiError::new(ErrorCode::NotFound, format!("There is no stream `{id}`."))
        }
        SeriesError::Refused(refused) => refusal(refused, &state.auth.realm),
        SeriesError::Invalid(why) => ApiError::new(ErrorCode::InvalidValue, why),
        SeriesError::Conflict(why) => ApiError::new(ErrorCode::Conflict, why),
        SeriesError::TooLarge(why) => ApiError::new(ErrorCode::PayloadTooLarge, why),
        SeriesError::Store(e) => e.into(),
    }
}

/// A stream: its id, its settings, and when it was made and changed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamOut {
    /// Its id (a UUID).
    pub id: String,
    /// A name for people.
    pub name: String,
    /// The unit of its values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// How its values are encoded.
    pub encoding: crate::series::Encoding,
    /// A tree holds `2^merkleTreeDepth` values.
    pub merkle_tree_depth: u8,
    /// A tree with fewer values is closed when its first value is this old.
    pub max_merkle_tree_age_seconds: u32,
    /// How roots are signed.
    pub proof_kind: crate::series::ProofKind,
    /// Who may read its values and proofs.
    pub read: crate::access::PolicyConfig,
    /// Who may write values.
    pub write: crate::access::PolicyConfig,
    /// Days values are kept (absent: forever).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// The datapoint whose history it keeps (its values are that datapoint's writes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datapoint: Option<String>,
    /// When it was created.
    pub created_at: String,
    /// When its settings last changed.
    pub updated_at: String,
}

fn stream_out(stream: &Stream) -> StreamOut {
    let time = |us| from_micros(us).map(rfc3339).unwrap_or_default();
    let spec = stream.spec.clone();
    StreamOut {
        id: stream.id.to_string(),
        name: spec.name,
        unit: spec.unit,
        encoding: spec.encoding,
        merkle_tree_depth: spec.merkle_tree_depth,
        max_merkle_tree_age_seconds: spec.max_merkle_tree_age_seconds,
        proof_kind: spec.proof_kind,
        read: spec.read,
        write: spec.write,
        retention_days: spec.retention_days,
        datapoint: spec.datapoint,
        created_at: time(stream.created_us),
        updated_at: time(stream.updated_us),
    }
}

/// The streams.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamListOut {
    /// The streams the caller may read, oldest first.
    pub streams: Vec<StreamOut>,
}

/// Lists the streams the caller may read.
#[utoipa::path(get, path = "/api/v1/streams", tag = "Streams",
    security((), ("bearer" = [])),
    responses((status = 200, description = "The streams.", body = StreamListOut)))]
pub async fn list_streams(State(state): State<AppState>, actor: Actor) -> Json<StreamListOut> {
    Json(StreamListOut {
        streams: state
            .series
            .streams(&actor)
            .iter()
            .map(|s| stream_out(s))
            .collect(),
    })
}

/// A stream's settings, with its id when creating.
fn spec_in(
    mut body: serde_json::Map<String, Json_>,
) -> Result<(Option<StreamId>, StreamSpec), ApiError> {
    let id = match body.remove("id") {
        None | Some(Json_::Null) => None,
        Some(Json_::String(text)) => Some(StreamId::parse(&text).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidValue,
                "`id` must be a UUID such as 6e89214f-65a1-429c-8569-c0d14126b3da.",
            )
        })?),
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::InvalidValue,
                "`id` must be a UUID string.",
            ));
        }
    };
    let spec = serde_json::from_value(Json_::Object(body)).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidValue,
            format!("The stream is not acceptable: {e}."),
        )
    })?;
    Ok((id, spec))
}

/// Creates a stream (`id` generated when absent). Needs the admin policy.
#[utoipa::path(post, path = "/api/v1/streams", tag = "Streams",
    security(("bearer" = [])),
    request_body(content = StreamSpec, description = "The stream's settings, and `id` (a UUID) to choose it; generated when absent."),
    responses((status = 201, description = "Created.", body = StreamOut),
        (status = 409, description = "The id is taken.")))]
pub async fn create_stream(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(&state, &state.auth.admin, &actor)?;
    let (id, spec) = spec_in(json_body(&state, &headers, body).await?)?;
    let stream = state
        .series
        .create(id, spec)
        .await
        .map_err(|e| series_error(&state, e))?;
    Ok(created(stream_out(&stream)))
}

/// Reads a stream's settings.
#[utoipa::path(get, path = "/api/v1/streams/{id}", tag = "Streams",
    security((), ("bearer" = [])),
    params(("id" = String, Path, description = "The stream's UUID.")),
    responses((status = 200, description = "The stream.", body = StreamOut)))]
pub async fn get_stream(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<StreamOut>, ApiError> {
    let stream = state
        .series
        .stream(&actor, &id)
        .map_err(|e| series_error(&state, e))?;
    Ok(Json(stream_out(&stream)))
}

/// Replaces a stream's settings (its encoding cannot change). Needs the admin policy.
#[utoipa::path(put, path = "/api/v1/streams/{id}", tag = "Streams",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The stream's UUID.")),
    request_body(content = StreamSpec, description = "The stream's settings (the encoding cannot change)."),
    responses((status = 200, description = "The stream.", body = StreamOut),
        (status = 409, description = "The stream keeps a datapoint's history: its settings follow the configuration.")))]
pub async fn update_stream(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<StreamOut>, ApiError> {
    authorize(&state, &state.auth.admin, &actor)?;
    let (_, spec) = spec_in(json_body(&state, &headers, body).await?)?;
    let stream = state
        .series
        .update(&id, spec)
        .await
        .map_err(|e| series_error(&state, e))?;
    Ok(Json(stream_out(&stream)))
}

/// Deletes a stream with its values and proofs. Needs the admin policy.
#[utoipa::path(delete, path = "/api/v1/streams/{id}", tag = "Streams",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The stream's UUID.")),
    responses((status = 204, description = "Deleted."),
        (status = 409, description = "The stream keeps the history of a configured datapoint.")))]
pub async fn delete_stream(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &state.auth.admin, &actor)?;
    state
        .series
        .delete(&actor, &id)
        .await
        .map_err(|e| series_error(&state, e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// A value to write natively: its timestamp and its value as natural JSON (a number, a
/// boolean, text, or base64 for byte encodings).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValueIn {
    /// RFC 3339 with any offset, at most microsecond precision.
    pub timestamp: String,
    /// The value.
    #[schema(value_type = serde_json::Value)]
    pub value: Json_,
}

/// How many values were stored.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InsertedOut {
    /// The count.
    pub inserted_count: usize,
}

/// A timestamp in a body or path, as microseconds.
pub(crate) fn timestamp(name: &str, text: &str, assume_utc: bool) -> Result<i64, ApiError> {
    parse_micros(text, assume_utc)
        .map_err(|e| ApiError::new(ErrorCode::InvalidValue, format!("`{name}`: {e}.")))
}

/// Writes values to a stream: all or none.
#[utoipa::path(post, path = "/api/v1/streams/{id}/values", tag = "Streams",
    security((), ("bearer" = [])),
    params(("id" = String, Path, description = "The stream's UUID.")),
    request_body(content = [ValueIn]),
    responses((status = 200, description = "Stored.", body = InsertedOut),
        (status = 409, description = "A timestamp is taken or already under a proof.")))]
pub async fn write_values(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<InsertedOut>, ApiError> {
    let items: Vec<ValueIn> = json_body(&state, &headers, body).await?;
    let stream = state
        .series
        .writable(&actor, &id)
        .map_err(|e| series_error(&state, e))?;
    let mut batch = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let ts = timestamp(&format!("[{n}].timestamp"), &item.timestamp, false)?;
        let bytes = stream.spec.encoding.from_json(&item.value).map_err(|why| {
            ApiError::new(ErrorCode::InvalidValue, format!("`[{n}].value`: {why}."))
        })?;
        batch.push((stream.id, ts, bytes));
    }
    let count = state
        .series
        .ingest(&actor, batch)
        .await
        .map_err(|e| series_error(&state, e))?;
    Ok(Json(InsertedOut {
        inserted_count: count,
    }))
}

/// A value's inclusion proof: check it with SHA-256 and the proof key alone (the README gives
/// the procedure).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InclusionOut {
    /// The stream.
    pub stream_id: String,
    /// The value's timestamp.
    pub timestamp: String,
    /// The value's timestamp in microseconds since the Unix epoch (what the leaf holds).
    pub timestamp_micros: i64,
    /// The value's bytes (base64).
    pub value: String,
    /// The leaf's hash, `SHA-256(0x00 ‖ leaf)` (base64).
    pub leaf_hash: String,
    /// The value's index in its tree.
    pub leaf_index: u64,
    /// How many values the tree holds.
    pub tree_size: i64,
    /// The audit path, from the leaf up (base64 hashes).
    pub audit_path: Vec<String>,
    /// The tree's signed root.
    pub proof: ProofOut,
    /// The root's place in the log of roots under the latest checkpoint; null until a
    /// checkpoint covers it.
    pub checkpoint: Option<LogInclusionOut>,
}

/// A tree's root in the log of roots, under a signed checkpoint.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogInclusionOut {
    /// The root's leaf index in the log.
    pub log_index: u64,
    /// The checkpoint's size.
    pub log_size: u64,
    /// The leaf's audit path in the checkpoint's tree, from the leaf up (base64 hashes).
    pub log_path: Vec<String>,
    /// The signed checkpoint (C2SP tlog-checkpoint in a signed note).
    pub note: String,
}

/// A tree's signed root.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProofOut {
    /// The proof's id.
    pub id: String,
    /// The root hash (base64).
    pub root_hash: String,
    /// The root's signature (base64).
    pub signature: String,
    /// How it is signed.
    pub proof_kind: String,
    /// The signing key's `kid` in `/api/v1/proofs/keys`.
    pub key_id: String,
    /// The tree's first value's timestamp.
    pub first_timestamp: String,
    /// The tree's last value's timestamp (the proof's location).
    pub last_timestamp: String,
    /// The same, in microseconds since the Unix epoch (what the log leaf holds).
    pub last_timestamp_micros: i64,
    /// `ceil(log2(treeSize))`.
    pub merkle_tree_depth: i32,
}

fn inclusion_out(stream: &str, inclusion: &Inclusion) -> InclusionOut {
    let time = |us| from_micros(us).map(rfc3339).unwrap_or_default();
    let id = StreamId::parse(stream).unwrap_or(StreamId([0; 16]));
    let leaf = crate::series::proof::leaf(&id, inclusion.value.ts_us, &inclusion.value.value);
    let proof = &inclusion.proof;
    InclusionOut {
        stream_id: id.to_string(),
        timestamp: time(inclusion.value.ts_us),
        timestamp_micros: inclusion.value.ts_us,
        value: STANDARD.encode(&inclusion.value.value),
        leaf_hash: STANDARD.encode(crate::merkle::leaf_hash(&leaf)),
        leaf_index: inclusion.leaf_index,
        tree_size: proof.size,
        audit_path: inclusion.path.iter().map(|h| STANDARD.encode(h)).collect(),
        proof: ProofOut {
            id: proof.id.clone(),
            root_hash: STANDARD.encode(&proof.root),
            signature: STANDARD.encode(&proof.signature),
            proof_kind: proof.kind.clone(),
            key_id: proof.kid.clone(),
            first_timestamp: time(proof.first_us),
            last_timestamp: time(proof.last_us),
            last_timestamp_micros: proof.last_us,
            merkle_tree_depth: proof.depth,
        },
        checkpoint: inclusion.log.as_ref().map(|log| LogInclusionOut {
            log_index: log.index,
            log_size: log.size,
            log_path: log.path.iter().map(|h| STANDARD.encode(h)).collect(),
            note: log.note.clone(),
        }),
    }
}

/// A value's inclusion proof. 404 when there is no value there; 409 while its tree is open.
#[utoipa::path(get, path = "/api/v1/streams/{id}/values/{timestamp}/proof", tag = "Streams",
    security((), ("bearer" = [])),
    params(("id" = String, Path, description = "The stream's UUID."),
        ("timestamp" = String, Path, description = "The value's timestamp (RFC 3339).")),
    responses((status = 200, description = "The proof.", body = InclusionOut),
        (status = 409, description = "The value's tree is still open, or its values no longer match the signed root.")))]
pub async fn value_proof(
    State(state): State<AppState>,
    actor: Actor,
    Path((id, at)): Path<(String, String)>,
) -> Result<Json<InclusionOut>, ApiError> {
    let ts = parse_micros(&at, false).map_err(|e| {
        ApiError::new(
            ErrorCode::NotFound,
            format!(
                "No value is at `{}`: {e}.",
                crate::jose::json::truncate(&at)
            ),
        )
    })?;
    let found = state
        .series
        .inclusion(&actor, &id, ts)
        .await
        .map_err(|e| series_error(&state, e))?;
    match found {
        Ok(inclusion) => Ok(Json(inclusion_out(&id, &inclusion))),
        Err(Verdict::Fail_ValuesNotFound) => Err(ApiError::new(
            ErrorCode::NotFound,
            format!("Stream {id} holds no value at {at}."),
        )),
        Err(verdict) => Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "No inclusion proof: {} ({}).",
                verdict.message(),
                verdict.name()
            ),
        )),
    }
}

/// The validation of a range of a stream's proofs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RangeIn {
    /// From this last timestamp (inclusive; default the first).
    #[serde(default)]
    pub from: Option<String>,
    /// To this last timestamp (exclusive; default none).
    #[serde(default)]
    pub to: Option<String>,
}

/// What a range validation found.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RangeValidationOut {
    /// The stream.
    pub stream_id: String,
    /// Whether every proof in the range is valid.
    pub valid: bool,
    /// How many proofs were checked.
    pub number_of_proofs: usize,
    /// How many were valid.
    pub valid_proofs: usize,
    /// The proofs that were not, by last timestamp.
    pub failures: Vec<FailureOut>,
}

/// A proof that failed validation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailureOut {
    /// Its last timestamp.
    pub last_timestamp: String,
    /// The verdict.
    pub result_code: String,
}

/// Validates every proof of a stream whose last timestamp is in a range (at most
/// `values.max_page` proofs per call), recording each verdict.
#[utoipa::path(post, path = "/api/v1/streams/{id}/validate", tag = "Streams",
    security((), ("bearer" = [])),
    params(("id" = String, Path, description = "The stream's UUID.")),
    request_body(content = RangeIn),
    responses((status = 200, description = "The counts and failures.", body = RangeValidationOut)))]
pub async fn validate_range(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<RangeValidationOut>, ApiError> {
    let range: RangeIn = json_body(&state, &headers, body).await?;
    let from_us = range
        .from
        .as_deref()
        .map(|t| timestamp("from", t, false))
        .transpose()?
        .unwrap_or(i64::MIN);
    let to_us = range
        .to
        .as_deref()
        .map(|t| timestamp("to", t, false))
        .transpose()?
        .unwrap_or(i64::MAX);
    let checked = state
        .series
        .validate_range(&actor, &id, from_us, to_us)
        .await
        .map_err(|e| series_error(&state, e))?;
    let time = |us| from_micros(us).map(rfc3339).unwrap_or_default();
    let failures: Vec<FailureOut> = checked
        .iter()
        .filter(|(_, v)| *v != Verdict::Success)
        .map(|(last, v)| FailureOut {
            last_timestamp: time(*last),
            result_code: v.name().into(),
        })
        .collect();
    Ok(Json(RangeValidationOut {
        stream_id: id,
        valid: failures.is_empty(),
        number_of_proofs: checked.len(),
        valid_proofs: checked.len() - failures.len(),
        failures,
    }))
}

/// The node's proof keys (active and retired) as a JWK set; each key's `proofKind` names what
/// it signs.
#[utoipa::path(get, path = "/api/v1/proofs/keys", tag = "Streams",
    responses((status = 200, description = "The JWK set.", body = Object)))]
pub async fn proof_keys(State(state): State<AppState>) -> Response {
    Json(state.series.jwks()).into_response()
}

fn text(body: String) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The latest signed checkpoint of the log of roots: a C2SP `tlog-checkpoint` in a signed note
/// (README, "Checkpoints").
#[utoipa::path(get, path = "/api/v1/checkpoints/latest", tag = "Streams",
    responses((status = 200, description = "The signed note.", content_type = "text/plain", body = String),
        (status = 404, description = "No proof has been stored yet.")))]
pub async fn latest_checkpoint(State(state): State<AppState>) -> Result<Response, ApiError> {
    match state
        .series
        .latest_checkpoint()
        .await
        .map_err(|e| series_error(&state, e))?
    {
        Some((note, _)) => Ok(text(note)),
        None => Err(ApiError::new(
            ErrorCode::NotFound,
            "No checkpoint yet: no proof has been stored.",
        )),
    }
}

/// The checkpoints' verifier key, `<name>+<key ID>+<base64(0x01 ‖ Ed25519 public key)>`.
#[utoipa::path(get, path = "/api/v1/checkpoints/key", tag = "Streams",
    responses((status = 200, description = "The verifier key.", content_type = "text/plain", body = String),
        (status = 404, description = "No checkpoint has been signed yet.")))]
pub async fn checkpoint_key(State(state): State<AppState>) -> Result<Response, ApiError> {
    state
        .series
        .checkpoint_key()
        .map(text)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "No checkpoint has been signed yet."))
}

/// A consistency proof of the log of roots.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsistencyOut {
    /// The smaller size.
    pub from: u64,
    /// The larger size.
    pub to: u64,
    /// The proof (RFC 9162 §2.1.4; base64 hashes).
    pub proof: Vec<String>,
}

/// The consistency proof between two sizes of the log of roots: that the log of `to` leaves
/// extends the log of `from` leaves, so no checkpointed root was changed.
#[utoipa::path(get, path = "/api/v1/checkpoints/consistency", tag = "Streams",
    params(("from" = u64, Query, description = "The smaller size (at least 1)."),
        ("to" = u64, Query, description = "The larger size (at most the log's).")),
    responses((status = 200, description = "The proof.", body = ConsistencyOut)))]
pub async fn consistency(
    State(state): State<AppState>,
    uri: Uri,
) -> Result<Json<ConsistencyOut>, ApiError> {
    let (mut from, mut to) = (None, None);
    for (name, value) in super::webhooks::query_pairs(uri.query(), &["from", "to"])? {
        let size = value.parse::<u64>().map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidValue,
                format!("`{name}` is a log size (a whole number)."),
            )
        })?;
        if name == "from" {
            from = Some(size);
        } else {
            to = Some(size);
        }
    }
    let (Some(from), Some(to)) = (from, to) else {
        return Err(ApiError::new(
            ErrorCode::InvalidValue,
            "`from` and `to` are required.",
        ));
    };
    let proof = state
        .series
        .consistency(from, to)
        .await
        .map_err(|e| series_error(&state, e))?;
    Ok(Json(ConsistencyOut {
        from,
        to,
        proof: proof.iter().map(|h| STANDARD.encode(h)).collect(),
    }))
}
