//! Trusted time series: streams of typed values, stored as they arrive, grouped into Merkle
//! trees whose roots the node signs, and validated on request.
//!
//! A stream's values, in timestamp order, are cut into trees of `2^merkleTreeDepth` values (or
//! fewer, when `maxMerkleTreeAgeSeconds` passes with no full tree). Closing a tree is one
//! transaction with the stream's row locked: it reads the values after the stream's last
//! proven timestamp, stores the signed root, and moves that timestamp to the tree's last
//! value. A value at or before the proven timestamp is refused, so every value is in exactly
//! one tree, across restarts and crashes: a tree is the values between two proven timestamps.
//!
//! This module knows nothing of HTTP: `api::series` and `api::demeter` speak its types.

pub mod checkpoint;
pub mod downsample;
pub mod encoding;
pub mod offline;
pub mod proof;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::access::{Actor, Policy, PolicyConfig, Refused};
use crate::clock::Clock;
use crate::events::{Draft, EventPayload, Journal, Topic};
use crate::jose::keys::PublicKey;
use crate::merkle;
use crate::secrets::Sealer;
use crate::store::{
    Change, NewValue, ProofKeyRow, ProofRow, Range, SeriesChange, Store, StoreError, StreamRow,
    ValueRow, ValuesWrite,
};
use crate::timefmt::to_micros;
pub use encoding::{Encoding, Kind};
pub use proof::{ProofKind, StreamId, Verdict};

/// `[values]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValueSettings {
    /// Most values in one write.
    pub max_batch: usize,
    /// Largest value, in bytes.
    pub max_value_bytes: usize,
    /// Most values (or proofs) one page answers (`PageSize`, `limit`).
    pub max_page: u32,
    /// Whether the node builds proofs (turned off only to measure what they cost).
    pub proofs: bool,
    /// Most stored values one downsampling read goes through (a read that reaches it answers
    /// the buckets it completed and a cursor for the rest).
    pub max_scan: u64,
    /// How often values older than their stream's `retentionDays` are deleted, in seconds.
    pub retention_sweep_seconds: u64,
    /// Days a datapoint's history keeps its values (absent: forever).
    pub history_retention_days: Option<u32>,
    /// Whether every datapoint write is also kept as a value of the datapoint's stream (its
    /// history, provable like any other stream's values).
    pub datapoint_history: bool,
    /// The origin line of the log of roots' checkpoints (and their key's name): a name no other
    /// log has, by convention a host and path such as `plant.example.com/portico/proofs`.
    pub log_origin: String,
}

impl Default for ValueSettings {
    fn default() -> Self {
        Self {
            max_batch: 10_000,
            max_value_bytes: 64 * 1024,
            max_page: 10_000,
            proofs: true,
            max_scan: 10_000_000,
            retention_sweep_seconds: 300,
            datapoint_history: true,
            history_retention_days: None,
            log_origin: "portico/proofs".into(),
        }
    }
}

impl ValueSettings {
    /// What is wrong with these settings.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(1..=100_000).contains(&self.max_batch) {
            problems.push("key `values.max_batch` must be between 1 and 100000".into());
        }
        if !(1..=1024 * 1024).contains(&self.max_value_bytes) {
            problems.push("key `values.max_value_bytes` must be between 1 and 1048576".into());
        }
        if !(100..=100_000).contains(&self.max_page) {
            problems.push("key `values.max_page` must be between 100 and 100000".into());
        }
        if self.history_retention_days == Some(0) {
            problems.push(
                "key `values.history_retention_days` must be at least 1 (leave it out to keep \
                 values)"
                    .into(),
            );
        }
        if !(1..=86_400).contains(&self.retention_sweep_seconds) {
            problems
                .push("key `values.retention_sweep_seconds` must be between 1 and 86400".into());
        }
        if !(10_000..=1_000_000_000).contains(&self.max_scan) {
            problems.push("key `values.max_scan` must be between 10000 and 1000000000".into());
        }
        if self.log_origin.is_empty()
            || self.log_origin.len() > 200
            || !self
                .log_origin
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'+')
        {
            problems.push(
                "key `values.log_origin` must be 1 to 200 printable ASCII characters without \
                 spaces or `+`"
                    .into(),
            );
        }
        problems
    }
}

/// `[tributech]`: who may use the Tributech-compatible API under `/demeter/api` (each stream's
/// own policies apply as well).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TributechSettings {
    /// Who may read values and proofs there (default `authenticated`).
    pub read: PolicyConfig,
    /// Who may write values and validate there (default `authenticated`).
    pub write: PolicyConfig,
}

impl Default for TributechSettings {
    fn default() -> Self {
        Self {
            read: authenticated(),
            write: authenticated(),
        }
    }
}

impl TributechSettings {
    /// What is wrong with these settings.
    pub fn problems(&self) -> Vec<String> {
        [("read", &self.read), ("write", &self.write)]
            .into_iter()
            .filter_map(|(name, policy)| {
                policy
                    .check()
                    .err()
                    .map(|e| format!("key `tributech.{name}`: {e}"))
            })
            .collect()
    }

    /// The read and write policies (checked by [`Self::problems`] at start-up).
    pub fn policies(&self) -> (Policy, Policy) {
        let policy = |p: &PolicyConfig| p.check().unwrap_or(Policy::Authenticated);
        (policy(&self.read), policy(&self.write))
    }
}

/// Most trees of one stream closed in one transaction (one commit, one sync).
const TREES_PER_COMMIT: i64 = 64;

/// Most roots one checkpoint newly covers while `proof.confirmed` is wanted (one event each,
/// in the checkpoint's transaction).
const CONFIRMED_PER_CHECKPOINT: i64 = 1_000;

/// Most values in one tree: depth 16, 65,536 values.
pub const MAX_DEPTH: u8 = 16;

/// A stream's settings, as the API writes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StreamSpec {
    /// A name for people.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// The unit of its values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 64)]
    pub unit: Option<String>,
    /// How its values are encoded.
    pub encoding: Encoding,
    /// A tree holds `2^merkleTreeDepth` values (0 to 16; default 5, 32 values).
    #[serde(default = "default_depth")]
    #[schema(maximum = 16)]
    pub merkle_tree_depth: u8,
    /// A tree with fewer values is closed when its first value is this old (default 600).
    #[serde(default = "default_age")]
    #[schema(minimum = 1, maximum = 2592000)]
    pub max_merkle_tree_age_seconds: u32,
    /// How roots are signed.
    #[serde(default)]
    pub proof_kind: ProofKind,
    /// Who may read its values and proofs (default `authenticated`).
    #[serde(default = "authenticated")]
    pub read: PolicyConfig,
    /// Who may write values (default `authenticated`).
    #[serde(default = "authenticated")]
    pub write: PolicyConfig,
    /// Days values are kept (absent: forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub retention_days: Option<u32>,
    /// The datapoint whose history this stream keeps (set by the node, never through the API):
    /// its values are the datapoint's writes and it takes no others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datapoint: Option<String>,
    /// The device's public key (PEM, `-----BEGIN PUBLIC KEY-----`) when the device proves the
    /// stream itself: it submits each tree's signed root (`POST /demeter/api/proofs`) and the
    /// node checks it instead of building one. Its type must suit `proofKind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

fn default_depth() -> u8 {
    5
}

fn default_age() -> u32 {
    600
}

fn authenticated() -> PolicyConfig {
    PolicyConfig::Named("authenticated".into())
}

impl StreamSpec {
    /// A stream of `encoding` named `name`, every other setting its default.
    pub fn new(name: impl Into<String>, encoding: Encoding) -> Self {
        Self {
            name: name.into(),
            unit: None,
            encoding,
            merkle_tree_depth: default_depth(),
            max_merkle_tree_age_seconds: default_age(),
            proof_kind: ProofKind::default(),
            read: authenticated(),
            write: authenticated(),
            retention_days: None,
            datapoint: None,
            public_key: None,
        }
    }

