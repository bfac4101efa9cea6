//! The journal: one sequence for every event, durable events recorded in their change's own
//! transaction together with what projections add (the webhook outbox), and publication on the
//! bus after commit, in sequence order.
//!
//! Numbers come from the store's one sequence. A durable change takes its numbers inside its
//! transaction (under the sequence row's lock, so changes commit in number order, on every
//! process sharing the database) and, while ephemeral events are being numbered, a block of
//! spare numbers with them. Ephemeral events (portal items) are numbered from such a block
//! without a round trip; a block running low is refilled ahead, in the background. Every number handed out is pending until its event is
//! published or dropped, and the bus receives events strictly in number order: an ephemeral
//! event numbered while an earlier durable change commits waits for it.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Mutex, RwLock, Weak};

use serde::Deserialize;
use time::OffsetDateTime;

use super::{Event, EventBus, EventPayload, Topic};
use crate::access::ActorRef;
use crate::portal::lock;
use crate::store::{Change, JournalRow, OutboxEvent, Store, StoreError};

/// Numbers reserved at once for ephemeral events: by each refill, and by a durable change made
/// while ephemeral events are being numbered (otherwise a durable change takes only its own, so
/// a node that writes datapoints alone numbers them consecutively).
const BLOCK: u64 = 65_536;

/// `[events]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventSettings {
    /// How long the journal keeps durable events (readable from `/api/v1/events`).
    pub retention_hours: u64,
    /// Most events one `GET /api/v1/events` answers.
    pub max_page: u32,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            retention_hours: 7 * 24,
            max_page: 1000,
        }
    }
}

impl EventSettings {
    /// What is wrong with these settings.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(1..=24 * 3650).contains(&self.retention_hours) {
            problems.push("key `events.retention_hours` must be between 1 and 87600".into());
        }
        if !(1..=10_000).contains(&self.max_page) {
            problems.push("key `events.max_page` must be between 1 and 10000".into());
        }
        problems
    }
}

/// An event to record, before it has its number.
#[derive(Debug, Clone)]
pub struct Draft {
    /// When it happened.
    pub time: OffsetDateTime,
    /// Who caused it.
    pub actor: ActorRef,
    /// What happened.
    pub payload: EventPayload,
}

impl Draft {
    fn numbered(self, seq: u64) -> Event {
        Event {
            seq,
            time: self.time,
            actor: self.actor,
            payload: self.payload,
        }
    }
}

/// A consumer that adds rows to the transaction of each change whose events it wants (the
/// webhook outbox now; stream values and Merkle leaves next).
pub trait Projection: Send + Sync + std::fmt::Debug {
    /// Whether anything would be projected for `topic`: an event of a topic nobody wants is
    /// not projected at all (and an ephemeral one skips its transaction).
    fn wants(&self, topic: Topic) -> bool;
    /// What `event` adds to its change.
    fn project(&self, event: &Event) -> Option<OutboxEvent>;
    /// A change with rows of this projection committed.
    fn committed(&self);
}

/// A number handed out and not yet published.
#[derive(Debug)]
enum Slot {
    Waiting,
    Ready(Arc<Event>),
    Dropped,
}

#[derive(Debug, Default)]
struct Sequencer {
    /// The block ephemeral events are numbered from: `next..end`.
    next: u64,
    end: u64,
    /// A block reserved ahead.
    spare: Option<Range<u64>>,
    refilling: bool,
    /// Whether an ephemeral number was taken since the last durable change.
    ephemeral_active: bool,
    /// Numbers handed out and not yet published, in order (a deque, not a map: on the portal
    /// path each number is pushed at the back and popped at the front, without allocating).
    pending: VecDeque<(u64, Slot)>,
}

impl Sequencer {
    /// Records `seq` as handed out, keeping the order (almost always at the back).
    fn hand_out(&mut self, seq: u64) {
        let at = self.pending.partition_point(|(n, _)| *n < seq);
        self.pending.insert(at, (seq, Slot::Waiting));
    }

