//! Conversations that do not begin with the customer: an agent starting a WhatsApp
//! conversation with a number (seed 001, its checks in its order and its messages), and
//! in-person attendances registered outside the queue.

use atende_domain::channel::ChannelKind;
use atende_domain::conversation::{check_agent_start, Actor, Held, Status};
use atende_domain::ErrorCode;
use atende_proto::v1 as pb;
use atende_runtime::errors::{store_status, to_status};
use atende_runtime::{parse_id, status};
use atende_store::conversations::{self as conv, Identity, NewConversation};
use atende_store::{queue, StoreError};
use tonic::Status as GrpcStatus;
use uuid::Uuid;

use crate::api::SessionApi;
use crate::convert;

type Result<T> = std::result::Result<T, GrpcStatus>;

fn db(e: sqlx::Error) -> GrpcStatus {
    store_status(e.into())
}

/// The origin number: the one named, or the tenant's only WhatsApp channel.
async fn origin(api: &SessionApi, tenant: Uuid, raw: &str) -> Result<atende_store::admin::Channel> {
    if !raw.is_empty() {
        let id: Uuid = parse_id("channel_id", raw)?;
        return atende_store::admin::get_channel(&api.pool, id)
            .await
            .map_err(store_status)?
            .filter(|c| c.tenant_id == tenant && c.kind == "whatsapp")
            .ok_or_else(|| status(ErrorCode::UnknownChannel, "", Some("channel_id")));
    }
    let channels = atende_store::admin::list_channels(&api.pool, tenant, None, 100)
        .await
        .map_err(store_status)?;
    let mut whatsapp = channels.into_iter().filter(|c| c.kind == "whatsapp");
    match (whatsapp.next(), whatsapp.next()) {
        (Some(only), None) => Ok(only),
        (None, _) => Err(status(
            ErrorCode::UnknownChannel,
            "the tenant has no WhatsApp number",
            Some("channel_id"),
        )),
        _ => Err(status(
            ErrorCode::InvalidArgument,
            "choose the origin number: the tenant has several",
            Some("channel_id"),
        )),
    }
}

/// The client message id of the message a scheduled send starts with.
pub const SCHEDULED_PREFIX: &str = "scheduled:";

/// When a scheduled send may go out: from now (a minute of clock skew allowed) to a year ahead.
fn send_time(ms: i64) -> Result<time::OffsetDateTime> {
    let now = time::OffsetDateTime::now_utc();
    let at = atende_store::from_millis(ms);
    if at < now - time::Duration::minutes(1) || at > now + time::Duration::days(365) {
        return Err(status(
            ErrorCode::InvalidArgument,
            "send_at_ms must be from now to a year ahead",
            Some("send_at_ms"),
        ));
    }
    Ok(at)
}

/// A send for later: checked now (number, origin, agent and service, template or text),
/// then a durable timer in the scheduler's care hands the same request, for now, to this
/// role's jobs consumer at `send_at_ms` — where the customer's window, the agent's capacity
/// and the same-customer rule are checked as for any start.
async fn schedule(
    api: &SessionApi,
    tenant: Uuid,
    agent: Uuid,
    r: pb::StartConversationRequest,
) -> Result<pb::StartConversationResponse> {
    let at = send_time(r.send_at_ms)?;
    let id = Uuid::now_v7();
    let later = pb::StartConversationRequest {
        send_at_ms: 0,
        client_message_id: format!("{SCHEDULED_PREFIX}{id}"),
        ..r
    };
    let payload = prost::Message::encode_to_vec(&later);
    let mut tx = api.pool.begin().await.map_err(db)?;
    atende_store::scope_tenant(&mut tx, tenant)
        .await
        .map_err(store_status)?;
    atende_store::timers::schedule(
        &mut tx,
        &atende_store::timers::NewTimer {
            tenant,
            kind: "scheduled_send",
            key: &id.to_string(),
            due_at: at,
            subject: &api.subjects.job(tenant, "scheduled_send"),
            payload: &payload,
            order_key: &agent.to_string(),
        },
    )
    .await
    .map_err(store_status)?;
    tx.commit().await.map_err(db)?;
    tracing::info!(%tenant, %agent, scheduled = %id, "send scheduled");
    Ok(pb::StartConversationResponse {
        scheduled_send_id: id.to_string(),
        send_at_ms: r.send_at_ms,
        ..Default::default()
    })
}

