//! The durable pull-consumer loop every role uses.
//!
//! The handler returns an [`Outcome`] only after its effect is committed; the loop then acks.
//!
//! A transient failure is retried **in place**: the loop keeps the message (progress acks stop
//! JetStream from redelivering it meanwhile), waits a growing delay capped at
//! [`Redelivery::max_backoff`], and calls the handler again, for as long as it takes — the
//! messages behind it wait, so a conversation's messages are never reordered by a retry, and a
//! dependency down for longer than any fixed budget delays work without ending it (consumers
//! have no `max_deliver`). A message that cannot be handled *yet* because it depends on a later
//! one (a provider status overtaking our own record of the send) is deferred instead: nak'd
//! with a delay, the others move on. Poison messages (that can never succeed) are terminated
//! and recorded in `dead_letters`, never skipped silently; an operator lists and replays them.
//! Shutdown stops fetching, finishes (or hands back) the message in hand, and returns.
//!
//! Lanes: the messages of one outbox partition (one ordering key: a conversation, a channel's
//! customer) always go to the same lane, where they are handled one at a time in order, while
//! other lanes go on — so one conversation's retry holds up its own lane, not the stream.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, AckKind};
use futures::StreamExt;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{Bus, BusError, StreamKind};

/// What to do with a message once the handler is done.
#[derive(Debug)]
pub enum Outcome {
    /// Processed (or a known duplicate): remove it.
    Ack,
    /// A transient failure: retry in place, with the loop's growing backoff.
    Retry(String),
    /// A transient failure whose source said when to come back (e.g. a provider's rate
    /// limit): retry in place no sooner than that.
    RetryAfter(Duration, String),
    /// Not handleable before a later message is: let the others pass and redeliver this one
    /// after the delay. Only for messages whose order does not matter.
    Defer(Duration, String),
    /// It can never succeed: terminate and record it.
    Poison(String),
}

/// How a message leaves the loop once in-place retries are over.
enum Settled {
    Ack,
    Defer(Duration, String),
    Poison(String),
}

pub struct ConsumerSpec {
    pub stream: StreamKind,
    /// Durable consumer name, shared by every replica of a role.
    pub durable: &'static str,
    /// Filter inside the stream (defaults to the whole stream).
    pub filter: Option<String>,
    pub redelivery: Redelivery,
    /// Messages of different partitions (the outbox's hash of the ordering key, carried in
    /// the [`PARTITION_HEADER`]) are handled on this many lanes at once; one partition always
    /// goes to the same lane, where its messages are handled one at a time, in order. 1: the
    /// whole stream one message at a time.
    pub lanes: usize,
}

/// The header in which the relay carries a message's outbox partition.
pub const PARTITION_HEADER: &str = "Atende-Partition";

/// Messages waiting per lane: a lane that is retrying holds the fetcher back once full, so
/// what was fetched stays within a few messages of being handled.
const LANE_DEPTH: usize = 16;

/// When JetStream hands a message out again.
#[derive(Clone, Copy, Debug)]
pub struct Redelivery {
    /// A message held this long without an answer (its consumer died) is redelivered.
    pub ack_wait: Duration,
    /// The longest delay between two redeliveries of a failing message.
    pub max_backoff: Duration,
}

impl ConsumerSpec {
    fn config(&self) -> pull::Config {
        pull::Config {
            // Unique per stream; the namespace prefix is already in the stream name.
            durable_name: Some(self.durable.to_string()),
            filter_subject: self.filter.clone().unwrap_or_default(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: self.redelivery.ack_wait,
            // Unlimited: a transient failure never ends a message's life.
            max_deliver: -1,
            ..Default::default()
        }
    }
}

/// A received message as handlers see it.
pub struct Delivery {
    pub subject: String,
    pub payload: bytes::Bytes,
    /// How many times the handler was given this message, this time included (JetStream
    /// redeliveries plus in-place retries).
    pub delivered: i64,
}

pub async fn run<F, Fut>(
    bus: Bus,
    pool: PgPool,
    spec: ConsumerSpec,
    shutdown: CancellationToken,
    handler: F,
) -> Result<(), BusError>
where
    F: Fn(Delivery) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let stream_name = bus.subjects.stream_name(spec.stream);
    let stream = bus
        .js
        .get_stream(&stream_name)
        .await
        .map_err(|e| BusError::Consumer(format!("get stream {stream_name}: {e}")))?;
    let mut consumer: jetstream::consumer::Consumer<pull::Config> = stream
        .get_or_create_consumer(spec.durable, spec.config())
        .await
        .map_err(|e| BusError::Consumer(format!("create consumer {}: {e}", spec.durable)))?;
    // A consumer created by an earlier version keeps its old settings (a finite
    // `max_deliver` among them) until updated.
    let current = &consumer.cached_info().config;
    if current.max_deliver != -1 || current.ack_wait != spec.redelivery.ack_wait {
        tracing::info!(
            consumer = spec.durable,
            old_max_deliver = current.max_deliver,
            "updating consumer settings"
        );
        consumer = stream
            .update_consumer(spec.config())
            .await
            .map_err(|e| BusError::Consumer(format!("update consumer {}: {e}", spec.durable)))?;
    }

