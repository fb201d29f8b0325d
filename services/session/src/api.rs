//! `SessionService`: an agent's reply, and reads of conversations and history.

use atende_domain::channel::ChannelKind;
use atende_domain::conversation::Status;
use atende_domain::ErrorCode;
use atende_proto::v1::{self as pb, session_service_server::SessionService};
use atende_runtime::errors::store_status;
use atende_runtime::{parse_id, status};
use atende_store::conversations as conv;
use sqlx::PgPool;
use tonic::{Request, Response, Status as GrpcStatus};
use uuid::Uuid;

use crate::{convert, lifecycle, report, start, workspace, RouterClient};

const MAX_TEXT: usize = 4096;
/// Most conversations one bulk transfer may name.
const MAX_BULK: usize = 500;

#[derive(Clone)]
pub struct SessionApi {
    pub pool: PgPool,
    pub subjects: atende_bus::Subjects,
    pub router: RouterClient,
}

impl SessionApi {
    /// Hands a conversation that is in no queue to `agent` through the router (the capacity
    /// gate): assigned to him, or refused with the reason; nobody else gets it.
    pub(crate) async fn assign_directed(
        &self,
        tenant: Uuid,
        conversation: Uuid,
        agent: Uuid,
    ) -> Result<(), GrpcStatus> {
        self.router
            .clone()
            .assign_conversation(pb::AssignConversationRequest {
                tenant_id: tenant.to_string(),
                conversation_id: conversation.to_string(),
                agent_id: agent.to_string(),
                supervisor_id: String::new(),
                directed: true,
            })
            .await
            .map(|_| ())
    }

    /// The agent's live presence and load, as the router counts them.
    pub(crate) async fn presence(&self, tenant: Uuid, agent: Uuid) -> Result<pb::AgentPresence, GrpcStatus> {
        Ok(self
            .router
            .clone()
            .get_presence(pb::GetPresenceRequest {
                tenant_id: tenant.to_string(),
                agent_id: agent.to_string(),
            })
            .await?
            .into_inner()
            .presence
            .unwrap_or_default())
    }

    /// Whether the router would give `agent` one more conversation now: present (available
    /// or paused) and below his maximum.
    pub(crate) async fn can_take(&self, tenant: Uuid, agent: Uuid) -> Result<(), GrpcStatus> {
        let presence = self.presence(tenant, agent).await?;
        let present = matches!(
            pb::AgentStatus::try_from(presence.status),
            Ok(pb::AgentStatus::Available | pb::AgentStatus::Paused)
        );
        if !present {
            return Err(status(ErrorCode::AgentNotAvailable, "", Some("agent_id")));
        }
        if presence.assigned + presence.offered >= presence.max_concurrent {
            return Err(status(ErrorCode::AgentAtCapacity, "", Some("agent_id")));
        }
        Ok(())
    }

    /// The service an agent acts in: the one named (he must work in it) or his first.
    pub(crate) async fn agent_service(&self, tenant: Uuid, agent: Uuid, raw: &str) -> Result<Uuid, GrpcStatus> {
        atende_store::admin::get_agent(&self.pool, tenant, agent)
            .await
            .map_err(store_status)?
            .ok_or_else(|| status(ErrorCode::NotFound, "agent", Some("agent_id")))?;
        let services = atende_store::admin::agent_service_ids(&self.pool, agent)
            .await
            .map_err(store_status)?;
        if raw.is_empty() {
            return services.first().copied().ok_or_else(|| {
                status(
                    ErrorCode::InvalidArgument,
                    "the agent is in no service",
                    Some("service_id"),
                )
            });
        }
        let s: Uuid = parse_id("service_id", raw)?;
        if services.contains(&s) {
            Ok(s)
        } else {
            Err(status(
                ErrorCode::PermissionDenied,
                "the agent is not in this service",
                Some("service_id"),
            ))
        }
    }

