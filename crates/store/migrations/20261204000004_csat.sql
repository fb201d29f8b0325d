-- After finish, an optional satisfaction question per service (1 to 5); the customer's next
-- message answers it and the score is kept on the protocol.
ALTER TABLE services ADD COLUMN csat_question text CHECK (char_length(csat_question) <= 1024);
ALTER TABLE protocols
    ADD COLUMN csat_requested_at timestamptz,
    ADD COLUMN csat_answered_at timestamptz,
    ADD COLUMN csat_score smallint CHECK (csat_score BETWEEN 1 AND 5);
CREATE INDEX protocols_csat_pending ON protocols (conversation_id)
    WHERE csat_requested_at IS NOT NULL AND csat_answered_at IS NULL;
