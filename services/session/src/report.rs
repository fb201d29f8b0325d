//! The interaction-tracking report ("Rastreio de Interações") over `SessionService`: the
//! paged list, and the CSV export streamed from a task that reads rows as Postgres sends
//! them and hands the client chunks through a small bounded channel (a slow client slows
//! the query, nothing piles up in memory).

use atende_domain::ErrorCode;
use atende_proto::v1 as pb;
use atende_runtime::errors::store_status;
use atende_runtime::{parse_id, status};
use atende_store::report::{self as store, Filter, Row};
use futures::StreamExt;
use sqlx::PgPool;
use tonic::Status as GrpcStatus;
use uuid::Uuid;

type Result<T> = std::result::Result<T, GrpcStatus>;

const PAGE: i32 = 200;
/// Rows per CSV chunk.
const CHUNK_ROWS: usize = 500;
pub const CSV_HEADER: [&str; 11] = [
    "protocol",
    "at",
    "event",
    "what",
    "actor_kind",
    "actor_id",
    "service_id",
    "agent_id",
    "channel",
    "qualification",
    "detail",
];

fn opt_id(field: &'static str, raw: &str) -> Result<Option<Uuid>> {
    if raw.is_empty() {
        Ok(None)
    } else {
        parse_id(field, raw).map(Some)
    }
}

pub fn filter(tenant: Uuid, r: &pb::InteractionFilter) -> Result<Filter> {
    let channel = Some(r.channel.trim()).filter(|c| !c.is_empty());
    if channel.is_some_and(|c| !matches!(c, "whatsapp" | "messenger" | "instagram" | "webchat" | "in_person")) {
        return Err(status(ErrorCode::InvalidArgument, "unknown channel", Some("channel")));
    }
    if r.since_ms != 0 && r.until_ms != 0 && r.until_ms <= r.since_ms {
        return Err(status(
            ErrorCode::InvalidArgument,
            "until_ms must be after since_ms",
            Some("until_ms"),
        ));
    }
    let at = |ms: i64| (ms != 0).then(|| atende_store::from_millis(ms));
    Ok(Filter {
        tenant,
        since: at(r.since_ms),
        until: at(r.until_ms),
        service: opt_id("service_id", &r.service_id)?,
        agent: opt_id("agent_id", &r.agent_id)?,
        channel: channel.map(str::to_string),
        qualification: Some(r.qualification.trim())
            .filter(|q| !q.is_empty())
            .map(str::to_string),
    })
}

fn id(u: Option<Uuid>) -> String {
    u.map(|u| u.to_string()).unwrap_or_default()
}

fn row_pb(r: Row) -> pb::Interaction {
    pb::Interaction {
        protocol: r.protocol,
        at_ms: atende_store::to_millis(r.at),
        event: r.event,
        what: r.what,
        actor_kind: r.actor_kind,
        actor_id: id(r.actor_id),
        service_id: id(r.service_id),
        agent_id: id(r.agent_id),
        channel: r.channel,
        qualification: r.qualification.unwrap_or_default(),
        detail: r.detail,
    }
}

/// Page tokens: `i<protocol>_<at µs>_<key>`.
fn cursor(token: &str) -> Result<Option<(String, time::OffsetDateTime, String)>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || status(ErrorCode::InvalidArgument, "invalid page_token", Some("page_token"));
    let mut parts = token.strip_prefix('i').ok_or_else(bad)?.splitn(3, '_');
    let (Some(p), Some(at), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let micros: i128 = at.parse().map_err(|_| bad())?;
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(micros * 1000).map_err(|_| bad())?;
    Ok(Some((p.to_string(), at, key.to_string())))
}

pub async fn list(pool: &PgPool, tenant: Uuid, r: pb::ListInteractionsRequest) -> Result<pb::ListInteractionsResponse> {
    let f = filter(tenant, &r.filter.unwrap_or_default())?;
    let size = match r.page_size {
        0 => PAGE,
        n if (1..=1000).contains(&n) => n,
        _ => {
            return Err(status(
                ErrorCode::InvalidArgument,
                "page_size must be 1 to 1000",
                Some("page_size"),
            ))
        }
    };
    let rows = store::page(pool, &f, cursor(&r.page_token)?, i64::from(size) + 1)
        .await
        .map_err(store_status)?;
    let more = rows.len() > size as usize;
    let mut rows = rows;
    rows.truncate(size as usize);
    let next_page_token = match (more, rows.last()) {
        (true, Some(last)) => format!(
            "i{}_{}_{}",
            last.protocol,
            last.at.unix_timestamp_nanos() / 1000,
            last.key
        ),
        _ => String::new(),
    };
    Ok(pb::ListInteractionsResponse {
        interactions: rows.into_iter().map(row_pb).collect(),
        next_page_token,
    })
}

fn csv_record(w: &mut csv::Writer<Vec<u8>>, r: &Row) -> std::result::Result<(), csv::Error> {
    let at =
        r.at.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
    w.write_record([
        r.protocol.as_str(),
        at.as_str(),
        r.event.as_str(),
        r.what.as_str(),
        r.actor_kind.as_str(),
        id(r.actor_id).as_str(),
        id(r.service_id).as_str(),
        id(r.agent_id).as_str(),
        r.channel.as_str(),
        r.qualification.as_deref().unwrap_or_default(),
        r.detail.as_str(),
    ])
}

/// Streams the report as CSV chunks (the header first).
pub fn export(
    pool: PgPool,
    f: Filter,
) -> tokio_stream::wrappers::ReceiverStream<Result<pb::ExportInteractionsResponse>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let fail = |e: &dyn std::fmt::Display| {
            tracing::warn!(error = %e, "interaction export failed");
            status(ErrorCode::Unavailable, "export interrupted", None)
        };
        let mut w = csv::Writer::from_writer(Vec::new());
        if w.write_record(CSV_HEADER).is_err() {
            return;
        }
        let mut in_chunk = 0;
        let mut rows = store::rows(&pool, &f);
        while let Some(row) = rows.next().await {
            let row = match row {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(fail(&e))).await;
                    return;
                }
            };
            if let Err(e) = csv_record(&mut w, &row) {
                let _ = tx.send(Err(fail(&e))).await;
                return;
            }
            in_chunk += 1;
            if in_chunk == CHUNK_ROWS {
                in_chunk = 0;
                let full = std::mem::replace(&mut w, csv::Writer::from_writer(Vec::new()));
                let data = full.into_inner().unwrap_or_default();
                if tx.send(Ok(pb::ExportInteractionsResponse { data })).await.is_err() {
                    return; // the client went away
                }
            }
        }
        let data = w.into_inner().unwrap_or_default();
        let _ = tx.send(Ok(pb::ExportInteractionsResponse { data })).await;
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
