//! The webhook API under `/api/v1/webhooks/`: the topic catalogue (tag WebHookTopic) and
//! subscriptions with their deliveries and attempt log (tag WebHookSubscription).
//!
//! Every route needs a token of the admin realm with the `portico:admin` or `portico:webhooks`
//! role. A subscription's secret appears once, in the answer that created (or rotated) it.
//! Bodies are JSON with snake_case members; unknown members are refused.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};

use crate::api::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::admin::{created, json_body, no_store};
use crate::access::Actor;
use crate::api::auth::authorize;
use crate::api::error::{ApiError, ErrorCode};
use crate::events::{Durability, Readers, Topic};
use crate::store::{AttemptRow, DeliveryRow, DeliveryState, SubscriptionRow};
use crate::timefmt::rfc3339;
use crate::webhooks::{SubscriptionId, SubscriptionSpec, WebhookError, Webhooks};

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/webhooks/topics", get(list_topics))
        .route(
            "/api/v1/webhooks/subscriptions",
            get(list_subscriptions).post(create_subscription),
        )
        .route(
            "/api/v1/webhooks/subscriptions/{id}",
            get(get_subscription)
                .put(update_subscription)
                .delete(delete_subscription),
        )
        .route(
            "/api/v1/webhooks/subscriptions/{id}/secret",
            post(rotate_secret),
        )
        .route(
            "/api/v1/webhooks/subscriptions/{id}/deliveries",
            get(list_deliveries),
        )
        .route(
            "/api/v1/webhooks/subscriptions/{id}/deliveries/{delivery}/redeliver",
            post(redeliver),
        )
        .route(
            "/api/v1/webhooks/subscriptions/{id}/attempts",
            get(list_attempts),
        )
        .route("/api/v1/webhooks/subscriptions/{id}/replay", post(replay))
}

/// The webhooks, for an actor the webhook managers' policy (`auth.webhook_managers`) lets in.
fn manager(state: &AppState, actor: &Actor) -> Result<Arc<Webhooks>, ApiError> {
    authorize(state, &state.auth.webhook_managers, actor)?;
    state.webhooks.clone().ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            "Webhooks are turned off (`webhooks.enabled = false`).",
        )
    })
}

/// A subscription id from a path; one that cannot be an id names no subscription (404).
fn subscription_id(id: &str) -> Result<SubscriptionId, ApiError> {
    SubscriptionId::parse(id).ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            format!("Subscription `{}` does not exist.", id.escape_default()),
        )
    })
}

impl From<WebhookError> for ApiError {
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::Invalid(why) => ApiError::new(ErrorCode::InvalidValue, why),
            WebhookError::TargetRefused(why) => ApiError::new(ErrorCode::TargetForbidden, why),
            WebhookError::Forbidden(why) => ApiError::new(ErrorCode::Forbidden, why),
            WebhookError::NotFound(what) => {
                ApiError::new(ErrorCode::NotFound, format!("{what} does not exist."))
            }
            WebhookError::TooMany(_) => ApiError::new(ErrorCode::Conflict, format!("{error}.")),
            WebhookError::Store(error) => error.into(),
        }
    }
}

/// Options of a subscription.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OptionsIo {
    /// Count any 2xx answer as delivered (the seed counts only 200).
    pub accept_any_2xx: bool,
    /// Send Standard Webhooks headers (`webhook-id`, `webhook-timestamp`,
    /// `webhook-signature`) besides the Tributech ones.
    pub standard_webhooks: bool,
}

/// A subscription as created or replaced.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionIn {
    /// Where deliveries are POSTed (`http` or `https`).
    pub url: String,
    /// Topic names (`GET /api/v1/webhooks/topics`), or `["*"]` for all.
    #[schema(value_type = Vec<TopicSelector>)]
    pub topics: Vec<String>,
    /// Whether events are delivered (default true). Setting it true re-enables a subscription
    /// that was disabled automatically.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A note for operators.
    #[serde(default)]
    pub description: String,
    /// Options.
    #[serde(default)]
    pub options: OptionsIo,
}

fn yes() -> bool {
    true
}

impl From<SubscriptionIn> for SubscriptionSpec {
    fn from(input: SubscriptionIn) -> Self {
        Self {
            url: input.url,
            topics: input.topics,
            enabled: input.enabled,
            description: input.description,
            accept_any_2xx: input.options.accept_any_2xx,
            standard_webhooks: input.options.standard_webhooks,
        }
    }
}

