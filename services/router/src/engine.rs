//! The IO around `domain::routing::decide`: load a snapshot of one service, decide, apply
//! each decision (see `effects`), and on a conflict reload and decide again, a bounded number
//! of times.
//!
//! Serialisation: routing of one (tenant, service) runs under a lease — an in-process mutex
//! (so the tasks of one replica queue instead of spinning) and a Redis lease with a fencing
//! token (so replicas take turns). The lease is about *quality*, not safety: decisions see
//! each other's effects, so round-robin turns and least-loaded spreading hold, and a
//! conversation queued by one replica is seen by another distributing freed capacity. Safety
//! never depends on it: each reservation script re-checks the marker, the fencing token,
//! the agent's status, channel and capacity, and that nobody holds the conversation; the
//! Postgres transaction locks the conversation row and checks its status; the unique open
//! assignment index is the last wall.
//!
//! Kept candidate views: for a large service (read through the index) the replica keeps
//! the candidate view it last saw, with its version (`atende_capacity::view`: any change to
//! any member moves it, atomically). The lease script checks that version and sends a fresh
//! view when it moved (or after `view_max_age`), in the same round trip; each reservation
//! script answers with the view's update (a delta, or the whole view when something else
//! moved it — a refusal therefore carries what refused it). So a step reads nothing
//! separately, and a decision sees exactly what a read at the lease would have shown; a
//! change between the lease and the reservation is what it always was (seen by the
//! reservation's re-checks; the next decision gets the fresh view). The view is about
//! reads only: no check is skipped because of it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atende_capacity::{AgentRow, Lease, Mode, Reservation, ViewReply, ViewSpec};
use atende_domain::channel::ChannelKind;
use atende_domain::clock::Timestamp;
use atende_domain::ids::{AgentId, ConversationId, ServiceId, TenantId};
use atende_domain::routing::{
    decide, AgentSnapshot, Assignment, Decision, Event, PendingOffer, Policy, ServiceRules, Snapshot, Waiting,
};
use atende_domain::ErrorCode;
use atende_store::{offers, queue, routing};

use crate::error::RouterError;
use crate::state::{Applied, CachedView, Loaded, Member, ServiceInfo};
pub use crate::state::{Router, Settings, TOP_PER_KIND};

/// What one routing call did.
#[derive(Debug, Default)]
pub struct Routed {
    pub applied: Vec<Decision>,
    /// The refusal `decide` returned for the event (claim, accept, supervisor assignment).
    pub rejected: Option<ErrorCode>,
}

impl Routed {
    /// Whether the conversation was assigned to the agent by this call.
    pub fn assigned(&self, conversation: ConversationId, agent: AgentId) -> bool {
        self.applied.iter().any(
            |d| matches!(d, Decision::Assign { conversation: c, agent: a, .. } if *c == conversation && *a == agent),
        )
    }
}

/// The conversation an event is about, if any.
fn subject_of(event: &Event) -> Option<ConversationId> {
    match event {
        Event::Arrived(w) => Some(w.conversation),
        Event::OfferExpired { conversation, .. }
        | Event::OfferAccepted { conversation, .. }
        | Event::Claim { conversation, .. }
        | Event::SupervisorAssign { conversation, .. }
        | Event::Abandoned { conversation } => Some(*conversation),
        Event::Directed { entry, .. } => Some(entry.conversation),
        Event::AgentChanged(_) | Event::Sweep => None,
    }
}

