//! Publishes committed outbox rows to JetStream, in id order, then marks them published.
//!
//! A crash between the publish and the mark republishes the batch: JetStream drops it when
//! within its duplicate window (same `Nats-Msg-Id`), and consumers dedupe against Postgres
//! after that. Rows are woken by `LISTEN atende_outbox` with a polling fallback.

use std::time::Duration;

use async_nats::HeaderMap;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::Bus;

const BATCH: i64 = 256;
const POLL: Duration = Duration::from_millis(500);

/// Runs until `shutdown`; publishes whatever is committed before returning.
pub async fn run(bus: Bus, pool: PgPool, shutdown: CancellationToken) {
    let mut listener = match PgListener::connect_with(&pool).await {
        Ok(mut l) => match l.listen("atende_outbox").await {
            Ok(()) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "outbox listen failed, polling only");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "outbox listener connect failed, polling only");
            None
        }
    };
    loop {
        match relay_once(&bus, &pool).await {
            Ok(n) if n as i64 == BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "outbox relay pass failed"),
        }
        if shutdown.is_cancelled() {
            // One last pass above ran after the cancellation was observed.
            break;
        }
        let wait = async {
            match listener.as_mut() {
                Some(l) => {
                    let _ = tokio::time::timeout(POLL, l.recv()).await;
                }
                None => tokio::time::sleep(POLL).await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = wait => {}
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] atende_store::StoreError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Bus(#[from] crate::BusError),
}

/// One pass: claim, publish in order, mark. Returns how many rows were published.
pub async fn relay_once(bus: &Bus, pool: &PgPool) -> Result<usize, RelayError> {
    let mut tx = pool.begin().await?;
    let rows = atende_store::outbox::claim(&mut tx, BATCH).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut published = Vec::with_capacity(rows.len());
    for row in &rows {
        let span = tracing::info_span!("outbox.publish", subject = %row.subject);
        atende_telemetry::propagation::set_parent(&span, atende_telemetry::propagation::extract_pairs(&row.headers.0));
        let mut headers = HeaderMap::new();
        async {
            atende_telemetry::propagation::inject_nats(&mut headers);
            bus.publish(row.subject.clone(), &row.msg_id, row.payload.clone().into(), headers).await
        }
        .instrument(span)
        .await?;
        published.push(row.id);
    }
    atende_store::outbox::mark_published(&mut tx, &published).await?;
    tx.commit().await?;
    Ok(published.len())
}
