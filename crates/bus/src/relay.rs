//! Publishes committed outbox rows to JetStream, then marks them published; prunes what is
//! old enough.
//!
//! Partitioned: each pass takes the advisory locks of a few partitions that have unpublished
//! rows (session-level, on the relay's own connection — no transaction stays open across the
//! network), reads their rows in id order, publishes them all before awaiting the acks
//! (pipelined: one round trip's latency per batch, not per row), marks the acknowledged
//! prefix, and unlocks. Every replica of every role that writes the outbox runs a relay;
//! they spread over the partitions, and one partition is relayed by one of them at a time,
//! which with the writers' per-key locks (`atende_store::outbox::enqueue`) keeps each key's
//! rows in commit order on the stream.
//!
//! A crash between the publish and the mark republishes the batch: JetStream drops it when
//! within its duplicate window (same `Nats-Msg-Id`), and consumers dedupe against Postgres
//! after that. The relay polls the partial index of unpublished rows every few
//! milliseconds while idle (a `LISTEN/NOTIFY` wake-up was measured to halve ingest, since
//! NOTIFY serialises commits) and loops at once while batches come back full.

use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use atende_store::outbox;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::Bus;

/// Rows published per pass.
const BATCH: i64 = 512;
/// Partitions one relay takes per pass: with several replicas, the rest stay for others.
const PARTITIONS_PER_PASS: i64 = 8;
/// Idle poll interval: the worst added latency per hop.
const POLL: Duration = Duration::from_millis(20);
/// Rows deleted per pruning statement (short statements, short locks).
const PRUNE_BATCH: i64 = 2000;

/// How long published rows and webhook receipts are kept.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    /// Published outbox rows (kept for inspection; nothing depends on them).
    pub outbox: Duration,
    /// Webhook receipts: the dedupe of Meta's redeliveries, which last up to 7 days.
    pub receipts: Duration,
    /// How often a relay prunes.
    pub every: Duration,
}

/// Runs until `shutdown`; publishes whatever is committed before returning.
pub async fn run(bus: Bus, pool: PgPool, retention: Retention, shutdown: CancellationToken) {
    let mut conn: Option<PgConnection> = None;
    let mut pruned_at = Instant::now();
    loop {
        match relay_once(&bus, &pool, &mut conn).await {
            Ok(n) if n as i64 == BATCH => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "outbox relay pass failed");
                // Its partition locks go with the connection.
                conn = None;
            }
        }
        if pruned_at.elapsed() >= retention.every {
            pruned_at = Instant::now();
            if let Err(e) = prune(&pool, retention, &shutdown).await {
                tracing::warn!(error = %e, "outbox pruning failed");
            }
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

/// One pass: lock some partitions, publish their rows, mark, unlock. Returns how many rows
/// were published. `conn` is the relay's own connection (opened on first use).
pub async fn relay_once(bus: &Bus, pool: &PgPool, conn: &mut Option<PgConnection>) -> Result<usize, RelayError> {
    let c = match conn {
        Some(c) => c,
        None => conn.insert(pool.acquire().await?.detach()),
    };
    let partitions = outbox::lock_partitions(c, PARTITIONS_PER_PASS).await?;
    if partitions.is_empty() {
        return Ok(0);
    }
    let published = publish_partitions(bus, pool, &partitions).await;
    outbox::unlock_partitions(c, &partitions).await?;
    published
}

async fn publish_partitions(bus: &Bus, pool: &PgPool, partitions: &[i16]) -> Result<usize, RelayError> {
    let rows = outbox::pending(pool, partitions, BATCH).await?;
    let mut sent = Vec::with_capacity(rows.len());
    let mut failure = None;
    for row in &rows {
        let span = tracing::info_span!(
            "outbox.publish",
            otel.kind = "producer",
            messaging.system = "nats",
            messaging.operation = "publish",
            messaging.destination.name = %row.subject,
        );
        atende_telemetry::propagation::set_parent(&span, atende_telemetry::propagation::extract_pairs(&row.headers.0));
        let mut headers = HeaderMap::new();
        headers.insert(crate::consumer::PARTITION_HEADER, row.partition.to_string().as_str());
        let ack = async {
            atende_telemetry::propagation::inject_nats(&mut headers);
            bus.publish_pipelined(row.subject.clone(), &row.msg_id, row.payload.clone().into(), headers)
                .await
        }
        .instrument(span)
        .await;
        match ack {
            Ok(ack) => sent.push((row.id, ack)),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    // Acks come back in publish order; only the acknowledged prefix is marked, so a row is
    // never marked while one before it in its partition may be missing from the stream.
    let mut published = Vec::with_capacity(sent.len());
    for (id, ack) in sent {
        match ack.await {
            Ok(_) => published.push(id),
            Err(e) => {
                failure.get_or_insert(crate::BusError::from(e));
                break;
            }
        }
    }
    if !published.is_empty() {
        outbox::mark_published(pool, &published).await?;
        atende_telemetry::metrics::published("outbox", published.len() as u64);
    }
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(published.len()),
    }
}

/// Deletes published outbox rows and webhook receipts past their retention, a batch at a
/// time (stopping early on shutdown).
pub async fn prune(pool: &PgPool, retention: Retention, shutdown: &CancellationToken) -> Result<(), RelayError> {
    let mut outbox_rows = 0;
    while !shutdown.is_cancelled() {
        let n = outbox::prune_published(pool, retention.outbox, PRUNE_BATCH).await?;
        outbox_rows += n;
        if (n as i64) < PRUNE_BATCH {
            break;
        }
    }
    let mut receipts = 0;
    while !shutdown.is_cancelled() {
        let n = outbox::prune_receipts(pool, retention.receipts, PRUNE_BATCH).await?;
        receipts += n;
        if (n as i64) < PRUNE_BATCH {
            break;
        }
    }
    if outbox_rows + receipts > 0 {
        tracing::info!(outbox_rows, receipts, "pruned past retention");
    }
    Ok(())
}
