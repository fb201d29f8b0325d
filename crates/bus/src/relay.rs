//! Publishes committed outbox rows to JetStream, in id order, then marks them published.
//!
//! A crash between the publish and the mark republishes the batch: JetStream drops it when
//! within its duplicate window (same `Nats-Msg-Id`), and consumers dedupe against Postgres
//! after that. The relay polls the partial index of unpublished rows every few
//! milliseconds while idle (a `LISTEN/NOTIFY` wake-up was measured to halve ingest, since
//! NOTIFY serialises commits) and loops at once while batches come back full.

use std::time::Duration;

use async_nats::HeaderMap;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::Bus;

const BATCH: i64 = 256;
/// Idle poll interval: the worst added latency per hop.
const POLL: Duration = Duration::from_millis(20);

/// Runs until `shutdown`; publishes whatever is committed before returning.
pub async fn run(bus: Bus, pool: PgPool, shutdown: CancellationToken) {
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
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(POLL) => {}
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
            bus.publish(row.subject.clone(), &row.msg_id, row.payload.clone().into(), headers)
                .await
        }
        .instrument(span)
        .await?;
        published.push(row.id);
    }
    atende_store::outbox::mark_published(&mut tx, &published).await?;
    tx.commit().await?;
    Ok(published.len())
}
