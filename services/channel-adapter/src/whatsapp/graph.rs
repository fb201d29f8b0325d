//! The outbound half: Meta's Graph API `/{phone-number-id}/messages` endpoint.
//!
//! The value of this module is less the HTTP call than the error taxonomy. Every failed send must
//! be either retried later (rate limits, Meta's 5xx, timeouts) or given up on and surfaced to the
//! agent (window closed, number not on WhatsApp, bad template) or to an operator (token revoked,
//! account locked). Meta says to decide on `code` and `error_data.details`, never on titles, and
//! that the same error can come back synchronously, asynchronously in a `failed` status, or
//! both; [`classify`] is the one place that decision is made, so the status consumer can use it
//! too.
//!
//! A retried send can duplicate a message when the first attempt reached Meta but its response
//! was lost (a timeout): the Cloud API has no idempotency key. Callers that retry should accept
//! that or cap retries for timeouts.

use std::time::Duration;

use atende_domain::error::ErrorCode;
use serde::Deserialize;
use serde_json::{json, Value};

/// Production Graph API host; tests point the client at a fake.
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";

/// A whole request, connect included, may take this long before it counts as a timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a failed call should be handled by whoever owns the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryClass {
    /// Transient: try again later, no sooner than `after_hint` when there is one.
    Retry { after_hint: Option<Duration> },
    /// Retrying the same request cannot succeed.
    Permanent,
}

/// What Meta said when it took the message. `accepted` is not `delivered`: delivery arrives
/// later as a status webhook for `provider_message_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendAccepted {
    /// The `wamid.…` that statuses and replies will reference.
    pub provider_message_id: String,
    /// `accepted`, `held_for_quality_assessment` or `paused`.
    pub message_status: Option<String>,
}

/// A failed Graph call, in Graph's own terms plus our retry decision.
#[derive(Debug, thiserror::Error)]
#[error("graph api call failed (http {http_status:?}, code {code:?})")]
pub struct GraphError {
    /// `None` when no response arrived (timeout, connection refused).
    pub http_status: Option<u16>,
    pub code: Option<i64>,
    pub subcode: Option<i64>,
    pub message: String,
    /// `error.error_data.details`.
    pub details: Option<String>,
    /// Meta support asks for this when a call misbehaves.
    pub fbtrace_id: Option<String>,
    pub retry: RetryClass,
    #[source]
    pub source: Option<reqwest::Error>,
}

impl GraphError {
    pub fn is_retryable(&self) -> bool {
        matches!(self.retry, RetryClass::Retry { .. })
    }

    /// Token, permission, policy or account-lock problems: no send on this number will work
    /// until a person fixes the configuration, so raise an alert rather than fail messages
    /// one by one.
    pub fn needs_operator(&self) -> bool {
        matches!(self.code, Some(190 | 10 | 200..=299 | 368 | 131031))
    }

    /// The stable error code for callers (gRPC/HTTP mapping lives in the domain table).
    pub fn error_code(&self) -> ErrorCode {
        match (self.code, self.retry) {
            (Some(131047), _) => ErrorCode::OutsideCustomerWindow,
            (_, RetryClass::Retry { .. }) => ErrorCode::Unavailable,
            _ if self.needs_operator() => ErrorCode::Internal,
            _ => ErrorCode::InvalidArgument,
        }
    }

    fn local(message: &str, retry: RetryClass, http_status: Option<u16>, source: Option<reqwest::Error>) -> Self {
        GraphError {
            http_status,
            code: None,
            subcode: None,
            message: message.to_owned(),
            details: None,
            fbtrace_id: None,
            retry,
            source,
        }
    }
}

