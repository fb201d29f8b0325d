//! `atende.v1.RouterService`: parses requests, calls the router, maps refusals to their
//! stable codes.

use std::sync::Arc;

use atende_capacity::AgentLive;
use atende_domain::channel::ChannelKind;
use atende_domain::ids::{AgentId, ConversationId, ServiceId, TenantId};
use atende_domain::presence::{AgentStatus, ChannelLogin};
use atende_domain::ErrorCode;
use atende_proto::v1 as pb;
use atende_proto::v1::router_service_server::RouterService;
use atende_runtime::parse_id;
use tonic::{Request, Response, Status};

use crate::engine::Router;

pub struct RouterGrpc {
    router: Arc<Router>,
}

impl RouterGrpc {
    pub fn new(router: Arc<Router>) -> Self {
        Self { router }
    }
}

fn status_pb(s: AgentStatus) -> pb::AgentStatus {
    match s {
        AgentStatus::Available => pb::AgentStatus::Available,
        AgentStatus::Paused => pb::AgentStatus::Paused,
        AgentStatus::Inactive => pb::AgentStatus::Inactive,
        AgentStatus::Offline => pb::AgentStatus::Offline,
    }
}

fn presence_pb(agent: AgentId, live: &AgentLive, max: u32) -> pb::AgentPresence {
    presence_named(agent, live, max, String::new())
}

fn presence_named(agent: AgentId, live: &AgentLive, max: u32, name: String) -> pb::AgentPresence {
    pb::AgentPresence {
        agent_id: agent.to_string(),
        status: status_pb(live.status) as i32,
        channels: live
            .logins
            .iter()
            .map(|l| pb::ChannelLogin {
                channel_kind: l.kind.as_str().to_string(),
                paused: l.paused,
            })
            .collect(),
        assigned: live.assigned,
        offered: live.offered,
        max_concurrent: max,
        status_since_ms: live.status_since.as_millis(),
        name,
    }
}

fn logins(channels: &[pb::ChannelLogin]) -> Result<Vec<ChannelLogin>, Status> {
    channels
        .iter()
        .map(|c| {
            ChannelKind::parse(&c.channel_kind)
                .map(|kind| ChannelLogin { kind, paused: c.paused })
                .ok_or_else(|| {
                    atende_runtime::status(
                        ErrorCode::InvalidArgument,
                        &format!("unknown channel kind {:?}", c.channel_kind),
                        Some("channels"),
                    )
                })
        })
        .collect()
}

#[tonic::async_trait]
impl RouterService for RouterGrpc {
    async fn set_presence(
        &self,
        request: Request<pb::SetPresenceRequest>,
    ) -> Result<Response<pb::SetPresenceResponse>, Status> {
        let tenant: TenantId = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        let r = request.into_inner();
        let agent: AgentId = parse_id("agent_id", &r.agent_id)?;
        let logins = logins(&r.channels)?;
        let (live, max) = self
            .router
            .set_presence(tenant, agent, r.connected, logins, r.logout)
            .await?;
        Ok(Response::new(pb::SetPresenceResponse {
            presence: Some(presence_pb(agent, &live, max)),
        }))
    }

    async fn get_presence(
        &self,
        request: Request<pb::GetPresenceRequest>,
    ) -> Result<Response<pb::GetPresenceResponse>, Status> {
        let tenant: TenantId = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        let r = request.into_inner();
        let agent: AgentId = parse_id("agent_id", &r.agent_id)?;
        let (live, max) = self.router.presence(tenant, agent).await?;
        Ok(Response::new(pb::GetPresenceResponse {
            presence: Some(presence_pb(agent, &live, max)),
        }))
    }

