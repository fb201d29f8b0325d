//! The agent's WebSocket: the agent's feed, frame by frame, from where the client left off.
//!
//! Frames are `{"type", "seq", "trace_id", "data"}`; `seq` is the agent's feed number, the
//! same on every socket of the agent and on every replica. The first frame is `hello`, whose
//! `seq` is where the socket starts: `?last_seq=N` (the last number the client saw) resumes
//! right after N, so a reconnecting client gets exactly what it missed, in order, then live
//! frames; without it the socket starts at the feed's current end. When N is too old (its
//! frames were pruned) or unknown, a `resync` frame follows `hello`: reload, then go on live.
//!
//! A socket that cannot take a frame within `gateway.socket_write_timeout_ms` is closed (code
//! 4008) so it holds nothing up; the client reconnects with its last `seq` and misses nothing.
//! Each socket counts toward the agent's presence across replicas (`presence`): when no
//! socket of his is left anywhere for the grace, he becomes Inactive (the connection dropped)
//! until a socket comes back, which restores his channel logins.

use atende_domain::ErrorCode;
use atende_proto::v1 as pb;
use atende_runtime::http_api::error;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::api::AppState;
use crate::auth::Claims;

/// Frames read from Postgres per catch-up step.
const BATCH: i64 = 200;
/// The close code of a socket that fell behind.
const TOO_SLOW: u16 = 4008;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct WsQuery {
    /// A single-use ticket from `POST /api/v1/ws/ticket` (browsers cannot set headers).
    ticket: Option<String>,
    /// The last frame number the client saw: the socket resumes right after it.
    last_seq: Option<i64>,
}

/// The agent's socket, authenticated by a single-use ticket (`?ticket=`, from
/// `POST /api/v1/ws/ticket`) or, for clients that can set headers, the bearer token.
#[utoipa::path(get, path = "/api/v1/ws", tag = "push", params(WsQuery),
    description = "Frames are `{\"type\", \"seq\", \"trace_id\", \"data\"}`: `hello` first (its `seq` is where the \
socket starts), then `resync` when `last_seq` is too old or unknown, then the agent's feed: \
`conversation.offered`, `conversation.assigned`, `offer.withdrawn`, `message.created`, \
`message.status`, `conversation.transferred`, `conversation.closed`, `conversation.window`, \
`supervisor.notice`, `missed_lead.notice`. A socket too slow to take a frame is closed with code 4008.",
    responses((status = 101, description = "Switching to the WebSocket protocol")))]
pub(crate) async fn websocket(
    State(state): State<AppState>,
    headers: http::HeaderMap,
    q: Result<Query<WsQuery>, axum::extract::rejection::QueryRejection>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return error(ErrorCode::InvalidArgument, "expected ?ticket=&last_seq=<integer>").into_response();
    };
    let claims = match crate::login::ticket_or_bearer(&state, q.ticket.as_deref(), &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Ok(ws) = ws else {
        return error(ErrorCode::InvalidArgument, "expected a WebSocket upgrade").into_response();
    };
    let last_seq = q.last_seq;
    // Agents send little (pings, closes) and each frame goes out at once: small buffers keep
    // a socket at a few KB instead of the library's 128 KiB each way.
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| agent_socket(state, claims, socket, last_seq))
}

/// Where a socket starts: the number after which it sends, and whether the client must reload.
fn start_at(resume: Option<i64>, head: i64, first_kept: Option<i64>) -> (i64, bool) {
    match resume {
        None => (head, false),
        // Ahead of the feed, or negative: not ours.
        Some(n) if n > head || n < 0 => (head, true),
        Some(n) if n == head => (n, false),
        // Behind: resumable only while the frame after n is still kept.
        Some(n) => match first_kept {
            Some(first) if first <= n + 1 => (n, false),
            _ => (head, true),
        },
    }
}

fn frame(ty: &str, seq: i64, trace_id: Option<&str>, data: Value) -> WsMessage {
    let f = json!({ "type": ty, "seq": seq, "trace_id": trace_id, "data": data });
    WsMessage::Text(f.to_string().into())
}

/// Why a socket stopped.
enum End {
    /// The client left, or the server is shutting down.
    Closed,
    /// The client did not take a frame in time.
    TooSlow,
    /// The feed could not be read.
    Unavailable,
}

