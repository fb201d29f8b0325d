//! The rows a test needs before it can act, and the in-process roles it acts on.
//!
//! Service and end-to-end tests all start the same way: a tenant, a service, a WhatsApp
//! channel, a contact known by its phone, a conversation, perhaps an agent and an outbound
//! message, then one role booted against the sandbox. Each of those is written once here, so
//! a schema change is fixed in one place and a test shows only what it is about.
//!
//! Rows are written through [`atende_store::admin`] where it has a constructor (so the
//! fixtures get whatever defaults and invariants production gets), and with plain SQL where
//! it has none: contacts, conversations and messages are otherwise only created by session
//! as a side effect of traffic, which a fixture must not need.
//!
//! Everything panics on failure: a fixture that cannot be written is a broken test setup,
//! not a result to assert on.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use atende_runtime::Started;
use atende_store::admin::{self, Channel, NewAgent, NewChannel, NewService};
use atende_store::sealed::{Purpose, Sealed};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The protocol number of conversations created here. Real ones come from session's
/// per-tenant counter (today's date + a sequence); a fixture conversation is not one of
/// them, so it writes no `protocols` row and never collides with a number session hands out.
pub const PROTOCOL: &str = "20261121000001";

/// A WhatsApp `phone_number_id` for this sandbox's channel: digits only, as Meta's are, and
/// unique per sandbox (as Meta's are globally), so that webhooks, fake Graph API sends and
/// logs of tests running side by side against the same Postgres server, NATS and Redis can
/// never be taken for one another's.
pub fn provider_account_id(sandbox_id: &str) -> String {
    sandbox_id.bytes().map(|b| char::from(b'0' + b % 10)).collect()
}

/// Creates a tenant named `name` with the same-customer flag off (the default) and returns
/// its id.
pub async fn tenant(pool: &PgPool, name: &str, slug: &str) -> Uuid {
    let id = Uuid::now_v7();
    admin::create_tenant(pool, id, name, slug, false)
        .await
        .expect("fixture tenant");
    id
}

/// Creates service "Vendas" routed by `policy`, with the defaults AdminService applies
/// (60 s offer timeout, priority 0), and returns its id.
pub async fn service(pool: &PgPool, tenant: Uuid, policy: &str) -> Uuid {
    let service = NewService {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        name: "Vendas",
        policy,
        offer_timeout_secs: 60,
        priority: 0,
    };
    admin::create_service(pool, &service).await.expect("fixture service").id
}

/// What differs between the WhatsApp channels tests create. Start from
/// [`ChannelSpec::new`] and override what the test depends on (the secret it signs with,
/// the token the fake Graph API expects, the service new conversations go to):
/// `ChannelSpec { app_secret: APP_SECRET, ..ChannelSpec::new(PHONE_NUMBER_ID) }`.
#[derive(Clone, Copy, Debug)]
pub struct ChannelSpec<'a> {
    pub name: &'a str,
    /// Meta's `phone_number_id`: webhooks name the channel by it.
    pub provider_account_id: &'a str,
    pub app_secret: &'a str,
    pub verify_token: &'a str,
    pub access_token: &'a str,
    pub default_service: Option<Uuid>,
}

