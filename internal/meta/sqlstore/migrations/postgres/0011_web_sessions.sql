-- berth schema v11 (PostgreSQL): sessions of the web interface
-- (docs/design/web.md, "Sign-in and sessions"). token_hash is the hex SHA-256
-- of the cookie's token: the database never holds a token that signs anyone
-- in. A session dies with its account (ON DELETE CASCADE). Unix
-- microseconds, like every time; expires_at and last_seen_at are indexed for
-- the bounded deletion of ended sessions at sign-in.
CREATE TABLE web_session (
    token_hash   TEXT   PRIMARY KEY,
    account_id   BIGINT NOT NULL REFERENCES account (id) ON DELETE CASCADE,
    csrf         TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX web_session_account ON web_session (account_id);
CREATE INDEX web_session_expires ON web_session (expires_at);
CREATE INDEX web_session_last_seen ON web_session (last_seen_at);
