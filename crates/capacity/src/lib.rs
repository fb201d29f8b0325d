//! Live routing state in Redis: agent presence and capacity counters, rotation, reservations
//! and offer deadlines — everything that can be rebuilt from Postgres plus the agents' next
//! heartbeat.
//!
//! Layout:
//! - [`keys`] the one key builder (`[<prefix>:]atende:{<tenant>}:…`, hash-tagged by tenant);
//! - [`scripts`] the Lua scripts; every state change is one of them, atomic, re-checking
//!   what it relies on (so several router replicas can apply decisions concurrently);
//! - [`Presence`] the typed API over them (this file).
//!
//! # The state
//! - `agent:<id>` hash: `status` (derived by the domain from connection and logins),
//!   `kinds` (channel kinds he receives), `logins`, `connected`, `max`, `assigned`,
//!   `offered`, `idle_since`. The counters are the agent's load across all his services.
//! - `res:<conversation>` hash: who holds the conversation (`agent`, `mode` offer|assign,
//!   `service`, `deadline`, `state` pending|committed). Keyed by conversation, so
//!   reserving twice is a no-op and two owners are impossible.
//! - `offers` sorted set: offer deadlines, popped by exactly one replica ([`Presence::pop_due_offers`]).
//! - `pending` sorted set: reservations made but not yet confirmed after their Postgres
//!   commit; the router's reconciler settles old ones against Postgres.
//! - `rot:<service>` sorted set: rotation places; seeded from the configured order.
//! - `cand:<service>:<kind>` sorted sets: the candidate index — the service's agents who may
//!   receive a conversation of that kind now (Available, logged in, under capacity), scored
//!   in the service policy's order (least_loaded: most free capacity then longest idle;
//!   rotation policies: rotation place; offer_or_miss: agents without a pending offer
//!   first). `online:<service>:<kind>` sets: who is online for the kind whatever his load.
//!   Every script that changes an agent re-indexes him in the same atomic step (the agent
//!   hash lists his services and their policies, written by `set_presence`), so a large
//!   service reads its best few candidates in O(log n) instead of every member — what
//!   keeps a decision as cheap at 10,000 agents as at 100. (The index keys are built
//!   inside the scripts from the tenant prefix rather than passed in `KEYS`; they share the
//!   tenant's hash tag, so they are in the same Redis Cluster slot.)
//! - `lease:<service>` + `fence`: the per-service routing lease and its fencing tokens.
//! - `ver:<service>`: the service's view version, incremented whenever any member changes
//!   (in the same script); lets a router replica keep the candidate view in memory and know
//!   exactly when it is stale ([`view`]).
//! - `sweep:<service>`: which replica re-evaluates the service in the current period.
//! - `rebuilt`: the marker. Reservation scripts refuse (`NOMARKER`) while it is missing —
//!   after a start on an empty Redis, a FLUSH or a failover that lost the tenant's slot —
//!   until [`Presence::rebuild`] has written the counters Postgres knows, in the same script
//!   that sets the marker. Presence itself is not rebuilt: agents count as Offline (safe)
//!   until their next `SetPresence`.

pub mod keys;
pub mod scripts;
pub mod view;

use atende_domain::channel::ChannelKind;
use atende_domain::clock::Timestamp;
use atende_domain::ids::{AgentId, ConversationId, ServiceId, TenantId};
use atende_domain::presence::{AgentStatus, ChannelLogin};
use atende_domain::routing::Policy;
use redis::aio::ConnectionManager;

pub use keys::Keys;
pub use view::{CandidateView, ViewReply, ViewSpec};

#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    #[error("redis")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected reply from a routing script: {0}")]
    Reply(String),
}

pub type Result<T> = std::result::Result<T, PresenceError>;

/// What a reconciliation of one agent changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Holds Postgres has that Redis had lost.
    pub restored: u32,
    /// Holds Redis kept that Postgres does not know.
    pub freed: u32,
}

/// What a reservation holds the agent's capacity for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Offer,
    Assign,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Offer => "offer",
            Mode::Assign => "assign",
        }
    }
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "offer" => Some(Mode::Offer),
            "assign" => Some(Mode::Assign),
            _ => None,
        }
    }
}