    /// The user a transfer goes to (`@`), in the service given, else the conversation's own
    /// if he works in it, else his first; refused up front when he is absent or full.
    async fn user_target(
        &self,
        tenant: Uuid,
        conversation: Uuid,
        raw_agent: &str,
        raw_service: &str,
    ) -> Result<lifecycle::Target, GrpcStatus> {
        let user: Uuid = parse_id("target_agent_id", raw_agent)?;
        atende_store::admin::get_agent(&self.pool, tenant, user)
            .await
            .map_err(store_status)?
            .ok_or_else(|| status(ErrorCode::NotFound, "agent", Some("target_agent_id")))?;
        let services = atende_store::admin::agent_service_ids(&self.pool, user)
            .await
            .map_err(store_status)?;
        let found = conv::get_conversation(&self.pool, tenant, conversation)
            .await
            .map_err(store_status)?
            .ok_or_else(|| status(ErrorCode::NotFound, "conversation", Some("conversation_id")))?;
        if found.agent_id == Some(user) {
            return Err(status(
                ErrorCode::InvalidArgument,
                "the conversation is already this user's",
                Some("target_agent_id"),
            ));
        }
        let current = found.service_id;
        let service = if raw_service.is_empty() {
            current
                .filter(|s| services.contains(s))
                .or_else(|| services.first().copied())
                .ok_or_else(|| {
                    status(
                        ErrorCode::InvalidArgument,
                        "the user is in no service",
                        Some("target_agent_id"),
                    )
                })?
        } else {
            let s: Uuid = parse_id("target_service_id", raw_service)?;
            if !services.contains(&s) {
                return Err(status(
                    ErrorCode::InvalidArgument,
                    "the user does not work in this service",
                    Some("target_service_id"),
                ));
            }
            s
        };
        self.can_take(tenant, user).await.map_err(|e| {
            let code = atende_runtime::errors::status_code_of(&e).unwrap_or(ErrorCode::Unavailable);
            status(code, "", Some("target_agent_id"))
        })?;
        Ok(lifecycle::Target::Agent { agent: user, service })
    }

    /// After a transfer to a user: the previous holder is freed at once (nobody else can hold
    /// the conversation, it is in no queue), then the router hands it to the user; if he
    /// filled up meanwhile, it waits in the service under its policy instead — never stuck.
    async fn hand_over(
        &self,
        tenant: Uuid,
        c: &conv::Conversation,
        user: Uuid,
        service: Uuid,
    ) -> Result<conv::Conversation, GrpcStatus> {
        if let Err(e) = self
            .router
            .clone()
            .release_conversation(pb::ReleaseConversationRequest {
                tenant_id: tenant.to_string(),
                conversation_id: c.id.to_string(),
                reason: "transferred".into(),
            })
            .await
        {
            tracing::warn!(error = %e, conversation = %c.id, "release before the hand-over failed; the outbox release follows");
        }
        if let Err(e) = self.assign_directed(tenant, c.id, user).await {
            tracing::info!(error = %e, conversation = %c.id, "the user could not take it; it waits in the service");
            let mut tx = self.pool.begin().await.map_err(|e| store_status(e.into()))?;
            atende_store::scope_tenant(&mut tx, tenant)
                .await
                .map_err(store_status)?;
            crate::bot::announce_queued(&mut tx, &self.subjects, c, service)
                .await
                .map_err(store_status)?;
            tx.commit().await.map_err(|e| store_status(e.into()))?;
        }
        conv::get_conversation(&self.pool, tenant, c.id)
            .await
            .map_err(store_status)?
            .ok_or_else(|| status(ErrorCode::Internal, "conversation vanished", None))
    }
    async fn require_supervisor(&self, tenant: Uuid, supervisor: Uuid) -> Result<(), GrpcStatus> {
        let is_supervisor = atende_store::admin::get_agent(&self.pool, tenant, supervisor)
            .await
            .map_err(store_status)?
            .is_some_and(|a| a.supervises());
        if is_supervisor {
            Ok(())
        } else {
            Err(status(
                ErrorCode::PermissionDenied,
                "not a supervisor",
                Some("supervisor_id"),
            ))
        }
    }

    /// Transfers each conversation in its own transaction and reports each outcome.
    async fn transfer_each(
        &self,
        tenant: Uuid,
        supervisor: Uuid,
        ids: &[String],
        target: Uuid,
    ) -> Vec<pb::BulkTransferOutcome> {
        let mut outcomes = Vec::with_capacity(ids.len());
        // One transaction per conversation: each succeeds or fails on its own.
        for raw in ids {
            let result = match parse_id::<Uuid>("conversation_ids", raw) {
                Ok(id) => {
                    let to = lifecycle::Target::Service(target);
                    lifecycle::transfer(&self.pool, &self.subjects, tenant, id, supervisor, to, "", "").await
                }
                Err(e) => Err(e),
            };
            outcomes.push(match result {
                Ok(t) => pb::BulkTransferOutcome {
                    conversation_id: raw.clone(),
                    transferred: true,
                    protocol: t.current.number,
                    ..Default::default()
                },
                Err(e) => {
                    let code = atende_runtime::errors::status_code_of(&e).unwrap_or(ErrorCode::Internal);
                    pb::BulkTransferOutcome {
                        conversation_id: raw.clone(),
                        transferred: false,
                        error_code: code.as_str().to_string(),
                        message_en: code.message_en().to_string(),
                        message_pt_br: code.message_pt_br().to_string(),
                        protocol: String::new(),
                    }
                }
            });
        }
        outcomes
    }
}