/// Runs the scheduled sends handed over by their timers: each starts its conversation as
/// the agent would have then. A refusal (window, capacity, another agent) ends it, logged;
/// an infrastructure failure is retried.
pub async fn run_scheduled(
    api: SessionApi,
    bus: atende_bus::Bus,
    pool: sqlx::PgPool,
    redelivery: atende_bus::consumer::Redelivery,
    shutdown: tokio_util::sync::CancellationToken,
) -> atende_runtime::Result<()> {
    use atende_bus::consumer::{self, ConsumerSpec, Delivery, Outcome};
    let spec = ConsumerSpec {
        stream: atende_bus::StreamKind::Jobs,
        durable: "session-scheduled-sends",
        filter: Some(bus.subjects.jobs_of("scheduled_send")),
        redelivery,
        lanes: 1,
    };
    let handle = |d: Delivery| {
        let api = api.clone();
        async move {
            let r = match <pb::StartConversationRequest as prost::Message>::decode(d.payload.as_ref()) {
                Ok(r) => r,
                Err(e) => return Outcome::Poison(format!("undecodable scheduled send: {e}")),
            };
            let Ok(tenant) = Uuid::parse_str(&r.tenant_id) else {
                return Outcome::Poison("scheduled send without a tenant".into());
            };
            let id = r.client_message_id.clone();
            match start(&api, tenant, r).await {
                Ok(done) => {
                    tracing::info!(scheduled = %id, conversation = ?done.conversation.map(|c| c.id), "scheduled send started its conversation");
                    Outcome::Ack
                }
                Err(s) if matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Internal) => {
                    Outcome::Retry(s.message().to_string())
                }
                Err(s) => {
                    let code = atende_runtime::status_code_of(&s);
                    tracing::warn!(scheduled = %id, ?code, "scheduled send refused when due");
                    Outcome::Ack
                }
            }
        }
    };
    consumer::run(bus, pool, spec, shutdown, handle).await?;
    Ok(())
}

/// The origin number's template `t` names, checked against what it asks for: the text the
/// conversation shows and what the channel-adapter sends.
async fn template_send(
    api: &SessionApi,
    tenant: Uuid,
    channel: Uuid,
    t: &pb::TemplateUse,
) -> Result<(String, crate::outbound::TemplateSend)> {
    let row = atende_store::templates::get(&api.pool, tenant, channel, t.name.trim(), t.language.trim())
        .await
        .map_err(store_status)?
        .ok_or_else(|| {
            status(
                ErrorCode::TemplateNotFound,
                &format!("{} ({})", t.name, t.language),
                Some("template"),
            )
        })?;
    let template = row.to_domain();
    let used = atende_domain::template::Use {
        header: Some(t.header.clone()).filter(|h| !h.is_empty()),
        body: t.body.clone(),
        buttons: t
            .buttons
            .iter()
            .map(|b| (usize::try_from(b.index).unwrap_or(usize::MAX), b.text.clone()))
            .collect(),
    };
    template
        .check(&used)
        .map_err(|e| status(e.code, &e.detail, Some("template")))?;
    let components =
        serde_json::to_value(template.send_components(&used)).map_err(|e| atende_runtime::errors::internal(&e))?;
    Ok((
        template.render(&used),
        crate::outbound::TemplateSend {
            name: template.name.clone(),
            language: template.language.clone(),
            components,
        },
    ))
}

