-- Core schema. Every row carries tenant_id. Postgres is the source of truth; Redis holds
-- only live state that can be rebuilt from these tables.

CREATE TABLE tenants (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    slug text NOT NULL UNIQUE,
    allow_simultaneous_conversations boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE services (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    name text NOT NULL,
    policy text NOT NULL CHECK (policy IN ('manual', 'round_robin', 'least_loaded', 'ordered_offer', 'offer_or_miss')),
    offer_timeout_secs integer NOT NULL DEFAULT 60 CHECK (offer_timeout_secs > 0),
    priority integer NOT NULL DEFAULT 0,
    accepted_channels text[] NOT NULL DEFAULT '{}',
    business_hours jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE channels (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    kind text NOT NULL CHECK (kind IN ('whatsapp', 'messenger', 'instagram', 'webchat')),
    name text NOT NULL,
    provider_account_id text NOT NULL,
    app_secret text NOT NULL,
    verify_token text NOT NULL,
    access_token text NOT NULL,
    default_service_id uuid REFERENCES services (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, provider_account_id)
);

CREATE TABLE agents (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    name text NOT NULL,
    email text NOT NULL,
    password_hash text NOT NULL,
    max_concurrent integer NOT NULL DEFAULT 3 CHECK (max_concurrent > 0),
    supervisor boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, email)
);

CREATE TABLE agent_services (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    agent_id uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    service_id uuid NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    -- Initial place in the service's rotation (ordered offers); lower goes first.
    rotation_order integer NOT NULL DEFAULT 0,
    PRIMARY KEY (agent_id, service_id)
);
CREATE INDEX agent_services_service ON agent_services (service_id);

CREATE TABLE contacts (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    name text,
    email text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- How a contact is recognised on a channel. WhatsApp ids are tenant-wide (scope ''):
-- wa_phone holds the canonical number (Brazilian mobiles with the ninth digit), wa_bsuid
-- the business-scoped user id. Messenger PSIDs and Instagram IGSIDs are per page/account,
-- so their scope is the channel id.
CREATE TABLE contact_identities (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    contact_id uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('wa_phone', 'wa_bsuid', 'psid', 'igsid', 'webchat')),
    scope text NOT NULL DEFAULT '',
    value text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, kind, scope, value)
);
CREATE INDEX contact_identities_contact ON contact_identities (contact_id);

-- Per-tenant daily counter behind protocol numbers (YYYYMMDD + 6 digits).
CREATE TABLE protocol_counters (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    day date NOT NULL,
    last bigint NOT NULL,
    PRIMARY KEY (tenant_id, day)
);

CREATE TABLE conversations (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    contact_id uuid NOT NULL REFERENCES contacts (id),
    channel_id uuid NOT NULL REFERENCES channels (id),
    service_id uuid REFERENCES services (id),
    status text NOT NULL CHECK (status IN ('bot', 'queued', 'offered', 'assigned', 'finished', 'missed', 'expired')),
    agent_id uuid REFERENCES agents (id),
    protocol text NOT NULL,
    opened_at timestamptz NOT NULL DEFAULT now(),
    queued_at timestamptz,
    closed_at timestamptz,
    close_reason text,
    last_inbound_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- Never two open conversations of one contact in the same service, whatever the tenant flag.
CREATE UNIQUE INDEX conversations_one_open_per_service ON conversations
    (tenant_id, contact_id, COALESCE(service_id, '00000000-0000-0000-0000-000000000000'::uuid))
    WHERE status NOT IN ('finished', 'missed', 'expired');
CREATE INDEX conversations_contact_open ON conversations (contact_id) WHERE status NOT IN ('finished', 'missed', 'expired');
CREATE INDEX conversations_agent_open ON conversations (agent_id) WHERE status NOT IN ('finished', 'missed', 'expired');

-- One protocol per leg: a transfer opens a new one; each gets its own qualification.
CREATE TABLE protocols (
    number text NOT NULL,
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    conversation_id uuid NOT NULL REFERENCES conversations (id),
    service_id uuid REFERENCES services (id),
    agent_id uuid REFERENCES agents (id),
    opened_at timestamptz NOT NULL DEFAULT now(),
    closed_at timestamptz,
    qualification text,
    description text,
    PRIMARY KEY (tenant_id, number)
);
CREATE INDEX protocols_conversation ON protocols (conversation_id);

CREATE TABLE messages (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    conversation_id uuid NOT NULL REFERENCES conversations (id),
    channel_id uuid NOT NULL REFERENCES channels (id),
    direction text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    kind text NOT NULL,
    body text,
    media jsonb,
    provider_message_id text,
    reply_to_provider_message_id text,
    status text NOT NULL,
    agent_id uuid REFERENCES agents (id),
    client_message_id text,
    raw jsonb,
    sent_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- The durable dedupe key: Meta re-delivers for 7 days, far past JetStream's window.
    CONSTRAINT messages_provider_id UNIQUE (channel_id, provider_message_id),
    CONSTRAINT messages_client_id UNIQUE (conversation_id, client_message_id)
);
CREATE INDEX messages_conversation ON messages (conversation_id, created_at, id);

-- Every webhook item we acknowledged, keyed the way the provider identifies it. A delivery
-- seen again (seconds or days later) finds its row and writes nothing new.
CREATE TABLE webhook_receipts (
    channel_id uuid NOT NULL REFERENCES channels (id),
    provider_key text NOT NULL,
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, provider_key)
);

-- Transactional outbox: a row is written in the same transaction as the effect it
-- announces; the relay publishes it to JetStream (Nats-Msg-Id = msg_id) and marks it.
CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    tenant_id uuid NOT NULL,
    subject text NOT NULL,
    msg_id text NOT NULL UNIQUE,
    payload bytea NOT NULL,
    headers jsonb NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('atende_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

CREATE TABLE assignments (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    conversation_id uuid NOT NULL REFERENCES conversations (id),
    agent_id uuid NOT NULL REFERENCES agents (id),
    service_id uuid REFERENCES services (id),
    assigned_at timestamptz NOT NULL DEFAULT now(),
    released_at timestamptz,
    release_reason text
);
CREATE UNIQUE INDEX assignments_one_open ON assignments (conversation_id) WHERE released_at IS NULL;
CREATE INDEX assignments_agent_open ON assignments (agent_id) WHERE released_at IS NULL;

CREATE TABLE decision_log (
    id bigserial PRIMARY KEY,
    tenant_id uuid NOT NULL,
    conversation_id uuid,
    service_id uuid,
    agent_id uuid,
    decision text NOT NULL,
    rule text NOT NULL,
    explanation jsonb NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX decision_log_conversation ON decision_log (conversation_id, id);

-- Outbound delivery bookkeeping: 'sending' is written before the provider call, 'sent'
-- after, so a redelivered job knows whether the provider already accepted the message.
CREATE TABLE deliveries (
    message_id uuid PRIMARY KEY REFERENCES messages (id),
    tenant_id uuid NOT NULL,
    state text NOT NULL CHECK (state IN ('sending', 'sent', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    provider_message_id text,
    last_error text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Messages a consumer could not process and terminated: recorded, never skipped silently.
CREATE TABLE dead_letters (
    id bigserial PRIMARY KEY,
    consumer text NOT NULL,
    subject text NOT NULL,
    payload bytea NOT NULL,
    reason text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
