-- Webhook subscriptions, their topics, the delivery outbox and the attempt log. A delivery row
-- is written in the same transaction as the change that caused its event; workers claim rows
-- with a lease (lease_until_us, lease_token) and finish them with the token they claimed with.
CREATE TABLE webhook_subscriptions (
    id                    TEXT    NOT NULL PRIMARY KEY, -- a UUID
    url                   TEXT    NOT NULL,
    description           TEXT    NOT NULL,
    enabled               BOOLEAN NOT NULL,
    disabled_reason       TEXT,                         -- why it was disabled automatically
    accept_any_2xx        BOOLEAN NOT NULL,             -- else only 200 counts as delivered
    standard_webhooks     BOOLEAN NOT NULL,             -- also send webhook-id/-timestamp/-signature
    secret_sealed         BYTEA   NOT NULL,             -- AES-256-GCM, bound to the id
    previous_sealed       BYTEA,                        -- the secret before the last rotation
    previous_until_us     BIGINT,                       -- ... which signs too until then
    failing_since_us      BIGINT,                       -- first failure since the last success
    discarded_total       BIGINT  NOT NULL,             -- QoS 1 deliveries given up on
    created_us            BIGINT  NOT NULL,
    updated_us            BIGINT  NOT NULL
);

CREATE TABLE webhook_subscription_topics (
    subscription_id TEXT NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    topic           TEXT NOT NULL, -- a topic name, or '*' for every topic
    PRIMARY KEY (topic, subscription_id)
);

CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id TEXT    NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    event_id        TEXT    NOT NULL, -- the same for every subscription and every attempt
    topic           TEXT    NOT NULL,
    qos             BIGINT  NOT NULL,
    payload         TEXT    NOT NULL, -- the exact bytes sent (ASCII JSON)
    correlation_id  TEXT    NOT NULL,
    event_time_us   BIGINT  NOT NULL,
    state           BIGINT  NOT NULL, -- 0 pending, 1 delivered, 2 discarded (QoS 1), 3 dead (QoS 2)
    attempts        BIGINT  NOT NULL,
    next_at_us      BIGINT  NOT NULL,
    lease_until_us  BIGINT,
    lease_token     TEXT,
    last_status     BIGINT,
    last_error      TEXT,
    finished_us     BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (subscription_id, state, next_at_us, id);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (state, next_at_us);
CREATE INDEX webhook_deliveries_claimed ON webhook_deliveries (lease_until_us)
    WHERE lease_until_us IS NOT NULL;
CREATE INDEX webhook_deliveries_time ON webhook_deliveries (subscription_id, event_time_us);

CREATE TABLE webhook_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id     BIGINT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    subscription_id TEXT   NOT NULL,
    attempt         BIGINT NOT NULL,
    at_us           BIGINT NOT NULL,
    status          BIGINT,          -- the HTTP status, if one came back
    duration_us     BIGINT NOT NULL,
    error_kind      TEXT,            -- null when delivered
    response_start  TEXT   NOT NULL  -- the first bytes of the answer, as text
);
CREATE INDEX webhook_attempts_subscription ON webhook_attempts (subscription_id, id);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id);
