-- A DELETE by digest withdraws a manifest instead of deleting its row, and a
-- DELETE of a blob that only withdrawn manifests reference withdraws its link:
-- the rows and their edges stay while a tag row that reaches them is inside its
-- time-machine window, so restore can bring them back (docs/design/gc.md, "The
-- time machine"). NULL: not withdrawn. Unix microseconds, like every time.
ALTER TABLE manifest ADD COLUMN deleted_at INTEGER;
ALTER TABLE repository_blob ADD COLUMN deleted_at INTEGER;
