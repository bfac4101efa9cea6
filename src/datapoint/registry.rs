//! The datapoints' current values, held in memory, and the single writer that makes each write
//! durable before it is acknowledged.
//!
//! Writes from all requests go through one channel to one writer task, which commits whatever
//! has queued up as one transaction (group commit): each acknowledged write is on disk, and a
//! burst of concurrent writes costs one sync rather than one each. After the commit the writer
//! updates the in-memory values, publishes the events, then acknowledges, in write order.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwapOption;

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::{Datapoint, DatapointKey, Sample, Value, ValueError};
use crate::access::{Actor, ActorRef, Policy, Refused};
use crate::clock::Clock;
use crate::events::{Draft, EventPayload, Journal};
use crate::metrics::Metrics;
use crate::series::{ProofKind, Series, StreamId, StreamSpec};
use crate::store::{Change, DatapointRow, NewValue, SeriesChange, Store, StoreError, ValuesWrite};
use crate::timefmt::to_micros;

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 512;
/// Writes that may queue for the writer before callers wait for room.
const QUEUE: usize = 4096;

/// Identifies a declared datapoint; cheap to copy, valid for the registry that issued it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DatapointId(usize);

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The datapoint is read-only.
    #[error("the datapoint is read-only")]
    ReadOnly,
    /// The actor may not write it.
    #[error("the datapoint's write policy refused the writer")]
    Refused(Refused),
    /// The value does not fit the datapoint.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// The writer has stopped (the server is shutting down).
    #[error("the server is shutting down")]
    Stopped,
    /// The store refused or failed the commit.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug)]
struct Slot {
    datapoint: Datapoint,
    /// Swapped whole on each write; readers never take a lock.
    current: ArcSwapOption<Sample>,
}

#[derive(Debug)]
struct Slots {
    slots: Vec<Slot>,
    by_key: HashMap<DatapointKey, DatapointId>,
}

impl Slots {
    fn set(&self, id: DatapointId, sample: Sample) {
        self.slots[id.0].current.store(Some(Arc::new(sample)));
    }
}

enum Command {
    Write {
        id: DatapointId,
        value: Value,
        actor: ActorRef,
        ack: oneshot::Sender<Result<Sample, WriteError>>,
    },
    Stop(oneshot::Sender<()>),
}

/// A history stream's trees hold `2^HISTORY_TREE_DEPTH` writes (or fewer, after the default
/// `maxMerkleTreeAgeSeconds`).
pub const HISTORY_TREE_DEPTH: u8 = 8;

/// Where datapoint writes are also kept as values: each readable datapoint's history stream
/// ([`Series::adopt`]), in the write's own transaction.
#[derive(Debug, Clone)]
pub struct History {
    series: Arc<Series>,
    /// By datapoint id: its stream's number, id and tree size (none for a write-only
    /// datapoint, whose values are never shown).
    streams: Vec<Option<(i64, StreamId, i64)>>,
}

impl History {
    /// Finds or makes the history streams of `declared` (in declaration order, as
    /// [`Datapoints::start`] numbers them), each read under its datapoint's `read` policy and
    /// `api_read`, the native API's.
    pub async fn adopt(
        series: Arc<Series>,
        declared: &[Datapoint],
        api_read: &Policy,
    ) -> Result<Self, String> {
        let mut streams = Vec::with_capacity(declared.len());
        for point in declared {
            let mut spec = StreamSpec::new(point.key.as_str(), point.value_type.encoding());
            // Datapoints are written one value at a time, often and fast: trees of 256 values
            // signed with ECDSA P-256 keep the prover's share of a write near nothing (an
            // RSA-2048 signature per 32 writes took a core at 20,000 writes/s).
            spec.merkle_tree_depth = HISTORY_TREE_DEPTH;
            spec.proof_kind = ProofKind::SHA256_ECDSAP256_IEEEP1363;
            spec.unit = point.unit.clone().filter(|u| u.chars().count() <= 64);
            spec.retention_days = series.settings().history_retention_days;
            spec.datapoint = Some(point.key.as_str().to_owned());
            // A write-only datapoint's values are never shown: it keeps no history.
            let read = point.access.readable().then(|| api_read.and(&point.read));
            if let Some(read) = &read {
                // Stored as written, for when the datapoint is gone; never wider than it is.
                spec.read = read.config().ok_or_else(|| {
                    format!("datapoint `{}`'s read policy cannot be stored", point.key)
                })?;
            }
            let stream = series.adopt(spec, read).await?;
            streams.push(stream.map(|s| (s.num, s.id, s.tree_size())));
        }
        Ok(Self { series, streams })
    }
}

/// The declared datapoints and their current values. Cloning shares the same registry.
#[derive(Debug, Clone)]
pub struct Datapoints {
    slots: Arc<Slots>,
    writer: mpsc::Sender<Command>,
    metrics: Metrics,
    history: Option<History>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Write { .. } => "Write",
            Command::Stop(_) => "Stop",
        })
    }
}

