//! The XRTC wire: `POST /v1/auth/{registrationstart,registrationcode,login}` and
//! `POST /v1/item/{set,get}`, byte-compatible with the XRTC seed and its Python SDK; and the
//! portals' native Server-Sent Events (`GET /api/v1/portals/{portalid}/events`).
//!
//! Every request body is read whole (at most PAYLOAD_SIZE_MAX bytes), made strict by
//! [`crate::xrtc::lenient`], and parsed; errors answer in the seed's shape.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;

use crate::api::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::time::Instant;

use super::AppState;
use super::extract::ClientIp;
use super::streams::{Reader, StreamsFull};
use crate::access::Ending;
use crate::portal::{NewItem, Portal, PortalId};
use crate::xrtc::session::Session;
use crate::xrtc::{
    PortalAsk, Rendered, Schedule, SessionCredential, Xrtc, XrtcError, answer, code, group,
    lenient, render,
};

/// The XRTC routes and the portal event stream.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/registrationstart", post(registration_start))
        .route("/v1/auth/registrationcode", post(registration_code))
        .route("/v1/auth/login", post(login))
        .route("/v1/item/set", post(set_item))
        .route("/v1/item/get", post(get_item))
        .route("/api/v1/portals/{portalid}/events", get(portal_events))
}

/// An XRTC error, in the seed's shape.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct XrtcErrorOut {
    /// The error.
    error: XrtcErrorFields,
}

/// An XRTC error's fields.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct XrtcErrorFields {
    /// Its group: 2 system, 3 registration, 4 login, 6 items.
    errorgroup: u8,
    /// Its code (README, "XRTC").
    errorcode: u32,
    /// A sentence for people.
    errormessage: String,
}

impl IntoResponse for XrtcError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let body = XrtcErrorOut {
            error: XrtcErrorFields {
                errorgroup: self.group,
                errorcode: self.code,
                errormessage: self.message,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(after) = self.retry_after {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(after.as_secs_f64().ceil() as u64),
            );
        }
        response
    }
}

fn xrtc(state: &AppState) -> Result<&Arc<Xrtc>, XrtcError> {
    state.xrtc.as_ref().ok_or_else(|| {
        XrtcError::new(
            group::SYSTEM,
            code::UNAVAILABLE,
            "XRTC is turned off on this server.",
        )
    })
}

/// Reads and parses a request body as `T` (lenient JSON, at most PAYLOAD_SIZE_MAX bytes).
async fn parse<T: DeserializeOwned>(
    state: &AppState,
    body: Body,
    error_group: u8,
) -> Result<(T, String), XrtcError> {
    let limit = xrtc(state)?.settings().payload_size_max;
    let parse_fail = |why: String| XrtcError::new(error_group, code::PARSE_FAIL, why);
    let bytes: Bytes =
        match tokio::time::timeout(state.body_timeout(), axum::body::to_bytes(body, limit)).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(_)) => {
                return Err(parse_fail(format!(
                    "The request is larger than PAYLOAD_SIZE_MAX ({limit} bytes) or was cut off."
                )));
            }
            Err(_) => {
                return Err(parse_fail(format!(
                    "The request body did not arrive within {} seconds.",
                    state.body_timeout().as_secs()
                )));
            }
        };
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| parse_fail("The request is not UTF-8 text.".into()))?;
    let strict = lenient::strict(text)
        .ok_or_else(|| parse_fail("The request has a string that never ends.".into()))?;
    match serde_json::from_str::<T>(&strict) {
        Ok(value) => Ok((value, strict)),
        Err(error) => Err(match error.classify() {
            serde_json::error::Category::Data
                if !error.to_string().starts_with("unknown field") =>
            {
                XrtcError::new(
                    error_group,
                    code::INVALID_ARGUMENTS,
                    format!("Invalid arguments: {error}."),
                )
            }
            _ => parse_fail(format!("The request is not valid JSON: {error}.")),
        }),
    }
}