/// How strictly [`Presence::reserve`] checks the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Available and logged into the conversation's kind (automatic routing, claims).
    Routing,
    /// Available or Paused, any kind (a supervisor's assignment).
    Supervisor,
}

/// A reservation to make or confirm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    pub conversation: ConversationId,
    pub agent: AgentId,
    pub service: ServiceId,
    pub mode: Mode,
    /// The offer's deadline (ignored for assignments).
    pub deadline: Timestamp,
}

/// The answer of [`Presence::reserve`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reserved {
    /// Reserved now.
    New,
    /// The same reservation already existed: nothing changed.
    Again,
    /// The agent's own offer became an assignment.
    Accepted,
    /// The conversation is held by someone (or in another mode).
    Taken { agent: String, mode: String },
    /// The agent is not in a status that may receive it.
    Unavailable(AgentStatus),
    /// The agent is not logged into the conversation's kind.
    NotLoggedIn,
    /// `assigned + offered >= max`.
    Full(u32),
    /// Capacity must be rebuilt from Postgres first.
    NoMarker,
    /// Our lease on the service was lost: another replica may be routing it.
    Fenced,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Confirmed {
    Ok,
    /// The reservation was lost with a wipe and re-created from the committed fact.
    Restored,
    Mismatch,
    NoMarker,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Released {
    Released(Mode),
    /// Nothing was reserved.
    None,
    /// Held by another agent or in another mode: left alone.
    Other {
        agent: String,
        mode: String,
    },
    NoMarker,
}

/// The answer of [`Presence::acquire_lease`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lease {
    /// Ours, with this fencing token.
    Granted(u64),
    /// Another routing step holds it.
    Held,
    /// Capacity must be rebuilt first.
    NoMarker,
}

/// One of the agent's services, as the candidate index needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Membership {
    pub service: ServiceId,
    pub policy: Policy,
    pub rotation_seed: u64,
}

fn policy_code(p: Policy) -> &'static str {
    match p {
        Policy::LeastLoaded => "ll",
        Policy::RoundRobin | Policy::OrderedOffer => "rot",
        Policy::OfferOrMiss => "oom",
        Policy::Manual => "man",
    }
}

/// An agent's live state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentLive {
    pub status: AgentStatus,
    pub logins: Vec<ChannelLogin>,
    pub connected: bool,
    pub max: u32,
    pub assigned: u32,
    pub offered: u32,
    pub idle_since: Timestamp,
    /// When the status last changed (0: never recorded).
    pub status_since: Timestamp,
}

/// What [`Presence::load_agents`] returns per agent: routing's view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentRow {
    pub status: AgentStatus,
    pub kinds: Vec<ChannelKind>,
    pub assigned: u32,
    pub offered: u32,
    pub idle_since: Timestamp,
    pub rotation: u64,
}

/// A held reservation as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub agent: AgentId,
    pub mode: Mode,
    pub service: Option<ServiceId>,
    pub deadline: Timestamp,
    pub committed: bool,
}

/// Typed access to the routing state of every tenant.
#[derive(Clone)]
pub struct Presence {
    conn: ConnectionManager,
    keys: Keys,
}

fn kinds_list(kinds: &[ChannelKind]) -> String {
    kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(",")
}

fn parse_kinds(s: &str) -> Vec<ChannelKind> {
    s.split(',').filter_map(ChannelKind::parse).collect()
}

