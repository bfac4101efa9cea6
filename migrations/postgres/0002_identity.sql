-- The built-in identity provider: realms and their signing keys, clients, users and apps, and
-- the grants (authorization codes, refresh tokens) issued from them. Settings that are only
-- read whole live in JSON text columns; what is looked up or constrained has its own column.
CREATE TABLE realms (
    name       TEXT   NOT NULL PRIMARY KEY,
    settings   TEXT   NOT NULL, -- JSON: lifetimes, algorithms, audience
    created_us BIGINT NOT NULL
);

CREATE TABLE realm_keys (
    realm          TEXT   NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    kid            TEXT   NOT NULL, -- the RFC 7638 thumbprint
    purpose        TEXT   NOT NULL, -- 'access' (access tokens) or 'id' (ID tokens)
    alg            TEXT   NOT NULL,
    state          TEXT   NOT NULL, -- 'next' (published), 'active' (signing), 'retired' (published)
    public_jwk     TEXT   NOT NULL,
    sealed_private BYTEA  NOT NULL, -- PKCS#8, AES-256-GCM under the node's sealing key
    created_us     BIGINT NOT NULL,
    retire_at_us   BIGINT,          -- a retired key leaves the key set after this
    PRIMARY KEY (realm, kid)
);

CREATE TABLE clients (
    realm       TEXT   NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    client_id   TEXT   NOT NULL,
    secret_hash BYTEA,           -- SHA-256 of the secret; NULL for a public client
    settings    TEXT   NOT NULL, -- JSON: redirect URIs, grant types, roles, lifetimes, enabled
    created_us  BIGINT NOT NULL,
    PRIMARY KEY (realm, client_id)
);

CREATE TABLE users (
    realm         TEXT   NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    id            TEXT   NOT NULL, -- a UUID, the tokens' `sub`
    username      TEXT   NOT NULL,
    password_hash TEXT,            -- Argon2id (PHC string); NULL: cannot log in
    settings      TEXT   NOT NULL, -- JSON: e-mail, name, roles, enabled
    created_us    BIGINT NOT NULL,
    PRIMARY KEY (realm, id),
    UNIQUE (realm, username)
);

CREATE TABLE apps (
    app_id      TEXT   NOT NULL PRIMARY KEY,
    realm       TEXT   NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    secret_hash BYTEA  NOT NULL,
    settings    TEXT   NOT NULL, -- JSON: name, public key, roles, enabled
    created_us  BIGINT NOT NULL
);

-- A token family: one login (or one client-credentials grant with refresh), with every refresh
-- token rotated from it. Revoking the family ends them all.
CREATE TABLE families (
    family     TEXT   NOT NULL PRIMARY KEY,
    realm      TEXT   NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    client_id  TEXT   NOT NULL,
    subject    TEXT   NOT NULL,
    created_us BIGINT NOT NULL,
    expires_us BIGINT NOT NULL,
    revoked_us BIGINT
);

-- Authorization codes and refresh tokens, by the SHA-256 of their text.
CREATE TABLE grants (
    token_hash BYTEA  NOT NULL PRIMARY KEY,
    kind       TEXT   NOT NULL, -- 'code' or 'refresh'
    family     TEXT   NOT NULL REFERENCES families (family) ON DELETE CASCADE,
    payload    TEXT   NOT NULL, -- JSON: what the grant carries (scope, nonce, PKCE challenge…)
    created_us BIGINT NOT NULL,
    expires_us BIGINT NOT NULL,
    used_us    BIGINT           -- when redeemed; a second use is a replay
);
CREATE INDEX grants_family ON grants (family);
CREATE INDEX families_expires ON families (expires_us);

-- Bumped by every change to realms or their keys, so running nodes know to reload them.
CREATE TABLE identity_generation (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    generation BIGINT  NOT NULL
);
INSERT INTO identity_generation (id, generation) VALUES (1, 0);
