-- WhatsApp message templates (HSM) of each number, as the provider lists them: kept by the
-- broadcast role's sync (and status webhooks), checked at use by the domain's template rules.
-- Templates belong to the WhatsApp Business Account behind the number.
ALTER TABLE channels ADD COLUMN business_account_id text;

CREATE TABLE templates (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    channel_id uuid NOT NULL REFERENCES channels (id),
    provider_template_id text NOT NULL DEFAULT '',
    name text NOT NULL,
    language text NOT NULL,
    category text NOT NULL,
    -- APPROVED, PENDING, REJECTED, PAUSED, DISABLED…; DELETED once the provider no longer
    -- lists it.
    status text NOT NULL,
    components jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (channel_id, name, language)
);

ALTER TABLE templates ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_wall ON templates USING (atende_tenant_visible(tenant_id))
    WITH CHECK (atende_tenant_visible(tenant_id));
GRANT SELECT, INSERT, UPDATE, DELETE ON templates TO atende_app;