fn logins_list(logins: &[ChannelLogin]) -> String {
    logins
        .iter()
        .map(|l| format!("{}:{}", l.kind.as_str(), l.paused as u8))
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_logins(s: &str) -> Vec<ChannelLogin> {
    s.split(',')
        .filter_map(|item| {
            let (k, p) = item.split_once(':')?;
            Some(ChannelLogin {
                kind: ChannelKind::parse(k)?,
                paused: p == "1",
            })
        })
        .collect()
}

fn num<T: std::str::FromStr + Default>(s: Option<&String>) -> T {
    s.and_then(|v| v.split('.').next().and_then(|i| i.parse().ok()))
        .unwrap_or_default()
}

fn reply_err(what: &str, reply: &[String]) -> PresenceError {
    PresenceError::Reply(format!("{what}: {reply:?}"))
}

fn parse_reserved(reply: &[String]) -> Result<Reserved> {
    let at = |i: usize| reply.get(i).cloned().unwrap_or_default();
    Ok(match at(0).as_str() {
        "OK" => match at(1).as_str() {
            "new" => Reserved::New,
            "accepted" => Reserved::Accepted,
            _ => Reserved::Again,
        },
        "TAKEN" => Reserved::Taken {
            agent: at(1),
            mode: at(2),
        },
        "UNAVAILABLE" => Reserved::Unavailable(AgentStatus::parse(&at(1)).unwrap_or(AgentStatus::Offline)),
        "NOCHANNEL" => Reserved::NotLoggedIn,
        "FULL" => Reserved::Full(at(1).parse().unwrap_or_default()),
        "NOMARKER" => Reserved::NoMarker,
        "FENCED" => Reserved::Fenced,
        _ => return Err(reply_err("reserve", reply)),
    })
}

impl Presence {
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            keys: Keys::new(prefix),
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// A connection for callers that need a raw command (tests, benchmarks).
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Records the agent's connection and logins (the caller derived `status` with the
    /// domain), his max and his services (with their policies and his initial rotation
    /// place, for the candidate index); returns the previous status.
    #[allow(clippy::too_many_arguments)]
    pub async fn set_presence(
        &self,
        tenant: TenantId,
        agent: AgentId,
        status: AgentStatus,
        connected: bool,
        logins: &[ChannelLogin],
        max: u32,
        services: &[Membership],
        now: Timestamp,
    ) -> Result<AgentStatus> {
        let kinds = if status == AgentStatus::Available {
            atende_domain::presence::receiving_kinds(logins)
        } else {
            Vec::new()
        };
        let mut inv = scripts::SET_PRESENCE.prepare_invoke();
        inv.key(self.keys.agent(tenant, agent))
            .arg(agent.to_string())
            .arg(status.as_str())
            .arg(kinds_list(&kinds))
            .arg(logins_list(logins))
            .arg(connected as u8)
            .arg(max)
            .arg(now.as_millis());
        for m in services {
            inv.arg(m.service.to_string())
                .arg(policy_code(m.policy))
                .arg(m.rotation_seed);
        }
        let prev: String = inv.invoke_async(&mut self.conn.clone()).await?;
        Ok(AgentStatus::parse(&prev).unwrap_or(AgentStatus::Offline))
    }

    /// The agent's live state; an agent never seen (or wiped) is Offline with no load.
    pub async fn agent(&self, tenant: TenantId, agent: AgentId) -> Result<AgentLive> {
        let v: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.keys.agent(tenant, agent))
            .arg(&[
                "status",
                "logins",
                "connected",
                "max",
                "assigned",
                "offered",
                "idle_since",
                "status_since",
            ])
            .query_async(&mut self.conn.clone())
            .await?;
        let get = |i: usize| v.get(i).cloned().flatten();
        Ok(AgentLive {
            status: get(0)
                .as_deref()
                .and_then(AgentStatus::parse)
                .unwrap_or(AgentStatus::Offline),
            logins: parse_logins(&get(1).unwrap_or_default()),
            connected: get(2).as_deref() == Some("1"),
            max: num(get(3).as_ref()),
            assigned: num(get(4).as_ref()),
            offered: num(get(5).as_ref()),
            idle_since: Timestamp(num(get(6).as_ref())),
            status_since: Timestamp(num(get(7).as_ref())),
        })
    }

    /// Routing's view of `members` (agent, initial rotation place) of a service, in one
    /// round trip.
    pub async fn load_agents(
        &self,
        tenant: TenantId,
        service: ServiceId,
        members: &[(AgentId, u64)],
    ) -> Result<Vec<AgentRow>> {
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = scripts::LOAD_AGENTS.prepare_invoke();
        inv.key(self.keys.rotation(tenant, service));
        for (agent, seed) in members {
            inv.key(self.keys.agent(tenant, *agent));
            inv.arg(agent.to_string()).arg(*seed);
        }
        let flat: Vec<String> = inv.invoke_async(&mut self.conn.clone()).await?;
        if flat.len() != members.len() * 6 {
            return Err(reply_err("load_agents", &flat[..flat.len().min(12)]));
        }
        Ok(flat
            .chunks(6)
            .map(|c| AgentRow {
                status: AgentStatus::parse(&c[0]).unwrap_or(AgentStatus::Offline),
                kinds: parse_kinds(&c[1]),
                assigned: num(Some(&c[2])),
                offered: num(Some(&c[3])),
                idle_since: Timestamp(num(Some(&c[4]))),
                rotation: num(Some(&c[5])),
            })
            .collect())
    }

    /// The candidate-index view of a large service: the best `k` candidates per kind in
    /// `kinds` (in the policy's order), one online agent for a kind without candidates when
    /// `online` (so "nobody online" is answered right), and `extra` agents. Rotation places
    /// are read only when `rotation` (the policy uses them). Rows come with their ids.
    #[allow(clippy::too_many_arguments)]
    pub async fn load_candidates(
        &self,
        tenant: TenantId,
        service: ServiceId,
        kinds: &[ChannelKind],
        k: usize,
        online: bool,
        rotation: bool,
        extra: &[AgentId],
    ) -> Result<Vec<(AgentId, AgentRow)>> {
        let mut inv = scripts::LOAD_CANDIDATES.prepare_invoke();
        inv.key(self.keys.rotation(tenant, service))
            .arg(self.keys.tenant_prefix(tenant))
            .arg(service.to_string())
            .arg(k)
            .arg(kinds_list(kinds))
            .arg(online as u8)
            .arg(rotation as u8);
        for a in extra {
            inv.arg(a.to_string());
        }
        let flat: Vec<String> = inv.invoke_async(&mut self.conn.clone()).await?;
        let rows = flat.chunks_exact(7);
        if !rows.remainder().is_empty() {
            return Err(reply_err("load_candidates", &flat[..flat.len().min(14)]));
        }
        Ok(rows
            .filter_map(|c| {
                Some((
                    c[0].parse().ok()?,
                    AgentRow {
                        status: AgentStatus::parse(&c[1]).unwrap_or(AgentStatus::Offline),
                        kinds: parse_kinds(&c[2]),
                        assigned: num(Some(&c[3])),
                        offered: num(Some(&c[4])),
                        idle_since: Timestamp(num(Some(&c[5]))),
                        rotation: num(Some(&c[6])),
                    },
                ))
            })
            .collect())
    }

    /// Reserves the agent's capacity for the conversation after re-checking everything:
    /// the marker, our lease (`fence`), that nobody holds the conversation, the agent's
    /// status and channel (per `check`) and `assigned + offered < max`.
    #[allow(clippy::too_many_arguments)]
    pub async fn reserve(
        &self,
        tenant: TenantId,
        r: &Reservation,
        check: Check,
        kind: ChannelKind,
        max: u32,
        now: Timestamp,
        fence: Option<u64>,
    ) -> Result<Reserved> {
        let reply: Vec<String> = self
            .reserve_invocation(tenant, r, check, kind, max, now, fence)
            .invoke_async(&mut self.conn.clone())
            .await?;
        parse_reserved(&reply)
    }

    /// [`Presence::reserve`], answering also with the service's candidate view after the
    /// reservation (whatever its outcome): a [`ViewReply::Delta`] when `view` was current
    /// before it, a [`ViewReply::Full`] otherwise, [`ViewReply::None`] when refused for the
    /// marker or the fence. The same round trip; the same checks.
    #[allow(clippy::too_many_arguments)]
    pub async fn reserve_viewing(
        &self,
        tenant: TenantId,
        r: &Reservation,
        check: Check,
        kind: ChannelKind,
        max: u32,
        now: Timestamp,
        fence: Option<u64>,
        view: &ViewSpec,
        version: Option<&str>,
        extra: &[AgentId],
    ) -> Result<(Reserved, ViewReply)> {
        let mut inv = self.reserve_invocation(tenant, r, check, kind, max, now, fence);
        for a in view.args() {
            inv.arg(a);
        }
        inv.arg(version.unwrap_or_default());
        for a in extra {
            inv.arg(a.to_string());
        }
        let reply: Vec<String> = inv.invoke_async(&mut self.conn.clone()).await?;
        match reply.iter().position(|v| v == "VIEW") {
            Some(at) => Ok((parse_reserved(&reply[..at])?, view::parse(view, &reply[at + 1..])?)),
            None => Ok((parse_reserved(&reply)?, ViewReply::None)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn reserve_invocation(
        &self,
        tenant: TenantId,
        r: &Reservation,
        check: Check,
        kind: ChannelKind,
        max: u32,
        now: Timestamp,
        fence: Option<u64>,
    ) -> redis::ScriptInvocation<'static> {
        let mode = match (r.mode, check) {
            (Mode::Offer, _) => "offer",
            (Mode::Assign, Check::Routing) => "assign",
            (Mode::Assign, Check::Supervisor) => "supervisor",
        };
        let mut inv = scripts::RESERVE.prepare_invoke();
        inv.key(self.keys.reservation(tenant, r.conversation))
            .key(self.keys.agent(tenant, r.agent))
            .key(self.keys.offer_deadlines(tenant))
            .key(self.keys.pending(tenant))
            .key(self.keys.rebuilt(tenant))
            .key(self.keys.lease(tenant, r.service))
            .arg(r.conversation.to_string())
            .arg(r.agent.to_string())
            .arg(mode)
            .arg(kind.as_str())
            .arg(max)
            .arg(now.as_millis())
            .arg(r.deadline.as_millis())
            .arg(r.service.to_string())
            .arg(fence.map(|f| f.to_string()).unwrap_or_default());
        inv
    }

    /// The candidate view of a large service, read whole (with `extra` agents' rows).
    pub async fn read_view(&self, tenant: TenantId, view: &ViewSpec, extra: &[AgentId]) -> Result<CandidateView> {
        let mut inv = scripts::VIEW_READ.prepare_invoke();
        inv.key(self.keys.rebuilt(tenant)).arg(view.service.to_string());
        for a in view.args() {
            inv.arg(a);
        }
        for a in extra {
            inv.arg(a.to_string());
        }
        let reply: Vec<String> = inv.invoke_async(&mut self.conn.clone()).await?;
        match view::parse(view, &reply)? {
            ViewReply::Full(v) => Ok(v),
            _ => Err(reply_err("read_view", &reply[..reply.len().min(4)])),
        }
    }

    /// Marks the reservation committed once its Postgres transaction is.
    pub async fn confirm(&self, tenant: TenantId, r: &Reservation, now: Timestamp) -> Result<Confirmed> {
        let reply: Vec<String> = scripts::CONFIRM
            .key(self.keys.reservation(tenant, r.conversation))
            .key(self.keys.agent(tenant, r.agent))
            .key(self.keys.offer_deadlines(tenant))
            .key(self.keys.pending(tenant))
            .key(self.keys.rebuilt(tenant))
            .arg(r.conversation.to_string())
            .arg(r.agent.to_string())
            .arg(r.mode.as_str())
            .arg(r.deadline.as_millis())
            .arg(r.service.to_string())
            .arg(now.as_millis())
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(match reply.first().map(String::as_str) {
            Some("OK") => Confirmed::Ok,
            Some("RESTORED") => Confirmed::Restored,
            Some("MISMATCH") => Confirmed::Mismatch,
            Some("NOMARKER") => Confirmed::NoMarker,
            _ => return Err(reply_err("confirm", &reply)),
        })
    }

    /// Frees the agent's capacity held for the conversation (`mode` None = whatever it is).
    pub async fn release(
        &self,
        tenant: TenantId,
        conversation: ConversationId,
        agent: AgentId,
        mode: Option<Mode>,
    ) -> Result<Released> {
        let reply: Vec<String> = scripts::RELEASE
            .key(self.keys.reservation(tenant, conversation))
            .key(self.keys.agent(tenant, agent))
            .key(self.keys.offer_deadlines(tenant))
            .key(self.keys.pending(tenant))
            .key(self.keys.rebuilt(tenant))
            .arg(conversation.to_string())
            .arg(agent.to_string())
            .arg(mode.map(Mode::as_str).unwrap_or_default())
            .invoke_async(&mut self.conn.clone())
            .await?;
        let at = |i: usize| reply.get(i).cloned().unwrap_or_default();
        Ok(match at(0).as_str() {
            "RELEASED" => Released::Released(Mode::parse(&at(1)).unwrap_or(Mode::Assign)),
            "NONE" => Released::None,
            "OTHER" => Released::Other {
                agent: at(1),
                mode: at(2),
            },
            "NOMARKER" => Released::NoMarker,
            _ => return Err(reply_err("release", &reply)),
        })
    }

    /// Turns the agent's assignment of the conversation back into his offer (an accept whose
    /// Postgres commit failed). False when there was no such assignment.
    pub async fn revert_accept(
        &self,
        tenant: TenantId,
        conversation: ConversationId,
        agent: AgentId,
        deadline: Timestamp,
    ) -> Result<Option<bool>> {
        let reply: Vec<String> = scripts::REVERT_ACCEPT
            .key(self.keys.reservation(tenant, conversation))
            .key(self.keys.agent(tenant, agent))
            .key(self.keys.offer_deadlines(tenant))
            .key(self.keys.pending(tenant))
            .key(self.keys.rebuilt(tenant))
            .arg(conversation.to_string())
            .arg(agent.to_string())
            .arg(deadline.as_millis())
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(match reply.first().map(String::as_str) {
            Some("OK") => Some(true),
            Some("NONE") => Some(false),
            Some("NOMARKER") => None,
            _ => return Err(reply_err("revert_accept", &reply)),
        })
    }

    /// The reservation of a conversation, if any.
    pub async fn held(&self, tenant: TenantId, conversation: ConversationId) -> Result<Option<Held>> {
        let v: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.keys.reservation(tenant, conversation))
            .arg(&["agent", "mode", "service", "deadline", "state"])
            .query_async(&mut self.conn.clone())
            .await?;
        let get = |i: usize| v.get(i).cloned().flatten();
        let Some(agent) = get(0).and_then(|a| a.parse().ok()) else {
            return Ok(None);
        };
        Ok(Some(Held {
            agent,
            mode: get(1).as_deref().and_then(Mode::parse).unwrap_or(Mode::Assign),
            service: get(2).and_then(|s| s.parse().ok()),
            deadline: Timestamp(num(get(3).as_ref())),
            committed: get(4).as_deref() == Some("committed"),
        }))
    }

    /// Claims up to `limit` offers whose deadline is `now` or earlier; each comes back
    /// again after `visibility_ms` unless handled (released) meanwhile.
    pub async fn pop_due_offers(
        &self,
        tenant: TenantId,
        now: Timestamp,
        visibility_ms: u64,
        limit: usize,
    ) -> Result<Vec<ConversationId>> {
        let due: Vec<String> = scripts::POP_DUE
            .key(self.keys.offer_deadlines(tenant))
            .arg(now.as_millis())
            .arg(visibility_ms)
            .arg(limit)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(due.iter().filter_map(|c| c.parse().ok()).collect())
    }

    /// Reservations still unconfirmed since before `older_than`.
    pub async fn stale_pending(
        &self,
        tenant: TenantId,
        older_than: Timestamp,
        limit: usize,
    ) -> Result<Vec<ConversationId>> {
        let v: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys.pending(tenant))
            .arg("-inf")
            .arg(older_than.as_millis())
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(v.iter().filter_map(|c| c.parse().ok()).collect())
    }

    /// Drops a conversation from the pending set (the reconciler found nothing to settle).
    pub async fn forget_pending(&self, tenant: TenantId, conversation: ConversationId) -> Result<()> {
        let _: i64 = redis::cmd("ZREM")
            .arg(self.keys.pending(tenant))
            .arg(conversation.to_string())
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Rotation: the agent goes after the last place of the service.
    pub async fn move_to_back(&self, tenant: TenantId, service: ServiceId, agent: AgentId) -> Result<u64> {
        Ok(scripts::MOVE_TO_BACK
            .key(self.keys.rotation(tenant, service))
            .key(self.keys.agent(tenant, agent))
            .arg(agent.to_string())
            .invoke_async(&mut self.conn.clone())
            .await?)
    }

    /// Takes the routing lease of a service, checking the rebuild marker in the same trip.
    pub async fn acquire_lease(&self, tenant: TenantId, service: ServiceId, ttl_ms: u64) -> Result<Lease> {
        let token: i64 = scripts::LEASE_ACQUIRE
            .key(self.keys.lease(tenant, service))
            .key(self.keys.fence(tenant))
            .key(self.keys.rebuilt(tenant))
            .arg(ttl_ms)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(match token {
            t if t > 0 => Lease::Granted(t as u64),
            0 => Lease::Held,
            _ => Lease::NoMarker,
        })
    }

    /// [`Presence::acquire_lease`] and the service's candidate view in one round trip: when
    /// granted, [`ViewReply::Fresh`] if `version` is still current, else a
    /// [`ViewReply::Full`] read (with `extra` agents' rows).
    pub async fn acquire_lease_viewing(
        &self,
        tenant: TenantId,
        ttl_ms: u64,
        view: &ViewSpec,
        version: Option<&str>,
        extra: &[AgentId],
    ) -> Result<(Lease, ViewReply)> {
        let mut inv = scripts::LEASE_VIEW.prepare_invoke();
        inv.key(self.keys.lease(tenant, view.service))
            .key(self.keys.fence(tenant))
            .key(self.keys.rebuilt(tenant))
            .arg(ttl_ms)
            .arg(view.service.to_string());
        for a in view.args() {
            inv.arg(a);
        }
        inv.arg(version.unwrap_or_default());
        for a in extra {
            inv.arg(a.to_string());
        }
        let reply: Vec<String> = inv.invoke_async(&mut self.conn.clone()).await?;
        let token: i64 = reply
            .first()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| reply_err("acquire_lease", &reply[..reply.len().min(4)]))?;
        Ok(match token {
            t if t > 0 => (Lease::Granted(t as u64), view::parse(view, &reply[1..])?),
            0 => (Lease::Held, ViewReply::None),
            _ => (Lease::NoMarker, ViewReply::None),
        })
    }

    pub async fn release_lease(&self, tenant: TenantId, service: ServiceId, token: u64) -> Result<()> {
        let _: i64 = scripts::LEASE_RELEASE
            .key(self.keys.lease(tenant, service))
            .arg(token)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Claims the periodic re-evaluation of a service for `period_ms`: one replica per
    /// period does it, the others skip.
    pub async fn claim_sweep(&self, tenant: TenantId, service: ServiceId, period_ms: u64) -> Result<bool> {
        let set: Option<String> = redis::cmd("SET")
            .arg(self.keys.sweep_claim(tenant, service))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(period_ms)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(set.is_some())
    }

    pub async fn is_rebuilt(&self, tenant: TenantId) -> Result<bool> {
        let n: i64 = redis::cmd("EXISTS")
            .arg(self.keys.rebuilt(tenant))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(n == 1)
    }

    /// Takes the tenant's rebuild lock for `ttl_ms`; true when taken.
    pub async fn lock_rebuild(&self, tenant: TenantId, token: &str, ttl_ms: u64) -> Result<bool> {
        let n: i64 = scripts::LOCK
            .key(self.keys.rebuild_lock(tenant))
            .arg(token)
            .arg(ttl_ms)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(n == 1)
    }

    pub async fn unlock_rebuild(&self, tenant: TenantId, token: &str) -> Result<()> {
        let _: i64 = scripts::LEASE_RELEASE
            .key(self.keys.rebuild_lock(tenant))
            .arg(token)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Writes the counters of every agent of the tenant (`(agent, max, assigned, offered)`,
    /// from Postgres) and the reservations of its open assignments and offers, then sets the
    /// marker — one script, so no reservation can slip in between.
    pub async fn rebuild(
        &self,
        tenant: TenantId,
        agents: &[(AgentId, u32, u32, u32)],
        held: &[Reservation],
        now: Timestamp,
    ) -> Result<()> {
        let mut inv = scripts::REBUILD.prepare_invoke();
        inv.key(self.keys.rebuilt(tenant))
            .key(self.keys.offer_deadlines(tenant))
            .key(self.keys.pending(tenant));
        inv.arg(agents.len());
        for (agent, max, assigned, offered) in agents {
            inv.key(self.keys.agent(tenant, *agent));
            inv.arg(*max).arg(*assigned).arg(*offered);
        }
        for r in held {
            inv.key(self.keys.reservation(tenant, r.conversation));
            inv.arg(r.conversation.to_string())
                .arg(r.agent.to_string())
                .arg(r.mode.as_str())
                .arg(r.service.to_string())
                .arg(r.deadline.as_millis());
        }
        inv.arg(now.as_millis());
        let _: i64 = inv.invoke_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    /// Converges `agent`'s reservations with `held` (what Postgres says he holds): restores
    /// the missing, frees committed ones Postgres does not know once older than `grace`.
    /// `None` when the tenant's capacity is not rebuilt yet (nothing to converge).
    pub async fn reconcile_agent(
        &self,
        tenant: TenantId,
        agent: AgentId,
        held: &[Reservation],
        now: Timestamp,
        grace_ms: u64,
    ) -> Result<Option<Reconciled>> {
        let mut inv = scripts::RECONCILE.prepare_invoke();
        inv.key(self.keys.agent(tenant, agent))
            .key(self.keys.offer_deadlines(tenant))
            .key(self.keys.pending(tenant))
            .key(self.keys.rebuilt(tenant));
        inv.arg(agent.to_string())
            .arg(now.as_millis())
            .arg(grace_ms)
            .arg(held.len());
        for r in held {
            inv.arg(r.conversation.to_string())
                .arg(r.mode.as_str())
                .arg(r.service.to_string())
                .arg(r.deadline.as_millis());
        }
        let reply: Vec<String> = inv.invoke_async(&mut self.conn.clone()).await?;
        match reply.first().map(String::as_str) {
            Some("OK") => Ok(Some(Reconciled {
                restored: num(reply.get(1)),
                freed: num(reply.get(2)),
            })),
            Some("NOMARKER") => Ok(None),
            _ => Err(PresenceError::Reply(format!("{reply:?}"))),
        }
    }

    /// How many times a script observed an agent of `tenant` over capacity.
    pub async fn over_capacity_count(&self, tenant: TenantId) -> Result<u64> {
        let n: Option<u64> = redis::cmd("GET")
            .arg(self.keys.over_capacity(tenant))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(n.unwrap_or(0))
    }

    /// The benchmark's baseline: EVALSHA of a one-command script.
    pub async fn trivial(&self, key: &str) -> Result<i64> {
        Ok(scripts::TRIVIAL.key(key).invoke_async(&mut self.conn.clone()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_round_trip_through_their_stored_form() {
        let logins = vec![
            ChannelLogin {
                kind: ChannelKind::Whatsapp,
                paused: false,
            },
            ChannelLogin {
                kind: ChannelKind::Webchat,
                paused: true,
            },
        ];
        assert_eq!(parse_logins(&logins_list(&logins)), logins);
        assert_eq!(
            parse_kinds("whatsapp,webchat"),
            vec![ChannelKind::Whatsapp, ChannelKind::Webchat]
        );
        assert!(parse_kinds("").is_empty());
    }

    #[test]
    fn numbers_tolerate_float_replies() {
        assert_eq!(num::<u64>(Some(&"3".to_string())), 3);
        assert_eq!(num::<u64>(Some(&"7.0".to_string())), 7);
        assert_eq!(num::<u64>(None), 0);
    }
}
