-- A conversation's messages are numbered in commit order: the number is taken from the
-- conversation row (which stays locked until the message's transaction ends), so a page
-- cursor on it never skips a message that commits late — unlike created_at, which is the
-- transaction's start time.
ALTER TABLE conversations ADD COLUMN last_message_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN seq bigint;
UPDATE messages m SET seq = s.n
FROM (SELECT id, row_number() OVER (PARTITION BY conversation_id ORDER BY created_at, id) AS n FROM messages) s
WHERE m.id = s.id;
UPDATE conversations c SET last_message_seq = s.n
FROM (SELECT conversation_id, max(seq) AS n FROM messages GROUP BY conversation_id) s
WHERE c.id = s.conversation_id;
ALTER TABLE messages ALTER COLUMN seq SET NOT NULL;
CREATE UNIQUE INDEX messages_conversation_seq ON messages (conversation_id, seq);
DROP INDEX IF EXISTS messages_conversation;
