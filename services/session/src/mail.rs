//! Transcript e-mails through each tenant's own SMTP server ("Envio do histórico de
//! atendimento", seed 004). A finish queues a job in its transaction; this mailer claims due
//! jobs, renders the conversation's messages in order, sends through lettre and marks the
//! job, retrying with a growing delay while the server refuses or is unreachable.

use std::sync::Arc;
use std::time::Duration;

use atende_store::mail::{self as store, Job, Line};
use atende_store::sealed::{Keyring, Purpose};
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// A tenant's SMTP settings as stored in `tenants.mail` (the password is sealed apart).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    pub tls: String,
    #[serde(default)]
    pub username: String,
    pub from_address: String,
    #[serde(default)]
    pub from_name: String,
    #[serde(default)]
    pub transcript_enabled: bool,
}

impl Settings {
    pub fn from_tenant(t: &atende_store::admin::Tenant) -> Option<Settings> {
        t.mail.clone().and_then(|m| serde_json::from_value(m).ok())
    }

    /// Checks settings before they are stored; the reason names the bad field.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.host.trim().is_empty() || self.host.contains(char::is_whitespace) {
            return Err("host");
        }
        if self.port == 0 {
            return Err("port");
        }
        if !matches!(self.tls.as_str(), "none" | "starttls" | "tls") {
            return Err("tls");
        }
        if self.from_address.parse::<lettre::Address>().is_err() {
            return Err("from_address");
        }
        Ok(())
    }
}

/// Whether `email` is an address lettre can send to.
pub fn valid_address(email: &str) -> bool {
    email.parse::<lettre::Address>().is_ok()
}

/// The transcript as plain text: a header with the protocol, then each message in order.
pub fn render(protocol: &str, contact_name: &str, lines: &[Line]) -> String {
    let mut out = format!("Histórico do atendimento\nProtocolo: {protocol}\nCliente: {contact_name}\n\n");
    for l in lines {
        let who = if l.inbound {
            "Cliente".to_string()
        } else {
            l.agent_name.clone().unwrap_or_else(|| "BOT".to_string())
        };
        let at = l.at;
        let text = match (&l.body, l.kind.as_str()) {
            (Some(b), _) if !b.is_empty() => b.clone(),
            (_, kind) => format!("[{kind}]"),
        };
        out.push_str(&format!(
            "[{:02}/{:02}/{} {:02}:{:02} UTC] {who}: {text}\n",
            at.day(),
            at.month() as u8,
            at.year(),
            at.hour(),
            at.minute()
        ));
    }
    out
}

#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("the tenant has no mail settings")]
    NotConfigured,
    #[error("invalid address: {0}")]
    Address(String),
    #[error(transparent)]
    Store(#[from] atende_store::StoreError),
    #[error("smtp: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("message: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("sealed password: {0}")]
    Sealed(#[from] atende_store::sealed::SealError),
}

async fn send(pool: &PgPool, keyring: &Keyring, job: &Job) -> Result<(), SendError> {
    let tenant = atende_store::admin::get_tenant(pool, job.tenant_id)
        .await?
        .ok_or(SendError::NotConfigured)?;
    let settings = Settings::from_tenant(&tenant).ok_or(SendError::NotConfigured)?;
    let conversation = atende_store::conversations::get_conversation(pool, job.tenant_id, job.conversation_id).await?;
    let contact_name = conversation
        .and_then(|c| c.contact_name)
        .unwrap_or_else(|| "Cliente".into());
    let lines = store::transcript(pool, job.tenant_id, job.conversation_id).await?;
    let from: Mailbox = if settings.from_name.is_empty() {
        settings.from_address.parse()
    } else {
        format!("{} <{}>", settings.from_name, settings.from_address).parse()
    }
    .map_err(|_| SendError::Address(settings.from_address.clone()))?;
    let to: Mailbox = job
        .recipient
        .parse()
        .map_err(|_| SendError::Address(job.recipient.clone()))?;
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(format!("Histórico do atendimento - protocolo {}", job.protocol))
        .header(ContentType::TEXT_PLAIN)
        .body(render(&job.protocol, &contact_name, &lines))?;
    let mut builder = match settings.tls.as_str() {
        "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host)?,
        "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)?,
        _ => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host),
    }
    .port(settings.port)
    .timeout(Some(Duration::from_secs(20)));
    if !settings.username.is_empty() {
        let password = match &tenant.mail_password {
            Some(sealed) => keyring.open(Purpose::SmtpPassword, sealed)?.expose_secret().to_string(),
            None => String::new(),
        };
        builder = builder.credentials(Credentials::new(settings.username.clone(), password));
    }
    builder.build().send(message).await?;
    Ok(())
}

/// Delay before the next attempt after `attempts` failures: 5 s doubling, at most 30 min.
pub fn backoff(attempts: i32) -> Duration {
    let exp = attempts.clamp(1, 20) as u32 - 1;
    Duration::from_secs((5u64 << exp.min(16)).min(1800))
}

/// Sends what is due, once; returns how many were sent.
pub async fn pass(pool: &PgPool, keyring: &Keyring) -> Result<usize, atende_store::StoreError> {
    let jobs = store::claim_due(pool, 120.0, 20).await?;
    let mut sent = 0;
    for job in jobs {
        match send(pool, keyring, &job).await {
            Ok(()) => {
                store::mark_sent(pool, job.id).await?;
                tracing::info!(protocol = %job.protocol, "transcript e-mailed");
                sent += 1;
            }
            Err(e) => {
                let retry = backoff(job.attempts);
                tracing::warn!(error = %e, protocol = %job.protocol, attempts = job.attempts, retry_in = ?retry, "transcript not sent");
                store::mark_failed(pool, job.id, &e.to_string(), retry.as_secs_f64()).await?;
            }
        }
    }
    Ok(sent)
}

/// Runs [`pass`] every `every` until `shutdown`.
pub async fn run(
    pool: PgPool,
    keyring: Arc<Keyring>,
    every: Duration,
    shutdown: CancellationToken,
) -> atende_runtime::Result<()> {
    crate::every(every, "transcripts", shutdown, || pass(&pool, &keyring)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(40), Duration::from_secs(1800));
    }

    #[test]
    fn settings_name_the_bad_field() {
        let ok = Settings {
            host: "smtp.acme.test".into(),
            port: 587,
            tls: "starttls".into(),
            from_address: "atendimento@acme.test".into(),
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
        assert_eq!(
            Settings {
                tls: "ssl".into(),
                ..ok.clone()
            }
            .validate(),
            Err("tls")
        );
        assert_eq!(
            Settings {
                from_address: "x".into(),
                ..ok.clone()
            }
            .validate(),
            Err("from_address")
        );
        assert_eq!(Settings { port: 0, ..ok }.validate(), Err("port"));
    }
}
