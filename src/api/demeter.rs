//! The Tributech-compatible surface under `/demeter/api` (tags `Values` and `Proof`): typed
//! values in and out, proof locations, a proof's validation history, and validation. Shapes
//! follow the public Tributech Node API (camelCase bodies, `PageNumber`/`PageSize` paging,
//! plain arrays, `+00:00` times); query names are matched without regard to case, as ASP.NET
//! does. `[tributech]` policies apply first, then each stream's own.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::Value as Json_;
use utoipa::ToSchema;

use super::AppState;
use super::admin::json_body;
use super::auth::authorize;
use super::error::{ApiError, ErrorCode};
use super::extract::Path;
use super::series::{InsertedOut, series_error, timestamp};
use crate::access::Actor;
use crate::series::{Kind, Received, StreamId, Submitted, Verdict};
use crate::store::Range;
use crate::timefmt::{from_micros, rfc3339_dotnet};

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/demeter/api/values", post(write_raw))
        .route(
            "/demeter/api/values/{kind}",
            get(read_typed).post(write_typed),
        )
        .route("/demeter/api/locations/multiple", get(locations))
        .route("/demeter/api/proofhistory", get(proof_history))
        .route("/demeter/api/validate", post(validate))
        .route("/demeter/api/proofs", post(submit_proofs))
}

fn time(us: i64) -> String {
    from_micros(us).map(rfc3339_dotnet).unwrap_or_default()
}

fn kind(name: &str) -> Result<Kind, ApiError> {
    Kind::parse(name).ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            format!(
                "`{}` is not a value type; use double, float, int, long, bool, stringUtf8, \
                 string or byte.",
                crate::jose::json::truncate(name)
            ),
        )
    })
}

/// Reads `{streamId, timestamp, value}` items (member names in any case) as a batch, the
/// values as `kind`.
async fn write(
    state: &AppState,
    actor: &Actor,
    kind: Kind,
    headers: &HeaderMap,
    body: Body,
) -> Result<Json<InsertedOut>, ApiError> {
    authorize(state, &state.auth.tributech_write, actor)?;
    let body: Json_ = json_body(state, headers, body).await?;
    let items = one_or_many(
        body,
        "`{streamId, timestamp, value}`",
        state.series.settings().max_batch,
    )?;
    let mut batch = Vec::with_capacity(items.len());
    for (n, item) in items.into_iter().enumerate() {
        let Json_::Object(members) = item else {
            return Err(ApiError::new(
                ErrorCode::InvalidValue,
                format!("`[{n}]` is not an object {{streamId, timestamp, value}}."),
            ));
        };
        let (mut stream, mut ts, mut value) = (None, None, None);
        for (name, member) in members {
            match name.to_ascii_lowercase().as_str() {
                "streamid" => stream = Some(member),
                "timestamp" => ts = Some(member),
                "value" => value = Some(member),
                _ => {
                    return Err(ApiError::new(
                        ErrorCode::UnknownField,
                        format!("`[{n}].{name}` is not a member; use streamId, timestamp, value."),
                    ));
                }
            }
        }
        let missing = |what: &str| {
            ApiError::new(
                ErrorCode::InvalidValue,
                format!("`[{n}].{what}` is missing."),
            )
        };
        let stream = stream.ok_or_else(|| missing("streamId"))?;
        let id = stream.as_str().and_then(StreamId::parse).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidValue,
                format!("`[{n}].streamId` is not a UUID."),
            )
        })?;
        let ts = ts.ok_or_else(|| missing("timestamp"))?;
        let ts = ts
            .as_str()
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidValue,
                    format!("`[{n}].timestamp` is an RFC 3339 string."),
                )
            })
            .and_then(|t| timestamp(&format!("[{n}].timestamp"), t, false))?;
        let value = value.ok_or_else(|| missing("value"))?;
        let bytes = kind.encode(&value).map_err(|why| {
            ApiError::new(ErrorCode::InvalidValue, format!("`[{n}].value`: {why}."))
        })?;
        let target = state
            .series
            .writable(actor, &id.to_string())
            .map_err(|e| series_error(state, e))?;
        if !kind.fits(target.spec.encoding) {
            return Err(ApiError::new(
                ErrorCode::InvalidValue,
                format!(
                    "`[{n}]`: stream {id} holds {} values, not `{}`.",
                    target.spec.encoding.name(),
                    kind.name()
                ),
            ));
        }
        batch.push((id, ts, bytes));
    }
    let count = state
        .series
        .ingest(actor, batch)
        .await
        .map_err(|e| series_error(state, e))?;
    Ok(Json(InsertedOut {
        inserted_count: count,
    }))
}

