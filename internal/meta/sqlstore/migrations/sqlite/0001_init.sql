-- berth schema v1 (SQLite). Times are unix microseconds (INTEGER); see docs/design/schema.md.
CREATE TABLE namespace (
    id               INTEGER PRIMARY KEY,
    name             TEXT    NOT NULL UNIQUE,
    state            TEXT    NOT NULL DEFAULT 'active',
    tag_retention_us INTEGER
);

CREATE TABLE repository (
    id           INTEGER PRIMARY KEY,
    namespace_id INTEGER NOT NULL REFERENCES namespace (id),
    name         TEXT    NOT NULL UNIQUE,
    state        TEXT    NOT NULL DEFAULT 'active',
    created_at   INTEGER NOT NULL
);
CREATE INDEX repository_namespace ON repository (namespace_id);

CREATE TABLE manifest (
    repository_id  INTEGER NOT NULL REFERENCES repository (id),
    digest         TEXT    NOT NULL,
    media_type     TEXT    NOT NULL,
    artifact_type  TEXT    NOT NULL DEFAULT '',
    subject_digest TEXT    NOT NULL DEFAULT '',
    size           INTEGER NOT NULL,
    body           BLOB    NOT NULL,
    pushed_at      INTEGER NOT NULL,
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX manifest_subject ON manifest (repository_id, subject_digest) WHERE subject_digest <> '';

-- tag rows are lifetimes; manifest_digest is deliberately not a foreign key: a tag
-- row keeps its history after an explicit DELETE of its manifest by digest.
CREATE TABLE tag (
    id              INTEGER PRIMARY KEY,
    repository_id   INTEGER NOT NULL REFERENCES repository (id),
    name            TEXT    NOT NULL,
    manifest_digest TEXT    NOT NULL,
    lifetime_start  INTEGER NOT NULL,
    lifetime_end    INTEGER,
    expires_at      INTEGER,
    hidden          INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX tag_live ON tag (repository_id, name) WHERE lifetime_end IS NULL;
CREATE INDEX tag_manifest ON tag (repository_id, manifest_digest);
CREATE INDEX tag_history ON tag (repository_id, name, lifetime_start);
CREATE INDEX tag_expires ON tag (expires_at) WHERE lifetime_end IS NULL AND expires_at IS NOT NULL;

CREATE TABLE manifest_child (
    repository_id INTEGER NOT NULL,
    parent_digest TEXT    NOT NULL,
    child_digest  TEXT    NOT NULL,
    PRIMARY KEY (repository_id, parent_digest, child_digest),
    FOREIGN KEY (repository_id, parent_digest) REFERENCES manifest (repository_id, digest),
    FOREIGN KEY (repository_id, child_digest) REFERENCES manifest (repository_id, digest)
);
CREATE INDEX manifest_child_child ON manifest_child (repository_id, child_digest);

CREATE TABLE blob (
    digest      TEXT    PRIMARY KEY,
    size        INTEGER NOT NULL,
    storage_key TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE repository_blob (
    repository_id INTEGER NOT NULL REFERENCES repository (id),
    blob_digest   TEXT    NOT NULL REFERENCES blob (digest),
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (repository_id, blob_digest)
);
CREATE INDEX repository_blob_blob ON repository_blob (blob_digest);

CREATE TABLE manifest_blob (
    repository_id   INTEGER NOT NULL,
    manifest_digest TEXT    NOT NULL,
    blob_digest     TEXT    NOT NULL,
    PRIMARY KEY (repository_id, manifest_digest, blob_digest),
    FOREIGN KEY (repository_id, manifest_digest) REFERENCES manifest (repository_id, digest),
    FOREIGN KEY (repository_id, blob_digest) REFERENCES repository_blob (repository_id, blob_digest)
);
CREATE INDEX manifest_blob_blob ON manifest_blob (repository_id, blob_digest);

CREATE TABLE label (
    id    INTEGER PRIMARY KEY,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    UNIQUE (key, value)
);

CREATE TABLE manifest_label (
    repository_id   INTEGER NOT NULL,
    manifest_digest TEXT    NOT NULL,
    label_id        INTEGER NOT NULL REFERENCES label (id),
    PRIMARY KEY (repository_id, manifest_digest, label_id),
    FOREIGN KEY (repository_id, manifest_digest) REFERENCES manifest (repository_id, digest)
);
CREATE INDEX manifest_label_label ON manifest_label (label_id);

CREATE TABLE uploaded_blob (
    repository_id INTEGER NOT NULL,
    blob_digest   TEXT    NOT NULL,
    expires_at    INTEGER NOT NULL,
    PRIMARY KEY (repository_id, blob_digest),
    FOREIGN KEY (repository_id, blob_digest) REFERENCES repository_blob (repository_id, blob_digest)
);

CREATE TABLE upload (
    id            TEXT    PRIMARY KEY,
    repository_id INTEGER NOT NULL REFERENCES repository (id),
    size          INTEGER NOT NULL DEFAULT 0,
    started_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX upload_repository ON upload (repository_id);

CREATE TABLE review (
    kind         TEXT    NOT NULL,
    object       TEXT    NOT NULL,
    review_after INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    reason       TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (kind, object)
);
CREATE INDEX review_due ON review (review_after);

CREATE TABLE tombstone (
    storage_key TEXT    PRIMARY KEY,
    since       INTEGER NOT NULL
);
