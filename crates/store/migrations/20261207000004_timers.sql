-- Durable timers: scheduled sends, missed-lead sweeps, window expiry. A timer is written in the
-- same transaction as the business change that wants it (and cancelled or moved the same
-- way); when it falls due, a scheduler replica claims it with FOR UPDATE SKIP LOCKED and, in
-- the same transaction, marks it fired and queues its message in the outbox under the
-- timer's id — so it fires once even with several replicas, reaches NATS at least once with
-- a dedupe id, and a timer that fell due while everything was down fires at the next pass.
CREATE TABLE timers (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    -- What it is for (scheduled_send, missed_lead_sweep, window_expiry, ...) and which one:
    -- a tenant has at most one pending timer per (kind, key).
    kind text NOT NULL CHECK (kind ~ '^[a-z_]{1,64}$'),
    key text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 256),
    due_at timestamptz NOT NULL,
    subject text NOT NULL,
    payload bytea NOT NULL,
    -- The outbox ordering key of the message (a conversation, usually).
    order_key text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    fired_at timestamptz,
    cancelled_at timestamptz
);
CREATE UNIQUE INDEX timers_one_pending ON timers (tenant_id, kind, key)
    WHERE fired_at IS NULL AND cancelled_at IS NULL;
CREATE INDEX timers_due ON timers (due_at) WHERE fired_at IS NULL AND cancelled_at IS NULL;

ALTER TABLE timers ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_wall ON timers USING (atende_tenant_visible(tenant_id))
    WITH CHECK (atende_tenant_visible(tenant_id));
GRANT SELECT, INSERT, UPDATE, DELETE ON timers TO atende_app;
