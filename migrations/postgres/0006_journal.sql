-- The event journal and its one sequence; webhook subscriptions read as the actor that made them.
--
-- portico_sequence.value is the last event sequence number handed out or reserved by any node;
-- every number comes from it (durable events inside their change's transaction, ephemeral ones
-- in reserved blocks), so numbers only grow, across restarts and processes. pruned_through is
-- the newest sequence number the journal may have dropped.
CREATE TABLE portico_sequence (
    id             BIGINT NOT NULL PRIMARY KEY CHECK (id = 1),
    value          BIGINT NOT NULL,
    pruned_through BIGINT NOT NULL
);
INSERT INTO portico_sequence (id, value, pruned_through)
SELECT 1, COALESCE(MAX(seq), 0), 0 FROM datapoint_values;

-- Durable events, oldest first by seq.
CREATE TABLE events (
    seq     BIGINT NOT NULL PRIMARY KEY,
    time_us BIGINT NOT NULL,
    topic   TEXT   NOT NULL,
    actor   TEXT   NOT NULL, -- JSON: {"kind", "id", "issuer"}
    subject TEXT   NOT NULL, -- what the event is about: a datapoint key, application/endpoint, ...
    data    TEXT   NOT NULL  -- JSON: the topic's payload
);
CREATE INDEX events_time ON events (time_us);

-- Who made a subscription (JSON; NULL before this migration: read as a webhook manager), and
-- whether that actor reads every subject (admins: portal items and signed calls).
ALTER TABLE webhook_subscriptions ADD COLUMN actor TEXT;
ALTER TABLE webhook_subscriptions ADD COLUMN sees_all BOOLEAN NOT NULL DEFAULT FALSE;
-- What each delivery's event is about, checked against the subscription's actor at delivery.
ALTER TABLE webhook_deliveries ADD COLUMN subject TEXT NOT NULL DEFAULT '';
-- webhook_deliveries.state gains 4: withheld (the subscription's actor may not read the event).
