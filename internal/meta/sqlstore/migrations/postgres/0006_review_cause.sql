-- Why a review was recorded (internal/review.Cause: pushed, tag_ended,
-- parent_deleted, ...), beside the free-text reason kept for people. The
-- collector's collect_untagged check keys on it. Of the rows recorded
-- before, only a manifest PUT's can be told apart (its reason was exactly
-- 'pushed'); the others get '' (unknown), which no check keys on.
ALTER TABLE review ADD COLUMN cause TEXT NOT NULL DEFAULT '';
UPDATE review SET cause = 'pushed' WHERE reason = 'pushed';
