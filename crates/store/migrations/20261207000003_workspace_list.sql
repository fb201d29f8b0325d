-- The agent's conversation list shows each conversation's WhatsApp/bot expiry band (seed 004)
-- only where the tenant enables it.
ALTER TABLE tenants ADD COLUMN show_expiry_bands boolean NOT NULL DEFAULT false;
-- The list sorts by TTA (the conversation's opening, kept across legs) with the id as tie.
CREATE INDEX conversations_agent_open_opened ON conversations (agent_id, opened_at, id)
    WHERE status IN ('offered', 'assigned');