pub async fn start(
    api: &SessionApi,
    tenant: Uuid,
    r: pb::StartConversationRequest,
) -> Result<pb::StartConversationResponse> {
    let agent: Uuid = parse_id("agent_id", &r.agent_id)?;
    // "Número inválido, corrija e tente novamente".
    let phone = atende_domain::phone::parse_br_phone(&r.phone).map_err(|e| status(e.code, &e.detail, Some("phone")))?;
    let channel = origin(api, tenant, &r.channel_id).await?;
    // A template of the origin number, checked now; or free text, for inside the window.
    let template = match &r.template {
        Some(t) => Some(template_send(api, tenant, channel.id, t).await?),
        None => None,
    };
    let text = match &template {
        Some((shown, _)) => shown.clone(),
        None => r.text.trim().to_string(),
    };
    if text.is_empty() || text.chars().count() > 4096 {
        return Err(status(
            ErrorCode::InvalidArgument,
            "text must have 1 to 4096 characters (or send a template)",
            Some("text"),
        ));
    }
    let who = atende_store::admin::get_agent(&api.pool, tenant, agent)
        .await
        .map_err(store_status)?
        .ok_or_else(|| status(ErrorCode::NotFound, "agent", Some("agent_id")))?;
    let service = api.agent_service(tenant, agent, &r.service_id).await?;
    if r.send_at_ms > 0 {
        return schedule(api, tenant, agent, r).await;
    }
    // A scheduled send delivered twice (timers fire at least once) starts nothing twice.
    if let Some(cid) = Some(r.client_message_id.as_str()).filter(|c| c.starts_with(SCHEDULED_PREFIX)) {
        if let Some(existing) = conv::message_by_client_id_in_tenant(&api.pool, tenant, cid)
            .await
            .map_err(store_status)?
        {
            let c = conv::get_conversation(&api.pool, tenant, existing.conversation_id)
                .await
                .map_err(store_status)?;
            return Ok(pb::StartConversationResponse {
                conversation: c.as_ref().map(convert::conversation),
                message: Some(convert::message(&existing)),
                ..Default::default()
            });
        }
    }
    // The router's live count is the capacity that matters.
    let presence = api.presence(tenant, agent).await?;
    let load = presence.assigned + presence.offered;
    let max = presence.max_concurrent.max(who.max_concurrent.max(0) as u32);
    let wa_id = atende_domain::phone::canonical_wa_id(phone.digits());

    let now = time::OffsetDateTime::now_utc();
    let mut tx = api.pool.begin().await.map_err(db)?;
    atende_store::scope_tenant(&mut tx, tenant)
        .await
        .map_err(store_status)?;
    let name = Some(r.contact_name.trim()).filter(|n| !n.is_empty());
    let ids = [Identity {
        kind: "wa_phone",
        scope: String::new(),
        value: wa_id.clone(),
    }];
    let contact = conv::find_or_create_contact(&mut tx, tenant, &ids, name)
        .await
        .map_err(store_status)?;
    let open = conv::open_conversations_of_contact(&mut tx, contact)
        .await
        .map_err(store_status)?;
    let held: Vec<Held<Uuid, Uuid>> = open
        .iter()
        .map(|c| Held {
            id: c.id,
            status: Status::parse(&c.status).unwrap_or(Status::Queued),
            agent: c.agent_id,
        })
        .collect();
    let to_end = check_agent_start(agent, load, max, &held).map_err(to_status)?;
    // Only a template may open a conversation outside the customer's window.
    if template.is_none() {
        let last = conv::customer_window(&mut *tx, contact, channel.id)
            .await
            .map_err(store_status)?
            .map(|t| atende_domain::Timestamp(atende_store::to_millis(t)));
        atende_domain::window::check_free_form(
            ChannelKind::Whatsapp,
            last,
            atende_domain::Timestamp(atende_store::to_millis(now)),
        )
        .map_err(|e| status(e.code, &e.detail, Some("text")))?;
    }
    for id in &to_end {
        queue::dequeue(&mut tx, tenant, *id).await.map_err(store_status)?;
        conv::set_status_by(
            &mut tx,
            *id,
            Status::Abandoned.as_str(),
            None,
            Some("agent_started_conversation"),
            Actor::Agent(agent),
        )
        .await
        .map_err(store_status)?;
    }
    let protocol = conv::next_protocol(&mut tx, tenant, now).await.map_err(store_status)?;
    let id = Uuid::now_v7();
    conv::insert_conversation(
        &mut tx,
        &NewConversation {
            id,
            tenant_id: tenant,
            contact_id: contact,
            channel_id: channel.id,
            service_id: Some(service),
            status: Status::Queued.as_str(),
            protocol,
            at: now,
            actor: Actor::Agent(agent),
        },
    )
    .await
    .map_err(store_status)?;
    tx.commit().await.map_err(db)?;

    // Straight to the agent through the router (the capacity gate), or nowhere.
    if let Err(refused) = api.assign_directed(tenant, id, agent).await {
        // Capacity went between the check and the assignment: the attempt ends here.
        let mut tx = api.pool.begin().await.map_err(db)?;
        atende_store::scope_tenant(&mut tx, tenant)
            .await
            .map_err(store_status)?;
        conv::set_status_by(
            &mut tx,
            id,
            Status::Abandoned.as_str(),
            None,
            Some("not_started"),
            Actor::Agent(agent),
        )
        .await
        .map_err(store_status)?;
        tx.commit().await.map_err(db)?;
        return Err(refused);
    }
    let sent = crate::api::send_text_as_agent(
        api,
        tenant,
        id,
        agent,
        crate::api::Reply {
            text: &text,
            client_id: Some(r.client_message_id.as_str()).filter(|c| !c.is_empty()),
            reply_to_message_id: "",
            template: template.map(|(_, send)| send),
        },
    )
    .await?;
    let c = conv::get_conversation(&api.pool, tenant, id)
        .await
        .map_err(store_status)?
        .ok_or_else(|| status(ErrorCode::Internal, "conversation vanished", None))?;
    Ok(pb::StartConversationResponse {
        conversation: Some(convert::conversation(&c)),
        message: Some(sent),
        ended_conversation_ids: to_end.iter().map(Uuid::to_string).collect(),
        ..Default::default()
    })
}

