//! Reading values natively: a stream's values a page at a time, cut into buckets
//! (downsampling), several streams in one read, and a datapoint's history; as JSON or, when
//! the client asks for it (`Accept: text/csv`), as CSV (RFC 4180).
//!
//! Every read names a range (`from` inclusive, `to` exclusive) and answers at most a page. A
//! page that may not be the last carries a cursor: `next` in JSON, and a `Link: <…>;
//! rel="next"` header (RFC 8288) for the single-stream reads in either format.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value as Json;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorCode};
use super::extract::Path;
use super::series::{series_error, timestamp};
use crate::access::Actor;
use crate::series::downsample::{Aggregate, Aggregates, Asked, Bucket, parse_interval};
use crate::series::{Encoding, Stream};
use crate::store::{Range, ValueRow};
use crate::timefmt::{from_micros, rfc3339_bytes};

/// Most streams one read names.
pub const MAX_STREAMS: usize = 100;

/// The parameters of a single-stream read.
const PARAMS: &[&str] = &[
    "from", "to", "after", "before", "order", "limit", "interval", "agg",
];
/// The parameters of a read of several streams.
const MANY_PARAMS: &[&str] = &[
    "streams", "from", "to", "after", "before", "order", "limit", "interval", "agg",
];

/// What a read asks for.
#[derive(Debug, Clone, Copy)]
struct Read {
    range: Range,
    /// Downsampling: the interval in microseconds and the aggregates.
    buckets: Option<(i64, Aggregates)>,
    /// CSV rather than JSON.
    csv: bool,
}

/// One stream's answer: a page of values or of buckets, and where the next page starts.
struct Answer {
    stream: std::sync::Arc<Stream>,
    rows: Rows,
    /// The cursor's parameter (`after`, `before` or `from`) and value.
    next: Option<(&'static str, i64)>,
}

enum Rows {
    Values(Vec<ValueRow>),
    Buckets(Vec<Bucket>, Aggregates),
}

/// Whether the client asked for CSV: `text/csv` among its `Accept` media types.
fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';');
            let essence = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            essence.eq_ignore_ascii_case("text/csv") && !refused
        })
}

fn invalid(text: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidValue, text)
}

/// Reads the parameters every read shares; `limit` defaults to `default_limit` and may be at
/// most `max_limit`.
fn parse_read(
    pairs: &[(&'static str, String)],
    headers: &HeaderMap,
    default_limit: u32,
    max_limit: u32,
) -> Result<Read, ApiError> {
    let mut read = Read {
        range: Range {
            from_us: i64::MIN,
            to_us: i64::MAX,
            descending: false,
            offset: 0,
            limit: default_limit.into(),
        },
        buckets: None,
        csv: wants_csv(headers),
    };
    let (mut interval, mut aggregates) = (None, None);
    for (name, value) in pairs {
        let range = &mut read.range;
        match *name {
            "from" => range.from_us = range.from_us.max(timestamp(name, value, false)?),
            "to" => range.to_us = range.to_us.min(timestamp(name, value, false)?),
            "after" => {
                range.from_us = range
                    .from_us
                    .max(timestamp(name, value, false)?.saturating_add(1));
            }
            "before" => range.to_us = range.to_us.min(timestamp(name, value, false)?),
            "order" => {
                range.descending = match value.as_str() {
                    "asc" => false,
                    "desc" => true,
                    _ => return Err(invalid("`order` is `asc` or `desc`.".into())),
                };
            }
            "limit" => {
                range.limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=max_limit).contains(n))
                    .ok_or_else(|| invalid(format!("`limit` is a number from 1 to {max_limit}.")))?
                    .into();
            }
            "interval" => interval = Some(parse_interval(value).map_err(|e| invalid(e + "."))?),
            "agg" => aggregates = Some(Aggregates::parse(value).map_err(|e| invalid(e + "."))?),
            _ => {}
        }
    }
    match (interval, aggregates) {
        (Some(interval), aggregates) => {
            if read.range.descending {
                return Err(invalid(
                    "Buckets come oldest first: leave out `order` when giving `interval`.".into(),
                ));
            }
            // Checked against each stream's encoding once it is known.
            read.buckets = Some((interval, aggregates.unwrap_or(Aggregates::EMPTY)));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "`agg` needs `interval`, the width of a bucket (such as `interval=1m`).".into(),
            ));
        }
        (None, None) => {}
    }
    Ok(read)
}

