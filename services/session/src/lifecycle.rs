//! Finishing and transferring conversations, and the reads of their legs, transitions and
//! indicators.
//!
//! A finish or a transfer is one transaction: the conversation row (and, for a transfer,
//! every open conversation of the contact, so the same-customer rule is checked against
//! committed state) is locked, the assignment and any pending offer are closed in Postgres,
//! the protocol legs are written, the transition is recorded, and a route request goes to
//! the outbox. That request tells the router to free the previous holder's capacity (only if
//! he still holds this conversation for the old service, so a redelivery never frees the
//! next leg) and, for a transfer, to route the conversation under the new service's policy.
//! Capacity is therefore freed exactly once, durably, through the router.

use atende_domain::conversation::{Actor, FinishPolicy, SameCustomerRule, Status};
use atende_domain::ErrorCode;
use atende_proto::v1::{self as pb, domain_event};
use atende_runtime::errors::{store_status, to_status};
use atende_runtime::status;
use atende_store::conversations::{self as conv, Conversation};
use atende_store::{legs, offers, queue, routing, StoreError};
use prost::Message as _;
use sqlx::PgConnection;
use tonic::Status as GrpcStatus;
use uuid::Uuid;

use crate::convert;

fn db(e: sqlx::Error) -> GrpcStatus {
    store_status(e.into())
}

/// Who is acting on `c`: its agent, or a supervisor of the tenant; anyone else is refused.
async fn actor(tx: &mut PgConnection, tenant: Uuid, c: &Conversation, agent: Uuid) -> Result<Actor, GrpcStatus> {
    if c.agent_id == Some(agent) && c.status == Status::Assigned.as_str() {
        return Ok(Actor::Agent(agent));
    }
    let is_supervisor = atende_store::admin::get_agent(&mut *tx, tenant, agent)
        .await
        .map_err(store_status)?
        .is_some_and(|a| a.supervises());
    if is_supervisor {
        Ok(Actor::Supervisor(agent))
    } else {
        Err(status(ErrorCode::NotConversationOwner, "", Some("agent_id")))
    }
}

/// Closes the conversation's assignment and pending offer in Postgres; returns the agent who
/// held capacity for it, if anyone did.
async fn end_hold(
    tx: &mut PgConnection,
    tenant: Uuid,
    conversation: Uuid,
    reason: &str,
) -> Result<Option<Uuid>, StoreError> {
    let assigned = routing::release_assignment(tx, tenant, conversation, reason).await?;
    let offer = offers::delete_offer(tx, tenant, conversation).await?;
    queue::dequeue(tx, tenant, conversation).await?;
    Ok(assigned.or(offer.map(|o| o.agent_id)))
}

/// The durable message to the router: free `holder`'s capacity for the old leg in
/// `from_service`, then (with `to_service`) route the conversation there.
#[allow(clippy::too_many_arguments)]
async fn enqueue_route(
    tx: &mut PgConnection,
    subjects: &atende_bus::Subjects,
    c: &Conversation,
    to_service: Option<Uuid>,
    protocol: &str,
    holder: Option<Uuid>,
    from_service: Option<Uuid>,
    reason: &str,
) -> Result<(), StoreError> {
    let release = holder.zip(from_service);
    let Some(subject_service) = to_service.or(from_service) else {
        return Ok(());
    };
    if to_service.is_none() && release.is_none() {
        return Ok(());
    }
    let req = pb::RouteRequest {
        tenant_id: c.tenant_id.to_string(),
        service_id: to_service.map(|s| s.to_string()).unwrap_or_default(),
        conversation_id: c.id.to_string(),
        channel_kind: convert::channel_kind(&c.channel_kind),
        queued_at_ms: atende_store::to_millis(time::OffsetDateTime::now_utc()),
        priority: 0,
        release_agent_id: release.map(|(a, _)| a.to_string()).unwrap_or_default(),
        release_service_id: release.map(|(_, s)| s.to_string()).unwrap_or_default(),
        release_reason: reason.to_string(),
    };
    let kind = if to_service.is_some() { "route" } else { "release" };
    atende_store::outbox::enqueue(
        tx,
        c.tenant_id,
        &c.id.to_string(),
        &subjects.route(c.tenant_id, subject_service),
        &format!("{kind}:{}:{protocol}", c.id),
        &req.encode_to_vec(),
        &atende_telemetry::propagation::current_as_pairs(),
    )
    .await?;
    Ok(())
}