    /// What is wrong with this spec.
    fn problems(&self) -> Result<(Policy, Policy), String> {
        let name = self.name.trim();
        if name.is_empty() || self.name.chars().count() > 200 {
            return Err("`name` must be 1 to 200 characters".into());
        }
        if self.unit.as_ref().is_some_and(|u| u.chars().count() > 64) {
            return Err("`unit` must be at most 64 characters".into());
        }
        if self.merkle_tree_depth > MAX_DEPTH {
            return Err(format!("`merkleTreeDepth` must be 0 to {MAX_DEPTH}"));
        }
        if !(1..=86_400 * 30).contains(&self.max_merkle_tree_age_seconds) {
            return Err("`maxMerkleTreeAgeSeconds` must be 1 to 2592000 (30 days)".into());
        }
        if self.retention_days == Some(0) {
            return Err("`retentionDays` must be at least 1 (leave it out to keep values)".into());
        }
        let read = self.read.check().map_err(|e| format!("`read`: {e}"))?;
        let write = self.write.check().map_err(|e| format!("`write`: {e}"))?;
        self.device_key()?;
        Ok((read, write))
    }

    /// The device's public key, checked against the proof kind.
    fn device_key(&self) -> Result<Option<PublicKey>, String> {
        let Some(pem) = &self.public_key else {
            return Ok(None);
        };
        let key = crate::jose::pem::public_key_from_pem(pem.as_bytes())
            .map_err(|e| format!("`publicKey` is not a PEM public key: {e}"))?;
        let suits = match (&key, self.proof_kind.algorithm()) {
            (PublicKey::Rsa { n, .. }, _) => {
                matches!(
                    self.proof_kind,
                    ProofKind::SHA256_RSA2048_PSS | ProofKind::SHA256_RSA2048_PKCS1
                ) && n.iter().skip_while(|&&b| b == 0).count() == 256
            }
            (PublicKey::Ec { curve, .. }, alg) => {
                curve.algorithm() == alg && alg == crate::jose::primitive::Algorithm::Es256
            }
            _ => false,
        };
        if !suits {
            return Err(format!(
                "`publicKey` does not suit `proofKind` {} (RSA kinds take a 2048-bit RSA key, \
                 ECDSA kinds a P-256 key)",
                self.proof_kind.name()
            ));
        }
        Ok(Some(key))
    }
}

/// A stream, as the node holds it.
#[derive(Debug)]
pub struct Stream {
    /// Its number in the store.
    pub num: i64,
    /// Its id.
    pub id: StreamId,
    /// Its settings.
    pub spec: StreamSpec,
    /// Its read policy.
    pub read: Policy,
    /// Its write policy.
    pub write: Policy,
    /// The device's key, when the device proves the stream.
    pub device_key: Option<PublicKey>,
    /// Whether a configured datapoint feeds it (its history stream, [`Series::adopt`]).
    pub adopted: bool,
    /// When it was created and last changed (microseconds).
    pub created_us: i64,
    /// When it was last changed.
    pub updated_us: i64,
}

impl Stream {
    fn from_row(row: &StreamRow) -> Result<Self, String> {
        let id = StreamId::parse(&row.id).ok_or_else(|| format!("stored stream id {}", row.id))?;
        let spec: StreamSpec = serde_json::from_str(&row.spec).map_err(|e| e.to_string())?;
        let (read, write) = spec.problems()?;
        let device_key = spec.device_key()?;
        Ok(Self {
            num: row.num,
            id,
            spec,
            read,
            write,
            device_key,
            adopted: false,
            created_us: row.created_us,
            updated_us: row.updated_us,
        })
    }

    /// Whether `actor` may write values to it: its write policy lets the actor in, and it
    /// does not keep a datapoint's history (those values come from the datapoint's writes).
    fn accepts(&self, actor: &Actor) -> Result<(), SeriesError> {
        if let Some(key) = &self.spec.datapoint {
            return Err(SeriesError::Conflict(format!(
                "Stream {} keeps the history of datapoint `{key}`: write the datapoint instead.",
                self.id
            )));
        }
        self.write.authorize(actor).map_err(SeriesError::Refused)
    }

    /// Most values in one of its trees.
    pub fn tree_size(&self) -> i64 {
        1 << self.spec.merkle_tree_depth
    }
}

/// Why a series operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum SeriesError {
    /// No such stream (or the reader may not know of it).
    #[error("there is no stream {0}")]
    NoStream(String),
    /// The actor may not.
    #[error("refused")]
    Refused(Refused),
    /// A value or setting is not acceptable; the sentence says why.
    #[error("{0}")]
    Invalid(String),
    /// A value at one of these timestamps is already stored, or the stream id is taken.
    #[error("{0}")]
    Conflict(String),
    /// Too many values or too large a value.
    #[error("{0}")]
    TooLarge(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Values to store: per value, its stream, timestamp and bytes.
pub type Batch = Vec<(StreamId, i64, Vec<u8>)>;

/// A value's inclusion proof: everything needed to check it offline.
#[derive(Debug, Clone)]
pub struct Inclusion {
    /// The value.
    pub value: ValueRow,
    /// Its index in its tree.
    pub leaf_index: u64,
    /// The audit path, from the leaf up.
    pub path: Vec<merkle::Hash>,
    /// The tree's proof.
    pub proof: ProofRow,
    /// The proof's place in the log of roots under the latest checkpoint (`None` while no
    /// checkpoint covers it).
    pub log: Option<LogInclusion>,
}

/// A proof's root in the log of roots, under a checkpoint.
#[derive(Debug, Clone)]
pub struct LogInclusion {
    /// The log leaf's index.
    pub index: u64,
    /// The checkpoint's size.
    pub size: u64,
    /// The audit path of the leaf in the checkpoint's tree.
    pub path: Vec<merkle::Hash>,
    /// The signed checkpoint.
    pub note: String,
}

/// A proof a device submits for a tree of its stream (Tributech's `{proof, proofLocation}`).
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The proof's id (a UUID the device chose).
    pub id: String,
    /// The tree's root hash.
    pub root: Vec<u8>,
    /// The device's signature of it.
    pub signature: Vec<u8>,
    /// The stream.
    pub stream: String,
    /// The tree holds `2^depth` values.
    pub depth: i32,
    /// Its last value's timestamp.
    pub last_us: i64,
}

/// What became of a submitted proof.
#[derive(Debug, Clone)]
pub enum Received {
    /// Checked and stored.
    Stored(ProofRow),
    /// A proof at that location exists already.
    Duplicate,
    /// Refused: the check that failed.
    Refused(Verdict),
}

/// The kind of the checkpoint key's row among the proof keys.
const CHECKPOINT_KEY: &str = "CHECKPOINT_ED25519";

/// The node's proof keys: the active signer per kind, and every key's public half by kid.
#[derive(Debug, Default)]
struct Keys {
    signers: HashMap<ProofKind, Arc<proof::ProofSigner>>,
    public: HashMap<String, (ProofKind, PublicKey)>,
    jwks: Vec<serde_json::Value>,
    checkpoint: Option<Arc<checkpoint::CheckpointSigner>>,
    /// Every checkpoint key's Ed25519 public key (the active one first).
    checkpoint_public: Vec<Vec<u8>>,
}

/// Values not yet under a proof, per stream number.
#[derive(Debug, Clone, Copy)]
struct Unproven {
    count: i64,
    oldest_stored_us: i64,
    /// Values counted since the prover last read the count from the store: added to what it
    /// reads, so a value stored while it reads is never lost from the count.
    fresh: i64,
}

