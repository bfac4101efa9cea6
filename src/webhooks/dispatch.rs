//! The dispatcher: one task per node that claims due deliveries from the store's outbox, sends
//! each as a signed POST, and records the results in batches.
//!
//! - **Claims** carry a lease (`lease_seconds`, longer than any attempt may take) and a random
//!   token; a result is recorded only under the token it was claimed with. A node that dies
//!   leaves its claims to expire, and any node takes them over then, so a delivery is never in
//!   flight twice and none is lost.
//! - **Fairness:** each subscription has at most `concurrency_per_subscription` deliveries in
//!   flight on a node, so a slow endpoint holds its own slots, not everyone's.
//! - **Wake-ups:** the writer's commit (through [`super::Webhooks::wake`]), a finished attempt,
//!   the next due time, and at least every `poll_ms` (other nodes' events, expired claims).
//!   Due times are read from the injected clock; only the waits use the runtime's timer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};

use super::{Secrets, Webhooks, sign};
use crate::access::Actor;
use crate::events::{Draft, EventPayload, Topic};
use crate::net::targets::VettingResolver;
use crate::store::{
    AttemptRow, Change, DeliveryRow, DeliveryState, Disable, Finished, Recorded, SubscriptionRow,
};

/// The failure kind of a delivery its subscription's actor may not read: never sent, final.
const WITHHELD: &str = "withheld";

/// Answers kept whole (for connection reuse) up to this size; bigger ones are cut off.
const DRAIN_MAX: usize = 64 * 1024;

/// A subscription as the dispatcher uses it.
#[derive(Debug)]
struct Sub {
    row: SubscriptionRow,
    secrets: Secrets,
    /// Who the subscription reads as: the actor that made it (anonymous if unrecorded).
    actor: Actor,
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    status: Option<u16>,
    /// `None` when delivered; else `status`, `timeout`, `connect`, `network` or
    /// `forbidden_target`.
    error_kind: Option<&'static str>,
    /// The start of the answer's body, or the error in a sentence.
    text: String,
    retry_after: Option<Duration>,
}

impl Outcome {
    fn failed(kind: &'static str, text: String) -> Self {
        Self {
            status: None,
            error_kind: Some(kind),
            text,
            retry_after: None,
        }
    }
}

/// An attempt that ended, to record.
#[derive(Debug)]
struct Attempted {
    delivery: DeliveryRow,
    token: String,
    sub: Arc<Sub>,
    started: OffsetDateTime,
    duration: Duration,
    outcome: Outcome,
}

