//! Calls to the gateway's HTTP API and the checks every test makes of its answers.

use reqwest::Method;
use serde_json::Value;

use crate::Platform;

/// A request to the gateway; the status and the body (JSON, or the text as a JSON string,
/// or null when empty).
pub async fn call(p: &Platform, method: Method, path: &str, auth: Auth<'_>, body: Option<Value>) -> (u16, Value) {
    let mut req = p.http.request(method, format!("{}{path}", p.gateway));
    match auth {
        Auth::None => {}
        Auth::Bearer(token) => req = req.bearer_auth(token),
        Auth::Header(value) => req = req.header("authorization", value),
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("gateway request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("gateway body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

#[derive(Clone, Copy)]
pub enum Auth<'a> {
    None,
    Bearer(&'a str),
    /// The raw `Authorization` header.
    Header(&'a str),
}

/// Asserts the platform's error contract: `status`, `code`, and exactly the four fields.
#[track_caller]
pub fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    let (s, body) = got;
    assert_eq!(
        (*s, body["error"]["code"].as_str()),
        (status, Some(code)),
        "body: {body}"
    );
    let err = body["error"].as_object().expect("error object");
    let mut keys: Vec<&str> = err.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["code", "detail", "message", "message_pt_br"], "body: {body}");
    assert!(!err["message"].as_str().unwrap().is_empty() && !err["message_pt_br"].as_str().unwrap().is_empty());
    assert_eq!(body.as_object().unwrap().len(), 1, "nothing but `error`: {body}");
}
