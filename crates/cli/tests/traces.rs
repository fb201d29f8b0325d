//! OTLP export: `atende all` with `telemetry.otlp_endpoint` set sends its spans to an
//! OTLP/gRPC receiver (here, one in the test), and the spans of one webhook — the adapter's
//! HTTP request, the outbox relay's publish, session's consume — share the trace id the
//! webhook's `traceparent` carried, with OpenTelemetry's semantic-convention attributes, and
//! no attribute holds the customer's number, the message's text or a secret.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atende_testkit::fixtures::{self, ChannelSpec};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

/// (trace id, span name, attributes as text).
type Exported = (String, String, Vec<(String, String)>);

#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Exported>>>,
}

fn text_of(v: &opentelemetry_proto::tonic::common::v1::AnyValue) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    match &v.value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                for span in ss.spans {
                    let trace: String = span.trace_id.iter().map(|b| format!("{b:02x}")).collect();
                    let attributes = span
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), kv.value.as_ref().map(text_of).unwrap_or_default()))
                        .collect();
                    spans.push((trace, span.name, attributes));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_one_webhook_are_exported_over_otlp_in_one_trace() {
    // Arrange: an OTLP receiver and the platform exporting to it.
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = listener.local_addr().unwrap();
    let svc = TraceServiceServer::new(receiver.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream_listener(listener))
            .await
            .unwrap();
    });
    let sb = atende_testkit::Sandbox::new().await;
    let mut child = common::Reaper(Some(common::spawn_all_with(
        &sb,
        &[("ATENDE__TELEMETRY__OTLP_ENDPOINT", &format!("http://{otlp}"))],
    )));
    let ready = common::ready_roles(child.child());
    let adapter = ready
        .iter()
        .find(|r| r.role == "channel-adapter")
        .unwrap()
        .http
        .clone()
        .unwrap();
    let channel = seed_channel(&sb).await;

    // Act: one signed webhook carrying a traceparent, then a graceful stop (which flushes).
    let body = atende_testkit::whatsapp::text_message_webhook(
        &channel.1,
        "5511987654321",
        "Maria",
        "wamid.TRACE1",
        "segredo-do-cliente-42",
        1_763_700_000,
    );
    let resp = reqwest::Client::new()
        .post(format!("http://{adapter}/webhooks/whatsapp/{}", channel.0))
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{TRACE_ID}-b7ad6b7169203331-01"))
        .header(
            "x-hub-signature-256",
            atende_testkit::whatsapp::sign(b"trace-secret", &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let pool = &sb.pool;
    atende_testkit::wait_until("message stored", Duration::from_secs(20), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
            .fetch_one(pool)
            .await
            .unwrap();
        (n == 1).then_some(())
    })
    .await;
    // A gRPC call in the same trace.
    let session = ready.iter().find(|r| r.role == "session").unwrap().grpc.clone();
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        tonic::transport::Endpoint::from_shared(format!("http://{session}"))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let mut check = tonic::Request::new(tonic_health::pb::HealthCheckRequest { service: String::new() });
    check.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-c7ad6b7169203332-01").parse().unwrap(),
    );
    health.check(check).await.unwrap();
    assert!(child.stop().await, "atende stops cleanly on SIGTERM");

    // Assert: the receiver got spans of every hop under the webhook's trace id.
    let spans = receiver.spans.lock().unwrap().clone();
    let names: HashSet<String> = spans
        .iter()
        .filter(|(t, ..)| t == TRACE_ID)
        .map(|(_, n, _)| n.clone())
        .collect();
    for expected in ["request", "outbox.publish", "consume", "grpc.health.v1.Health/Check"] {
        assert!(
            names.contains(expected),
            "no `{expected}` span in trace {TRACE_ID}; got {names:?}"
        );
    }
    let attrs = |name: &str| -> std::collections::HashMap<String, String> {
        spans
            .iter()
            .find(|(t, n, _)| t == TRACE_ID && n == name)
            .map(|(_, _, a)| a.iter().cloned().collect())
            .unwrap()
    };
    let request = attrs("request");
    assert_eq!(request["http.request.method"], "POST", "{request:?}");
    assert_eq!(request["http.route"], "/webhooks/whatsapp/{channel_id}");
    assert_eq!(request["http.response.status_code"], "200");
    for name in ["outbox.publish", "consume"] {
        let a = attrs(name);
        assert_eq!(a["messaging.system"], "nats", "{name}: {a:?}");
        assert!(a["messaging.destination.name"].contains(".atende."), "{name}: {a:?}");
    }
    let rpc = attrs("grpc.health.v1.Health/Check");
    assert_eq!(
        (rpc["rpc.system"].as_str(), rpc["rpc.service"].as_str()),
        ("grpc", "grpc.health.v1.Health")
    );
    // Nothing of the customer's or of the channel's secrets in any attribute of any span.
    for (_, name, attributes) in &spans {
        for (key, value) in attributes {
            for secret in ["5511987654321", "segredo-do-cliente", "trace-secret"] {
                assert!(!value.contains(secret), "{name}.{key} = {value}");
            }
        }
    }
    sb.cleanup().await;
}

fn tokio_stream_listener(
    listener: tokio::net::TcpListener,
) -> impl futures_core_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    tokio_stream::wrappers::TcpListenerStream::new(listener)
}

mod futures_core_stream {
    pub use futures_core::Stream;
}

/// A tenant and WhatsApp channel (id, phone_number_id) created directly in the database.
async fn seed_channel(sb: &atende_testkit::Sandbox) -> (uuid::Uuid, String) {
    let tenant = fixtures::tenant(&sb.pool, "T", &format!("t-{}", sb.id)).await;
    let pnid = fixtures::provider_account_id(&sb.id);
    let channel = ChannelSpec {
        name: "W",
        app_secret: "trace-secret",
        ..ChannelSpec::new(&pnid)
    };
    (fixtures::whatsapp_channel(&sb.pool, tenant, channel).await.id, pnid)
}
