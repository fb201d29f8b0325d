-- The router's durable side of its Redis state, so a Redis loss loses no routing fact.

-- A conversation the router queued in a service, with what Postgres does not otherwise know:
-- its priority and whether it arrived while nobody was online (round_robin never
-- distributes those automatically). Only rows whose conversation is still `queued` in this
-- service count; the others are stale and swept.
CREATE TABLE route_queue (
    conversation_id uuid PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    tenant_id uuid NOT NULL,
    service_id uuid NOT NULL,
    priority integer NOT NULL DEFAULT 0,
    nobody_online boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX route_queue_service ON route_queue (tenant_id, service_id);

-- Pending offers: one per conversation. Redis holds their deadlines for the sweep; this
-- table rebuilds them (and the agents' offered counters) after a Redis loss.
CREATE TABLE route_offers (
    conversation_id uuid PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    tenant_id uuid NOT NULL,
    service_id uuid NOT NULL,
    agent_id uuid NOT NULL REFERENCES agents (id),
    channel_kind text NOT NULL,
    offered_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    queued_at timestamptz NOT NULL,
    priority integer NOT NULL DEFAULT 0
);
CREATE INDEX route_offers_service ON route_offers (tenant_id, service_id);
CREATE INDEX route_offers_agent ON route_offers (agent_id);
