//! A local fake of Meta's Graph API send endpoint, strict about Meta's formats.
//!
//! Tests that send WhatsApp messages need something to send to that fails the way Meta does.
//! A permissive stub would let a malformed body, a missing `messaging_product` or a wrong
//! bearer pass in tests and fail only in production, so this fake checks what Meta checks and
//! answers in Meta's shapes: Graph errors (`{"error":{message,type,code,error_data,fbtrace_id}}`)
//! with Meta's codes (100 for bad input, 190 for tokens), and `wamid.…` ids on success.
//! Failures (rate limits, closed windows) are injected per call with [`FakeGraph::fail_next`].
//!
//! The server runs on `127.0.0.1:0` inside the test's runtime and stops when the `FakeGraph`
//! is dropped (the shutdown sender closes).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::{oneshot, Notify};

/// Meta's limit on `text.body`, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;

/// Message `type`s the Cloud API accepts on `/messages`.
pub const MESSAGE_TYPES: &[&str] = &[
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "template",
    "reaction",
];

/// A message the fake accepted.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedSend {
    pub phone_number_id: String,
    /// The bearer token it came with.
    pub token: String,
    /// The request body as sent.
    pub body: Value,
    /// The `wamid.…` the fake answered with.
    pub provider_message_id: String,
}

/// A read receipt (`{"status":"read","message_id":…}`) the fake accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRead {
    pub phone_number_id: String,
    pub token: String,
    pub message_id: String,
}

#[derive(Clone, Copy, Debug)]
struct InjectedFailure {
    http_status: u16,
    code: i64,
}

#[derive(Default)]
struct Inner {
    tokens: HashMap<String, String>,
    sends: Vec<RecordedSend>,
    reads: Vec<RecordedRead>,
    failures: VecDeque<InjectedFailure>,
    /// Message templates by WhatsApp Business Account id, as the template list returns them.
    templates: HashMap<String, Vec<Value>>,
    /// The business account behind each phone number: template sends from a linked number
    /// are checked against the account's templates.
    accounts: HashMap<String, String>,
}

#[derive(Default)]
struct Shared {
    inner: Mutex<Inner>,
    /// Woken on every accepted request, so waiters need no polling interval.
    changed: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking handler must not hide the recorded sends from the test's assertions.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The running fake. Drop it to stop the server.
pub struct FakeGraph {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _shutdown: oneshot::Sender<()>,
}

impl FakeGraph {
    /// Binds `127.0.0.1:0` and serves until dropped. Panics if it cannot bind (tests only).
    pub async fn start() -> FakeGraph {
        Self::start_on("127.0.0.1:0").await
    }

    /// As [`FakeGraph::start`], on a chosen address (`atende fake-graph` for local demos).
    pub async fn start_on(addr: &str) -> FakeGraph {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/{version}/{phone_number_id}/messages", post(messages))
            .route("/{version}/{business_account_id}/message_templates", get(templates))
            .fallback(unknown_path)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("fake graph binds a loopback port");
        let addr = listener.local_addr().expect("bound socket has an address");
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        FakeGraph {
            addr,
            shared,
            _shutdown: shutdown,
        }
    }

    /// `http://127.0.0.1:<port>`, to pass as the Graph client's base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests for `phone_number_id` must carry `Bearer <token>` from now on; others get
    /// Meta's 401 (code 190). Numbers with no expectation accept any non-empty bearer.
    pub fn expect_token(&self, phone_number_id: &str, token: &str) {
        self.shared
            .lock()
            .tokens
            .insert(phone_number_id.to_owned(), token.to_owned());
    }

    /// The business account's templates from now on, each as Meta's template list shows one
    /// (`{name, language, status, category, id, components}`).
    pub fn set_templates(&self, business_account_id: &str, templates: Vec<Value>) {
        self.shared
            .lock()
            .templates
            .insert(business_account_id.to_owned(), templates);
    }

    /// `phone_number_id` belongs to `business_account_id`: its template sends must name one
    /// of the account's templates, approved, with the body's parameter count (Meta's 132001,
    /// 132015 and 132000 otherwise).
    pub fn link_number(&self, phone_number_id: &str, business_account_id: &str) {
        self.shared
            .lock()
            .accounts
            .insert(phone_number_id.to_owned(), business_account_id.to_owned());
    }

    /// Every message accepted so far, in arrival order.
    pub fn sent(&self) -> Vec<RecordedSend> {
        self.shared.lock().sends.clone()
    }

