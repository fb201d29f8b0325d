//! Configuration for every role.
//!
//! Precedence, lowest to highest (each layer overrides the one before):
//! 1. defaults embedded in the binary (`defaults.toml`), so `atende all` starts with no file;
//! 2. an optional TOML file (`--config PATH` or `ATENDE_CONFIG`);
//! 3. environment variables `ATENDE__SECTION__KEY` (e.g. `ATENDE__POSTGRES__URL`);
//! 4. `validate()`, which names the bad key and why.
//!
//! Secrets are `SecretString`, so they never appear in `Debug` output or logs.

use std::net::SocketAddr;
use std::path::Path;

use secrecy::SecretString;
use serde::Deserialize;

const DEFAULTS: &str = include_str!("defaults.toml");

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
    pub session: GrpcOnly,
    pub router: Router,
    pub broadcast: GrpcOnly,
    pub scheduler: GrpcOnly,
    pub clients: Clients,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Postgres {
    pub url: SecretString,
    pub max_connections: u32,
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
    pub token_ttl_secs: u64,
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
pub struct GrpcOnly {
    pub grpc_addr: SocketAddr,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Router {
    pub grpc_addr: SocketAddr,
    /// How often the router re-evaluates queues (offer timeouts, business hours, rebuilds).
    pub sweep_interval_ms: u64,
    /// Services with more members than this are routed through the Redis candidate index
    /// (the best few agents per channel kind) instead of a snapshot of every member.
    pub full_snapshot_max: usize,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Clients {
    pub session_url: String,
    pub router_url: String,
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
        let cfg: Config = builder.build()?.try_deserialize()?;
        cfg.validate()?;
        Ok(cfg)
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
        if self.gateway.jwt_secret.expose_secret().len() < 32 {
            return Err(ConfigError::Invalid {
                key: "gateway.jwt_secret",
                reason: "must be at least 32 characters".into(),
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

    #[test]
    fn defaults_alone_are_a_valid_configuration() {
        let cfg = Config::load_with_env(None, env(&[])).unwrap();
        assert_eq!(cfg.channel_adapter.body_limit_bytes, 3 * 1024 * 1024);
        assert_eq!(cfg.gateway.http_addr.port(), 8080);
    }

    #[test]
    fn environment_overrides_defaults() {
        let cfg = Config::load_with_env(
            None,
            env(&[
                ("ATENDE__NATS__URL", "nats://10.0.0.1:4222"),
                ("ATENDE__CHANNEL_ADAPTER__BODY_LIMIT_BYTES", "2048"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.nats.url, "nats://10.0.0.1:4222");
        assert_eq!(cfg.channel_adapter.body_limit_bytes, 2048);
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
        let cfg = Config::load_with_env(Some(&path), env(&[("ATENDE__NATS__URL", "nats://env:4222")])).unwrap();
        assert_eq!(cfg.nats.url, "nats://env:4222");
        use secrecy::ExposeSecret;
        assert_eq!(cfg.redis.url.expose_secret(), "redis://file:6379");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_bad_value_names_the_key_and_the_reason() {
        let err = Config::load_with_env(None, env(&[("ATENDE__POSTGRES__URL", "mysql://x")])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("postgres.url"), "{text}");
        assert!(text.contains("postgres"), "{text}");
    }

    #[test]
    fn a_value_of_the_wrong_type_is_refused() {
        let err = Config::load_with_env(None, env(&[("ATENDE__ROUTER__SWEEP_INTERVAL_MS", "soon")])).unwrap_err();
        assert!(err.to_string().contains("sweep_interval_ms"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let cfg = Config::load_with_env(None, env(&[])).unwrap();
        let debug = format!("{:?}", cfg.gateway);
        assert!(!debug.contains("change-me"), "{debug}");
    }
}