/// Starts the dispatcher; it runs until `shutdown`, then lets attempts in flight end.
pub fn start(
    webhooks: Arc<Webhooks>,
    shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let settings = &webhooks.settings;
    let client = reqwest::Client::builder()
        .dns_resolver(Arc::new(VettingResolver(webhooks.targets.clone())))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
        .timeout(Duration::from_millis(settings.request_timeout_ms))
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(settings.concurrency_per_subscription)
        .user_agent(concat!("Portico-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("webhook HTTP client: {e}"))?;
    let dispatcher = Dispatcher {
        webhooks,
        client,
        subs: HashMap::new(),
        in_flight: HashMap::new(),
        total_in_flight: 0,
    };
    Ok(tokio::spawn(dispatcher.run(shutdown)))
}

struct Dispatcher {
    webhooks: Arc<Webhooks>,
    client: reqwest::Client,
    subs: HashMap<String, Arc<Sub>>,
    in_flight: HashMap<String, usize>,
    total_in_flight: usize,
}

impl Dispatcher {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.webhooks.settings.poll_ms);
        let (done, finished) = mpsc::unbounded_channel::<Attempted>();
        let (freed_tx, mut freed) = mpsc::unbounded_channel::<String>();
        tokio::spawn(
            Recorder {
                webhooks: self.webhooks.clone(),
            }
            .run(finished, freed_tx),
        );
        let mut reload_at = Instant::now();
        let mut prune_at = Instant::now();
        loop {
            while let Ok(subscription) = freed.try_recv() {
                self.free(&subscription);
            }
            if *shutdown.borrow() {
                // Claim nothing more; let the attempts in flight end and be recorded.
                if self.total_in_flight == 0 {
                    return;
                }
                match freed.recv().await {
                    Some(subscription) => self.free(&subscription),
                    None => return,
                }
                continue;
            }
            let stale = self.webhooks.stale.swap(false, AtomicOrdering::AcqRel);
            if stale || Instant::now() >= reload_at {
                self.reload().await;
                reload_at = Instant::now() + poll;
            }
            if Instant::now() >= prune_at {
                self.prune().await;
                prune_at = Instant::now() + Duration::from_secs(600);
            }
            let (claimed, room) = self.claim(&done).await;
            if claimed > 0 {
                continue;
            }
            // With no room anywhere, a recorded attempt is what frees some.
            let wait = match room {
                true => self.wait(poll).await,
                false => poll,
            };
            tokio::select! {
                _ = self.webhooks.kick.notified() => {}
                Some(subscription) = freed.recv() => self.free(&subscription),
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// An attempt of `subscription` was recorded: its slot is free.
    fn free(&mut self, subscription: &str) {
        if let Some(busy) = self.in_flight.get_mut(subscription) {
            *busy = busy.saturating_sub(1);
        }
        self.total_in_flight = self.total_in_flight.saturating_sub(1);
    }

    /// Re-reads the subscriptions (and which topics have any) and the queue depth.
    async fn reload(&mut self) {
        let rows = match self.webhooks.refresh_interest().await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "reading webhook subscriptions failed; keeping the last");
                return;
            }
        };
        let mut subs = HashMap::with_capacity(rows.len());
        for row in rows {
            match self.webhooks.open_secrets(&row) {
                Some(secrets) => {
                    let actor = row
                        .actor
                        .as_deref()
                        .map_or(Actor::Anonymous, Actor::from_record);
                    subs.insert(
                        row.id.clone(),
                        Arc::new(Sub {
                            row,
                            secrets,
                            actor,
                        }),
                    );
                }
                None => tracing::error!(
                    subscription = %row.id,
                    "a webhook secret does not open with this node's sealing key; \
                     its deliveries wait (nodes sharing a database must share secrets.key)"
                ),
            }
        }
        self.subs = subs;
        match self.webhooks.store.pending_deliveries().await {
            Ok(pending) => self
                .webhooks
                .metrics
                .set_webhook_queue_depth(pending.iter().map(|(_, n)| *n).sum()),
            Err(error) => tracing::warn!(%error, "counting pending webhook deliveries failed"),
        }
    }

    async fn prune(&self) {
        let retention = Duration::from_secs(self.webhooks.settings.retention_hours * 3600);
        let before = self.webhooks.clock.now() - retention;
        match self.webhooks.store.prune_deliveries(before).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "pruned finished webhook deliveries"),
            Err(error) => tracing::warn!(%error, "pruning webhook deliveries failed"),
        }
    }

    /// Claims what each enabled subscription has due and room for; starts the attempts.
    /// Answers how many, and whether any subscription had room.
    async fn claim(&mut self, done: &mpsc::UnboundedSender<Attempted>) -> (usize, bool) {
        let webhooks = self.webhooks.clone();
        let settings = &webhooks.settings;
        let now = self.webhooks.clock.now();
        let lease_until = now + Duration::from_secs(settings.lease_seconds);
        let mut claimed = 0;
        let mut any_room = false;
        let subs: Vec<Arc<Sub>> = self
            .subs
            .values()
            .filter(|s| s.row.enabled)
            .cloned()
            .collect();
        for sub in subs {
            let busy = self.in_flight.get(&sub.row.id).copied().unwrap_or(0);
            let room = settings
                .concurrency_per_subscription
                .saturating_sub(busy)
                .min(
                    settings
                        .concurrency_total
                        .saturating_sub(self.total_in_flight),
                );
            if room == 0 {
                continue;
            }
            any_room = true;
            let token = crate::secrets::uuid();
            let rows = match self
                .webhooks
                .store
                .claim_deliveries(&sub.row.id, now, lease_until, &token, room as i64)
                .await
            {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::warn!(%error, "claiming webhook deliveries failed; retrying");
                    break;
                }
            };
            // A change committed before these deliveries were queued (a rotated secret, a new
            // URL) has marked the subscriptions stale by now, even if a reload was already
            // under way when it landed: read them again before signing with them.
            let sub =
                match !rows.is_empty() && self.webhooks.stale.swap(false, AtomicOrdering::AcqRel) {
                    false => sub,
                    true => {
                        self.reload().await;
                        match self.subs.get(&sub.row.id) {
                            Some(fresh) => fresh.clone(),
                            // Deleted meanwhile: its claims lapse with their lease.
                            None => continue,
                        }
                    }
                };
            for delivery in rows {
                claimed += 1;
                *self.in_flight.entry(sub.row.id.clone()).or_default() += 1;
                self.total_in_flight += 1;
                let webhooks = self.webhooks.clone();
                let client = self.client.clone();
                let sub = sub.clone();
                let token = token.clone();
                let done = done.clone();
                tokio::spawn(async move {
                    let started = webhooks.clock.now();
                    let timer = Instant::now();
                    let outcome = attempt(&webhooks, &client, &sub, &delivery).await;
                    let _ = done.send(Attempted {
                        delivery,
                        token,
                        sub,
                        started,
                        duration: timer.elapsed(),
                        outcome,
                    });
                });
            }
        }
        (claimed, any_room)
    }

    /// How long to sleep: until the next delivery is due, at most `poll`; `poll` when one is
    /// due already but nothing could be claimed (its subscription has no room).
    async fn wait(&self, poll: Duration) -> Duration {
        let now = self.webhooks.clock.now();
        match self.webhooks.store.next_delivery_due().await {
            Ok(Some(due)) if due > now => (due - now).unsigned_abs().min(poll),
            _ => poll,
        }
    }
}