#[tonic::async_trait]
impl SessionService for SessionApi {
    async fn send_message(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        let req = request.into_inner();
        let conversation_id: Uuid = parse_id("conversation_id", &req.conversation_id)?;
        let agent: Uuid = parse_id("agent_id", &req.agent_id)?;
        let text = req.text.trim();
        if text.is_empty() || text.chars().count() > MAX_TEXT {
            return Err(status(
                ErrorCode::InvalidArgument,
                "text must have 1 to 4096 characters",
                Some("text"),
            ));
        }
        let client_id = Some(req.client_message_id.as_str()).filter(|c| !c.is_empty());
        // The first reply to an offered conversation accepts the offer.
        let current = conv::get_conversation(&self.pool, tenant, conversation_id)
            .await
            .map_err(store_status)?
            .ok_or_else(|| status(ErrorCode::NotFound, "conversation", Some("conversation_id")))?;
        if current.status == Status::Offered.as_str() && current.agent_id == Some(agent) {
            self.router
                .clone()
                .accept_offer(pb::AcceptOfferRequest {
                    tenant_id: tenant.to_string(),
                    conversation_id: conversation_id.to_string(),
                    agent_id: agent.to_string(),
                })
                .await?;
        }

        let message = send_text_as_agent(
            self,
            tenant,
            conversation_id,
            agent,
            Reply {
                text,
                client_id,
                reply_to_message_id: &req.reply_to_message_id,
                template: None,
            },
        )
        .await?;
        Ok(Response::new(pb::SendMessageResponse { message: Some(message) }))
    }

