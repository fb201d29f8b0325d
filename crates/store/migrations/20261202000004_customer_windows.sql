-- A customer may write to several numbers (channels) of one tenant within one conversation.
-- Replies leave from the number the customer last wrote to, and each number's free-form
-- window is its own, measured from the customer's message time (the provider's timestamp).
ALTER TABLE conversations ADD COLUMN reply_channel_id uuid REFERENCES channels (id);
CREATE TABLE customer_windows (
    contact_id uuid NOT NULL REFERENCES contacts (id),
    channel_id uuid NOT NULL REFERENCES channels (id),
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    last_inbound_at timestamptz NOT NULL,
    PRIMARY KEY (contact_id, channel_id)
);
INSERT INTO customer_windows (contact_id, channel_id, tenant_id, last_inbound_at)
SELECT contact_id, channel_id, tenant_id, max(last_inbound_at) FROM conversations
WHERE last_inbound_at IS NOT NULL GROUP BY contact_id, channel_id, tenant_id;
