-- berth schema v4 (SQLite): accounts, grants, namespace visibility and token signing keys
-- (docs/design/auth.md). Unix microseconds, like every time.
CREATE TABLE account (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    kind        TEXT    NOT NULL CHECK (kind IN ('user', 'robot')),
    namespace   TEXT    NOT NULL DEFAULT '',
    secret_hash TEXT    NOT NULL,
    admin       INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    created_by  TEXT    NOT NULL DEFAULT '',
    expires_at  INTEGER
);
CREATE INDEX account_namespace ON account (namespace) WHERE namespace <> '';

-- Grants name their namespace and repository rather than point at rows: a
-- grant may precede the first push and outlives a purge. repository is ''
-- for the whole namespace. DeleteAccount deletes an account's grants first;
-- the foreign key is the second line of defence.
CREATE TABLE account_grant (
    account_id INTEGER NOT NULL REFERENCES account (id),
    namespace  TEXT    NOT NULL,
    repository TEXT    NOT NULL DEFAULT '',
    role       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (account_id, namespace, repository)
);
CREATE INDEX account_grant_namespace ON account_grant (namespace);

ALTER TABLE namespace ADD COLUMN public INTEGER NOT NULL DEFAULT 0;

CREATE TABLE signing_key (
    id          TEXT    PRIMARY KEY,
    algorithm   TEXT    NOT NULL,
    private_key BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
);
