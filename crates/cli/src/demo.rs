//! The local demo: fixed, documented credentials (for local use only), the seed through
//! AdminService, a fake Graph API that prints what would reach WhatsApp, and the help text.

use std::time::Duration;

use anyhow::Context;
use atende_config::Config;
use atende_proto::v1::{self as pb, admin_service_client::AdminServiceClient};

pub const TENANT_ID: &str = "0193a5b0-0000-7000-8000-00000000d001";
pub const TENANT_SLUG: &str = "demo";
pub const SERVICE_ID: &str = "0193a5b0-0000-7000-8000-00000000d002";
pub const CHANNEL_ID: &str = "0193a5b0-0000-7000-8000-00000000d003";
pub const AGENT_ANA_ID: &str = "0193a5b0-0000-7000-8000-00000000d004";
pub const AGENT_BRUNO_ID: &str = "0193a5b0-0000-7000-8000-00000000d005";
pub const ADMIN_DAVI_ID: &str = "0193a5b0-0000-7000-8000-00000000d006";
pub const PHONE_NUMBER_ID: &str = "106540352242922";
pub const APP_SECRET: &str = "demo-app-secret";
pub const VERIFY_TOKEN: &str = "demo-verify-token";
pub const ACCESS_TOKEN: &str = "demo-access-token";
/// (id, name, e-mail, password, administrator): two agents of the demo service and the
/// tenant's administrator, who supervises and manages agents and services.
pub const AGENTS: [(&str, &str, &str, &str, bool); 3] = [
    (AGENT_ANA_ID, "Ana", "ana@demo.local", "atende-demo-1", false),
    (AGENT_BRUNO_ID, "Bruno", "bruno@demo.local", "atende-demo-2", false),
    (ADMIN_DAVI_ID, "Davi", "davi@demo.local", "atende-demo-admin", true),
];

/// Seeds through AdminService at `admin_url` with the roles' internal credential of `cfg`.
pub async fn seed(cfg: &Config, admin_url: &str) -> anyhow::Result<()> {
    let mut admin = connect(cfg, admin_url).await?;
    admin
        .create_tenant(pb::CreateTenantRequest {
            id: TENANT_ID.into(),
            name: "Demo".into(),
            slug: TENANT_SLUG.into(),
            allow_simultaneous_conversations: false,
            ..Default::default()
        })
        .await
        .context("create tenant")?;
    admin
        .create_service(pb::CreateServiceRequest {
            id: SERVICE_ID.into(),
            tenant_id: TENANT_ID.into(),
            name: "Atendimento".into(),
            policy: "least_loaded".into(),
            offer_timeout_secs: 60,
            priority: 0,
            qualifications: [
                ("venda", "Venda realizada"),
                ("duvida", "Dúvida esclarecida"),
                ("reclamacao", "Reclamação"),
            ]
            .into_iter()
            .map(|(code, label)| pb::Qualification {
                code: code.into(),
                label: label.into(),
            })
            .collect(),
            ..Default::default()
        })
        .await
        .context("create service")?;
    admin
        .create_channel(pb::CreateChannelRequest {
            id: CHANNEL_ID.into(),
            tenant_id: TENANT_ID.into(),
            kind: pb::ChannelKind::Whatsapp as i32,
            name: "WhatsApp demo".into(),
            provider_account_id: PHONE_NUMBER_ID.into(),
            app_secret: APP_SECRET.into(),
            verify_token: VERIFY_TOKEN.into(),
            access_token: ACCESS_TOKEN.into(),
            default_service_id: SERVICE_ID.into(),
            ..Default::default()
        })
        .await
        .context("create channel")?;
    for (id, name, email, password, administrator) in AGENTS {
        admin
            .create_agent(pb::CreateAgentRequest {
                id: id.into(),
                tenant_id: TENANT_ID.into(),
                name: name.into(),
                email: email.into(),
                password: password.into(),
                max_concurrent: 3,
                service_ids: if administrator {
                    Vec::new()
                } else {
                    vec![SERVICE_ID.into()]
                },
                supervisor: administrator,
                can_attend_in_person: !administrator,
                admin: administrator,
            })
            .await
            .with_context(|| format!("create agent {email}"))?;
    }
    println!(
        "demo tenant `{TENANT_SLUG}` ready: agents {} / {} and {} / {}, administrator {} / {}",
        AGENTS[0].2, AGENTS[0].3, AGENTS[1].2, AGENTS[1].3, AGENTS[2].2, AGENTS[2].3
    );
    Ok(())
}

