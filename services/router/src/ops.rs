//! The router's operations, as the gRPC service and the route consumer call them.

use atende_capacity::{AgentLive, Membership};
use atende_domain::channel::ChannelKind;
use atende_domain::clock::Timestamp;
use atende_domain::conversation::Status;
use atende_domain::ids::{AgentId, ConversationId, ServiceId, TenantId};
use atende_domain::presence::{check_logout, derive_status, AgentStatus, ChannelLogin};
use atende_domain::routing::{Event, Policy, Waiting};
use atende_domain::ErrorCode;
use atende_proto::v1 as pb;
use atende_store::{admin, conversations, offers, queue, routing};

use crate::engine::{Routed, Router};
use crate::error::RouterError;
use crate::events;

/// Queue statistics of a service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub waiting: u32,
    pub oldest_wait_ms: i64,
    pub offered: u32,
    pub by_status: [u32; 4],
}

impl Router {
    /// Records the agent's presence and, since his status or channels may have changed,
    /// re-routes every service he works in (distributing backlog, withdrawing his offers).
    pub async fn set_presence(
        &self,
        tenant: TenantId,
        agent: AgentId,
        connected: bool,
        logins: Vec<ChannelLogin>,
        logout: bool,
    ) -> Result<(AgentLive, u32), RouterError> {
        let row = admin::get_agent(&self.pool, tenant.0, agent.0)
            .await?
            .ok_or_else(|| RouterError::Refused {
                code: ErrorCode::NotFound,
                detail: format!("no agent {agent}"),
                field: Some("agent_id"),
            })?;
        let max = row.max_concurrent.max(0) as u32;
        let (status, logins) = if logout {
            let open = routing::open_assignment_count(&self.pool, agent.0).await?;
            check_logout(open.max(0) as u32)
                .map_err(|code| RouterError::refused(code, format!("{open} conversations in progress")))?;
            // Out of the platform: no channel, no connection.
            (AgentStatus::Offline, Vec::new())
        } else if !connected && logins.is_empty() {
            // A dropped connection reports no channels: keep the recorded logins, so the
            // agent is Inactive (not logged out) and a reconnect can restore them.
            let kept = self
                .presence
                .agent(tenant, agent)
                .await
                .map(|a| a.logins)
                .unwrap_or_default();
            (derive_status(false, &kept), kept)
        } else {
            (derive_status(connected, &logins), logins)
        };
        let services: Vec<Membership> = routing::agent_memberships(&self.pool, agent.0)
            .await?
            .into_iter()
            .map(|(service, policy, seed)| Membership {
                service: ServiceId(service),
                policy: Policy::parse(&policy).unwrap_or(Policy::Manual),
                rotation_seed: seed.max(0) as u64,
            })
            .collect();
        let previous = self
            .presence
            .set_presence(
                tenant,
                agent,
                status,
                connected && !logout,
                &logins,
                max,
                &services,
                self.now(),
            )
            .await?;
        tracing::info!(%tenant, %agent, from = %previous, to = %status, "presence");
        self.agent_changed(tenant, agent).await;
        Ok((self.presence.agent(tenant, agent).await?, max))
    }

    /// A page of the tenant's agents (by id, after `after`) with their live presence, and
    /// whether more follow.
    pub async fn presences(
        &self,
        tenant: TenantId,
        after: Option<uuid::Uuid>,
        limit: i64,
    ) -> Result<(Vec<(admin::Agent, AgentLive)>, bool), RouterError> {
        let mut rows = admin::list_agents(&self.pool, tenant.0, after, limit + 1).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let lives =
            futures::future::try_join_all(rows.iter().map(|a| self.presence.agent(tenant, AgentId(a.id)))).await?;
        Ok((rows.into_iter().zip(lives).collect(), more))
    }

    pub async fn presence(&self, tenant: TenantId, agent: AgentId) -> Result<(AgentLive, u32), RouterError> {
        let row = admin::get_agent(&self.pool, tenant.0, agent.0)
            .await?
            .ok_or_else(|| RouterError::Refused {
                code: ErrorCode::NotFound,
                detail: format!("no agent {agent}"),
                field: Some("agent_id"),
            })?;
        Ok((
            self.presence.agent(tenant, agent).await?,
            row.max_concurrent.max(0) as u32,
        ))
    }

