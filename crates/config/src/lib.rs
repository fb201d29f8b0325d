//! Configuration for every role.
//!
//! Precedence, lowest to highest (each layer overrides the one before):
//! 1. defaults embedded in the binary (`defaults.toml`), so `atende all` starts with no file;
//! 2. an optional TOML file (`--config PATH` or `ATENDE_CONFIG`);
//! 3. environment variables `ATENDE__SECTION__KEY` (e.g. `ATENDE__POSTGRES__URL`);
//! 4. `validate()`, which names the bad key and why.
//!
//! Secrets are `SecretString`, so they never appear in `Debug` output or logs.
//!
//! Between steps 3 and 4, `security.mode = "development"` fills every missing secret with a
//! publicly known development value; in `production` (the default) `validate()` refuses a
//! missing secret or any known value, naming the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use secrecy::SecretString;
use serde::Deserialize;

const DEFAULTS: &str = include_str!("defaults.toml");

/// Development-mode secrets. They are in this public repository, so production refuses them.
pub const DEV_JWT_SECRET: &str = "atende-development-only-jwt-secret-never-in-production";
pub const DEV_INTERNAL_TOKEN: &str = "atende-development-only-internal-grpc-token-never-in-production";
pub const DEV_CRYPTO_KEY_ID: &str = "dev";
pub const DEV_CRYPTO_KEY_HEX: &str = "6174656e64652d646576656c6f706d656e742d6f6e6c792d6b65792d33326279";
/// Values that shipped in earlier defaults files: as public as the development ones.
const FORMERLY_SHIPPED: &[&str] = &["change-me-in-production-this-is-only-for-local-use"];