fn ok_json(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// A portal id from the wire, or the seed's error for a bad one.
fn portal_id(error_group: u8, id: &str) -> Result<PortalId, XrtcError> {
    PortalId::parse(id).map_err(|_| {
        invalid(
            error_group,
            format!("portalid {id:?} is not 1 to 32 ASCII letters and digits."),
        )
    })
}

fn invalid(error_group: u8, why: impl Into<String>) -> XrtcError {
    XrtcError::new(error_group, code::INVALID_ARGUMENTS, why)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RegistrationStartIn {
    email: String,
    #[serde(default)]
    registrationtoken: Option<String>,
}

/// Starts a registration: e-mails a six-digit code to `email` and answers a registration
/// token (a repeated start with the token sends a new code).
#[utoipa::path(post, path = "/v1/auth/registrationstart", tag = "XRTC",
    request_body = RegistrationStartIn,
    responses((status = 200, description = "The code is on its way.", body = RegistrationStartOut),
        (status = 400, description = "Not JSON, an invalid e-mail address or token, or a registration limit (codes 20, 30, 32, 33, 40, 41, 42, 43).", body = XrtcErrorOut),
        (status = 503, description = "The mail server or the database cannot be reached (code 1).", body = XrtcErrorOut)))]
async fn registration_start(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Body,
) -> Result<Response, XrtcError> {
    let (input, _): (RegistrationStartIn, _) = parse(&state, body, group::REGISTRATION).await?;
    if input
        .registrationtoken
        .as_deref()
        .is_some_and(|t| t.len() > 128)
    {
        return Err(invalid(
            group::REGISTRATION,
            "The registration token is too long.",
        ));
    }
    let token = xrtc(&state)?
        .registration_start(&input.email, input.registrationtoken.as_deref(), ip)
        .await?;
    Ok(ok_json(
        serde_json::json!({ "registrationtoken": token }).to_string(),
    ))
}

/// A code as the client sent it: `"012345"`, or the number `12345` from lenient clients.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
enum CodeIn {
    Text(String),
    Number(u32),
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RegistrationCodeIn {
    registrationtoken: String,
    emailcode: CodeIn,
}

/// Finishes a registration with the e-mailed code: answers the account id and its first API
/// key, shown only this once.
#[utoipa::path(post, path = "/v1/auth/registrationcode", tag = "XRTC",
    request_body = RegistrationCodeIn,
    responses((status = 200, description = "The account and its key.", body = RegistrationCodeOut),
        (status = 400, description = "Not JSON, an unknown token, a wrong or expired code (codes 20, 30, 33, 34, 42, 43).", body = XrtcErrorOut),
        (status = 503, description = "The database cannot be reached (code 1).", body = XrtcErrorOut)))]
async fn registration_code(
    State(state): State<AppState>,
    body: Body,
) -> Result<Response, XrtcError> {
    let (input, _): (RegistrationCodeIn, _) = parse(&state, body, group::REGISTRATION).await?;
    let code = match input.emailcode {
        CodeIn::Text(text) => text,
        CodeIn::Number(n) => format!("{n:06}"),
    };
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            group::REGISTRATION,
            "The e-mailed code is six digits.",
        ));
    }
    if input.registrationtoken.len() > 128 {
        return Err(invalid(
            group::REGISTRATION,
            "The registration token is too long.",
        ));
    }
    let (accountid, apikey, apikeyname) = xrtc(&state)?
        .registration_code(&input.registrationtoken, &code)
        .await?;
    let mut response = ok_json(
        serde_json::json!({ "accountid": accountid, "apikey": apikey, "apikeyname": apikeyname })
            .to_string(),
    );
    // The key is shown once: keep it out of caches.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginIn {
    accountid: String,
    apikey: String,
}

impl std::fmt::Debug for LoginIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginIn")
            .field("accountid", &self.accountid)
            .finish_non_exhaustive()
    }
}