impl Datapoints {
    /// Loads the stored values of `declared` and starts the writer, which records each write
    /// through `journal`.
    ///
    /// A stored value whose datapoint is no longer declared is kept in the store but not served;
    /// one that no longer fits its datapoint's type (the config changed) is treated as never
    /// written, with a warning.
    pub async fn start(
        declared: Vec<Datapoint>,
        store: Store,
        clock: Arc<dyn Clock>,
        journal: Arc<Journal>,
        metrics: Metrics,
        history: Option<History>,
    ) -> Result<Self, StoreError> {
        let stored = store.load_datapoint_values().await?;
        let by_key = declared
            .iter()
            .enumerate()
            .map(|(index, point)| (point.key.clone(), DatapointId(index)))
            .collect::<HashMap<_, _>>();
        let slots = Slots {
            slots: declared
                .into_iter()
                .map(|datapoint| Slot {
                    datapoint,
                    current: ArcSwapOption::empty(),
                })
                .collect(),
            by_key,
        };
        for row in stored {
            let Ok(key) = DatapointKey::parse(&row.key) else {
                continue;
            };
            let Some(&id) = slots.by_key.get(&key) else {
                continue;
            };
            let point = &slots.slots[id.0].datapoint;
            match Value::from_json_literal(&row.value_json, point.value_type) {
                Ok(value) => slots.set(
                    id,
                    Sample {
                        value,
                        update_time: row.update_time,
                        seq: row.seq,
                    },
                ),
                Err(reason) => tracing::warn!(
                    datapoint = %key, %reason,
                    "stored value does not fit the configured type; serving it as never written"
                ),
            }
        }
        let slots = Arc::new(slots);
        let (writer, queue) = mpsc::channel(QUEUE);
        let last_time = slots
            .slots
            .iter()
            .filter_map(|slot| slot.current.load().as_ref().map(|s| s.update_time))
            .max();
        let writer_task = Writer {
            slots: slots.clone(),
            clock,
            journal,
            last_time,
            history: history.clone(),
        };
        tokio::spawn(writer_task.run(queue));
        Ok(Self {
            slots,
            writer,
            metrics,
            history,
        })
    }

    /// The stream that keeps `id`'s history, when it has one.
    pub fn history(&self, id: DatapointId) -> Option<StreamId> {
        let history = self.history.as_ref()?;
        history
            .streams
            .get(id.0)
            .copied()
            .flatten()
            .map(|(_, sid, _)| sid)
    }

    /// The datapoint with this key, if declared.
    pub fn id(&self, key: &str) -> Option<DatapointId> {
        DatapointKey::parse(key)
            .ok()
            .and_then(|key| self.slots.by_key.get(&key).copied())
    }

    /// The declaration of `id`.
    pub fn datapoint(&self, id: DatapointId) -> &Datapoint {
        &self.slots.slots[id.0].datapoint
    }

    /// The current value of `id` (`None` if never written), from memory.
    pub fn current(&self, id: DatapointId) -> Option<Arc<Sample>> {
        self.slots.slots[id.0].current.load_full()
    }

    /// Runs `read` on the current value of `id` without taking a reference count: the cheapest
    /// read, for the hot path.
    pub fn with_current<R>(&self, id: DatapointId, read: impl FnOnce(Option<&Sample>) -> R) -> R {
        read(self.slots.slots[id.0].current.load().as_deref())
    }

    /// Every declared datapoint, in declaration order.
    pub fn ids(&self) -> impl Iterator<Item = DatapointId> + use<> {
        (0..self.slots.slots.len()).map(DatapointId)
    }

    /// Whether `actor` may write `literal` to `id`: the datapoint is writable, its `write`
    /// policy lets the actor in, and the literal is a value of its type within its constraints.
    /// Answers the value to [`Self::write`].
    pub fn check_write(
        &self,
        actor: &Actor,
        id: DatapointId,
        literal: &str,
    ) -> Result<Value, WriteError> {
        let point = self.datapoint(id);
        if !point.access.writable() {
            return Err(WriteError::ReadOnly);
        }
        point.write.authorize(actor).map_err(WriteError::Refused)?;
        Ok(point.accept(literal)?)
    }

    /// The one write path every surface takes: checks `literal` as [`Self::check_write`]
    /// does, then writes it as [`Self::write`] does.
    pub async fn write_literal(
        &self,
        actor: &Actor,
        id: DatapointId,
        literal: &str,
    ) -> Result<Sample, WriteError> {
        let value = self.check_write(actor, id, literal)?;
        self.write(actor, id, value).await
    }

    /// Writes `value` (from [`Self::check_write`]) for `actor` and returns once it is durable,
    /// with the sample as stored; the event names the actor, and the write is counted.
    pub async fn write(
        &self,
        actor: &Actor,
        id: DatapointId,
        value: Value,
    ) -> Result<Sample, WriteError> {
        let (ack, acked) = oneshot::channel();
        self.writer
            .send(Command::Write {
                id,
                value,
                actor: actor.reference(),
                ack,
            })
            .await
            .map_err(|_| WriteError::Stopped)?;
        let sample = acked.await.map_err(|_| WriteError::Stopped)??;
        self.metrics
            .record_datapoint_write(self.datapoint(id).key.as_str());
        Ok(sample)
    }