/// A subscription (its secret is never shown again).
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionOut {
    /// Its id.
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// Its topics.
    #[schema(value_type = Vec<TopicSelector>)]
    pub topics: Vec<String>,
    /// Whether events are delivered.
    pub enabled: bool,
    /// Why it was disabled automatically (cleared when re-enabled).
    pub disabled_reason: Option<String>,
    /// A note.
    pub description: String,
    /// Options.
    pub options: OptionsIo,
    /// Since when every attempt failed (null when the last one succeeded).
    pub failing_since: Option<String>,
    /// QoS 1 deliveries given up on after their last retry.
    pub discarded_total: i64,
    /// Until when the secret before the last rotation signs too.
    pub previous_secret_until: Option<String>,
    /// When it was created.
    pub created: String,
    /// When it was last changed.
    pub updated: String,
}

fn subscription_out(row: SubscriptionRow) -> SubscriptionOut {
    SubscriptionOut {
        previous_secret_until: row.previous.as_ref().map(|(_, until)| rfc3339(*until)),
        id: row.id,
        url: row.url,
        topics: row.topics,
        enabled: row.enabled,
        disabled_reason: row.disabled_reason,
        description: row.description,
        options: OptionsIo {
            accept_any_2xx: row.accept_any_2xx,
            standard_webhooks: row.standard_webhooks,
        },
        failing_since: row.failing_since.map(rfc3339),
        discarded_total: row.discarded_total,
        created: rfc3339(row.created),
        updated: rfc3339(row.updated),
    }
}

/// A new subscription, with its secret: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedOut {
    /// The subscription.
    #[serde(flatten)]
    pub subscription: SubscriptionOut,
    /// The HMAC secret (`whsec_…`): the seed's `HashHMAC` takes it as it is; Standard
    /// Webhooks libraries take it as it is too.
    pub secret: String,
}

/// A new secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretOut {
    /// The new secret.
    pub secret: String,
    /// Until when the previous secret signs too.
    pub previous_secret_until: String,
}

/// A delivery: one event for one subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    /// Its id.
    pub id: i64,
    /// The event's id (`x-tributech-eventid`, `webhook-id`).
    pub event_id: String,
    /// The event's topic.
    pub topic: String,
    /// The event's QoS.
    pub qos: i64,
    /// `pending`, `delivered`, `discarded` (QoS 1, after its last retry) or `dead` (QoS 2).
    pub state: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due (pending deliveries).
    pub next_attempt: Option<String>,
    /// When the event happened.
    pub event_time: String,
    /// The last answer's HTTP status.
    pub last_status: Option<i64>,
    /// The last failure's kind.
    pub last_error: Option<String>,
    /// When it stopped being pending.
    pub finished: Option<String>,
    /// The body sent.
    pub payload: String,
}

fn delivery_out(row: DeliveryRow) -> DeliveryOut {
    DeliveryOut {
        next_attempt: (row.state == DeliveryState::Pending).then(|| rfc3339(row.next_at)),
        id: row.id,
        event_id: row.event_id,
        topic: row.topic,
        qos: row.qos,
        state: row.state.name().to_owned(),
        attempts: row.attempts,
        event_time: rfc3339(row.event_time),
        last_status: row.last_status,
        last_error: row.last_error,
        finished: row.finished.map(rfc3339),
        payload: row.payload,
    }
}

/// One attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptOut {
    /// Its id.
    pub id: i64,
    /// Its delivery.
    pub delivery_id: i64,
    /// 1 for the first attempt (counting restarts after a redelivery or replay).
    pub attempt: i64,
    /// When it started.
    pub time: String,
    /// The HTTP status, if an answer came.
    pub status: Option<i64>,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// `null` when delivered; else `status`, `timeout`, `connect`, `network` or
    /// `forbidden_target`.
    pub error: Option<String>,
    /// The first bytes of the answer's body (or the error, when none came).
    pub response: String,
}

fn attempt_out(row: AttemptRow) -> AttemptOut {
    AttemptOut {
        id: row.id,
        delivery_id: row.delivery_id,
        attempt: row.attempt,
        time: rfc3339(row.at),
        status: row.status,
        duration_ms: row.duration_us as f64 / 1000.0,
        error: row.error_kind,
        response: row.response_start,
    }
}