/// Records attempts' results: everything that arrived while the previous batch was being
/// committed goes into the next transaction (group commit), then frees the attempts' slots.
struct Recorder {
    webhooks: Arc<Webhooks>,
}

impl Recorder {
    async fn run(
        self,
        mut results: mpsc::UnboundedReceiver<Attempted>,
        freed: mpsc::UnboundedSender<String>,
    ) {
        let poll = Duration::from_millis(self.webhooks.settings.poll_ms);
        let mut batch = Vec::new();
        while let Some(first) = results.recv().await {
            batch.push(first);
            while let Ok(more) = results.try_recv() {
                batch.push(more);
            }
            // Until recorded, the slots stay taken, so a store outage stops new claims too.
            while let Err(error) = self.record(&batch).await {
                tracing::warn!(%error, results = batch.len(), "recording webhook attempts failed; retrying");
                tokio::time::sleep(poll).await;
            }
            for attempted in batch.drain(..) {
                let _ = freed.send(attempted.sub.row.id.clone());
            }
        }
    }

    /// Records the results gathered so far in one transaction, then acts on them (metrics,
    /// disabling). On a store failure they are kept and tried again.
    async fn record(&self, results: &[Attempted]) -> Result<(), crate::store::StoreError> {
        let webhooks = &self.webhooks;
        let settings = &webhooks.settings;
        let now = webhooks.clock.now();
        let finished: Vec<Finished> = results
            .iter()
            .map(|a| {
                let made = a.delivery.attempts + 1;
                let (state, next_at) = match a.outcome.error_kind {
                    None => (DeliveryState::Delivered, now),
                    Some(WITHHELD) => (DeliveryState::Withheld, now),
                    Some(_) if made > retries(a.delivery.qos) => match a.delivery.qos {
                        1 => (DeliveryState::Discarded, now),
                        _ => (DeliveryState::Dead, now),
                    },
                    Some(_) => {
                        let honoured = Duration::from_secs(settings.retry_after_max_seconds);
                        let wait = settings
                            .backoff(made)
                            .max(a.outcome.retry_after.unwrap_or_default().min(honoured));
                        (DeliveryState::Pending, now + wait)
                    }
                };
                Finished {
                    delivery_id: a.delivery.id,
                    lease_token: a.token.clone(),
                    subscription_id: a.sub.row.id.clone(),
                    state,
                    next_at,
                    attempt: AttemptRow {
                        id: 0,
                        delivery_id: a.delivery.id,
                        attempt: made,
                        at: a.started,
                        status: a.outcome.status.map(i64::from),
                        duration_us: a.duration.as_micros() as i64,
                        error_kind: a.outcome.error_kind.map(str::to_owned),
                        response_start: a.outcome.text.clone(),
                    },
                }
            })
            .collect();
        let recorded = webhooks.store.finish_deliveries(&finished).await?;
        let mut disable: Vec<(Arc<Sub>, String, String)> = Vec::new();
        for ((a, done), recorded) in results.iter().zip(&finished).zip(recorded) {
            let Recorded::Applied(failing_since) = recorded else {
                webhooks.metrics.record_webhook_attempt("stale");
                tracing::warn!(
                    delivery = a.delivery.id,
                    "a webhook claim expired before its result was recorded"
                );
                continue;
            };
            let outcome = match done.state {
                DeliveryState::Delivered => "delivered",
                DeliveryState::Pending => "failed",
                DeliveryState::Discarded => "discarded",
                DeliveryState::Dead => "dead",
                DeliveryState::Withheld => "withheld",
            };
            webhooks.metrics.record_webhook_attempt(outcome);
            if done.state == DeliveryState::Withheld {
                continue;
            }
            if done.state == DeliveryState::Delivered {
                let latency = (now - a.delivery.event_time).as_seconds_f64().max(0.0);
                webhooks.metrics.observe_webhook_latency(latency);
                continue;
            }
            let last = match a.outcome.status {
                Some(status) => format!("HTTP {status}"),
                None => a.outcome.error_kind.unwrap_or("error").to_owned(),
            };
            let window = Duration::from_secs(settings.disable_after_failing_seconds);
            let reason =
                if a.outcome.status == Some(410) {
                    Some("The endpoint answered 410 Gone.".to_owned())
                } else {
                    failing_since.filter(|since| now - *since >= window).map(|since| {
                    format!(
                        "Every delivery failed since {} (longer than {} s); the last: {last}.",
                        crate::timefmt::rfc3339(since),
                        window.as_secs()
                    )
                })
                };
            if let Some(reason) = reason
                && !disable.iter().any(|(s, _, _)| s.row.id == a.sub.row.id)
            {
                disable.push((a.sub.clone(), reason, a.delivery.event_id.clone()));
            }
        }
        for (sub, reason, cause) in disable {
            let draft = Draft {
                time: now,
                actor: Actor::Internal("webhooks").reference(),
                payload: EventPayload::SubscriptionDisabled {
                    subscription: Arc::from(sub.row.id.as_str()),
                    url: Arc::from(sub.row.url.as_str()),
                    reason: Arc::from(reason.as_str()),
                    cause: Arc::from(cause.as_str()),
                },
            };
            let off = Disable {
                id: sub.row.id.clone(),
                reason: reason.clone(),
                at: now,
            };
            match webhooks
                .journal
                .commit(vec![draft], |_| Change {
                    disable: Some(off),
                    ..Change::default()
                })
                .await
            {
                Ok(Some(_)) => {
                    tracing::warn!(subscription = %sub.row.id, %reason, "disabled a webhook subscription");
                    if let Err(error) = webhooks.changed().await {
                        tracing::warn!(%error, "reloading webhook subscriptions failed");
                    }
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "disabling a webhook subscription failed"),
            }
        }
        Ok(())
    }
}