/// The streams, their values and proofs.
#[derive(Debug)]
pub struct Series {
    store: Store,
    journal: Arc<Journal>,
    clock: Arc<dyn Clock>,
    sealer: Arc<Sealer>,
    settings: ValueSettings,
    streams: RwLock<HashMap<StreamId, Arc<Stream>>>,
    keys: RwLock<Keys>,
    unproven: Mutex<HashMap<i64, Unproven>>,
    wake: Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn key_identity(kid: &str) -> String {
    format!("proof-key:{kid}")
}

impl Series {
    /// Loads the streams, the proof keys and what is unproven. Changes are recorded through
    /// `journal`, with their events.
    pub async fn open(
        store: Store,
        journal: Arc<Journal>,
        clock: Arc<dyn Clock>,
        sealer: Arc<Sealer>,
        settings: ValueSettings,
    ) -> Result<Arc<Self>, String> {
        let series = Self {
            store,
            journal,
            clock,
            sealer,
            settings,
            streams: RwLock::default(),
            keys: RwLock::default(),
            unproven: Mutex::default(),
            wake: Notify::new(),
        };
        let rows = series.store.streams().await.map_err(|e| e.to_string())?;
        {
            let mut streams = write(&series.streams);
            for row in &rows {
                let stream = Stream::from_row(row)?;
                streams.insert(stream.id, Arc::new(stream));
            }
        }
        series.load_keys().await?;
        let nums: Vec<i64> = read(&series.streams).values().map(|s| s.num).collect();
        for num in nums {
            if let Some((count, oldest_stored_us)) = series
                .store
                .unproven(num)
                .await
                .map_err(|e| e.to_string())?
            {
                lock(&series.unproven).insert(
                    num,
                    Unproven {
                        count,
                        oldest_stored_us,
                        fresh: 0,
                    },
                );
            }
        }
        Ok(Arc::new(series))
    }

    async fn load_keys(&self) -> Result<(), String> {
        let rows = self.store.proof_keys().await.map_err(|e| e.to_string())?;
        let mut keys = Keys::default();
        for row in rows {
            if row.kind == CHECKPOINT_KEY {
                let public = crate::jose::pem::public_key_from_pem(row.public_pem.as_bytes())
                    .map_err(|e| e.to_string())?;
                let PublicKey::Ed25519(public) = public else {
                    return Err("the checkpoint key is not Ed25519".into());
                };
                keys.jwks
                    .push(serde_json::from_str(&row.jwk).map_err(|e| e.to_string())?);
                if row.state == "active" {
                    let der = self.private_key(&row)?;
                    keys.checkpoint = Some(Arc::new(checkpoint::CheckpointSigner::from_pkcs8(
                        &self.settings.log_origin,
                        &der,
                    )?));
                    keys.checkpoint_public.insert(0, public);
                } else {
                    keys.checkpoint_public.push(public);
                }
                continue;
            }
            let kind = ProofKind::parse(&row.kind).ok_or("a stored proof key's kind")?;
            let public = crate::jose::pem::public_key_from_pem(row.public_pem.as_bytes())
                .map_err(|e| e.to_string())?;
            keys.public.insert(row.kid.clone(), (kind, public));
            keys.jwks
                .push(serde_json::from_str(&row.jwk).map_err(|e| e.to_string())?);
            if row.state == "active" {
                let der = self.private_key(&row)?;
                let signer = proof::ProofSigner::from_pkcs8(kind, &row.kid, &der)?;
                keys.signers.insert(kind, Arc::new(signer));
            }
        }
        *write(&self.keys) = keys;
        Ok(())
    }

    /// A stored key's private half, unsealed.
    fn private_key(&self, row: &ProofKeyRow) -> Result<Vec<u8>, String> {
        self.sealer
            .open(&key_identity(&row.kid), &row.sealed_private)
            .map_err(|e| e.to_string())
    }

    /// Makes a new key the active one for `kind` (the first, or a rotation); answers its kid.
    pub async fn rotate_key(&self, kind: ProofKind) -> Result<String, String> {
        let new = proof::ProofSigner::generate(kind)?;
        let row = ProofKeyRow {
            kid: new.kid.clone(),
            kind: kind.name().into(),
            state: "active".into(),
            public_pem: new.public_pem,
            jwk: new.jwk.to_string(),
            sealed_private: self.sealer.seal(&key_identity(&new.kid), &new.private_der),
            created_us: to_micros(self.clock.now()),
        };
        self.store
            .activate_proof_key(&row)
            .await
            .map_err(|e| e.to_string())?;
        self.load_keys().await?;
        Ok(new.kid)
    }

    /// Makes a new checkpoint key the active one (the first, or a rotation).
    pub async fn rotate_checkpoint_key(&self) -> Result<(), String> {
        let generated =
            crate::jose::keygen::generate(crate::jose::primitive::Algorithm::Ed25519, 0)?;
        let der = ::pem::parse(&generated.private)
            .map_err(|e| e.to_string())?
            .into_contents();
        let mut jwk = generated.jwk;
        if let Some(members) = jwk.as_object_mut() {
            members.insert("purpose".into(), "checkpoint".into());
            members.insert("origin".into(), self.settings.log_origin.clone().into());
        }
        let row = ProofKeyRow {
            kid: generated.kid.clone(),
            kind: CHECKPOINT_KEY.into(),
            state: "active".into(),
            public_pem: generated.public_pem.unwrap_or_default(),
            jwk: jwk.to_string(),
            sealed_private: self.sealer.seal(&key_identity(&generated.kid), &der),
            created_us: to_micros(self.clock.now()),
        };
        self.store
            .activate_proof_key(&row)
            .await
            .map_err(|e| e.to_string())?;
        self.load_keys().await
    }

    /// The checkpoint signer, made on first use.
    async fn checkpoint_signer(&self) -> Result<Arc<checkpoint::CheckpointSigner>, String> {
        if let Some(signer) = &read(&self.keys).checkpoint {
            return Ok(signer.clone());
        }
        self.rotate_checkpoint_key().await?;
        read(&self.keys)
            .checkpoint
            .clone()
            .ok_or_else(|| "no checkpoint key after making one".into())
    }

    /// The checkpoint verifier key (`<name>+<key ID>+<key>`), once there is a checkpoint key.
    pub fn checkpoint_key(&self) -> Option<String> {
        read(&self.keys)
            .checkpoint
            .as_ref()
            .map(|signer| signer.verifier_key())
    }

    /// The tree hash of the log's leaves `[start, end)` (a range of the log's own shape).
    async fn log_range(&self, start: u64, end: u64) -> Result<merkle::Hash, SeriesError> {
        let pieces = merkle::perfect_pieces(start, end);
        let hashes = self
            .store
            .log_nodes(&pieces)
            .await?
            .ok_or_else(|| SeriesError::Invalid("the log of roots is missing a node".into()))?;
        let hashes: Vec<merkle::Hash> = hashes
            .iter()
            .map(|h| <merkle::Hash>::try_from(&h[..]).unwrap_or([0; 32]))
            .collect();
        Ok(merkle::fold_pieces(&hashes))
    }

