//! Signed webhooks: subscriptions, the topic catalogue, what each event's body is, and the
//! operations the API offers. Delivery itself is in [`dispatch`], signatures in [`sign`], and
//! which addresses may be reached in [`target`].
//!
//! Events reach subscribers through the store's outbox: the change that causes an event writes
//! the event's delivery rows in its own transaction (datapoint writes in the writer's batch;
//! portal items just before they are set; a subscription's disabling with its update), so an
//! acknowledged change always has its deliveries.

mod bodies;
pub mod dispatch;
pub mod sign;

pub use bodies::outbox;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::access::Actor;
use crate::clock::Clock;
use crate::events::{Journal, Topic, Visibility};
use crate::metrics::Metrics;
use crate::net::IpNets;
use crate::net::targets::Targets;
use crate::secrets::Sealer;
use crate::store::{AttemptRow, DeliveryRow, DeliveryState, Store, StoreError, SubscriptionRow};

/// `[webhooks]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// `false` serves no webhook API and delivers nothing.
    pub enabled: bool,
    /// The seed's "Minimum Retry Interval", added to every back-off, in seconds.
    pub min_retry_interval_seconds: f64,
    /// How long connecting may take.
    pub connect_timeout_ms: u64,
    /// How long a whole attempt may take (connect, send, answer).
    pub request_timeout_ms: u64,
    /// How long a claimed delivery stays claimed; longer than `request_timeout_ms`, so a
    /// delivery is never in flight twice. A crashed node's claims are taken over after it.
    pub lease_seconds: u64,
    /// Deliveries in flight at once for one subscription (per node).
    pub concurrency_per_subscription: usize,
    /// Deliveries in flight at once in all (per node).
    pub concurrency_total: usize,
    /// How often the store is checked for due deliveries when nothing else wakes the
    /// dispatcher (other nodes' events, retries, expired claims).
    pub poll_ms: u64,
    /// A subscription failing without a success for this long is disabled.
    pub disable_after_failing_seconds: u64,
    /// After a rotation, the old secret signs too for this long.
    pub secret_overlap_seconds: u64,
    /// The longest `Retry-After` (on 429 and 503) that is honoured.
    pub retry_after_max_seconds: u64,
    /// Finished deliveries and their attempts are kept this long (for the log and replay).
    pub retention_hours: u64,
    /// How much of an answer's body the attempt log keeps.
    pub response_log_bytes: usize,
    /// Most subscriptions.
    pub max_subscriptions: usize,
    /// Addresses that may be reached although they are not global (loopback, private, ...):
    /// IP addresses or CIDR blocks.
    pub allow_targets: Vec<String>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            min_retry_interval_seconds: 5.0,
            connect_timeout_ms: 5_000,
            request_timeout_ms: 15_000,
            lease_seconds: 60,
            concurrency_per_subscription: 16,
            concurrency_total: 128,
            poll_ms: 1_000,
            disable_after_failing_seconds: 5 * 24 * 3600,
            secret_overlap_seconds: 24 * 3600,
            retry_after_max_seconds: 3600,
            retention_hours: 7 * 24,
            response_log_bytes: 256,
            max_subscriptions: 1_000,
            allow_targets: Vec::new(),
        }
    }
}

