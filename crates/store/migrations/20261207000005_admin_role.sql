-- Tenant administrators: they manage the tenant's agents and services through the gateway
-- (and supervise, as supervisors do).
ALTER TABLE agents ADD COLUMN admin boolean NOT NULL DEFAULT false;