    atende_telemetry::metrics::consumer_started(spec.durable);
    let lanes = spec.lanes.max(1);
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..lanes)
        .map(|_| tokio::sync::mpsc::channel::<jetstream::Message>(LANE_DEPTH))
        .unzip();
    let fetcher = async {
        // Owned here: when the fetcher ends, the lanes end once they are empty.
        let senders = senders;
        while !shutdown.is_cancelled() {
            let batch = consumer
                .fetch()
                .max_messages(64)
                .expires(Duration::from_millis(500))
                .messages()
                .await;
            let mut batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(consumer = spec.durable, error = %e, "fetch failed, retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    }
                }
            };
            loop {
                // Take no new message on shutdown.
                let next = tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => None,
                    m = batch.next() => m,
                };
                let Some(msg) = next else { break };
                let msg = match msg {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(consumer = spec.durable, error = %e, "bad message from fetch");
                        continue;
                    }
                };
                let lane = lane_of(&msg, lanes);
                if senders[lane].send(msg).await.is_err() {
                    return;
                }
            }
        }
    };
    let workers = receivers
        .into_iter()
        .map(|rx| lane(rx, &bus, &pool, &spec, &shutdown, &handler));
    futures::future::join(fetcher, futures::future::join_all(workers)).await;
    Ok(())
}

/// The lane of a message: its partition's, or the first for a message without one.
fn lane_of(msg: &jetstream::Message, lanes: usize) -> usize {
    msg.headers
        .as_ref()
        .and_then(|h| h.get(PARTITION_HEADER))
        .and_then(|v| v.as_str().parse::<usize>().ok())
        .map_or(0, |p| p % lanes)
}

/// Handles a lane's messages one at a time until the fetcher is done; after shutdown, what is
/// still queued is handed back for immediate redelivery.
async fn lane<F, Fut>(
    mut rx: tokio::sync::mpsc::Receiver<jetstream::Message>,
    bus: &Bus,
    pool: &PgPool,
    spec: &ConsumerSpec,
    shutdown: &CancellationToken,
    handler: &F,
) where
    F: Fn(Delivery) -> Fut,
    Fut: Future<Output = Outcome>,
{
    while let Some(msg) = rx.recv().await {
        if shutdown.is_cancelled() {
            if let Err(e) = msg.ack_with(AckKind::Nak(None)).await {
                tracing::debug!(error = %e, "cannot hand a queued message back; it returns after ack_wait");
            }
            continue;
        }
        handle_one(msg, bus, pool, spec, shutdown, handler).await;
    }
}

