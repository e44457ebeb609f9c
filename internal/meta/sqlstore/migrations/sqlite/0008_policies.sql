-- berth schema v8 (SQLite): retention policies and immutable tags, pull
-- tracking, and the rule that pruned a tag (docs/design/policies.md).
-- Policies name their scope like grants: namespace '' is the registry
-- default, repository '' the whole namespace. Unix microseconds.
CREATE TABLE policy (
    id              INTEGER PRIMARY KEY,
    namespace       TEXT    NOT NULL DEFAULT '',
    repository      TEXT    NOT NULL DEFAULT '',
    name            TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('keep_newest', 'prune_older_than', 'prune_not_pulled', 'keep_recently_pulled', 'immutable')),
    count           INTEGER NOT NULL DEFAULT 0,
    span_us         INTEGER NOT NULL DEFAULT 0,
    tag_pattern     TEXT    NOT NULL DEFAULT '',
    pattern_matches INTEGER NOT NULL DEFAULT 1,
    created_at      INTEGER NOT NULL,
    created_by      TEXT    NOT NULL DEFAULT '',
    UNIQUE (namespace, repository, name)
);

-- The last recorded pull of a live tag row (a GET or HEAD by tag), written
-- at most once per policy.pull_interval. NULL: never pulled.
ALTER TABLE tag ADD COLUMN pulled_at INTEGER;
-- The rule (its ref, "ns/repo:name") that ended the lifetime when
-- end_cause is 'policy'; '' otherwise.
ALTER TABLE tag ADD COLUMN end_rule TEXT NOT NULL DEFAULT '';
