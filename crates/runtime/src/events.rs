//! Domain events into the outbox: the one way every role announces an effect, in the
//! transaction that made it.

use atende_proto::v1::{domain_event, DomainEvent};
use prost::Message as _;
use uuid::Uuid;

/// Writes `kind` as a `DomainEvent` on `atende.events.<tenant>.<name>`, ordered after the
/// earlier events of its conversation; a fresh event id is its message id, so a retried
/// transaction cannot publish it twice.
pub async fn enqueue(
    tx: &mut sqlx::PgConnection,
    subjects: &atende_bus::Subjects,
    tenant: Uuid,
    name: &str,
    kind: domain_event::Kind,
    occurred_at_ms: i64,
) -> Result<(), atende_store::StoreError> {
    let order_key = kind.conversation_id().to_string();
    let event = DomainEvent {
        event_id: Uuid::now_v7().to_string(),
        tenant_id: tenant.to_string(),
        occurred_at_ms,
        kind: Some(kind),
    };
    atende_store::outbox::enqueue(
        tx,
        tenant,
        &order_key,
        &subjects.event(tenant, name),
        &format!("ev:{}", event.event_id),
        &event.encode_to_vec(),
        &atende_telemetry::propagation::current_as_pairs(),
    )
    .await?;
    Ok(())
}
