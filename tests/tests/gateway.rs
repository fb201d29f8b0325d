//! The gateway's HTTP and WebSocket API end to end, every role real: login and bearer
//! tokens, the authentication wall in front of every route, presence through the router,
//! conversation ownership, reply idempotency down to the (fake) Graph API, logout refused
//! while conversations are open, the per-agent WebSocket fan-out and its `seq`, and health.
//!
//! Errors are checked against the platform's one contract:
//! `{"error": {"code", "message", "message_pt_br", "detail"}}` with the domain's status.

use atende_e2e::api::{assert_error, call, Auth};
use atende_e2e::{AgentSocket, Platform, Tenant, DEADLINE};
use atende_testkit::wait_until;
use atende_testkit::whatsapp::text_message_webhook;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest::Method;
use serde_json::{json, Value};

/// The gateway's JWT secret in tests that need to mint or read tokens themselves.
const SECRET: &str = "e2e-gateway-secret-0123456789abcdef-0123";
const TTL_SECS: u64 = 900;

async fn platform_with_known_secret() -> Platform {
    Platform::start_configured(|cfg| {
        cfg.gateway.jwt_secret = SECRET.to_string().into();
        cfg.gateway.token_ttl_secs = TTL_SECS;
    })
    .await
}

/// A customer writes to the tenant's WhatsApp number; the adapter accepts the webhook.
async fn customer_writes(p: &Platform, t: &Tenant, from: &str, wamid: &str, text: &str) {
    let body = text_message_webhook(&t.phone_number_id, from, "Cliente", wamid, text, atende_e2e::now_secs());
    let resp = p.post_webhook(t, &body, None).await;
    assert_eq!(resp.status(), 200, "webhook refused");
}

/// The conversation a frame is about, if any.
fn conversation_of(frame: &Value) -> Option<&str> {
    let d = &frame["data"];
    d["conversation"]["id"]
        .as_str()
        .or(d["message"]["conversation_id"].as_str())
        .or(d["conversation_id"].as_str())
}

/// A socket's first frame is `hello` at the agent's feed number it starts from, N; the
/// frames after it carry N+1, N+2, ... in order.
#[track_caller]
fn assert_seq(socket: &AgentSocket) {
    assert_eq!(socket.seen[0]["type"], "hello", "frames: {:?}", socket.seen);
    let start = socket.seen[0]["seq"].as_u64().expect("hello seq");
    for (i, f) in socket.seen.iter().enumerate() {
        assert_eq!(f["seq"].as_u64(), Some(start + i as u64), "frames: {:?}", socket.seen);
    }
}

async fn presence_status(p: &Platform, token: &str) -> String {
    let (s, body) = call(p, Method::GET, "/api/v1/me/presence", Auth::Bearer(token), None).await;
    assert_eq!(s, 200, "{body}");
    body["status"].as_str().expect("status").to_string()
}

async fn put_presence(p: &Platform, token: &str, body: Value) -> (u16, Value) {
    call(p, Method::PUT, "/api/v1/me/presence", Auth::Bearer(token), Some(body)).await
}

async fn reply(p: &Platform, token: &str, conversation: &str, text: &str, client_id: &str) -> (u16, Value) {
    let body = json!({ "text": text, "client_message_id": client_id });
    call(
        p,
        Method::POST,
        &format!("/api/v1/conversations/{conversation}/messages"),
        Auth::Bearer(token),
        Some(body),
    )
    .await
}

/// The agent of `token` is available on WhatsApp, watching a socket, and a customer writes:
/// returns the conversation's id once it is assigned to that agent.
async fn conversation_assigned_to(
    p: &Platform,
    t: &Tenant,
    socket: &mut AgentSocket,
    from: &str,
    wamid: &str,
) -> String {
    customer_writes(p, t, from, wamid, "Oi, preciso de ajuda").await;
    let assigned = socket.next_of("conversation.assigned").await;
    assert_eq!(assigned["data"]["conversation"]["agent_id"], t.agent_id.as_str());
    assigned["data"]["conversation"]["id"].as_str().unwrap().to_string()
}