/// Paging of a subscription's deliveries.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Only deliveries in this state.
    pub state: Option<String>,
    /// Only deliveries with an id below this (the next page).
    pub before: Option<i64>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// Paging of a subscription's attempts.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttemptsQuery {
    /// Only attempts of this delivery.
    pub delivery: Option<i64>,
    /// Only attempts with an id below this (the next page).
    pub before: Option<i64>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// A replay: the finished deliveries whose events happened in a time range.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayIn {
    /// The range's start (RFC 3339), inclusive.
    pub from: String,
    /// The range's end (RFC 3339), exclusive.
    pub to: String,
    /// Which states to replay (default all finished ones: `delivered`, `discarded`, `dead`).
    #[serde(default)]
    pub states: Vec<String>,
}

/// How many deliveries a replay queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayOut {
    /// The deliveries queued again.
    pub replayed: u64,
}

/// The query string's parameters, each named at most once and each one of `known`.
pub(crate) fn query_pairs(
    query: Option<&str>,
    known: &[&'static str],
) -> Result<Vec<(String, String)>, ApiError> {
    Ok(query_named(query, known, false)?
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect())
}

/// [`query_pairs`], each name answered as `known` spells it; with `any_case`, names are matched
/// without regard to case (as ASP.NET binds them, for the Tributech surface).
pub(crate) fn query_named(
    query: Option<&str>,
    known: &[&'static str],
    any_case: bool,
) -> Result<Vec<(&'static str, String)>, ApiError> {
    let mut pairs: Vec<(&'static str, String)> = Vec::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let Some(&canonical) = known
            .iter()
            .find(|k| **k == name || (any_case && k.eq_ignore_ascii_case(&name)))
        else {
            return Err(ApiError::new(
                ErrorCode::UnknownField,
                format!(
                    "`{name}` is not a parameter here; use {}.",
                    known.join(", ")
                ),
            ));
        };
        if pairs.iter().any(|(n, _)| *n == canonical) {
            return Err(ApiError::new(
                ErrorCode::DuplicateField,
                format!("`{canonical}` is given twice."),
            ));
        }
        pairs.push((canonical, value.into_owned()));
    }
    Ok(pairs)
}

fn integer(name: &str, value: &str) -> Result<i64, ApiError> {
    value.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::TypeMismatch,
            format!("`{name}` is `{value}`, not an integer."),
        )
    })
}

impl DeliveriesQuery {
    fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut out = Self::default();
        for (name, value) in query_pairs(query, &["state", "before", "limit"])? {
            match name.as_str() {
                "state" => out.state = Some(value),
                "before" => out.before = Some(integer(&name, &value)?),
                _ => out.limit = Some(integer(&name, &value)?),
            }
        }
        Ok(out)
    }
}

impl AttemptsQuery {
    fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut out = Self::default();
        for (name, value) in query_pairs(query, &["delivery", "before", "limit"])? {
            match name.as_str() {
                "delivery" => out.delivery = Some(integer(&name, &value)?),
                "before" => out.before = Some(integer(&name, &value)?),
                _ => out.limit = Some(integer(&name, &value)?),
            }
        }
        Ok(out)
    }
}

fn limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit.unwrap_or(100) {
        n @ 1..=1000 => Ok(n),
        n => Err(ApiError::new(
            ErrorCode::InvalidValue,
            format!("`limit` is {n}; give 1 to 1000."),
        )),
    }
}

fn state_named(name: &str) -> Result<DeliveryState, ApiError> {
    DeliveryState::ALL
        .into_iter()
        .find(|s| s.name() == name)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidValue,
                format!("`{name}` is not a state; use pending, delivered, discarded or dead."),
            )
        })
}

fn time_named(what: &str, text: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidValue,
            format!("`{what}` is `{text}`, not an RFC 3339 time."),
        )
    })
}

/// Lists every event topic with its QoS.
#[utoipa::path(get, path = "/api/v1/webhooks/topics", tag = "WebHookTopic",
    security(("bearer" = [])),
    responses((status = 200, description = "The topics.", body = [TopicOut])))]
pub async fn list_topics(
    State(state): State<AppState>,
    actor: Actor,
) -> Result<Json<Vec<TopicOut>>, ApiError> {
    manager(&state, &actor)?;
    Ok(Json(Topic::ALL.into_iter().map(TopicOut::from).collect()))
}

/// A string schema listing `values` as its `enum`.
fn string_enum<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values))
        .into()
}

/// A topic's name, from the catalogue (an OpenAPI `enum` made from `events::Topic`).
#[derive(Debug)]
pub struct TopicName;

impl utoipa::PartialSchema for TopicName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_enum(Topic::ALL.map(Topic::name))
    }
}

impl ToSchema for TopicName {}

