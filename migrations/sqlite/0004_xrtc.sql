-- XRTC accounts, their API keys, pending e-mail registrations and monthly usage. Keys and
-- registration tokens are kept only as SHA-256 hashes; the e-mailed code as the SHA-256 of
-- the registration token hash followed by the code.
CREATE TABLE xrtc_accounts (
    account_id TEXT   NOT NULL PRIMARY KEY, -- 'AC' and 16 digits
    email      TEXT   NOT NULL UNIQUE,      -- as registered, lowercased
    keys_made  BIGINT NOT NULL,             -- numbers the keys' names
    created_us BIGINT NOT NULL
);

CREATE TABLE xrtc_api_keys (
    key_hash      BYTEA  NOT NULL PRIMARY KEY,
    account_id    TEXT   NOT NULL REFERENCES xrtc_accounts (account_id) ON DELETE CASCADE,
    serial        BIGINT NOT NULL, -- the account's n-th key: orders keys, names it 'apikeyN'
    name          TEXT   NOT NULL,
    created_us    BIGINT NOT NULL,
    last_used_us  BIGINT NOT NULL, -- a key unused for API_KEY_AGE_MAX is disabled
    last_login_us BIGINT,          -- logins closer together than LOGIN_TIMEOUT are refused
    disabled_us   BIGINT
);
CREATE INDEX xrtc_api_keys_account ON xrtc_api_keys (account_id, serial);

CREATE TABLE xrtc_registrations (
    token_hash BYTEA  NOT NULL PRIMARY KEY,
    email      TEXT   NOT NULL,
    client_ip  TEXT   NOT NULL,
    code_hash  BYTEA  NOT NULL,
    state      TEXT   NOT NULL, -- 'pending', 'failed' (too many wrong codes) or 'done'
    tries      BIGINT NOT NULL, -- wrong codes so far
    sends      BIGINT NOT NULL, -- e-mails sent so far
    created_us BIGINT NOT NULL,
    sent_us    BIGINT NOT NULL,
    expires_us BIGINT NOT NULL
);
CREATE INDEX xrtc_registrations_email ON xrtc_registrations (email, created_us);
CREATE INDEX xrtc_registrations_ip ON xrtc_registrations (client_ip, created_us);
CREATE INDEX xrtc_registrations_created ON xrtc_registrations (created_us);

CREATE TABLE xrtc_usage (
    account_id TEXT   NOT NULL REFERENCES xrtc_accounts (account_id) ON DELETE CASCADE,
    month      TEXT   NOT NULL, -- 'YYYY-MM', UTC
    requests   BIGINT NOT NULL,
    PRIMARY KEY (account_id, month)
);