enum Step {
    Done,
    /// Committed; another round may place more backlog.
    More,
    /// The world moved: reload and decide again.
    Again(&'static str),
}

/// The agent an event names, if any.
fn agent_of(event: &Event) -> Option<AgentId> {
    match event {
        Event::AgentChanged(a)
        | Event::OfferExpired { agent: a, .. }
        | Event::OfferAccepted { agent: a, .. }
        | Event::Claim { agent: a, .. }
        | Event::SupervisorAssign { agent: a, .. }
        | Event::Directed { agent: a, .. } => Some(*a),
        Event::Arrived(_) | Event::Abandoned { .. } | Event::Sweep => None,
    }
}

impl Router {
    /// Routes `event` in the service: snapshot, decide, apply, retrying on conflicts.
    pub async fn route(&self, tenant: TenantId, service: ServiceId, event: &Event) -> Result<Routed, RouterError> {
        let local = self.local_lock(tenant, service);
        let _local = local.lock().await;
        let mut event = event.clone();
        let mut routed = Routed::default();
        let mut conflicts = 0;
        // Bounded: each extra round places at least one conversation.
        for _round in 0..10_000 {
            let fence = self.acquire_lease(tenant, service, &event).await?;
            let step = self.route_once(tenant, service, &event, fence, &mut routed).await;
            if let Err(e) = self.presence.release_lease(tenant, service, fence).await {
                tracing::warn!(error = &e as &dyn std::error::Error, "cannot release routing lease");
            }
            match step? {
                Step::Done => return Ok(routed),
                Step::More => event = Event::Sweep,
                Step::Again(reason) => {
                    conflicts += 1;
                    if conflicts >= self.settings.max_attempts {
                        return Err(RouterError::Contention(conflicts));
                    }
                    tracing::debug!(conflicts, reason, %tenant, %service, "routing conflict, deciding again");
                    // Once the event's own conversation was handled (an arrival placed, an
                    // expired offer withdrawn), what is left is backlog: a sweep. Until
                    // then the event itself is decided again — an arrival sorts after older
                    // backlog, so backlog may be committed before the arrival's turn.
                    if subject_of(&event).is_some_and(|c| routed.applied.iter().any(|d| d.conversation() == Some(c))) {
                        event = Event::Sweep;
                    }
                }
            }
        }
        Ok(routed)
    }

    /// One round.
    async fn route_once(
        &self,
        tenant: TenantId,
        service: ServiceId,
        event: &Event,
        fence: u64,
        routed: &mut Routed,
    ) -> Result<Step, RouterError> {
        let t0 = Instant::now();
        let loaded = self.snapshot(tenant, service, event).await?;
        let t1 = Instant::now();
        let now = self.now();
        let snapshot = &loaded.snapshot;
        let decisions = decide(snapshot, event, now);
        let t2 = Instant::now();
        let count = decisions.len();
        let view = if loaded.indexed {
            self.service_info(tenant, service)
                .await
                .ok()
                .map(|i| self.view_spec(service, &i))
        } else {
            None
        };
        let ctx = crate::effects::Ctx {
            tenant,
            service,
            now,
            fence,
            snapshot,
            event,
            members: loaded.members,
            view: view.as_ref(),
        };
        let subject = subject_of(event);
        let backlog = snapshot
            .waiting
            .iter()
            .filter(|w| Some(w.conversation) != subject)
            .count();
        let mut placed = 0;
        let mut step = Step::Done;
        for d in decisions {
            match self.apply(&ctx, &d).await? {
                Applied::Done => {
                    if matches!(d, Decision::Assign { .. } | Decision::Offer { .. })
                        && d.conversation()
                            .is_some_and(|c| Some(c) != subject && snapshot.waiting.iter().any(|w| w.conversation == c))
                    {
                        placed += 1;
                    }
                    routed.applied.push(d)
                }
                Applied::Rejected(code) => routed.rejected = Some(code),
                Applied::Again(reason) => {
                    step = Step::Again(reason);
                    break;
                }
            }
        }
        // Through the index only the best candidates were seen: if they took every queued
        // conversation read, there may be more capacity and more queue — another round.
        if matches!(step, Step::Done) && loaded.indexed && backlog > 0 && placed == backlog {
            step = Step::More;
        }
        tracing::debug!(
            snapshot_us = (t1 - t0).as_micros() as u64,
            decide_us = (t2 - t1).as_micros() as u64,
            apply_us = t2.elapsed().as_micros() as u64,
            decisions = count,
            cached_view = loaded.cached,
            agents = snapshot.agents.len(),
            waiting = snapshot.waiting.len(),
            "routing step"
        );
        Ok(step)
    }

    fn local_lock(&self, tenant: TenantId, service: ServiceId) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.local.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((tenant, service)).or_default().clone()
    }

    /// The service's routing lease (waiting for it), after making sure capacity was
    /// rebuilt — both checked in one Redis trip. For a large service the same trip checks
    /// the candidate view kept in memory and reads it again when it is not current.
    async fn acquire_lease(&self, tenant: TenantId, service: ServiceId, event: &Event) -> Result<u64, RouterError> {
        let ttl = self.settings.lease_ttl.as_millis() as u64;
        let deadline = Instant::now() + self.settings.lease_wait;
        let mut delay = Duration::from_millis(1);
        let info = self.service_info(tenant, service).await?;
        let spec = (info.members.len() > self.settings.full_snapshot_max).then(|| self.view_spec(service, &info));
        loop {
            let lease = match &spec {
                None => self.presence.acquire_lease(tenant, service, ttl).await?,
                Some(spec) => {
                    let (version, mut extra) = self.view_version(tenant, spec);
                    extra.extend(agent_of(event));
                    let (lease, reply) = self
                        .presence
                        .acquire_lease_viewing(tenant, ttl, spec, version.as_deref(), &extra)
                        .await?;
                    if matches!(lease, Lease::Granted(_)) {
                        self.fold_view(tenant, spec, reply);
                    }
                    lease
                }
            };
            match lease {
                Lease::Granted(token) => return Ok(token),
                Lease::NoMarker => {
                    self.ensure_rebuilt(tenant).await?;
                    continue;
                }
                Lease::Held => {}
            }
            if Instant::now() >= deadline {
                return Err(RouterError::Contention(0));
            }
            let jitter = Duration::from_micros(rand::random::<u64>() % 1000);
            tokio::time::sleep(delay + jitter).await;
            delay = (delay * 2).min(Duration::from_millis(20));
        }
    }

