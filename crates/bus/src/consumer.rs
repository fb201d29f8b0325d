//! The durable pull-consumer loop every role uses.
//!
//! The handler returns an [`Outcome`] only after its effect is committed; the loop then acks.
//! Transient failures nak with a growing delay capped at [`ConsumerSpec::max_backoff`], and
//! are redelivered for as long as it takes: consumers have no `max_deliver`, because a
//! dependency down for longer than any fixed budget must delay work, not end it. Poison
//! messages (that can never succeed) are terminated and recorded in `dead_letters`, never
//! skipped silently; an operator lists and replays them. Shutdown stops fetching, finishes
//! the message in hand, and returns.

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
    /// A transient failure: redeliver later, with the loop's growing backoff.
    Retry(String),
    /// A transient failure whose source said when to come back (e.g. a provider's rate
    /// limit): redeliver no sooner than that.
    RetryAfter(Duration, String),
    /// It can never succeed: terminate and record it.
    Poison(String),
}

pub struct ConsumerSpec {
    pub stream: StreamKind,
    /// Durable consumer name, shared by every replica of a role.
    pub durable: &'static str,
    /// Filter inside the stream (defaults to the whole stream).
    pub filter: Option<String>,
    pub redelivery: Redelivery,
}

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
            // Finish the message in hand on shutdown; take no new one.
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
            let delivered = msg.info().map(|i| i.delivered).unwrap_or(1);
            let span = tracing::info_span!("consume", consumer = spec.durable, subject = %msg.subject, delivered);
            if let Some(h) = msg.headers.as_ref() {
                atende_telemetry::propagation::set_parent(&span, atende_telemetry::propagation::extract_nats(h));
            }
            let delivery = Delivery {
                subject: msg.subject.to_string(),
                payload: msg.payload.clone(),
                delivered,
            };
            let outcome = handler(delivery).instrument(span.clone()).await;
            let _enter = span.enter();
            let ack = match outcome {
                Outcome::Ack => msg.ack().await,
                Outcome::RetryAfter(hint, reason) => {
                    let delay = hint.max(backoff(delivered, spec.redelivery.max_backoff));
                    tracing::warn!(reason = %reason, delay_ms = delay.as_millis() as u64, "asked to retry later");
                    msg.ack_with(AckKind::Nak(Some(delay))).await
                }
                Outcome::Retry(reason) => {
                    let delay = backoff(delivered, spec.redelivery.max_backoff);
                    tracing::warn!(reason = %reason, delay_ms = delay.as_millis() as u64, "transient failure, will retry");
                    msg.ack_with(AckKind::Nak(Some(delay))).await
                }
                Outcome::Poison(reason) => {
                    tracing::error!(reason = %reason, "poison message terminated");
                    let tenant = bus.subjects.tenant_of(&msg.subject);
                    if let Err(e) = atende_store::outbox::dead_letter(
                        &pool,
                        spec.durable,
                        &msg.subject,
                        tenant,
                        &msg.payload,
                        &reason,
                    )
                    .await
                    {
                        // Not recorded: leave it for redelivery rather than lose it silently.
                        tracing::error!(error = %e, "cannot record dead letter, leaving message for redelivery");
                        continue;
                    }
                    msg.ack_with(AckKind::Term).await
                }
            };
            if let Err(e) = ack {
                // The effect is committed; a redelivery will be recognised as a duplicate.
                tracing::warn!(error = %e, "ack failed");
            }
        }
    }
    Ok(())
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
