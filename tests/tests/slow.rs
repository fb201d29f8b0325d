//! A socket that cannot keep up: Ana's client stops reading (a tiny receive buffer, nothing
//! read) while megabytes of frames land in her feed. The gateway gives up on that socket
//! after `gateway.socket_write_timeout_ms` — closing it (4008 when the close frame still
//! fits), ending its presence — while Bruno's socket, on the same gateway, keeps receiving.
//! Ana reconnects with the last number she saw and gets exactly the rest: no gap, no
//! duplicate.

use atende_capacity::Keys;
use atende_domain::ids::{AgentId, TenantId};
use atende_e2e::{Platform, DEADLINE};
use atende_store::feed::NewFrame;
use atende_testkit::wait_until;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

/// Frames written to Ana's feed, about 4 KB each: far more than the socket buffers hold.
const FRAMES: i64 = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_socket_that_cannot_keep_up_is_closed_without_holding_up_others_and_resumes_exactly() {
    // Arrange: a short write deadline; Ana's socket with a 4 KB receive buffer that is never
    // read; Bruno connected normally.
    let p = Platform::start_configured(|c| {
        c.gateway.socket_write_timeout_ms = 300;
        c.gateway.feed_sweep_ms = 100;
    })
    .await;
    let t = p.seed().await;
    let bruno = p.add_agent(&t, "Bruno", "bruno@acme.test", "bruno password").await;
    let ana_token = p.login(&t).await;
    let (_, mut bruno_ws) = p.online(&bruno).await;
    let ticket = p.ws_ticket(&ana_token).await;
    let addr = p.gateway.trim_start_matches("http://").to_string();
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(4096).unwrap();
    let stream = tcp.connect(addr.parse().unwrap()).await.unwrap();
    let url = format!("ws://{addr}/api/v1/ws?ticket={ticket}");
    let (mut slow, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    let (tenant, ana) = (
        Uuid::parse_str(&t.tenant_id).unwrap(),
        Uuid::parse_str(&t.agent_id).unwrap(),
    );
    let keys = Keys::new(&p.edge.namespace.prefix);
    let sockets = keys.sockets(TenantId(tenant), AgentId(ana));
    let redis = redis::Client::open(secrecy::ExposeSecret::expose_secret(&p.edge.redis.url))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let open = |mut r: redis::aio::MultiplexedConnection, key: String| async move {
        redis::cmd("ZCARD").arg(&key).query_async::<i64>(&mut r).await.unwrap()
    };
    wait_until("Ana's socket counted", DEADLINE, || {
        let (r, k) = (redis.clone(), sockets.clone());
        async move { (open(r, k).await == 1).then_some(()) }
    })
    .await;

    // Act: megabytes of frames for Ana, then one frame for Bruno.
    let filler = "x".repeat(4000);
    let data: Vec<Value> = (0..FRAMES).map(|i| json!({ "i": i, "filler": filler })).collect();
    let frames: Vec<NewFrame> = data
        .iter()
        .map(|d| NewFrame {
            ty: "test.filler",
            data: d,
            trace_id: None,
        })
        .collect();
    atende_store::feed::append(&p.sandbox.pool, tenant, ana, Uuid::now_v7(), &frames)
        .await
        .unwrap();
    let note = json!({ "text": "para o Bruno" });
    let bruno_id = Uuid::parse_str(&bruno.agent_id).unwrap();
    let frame = [NewFrame {
        ty: "test.note",
        data: &note,
        trace_id: None,
    }];
    atende_store::feed::append(&p.sandbox.pool, tenant, bruno_id, Uuid::now_v7(), &frame)
        .await
        .unwrap();

    // Assert: Bruno is served; Ana's socket is given up (its presence entry goes) while she
    // still has read nothing.
    let got = bruno_ws.next_of("test.note").await;
    assert_eq!(got["data"]["text"], "para o Bruno");
    wait_until("the slow socket given up", DEADLINE, || {
        let (r, k) = (redis.clone(), sockets.clone());
        async move { (open(r, k).await == 0).then_some(()) }
    })
    .await;

    // What reached Ana before the cut: whole frames in order, then the close (or the end of
    // the connection, when even the close frame did not fit).
    let mut seen: Vec<i64> = Vec::new();
    let mut close_code = None;
    let mut start = None;
    loop {
        match tokio::time::timeout(DEADLINE, slow.next())
            .await
            .expect("the cut connection ends")
        {
            Some(Ok(Message::Text(text))) => {
                let v: Value = serde_json::from_str(text.as_str()).unwrap();
                let seq = v["seq"].as_i64().unwrap();
                match v["type"].as_str() {
                    Some("hello") => start = Some(seq),
                    _ => seen.push(seq),
                }
            }
            Some(Ok(Message::Close(frame))) => {
                close_code = frame.map(|f| u16::from(f.code));
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break,
        }
    }
    let start = start.expect("hello");
    assert!(
        (seen.len() as i64) < FRAMES,
        "the slow socket was not cut: it got all {FRAMES}"
    );
    assert!(matches!(close_code, None | Some(4008)), "closed with {close_code:?}");
    let expected_first: Vec<i64> = (start + 1..=start + seen.len() as i64).collect();
    assert_eq!(
        seen, expected_first,
        "the frames before the cut are in order, none missing"
    );

    // Ana reconnects after the last frame she saw and gets exactly the rest.
    let last = seen.last().copied().unwrap_or(start);
    let mut again = p.socket_after(&ana_token, Some(last as u64)).await;
    let mut rest = Vec::new();
    while rest.last().copied().unwrap_or(last) < start + FRAMES {
        let f = again.next().await;
        rest.push(f["seq"].as_i64().unwrap());
    }
    let expected_rest: Vec<i64> = (last + 1..=start + FRAMES).collect();
    assert_eq!(rest, expected_rest);
    again.close().await;
    bruno_ws.close().await;
    p.stop().await;
}