pub async fn in_person(
    api: &SessionApi,
    tenant: Uuid,
    r: pb::RegisterInPersonRequest,
) -> Result<pb::RegisterInPersonResponse> {
    let agent: Uuid = parse_id("agent_id", &r.agent_id)?;
    let service: Uuid = parse_id("service_id", &r.service_id)?;
    let who = atende_store::admin::get_agent(&api.pool, tenant, agent)
        .await
        .map_err(store_status)?
        .ok_or_else(|| status(ErrorCode::NotFound, "agent", Some("agent_id")))?;
    if !who.can_attend_in_person {
        return Err(status(
            ErrorCode::PermissionDenied,
            "in-person attendance",
            Some("agent_id"),
        ));
    }
    atende_store::admin::get_service(&api.pool, tenant, service)
        .await
        .map_err(store_status)?
        .ok_or_else(|| status(ErrorCode::NotFound, "service", Some("service_id")))?;
    let description = r.description.trim();
    if description.is_empty() || description.chars().count() > 2000 {
        return Err(status(
            ErrorCode::InvalidArgument,
            "description must have 1 to 2000 characters",
            Some("description"),
        ));
    }
    let now = time::OffsetDateTime::now_utc();
    let mut tx = api.pool.begin().await.map_err(db)?;
    atende_store::scope_tenant(&mut tx, tenant)
        .await
        .map_err(store_status)?;
    let contact = if r.contact_id.is_empty() {
        let name = r.contact_name.trim();
        if name.is_empty() {
            return Err(status(
                ErrorCode::InvalidArgument,
                "contact_id or contact_name",
                Some("contact_name"),
            ));
        }
        let mut ids = Vec::new();
        if !r.contact_phone.trim().is_empty() {
            let phone = atende_domain::phone::parse_br_phone(&r.contact_phone)
                .map_err(|e| status(e.code, &e.detail, Some("contact_phone")))?;
            ids.push(Identity {
                kind: "wa_phone",
                scope: String::new(),
                value: atende_domain::phone::canonical_wa_id(phone.digits()),
            });
        }
        let email = Some(r.contact_email.trim()).filter(|e| !e.is_empty());
        if email.is_some_and(|e| !crate::mail::valid_address(e)) {
            return Err(status(
                ErrorCode::InvalidArgument,
                "not an e-mail address",
                Some("contact_email"),
            ));
        }
        let id = if ids.is_empty() {
            atende_store::legs::create_contact(&mut tx, tenant, name)
                .await
                .map_err(store_status)?
        } else {
            conv::find_or_create_contact(&mut tx, tenant, &ids, Some(name))
                .await
                .map_err(store_status)?
        };
        atende_store::mail::contact_email(&mut tx, tenant, id, email)
            .await
            .map_err(store_status)?;
        id
    } else {
        let id: Uuid = parse_id("contact_id", &r.contact_id)?;
        if !atende_store::legs::contact_exists(&mut *tx, tenant, id)
            .await
            .map_err(store_status)?
        {
            return Err(status(ErrorCode::NotFound, "contact", Some("contact_id")));
        }
        id
    };
    let protocol = conv::next_protocol(&mut tx, tenant, now).await.map_err(store_status)?;
    let id = Uuid::now_v7();
    atende_store::legs::insert_in_person(
        &mut tx,
        id,
        tenant,
        &protocol,
        service,
        contact,
        agent,
        description,
        now,
    )
    .await
    .map_err(|e: StoreError| store_status(e))?;
    tx.commit().await.map_err(db)?;
    Ok(pb::RegisterInPersonResponse {
        id: id.to_string(),
        protocol,
        contact_id: contact.to_string(),
        at_ms: atende_store::to_millis(now),
    })
}