/// Reads one stream as `read` asks, downsampling through about `scan` stored values at most.
async fn answer(
    state: &AppState,
    actor: &Actor,
    id: &str,
    read: Read,
    scan: u64,
) -> Result<Answer, ApiError> {
    let limit = read.range.limit;
    match read.buckets {
        Some((interval, asked)) => {
            let stream = state
                .series
                .stream(actor, id)
                .map_err(|e| series_error(state, e))?;
            let aggregates = match asked == Aggregates::EMPTY {
                true => Aggregates::default_for(stream.spec.encoding),
                false => asked,
            };
            let (stream, buckets, next) = state
                .series
                .downsample(
                    actor,
                    id,
                    Asked {
                        from_us: read.range.from_us,
                        to_us: read.range.to_us,
                        interval_us: interval,
                        aggregates,
                        limit: usize::try_from(limit).unwrap_or(usize::MAX),
                        scan,
                    },
                )
                .await
                .map_err(|e| series_error(state, e))?;
            Ok(Answer {
                stream,
                rows: Rows::Buckets(buckets, aggregates),
                next: next.map(|from| ("from", from)),
            })
        }
        None => {
            let (stream, values) = state
                .series
                .values(actor, id, read.range)
                .await
                .map_err(|e| series_error(state, e))?;
            let cursor = if read.range.descending {
                "before"
            } else {
                "after"
            };
            let next = (values.len() as i64 == limit)
                .then(|| values.last().map(|v| (cursor, v.ts_us)))
                .flatten();
            Ok(Answer {
                stream,
                rows: Rows::Values(values),
                next,
            })
        }
    }
}

/// A timestamp as RFC 3339 bytes.
fn time(us: i64) -> [u8; 27] {
    from_micros(us).map_or([b'?'; 27], rfc3339_bytes)
}

fn push_json(out: &mut Vec<u8>, value: &Json) {
    // Writing a `serde_json::Value` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// Writes an answer's rows as a JSON array.
fn json_rows(out: &mut Vec<u8>, answer: &Answer) {
    let encoding = answer.stream.spec.encoding;
    out.push(b'[');
    match &answer.rows {
        Rows::Values(values) => {
            for (n, v) in values.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"timestamp\":\"");
                out.extend_from_slice(&time(v.ts_us));
                out.extend_from_slice(b"\",\"storedAt\":\"");
                out.extend_from_slice(&time(v.stored_us));
                out.extend_from_slice(b"\",\"value\":");
                push_json(out, &encoding.to_json(&v.value));
                out.push(b'}');
            }
        }
        Rows::Buckets(buckets, aggregates) => {
            for (n, bucket) in buckets.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"start\":\"");
                out.extend_from_slice(&time(bucket.start_us));
                out.push(b'"');
                for aggregate in aggregates.iter() {
                    out.extend_from_slice(b",\"");
                    out.extend_from_slice(aggregate.name().as_bytes());
                    out.extend_from_slice(b"\":");
                    push_json(out, &aggregate_value(bucket, aggregate, encoding));
                }
                out.push(b'}');
            }
        }
    }
    out.push(b']');
}