/// Stores values of one type: an array of `{streamId, timestamp, value}`. All or none.
#[utoipa::path(post, path = "/demeter/api/values/{kind}", tag = "Values",
    security(("bearer" = [])),
    params(("kind" = String, Path, description = "double, float, int, long, bool, stringUtf8, string (base64) or byte.")),
    request_body(content = Object, description = "An array of {streamId, timestamp, value}."),
    responses((status = 200, description = "Stored.", body = InsertedOut),
        (status = 409, description = "A timestamp is taken or already under a proof.")))]
pub async fn write_typed(
    State(state): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<InsertedOut>, ApiError> {
    let kind = kind(&name)?;
    write(&state, &actor, kind, &headers, body).await
}

/// Stores raw values: `value` is base64, an array of bytes or an array of numbers (each an
/// 8-byte double).
#[utoipa::path(post, path = "/demeter/api/values", tag = "Values",
    security(("bearer" = [])),
    request_body(content = Object, description = "An array of {streamId, timestamp, value}."),
    responses((status = 200, description = "Stored.", body = InsertedOut),
        (status = 404, description = "A `streamId` names no stream."),
        (status = 409, description = "A timestamp is taken or already under a proof.")))]
pub async fn write_raw(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<InsertedOut>, ApiError> {
    write(&state, &actor, Kind::Byte, &headers, body).await
}

/// The query's parameters, names matched without regard to case; each at most once.
fn query(uri: &Uri, known: &[&'static str]) -> Result<Vec<(&'static str, String)>, ApiError> {
    super::webhooks::query_named(uri.query(), known, true)
}

/// A body of one object or an array of them (as the Tributech API takes both); at most `max`.
fn one_or_many(body: Json_, what: &str, max: usize) -> Result<Vec<Json_>, ApiError> {
    let items = match body {
        Json_::Array(items) => items,
        item @ Json_::Object(_) => vec![item],
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidValue,
                format!("The body is {what} or an array of them."),
            ));
        }
    };
    if items.len() > max {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "A request holds at most {max}; this one has {}.",
                items.len()
            ),
        ));
    }
    Ok(items)
}

/// `StreamId`, `From`, `To`, `OrderBy`, `PageNumber`, `PageSize`.
fn paged(state: &AppState, uri: &Uri) -> Result<(String, Range), ApiError> {
    let mut stream = None;
    let mut range = Range {
        from_us: i64::MIN,
        to_us: i64::MAX,
        descending: false,
        offset: 0,
        limit: 100,
    };
    let mut page = 1i64;
    let max = state.series.settings().max_page;
    for (name, value) in query(
        uri,
        &[
            "StreamId",
            "From",
            "To",
            "OrderBy",
            "PageNumber",
            "PageSize",
        ],
    )? {
        match name {
            "StreamId" => stream = Some(value),
            "From" => range.from_us = timestamp(name, &value, true)?,
            "To" => range.to_us = timestamp(name, &value, true)?,
            "OrderBy" => {
                range.descending = match value.to_ascii_lowercase().as_str() {
                    "asc" => false,
                    "desc" => true,
                    _ => {
                        return Err(ApiError::new(
                            ErrorCode::InvalidValue,
                            "`OrderBy` is `asc` or `desc`.",
                        ));
                    }
                };
            }
            "PageNumber" => {
                page = value
                    .parse::<i32>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::InvalidValue,
                            "`PageNumber` is a number from 1 (the first page).",
                        )
                    })?
                    .into();
            }
            _ => {
                range.limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::InvalidValue,
                            format!("`PageSize` is a number from 1 to {max}."),
                        )
                    })?
                    .into();
            }
        }
    }
    range.offset = (page - 1).saturating_mul(range.limit);
    let stream =
        stream.ok_or_else(|| ApiError::new(ErrorCode::InvalidValue, "`StreamId` is required."))?;
    Ok((stream, range))
}

/// A value as Tributech reads it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DemeterValueOut {
    /// The stream.
    pub stream_id: String,
    /// The value's timestamp.
    pub timestamp: String,
    /// When it was stored.
    pub stored_at: String,
    /// The value, decoded as the path's type.
    #[schema(value_type = serde_json::Value)]
    pub value: Json_,
}