pub async fn list_waiting(api: &SessionApi, tenant: Uuid) -> Result<pb::ListWaitingResponse> {
    let ids = atende_store::legs::waiting_list(&api.pool, tenant, 500)
        .await
        .map_err(store_status)?;
    let mut conversations = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(c) = conv::get_conversation(&api.pool, tenant, id)
            .await
            .map_err(store_status)?
        {
            conversations.push(convert::conversation(&c));
        }
    }
    Ok(pb::ListWaitingResponse { conversations })
}

/// An agent takes a conversation from "Aguardando": it enters a service he works in (its
/// first protocol takes the service) and goes to him through the router.
pub async fn claim_waiting(
    api: &SessionApi,
    tenant: Uuid,
    r: pb::ClaimWaitingRequest,
) -> Result<pb::ClaimWaitingResponse> {
    let id: Uuid = parse_id("conversation_id", &r.conversation_id)?;
    let agent: Uuid = parse_id("agent_id", &r.agent_id)?;
    let service = api.agent_service(tenant, agent, &r.service_id).await?;
    api.can_take(tenant, agent).await?;
    let now = time::OffsetDateTime::now_utc();
    let mut tx = api.pool.begin().await.map_err(db)?;
    atende_store::scope_tenant(&mut tx, tenant)
        .await
        .map_err(store_status)?;
    let found = conv::get_conversation(&mut *tx, tenant, id)
        .await
        .map_err(store_status)?
        .ok_or_else(|| status(ErrorCode::NotFound, "conversation", Some("conversation_id")))?;
    let open = conv::open_conversations_of_contact(&mut tx, found.contact_id)
        .await
        .map_err(store_status)?;
    let c = open
        .iter()
        .find(|c| c.id == id)
        .filter(|c| c.status == Status::Queued.as_str() && c.service_id.is_none())
        .cloned()
        .ok_or_else(|| status(ErrorCode::ConversationNotWaiting, "", Some("conversation_id")))?;
    let t = atende_store::admin::get_tenant(&mut *tx, tenant)
        .await
        .map_err(store_status)?
        .ok_or_else(|| status(ErrorCode::NotFound, "tenant", Some("tenant_id")))?;
    let view = convert::open_view(&open);
    atende_domain::conversation::SameCustomerRule {
        allow_simultaneous: t.allow_simultaneous_conversations,
    }
    .check_transfer_to_agent(&view, id, Some(service))
    .map_err(|e| status(e.code, &e.detail, Some("service_id")))?;
    atende_store::legs::enter_service(&mut tx, tenant, id, service, now)
        .await
        .map_err(store_status)?;
    conv::set_status_by(
        &mut tx,
        id,
        Status::Queued.as_str(),
        None,
        Some("claimed_from_waiting"),
        Actor::Agent(agent),
    )
    .await
    .map_err(store_status)?;
    tx.commit().await.map_err(db)?;
    if let Err(refused) = api.assign_directed(tenant, id, agent).await {
        // Capacity went in between: it waits in the service under its policy.
        let c = conv::get_conversation(&api.pool, tenant, id)
            .await
            .map_err(store_status)?
            .unwrap_or(c);
        let mut tx = api.pool.begin().await.map_err(db)?;
        atende_store::scope_tenant(&mut tx, tenant)
            .await
            .map_err(store_status)?;
        crate::bot::announce_queued(&mut tx, &api.subjects, &c, service)
            .await
            .map_err(store_status)?;
        tx.commit().await.map_err(db)?;
        return Err(refused);
    }
    let c = conv::get_conversation(&api.pool, tenant, id)
        .await
        .map_err(store_status)?
        .ok_or_else(|| status(ErrorCode::Internal, "conversation vanished", None))?;
    Ok(pb::ClaimWaitingResponse {
        conversation: Some(convert::conversation(&c)),
    })
}

fn scheduled_pb(p: &atende_store::timers::Pending) -> Option<pb::ScheduledSend> {
    let r = <pb::StartConversationRequest as prost::Message>::decode(p.payload.as_slice()).ok()?;
    Some(pb::ScheduledSend {
        id: p.key.clone(),
        agent_id: r.agent_id,
        phone: r.phone,
        channel_id: r.channel_id,
        service_id: r.service_id,
        text: r.text,
        template: r.template,
        send_at_ms: atende_store::to_millis(p.due_at),
    })
}