/// A socket lives for hours and there may be ten thousand per replica: the calls it makes now
/// and then (Postgres, Redis, gRPC) are boxed, so the task itself stays a few hundred bytes
/// instead of the size of its largest call.
async fn agent_socket(state: AppState, claims: Claims, socket: WebSocket, resume: Option<i64>) {
    let (tenant, agent) = (claims.tenant, claims.sub);
    let (mut sink, stream) = socket.split();
    let (head, first_kept) = match Box::pin(atende_store::feed::bounds(&state.pool, tenant, agent)).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = &e as &dyn std::error::Error, "cannot read the agent's feed");
            let _ = sink.send(close(1011, "feed unavailable, reconnect")).await;
            return;
        }
    };
    let (last, resync) = start_at(resume, head, first_kept);
    let mut heads = state.hub.connect(tenant, agent, head);
    let socket_id = Box::pin(state.presence.open(tenant, agent)).await;
    let hello = json!({ "agent_id": agent, "tenant_id": tenant, "head": head });
    let mut greeted = send(&state, &mut sink, frame("hello", last, None, hello)).await.is_ok();
    if greeted && resync {
        let data = json!({ "reason": "the frames after last_seq are no longer kept: reload", "head": head });
        greeted = send(&state, &mut sink, frame("resync", last, None, data)).await.is_ok();
    }
    let end = if greeted {
        Box::pin(restore_after_reconnect(&state, tenant, agent)).await;
        pump(&state, tenant, agent, last, &mut heads, &mut sink, stream).await
    } else {
        End::Closed
    };
    // The goodbye gets the same deadline as any frame: a socket whose buffers are full must
    // not hold this task (and the agent's presence) open.
    let goodbye = match end {
        End::TooSlow => {
            tracing::info!(%agent, "socket too slow for its feed, closed");
            close(TOO_SLOW, "too slow: reconnect with last_seq")
        }
        End::Unavailable => close(1011, "feed unavailable, reconnect with last_seq"),
        End::Closed => WsMessage::Close(None),
    };
    let _ = send(&state, &mut sink, goodbye).await;
    state.hub.disconnect(tenant, agent);
    Box::pin(state.presence.close(socket_id)).await;
}

/// Sends one message within `gateway.socket_write_timeout_ms`; a socket that cannot take it
/// in time is too slow.
async fn send(state: &AppState, sink: &mut Sink, msg: WsMessage) -> Result<(), End> {
    match tokio::time::timeout(state.socket_write_timeout, sink.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(End::Closed),
        Err(_) => Err(End::TooSlow),
    }
}

fn close(code: u16, reason: &'static str) -> WsMessage {
    WsMessage::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

type Sink = futures::stream::SplitSink<WebSocket, WsMessage>;
type Stream = futures::stream::SplitStream<WebSocket>;

/// Sends the feed after `last` as it grows, until the client leaves or falls behind.
async fn pump(
    state: &AppState,
    tenant: Uuid,
    agent: Uuid,
    mut last: i64,
    heads: &mut tokio::sync::watch::Receiver<i64>,
    sink: &mut Sink,
    mut stream: Stream,
) -> End {
    loop {
        let head = *heads.borrow_and_update();
        while last < head {
            let frames = match Box::pin(atende_store::feed::read(&state.pool, tenant, agent, last, BATCH)).await {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(error = &e as &dyn std::error::Error, "cannot read the agent's feed");
                    return End::Unavailable;
                }
            };
            match frames.first() {
                None => break, // pruned under our feet; the next head moves on
                Some(f) if f.seq != last + 1 => {
                    // Frames between were pruned while this socket lagged: reload.
                    let data = json!({ "reason": "frames were missed and are no longer kept: reload", "head": head });
                    if let Err(end) = send(state, sink, frame("resync", last, None, data)).await {
                        return end;
                    }
                }
                Some(_) => {}
            }
            for f in frames {
                let msg = frame(&f.ty, f.seq, f.trace_id.as_deref(), f.data);
                if let Err(end) = send(state, sink, msg).await {
                    return end;
                }
                last = f.seq;
            }
        }
        tokio::select! {
            _ = state.shutdown.cancelled() => return End::Closed,
            changed = heads.changed() => {
                if changed.is_err() {
                    return End::Closed;
                }
            }
            incoming = stream.next() => match incoming {
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return End::Closed,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// An agent whose connection dropped (Inactive, logins kept) is back: restore the channel
/// logins he had, so he does not have to log into them again.
async fn restore_after_reconnect(state: &AppState, tenant: Uuid, agent: Uuid) {
    let req = pb::GetPresenceRequest {
        tenant_id: tenant.to_string(),
        agent_id: agent.to_string(),
    };
    let Ok(presence) = state.router.clone().get_presence(req).await else {
        return;
    };
    let Some(p) = presence.into_inner().presence else {
        return;
    };
    if p.status != pb::AgentStatus::Inactive as i32 || p.channels.is_empty() {
        return;
    }
    let req = pb::SetPresenceRequest {
        tenant_id: tenant.to_string(),
        agent_id: agent.to_string(),
        connected: true,
        channels: p.channels,
        logout: false,
    };
    if let Err(e) = state.router.clone().set_presence(req).await {
        tracing::warn!(%agent, error = %e, "cannot restore the agent's channels after reconnecting");
    }
}

#[cfg(test)]
mod tests {
    use super::start_at;

    #[test]
    fn a_socket_starts_where_the_client_left_off_while_the_frames_are_kept() {
        // No resume: live from the end.
        assert_eq!(start_at(None, 10, Some(1)), (10, false));
        // Resume inside the kept window, at the end, and right before the first kept frame.
        assert_eq!(start_at(Some(4), 10, Some(1)), (4, false));
        assert_eq!(start_at(Some(10), 10, Some(1)), (10, false));
        assert_eq!(start_at(Some(4), 10, Some(5)), (4, false));
        // Older than what is kept, or everything pruned: reload.
        assert_eq!(start_at(Some(3), 10, Some(5)), (10, true));
        assert_eq!(start_at(Some(3), 10, None), (10, true));
        // Not a number this feed gave (ahead of it, negative): reload.
        assert_eq!(start_at(Some(11), 10, Some(1)), (10, true));
        assert_eq!(start_at(Some(-1), 10, Some(1)), (10, true));
        // A new agent resuming at 0 with nothing yet.
        assert_eq!(start_at(Some(0), 0, None), (0, false));
    }
}