/// What a subscription names: a topic, or `*` alone for every topic.
#[derive(Debug)]
pub struct TopicSelector;

impl utoipa::PartialSchema for TopicSelector {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_enum(
            Topic::ALL
                .map(Topic::name)
                .into_iter()
                .chain([crate::webhooks::ALL_TOPICS]),
        )
    }
}

impl ToSchema for TopicSelector {}

/// An event topic, from the one catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopicOut {
    /// The topic subscriptions name, e.g. `datapoint.written`.
    #[schema(value_type = TopicName)]
    pub name: &'static str,
    /// The event's name in `x-tributech-event`, e.g. `DatapointWrittenEvent`.
    pub event: &'static str,
    /// 1: high-frequency, retried 4 times, then discarded; 2: retried 10 times, then kept as a
    /// dead letter.
    pub qos: u8,
    /// Whether the journal keeps its events.
    pub durability: Durability,
    /// Who may read its events (a subscription receives only what its maker may read).
    pub readers: Readers,
    /// What happened.
    pub description: &'static str,
}

impl From<Topic> for TopicOut {
    fn from(topic: Topic) -> Self {
        Self {
            name: topic.name(),
            event: topic.event_name(),
            qos: topic.qos(),
            durability: topic.durability(),
            readers: topic.readers(),
            description: topic.description(),
        }
    }
}

/// Lists the subscriptions.
#[utoipa::path(get, path = "/api/v1/webhooks/subscriptions", tag = "WebHookSubscription",
    security(("bearer" = [])),
    responses((status = 200, description = "The subscriptions.", body = [SubscriptionOut])))]
pub async fn list_subscriptions(
    State(state): State<AppState>,
    actor: Actor,
) -> Result<Json<Vec<SubscriptionOut>>, ApiError> {
    let webhooks = manager(&state, &actor)?;
    let rows = webhooks.list().await?;
    Ok(Json(rows.into_iter().map(subscription_out).collect()))
}

/// Creates a subscription; the answer carries its secret, shown only this once.
#[utoipa::path(post, path = "/api/v1/webhooks/subscriptions", tag = "WebHookSubscription",
    security(("bearer" = [])), request_body = SubscriptionIn,
    responses((status = 201, description = "Created, with the secret.", body = CreatedOut),
        (status = 409, description = "`webhooks.max_subscriptions` are there already \
            (`conflict`)."),
        (status = 422, description = "A bad topic or URL (`invalid_value`), or a target that is \
            not allowed (`target_forbidden`).")))]
pub async fn create_subscription(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let webhooks = manager(&state, &actor)?;
    let input: SubscriptionIn = json_body(&state, &headers, body).await?;
    let (row, secret) = webhooks.create(input.into(), &actor).await?;
    Ok(created(CreatedOut {
        subscription: subscription_out(row),
        secret,
    }))
}

/// Reads a subscription.
#[utoipa::path(get, path = "/api/v1/webhooks/subscriptions/{id}", tag = "WebHookSubscription",
    security(("bearer" = [])), params(("id" = String, Path, description = "The subscription.")),
    responses((status = 200, description = "The subscription.", body = SubscriptionOut)))]
pub async fn get_subscription(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<SubscriptionOut>, ApiError> {
    let webhooks = manager(&state, &actor)?;
    let id = subscription_id(&id)?;
    Ok(Json(subscription_out(webhooks.get(&id).await?)))
}

/// Replaces a subscription's settings (its secret stays); `enabled: true` re-enables it.
#[utoipa::path(put, path = "/api/v1/webhooks/subscriptions/{id}", tag = "WebHookSubscription",
    security(("bearer" = [])), params(("id" = String, Path, description = "The subscription.")),
    request_body = SubscriptionIn,
    responses((status = 200, description = "The subscription.", body = SubscriptionOut)))]
pub async fn update_subscription(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<SubscriptionOut>, ApiError> {
    let webhooks = manager(&state, &actor)?;
    let id = subscription_id(&id)?;
    let input: SubscriptionIn = json_body(&state, &headers, body).await?;
    Ok(Json(subscription_out(
        webhooks.update(&id, input.into(), &actor).await?,
    )))
}

/// Deletes a subscription with its deliveries and attempt log.
#[utoipa::path(delete, path = "/api/v1/webhooks/subscriptions/{id}", tag = "WebHookSubscription",
    security(("bearer" = [])), params(("id" = String, Path, description = "The subscription.")),
    responses((status = 204, description = "Deleted.")))]
