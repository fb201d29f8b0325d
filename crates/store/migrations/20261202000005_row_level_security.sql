-- Tenants walled twice: every query names its tenant, and Postgres row-level security hides
-- every other tenant's rows from the role the services run as.
--
-- The services connect (any login) and `SET ROLE atende_app`: a role that owns nothing and
-- is not a superuser, so the policies apply to it. Each connection starts platform-wide
-- (`atende.tenant_id = '*'`: the outbox relay, sweeps, webhook intake by channel id); work
-- done for one tenant sets `atende.tenant_id` to it for its transaction, and then sees and
-- writes only that tenant's rows. A connection that set nothing sees nothing.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'atende_app') THEN
    CREATE ROLE atende_app NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL; -- created concurrently by another database's migration (the role is cluster-wide)
END $$;
DO $$
BEGIN
  EXECUTE format('GRANT atende_app TO %I', current_user);
EXCEPTION WHEN others THEN
  RAISE NOTICE 'could not grant atende_app to %: grant it by hand so the services can SET ROLE', current_user;
END $$;
GRANT USAGE ON SCHEMA public TO atende_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO atende_app;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO atende_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO atende_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO atende_app;

CREATE FUNCTION atende_tenant_visible(tenant uuid) RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT CASE coalesce(current_setting('atende.tenant_id', true), '')
    WHEN '*' THEN true
    WHEN '' THEN false
    ELSE tenant IS NOT NULL AND tenant::text = current_setting('atende.tenant_id', true)
  END
$$;

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['services', 'channels', 'agents', 'agent_services', 'contacts',
    'contact_identities', 'protocol_counters', 'conversations', 'protocols', 'messages',
    'webhook_receipts', 'outbox', 'assignments', 'decision_log', 'deliveries', 'dead_letters',
    'route_queue', 'route_offers', 'customer_windows']
  LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_wall ON %I USING (atende_tenant_visible(tenant_id))
                    WITH CHECK (atende_tenant_visible(tenant_id))', t);
  END LOOP;
END $$;
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_wall ON tenants USING (atende_tenant_visible(id)) WITH CHECK (atende_tenant_visible(id));