/// Retries after the first attempt: the seed's 4 for QoS 1, 10 for QoS 2.
fn retries(qos: i64) -> i64 {
    match qos {
        1 => 4,
        _ => 10,
    }
}

/// One attempt: the signed POST, and what came back.
async fn attempt(
    webhooks: &Webhooks,
    client: &reqwest::Client,
    sub: &Sub,
    delivery: &DeliveryRow,
) -> Outcome {
    let Some(topic) = Topic::parse(&delivery.topic) else {
        return Outcome::failed(WITHHELD, format!("`{}` is not a topic", delivery.topic));
    };
    // Decided at delivery time: a policy changed since the event was queued applies.
    if !webhooks
        .visibility
        .allows(&sub.actor, topic, &delivery.subject)
    {
        return Outcome::failed(
            WITHHELD,
            "The subscription's maker may not read this event; it was not sent.".into(),
        );
    }
    if let Err(refused) = webhooks.targets.check_url(&sub.row.url) {
        return Outcome::failed("forbidden_target", refused.0);
    }
    let now = webhooks.clock.now();
    let signed_at = sign::dotnet_timestamp(now);
    let secrets = sub.secrets.signing(now);
    let event = topic.event_name();
    let mut request = client
        .post(&sub.row.url)
        .header(CONTENT_TYPE, "application/json")
        .header("x-tributech-correlationid", &delivery.correlation_id)
        .header("x-tributech-eventid", &delivery.event_id)
        .header("x-tributech-event", event)
        .header("x-tributech-signaturetimestamp", &signed_at)
        .header(
            "x-tributech-signature",
            sign::tributech_header(&secrets, &delivery.payload, &signed_at),
        )
        .header(
            "x-tributech-timestamp",
            sign::dotnet_timestamp(delivery.event_time),
        );
    if sub.row.standard_webhooks {
        let timestamp = now.unix_timestamp();
        request = request
            .header("webhook-id", &delivery.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                sign::standard_header(&secrets, &delivery.event_id, timestamp, &delivery.payload),
            );
    }
    let response = match request.body(delivery.payload.clone()).send().await {
        Ok(response) => response,
        Err(error) => return Outcome::failed(error_kind(&error), error_text(&error)),
    };
    let status = response.status();
    let retry_after = retry_after(response.headers(), now);
    let (text, read_error) = read_start(response, webhooks.settings.response_log_bytes).await;
    let delivered =
        status == reqwest::StatusCode::OK || (sub.row.accept_any_2xx && status.is_success());
    Outcome {
        status: Some(status.as_u16()),
        error_kind: match (delivered, read_error) {
            (true, None) => None,
            (true, Some(kind)) => Some(kind),
            (false, _) => Some("status"),
        },
        text,
        retry_after: matches!(status.as_u16(), 429 | 503)
            .then_some(retry_after)
            .flatten(),
    }
}