/// The retry decision for a Graph error, from CHANNELS.md's table. `code` wins over the HTTP
/// status because Meta reuses statuses (a 400 can be a rate limit); unknown codes fall back to
/// the status: 429 and 5xx retry, other 4xx do not. No status at all (no response) retries.
pub fn classify(http_status: Option<u16>, code: Option<i64>, retry_after: Option<Duration>) -> RetryClass {
    let retry = |default_secs: Option<u64>| RetryClass::Retry {
        after_hint: retry_after.or(default_secs.map(Duration::from_secs)),
    };
    match code {
        // Cloud API throughput per number.
        Some(130429) => retry(Some(1)),
        // Pair rate: about one message per 6 s to the same user.
        Some(131056) => retry(Some(6)),
        // WABA and app call-rate limits.
        Some(80007 | 4) => retry(Some(60)),
        // Meta-side trouble: unknown error, temporary, service unavailable.
        Some(1 | 2 | 131000 | 131016 | 133004) => retry(None),
        // Window closed, undeliverable, spam / marketing protection, bad input, bad template,
        // invalid parameter, token / permission / policy / lock.
        Some(
            131047
            | 131026
            | 131048
            | 131049
            | 131051..=131053
            | 132000..=132999
            | 100
            | 190
            | 10
            | 200..=299
            | 368
            | 131031,
        ) => RetryClass::Permanent,
        _ => match http_status {
            None => retry(None),
            Some(429) => retry(None),
            Some(s) if s >= 500 => retry(None),
            Some(_) => RetryClass::Permanent,
        },
    }
}

/// Meta's send body for a plain text message; `reply_to` quotes an earlier message.
pub fn text_payload(to: &str, body: &str, reply_to: Option<&str>) -> Value {
    let mut payload = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": { "preview_url": false, "body": body },
    });
    if let Some(id) = reply_to {
        payload["context"] = json!({ "message_id": id });
    }
    payload
}

/// Meta's send body for a template: its name, language and the components with their
/// parameters (checked by session against the template before it was queued).
pub fn template_payload(to: &str, name: &str, language: &str, components: &Value) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": {
            "name": name,
            "language": { "code": language },
            "components": components,
        },
    })
}

/// A Graph API client for one API version. Cheap to clone (reqwest pools connections).
#[derive(Clone, Debug)]
pub struct GraphClient {
    http: reqwest::Client,
    base_url: String,
    api_version: String,
}

impl GraphClient {
    /// `base_url` is [`DEFAULT_BASE_URL`] in production; `api_version` like `v23.0`.
    pub fn new(base_url: String, api_version: String) -> Self {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .expect("reqwest client with rustls builds from static configuration");
        Self::with_http_client(http, base_url, api_version)
    }

    /// For callers that need their own timeouts, proxy or connection pool.
    pub fn with_http_client(http: reqwest::Client, base_url: String, api_version: String) -> Self {
        let base_url = base_url.trim_end_matches('/').to_owned();
        Self {
            http,
            base_url,
            api_version,
        }
    }

    pub fn messages_url(&self, phone_number_id: &str) -> String {
        format!("{}/{}/{}/messages", self.base_url, self.api_version, phone_number_id)
    }

    /// Sends a text message to `to` (digits, or a business-scoped user id).
    pub async fn send_text(
        &self,
        phone_number_id: &str,
        access_token: &str,
        to: &str,
        body: &str,
        reply_to: Option<&str>,
    ) -> Result<SendAccepted, GraphError> {
        self.send_message(phone_number_id, access_token, &text_payload(to, body, reply_to))
            .await
    }

    /// Sends any message body Meta accepts (template, media, interactive…).
    pub async fn send_message(
        &self,
        phone_number_id: &str,
        access_token: &str,
        payload: &Value,
    ) -> Result<SendAccepted, GraphError> {
        let (status, body) = self.post(phone_number_id, access_token, payload).await?;
        let accepted: wire::SendResponse = serde_json::from_slice(&body).unwrap_or_default();
        match accepted.messages.into_iter().next() {
            Some(m) if !m.id.is_empty() => Ok(SendAccepted {
                provider_message_id: m.id,
                message_status: m.message_status,
            }),
            // Meta took the request but we cannot reference the message. Retrying could send it
            // twice, so this is permanent.
            _ => Err(GraphError::local(
                "send response has no message id",
                RetryClass::Permanent,
                Some(status),
                None,
            )),
        }
    }

