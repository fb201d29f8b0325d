//! Applying one decision: Redis first where capacity is taken (the reservation script is the
//! capacity gate), then one Postgres transaction that locks the conversation, checks its
//! status, writes the durable facts, the decision log and the outbox event, then Redis
//! again to confirm. Where capacity is given back, Postgres first and Redis after: a crash
//! in between leaves capacity held (under-use, healed by the reconciler), never over-use.

use std::time::Instant;

use atende_capacity::{Check, Confirmed, Mode, Released, Reservation, Reserved, ViewSpec};
use atende_domain::channel::ChannelKind;
use atende_domain::clock::Timestamp;
use atende_domain::conversation::Status;
use atende_domain::ids::{AgentId, ConversationId, ServiceId, TenantId};
use atende_domain::routing::{Decision, Event, Explanation, Rule, Snapshot, Waiting};
use atende_domain::ErrorCode;
use atende_proto::v1 as pb;
use atende_store::{conversations, offers, queue, routing};
use serde_json::Value;

use crate::error::RouterError;
use crate::state::{Applied, Router};
use crate::{events, explain};

pub(crate) struct Ctx<'a> {
    pub tenant: TenantId,
    pub service: ServiceId,
    pub now: Timestamp,
    pub fence: u64,
    pub snapshot: &'a Snapshot,
    pub event: &'a Event,
    /// Members of the service (the snapshot may hold only the best candidates of them).
    pub members: usize,
    /// The candidate view kept for a large service: reservations answer with its update.
    pub view: Option<&'a ViewSpec>,
}

impl Ctx<'_> {
    fn entry(&self, c: ConversationId) -> Option<Waiting> {
        if let Some(w) = self.snapshot.waiting.iter().find(|w| w.conversation == c) {
            return Some(w.clone());
        }
        if let Some(o) = self.snapshot.offers.iter().find(|o| o.conversation == c) {
            return Some(Waiting {
                conversation: c,
                channel: o.channel,
                queued_at: o.queued_at,
                arrived_with_nobody_online: false,
                priority: o.priority,
            });
        }
        match self.event {
            Event::Arrived(w) if w.conversation == c => Some(w.clone()),
            _ => None,
        }
    }

    fn kind_of(&self, c: ConversationId) -> Option<ChannelKind> {
        self.entry(c).map(|w| w.channel)
    }

    fn max_of(&self, agent: AgentId) -> u32 {
        self.snapshot.agent(agent).map(|a| a.max_concurrent).unwrap_or(0)
    }
}

fn decision_name(d: &Decision) -> &'static str {
    match d {
        Decision::Assign { .. } => "assign",
        Decision::Offer { .. } => "offer",
        Decision::Withdraw { .. } => "withdraw",
        Decision::Queue { .. } => "queue",
        Decision::MissedLead { .. } => "missed_lead",
        Decision::MoveToBack { .. } => "move_to_back",
        Decision::Reject { .. } => "reject",
        Decision::Remove { .. } => "remove",
    }
}

impl Router {
    pub(crate) async fn apply(&self, ctx: &Ctx<'_>, d: &Decision) -> Result<Applied, RouterError> {
        match d {
            Decision::Assign {
                conversation,
                agent,
                explanation,
            } => self.apply_assign(ctx, *conversation, *agent, explanation).await,
            Decision::Offer {
                conversation,
                agent,
                expires_at,
                explanation,
                ..
            } => {
                self.apply_offer(ctx, *conversation, *agent, *expires_at, explanation)
                    .await
            }
            Decision::Withdraw {
                conversation,
                agent,
                explanation,
            } => self.apply_withdraw(ctx, *conversation, *agent, explanation).await,
            Decision::Queue {
                conversation,
                entry,
                explanation,
            } => self.apply_queue(ctx, *conversation, entry, explanation).await,
            Decision::MissedLead {
                conversation,
                agent,
                explanation,
            } => self.apply_missed(ctx, *conversation, *agent, explanation).await,
            Decision::MoveToBack { agent } => {
                self.presence.move_to_back(ctx.tenant, ctx.service, *agent).await?;
                Ok(Applied::Done)
            }
            Decision::Reject {
                agent,
                code,
                explanation,
                ..
            } => {
                let mut json = explain::to_json(explanation, ctx.members);
                if let Value::Object(m) = &mut json {
                    m.insert("code".into(), Value::String(code.as_str().into()));
                }
                self.log(&self.pool, ctx, d, Some(*agent), json).await?;
                Ok(Applied::Rejected(*code))
            }
            Decision::Remove { conversation } => {
                let mut conn = self.pool.acquire().await?;
                queue::dequeue(&mut conn, ctx.tenant.0, conversation.0).await?;
                Ok(Applied::Done)
            }
        }
    }