/// Signs in with an account id and API key; the session is the `JSESSIONID` cookie, bound to
/// the client's address.
#[utoipa::path(post, path = "/v1/auth/login", tag = "XRTC",
    request_body = LoginIn,
    responses((status = 200, description = "Signed in; `Set-Cookie` carries the session.",
            body = ServerTimestampOut),
        (status = 400, description = "Not JSON, wrong credentials, too frequent logins or too many sessions (codes 20, 30, 35, 45, 53).", body = XrtcErrorOut),
        (status = 503, description = "The database cannot be reached (code 1).", body = XrtcErrorOut)))]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Body,
) -> Result<Response, XrtcError> {
    let (input, _): (LoginIn, _) = parse(&state, body, group::LOGIN).await?;
    let (cookie, now_ms) = xrtc(&state)?
        .login(&input.accountid, &input.apikey, ip)
        .await?;
    let secure = if state.tls { "; Secure" } else { "" };
    let set_cookie = format!("JSESSIONID={cookie}; Path=/; HttpOnly; SameSite=Lax{secure}");
    let mut response = ok_json(format!("{{\"servertimestamp\":{now_ms}}}"));
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&set_cookie).map_err(|_| invalid(group::LOGIN, "cookie"))?,
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The `JSESSIONID` cookie's value, from any `Cookie` header.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix("JSESSIONID="))
}

fn session(
    state: &AppState,
    headers: &HeaderMap,
    ip: std::net::IpAddr,
) -> Result<Arc<Session>, XrtcError> {
    xrtc(state)?.session(session_cookie(headers), ip)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SetIn {
    items: Vec<ItemIn>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ItemIn {
    portalid: String,
    /// A string: UTF-8 text or Base64.
    #[schema(value_type = String)]
    payload: Box<RawValue>,
}

/// Sets items: each is the newest of its portal (the account's, created on first use).
#[utoipa::path(post, path = "/v1/item/set", tag = "XRTC",
    request_body = SetIn,
    responses((status = 200, description = "Set.", body = ServerTimestampOut),
        (status = 400, description = "Not JSON, a bad portal id or payload, or a limit of the key or account (codes 20, 30, 50, 51, 52).", body = XrtcErrorOut),
        (status = 401, description = "No valid session (code 10011).", body = XrtcErrorOut),
        (status = 503, description = "The database cannot be reached, or the node's portals are full (codes 1, 55).", body = XrtcErrorOut)))]
async fn set_item(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, XrtcError> {
    let session = session(&state, &headers, ip)?;
    let (input, _): (SetIn, _) = parse(&state, body, group::APPLICATION).await?;
    if input.items.is_empty() {
        return Err(invalid(
            group::APPLICATION,
            "`items` is empty: nothing to set.",
        ));
    }
    let mut items = Vec::with_capacity(input.items.len());
    for item in input.items {
        let portal = portal_id(group::APPLICATION, &item.portalid)?;
        let payload = item.payload.get();
        if !payload.starts_with('"') {
            return Err(invalid(
                group::APPLICATION,
                "A payload is a string (UTF-8 text or Base64).",
            ));
        }
        items.push(NewItem {
            portal,
            payload: payload.into(),
        });
    }
    let xrtc = xrtc(&state)?;
    let now_ms = xrtc.set(&session, items).await?;
    Ok(ok_json(format!("{{\"servertimestamp\":{now_ms}}}")))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct GetIn {
    #[serde(default)]
    portals: Option<Vec<PortalIn>>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    schedule: Option<String>,
    #[serde(default)]
    cutoff: Option<i64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PortalIn {
    portalid: String,
    #[serde(default)]
    servertimestamp: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Probe,
    Watch,
    Stream,
}

/// A get, checked.
struct GetPlan {
    asks: Vec<PortalAsk>,
    mode: Mode,
    schedule: Schedule,
    cutoff_ms: Option<i64>,
}

fn plan(xrtc: &Xrtc, account: &str, input: GetIn) -> Result<Option<GetPlan>, XrtcError> {
    let g = group::APPLICATION;
    let mode = match input
        .mode
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("probe") => Mode::Probe,
        Some("watch") => Mode::Watch,
        Some("stream") => Mode::Stream,
        Some(other) => {
            return Err(invalid(
                g,
                format!("mode {other:?} is not probe, watch or stream."),
            ));
        }
    };
    let schedule = match input
        .schedule
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("LIFO") => Schedule::Lifo,
        Some("FIFO") => Schedule::Fifo,
        Some(other) => {
            return Err(invalid(
                g,
                format!("schedule {other:?} is not LIFO or FIFO."),
            ));
        }
    };
    let cutoff_ms = match input.cutoff {
        None | Some(-1) => None,
        Some(ms) if ms >= 0 => Some(ms),
        Some(ms) => {
            return Err(invalid(
                g,
                format!("cutoff {ms} is neither -1 nor a number of ms."),
            ));
        }
    };
    let Some(portals) = input.portals.filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    if portals.len() > xrtc.settings().portals_count_max {
        return Err(invalid(
            g,
            format!(
                "At most {} portals per get (PORTALS_COUNT_MAX).",
                xrtc.settings().portals_count_max
            ),
        ));
    }
    let mut asks: Vec<PortalAsk> = Vec::with_capacity(portals.len());
    for portal in portals {
        let id = portal_id(g, &portal.portalid)?;
        let since_ms = match portal.servertimestamp {
            None | Some(0) => None,
            Some(ms) if ms > 0 => Some(ms),
            Some(ms) => return Err(invalid(g, format!("servertimestamp {ms} is negative."))),
        };
        if asks.iter().any(|ask| **ask.portal.id() == *id.as_str()) {
            continue;
        }
        asks.push(PortalAsk {
            portal: xrtc.portals.portal_or_empty(account, &id),
            since_ms,
        });
    }
    Ok(Some(GetPlan {
        asks,
        mode,
        schedule,
        cutoff_ms,
    }))
}

/// Gets items: `probe` answers at once, `watch` waits for the first new item (at most
/// `get_item_timeout_ms`), `stream` sends one answer per line (`application/x-ndjson`) until
/// the session is idle or `stream_max_ms` has passed. Without `portals`, the newest item of
/// every portal of the account.
#[utoipa::path(post, path = "/v1/item/get", tag = "XRTC",
    request_body = GetIn,
    responses((status = 200, description = "Items (`{}` when there are none); in `stream` mode \
            one such answer per line.", content(
            (ItemsOut = "application/json"),
            (ItemsOut = "application/x-ndjson"))),
        (status = 400, description = "Not JSON, a bad mode, schedule, cutoff or portal id, or a limit of the key (codes 20, 30, 50, 51).", body = XrtcErrorOut),
        (status = 401, description = "No valid session (code 10011).", body = XrtcErrorOut),
        (status = 503, description = "The node or account has as many streams as it may (code 54), or the database cannot be reached (code 1).", body = XrtcErrorOut)))]