/// Whether the caller sees and changes the whole tenant's scheduled sends.
async fn supervises(api: &SessionApi, tenant: Uuid, agent: Uuid) -> Result<bool> {
    Ok(atende_store::admin::get_agent(&api.pool, tenant, agent)
        .await
        .map_err(store_status)?
        .is_some_and(|a| a.supervises()))
}

pub async fn list_scheduled(
    api: &SessionApi,
    tenant: Uuid,
    r: pb::ListScheduledSendsRequest,
) -> Result<pb::ListScheduledSendsResponse> {
    let agent: Uuid = parse_id("agent_id", &r.agent_id)?;
    let mine = agent.to_string();
    let only = if supervises(api, tenant, agent).await? {
        None
    } else {
        Some(mine.as_str())
    };
    let pending = atende_store::timers::pending(&api.pool, tenant, "scheduled_send", only)
        .await
        .map_err(store_status)?;
    Ok(pb::ListScheduledSendsResponse {
        sends: pending.iter().filter_map(scheduled_pb).collect(),
    })
}

/// The pending scheduled send `id`, locked, when the caller may change it: its agent's, or
/// any of the tenant's for a supervisor. Another agent's is NOT_CONVERSATION_OWNER; one that
/// went out, was cancelled or never was is NOT_FOUND.
async fn lock_scheduled(
    api: &SessionApi,
    tx: &mut sqlx::PgConnection,
    tenant: Uuid,
    id: &str,
    caller: Uuid,
) -> Result<atende_store::timers::Pending> {
    let id: Uuid = parse_id("id", id)?;
    let p = atende_store::timers::lock_pending(tx, tenant, "scheduled_send", &id.to_string())
        .await
        .map_err(store_status)?
        .ok_or_else(|| {
            status(
                ErrorCode::NotFound,
                "no pending scheduled send with this id",
                Some("id"),
            )
        })?;
    if p.order_key != caller.to_string() && !supervises(api, tenant, caller).await? {
        return Err(status(
            ErrorCode::NotConversationOwner,
            "another agent's scheduled send",
            Some("id"),
        ));
    }
    Ok(p)
}

pub async fn reschedule(
    api: &SessionApi,
    tenant: Uuid,
    r: pb::RescheduleSendRequest,
) -> Result<pb::RescheduleSendResponse> {
    let caller: Uuid = parse_id("agent_id", &r.agent_id)?;
    let at = send_time(r.send_at_ms)?;
    let mut tx = api.pool.begin().await.map_err(db)?;
    atende_store::scope_tenant(&mut tx, tenant)
        .await
        .map_err(store_status)?;
    let p = lock_scheduled(api, &mut tx, tenant, &r.id, caller).await?;
    atende_store::timers::schedule(
        &mut tx,
        &atende_store::timers::NewTimer {
            tenant,
            kind: "scheduled_send",
            key: &p.key,
            due_at: at,
            subject: &api.subjects.job(tenant, "scheduled_send"),
            payload: &p.payload,
            order_key: &p.order_key,
        },
    )
    .await
    .map_err(store_status)?;
    tx.commit().await.map_err(db)?;
    let moved = atende_store::timers::Pending { due_at: at, ..p };
    Ok(pb::RescheduleSendResponse {
        send: scheduled_pb(&moved),
    })
}

pub async fn cancel_scheduled(
    api: &SessionApi,
    tenant: Uuid,
    r: pb::CancelScheduledSendRequest,
) -> Result<pb::CancelScheduledSendResponse> {
    let caller: Uuid = parse_id("agent_id", &r.agent_id)?;
    let mut tx = api.pool.begin().await.map_err(db)?;
    atende_store::scope_tenant(&mut tx, tenant)
        .await
        .map_err(store_status)?;
    let p = lock_scheduled(api, &mut tx, tenant, &r.id, caller).await?;
    atende_store::timers::cancel(
        &mut tx,
        tenant,
        "scheduled_send",
        &p.key,
        time::OffsetDateTime::now_utc(),
    )
    .await
    .map_err(store_status)?;
    tx.commit().await.map_err(db)?;
    tracing::info!(%tenant, scheduled = %p.key, "scheduled send cancelled");
    Ok(pb::CancelScheduledSendResponse {})
}
