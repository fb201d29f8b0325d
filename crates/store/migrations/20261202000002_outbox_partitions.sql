-- The outbox is relayed per partition (a hash of the row's ordering key: a conversation, or a
-- customer of a channel), each partition by one relay at a time under an advisory lock, so
-- replicas relay different partitions in parallel and one key's rows keep their order.
-- Writers take a transaction-scoped advisory lock on the key before a row gets its id, so
-- within a key ids follow commit order and the relay never publishes a later row before an
-- earlier one that was still committing.
ALTER TABLE outbox ADD COLUMN partition smallint NOT NULL DEFAULT 0;
DROP INDEX IF EXISTS outbox_unpublished;
CREATE INDEX outbox_unpublished ON outbox (partition, id) WHERE published_at IS NULL;
-- Pruning of published rows and old receipts walks these.
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX webhook_receipts_received_at ON webhook_receipts (received_at);
