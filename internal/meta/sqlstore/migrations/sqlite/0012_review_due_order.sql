-- berth schema v12 (SQLite): the collector claims a kind's due reviews in
-- (review_after, object) order (ClaimDue). With the index on (kind,
-- review_after) alone, the reviews due at the same time (a backlog recorded
-- by one bulk delete, the follow-ups one collector transaction records due
-- now) form one group that SQLite read and sorted in a temporary b-tree for
-- every claim, however few it took: 2 ms a claim at 3,000 due tag reviews,
-- a fifth of a collector transaction under pushes. With object in the index
-- the scan is in the claim's order and stops after the claim. PostgreSQL
-- got the same index in its migration 10.
CREATE INDEX review_kind_due_object ON review (kind, review_after, object);
DROP INDEX review_kind_due;
