-- berth schema v2: count open upload sessions by last activity (docs/design/limits.md).
-- The per-repository index replaces upload_repository, whose column it leads with.
CREATE INDEX upload_repository_active ON upload (repository_id, updated_at);
CREATE INDEX upload_active ON upload (updated_at);
DROP INDEX upload_repository;