    /// Every read receipt accepted so far.
    pub fn marked_read(&self) -> Vec<RecordedRead> {
        self.shared.lock().reads.clone()
    }

    /// The next `n` well-formed, authorised requests fail with `http_status` and Graph error
    /// `code` (e.g. `429, 130429` or `400, 131047`).
    pub fn fail_next(&self, n: usize, http_status: u16, code: i64) {
        let mut inner = self.shared.lock();
        inner
            .failures
            .extend(std::iter::repeat_n(InjectedFailure { http_status, code }, n));
    }

    /// Waits until at least `n` messages were accepted and returns them all. Panics after
    /// `timeout`, listing what did arrive.
    pub async fn wait_for_sends(&self, n: usize, timeout: Duration) -> Vec<RecordedSend> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Register interest before checking, so a send between the check and the wait
            // still wakes us.
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let sends = self.sent();
            if sends.len() >= n {
                return sends;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let sends = self.sent();
                panic!(
                    "fake graph: expected {n} sends within {timeout:?}, got {}: {sends:#?}",
                    sends.len()
                );
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct Page {
    limit: Option<usize>,
    after: Option<String>,
}

/// `GET /{version}/{waba}/message_templates`: the account's templates in pages of `limit`
/// (25 by default), `paging.next` pointing at the next page while there is one.
async fn templates(
    State(shared): State<Arc<Shared>>,
    Path((version, account)): Path<(String, String)>,
    Query(page): Query<Page>,
    headers: HeaderMap,
) -> Response {
    if !is_api_version(&version) {
        return graph_error(StatusCode::BAD_REQUEST, 100, "Unknown path components", None);
    }
    let Some(token) = bearer(&headers).map(str::to_owned) else {
        return graph_error(
            StatusCode::UNAUTHORIZED,
            190,
            "An active access token must be used",
            None,
        );
    };
    let (expected, all) = {
        let inner = shared.lock();
        (
            inner.tokens.get(&account).cloned(),
            inner.templates.get(&account).cloned(),
        )
    };
    if expected.is_some_and(|e| e != token) {
        return graph_error(StatusCode::UNAUTHORIZED, 190, "Invalid OAuth access token", None);
    }
    let Some(all) = all else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            "Unsupported get request. Object does not exist",
            Some("unknown business account"),
        );
    };
    let limit = page.limit.unwrap_or(25).clamp(1, 1000);
    let start = page.after.as_deref().and_then(|a| a.parse::<usize>().ok()).unwrap_or(0);
    let end = (start + limit).min(all.len());
    let data: Vec<Value> = all.get(start..end).unwrap_or_default().to_vec();
    let mut paging = json!({ "cursors": { "before": start.to_string(), "after": end.to_string() } });
    if end < all.len() {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1");
        paging["next"] = json!(format!(
            "http://{host}/{version}/{account}/message_templates?limit={limit}&after={end}"
        ));
    }
    Json(json!({ "data": data, "paging": paging })).into_response()
}

/// Why Meta would refuse a template send from a number whose account's templates are known:
/// no such template in that language (132001), not approved (132015 for a paused one,
/// 132001 otherwise), or a body parameter count other than its `{{n}}` slots (132000).
fn template_refusal(inner: &Inner, phone_number_id: &str, payload: &Value) -> Option<(i64, &'static str)> {
    if payload["type"] != "template" {
        return None;
    }
    let templates = inner.templates.get(inner.accounts.get(phone_number_id)?)?;
    let sent = &payload["template"];
    let found = templates
        .iter()
        .find(|t| t["name"] == sent["name"] && t["language"] == sent["language"]["code"]);
    let Some(template) = found else {
        return Some((132001, "Template name does not exist in the translation"));
    };
    match template["status"].as_str() {
        Some("APPROVED") => {}
        Some("PAUSED") => return Some((132015, "Template is Paused")),
        _ => return Some((132001, "Template name does not exist in the translation")),
    }
    let body_text = template["components"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "BODY"))
        .and_then(|b| b["text"].as_str())
        .unwrap_or_default();
    let slots = (1..=100)
        .take_while(|n| body_text.contains(&format!("{{{{{n}}}}}")))
        .count();
    let given = sent["components"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "body"))
        .and_then(|b| b["parameters"].as_array())
        .map_or(0, Vec::len);
    (slots != given).then_some((
        132000,
        "Number of parameters does not match the expected number of params",
    ))
}

