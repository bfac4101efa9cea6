-- Streams of typed values, their values, the Merkle proofs over them, validations, and the
-- node's proof keys.
--
-- A stream's number (`num`) is what its values and proofs refer to (a small integer, so a value
-- row stays small); its UUID is what the API names. `spec` is the stream's settings as JSON.
-- `proven_through_us` is the last timestamp under a proof: values at or before it are in a
-- closed tree, so none may be added there.
CREATE TABLE series_streams (
    num               INTEGER PRIMARY KEY,
    id                TEXT    NOT NULL UNIQUE,
    spec              TEXT    NOT NULL,
    proven_through_us BIGINT  NOT NULL,
    created_us        BIGINT  NOT NULL,
    updated_us        BIGINT  NOT NULL
);

-- One row per value: its timestamp (microseconds, UTC), when it became durable (as a delta from
-- the timestamp, usually a few bytes), and its bytes in the stream's encoding.
CREATE TABLE series_values (
    stream          INTEGER NOT NULL,
    ts_us           INTEGER NOT NULL,
    stored_delta_us INTEGER NOT NULL,
    value           BLOB    NOT NULL,
    PRIMARY KEY (stream, ts_us)
) WITHOUT ROWID;

-- A closed tree: the values of `stream` from `first_us` to `last_us`, `size` of them, their
-- root and its signature. `origin` is `node` (built here) or `device` (submitted).
CREATE TABLE series_proofs (
    stream     INTEGER NOT NULL,
    last_us    BIGINT  NOT NULL,
    first_us   BIGINT  NOT NULL,
    size       BIGINT  NOT NULL,
    depth      INTEGER NOT NULL,
    id         TEXT    NOT NULL,
    root       BLOB    NOT NULL,
    signature  BLOB    NOT NULL,
    kind       TEXT    NOT NULL,
    kid        TEXT    NOT NULL,
    origin     TEXT    NOT NULL,
    created_us BIGINT  NOT NULL,
    log_index  BIGINT  NOT NULL UNIQUE,
    PRIMARY KEY (stream, last_us)
) WITHOUT ROWID;

-- The append-only log of roots (RFC 9162): every proof is a leaf, numbered by `log_index` in
-- the order proofs were stored. `proof_log.size` is how many leaves it has (its row's lock
-- orders appends on every node); `proof_log_nodes` holds the hash of every complete subtree,
-- the node over leaves `idx·2^level .. (idx+1)·2^level`, so any root, inclusion path or
-- consistency proof takes O(log n) reads.
CREATE TABLE proof_log (
    id   BIGINT NOT NULL PRIMARY KEY CHECK (id = 1),
    size BIGINT NOT NULL
);
INSERT INTO proof_log (id, size) VALUES (1, 0);
CREATE TABLE proof_log_nodes (
    level INTEGER NOT NULL,
    idx   BIGINT  NOT NULL,
    hash  BLOB  NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

-- Signed checkpoints of the log (C2SP tlog-checkpoint signed notes), one per size published.
CREATE TABLE proof_checkpoints (
    size       BIGINT NOT NULL PRIMARY KEY,
    note       TEXT   NOT NULL,
    created_us BIGINT NOT NULL
);

-- Each validation of a proof, newest last.
CREATE TABLE series_validations (
    stream  INTEGER NOT NULL,
    last_us BIGINT  NOT NULL,
    at_us   BIGINT  NOT NULL,
    result  TEXT    NOT NULL
);
CREATE INDEX series_validations_proof ON series_validations (stream, last_us, at_us);

-- The node's keys for signing roots, one active per proof kind; retired keys stay, so old
-- proofs still verify. The private key is sealed (AES-256-GCM) bound to its kid.
CREATE TABLE proof_keys (
    kid            TEXT   NOT NULL PRIMARY KEY,
    kind           TEXT   NOT NULL,
    state          TEXT   NOT NULL,
    public_pem     TEXT   NOT NULL,
    jwk            TEXT   NOT NULL,
    sealed_private BLOB   NOT NULL,
    created_us     BIGINT NOT NULL
);
