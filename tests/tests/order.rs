//! Order per conversation: when the first of two messages of a customer fails transiently
//! (a real Postgres error, raised by a trigger the test installs), the second waits behind it —
//! both are stored, numbered and announced in the order the customer wrote them.

use atende_e2e::{Platform, DEADLINE};
use atende_proto::v1::{domain_event, DomainEvent};
use atende_testkit::wait_until;
use atende_testkit::whatsapp::text_message_webhook;
use futures::StreamExt;
use prost::Message as _;

const CUSTOMER: &str = "5511987654321";

/// Makes inserting the message `wamid` fail `times` times with a serialization failure
/// (SQLSTATE 40001, which the platform treats as transient). The counter is a sequence, so it
/// advances even though each failing transaction rolls back.
async fn fail_message_inserts(pool: &sqlx::PgPool, wamid: &str, times: i64) {
    for sql in [
        "CREATE SEQUENCE fault_hits".to_string(),
        format!(
            "CREATE FUNCTION inject_fault() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF NEW.provider_message_id = '{wamid}' AND nextval('fault_hits') <= {times} THEN
                 RAISE EXCEPTION 'injected transient fault' USING ERRCODE = '40001';
               END IF;
               RETURN NEW;
             END $$"
        ),
        "CREATE TRIGGER inject_fault BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION inject_fault()".into(),
    ] {
        sqlx::query(&sql).execute(pool).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_retried_after_a_transient_failure_is_not_overtaken_by_the_next_one() {
    // Arrange
    let p = Platform::start().await;
    let t = p.seed().await;
    let (_token, _socket) = p.online(&t).await;
    let pool = p.sandbox.pool.clone();
    fail_message_inserts(&pool, "wamid.ORDER1", 3).await;
    let events = {
        let nats = async_nats::connect(&p.sandbox.config.nats.url).await.unwrap();
        nats.subscribe(format!(
            "{}.atende.events.{}.message.created",
            p.sandbox.id, t.tenant_id
        ))
        .await
        .unwrap()
    };

    // Act: the customer writes twice; the first message fails three times before it stores.
    for (wamid, text, ts) in [
        ("wamid.ORDER1", "primeira", 1_763_700_000),
        ("wamid.ORDER2", "segunda", 1_763_700_001),
    ] {
        let body = text_message_webhook(&t.phone_number_id, CUSTOMER, "Maria", wamid, text, ts);
        assert_eq!(p.post_webhook(&t, &body, None).await.status(), 200);
    }
    let stored: Vec<(String, i64)> = wait_until("both messages stored", DEADLINE, || async {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT provider_message_id, seq FROM messages WHERE direction = 'inbound' ORDER BY seq")
                .fetch_all(&pool)
                .await
                .unwrap();
        (rows.len() == 2).then_some(rows)
    })
    .await;
    let announced = events
        .take(2)
        .map(|m| {
            let e = DomainEvent::decode(m.payload.as_ref()).unwrap();
            match e.kind {
                Some(domain_event::Kind::MessageCreated(c)) => c.message.unwrap().text,
                other => panic!("unexpected {other:?}"),
            }
        })
        .collect::<Vec<String>>();
    let announced = tokio::time::timeout(DEADLINE, announced)
        .await
        .expect("two message.created events");

    // Assert
    let hits: i64 = sqlx::query_scalar("SELECT last_value FROM fault_hits")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        hits > 3,
        "the first message did fail before it stored ({hits} trigger hits)"
    );
    assert_eq!(
        stored.iter().map(|(w, _)| w.as_str()).collect::<Vec<_>>(),
        vec!["wamid.ORDER1", "wamid.ORDER2"]
    );
    assert!(stored[0].1 < stored[1].1);
    assert_eq!(announced, vec!["primeira", "segunda"]);
    p.stop().await;
}
