-- The collector claims due reviews one kind at a time (docs/design/gc.md,
-- "Deciding sets"): this index finds a kind's due reviews without walking
-- the due reviews of every other kind.
CREATE INDEX review_kind_due ON review (kind, review_after);