    async fn list_agent_presences(
        &self,
        request: Request<pb::ListAgentPresencesRequest>,
    ) -> Result<Response<pb::ListAgentPresencesResponse>, Status> {
        let tenant: TenantId = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        let r = request.into_inner();
        let limit = match r.page_size {
            0 => 1000,
            n if (1..=1000).contains(&n) => i64::from(n),
            _ => {
                return Err(atende_runtime::status(
                    ErrorCode::InvalidArgument,
                    "page_size must be 1 to 1000",
                    Some("page_size"),
                ))
            }
        };
        let after: Option<uuid::Uuid> = if r.page_token.is_empty() {
            None
        } else {
            Some(parse_id("page_token", &r.page_token)?)
        };
        let (rows, more) = self.router.presences(tenant, after, limit).await?;
        let next_page_token = match (more, rows.last()) {
            (true, Some((a, ..))) => a.id.to_string(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListAgentPresencesResponse {
            presences: rows
                .into_iter()
                .map(|(a, live)| presence_named(AgentId(a.id), &live, a.max_concurrent.max(0) as u32, a.name))
                .collect(),
            next_page_token,
        }))
    }

    async fn accept_offer(
        &self,
        request: Request<pb::AcceptOfferRequest>,
    ) -> Result<Response<pb::AcceptOfferResponse>, Status> {
        let tenant: TenantId = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        let r = request.into_inner();
        let conversation: ConversationId = parse_id("conversation_id", &r.conversation_id)?;
        let agent: AgentId = parse_id("agent_id", &r.agent_id)?;
        self.router.accept(tenant, conversation, agent).await?;
        Ok(Response::new(pb::AcceptOfferResponse {}))
    }

    async fn claim_conversation(
        &self,
        request: Request<pb::ClaimConversationRequest>,
    ) -> Result<Response<pb::ClaimConversationResponse>, Status> {
        let tenant: TenantId = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        let r = request.into_inner();
        let conversation: ConversationId = parse_id("conversation_id", &r.conversation_id)?;
        let agent: AgentId = parse_id("agent_id", &r.agent_id)?;
        self.router.claim(tenant, conversation, agent).await?;
        Ok(Response::new(pb::ClaimConversationResponse {}))
    }

    async fn assign_conversation(
        &self,
        request: Request<pb::AssignConversationRequest>,
    ) -> Result<Response<pb::AssignConversationResponse>, Status> {
        let tenant: TenantId = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        let r = request.into_inner();
        let conversation: ConversationId = parse_id("conversation_id", &r.conversation_id)?;
        let agent: AgentId = parse_id("agent_id", &r.agent_id)?;
        let supervisor: Option<AgentId> = if r.supervisor_id.is_empty() {
            None
        } else {
            Some(parse_id("supervisor_id", &r.supervisor_id)?)
        };
        if r.directed {
            self.router.directed(tenant, conversation, agent).await?;
        } else {
            self.router
                .supervisor_assign(tenant, conversation, agent, supervisor)
                .await?;
        }
        Ok(Response::new(pb::AssignConversationResponse {}))
    }

    async fn release_conversation(
        &self,
        request: Request<pb::ReleaseConversationRequest>,
    ) -> Result<Response<pb::ReleaseConversationResponse>, Status> {
        let tenant: TenantId = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        let r = request.into_inner();
        let conversation: ConversationId = parse_id("conversation_id", &r.conversation_id)?;
        self.router.release(tenant, conversation, &r.reason).await?;
        Ok(Response::new(pb::ReleaseConversationResponse {}))
    }

    async fn get_queue_stats(
        &self,
        request: Request<pb::GetQueueStatsRequest>,
    ) -> Result<Response<pb::GetQueueStatsResponse>, Status> {
        let tenant: TenantId = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        let r = request.into_inner();
        let service: ServiceId = parse_id("service_id", &r.service_id)?;
        let s = self.router.queue_stats(tenant, service).await?;
        Ok(Response::new(pb::GetQueueStatsResponse {
            waiting: s.waiting,
            oldest_wait_ms: s.oldest_wait_ms,
            offered: s.offered,
            agents_available: s.by_status[0],
            agents_paused: s.by_status[1],
            agents_inactive: s.by_status[2],
            agents_offline: s.by_status[3],
        }))
    }

    async fn explain_conversation(
        &self,
        request: Request<pb::ExplainConversationRequest>,
    ) -> Result<Response<pb::ExplainConversationResponse>, Status> {
        let tenant: TenantId = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        let r = request.into_inner();
        let conversation: ConversationId = parse_id("conversation_id", &r.conversation_id)?;
        let decisions = self.router.explain(tenant, conversation).await?;
        Ok(Response::new(pb::ExplainConversationResponse { decisions }))
    }
}