/// Reads a stream's values decoded as one type, a page at a time (`From` inclusive, `To`
/// exclusive; `PageSize` default 100, at most `values.max_page`).
#[utoipa::path(get, path = "/demeter/api/values/{kind}", tag = "Values",
    security(("bearer" = [])),
    params(("kind" = String, Path, description = "double, float, int, long, bool, stringUtf8, string (base64) or byte."),
        ("StreamId" = String, Query, description = "The stream."),
        ("From" = Option<String>, Query, description = "From this timestamp (inclusive)."),
        ("To" = Option<String>, Query, description = "To this timestamp (exclusive)."),
        ("OrderBy" = Option<String>, Query, description = "`asc` (default) or `desc`."),
        ("PageNumber" = Option<i32>, Query, description = "The page, from 1."),
        ("PageSize" = Option<u32>, Query, description = "Values per page (default 100).")),
    responses((status = 200, description = "The values.", body = [DemeterValueOut])))]
pub async fn read_typed(
    State(state): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
    uri: Uri,
) -> Result<Json<Vec<DemeterValueOut>>, ApiError> {
    authorize(&state, &state.auth.tributech_read, &actor)?;
    let kind = kind(&name)?;
    let (id, range) = paged(&state, &uri)?;
    let (stream, values) = state
        .series
        .values(&actor, &id, range)
        .await
        .map_err(|e| series_error(&state, e))?;
    if !kind.fits(stream.spec.encoding) {
        return Err(ApiError::new(
            ErrorCode::InvalidValue,
            format!(
                "Stream {} holds {} values; they cannot be read as `{}` (use byte or string \
                 for the raw bytes).",
                stream.id,
                stream.spec.encoding.name(),
                kind.name()
            ),
        ));
    }
    let stream_id = stream.id.to_string();
    Ok(Json(
        values
            .iter()
            .map(|v| DemeterValueOut {
                stream_id: stream_id.clone(),
                timestamp: time(v.ts_us),
                stored_at: time(v.stored_us),
                value: kind.decode(stream.spec.encoding, &v.value),
            })
            .collect(),
    ))
}

/// A proof's location with its latest validation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocationOut {
    /// Empty: Portico anchors roots in its own checkpoint log, not a ledger transaction.
    pub transaction_id: String,
    /// The stream.
    pub stream_id: String,
    /// `ceil(log2(values in the tree))`.
    pub merkle_tree_depth: i32,
    /// The tree's last value's timestamp.
    pub last_timestamp: String,
    /// The latest validation's verdict (null before the first).
    #[schema(value_type = Option<String>)]
    pub validation_proof_result: Option<Verdict>,
    /// When it was validated last.
    pub last_validation_timestamp: Option<String>,
}

/// The proofs of a stream whose last timestamp is in a range.
#[utoipa::path(get, path = "/demeter/api/locations/multiple", tag = "Proof",
    security(("bearer" = [])),
    params(("StreamId" = String, Query, description = "The stream."),
        ("From" = Option<String>, Query, description = "From this last timestamp (inclusive)."),
        ("To" = Option<String>, Query, description = "To this last timestamp (exclusive)."),
        ("OrderBy" = Option<String>, Query, description = "`asc` (default) or `desc`."),
        ("PageNumber" = Option<i32>, Query, description = "The page, from 1."),
        ("PageSize" = Option<u32>, Query, description = "Proofs per page (default 100).")),
    responses((status = 200, description = "The proofs' locations.", body = [LocationOut]),
        (status = 404, description = "`StreamId` names no stream.")))]
pub async fn locations(
    State(state): State<AppState>,
    actor: Actor,
    uri: Uri,
) -> Result<Json<Vec<LocationOut>>, ApiError> {
    authorize(&state, &state.auth.tributech_read, &actor)?;
    let (id, range) = paged(&state, &uri)?;
    let (stream, proofs) = state
        .series
        .proofs(&actor, &id, range)
        .await
        .map_err(|e| series_error(&state, e))?;
    Ok(Json(
        proofs
            .iter()
            .map(|(proof, latest)| LocationOut {
                transaction_id: String::new(),
                stream_id: stream.id.to_string(),
                merkle_tree_depth: proof.depth,
                last_timestamp: time(proof.last_us),
                validation_proof_result: latest.as_ref().and_then(|v| Verdict::parse(&v.result)),
                last_validation_timestamp: latest.as_ref().map(|v| time(v.at_us)),
            })
            .collect(),
    ))
}

/// A validation in a proof's history.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationOut {
    /// The verdict.
    #[schema(value_type = String)]
    pub validation_proof_result: Option<Verdict>,
    /// When.
    pub last_validation_timestamp: String,
}

