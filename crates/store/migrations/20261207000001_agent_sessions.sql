-- Agents' sessions in the gateway. A login starts a session (a family of refresh tokens);
-- each refresh spends the presented token and issues the next one of the same family.
-- Presenting a spent token again (a stolen copy, or a replay) revokes the whole family, so
-- the thief and the victim are both signed out. Logout revokes the session. Only the
-- SHA-256 of a token is stored: the table never holds anything that can be presented.
CREATE TABLE agent_sessions (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    agent_id uuid NOT NULL REFERENCES agents (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    -- logout, reuse (a spent refresh token presented again), or admin.
    revoked_reason text CHECK (revoked_reason IN ('logout', 'reuse', 'admin'))
);
CREATE INDEX agent_sessions_agent ON agent_sessions (tenant_id, agent_id) WHERE revoked_at IS NULL;

CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    session_id uuid NOT NULL REFERENCES agent_sessions (id) ON DELETE CASCADE,
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    issued_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    spent_at timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['agent_sessions', 'refresh_tokens']
  LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_wall ON %I USING (atende_tenant_visible(tenant_id))
                    WITH CHECK (atende_tenant_visible(tenant_id))', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO atende_app', t);
  END LOOP;
END $$;
