//! Parsing Meta's `whatsapp_business_account` webhook envelope.
//!
//! Two levels of strictness, on purpose:
//! - the **envelope** (`object`, `entry[]`, `changes[]`, `value`, the arrays inside it) must have
//!   the documented shape, or the whole body is a [`ParseError`]: something that is not a
//!   WhatsApp webhook should be refused, not half-read;
//! - each **item** (one message, one status) is read on its own. An item we cannot use becomes a
//!   [`WaItem::Skipped`] carrying its raw JSON and the reason, so a single odd element never makes
//!   Meta retry (and re-deliver) the whole batch for a week, and nothing is dropped silently: the
//!   caller records skips.
//!
//! Message types we do not model map to [`MessageKind::Unsupported`] with the raw object kept:
//! nothing a customer sent is lost. Every array is iterated, since Meta batches.

use atende_domain::error::ErrorCode;
use atende_domain::message::{DeliveryStatus, MessageKind};
use atende_domain::phone::canonical_wa_id;
use serde::Deserialize;
use serde_json::Value;

/// The only `object` a WhatsApp webhook carries.
pub const WHATSAPP_OBJECT: &str = "whatsapp_business_account";

/// The `field` of changes carrying messages, statuses and errors; other fields are ignored.
pub const MESSAGES_FIELD: &str = "messages";

/// The body is not a WhatsApp webhook of the documented shape.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("webhook body is not json of the expected shape")]
    Json(#[from] serde_json::Error),
    #[error("webhook object is not whatsapp_business_account")]
    WrongObject { object: String },
    #[error("messages change without metadata.phone_number_id")]
    MissingPhoneNumberId,
}

impl ParseError {
    /// Every parse failure is the sender's fault: `MALFORMED_PAYLOAD`.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::MalformedPayload
    }
}

/// One thing a webhook told us, in body order.
// Messages are the common item, so boxing them would add an allocation per item to save
// space only on the rare ones.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum WaItem {
    Message(WaMessage),
    Status(WaStatus),
    /// `value.errors[]`: a problem Meta reports about the number or the app, not tied to a
    /// message we sent.
    ChannelError {
        phone_number_id: String,
        error: WaError,
    },
    /// An element we could not use; kept whole so the caller can record it.
    Skipped(WaSkipped),
    /// A template of the business account changed status (`message_template_status_update`).
    TemplateStatus(TemplateStatus),
    /// A change for a field we do not handle (`account_update`, `phone_number_quality_update`…).
    Ignored {
        field: String,
    },
}

