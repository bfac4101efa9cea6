-- Access tokens revoked before they expire (RFC 7009), by `jti`. A row is needed only until the
-- token's `exp`; expired rows are purged.
CREATE TABLE revoked_tokens (
    jti        TEXT   NOT NULL PRIMARY KEY,
    realm      TEXT   NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    expires_us BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_expires ON revoked_tokens (expires_us);
