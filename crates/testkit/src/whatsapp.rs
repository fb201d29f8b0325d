//! Builders for WhatsApp webhook bodies, byte-compatible with what Meta sends.
//!
//! Byte-compatible matters because signatures are computed over bytes: Meta's bodies are
//! compact, keep a fixed key order, write non-ASCII as `\uXXXX` (emoji as surrogate pairs) and
//! escape `/` as `\/`. `serde_json` would write UTF-8 and sort keys, so a test built on it would
//! never catch code that re-serialises before verifying. These builders write JSON by hand, in
//! Meta's order, with Meta's escaping.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The WABA id the builders put in `entry[].id`.
pub const WABA_ID: &str = "102290129340398";
/// The business number the builders put in `metadata.display_phone_number`.
pub const DISPLAY_PHONE_NUMBER: &str = "15550783881";

/// `X-Hub-Signature-256` value for `body`: `sha256=<lowercase hex HMAC-SHA256>`.
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret).expect("hmac takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A text message from a phone-number contact.
pub fn text_message_webhook(
    phone_number_id: &str,
    wa_id: &str,
    name: &str,
    wamid: &str,
    body: &str,
    timestamp: i64,
) -> Vec<u8> {
    let contact = obj(vec![("profile", obj(vec![("name", s(name))])), ("wa_id", s(wa_id))]);
    let message = obj(vec![
        ("from", s(wa_id)),
        ("id", s(wamid)),
        ("timestamp", s(&timestamp.to_string())),
        ("text", obj(vec![("body", s(body))])),
        ("type", s("text")),
    ]);
    messages_envelope(phone_number_id, Some(contact), "messages", message)
}

/// A text message from a user who adopted a username: no `wa_id`/`from`, only the
/// business-scoped user id (`user_id` / `from_user_id`) and `profile.username`.
pub fn bsuid_text_message_webhook(
    phone_number_id: &str,
    user_id: &str,
    username: &str,
    name: &str,
    wamid: &str,
    body: &str,
    timestamp: i64,
) -> Vec<u8> {
    let contact = obj(vec![
        ("profile", obj(vec![("name", s(name)), ("username", s(username))])),
        ("user_id", s(user_id)),
    ]);
    let message = obj(vec![
        ("from_user_id", s(user_id)),
        ("id", s(wamid)),
        ("timestamp", s(&timestamp.to_string())),
        ("text", obj(vec![("body", s(body))])),
        ("type", s("text")),
    ]);
    messages_envelope(phone_number_id, Some(contact), "messages", message)
}

/// A message of a type nobody models (`type_name`), with a small payload under that key, to
/// prove unknown types are kept rather than dropped.
pub fn unknown_type_webhook(
    phone_number_id: &str,
    wa_id: &str,
    name: &str,
    wamid: &str,
    type_name: &str,
    timestamp: i64,
) -> Vec<u8> {
    let contact = obj(vec![("profile", obj(vec![("name", s(name))])), ("wa_id", s(wa_id))]);
    let message = obj(vec![
        ("from", s(wa_id)),
        ("id", s(wamid)),
        ("timestamp", s(&timestamp.to_string())),
        (type_name, obj(vec![("note", s("not modelled"))])),
        ("type", s(type_name)),
    ]);
    messages_envelope(phone_number_id, Some(contact), "messages", message)
}

/// A status (`sent`, `delivered`, `read`, `played`, or anything, to test unknown ones) for a
/// message we sent.
pub fn status_webhook(phone_number_id: &str, wamid: &str, status: &str, recipient_id: &str, timestamp: i64) -> Vec<u8> {
    let st = obj(vec![
        ("id", s(wamid)),
        ("status", s(status)),
        ("timestamp", s(&timestamp.to_string())),
        ("recipient_id", s(recipient_id)),
    ]);
    messages_envelope(phone_number_id, None, "statuses", st)
}

/// A `failed` status carrying one Graph error (e.g. 131047 when the 24 h window closed).
pub fn failed_status_webhook(
    phone_number_id: &str,
    wamid: &str,
    recipient_id: &str,
    timestamp: i64,
    code: i64,
    title: &str,
    details: &str,
) -> Vec<u8> {
    let error = obj(vec![
        ("code", J::Int(code)),
        ("title", s(title)),
        ("message", s(title)),
        ("error_data", obj(vec![("details", s(details))])),
        (
            "href",
            s("https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"),
        ),
    ]);
    let st = obj(vec![
        ("id", s(wamid)),
        ("status", s("failed")),
        ("timestamp", s(&timestamp.to_string())),
        ("recipient_id", s(recipient_id)),
        ("errors", J::Arr(vec![error])),
    ]);
    messages_envelope(phone_number_id, None, "statuses", st)
}

fn messages_envelope(phone_number_id: &str, contact: Option<J>, array: &'static str, item: J) -> Vec<u8> {
    let mut value = vec![
        ("messaging_product", s("whatsapp")),
        (
            "metadata",
            obj(vec![
                ("display_phone_number", s(DISPLAY_PHONE_NUMBER)),
                ("phone_number_id", s(phone_number_id)),
            ]),
        ),
    ];
    if let Some(c) = contact {
        value.push(("contacts", J::Arr(vec![c])));
    }
    value.push((array, J::Arr(vec![item])));
    let change = obj(vec![("value", obj(value)), ("field", s("messages"))]);
    let entry = obj(vec![("id", s(WABA_ID)), ("changes", J::Arr(vec![change]))]);
    let root = obj(vec![
        ("object", s("whatsapp_business_account")),
        ("entry", J::Arr(vec![entry])),
    ]);
    let mut out = String::new();
    root.write(&mut out);
    out.into_bytes()
}

/// A JSON tree whose objects keep insertion order.
enum J {
    Str(String),
    Int(i64),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

fn s(v: &str) -> J {
    J::Str(v.to_owned())
}

fn obj(fields: Vec<(&str, J)>) -> J {
    J::Obj(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

impl J {
    fn write(&self, out: &mut String) {
        match self {
            J::Str(v) => write_meta_string(v, out),
            J::Int(n) => out.push_str(&n.to_string()),
            J::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            J::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_meta_string(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// A JSON string the way Meta writes it: ASCII only, `\uXXXX` (UTF-16) for everything else,
/// `\/` for slashes.
fn write_meta_string(v: &str, out: &mut String) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_webhook_is_compact_ascii_in_metas_key_order() {
        let body = text_message_webhook(
            "106540352242922",
            "5511987654321",
            "João",
            "wamid.A",
            "oi 😮 a/b",
            1718900000,
        );
        let text = String::from_utf8(body.clone()).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":"#,
                r#"{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"#,
                r#""contacts":[{"profile":{"name":"Jo\u00e3o"},"wa_id":"5511987654321"}],"#,
                r#""messages":[{"from":"5511987654321","id":"wamid.A","timestamp":"1718900000","text":{"body":"oi \ud83d\ude2e a\/b"},"type":"text"}]},"#,
                r#""field":"messages"}]}]}"#
            )
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"],
            "oi 😮 a/b"
        );
    }

    #[test]
    fn every_builder_emits_valid_json() {
        for body in [
            bsuid_text_message_webhook("1", "BR.1", "u", "N", "wamid.B", "x\"y\\z\n", 1),
            unknown_type_webhook("1", "5511987654321", "N", "wamid.U", "hologram", 1),
            status_webhook("1", "wamid.S", "delivered", "5511987654321", 1),
            failed_status_webhook(
                "1",
                "wamid.S",
                "5511987654321",
                1,
                131047,
                "Re-engagement message",
                "late",
            ),
        ] {
            let v: serde_json::Value = serde_json::from_slice(&body).expect("valid json");
            assert_eq!(v["object"], "whatsapp_business_account");
            assert!(body.is_ascii());
        }
    }

    #[test]
    fn sign_matches_a_known_hmac_vector() {
        assert_eq!(
            sign(b"key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
