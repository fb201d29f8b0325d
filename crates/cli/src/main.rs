//! `atende`: one binary for every role. It only parses arguments, loads configuration,
//! installs telemetry and dispatches; each role lives in its own library crate.

use atende_cli::{demo, ops, roles, simulate};

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;

use roles::Role;

#[derive(Parser)]
#[command(name = "atende", version, about = "Atende omnichannel contact center")]
struct Cli {
    /// Optional TOML file layered over the embedded defaults (env ATENDE__… still wins).
    #[arg(long, global = true, env = "ATENDE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every role in one process (migrations run first).
    All,
    /// The agents' HTTP/WebSocket API.
    Gateway,
    /// Provider webhooks and outbound delivery.
    ChannelAdapter,
    /// Presence, capacity, queues and distribution.
    Router,
    /// Contacts, conversations, protocols and messages.
    Session,
    /// Templates and campaigns.
    Broadcast,
    /// Durable timers.
    Scheduler,
    /// Apply database migrations and exit.
    Migrate,
    /// Validate the configuration and exit (non-zero with the offending key).
    CheckConfig,
    /// Create the demo tenant, channel, service and agents through AdminService (idempotent).
    SeedDemo {
        /// AdminService address (the session role).
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        admin_url: String,
    },
    /// List or replay dead letters through AdminService.
    DeadLetters {
        /// AdminService address (the session role).
        #[arg(long, default_value = "http://127.0.0.1:50051", global = true)]
        admin_url: String,
        /// A gRPC credential (default: grpc.internal_token of the configuration).
        #[arg(
            long,
            env = "ATENDE_GRPC_TOKEN",
            default_value = "",
            hide_env_values = true,
            global = true
        )]
        token: String,
        #[command(subcommand)]
        command: ops::DeadLetters,
    },
    /// Re-seal every stored secret with crypto.active_key (after a key rotation) and exit.
    ResealSecrets,
    /// Print how to try the running platform.
    DemoHelp,
    /// A local fake of Meta's Graph API that checks and prints sends (demo only).
    FakeGraph {
        #[arg(long, default_value = "127.0.0.1:8099")]
        addr: String,
    },
    /// Drive the routing policies with a virtual clock.
    Simulate(simulate::SimulateArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Simulate(args) => simulate::run(args),
        Command::DemoHelp => {
            let cfg = load(&cli.config)?;
            demo::print_help(&cfg);
            Ok(())
        }
        Command::CheckConfig => {
            let cfg = load(&cli.config)?;
            println!("configuration is valid");
            println!("postgres: {}", redact(cfg.postgres.url.expose_secret()));
            println!("redis: {}", redact(cfg.redis.url.expose_secret()));
            println!("nats: {}", cfg.nats.url);
            Ok(())
        }
        command => {
            let cfg = load(&cli.config)?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?
                .block_on(async_main(cfg, command))
        }
    }
}

fn load(path: &Option<PathBuf>) -> anyhow::Result<atende_config::Config> {
    atende_config::Config::load(path.as_deref()).context("invalid configuration")
}

/// Hides a password in a URL for printing.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

async fn async_main(cfg: atende_config::Config, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Migrate => {
            let pool = atende_runtime::postgres_owner(&cfg)
                .await
                .context("cannot connect to postgres")?;
            atende_store::migrate(&pool).await.context("migration failed")?;
            println!("migrations applied");
            Ok(())
        }
        Command::SeedDemo { admin_url } => demo::seed(&cfg, &admin_url).await,
        Command::DeadLetters {
            admin_url,
            token,
            command,
        } => ops::dead_letters(&cfg, &admin_url, &token, command).await,
        Command::ResealSecrets => ops::reseal_secrets(&cfg).await,
        Command::FakeGraph { addr } => demo::fake_graph(&addr).await,
        Command::All => roles::run(&cfg, Role::all()).await,
        Command::Gateway => roles::run(&cfg, &[Role::Gateway]).await,
        Command::ChannelAdapter => roles::run(&cfg, &[Role::ChannelAdapter]).await,
        Command::Router => roles::run(&cfg, &[Role::Router]).await,
        Command::Session => roles::run(&cfg, &[Role::Session]).await,
        Command::Broadcast => roles::run(&cfg, &[Role::Broadcast]).await,
        Command::Scheduler => roles::run(&cfg, &[Role::Scheduler]).await,
        Command::Simulate(_) | Command::DemoHelp | Command::CheckConfig => {
            unreachable!("handled before the runtime starts")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_hidden() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
