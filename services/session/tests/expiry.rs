//! Window expiry on the injected clock: a conversation waiting or in progress whose customer
//! window lapsed becomes `expired` — protocol closed as `window_expired`, the holder's
//! capacity handed back to the router once, `conversation.closed` for the agent — while one
//! whose customer wrote within the window (in it, or to the same number in another
//! conversation), an agent-started one still inside its first window, and web chat stay.

mod common;

use atende_proto::v1 as pb;
use common::Harness;
use prost::Message as _;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

async fn close_reason(h: &Harness, c: Uuid) -> (Option<String>, Option<String>) {
    sqlx::query_as(
        "SELECT c.close_reason, p.close_reason FROM conversations c JOIN protocols p ON p.number = c.protocol
          WHERE c.id = $1",
    )
    .bind(c)
    .fetch_one(h.pool())
    .await
    .unwrap()
}

async fn closed_events(h: &Harness, c: Uuid) -> Vec<String> {
    let rows: Vec<Vec<u8>> = sqlx::query_scalar("SELECT payload FROM outbox WHERE subject = $1 ORDER BY id")
        .bind(h.subjects.event(h.tenant, "conversation.closed"))
        .fetch_all(h.pool())
        .await
        .unwrap();
    rows.iter()
        .filter_map(|p| pb::DomainEvent::decode(p.as_slice()).ok())
        .filter_map(|e| match e.kind {
            Some(pb::domain_event::Kind::ConversationClosed(closed))
                if closed.conversation.as_ref().is_some_and(|x| x.id == c.to_string()) =>
            {
                Some(closed.reason)
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_lapsed_window_expires_the_conversation_once_and_frees_its_agent() {
    // Arrange: Ana holds a WhatsApp conversation whose customer just wrote.
    let h = Harness::start().await;
    let (_, c) = h.assigned(h.sales, h.ana).await;
    let now = OffsetDateTime::now_utc();

    // Act and assert: 23 h later nothing happens; 24 h later it expires, once.
    let at = |hours| now + Duration::hours(hours) + Duration::seconds(1);
    assert_eq!(
        atende_session::lifecycle::expire_lapsed(h.pool(), &h.subjects, at(23))
            .await
            .unwrap(),
        0
    );
    assert_eq!(h.status_of(c).await.0, "assigned");
    assert_eq!(
        atende_session::lifecycle::expire_lapsed(h.pool(), &h.subjects, at(24))
            .await
            .unwrap(),
        1
    );
    assert_eq!(h.status_of(c).await.0, "expired");
    assert_eq!(
        close_reason(&h, c).await,
        (Some("window_expired".into()), Some("window_expired".into()))
    );
    assert_eq!(h.open_assignments(c).await, 0);
    let releases = h.route_requests(h.sales).await;
    assert_eq!(releases.len(), 1, "one release for the router");
    assert_eq!(releases[0].release_agent_id, h.ana.to_string());
    assert_eq!(releases[0].service_id, "", "an expiry routes nothing");
    assert_eq!(closed_events(&h, c).await, ["window_expired"]);
    // A second pass, later still: nothing more.
    assert_eq!(
        atende_session::lifecycle::expire_lapsed(h.pool(), &h.subjects, at(48))
            .await
            .unwrap(),
        0
    );
    assert_eq!(h.route_requests(h.sales).await.len(), 1);
    assert_eq!(closed_events(&h, c).await.len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn a_customer_who_wrote_an_agent_started_conversation_and_web_chat_keep_theirs() {
    // Arrange, all on the injected clock 25 h from now:
    let h = Harness::start().await;
    let now = OffsetDateTime::now_utc();
    let later = now + Duration::hours(25);
    // 1. the customer wrote again, to the same number, 2 h before `later` (the conversation's
    //    own last inbound is old, the number's window is not);
    let (contact, wrote) = h.assigned(h.sales, h.ana).await;
    sqlx::query(
        "INSERT INTO customer_windows (contact_id, channel_id, tenant_id, last_inbound_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (contact_id, channel_id) DO UPDATE SET last_inbound_at = EXCLUDED.last_inbound_at",
    )
    .bind(contact)
    .bind(h.channel)
    .bind(h.tenant)
    .bind(later - Duration::hours(2))
    .execute(h.pool())
    .await
    .unwrap();
    // 2. an agent-started conversation, opened 3 h before `later`, whose customer last wrote
    //    to this number days ago;
    let (old_contact, started) = h.assigned(h.sales, h.bruno).await;
    sqlx::query("UPDATE conversations SET last_inbound_at = NULL, opened_at = $2 WHERE id = $1")
        .bind(started)
        .bind(later - Duration::hours(3))
        .execute(h.pool())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO customer_windows (contact_id, channel_id, tenant_id, last_inbound_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (contact_id, channel_id) DO UPDATE SET last_inbound_at = EXCLUDED.last_inbound_at",
    )
    .bind(old_contact)
    .bind(h.channel)
    .bind(h.tenant)
    .bind(now - Duration::days(3))
    .execute(h.pool())
    .await
    .unwrap();
    // 3. a web chat conversation, idle as long as any;
    let (_, webchat) = h.assigned(h.support, h.ana).await;
    let site: Uuid = sqlx::query_scalar(
        "INSERT INTO channels (id, tenant_id, kind, name, provider_account_id, app_secret, verify_token, access_token)
         SELECT $2, tenant_id, 'webchat', 'Site', 'site-expiry', app_secret, verify_token, access_token
           FROM channels WHERE id = $1 RETURNING id",
    )
    .bind(h.channel)
    .bind(Uuid::now_v7())
    .fetch_one(h.pool())
    .await
    .unwrap();
    sqlx::query("UPDATE conversations SET channel_id = $2, reply_channel_id = $2 WHERE id = $1")
        .bind(webchat)
        .bind(site)
        .execute(h.pool())
        .await
        .unwrap();
    // 4. and a conversation still queued, whose customer wrote 25 h before `later`.
    let (_, queued) = h.assigned(h.billing, h.ana).await;
    sqlx::query("UPDATE conversations SET status = 'queued', agent_id = NULL WHERE id = $1")
        .bind(queued)
        .execute(h.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE assignments SET released_at = now() WHERE conversation_id = $1")
        .bind(queued)
        .execute(h.pool())
        .await
        .unwrap();

    // Act
    let expired = atende_session::lifecycle::expire_lapsed(h.pool(), &h.subjects, later)
        .await
        .unwrap();

    // Assert: only the queued one expired (and nobody's capacity was released for it).
    assert_eq!(expired, 1);
    assert_eq!(h.status_of(wrote).await.0, "assigned");
    assert_eq!(h.status_of(started).await.0, "assigned");
    assert_eq!(h.status_of(webchat).await.0, "assigned");
    assert_eq!(h.status_of(queued).await.0, "expired");
    assert!(h.route_requests(h.billing).await.is_empty(), "nobody held it");
    h.stop().await;
}