    /// What the candidate view of a large service covers.
    pub(crate) fn view_spec(&self, service: ServiceId, info: &ServiceInfo) -> ViewSpec {
        ViewSpec {
            service,
            kinds: if info.rules.accepted_channels.is_empty() {
                ChannelKind::ALL.to_vec()
            } else {
                info.rules.accepted_channels.clone()
            },
            k: TOP_PER_KIND,
            online: true,
            rotation: info.rules.policy.uses_rotation(),
        }
    }

    /// The version of the kept view of the service when it may still be used (same spec, read
    /// whole within `view_max_age`), and the offer holders it last needed.
    pub(crate) fn view_version(&self, tenant: TenantId, spec: &ViewSpec) -> (Option<String>, Vec<AgentId>) {
        let views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        match views.get(&(tenant, spec.service)) {
            Some(c) if c.view.spec == *spec && c.read_at.elapsed() < self.settings.view_max_age => {
                (Some(c.view.version.clone()), c.holders.clone())
            }
            Some(c) => (None, c.holders.clone()),
            None => (None, Vec::new()),
        }
    }

    /// Folds what a script answered about the service's view into the kept one; a reply
    /// that cannot be folded drops it (the next step reads).
    pub(crate) fn fold_view(&self, tenant: TenantId, spec: &ViewSpec, reply: ViewReply) {
        let key = (tenant, spec.service);
        let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        let kept = views.remove(&key);
        let holders = kept.as_ref().map(|c| c.holders.clone()).unwrap_or_default();
        let next = match reply {
            ViewReply::Full(view) => Some(CachedView {
                view,
                read_at: Instant::now(),
                holders,
            }),
            reply => kept.filter(|c| c.view.spec == *spec).and_then(|c| {
                Some(CachedView {
                    view: c.view.update(reply)?,
                    ..c
                })
            }),
        };
        if let Some(next) = next {
            views.insert(key, next);
        }
    }

    /// The candidate rows of a large service with `extra` agents: from the kept view when it
    /// is current and holds them all (the lease just checked it), else read whole.
    async fn view_rows(
        &self,
        tenant: TenantId,
        spec: &ViewSpec,
        holders: Vec<AgentId>,
        extra: &[AgentId],
    ) -> Result<(Vec<(AgentId, AgentRow)>, bool), RouterError> {
        let key = (tenant, spec.service);
        {
            let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = views.get_mut(&key).filter(|c| c.view.spec == *spec) {
                c.holders = holders.clone();
                if let Some(rows) = c.view.rows_for(extra) {
                    return Ok((rows, true));
                }
            }
        }
        let view = self.presence.read_view(tenant, spec, extra).await?;
        let rows = view.rows_for(extra).unwrap_or_default();
        self.views.lock().unwrap_or_else(|e| e.into_inner()).insert(
            key,
            CachedView {
                view,
                read_at: Instant::now(),
                holders,
            },
        );
        Ok((rows, false))
    }

