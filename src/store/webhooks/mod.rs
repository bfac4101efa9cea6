//! What webhooks store: subscriptions and their topics, the delivery outbox and the attempt
//! log. Delivery rows are written in the same transaction as the change that caused the event
//! ([`Store::commit_change`], [`Store::enqueue_events`]); workers claim due rows with a
//! lease and a token and finish them only with that token, so a row whose lease expired and was
//! claimed again is finished once. One SQL text for both backends, except where PostgreSQL
//! takes arrays (`UNNEST`) or row locks (`FOR UPDATE SKIP LOCKED`).

use time::OffsetDateTime;

use super::{Store, StoreError, from_micros, to_micros};

/// An event to deliver to every enabled subscription of its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// The event's id (a UUID), the same in every delivery and attempt.
    pub event_id: String,
    /// The topic name.
    pub topic: &'static str,
    /// What the event is about (a datapoint key, `account/portal`, …), checked against each
    /// subscription's actor when it is delivered.
    pub subject: String,
    /// 1 (retried 4 times, then discarded) or 2 (retried 10 times, then a dead letter).
    pub qos: i64,
    /// The body to send, exactly.
    pub payload: String,
    /// The trace the event belongs to.
    pub correlation_id: String,
    /// When the change happened.
    pub time: OffsetDateTime,
    /// Whether only subscriptions whose actor reads every subject (`sees_all`) get it.
    pub needs_admin: bool,
}

/// A stored subscription.
#[derive(Clone, PartialEq, Eq)]
pub struct SubscriptionRow {
    /// Its id (a UUID).
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// The operator's note.
    pub description: String,
    /// Whether events are queued and delivered.
    pub enabled: bool,
    /// Why it was disabled automatically.
    pub disabled_reason: Option<String>,
    /// Whether any 2xx counts as delivered (else only 200, as the seed says).
    pub accept_any_2xx: bool,
    /// Whether Standard Webhooks headers are sent too.
    pub standard_webhooks: bool,
    /// The secret, sealed.
    pub secret_sealed: Vec<u8>,
    /// The secret before the last rotation, sealed, and until when it signs too.
    pub previous: Option<(Vec<u8>, OffsetDateTime)>,
    /// The first failure since the last success.
    pub failing_since: Option<OffsetDateTime>,
    /// QoS 1 deliveries given up on.
    pub discarded_total: i64,
    /// When it was created.
    pub created: OffsetDateTime,
    /// When it was last changed.
    pub updated: OffsetDateTime,
    /// Its topics (`*` alone for every topic).
    pub topics: Vec<String>,
    /// Who made (or last changed) it, as `access::Actor::to_record` wrote it; `None` for a
    /// subscription made before actors were recorded.
    pub actor: Option<String>,
    /// Whether that actor reads every subject (an admin): only then are portal items and
    /// signed calls queued for it.
    pub sees_all: bool,
}

impl std::fmt::Debug for SubscriptionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionRow")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("enabled", &self.enabled)
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Waiting for its next attempt (or in flight, under a lease).
    Pending,
    /// Delivered.
    Delivered,
    /// A QoS 1 delivery that failed every attempt.
    Discarded,
    /// A QoS 2 delivery that failed every attempt: kept for replay.
    Dead,
    /// Not sent: the subscription's actor may not read the event.
    Withheld,
}

impl DeliveryState {
    /// Every state, in stored order.
    pub const ALL: [DeliveryState; 5] = [
        DeliveryState::Pending,
        DeliveryState::Delivered,
        DeliveryState::Discarded,
        DeliveryState::Dead,
        DeliveryState::Withheld,
    ];

    fn code(self) -> i64 {
        self as i64
    }

    fn from_code(code: i64) -> Result<Self, StoreError> {
        usize::try_from(code)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
            .ok_or_else(|| StoreError::Other(format!("unknown delivery state {code}")))
    }

    /// Its name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Discarded => "discarded",
            DeliveryState::Dead => "dead",
            DeliveryState::Withheld => "withheld",
        }
    }
}

/// A delivery: one event for one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    /// Its id.
    pub id: i64,
    /// Its subscription.
    pub subscription_id: String,
    /// The event's id.
    pub event_id: String,
    /// The event's topic.
    pub topic: String,
    /// What the event is about.
    pub subject: String,
    /// The event's QoS.
    pub qos: i64,
    /// The body sent.
    pub payload: String,
    /// The event's trace.
    pub correlation_id: String,
    /// When the event happened.
    pub event_time: OffsetDateTime,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due (pending deliveries).
    pub next_at: OffsetDateTime,
    /// The last answer's HTTP status.
    pub last_status: Option<i64>,
    /// The last failure's kind.
    pub last_error: Option<String>,
    /// When it stopped being pending.
    pub finished: Option<OffsetDateTime>,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    /// Its id.
    pub id: i64,
    /// Its delivery.
    pub delivery_id: i64,
    /// 1 for the first attempt.
    pub attempt: i64,
    /// When it started.
    pub at: OffsetDateTime,
    /// The HTTP status, if an answer came.
    pub status: Option<i64>,
    /// How long it took, in microseconds.
    pub duration_us: i64,
    /// Why it failed (`None` when delivered).
    pub error_kind: Option<String>,
    /// The first bytes of the answer.
    pub response_start: String,
}