    /// Marks an inbound message (and the ones before it) as read: blue ticks for the customer.
    pub async fn mark_read(
        &self,
        phone_number_id: &str,
        access_token: &str,
        message_id: &str,
    ) -> Result<(), GraphError> {
        let payload = json!({ "messaging_product": "whatsapp", "status": "read", "message_id": message_id });
        self.post(phone_number_id, access_token, &payload).await.map(|_| ())
    }

    async fn post(
        &self,
        phone_number_id: &str,
        access_token: &str,
        payload: &Value,
    ) -> Result<(u16, Vec<u8>), GraphError> {
        // The id is interpolated into the path: refuse anything that could change the route.
        if phone_number_id.is_empty() || !phone_number_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(GraphError::local(
                "phone_number_id must be digits",
                RetryClass::Permanent,
                None,
                None,
            ));
        }
        let response = self
            .http
            .post(self.messages_url(phone_number_id))
            .bearer_auth(access_token)
            .json(payload)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await.map_err(transport_error)?;
        if (200..300).contains(&status) {
            Ok((status, body.to_vec()))
        } else {
            Err(error_from_response(status, retry_after, &body))
        }
    }
}

fn transport_error(e: reqwest::Error) -> GraphError {
    let retry = if e.is_builder() {
        RetryClass::Permanent
    } else {
        RetryClass::Retry { after_hint: None }
    };
    let message = if e.is_timeout() {
        "graph api timed out"
    } else {
        "graph api unreachable"
    };
    GraphError::local(message, retry, e.status().map(|s| s.as_u16()), Some(e))
}

/// Reads Graph's error format (`{"error":{message,type,code,error_subcode,error_data,fbtrace_id}}`);
/// a body in any other shape (a proxy's HTML page) still yields an error classified by status.
pub fn error_from_response(http_status: u16, retry_after: Option<Duration>, body: &[u8]) -> GraphError {
    let parsed = serde_json::from_slice::<wire::ErrorResponse>(body)
        .ok()
        .map(|r| r.error);
    let e = parsed.unwrap_or_default();
    let message = e.message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        text.chars().take(200).collect()
    });
    GraphError {
        http_status: Some(http_status),
        code: e.code,
        subcode: e.error_subcode,
        message,
        details: e.error_data.and_then(|d| d.details),
        fbtrace_id: e.fbtrace_id,
        retry: classify(Some(http_status), e.code, retry_after),
        source: None,
    }
}

mod wire {
    use super::Deserialize;

    #[derive(Deserialize, Default)]
    pub struct SendResponse {
        #[serde(default)]
        pub messages: Vec<SentMessage>,
    }

    #[derive(Deserialize)]
    pub struct SentMessage {
        #[serde(default)]
        pub id: String,
        #[serde(default)]
        pub message_status: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct ErrorResponse {
        pub error: ErrorBody,
    }

