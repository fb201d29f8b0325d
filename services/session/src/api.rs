//! `SessionService`: an agent's reply, and reads of conversations and history.

use atende_domain::channel::ChannelKind;
use atende_domain::conversation::Status;
use atende_domain::ErrorCode;
use atende_proto::v1::{self as pb, domain_event, session_service_server::SessionService};
use atende_runtime::errors::store_status;
use atende_runtime::{parse_id, status};
use atende_store::conversations as conv;
use prost::Message as _;
use sqlx::PgPool;
use tonic::{Request, Response, Status as GrpcStatus};
use uuid::Uuid;

use crate::{convert, RouterClient};

const MAX_TEXT: usize = 4096;

#[derive(Clone)]
pub struct SessionApi {
    pub pool: PgPool,
    pub subjects: atende_bus::Subjects,
    pub router: RouterClient,
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

        let mut tx = self.pool.begin().await.map_err(|e| store_status(e.into()))?;
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
                return Ok(Response::new(pb::SendMessageResponse {
                    message: Some(convert::message(&existing)),
                }));
            }
        }
        let kind =
            ChannelKind::parse(&c.channel_kind).ok_or_else(|| status(ErrorCode::Internal, "channel kind", None))?;
        // Replies leave from the number the customer last wrote to; outside that number's
        // window only a template may go out (Meta would refuse it).
        let channel_id = c.reply_channel_id;
        let now = atende_domain::Timestamp(atende_store::to_millis(time::OffsetDateTime::now_utc()));
        let last_inbound = conv::customer_window(&mut *tx, c.contact_id, channel_id)
            .await
            .map_err(store_status)?
            .map(|t| atende_domain::Timestamp(atende_store::to_millis(t)));
        atende_domain::window::check_free_form(kind, last_inbound, now).map_err(atende_runtime::errors::to_status)?;
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
        let reply_to = match Some(req.reply_to_message_id.as_str()).filter(|s| !s.is_empty()) {
            Some(id) => {
                let id: Uuid = parse_id("reply_to_message_id", id)?;
                conv::get_message(&mut *tx, tenant, id)
                    .await
                    .map_err(store_status)?
                    .and_then(|m| m.provider_message_id)
            }
            None => None,
        };
        let message = conv::insert_message(
            &mut tx,
            &conv::NewMessage {
                id: Uuid::now_v7(),
                tenant_id: tenant,
                conversation_id,
                channel_id,
                direction: "outbound",
                kind: "text",
                body: Some(text),
                media: None,
                provider_message_id: None,
                reply_to_provider_message_id: reply_to.as_deref(),
                status: "pending",
                agent_id: Some(agent),
                client_message_id: client_id,
                raw: None,
                sent_at: None,
            },
        )
        .await
        .map_err(store_status)?;
        let Some(message) = message else {
            // Same client id committed concurrently: return that one.
            drop(tx);
            let existing = conv::message_by_client_id(&self.pool, conversation_id, client_id.unwrap_or_default())
                .await
                .map_err(store_status)?
                .ok_or_else(|| status(ErrorCode::Unavailable, "", None))?;
            return Ok(Response::new(pb::SendMessageResponse {
                message: Some(convert::message(&existing)),
            }));
        };
        let outbound = pb::OutboundMessage {
            tenant_id: tenant.to_string(),
            channel_id: channel_id.to_string(),
            channel_kind: convert::channel_kind(&c.channel_kind),
            message_id: message.id.to_string(),
            conversation_id: conversation_id.to_string(),
            to,
            text: text.to_string(),
            reply_to_provider_message_id: reply_to.unwrap_or_default(),
        };
        atende_store::outbox::enqueue(
            &mut tx,
            tenant,
            &conversation_id.to_string(),
            &self.subjects.outbound(tenant, kind),
            &format!("out:{}", message.id),
            &outbound.encode_to_vec(),
            &atende_telemetry::propagation::current_as_pairs(),
        )
        .await
        .map_err(store_status)?;
        convert::emit(
            &mut tx,
            &self.subjects,
            tenant,
            "message.created",
            domain_event::Kind::MessageCreated(pb::MessageCreated {
                message: Some(convert::message(&message)),
                agent_id: agent.to_string(),
            }),
        )
        .await
        .map_err(store_status)?;
        tx.commit().await.map_err(|e| store_status(e.into()))?;
        tracing::info!(%conversation_id, message_id = %message.id, "reply stored");
        Ok(Response::new(pb::SendMessageResponse {
            message: Some(convert::message(&message)),
        }))
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