    /// Signs a checkpoint of the log when it has grown since the latest one. Each proof a
    /// checkpoint newly covers records `proof.confirmed` (while someone listens) in the
    /// checkpoint's transaction; a backlog is checkpointed at most
    /// [`CONFIRMED_PER_CHECKPOINT`] roots at a time, so no transaction grows without bound.
    pub async fn publish_checkpoint(&self) -> Result<(), String> {
        let size = self.store.log_size().await.map_err(|e| e.to_string())?;
        let latest = self
            .store
            .latest_checkpoint()
            .await
            .map_err(|e| e.to_string())?;
        let mut from = latest.map_or(0, |c| c.size);
        while from < size {
            let wanted = self.journal.wanted(Topic::ProofConfirmed);
            let to = match wanted {
                true => size.min(from + CONFIRMED_PER_CHECKPOINT),
                false => size,
            };
            let signer = self.checkpoint_signer().await?;
            let root = self
                .log_range(0, to as u64)
                .await
                .map_err(|e| e.to_string())?;
            let note = signer.sign(to as u64, &root);
            let now = self.clock.now();
            let mut drafts = Vec::new();
            if wanted {
                let proofs = self
                    .store
                    .proofs_in_log(from, to)
                    .await
                    .map_err(|e| e.to_string())?;
                let ids: HashMap<i64, StreamId> = read(&self.streams)
                    .values()
                    .map(|s| (s.num, s.id))
                    .collect();
                for proof in proofs {
                    let Some(stream) = ids.get(&proof.stream) else {
                        continue;
                    };
                    drafts.push(Draft {
                        time: now,
                        actor: Actor::Internal("prover").reference(),
                        payload: EventPayload::ProofConfirmed {
                            stream: Arc::from(stream.to_string()),
                            depth: proof.depth,
                            last_us: proof.last_us,
                            root: Arc::from(proof.root),
                            log_index: u64::try_from(proof.log_index).unwrap_or(0),
                            checkpoint_size: to as u64,
                        },
                    });
                }
            }
            let checkpoint = crate::store::CheckpointRow {
                size: to,
                note,
                created_us: to_micros(now),
            };
            self.journal
                .commit(drafts, move |_| Change {
                    series: SeriesChange::Checkpoint(checkpoint),
                    ..Change::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            from = to;
        }
        Ok(())
    }

    /// The latest checkpoint: the note, and what it says when its signature verifies with one
    /// of the node's checkpoint keys (`None`: it was changed behind the node's back).
    pub async fn latest_checkpoint(
        &self,
    ) -> Result<Option<(String, Option<checkpoint::Checkpoint>)>, SeriesError> {
        let Some(row) = self.store.latest_checkpoint().await? else {
            return Ok(None);
        };
        let keys = read(&self.keys).checkpoint_public.clone();
        let origin = &self.settings.log_origin;
        let signed = keys
            .iter()
            .find_map(|public| checkpoint::verify(&row.note, origin, public));
        Ok(Some((row.note, signed)))
    }

    /// The consistency proof of the log between two checkpointed sizes.
    pub async fn consistency(&self, from: u64, to: u64) -> Result<Vec<merkle::Hash>, SeriesError> {
        let size = self.store.log_size().await? as u64;
        let ranges = merkle::consistency_ranges(from, to)
            .filter(|_| to <= size)
            .ok_or_else(|| {
                SeriesError::Invalid(format!(
                    "A consistency proof needs 1 <= from <= to <= {size} (the log's size)."
                ))
            })?;
        let mut proof = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            proof.push(self.log_range(start, end).await?);
        }
        Ok(proof)
    }

    /// Where a proof's root is in the log under the latest checkpoint: `Err` with the verdict
    /// when no checkpoint covers it yet (`State_ProofPending`) or the checkpoint's tree does not
    /// hold it (`Fail_ProofNotInChain`).
    async fn in_log(
        &self,
        stream: &Stream,
        proof: &ProofRow,
    ) -> Result<Result<LogInclusion, Verdict>, SeriesError> {
        let Some((note, checkpoint)) = self.latest_checkpoint().await? else {
            return Ok(Err(Verdict::State_ProofPending));
        };
        let Some(checkpoint) = checkpoint else {
            return Ok(Err(Verdict::Fail_ProofNotInChain));
        };
        let index = proof.log_index as u64;
        if index >= checkpoint.size {
            return Ok(Err(Verdict::State_ProofPending));
        }
        let Ok(root) = <merkle::Hash>::try_from(&proof.root[..]) else {
            return Ok(Err(Verdict::Fail_ProofNotInChain));
        };
        let leaf = merkle::leaf_hash(&proof::log_leaf(
            &stream.id,
            proof.last_us,
            proof.size,
            &root,
        ));
        let ranges = merkle::inclusion_ranges(index, checkpoint.size).unwrap_or_default();
        let mut path = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            path.push(self.log_range(start, end).await?);
        }
        if merkle::verify_inclusion(index, checkpoint.size, &leaf, &path, &checkpoint.root).is_err()
        {
            return Ok(Err(Verdict::Fail_ProofNotInChain));
        }
        Ok(Ok(LogInclusion {
            index,
            size: checkpoint.size,
            path,
            note,
        }))
    }

    /// The signer for `kind`, made on first use.
    async fn signer(&self, kind: ProofKind) -> Result<Arc<proof::ProofSigner>, String> {
        if let Some(signer) = read(&self.keys).signers.get(&kind) {
            return Ok(signer.clone());
        }
        self.rotate_key(kind).await?;
        read(&self.keys)
            .signers
            .get(&kind)
            .cloned()
            .ok_or_else(|| "no proof key after making one".into())
    }

    /// Every proof key's public JWK (active and retired): `{"keys": [...]}`.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": read(&self.keys).jwks })
    }

    /// The settings.
    pub fn settings(&self) -> &ValueSettings {
        &self.settings
    }

    /// The stream `id`, if `actor` may read it.
    pub fn stream(&self, actor: &Actor, id: &str) -> Result<Arc<Stream>, SeriesError> {
        let stream = self.find(id)?;
        stream.read.authorize(actor).map_err(SeriesError::Refused)?;
        Ok(stream)
    }

    /// The stream `id`, if `actor` may write to it.
    pub fn writable(&self, actor: &Actor, id: &str) -> Result<Arc<Stream>, SeriesError> {
        let stream = self.find(id)?;
        stream.accepts(actor)?;
        Ok(stream)
    }

    fn find(&self, id: &str) -> Result<Arc<Stream>, SeriesError> {
        StreamId::parse(id)
            .and_then(|sid| read(&self.streams).get(&sid).cloned())
            .ok_or_else(|| SeriesError::NoStream(crate::jose::json::truncate(id)))
    }

    /// The streams `actor` may read, oldest first.
    pub fn streams(&self, actor: &Actor) -> Vec<Arc<Stream>> {
        let mut streams: Vec<Arc<Stream>> = read(&self.streams)
            .values()
            .filter(|s| s.read.allows(actor))
            .cloned()
            .collect();
        streams.sort_by_key(|s| s.num);
        streams
    }

    /// Creates a stream (`id` generated when absent). Creating and changing streams is the
    /// caller's decision (the API lets stream managers do it).
    pub async fn create(
        &self,
        id: Option<StreamId>,
        spec: StreamSpec,
    ) -> Result<Arc<Stream>, SeriesError> {
        if spec.datapoint.is_some() {
            return Err(SeriesError::Invalid(
                "`datapoint` is set by the node: every datapoint has its stream already".into(),
            ));
        }
        self.put(id, spec).await
    }

