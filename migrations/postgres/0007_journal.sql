-- The event journal and its one sequence.
--
-- portico_sequence.value is the last event sequence number handed out or reserved by any
-- process: durable events take theirs inside their change's transaction, ephemeral ones (portal
-- items) from blocks reserved ahead, so numbers only grow, across restarts and processes.
-- pruned_through is the newest sequence number the journal may have dropped.
CREATE TABLE portico_sequence (
    id             BIGINT NOT NULL PRIMARY KEY CHECK (id = 1),
    value          BIGINT NOT NULL,
    pruned_through BIGINT NOT NULL
);
INSERT INTO portico_sequence (id, value, pruned_through)
SELECT 1, COALESCE(MAX(seq), 0), 0 FROM datapoint_values;

-- Durable events, in sequence order.
CREATE TABLE events (
    seq     BIGINT NOT NULL PRIMARY KEY,
    time_us BIGINT NOT NULL,
    topic   TEXT   NOT NULL,
    actor   TEXT   NOT NULL, -- JSON: {"kind", "id", "issuer"}
    subject TEXT   NOT NULL, -- what it is about: a datapoint key, application/endpoint, ...
    data    TEXT   NOT NULL  -- JSON: the topic's payload
);
CREATE INDEX events_time ON events (time_us);
CREATE INDEX events_topic ON events (topic, seq);