pub struct FinishForm<'a> {
    pub qualification: &'a str,
    pub description: &'a str,
    pub external_protocol: &'a str,
    /// Where the transcript goes (empty: the contact's e-mail).
    pub transcript_email: &'a str,
}

pub struct Finished {
    pub conversation: Conversation,
    pub protocol: legs::Protocol,
    /// Where the transcript was queued, if anywhere.
    pub transcript_email: Option<String>,
}

/// Finishes the conversation; finishing it again returns it as it is.
pub async fn finish(
    pool: &sqlx::PgPool,
    subjects: &atende_bus::Subjects,
    tenant: Uuid,
    conversation: Uuid,
    agent: Uuid,
    form: FinishForm<'_>,
) -> Result<Finished, GrpcStatus> {
    let mut tx = pool.begin().await.map_err(db)?;
    atende_store::scope_tenant(&mut tx, tenant)
        .await
        .map_err(store_status)?;
    let c = conv::lock_conversation(&mut tx, tenant, conversation)
        .await
        .map_err(store_status)?
        .ok_or_else(|| status(ErrorCode::NotFound, "conversation", Some("conversation_id")))?;
    let st = Status::parse(&c.status).unwrap_or(Status::Finished);
    if st == Status::Finished {
        let p = legs::get_protocol(&mut *tx, tenant, &c.protocol)
            .await
            .map_err(store_status)?
            .ok_or_else(|| status(ErrorCode::Internal, "protocol", None))?;
        return Ok(Finished {
            conversation: c,
            protocol: p,
            transcript_email: None,
        });
    }
    st.transition(Status::Finished).map_err(to_status)?;
    let who = actor(&mut tx, tenant, &c, agent).await?;
    let service = match c.service_id {
        Some(s) => atende_store::admin::get_service(&mut *tx, tenant, s)
            .await
            .map_err(store_status)?,
        None => None,
    };
    let codes = service.as_ref().map(|s| s.qualification_codes()).unwrap_or_default();
    let tenant_row = atende_store::admin::get_tenant(&mut *tx, tenant)
        .await
        .map_err(store_status)?
        .ok_or_else(|| status(ErrorCode::NotFound, "tenant", Some("tenant_id")))?;
    let policy = FinishPolicy {
        qualifications: &codes,
        require_external_protocol: tenant_row.require_external_protocol,
    };
    let f = policy
        .validate(form.qualification, form.description, form.external_protocol)
        .map_err(|e| {
            let field = match e.code {
                ErrorCode::InvalidQualification => "qualification",
                ErrorCode::ExternalProtocolRequired | ErrorCode::ExternalProtocolInvalid => "external_protocol",
                _ => "description",
            };
            status(e.code, &e.detail, Some(field))
        })?;
    // The transcript, where the tenant and the service both send it: to the typed address
    // (saved on a contact without one) or the contact's own.
    let sends_transcript = crate::mail::Settings::from_tenant(&tenant_row).is_some_and(|m| m.transcript_enabled)
        && service.as_ref().is_some_and(|s| s.send_transcript);
    let transcript_email = if sends_transcript {
        let typed = Some(form.transcript_email.trim()).filter(|e| !e.is_empty());
        if typed.is_some_and(|e| !crate::mail::valid_address(e)) {
            return Err(status(
                ErrorCode::InvalidArgument,
                "not an e-mail address",
                Some("transcript_email"),
            ));
        }
        let current = atende_store::mail::contact_email(&mut tx, tenant, c.contact_id, typed)
            .await
            .map_err(store_status)?;
        typed.map(str::to_string).or(current)
    } else {
        None
    };
    if let Some(to) = &transcript_email {
        atende_store::mail::queue_transcript(&mut tx, tenant, conversation, &c.protocol, to)
            .await
            .map_err(store_status)?;
    }
    legs::qualify(
        &mut tx,
        tenant,
        &c.protocol,
        f.qualification.as_deref(),
        f.description.as_deref(),
        f.external_protocol.as_deref(),
    )
    .await
    .map_err(store_status)?;
    let holder = end_hold(&mut tx, tenant, conversation, "finished")
        .await
        .map_err(store_status)?;
    conv::set_status_by(
        &mut tx,
        conversation,
        Status::Finished.as_str(),
        c.agent_id,
        Some("finished"),
        who,
    )
    .await
    .map_err(store_status)?;
    enqueue_route(
        &mut tx,
        subjects,
        &c,
        None,
        &c.protocol,
        holder,
        c.service_id,
        "finished",
    )
    .await
    .map_err(store_status)?;
    let closed = conv::get_conversation(&mut *tx, tenant, conversation)
        .await
        .map_err(store_status)?
        .ok_or_else(|| status(ErrorCode::Internal, "conversation vanished", None))?;
    convert::emit(
        &mut tx,
        subjects,
        tenant,
        "conversation.closed",
        domain_event::Kind::ConversationClosed(pb::ConversationClosed {
            conversation: Some(convert::conversation(&closed)),
            reason: "finished".into(),
        }),
    )
    .await
    .map_err(store_status)?;
    // The service's satisfaction question, inside the customer's window only.
    if let Some(question) = service.as_ref().and_then(|s| s.csat_question.clone()) {
        ask_satisfaction(&mut tx, subjects, &closed, &question).await?;
    }
    let p = legs::get_protocol(&mut *tx, tenant, &c.protocol)
        .await
        .map_err(store_status)?
        .ok_or_else(|| status(ErrorCode::Internal, "protocol", None))?;
    tx.commit().await.map_err(db)?;
    tracing::info!(%conversation, protocol = %c.protocol, transcript = transcript_email.is_some(), "conversation finished");
    Ok(Finished {
        conversation: closed,
        protocol: p,
        transcript_email,
    })
}