/// An inbound customer message.
#[derive(Clone, Debug, PartialEq)]
pub struct WaMessage {
    /// Our channel account: routing key for tenant and channel.
    pub phone_number_id: String,
    /// `wamid.…`: the dedupe key, since Meta re-delivers.
    pub provider_message_id: String,
    /// The sender's phone number as Meta wrote it (not canonicalised); absent for users who
    /// adopted a username.
    pub from_wa_id: Option<String>,
    /// Business-scoped user id (`BR.1502…`), the preferred contact key when present.
    pub from_user_id: Option<String>,
    pub profile_name: Option<String>,
    pub username: Option<String>,
    /// Unix seconds; Meta sends a string.
    pub timestamp_secs: i64,
    pub kind: MessageKind,
    /// The human-readable part: text body, media caption, button or list title, reaction emoji,
    /// system notice.
    pub text: Option<String>,
    pub media: Option<WaMedia>,
    pub context: Option<WaContext>,
    /// What a reaction points at; `emoji` is `None` when the reaction was removed.
    pub reaction: Option<WaReaction>,
    /// The machine id of a tapped reply: `interactive.button_reply.id`, `list_reply.id`, or a
    /// template quick reply's `button.payload`. Bots branch on this, never on the title.
    pub reply_id: Option<String>,
    /// The message object verbatim, for storage and for the types we do not model.
    pub raw: Value,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaMedia {
    /// Media id for `GET /{version}/{media-id}`; the download URL is fetched later.
    pub id: String,
    pub mime_type: Option<String>,
    pub sha256: Option<String>,
    pub caption: Option<String>,
    pub filename: Option<String>,
    /// A recorded voice note (push-to-talk), as opposed to an audio file.
    pub voice: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaContext {
    /// The message replied to or whose button was tapped.
    pub message_id: Option<String>,
    pub from: Option<String>,
    /// `forwarded` or `frequently_forwarded`.
    pub forwarded: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaReaction {
    pub message_id: String,
    pub emoji: Option<String>,
}

/// A delivery status for a message we sent.
#[derive(Clone, Debug, PartialEq)]
pub struct WaStatus {
    pub phone_number_id: String,
    /// The wamid returned when we sent.
    pub provider_message_id: String,
    pub status: DeliveryStatus,
    pub timestamp_secs: i64,
    pub recipient_id: Option<String>,
    /// Business-scoped id of the recipient, when Meta includes it.
    pub recipient_user_id: Option<String>,
    pub errors: Vec<WaError>,
}

/// Meta's error object as it appears in webhooks (`statuses[].errors[]`, `messages[].errors[]`,
/// `value.errors[]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaError {
    pub code: Option<i64>,
    pub title: Option<String>,
    pub message: Option<String>,
    /// `error_data.details`: the only part Meta says to build logic on, with `code`.
    pub details: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WaSkipped {
    pub phone_number_id: String,
    pub reason: SkipReason,
    pub raw: Value,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// A status string we do not know (Meta adds some from time to time).
    UnknownStatus {
        provider_message_id: String,
        status: String,
    },
    /// A message without an id or timestamp, or with fields of the wrong type.
    MalformedMessage {
        error: String,
    },
    MalformedStatus {
        error: String,
    },
    /// Neither a phone number nor a business-scoped id identifies the sender.
    NoSender {
        provider_message_id: String,
    },
}

/// The field of template status changes.
pub const TEMPLATE_STATUS_FIELD: &str = "message_template_status_update";

/// A template's new status: what Meta's event says, REINSTATED meaning approved again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateStatus {
    pub business_account_id: String,
    pub template_id: String,
    pub name: String,
    pub language: String,
    pub status: String,
    pub reason: Option<String>,
}

fn template_status(account: &str, value: serde_json::Value) -> WaItem {
    let Ok(v) = serde_json::from_value::<wire::TemplateStatusValue>(value) else {
        return WaItem::Ignored {
            field: TEMPLATE_STATUS_FIELD.into(),
        };
    };
    let template_id = match v.message_template_id {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s,
        _ => String::new(),
    };
    let status = match v.event.as_str() {
        "REINSTATED" => "APPROVED".to_string(),
        other => other.to_ascii_uppercase(),
    };
    if status.is_empty() || (template_id.is_empty() && v.message_template_name.is_empty()) {
        return WaItem::Ignored {
            field: TEMPLATE_STATUS_FIELD.into(),
        };
    }
    WaItem::TemplateStatus(TemplateStatus {
        business_account_id: account.to_string(),
        template_id,
        name: v.message_template_name,
        language: v.message_template_language,
        status,
        reason: v.reason.filter(|r| !r.is_empty() && r != "NONE"),
    })
}

/// Parses a webhook body. Call only after [`super::signature::verify_signature`] passed.
pub fn parse_webhook(raw: &[u8]) -> Result<Vec<WaItem>, ParseError> {
    let envelope: wire::Envelope = serde_json::from_slice(raw)?;
    if envelope.object != WHATSAPP_OBJECT {
        return Err(ParseError::WrongObject {
            object: envelope.object,
        });
    }
    let mut items = Vec::new();
    for entry in envelope.entry {
        for change in entry.changes {
            if change.field == TEMPLATE_STATUS_FIELD {
                items.push(template_status(&entry.id, change.value));
                continue;
            }
            if change.field != MESSAGES_FIELD {
                items.push(WaItem::Ignored { field: change.field });
                continue;
            }
            let value: wire::Value = serde_json::from_value(change.value)?;
            let phone_number_id = value
                .metadata
                .and_then(|m| m.phone_number_id)
                .filter(|id| !id.is_empty())
                .ok_or(ParseError::MissingPhoneNumberId)?;
            for raw_message in value.messages {
                items.push(message_item(&phone_number_id, &value.contacts, raw_message));
            }
            for raw_status in value.statuses {
                items.push(status_item(&phone_number_id, raw_status));
            }
            for error in value.errors {
                items.push(WaItem::ChannelError {
                    phone_number_id: phone_number_id.clone(),
                    error: error.into(),
                });
            }
        }
    }
    Ok(items)
}

fn skipped(phone_number_id: &str, reason: SkipReason, raw: Value) -> WaItem {
    WaItem::Skipped(WaSkipped {
        phone_number_id: phone_number_id.to_owned(),
        reason,
        raw,
    })
}

fn message_item(phone_number_id: &str, contacts: &[wire::Contact], raw: Value) -> WaItem {
    let m: wire::Message = match wire::Message::deserialize(&raw) {
        Ok(m) => m,
        Err(e) => {
            return skipped(
                phone_number_id,
                SkipReason::MalformedMessage { error: e.to_string() },
                raw,
            )
        }
    };
    let Some(timestamp_secs) = m.timestamp.as_ref().and_then(wire::Timestamp::secs) else {
        let error = "missing or non-numeric timestamp".to_owned();
        return skipped(phone_number_id, SkipReason::MalformedMessage { error }, raw);
    };
    let contact = find_contact(contacts, m.from.as_deref(), m.from_user_id.as_deref());
    let from_wa_id = non_empty(m.from.clone()).or_else(|| contact.and_then(|c| non_empty(c.wa_id.clone())));
    let from_user_id = non_empty(m.from_user_id.clone()).or_else(|| contact.and_then(|c| non_empty(c.user_id.clone())));
    if from_wa_id.is_none() && from_user_id.is_none() {
        return skipped(
            phone_number_id,
            SkipReason::NoSender {
                provider_message_id: m.id,
            },
            raw,
        );
    }
    let profile = contact.and_then(|c| c.profile.as_ref());

    let kind = m
        .kind
        .as_deref()
        .map_or(MessageKind::Unsupported, MessageKind::parse_lossy);
    let media = media_of(&m, kind);
    let reaction = m.reaction.as_ref().and_then(|r| {
        Some(WaReaction {
            message_id: r.message_id.clone()?,
            emoji: non_empty(r.emoji.clone()),
        })
    });
    let (text, reply_id) = text_and_reply_id(&m, kind, media.as_ref());
    let context = m.context.as_ref().and_then(|c| {
        let forwarded = c.forwarded || c.frequently_forwarded;
        (c.id.is_some() || c.from.is_some() || forwarded).then(|| WaContext {
            message_id: c.id.clone(),
            from: c.from.clone(),
            forwarded,
        })
    });

    WaItem::Message(WaMessage {
        phone_number_id: phone_number_id.to_owned(),
        provider_message_id: m.id,
        from_wa_id,
        from_user_id,
        profile_name: profile.and_then(|p| non_empty(p.name.clone())),
        username: profile.and_then(|p| non_empty(p.username.clone())),
        timestamp_secs,
        kind,
        text,
        media,
        context,
        reaction,
        reply_id,
        raw,
    })
}

/// The contact entry describing this message's sender. Phone numbers are compared in canonical
/// form because Meta has written Brazilian numbers both with and without the ninth digit.
fn find_contact<'a>(
    contacts: &'a [wire::Contact],
    from: Option<&str>,
    from_user_id: Option<&str>,
) -> Option<&'a wire::Contact> {
    let by_user_id = from_user_id.and_then(|uid| contacts.iter().find(|c| c.user_id.as_deref() == Some(uid)));
    let by_wa_id = || {
        let from = canonical_wa_id(from?);
        contacts
            .iter()
            .find(|c| c.wa_id.as_deref().is_some_and(|w| canonical_wa_id(w) == from))
    };
    by_user_id.or_else(by_wa_id).or_else(|| {
        // A message that names nobody can only belong to the batch's single contact.
        (from.is_none() && from_user_id.is_none() && contacts.len() == 1).then(|| &contacts[0])
    })
}