async fn get_item(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, XrtcError> {
    let session = session(&state, &headers, ip)?;
    // Header values share the buffer the request head was read into; let it go before waiting,
    // so hyper can reuse it for its next read instead of allocating another (memory per
    // waiting reader, README "Benchmarks").
    drop(headers);
    let (input, _): (GetIn, _) = parse(&state, body, group::APPLICATION).await?;
    let xrtc = xrtc(&state)?.clone();
    let Some(plan) = plan(&xrtc, &session.account, input)? else {
        return Ok(ok_json(answer(&xrtc.latest_of_all(&session.account))));
    };
    let timeout = Duration::from_millis(xrtc.settings().get_item_timeout_ms);
    match plan.mode {
        Mode::Probe => Ok(ok_json(answer(&xrtc.collect(
            &session,
            &plan.asks,
            plan.schedule,
            plan.cutoff_ms,
        )))),
        Mode::Watch => {
            let mut shutdown = state.shutdown.clone();
            let items = next_items(
                &xrtc,
                &session,
                &plan,
                Instant::now() + timeout,
                &mut shutdown,
            )
            .await
            .unwrap_or_default();
            session.touch(xrtc.now_ms());
            Ok(ok_json(answer(&items)))
        }
        Mode::Stream => {
            let lifetime = Duration::from_millis(xrtc.settings().stream_max_ms);
            let ending = session_ending(&state, &xrtc, &session, Some(lifetime))?;
            let lines = stream_lines(xrtc, session, plan, state.shutdown.clone(), ending);
            Ok((
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-ndjson"),
                )],
                Body::from_stream(lines),
            )
                .into_response())
        }
    }
}