impl<'a> ChannelSpec<'a> {
    /// Channel "WhatsApp Vendas" for `provider_account_id`, with placeholder credentials
    /// and no default service.
    pub fn new(provider_account_id: &'a str) -> ChannelSpec<'a> {
        ChannelSpec {
            name: "WhatsApp Vendas",
            provider_account_id,
            app_secret: "secret",
            verify_token: "verify",
            access_token: "token",
            default_service: None,
        }
    }
}

/// Creates a WhatsApp channel of `tenant` as `spec` describes.
pub async fn whatsapp_channel(pool: &PgPool, tenant: Uuid, spec: ChannelSpec<'_>) -> Channel {
    let (app_secret, verify_token, access_token) =
        sealed_credentials(spec.app_secret, spec.verify_token, spec.access_token);
    let channel = NewChannel {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        kind: "whatsapp",
        name: spec.name,
        provider_account_id: spec.provider_account_id,
        app_secret: &app_secret,
        verify_token: &verify_token,
        access_token: &access_token,
        default_service_id: spec.default_service,
    };
    admin::create_channel(pool, &channel).await.expect("fixture channel")
}

/// The keyring of development mode, which every sandbox runs in.
pub fn dev_keyring() -> atende_store::sealed::Keyring {
    let key: [u8; 32] = hex::decode(atende_config::DEV_CRYPTO_KEY_HEX)
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    atende_store::sealed::Keyring::new(
        atende_config::DEV_CRYPTO_KEY_ID,
        vec![(atende_config::DEV_CRYPTO_KEY_ID.into(), key)],
    )
    .expect("development keyring")
}

/// A channel's three credentials sealed as the session role stores them.
pub fn sealed_credentials(app_secret: &str, verify_token: &str, access_token: &str) -> (Sealed, Sealed, Sealed) {
    let k = dev_keyring();
    let seal = |p, s| k.seal(p, s).expect("seal");
    (
        seal(Purpose::AppSecret, app_secret),
        seal(Purpose::VerifyToken, verify_token),
        seal(Purpose::AccessToken, access_token),
    )
}

/// What [`tenant_with_whatsapp`] created.
#[derive(Clone, Debug)]
pub struct WhatsAppTenant {
    pub tenant: Uuid,
    pub service: Uuid,
    pub channel: Channel,
}

/// The starting point of most service tests: tenant "Acme" (slug `acme`; each sandbox has
/// its own database, so the slug is free), a `least_loaded` service "Vendas", and a
/// WhatsApp channel as `spec` describes whose new conversations go to that service
/// (`spec.default_service` is replaced by it).
pub async fn tenant_with_whatsapp(pool: &PgPool, spec: ChannelSpec<'_>) -> WhatsAppTenant {
    let tenant = self::tenant(pool, "Acme", "acme").await;
    let service = self::service(pool, tenant, "least_loaded").await;
    let spec = ChannelSpec {
        default_service: Some(service),
        ..spec
    };
    let channel = whatsapp_channel(pool, tenant, spec).await;
    WhatsAppTenant {
        tenant,
        service,
        channel,
    }
}

/// Creates an agent of `tenant` in `services` (in that rotation order), not a supervisor,
/// with email `<lowercased name>@acme.test` and a password hash nothing verifies — tests
/// that log in create their agent through AdminService, which hashes a real password.
pub async fn agent(pool: &PgPool, tenant: Uuid, name: &str, services: &[Uuid], max_concurrent: i32) -> Uuid {
    let email = format!("{}@acme.test", name.to_lowercase());
    let agent = NewAgent {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        name,
        email: &email,
        password_hash: "not-a-real-hash",
        max_concurrent,
        supervisor: false,
    };
    let mut conn = pool.acquire().await.expect("fixture connection");
    admin::create_agent(&mut conn, &agent, services)
        .await
        .expect("fixture agent")
        .id
}

/// Creates a contact with no identity (nothing can find it by phone) and returns its id.
pub async fn contact(pool: &PgPool, tenant: Uuid, name: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO contacts (id, tenant_id, name) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(tenant)
        .bind(name)
        .execute(pool)
        .await
        .expect("fixture contact");
    id
}

/// Creates a contact known by its WhatsApp number — the `wa_phone` identity session looks
/// contacts up by and the adapter sends replies to — and returns its id. `wa_phone` must be
/// canonical (Brazilian mobiles with the ninth digit), as session stores it.
pub async fn contact_with_phone(pool: &PgPool, tenant: Uuid, name: &str, wa_phone: &str) -> Uuid {
    let id = contact(pool, tenant, name).await;
    sqlx::query("INSERT INTO contact_identities (tenant_id, contact_id, kind, value) VALUES ($1, $2, 'wa_phone', $3)")
        .bind(tenant)
        .bind(id)
        .bind(wa_phone)
        .execute(pool)
        .await
        .expect("fixture contact identity");
    id
}

/// Creates a conversation of `contact` on `channel` in `status` (`queued`, `assigned`, …),
/// owned by `agent` if any (with its open assignment row), with its first protocol (a
/// number of [`PROTOCOL`]'s day, unique in the process), and returns its id. Written
/// directly, without the routing and events session would emit: the test starts from a
/// conversation that already exists.
pub async fn conversation(
    pool: &PgPool,
    tenant: Uuid,
    contact: Uuid,
    channel: Uuid,
    service: Option<Uuid>,
    status: &str,
    agent: Option<Uuid>,
) -> Uuid {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = Uuid::now_v7();
    let protocol = format!(
        "{}{:06}",
        &PROTOCOL[..8],
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    sqlx::query(
        "INSERT INTO conversations (id, tenant_id, contact_id, channel_id, service_id, status, agent_id, protocol,
           last_inbound_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())",
    )
    .bind(id)
    .bind(tenant)
    .bind(contact)
    .bind(channel)
    .bind(service)
    .bind(status)
    .bind(agent)
    .bind(&protocol)
    .execute(pool)
    .await
    .expect("fixture conversation");
    sqlx::query(
        "INSERT INTO protocols (number, tenant_id, conversation_id, service_id, agent_id) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&protocol)
    .bind(tenant)
    .bind(id)
    .bind(service)
    .bind(agent)
    .execute(pool)
    .await
    .expect("fixture protocol");
    if let (Some(agent), "assigned") = (agent, status) {
        sqlx::query(
            "INSERT INTO assignments (id, tenant_id, conversation_id, agent_id, service_id) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(Uuid::now_v7())
        .bind(tenant)
        .bind(id)
        .bind(agent)
        .bind(service)
        .execute(pool)
        .await
        .expect("fixture assignment");
    }
    // The customer just wrote on that number: its window is open.
    sqlx::query(
        "INSERT INTO customer_windows (contact_id, channel_id, tenant_id, last_inbound_at) VALUES ($1, $2, $3, now())
         ON CONFLICT (contact_id, channel_id) DO UPDATE SET last_inbound_at = now()",
    )
    .bind(contact)
    .bind(channel)
    .bind(tenant)
    .execute(pool)
    .await
    .expect("fixture customer window");
    id
}

/// Creates an outbound text message (an agent's reply) in `conversation` with `status`
/// (`pending` before delivery, `accepted` once Meta took it, …), and returns its id. No
/// outbox job is queued: the test decides whether and how the reply is sent.
pub async fn outbound_message(
    pool: &PgPool,
    tenant: Uuid,
    conversation: Uuid,
    channel: Uuid,
    body: &str,
    status: &str,
) -> Uuid {
    let id = Uuid::now_v7();
    // Through the store, as the session role writes it (the conversation numbers it).
    let status = atende_domain::message::DeliveryStatus::parse(status)
        .unwrap_or_else(|| panic!("fixture status `{status}` is not a delivery status"))
        .as_str();
    let mut conn = pool.acquire().await.expect("fixture connection");
    atende_store::conversations::insert_message(
        &mut conn,
        &atende_store::conversations::NewMessage {
            id,
            tenant_id: tenant,
            conversation_id: conversation,
            channel_id: channel,
            direction: "outbound",
            kind: "text",
            body: Some(body),
            media: None,
            provider_message_id: None,
            reply_to_provider_message_id: None,
            status,
            agent_id: None,
            client_message_id: None,
            raw: None,
            sent_at: None,
        },
    )
    .await
    .expect("fixture outbound message")
    .expect("a new message");
    id
}

/// One role booted in-process the way `atende` boots it, with the token that stops it.
pub struct RunningRole {
    shutdown: CancellationToken,
    /// The role's addresses (and tasks, until [`RunningRole::stop`]).
    pub started: Started,
}

impl RunningRole {
    /// Boots a role with its `build` function, e.g.
    /// `RunningRole::start(|stop| atende_session::build(&sandbox.config, stop))`.
    pub async fn start<F, Fut, E>(build: F) -> RunningRole
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<Started, E>>,
        E: Debug,
    {
        let shutdown = CancellationToken::new();
        let started = build(shutdown.clone()).await.expect("role starts");
        RunningRole { shutdown, started }
    }

    /// Stops the role as SIGTERM would; panics unless every task ends cleanly in `deadline`.
    pub async fn stop(self, deadline: Duration) {
        stop_roles(&self.shutdown, [self.started], deadline).await;
    }
}

/// Cancels `shutdown` and waits for each of `roles` to stop: a role that takes longer than
/// `deadline`, or whose tasks fail, fails the test — a clean stop is part of every test.
pub async fn stop_roles(shutdown: &CancellationToken, roles: impl IntoIterator<Item = Started>, deadline: Duration) {
    shutdown.cancel();
    for started in roles {
        let role = started.role;
        tokio::time::timeout(deadline, started.wait())
            .await
            .unwrap_or_else(|_| panic!("{role} did not stop within {deadline:?}"))
            .unwrap_or_else(|e| panic!("{role} tasks did not end cleanly: {e:?}"));
    }
}

/// What [`seed_through_admin`] created.
#[derive(Clone, Debug)]
pub struct Seeded {
    pub tenant_id: String,
    pub slug: String,
    pub service_id: String,
    pub channel_id: String,
    pub phone_number_id: String,
}

/// A tenant (slug `acme-<sandbox>`) with one `least_loaded` service and one WhatsApp channel
/// signed with `app_secret`, created through AdminService at `session` as an operator would.
pub async fn seed_through_admin(sb: &crate::Sandbox, session: &str, app_secret: &str, access_token: &str) -> Seeded {
    use atende_proto::v1::{self as pb, admin_service_client::AdminServiceClient};
    let mut admin = AdminServiceClient::new(sb.grpc(session));
    let slug = format!("acme-{}", sb.id);
    let tenant = admin
        .create_tenant(pb::CreateTenantRequest {
            name: "Acme".into(),
            slug: slug.clone(),
            ..Default::default()
        })
        .await
        .expect("tenant")
        .into_inner()
        .tenant
        .expect("tenant in the answer");
    let service = admin
        .create_service(pb::CreateServiceRequest {
            tenant_id: tenant.id.clone(),
            name: "Vendas".into(),
            policy: "least_loaded".into(),
            ..Default::default()
        })
        .await
        .expect("service")
        .into_inner()
        .service
        .expect("service in the answer");
    // Provider account ids are globally unique: derive one from the sandbox.
    let phone_number_id = provider_account_id(&sb.id);
    let channel = admin
        .create_channel(pb::CreateChannelRequest {
            tenant_id: tenant.id.clone(),
            kind: pb::ChannelKind::Whatsapp as i32,
            name: "WhatsApp".into(),
            provider_account_id: phone_number_id.clone(),
            app_secret: app_secret.into(),
            verify_token: "verify".into(),
            access_token: access_token.into(),
            default_service_id: service.id.clone(),
            ..Default::default()
        })
        .await
        .expect("channel")
        .into_inner()
        .channel
        .expect("channel in the answer");
    Seeded {
        tenant_id: tenant.id,
        slug,
        service_id: service.id,
        channel_id: channel.id,
        phone_number_id,
    }
}
