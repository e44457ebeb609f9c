-- The collector claims a kind's due reviews in (review_after, object) order
-- (ClaimDue). With the index on (kind, review_after) alone, reviews due at
-- the same time (a backlog recorded by one bulk delete) form one group that
-- is read and sorted whole for every claim, however few it takes; with
-- object in the index the scan is in the claim's order and stops after the
-- claim (docs/design/gc.md, "Plans that do not depend on the table").
CREATE INDEX review_kind_due_object ON review (kind, review_after, object);
DROP INDEX review_kind_due;
