-- Missed leads (offer_or_miss CNAs) waiting for the pending-message check (seed 003): the
-- check tells the first Available agent of the service about each once, a day after it was
-- missed, or a quarter of an hour after when nobody was online; with nobody Available it
-- looks again at the next run.
CREATE TABLE missed_leads (
    conversation_id uuid PRIMARY KEY REFERENCES conversations (id),
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    service_id uuid NOT NULL REFERENCES services (id),
    -- Who failed to answer; NULL: nobody was online to be offered it.
    missed_by uuid REFERENCES agents (id),
    missed_at timestamptz NOT NULL,
    notice_due_at timestamptz NOT NULL,
    notified_agent_id uuid REFERENCES agents (id),
    notified_at timestamptz
);
CREATE INDEX missed_leads_due ON missed_leads (notice_due_at) WHERE notified_at IS NULL;

ALTER TABLE missed_leads ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_wall ON missed_leads USING (atende_tenant_visible(tenant_id))
    WITH CHECK (atende_tenant_visible(tenant_id));
GRANT SELECT, INSERT, UPDATE, DELETE ON missed_leads TO atende_app;