/// The result of one attempt, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The delivery.
    pub delivery_id: i64,
    /// The token it was claimed with.
    pub lease_token: String,
    /// Its subscription.
    pub subscription_id: String,
    /// Where it stands now.
    pub state: DeliveryState,
    /// When the next attempt is due (if still pending).
    pub next_at: OffsetDateTime,
    /// The attempt (its `id` is ignored).
    pub attempt: AttemptRow,
}

/// What recording a batch of results found, per result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded; the subscription has failed since this time (`None`: it is healthy).
    Applied(Option<OffsetDateTime>),
    /// The lease had been lost (expired and claimed again): nothing recorded.
    Stale,
}

type SubscriptionColumns = (
    String,
    String,
    String,
    bool,
    Option<String>,
    bool,
    bool,
    Vec<u8>,
    Option<Vec<u8>>,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
    i64,
    Option<String>,
    bool,
);

macro_rules! subscription_columns {
    () => {
        "id, url, description, enabled, disabled_reason, accept_any_2xx, standard_webhooks, \
         secret_sealed, previous_sealed, previous_until_us, failing_since_us, discarded_total, \
         created_us, updated_us, actor, sees_all"
    };
}

fn subscription_row(c: SubscriptionColumns) -> Result<SubscriptionRow, StoreError> {
    let previous = match (c.8, c.9) {
        (Some(sealed), Some(until)) => Some((sealed, from_micros(until)?)),
        _ => None,
    };
    Ok(SubscriptionRow {
        id: c.0,
        url: c.1,
        description: c.2,
        enabled: c.3,
        disabled_reason: c.4,
        accept_any_2xx: c.5,
        standard_webhooks: c.6,
        secret_sealed: c.7,
        previous,
        failing_since: c.10.map(from_micros).transpose()?,
        discarded_total: c.11,
        created: from_micros(c.12)?,
        updated: from_micros(c.13)?,
        topics: Vec::new(),
        actor: c.14,
        sees_all: c.15,
    })
}

type DeliveryColumns = (
    i64,
    String,
    String,
    String,
    i64,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
    String,
);

macro_rules! delivery_columns {
    () => {
        "id, subscription_id, event_id, topic, qos, payload, correlation_id, event_time_us, \
         state, attempts, next_at_us, last_status, last_error, finished_us, subject"
    };
}

fn delivery_row(c: DeliveryColumns) -> Result<DeliveryRow, StoreError> {
    Ok(DeliveryRow {
        id: c.0,
        subscription_id: c.1,
        event_id: c.2,
        topic: c.3,
        qos: c.4,
        payload: c.5,
        correlation_id: c.6,
        event_time: from_micros(c.7)?,
        state: DeliveryState::from_code(c.8)?,
        attempts: c.9,
        next_at: from_micros(c.10)?,
        last_status: c.11,
        last_error: c.12,
        finished: c.13.map(from_micros).transpose()?,
        subject: c.14,
    })
}

type AttemptColumns = (i64, i64, i64, i64, Option<i64>, i64, Option<String>, String);

fn attempt_row(c: AttemptColumns) -> Result<AttemptRow, StoreError> {
    Ok(AttemptRow {
        id: c.0,
        delivery_id: c.1,
        attempt: c.2,
        at: from_micros(c.3)?,
        status: c.4,
        duration_us: c.5,
        error_kind: c.6,
        response_start: c.7,
    })
}

/// Every event's delivery rows, for every enabled subscription of its topic, in one statement:
/// SQLite reads the events from one JSON array (`json_each`), PostgreSQL from arrays
/// (`UNNEST`). One statement per batch, not one per event: each statement is a round trip to
/// the database's worker.
pub(super) const ENQUEUE_ALL_SQLITE: &str = "WITH e AS ( \
       SELECT j.key AS n, json_extract(j.value, '$[0]') AS event_id, \
              json_extract(j.value, '$[1]') AS topic, json_extract(j.value, '$[2]') AS qos, \
              json_extract(j.value, '$[3]') AS payload, \
              json_extract(j.value, '$[4]') AS correlation_id, \
              json_extract(j.value, '$[5]') AS t, json_extract(j.value, '$[6]') AS subject, \
              json_extract(j.value, '$[7]') AS needs_admin \
       FROM json_each($1) AS j) \
     INSERT INTO webhook_deliveries \
     (subscription_id, event_id, topic, qos, payload, correlation_id, event_time_us, state, \
      attempts, next_at_us, subject) \
     SELECT s.id, e.event_id, e.topic, e.qos, e.payload, e.correlation_id, e.t, 0, 0, e.t, \
            e.subject \
     FROM e \
     JOIN webhook_subscription_topics st ON st.topic = e.topic OR st.topic = '*' \
     JOIN webhook_subscriptions s ON s.id = st.subscription_id AND s.enabled \
          AND (s.sees_all OR NOT e.needs_admin) \
     ORDER BY e.n, s.id";

