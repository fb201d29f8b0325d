-- What each agent's WebSocket shows, as a durable per-agent log: every frame numbered 1, 2,
-- 3... per agent. A client that reconnects with the last number it saw reads exactly what
-- came after, whichever gateway replica it reaches and whether or not one restarted between.
-- The head row is locked by each append until its transaction ends, so numbers are dense and
-- commit in order: a reader never sees N+1 before N.
CREATE TABLE agent_feed_heads (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    agent_id uuid NOT NULL REFERENCES agents (id),
    last_seq bigint NOT NULL,
    PRIMARY KEY (tenant_id, agent_id)
);

CREATE TABLE agent_feed (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    agent_id uuid NOT NULL,
    seq bigint NOT NULL,
    -- The domain event the frame comes from, and its position among that event's frames:
    -- a redelivered event finds its frames already written.
    event_id uuid NOT NULL,
    part smallint NOT NULL,
    type text NOT NULL,
    data jsonb NOT NULL,
    trace_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, agent_id, seq),
    UNIQUE (tenant_id, agent_id, event_id, part)
);
CREATE INDEX agent_feed_created ON agent_feed (created_at);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['agent_feed_heads', 'agent_feed']
  LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_wall ON %I USING (atende_tenant_visible(tenant_id))
                    WITH CHECK (atende_tenant_visible(tenant_id))', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO atende_app', t);
  END LOOP;
END $$;