/// What a valid request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Message { to: String },
    Read { message_id: String },
}

async fn messages(
    State(shared): State<Arc<Shared>>,
    Path((version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !is_api_version(&version) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            "Unknown path components",
            Some("api version must look like v23.0"),
        );
    }
    if phone_number_id.is_empty() || !phone_number_id.bytes().all(|b| b.is_ascii_digit()) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            "Unsupported post request",
            Some("phone number id must be digits"),
        );
    }
    let token = match bearer(&headers) {
        Some(t) => t.to_owned(),
        None => {
            return graph_error(
                StatusCode::UNAUTHORIZED,
                190,
                "An active access token must be used",
                None,
            )
        }
    };
    let expected = shared.lock().tokens.get(&phone_number_id).cloned();
    if expected.is_some_and(|e| e != token) {
        return graph_error(
            StatusCode::UNAUTHORIZED,
            190,
            "Invalid OAuth access token - Cannot parse access token",
            None,
        );
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !is_json {
        return invalid("content-type must be application/json");
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return invalid("body is not valid json");
    };
    let request = match validate(&payload) {
        Ok(r) => r,
        Err(details) => return invalid(&details),
    };

    let mut inner = shared.lock();
    if let Some((code, message)) = template_refusal(&inner, &phone_number_id, &payload) {
        drop(inner);
        return graph_error(StatusCode::BAD_REQUEST, code, message, None);
    }
    if let Some(f) = inner.failures.pop_front() {
        drop(inner);
        let status = StatusCode::from_u16(f.http_status).unwrap_or(StatusCode::BAD_REQUEST);
        return graph_error(
            status,
            f.code,
            injected_message(f.code),
            Some("injected by FakeGraph::fail_next"),
        );
    }
    let response = match request {
        Request::Read { message_id } => {
            inner.reads.push(RecordedRead {
                phone_number_id,
                token,
                message_id,
            });
            json!({ "success": true })
        }
        Request::Message { to } => {
            let wamid = format!("wamid.{}", uuid::Uuid::new_v4().simple().to_string().to_uppercase());
            let contact = if is_bsuid(&to) {
                json!({ "input": to, "user_id": to })
            } else {
                json!({ "input": to, "wa_id": to })
            };
            inner.sends.push(RecordedSend {
                phone_number_id,
                token,
                body: payload,
                provider_message_id: wamid.clone(),
            });
            json!({
                "messaging_product": "whatsapp",
                "contacts": [contact],
                "messages": [{ "id": wamid, "message_status": "accepted" }],
            })
        }
    };
    drop(inner);
    shared.changed.notify_waiters();
    (StatusCode::OK, Json(response)).into_response()
}

async fn unknown_path() -> Response {
    graph_error(
        StatusCode::BAD_REQUEST,
        100,
        "Unsupported request",
        Some("the fake serves only POST /{version}/{phone-number-id}/messages"),
    )
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then_some(token)
}

fn is_api_version(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let Some((major, minor)) = rest.split_once('.') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(major) && digits(minor)
}

/// A business-scoped user id: `CC.<alnum>` or `CC.ENT.<alnum>` (parent id), up to 128
/// characters after the country code.
fn is_bsuid(s: &str) -> bool {
    let Some((country, rest)) = s.split_once('.') else {
        return false;
    };
    let rest = rest.strip_prefix("ENT.").unwrap_or(rest);
    country.len() == 2
        && country.bytes().all(|b| b.is_ascii_uppercase())
        && (1..=128).contains(&rest.len())
        && rest.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn is_phone_digits(s: &str) -> bool {
    (1..=15).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

fn non_empty_str<'a>(v: &'a Value, field: &str) -> Result<&'a str, String> {
    match v.get(field).and_then(Value::as_str) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(format!("{field} must be a non-empty string")),
    }
}