pub async fn delete_subscription(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let webhooks = manager(&state, &actor)?;
    let id = subscription_id(&id)?;
    webhooks.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Gives a subscription a new secret, shown only this once; the old one keeps signing (a
/// second signature in each header) for `webhooks.secret_overlap_seconds`.
#[utoipa::path(post, path = "/api/v1/webhooks/subscriptions/{id}/secret",
    tag = "WebHookSubscription", security(("bearer" = [])),
    params(("id" = String, Path, description = "The subscription.")),
    responses((status = 200, description = "The new secret.", body = SecretOut)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let webhooks = manager(&state, &actor)?;
    let id = subscription_id(&id)?;
    let (secret, until) = webhooks.rotate_secret(&id).await?;
    Ok(no_store(
        Json(SecretOut {
            secret,
            previous_secret_until: rfc3339(until),
        })
        .into_response(),
    ))
}

/// Lists a subscription's deliveries, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/subscriptions/{id}/deliveries",
    tag = "WebHookSubscription", security(("bearer" = [])),
    params(("id" = String, Path, description = "The subscription."), DeliveriesQuery),
    responses((status = 200, description = "The deliveries.", body = [DeliveryOut])))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<DeliveryOut>>, ApiError> {
    let webhooks = manager(&state, &actor)?;
    let id = subscription_id(&id)?;
    let query = DeliveriesQuery::parse(query.as_deref())?;
    let wanted = query.state.as_deref().map(state_named).transpose()?;
    let rows = webhooks
        .deliveries(&id, wanted, query.before, limit(query.limit)?)
        .await?;
    Ok(Json(rows.into_iter().map(delivery_out).collect()))
}

/// Delivers one delivery again now, with a fresh attempt count, whatever its state.
#[utoipa::path(post, path = "/api/v1/webhooks/subscriptions/{id}/deliveries/{delivery}/redeliver",
    tag = "WebHookSubscription", security(("bearer" = [])),
    params(("id" = String, Path, description = "The subscription."),
        ("delivery" = i64, Path, description = "The delivery.")),
    responses((status = 200, description = "The delivery, pending.", body = DeliveryOut),
        (status = 422, description = "The delivery is being attempted right now \
            (`invalid_value`).")))]
pub async fn redeliver(
    State(state): State<AppState>,
    actor: Actor,
    Path((id, delivery)): Path<(String, i64)>,
) -> Result<Json<DeliveryOut>, ApiError> {
    let webhooks = manager(&state, &actor)?;
    let id = subscription_id(&id)?;
    Ok(Json(delivery_out(webhooks.redeliver(&id, delivery).await?)))
}

/// Lists a subscription's attempts, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/subscriptions/{id}/attempts",
    tag = "WebHookSubscription", security(("bearer" = [])),
    params(("id" = String, Path, description = "The subscription."), AttemptsQuery),
    responses((status = 200, description = "The attempts.", body = [AttemptOut])))]
pub async fn list_attempts(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<AttemptOut>>, ApiError> {
    let webhooks = manager(&state, &actor)?;
    let id = subscription_id(&id)?;
    let query = AttemptsQuery::parse(query.as_deref())?;
    let rows = webhooks
        .attempts(&id, query.delivery, query.before, limit(query.limit)?)
        .await?;
    Ok(Json(rows.into_iter().map(attempt_out).collect()))
}

/// Delivers again the finished deliveries whose events happened in `[from, to)`: dead letters,
/// discarded ones, or delivered ones (default all three).
#[utoipa::path(post, path = "/api/v1/webhooks/subscriptions/{id}/replay",
    tag = "WebHookSubscription", security(("bearer" = [])),
    params(("id" = String, Path, description = "The subscription.")), request_body = ReplayIn,
    responses((status = 200, description = "How many were queued.", body = ReplayOut)))]
pub async fn replay(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ReplayOut>, ApiError> {
    let webhooks = manager(&state, &actor)?;
    let id = subscription_id(&id)?;
    let input: ReplayIn = json_body(&state, &headers, body).await?;
    let from = time_named("from", &input.from)?;
    let to = time_named("to", &input.to)?;
    let states = match input.states.is_empty() {
        true => vec![
            DeliveryState::Delivered,
            DeliveryState::Discarded,
            DeliveryState::Dead,
        ],
        false => input
            .states
            .iter()
            .map(|s| state_named(s))
            .collect::<Result<_, _>>()?,
    };
    let replayed = webhooks.replay(&id, from, to, &states).await?;
    Ok(Json(ReplayOut { replayed }))
}
