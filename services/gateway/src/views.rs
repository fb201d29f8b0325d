//! The JSON the API answers, as types: handlers serialize these and `/openapi.json` describes
//! them, so the document and the answers come from one definition. Messages of `atende.v1`
//! that the API passes through unchanged (protocols, drafts, tags…) are described by the
//! schemas derived on the generated types themselves.

use atende_proto::v1 as pb;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// Every refusal: the stable code with its English and Brazilian Portuguese messages.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine code, e.g. `NOT_CONVERSATION_OWNER`.
    #[schema(example = "NOT_CONVERSATION_OWNER")]
    pub code: String,
    #[schema(example = "This conversation belongs to another agent")]
    pub message: String,
    #[schema(example = "Este atendimento pertence a outro agente")]
    pub message_pt_br: String,
    /// What was wrong, for a developer; empty when the code says it all.
    pub detail: String,
}

/// A conversation as agents see it (cards, frames, detail).
#[derive(Serialize, ToSchema)]
pub struct ConversationView {
    #[schema(example = "01936d7e-8a8c-7b1e-9a52-3f1a0c2d4e5f")]
    pub id: String,
    pub contact_id: String,
    /// The contact's name; empty until the customer or an agent gives one.
    #[schema(example = "Maria")]
    pub contact_name: String,
    pub channel_id: String,
    /// whatsapp, instagram, messenger or webchat.
    #[schema(example = "whatsapp")]
    pub channel_kind: String,
    pub service_id: String,
    /// The current leg's protocol number.
    #[schema(example = "20261207000123")]
    pub protocol: String,
    /// queued, offered, assigned, bot, closed, expired…
    #[schema(example = "assigned")]
    pub status: String,
    /// Empty while no agent has it.
    pub agent_id: String,
    pub opened_at_ms: i64,
}

impl From<&pb::Conversation> for ConversationView {
    fn from(c: &pb::Conversation) -> Self {
        Self {
            id: c.id.clone(),
            contact_id: c.contact_id.clone(),
            contact_name: c.contact_name.clone(),
            channel_id: c.channel_id.clone(),
            channel_kind: pb::ChannelKind::try_from(c.channel_kind)
                .map(|k| k.as_str_name())
                .unwrap_or("CHANNEL_KIND_UNSPECIFIED")
                .trim_start_matches("CHANNEL_KIND_")
                .to_ascii_lowercase(),
            service_id: c.service_id.clone(),
            protocol: c.protocol.clone(),
            status: c.status.clone(),
            agent_id: c.agent_id.clone(),
            opened_at_ms: c.opened_at_ms,
        }
    }
}

pub fn conversation(c: Option<&pb::Conversation>) -> Option<ConversationView> {
    c.map(ConversationView::from)
}

/// One message of a conversation, either side, or an internal note.
#[derive(Serialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    pub conversation_id: String,
    /// inbound (the customer), outbound (an agent, the bot) or internal (a note).
    #[schema(example = "outbound")]
    pub direction: String,
    #[schema(example = "text")]
    pub kind: String,
    #[schema(example = "Olá, Maria! Como posso ajudar?")]
    pub text: String,
    /// Outbound delivery: pending, sent, delivered, read or failed.
    #[schema(example = "sent")]
    pub status: String,
    pub agent_id: String,
    pub provider_message_id: String,
    /// The message this one quotes, by its provider id; empty when it quotes none.
    pub reply_to_provider_message_id: String,
    pub created_at_ms: i64,
    /// Position in the conversation, for ordering and paging.
    pub seq: i64,
}

impl From<&pb::Message> for MessageView {
    fn from(m: &pb::Message) -> Self {
        Self {
            id: m.id.clone(),
            conversation_id: m.conversation_id.clone(),
            direction: m.direction.clone(),
            kind: m.kind.clone(),
            text: m.text.clone(),
            status: m.status.clone(),
            agent_id: m.agent_id.clone(),
            provider_message_id: m.provider_message_id.clone(),
            reply_to_provider_message_id: m.reply_to_provider_message_id.clone(),
            created_at_ms: m.created_at_ms,
            seq: m.seq,
        }
    }
}

pub fn message(m: Option<&pb::Message>) -> Option<MessageView> {
    m.map(MessageView::from)
}

/// available, paused, inactive or offline, from the router's status number.
pub fn status_name(status: i32) -> String {
    pb::AgentStatus::try_from(status)
        .map(|s| s.as_str_name())
        .unwrap_or("AGENT_STATUS_UNSPECIFIED")
        .trim_start_matches("AGENT_STATUS_")
        .to_ascii_lowercase()
}