/// Waits until the plan's portals have items for the session, `deadline`, or shutdown.
/// Registers for wake-ups before each look, so no publish is missed.
async fn next_items(
    xrtc: &Xrtc,
    session: &Session,
    plan: &GetPlan,
    deadline: Instant,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<Vec<Rendered>> {
    loop {
        let mut waiters: Vec<_> = plan.asks.iter().map(|ask| ask.portal.waiter()).collect();
        for waiter in &mut waiters {
            waiter.register();
        }
        let items = xrtc.collect(session, &plan.asks, plan.schedule, plan.cutoff_ms);
        if !items.is_empty() {
            return Some(items);
        }
        if *shutdown.borrow() {
            return None;
        }
        tokio::select! {
            _ = futures_util::future::select_all(waiters) => {}
            () = tokio::time::sleep_until(deadline) => return None,
            _ = shutdown.changed() => return None,
        }
    }
}

/// Stream mode: one `{"items":[…]}` line per batch as items arrive, `{}` as a keep-alive;
/// ends after GET_ITEM_TIMEOUT without items, at `stream_max_ms`, or at shutdown.
fn stream_lines(
    xrtc: Arc<Xrtc>,
    session: Arc<Session>,
    plan: GetPlan,
    shutdown: tokio::sync::watch::Receiver<bool>,
    ending: Ending,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    struct Streaming {
        xrtc: Arc<Xrtc>,
        session: Arc<Session>,
        plan: GetPlan,
        shutdown: tokio::sync::watch::Receiver<bool>,
        ending: Ending,
        end: Instant,
        idle_end: Instant,
    }
    let settings = xrtc.settings();
    let started = Instant::now();
    let streaming = Streaming {
        end: started + Duration::from_millis(settings.stream_max_ms),
        idle_end: started + Duration::from_millis(settings.get_item_timeout_ms),
        xrtc,
        session,
        plan,
        shutdown,
        ending,
    };
    futures_util::stream::unfold(streaming, |mut s| async move {
        let settings = s.xrtc.settings();
        let idle = Duration::from_millis(settings.get_item_timeout_ms);
        let keepalive = Duration::from_millis(settings.keepalive_ms);
        let now = Instant::now();
        let until = s.idle_end.min(s.end);
        if now >= until {
            return None;
        }
        let wake = until.min(now + keepalive);
        let next = tokio::select! {
            items = next_items(&s.xrtc, &s.session, &s.plan, wake, &mut s.shutdown) => items,
            _ = &mut s.ending => return None,
        };
        let line = match next {
            Some(items) => {
                s.idle_end = Instant::now() + idle;
                answer(&items)
            }
            None if *s.shutdown.borrow() => return None,
            None if Instant::now() >= until => return None,
            None => "{}".to_owned(),
        };
        s.session.touch(s.xrtc.now_ms());
        Some((Ok(Bytes::from(line + "\n")), s))
    })
}

/// Opens a stream of `session` within the stream limits: it ends with the session, its API
/// key, or at its maximum lifetime (`lifetime` when shorter than the node's).
fn session_ending(
    state: &AppState,
    xrtc: &Arc<Xrtc>,
    session: &Arc<Session>,
    lifetime: Option<Duration>,
) -> Result<Ending, XrtcError> {
    let reader = Reader::Account(session.account.shared().clone());
    let credential = Arc::new(SessionCredential {
        xrtc: xrtc.clone(),
        session: session.clone(),
    });
    state
        .streams
        .open(reader, credential, lifetime)
        .map_err(|full| {
            XrtcError::new(group::SYSTEM, code::TOO_MANY_STREAMS, full.sentence())
                .retry_after(StreamsFull::RETRY)
        })
}

/// A portal item as the event stream sends it (the same object as in an XRTC get answer).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // documents the wire; the text is rendered by `crate::xrtc::render`
pub struct PortalItemOut {
    /// The portal.
    portalid: String,
    /// The payload exactly as it was set (a string: UTF-8 text or Base64).
    payload: String,
    /// When the item arrived (Unix milliseconds).
    servertimestamp: i64,
}

/// `{"registrationtoken"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // documents the wire
pub struct RegistrationStartOut {
    /// Names the registration in `registrationcode` (and in a repeated start).
    registrationtoken: String,
}

/// A new account and its first key.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // documents the wire
pub struct RegistrationCodeOut {
    /// The account.
    accountid: String,
    /// The API key, shown only here: 32 letters and digits (about 190 bits), the seed's format.
    apikey: String,
    /// The key's name.
    apikeyname: String,
}

/// `{"servertimestamp"}`: the server's time (Unix milliseconds).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // documents the wire
pub struct ServerTimestampOut {
    /// Unix milliseconds.
    servertimestamp: i64,
}

/// A get's answer: `{"items": [...]}`, or `{}` when there are none.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // documents the wire
pub struct ItemsOut {
    /// The items, newest first (LIFO) or oldest first (FIFO).
    #[serde(skip_serializing_if = "Option::is_none")]
    items: Option<Vec<PortalItemOut>>,
}

/// What a portal's event stream's `data:` carries: an item, or, in a `gap` event, which items
/// are gone.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documents the wire
pub enum PortalStreamDataOut {
    /// An item.
    Item(PortalItemOut),
    /// A `gap` event.
    Gap(super::events::GapOut),
}

/// Follows a portal of the session's account as Server-Sent Events.
///
/// Authenticated by the XRTC session cookie (`JSESSIONID` from `POST /v1/auth/login`, from the
/// same client address). Each `portal.item.set` event's `id` is the item's sequence number;
/// `Last-Event-ID` resumes after it, and a `gap` event (`{"after", "droppedUpto"}`) says that
/// items after it already left the ring (overwritten or older than ITEM_AGE_MAX). Without
/// `Last-Event-ID` the stream starts with the next item set.
#[utoipa::path(get, path = "/api/v1/portals/{portalid}/events", tag = "Portals",
    params(("portalid" = String, Path, description = "The portal: 1 to 32 ASCII letters and digits."),
        ("Last-Event-ID" = Option<u64>, Header, description = "The last event id received.")),
    responses(
        (status = 200, description = "An event stream of `portal.item.set` (and `gap`) events.",
            body = PortalStreamDataOut, content_type = "text/event-stream"),
        (status = 400, description = "A malformed portal id, or a limit of the key (codes 30, \
            50, 51).", body = XrtcErrorOut),
        (status = 401, description = "No valid session (code 10011).", body = XrtcErrorOut),
        (status = 503, description = "The node or account has as many streams as it may \
            (code 54).", body = XrtcErrorOut)))]
