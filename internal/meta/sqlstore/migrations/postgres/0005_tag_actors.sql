-- Who did it (docs/design/auth.md): the actor that started a tag lifetime, and
-- the actor and cause (deleted, moved, expired, withdrawn, purged) that ended
-- it. '' is unknown: rows written before actors were recorded, and the end
-- of a live row.
ALTER TABLE tag ADD COLUMN start_actor TEXT NOT NULL DEFAULT '';
ALTER TABLE tag ADD COLUMN end_actor TEXT NOT NULL DEFAULT '';
ALTER TABLE tag ADD COLUMN end_cause TEXT NOT NULL DEFAULT '';