/// One aggregate of a bucket as JSON (a non-finite number, which JSON cannot carry, is null).
fn aggregate_value(bucket: &Bucket, aggregate: Aggregate, encoding: Encoding) -> Json {
    let number = |x: f64| serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number);
    match aggregate {
        Aggregate::Count => Json::from(bucket.count),
        Aggregate::Min => number(bucket.min),
        Aggregate::Max => number(bucket.max),
        Aggregate::Avg => number(bucket.avg()),
        Aggregate::Sum => number(bucket.sum),
        Aggregate::First => encoding.to_json(&bucket.first),
        Aggregate::Last => encoding.to_json(&bucket.last),
    }
}

/// A JSON value as one CSV field (RFC 4180): text quoted when it holds a comma, a quote or a
/// line break; null empty. Text that a spreadsheet would run as a formula (it begins with `=`,
/// `+`, `-`, `@`, a tab or a carriage return) is prefixed with `'`, as OWASP advises.
fn csv_field(out: &mut Vec<u8>, value: &Json) {
    match value {
        Json::Null => {}
        Json::String(text) if text.starts_with(['=', '+', '-', '@', '\t', '\r']) => {
            csv_field(out, &Json::String(format!("'{text}")));
        }
        Json::String(text) if text.contains([',', '"', '\r', '\n']) => {
            out.push(b'"');
            out.extend_from_slice(text.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        }
        Json::String(text) => out.extend_from_slice(text.as_bytes()),
        other => push_json(out, other),
    }
}

/// The CSV header of an answer's rows, after `prefix` columns.
fn csv_header(out: &mut Vec<u8>, prefix: &str, rows: &Rows) {
    out.extend_from_slice(prefix.as_bytes());
    match rows {
        Rows::Values(_) => out.extend_from_slice(b"timestamp,storedAt,value"),
        Rows::Buckets(_, aggregates) => {
            out.extend_from_slice(b"start");
            for aggregate in aggregates.iter() {
                out.push(b',');
                out.extend_from_slice(aggregate.name().as_bytes());
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// An answer's rows as CSV lines, each after `prefix` (fields with their commas).
fn csv_rows(out: &mut Vec<u8>, prefix: &str, answer: &Answer) {
    let encoding = answer.stream.spec.encoding;
    match &answer.rows {
        Rows::Values(values) => {
            for v in values {
                out.extend_from_slice(prefix.as_bytes());
                out.extend_from_slice(&time(v.ts_us));
                out.push(b',');
                out.extend_from_slice(&time(v.stored_us));
                out.push(b',');
                csv_field(out, &encoding.to_json(&v.value));
                out.extend_from_slice(b"\r\n");
            }
        }
        Rows::Buckets(buckets, aggregates) => {
            for bucket in buckets {
                out.extend_from_slice(prefix.as_bytes());
                out.extend_from_slice(&time(bucket.start_us));
                for aggregate in aggregates.iter() {
                    out.push(b',');
                    csv_field(out, &aggregate_value(bucket, aggregate, encoding));
                }
                out.extend_from_slice(b"\r\n");
            }
        }
    }
}

/// `uri` with its cursor parameter `name` (`after`, `before` or `from`) replaced by the next
/// page's: the next page's address, every other bound kept.
fn next_link(uri: &Uri, (name, us): (&'static str, i64)) -> Option<HeaderValue> {
    let when = String::from_utf8(time(us).to_vec()).ok()?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (key, value) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if key != name {
            query.append_pair(&key, &value);
        }
    }
    query.append_pair(name, &when);
    HeaderValue::from_str(&format!(
        "<{}?{}>; rel=\"next\"",
        uri.path(),
        query.finish()
    ))
    .ok()
}

fn respond(csv: bool, link: Option<HeaderValue>, body: Vec<u8>) -> Response {
    let kind = match csv {
        true => "text/csv; charset=utf-8; header=present",
        false => "application/json",
    };
    let mut response = ([(header::CONTENT_TYPE, kind)], body).into_response();
    if let Some(link) = link {
        response.headers_mut().insert(header::LINK, link);
    }
    response
}

/// One stream's answer as a response.
fn single(uri: &Uri, read: Read, answer: &Answer) -> Response {
    let mut out = Vec::with_capacity(64 + answer_len(answer) * 96);
    if read.csv {
        csv_header(&mut out, "", &answer.rows);
        csv_rows(&mut out, "", answer);
    } else {
        let field: &[u8] = match answer.rows {
            Rows::Values(_) => b"{\"values\":",
            Rows::Buckets(..) => b"{\"buckets\":",
        };
        out.extend_from_slice(field);
        json_rows(&mut out, answer);
        if let Some((_, us)) = answer.next {
            out.extend_from_slice(b",\"next\":\"");
            out.extend_from_slice(&time(us));
            out.push(b'"');
        }
        out.push(b'}');
    }
    respond(read.csv, answer.next.and_then(|n| next_link(uri, n)), out)
}

fn answer_len(answer: &Answer) -> usize {
    match &answer.rows {
        Rows::Values(v) => v.len(),
        Rows::Buckets(b, _) => b.len(),
    }
}

/// The query of a native read of values (a stream's, several streams', a datapoint's history).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// From this timestamp (inclusive).
    pub from: Option<String>,
    /// To this timestamp (exclusive).
    pub to: Option<String>,
    /// Only values after this timestamp (the ascending cursor).
    pub after: Option<String>,
    /// Only values before this timestamp (the descending cursor).
    pub before: Option<String>,
    /// `asc` (default) or `desc`; buckets are always ascending.
    pub order: Option<String>,
    /// Most values or buckets (default 100, at most `values.max_page`; in a read of several
    /// streams, per stream).
    pub limit: Option<u32>,
    /// Cut into buckets this wide: a whole number and `us`, `ms`, `s`, `m`, `h` or `d` (`1m`).
    pub interval: Option<String>,
    /// The buckets' aggregates, comma-separated: `count`, `min`, `max`, `avg`, `sum`, `first`,
    /// `last` (default: all that suit the encoding; the numeric ones need FLOAT, DOUBLE, INT32
    /// or INT64).
    pub agg: Option<String>,
}

/// A value as read.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredValueOut {
    /// Its timestamp.
    pub timestamp: String,
    /// When it became durable.
    pub stored_at: String,
    /// The value as natural JSON.
    #[schema(value_type = serde_json::Value)]
    pub value: Json,
}

/// A bucket of values: its start and the aggregates asked for (numbers for `min`, `max`,
/// `avg` and `sum`; values as natural JSON for `first` and `last`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketOut {
    /// The bucket's start: a whole number of intervals since the Unix epoch.
    pub start: String,
    /// How many values it holds.
    pub count: Option<u64>,
    /// The smallest.
    pub min: Option<f64>,
    /// The largest.
    pub max: Option<f64>,
    /// The mean.
    pub avg: Option<f64>,
    /// The sum.
    pub sum: Option<f64>,
    /// The earliest.
    #[schema(value_type = serde_json::Value)]
    pub first: Option<Json>,
    /// The latest.
    #[schema(value_type = serde_json::Value)]
    pub last: Option<Json>,
}

/// A page of a stream's values, or of its buckets when `interval` is given.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValuesOut {
    /// The values, in timestamp order (without `interval`).
    pub values: Option<Vec<StoredValueOut>>,
    /// The buckets, oldest first (with `interval`).
    pub buckets: Option<Vec<BucketOut>>,
    /// When more may follow, the next page's cursor: pass it as `after` (ascending values),
    /// `before` (descending values) or `from` (buckets). The `Link` header holds the whole
    /// address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// One stream's page in a read of several.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamValuesOut {
    /// The stream.
    pub stream_id: String,
    /// Its page, as a single-stream read answers it.
    #[serde(flatten)]
    pub page: ValuesOut,
}

/// A read of several streams.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManyValuesOut {
    /// Each stream's page, in the order asked.
    pub streams: Vec<StreamValuesOut>,
}