async fn connect(cfg: &Config, url: &str) -> anyhow::Result<AdminServiceClient<atende_runtime::AuthedChannel>> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_string()).context("admin url")?;
    let mut last = None;
    for _ in 0..30 {
        match endpoint.connect().await {
            Ok(channel) => {
                return Ok(AdminServiceClient::new(
                    tonic::service::interceptor::InterceptedService::new(
                        channel,
                        atende_runtime::ClientAuth::internal(cfg),
                    ),
                ))
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(anyhow::anyhow!("cannot reach AdminService at {url}: {last:?}"))
}

/// Serves the fake Graph API and prints every accepted send, so a local reply is visible.
pub async fn fake_graph(addr: &str) -> anyhow::Result<()> {
    let fake = atende_fake_graph::FakeGraph::start_on(addr).await;
    println!(
        "fake Graph API on {} (set ATENDE__CHANNEL_ADAPTER__GRAPH_API_BASE to it)",
        fake.base_url()
    );
    let mut seen = 0;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
        let sent = fake.sent();
        for s in &sent[seen..] {
            println!(
                "{}",
                serde_json::json!({ "graph_send": { "phone_number_id": s.phone_number_id, "body": s.body, "id": s.provider_message_id } })
            );
        }
        seen = sent.len();
    }
}

fn host_url(addr: std::net::SocketAddr, scheme: &str) -> String {
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    format!("{scheme}://{host}:{}", addr.port())
}

pub fn print_help(cfg: &Config) {
    let webhook = format!(
        "{}/webhooks/whatsapp/{CHANNEL_ID}",
        host_url(cfg.channel_adapter.http_addr, "http")
    );
    let gateway = host_url(cfg.gateway.http_addr, "http");
    let session_grpc = format!("127.0.0.1:{}", cfg.session.grpc_addr.port());
    let token = if cfg.is_development() {
        secrecy::ExposeSecret::expose_secret(&cfg.grpc.internal_token).to_string()
    } else {
        "<grpc.internal_token>".to_string()
    };
    let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Maria Souza"},"wa_id":"5511987654321"}],"messages":[{"from":"5511987654321","id":"wamid.DEMO0001","timestamp":"'"$(date +%s)"'","text":{"body":"Oi, preciso de ajuda com meu pedido"},"type":"text"}]},"field":"messages"}]}]}"#;
    println!(
        r#"
Atende is running (demo tenant, local use only).

  WhatsApp webhook : {webhook}
  gateway (HTTP/WS): {gateway}
  session gRPC     : {session_grpc}   (AdminService, SessionService; reflection on)

1. An agent logs in, goes available and watches its WebSocket (terminal 1):
     TOKEN=$(curl -s {gateway}/api/v1/auth/login -H 'content-type: application/json' \
       -d '{{"tenant":"demo","email":"ana@demo.local","password":"atende-demo-1"}}' | python3 -c 'import sys,json;print(json.load(sys.stdin)["access_token"])')
     curl -s -X PUT {gateway}/api/v1/me/presence -H "authorization: Bearer $TOKEN" \
       -H 'content-type: application/json' -d '{{"status":"available","channels":["whatsapp"]}}'
     TICKET=$(curl -s -X POST {gateway}/api/v1/ws/ticket -H "authorization: Bearer $TOKEN" | python3 -c 'import sys,json;print(json.load(sys.stdin)["ticket"])')
     python3 -m websockets "ws://{ws}/api/v1/ws?ticket=$TICKET"   # single use; or any WebSocket client

2. A customer writes on WhatsApp: a signed webhook, exactly as Meta sends it (terminal 2):
     BODY='{body}'
     SIG=$(printf '%s' "$BODY" | openssl dgst -sha256 -hmac '{APP_SECRET}' | sed 's/^.* //')
     curl -i {webhook} -H 'content-type: application/json' \
       -H "x-hub-signature-256: sha256=$SIG" --data-raw "$BODY"
   The agent's socket receives conversation.assigned and message.created.

3. The agent replies (it goes to the Graph API configured in channel_adapter.graph_api_base):
     CONV=$(curl -s {gateway}/api/v1/me/conversations -H "authorization: Bearer $TOKEN" | python3 -c 'import sys,json;print(json.load(sys.stdin)["conversations"][0]["id"])')
     curl -s {gateway}/api/v1/conversations/$CONV/messages -H "authorization: Bearer $TOKEN" \
       -H 'content-type: application/json' -d '{{"text":"Olá Maria! Como posso ajudar?"}}'

4. gRPC (grpcurl speaks reflection; calls need a credential, here development mode's):
     grpcurl -plaintext {session_grpc} list
     grpcurl -plaintext -H 'authorization: Bearer {token}' -d '{{"tenant_id":"{TENANT_ID}"}}' \
       {session_grpc} atende.v1.AdminService/ListAgents
     grpcurl -plaintext {session_grpc} grpc.health.v1.Health/Check

Meta's verification handshake:
     curl '{webhook}?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=42'
"#,
        ws = gateway.trim_start_matches("http://"),
    );
}
