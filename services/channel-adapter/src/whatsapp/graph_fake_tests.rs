//! `GraphClient` against the testkit's strict fake of the Graph API (loopback IO only).

use std::time::Duration;

use atende_testkit::fake_graph::FakeGraph;

use super::*;

const PNID: &str = "106540352242922";

fn client_for(fake: &FakeGraph) -> GraphClient {
    GraphClient::new(fake.base_url(), "v23.0".into())
}

#[tokio::test]
async fn send_text_posts_metas_body_with_the_bearer_and_returns_the_wamid() {
    let fake = FakeGraph::start().await;
    fake.expect_token(PNID, "system-user-token");
    let client = client_for(&fake);

    let accepted = client
        .send_text(PNID, "system-user-token", "5511987654321", "Olá! 😊", Some("wamid.IN1"))
        .await
        .expect("accepted");

    let sent = fake.wait_for_sends(1, Duration::from_secs(5)).await;
    assert_eq!(accepted.provider_message_id, sent[0].provider_message_id);
    assert_eq!(accepted.message_status.as_deref(), Some("accepted"));
    assert_eq!(
        sent[0].body,
        text_payload("5511987654321", "Olá! 😊", Some("wamid.IN1"))
    );
}

#[tokio::test]
async fn a_wrong_token_is_a_permanent_error_that_needs_an_operator() {
    let fake = FakeGraph::start().await;
    fake.expect_token(PNID, "right");
    let client = client_for(&fake);

    let err = client
        .send_text(PNID, "stale", "5511987654321", "x", None)
        .await
        .unwrap_err();

    assert_eq!((err.http_status, err.code), (Some(401), Some(190)));
    assert_eq!(err.retry, RetryClass::Permanent);
    assert!(err.needs_operator());
    assert!(err.fbtrace_id.is_some());
}

#[tokio::test]
async fn an_injected_rate_limit_is_retryable_and_the_next_call_succeeds() {
    let fake = FakeGraph::start().await;
    fake.fail_next(1, 429, 130429);
    let client = client_for(&fake);

    let err = client
        .send_text(PNID, "t", "5511987654321", "x", None)
        .await
        .unwrap_err();
    assert_eq!(
        err.retry,
        RetryClass::Retry {
            after_hint: Some(Duration::from_secs(1))
        }
    );
    assert!(client.send_text(PNID, "t", "5511987654321", "x", None).await.is_ok());
}

#[tokio::test]
async fn a_closed_window_is_permanent_and_maps_to_outside_customer_window() {
    let fake = FakeGraph::start().await;
    fake.fail_next(1, 400, 131047);
    let client = client_for(&fake);

    let err = client
        .send_text(PNID, "t", "5511987654321", "x", None)
        .await
        .unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::OutsideCustomerWindow);
    assert_eq!(err.details.as_deref(), Some("injected by FakeGraph::fail_next"));
}

#[tokio::test]
async fn an_invalid_body_is_refused_by_the_fake_as_meta_would() {
    let fake = FakeGraph::start().await;
    let client = client_for(&fake);

    let err = client
        .send_text(PNID, "t", "+55 11 98765-4321", "x", None)
        .await
        .unwrap_err();
    assert_eq!(
        (err.http_status, err.code, err.retry),
        (Some(400), Some(100), RetryClass::Permanent)
    );
    let err = client
        .send_text(PNID, "t", "5511987654321", "", None)
        .await
        .unwrap_err();
    assert_eq!(err.code, Some(100));
}

#[tokio::test]
async fn mark_read_sends_a_read_receipt() {
    let fake = FakeGraph::start().await;
    let client = client_for(&fake);

    client
        .mark_read(PNID, "t", "wamid.IN9")
        .await
        .expect("read receipt accepted");

    assert_eq!(fake.marked_read()[0].message_id, "wamid.IN9");
}

#[tokio::test]
async fn a_non_numeric_phone_number_id_never_leaves_the_process() {
    let fake = FakeGraph::start().await;
    let client = client_for(&fake);

    let err = client.send_text("../../me", "t", "1", "x", None).await.unwrap_err();
    assert_eq!((err.http_status, err.retry), (None, RetryClass::Permanent));
}

#[tokio::test]
async fn an_unreachable_graph_is_retryable() {
    // A port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = GraphClient::new(format!("http://127.0.0.1:{port}"), "v23.0".into());

    let err = client.send_text(PNID, "t", "1", "x", None).await.unwrap_err();
    assert_eq!(err.http_status, None);
    assert!(err.is_retryable());
    assert!(std::error::Error::source(&err).is_some(), "the transport cause is kept");
}