/// A proof with its validation history, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProofHistoryOut {
    /// Empty (see `locations/multiple`).
    pub transaction_id: String,
    /// The stream.
    pub stream_id: String,
    /// `ceil(log2(values in the tree))`.
    pub merkle_tree_depth: i32,
    /// The tree's last value's timestamp.
    pub last_timestamp: String,
    /// Every validation, newest first.
    pub validation_history: Vec<ValidationOut>,
    /// The root hash (base64).
    pub root_hash: String,
    /// Its signature (base64).
    pub signature: String,
}

/// The proof covering a value's timestamp, with its validation history.
#[utoipa::path(get, path = "/demeter/api/proofhistory", tag = "Proof",
    security(("bearer" = [])),
    params(("StreamId" = String, Query, description = "The stream."),
        ("Timestamp" = String, Query, description = "A value's timestamp.")),
    responses((status = 200, description = "The proof and its history.", body = ProofHistoryOut),
        (status = 404, description = "`StreamId` names no stream, or no proof covers `Timestamp`.")))]
pub async fn proof_history(
    State(state): State<AppState>,
    actor: Actor,
    uri: Uri,
) -> Result<Json<ProofHistoryOut>, ApiError> {
    authorize(&state, &state.auth.tributech_read, &actor)?;
    let (mut stream, mut at) = (None, None);
    for (name, value) in query(&uri, &["StreamId", "Timestamp"])? {
        match name {
            "StreamId" => stream = Some(value),
            _ => at = Some(timestamp(name, &value, true)?),
        }
    }
    let (Some(id), Some(at)) = (stream, at) else {
        return Err(ApiError::new(
            ErrorCode::InvalidValue,
            "`StreamId` and `Timestamp` are required.",
        ));
    };
    let found = state
        .series
        .proof_history(&actor, &id, at)
        .await
        .map_err(|e| series_error(&state, e))?;
    let Some((proof, history)) = found else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("No proof of stream {id} covers that timestamp."),
        ));
    };
    Ok(Json(ProofHistoryOut {
        transaction_id: String::new(),
        stream_id: StreamId::parse(&id).map(|s| s.to_string()).unwrap_or(id),
        merkle_tree_depth: proof.depth,
        last_timestamp: time(proof.last_us),
        validation_history: history
            .iter()
            .map(|v| ValidationOut {
                validation_proof_result: Verdict::parse(&v.result),
                last_validation_timestamp: time(v.at_us),
            })
            .collect(),
        root_hash: STANDARD.encode(&proof.root),
        signature: STANDARD.encode(&proof.signature),
    }))
}

/// What to validate.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidateIn {
    /// The stream.
    pub stream_id: String,
    /// A value's timestamp.
    pub timestamp: String,
}

/// A validation's outcome.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidateOut {
    /// Whether a valid proof covers the value.
    pub valid_proof_exists: bool,
    /// A sentence.
    pub result_message: String,
    /// The verdict.
    #[schema(value_type = String)]
    pub result_code: Verdict,
}

/// Validates the proof covering a value: the root recomputed from the stored values must
/// match the signed one, and the signature must verify. Recorded in the proof's history.
#[utoipa::path(post, path = "/demeter/api/validate", tag = "Proof",
    security(("bearer" = [])),
    request_body(content = ValidateIn),
    responses((status = 200, description = "The verdict.", body = ValidateOut),
        (status = 404, description = "`streamId` names no stream.")))]
pub async fn validate(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ValidateOut>, ApiError> {
    authorize(&state, &state.auth.tributech_read, &actor)?;
    let input: ValidateIn = json_body(&state, &headers, body).await?;
    let at = timestamp("timestamp", &input.timestamp, false)?;
    let verdict = state
        .series
        .validate(&actor, &input.stream_id, at)
        .await
        .map_err(|e| series_error(&state, e))?;
    Ok(Json(ValidateOut {
        valid_proof_exists: verdict == Verdict::Success,
        result_message: verdict.message().into(),
        result_code: verdict,
    }))
}

/// The object's members, names matched without regard to case (as ASP.NET binds them).
fn member<'a>(object: &'a Json_, name: &str) -> Option<&'a Json_> {
    object
        .as_object()?
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

/// A proof's bytes: base64 text or an array of bytes.
fn proof_bytes(value: Option<&Json_>) -> Option<Vec<u8>> {
    match value? {
        Json_::String(text) => STANDARD.decode(text).ok(),
        Json_::Array(items) => items
            .iter()
            .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
            .collect(),
        _ => None,
    }
}