/// Meta's rules for `/messages` bodies, as far as tests need them. The error string becomes
/// `error_data.details`.
fn validate(v: &Value) -> Result<Request, String> {
    if !v.is_object() {
        return Err("body must be a json object".into());
    }
    if v.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
        return Err("messaging_product must be \"whatsapp\"".into());
    }
    if let Some(status) = v.get("status") {
        if status.as_str() != Some("read") {
            return Err("status must be \"read\"".into());
        }
        let message_id = non_empty_str(v, "message_id")?;
        if let Some(t) = v.get("typing_indicator") {
            if t.get("type").and_then(Value::as_str) != Some("text") {
                return Err("typing_indicator.type must be \"text\"".into());
            }
        }
        return Ok(Request::Read {
            message_id: message_id.to_owned(),
        });
    }

    let to = non_empty_str(v, "to")?;
    if !is_phone_digits(to) && !is_bsuid(to) {
        return Err("to must be digits only or a business-scoped user id".into());
    }
    if let Some(rt) = v.get("recipient_type") {
        if !matches!(rt.as_str(), Some("individual" | "group")) {
            return Err("recipient_type must be \"individual\" or \"group\"".into());
        }
    }
    // Meta defaults a missing type to text.
    let kind = match v.get("type") {
        None => "text",
        Some(t) => t.as_str().ok_or("type must be a string")?,
    };
    if !MESSAGE_TYPES.contains(&kind) {
        return Err(format!("type {kind:?} is not supported"));
    }
    let object = v
        .get(kind)
        .filter(|o| o.is_object() || (kind == "contacts" && o.is_array()));
    let Some(object) = object else {
        return Err(format!("a {kind} message needs a {kind} parameter"));
    };
    match kind {
        "text" => {
            let body = non_empty_str(object, "body").map_err(|e| format!("text.{e}"))?;
            if body.chars().count() > MAX_TEXT_CHARS {
                return Err(format!("text.body is longer than {MAX_TEXT_CHARS} characters"));
            }
            if object.get("preview_url").is_some_and(|p| !p.is_boolean()) {
                return Err("text.preview_url must be a boolean".into());
            }
        }
        "image" | "audio" | "video" | "document" | "sticker" => {
            let has = |f: &str| object.get(f).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
            if has("id") == has("link") {
                return Err(format!("{kind} needs exactly one of id or link"));
            }
        }
        "template" => {
            non_empty_str(object, "name").map_err(|e| format!("template.{e}"))?;
            let language = object.get("language").ok_or("template.language is required")?;
            non_empty_str(language, "code").map_err(|e| format!("template.language.{e}"))?;
            if object.get("components").is_some_and(|c| !c.is_array()) {
                return Err("template.components must be an array".into());
            }
        }
        "interactive" => {
            non_empty_str(object, "type").map_err(|e| format!("interactive.{e}"))?;
            if !object.get("action").is_some_and(Value::is_object) {
                return Err("interactive.action must be an object".into());
            }
        }
        "reaction" => {
            non_empty_str(object, "message_id").map_err(|e| format!("reaction.{e}"))?;
            if !object.get("emoji").is_some_and(Value::is_string) {
                return Err("reaction.emoji must be a string (empty removes the reaction)".into());
            }
        }
        "location" => {
            let number = |f: &str| object.get(f).is_some_and(Value::is_number);
            if !(number("latitude") && number("longitude")) {
                return Err("location needs numeric latitude and longitude".into());
            }
        }
        "contacts" => {
            let count = object.as_array().map_or(0, Vec::len);
            if count == 0 {
                return Err("contacts must be a non-empty array".into());
            }
        }
        _ => {}
    }
    if let Some(context) = v.get("context") {
        non_empty_str(context, "message_id").map_err(|e| format!("context.{e}"))?;
    }
    Ok(Request::Message { to: to.to_owned() })
}

fn invalid(details: &str) -> Response {
    graph_error(StatusCode::BAD_REQUEST, 100, "Invalid parameter", Some(details))
}

fn injected_message(code: i64) -> &'static str {
    match code {
        130429 => "Rate limit hit",
        131056 => "(Business Account, Consumer Account) pair rate limit hit",
        131047 => "Re-engagement message",
        131026 => "Message undeliverable",
        131000 => "Something went wrong",
        190 => "Error validating access token: Session has expired",
        _ => "Injected failure",
    }
}

/// Graph's error envelope. `message` gets Meta's `(#code)` prefix.
fn graph_error(status: StatusCode, code: i64, message: &str, details: Option<&str>) -> Response {
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let mut error = json!({
        "message": format!("(#{code}) {message}"),
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": format!("A{}", &trace[..22]),
    });
    if let Some(details) = details {
        error["error_data"] = json!({ "messaging_product": "whatsapp", "details": details });
    }
    (status, Json(json!({ "error": error }))).into_response()
}

#[cfg(test)]
mod tests;
