-- The whole life of a conversation: the abandoned state, every transition recorded, linked
-- protocol legs with their finish form, the channel's menu bot, services' qualifications,
-- tags, and the tenant's finish options.

ALTER TABLE conversations DROP CONSTRAINT conversations_status_check;
ALTER TABLE conversations ADD CONSTRAINT conversations_status_check
    CHECK (status IN ('bot', 'queued', 'offered', 'assigned', 'finished', 'missed', 'expired', 'abandoned'));

-- "Open" now excludes abandoned too; the same indexes over the new definition.
DROP INDEX conversations_one_open_per_service;
CREATE UNIQUE INDEX conversations_one_open_per_service ON conversations
    (tenant_id, contact_id, COALESCE(service_id, '00000000-0000-0000-0000-000000000000'::uuid))
    WHERE status NOT IN ('finished', 'missed', 'expired', 'abandoned');
DROP INDEX conversations_contact_open;
CREATE INDEX conversations_contact_open ON conversations (contact_id)
    WHERE status NOT IN ('finished', 'missed', 'expired', 'abandoned');
DROP INDEX conversations_agent_open;
CREATE INDEX conversations_agent_open ON conversations (agent_id)
    WHERE status NOT IN ('finished', 'missed', 'expired', 'abandoned');

ALTER TABLE conversations
    -- The first time an agent got it (waiting time), kept across legs.
    ADD COLUMN first_assigned_at timestamptz,
    -- While in the bot: when the customer last wrote or was last prompted (inactivity).
    ADD COLUMN bot_activity_at timestamptz;
CREATE INDEX conversations_in_bot ON conversations (bot_activity_at) WHERE status = 'bot';

-- Legs: each transfer closes the current protocol and opens the next, linked to it.
ALTER TABLE protocols
    ADD COLUMN previous_number text,
    ADD COLUMN leg integer NOT NULL DEFAULT 1,
    ADD COLUMN external_protocol text CHECK (char_length(external_protocol) <= 13),
    ADD COLUMN closed_by uuid,
    ADD COLUMN close_reason text;

-- Every state change of a conversation, with its time and who made it.
CREATE TABLE conversation_transitions (
    id bigserial PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    conversation_id uuid NOT NULL REFERENCES conversations (id),
    protocol text NOT NULL,
    from_status text,
    to_status text NOT NULL,
    service_id uuid,
    agent_id uuid,
    actor_kind text NOT NULL CHECK (actor_kind IN ('customer', 'bot', 'router', 'agent', 'supervisor', 'system')),
    actor_id uuid,
    reason text,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversation_transitions_conversation ON conversation_transitions (conversation_id, id);
CREATE INDEX conversation_transitions_tenant_at ON conversation_transitions (tenant_id, at);

ALTER TABLE channels ADD COLUMN menu jsonb;

ALTER TABLE services
    -- [{"code": "venda", "label": "Venda realizada"}, …]; empty: the service does not qualify.
    ADD COLUMN qualifications jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN send_transcript boolean NOT NULL DEFAULT false;

ALTER TABLE tenants
    ADD COLUMN require_external_protocol boolean NOT NULL DEFAULT false;

CREATE TABLE tags (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 60),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);
CREATE TABLE contact_tags (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    contact_id uuid NOT NULL REFERENCES contacts (id),
    tag_id uuid NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (contact_id, tag_id)
);
CREATE TABLE conversation_tags (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    conversation_id uuid NOT NULL REFERENCES conversations (id),
    tag_id uuid NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (conversation_id, tag_id)
);
CREATE INDEX conversation_tags_tag ON conversation_tags (tag_id);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['conversation_transitions', 'tags', 'contact_tags', 'conversation_tags']
  LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_wall ON %I USING (atende_tenant_visible(tenant_id))
                    WITH CHECK (atende_tenant_visible(tenant_id))', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO atende_app', t);
  END LOOP;
END $$;
GRANT USAGE, SELECT, UPDATE ON SEQUENCE conversation_transitions_id_seq TO atende_app;
