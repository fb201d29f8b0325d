-- The agent's workspace: internal notes among the messages (never sent), drafts per agent
-- and conversation, what each agent has read (and "mark unread"), canned responses per tenant
-- or service, in-person attendances.

ALTER TABLE messages DROP CONSTRAINT messages_direction_check;
ALTER TABLE messages ADD CONSTRAINT messages_direction_check CHECK (direction IN ('inbound', 'outbound', 'note'));

-- In-person attendances are registered outside the queue, each with its own protocol from
-- the tenant's daily sequence; agents need the permission.
ALTER TABLE agents ADD COLUMN can_attend_in_person boolean NOT NULL DEFAULT false;
CREATE TABLE in_person_attendances (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    protocol text NOT NULL,
    service_id uuid NOT NULL REFERENCES services (id),
    contact_id uuid NOT NULL REFERENCES contacts (id),
    agent_id uuid NOT NULL REFERENCES agents (id),
    description text NOT NULL CHECK (char_length(description) BETWEEN 1 AND 2000),
    at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, protocol)
);

CREATE TABLE drafts (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    agent_id uuid NOT NULL REFERENCES agents (id),
    conversation_id uuid NOT NULL REFERENCES conversations (id),
    body text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, conversation_id)
);

CREATE TABLE agent_reads (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    agent_id uuid NOT NULL REFERENCES agents (id),
    conversation_id uuid NOT NULL REFERENCES conversations (id),
    -- Messages up to this position are read.
    read_seq bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, conversation_id)
);

CREATE TABLE canned_responses (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    -- NULL: every service of the tenant.
    service_id uuid REFERENCES services (id),
    shortcut text NOT NULL CHECK (shortcut ~ '^[a-z0-9_-]{1,32}$'),
    body text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 4096),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX canned_responses_shortcut ON canned_responses
    (tenant_id, COALESCE(service_id, '00000000-0000-0000-0000-000000000000'::uuid), shortcut);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['drafts', 'agent_reads', 'canned_responses', 'in_person_attendances']
  LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_wall ON %I USING (atende_tenant_visible(tenant_id))
                    WITH CHECK (atende_tenant_visible(tenant_id))', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO atende_app', t);
  END LOOP;
END $$;