impl WebhookSettings {
    /// What is wrong with these settings.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut positive = |name: &str, value: u64| {
            if value == 0 {
                problems.push(format!("webhooks.{name} must be at least 1"));
            }
        };
        positive("connect_timeout_ms", self.connect_timeout_ms);
        positive("request_timeout_ms", self.request_timeout_ms);
        positive("lease_seconds", self.lease_seconds);
        positive(
            "concurrency_per_subscription",
            self.concurrency_per_subscription as u64,
        );
        positive("concurrency_total", self.concurrency_total as u64);
        positive("poll_ms", self.poll_ms);
        positive(
            "disable_after_failing_seconds",
            self.disable_after_failing_seconds,
        );
        positive("retention_hours", self.retention_hours);
        positive("max_subscriptions", self.max_subscriptions as u64);
        if !(0.0..=86_400.0).contains(&self.min_retry_interval_seconds) {
            problems.push("webhooks.min_retry_interval_seconds must be 0 to 86400".into());
        }
        if self.lease_seconds > 86_400 {
            problems.push("webhooks.lease_seconds must be at most 86400".into());
        }
        if self.lease_seconds.saturating_mul(1000) <= self.request_timeout_ms {
            problems.push(
                "webhooks.lease_seconds must be longer than request_timeout_ms, or a slow \
                 delivery could be claimed again while in flight"
                    .into(),
            );
        }
        if let Err(more) = IpNets::parse("webhooks.allow_targets", &self.allow_targets) {
            problems.extend(more);
        }
        problems
    }

    /// The wait before attempt `made + 1`, after `made` failed attempts (`made` ≥ 1):
    /// (made + 0.7)⁴ seconds + the minimum retry interval, the seed's formula with "Attempt
    /// Count" the number of attempts made so far.
    pub fn backoff(&self, made: i64) -> Duration {
        let made = made.max(1) as f64;
        Duration::from_secs_f64((made + 0.7).powi(4) + self.min_retry_interval_seconds)
    }
}

/// The topic a subscription names to receive every topic.
pub const ALL_TOPICS: &str = "*";

/// Which topics have an enabled subscription that could receive them, as last seen: an event
/// nobody listens to gets no webhook body and no outbox statement. Read at start, before any
/// change is made, and again when subscriptions change here (before the change is answered)
/// and at every poll, so a subscription made on another node on the same database counts
/// within `poll_ms`.
#[derive(Debug, Default)]
struct Interest(arc_swap::ArcSwap<HashSet<Topic>>);

impl Interest {
    /// Whether `topic` has subscribers.
    fn wants(&self, topic: Topic) -> bool {
        self.0.load().contains(&topic)
    }

    fn update(&self, subscriptions: &[SubscriptionRow]) {
        let wanted = subscriptions.iter().flat_map(Self::topics_of).collect();
        self.0.store(Arc::new(wanted));
    }

    /// Adds what `subscription` listens to, before it is stored: a change committed after it
    /// cannot have skipped its outbox.
    fn widen(&self, subscription: &SubscriptionRow) {
        self.0.rcu(|wanted| {
            let mut wanted = HashSet::clone(wanted);
            wanted.extend(Self::topics_of(subscription));
            wanted
        });
    }

    fn topics_of(subscription: &SubscriptionRow) -> impl Iterator<Item = Topic> + '_ {
        let topics = match subscription.enabled {
            true => subscription.topics.as_slice(),
            false => &[],
        };
        topics
            .iter()
            .flat_map(|name| match name.as_str() {
                ALL_TOPICS => Topic::ALL.to_vec(),
                name => Topic::parse(name).into_iter().collect(),
            })
            // A subscription whose maker reads only some subjects never gets admin topics.
            .filter(|t| subscription.sees_all || !t.needs_admin())
    }
}

/// A subscription's id: a UUID as Portico issues them, checked once where it comes in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubscriptionId(String);