/// Sends the satisfaction question in the finished conversation when the customer's window
/// is open, and marks the protocol as asking.
async fn ask_satisfaction(
    tx: &mut PgConnection,
    subjects: &atende_bus::Subjects,
    c: &Conversation,
    question: &str,
) -> Result<(), GrpcStatus> {
    let Some(kind) = atende_domain::channel::ChannelKind::parse(&c.channel_kind) else {
        return Ok(());
    };
    let now = atende_domain::Timestamp(atende_store::to_millis(time::OffsetDateTime::now_utc()));
    let last = conv::customer_window(&mut *tx, c.contact_id, c.reply_channel_id)
        .await
        .map_err(store_status)?
        .map(|t| atende_domain::Timestamp(atende_store::to_millis(t)));
    if atende_domain::window::check_free_form(kind, last, now).is_err() {
        return Ok(()); // outside the window only a template could ask
    }
    let Some(to) = conv::whatsapp_address(&mut *tx, c.tenant_id, c.contact_id)
        .await
        .map_err(store_status)?
    else {
        return Ok(());
    };
    crate::outbound::send_text(
        tx,
        subjects,
        c,
        kind,
        crate::outbound::Text {
            text: question,
            agent: None,
            client_message_id: None,
            reply_to_provider_message_id: None,
            to,
            template: None,
        },
    )
    .await
    .map_err(store_status)?;
    legs::request_csat(tx, c.tenant_id, &c.protocol)
        .await
        .map_err(store_status)
}

/// Where a transfer goes: a service (`#`), re-entering routing under its policy, or a user
/// (`@`) in a service he works in, who gets it directly.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    Service(Uuid),
    Agent { agent: Uuid, service: Uuid },
}

impl Target {
    pub fn service(self) -> Uuid {
        match self {
            Target::Service(s) | Target::Agent { service: s, .. } => s,
        }
    }
}

pub struct Transferred {
    pub conversation: Conversation,
    pub previous: legs::Protocol,
    pub current: legs::Protocol,
}