/// Reads a stream's values by timestamp, a page at a time, or cut into buckets.
///
/// Values: the cursor is the last value's timestamp (`after`, or `before` in descending
/// order), so pages stay put while values arrive. Buckets (`interval`, and `agg` to choose
/// the aggregates): aligned to whole intervals since the Unix epoch, empty ones left out; the
/// cursor is the next bucket's start, passed as `from`. CSV when `Accept` names `text/csv`.
#[utoipa::path(get, path = "/api/v1/streams/{id}/values", tag = "Streams",
    security((), ("bearer" = [])),
    params(("id" = String, Path, description = "The stream's UUID."), ReadQuery),
    responses((status = 200, description = "The values or buckets (CSV with `Accept: text/csv`).",
        content((ValuesOut = "application/json"), (String = "text/csv")))))]
pub async fn read_values(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    read_one(&state, &actor, &id, &uri, &headers).await
}

/// Reads one stream as its query asks (also a datapoint's history, `id` its stream).
pub(crate) async fn read_one(
    state: &AppState,
    actor: &Actor,
    id: &str,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let pairs = super::webhooks::query_named(uri.query(), PARAMS, false)?;
    let max = state.series.settings().max_page;
    let read = parse_read(&pairs, headers, 100.min(max), max)?;
    let scan = state.series.settings().max_scan;
    let answer = answer(state, actor, id, read, scan).await?;
    Ok(single(uri, read, &answer))
}

