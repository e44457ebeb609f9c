-- A DELETE by digest withdraws a manifest instead of deleting its row: the row
-- and its edges stay while a tag row that points at it is inside its
-- time-machine window, so restore can bring it back (docs/design/gc.md, "The
-- time machine"). NULL: not withdrawn. Unix microseconds, like every time.
ALTER TABLE manifest ADD COLUMN deleted_at BIGINT;