/// The seed's agent A and a second agent B of the same tenant and service, both logged in,
/// only A available: the arrangement of every test about what one agent sees of another's.
struct TwoAgents {
    p: Platform,
    a: Tenant,
    b: Tenant,
    token_a: String,
    token_b: String,
}

async fn two_agents_a_available() -> TwoAgents {
    let p = Platform::start().await;
    let a = p.seed().await;
    let b = p.add_agent(&a, "Bruno", "bruno@acme.test", "battery staple").await;
    let token_a = p.login(&a).await;
    let token_b = p.login(&b).await;
    p.set_available(&token_a).await;
    TwoAgents {
        p,
        a,
        b,
        token_a,
        token_b,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_refuses_bad_credentials_alike_and_returns_a_bearer_token_for_good_ones() {
    let p = platform_with_known_secret().await;
    let t = p.seed().await;
    let login = |tenant: &str, email: &str, password: &str| {
        let body = json!({ "tenant": tenant, "email": email, "password": password });
        call(&p, Method::POST, "/api/v1/auth/login", Auth::None, Some(body))
    };

    // Wrong password, unknown e-mail and unknown tenant cannot be told apart.
    let wrong_password = login(&t.slug, &t.agent_email, "wrong horse").await;
    let unknown_email = login(&t.slug, "nobody@acme.test", &t.agent_password).await;
    let unknown_tenant = login("no-such-tenant", &t.agent_email, &t.agent_password).await;
    assert_error(&wrong_password, 401, "INVALID_CREDENTIALS");
    assert_eq!(unknown_email, wrong_password, "no user enumeration");
    assert_eq!(unknown_tenant, wrong_password, "no tenant enumeration");

    // Not JSON, and JSON of the wrong shape.
    let resp = p
        .http
        .post(format!("{}/api/v1/auth/login", p.gateway))
        .header("content-type", "application/json")
        .body("{\"tenant\": ")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert_error(&(status, resp.json().await.unwrap()), 400, "MALFORMED_PAYLOAD");
    let missing = call(
        &p,
        Method::POST,
        "/api/v1/auth/login",
        Auth::None,
        Some(json!({ "email": t.agent_email })),
    )
    .await;
    assert_error(&missing, 400, "MALFORMED_PAYLOAD");

    // The right credentials.
    let (status, body) = login(&t.slug, &t.agent_email, &t.agent_password).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"].as_u64(), Some(TTL_SECS));
    assert_eq!(body["agent_id"], t.agent_id.as_str());
    assert_eq!(body["tenant_id"], t.tenant_id.as_str());
    let token = body["access_token"].as_str().expect("access_token");
    let claims = jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_secret(SECRET.as_bytes()),
        &Validation::new(Algorithm::HS256),
    )
    .expect("an HS256 token signed with the gateway's secret")
    .claims;
    assert_eq!(
        (claims["sub"].as_str(), claims["tenant"].as_str()),
        (Some(t.agent_id.as_str()), Some(t.tenant_id.as_str()))
    );
    let now = jsonwebtoken::get_current_timestamp();
    let exp = claims["exp"].as_u64().unwrap();
    assert!(exp > now && exp <= now + TTL_SECS + 5, "exp {exp}, now {now}");
    // And it opens the API.
    let (status, _) = call(&p, Method::GET, "/api/v1/me/presence", Auth::Bearer(token), None).await;
    assert_eq!(status, 200);

    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_takes_as_long_for_an_unknown_account_as_for_a_wrong_password() {
    // Same body is not enough: a login that skips the password hash for unknown accounts
    // answers them many times faster, which enumerates accounts as well as a message would.
    let p = Platform::start().await;
    let t = p.seed().await;
    let attempts = [
        ("wrong password", t.slug.as_str(), t.agent_email.as_str()),
        ("unknown e-mail", t.slug.as_str(), "nobody@acme.test"),
        ("unknown tenant", "no-such-tenant", t.agent_email.as_str()),
    ];
    let mut times: Vec<Vec<std::time::Duration>> = vec![Vec::new(); attempts.len()];
    // Interleaved rounds, so load on the machine hits every kind alike; medians against noise.
    for _ in 0..7 {
        for (i, (what, tenant, email)) in attempts.iter().enumerate() {
            let body = json!({ "tenant": tenant, "email": email, "password": "wrong horse" });
            let started = std::time::Instant::now();
            let got = call(&p, Method::POST, "/api/v1/auth/login", Auth::None, Some(body)).await;
            times[i].push(started.elapsed());
            assert_eq!(got.0, 401, "{what}: {got:?}");
        }
    }
    let medians: Vec<std::time::Duration> = times
        .iter_mut()
        .map(|t| {
            t.sort();
            t[t.len() / 2]
        })
        .collect();
    for (i, (what, ..)) in attempts.iter().enumerate().skip(1) {
        assert!(
            medians[i] * 3 >= medians[0],
            "{what} answered in {:?}, a wrong password in {:?}: the difference enumerates accounts",
            medians[i],
            medians[0]
        );
    }
    p.stop().await;
}

#[tokio::test]
async fn an_account_over_its_login_rate_gets_429_with_retry_after_even_with_the_right_password() {
    // Arrange
    let p = Platform::start_configured(|cfg| cfg.limits.login_per_account_per_min = 3).await;
    let t = p.seed().await;
    let other = p.add_agent(&t, "Bruno", "bruno@acme.test", "bruno password").await;
    let attempt = |password: &str| json!({ "tenant": t.slug, "email": t.agent_email, "password": password });

    // Act: a guesser spends the account's attempts; then the owner tries.
    let mut guesses = Vec::new();
    for _ in 0..3 {
        guesses.push(
            call(
                &p,
                Method::POST,
                "/api/v1/auth/login",
                Auth::None,
                Some(attempt("guess")),
            )
            .await
            .0,
        );
    }
    let resp = p
        .http
        .post(format!("{}/api/v1/auth/login", p.gateway))
        .json(&attempt(&t.agent_password))
        .send()
        .await
        .unwrap();

    // Assert: limited per account (case of the e-mail does not matter), others unaffected.
    assert_eq!(guesses, vec![401, 401, 401]);
    assert_eq!(resp.status(), 429);
    let retry_after: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    let shouting = json!({ "tenant": t.slug, "email": t.agent_email.to_uppercase(), "password": t.agent_password });
    assert_eq!(
        call(&p, Method::POST, "/api/v1/auth/login", Auth::None, Some(shouting))
            .await
            .0,
        429
    );
    p.login(&other).await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_protected_route_refuses_a_missing_garbage_foreign_or_expired_token() {
    let p = platform_with_known_secret().await;
    let t = p.seed().await;
    let valid = p.login(&t).await;
    let mint = |secret: &[u8], exp: u64| {
        let claims = json!({ "sub": t.agent_id, "tenant": t.tenant_id, "supervisor": true, "sid": uuid::Uuid::new_v4(), "exp": exp });
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    };
    let later = jsonwebtoken::get_current_timestamp() + 600;
    // The same claims as a real token, signed by another secret.
    let foreign = mint(b"another-secret-entirely-0123456789abcdef", later);
    // Signed by the gateway's own secret, but expired a while ago (beyond the leeway).
    let expired = mint(SECRET.as_bytes(), jsonwebtoken::get_current_timestamp() - 120);
    // A well-formed token with a tampered payload: the valid token's signature on other claims.
    let tampered = {
        let sig = valid.rsplit('.').next().unwrap();
        let forged = mint(b"another-secret-entirely-0123456789abcdef", later);
        let mut parts: Vec<&str> = forged.split('.').collect();
        parts[2] = sig;
        parts.join(".")
    };

    let id = uuid::Uuid::new_v4();
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, "/api/v1/auth/logout".into(), None),
        (
            Method::PUT,
            "/api/v1/me/presence".into(),
            Some(json!({ "status": "available" })),
        ),
        (Method::GET, "/api/v1/me/presence".into(), None),
        (Method::GET, "/api/v1/me/conversations".into(), None),
        (Method::GET, format!("/api/v1/conversations/{id}/messages"), None),
        (
            Method::POST,
            format!("/api/v1/conversations/{id}/messages"),
            Some(json!({ "text": "oi" })),
        ),
        (Method::POST, format!("/api/v1/conversations/{id}/accept"), None),
        (Method::POST, format!("/api/v1/conversations/{id}/claim"), None),
        (Method::GET, "/api/v1/ws".into(), None),
        (Method::POST, "/api/v1/ws/ticket".into(), None),
    ];
    let garbage = [
        ("no token", Auth::None),
        ("garbage", Auth::Bearer("not-a-jwt")),
        ("another scheme", Auth::Header("Token not-a-jwt")),
        ("foreign secret", Auth::Bearer(&foreign)),
        ("expired", Auth::Bearer(&expired)),
        ("tampered", Auth::Bearer(&tampered)),
    ];
    for (method, path, body) in &routes {
        for (what, auth) in garbage {
            let got = call(&p, method.clone(), path, auth, body.clone()).await;
            assert!(
                got.0 == 401 && got.1["error"]["code"] == "UNAUTHENTICATED",
                "{method} {path} with {what}: {got:?}"
            );
            assert_error(&got, 401, "UNAUTHENTICATED");
        }
    }

    // Tokens never travel in URLs: not even the genuine one opens a socket as `?access_token=`,
    // and a ticket that was never issued opens nothing either.
    let ws = p.gateway.replace("http://", "ws://");
    for (what, query) in [
        ("the genuine token in the URL", format!("access_token={valid}")),
        ("a garbage ticket", "ticket=not-a-ticket".to_string()),
        ("a token as ticket", format!("ticket={valid}")),
    ] {
        match tokio_tungstenite::connect_async(format!("{ws}/api/v1/ws?{query}")).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401, "{what}"),
            other => panic!("websocket with {what}: {:?}", other.map(|(_, r)| r.status())),
        }
    }
    match tokio_tungstenite::connect_async(format!("{ws}/api/v1/ws")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("websocket without a token: {:?}", other.map(|(_, r)| r.status())),
    }

    // The control: the genuine token passes the same wall.
    assert_eq!(
        call(&p, Method::GET, "/api/v1/me/presence", Auth::Bearer(&valid), None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&p, Method::GET, "/api/v1/me/conversations", Auth::Bearer(&valid), None)
            .await
            .0,
        200
    );
    let socket = p.socket(&valid).await;
    assert_eq!(socket.seen[0]["data"]["agent_id"], t.agent_id.as_str());
    socket.close().await;
    // Past the wall, a plain GET that is no WebSocket upgrade still answers the error contract.
    let not_upgrade = call(&p, Method::GET, "/api/v1/ws", Auth::Bearer(&valid), None).await;
    assert_error(&not_upgrade, 400, "INVALID_ARGUMENT");

    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn presence_is_set_and_read_back_as_the_status_the_router_derives() {
    let p = Platform::start().await;
    let t = p.seed().await;
    let token = p.login(&t).await;

    // Available on WhatsApp only.
    let (s, body) = put_presence(&p, &token, json!({ "status": "available", "channels": ["whatsapp"] })).await;
    assert_eq!((s, body["status"].as_str()), (200, Some("available")), "{body}");
    assert_eq!(body["agent_id"], t.agent_id.as_str());
    assert_eq!(
        body["channels"],
        json!([{ "channel_kind": "whatsapp", "paused": false }])
    );
    assert_eq!(body["max_concurrent"], 3);
    let (s, got) = call(&p, Method::GET, "/api/v1/me/presence", Auth::Bearer(&token), None).await;
    assert_eq!((s, &got), (200, &body), "GET answers what PUT answered");

    // Paused (every channel kind when none is given), then offline.
    for status in ["paused", "offline", "available", "paused"] {
        let (s, body) = put_presence(&p, &token, json!({ "status": status })).await;
        assert_eq!((s, body["status"].as_str()), (200, Some(status)), "{body}");
        assert_eq!(presence_status(&p, &token).await, status);
        let channels = body["channels"].as_array().unwrap();
        if status == "offline" {
            assert!(channels.is_empty(), "{body}");
        } else {
            assert!(
                !channels.is_empty() && channels.iter().all(|c| c["paused"] == (status == "paused")),
                "{body}"
            );
        }
    }

    // Refusals change nothing.
    assert_error(
        &put_presence(&p, &token, json!({ "status": "busy" })).await,
        400,
        "INVALID_ARGUMENT",
    );
    let bad_kind = put_presence(
        &p,
        &token,
        json!({ "status": "available", "channels": ["whatsapp", "fax"] }),
    )
    .await;
    assert_error(&bad_kind, 400, "INVALID_ARGUMENT");
    assert!(
        bad_kind.1["error"]["detail"].as_str().unwrap().contains("fax"),
        "{:?}",
        bad_kind.1
    );
    assert_error(
        &put_presence(&p, &token, json!({ "channels": ["whatsapp"] })).await,
        400,
        "MALFORMED_PAYLOAD",
    );
    assert_eq!(presence_status(&p, &token).await, "paused");

    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_owner_reads_and_replies_to_a_conversation() {
    let TwoAgents {
        p, a, token_a, token_b, ..
    } = two_agents_a_available().await;
    let mut socket_a = p.socket(&token_a).await;
    let conversation = conversation_assigned_to(&p, &a, &mut socket_a, "5511987654321", "wamid.OWN1").await;
    let messages = format!("/api/v1/conversations/{conversation}/messages");

    // B, of the same tenant and service, can neither read nor reply.
    assert_error(
        &call(&p, Method::GET, &messages, Auth::Bearer(&token_b), None).await,
        403,
        "NOT_CONVERSATION_OWNER",
    );
    assert_error(
        &reply(&p, &token_b, &conversation, "sou o Bruno", "b-1").await,
        403,
        "NOT_CONVERSATION_OWNER",
    );
    let (s, mine) = call(
        &p,
        Method::GET,
        "/api/v1/me/conversations",
        Auth::Bearer(&token_b),
        None,
    )
    .await;
    assert_eq!(
        (s, mine["conversations"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{mine}"
    );

    // A can.
    let (s, mine) = call(
        &p,
        Method::GET,
        "/api/v1/me/conversations",
        Auth::Bearer(&token_a),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(mine["conversations"][0]["id"], conversation.as_str(), "{mine}");
    let (s, read) = call(&p, Method::GET, &messages, Auth::Bearer(&token_a), None).await;
    assert_eq!(s, 200, "{read}");
    assert_eq!(read["messages"][0]["text"], "Oi, preciso de ajuda", "{read}");
    let (s, sent) = reply(&p, &token_a, &conversation, "Olá!", "a-1").await;
    assert_eq!(s, 201, "{sent}");
    assert_eq!(sent["message"]["agent_id"], a.agent_id.as_str());

    // Ids that are not UUIDs, and a UUID that is no conversation.
    for bad in ["not-a-uuid", "123"] {
        let path = format!("/api/v1/conversations/{bad}/messages");
        assert_error(
            &call(&p, Method::GET, &path, Auth::Bearer(&token_a), None).await,
            400,
            "INVALID_ARGUMENT",
        );
        assert_error(&reply(&p, &token_a, bad, "x", "a-x").await, 400, "INVALID_ARGUMENT");
    }
    // A paging query that does not parse is refused in the error contract, not in plain text.
    let bad_page = format!("{messages}?page_size=abc");
    assert_error(
        &call(&p, Method::GET, &bad_page, Auth::Bearer(&token_a), None).await,
        400,
        "INVALID_ARGUMENT",
    );
    let unknown = uuid::Uuid::new_v4();
    let path = format!("/api/v1/conversations/{unknown}/messages");
    assert_error(
        &call(&p, Method::GET, &path, Auth::Bearer(&token_a), None).await,
        404,
        "NOT_FOUND",
    );

    // Only A's reply went out, and only A's reply is stored.
    let sends = p.fake.wait_for_sends(1, DEADLINE).await;
    assert_eq!(
        sends
            .iter()
            .map(|s| s.body["text"]["body"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["Olá!"]
    );
    let outbound: Vec<(String, Option<uuid::Uuid>)> =
        sqlx::query_as("SELECT body, agent_id FROM messages WHERE direction = 'outbound'")
            .fetch_all(&p.sandbox.pool)
            .await
            .unwrap();
    assert_eq!(outbound, [("Olá!".to_string(), Some(a.agent_id.parse().unwrap()))]);

    socket_a.close().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reply_retried_with_the_same_client_message_id_is_stored_and_sent_once() {
    let p = Platform::start().await;
    let t = p.seed().await;
    let (token, mut socket) = p.online(&t).await;
    let conversation = conversation_assigned_to(&p, &t, &mut socket, "5511987654321", "wamid.IDEM1").await;

    // Act: the same reply twice in a row, then twice at once under another client id.
    let first = reply(&p, &token, &conversation, "Um momento, por favor", "c-dup").await;
    let again = reply(&p, &token, &conversation, "Um momento, por favor", "c-dup").await;
    assert_eq!((first.0, again.0), (201, 201), "{first:?} {again:?}");
    assert_eq!(
        first.1["message"]["id"], again.1["message"]["id"],
        "the retry answers the stored message"
    );
    let (x, y) = tokio::join!(
        reply(&p, &token, &conversation, "Já verifico", "c-race"),
        reply(&p, &token, &conversation, "Já verifico", "c-race"),
    );
    assert_eq!((x.0, y.0), (201, 201), "{x:?} {y:?}");
    assert_eq!(x.1["message"]["id"], y.1["message"]["id"]);
    p.fake.wait_for_sends(2, DEADLINE).await;

    // The sentinel: a distinct reply sent afterwards; once it reached Graph, any duplicate
    // send of the earlier ones would have too.
    assert_eq!(reply(&p, &token, &conversation, "Pronto!", "c-sentinel").await.0, 201);
    wait_until("the sentinel reaches Graph", DEADLINE, || async {
        p.fake
            .sent()
            .iter()
            .any(|s| s.body["text"]["body"] == "Pronto!")
            .then_some(())
    })
    .await;

    let sent: Vec<String> = p
        .fake
        .sent()
        .iter()
        .map(|s| s.body["text"]["body"].as_str().unwrap().to_string())
        .collect();
    let count = |text: &str| sent.iter().filter(|s| *s == text).count();
    assert_eq!(
        (count("Um momento, por favor"), count("Já verifico"), count("Pronto!")),
        (1, 1, 1),
        "sends: {sent:?}"
    );
    let stored: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT client_message_id, count(*) FROM messages WHERE direction = 'outbound'
         GROUP BY client_message_id ORDER BY client_message_id",
    )
    .fetch_all(&p.sandbox.pool)
    .await
    .unwrap();
    let expected: Vec<(Option<String>, i64)> = ["c-dup", "c-race", "c-sentinel"]
        .iter()
        .map(|c| (Some(c.to_string()), 1))
        .collect();
    assert_eq!(stored, expected);

    socket.close().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logout_is_refused_while_a_conversation_is_open_and_allowed_without_one() {
    let TwoAgents {
        p, a, token_a, token_b, ..
    } = two_agents_a_available().await;
    let mut socket_a = p.socket(&token_a).await;
    conversation_assigned_to(&p, &a, &mut socket_a, "5511987654321", "wamid.LOGOUT1").await;

    // A has a conversation in progress: refused, in the seed's words, and nothing changes.
    let refused = call(&p, Method::POST, "/api/v1/auth/logout", Auth::Bearer(&token_a), None).await;
    assert_error(&refused, 409, "LOGOUT_WITH_OPEN_CONVERSATIONS");
    assert_eq!(
        refused.1["error"]["message_pt_br"],
        "Você não pode fazer logout enquanto houver atendimentos em andamento. Finalize-os para sair da aplicação"
    );
    assert_eq!(presence_status(&p, &token_a).await, "available");

    // B has none: logged out, and out of every channel.
    p.set_available(&token_b).await;
    let (s, body) = call(&p, Method::POST, "/api/v1/auth/logout", Auth::Bearer(&token_b), None).await;
    assert_eq!((s, body), (204, Value::Null));
    assert_eq!(presence_status(&p, &token_b).await, "offline");

    socket_a.close().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn websocket_frames_reach_every_socket_of_their_agent_and_no_other_in_seq_order() {
    let TwoAgents {
        p,
        a,
        b,
        token_a,
        token_b,
    } = two_agents_a_available().await;
    let mut a1 = p.socket(&token_a).await;
    let mut a2 = p.socket(&token_a).await;
    let mut b1 = p.socket(&token_b).await;

    // A customer writes while only A is available: both of A's sockets get the assignment.
    customer_writes(&p, &a, "5511900000001", "wamid.WS1", "primeira").await;
    let mut conv_a = Vec::new();
    for s in [&mut a1, &mut a2] {
        let f = s.next_of("conversation.assigned").await;
        assert_eq!(f["data"]["conversation"]["agent_id"], a.agent_id.as_str());
        conv_a.push(f["data"]["conversation"]["id"].as_str().unwrap().to_string());
        s.next_matching("message.created", |f| f["data"]["message"]["text"] == "primeira")
            .await;
    }
    assert_eq!(conv_a[0], conv_a[1]);
    let conv_a = conv_a.remove(0);

    // The sentinel for B: A pauses, B becomes available, another customer writes. Once B
    // sees that, it would have seen anything of A's pushed before.
    assert_eq!(put_presence(&p, &token_a, json!({ "status": "paused" })).await.0, 200);
    p.set_available(&token_b).await;
    customer_writes(&p, &a, "5511900000002", "wamid.WS2", "segunda").await;
    let f = b1.next_of("conversation.assigned").await;
    assert_eq!(f["data"]["conversation"]["agent_id"], b.agent_id.as_str());
    let conv_b = f["data"]["conversation"]["id"].as_str().unwrap().to_string();
    assert_ne!(conv_a, conv_b);
    b1.next_matching("message.created", |f| f["data"]["message"]["text"] == "segunda")
        .await;

    // The sentinel for A: A's customer writes again; both of A's sockets see it.
    customer_writes(&p, &a, "5511900000001", "wamid.WS3", "terceira").await;
    for s in [&mut a1, &mut a2] {
        let f = s
            .next_matching("message.created", |f| f["data"]["message"]["text"] == "terceira")
            .await;
        assert_eq!(f["data"]["message"]["conversation_id"], conv_a.as_str());
    }

    // Nothing crossed over, and every socket numbered its frames 0, 1, 2, ...
    for (who, s, own) in [("A1", &a1, &conv_a), ("A2", &a2, &conv_a), ("B", &b1, &conv_b)] {
        assert_seq(s);
        let foreign: Vec<&Value> = s
            .seen
            .iter()
            .filter(|f| conversation_of(f).is_some_and(|c| c != own.as_str()))
            .collect();
        assert!(foreign.is_empty(), "{who} got another agent's frames: {foreign:?}");
    }
    assert_eq!(
        a1.seen.iter().map(|f| &f["type"]).collect::<Vec<_>>(),
        a2.seen.iter().map(|f| &f["type"]).collect::<Vec<_>>()
    );

    // Closing one of A's sockets leaves A as he was (the other still receives)...
    a1.close().await;
    customer_writes(&p, &a, "5511900000001", "wamid.WS4", "quarta").await;
    a2.next_matching("message.created", |f| f["data"]["message"]["text"] == "quarta")
        .await;
    assert_eq!(presence_status(&p, &token_a).await, "paused");
    // ...and closing the last one makes A inactive.
    a2.close().await;
    wait_until("A inactive once his last socket closed", DEADLINE, || async {
        (presence_status(&p, &token_a).await == "inactive").then_some(())
    })
    .await;
    assert_eq!(
        presence_status(&p, &token_b).await,
        "available",
        "B's socket is still open"
    );
    // Reconnecting restores the channel logins A had: he is paused again, not offline.
    let a3 = p.socket(&token_a).await;
    wait_until("A's logins restored after reconnecting", DEADLINE, || async {
        (presence_status(&p, &token_a).await == "paused").then_some(())
    })
    .await;

    a3.close().await;
    b1.close().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_and_readiness_answer_200_while_running() {
    let p = Platform::start().await;
    for (path, text) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let resp = p.http.get(format!("{}{path}", p.gateway)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.text().await.unwrap(), text, "{path}");
    }
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_limits_bodies_and_rates_per_agent_and_tenant_answers_cors_and_sends_security_headers() {
    // Arrange: three requests a minute per agent, five per tenant, 1 KiB bodies, one origin.
    let p = Platform::start_configured(|cfg| {
        cfg.limits.api_per_user_per_min = 3;
        cfg.limits.api_per_tenant_per_min = 5;
        cfg.gateway.body_limit_bytes = 1024;
        cfg.gateway.cors_allowed_origins = "https://console.acme.test".into();
    })
    .await;
    let a = p.seed().await;
    let b = p.add_agent(&a, "Bruno", "bruno@acme.test", "battery staple").await;
    let (token_a, token_b) = (p.login(&a).await, p.login(&b).await);

    // Per agent: the fourth request of A in the minute is refused...
    for _ in 0..3 {
        assert_eq!(
            call(&p, Method::GET, "/api/v1/me/presence", Auth::Bearer(&token_a), None)
                .await
                .0,
            200
        );
    }
    let resp = p
        .http
        .get(format!("{}/api/v1/me/presence", p.gateway))
        .bearer_auth(&token_a)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let wait: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait >= 1);
    assert_error(&(429, resp.json().await.unwrap()), 429, "RATE_LIMITED");
    // ...per tenant: B has two of the tenant's five left.
    for _ in 0..2 {
        assert_eq!(
            call(&p, Method::GET, "/api/v1/me/presence", Auth::Bearer(&token_b), None)
                .await
                .0,
            200
        );
    }
    let got = call(&p, Method::GET, "/api/v1/me/presence", Auth::Bearer(&token_b), None).await;
    assert_error(&got, 429, "RATE_LIMITED");

    // A body over the limit: 413 before anything runs.
    let big = json!({ "text": "x".repeat(2000) });
    let got = call(
        &p,
        Method::POST,
        &format!("/api/v1/conversations/{}/notes", uuid::Uuid::new_v4()),
        Auth::None,
        Some(big),
    )
    .await;
    assert_error(&got, 413, "PAYLOAD_TOO_LARGE");

    // CORS: the configured origin may call; another gets no allowance.
    let preflight = |origin: &'static str| {
        p.http
            .request(Method::OPTIONS, format!("{}/api/v1/me/presence", p.gateway))
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    let ok = preflight("https://console.acme.test").await.unwrap();
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://console.acme.test");
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // Every answer, refusals included, carries the security headers.
    let resp = p
        .http
        .get(format!("{}/api/v1/me/presence", p.gateway))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(resp.headers()[name], value, "{name}");
    }
    assert!(resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    p.stop().await;
}