impl SubscriptionId {
    /// Parses an id: 36 characters, hex digits with hyphens where a UUID has them.
    pub fn parse(id: &str) -> Option<Self> {
        let uuid = id.len() == 36
            && id.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_hexdigit(),
            });
        uuid.then(|| Self(id.to_owned()))
    }

    fn new() -> Self {
        Self(crate::secrets::uuid())
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a caller asks for in a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionSpec {
    /// Where deliveries go.
    pub url: String,
    /// Topic names, or `*` alone.
    pub topics: Vec<String>,
    /// Whether it receives events.
    pub enabled: bool,
    /// A note.
    pub description: String,
    /// Whether any 2xx counts as delivered (else only 200).
    pub accept_any_2xx: bool,
    /// Whether Standard Webhooks headers are sent too.
    pub standard_webhooks: bool,
}

/// What went wrong with a webhook operation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WebhookError {
    /// The request is not acceptable (the sentence says why).
    #[error("{0}")]
    Invalid(String),
    /// The target may not be reached.
    #[error("{0}")]
    TargetRefused(String),
    /// No such subscription or delivery.
    #[error("{0} does not exist")]
    NotFound(String),
    /// The actor may not do this (the sentence says why).
    #[error("{0}")]
    Forbidden(String),
    /// The subscription limit is reached.
    #[error("there are {0} subscriptions, the most allowed (webhooks.max_subscriptions)")]
    TooMany(usize),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A subscription's secrets, opened: the current one, and the previous one while it still signs.
#[derive(Clone)]
pub(crate) struct Secrets {
    current: String,
    previous: Option<(String, OffsetDateTime)>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

impl Secrets {
    /// The secrets that sign at `now`, newest first.
    pub(crate) fn signing(&self, now: OffsetDateTime) -> Vec<&str> {
        let mut out = vec![self.current.as_str()];
        if let Some((previous, until)) = &self.previous
            && now < *until
        {
            out.push(previous);
        }
        out
    }
}

/// Webhooks: the subscriptions' API and the delivery machinery's shared parts.
#[derive(Debug)]
pub struct Webhooks {
    settings: WebhookSettings,
    store: Store,
    clock: Arc<dyn Clock>,
    sealer: Arc<Sealer>,
    targets: Arc<Targets>,
    interest: Interest,
    kick: Notify,
    /// Set when subscriptions changed here; the dispatcher reloads them at once.
    stale: AtomicBool,
    metrics: Metrics,
    /// Who may read which event: deliveries go only where the subscription's actor may read.
    visibility: Arc<Visibility>,
    /// Where a subscription's disabling is recorded.
    journal: Arc<Journal>,
}

impl Webhooks {
    /// Webhooks on `store`.
    pub fn new(
        settings: WebhookSettings,
        store: Store,
        clock: Arc<dyn Clock>,
        sealer: Arc<Sealer>,
        metrics: Metrics,
        visibility: Arc<Visibility>,
        journal: Arc<Journal>,
    ) -> Result<Self, Vec<String>> {
        let allowed = IpNets::parse("webhooks.allow_targets", &settings.allow_targets)?;
        Ok(Self {
            settings,
            store,
            clock,
            sealer,
            targets: Arc::new(Targets::new(allowed, "webhooks.allow_targets")),
            interest: Interest::default(),
            kick: Notify::new(),
            stale: AtomicBool::new(false),
            metrics,
            visibility,
            journal,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &WebhookSettings {
        &self.settings
    }

    /// Wakes the dispatcher (new events, a redelivery).
    pub fn wake(&self) {
        self.kick.notify_one();
    }

    /// Subscriptions changed here: the dispatcher reloads them (URL, secrets) before its next
    /// claim, and the interest is re-read.
    async fn changed(&self) -> Result<(), StoreError> {
        self.refresh_interest().await?;
        self.stale.store(true, Ordering::Release);
        self.wake();
        Ok(())
    }

    /// Re-reads which topics have subscribers.
    pub async fn refresh_interest(&self) -> Result<Vec<SubscriptionRow>, StoreError> {
        let subscriptions = self.store.subscriptions().await?;
        self.interest.update(&subscriptions);
        Ok(subscriptions)
    }

    fn check(&self, spec: &mut SubscriptionSpec, actor: &Actor) -> Result<(), WebhookError> {
        if spec.url.len() > 2048 {
            return Err(WebhookError::Invalid(
                "`url` is longer than 2048 characters.".into(),
            ));
        }
        if spec.description.chars().count() > 1000 {
            return Err(WebhookError::Invalid(
                "`description` is longer than 1000 characters.".into(),
            ));
        }
        spec.topics.sort();
        spec.topics.dedup();
        if spec.topics.is_empty() {
            return Err(WebhookError::Invalid(format!(
                "`topics` is empty; name at least one topic, or `{ALL_TOPICS}` for all."
            )));
        }
        if spec.topics.iter().any(|t| t == ALL_TOPICS) && spec.topics.len() > 1 {
            return Err(WebhookError::Invalid(format!(
                "`{ALL_TOPICS}` already names every topic; give it alone."
            )));
        }
        if let Some(unknown) = spec
            .topics
            .iter()
            .find(|t| *t != ALL_TOPICS && Topic::parse(t).is_none())
        {
            return Err(WebhookError::Invalid(format!(
                "`{unknown}` is not a topic; GET /api/v1/webhooks/topics lists them."
            )));
        }
        if !self.visibility.is_admin(actor)
            && let Some(closed) = spec
                .topics
                .iter()
                .filter_map(|t| Topic::parse(t))
                .find(|t| t.needs_admin())
        {
            return Err(WebhookError::Forbidden(format!(
                "Only an admin (`portico:admin`) may read `{closed}` events; this token cannot \
                 subscribe to them."
            )));
        }
        Ok(())
    }

    async fn vet(&self, url: &str) -> Result<(), WebhookError> {
        self.targets
            .vet(url)
            .await
            .map(|_| ())
            .map_err(|e| WebhookError::TargetRefused(e.0))
    }

    /// Creates a subscription made by `actor`, which receives only the events `actor` may read
    /// (checked again at each delivery); answers it with its secret, which is never shown again.
    pub async fn create(
        &self,
        mut spec: SubscriptionSpec,
        actor: &Actor,
    ) -> Result<(SubscriptionRow, String), WebhookError> {
        self.check(&mut spec, actor)?;
        self.vet(&spec.url).await?;
        let count = self.store.subscriptions().await?.len();
        if count >= self.settings.max_subscriptions {
            return Err(WebhookError::TooMany(count));
        }
        let id = SubscriptionId::new().0;
        let secret = sign::new_secret();
        let now = self.clock.now();
        let row = SubscriptionRow {
            secret_sealed: self.sealer.seal(&seal_identity(&id), secret.as_bytes()),
            id,
            url: spec.url,
            description: spec.description,
            enabled: spec.enabled,
            disabled_reason: None,
            accept_any_2xx: spec.accept_any_2xx,
            standard_webhooks: spec.standard_webhooks,
            previous: None,
            failing_since: None,
            discarded_total: 0,
            created: now,
            updated: now,
            topics: spec.topics,
            actor: Some(actor.to_record()),
            sees_all: self.visibility.is_admin(actor),
        };
        self.interest.widen(&row);
        self.store.create_subscription(&row).await?;
        self.changed().await?;
        Ok((row, secret))
    }

    /// Every subscription.
    pub async fn list(&self) -> Result<Vec<SubscriptionRow>, WebhookError> {
        Ok(self.store.subscriptions().await?)
    }

    /// One subscription.
    pub async fn get(&self, id: &SubscriptionId) -> Result<SubscriptionRow, WebhookError> {
        self.store
            .subscription(id.as_str())
            .await?
            .ok_or_else(|| WebhookError::NotFound(format!("Subscription `{id}`")))
    }

    /// Replaces a subscription's settings (its secret stays); from now on it reads as `actor`,
    /// who changed it. Enabling clears the reason it was disabled.
    pub async fn update(
        &self,
        id: &SubscriptionId,
        mut spec: SubscriptionSpec,
        actor: &Actor,
    ) -> Result<SubscriptionRow, WebhookError> {
        self.check(&mut spec, actor)?;
        let mut row = self.get(id).await?;
        if spec.url != row.url {
            self.vet(&spec.url).await?;
        }
        row.url = spec.url;
        row.topics = spec.topics;
        row.enabled = spec.enabled;
        row.description = spec.description;
        row.accept_any_2xx = spec.accept_any_2xx;
        row.standard_webhooks = spec.standard_webhooks;
        row.actor = Some(actor.to_record());
        row.sees_all = self.visibility.is_admin(actor);
        self.interest.widen(&row);
        self.store
            .update_subscription(&row, self.clock.now())
            .await?;
        self.changed().await?;
        self.get(id).await
    }

    /// Deletes a subscription with its deliveries.
    pub async fn delete(&self, id: &SubscriptionId) -> Result<(), WebhookError> {
        if !self.store.delete_subscription(id.as_str()).await? {
            return Err(WebhookError::NotFound(format!("Subscription `{id}`")));
        }
        self.changed().await?;
        Ok(())
    }

    /// Gives a subscription a new secret, answered once; the old one signs too for
    /// `secret_overlap_seconds`.
    pub async fn rotate_secret(
        &self,
        id: &SubscriptionId,
    ) -> Result<(String, OffsetDateTime), WebhookError> {
        let row = self.get(id).await?;
        let identity = seal_identity(id.as_str());
        let secret = sign::new_secret();
        let now = self.clock.now();
        let until = now + Duration::from_secs(self.settings.secret_overlap_seconds);
        self.store
            .rotate_subscription_secret(
                id.as_str(),
                &self.sealer.seal(&identity, secret.as_bytes()),
                &row.secret_sealed,
                until,
                now,
            )
            .await?;
        self.changed().await?;
        Ok((secret, until))
    }

    /// A subscription's deliveries, newest first.
    pub async fn deliveries(
        &self,
        id: &SubscriptionId,
        state: Option<DeliveryState>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, WebhookError> {
        self.get(id).await?;
        Ok(self
            .store
            .deliveries(id.as_str(), state, before, limit)
            .await?)
    }

    /// A subscription's attempt log, newest first.
    pub async fn attempts(
        &self,
        id: &SubscriptionId,
        delivery: Option<i64>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AttemptRow>, WebhookError> {
        self.get(id).await?;
        Ok(self
            .store
            .attempts(id.as_str(), delivery, before, limit)
            .await?)
    }

    /// Delivers one delivery again now (a fresh attempt count), whatever its state, unless it
    /// is in flight.
    pub async fn redeliver(
        &self,
        id: &SubscriptionId,
        delivery: i64,
    ) -> Result<DeliveryRow, WebhookError> {
        let not_found = || WebhookError::NotFound(format!("Delivery {delivery} of `{id}`"));
        let row = self
            .store
            .delivery(id.as_str(), delivery)
            .await?
            .ok_or_else(not_found)?;
        let now = self.clock.now();
        let changed = self
            .store
            .redeliver(
                id.as_str(),
                Some(delivery),
                row.event_time,
                row.event_time + Duration::from_micros(1),
                &DeliveryState::ALL,
                now,
            )
            .await?;
        if changed == 0 {
            return Err(WebhookError::Invalid(format!(
                "Delivery {delivery} is in flight now; it cannot be redelivered until the attempt \
                 ends."
            )));
        }
        self.wake();
        // The delivery as queued again (what the update wrote), not whatever its next attempt,
        // which may already have finished, made of it.
        Ok(DeliveryRow {
            state: DeliveryState::Pending,
            attempts: 0,
            next_at: now,
            finished: None,
            ..row
        })
    }

    /// Delivers again every finished delivery of a subscription whose event happened in
    /// `[from, to)` and whose state is in `states`. Returns how many.
    pub async fn replay(
        &self,
        id: &SubscriptionId,
        from: OffsetDateTime,
        to: OffsetDateTime,
        states: &[DeliveryState],
    ) -> Result<u64, WebhookError> {
        self.get(id).await?;
        if from >= to {
            return Err(WebhookError::Invalid("`from` must be before `to`.".into()));
        }
        if states.contains(&DeliveryState::Pending) {
            return Err(WebhookError::Invalid(
                "Pending deliveries are delivered anyway; replay `delivered`, `discarded` or \
                 `dead` ones."
                    .into(),
            ));
        }
        let count = self
            .store
            .redeliver(id.as_str(), None, from, to, states, self.clock.now())
            .await?;
        self.wake();
        Ok(count)
    }

    fn open_secrets(&self, row: &SubscriptionRow) -> Option<Secrets> {
        let identity = seal_identity(&row.id);
        let open = |sealed: &[u8]| {
            self.sealer
                .open(&identity, sealed)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
        };
        let current = open(&row.secret_sealed)?;
        let previous = row
            .previous
            .as_ref()
            .and_then(|(sealed, until)| Some((open(sealed)?, *until)));
        Some(Secrets { current, previous })
    }
}

/// What a subscription's secret is sealed to: a sealed secret copied to another row won't open.
fn seal_identity(id: &str) -> String {
    format!("webhook-subscription:{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_ids_are_uuids() {
        let id = SubscriptionId::new();
        assert_eq!(SubscriptionId::parse(id.as_str()), Some(id));
        for bad in [
            "",
            "not-a-uuid",
            "0123456789abcdef0123456789abcdef0123",
            "01234567-89ab-cdef-0123-456789abcdeg",
            "../../etc/passwd-0000-0000-000000000",
        ] {
            assert_eq!(SubscriptionId::parse(bad), None, "{bad}");
        }
    }
}