fn media_of(m: &wire::Message, kind: MessageKind) -> Option<WaMedia> {
    let media = match kind {
        MessageKind::Image => m.image.as_ref(),
        MessageKind::Video => m.video.as_ref(),
        MessageKind::Audio => m.audio.as_ref(),
        MessageKind::Document => m.document.as_ref(),
        MessageKind::Sticker => m.sticker.as_ref(),
        _ => None,
    }?;
    Some(WaMedia {
        id: non_empty(media.id.clone())?,
        mime_type: media.mime_type.clone(),
        sha256: media.sha256.clone(),
        caption: non_empty(media.caption.clone()),
        filename: non_empty(media.filename.clone()),
        voice: media.voice,
    })
}

fn text_and_reply_id(
    m: &wire::Message,
    kind: MessageKind,
    media: Option<&WaMedia>,
) -> (Option<String>, Option<String>) {
    match kind {
        MessageKind::Text => (m.text.as_ref().and_then(|t| non_empty(t.body.clone())), None),
        MessageKind::Image | MessageKind::Video | MessageKind::Document => {
            (media.and_then(|x| x.caption.clone()), None)
        }
        MessageKind::Button => match &m.button {
            Some(b) => (non_empty(b.text.clone()), non_empty(b.payload.clone())),
            None => (None, None),
        },
        MessageKind::Interactive => {
            let Some(i) = &m.interactive else {
                return (None, None);
            };
            match i.button_reply.as_ref().or(i.list_reply.as_ref()) {
                Some(reply) => (non_empty(reply.title.clone()), non_empty(reply.id.clone())),
                None => (i.nfm_reply.as_ref().and_then(|n| non_empty(n.body.clone())), None),
            }
        }
        MessageKind::Reaction => (m.reaction.as_ref().and_then(|r| non_empty(r.emoji.clone())), None),
        MessageKind::System => (m.system.as_ref().and_then(|s| non_empty(s.body.clone())), None),
        _ => (None, None),
    }
}

