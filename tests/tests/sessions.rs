//! Agents' sessions through the gateway, every role real: login answers a token pair, a
//! refresh spends the refresh token and answers the next pair, a spent refresh token
//! presented again signs the whole session out, logout kills the session's refresh token,
//! and WebSockets open with single-use tickets (never with a token in the URL).

use atende_e2e::api::{assert_error, call, Auth};
use atende_e2e::Platform;
use reqwest::Method;
use serde_json::{json, Value};

async fn login(p: &Platform, t: &atende_e2e::Tenant) -> Value {
    let body = json!({ "tenant": t.slug, "email": t.agent_email, "password": t.agent_password });
    let (status, body) = call(p, Method::POST, "/api/v1/auth/login", Auth::None, Some(body)).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn refresh(p: &Platform, refresh_token: &Value) -> (u16, Value) {
    call(
        p,
        Method::POST,
        "/api/v1/auth/refresh",
        Auth::None,
        Some(json!({ "refresh_token": refresh_token })),
    )
    .await
}

/// Whether the access token still opens the API.
async fn opens(p: &Platform, pair: &Value) -> bool {
    let token = pair["access_token"].as_str().unwrap();
    call(p, Method::GET, "/api/v1/me/presence", Auth::Bearer(token), None)
        .await
        .0
        == 200
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refresh_renews_the_pair_once_and_a_reused_refresh_token_signs_the_session_out() {
    let p = Platform::start().await;
    let t = p.seed().await;
    let first = login(&p, &t).await;
    assert_eq!(first["refresh_token"].as_str().map(str::len), Some(64), "{first}");
    assert!(first["refresh_expires_in"].as_u64().unwrap() > first["expires_in"].as_u64().unwrap());
    let other_device = login(&p, &t).await;

    // A renewal answers a new pair; the new access token opens the API.
    let (status, second) = refresh(&p, &first["refresh_token"]).await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(second["agent_id"], t.agent_id.as_str());
    assert!(opens(&p, &second).await);
    // And the renewal after it works too: an active session renews indefinitely.
    let (status, third) = refresh(&p, &second["refresh_token"]).await;
    assert_eq!(status, 200, "{third}");

    // The first refresh token comes back (a stolen copy): refused, and the session ends, so
    // the newest refresh token of it is refused as well.
    assert_error(&refresh(&p, &first["refresh_token"]).await, 401, "REFRESH_TOKEN_REUSED");
    assert_error(&refresh(&p, &third["refresh_token"]).await, 401, "SESSION_ENDED");
    // The agent's other session is a family of its own and lives on.
    let (status, body) = refresh(&p, &other_device["refresh_token"]).await;
    assert_eq!(status, 200, "{body}");

    // Garbage and malformed bodies.
    assert_error(&refresh(&p, &json!("not-a-token")).await, 401, "SESSION_ENDED");
    let malformed = call(&p, Method::POST, "/api/v1/auth/refresh", Auth::None, Some(json!({}))).await;
    assert_error(&malformed, 400, "MALFORMED_PAYLOAD");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logout_ends_the_session_so_its_refresh_token_renews_nothing() {
    let p = Platform::start().await;
    let t = p.seed().await;
    let pair = login(&p, &t).await;
    let token = pair["access_token"].as_str().unwrap();

    let (status, body) = call(&p, Method::POST, "/api/v1/auth/logout", Auth::Bearer(token), None).await;
    assert_eq!((status, body), (204, Value::Null));
    assert_error(&refresh(&p, &pair["refresh_token"]).await, 401, "SESSION_ENDED");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_websocket_ticket_opens_one_socket_once() {
    let p = Platform::start().await;
    let t = p.seed().await;
    let token = p.login(&t).await;
    let ws = p.gateway.replace("http://", "ws://");

    let ticket = p.ws_ticket(&token).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{ws}/api/v1/ws?ticket={ticket}"))
        .await
        .expect("the ticket opens the socket");
    // The same ticket again: refused, on this replica as on any other (it lives in Redis).
    match tokio_tungstenite::connect_async(format!("{ws}/api/v1/ws?ticket={ticket}")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("a used ticket: {:?}", other.map(|(_, r)| r.status())),
    }
    // A ticket is bound to its agent: the socket greets the agent who asked for it.
    let hello = futures::StreamExt::next(&mut socket).await.unwrap().unwrap();
    let hello: Value = serde_json::from_str(hello.to_text().unwrap()).unwrap();
    assert_eq!(hello["data"]["agent_id"], t.agent_id.as_str());
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_carry_the_role_and_permissions_and_routes_enforce_them() {
    let p = Platform::start().await;
    let t = p.seed().await;
    let nurse = p
        .create_agent(
            &t,
            atende_proto::v1::CreateAgentRequest {
                name: "Clara".into(),
                email: "clara@acme.test".into(),
                password: "correct horse".into(),
                max_concurrent: 2,
                service_ids: vec![t.service_id.clone()],
                can_attend_in_person: true,
                ..Default::default()
            },
        )
        .await;

    // The answer says what the token allows.
    let plain = login(&p, &t).await;
    assert_eq!(
        (plain["role"].clone(), plain["permissions"].clone()),
        (json!("agent"), json!([]))
    );
    let allowed = login(&p, &nurse).await;
    assert_eq!(allowed["permissions"], json!(["in_person"]));

    // In-person attendance needs the permission: refused up front without it.
    let body = json!({ "service_id": t.service_id, "contact_name": "Dona Rosa", "description": "no balcão" });
    let token = plain["access_token"].as_str().unwrap();
    let refused = call(
        &p,
        Method::POST,
        "/api/v1/in-person",
        Auth::Bearer(token),
        Some(body.clone()),
    )
    .await;
    assert_error(&refused, 403, "PERMISSION_DENIED");
    let token = allowed["access_token"].as_str().unwrap();
    let (status, done) = call(&p, Method::POST, "/api/v1/in-person", Auth::Bearer(token), Some(body)).await;
    assert_eq!(status, 201, "{done}");
    assert!(!done["protocol"].as_str().unwrap().is_empty());
    // Bulk actions are the supervisors'.
    let bulk = call(
        &p,
        Method::POST,
        "/api/v1/supervisor/bulk-transfer",
        Auth::Bearer(token),
        Some(json!({ "conversation_ids": [], "service_id": t.service_id })),
    )
    .await;
    assert_error(&bulk, 403, "PERMISSION_DENIED");
    p.stop().await;
}