/// The gRPC services a client credential may be allowed to call.
pub const GRPC_SCOPES: &[&str] = &["session", "router", "admin", "broadcast", "scheduler"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot load configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid configuration key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

#[derive(Clone, Debug, Deserialize)]
pub struct Config {
    pub postgres: Postgres,
    pub redis: Redis,
    pub nats: Nats,
    pub namespace: Namespace,
    pub telemetry: Telemetry,
    pub shutdown: Shutdown,
    pub gateway: Gateway,
    pub channel_adapter: ChannelAdapter,
    pub session: Session,
    pub router: Router,
    pub broadcast: GrpcOnly,
    pub scheduler: Scheduler,
    pub clients: Clients,
    pub security: Security,
    pub grpc: Grpc,
    pub crypto: Crypto,
    pub limits: Limits,
    pub outbox: Outbox,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Outbox {
    /// How long published outbox rows are kept.
    pub published_retention_secs: u64,
    /// How long webhook receipts (the dedupe of Meta's redeliveries) are kept.
    pub receipt_retention_secs: u64,
    pub prune_every_secs: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Limits {
    /// Take the client address from X-Forwarded-For (behind a proxy that sets it).
    pub trust_forwarded_for: bool,
    pub webhook_per_ip_per_sec: u32,
    pub webhook_per_channel_per_sec: u32,
    /// How long an unknown channel id is remembered as unknown.
    pub unknown_channel_cache_secs: u64,
    pub login_per_ip_per_min: u32,
    pub login_per_account_per_min: u32,
    pub api_per_user_per_min: u32,
    pub api_per_tenant_per_min: u32,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Production,
    Development,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Security {
    /// `production` refuses missing or publicly known secrets; `development` fills them in.
    pub mode: Mode,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Grpc {
    /// What the roles present to each other: every service, every tenant.
    pub internal_token: SecretString,
    /// Still accepted while the internal token rotates (empty: none).
    pub previous_internal_token: SecretString,
    /// `grpc.health.v1` answers without a credential (Kubernetes probes).
    pub open_health: bool,
    /// Server reflection answers without a credential (grpcurl list/describe).
    pub open_reflection: bool,
    /// Named credentials of internal teams, each limited to tenants and services.
    #[serde(default)]
    pub clients: BTreeMap<String, GrpcClient>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct GrpcClient {
    pub token: SecretString,
    /// `*` or comma-separated tenant UUIDs.
    pub tenants: String,
    /// Comma-separated, from [`GRPC_SCOPES`].
    pub services: String,
}

impl GrpcClient {
    /// `None` means every tenant.
    pub fn tenant_ids(&self) -> Result<Option<Vec<uuid::Uuid>>, String> {
        if self.tenants.trim() == "*" {
            return Ok(None);
        }
        split_list(&self.tenants)
            .map(|t| uuid::Uuid::parse_str(t).map_err(|_| format!("`{t}` is not a tenant UUID")))
            .collect::<Result<Vec<_>, _>>()
            .and_then(|v| {
                if v.is_empty() {
                    Err("names no tenant (use `*` for all)".into())
                } else {
                    Ok(Some(v))
                }
            })
    }

    pub fn scopes(&self) -> Result<Vec<&str>, String> {
        let scopes: Vec<&str> = split_list(&self.services).collect();
        if scopes.is_empty() {
            return Err(format!("names no service (of {GRPC_SCOPES:?})"));
        }
        match scopes.iter().find(|s| !GRPC_SCOPES.contains(s)) {
            Some(bad) => Err(format!("unknown service `{bad}` (of {GRPC_SCOPES:?})")),
            None => Ok(scopes),
        }
    }
}

fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|t| !t.is_empty())
}

#[derive(Clone, Debug, Deserialize)]
pub struct Crypto {
    /// Id of the key that seals new secrets.
    pub active_key: String,
    /// Key-encryption keys by id: 32 bytes, hex-encoded.
    #[serde(default)]
    pub keys: BTreeMap<String, SecretString>,
}

impl Crypto {
    /// The decoded keys by id (validated by [`Config::validate`]).
    pub fn decoded_keys(&self) -> Result<Vec<(String, [u8; 32])>, String> {
        use secrecy::ExposeSecret;
        self.keys
            .iter()
            .map(|(id, hexkey)| {
                let bytes =
                    hex::decode(hexkey.expose_secret().trim()).map_err(|_| format!("key `{id}` is not hexadecimal"))?;
                let key: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| format!("key `{id}` must be 32 bytes (64 hex digits)"))?;
                Ok((id.clone(), key))
            })
            .collect()
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Postgres {
    pub url: SecretString,
    pub max_connections: u32,
    /// The role the services act as (row-level security applies to it); empty: the login's.
    pub app_role: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Redis {
    pub url: SecretString,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Nats {
    pub url: String,
    /// Redelivery delay of unacknowledged messages (JetStream `ack_wait`).
    pub ack_wait_ms: u64,
    /// Cap of the delay between redeliveries of a message that keeps failing.
    pub retry_backoff_max_ms: u64,
    /// Concurrent lanes of the session and gateway consumers.
    pub consumer_lanes: usize,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Namespace {
    /// Isolates NATS subjects/streams and Redis keys (tests set one each).
    pub prefix: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Telemetry {
    pub otlp_endpoint: String,
    pub log_level: String,
    pub log_format: String,
    pub service_name: String,
    /// Where `/metrics` listens; empty: nowhere.
    pub metrics_addr: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Shutdown {
    pub grace_ms: u64,
    pub drain_timeout_ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Gateway {
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub jwt_secret: SecretString,
    /// Earlier signing keys, comma-separated, still accepted for verification during a rotation.
    pub jwt_previous_secrets: SecretString,
    pub token_ttl_secs: u64,
    /// Idle lifetime of a refresh token; each renewal starts a new one.
    pub refresh_ttl_secs: u64,
    /// Lifetime of a single-use WebSocket ticket.
    pub ws_ticket_ttl_secs: u64,
    /// How long agents' feed frames are kept for resuming.
    pub feed_retention_secs: u64,
    /// Period of each replica's feed-head check.
    pub feed_sweep_ms: u64,
    /// Longest wait for a socket to take one frame.
    pub socket_write_timeout_ms: u64,
    /// How long an agent stays connected with no live socket.
    pub presence_grace_ms: u64,
    pub body_limit_bytes: usize,
    /// Comma-separated origins allowed by CORS.
    pub cors_allowed_origins: String,
    /// Base URL printed for humans (the demo help); not used for binding.
    pub public_url: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ChannelAdapter {
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    /// Webhook bodies above this are refused with 413 (Meta's maximum is 3 MiB).
    pub body_limit_bytes: usize,
    /// Graph API base URL: Meta in production, a local fake in tests.
    pub graph_api_base: String,
    pub graph_api_version: String,
    pub public_url: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Session {
    pub grpc_addr: SocketAddr,
    /// How often each session replica expires conversations whose customer window lapsed.
    pub expiry_sweep_ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct GrpcOnly {
    pub grpc_addr: SocketAddr,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Scheduler {
    pub grpc_addr: SocketAddr,
    /// Period of the due-timer pass.
    pub tick_ms: u64,
    /// Most timers fired per pass.
    pub batch: i64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Router {
    pub grpc_addr: SocketAddr,
    /// How often the router re-evaluates queues (offer timeouts, business hours, rebuilds).
    pub sweep_interval_ms: u64,
    /// Services with more members than this are routed through the Redis candidate index
    /// (the best few agents per channel kind) instead of a snapshot of every member.
    pub full_snapshot_max: usize,
    /// How often capacity in Redis is reconciled with Postgres.
    pub reconcile_interval_ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Clients {
    pub session_url: String,
    pub router_url: String,
    pub broadcast_url: String,
}

impl Config {
    /// Loads defaults, then `file` if given, then `ATENDE__…` variables, then validates.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// As [`Config::load`], with the environment passed in (tests use this, never set_var).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut builder =
            config::Config::builder().add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        let env_map: config::Map<String, String> = env.into_iter().filter(|(k, _)| k.starts_with("ATENDE__")).collect();
        builder = builder.add_source(
            config::Environment::with_prefix("ATENDE")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env_map)),
        );
        let mut cfg: Config = builder.build()?.try_deserialize()?;
        cfg.fill_development_secrets();
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn is_development(&self) -> bool {
        self.security.mode == Mode::Development
    }

    /// In development mode, every secret left empty gets its known development value.
    fn fill_development_secrets(&mut self) {
        use secrecy::ExposeSecret;
        if !self.is_development() {
            return;
        }
        if self.gateway.jwt_secret.expose_secret().is_empty() {
            self.gateway.jwt_secret = DEV_JWT_SECRET.into();
        }
        if self.grpc.internal_token.expose_secret().is_empty() {
            self.grpc.internal_token = DEV_INTERNAL_TOKEN.into();
        }
        if self.crypto.active_key.is_empty() && self.crypto.keys.is_empty() {
            self.crypto.active_key = DEV_CRYPTO_KEY_ID.into();
            self.crypto
                .keys
                .insert(DEV_CRYPTO_KEY_ID.into(), DEV_CRYPTO_KEY_HEX.into());
        }
    }

    /// Production refuses a secret that is missing, short, or publicly known.
    fn check_secret(&self, key: &'static str, value: &str) -> Result<(), ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid {
            key,
            reason: reason.into(),
        };
        if value.is_empty() {
            return Err(invalid(
                "is required (or set security.mode = \"development\" on a machine nobody else can reach)",
            ));
        }
        if value.len() < 32 {
            return Err(invalid("must be at least 32 characters"));
        }
        let known = [DEV_JWT_SECRET, DEV_INTERNAL_TOKEN, DEV_CRYPTO_KEY_HEX];
        if !self.is_development() && (known.contains(&value) || FORMERLY_SHIPPED.contains(&value)) {
            return Err(invalid(
                "is a publicly known development value; generate one (openssl rand -hex 32)",
            ));
        }
        Ok(())
    }

    /// Checks what types alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use secrecy::ExposeSecret;
        let url_scheme = |key: &'static str, url: &str, schemes: &[&str]| {
            if schemes.iter().any(|s| url.starts_with(&format!("{s}://"))) {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    key,
                    reason: format!("must start with one of {schemes:?}"),
                })
            }
        };
        url_scheme(
            "postgres.url",
            self.postgres.url.expose_secret(),
            &["postgres", "postgresql"],
        )?;
        url_scheme("redis.url", self.redis.url.expose_secret(), &["redis", "rediss"])?;
        url_scheme("nats.url", &self.nats.url, &["nats", "tls"])?;
        url_scheme(
            "channel_adapter.graph_api_base",
            &self.channel_adapter.graph_api_base,
            &["http", "https"],
        )?;
        if !self.telemetry.otlp_endpoint.is_empty() {
            url_scheme(
                "telemetry.otlp_endpoint",
                &self.telemetry.otlp_endpoint,
                &["http", "https"],
            )?;
        }
        if !matches!(self.telemetry.log_format.as_str(), "json" | "pretty") {
            return Err(ConfigError::Invalid {
                key: "telemetry.log_format",
                reason: "must be `json` or `pretty`".into(),
            });
        }
        if self.gateway.token_ttl_secs == 0 || self.gateway.refresh_ttl_secs <= self.gateway.token_ttl_secs {
            return Err(ConfigError::Invalid {
                key: "gateway.refresh_ttl_secs",
                reason: "must be longer than gateway.token_ttl_secs, which must be positive".into(),
            });
        }
        if self.gateway.feed_retention_secs < 24 * 3600 {
            return Err(ConfigError::Invalid {
                key: "gateway.feed_retention_secs",
                reason: "must be at least 86400 (a day of absence resumes without a reload)".into(),
            });
        }
        if self.gateway.presence_grace_ms < 300 {
            return Err(ConfigError::Invalid {
                key: "gateway.presence_grace_ms",
                reason: "must be at least 300".into(),
            });
        }
        if self.gateway.feed_sweep_ms == 0 || self.gateway.socket_write_timeout_ms == 0 {
            return Err(ConfigError::Invalid {
                key: "gateway.feed_sweep_ms",
                reason: "feed_sweep_ms and socket_write_timeout_ms must be positive".into(),
            });
        }
        if !(1..=300).contains(&self.gateway.ws_ticket_ttl_secs) {
            return Err(ConfigError::Invalid {
                key: "gateway.ws_ticket_ttl_secs",
                reason: "must be between 1 and 300".into(),
            });
        }
        if self.nats.ack_wait_ms < 1000 {
            return Err(ConfigError::Invalid {
                key: "nats.ack_wait_ms",
                reason: "must be at least 1000".into(),
            });
        }
        if self.postgres.max_connections == 0 {
            return Err(ConfigError::Invalid {
                key: "postgres.max_connections",
                reason: "must be at least 1".into(),
            });
        }
        if self.channel_adapter.body_limit_bytes < 1024 {
            return Err(ConfigError::Invalid {
                key: "channel_adapter.body_limit_bytes",
                reason: "must be at least 1024".into(),
            });
        }
        self.check_secret("gateway.jwt_secret", self.gateway.jwt_secret.expose_secret())?;
        for previous in split_list(self.gateway.jwt_previous_secrets.expose_secret()) {
            self.check_secret("gateway.jwt_previous_secrets", previous)?;
        }
        self.check_secret("grpc.internal_token", self.grpc.internal_token.expose_secret())?;
        let previous = self.grpc.previous_internal_token.expose_secret();
        if !previous.is_empty() {
            self.check_secret("grpc.previous_internal_token", previous)?;
        }
        for client in self.grpc.clients.values() {
            self.check_secret("grpc.clients.<name>.token", client.token.expose_secret())?;
            client.tenant_ids().map_err(|reason| ConfigError::Invalid {
                key: "grpc.clients.<name>.tenants",
                reason,
            })?;
            client.scopes().map_err(|reason| ConfigError::Invalid {
                key: "grpc.clients.<name>.services",
                reason,
            })?;
        }
        let keys = self.crypto.decoded_keys().map_err(|reason| ConfigError::Invalid {
            key: "crypto.keys",
            reason,
        })?;
        if self.crypto.active_key.is_empty() {
            return Err(ConfigError::Invalid {
                key: "crypto.active_key",
                reason: "is required: the id of a key in crypto.keys (or security.mode = \"development\")".into(),
            });
        }
        if !keys.iter().any(|(id, _)| *id == self.crypto.active_key) {
            return Err(ConfigError::Invalid {
                key: "crypto.active_key",
                reason: format!(
                    "names no key of crypto.keys (ids: {:?})",
                    self.crypto.keys.keys().collect::<Vec<_>>()
                ),
            });
        }
        if !self.is_development() {
            for (id, key) in &keys {
                if hex::encode(key) == DEV_CRYPTO_KEY_HEX {
                    return Err(ConfigError::Invalid {
                        key: "crypto.keys",
                        reason: format!("key `{id}` is the publicly known development key"),
                    });
                }
            }
        }
        for (key, v) in [
            ("limits.webhook_per_ip_per_sec", self.limits.webhook_per_ip_per_sec),
            (
                "limits.webhook_per_channel_per_sec",
                self.limits.webhook_per_channel_per_sec,
            ),
            ("limits.login_per_ip_per_min", self.limits.login_per_ip_per_min),
            (
                "limits.login_per_account_per_min",
                self.limits.login_per_account_per_min,
            ),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be at least 1".into(),
                });
            }
        }
        // Meta redelivers a webhook for up to 7 days; a receipt pruned earlier would let a
        // redelivery in as new.
        if self.outbox.receipt_retention_secs < 7 * 24 * 3600 {
            return Err(ConfigError::Invalid {
                key: "outbox.receipt_retention_secs",
                reason: "must be at least 604800 (7 days: Meta redelivers webhooks for that long)".into(),
            });
        }
        if self.outbox.prune_every_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "outbox.prune_every_secs",
                reason: "must be at least 1".into(),
            });
        }
        let prefix = &self.namespace.prefix;
        if !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ConfigError::Invalid {
                key: "namespace.prefix",
                reason: "may hold only letters, digits, `_` and `-`".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const DEV: (&str, &str) = ("ATENDE__SECURITY__MODE", "development");

    /// Production secrets an operator would generate.
    fn production() -> Vec<(&'static str, &'static str)> {
        vec![
            ("ATENDE__GATEWAY__JWT_SECRET", "9f1c0e7a5b3d2f4e6a8c0b1d3f5e7a9c-jwt"),
            ("ATENDE__GRPC__INTERNAL_TOKEN", "0b2d4f6e8a1c3e5d7f9b0a2c4e6d8f1a-grpc"),
            ("ATENDE__CRYPTO__ACTIVE_KEY", "k1"),
            (
                "ATENDE__CRYPTO__KEYS__K1",
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
            ),
        ]
    }

    #[test]
    fn defaults_alone_are_a_valid_development_configuration() {
        let cfg = Config::load_with_env(None, env(&[DEV])).unwrap();
        assert_eq!(cfg.channel_adapter.body_limit_bytes, 3 * 1024 * 1024);
        assert_eq!(cfg.gateway.http_addr.port(), 8080);
        use secrecy::ExposeSecret;
        assert_eq!(cfg.gateway.jwt_secret.expose_secret(), DEV_JWT_SECRET);
        assert_eq!(cfg.crypto.decoded_keys().unwrap().len(), 1);
    }

    #[test]
    fn production_refuses_to_start_without_secrets_and_names_the_key() {
        let err = Config::load_with_env(None, env(&[])).unwrap_err().to_string();
        assert!(err.contains("gateway.jwt_secret") && err.contains("required"), "{err}");
        let mut vars = production();
        vars.retain(|(k, _)| *k != "ATENDE__GRPC__INTERNAL_TOKEN");
        let err = Config::load_with_env(None, env(&vars)).unwrap_err().to_string();
        assert!(err.contains("grpc.internal_token"), "{err}");
        let mut vars = production();
        vars.retain(|(k, _)| !k.starts_with("ATENDE__CRYPTO"));
        let err = Config::load_with_env(None, env(&vars)).unwrap_err().to_string();
        assert!(err.contains("crypto.active_key"), "{err}");
        assert!(Config::load_with_env(None, env(&production())).is_ok());
    }

    #[test]
    fn production_refuses_every_publicly_known_secret() {
        for (key, known) in [
            ("ATENDE__GATEWAY__JWT_SECRET", DEV_JWT_SECRET),
            (
                "ATENDE__GATEWAY__JWT_SECRET",
                "change-me-in-production-this-is-only-for-local-use",
            ),
            ("ATENDE__GATEWAY__JWT_PREVIOUS_SECRETS", DEV_JWT_SECRET),
            ("ATENDE__GRPC__INTERNAL_TOKEN", DEV_INTERNAL_TOKEN),
            ("ATENDE__CRYPTO__KEYS__K1", DEV_CRYPTO_KEY_HEX),
        ] {
            let mut vars = production();
            vars.retain(|(k, _)| *k != key);
            vars.push((key, known));
            let err = Config::load_with_env(None, env(&vars)).unwrap_err().to_string();
            assert!(err.contains("publicly known"), "{key}: {err}");
        }
    }

    #[test]
    fn crypto_keys_must_be_32_bytes_and_the_active_one_must_exist() {
        let mut vars = production();
        vars.push(("ATENDE__CRYPTO__KEYS__K2", "abcd"));
        let err = Config::load_with_env(None, env(&vars)).unwrap_err().to_string();
        assert!(err.contains("crypto.keys") && err.contains("k2"), "{err}");
        let mut vars = production();
        vars.retain(|(k, _)| *k != "ATENDE__CRYPTO__ACTIVE_KEY");
        vars.push(("ATENDE__CRYPTO__ACTIVE_KEY", "k9"));
        let err = Config::load_with_env(None, env(&vars)).unwrap_err().to_string();
        assert!(err.contains("crypto.active_key"), "{err}");
    }

    #[test]
    fn grpc_client_credentials_name_their_tenants_and_services() {
        let tenant = "0191d5f4-7d3a-7c4e-9a8b-2f1e3d4c5b6a";
        let mut vars = production();
        vars.extend([
            (
                "ATENDE__GRPC__CLIENTS__CRM__TOKEN",
                "crm-0123456789abcdef0123456789abcdef",
            ),
            ("ATENDE__GRPC__CLIENTS__CRM__TENANTS", tenant),
            ("ATENDE__GRPC__CLIENTS__CRM__SERVICES", "session, router"),
        ]);
        let cfg = Config::load_with_env(None, env(&vars)).unwrap();
        let crm = &cfg.grpc.clients["crm"];
        assert_eq!(crm.tenant_ids().unwrap().unwrap()[0].to_string(), tenant);
        assert_eq!(crm.scopes().unwrap(), vec!["session", "router"]);
        vars.retain(|(k, _)| *k != "ATENDE__GRPC__CLIENTS__CRM__SERVICES");
        vars.push(("ATENDE__GRPC__CLIENTS__CRM__SERVICES", "session,billing"));
        let err = Config::load_with_env(None, env(&vars)).unwrap_err().to_string();
        assert!(
            err.contains("grpc.clients.<name>.services") && err.contains("billing"),
            "{err}"
        );
    }

    #[test]
    fn environment_overrides_defaults() {
        let cfg = Config::load_with_env(
            None,
            env(&[
                ("ATENDE__NATS__URL", "nats://10.0.0.1:4222"),
                ("ATENDE__CHANNEL_ADAPTER__BODY_LIMIT_BYTES", "2048"),
                DEV,
            ]),
        )
        .unwrap();
        assert_eq!(cfg.nats.url, "nats://10.0.0.1:4222");
        assert_eq!(cfg.channel_adapter.body_limit_bytes, 2048);
    }

    #[test]
    fn session_lifetimes_are_refused_when_a_refresh_would_outlive_nothing() {
        for (key, value, named) in [
            ("ATENDE__GATEWAY__REFRESH_TTL_SECS", "900", "gateway.refresh_ttl_secs"),
            ("ATENDE__GATEWAY__TOKEN_TTL_SECS", "0", "gateway.refresh_ttl_secs"),
            ("ATENDE__GATEWAY__WS_TICKET_TTL_SECS", "0", "gateway.ws_ticket_ttl_secs"),
            (
                "ATENDE__GATEWAY__WS_TICKET_TTL_SECS",
                "3600",
                "gateway.ws_ticket_ttl_secs",
            ),
        ] {
            let err = Config::load_with_env(None, env(&[(key, value), DEV]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(named), "{key}={value}: {err}");
        }
    }

    #[test]
    fn a_file_overrides_defaults_and_the_environment_overrides_the_file() {
        let dir = std::env::temp_dir().join(format!("atende-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "[nats]\nurl = \"nats://file:4222\"\n[redis]\nurl = \"redis://file:6379\"\n",
        )
        .unwrap();
        let cfg = Config::load_with_env(Some(&path), env(&[("ATENDE__NATS__URL", "nats://env:4222"), DEV])).unwrap();
        assert_eq!(cfg.nats.url, "nats://env:4222");
        use secrecy::ExposeSecret;
        assert_eq!(cfg.redis.url.expose_secret(), "redis://file:6379");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_bad_value_names_the_key_and_the_reason() {
        let err = Config::load_with_env(None, env(&[("ATENDE__POSTGRES__URL", "mysql://x"), DEV])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("postgres.url"), "{text}");
        assert!(text.contains("postgres"), "{text}");
    }

    #[test]
    fn a_value_of_the_wrong_type_is_refused() {
        let err = Config::load_with_env(None, env(&[("ATENDE__ROUTER__SWEEP_INTERVAL_MS", "soon"), DEV])).unwrap_err();
        assert!(err.to_string().contains("sweep_interval_ms"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let cfg = Config::load_with_env(None, env(&production())).unwrap();
        let debug = format!("{cfg:?}");
        for (_, secret) in production() {
            if secret.len() >= 32 {
                assert!(!debug.contains(secret), "{debug}");
            }
        }
    }
}