fn submitted(n: usize, item: &Json_) -> Result<Submitted, ApiError> {
    let bad = |what: &str| ApiError::new(ErrorCode::InvalidValue, format!("`[{n}]`: {what}."));
    let proof = member(item, "proof").ok_or_else(|| bad("`proof` is missing"))?;
    let location =
        member(item, "proofLocation").ok_or_else(|| bad("`proofLocation` is missing"))?;
    let text = |object: &Json_, name: &str| {
        member(object, name)
            .and_then(Json_::as_str)
            .map(str::to_owned)
            .ok_or_else(|| bad(&format!("`{name}` is missing or not text")))
    };
    let last = text(location, "lastTimestamp")?;
    Ok(Submitted {
        id: text(proof, "id")?,
        root: proof_bytes(member(proof, "rootHash"))
            .ok_or_else(|| bad("`rootHash` is not base64 or bytes"))?,
        signature: proof_bytes(member(proof, "signature"))
            .ok_or_else(|| bad("`signature` is not base64 or bytes"))?,
        stream: text(location, "streamId")?,
        depth: member(location, "merkleTreeDepth")
            .and_then(Json_::as_i64)
            .and_then(|d| i32::try_from(d).ok())
            .ok_or_else(|| bad("`merkleTreeDepth` is not a whole number"))?,
        last_us: timestamp(&format!("[{n}].proofLocation.lastTimestamp"), &last, false)?,
    })
}

/// A proof's location as stored.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProofLocationOut {
    /// The stream.
    pub stream_id: String,
    /// The tree's depth.
    pub merkle_tree_depth: i32,
    /// The tree's last timestamp.
    pub last_timestamp: String,
}

/// What became of submitted proofs (Tributech's `SaveProofResult`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SaveProofOut {
    /// `Success` when every proof was stored; else the first failure's code
    /// (`Fail_DuplicateProofLocation`, or the check that failed: `Fail_ValuesNotFound`,
    /// `Fail_ProofLocationNotFound`, `Fail_RootHashMismatch`, `Fail_SignatureMismatch`,
    /// `Fail_InvalidPublicKey`).
    pub result_code: String,
    /// What happened to each proof.
    pub result_message: String,
    /// The proofs stored.
    pub created_proof_locations: Vec<ProofLocationOut>,
}

/// Stores proofs devices made for their streams (streams with a `publicKey`): one
/// `{proof: {id, rootHash, signature}, proofLocation: {streamId, merkleTreeDepth,
/// lastTimestamp}}` or an array. Each is checked against the stored values and the device's
/// key and stored, or refused with the check that failed.
#[utoipa::path(post, path = "/demeter/api/proofs", tag = "Proof",
    security(("bearer" = [])),
    request_body(content = Object, description = "One `{proof, proofLocation}` or an array."),
    responses((status = 200, description = "What became of each.", body = SaveProofOut),
        (status = 404, description = "A `streamId` names no stream.")))]
pub async fn submit_proofs(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<SaveProofOut>, ApiError> {
    authorize(&state, &state.auth.tributech_write, &actor)?;
    let body: Json_ = json_body(&state, &headers, body).await?;
    let items = one_or_many(body, "a `{proof, proofLocation}`", 1000)?;
    let submitted: Vec<Submitted> = items
        .iter()
        .enumerate()
        .map(|(n, item)| submitted(n, item))
        .collect::<Result<_, _>>()?;
    let mut created = Vec::new();
    let mut messages = Vec::new();
    let mut first_failure: Option<String> = None;
    for proof in submitted {
        let stream = proof.stream.clone();
        let last = time(proof.last_us);
        match state
            .series
            .submit(&actor, proof)
            .await
            .map_err(|e| series_error(&state, e))?
        {
            Received::Stored(stored) => {
                messages.push(format!("Proof of {stream} at {last} stored"));
                created.push(ProofLocationOut {
                    stream_id: stream,
                    merkle_tree_depth: stored.depth,
                    last_timestamp: last,
                });
            }
            Received::Duplicate => {
                messages.push(format!("A proof of {stream} at {last} exists already"));
                first_failure.get_or_insert_with(|| "Fail_DuplicateProofLocation".into());
            }
            Received::Refused(verdict) => {
                messages.push(format!(
                    "Proof of {stream} at {last} refused: {}",
                    verdict.message()
                ));
                first_failure.get_or_insert_with(|| verdict.name().into());
            }
        }
    }
    Ok(Json(SaveProofOut {
        result_code: first_failure.unwrap_or_else(|| "Success".into()),
        result_message: messages.join("; "),
        created_proof_locations: created,
    }))
}