    /// Commits every write queued so far, then stops the writer; later writes fail with
    /// [`WriteError::Stopped`].
    pub async fn shutdown(&self) {
        let (done, stopped) = oneshot::channel();
        if self.writer.send(Command::Stop(done)).await.is_ok() {
            let _ = stopped.await;
        }
    }
}

struct Writer {
    slots: Arc<Slots>,
    clock: Arc<dyn Clock>,
    /// Numbers, records and publishes each write's event, in the write's transaction.
    journal: Arc<Journal>,
    last_time: Option<OffsetDateTime>,
    history: Option<History>,
}

type Pending = (
    DatapointId,
    Sample,
    ActorRef,
    oneshot::Sender<Result<Sample, WriteError>>,
);

impl Writer {
    async fn run(mut self, mut queue: mpsc::Receiver<Command>) {
        let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
        while let Some(command) = queue.recv().await {
            let mut stop = self.take(command, &mut batch);
            while stop.is_none() && batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(command) => stop = self.take(command, &mut batch),
                    Err(_) => break,
                }
            }
            self.commit(&mut batch).await;
            if let Some(done) = stop {
                queue.close();
                // Writes that raced the stop are refused rather than left hanging.
                while let Ok(Command::Write { ack, .. }) = queue.try_recv() {
                    let _ = ack.send(Err(WriteError::Stopped));
                }
                let _ = done.send(());
                return;
            }
        }
    }

    fn take(&mut self, command: Command, batch: &mut Vec<Pending>) -> Option<oneshot::Sender<()>> {
        match command {
            Command::Write {
                id,
                value,
                actor,
                ack,
            } => {
                let update_time = self.next_time();
                // The sequence number comes from the journal when the batch commits.
                let sample = Sample {
                    value,
                    update_time,
                    seq: 0,
                };
                batch.push((id, sample, actor, ack));
                None
            }
            Command::Stop(done) => Some(done),
        }
    }

    /// Now, in whole microseconds (what the store keeps, so a value reads the same before and
    /// after a restart), and always later than the previous write's time, so that update times
    /// order writes even when the clock stands still or steps back.
    fn next_time(&mut self) -> OffsetDateTime {
        let now = self.clock.now();
        let now = now
            .replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
            .unwrap_or(now);
        let time = match self.last_time {
            Some(last) if now <= last => last + time::Duration::microseconds(1),
            _ => now,
        };
        self.last_time = Some(time);
        time
    }

    /// Commits the batch through the journal (values, events, their webhook rows, in one
    /// transaction), then makes the values current and acknowledges, in write order.
    async fn commit(&mut self, batch: &mut Vec<Pending>) {
        if batch.is_empty() {
            return;
        }
        let slots = &self.slots;
        let drafts = batch
            .iter()
            .map(|(id, sample, actor, _)| {
                let point = &slots.slots[id.0].datapoint;
                Draft {
                    time: sample.update_time,
                    actor: actor.clone(),
                    payload: EventPayload::DatapointWritten {
                        key: point.key.clone(),
                        // A write-only value is stored, never carried by its event.
                        value: point.access.readable().then(|| sample.value.clone()),
                    },
                }
            })
            .collect();
        // Each write is a value of its datapoint's history stream too, in the same transaction.
        let mut kept = Vec::new();
        let mut values = Vec::new();
        if let Some(history) = &self.history {
            for (id, sample, _, _) in batch.iter() {
                if let Some(Some((num, _, tree_size))) = history.streams.get(id.0) {
                    kept.push((*num, *tree_size));
                    values.push(NewValue {
                        stream: *num,
                        ts_us: to_micros(sample.update_time),
                        value: sample.value.to_bytes(),
                    });
                }
            }
        }
        let stored_us = to_micros(self.clock.now());
        let series = match values.is_empty() {
            true => SeriesChange::None,
            false => SeriesChange::Values(ValuesWrite {
                streams: kept.iter().map(|(num, _)| *num).collect(),
                values,
                stored_us,
            }),
        };
        let outcome = self
            .journal
            .commit(drafts, |events| Change {
                datapoints: batch
                    .iter()
                    .zip(events)
                    .map(|((id, sample, _, _), event)| DatapointRow {
                        key: slots.slots[id.0].datapoint.key.as_str().to_owned(),
                        value_json: sample.value.to_json(),
                        update_time: sample.update_time,
                        seq: event.seq,
                    })
                    .collect(),
                series,
                ..Change::default()
            })
            .await;
        let events = match outcome {
            Ok(events) => events.unwrap_or_default(),
            Err(error) => {
                tracing::error!(%error, writes = batch.len(), "datapoint write batch failed");
                for (_, _, _, ack) in batch.drain(..) {
                    let _ = ack.send(Err(WriteError::Store(error.clone())));
                }
                return;
            }
        };
        if let Some(history) = &self.history {
            history.series.stored(&kept, stored_us);
        }
        for ((id, mut sample, _, ack), event) in batch.drain(..).zip(events) {
            sample.seq = event.seq;
            self.slots.set(id, sample.clone());
            let _ = ack.send(Ok(sample));
        }
    }
}
