//! The periodic pass every replica runs: rebuild capacity where Redis lost it, handle due
//! offers (each popped by exactly one replica), settle reservations whose commit never
//! confirmed, and re-evaluate every service with a queue or offers (business hours opening,
//! agents who left with offers pending, capacity a failed distribution left unused).

use std::collections::BTreeSet;

use atende_capacity::{Mode, Reservation, Reserved};
use atende_domain::ids::{AgentId, ConversationId, ServiceId, TenantId};
use atende_domain::routing::Event;
use atende_store::{offers, queue, routing};
use tokio_util::sync::CancellationToken;

use crate::engine::Router;
use crate::error::RouterError;

impl Router {
    /// Runs until `shutdown`.
    pub async fn sweep_loop(&self, shutdown: CancellationToken) {
        let mut tick: u64 = 0;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.settings.sweep_interval) => {}
            }
            if let Err(e) = self.sweep_once(tick).await {
                tracing::warn!(error = &e as &dyn std::error::Error, "routing sweep failed");
            }
            tick += 1;
        }
    }

    pub async fn sweep_once(&self, tick: u64) -> Result<(), RouterError> {
        let active = offers::active_services(&self.pool).await?;
        let mut tenants: BTreeSet<TenantId> = routing::routed_tenants(&self.pool)
            .await?
            .into_iter()
            .map(TenantId)
            .collect();
        tenants.extend(active.iter().map(|(t, _)| TenantId(*t)));
        let reconcile_capacity = self.reconcile_due();
        for tenant in &tenants {
            self.ensure_rebuilt(*tenant).await?;
            self.expire_due(*tenant).await?;
            self.reconcile(*tenant).await?;
            if reconcile_capacity {
                self.reconcile_capacity(*tenant).await?;
            }
        }
        let period = self.settings.service_sweep_period.as_millis() as u64;
        for (tenant, service) in active {
            if !self
                .presence
                .claim_sweep(TenantId(tenant), ServiceId(service), period)
                .await?
            {
                continue; // another replica re-evaluates it in this period
            }
            if let Err(e) = self.route(TenantId(tenant), ServiceId(service), &Event::Sweep).await {
                tracing::warn!(error = &e as &dyn std::error::Error, %service, "service sweep failed");
            }
        }
        self.notify_missed_leads().await?;
        if tick.checked_rem(30) == Some(0) {
            queue::prune_queue(&self.pool).await?;
        }
        Ok(())
    }

    /// The pending-message check (seed 003): each missed lead whose notice is due goes, as a
    /// `missed_lead.notice` for the agent — a message, not the chat — to the first Available
    /// agent in the service's rotation; with nobody Available it waits for the next run. Rows
    /// are locked with SKIP LOCKED and marked in the transaction that queues the event, so
    /// several replicas tell each lead once.
    async fn notify_missed_leads(&self) -> Result<(), RouterError> {
        let now = self.now();
        let at = atende_store::from_millis(now.as_millis());
        let mut tx = self.pool.begin().await?;
        for lead in atende_store::missed::lock_due(&mut tx, at, 100).await? {
            let (tenant, service) = (TenantId(lead.tenant_id), ServiceId(lead.service_id));
            let snapshot = self.snapshot(tenant, service, &Event::Sweep).await?.snapshot;
            let Some(agent) = atende_domain::routing::missed_lead_notice_target(&snapshot) else {
                let again = atende_domain::routing::missed_lead_notice_due(now, lead.missed_by.map(AgentId));
                atende_store::missed::postpone(
                    &mut tx,
                    lead.conversation_id,
                    atende_store::from_millis(again.as_millis()),
                )
                .await?;
                continue;
            };
            atende_store::missed::notified(&mut tx, lead.conversation_id, agent.0, at).await?;
            let Some(c) =
                atende_store::conversations::get_conversation(&mut *tx, lead.tenant_id, lead.conversation_id).await?
            else {
                continue;
            };
            let kind = atende_proto::v1::domain_event::Kind::MissedLeadNotice(atende_proto::v1::MissedLeadNotice {
                conversation: Some(crate::events::conversation(&c, &c.status, c.agent_id.map(AgentId))),
                agent_id: agent.0.to_string(),
                missed_at_ms: atende_store::to_millis(lead.missed_at),
                missed_by_agent_id: lead.missed_by.map(|a| a.to_string()).unwrap_or_default(),
            });
            crate::events::publish(&mut tx, &self.subjects, tenant, "missed_lead.notice", kind, now).await?;
            tracing::info!(%tenant, conversation = %lead.conversation_id, %agent, "missed lead notice sent");
        }
        tx.commit().await?;
        Ok(())
    }

    /// Offers past their deadline: popped atomically (one replica each), then routed as
    /// `OfferExpired` — the policy decides what follows.
    async fn expire_due(&self, tenant: TenantId) -> Result<(), RouterError> {
        let visibility = self.settings.offer_visibility.as_millis() as u64;
        let due = self
            .presence
            .pop_due_offers(tenant, self.now(), visibility, 200)
            .await?;
        for conversation in due {
            match offers::get_offer(&self.pool, conversation.0).await? {
                Some(o) => {
                    let event = Event::OfferExpired {
                        conversation,
                        agent: AgentId(o.agent_id),
                    };
                    if let Err(e) = self.route(tenant, ServiceId(o.service_id), &event).await {
                        tracing::warn!(error = &e as &dyn std::error::Error, %conversation, "offer timeout not handled, will retry");
                    }
                }
                // No offer in Postgres: accepted, or the commit never happened.
                None => self.settle(tenant, conversation).await?,
            }
        }
        Ok(())
    }

    async fn reconcile(&self, tenant: TenantId) -> Result<(), RouterError> {
        let older_than = self.now() - self.settings.pending_grace;
        for conversation in self.presence.stale_pending(tenant, older_than, 200).await? {
            self.settle(tenant, conversation).await?;
        }
        Ok(())
    }

    /// Whether a capacity reconciliation pass is due on this replica (and if so, starts it).
    fn reconcile_due(&self) -> bool {
        let Ok(mut state) = self.reconcile_cursor.lock() else {
            return false;
        };
        let due = state.0.is_none_or(|at| at.elapsed() >= self.settings.reconcile_every);
        if due {
            state.0 = Some(std::time::Instant::now());
        }
        due
    }

    /// Converges the next page of the tenant's agents with Postgres: each agent's holds are
    /// read from Postgres and handed to one atomic script, which restores what Redis lost and
    /// frees what Postgres does not know (see `atende_capacity::Presence::reconcile_agent`).
    /// Bounded: `reconcile_batch` agents and two queries per tenant per pass.
    pub async fn reconcile_capacity(&self, tenant: TenantId) -> Result<(), RouterError> {
        let after = self
            .reconcile_cursor
            .lock()
            .ok()
            .and_then(|s| s.1.get(&tenant).copied());
        let agents = routing::agent_page(&self.pool, tenant.0, after, self.settings.reconcile_batch as i64).await?;
        let next = if agents.len() < self.settings.reconcile_batch {
            None // the end: the next pass starts over
        } else {
            agents.last().copied()
        };
        if let Ok(mut s) = self.reconcile_cursor.lock() {
            match next {
                Some(a) => s.1.insert(tenant, a),
                None => s.1.remove(&tenant),
            };
        }
        if agents.is_empty() {
            return Ok(());
        }
        let mut held: std::collections::HashMap<uuid::Uuid, Vec<Reservation>> = std::collections::HashMap::new();
        for h in routing::holds_of_agents(&self.pool, tenant.0, &agents).await? {
            let offer = h.mode == "offer";
            held.entry(h.agent_id).or_default().push(Reservation {
                conversation: ConversationId(h.conversation_id),
                agent: AgentId(h.agent_id),
                service: ServiceId(h.service_id.unwrap_or_default()),
                mode: if offer { Mode::Offer } else { Mode::Assign },
                deadline: h.expires_at.map_or(atende_domain::clock::Timestamp::EPOCH, |t| {
                    atende_domain::clock::Timestamp(atende_store::to_millis(t))
                }),
            });
        }
        let grace = self.settings.pending_grace.as_millis() as u64;
        for agent in agents {
            let holds = held.remove(&agent).unwrap_or_default();
            let Some(r) = self
                .presence
                .reconcile_agent(tenant, AgentId(agent), &holds, self.now(), grace)
                .await?
            else {
                return Ok(()); // not rebuilt yet: the rebuild reads Postgres whole
            };
            if r.restored + r.freed > 0 {
                tracing::warn!(%tenant, %agent, restored = r.restored, freed = r.freed, "capacity reconciled with postgres");
                self.agent_changed(tenant, AgentId(agent)).await;
            }
        }
        Ok(())
    }

    /// Makes the Redis reservation of a conversation match Postgres, the source of truth.
    pub(crate) async fn settle(&self, tenant: TenantId, conversation: ConversationId) -> Result<(), RouterError> {
        let Some(held) = self.presence.held(tenant, conversation).await? else {
            // Only a stray deadline or pending entry: the release script clears them.
            self.presence.forget_pending(tenant, conversation).await?;
            let _ = self
                .presence
                .release(tenant, conversation, AgentId(uuid::Uuid::nil()), None)
                .await?;
            return Ok(());
        };
        let assigned = routing::open_assignment_agent(&self.pool, conversation.0).await?;
        let offer = offers::get_offer(&self.pool, conversation.0).await?;
        let service = held.service.unwrap_or(ServiceId(uuid::Uuid::nil()));
        let r = |mode, deadline| Reservation {
            conversation,
            agent: held.agent,
            service,
            mode,
            deadline,
        };
        match (
            held.mode,
            assigned == Some(held.agent.0),
            offer.as_ref().filter(|o| o.agent_id == held.agent.0),
        ) {
            (Mode::Assign, true, _) => self.confirm(tenant, &r(Mode::Assign, held.deadline)).await?,
            (Mode::Offer, true, _) => {
                // Accepted in Postgres; Redis still shows the offer.
                let reserved = self
                    .presence
                    .reserve(
                        tenant,
                        &r(Mode::Assign, held.deadline),
                        atende_capacity::Check::Supervisor,
                        atende_domain::channel::ChannelKind::Whatsapp,
                        u32::MAX,
                        self.now(),
                        None,
                    )
                    .await?;
                if reserved == Reserved::Accepted || reserved == Reserved::Again {
                    self.confirm(tenant, &r(Mode::Assign, held.deadline)).await?;
                }
            }
            (Mode::Offer, false, Some(o)) => {
                let deadline = atende_domain::clock::Timestamp(atende_store::to_millis(o.expires_at));
                self.confirm(tenant, &r(Mode::Offer, deadline)).await?;
            }
            (Mode::Assign, false, Some(o)) => {
                let deadline = atende_domain::clock::Timestamp(atende_store::to_millis(o.expires_at));
                self.presence
                    .revert_accept(tenant, conversation, held.agent, deadline)
                    .await?;
            }
            _ => {
                tracing::info!(%tenant, %conversation, agent = %held.agent, "releasing a reservation postgres does not know");
                self.release_redis(tenant, conversation, held.agent, Some(held.mode))
                    .await?;
            }
        }
        Ok(())
    }
}
