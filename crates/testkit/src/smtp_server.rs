//! A real SMTP server of the test's own: aiosmtpd (PyPI) in a Python process the test starts
//! on a free loopback port it reports itself, printing each accepted mail as one JSON line
//! (envelope, decoded subject and body) that the test reads back. The interpreter comes from
//! `ATENDE_TEST_PYTHON` (written by `deploy/local/infra.sh up`, a venv with aiosmtpd), else
//! the checkout's `.infra/venv`, else `python3`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SERVER: &str = r#"
import asyncio, email, email.policy, json, sys
from aiosmtpd.smtp import SMTP

class Handler:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain",))
        print(json.dumps({
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "subject": str(msg["subject"]),
            "body": body.get_content() if body is not None else "",
        }), flush=True)
        return "250 OK"

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Handler()), "127.0.0.1", 0)
    print("PORT", server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"#;

#[derive(Clone, Debug, serde::Deserialize)]
pub struct Mail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub from: String,
    pub to: String,
    pub subject: String,
    pub body: String,
}

pub struct SmtpServer {
    pub port: u16,
    child: Child,
    mails: Arc<Mutex<Vec<Mail>>>,
}

fn python() -> String {
    if let Ok(p) = std::env::var("ATENDE_TEST_PYTHON") {
        return p;
    }
    // `make infra` fills this venv; a plain `cargo test` finds it too.
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.infra/venv/bin/python");
    if std::path::Path::new(venv).exists() {
        return venv.into();
    }
    "python3".into()
}

impl SmtpServer {
    /// Starts the server and waits until it listens.
    pub fn start() -> SmtpServer {
        let mut child = Command::new(python())
            .args(["-u", "-c", SERVER])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} (set ATENDE_TEST_PYTHON): {e}", python()));
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let first = lines
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("the SMTP server did not start: is aiosmtpd installed for {}?", python()));
        let port = first
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the SMTP server: {first}"));
        let mails = Arc::new(Mutex::new(Vec::new()));
        let sink = mails.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(m) = serde_json::from_str::<Mail>(&line) {
                    sink.lock().expect("mail list").push(m);
                }
            }
        });
        SmtpServer { port, child, mails }
    }

    pub fn received(&self) -> Vec<Mail> {
        self.mails.lock().expect("mail list").clone()
    }

    /// Waits until `n` mails arrived, or panics after `deadline`.
    pub async fn wait_for(&self, n: usize, deadline: Duration) -> Vec<Mail> {
        crate::wait_until(&format!("{n} mails at the SMTP server"), deadline, || async {
            let got = self.received();
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