fn status_item(phone_number_id: &str, raw: Value) -> WaItem {
    let s: wire::Status = match wire::Status::deserialize(&raw) {
        Ok(s) => s,
        Err(e) => {
            return skipped(
                phone_number_id,
                SkipReason::MalformedStatus { error: e.to_string() },
                raw,
            )
        }
    };
    let Some(timestamp_secs) = s.timestamp.as_ref().and_then(wire::Timestamp::secs) else {
        let error = "missing or non-numeric timestamp".to_owned();
        return skipped(phone_number_id, SkipReason::MalformedStatus { error }, raw);
    };
    let Some(status) = DeliveryStatus::parse(&s.status) else {
        let reason = SkipReason::UnknownStatus {
            provider_message_id: s.id,
            status: s.status,
        };
        return skipped(phone_number_id, reason, raw);
    };
    WaItem::Status(WaStatus {
        phone_number_id: phone_number_id.to_owned(),
        provider_message_id: s.id,
        status,
        timestamp_secs,
        recipient_id: non_empty(s.recipient_id),
        recipient_user_id: non_empty(s.recipient_user_id),
        errors: s.errors.into_iter().map(WaError::from).collect(),
    })
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

impl From<wire::Error> for WaError {
    fn from(e: wire::Error) -> Self {
        WaError {
            code: e.code,
            title: e.title,
            message: e.message,
            details: e.error_data.and_then(|d| d.details),
        }
    }
}

/// Meta's shapes. `Option` fields may be absent (serde's default for `Option`); arrays and
/// flags carry `#[serde(default)]`. Unknown fields are ignored, so Meta adding one breaks nothing.
mod wire {
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct Envelope {
        pub object: String,
        #[serde(default)]
        pub entry: Vec<Entry>,
    }

    #[derive(Deserialize)]
    pub struct Entry {
        /// The WhatsApp Business Account the changes are about.
        #[serde(default)]
        pub id: String,
        #[serde(default)]
        pub changes: Vec<Change>,
    }

    /// `message_template_status_update`'s value; the template id comes as a number.
    #[derive(Deserialize)]
    pub struct TemplateStatusValue {
        #[serde(default)]
        pub event: String,
        #[serde(default)]
        pub message_template_id: serde_json::Value,
        #[serde(default)]
        pub message_template_name: String,
        #[serde(default)]
        pub message_template_language: String,
        #[serde(default)]
        pub reason: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct Change {
        pub field: String,
        /// Read lazily: only `messages` changes are parsed further, so an unrelated field with an
        /// unexpected shape cannot fail the batch.
        #[serde(default)]
        pub value: serde_json::Value,
    }

    #[derive(Deserialize)]
    pub struct Value {
        pub metadata: Option<Metadata>,
        #[serde(default)]
        pub contacts: Vec<Contact>,
        /// Kept as JSON so one odd message is skipped, not the batch.
        #[serde(default)]
        pub messages: Vec<serde_json::Value>,
        #[serde(default)]
        pub statuses: Vec<serde_json::Value>,
        #[serde(default)]
        pub errors: Vec<Error>,
    }

    #[derive(Deserialize)]
    pub struct Metadata {
        pub phone_number_id: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct Contact {
        pub wa_id: Option<String>,
        pub user_id: Option<String>,
        pub profile: Option<Profile>,
    }

    #[derive(Deserialize)]
    pub struct Profile {
        pub name: Option<String>,
        pub username: Option<String>,
    }

    /// Meta documents a string of Unix seconds; a number is accepted too, since a lenient
    /// reader costs nothing here.
    #[derive(Deserialize)]
    #[serde(untagged)]
    pub enum Timestamp {
        Text(String),
        Number(i64),
    }

    impl Timestamp {
        pub fn secs(&self) -> Option<i64> {
            match self {
                Timestamp::Text(s) => s.trim().parse().ok(),
                Timestamp::Number(n) => Some(*n),
            }
        }
    }

    #[derive(Deserialize)]
    pub struct Message {
        pub from: Option<String>,
        pub from_user_id: Option<String>,
        pub id: String,
        pub timestamp: Option<Timestamp>,
        #[serde(rename = "type", default)]
        pub kind: Option<String>,
        pub text: Option<Text>,
        pub image: Option<Media>,
        pub video: Option<Media>,
        pub audio: Option<Media>,
        pub document: Option<Media>,
        pub sticker: Option<Media>,
        pub button: Option<Button>,
        pub interactive: Option<Interactive>,
        pub reaction: Option<Reaction>,
        pub system: Option<System>,
        pub context: Option<Context>,
    }

    #[derive(Deserialize)]
    pub struct Text {
        pub body: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct Media {
        pub id: Option<String>,
        pub mime_type: Option<String>,
        pub sha256: Option<String>,
        pub caption: Option<String>,
        pub filename: Option<String>,
        #[serde(default)]
        pub voice: bool,
    }

    #[derive(Deserialize)]
    pub struct Button {
        pub payload: Option<String>,
        pub text: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct Interactive {
        pub button_reply: Option<Reply>,
        pub list_reply: Option<Reply>,
        pub nfm_reply: Option<NfmReply>,
    }

    #[derive(Deserialize)]
    pub struct Reply {
        pub id: Option<String>,
        pub title: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct NfmReply {
        pub body: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct Reaction {
        pub message_id: Option<String>,
        pub emoji: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct System {
        pub body: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct Context {
        pub from: Option<String>,
        pub id: Option<String>,
        #[serde(default)]
        pub forwarded: bool,
        #[serde(default)]
        pub frequently_forwarded: bool,
    }

    #[derive(Deserialize)]
    pub struct Status {
        pub id: String,
        pub status: String,
        pub timestamp: Option<Timestamp>,
        pub recipient_id: Option<String>,
        pub recipient_user_id: Option<String>,
        #[serde(default)]
        pub errors: Vec<Error>,
    }

    #[derive(Deserialize)]
    pub struct Error {
        pub code: Option<i64>,
        pub title: Option<String>,
        pub message: Option<String>,
        pub error_data: Option<ErrorData>,
    }

    #[derive(Deserialize)]
    pub struct ErrorData {
        pub details: Option<String>,
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