/// Login and refresh: a short-lived access token and the next refresh token.
#[derive(Serialize, ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds the access token lives.
    #[schema(example = 900)]
    pub expires_in: u64,
    /// Opaque; spend it once at `/api/v1/auth/refresh` before `refresh_expires_in` passes idle.
    pub refresh_token: String,
    pub refresh_expires_in: i64,
    pub agent_id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub supervisor: bool,
    /// agent, supervisor or admin.
    #[schema(example = "agent")]
    pub role: String,
    /// in_person, bulk, admin.
    pub permissions: Vec<String>,
}

/// A single-use ticket opening one WebSocket or event stream (`?ticket=`).
#[derive(Serialize, ToSchema)]
pub struct WsTicket {
    pub ticket: String,
    #[schema(example = 30)]
    pub expires_in: u64,
}

/// The agent's presence: his status, the channels he is logged into, his load.
#[derive(Serialize, ToSchema)]
pub struct PresenceView {
    pub agent_id: String,
    /// available, paused, inactive or offline.
    #[schema(example = "available")]
    pub status: String,
    pub channels: Vec<pb::ChannelLogin>,
    pub assigned: u32,
    pub offered: u32,
    pub max_concurrent: u32,
}

impl From<pb::AgentPresence> for PresenceView {
    fn from(p: pb::AgentPresence) -> Self {
        Self {
            status: status_name(p.status),
            agent_id: p.agent_id,
            channels: p.channels,
            assigned: p.assigned,
            offered: p.offered,
            max_concurrent: p.max_concurrent,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MessagesPage {
    pub messages: Vec<MessageView>,
    /// Empty on the last page.
    pub next_page_token: String,
}

#[derive(Serialize, ToSchema)]
pub struct MessageEnvelope {
    pub message: Option<MessageView>,
}

#[derive(Serialize, ToSchema)]
pub struct ConversationEnvelope {
    pub conversation: Option<ConversationView>,
}

#[derive(Serialize, ToSchema)]
pub struct Conversations {
    pub conversations: Vec<ConversationView>,
}

/// A conversation with its indicators (TTA across legs, waiting time, TM1R, TMR) and every
/// leg's protocol, first contact first.
#[derive(Serialize, ToSchema)]
pub struct ConversationDetail {
    pub conversation: ConversationView,
    pub metrics: pb::GetConversationMetricsResponse,
    pub protocols: Vec<pb::Protocol>,
}

/// One card of the agent's list (seed 004).
#[derive(Serialize, ToSchema)]
pub struct DeskCard {
    #[serde(flatten)]
    pub conversation: ConversationView,
    /// The contact's name, or his number on first contact (seed 001).
    #[schema(example = "Maria")]
    pub display_name: String,
    pub contact_phone: String,
    pub service_name: String,
    pub last_message_text: String,
    pub last_message_kind: String,
    pub last_message_direction: String,
    pub last_message_at_ms: i64,
    /// When the agent side last sent a message; 0: never.
    pub last_sent_at_ms: i64,
    /// Total handling time so far, across transfer legs.
    pub tta_ms: i64,
    pub unread: i32,
    pub has_draft: bool,
    /// green (> 16 h left), yellow (> 8 h), red (> 2 h) or black where the tenant shows
    /// bands and the channel has a customer window; empty otherwise.
    #[schema(example = "green")]
    pub expiry_band: String,
    /// When the customer window closes; 0: no window, or the customer never wrote.
    pub window_expires_at_ms: i64,
}

impl DeskCard {
    pub fn of(i: &pb::DeskItem) -> Option<Self> {
        Some(Self {
            conversation: ConversationView::from(i.conversation.as_ref()?),
            display_name: i.display_name.clone(),
            contact_phone: i.contact_phone.clone(),
            service_name: i.service_name.clone(),
            last_message_text: i.last_message_text.clone(),
            last_message_kind: i.last_message_kind.clone(),
            last_message_direction: i.last_message_direction.clone(),
            last_message_at_ms: i.last_message_at_ms,
            last_sent_at_ms: i.last_sent_at_ms,
            tta_ms: i.tta_ms,
            unread: i.unread,
            has_draft: i.has_draft,
            expiry_band: i.expiry_band.clone(),
            window_expires_at_ms: i.window_expires_at_ms,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeskPage {
    pub conversations: Vec<DeskCard>,
    /// "Mostrar mais": pass it back as `page_token`; empty on the last page.
    pub next_page_token: String,
}

#[derive(Serialize, ToSchema)]
pub struct Finished {
    pub conversation: Option<ConversationView>,
    pub protocol: Option<pb::Protocol>,
    /// The address the transcript was queued for; empty when none is sent.
    pub transcript_email: String,
}

#[derive(Serialize, ToSchema)]
pub struct Transferred {
    pub conversation: Option<ConversationView>,
    /// The leg that ended.
    pub previous: Option<pb::Protocol>,
    /// The new leg, with its own protocol linked to the previous one.
    pub current: Option<pb::Protocol>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryEntryView {
    pub conversation: Option<ConversationView>,
    pub protocols: Vec<pb::Protocol>,
    pub closed_at_ms: i64,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryPage {
    pub entries: Vec<HistoryEntryView>,
    pub next_page_token: String,
}

#[derive(Serialize, ToSchema)]
pub struct Drafts {
    pub drafts: Vec<pb::Draft>,
}

#[derive(Serialize, ToSchema)]
pub struct ReadMark {
    /// Customer messages the agent has not read in this conversation.
    pub unread: i32,
}

#[derive(Serialize, ToSchema)]
pub struct UnreadList {
    pub conversations: Vec<pb::UnreadCount>,
}

#[derive(Serialize, ToSchema)]
pub struct CannedResponses {
    pub canned_responses: Vec<pb::CannedResponse>,
}

#[derive(Serialize, ToSchema)]
pub struct Tags {
    pub tags: Vec<pb::Tag>,
}

#[derive(Serialize, ToSchema)]
pub struct TagEnvelope {
    pub tag: Option<pb::Tag>,
}

#[derive(Serialize, ToSchema)]
pub struct Started {
    pub conversation: Option<ConversationView>,
    pub message: Option<MessageView>,
    /// Conversations of the contact that this one replaced (same-customer rule).
    pub ended_conversation_ids: Vec<String>,
    /// A send scheduled for later: its id and time (no conversation yet).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scheduled_send_id: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub send_at_ms: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

#[derive(Serialize, ToSchema)]
pub struct ChannelTemplates {
    pub templates: Vec<pb::Template>,
}

#[derive(Serialize, ToSchema)]
pub struct ScheduledSends {
    pub sends: Vec<pb::ScheduledSend>,
}

#[derive(Serialize, ToSchema)]
pub struct ScheduledSendEnvelope {
    pub send: Option<pb::ScheduledSend>,
}

#[derive(Serialize, ToSchema)]
pub struct TransferOutcomes {
    pub outcomes: Vec<pb::BulkTransferOutcome>,
}

/// Agents by status (seed 001's board).
#[derive(Serialize, ToSchema, Default)]
pub struct StatusCounts {
    pub available: usize,
    pub paused: usize,
    pub inactive: usize,
    pub offline: usize,
}

/// One agent on the supervisor's board, with his conversations in progress.
#[derive(Serialize, ToSchema)]
pub struct AgentView {
    pub agent_id: String,
    pub name: String,
    #[schema(example = "available")]
    pub status: String,
    pub status_since_ms: i64,
    pub time_in_status_ms: i64,
    pub channels: Vec<pb::ChannelLogin>,
    pub assigned: u32,
    pub offered: u32,
    pub max_concurrent: u32,
    pub conversations: Vec<ConversationView>,
}

#[derive(Serialize, ToSchema)]
pub struct AgentBoard {
    pub agents: Vec<AgentView>,
    pub counts: StatusCounts,
}

#[derive(Serialize, ToSchema)]
pub struct QueueView {
    pub service_id: String,
    pub name: String,
    #[schema(example = "round_robin")]
    pub policy: String,
    pub waiting: u32,
    pub oldest_wait_ms: i64,
    pub offered: u32,
    /// The service's agents by status.
    pub agents: StatusCounts,
}

/// The tenant's "Aguardando" list: conversations no service took.
#[derive(Serialize, ToSchema)]
pub struct WaitingSummary {
    pub waiting: usize,
    pub oldest_wait_ms: i64,
}

#[derive(Serialize, ToSchema)]
pub struct QueueBoard {
    pub queues: Vec<QueueView>,
    pub aguardando: WaitingSummary,
}

/// One step of the router's reasoning about a conversation.
#[derive(Serialize, ToSchema)]
pub struct DecisionView {
    pub at_ms: i64,
    #[schema(example = "offered")]
    pub decision: String,
    pub agent_id: String,
    pub rule: String,
    /// The candidates and the numbers the rule compared.
    #[schema(value_type = Object)]
    pub explanation: Value,
}

#[derive(Serialize, ToSchema)]
pub struct Decisions {
    pub decisions: Vec<DecisionView>,
}

#[derive(Serialize, ToSchema)]
pub struct NoticeSent {
    pub notice_id: Uuid,
    /// Agents named (or every agent of the tenant).
    pub agents: usize,
    /// Agents whose feed got it now; a retry with the same `notice_id` delivers 0.
    pub delivered: usize,
}

/// The outcome of one conversation of a bulk finish: its protocol, or why it was refused.
#[derive(Serialize, ToSchema)]
pub struct FinishOutcome {
    pub conversation_id: String,
    pub finished: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_en: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_pt_br: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct FinishOutcomes {
    pub outcomes: Vec<FinishOutcome>,
}

/// The supervisor's live counters, one `counters` server-sent event each time.
#[derive(Serialize, ToSchema)]
pub struct Counters {
    pub at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agents: Option<StatusCounts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub board: Option<QueueBoard>,
    /// Set instead of the counters when they could not be read this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}
