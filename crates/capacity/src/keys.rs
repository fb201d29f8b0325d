//! The one builder of Redis keys. Every key of a tenant is `atende:{<tenant>}:…`: the braces
//! are Redis Cluster's hash tag, so all keys of one tenant share a slot and one Lua script
//! may touch several of them. A non-empty namespace prefix (tests) comes first,
//! `<prefix>:atende:{<tenant>}:…`, so a test's cleanup finds its keys with `KEYS <prefix>:*`.

use atende_domain::channel::ChannelKind;
use atende_domain::ids::{AgentId, ConversationId, ServiceId, TenantId};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
        }
    }

    fn tenant(&self, tenant: TenantId, rest: &str) -> String {
        if self.prefix.is_empty() {
            format!("atende:{{{tenant}}}:{rest}")
        } else {
            format!("{}:atende:{{{tenant}}}:{rest}", self.prefix)
        }
    }

    /// String counter: login attempts for one account in the current window. Keyed by a
    /// digest of what the login named (tenant slug and e-mail, which may not exist), so no
    /// address appears in Redis and no input shapes the key.
    pub fn login_attempts(&self, account_digest: &str) -> String {
        if self.prefix.is_empty() {
            format!("atende:{{login}}:{account_digest}")
        } else {
            format!("{}:atende:{{login}}:{account_digest}", self.prefix)
        }
    }

    /// String: a pending single-use WebSocket ticket, keyed by its digest (the ticket itself
    /// is never stored); the value says whose it is. Any gateway replica may redeem it.
    pub fn ws_ticket(&self, ticket_digest: &str) -> String {
        if self.prefix.is_empty() {
            format!("atende:{{ws_ticket}}:{ticket_digest}")
        } else {
            format!("{}:atende:{{ws_ticket}}:{ticket_digest}", self.prefix)
        }
    }

    /// Sorted set: the agent's open sockets on every gateway replica, socket id → the time
    /// (ms) its heartbeat lapses. The agent is connected while one has not lapsed.
    pub fn sockets(&self, tenant: TenantId, agent: AgentId) -> String {
        self.tenant(tenant, &format!("sockets:{agent}"))
    }

    /// Sorted set: the tenant's agents whose connection must be checked, agent id → when (ms).
    pub fn socket_watch(&self, tenant: TenantId) -> String {
        self.tenant(tenant, "socket_watch")
    }

    /// Set: tenants with a `socket_watch` (what every gateway replica's sweep walks).
    pub fn socket_watch_tenants(&self) -> String {
        if self.prefix.is_empty() {
            "atende:{presence}:tenants".to_string()
        } else {
            format!("{}:atende:{{presence}}:tenants", self.prefix)
        }
    }

    /// Hash: live state of an agent (status, channel logins, max, assigned, offered,
    /// idle_since, connected).
    pub fn agent(&self, tenant: TenantId, agent: AgentId) -> String {
        self.tenant(tenant, &format!("agent:{agent}"))
    }

    /// Sorted set: a service's rotation, agent id → position (lower = earlier turn).
    pub fn rotation(&self, tenant: TenantId, service: ServiceId) -> String {
        self.tenant(tenant, &format!("rot:{service}"))
    }

    /// Hash: the reservation of a conversation (agent, mode offer|assign, service, deadline,
    /// state pending|committed). Keyed by conversation, so re-applying it is a no-op.
    pub fn reservation(&self, tenant: TenantId, conversation: ConversationId) -> String {
        self.tenant(tenant, &format!("res:{conversation}"))
    }

    /// Sorted set: pending offers by deadline (ms). Popped atomically by the sweep.
    pub fn offer_deadlines(&self, tenant: TenantId) -> String {
        self.tenant(tenant, "offers")
    }

    /// Sorted set: reservations not yet confirmed by their Postgres commit, by reservation
    /// time; the reconciler settles the old ones against Postgres.
    pub fn pending(&self, tenant: TenantId) -> String {
        self.tenant(tenant, "pending")
    }

    /// Set: the conversations an agent holds (offers and assignments), kept by every script
    /// that reserves or releases, so reconciliation finds holds Postgres does not know.
    pub fn holds(&self, tenant: TenantId, agent: AgentId) -> String {
        self.tenant(tenant, &format!("holds:{agent}"))
    }

    /// String with a TTL: the conversation's reservation was released recently (written by the
    /// release script); reconciliation does not restore it meanwhile.
    pub fn released(&self, tenant: TenantId, conversation: ConversationId) -> String {
        self.tenant(tenant, &format!("rel:{conversation}"))
    }

    /// Counter: how many times a script observed an agent over his capacity. Zero unless
    /// Postgres itself holds more than the agent's max (which reconciliation then reveals).
    pub fn over_capacity(&self, tenant: TenantId) -> String {
        self.tenant(tenant, "overcap")
    }

    /// String: present once capacity was rebuilt from Postgres. Lost with the rest of the
    /// tenant's keys (same slot), which is what tells the router to rebuild.
    pub fn rebuilt(&self, tenant: TenantId) -> String {
        self.tenant(tenant, "rebuilt")
    }

    /// String: held by the replica rebuilding the tenant's capacity.
    pub fn rebuild_lock(&self, tenant: TenantId) -> String {
        self.tenant(tenant, "rebuild-lock")
    }

    /// String: the lease on routing one service, holding the owner's fencing token.
    pub fn lease(&self, tenant: TenantId, service: ServiceId) -> String {
        self.tenant(tenant, &format!("lease:{service}"))
    }

    /// The common start of every key of the tenant; scripts that maintain the candidate
    /// index build `cand:`/`online:` keys from it (same hash tag, so the same slot).
    pub fn tenant_prefix(&self, tenant: TenantId) -> String {
        self.tenant(tenant, "")
    }

    /// Sorted set: the candidate index — agents of the service who may receive a
    /// conversation of `kind` now (Available, logged into it, under capacity), scored in the
    /// service policy's order so the best candidates come first.
    pub fn candidates(&self, tenant: TenantId, service: ServiceId, kind: ChannelKind) -> String {
        self.tenant(tenant, &format!("cand:{service}:{}", kind.as_str()))
    }

    /// Set: agents of the service online for `kind` (Available and logged in), whatever
    /// their load.
    pub fn online(&self, tenant: TenantId, service: ServiceId, kind: ChannelKind) -> String {
        self.tenant(tenant, &format!("online:{service}:{}", kind.as_str()))
    }

    /// String: which replica re-evaluates the service in the current sweep period.
    pub fn sweep_claim(&self, tenant: TenantId, service: ServiceId) -> String {
        self.tenant(tenant, &format!("sweep:{service}"))
    }

    /// Counter: fencing tokens, strictly increasing per tenant.
    pub fn fence(&self, tenant: TenantId) -> String {
        self.tenant(tenant, "fence")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn keys_are_hash_tagged_by_tenant() {
        let k = Keys::new("");
        let t = TenantId(Uuid::nil());
        assert_eq!(k.rebuilt(t), format!("atende:{{{}}}:rebuilt", Uuid::nil()));
    }

    #[test]
    fn a_prefix_comes_first_so_cleanup_finds_the_keys() {
        let k = Keys::new("t1");
        let t = TenantId(Uuid::nil());
        let a = AgentId(Uuid::nil());
        assert!(k.agent(t, a).starts_with("t1:atende:{"));
    }
}