    fn available(&self) -> u64 {
        (self.end - self.next) + self.spare.as_ref().map_or(0, |s| s.end - s.start)
    }

    /// Moves on to `block` when numbers up to `last` are taken elsewhere: nothing numbered
    /// later may be lower.
    fn move_past(&mut self, last: u64, block: Range<u64>) {
        if self.next <= last {
            self.next = block.start;
            self.end = block.end;
        }
        if self.spare.as_ref().is_some_and(|s| s.start <= last) {
            self.spare = None;
        }
    }
}

/// The journal. See the module documentation.
#[derive(Debug)]
pub struct Journal {
    store: Store,
    bus: EventBus,
    state: Mutex<Sequencer>,
    refill: tokio::sync::Mutex<()>,
    projections: RwLock<Vec<Weak<dyn Projection>>>,
    this: Weak<Journal>,
}

/// Numbers of a change being committed: dropped (and skipped on the bus) unless published.
struct Pending<'a> {
    journal: &'a Journal,
    seqs: Range<u64>,
    done: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.journal
                .settle(self.seqs.clone().map(|seq| (seq, Slot::Dropped)));
        }
    }
}

impl Journal {
    /// The journal on `store`, publishing on `bus`.
    pub fn new(store: Store, bus: EventBus) -> Arc<Self> {
        Arc::new_cyclic(|this| Self {
            store,
            bus,
            state: Mutex::default(),
            refill: tokio::sync::Mutex::new(()),
            projections: RwLock::default(),
            this: this.clone(),
        })
    }

    /// The bus events are published on.
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// Adds a projection (held weakly: it lives as long as its owner).
    pub fn add_projection(&self, projection: Weak<dyn Projection>) {
        self.projections
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(projection);
    }

    fn projections(&self) -> Vec<Arc<dyn Projection>> {
        self.projections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// Whether a projection wants `topic` (on every portal item's path: no allocation).
    pub fn wanted(&self, topic: Topic) -> bool {
        self.projections
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|p| p.upgrade().is_some_and(|p| p.wants(topic)))
    }