/// The first `keep` bytes of the body as text; reads on (for connection reuse) up to
/// `DRAIN_MAX`. An error reading it is a failure kind: the answer did not fully arrive.
async fn read_start(
    mut response: reqwest::Response,
    keep: usize,
) -> (String, Option<&'static str>) {
    let mut kept = Vec::with_capacity(keep.min(1024));
    let mut read = 0usize;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = keep.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                read += chunk.len();
                if read > DRAIN_MAX {
                    break;
                }
            }
            Ok(None) => break,
            Err(error) => {
                let kind = if error.is_timeout() {
                    "timeout"
                } else {
                    "network"
                };
                return (String::from_utf8_lossy(&kept).into_owned(), Some(kind));
            }
        }
    }
    (String::from_utf8_lossy(&kept).into_owned(), None)
}

fn error_kind(error: &reqwest::Error) -> &'static str {
    if crate::net::targets::refused_in(error).is_some() {
        "forbidden_target"
    } else if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else {
        "network"
    }
}

fn error_text(error: &reqwest::Error) -> String {
    if let Some(refused) = crate::net::targets::refused_in(error) {
        return refused.0.clone();
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `Retry-After` as seconds or an HTTP date, relative to `now`.
fn retry_after(headers: &HeaderMap, now: OffsetDateTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let format = time::format_description::well_known::Rfc2822;
    let date = OffsetDateTime::parse(&value.replace("GMT", "+0000"), &format).ok()?;
    Some((date - now).max(time::Duration::ZERO).unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(120)));
        // 1_700_000_000 is Tue, 14 Nov 2023 22:13:20 GMT.
        headers.insert(
            RETRY_AFTER,
            "Tue, 14 Nov 2023 22:14:20 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(60)));
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn the_seeds_retry_counts() {
        assert_eq!(retries(1), 4);
        assert_eq!(retries(2), 10);
    }
}