pub async fn portal_events(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, XrtcError> {
    let session = session(&state, &headers, ip)?;
    let portal_id = portal_id(group::APPLICATION, &id)?;
    let xrtc = xrtc(&state)?.clone();
    let portal = xrtc.portals.portal_or_empty(&session.account, &portal_id);
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    // Without Last-Event-ID, start after what is there now.
    let cursor = last_seen.unwrap_or_else(|| portal.read(u64::MAX, i64::MIN).newest);
    let follow = Follow {
        ending: session_ending(&state, &xrtc, &session, None)?,
        xrtc,
        portal,
        cursor,
        pending: Vec::new(),
        shutdown: state.shutdown.clone(),
    };
    let stream = futures_util::stream::unfold(follow, |mut follow| async move {
        let event = follow.next().await?;
        Some((Ok(event), follow))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

struct Follow {
    /// Resolves when the session or its key ends, and the stream with it.
    ending: Ending,
    xrtc: Arc<Xrtc>,
    portal: Arc<Portal>,
    cursor: u64,
    pending: Vec<SseEvent>,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl Follow {
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(event) = self.pending.pop() {
                return Some(event);
            }
            if *self.shutdown.borrow() {
                return None;
            }
            let mut waiter = self.portal.waiter();
            waiter.register();
            let not_before =
                self.xrtc.now_ms() - (self.xrtc.settings().item_age_max_seconds * 1000) as i64;
            let slice = self.portal.read(self.cursor, not_before);
            let mut events = Vec::with_capacity(slice.items.len() + 1);
            // Items after the cursor have left the ring (overrun or age): say so.
            if slice.dropped_upto > self.cursor {
                events.push(super::events::gap(self.cursor, slice.dropped_upto));
            }
            for item in &slice.items {
                events.push(
                    SseEvent::default()
                        .id(item.seq.to_string())
                        .event("portal.item.set")
                        .data(render(item).json),
                );
                self.cursor = item.seq;
            }
            self.cursor = self.cursor.max(slice.newest).max(slice.dropped_upto);
            if !events.is_empty() {
                events.reverse();
                self.pending = events;
                continue;
            }
            tokio::select! {
                () = waiter => {}
                _ = self.shutdown.changed() => return None,
                _ = &mut self.ending => return None,
            }
        }
    }
}
