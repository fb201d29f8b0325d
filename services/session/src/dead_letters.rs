//! The operator's side of dead letters (`AdminService.ListDeadLetters` / `ReplayDeadLetter`):
//! what consumers terminated as poison, and putting it back on its subject once the cause is
//! fixed (a channel created, a bug deployed away).

use atende_domain::ErrorCode;
use atende_proto::v1 as pb;
use atende_runtime::errors::store_status;
use atende_runtime::status;
use atende_store::outbox::{self, DeadLetter};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn dead_letter_pb(d: DeadLetter) -> pb::DeadLetter {
    pb::DeadLetter {
        id: d.id,
        consumer: d.consumer,
        subject: d.subject,
        tenant_id: d.tenant_id.map(|t| t.to_string()).unwrap_or_default(),
        reason: d.reason,
        dead_at: rfc3339(d.at),
        replayed_at: d.replayed_at.map(rfc3339).unwrap_or_default(),
        replays: d.replays,
        payload_bytes: d.payload.len() as i64,
    }
}

/// The tenant a request is limited to: `None` (every tenant) only for a caller covering all.
fn scope<T>(req: &Request<T>, raw: &str) -> Result<Option<Uuid>, Status> {
    if raw.is_empty() {
        atende_runtime::authorize_all_tenants(req)?;
        Ok(None)
    } else {
        atende_runtime::tenant_id(req, raw).map(Some)
    }
}

pub async fn list(
    pool: &PgPool,
    req: Request<pb::ListDeadLettersRequest>,
) -> Result<Response<pb::ListDeadLettersResponse>, Status> {
    let tenant = scope(&req, &req.get_ref().tenant_id)?;
    let r = req.into_inner();
    let size = crate::admin::page_size(r.page_size)?;
    let after = if r.page_token.is_empty() {
        0
    } else {
        r.page_token
            .parse::<i64>()
            .map_err(|_| status(ErrorCode::InvalidArgument, "not a page token", Some("page_token")))?
    };
    let rows = outbox::list_dead_letters(pool, tenant, r.pending_only, after, size)
        .await
        .map_err(store_status)?;
    let next_page_token = match rows.last() {
        Some(last) if rows.len() as i64 == size => last.id.to_string(),
        _ => String::new(),
    };
    Ok(Response::new(pb::ListDeadLettersResponse {
        dead_letters: rows.into_iter().map(dead_letter_pb).collect(),
        next_page_token,
    }))
}

pub async fn replay(
    pool: &PgPool,
    req: Request<pb::ReplayDeadLetterRequest>,
) -> Result<Response<pb::ReplayDeadLetterResponse>, Status> {
    let tenant = scope(&req, &req.get_ref().tenant_id)?;
    let id = req.get_ref().id;
    let replayed = async {
        let mut tx = pool.begin().await?;
        let row = outbox::replay_dead_letter(&mut tx, id, tenant).await?;
        tx.commit().await?;
        Ok::<_, atende_store::StoreError>(row)
    }
    .await
    .map_err(store_status)?;
    match replayed {
        Some(d) => {
            tracing::info!(dead_letter = id, subject = %d.subject, replays = d.replays, "dead letter replayed");
            Ok(Response::new(pb::ReplayDeadLetterResponse {
                dead_letter: Some(dead_letter_pb(d)),
            }))
        }
        None => Err(status(ErrorCode::NotFound, "no such dead letter", Some("id"))),
    }
}
