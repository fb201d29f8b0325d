//! Prometheus metrics: `atende all` serves `/metrics` for every role it runs; after one signed
//! webhook and one gRPC call, the exposition parses (every sample of a declared family, every
//! value a number, `# EOF` last) and shows the webhook's route, session's consumer, the
//! outbox relay and the gRPC call. The Grafana dashboard and the alert rules in `deploy/` only
//! query series the process declares.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use atende_testkit::fixtures::{self, ChannelSpec};

/// The series names the exposition declares (from its TYPE lines): a counter `x` is
/// `x_total`, a histogram `x_bucket`, `x_sum` and `x_count`, a gauge `x`.
fn declared(text: &str) -> HashSet<String> {
    let mut names = HashSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split(' ');
        let (family, kind) = (parts.next().unwrap(), parts.next().unwrap_or(""));
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{family}{s}")));
    }
    names
}

/// Every `atende_…` metric name an expression mentions.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("atende_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// The PromQL of the dashboard's panels and of the alert rules.
fn queries() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("grafana/atende.json")).unwrap()).unwrap();
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            out.push((
                format!("panel {}", panel["title"]),
                target["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    let rules = std::fs::read_to_string(root.join("prometheus/alerts.yaml")).unwrap();
    let mut alert = String::new();
    for line in rules.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("- alert: ") {
            alert = name.to_string();
        }
        if let Some(expr) = line.strip_prefix("expr: ") {
            out.push((format!("alert {alert}"), expr.to_string()));
        }
    }
    out
}

/// `name{labels}` → value, after checking the OpenMetrics text's shape.
fn parse(text: &str) -> HashMap<String, f64> {
    assert!(text.ends_with("# EOF\n"), "{text}");
    let mut families = HashSet::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            families.insert(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("sample line {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line:?}"));
        let name = series.split('{').next().unwrap();
        let family = ["_total", "_bucket", "_sum", "_count", "_created"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        assert!(families.contains(family), "{name} has no TYPE line");
        samples.insert(series.to_string(), value);
    }
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_of_the_process_is_measured_and_the_exposition_parses() {
    // Arrange
    let sb = atende_testkit::Sandbox::new().await;
    let mut child = common::Reaper(Some(common::spawn_all_with(&sb, &[])));
    let (ready, metrics) = common::ready_with_metrics(child.child());
    let adapter = ready
        .iter()
        .find(|r| r.role == "channel-adapter")
        .unwrap()
        .http
        .clone()
        .unwrap();
    let session = ready.iter().find(|r| r.role == "session").unwrap().grpc.clone();
    let tenant = fixtures::tenant(&sb.pool, "T", &format!("t-{}", sb.id)).await;
    let pnid = fixtures::provider_account_id(&sb.id);
    let channel = ChannelSpec {
        name: "W",
        app_secret: "metrics-secret",
        ..ChannelSpec::new(&pnid)
    };
    let channel = fixtures::whatsapp_channel(&sb.pool, tenant, channel).await.id;

    // Act: one signed webhook, stored by session; one gRPC health check.
    let body = atende_testkit::whatsapp::text_message_webhook(
        &pnid,
        "5511987654321",
        "Maria",
        "wamid.METRICS1",
        "oi",
        1_763_700_000,
    );
    let resp = reqwest::Client::new()
        .post(format!("http://{adapter}/webhooks/whatsapp/{channel}"))
        .header("content-type", "application/json")
        .header(
            "x-hub-signature-256",
            atende_testkit::whatsapp::sign(b"metrics-secret", &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    atende_testkit::wait_until("message stored", Duration::from_secs(20), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
            .fetch_one(&sb.pool)
            .await
            .unwrap();
        (n == 1).then_some(())
    })
    .await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        tonic::transport::Endpoint::from_shared(format!("http://{session}"))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    health
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await
        .unwrap();

    // Assert: scraped once the consumer's outcome is counted.
    let scrape = || async {
        let resp = reqwest::get(format!("http://{metrics}/metrics")).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"));
        resp.text().await.unwrap()
    };
    let (samples, text) = atende_testkit::wait_until("session's ack counted", Duration::from_secs(20), || async {
        let text = scrape().await;
        let s = parse(&text);
        (s.get(r#"atende_consumer_messages_total{consumer="session",outcome="ack"}"#)
            .copied()
            .unwrap_or(0.0)
            >= 1.0)
            .then_some((s, text))
    })
    .await;
    let names = declared(&text);
    let queries = queries();
    assert!(queries.len() >= 10, "{queries:?}");
    for (what, expr) in &queries {
        let used = metric_names(expr);
        assert!(!used.is_empty(), "{what} queries no atende metric: {expr}");
        for name in used {
            assert!(
                names.contains(&name),
                "{what} queries {name}, which no role exports; exported: {names:?}"
            );
        }
    }
    for (series, at_least) in [
        (
            r#"atende_http_requests_total{route="/webhooks/whatsapp/{channel_id}",method="POST",status="200"}"#,
            1.0,
        ),
        (r#"atende_outbox_published_total{stream="outbox"}"#, 1.0),
        (
            r#"atende_grpc_requests_total{service="grpc.health.v1.Health",method="Check",code="0"}"#,
            1.0,
        ),
        (
            r#"atende_consumer_message_duration_seconds_count{consumer="session"}"#,
            1.0,
        ),
    ] {
        let got = samples.get(series).copied().unwrap_or(0.0);
        assert!(
            got >= at_least,
            "{series} = {got}; have {:?}",
            samples.keys().collect::<Vec<_>>()
        );
    }
    assert!(child.stop().await, "atende stops cleanly on SIGTERM");
    sb.cleanup().await;
}