/// One message: the handler, retried in place while it fails transiently, then settled.
async fn handle_one<F, Fut>(
    msg: jetstream::Message,
    bus: &Bus,
    pool: &PgPool,
    spec: &ConsumerSpec,
    shutdown: &CancellationToken,
    handler: &F,
) where
    F: Fn(Delivery) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let started = std::time::Instant::now();
    let delivered = msg.info().map(|i| i.delivered).unwrap_or(1);
    let span = tracing::info_span!(
        "consume",
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.operation = "process",
        messaging.destination.name = %msg.subject,
        messaging.consumer.group.name = spec.durable,
        delivered,
    );
    if let Some(h) = msg.headers.as_ref() {
        atende_telemetry::propagation::set_parent(&span, atende_telemetry::propagation::extract_nats(h));
    }
    let mut attempt = 0;
    let outcome = loop {
        let delivery = Delivery {
            subject: msg.subject.to_string(),
            payload: msg.payload.clone(),
            delivered: delivered + attempt,
        };
        let outcome = handler(delivery).instrument(span.clone()).await;
        let max = spec.redelivery.max_backoff;
        let delay = match outcome {
            Outcome::Ack => break Some(Settled::Ack),
            Outcome::Defer(delay, reason) => break Some(Settled::Defer(delay, reason)),
            Outcome::Poison(reason) => break Some(Settled::Poison(reason)),
            Outcome::Retry(reason) => {
                let delay = backoff(delivered + attempt, max);
                tracing::warn!(parent: &span, reason = %reason, delay_ms = delay.as_millis() as u64, "transient failure, retrying in place");
                delay
            }
            Outcome::RetryAfter(hint, reason) => {
                let delay = hint.max(backoff(delivered + attempt, max));
                tracing::warn!(parent: &span, reason = %reason, delay_ms = delay.as_millis() as u64, "asked to retry later, retrying in place");
                delay
            }
        };
        attempt += 1;
        if !hold(&msg, delay, spec.redelivery.ack_wait, shutdown).await {
            break None; // handed back on shutdown
        }
    };
    let Some(settled) = outcome else { return };
    let outcome = match &settled {
        Settled::Ack => "ack",
        Settled::Defer(..) => "defer",
        Settled::Poison(_) => "poison",
    };
    atende_telemetry::metrics::consumed(spec.durable, outcome, started.elapsed());
    // The span covers the settling only while it is polled (never `enter()` across an await:
    // the task would leave it current on its thread, and unrelated tasks' logs and spans
    // there would join this message's trace).
    settle(msg, settled, bus, pool, spec).instrument(span).await;
}

async fn settle(msg: jetstream::Message, settled: Settled, bus: &Bus, pool: &PgPool, spec: &ConsumerSpec) {
    let ack = match settled {
        Settled::Ack => msg.ack().await,
        Settled::Defer(delay, reason) => {
            tracing::info!(reason = %reason, delay_ms = delay.as_millis() as u64, "deferred behind later messages");
            msg.ack_with(AckKind::Nak(Some(delay))).await
        }
        Settled::Poison(reason) => {
            tracing::error!(reason = %reason, "poison message terminated");
            let tenant = bus.subjects.tenant_of(&msg.subject);
            if let Err(e) =
                atende_store::outbox::dead_letter(pool, spec.durable, &msg.subject, tenant, &msg.payload, &reason).await
            {
                // Not recorded: leave it for redelivery rather than lose it silently.
                tracing::error!(error = %e, "cannot record dead letter, leaving message for redelivery");
                return;
            }
            msg.ack_with(AckKind::Term).await
        }
    };
    if let Err(e) = ack {
        // The effect is committed; a redelivery will be recognised as a duplicate.
        tracing::warn!(error = %e, "ack failed");
    }
}

/// Keeps `msg` for `delay` (progress acks reset JetStream's ack timer) unless shutdown comes
/// first, in which case the message is handed back for immediate redelivery and the answer
/// is false.
async fn hold(msg: &jetstream::Message, delay: Duration, ack_wait: Duration, shutdown: &CancellationToken) -> bool {
    let deadline = tokio::time::Instant::now() + delay;
    let beat = (ack_wait / 3).max(Duration::from_millis(100));
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return true;
        }
        tokio::select! {
            _ = shutdown.cancelled() => {
                if let Err(e) = msg.ack_with(AckKind::Nak(None)).await {
                    tracing::warn!(error = %e, "cannot hand the message back; it returns after ack_wait");
                }
                return false;
            }
            _ = tokio::time::sleep((deadline - now).min(beat)) => {}
        }
        if tokio::time::Instant::now() < deadline {
            if let Err(e) = msg.ack_with(AckKind::Progress).await {
                tracing::warn!(error = %e, "progress ack failed");
            }
        }
    }
}

/// 200 ms doubling per delivery, capped at `max`.
fn backoff(delivered: i64, max: Duration) -> Duration {
    let exp = (delivered.clamp(1, 16) - 1) as u32;
    Duration::from_millis(200u64.saturating_mul(2u64.pow(exp))).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let cap = Duration::from_secs(30);
        assert_eq!(backoff(1, cap), Duration::from_millis(200));
        assert_eq!(backoff(2, cap), Duration::from_millis(400));
        assert_eq!(backoff(100, cap), cap);
        assert_eq!(backoff(i64::MAX, Duration::from_millis(50)), Duration::from_millis(50));
    }
}