    #[derive(Deserialize, Default)]
    pub struct ErrorBody {
        #[serde(default)]
        pub message: Option<String>,
        #[serde(default)]
        pub code: Option<i64>,
        #[serde(default)]
        pub error_subcode: Option<i64>,
        #[serde(default)]
        pub error_data: Option<ErrorData>,
        #[serde(default)]
        pub fbtrace_id: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct ErrorData {
        #[serde(default)]
        pub details: Option<String>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRY: RetryClass = RetryClass::Retry { after_hint: None };

    fn hint(secs: u64) -> RetryClass {
        RetryClass::Retry {
            after_hint: Some(Duration::from_secs(secs)),
        }
    }

    #[test]
    fn rate_limits_retry_with_a_hint() {
        assert_eq!(classify(Some(429), Some(130429), None), hint(1));
        assert_eq!(classify(Some(400), Some(131056), None), hint(6));
        assert_eq!(classify(Some(400), Some(80007), None), hint(60));
        assert_eq!(classify(Some(400), Some(4), None), hint(60));
    }

    #[test]
    fn a_retry_after_header_beats_the_default_hint() {
        assert_eq!(
            classify(Some(429), Some(130429), Some(Duration::from_secs(30))),
            hint(30)
        );
        assert_eq!(classify(Some(503), None, Some(Duration::from_secs(7))), hint(7));
    }

    #[test]
    fn server_errors_and_missing_responses_retry() {
        for status in [500, 502, 503, 504] {
            assert_eq!(classify(Some(status), None, None), RETRY, "{status}");
        }
        assert_eq!(classify(None, None, None), RETRY);
        assert_eq!(classify(Some(500), Some(131000), None), RETRY);
        assert_eq!(classify(Some(429), Some(999_999), None), RETRY);
    }

    #[test]
    fn input_window_and_account_errors_are_permanent() {
        for code in [
            131047, 131026, 131048, 131049, 131051, 131052, 131053, 132000, 132001, 132012, 132015, 100, 190, 10, 200,
            250, 299, 368, 131031,
        ] {
            assert_eq!(classify(Some(400), Some(code), None), RetryClass::Permanent, "{code}");
        }
        // Code decides even when the status looks transient.
        assert_eq!(classify(Some(500), Some(131047), None), RetryClass::Permanent);
        assert_eq!(classify(Some(404), None, None), RetryClass::Permanent);
    }

    #[test]
    fn a_graph_error_body_is_read_field_by_field() {
        let body = br#"{"error":{"message":"(#131056) (Business Account, Consumer Account) pair rate limit hit","type":"OAuthException","code":131056,"error_subcode":2494055,"error_data":{"messaging_product":"whatsapp","details":"Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time."},"fbtrace_id":"AazJbSd7Pmv8ko5r2Ve1Y1z"}}"#;
        let e = error_from_response(400, None, body);
        assert_eq!(e.http_status, Some(400));
        assert_eq!(e.code, Some(131056));
        assert_eq!(e.subcode, Some(2494055));
        assert!(e.message.contains("pair rate limit"));
        assert!(e.details.as_deref().unwrap().starts_with("Message failed to send"));
        assert_eq!(e.fbtrace_id.as_deref(), Some("AazJbSd7Pmv8ko5r2Ve1Y1z"));
        assert_eq!(e.retry, hint(6));
        assert_eq!(e.error_code(), ErrorCode::Unavailable);
    }

    #[test]
    fn a_revoked_token_is_permanent_and_needs_an_operator() {
        let body = br#"{"error":{"message":"Error validating access token: Session has expired","type":"OAuthException","code":190,"error_subcode":463,"fbtrace_id":"A1"}}"#;
        let e = error_from_response(401, None, body);
        assert_eq!(e.retry, RetryClass::Permanent);
        assert!(e.needs_operator());
        assert_eq!(e.error_code(), ErrorCode::Internal);
    }

    #[test]
    fn a_closed_window_maps_to_outside_customer_window() {
        let e = error_from_response(
            400,
            None,
            br#"{"error":{"code":131047,"message":"Re-engagement message"}}"#,
        );
        assert_eq!(e.error_code(), ErrorCode::OutsideCustomerWindow);
        assert!(!e.is_retryable() && !e.needs_operator());
    }

    #[test]
    fn a_non_graph_body_is_classified_by_status() {
        let e = error_from_response(502, None, b"<html>Bad Gateway</html>");
        assert_eq!(e.code, None);
        assert_eq!(e.message, "<html>Bad Gateway</html>");
        assert!(e.is_retryable());
    }

    #[test]
    fn the_text_payload_is_metas_shape() {
        assert_eq!(
            text_payload("5511987654321", "olá", Some("wamid.Q")),
            json!({
                "messaging_product": "whatsapp", "recipient_type": "individual", "to": "5511987654321",
                "type": "text", "text": {"preview_url": false, "body": "olá"},
                "context": {"message_id": "wamid.Q"}
            })
        );
        assert!(text_payload("1", "x", None).get("context").is_none());
    }

    #[test]
    fn the_url_joins_base_version_and_number() {
        let c = GraphClient::new("http://127.0.0.1:1/".into(), "v23.0".into());
        assert_eq!(c.messages_url("123"), "http://127.0.0.1:1/v23.0/123/messages");
    }
}

#[cfg(test)]
#[path = "graph_fake_tests.rs"]
mod against_fake_graph;