    /// Rules and members of a service, cached for `rules_ttl`.
    pub(crate) async fn service_info(
        &self,
        tenant: TenantId,
        service: ServiceId,
    ) -> Result<Arc<ServiceInfo>, RouterError> {
        let key = (tenant, service);
        if let Some((at, info)) = self.services.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            if at.elapsed() < self.settings.rules_ttl {
                return Ok(info.clone());
            }
        }
        let row = routing::service_rules(&self.pool, tenant.0, service.0)
            .await?
            .ok_or_else(|| RouterError::Refused {
                code: ErrorCode::NotFound,
                detail: format!("no service {service}"),
                field: Some("service_id"),
            })?;
        let policy = Policy::parse(&row.policy).unwrap_or(Policy::Manual);
        let hours = row.business_hours.and_then(|v| match serde_json::from_value(v) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(%service, error = %e, "invalid business hours, treating the service as always open");
                None
            }
        });
        let rules = ServiceRules {
            policy,
            offer_timeout: Duration::from_secs(row.offer_timeout_secs.max(1) as u64),
            accepted_channels: row
                .accepted_channels
                .iter()
                .filter_map(|k| ChannelKind::parse(k))
                .collect(),
            priority: row.priority,
            hours,
        };
        let members: Vec<Member> = atende_store::admin::service_members(&self.pool, service.0)
            .await?
            .into_iter()
            .map(|m| Member {
                agent: AgentId(m.agent_id),
                max: m.max_concurrent.max(0) as u32,
                rotation_seed: m.rotation_order.max(0) as u64,
            })
            .collect();
        let by_agent = members.iter().enumerate().map(|(i, m)| (m.agent, i)).collect();
        let info = Arc::new(ServiceInfo {
            rules,
            members,
            by_agent,
        });
        self.services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (Instant::now(), info.clone()));
        Ok(info)
    }

    /// Everything `decide` needs about the service now: rules and members (cached), live
    /// agent state (one Redis script), the head of the queue and the pending offers
    /// (Postgres).
    ///
    /// Agents: a small service is read whole. A large one is read through the candidate
    /// index — the best [`TOP_PER_KIND`] eligible agents per channel kind in the policy's
    /// order, one online agent per kind, the event's agent and the holders of pending
    /// offers — so a decision costs the same at 100 and at 10,000 agents, and `decide`
    /// picks exactly whom it would pick among everyone (the index holds the same order).
    ///
    /// Queue: only its head. Within one `decide` call agents' loads only grow, except by
    /// withdrawn offers, so no more than the capacity not taken by assignments of the
    /// Available agents read can be placed — that many entries per channel kind give the
    /// same decisions as the whole backlog, and a long backlog costs nothing while everyone
    /// is busy. The event's own conversation is always included.
    pub(crate) async fn snapshot(
        &self,
        tenant: TenantId,
        service: ServiceId,
        event: &Event,
    ) -> Result<Loaded, RouterError> {
        let info = self.service_info(tenant, service).await?;
        let indexed = info.members.len() > self.settings.full_snapshot_max;
        let offers = offers::offers_of_service(&self.pool, tenant.0, service.0).await?;
        let mut cached = false;
        let live: Vec<(&Member, AgentRow)> = if indexed {
            let holders: Vec<AgentId> = offers.iter().map(|o| AgentId(o.agent_id)).collect();
            let mut extra = holders.clone();
            extra.extend(agent_of(event));
            let spec = self.view_spec(service, &info);
            let (rows, from_view) = self.view_rows(tenant, &spec, holders, &extra).await?;
            cached = from_view;
            rows.into_iter()
                .filter_map(|(id, row)| Some((&info.members[*info.by_agent.get(&id)?], row)))
                .collect()
        } else {
            let members: Vec<(AgentId, u64)> = info.members.iter().map(|m| (m.agent, m.rotation_seed)).collect();
            info.members
                .iter()
                .zip(self.presence.load_agents(tenant, service, &members).await?)
                .collect()
        };
        let free: u64 = live
            .iter()
            .filter(|(_, r)| r.status == atende_domain::presence::AgentStatus::Available && !r.kinds.is_empty())
            .map(|(m, r)| m.max.saturating_sub(r.assigned) as u64)
            .sum();
        let skip_flagged = info.rules.policy == Policy::RoundRobin;
        let queued = queue::queued(
            &self.pool,
            tenant.0,
            service.0,
            free as i64,
            skip_flagged,
            subject_of(event).map(|c| c.0),
        )
        .await?;
        let agents = live
            .into_iter()
            .map(|(m, r)| AgentSnapshot {
                id: m.agent,
                status: r.status,
                channels: r.kinds,
                max_concurrent: m.max,
                assigned: r.assigned,
                offered: r.offered,
                rotation: r.rotation,
                idle_since: r.idle_since,
            })
            .collect();
        let mut snap = Snapshot::new(service, info.rules.clone(), agents);
        snap.waiting = queued
            .into_iter()
            .filter_map(|q| {
                Some(Waiting {
                    conversation: ConversationId(q.conversation_id),
                    channel: ChannelKind::parse(&q.channel_kind)?,
                    queued_at: Timestamp(atende_store::to_millis(q.queued_at)),
                    arrived_with_nobody_online: q.nobody_online,
                    priority: q.priority,
                })
            })
            .collect();
        snap.offers = offers
            .into_iter()
            .filter_map(|o| {
                Some(PendingOffer {
                    conversation: ConversationId(o.conversation_id),
                    agent: AgentId(o.agent_id),
                    channel: ChannelKind::parse(&o.channel_kind)?,
                    offered_at: Timestamp(atende_store::to_millis(o.offered_at)),
                    expires_at: Timestamp(atende_store::to_millis(o.expires_at)),
                    queued_at: Timestamp(atende_store::to_millis(o.queued_at)),
                    priority: o.priority,
                })
            })
            .collect();
        // A late claim learns the conversation is taken (rather than "not waiting").
        let named = match event {
            Event::Claim { conversation, .. } | Event::SupervisorAssign { conversation, .. } => Some(*conversation),
            Event::Directed { entry, .. } => Some(entry.conversation),
            _ => None,
        };
        if let Some(conversation) = &named {
            if let Some(agent) = routing::open_assignment_agent(&self.pool, conversation.0).await? {
                snap.assigned.push(Assignment {
                    conversation: *conversation,
                    agent: AgentId(agent),
                });
            }
        }
        // A directed conversation is in no queue: the snapshot carries it for this decision
        // (and for the effects, which read its channel from the snapshot).
        if let Event::Directed { entry, .. } = event {
            let known = snap.waiting.iter().any(|w| w.conversation == entry.conversation)
                || snap.assigned.iter().any(|a| a.conversation == entry.conversation);
            if !known {
                snap.waiting.push(entry.clone());
            }
        }
        Ok(Loaded {
            snapshot: snap,
            indexed,
            cached,
            members: info.members.len(),
        })
    }

    /// Rebuilds the tenant's capacity from Postgres unless the marker says it is there.
    /// One replica rebuilds (a Redis lock); the others wait for the marker.
    pub async fn ensure_rebuilt(&self, tenant: TenantId) -> Result<(), RouterError> {
        if self.presence.is_rebuilt(tenant).await? {
            return Ok(());
        }
        let token = uuid::Uuid::new_v4().to_string();
        let deadline = Instant::now() + self.settings.lease_wait;
        loop {
            if self.presence.lock_rebuild(tenant, &token, 30_000).await? {
                let res = if self.presence.is_rebuilt(tenant).await? {
                    Ok(())
                } else {
                    self.rebuild(tenant).await
                };
                if let Err(e) = self.presence.unlock_rebuild(tenant, &token).await {
                    tracing::warn!(error = &e as &dyn std::error::Error, "cannot release rebuild lock");
                }
                return res;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            if self.presence.is_rebuilt(tenant).await? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(RouterError::refused(
                    ErrorCode::Unavailable,
                    "capacity rebuild in progress",
                ));
            }
        }
    }

    async fn rebuild(&self, tenant: TenantId) -> Result<(), RouterError> {
        let agents = routing::tenant_agent_capacity(&self.pool, tenant.0).await?;
        let assignments = routing::open_assignments(&self.pool, tenant.0).await?;
        let offers = offers::offers_of_tenant(&self.pool, tenant.0).await?;
        let mut load: HashMap<uuid::Uuid, (u32, u32)> = HashMap::new();
        let mut held = Vec::with_capacity(assignments.len() + offers.len());
        for a in &assignments {
            load.entry(a.agent_id).or_default().0 += 1;
            held.push(Reservation {
                conversation: ConversationId(a.conversation_id),
                agent: AgentId(a.agent_id),
                service: ServiceId(uuid::Uuid::nil()),
                mode: Mode::Assign,
                deadline: Timestamp::EPOCH,
            });
        }
        for o in &offers {
            load.entry(o.agent_id).or_default().1 += 1;
            held.push(Reservation {
                conversation: ConversationId(o.conversation_id),
                agent: AgentId(o.agent_id),
                service: ServiceId(o.service_id),
                mode: Mode::Offer,
                deadline: Timestamp(atende_store::to_millis(o.expires_at)),
            });
        }
        let counters: Vec<(AgentId, u32, u32, u32)> = agents
            .iter()
            .map(|(id, max)| {
                let (assigned, offered) = load.get(id).copied().unwrap_or_default();
                (AgentId(*id), (*max).max(0) as u32, assigned, offered)
            })
            .collect();
        self.presence.rebuild(tenant, &counters, &held, self.now()).await?;
        tracing::info!(
            %tenant,
            agents = counters.len(),
            assignments = assignments.len(),
            offers = offers.len(),
            "capacity rebuilt from postgres"
        );
        Ok(())
    }
}
