//! Operator commands: dead letters (through `AdminService`, as any internal team would call
//! it) and re-sealing stored secrets after a key rotation (straight to Postgres, like
//! `migrate`).

use anyhow::Context;
use atende_config::Config;
use atende_proto::v1::{self as pb, admin_service_client::AdminServiceClient};

#[derive(clap::Subcommand)]
pub enum DeadLetters {
    /// List dead letters, oldest first.
    List {
        /// Only this tenant's (default: every tenant).
        #[arg(long, default_value = "")]
        tenant: String,
        /// Include those already replayed.
        #[arg(long)]
        all: bool,
    },
    /// Publish a dead letter again on its subject and mark it replayed.
    Replay {
        id: i64,
        #[arg(long, default_value = "")]
        tenant: String,
    },
}

/// Runs a dead-letter command against AdminService at `admin_url`, with `token` or, when
/// empty, the roles' internal credential.
pub async fn dead_letters(cfg: &Config, admin_url: &str, token: &str, cmd: DeadLetters) -> anyhow::Result<()> {
    let auth = if token.is_empty() {
        atende_runtime::ClientAuth::internal(cfg)
    } else {
        atende_runtime::ClientAuth::new(token)
    };
    let mut admin = AdminServiceClient::new(atende_runtime::auth::channel(admin_url, auth)?);
    match cmd {
        DeadLetters::List { tenant, all } => {
            let mut page_token = String::new();
            let mut count = 0;
            loop {
                let page = admin
                    .list_dead_letters(pb::ListDeadLettersRequest {
                        tenant_id: tenant.clone(),
                        pending_only: !all,
                        page_size: 500,
                        page_token,
                    })
                    .await
                    .context("ListDeadLetters")?
                    .into_inner();
                for d in &page.dead_letters {
                    count += 1;
                    println!(
                        "{}\t{}\t{}\t{}\t{}\treplays={}\t{}",
                        d.id, d.dead_at, d.consumer, d.subject, d.reason, d.replays, d.replayed_at
                    );
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            eprintln!("{count} dead letter(s)");
        }
        DeadLetters::Replay { id, tenant } => {
            let d = admin
                .replay_dead_letter(pb::ReplayDeadLetterRequest { tenant_id: tenant, id })
                .await
                .context("ReplayDeadLetter")?
                .into_inner()
                .dead_letter
                .unwrap_or_default();
            println!("replayed {} on {} (replays: {})", d.id, d.subject, d.replays);
        }
    }
    Ok(())
}

/// Re-seals every stored secret with the active key (after adding a key and making it
/// active), so the previous key can be removed from the configuration.
pub async fn reseal_secrets(cfg: &Config) -> anyhow::Result<()> {
    let keyring = atende_runtime::keyring(cfg).context("crypto keys")?;
    let pool = atende_runtime::postgres(cfg)
        .await
        .context("cannot connect to postgres")?;
    let changed = atende_store::admin::reseal_channel_secrets(&pool, &keyring)
        .await
        .context("re-sealing channel secrets")?;
    let mail = atende_store::admin::reseal_mail_passwords(&pool, &keyring)
        .await
        .context("re-sealing SMTP passwords")?;
    println!(
        "{changed} channel(s) and {mail} SMTP password(s) re-sealed with key `{}`",
        keyring.active_key()
    );
    Ok(())
}