const ENQUEUE_ALL_PG: &str = "INSERT INTO webhook_deliveries \
     (subscription_id, event_id, topic, qos, payload, correlation_id, event_time_us, state, \
      attempts, next_at_us, subject) \
     SELECT s.id, e.event_id, e.topic, e.qos, e.payload, e.correlation_id, e.t, 0, 0, e.t, \
            e.subject \
     FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::BIGINT[], \
                 $7::TEXT[], $8::BOOLEAN[]) \
          WITH ORDINALITY AS e(event_id, topic, qos, payload, correlation_id, t, subject, \
                               needs_admin, n) \
     JOIN webhook_subscription_topics st ON st.topic = e.topic OR st.topic = '*' \
     JOIN webhook_subscriptions s ON s.id = st.subscription_id AND s.enabled \
          AND (s.sees_all OR NOT e.needs_admin) \
     ORDER BY e.n, s.id";

pub(super) async fn enqueue_sqlite(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    events: &[OutboxEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    sqlx::query(ENQUEUE_ALL_SQLITE)
        .bind(outbox_json(events))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The outbox rows as `ENQUEUE_ALL_SQLITE` reads them.
pub(super) fn outbox_json(events: &[OutboxEvent]) -> String {
    super::json_rows(events.iter().map(|e| {
        (
            &e.event_id,
            e.topic,
            e.qos,
            &e.payload,
            &e.correlation_id,
            to_micros(e.time),
            &e.subject,
            e.needs_admin,
        )
    }))
}

pub(super) async fn enqueue_postgres(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    events: &[OutboxEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    let topics: Vec<&str> = events.iter().map(|e| e.topic).collect();
    let qos: Vec<i64> = events.iter().map(|e| e.qos).collect();
    let payloads: Vec<&str> = events.iter().map(|e| e.payload.as_str()).collect();
    let correlations: Vec<&str> = events.iter().map(|e| e.correlation_id.as_str()).collect();
    let times: Vec<i64> = events.iter().map(|e| to_micros(e.time)).collect();
    let subjects: Vec<&str> = events.iter().map(|e| e.subject.as_str()).collect();
    let needs_admin: Vec<bool> = events.iter().map(|e| e.needs_admin).collect();
    sqlx::query(ENQUEUE_ALL_PG)
        .bind(&ids)
        .bind(&topics)
        .bind(&qos)
        .bind(&payloads)
        .bind(&correlations)
        .bind(&times)
        .bind(&subjects)
        .bind(&needs_admin)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Stores `$row`'s topics in transaction `$tx`.
macro_rules! insert_topics {
    ($tx:ident, $row:ident) => {
        for topic in &$row.topics {
            sqlx::query(
                "INSERT INTO webhook_subscription_topics (subscription_id, topic) VALUES ($1, $2)",
            )
            .bind(&$row.id)
            .bind(topic)
            .execute(&mut *$tx)
            .await?;
        }
    };
}

impl Store {
    /// Queues `events` for their subscribers in one transaction (for changes that are not
    /// themselves stored, such as portal items).
    pub async fn enqueue_events(&self, events: &[OutboxEvent]) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(store) => {
                let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await?;
                enqueue_sqlite(&mut tx, events).await?;
                tx.commit().await?;
            }
            Store::Postgres(store) => {
                let mut tx = store.pool().begin().await?;
                enqueue_postgres(&mut tx, events).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Creates a subscription with its topics.
    pub async fn create_subscription(&self, row: &SubscriptionRow) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO webhook_subscriptions (id, url, description, enabled, \
                 disabled_reason, accept_any_2xx, standard_webhooks, secret_sealed, \
                 previous_sealed, previous_until_us, failing_since_us, discarded_total, \
                 created_us, updated_us, actor, sees_all) \
                 VALUES ($1, $2, $3, $4, NULL, $5, $6, $7, NULL, NULL, NULL, 0, $8, $8, $9, $10)",
            )
            .bind(&row.id)
            .bind(&row.url)
            .bind(&row.description)
            .bind(row.enabled)
            .bind(row.accept_any_2xx)
            .bind(row.standard_webhooks)
            .bind(&row.secret_sealed)
            .bind(to_micros(row.created))
            .bind(&row.actor)
            .bind(row.sees_all)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::conflict(e, || format!("subscription {}", row.id)))?;
            insert_topics!(tx, row);
        });
        Ok(())
    }

    /// Changes a subscription's settings (URL, description, topics, enabled, options). Turning
    /// it on clears the reason it was turned off and its failure streak.
    pub async fn update_subscription(
        &self,
        row: &SubscriptionRow,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            let changed = sqlx::query(
                "UPDATE webhook_subscriptions SET url = $2, description = $3, enabled = $4, \
                 accept_any_2xx = $5, standard_webhooks = $6, updated_us = $7, \
                 actor = $8, sees_all = $9, \
                 disabled_reason = CASE WHEN $4 THEN NULL ELSE disabled_reason END, \
                 failing_since_us = CASE WHEN $4 AND NOT enabled THEN NULL \
                                         ELSE failing_since_us END \
                 WHERE id = $1",
            )
            .bind(&row.id)
            .bind(&row.url)
            .bind(&row.description)
            .bind(row.enabled)
            .bind(row.accept_any_2xx)
            .bind(row.standard_webhooks)
            .bind(to_micros(now))
            .bind(&row.actor)
            .bind(row.sees_all)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
                return Err(StoreError::NotFound(format!("subscription {}", row.id)));
            }
            sqlx::query("DELETE FROM webhook_subscription_topics WHERE subscription_id = $1")
                .bind(&row.id)
                .execute(&mut *tx)
                .await?;
            insert_topics!(tx, row);
        });
        Ok(())
    }

    /// Replaces a subscription's secret; the old one keeps signing until `previous_until`.
    pub async fn rotate_subscription_secret(
        &self,
        id: &str,
        sealed: &[u8],
        previous_sealed: &[u8],
        previous_until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let changed = on_pool!(self, |pool| sqlx::query(
            "UPDATE webhook_subscriptions SET secret_sealed = $2, previous_sealed = $3, \
             previous_until_us = $4, updated_us = $5 WHERE id = $1"
        )
        .bind(id)
        .bind(sealed)
        .bind(previous_sealed)
        .bind(to_micros(previous_until))
        .bind(to_micros(now))
        .execute(pool)
        .await?
        .rows_affected());
        match changed {
            0 => Err(StoreError::NotFound(format!("subscription {id}"))),
            _ => Ok(()),
        }
    }

    /// Deletes a subscription with its deliveries and attempts. `false` if there was none.
    pub async fn delete_subscription(&self, id: &str) -> Result<bool, StoreError> {
        Ok(in_tx!(self, |tx| {
            sqlx::query("DELETE FROM webhook_attempts WHERE subscription_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM webhook_deliveries WHERE subscription_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM webhook_subscriptions WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0
        }))
    }

    /// Every subscription with its topics, oldest first.
    pub async fn subscriptions(&self) -> Result<Vec<SubscriptionRow>, StoreError> {
        let rows: Vec<SubscriptionColumns> = on_pool!(self, |pool| sqlx::query_as(concat!(
            "SELECT ",
            subscription_columns!(),
            " FROM webhook_subscriptions ORDER BY created_us, id"
        ))
        .fetch_all(pool)
        .await?);
        let topics: Vec<(String, String)> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT subscription_id, topic FROM webhook_subscription_topics \
             ORDER BY subscription_id, topic"
        )
        .fetch_all(pool)
        .await?);
        let mut out = rows
            .into_iter()
            .map(subscription_row)
            .collect::<Result<Vec<_>, _>>()?;
        for (id, topic) in topics {
            if let Some(row) = out.iter_mut().find(|r| r.id == id) {
                row.topics.push(topic);
            }
        }
        Ok(out)
    }

    /// One subscription with its topics.
    pub async fn subscription(&self, id: &str) -> Result<Option<SubscriptionRow>, StoreError> {
        let row: Option<SubscriptionColumns> = on_pool!(self, |pool| sqlx::query_as(concat!(
            "SELECT ",
            subscription_columns!(),
            " FROM webhook_subscriptions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(pool)
        .await?);
        let Some(row) = row else {
            return Ok(None);
        };
        let mut row = subscription_row(row)?;
        let topics: Vec<(String,)> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT topic FROM webhook_subscription_topics WHERE subscription_id = $1 \
             ORDER BY topic"
        )
        .bind(id)
        .fetch_all(pool)
        .await?);
        row.topics = topics.into_iter().map(|(t,)| t).collect();
        Ok(Some(row))
    }
}

mod deliveries;