    /// Records `d` in the decision log with `explanation` (its JSON form); the
    /// conversation and the rule come from the decision.
    async fn log<'e>(
        &self,
        db: impl sqlx::PgExecutor<'e>,
        ctx: &Ctx<'_>,
        d: &Decision,
        agent: Option<AgentId>,
        explanation: Value,
    ) -> Result<(), RouterError> {
        let rule = d.explanation().map(|e| explain::rule_name(e.rule)).unwrap_or_default();
        routing::log_decision(
            db,
            &routing::Decision {
                tenant_id: ctx.tenant.0,
                conversation_id: d.conversation().map(|c| c.0),
                service_id: Some(ctx.service.0),
                agent_id: agent.map(|a| a.0),
                decision: decision_name(d),
                rule: &rule,
                explanation,
            },
        )
        .await?;
        Ok(())
    }

    // ----- taking capacity ------------------------------------------------------------

    /// The reservation script under our lease; for a large service it also answers with the
    /// update of the kept candidate view (same round trip), which is folded in here.
    async fn reserve(
        &self,
        ctx: &Ctx<'_>,
        r: &Reservation,
        check: Check,
        kind: ChannelKind,
    ) -> Result<Reserved, RouterError> {
        let max = ctx.max_of(r.agent);
        let Some(spec) = ctx.view else {
            return Ok(self
                .presence
                .reserve(ctx.tenant, r, check, kind, max, ctx.now, Some(ctx.fence))
                .await?);
        };
        let (version, extra) = self.view_version(ctx.tenant, spec);
        let (reserved, reply) = self
            .presence
            .reserve_viewing(
                ctx.tenant,
                r,
                check,
                kind,
                max,
                ctx.now,
                Some(ctx.fence),
                spec,
                version.as_deref(),
                &extra,
            )
            .await?;
        self.fold_view(ctx.tenant, spec, reply);
        Ok(reserved)
    }

    async fn apply_assign(
        &self,
        ctx: &Ctx<'_>,
        conversation: ConversationId,
        agent: AgentId,
        explanation: &Explanation,
    ) -> Result<Applied, RouterError> {
        let Some(kind) = ctx.kind_of(conversation) else {
            return Ok(Applied::Again("conversation left the snapshot"));
        };
        let check = if matches!(explanation.rule, Rule::SupervisorChoice | Rule::Directed) {
            Check::Supervisor
        } else {
            Check::Routing
        };
        let r = Reservation {
            conversation,
            agent,
            service: ctx.service,
            mode: Mode::Assign,
            deadline: Timestamp::EPOCH,
        };
        let reserved = self.reserve(ctx, &r, check, kind).await?;
        if let Some(again) = refused(&reserved) {
            return Ok(Applied::Again(again));
        }
        let started = Instant::now();
        let d = Decision::Assign {
            conversation,
            agent,
            explanation: explanation.clone(),
        };
        let committed = self
            .commit_assign(ctx, conversation, agent, &d, explanation, started)
            .await;
        if !matches!(committed, Ok(true)) {
            // Give the capacity back the way it was taken; a reservation that already existed
            // (an earlier attempt) is left to the reconciler, which knows the Postgres truth.
            match reserved {
                Reserved::New => {
                    self.release_redis(ctx.tenant, conversation, agent, Some(Mode::Assign))
                        .await?;
                }
                Reserved::Accepted => {
                    let deadline = ctx
                        .snapshot
                        .offers
                        .iter()
                        .find(|o| o.conversation == conversation)
                        .map(|o| o.expires_at)
                        .unwrap_or(ctx.now);
                    self.presence
                        .revert_accept(ctx.tenant, conversation, agent, deadline)
                        .await?;
                }
                _ => {}
            }
            committed?;
            return Ok(Applied::Again("conversation not assignable in postgres"));
        }
        self.confirm(ctx.tenant, &r).await?;
        tracing::info!(tenant = %ctx.tenant, conversation = %conversation, agent = %agent, rule = ?explanation.rule, "conversation assigned");
        Ok(Applied::Done)
    }

    async fn commit_assign(
        &self,
        ctx: &Ctx<'_>,
        conversation: ConversationId,
        agent: AgentId,
        d: &Decision,
        explanation: &Explanation,
        started: Instant,
    ) -> Result<bool, RouterError> {
        let mut tx = self.pool.begin().await?;
        let Some(c) = conversations::lock_conversation(&mut tx, ctx.tenant.0, conversation.0).await? else {
            return Ok(false);
        };
        let status = Status::parse(&c.status);
        let assignable = c.service_id == Some(ctx.service.0)
            && match status {
                Some(Status::Queued) => true,
                Some(Status::Offered) => c.agent_id == Some(agent.0),
                _ => false,
            };
        if !assignable
            || !routing::open_assignment(&mut tx, ctx.tenant.0, conversation.0, agent.0, Some(ctx.service.0)).await?
        {
            return Ok(false);
        }
        conversations::set_status(&mut tx, conversation.0, Status::Assigned.as_str(), Some(agent.0), None).await?;
        offers::delete_offer(&mut tx, ctx.tenant.0, conversation.0).await?;
        queue::dequeue(&mut tx, ctx.tenant.0, conversation.0).await?;
        self.log(
            &mut *tx,
            ctx,
            d,
            Some(agent),
            explain::to_json(explanation, ctx.members),
        )
        .await?;
        let kind = pb::domain_event::Kind::ConversationAssigned(pb::ConversationAssigned {
            conversation: Some(events::conversation(&c, Status::Assigned.as_str(), Some(agent))),
            agent_id: agent.to_string(),
        });
        events::publish(
            &mut tx,
            &self.subjects,
            ctx.tenant,
            "conversation.assigned",
            kind,
            ctx.now,
        )
        .await?;
        if self.too_late(started) {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn apply_offer(
        &self,
        ctx: &Ctx<'_>,
        conversation: ConversationId,
        agent: AgentId,
        expires_at: Timestamp,
        explanation: &Explanation,
    ) -> Result<Applied, RouterError> {
        let Some(entry) = ctx.entry(conversation) else {
            return Ok(Applied::Again("conversation left the snapshot"));
        };
        let r = Reservation {
            conversation,
            agent,
            service: ctx.service,
            mode: Mode::Offer,
            deadline: expires_at,
        };
        let reserved = self.reserve(ctx, &r, Check::Routing, entry.channel).await?;
        if let Some(again) = refused(&reserved) {
            return Ok(Applied::Again(again));
        }
        let started = Instant::now();
        let committed = self
            .commit_offer(ctx, &entry, agent, expires_at, explanation, started)
            .await;
        if !matches!(committed, Ok(true)) {
            if reserved == Reserved::New {
                self.release_redis(ctx.tenant, conversation, agent, Some(Mode::Offer))
                    .await?;
            }
            committed?;
            return Ok(Applied::Again("conversation not offerable in postgres"));
        }
        self.confirm(ctx.tenant, &r).await?;
        tracing::info!(tenant = %ctx.tenant, conversation = %conversation, agent = %agent, "conversation offered");
        Ok(Applied::Done)
    }

    async fn commit_offer(
        &self,
        ctx: &Ctx<'_>,
        entry: &Waiting,
        agent: AgentId,
        expires_at: Timestamp,
        explanation: &Explanation,
        started: Instant,
    ) -> Result<bool, RouterError> {
        let conversation = entry.conversation;
        let mut tx = self.pool.begin().await?;
        let Some(c) = conversations::lock_conversation(&mut tx, ctx.tenant.0, conversation.0).await? else {
            return Ok(false);
        };
        if c.service_id != Some(ctx.service.0) || Status::parse(&c.status) != Some(Status::Queued) {
            return Ok(false);
        }
        conversations::set_status(&mut tx, conversation.0, Status::Offered.as_str(), Some(agent.0), None).await?;
        let row = offers::Offer {
            conversation_id: conversation.0,
            tenant_id: ctx.tenant.0,
            service_id: ctx.service.0,
            agent_id: agent.0,
            channel_kind: entry.channel.as_str().to_string(),
            offered_at: atende_store::from_millis(ctx.now.as_millis()),
            expires_at: atende_store::from_millis(expires_at.as_millis()),
            queued_at: atende_store::from_millis(entry.queued_at.as_millis()),
            priority: entry.priority,
        };
        if !offers::insert_offer(&mut tx, &row).await? {
            return Ok(false);
        }
        queue::dequeue(&mut tx, ctx.tenant.0, conversation.0).await?;
        let d = Decision::Offer {
            conversation,
            agent,
            channel: entry.channel,
            queued_at: entry.queued_at,
            priority: entry.priority,
            expires_at,
            explanation: explanation.clone(),
        };
        self.log(
            &mut *tx,
            ctx,
            &d,
            Some(agent),
            explain::to_json(explanation, ctx.members),
        )
        .await?;
        let kind = pb::domain_event::Kind::ConversationOffered(pb::ConversationOffered {
            conversation: Some(events::conversation(&c, Status::Offered.as_str(), Some(agent))),
            agent_id: agent.to_string(),
            expires_at_ms: expires_at.as_millis(),
        });
        events::publish(
            &mut tx,
            &self.subjects,
            ctx.tenant,
            "conversation.offered",
            kind,
            ctx.now,
        )
        .await?;
        if self.too_late(started) {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    // ----- giving capacity back ---------------------------------------------------------

    async fn apply_withdraw(
        &self,
        ctx: &Ctx<'_>,
        conversation: ConversationId,
        agent: AgentId,
        explanation: &Explanation,
    ) -> Result<Applied, RouterError> {
        let mut tx = self.pool.begin().await?;
        let Some(c) = conversations::lock_conversation(&mut tx, ctx.tenant.0, conversation.0).await? else {
            return Ok(Applied::Again("conversation vanished"));
        };
        match offers::delete_offer(&mut tx, ctx.tenant.0, conversation.0).await? {
            Some(o) if o.agent_id == agent.0 => {
                if Status::parse(&c.status) == Some(Status::Offered) {
                    conversations::set_status(&mut tx, conversation.0, Status::Queued.as_str(), None, None).await?;
                    queue::enqueue(&mut tx, ctx.tenant.0, ctx.service.0, conversation.0, o.priority, false).await?;
                }
            }
            // Accepted, withdrawn or closed meanwhile: the snapshot was stale.
            _ => return Ok(Applied::Again("offer no longer pending")),
        }
        let d = Decision::Withdraw {
            conversation,
            agent,
            explanation: explanation.clone(),
        };
        self.log(
            &mut *tx,
            ctx,
            &d,
            Some(agent),
            explain::to_json(explanation, ctx.members),
        )
        .await?;
        let kind = pb::domain_event::Kind::OfferWithdrawn(pb::OfferWithdrawn {
            conversation_id: conversation.to_string(),
            agent_id: agent.to_string(),
            reason: explain::rule_name(explanation.rule),
        });
        events::publish(&mut tx, &self.subjects, ctx.tenant, "offer.withdrawn", kind, ctx.now).await?;
        tx.commit().await?;
        self.release_redis(ctx.tenant, conversation, agent, Some(Mode::Offer))
            .await?;
        tracing::info!(tenant = %ctx.tenant, conversation = %conversation, agent = %agent, rule = ?explanation.rule, "offer withdrawn");
        Ok(Applied::Done)
    }

    async fn apply_queue(
        &self,
        ctx: &Ctx<'_>,
        conversation: ConversationId,
        entry: &Waiting,
        explanation: &Explanation,
    ) -> Result<Applied, RouterError> {
        let mut tx = self.pool.begin().await?;
        let Some(c) = conversations::lock_conversation(&mut tx, ctx.tenant.0, conversation.0).await? else {
            return Ok(Applied::Done);
        };
        if c.service_id != Some(ctx.service.0) || Status::parse(&c.status) != Some(Status::Queued) {
            return Ok(Applied::Done); // no longer waiting here: nothing to record
        }
        queue::enqueue(
            &mut tx,
            ctx.tenant.0,
            ctx.service.0,
            conversation.0,
            entry.priority,
            entry.arrived_with_nobody_online,
        )
        .await?;
        let d = Decision::Queue {
            conversation,
            entry: entry.clone(),
            explanation: explanation.clone(),
        };
        self.log(&mut *tx, ctx, &d, None, explain::to_json(explanation, ctx.members))
            .await?;
        tx.commit().await?;
        tracing::debug!(tenant = %ctx.tenant, conversation = %conversation, rule = ?explanation.rule, "conversation queued");
        Ok(Applied::Done)
    }

    async fn apply_missed(
        &self,
        ctx: &Ctx<'_>,
        conversation: ConversationId,
        agent: Option<AgentId>,
        explanation: &Explanation,
    ) -> Result<Applied, RouterError> {
        let mut tx = self.pool.begin().await?;
        let Some(c) = conversations::lock_conversation(&mut tx, ctx.tenant.0, conversation.0).await? else {
            return Ok(Applied::Done);
        };
        if !Status::parse(&c.status).is_some_and(|s| s.can_move_to(Status::Missed))
            || c.service_id != Some(ctx.service.0)
        {
            return Ok(Applied::Again("conversation no longer missable"));
        }
        let offer = offers::delete_offer(&mut tx, ctx.tenant.0, conversation.0).await?;
        queue::dequeue(&mut tx, ctx.tenant.0, conversation.0).await?;
        conversations::set_status(
            &mut tx,
            conversation.0,
            Status::Missed.as_str(),
            agent.map(|a| a.0),
            Some("missed"),
        )
        .await?;
        // The pending-message check tells an agent about it later (seed 003).
        let due = atende_domain::routing::missed_lead_notice_due(ctx.now, agent);
        atende_store::missed::record(
            &mut tx,
            ctx.tenant.0,
            conversation.0,
            ctx.service.0,
            agent.map(|a| a.0),
            atende_store::from_millis(ctx.now.as_millis()),
            atende_store::from_millis(due.as_millis()),
        )
        .await?;
        let d = Decision::MissedLead {
            conversation,
            agent,
            explanation: explanation.clone(),
        };
        self.log(&mut *tx, ctx, &d, agent, explain::to_json(explanation, ctx.members))
            .await?;
        let kind = pb::domain_event::Kind::ConversationClosed(pb::ConversationClosed {
            conversation: Some(events::conversation(&c, Status::Missed.as_str(), agent)),
            reason: "missed".into(),
        });
        events::publish(
            &mut tx,
            &self.subjects,
            ctx.tenant,
            "conversation.closed",
            kind,
            ctx.now,
        )
        .await?;
        tx.commit().await?;
        if let Some(o) = offer {
            self.release_redis(ctx.tenant, conversation, AgentId(o.agent_id), Some(Mode::Offer))
                .await?;
        }
        tracing::info!(tenant = %ctx.tenant, conversation = %conversation, rule = ?explanation.rule, "missed lead");
        Ok(Applied::Done)
    }

    // ----- Redis helpers ------------------------------------------------------------------

    /// A step that ran past half the pending grace abandons its commit, so the reconciler
    /// (which waits the whole grace) never settles a reservation still being committed.
    fn too_late(&self, started: Instant) -> bool {
        let late = started.elapsed() > self.settings.pending_grace / 2;
        if late {
            tracing::warn!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "routing step too slow, not committing"
            );
        }
        late
    }

    pub(crate) async fn confirm(&self, tenant: TenantId, r: &Reservation) -> Result<(), RouterError> {
        for _ in 0..3 {
            match self.presence.confirm(tenant, r, self.now()).await? {
                Confirmed::Ok => return Ok(()),
                Confirmed::Restored => {
                    tracing::info!(%tenant, conversation = %r.conversation, "reservation restored after a redis wipe");
                    return Ok(());
                }
                Confirmed::Mismatch => {
                    tracing::warn!(%tenant, conversation = %r.conversation, "reservation changed hands before confirm");
                    return Ok(());
                }
                Confirmed::NoMarker => self.ensure_rebuilt(tenant).await?,
            }
        }
        Err(RouterError::refused(
            ErrorCode::Unavailable,
            "redis kept losing its state",
        ))
    }

    /// Releases a reservation in Redis, rebuilding first if Redis lost its state.
    pub(crate) async fn release_redis(
        &self,
        tenant: TenantId,
        conversation: ConversationId,
        agent: AgentId,
        mode: Option<Mode>,
    ) -> Result<Released, RouterError> {
        for _ in 0..3 {
            match self.presence.release(tenant, conversation, agent, mode).await? {
                Released::NoMarker => self.ensure_rebuilt(tenant).await?,
                other => return Ok(other),
            }
        }
        Err(RouterError::refused(
            ErrorCode::Unavailable,
            "redis kept losing its state",
        ))
    }
}

/// Why a reservation attempt means "decide again", if it does.
fn refused(r: &Reserved) -> Option<&'static str> {
    match r {
        Reserved::New | Reserved::Again | Reserved::Accepted => None,
        Reserved::NoMarker => Some("capacity being rebuilt"),
        Reserved::Fenced => Some("routing lease lost"),
        Reserved::Taken { .. } => Some("conversation held by another reservation"),
        Reserved::Unavailable(_) => Some("agent no longer available"),
        Reserved::NotLoggedIn => Some("agent left the channel"),
        Reserved::Full(_) => Some("agent at capacity"),
    }
}
