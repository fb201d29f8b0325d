-- Dead letters become an operator's queue: which tenant they belong to (from the subject),
-- whether and when they were replayed.
ALTER TABLE dead_letters
    ADD COLUMN tenant_id uuid,
    ADD COLUMN replayed_at timestamptz,
    ADD COLUMN replays integer NOT NULL DEFAULT 0;
CREATE INDEX dead_letters_pending ON dead_letters (id) WHERE replayed_at IS NULL;