    async fn put(
        &self,
        id: Option<StreamId>,
        spec: StreamSpec,
    ) -> Result<Arc<Stream>, SeriesError> {
        spec.problems().map_err(SeriesError::Invalid)?;
        let id = id.unwrap_or_else(StreamId::random);
        let text = serde_json::to_string(&spec).map_err(|e| SeriesError::Invalid(e.to_string()))?;
        let now = to_micros(self.clock.now());
        let num = self
            .store
            .create_stream(&id.to_string(), &text, now)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => SeriesError::Conflict(format!("Stream {id} exists.")),
                other => other.into(),
            })?;
        let row = StreamRow {
            num,
            id: id.to_string(),
            spec: text,
            proven_through_us: i64::MIN,
            created_us: now,
            updated_us: now,
        };
        let stream = Arc::new(Stream::from_row(&row).map_err(SeriesError::Invalid)?);
        write(&self.streams).insert(id, stream.clone());
        Ok(stream)
    }

    /// Replaces a stream's settings; its encoding cannot change (its stored values would no
    /// longer read).
    pub async fn update(&self, id: &str, spec: StreamSpec) -> Result<Arc<Stream>, SeriesError> {
        let old = self.find(id)?;
        if let Some(key) = old.spec.datapoint.as_ref().or(spec.datapoint.as_ref()) {
            return Err(SeriesError::Conflict(format!(
                "Stream {id} keeps the history of datapoint `{key}`: its settings follow the \
                 datapoint's configuration."
            )));
        }
        self.replace(&old, spec).await
    }

    async fn replace(&self, old: &Stream, spec: StreamSpec) -> Result<Arc<Stream>, SeriesError> {
        let id = old.id.to_string();
        spec.problems().map_err(SeriesError::Invalid)?;
        if spec.encoding != old.spec.encoding {
            return Err(SeriesError::Invalid(format!(
                "A stream's encoding cannot change (it is {}); create another stream.",
                old.spec.encoding.name()
            )));
        }
        let text = serde_json::to_string(&spec).map_err(|e| SeriesError::Invalid(e.to_string()))?;
        let now = to_micros(self.clock.now());
        self.store
            .update_stream(&old.id.to_string(), &text, now)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => SeriesError::NoStream(id.clone()),
                other => other.into(),
            })?;
        let row = StreamRow {
            num: old.num,
            id: old.id.to_string(),
            spec: text,
            proven_through_us: i64::MIN,
            created_us: old.created_us,
            updated_us: now,
        };
        let stream = Arc::new(Stream::from_row(&row).map_err(SeriesError::Invalid)?);
        write(&self.streams).insert(old.id, stream.clone());
        self.wake.notify_one();
        Ok(stream)
    }

    /// Deletes a stream with its values and proofs; records `stream.deleted`.
    pub async fn delete(&self, actor: &Actor, id: &str) -> Result<(), SeriesError> {
        let stream = self.find(id)?;
        if let Some(key) = stream.spec.datapoint.as_ref().filter(|_| stream.adopted) {
            return Err(SeriesError::Conflict(format!(
                "Stream {id} keeps the history of datapoint `{key}`, which is configured: remove \
                 the datapoint first."
            )));
        }
        let draft = Draft {
            time: self.clock.now(),
            actor: actor.reference(),
            payload: EventPayload::StreamDeleted {
                stream: Arc::from(stream.id.to_string()),
            },
        };
        self.journal
            .commit(vec![draft], |_| Change {
                series: SeriesChange::DeleteStream(stream.id.to_string()),
                ..Change::default()
            })
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => SeriesError::NoStream(id.to_owned()),
                other => other.into(),
            })?;
        write(&self.streams).remove(&stream.id);
        lock(&self.unproven).remove(&stream.num);
        Ok(())
    }

    /// Stores a batch of values: every value's stream must exist and let `actor` write, every
    /// value must fit its stream's encoding, and no timestamp may be taken; otherwise nothing
    /// is stored. Durable when this returns; answers how many were stored.
    pub async fn ingest(&self, actor: &Actor, batch: Batch) -> Result<usize, SeriesError> {
        if batch.len() > self.settings.max_batch {
            return Err(SeriesError::TooLarge(format!(
                "A write holds at most {} values (`values.max_batch`); this one has {}.",
                self.settings.max_batch,
                batch.len()
            )));
        }
        let mut streams: HashMap<StreamId, Arc<Stream>> = HashMap::new();
        let mut values = Vec::with_capacity(batch.len());
        for (n, (id, ts_us, bytes)) in batch.into_iter().enumerate() {
            let stream = match streams.get(&id) {
                Some(stream) => stream.clone(),
                None => {
                    let stream = self.find(&id.to_string())?;
                    stream.accepts(actor)?;
                    streams.insert(id, stream.clone());
                    stream
                }
            };
            if bytes.len() > self.settings.max_value_bytes {
                return Err(SeriesError::TooLarge(format!(
                    "Value {n} is {} bytes; a value holds at most {} (`values.max_value_bytes`).",
                    bytes.len(),
                    self.settings.max_value_bytes
                )));
            }
            stream
                .spec
                .encoding
                .check(&bytes)
                .map_err(|why| SeriesError::Invalid(format!("Value {n} does not fit: {why}.")))?;
            values.push(NewValue {
                stream: stream.num,
                ts_us,
                value: bytes,
            });
        }
        if values.is_empty() {
            return Ok(0);
        }
        let nums: Vec<i64> = streams.values().map(|s| s.num).collect();
        let now = self.clock.now();
        let stored_us = to_micros(now);
        // A value's row is the durable record of its events: they are made (and reach the
        // webhook outbox, in the same transaction) only while someone listens.
        let (received, stored) = (
            self.journal.wanted(Topic::ValueReceived),
            self.journal.wanted(Topic::ValueStored),
        );
        let mut drafts = Vec::new();
        if received || stored {
            let who = actor.reference();
            let ids: HashMap<i64, Arc<str>> = streams
                .values()
                .map(|s| (s.num, Arc::from(s.id.to_string())))
                .collect();
            for value in &values {
                let bytes: Arc<[u8]> = Arc::from(value.value.as_slice());
                for (wanted, is_stored) in [(received, false), (stored, true)] {
                    if wanted {
                        drafts.push(Draft {
                            time: now,
                            actor: who.clone(),
                            payload: EventPayload::Value {
                                stored: is_stored,
                                stream: ids
                                    .get(&value.stream)
                                    .cloned()
                                    .unwrap_or_else(|| "".into()),
                                timestamp_us: value.ts_us,
                                value: bytes.clone(),
                            },
                        });
                    }
                }
            }
        }
        let count = values.len();
        let sizes: HashMap<i64, i64> = streams.values().map(|s| (s.num, s.tree_size())).collect();
        let touched: Vec<(i64, i64)> = values
            .iter()
            .map(|v| (v.stream, sizes.get(&v.stream).copied().unwrap_or(1)))
            .collect();
        self.journal
            .commit(drafts, move |_| Change {
                series: SeriesChange::Values(ValuesWrite {
                    streams: nums,
                    values,
                    stored_us,
                }),
                ..Change::default()
            })
            .await
            .map_err(|e| match e {
                StoreError::Conflict(why) => SeriesError::Conflict(why),
                StoreError::NotFound(_) => SeriesError::NoStream("deleted while writing".into()),
                other => other.into(),
            })?;
        self.stored(&touched, stored_us);
        Ok(count)
    }

    /// Tells the prover of values just made durable at `stored_us`, one per entry of
    /// `values` (each its stream's number and tree size). The prover is woken only when a
    /// stream holds a full transaction's worth of trees ([`TREES_PER_COMMIT`]); its
    /// one-second round closes the rest, full or old, so a steady stream of writes costs the
    /// store a few proof transactions a second rather than one per tree.
    pub fn stored(&self, values: &[(i64, i64)], stored_us: i64) {
        if !self.settings.proofs || values.is_empty() {
            return;
        }
        let mut full = false;
        let mut unproven = lock(&self.unproven);
        for &(stream, tree_size) in values {
            let entry = unproven.entry(stream).or_insert(Unproven {
                count: 0,
                oldest_stored_us: stored_us,
                fresh: 0,
            });
            entry.count += 1;
            entry.fresh += 1;
            full |= entry.count >= tree_size.saturating_mul(TREES_PER_COMMIT);
        }
        drop(unproven);
        if full {
            self.wake.notify_one();
        }
    }

    /// The stream that keeps a datapoint's history (`spec.datapoint` names it): made on first
    /// start, its stored settings kept in step with `spec`, read under `read` (the datapoint's
    /// own read policy with the API's). Its id is derived from the datapoint's key and its
    /// encoding, so a datapoint whose type changes starts a new history and the old one stays.
    /// With no `read` (a write-only datapoint, whose values are never shown) nothing is made,
    /// and a history kept before is withheld: not listed, read or written.
    pub async fn adopt(
        &self,
        spec: StreamSpec,
        read: Option<Policy>,
    ) -> Result<Option<Arc<Stream>>, String> {
        let key = spec
            .datapoint
            .clone()
            .ok_or("the spec names no datapoint")?;
        let id = StreamId::derived(&format!("datapoint/{}", spec.encoding.name()), &key);
        let existing = self.find(&id.to_string()).ok();
        let Some(read) = read else {
            write(&self.streams).remove(&id);
            return Ok(None);
        };
        if let Some(other) = existing
            .as_ref()
            .filter(|s| s.spec.datapoint.as_deref() != Some(key.as_str()))
        {
            return Err(format!(
                "stream {} has the id of datapoint `{key}`'s history but is not it: delete that \
                 stream (DELETE /api/v1/streams/{})",
                other.id, other.id
            ));
        }
        let stream = match existing {
            Some(old) if old.spec == spec => Ok(old),
            Some(old) => self.replace(&old, spec).await,
            None => self.put(Some(id), spec).await,
        }
        .map_err(|e| format!("datapoint `{key}`'s stream: {e}"))?;
        let adopted = Arc::new(Stream {
            num: stream.num,
            id: stream.id,
            spec: stream.spec.clone(),
            read,
            write: stream.write.clone(),
            device_key: None,
            adopted: true,
            created_us: stream.created_us,
            updated_us: stream.updated_us,
        });
        write(&self.streams).insert(id, adopted.clone());
        Ok(Some(adopted))
    }

    /// A stream's values in a range, for a reader its policy lets in.
    pub async fn values(
        &self,
        actor: &Actor,
        id: &str,
        range: Range,
    ) -> Result<(Arc<Stream>, Vec<ValueRow>), SeriesError> {
        let stream = self.stream(actor, id)?;
        let values = self.store.values(stream.num, range).await?;
        Ok((stream, values))
    }

    /// A stream's values cut into buckets as `asked` ([`downsample`]); answers where the next
    /// page starts (`from`) when more may follow. It goes through about `asked.scan` stored
    /// values at most, read a bounded number of bytes at a time.
    pub async fn downsample(
        &self,
        actor: &Actor,
        id: &str,
        asked: downsample::Asked,
    ) -> Result<(Arc<Stream>, Vec<downsample::Bucket>, Option<i64>), SeriesError> {
        let downsample::Asked {
            from_us: window_from,
            to_us,
            interval_us,
            aggregates,
            limit,
            scan,
        } = asked;
        /// Values of a fixed size (8 bytes at most) read from the store at a time.
        const CHUNK: i64 = 50_000;
        /// Bytes of values of any size read at a time, at most.
        const CHUNK_BYTES: i64 = 16 << 20;
        let stream = self.stream(actor, id)?;
        aggregates
            .check(stream.spec.encoding)
            .map_err(SeriesError::Invalid)?;
        let encoding = stream.spec.encoding;
        let chunk = match encoding.is_numeric() || encoding == Encoding::Bool {
            true => CHUNK,
            false => (CHUNK_BYTES / self.settings.max_value_bytes.max(1) as i64).clamp(64, CHUNK),
        };
        let mut sampler = downsample::Downsampler::new(interval_us, encoding, aggregates);
        let mut from_us = window_from;
        let mut scanned = 0u64;
        loop {
            let page = self
                .store
                .values(stream.num, Range::ascending(from_us, to_us, chunk))
                .await?;
            for value in &page {
                sampler.push(value.ts_us, &value.value);
            }
            scanned += page.len() as u64;
            let Some(last) = page.last().filter(|_| page.len() as i64 == chunk) else {
                // Every value in the range is read: the open bucket is complete too.
                let mut buckets = sampler.finish();
                let next = buckets.get(limit).map(|b| b.start_us);
                buckets.truncate(limit);
                return Ok((stream, buckets, next));
            };
            from_us = last.ts_us.saturating_add(1);
            if sampler.closed() >= limit || scanned >= scan {
                let open = sampler.open_start();
                let mut buckets = sampler.complete();
                if buckets.is_empty() {
                    return Err(SeriesError::Invalid(format!(
                        "One bucket holds more than {scan} values (`values.max_scan`, shared by \
                         the streams of one read); choose a shorter interval or range, or fewer \
                         streams."
                    )));
                }
                let next = buckets.get(limit).map(|b| b.start_us).or(open);
                buckets.truncate(limit);
                return Ok((stream, buckets, next));
            }
        }
    }

    /// A stream's proofs whose last timestamp is in a range.
    pub async fn proofs(
        &self,
        actor: &Actor,
        id: &str,
        range: Range,
    ) -> Result<
        (
            Arc<Stream>,
            Vec<(ProofRow, Option<crate::store::ValidationRow>)>,
        ),
        SeriesError,
    > {
        let stream = self.stream(actor, id)?;
        let proofs = self.store.proofs(stream.num, range).await?;
        let mut out = Vec::with_capacity(proofs.len());
        for proof in proofs {
            let latest = self
                .store
                .validations(stream.num, proof.last_us)
                .await?
                .into_iter()
                .next();
            out.push((proof, latest));
        }
        Ok((stream, out))
    }

    /// The proof covering `ts_us` with its validations, newest first.
    pub async fn proof_history(
        &self,
        actor: &Actor,
        id: &str,
        ts_us: i64,
    ) -> Result<Option<(ProofRow, Vec<crate::store::ValidationRow>)>, SeriesError> {
        let stream = self.stream(actor, id)?;
        let Some(proof) = self.store.proof_covering(stream.num, ts_us).await? else {
            return Ok(None);
        };
        let history = self.store.validations(stream.num, proof.last_us).await?;
        Ok(Some((proof, history)))
    }

    /// Checks a device's proof for the next tree of its stream: exactly `2^depth` values after
    /// the stream's last proven timestamp, the last at `last_us`, must hash to the root, and the
    /// signature must verify with the stream's device key in its proof kind. Stored when it
    /// holds; `proof.received` records the outcome either way.
    pub async fn submit(
        &self,
        actor: &Actor,
        submitted: Submitted,
    ) -> Result<Received, SeriesError> {
        let stream = self.writable(actor, &submitted.stream)?;
        let Some(key) = stream.device_key.clone() else {
            return Err(SeriesError::Invalid(format!(
                "Stream {} names no device key (`publicKey`): the node proves it itself.",
                stream.id
            )));
        };
        if !(0..=i32::from(MAX_DEPTH)).contains(&submitted.depth) {
            return Err(SeriesError::Invalid(format!(
                "`merkleTreeDepth` must be 0 to {MAX_DEPTH}."
            )));
        }
        if submitted.root.len() != 32 || StreamId::parse(&submitted.id).is_none() {
            return Err(SeriesError::Invalid(
                "A proof's `rootHash` is 32 bytes and its `id` a UUID.".into(),
            ));
        }
        let size = 1i64 << submitted.depth;
        let (after_us, values) = self
            .store
            .unproven_values(stream.num, size)
            .await?
            .ok_or_else(|| SeriesError::NoStream(submitted.stream.clone()))?;
        let now = self.clock.now();
        let mut outcome = if submitted.last_us <= after_us {
            match self
                .store
                .proof_covering(stream.num, submitted.last_us)
                .await?
            {
                Some(p) if p.last_us == submitted.last_us => Received::Duplicate,
                _ => Received::Refused(Verdict::Fail_ProofLocationNotFound),
            }
        } else if values.len() as i64 != size
            || values.last().map(|v| v.ts_us) != Some(submitted.last_us)
        {
            Received::Refused(Verdict::Fail_ValuesNotFound)
        } else {
            let root = merkle::root(&leaves(&stream.id, &values));
            if root[..] != submitted.root[..] {
                Received::Refused(Verdict::Fail_RootHashMismatch)
            } else {
                match proof::verify(stream.spec.proof_kind, &key, &root, &submitted.signature) {
                    Ok(true) => Received::Stored(ProofRow {
                        stream: stream.num,
                        last_us: submitted.last_us,
                        first_us: values[0].ts_us,
                        size,
                        depth: submitted.depth,
                        id: submitted.id.clone(),
                        root: root.to_vec(),
                        signature: submitted.signature.clone(),
                        kind: stream.spec.proof_kind.name().into(),
                        kid: "device".into(),
                        origin: "device".into(),
                        created_us: to_micros(now),
                        log_index: 0,
                    }),
                    Ok(false) => Received::Refused(Verdict::Fail_SignatureMismatch),
                    Err(_) => Received::Refused(Verdict::Fail_InvalidPublicKey),
                }
            }
        };
        let result = match &outcome {
            Received::Stored(_) => "Success",
            Received::Duplicate => "Fail_DuplicateProofLocation",
            Received::Refused(verdict) => verdict.name(),
        };
        let id: Arc<str> = Arc::from(stream.id.to_string());
        let mut drafts = vec![Draft {
            time: now,
            actor: actor.reference(),
            payload: EventPayload::ProofReceived {
                stream: id.clone(),
                depth: submitted.depth,
                last_us: submitted.last_us,
                result,
            },
        }];
        let series = match &outcome {
            Received::Stored(proof) => {
                drafts.push(Draft {
                    time: now,
                    actor: actor.reference(),
                    payload: EventPayload::ProofStored {
                        stream: id,
                        depth: proof.depth,
                        last_us: proof.last_us,
                        root: Arc::from(proof.root.as_slice()),
                        signature: Arc::from(proof.signature.as_slice()),
                    },
                });
                let root: merkle::Hash = proof.root[..].try_into().unwrap_or([0; 32]);
                let leaf = merkle::leaf_hash(&proof::log_leaf(
                    &stream.id,
                    proof.last_us,
                    proof.size,
                    &root,
                ));
                SeriesChange::Trees {
                    stream: stream.num,
                    after_us,
                    trees: vec![(proof.clone(), leaf)],
                }
            }
            _ => SeriesChange::None,
        };
        match self
            .journal
            .commit(drafts, |_| Change {
                series,
                ..Change::default()
            })
            .await
        {
            // The log grew: the prover's next round checkpoints it.
            Ok(_) if matches!(outcome, Received::Stored(_)) => self.wake.notify_one(),
            Ok(_) => {}
            // Another submission for the same tree won the race.
            Err(StoreError::Conflict(_)) => outcome = Received::Duplicate,
            Err(e) => return Err(e.into()),
        }
        Ok(outcome)
    }

    /// Validates the proof covering the value at `ts_us`: recomputes the root from the stored
    /// values and checks its signature, and records the verdict in the proof's history.
    pub async fn validate(
        &self,
        actor: &Actor,
        id: &str,
        ts_us: i64,
    ) -> Result<Verdict, SeriesError> {
        let stream = self.stream(actor, id)?;
        if self.store.value_at(stream.num, ts_us).await?.is_none() {
            return Ok(Verdict::Fail_ValuesNotFound);
        }
        let Some(proof) = self.store.proof_covering(stream.num, ts_us).await? else {
            return Ok(Verdict::State_ProofPending);
        };
        let verdict = self.check(&stream, &proof).await?.0;
        if !self
            .record_validation(actor, &stream, proof.last_us, verdict)
            .await?
        {
            // Retention took the tree while it was checked: its values are gone.
            return Ok(Verdict::Fail_ValuesNotFound);
        }
        Ok(verdict)
    }

    /// Adds a verdict to a proof's history and records `proof.validated`; answers false, and
    /// records nothing, when the proof is gone (retention took it after it was read).
    async fn record_validation(
        &self,
        actor: &Actor,
        stream: &Stream,
        last_us: i64,
        verdict: Verdict,
    ) -> Result<bool, SeriesError> {
        let now = self.clock.now();
        let draft = Draft {
            time: now,
            actor: actor.reference(),
            payload: EventPayload::ProofValidated {
                stream: Arc::from(stream.id.to_string()),
                last_us,
                result: verdict.name(),
            },
        };
        match self
            .journal
            .commit(vec![draft], |_| Change {
                series: SeriesChange::Validation {
                    stream: stream.num,
                    last_us,
                    at_us: to_micros(now),
                    result: verdict.name().into(),
                },
                ..Change::default()
            })
            .await
        {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Validates every proof whose last timestamp is in `[from_us, to_us)`, at most
    /// `values.max_page` of them, recording each verdict; answers them by last timestamp.
    pub async fn validate_range(
        &self,
        actor: &Actor,
        id: &str,
        from_us: i64,
        to_us: i64,
    ) -> Result<Vec<(i64, Verdict)>, SeriesError> {
        let stream = self.stream(actor, id)?;
        let proofs = self
            .store
            .proofs(
                stream.num,
                Range::ascending(from_us, to_us, i64::from(self.settings.max_page)),
            )
            .await?;
        let mut out = Vec::with_capacity(proofs.len());
        for proof in proofs {
            let verdict = self.check(&stream, &proof).await?.0;
            // A proof retention took while it was checked is left out.
            if self
                .record_validation(actor, &stream, proof.last_us, verdict)
                .await?
            {
                out.push((proof.last_us, verdict));
            }
        }
        Ok(out)
    }

    /// Checks one proof against the stored values; answers the verdict and the tree's values.
    async fn check(
        &self,
        stream: &Stream,
        proof: &ProofRow,
    ) -> Result<(Verdict, Vec<ValueRow>), SeriesError> {
        let values = self
            .store
            .values(
                stream.num,
                Range::ascending(
                    proof.first_us,
                    proof.last_us.saturating_add(1),
                    proof.size.saturating_add(1),
                ),
            )
            .await?;
        let leaves = leaves(&stream.id, &values);
        let root = merkle::root(&leaves);
        if values.len() as i64 != proof.size || root[..] != proof.root[..] {
            return Ok((Verdict::Fail_RootHashMismatch, values));
        }
        let Ok(signed_root) = <[u8; 32]>::try_from(&proof.root[..]) else {
            return Ok((Verdict::Fail_RootHashMismatch, values));
        };
        let kind = ProofKind::parse(&proof.kind);
        // A device's proof verifies with the stream's device key, the node's with its own.
        let key = match proof.origin.as_str() {
            "device" => kind.zip(stream.device_key.clone()),
            _ => read(&self.keys).public.get(&proof.kid).cloned(),
        };
        let verdict = match (kind, key) {
            (Some(kind), Some((key_kind, key))) if key_kind == kind => {
                match proof::verify(kind, &key, &signed_root, &proof.signature) {
                    Ok(true) => Verdict::Success,
                    Ok(false) => Verdict::Fail_SignatureMismatch,
                    Err(_) => Verdict::Fail_InvalidPublicKey,
                }
            }
            _ => Verdict::Fail_InvalidPublicKey,
        };
        if verdict != Verdict::Success {
            return Ok((verdict, values));
        }
        let verdict = match self.in_log(stream, proof).await? {
            Ok(_) => Verdict::Success,
            Err(verdict) => verdict,
        };
        Ok((verdict, values))
    }

    /// A value's inclusion proof.
    pub async fn inclusion(
        &self,
        actor: &Actor,
        id: &str,
        ts_us: i64,
    ) -> Result<Result<Inclusion, Verdict>, SeriesError> {
        let stream = self.stream(actor, id)?;
        let Some(value) = self.store.value_at(stream.num, ts_us).await? else {
            return Ok(Err(Verdict::Fail_ValuesNotFound));
        };
        let Some(proof) = self.store.proof_covering(stream.num, ts_us).await? else {
            return Ok(Err(Verdict::State_ProofPending));
        };
        let (verdict, values) = self.check(&stream, &proof).await?;
        if !matches!(verdict, Verdict::Success | Verdict::State_ProofPending) {
            return Ok(Err(verdict));
        }
        let log = self.in_log(&stream, &proof).await?.ok();
        let leaves = leaves(&stream.id, &values);
        let index = values.iter().position(|v| v.ts_us == ts_us).unwrap_or(0);
        let path = merkle::inclusion_path(&leaves, index).unwrap_or_default();
        Ok(Ok(Inclusion {
            value,
            leaf_index: index as u64,
            path,
            proof,
            log,
        }))
    }

    /// Closes the trees that are due, until `shutdown`: a stream's tree when it has
    /// `2^depth` unproven values, or fewer whose oldest became durable
    /// `maxMerkleTreeAgeSeconds` ago. Woken by each write, and once a second for the ages.
    pub async fn run_prover(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            let mut closed = false;
            for num in self.due() {
                match self.close_tree(num).await {
                    Ok(done) => closed |= done,
                    Err(e) => {
                        tracing::warn!(stream = num, error = %e, "closing a Merkle tree failed; retrying");
                    }
                }
            }
            // Every round: the log also grows by devices' proofs, and a failed round retries.
            if let Err(e) = self.publish_checkpoint().await {
                tracing::warn!(error = %e, "publishing a checkpoint failed; retrying");
            }
            if closed && self.backlog() && !*shutdown.borrow() {
                // A backlog (after a restart, or a burst): close the next trees before waiting.
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }

    /// Deletes what streams with `retentionDays` no longer keep, oldest first: whole trees
    /// whose last value is older than the retention, each with its values, proof and
    /// validations, so that every proof left still validates (values not yet under a proof
    /// wait for theirs); when the node builds no proofs, values older than the retention, one
    /// by one.
    /// Roots stay in the log of roots, so checkpoints stay consistent. Answers how many
    /// values went.
    pub async fn expire(&self) -> Result<u64, StoreError> {
        /// Most values deleted in one transaction (trees of a stream's depth hold at most
        /// `2^depth`).
        const VALUES_PER_COMMIT: i64 = 100_000;
        /// Most transactions per stream and sweep.
        const COMMITS_PER_SWEEP: usize = 100;
        let now = to_micros(self.clock.now());
        let streams: Vec<Arc<Stream>> = read(&self.streams)
            .values()
            .filter(|s| s.spec.retention_days.is_some())
            .cloned()
            .collect();
        let mut total = 0;
        for stream in streams {
            let days = i64::from(stream.spec.retention_days.unwrap_or(u32::MAX));
            let cutoff = now.saturating_sub(days.saturating_mul(86_400_000_000));
            let whole_trees = self.settings.proofs || stream.device_key.is_some();
            let most = match whole_trees {
                true => (VALUES_PER_COMMIT / stream.tree_size()).max(1),
                false => VALUES_PER_COMMIT,
            };
            // A backlog goes a transaction at a time, others' writes between them, and at
            // most `COMMITS_PER_SWEEP` of them per sweep.
            for _ in 0..COMMITS_PER_SWEEP {
                let gone = self
                    .store
                    .expire(stream.num, cutoff, whole_trees, most)
                    .await?;
                total += gone;
                if gone == 0 {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        Ok(total)
    }

    /// Runs [`Self::expire`] every `values.retention_sweep_seconds` until shutdown.
    pub async fn run_retention(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let every = Duration::from_secs(self.settings.retention_sweep_seconds);
        loop {
            match self.expire().await {
                Ok(0) => {}
                Ok(gone) => tracing::info!(values = gone, "deleted values past their retention"),
                Err(e) => tracing::warn!(error = %e, "deleting values past their retention failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }

    /// Whether a stream holds a full transaction's worth of trees: the prover goes on without
    /// waiting for its next round.
    fn backlog(&self) -> bool {
        let streams = read(&self.streams);
        let sizes: HashMap<i64, i64> = streams.values().map(|s| (s.num, s.tree_size())).collect();
        lock(&self.unproven).iter().any(|(num, unproven)| {
            sizes
                .get(num)
                .is_some_and(|&size| unproven.count >= size.saturating_mul(TREES_PER_COMMIT))
        })
    }

    /// The streams whose next tree is due.
    fn due(&self) -> Vec<i64> {
        let now = to_micros(self.clock.now());
        let streams = read(&self.streams);
        let by_num: HashMap<i64, &Arc<Stream>> = streams.values().map(|s| (s.num, s)).collect();
        lock(&self.unproven)
            .iter()
            .filter(|(num, unproven)| {
                by_num.get(num).is_some_and(|stream| {
                    let age_us = i64::from(stream.spec.max_merkle_tree_age_seconds) * 1_000_000;
                    // A device proves its stream: the node checks what it submits.
                    stream.device_key.is_none()
                        && (unproven.count >= stream.tree_size()
                            || unproven.oldest_stored_us.saturating_add(age_us) <= now)
                })
            })
            .map(|(num, _)| *num)
            .collect()
    }

    /// Closes the due trees of stream `num` (up to [`TREES_PER_COMMIT`] in one transaction);
    /// updates what stays unproven. Answers whether a tree was closed.
    async fn close_tree(&self, num: i64) -> Result<bool, String> {
        let Some(stream) = read(&self.streams).values().find(|s| s.num == num).cloned() else {
            lock(&self.unproven).remove(&num);
            return Ok(false);
        };
        let signer = self.signer(stream.spec.proof_kind).await?;
        let now = self.clock.now();
        let now_us = to_micros(now);
        let size = stream.tree_size();
        let age_us = i64::from(stream.spec.max_merkle_tree_age_seconds) * 1_000_000;
        let next = self
            .store
            .unproven_values(num, size.saturating_mul(TREES_PER_COMMIT))
            .await
            .map_err(|e| e.to_string())?;
        let mut closed = false;
        if let Some((after_us, values)) = next {
            let mut trees = Vec::new();
            let mut drafts = Vec::new();
            for chunk in values.chunks(size as usize) {
                let full = chunk.len() as i64 == size;
                let oldest = chunk.iter().map(|v| v.stored_us).min().unwrap_or(now_us);
                if !full && oldest.saturating_add(age_us) > now_us {
                    break;
                }
                let root = merkle::root(&leaves(&stream.id, chunk));
                let signature = signer.sign(&root)?;
                let count = chunk.len() as i64;
                let (first_us, last_us) = (chunk[0].ts_us, chunk[chunk.len() - 1].ts_us);
                let leaf = merkle::leaf_hash(&proof::log_leaf(&stream.id, last_us, count, &root));
                drafts.push(Draft {
                    time: now,
                    actor: Actor::Internal("prover").reference(),
                    payload: EventPayload::ProofStored {
                        stream: Arc::from(stream.id.to_string()),
                        depth: depth_of(count),
                        last_us,
                        root: Arc::from(&root[..]),
                        signature: Arc::from(signature.as_slice()),
                    },
                });
                trees.push((
                    ProofRow {
                        stream: num,
                        last_us,
                        first_us,
                        size: count,
                        depth: depth_of(count),
                        id: crate::secrets::uuid(),
                        root: root.to_vec(),
                        signature,
                        kind: stream.spec.proof_kind.name().into(),
                        kid: signer.kid().into(),
                        origin: "node".into(),
                        created_us: now_us,
                        log_index: 0,
                    },
                    leaf,
                ));
            }
            if !trees.is_empty() {
                match self
                    .journal
                    .commit(drafts, |_| Change {
                        series: SeriesChange::Trees {
                            stream: num,
                            after_us,
                            trees,
                        },
                        ..Change::default()
                    })
                    .await
                {
                    Ok(_) => closed = true,
                    // Values came or went between the read and the commit (another node closed
                    // them, a value slipped in): built again on the next round.
                    Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
        // What stays unproven, as the store has it (another node may have closed trees), plus
        // what was stored while it was read (counted twice at worst: a tree is then due early,
        // and its round finds it is not full yet).
        if let Some(entry) = lock(&self.unproven).get_mut(&num) {
            entry.fresh = 0;
        }
        let left = self.store.unproven(num).await.map_err(|e| e.to_string())?;
        let mut unproven = lock(&self.unproven);
        let fresh = unproven.get(&num).map_or(0, |e| e.fresh);
        match left {
            Some((count, oldest_stored_us)) => {
                unproven.insert(
                    num,
                    Unproven {
                        count: count + fresh,
                        oldest_stored_us,
                        fresh: 0,
                    },
                );
            }
            None if fresh > 0 => {
                if let Some(entry) = unproven.get_mut(&num) {
                    entry.count = fresh;
                    entry.oldest_stored_us = now_us;
                    entry.fresh = 0;
                }
            }
            None => {
                unproven.remove(&num);
            }
        }
        Ok(closed)
    }
}

impl crate::events::SubjectReaders for Series {
    /// Whether `actor` may read the stream `subject` names (its id).
    fn allows(&self, actor: &Actor, subject: &str) -> bool {
        self.stream(actor, subject).is_ok()
    }
}

/// The leaf hashes of a stream's values, in order.
fn leaves(id: &StreamId, values: &[ValueRow]) -> Vec<merkle::Hash> {
    values
        .iter()
        .map(|v| merkle::leaf_hash(&proof::leaf(id, v.ts_us, &v.value)))
        .collect()
}

/// `ceil(log2(size))`: the depth of a tree of `size` values.
pub fn depth_of(size: i64) -> i32 {
    if size <= 1 {
        0
    } else {
        64 - (size - 1).leading_zeros() as i32
    }
}