    async fn get_conversation(
        &self,
        request: Request<pb::GetConversationRequest>,
    ) -> Result<Response<pb::GetConversationResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        let req = request.into_inner();
        let id: Uuid = parse_id("conversation_id", &req.conversation_id)?;
        let c = conv::get_conversation(&self.pool, tenant, id)
            .await
            .map_err(store_status)?
            .ok_or_else(|| status(ErrorCode::NotFound, "conversation", Some("conversation_id")))?;
        Ok(Response::new(pb::GetConversationResponse {
            conversation: Some(convert::conversation(&c)),
        }))
    }

    async fn list_messages(
        &self,
        request: Request<pb::ListMessagesRequest>,
    ) -> Result<Response<pb::ListMessagesResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        let req = request.into_inner();
        let id: Uuid = parse_id("conversation_id", &req.conversation_id)?;
        let size = match req.page_size {
            0 => 50,
            n if (1..=500).contains(&n) => n,
            _ => {
                return Err(status(
                    ErrorCode::InvalidArgument,
                    "page_size must be 1 to 500",
                    Some("page_size"),
                ))
            }
        };
        let after = decode_cursor(&req.page_token)?;
        let rows = conv::list_messages(&self.pool, tenant, id, after, i64::from(size) + 1)
            .await
            .map_err(store_status)?;
        let more = rows.len() > size as usize;
        let rows = &rows[..rows.len().min(size as usize)];
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => format!("s{}", last.seq),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListMessagesResponse {
            messages: rows.iter().map(convert::message).collect(),
            next_page_token,
        }))
    }

    async fn list_agent_conversations(
        &self,
        request: Request<pb::ListAgentConversationsRequest>,
    ) -> Result<Response<pb::ListAgentConversationsResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        let req = request.into_inner();
        let agent: Uuid = parse_id("agent_id", &req.agent_id)?;
        let rows = conv::agent_open_conversations(&self.pool, tenant, agent)
            .await
            .map_err(store_status)?;
        Ok(Response::new(pb::ListAgentConversationsResponse {
            conversations: rows.iter().map(convert::conversation).collect(),
        }))
    }

    async fn list_agent_desk(
        &self,
        request: Request<pb::ListAgentDeskRequest>,
    ) -> Result<Response<pb::ListAgentDeskResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        Ok(Response::new(
            crate::desk::list(&self.pool, tenant, request.into_inner()).await?,
        ))
    }

    async fn finish_conversation(
        &self,
        request: Request<pb::FinishConversationRequest>,
    ) -> Result<Response<pb::FinishConversationResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        let req = request.into_inner();
        let id: Uuid = parse_id("conversation_id", &req.conversation_id)?;
        let agent: Uuid = parse_id("agent_id", &req.agent_id)?;
        let form = lifecycle::FinishForm {
            qualification: &req.qualification,
            description: &req.description,
            external_protocol: &req.external_protocol,
            transcript_email: &req.transcript_email,
        };
        let f = lifecycle::finish(&self.pool, &self.subjects, tenant, id, agent, form).await?;
        Ok(Response::new(pb::FinishConversationResponse {
            conversation: Some(convert::conversation(&f.conversation)),
            protocol: Some(convert::protocol(&f.protocol)),
            transcript_email: f.transcript_email.unwrap_or_default(),
        }))
    }

    async fn transfer_conversation(
        &self,
        request: Request<pb::TransferConversationRequest>,
    ) -> Result<Response<pb::TransferConversationResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        let req = request.into_inner();
        let id: Uuid = parse_id("conversation_id", &req.conversation_id)?;
        let agent: Uuid = parse_id("agent_id", &req.agent_id)?;
        let to = if req.target_agent_id.is_empty() {
            lifecycle::Target::Service(parse_id("target_service_id", &req.target_service_id)?)
        } else {
            self.user_target(tenant, id, &req.target_agent_id, &req.target_service_id)
                .await?
        };
        let t = lifecycle::transfer(
            &self.pool,
            &self.subjects,
            tenant,
            id,
            agent,
            to,
            &req.qualification,
            &req.description,
        )
        .await?;
        let conversation = match to {
            lifecycle::Target::Agent { agent: user, service } => {
                self.hand_over(tenant, &t.conversation, user, service).await?
            }
            lifecycle::Target::Service(_) => t.conversation,
        };
        Ok(Response::new(pb::TransferConversationResponse {
            conversation: Some(convert::conversation(&conversation)),
            previous: Some(convert::protocol(&t.previous)),
            current: Some(convert::protocol(&t.current)),
        }))
    }

    async fn bulk_transfer(
        &self,
        request: Request<pb::BulkTransferRequest>,
    ) -> Result<Response<pb::BulkTransferResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        let req = request.into_inner();
        let supervisor: Uuid = parse_id("supervisor_id", &req.supervisor_id)?;
        let target: Uuid = parse_id("target_service_id", &req.target_service_id)?;
        self.require_supervisor(tenant, supervisor).await?;
        if req.conversation_ids.is_empty() || req.conversation_ids.len() > MAX_BULK {
            return Err(status(
                ErrorCode::InvalidArgument,
                "conversation_ids must hold 1 to 500 ids",
                Some("conversation_ids"),
            ));
        }
        let outcomes = self
            .transfer_each(tenant, supervisor, &req.conversation_ids, target)
            .await;
        Ok(Response::new(pb::BulkTransferResponse { outcomes }))
    }

    async fn list_protocols(
        &self,
        request: Request<pb::ListProtocolsRequest>,
    ) -> Result<Response<pb::ListProtocolsResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        let id: Uuid = parse_id("conversation_id", &request.get_ref().conversation_id)?;
        let rows = atende_store::legs::list_protocols(&self.pool, tenant, id)
            .await
            .map_err(store_status)?;
        Ok(Response::new(pb::ListProtocolsResponse {
            protocols: rows.iter().map(convert::protocol).collect(),
        }))
    }

    async fn list_transitions(
        &self,
        request: Request<pb::ListTransitionsRequest>,
    ) -> Result<Response<pb::ListTransitionsResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        let id: Uuid = parse_id("conversation_id", &request.get_ref().conversation_id)?;
        let rows = atende_store::legs::list_transitions(&self.pool, tenant, id)
            .await
            .map_err(store_status)?;
        Ok(Response::new(pb::ListTransitionsResponse {
            transitions: rows.iter().map(convert::transition).collect(),
        }))
    }

    async fn get_conversation_metrics(
        &self,
        request: Request<pb::GetConversationMetricsRequest>,
    ) -> Result<Response<pb::GetConversationMetricsResponse>, GrpcStatus> {
        use atende_domain::metrics::{indicators, Sample, Span};
        use atende_domain::Timestamp;
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        let id: Uuid = parse_id("conversation_id", &request.get_ref().conversation_id)?;
        let ts = |t: time::OffsetDateTime| Timestamp(atende_store::to_millis(t));
        let line = atende_store::legs::timeline(&self.pool, tenant, id)
            .await
            .map_err(store_status)?
            .ok_or_else(|| status(ErrorCode::NotFound, "conversation", Some("conversation_id")))?;
        let samples: Vec<Sample> = atende_store::legs::message_times(&self.pool, tenant, id)
            .await
            .map_err(store_status)?
            .into_iter()
            .map(|(customer, at)| {
                if customer {
                    Sample::Customer(ts(at))
                } else {
                    Sample::Agent(ts(at))
                }
            })
            .collect();
        let span = Span {
            opened_at: ts(line.opened_at),
            queued_at: line.first_queued_at.map(ts),
            first_assigned_at: line.first_assigned_at.map(ts),
            closed_at: line.closed_at.map(ts),
        };
        let i = indicators(span, &samples, ts(time::OffsetDateTime::now_utc()));
        let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_millis() as i64).unwrap_or(-1);
        Ok(Response::new(pb::GetConversationMetricsResponse {
            tta_ms: i.tta.as_millis() as i64,
            waiting_ms: ms(i.waiting),
            first_response_ms: ms(i.first_response),
            mean_response_ms: ms(i.mean_response),
            responses: i.responses as i32,
        }))
    }

    async fn check_can_open(
        &self,
        request: Request<pb::CheckCanOpenRequest>,
    ) -> Result<Response<pb::CheckCanOpenResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        Ok(Response::new(
            workspace::check_can_open(self, tenant, request.into_inner()).await?,
        ))
    }

    async fn create_tag(
        &self,
        request: Request<pb::CreateTagRequest>,
    ) -> Result<Response<pb::CreateTagResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        Ok(Response::new(
            workspace::create_tag(self, tenant, request.into_inner()).await?,
        ))
    }

    async fn list_tags(
        &self,
        request: Request<pb::ListTagsRequest>,
    ) -> Result<Response<pb::ListTagsResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        Ok(Response::new(workspace::list_tags(self, tenant).await?))
    }

    async fn set_tag(&self, request: Request<pb::SetTagRequest>) -> Result<Response<pb::SetTagResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        Ok(Response::new(
            workspace::set_tag(self, tenant, request.into_inner()).await?,
        ))
    }

    async fn list_tags_of(
        &self,
        request: Request<pb::ListTagsOfRequest>,
    ) -> Result<Response<pb::ListTagsOfResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        Ok(Response::new(
            workspace::list_tags_of(self, tenant, request.into_inner()).await?,
        ))
    }

    async fn list_contact_history(
        &self,
        request: Request<pb::ListContactHistoryRequest>,
    ) -> Result<Response<pb::ListContactHistoryResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        Ok(Response::new(
            workspace::contact_history(self, tenant, request.into_inner()).await?,
        ))
    }

    async fn add_note(
        &self,
        request: Request<pb::AddNoteRequest>,
    ) -> Result<Response<pb::AddNoteResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        Ok(Response::new(
            workspace::add_note(self, tenant, request.into_inner()).await?,
        ))
    }

    async fn save_draft(
        &self,
        request: Request<pb::SaveDraftRequest>,
    ) -> Result<Response<pb::SaveDraftResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        Ok(Response::new(
            workspace::save_draft(self, tenant, request.into_inner()).await?,
        ))
    }

    async fn list_drafts(
        &self,
        request: Request<pb::ListDraftsRequest>,
    ) -> Result<Response<pb::ListDraftsResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        Ok(Response::new(
            workspace::list_drafts(self, tenant, request.into_inner()).await?,
        ))
    }

    async fn mark_read(
        &self,
        request: Request<pb::MarkReadRequest>,
    ) -> Result<Response<pb::MarkReadResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        Ok(Response::new(
            workspace::mark_read(self, tenant, request.into_inner()).await?,
        ))
    }

    async fn list_unread(
        &self,
        request: Request<pb::ListUnreadRequest>,
    ) -> Result<Response<pb::ListUnreadResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        Ok(Response::new(
            workspace::list_unread(self, tenant, request.into_inner()).await?,
        ))
    }

    async fn create_canned_response(
        &self,
        request: Request<pb::CreateCannedResponseRequest>,
    ) -> Result<Response<pb::CreateCannedResponseResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        Ok(Response::new(
            workspace::create_canned(self, tenant, request.into_inner()).await?,
        ))
    }

    async fn list_canned_responses(
        &self,
        request: Request<pb::ListCannedResponsesRequest>,
    ) -> Result<Response<pb::ListCannedResponsesResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        Ok(Response::new(
            workspace::list_canned(self, tenant, request.into_inner()).await?,
        ))
    }

    async fn start_conversation(
        &self,
        request: Request<pb::StartConversationRequest>,
    ) -> Result<Response<pb::StartConversationResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        Ok(Response::new(start::start(self, tenant, request.into_inner()).await?))
    }

    async fn list_scheduled_sends(
        &self,
        request: Request<pb::ListScheduledSendsRequest>,
    ) -> Result<Response<pb::ListScheduledSendsResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        Ok(Response::new(
            start::list_scheduled(self, tenant, request.into_inner()).await?,
        ))
    }

    async fn reschedule_send(
        &self,
        request: Request<pb::RescheduleSendRequest>,
    ) -> Result<Response<pb::RescheduleSendResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        Ok(Response::new(
            start::reschedule(self, tenant, request.into_inner()).await?,
        ))
    }

    async fn cancel_scheduled_send(
        &self,
        request: Request<pb::CancelScheduledSendRequest>,
    ) -> Result<Response<pb::CancelScheduledSendResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        Ok(Response::new(
            start::cancel_scheduled(self, tenant, request.into_inner()).await?,
        ))
    }

    async fn register_in_person(
        &self,
        request: Request<pb::RegisterInPersonRequest>,
    ) -> Result<Response<pb::RegisterInPersonResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        Ok(Response::new(
            start::in_person(self, tenant, request.into_inner()).await?,
        ))
    }

    async fn list_interactions(
        &self,
        request: Request<pb::ListInteractionsRequest>,
    ) -> Result<Response<pb::ListInteractionsResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        Ok(Response::new(
            report::list(&self.pool, tenant, request.into_inner()).await?,
        ))
    }

    type ExportInteractionsStream =
        tokio_stream::wrappers::ReceiverStream<Result<pb::ExportInteractionsResponse, GrpcStatus>>;

    async fn export_interactions(
        &self,
        request: Request<pb::ExportInteractionsRequest>,
    ) -> Result<Response<Self::ExportInteractionsStream>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        let f = report::filter(tenant, &request.get_ref().filter.clone().unwrap_or_default())?;
        Ok(Response::new(report::export(self.pool.clone(), f)))
    }

    async fn list_waiting(
        &self,
        request: Request<pb::ListWaitingRequest>,
    ) -> Result<Response<pb::ListWaitingResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        Ok(Response::new(start::list_waiting(self, tenant).await?))
    }

    async fn claim_waiting(
        &self,
        request: Request<pb::ClaimWaitingRequest>,
    ) -> Result<Response<pb::ClaimWaitingResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        Ok(Response::new(
            start::claim_waiting(self, tenant, request.into_inner()).await?,
        ))
    }

    async fn transfer_by_tag(
        &self,
        request: Request<pb::TransferByTagRequest>,
    ) -> Result<Response<pb::TransferByTagResponse>, GrpcStatus> {
        let tenant: Uuid = atende_runtime::tenant_id(&request, &request.get_ref().tenant_id)?;
        let req = request.into_inner();
        let supervisor: Uuid = parse_id("supervisor_id", &req.supervisor_id)?;
        let target: Uuid = parse_id("target_service_id", &req.target_service_id)?;
        let tag: Uuid = parse_id("tag_id", &req.tag_id)?;
        self.require_supervisor(tenant, supervisor).await?;
        let ids: Vec<String> = workspace::tagged_open(self, tenant, tag)
            .await?
            .iter()
            .map(Uuid::to_string)
            .collect();
        let outcomes = self.transfer_each(tenant, supervisor, &ids, target).await;
        Ok(Response::new(pb::TransferByTagResponse { outcomes }))
    }
}

