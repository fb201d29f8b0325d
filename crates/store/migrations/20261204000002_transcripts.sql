-- Transcript e-mails: each tenant's own SMTP settings (the password sealed like channel
-- secrets), the services that send them, and a durable job per finished conversation that
-- the session's mailer claims, sends and marks (retried with backoff while the server fails).
ALTER TABLE tenants
    -- {"host", "port", "tls": "none"|"starttls"|"tls", "username", "from_address", "from_name",
    --  "transcript_enabled"}
    ADD COLUMN mail jsonb,
    ADD COLUMN mail_password text;

CREATE TABLE transcript_jobs (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    conversation_id uuid NOT NULL REFERENCES conversations (id),
    protocol text NOT NULL,
    recipient text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    sent_at timestamptz,
    last_error text,
    UNIQUE (tenant_id, protocol)
);
CREATE INDEX transcript_jobs_due ON transcript_jobs (next_attempt_at) WHERE sent_at IS NULL;

ALTER TABLE transcript_jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_wall ON transcript_jobs USING (atende_tenant_visible(tenant_id))
    WITH CHECK (atende_tenant_visible(tenant_id));
GRANT SELECT, INSERT, UPDATE, DELETE ON transcript_jobs TO atende_app;