/// Reads several streams' values (or buckets) in one range: each stream answers its own page
/// and cursor, as a single-stream read would.
///
/// `limit` counts per stream, and the streams times `limit` may be at most `values.max_page`
/// (the default `limit` is 100 or, with many streams, what fits). Buckets without `agg` get
/// the aggregates that suit every stream named; the streams share `values.max_scan`. In CSV
/// each line starts with its stream's id, and the JSON form carries the cursors.
#[utoipa::path(get, path = "/api/v1/values", tag = "Streams",
    security((), ("bearer" = [])),
    params(("streams" = String, Query, description = "The streams' UUIDs, comma-separated (at most 100)."),
        ReadQuery),
    responses((status = 200, description = "Each stream's values or buckets (CSV with `Accept: text/csv`).",
        content((ManyValuesOut = "application/json"), (String = "text/csv"))),
        (status = 401, description = "A stream's `read` policy needs a token."),
        (status = 403, description = "The token does not meet a stream's `read` policy."),
        (status = 404, description = "A stream does not exist.")))]
pub async fn read_many(
    State(state): State<AppState>,
    actor: Actor,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let pairs = super::webhooks::query_named(uri.query(), MANY_PARAMS, false)?;
    let Some((_, list)) = pairs.iter().find(|(name, _)| *name == "streams") else {
        return Err(invalid(
            "`streams` names the streams to read, comma-separated.".into(),
        ));
    };
    let ids: Vec<&str> = list.split(',').map(str::trim).collect();
    if ids.len() > MAX_STREAMS || ids.iter().any(|id| id.is_empty()) {
        return Err(invalid(format!(
            "`streams` names 1 to {MAX_STREAMS} streams, comma-separated, none empty."
        )));
    }
    if let Some(twice) = ids
        .iter()
        .enumerate()
        .find(|(n, id)| ids[..*n].contains(id))
    {
        return Err(invalid(format!("`streams` names `{}` twice.", twice.1)));
    }
    let max = state.series.settings().max_page;
    let count = u32::try_from(ids.len()).unwrap_or(u32::MAX);
    let fits = (max / count).max(1);
    let read = parse_read(&pairs, &headers, 100.min(fits), max)?;
    if read.range.limit * i64::from(count) > i64::from(max) {
        return Err(invalid(format!(
            "{count} streams of `limit` {} are more than `values.max_page` ({max}) in one \
             read: ask for at most {fits} per stream.",
            read.range.limit
        )));
    }
    let mut read = read;
    if let Some((interval, Aggregates::EMPTY)) = read.buckets {
        // One set of aggregates for every stream (one CSV header): the numeric ones only when
        // every stream is numeric.
        let mut numeric = true;
        for id in &ids {
            let stream = state
                .series
                .stream(&actor, id)
                .map_err(|e| series_error(&state, e))?;
            numeric &= stream.spec.encoding.is_numeric();
        }
        let like = if numeric {
            Encoding::Double
        } else {
            Encoding::StringUtf8
        };
        read.buckets = Some((interval, Aggregates::default_for(like)));
    }
    // The streams share one read's budget of stored values.
    let scan = (state.series.settings().max_scan / u64::from(count)).max(1);
    let mut answers = Vec::with_capacity(ids.len());
    for id in &ids {
        answers.push(answer(&state, &actor, id, read, scan).await?);
    }
    let mut out = Vec::with_capacity(64 + answers.iter().map(answer_len).sum::<usize>() * 128);
    if read.csv {
        if let Some(first) = answers.first() {
            csv_header(&mut out, "streamId,", &first.rows);
        }
        for answer in &answers {
            csv_rows(&mut out, &format!("{},", answer.stream.id), answer);
        }
    } else {
        out.extend_from_slice(b"{\"streams\":[");
        for (n, answer) in answers.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"streamId\":\"");
            out.extend_from_slice(answer.stream.id.to_string().as_bytes());
            out.extend_from_slice(match answer.rows {
                Rows::Values(_) => b"\",\"values\":",
                Rows::Buckets(..) => b"\",\"buckets\":",
            });
            json_rows(&mut out, answer);
            if let Some((_, us)) = answer.next {
                out.extend_from_slice(b",\"next\":\"");
                out.extend_from_slice(&time(us));
                out.push(b'"');
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
    }
    Ok(respond(read.csv, None, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_is_chosen_by_accept_unless_refused() {
        let accept = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static(v));
            wants_csv(&h)
        };
        assert!(accept("text/csv"));
        assert!(accept("application/json, TEXT/CSV;q=0.5"));
        assert!(!accept("text/csv;q=0"));
        assert!(!accept("application/json"));
        assert!(!wants_csv(&HeaderMap::new()));
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        let field = |v: Json| {
            let mut out = Vec::new();
            csv_field(&mut out, &v);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(field(Json::from("plain")), "plain");
        assert_eq!(field(Json::from("a,\"b\"\n")), "\"a,\"\"b\"\"\n\"");
        assert_eq!(field(Json::from(2.5)), "2.5");
        assert_eq!(field(Json::Null), "");
        assert_eq!(field(Json::from("=SUM(A1)")), "'=SUM(A1)");
        assert_eq!(field(Json::from("-1,2")), "\"'-1,2\"");
        assert_eq!(field(Json::from(-1.5)), "-1.5", "numbers are numbers");
    }

    #[test]
    fn the_next_link_replaces_the_cursor_and_keeps_the_rest() {
        let uri: Uri =
            "/api/v1/streams/x/values?limit=2&after=1970-01-01T00:00:00Z&before=2030-01-01T00:00:00Z"
                .parse()
                .unwrap();
        let link = next_link(&uri, ("after", 5)).unwrap();
        assert_eq!(
            link.to_str().unwrap(),
            "</api/v1/streams/x/values?limit=2&before=2030-01-01T00%3A00%3A00Z\
             &after=1970-01-01T00%3A00%3A00.000005Z>; rel=\"next\""
        );
        // Descending: `before` is the cursor and `after` the bound that stays.
        let uri: Uri = "/v?order=desc&after=1970-01-01T00:00:00Z&before=1970-01-01T00:00:09Z"
            .parse()
            .unwrap();
        let link = next_link(&uri, ("before", 5)).unwrap();
        assert_eq!(
            link.to_str().unwrap(),
            "</v?order=desc&after=1970-01-01T00%3A00%3A00Z&before=1970-01-01T00%3A00%3A00.000005Z>; \
             rel=\"next\""
        );
    }
}