/// An agent's text in a conversation he owns (assigned to him): checked, stored once per
/// client id, sent through the outbox.
/// What an agent sends: free text (a quoted reply, maybe), or a template whose `text` is
/// what the conversation shows; `client_id` makes a retry return the stored message.
pub struct Reply<'a> {
    pub text: &'a str,
    pub client_id: Option<&'a str>,
    pub reply_to_message_id: &'a str,
    pub template: Option<crate::outbound::TemplateSend>,
}

pub async fn send_text_as_agent(
    api: &SessionApi,
    tenant: Uuid,
    conversation_id: Uuid,
    agent: Uuid,
    reply: Reply<'_>,
) -> Result<pb::Message, GrpcStatus> {
    let Reply {
        text,
        client_id,
        reply_to_message_id,
        template,
    } = reply;
    let mut tx = api.pool.begin().await.map_err(|e| store_status(e.into()))?;
    atende_store::scope_tenant(&mut tx, tenant)
        .await
        .map_err(store_status)?;
    let c = conv::lock_conversation(&mut tx, tenant, conversation_id)
        .await
        .map_err(store_status)?
        .ok_or_else(|| status(ErrorCode::NotFound, "conversation", Some("conversation_id")))?;
    let st = Status::parse(&c.status).unwrap_or(Status::Finished);
    if st.is_closed() {
        return Err(status(ErrorCode::ConversationClosed, "", None));
    }
    if st != Status::Assigned || c.agent_id != Some(agent) {
        return Err(status(ErrorCode::NotConversationOwner, "", None));
    }
    // A retry of a reply already stored returns it (checked only once the caller is known
    // to own this conversation of this tenant).
    if let Some(cid) = client_id {
        if let Some(existing) = conv::message_by_client_id(&mut *tx, conversation_id, cid)
            .await
            .map_err(store_status)?
        {
            return Ok(convert::message(&existing));
        }
    }
    let kind = ChannelKind::parse(&c.channel_kind).ok_or_else(|| status(ErrorCode::Internal, "channel kind", None))?;
    // Replies leave from the number the customer last wrote to; outside that number's
    // window only a template may go out (Meta would refuse it).
    let channel_id = c.reply_channel_id;
    let now = atende_domain::Timestamp(atende_store::to_millis(time::OffsetDateTime::now_utc()));
    let last_inbound = conv::customer_window(&mut *tx, c.contact_id, channel_id)
        .await
        .map_err(store_status)?
        .map(|t| atende_domain::Timestamp(atende_store::to_millis(t)));
    // A template may go out whatever the window (that is what templates are for).
    if template.is_none() {
        atende_domain::window::check_free_form(kind, last_inbound, now).map_err(atende_runtime::errors::to_status)?;
    }
    let to = conv::whatsapp_address(&mut *tx, tenant, c.contact_id)
        .await
        .map_err(store_status)?
        .ok_or_else(|| {
            status(
                ErrorCode::InvalidPhone,
                "the contact has no address on this channel",
                None,
            )
        })?;
    let reply_to = match Some(reply_to_message_id).filter(|s| !s.is_empty()) {
        Some(id) => {
            let id: Uuid = parse_id("reply_to_message_id", id)?;
            conv::get_message(&mut *tx, tenant, id)
                .await
                .map_err(store_status)?
                .and_then(|m| m.provider_message_id)
        }
        None => None,
    };
    let message = crate::outbound::send_text(
        &mut tx,
        &api.subjects,
        &c,
        kind,
        crate::outbound::Text {
            text,
            agent: Some(agent),
            client_message_id: client_id,
            reply_to_provider_message_id: reply_to,
            to,
            template,
        },
    )
    .await
    .map_err(store_status)?;
    let Some(message) = message else {
        // Same client id committed concurrently: return that one.
        drop(tx);
        let existing = conv::message_by_client_id(&api.pool, conversation_id, client_id.unwrap_or_default())
            .await
            .map_err(store_status)?
            .ok_or_else(|| status(ErrorCode::Unavailable, "", None))?;
        return Ok(convert::message(&existing));
    };
    tx.commit().await.map_err(|e| store_status(e.into()))?;
    tracing::info!(%conversation_id, message_id = %message.id, "reply stored");
    Ok(convert::message(&message))
}

/// Page tokens are `s<seq>`: the conversation position of the last message returned, which
/// is assigned in commit order, so the next page never skips a message that committed late.
fn decode_cursor(token: &str) -> Result<i64, GrpcStatus> {
    if token.is_empty() {
        return Ok(0);
    }
    let bad = || status(ErrorCode::InvalidArgument, "invalid page_token", Some("page_token"));
    token
        .strip_prefix('s')
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .ok_or_else(bad)
}