    /// The agent's capacity, status or channels changed: route every service he is in.
    /// Failures are logged, not returned: the change itself is recorded, and the periodic
    /// sweep distributes whatever this could not.
    pub async fn agent_changed(&self, tenant: TenantId, agent: AgentId) {
        let services = match admin::agent_service_ids(&self.pool, agent.0).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = &e as &dyn std::error::Error, %agent, "cannot list the agent's services");
                return;
            }
        };
        // Different services, different leases: route them concurrently.
        let event = Event::AgentChanged(agent);
        let results =
            futures::future::join_all(services.iter().map(|s| self.route(tenant, ServiceId(*s), &event))).await;
        for (service, result) in services.iter().zip(results) {
            if let Err(e) = result {
                tracing::warn!(error = &e as &dyn std::error::Error, %agent, %service, "distribution after agent change failed");
            }
        }
    }

    /// A conversation entered a service (a `RouteRequest`). Redelivery is a no-op: the
    /// conversation is no longer queued, or is already in the router's queue.
    pub async fn arrived(&self, req: &pb::RouteRequest) -> Result<(), RouterError> {
        let bad = |field: &'static str| RouterError::Refused {
            code: ErrorCode::InvalidArgument,
            detail: format!("`{field}` must be a UUID"),
            field: Some(field),
        };
        let tenant: TenantId = req.tenant_id.parse().map_err(|_| bad("tenant_id"))?;
        let conversation: ConversationId = req.conversation_id.parse().map_err(|_| bad("conversation_id"))?;
        if !req.release_agent_id.is_empty() {
            let agent: AgentId = req.release_agent_id.parse().map_err(|_| bad("release_agent_id"))?;
            let from: ServiceId = req.release_service_id.parse().map_err(|_| bad("release_service_id"))?;
            self.release_leg(tenant, conversation, agent, from, &req.release_reason)
                .await?;
        }
        if req.service_id.is_empty() && !req.release_agent_id.is_empty() {
            return Ok(()); // a finish: nothing to route
        }
        let service: ServiceId = req.service_id.parse().map_err(|_| bad("service_id"))?;
        let Some(c) = conversations::get_conversation(&self.pool, tenant.0, conversation.0).await? else {
            return Err(RouterError::refused(
                ErrorCode::NotFound,
                format!("no conversation {conversation}"),
            ));
        };
        if c.status != Status::Queued.as_str() || c.service_id != Some(service.0) {
            tracing::debug!(%conversation, status = %c.status, "route request for a conversation no longer queued here");
            return Ok(());
        }
        if queue::queue_entry(&self.pool, conversation.0)
            .await?
            .is_some_and(|(s, _, _)| s == service.0)
        {
            tracing::debug!(%conversation, "route request already queued");
            return Ok(());
        }
        let channel = ChannelKind::parse(&c.channel_kind)
            .or_else(|| events::domain_kind(req.channel_kind))
            .ok_or_else(|| RouterError::refused(ErrorCode::InvalidArgument, "unknown channel kind"))?;
        let queued_at = c
            .queued_at
            .map(|t| Timestamp(atende_store::to_millis(t)))
            .unwrap_or(Timestamp(req.queued_at_ms));
        let entry = Waiting {
            conversation,
            channel,
            queued_at,
            arrived_with_nobody_online: false,
            priority: req.priority,
        };
        self.route(tenant, service, &Event::Arrived(entry)).await?;
        Ok(())
    }

    async fn service_of(
        &self,
        tenant: TenantId,
        conversation: ConversationId,
    ) -> Result<(conversations::Conversation, ServiceId), RouterError> {
        let c = conversations::get_conversation(&self.pool, tenant.0, conversation.0)
            .await?
            .ok_or_else(|| RouterError::Refused {
                code: ErrorCode::NotFound,
                detail: format!("no conversation {conversation}"),
                field: Some("conversation_id"),
            })?;
        let service = c.service_id.map(ServiceId).ok_or_else(|| {
            RouterError::refused(ErrorCode::ConversationNotWaiting, "the conversation is in no service")
        })?;
        Ok((c, service))
    }

    fn outcome(routed: Routed, conversation: ConversationId, agent: AgentId) -> Result<(), RouterError> {
        if routed.assigned(conversation, agent) {
            return Ok(());
        }
        Err(RouterError::refused(
            routed.rejected.unwrap_or(ErrorCode::ConversationNotWaiting),
            "",
        ))
    }

    /// Accept (explicit, or the agent's first reply): the offer becomes an assignment.
    pub async fn accept(
        &self,
        tenant: TenantId,
        conversation: ConversationId,
        agent: AgentId,
    ) -> Result<(), RouterError> {
        let (c, service) = self.service_of(tenant, conversation).await?;
        let status = Status::parse(&c.status).unwrap_or(Status::Queued);
        if let Some(done) = atende_domain::routing::accept_of_assigned(status, c.agent_id.map(AgentId), agent) {
            return done.map_err(|code| RouterError::refused(code, ""));
        }
        let routed = self
            .route(tenant, service, &Event::OfferAccepted { conversation, agent })
            .await?;
        Self::outcome(routed, conversation, agent)
    }

    /// An agent takes a waiting conversation; the first claim wins.
    pub async fn claim(
        &self,
        tenant: TenantId,
        conversation: ConversationId,
        agent: AgentId,
    ) -> Result<(), RouterError> {
        let (_, service) = self.service_of(tenant, conversation).await?;
        let routed = self
            .route(tenant, service, &Event::Claim { conversation, agent })
            .await?;
        Self::outcome(routed, conversation, agent)
    }

    /// A supervisor gives a waiting conversation to a chosen agent.
    pub async fn supervisor_assign(
        &self,
        tenant: TenantId,
        conversation: ConversationId,
        agent: AgentId,
        supervisor: Option<AgentId>,
    ) -> Result<(), RouterError> {
        if let Some(s) = supervisor {
            let is_supervisor = admin::get_agent(&self.pool, tenant.0, s.0)
                .await?
                .is_some_and(|a| a.supervises());
            if !is_supervisor {
                return Err(RouterError::Refused {
                    code: ErrorCode::PermissionDenied,
                    detail: "not a supervisor".into(),
                    field: Some("supervisor_id"),
                });
            }
        }
        let (_, service) = self.service_of(tenant, conversation).await?;
        let routed = self
            .route(tenant, service, &Event::SupervisorAssign { conversation, agent })
            .await?;
        Self::outcome(routed, conversation, agent)
    }

    /// A conversation that never queued (an agent starting it) goes to `agent` or nowhere.
    pub async fn directed(
        &self,
        tenant: TenantId,
        conversation: ConversationId,
        agent: AgentId,
    ) -> Result<(), RouterError> {
        let (c, service) = self.service_of(tenant, conversation).await?;
        if c.status == Status::Assigned.as_str() && c.agent_id == Some(agent.0) {
            return Ok(()); // a retried call
        }
        if c.status != Status::Queued.as_str() {
            return Err(RouterError::refused(ErrorCode::ConversationNotWaiting, c.status));
        }
        let channel = ChannelKind::parse(&c.channel_kind)
            .ok_or_else(|| RouterError::refused(ErrorCode::InvalidArgument, "unknown channel kind"))?;
        let entry = Waiting {
            conversation,
            channel,
            queued_at: c
                .queued_at
                .map(|t| Timestamp(atende_store::to_millis(t)))
                .unwrap_or(self.now()),
            arrived_with_nobody_online: false,
            priority: 0,
        };
        let routed = self.route(tenant, service, &Event::Directed { entry, agent }).await?;
        Self::outcome(routed, conversation, agent)
    }

    /// The conversation was finished, transferred out or closed: its assignment (or pending
    /// offer) ends and the agent's capacity is freed, which distributes backlog.
    pub async fn release(
        &self,
        tenant: TenantId,
        conversation: ConversationId,
        reason: &str,
    ) -> Result<(), RouterError> {
        let reason = if reason.is_empty() { "released" } else { reason };
        let mut tx = self.pool.begin().await?;
        // Every statement names the tenant: a caller of one tenant can never free another's
        // agent by naming a conversation id it does not own.
        let assigned = routing::release_assignment(&mut tx, tenant.0, conversation.0, reason).await?;
        let offer = offers::delete_offer(&mut tx, tenant.0, conversation.0).await?;
        queue::dequeue(&mut tx, tenant.0, conversation.0).await?;
        if assigned.is_some() || offer.is_some() {
            let c = conversations::get_conversation(&mut *tx, tenant.0, conversation.0).await?;
            routing::log_decision(
                &mut *tx,
                &routing::Decision {
                    tenant_id: tenant.0,
                    conversation_id: Some(conversation.0),
                    service_id: c.and_then(|c| c.service_id),
                    agent_id: assigned.or(offer.as_ref().map(|o| o.agent_id)),
                    decision: "release",
                    rule: reason,
                    explanation: serde_json::json!({ "reason": reason, "was": if assigned.is_some() { "assigned" } else { "offered" } }),
                },
            )
            .await?;
        }
        tx.commit().await?;
        let mut freed = Vec::new();
        // Postgres said whose it was; Redis may still show it in the other mode (an accept
        // whose confirm was lost), so free whatever that agent holds for it.
        if let Some(a) = assigned {
            self.release_redis(tenant, conversation, AgentId(a), None).await?;
            freed.push(AgentId(a));
        }
        if let Some(o) = offer.as_ref().filter(|o| Some(o.agent_id) != assigned) {
            self.release_redis(tenant, conversation, AgentId(o.agent_id), None)
                .await?;
            freed.push(AgentId(o.agent_id));
        }
        if freed.is_empty() {
            // Nothing in Postgres: a reservation whose commit never happened may remain.
            if let Some(h) = self.presence.held(tenant, conversation).await? {
                self.release_redis(tenant, conversation, h.agent, Some(h.mode)).await?;
                freed.push(h.agent);
            }
        }
        for agent in freed {
            tracing::info!(%tenant, %conversation, %agent, reason, "conversation released");
            self.agent_changed(tenant, agent).await;
        }
        Ok(())
    }

    /// A finish or a transfer ended `agent`'s leg of the conversation in `from` (the session
    /// closed the assignment in Postgres in the same transaction): free what he holds for it
    /// in Redis, only if that is still his hold for `from` — a redelivery after the next leg
    /// was assigned (to him or anyone) must not free the new hold — then distribute the
    /// backlog his freed capacity can take.
    async fn release_leg(
        &self,
        tenant: TenantId,
        conversation: ConversationId,
        agent: AgentId,
        from: ServiceId,
        reason: &str,
    ) -> Result<(), RouterError> {
        let held = self.presence.held(tenant, conversation).await?;
        if let Some(h) = held.filter(|h| h.agent == agent && h.service == Some(from)) {
            self.release_redis(tenant, conversation, agent, Some(h.mode)).await?;
            tracing::info!(%tenant, %conversation, %agent, reason, "leg released");
        }
        self.agent_changed(tenant, agent).await;
        Ok(())
    }

    pub async fn queue_stats(&self, tenant: TenantId, service: ServiceId) -> Result<QueueStats, RouterError> {
        // Every member, not the routing candidates: stats are not the hot path.
        let info = self.service_info(tenant, service).await?;
        let members: Vec<(AgentId, u64)> = info.members.iter().map(|m| (m.agent, m.rotation_seed)).collect();
        let rows = self.presence.load_agents(tenant, service, &members).await?;
        let offered = offers::offers_of_service(&self.pool, tenant.0, service.0).await?.len();
        let (waiting, oldest) = queue::queue_depth(&self.pool, tenant.0, service.0).await?;
        let now = self.now();
        let mut stats = QueueStats {
            waiting: waiting.max(0) as u32,
            oldest_wait_ms: oldest
                .map(|t| now.since(Timestamp(atende_store::to_millis(t))).as_millis() as i64)
                .unwrap_or(0),
            offered: offered as u32,
            ..Default::default()
        };
        for r in &rows {
            let i = AgentStatus::ALL.iter().position(|s| *s == r.status).unwrap_or(3);
            stats.by_status[i] += 1;
        }
        Ok(stats)
    }

    pub async fn explain(
        &self,
        tenant: TenantId,
        conversation: ConversationId,
    ) -> Result<Vec<pb::DecisionRecord>, RouterError> {
        Ok(routing::decisions_for(&self.pool, tenant.0, conversation.0)
            .await?
            .into_iter()
            .map(|d| pb::DecisionRecord {
                at_ms: atende_store::to_millis(d.at),
                decision: d.decision,
                agent_id: d.agent_id.map(|a| a.to_string()).unwrap_or_default(),
                rule: d.rule,
                explanation_json: d.explanation.to_string(),
            })
            .collect())
    }
}