/// Moves an open conversation into `target` under a new protocol (see the module docs).
#[allow(clippy::too_many_arguments)]
pub async fn transfer(
    pool: &sqlx::PgPool,
    subjects: &atende_bus::Subjects,
    tenant: Uuid,
    conversation: Uuid,
    agent: Uuid,
    to: Target,
    qualification: &str,
    description: &str,
) -> Result<Transferred, GrpcStatus> {
    let target = to.service();
    let mut tx = pool.begin().await.map_err(db)?;
    atende_store::scope_tenant(&mut tx, tenant)
        .await
        .map_err(store_status)?;
    let found = conv::get_conversation(&mut *tx, tenant, conversation)
        .await
        .map_err(store_status)?
        .ok_or_else(|| status(ErrorCode::NotFound, "conversation", Some("conversation_id")))?;
    // Every open conversation of the contact, locked in one order: two transfers of one
    // contact's conversations serialise here and the second sees the first's outcome.
    let open = conv::open_conversations_of_contact(&mut tx, found.contact_id)
        .await
        .map_err(store_status)?;
    let Some(c) = open.iter().find(|o| o.id == conversation).cloned() else {
        return Err(status(ErrorCode::ConversationClosed, "", Some("conversation_id")));
    };
    let who = actor(&mut tx, tenant, &c, agent).await?;
    let target_service = atende_store::admin::get_service(&mut *tx, tenant, target)
        .await
        .map_err(store_status)?
        .ok_or_else(|| status(ErrorCode::NotFound, "service", Some("target_service_id")))?;
    let tenant_row = atende_store::admin::get_tenant(&mut *tx, tenant)
        .await
        .map_err(store_status)?
        .ok_or_else(|| status(ErrorCode::NotFound, "tenant", Some("tenant_id")))?;
    let rule = SameCustomerRule {
        allow_simultaneous: tenant_row.allow_simultaneous_conversations,
    };
    let view = convert::open_view(&open);
    match to {
        Target::Service(_) => rule.check_transfer(&view, conversation, Some(target)),
        Target::Agent { .. } => rule.check_transfer_to_agent(&view, conversation, Some(target)),
    }
    .map_err(|e| status(e.code, &e.detail, Some("target_service_id")))?;
    // The leg that ends may be qualified too (each protocol has its own qualification).
    let (q, d) = if qualification.trim().is_empty() && description.trim().is_empty() {
        (None, None)
    } else {
        let codes = match c.service_id {
            Some(s) => atende_store::admin::get_service(&mut *tx, tenant, s)
                .await
                .map_err(store_status)?
                .map(|s| s.qualification_codes())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let f = FinishPolicy {
            qualifications: &codes,
            require_external_protocol: false,
        }
        .validate(qualification, description, "")
        .map_err(|e| status(e.code, &e.detail, Some("qualification")))?;
        (f.qualification, f.description)
    };
    legs::qualify(&mut tx, tenant, &c.protocol, q.as_deref(), d.as_deref(), None)
        .await
        .map_err(store_status)?;
    let now = time::OffsetDateTime::now_utc();
    let next = conv::next_protocol(&mut tx, tenant, now).await.map_err(store_status)?;
    let holder = end_hold(&mut tx, tenant, conversation, "transferred")
        .await
        .map_err(store_status)?;
    let actor_id = who.parts().1;
    let previous = legs::open_next_leg(&mut tx, tenant, conversation, &next, target, actor_id, now)
        .await
        .map_err(store_status)?;
    let moved = conv::set_status_by(
        &mut tx,
        conversation,
        Status::Queued.as_str(),
        None,
        Some("transferred"),
        who,
    )
    .await;
    match moved {
        Err(e) if e.is_unique_violation() => {
            // The index behind the rule: a concurrent opening in the target committed first.
            return Err(status(ErrorCode::CustomerInService, "", Some("target_service_id")));
        }
        other => other.map_err(store_status)?,
    }
    let after = conv::get_conversation(&mut *tx, tenant, conversation)
        .await
        .map_err(store_status)?
        .ok_or_else(|| status(ErrorCode::Internal, "conversation vanished", None))?;
    // To a service: routed there under its policy. To a user: only the release goes through
    // the outbox; the caller hands it to him directly.
    let route_into = match to {
        Target::Service(s) => Some(s),
        Target::Agent { .. } => None,
    };
    enqueue_route(
        &mut tx,
        subjects,
        &after,
        route_into,
        &next,
        holder,
        c.service_id,
        "transferred",
    )
    .await
    .map_err(store_status)?;
    convert::emit(
        &mut tx,
        subjects,
        tenant,
        "conversation.transferred",
        domain_event::Kind::ConversationTransferred(pb::ConversationTransferred {
            conversation: Some(convert::conversation(&after)),
            from_agent_id: holder.map(|a| a.to_string()).unwrap_or_default(),
            from_service_id: c.service_id.map(|s| s.to_string()).unwrap_or_default(),
            previous_protocol: previous.number.clone(),
            by_agent_id: agent.to_string(),
        }),
    )
    .await
    .map_err(store_status)?;
    let current = legs::get_protocol(&mut *tx, tenant, &next)
        .await
        .map_err(store_status)?
        .ok_or_else(|| status(ErrorCode::Internal, "protocol", None))?;
    let previous = legs::get_protocol(&mut *tx, tenant, &previous.number)
        .await
        .map_err(store_status)?
        .unwrap_or(previous);
    if let Err(e) = tx.commit().await {
        let e = StoreError::Db(e);
        if e.is_unique_violation() {
            return Err(status(ErrorCode::CustomerInService, "", Some("target_service_id")));
        }
        return Err(store_status(e));
    }
    tracing::info!(%conversation, from = %previous.number, to = %next, service = %target_service.id, "conversation transferred");
    Ok(Transferred {
        conversation: after,
        previous,
        current,
    })
}

/// Conversations looked at per channel kind and pass.
const EXPIRY_BATCH: i64 = 200;

/// One window-expiry pass at `now`: every conversation waiting or in progress whose
/// customer window lapsed (see `domain::window::lapsed`) becomes `expired` — its protocol
/// closes as `window_expired`, the agent's capacity goes back through the router, the agent
/// gets `conversation.closed`. Each is locked and checked again in its own transaction, so a
/// customer who wrote meanwhile keeps his conversation, and passes on several replicas expire
/// each conversation once. Returns how many expired.
pub async fn expire_lapsed(
    pool: &sqlx::PgPool,
    subjects: &atende_bus::Subjects,
    now: time::OffsetDateTime,
) -> Result<usize, StoreError> {
    use atende_domain::channel::ChannelKind;
    let ts = |t: time::OffsetDateTime| atende_domain::Timestamp(atende_store::to_millis(t));
    let mut expired = 0;
    for kind in ChannelKind::ALL {
        let Some(window) = atende_domain::window::free_form_window(kind) else {
            continue;
        };
        for (tenant, id) in conv::window_lapsed(pool, kind.as_str(), now - window, EXPIRY_BATCH).await? {
            let mut tx = pool.begin().await?;
            atende_store::scope_tenant(&mut tx, tenant).await?;
            let Some(c) = conv::lock_conversation(&mut tx, tenant, id).await? else {
                continue;
            };
            let open = Status::parse(&c.status).is_some_and(Status::expires_with_window);
            let base = conv::window_base(&mut *tx, &c).await?;
            if !open || !atende_domain::window::lapsed(kind, ts(base), ts(now)) {
                continue; // moved on, or the customer wrote meanwhile
            }
            let holder = end_hold(&mut tx, tenant, id, "expired").await?;
            conv::set_status_by(
                &mut tx,
                id,
                Status::Expired.as_str(),
                c.agent_id,
                Some("window_expired"),
                Actor::System,
            )
            .await?;
            enqueue_route(
                &mut tx,
                subjects,
                &c,
                None,
                &c.protocol,
                holder,
                c.service_id,
                "expired",
            )
            .await?;
            let after = conv::get_conversation(&mut *tx, tenant, id).await?.unwrap_or(c);
            convert::emit(
                &mut tx,
                subjects,
                tenant,
                "conversation.closed",
                domain_event::Kind::ConversationClosed(pb::ConversationClosed {
                    conversation: Some(convert::conversation(&after)),
                    reason: "window_expired".into(),
                }),
            )
            .await?;
            tx.commit().await?;
            tracing::info!(conversation = %id, "the customer's window lapsed: conversation expired");
            expired += 1;
        }
    }
    Ok(expired)
}

/// Runs [`expire_lapsed`] every `every` until `shutdown`.
pub async fn run_expiry(
    pool: sqlx::PgPool,
    subjects: atende_bus::Subjects,
    every: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) -> atende_runtime::Result<()> {
    crate::every(every, "window expiry", shutdown, || {
        expire_lapsed(&pool, &subjects, time::OffsetDateTime::now_utc())
    })
    .await
}