    /// Records a change with its events: numbers them, asks `change` for the change's own rows
    /// given the numbered events, adds the journal rows (durable topics) and the projections'
    /// rows, commits all in one transaction, then publishes the events in order. Answers the
    /// events, or `None` when the change was not made (see [`Change::disable`]).
    pub async fn commit(
        &self,
        drafts: Vec<Draft>,
        change: impl FnOnce(&[Event]) -> Change + Send,
    ) -> Result<Option<Vec<Arc<Event>>>, StoreError> {
        if drafts.is_empty() {
            // A change with no event takes no number, so it waits for no other change's hold
            // on the sequence (values nobody listens to commit side by side).
            let rows = change(&[]);
            let attempt = self.store.commit_change(0, 0, move |_| rows);
            return match tokio::time::timeout(self.store.timeout(), attempt).await {
                Ok(Ok(Some(_))) => Ok(Some(Vec::new())),
                Ok(Ok(None)) => Ok(None),
                Ok(Err(error)) => Err(error),
                Err(_) => Err(StoreError::Unavailable(
                    "the store did not answer in time".into(),
                )),
            };
        }
        let count = drafts.len() as u64;
        let spare = match std::mem::take(&mut lock(&self.state).ephemeral_active) {
            true => BLOCK,
            false => 0,
        };
        let projections = self.projections();
        let mut numbered: Option<(Vec<Event>, Pending<'_>)> = None;
        let attempt = self.store.commit_change(count, spare, |first| {
            let pending = self.register(first..first + count);
            let events: Vec<Event> = drafts
                .into_iter()
                .zip(first..)
                .map(|(draft, seq)| draft.numbered(seq))
                .collect();
            let mut rows = change(&events);
            rows.journal = events
                .iter()
                .filter(|e| e.topic().durability() == super::Durability::Durable)
                .map(journal_row)
                .collect();
            rows.outbox = events
                .iter()
                .flat_map(|e| {
                    let topic = e.topic();
                    projections
                        .iter()
                        .filter(move |p| p.wants(topic))
                        .filter_map(|p| p.project(e))
                })
                .collect();
            numbered = Some((events, pending));
            rows
        });
        let outcome = tokio::time::timeout(self.store.timeout(), attempt).await;
        let committed = match outcome {
            Ok(Ok(committed)) => committed,
            Ok(Err(error)) => self.settle_unknown(numbered.as_ref(), error).await?,
            Err(_) => {
                let error = StoreError::Unavailable("the store did not answer in time".into());
                self.settle_unknown(numbered.as_ref(), error).await?
            }
        };
        let Some(first) = committed else {
            return Ok(None);
        };
        let Some((events, mut pending)) = numbered else {
            return Ok(Some(Vec::new()));
        };
        let events: Vec<Arc<Event>> = events.into_iter().map(Arc::new).collect();
        {
            let mut state = lock(&self.state);
            let last = first + count - 1;
            state.move_past(last, last + 1..last + 1 + spare);
        }
        self.settle(events.iter().map(|e| (e.seq, Slot::Ready(e.clone()))));
        pending.done = true;
        for projection in &projections {
            projection.committed();
        }
        Ok(Some(events))
    }

    /// Queues what projections add for ephemeral events (not journaled), in a transaction of
    /// its own, before the events take effect. Their numbers do not matter to projections.
    pub async fn project_ahead(&self, events: &[Event]) -> Result<(), StoreError> {
        let projections = self.projections();
        let outbox: Vec<OutboxEvent> = events
            .iter()
            .flat_map(|e| projections.iter().filter_map(|p| p.project(e)))
            .collect();
        if outbox.is_empty() {
            return Ok(());
        }
        self.store.enqueue_events(&outbox).await?;
        for projection in &projections {
            projection.committed();
        }
        Ok(())
    }

    /// Makes sure `count` numbers can be taken without waiting (reserving a block if not).
    pub async fn ready(&self, count: u64) -> Result<(), StoreError> {
        loop {
            if lock(&self.state).available() >= count {
                return Ok(());
            }
            self.refill(count).await?;
        }
    }

    /// Reserves a block (one at a time) and keeps it as the current or the spare block.
    async fn refill(&self, at_least: u64) -> Result<(), StoreError> {
        let _one = self.refill.lock().await;
        if lock(&self.state).available() >= at_least.max(BLOCK / 2) {
            return Ok(());
        }
        let size = BLOCK.max(at_least);
        let reserved = self.store.reserve_sequence(size).await;
        let mut state = lock(&self.state);
        state.refilling = false;
        let first = reserved?;
        let block = first..first + size;
        if state.next == state.end && block.start >= state.next {
            state.next = block.start;
            state.end = block.end;
        } else if state.spare.is_none() && block.start >= state.end {
            state.spare = Some(block);
        }
        Ok(())
    }

    /// Takes the next number for an ephemeral event, without waiting; `None` when none is at
    /// hand ([`Self::ready`] first). The number must be [`Self::publish`]ed or
    /// [`Self::release`]d.
    pub fn take(&self) -> Option<u64> {
        let mut state = lock(&self.state);
        if state.next == state.end
            && let Some(spare) = state.spare.take()
            && spare.start >= state.next
        {
            state.next = spare.start;
            state.end = spare.end;
        }
        if state.next == state.end {
            return None;
        }
        let seq = state.next;
        state.next += 1;
        state.ephemeral_active = true;
        state.hand_out(seq);
        let low = state.available() < BLOCK / 2;
        if low && !state.refilling {
            state.refilling = true;
            if let Some(journal) = self.this.upgrade() {
                tokio::spawn(async move {
                    if let Err(error) = journal.refill(BLOCK / 2).await {
                        tracing::warn!(%error, "reserving event numbers failed");
                    }
                });
            }
        }
        Some(seq)
    }

    /// Publishes an ephemeral event numbered by [`Self::take`].
    pub fn publish(&self, event: Event) {
        self.settle([(event.seq, Slot::Ready(Arc::new(event)))]);
    }

    /// Gives back a number [`Self::take`] handed out but no event used.
    pub fn release(&self, seq: u64) {
        self.settle([(seq, Slot::Dropped)]);
    }

    /// After a commit that failed or did not answer in time: whether it took effect is not
    /// known from the failure itself (the connection may have broken after `COMMIT` was sent).
    /// When numbers were taken and one went to a durable event, the store is asked (after the
    /// transaction's lock is free, so the answer is final), again and again within
    /// `RESOLVE_TRIES` waits; the change's first number if it committed, `error` if it did not,
    /// and an error saying the outcome is unknown if the store never answered.
    async fn settle_unknown(
        &self,
        numbered: Option<&(Vec<Event>, Pending<'_>)>,
        error: StoreError,
    ) -> Result<Option<u64>, StoreError> {
        /// How often the outcome is asked before giving up.
        const RESOLVE_TRIES: u32 = 30;
        let Some((events, _)) = numbered else {
            return Err(error);
        };
        let Some(durable) = events
            .iter()
            .find(|e| e.topic().durability() == super::Durability::Durable)
        else {
            return Err(error);
        };
        for _ in 0..RESOLVE_TRIES {
            match tokio::time::timeout(
                self.store.timeout(),
                self.store.change_committed(durable.seq),
            )
            .await
            {
                Ok(Ok(true)) => {
                    tracing::warn!(%error, "a commit reported a failure but had committed");
                    return Ok(events.first().map(|e| e.seq));
                }
                Ok(Ok(false)) => return Err(error),
                Ok(Err(_)) | Err(_) => tokio::time::sleep(self.store.timeout() / 10).await,
            }
        }
        tracing::error!(%error, seq = durable.seq, "the outcome of a commit is unknown: the store did not answer");
        Err(StoreError::OutcomeUnknown(error.to_string()))
    }

    fn register(&self, seqs: Range<u64>) -> Pending<'_> {
        let mut state = lock(&self.state);
        for seq in seqs.clone() {
            state.hand_out(seq);
        }
        Pending {
            journal: self,
            seqs,
            done: false,
        }
    }

    /// Marks numbers published or dropped, and sends every event whose predecessors are all
    /// settled, in order.
    fn settle(&self, slots: impl IntoIterator<Item = (u64, Slot)>) {
        let mut state = lock(&self.state);
        for (seq, slot) in slots {
            if let Ok(at) = state.pending.binary_search_by_key(&seq, |(n, _)| *n) {
                state.pending[at].1 = slot;
            }
        }
        while state
            .pending
            .front()
            .is_some_and(|(_, slot)| !matches!(slot, Slot::Waiting))
        {
            if let Some((_, Slot::Ready(event))) = state.pending.pop_front() {
                self.bus.publish(event);
            }
        }
    }

    /// Durable events after `after`, oldest first, at most `limit`; only `topics` when given.
    pub async fn read(
        &self,
        after: u64,
        topics: Option<&[Topic]>,
        limit: u32,
    ) -> Result<Vec<JournalRow>, StoreError> {
        let names: Option<Vec<&str>> = topics.map(|t| t.iter().map(|t| t.name()).collect());
        self.store
            .journal_after(after, names.as_deref(), limit)
            .await
    }

    /// The newest number the journal may have dropped: a reader after an older position has a
    /// gap.
    pub async fn pruned_through(&self) -> Result<u64, StoreError> {
        self.store.journal_pruned_through().await
    }

    /// Drops durable events older than `before`.
    pub async fn prune(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.store.prune_journal(before).await
    }
}

impl crate::portal::Numbering for Journal {
    fn take(&self) -> Option<u64> {
        Journal::take(self)
    }
}

fn journal_row(event: &Event) -> JournalRow {
    JournalRow {
        seq: event.seq,
        time: event.time,
        topic: event.topic().name().to_owned(),
        actor: serde_json::to_string(&event.actor).unwrap_or_default(),
        subject: event.subject(),
        data: event.data(),
    }
}
