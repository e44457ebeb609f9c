-- berth schema v9 (PostgreSQL): storage usage counters and namespace quotas
-- (docs/design/usage.md). The counters are kept in tables of their own,
-- which no writer locks for anything else, so that a transaction can take
-- them last (usage.md, "Hot rows and lock order"); the statements below
-- compute every counter from the rows an upgraded registry already holds.

-- How many manifest_blob edges of the repository name the blob (> 0; a row
-- at 0 is deleted).
CREATE TABLE usage_repository_blob (
    repository_id BIGINT  NOT NULL,
    blob_digest   TEXT    NOT NULL,
    refs          BIGINT  NOT NULL,
    PRIMARY KEY (repository_id, blob_digest)
);

-- How many repositories of the namespace hold the blob (> 0).
CREATE TABLE usage_namespace_blob (
    namespace_id BIGINT  NOT NULL,
    blob_digest  TEXT    NOT NULL,
    repos        BIGINT  NOT NULL,
    PRIMARY KEY (namespace_id, blob_digest)
);

-- How many namespaces hold the blob (> 0).
CREATE TABLE usage_blob (
    blob_digest TEXT    PRIMARY KEY,
    holders     BIGINT  NOT NULL
);

-- What a scope holds: scope 'r' (id a repository, shard 0), 'n' (id a
-- namespace, shard 0), 'g' (the registry: id 0, shards 0-15, summed by
-- readers).
CREATE TABLE usage (
    scope     TEXT    NOT NULL,
    id        BIGINT  NOT NULL,
    shard     BIGINT  NOT NULL,
    bytes     BIGINT  NOT NULL DEFAULT 0,
    manifests BIGINT  NOT NULL DEFAULT 0,
    blobs     BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, id, shard)
);
CREATE INDEX usage_bytes ON usage (scope, bytes);

-- A namespace's quota; namespace '' is the registry default. A name, like
-- a grant's: it may precede the namespace's first push.
CREATE TABLE quota (
    namespace    TEXT    PRIMARY KEY,
    limit_bytes  BIGINT  NOT NULL,
    warn_percent INTEGER,
    created_at   BIGINT  NOT NULL,
    created_by   TEXT    NOT NULL DEFAULT ''
);

INSERT INTO usage_repository_blob (repository_id, blob_digest, refs)
SELECT repository_id, blob_digest, COUNT(*) FROM manifest_blob GROUP BY repository_id, blob_digest;

INSERT INTO usage_namespace_blob (namespace_id, blob_digest, repos)
SELECT r.namespace_id, u.blob_digest, COUNT(*)
FROM usage_repository_blob u JOIN repository r ON r.id = u.repository_id
GROUP BY r.namespace_id, u.blob_digest;

INSERT INTO usage_blob (blob_digest, holders)
SELECT blob_digest, COUNT(*) FROM usage_namespace_blob GROUP BY blob_digest;

INSERT INTO usage (scope, id, shard, bytes, manifests, blobs)
SELECT 'r', s.id, 0, SUM(s.bytes), SUM(s.manifests), SUM(s.blobs) FROM (
    SELECT repository_id AS id, SUM(size) AS bytes, COUNT(*) AS manifests, 0 AS blobs FROM manifest GROUP BY repository_id
    UNION ALL
    SELECT u.repository_id, SUM(b.size), 0, COUNT(*) FROM usage_repository_blob u JOIN blob b ON b.digest = u.blob_digest
    GROUP BY u.repository_id
) s GROUP BY s.id;

INSERT INTO usage (scope, id, shard, bytes, manifests, blobs)
SELECT 'n', s.id, 0, SUM(s.bytes), SUM(s.manifests), SUM(s.blobs) FROM (
    SELECT r.namespace_id AS id, SUM(m.size) AS bytes, COUNT(*) AS manifests, 0 AS blobs
    FROM manifest m JOIN repository r ON r.id = m.repository_id GROUP BY r.namespace_id
    UNION ALL
    SELECT u.namespace_id, SUM(b.size), 0, COUNT(*) FROM usage_namespace_blob u JOIN blob b ON b.digest = u.blob_digest
    GROUP BY u.namespace_id
) s GROUP BY s.id;

INSERT INTO usage (scope, id, shard, bytes, manifests, blobs)
SELECT 'g', 0, 0, COALESCE(SUM(s.bytes), 0), COALESCE(SUM(s.manifests), 0), COALESCE(SUM(s.blobs), 0) FROM (
    SELECT SUM(size) AS bytes, COUNT(*) AS manifests, 0 AS blobs FROM manifest
    UNION ALL
    SELECT SUM(b.size), 0, COUNT(*) FROM usage_blob u JOIN blob b ON b.digest = u.blob_digest
) s;
