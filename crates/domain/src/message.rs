//! Message kinds and delivery statuses, provider-neutral.

use serde::{Deserialize, Serialize};

/// What a message carries. Anything a provider sends that we do not model yet is
/// `Unsupported` and is still stored: nothing a customer sent is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Text,
    Image,
    Video,
    Audio,
    Document,
    Sticker,
    Location,
    Contacts,
    Interactive,
    Button,
    Reaction,
    Order,
    System,
    Template,
    Unsupported,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        use MessageKind::*;
        match self {
            Text => "text",
            Image => "image",
            Video => "video",
            Audio => "audio",
            Document => "document",
            Sticker => "sticker",
            Location => "location",
            Contacts => "contacts",
            Interactive => "interactive",
            Button => "button",
            Reaction => "reaction",
            Order => "order",
            System => "system",
            Template => "template",
            Unsupported => "unsupported",
        }
    }

    /// Maps a provider's type string; unknown strings become `Unsupported`.
    pub fn parse_lossy(s: &str) -> MessageKind {
        use MessageKind::*;
        match s {
            "text" => Text,
            "image" => Image,
            "video" => Video,
            "audio" => Audio,
            "document" => Document,
            "sticker" => Sticker,
            "location" => Location,
            "contacts" => Contacts,
            "interactive" => Interactive,
            "button" => Button,
            "reaction" => Reaction,
            "order" => Order,
            "system" => System,
            "template" => Template,
            _ => Unsupported,
        }
    }
}

/// Direction of a message relative to the company.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

/// Delivery status of an outbound message. Providers deliver statuses out of order and may
/// skip `Delivered` when a message is read at once, so statuses only move forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Accepted,
    Sent,
    Delivered,
    Read,
    Played,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        use DeliveryStatus::*;
        match self {
            Pending => "pending",
            Accepted => "accepted",
            Sent => "sent",
            Delivered => "delivered",
            Read => "read",
            Played => "played",
            Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        use DeliveryStatus::*;
        Some(match s {
            "pending" => Pending,
            "accepted" => Accepted,
            "sent" => Sent,
            "delivered" => Delivered,
            "read" => Read,
            "played" => Played,
            "failed" => Failed,
            _ => return None,
        })
    }

    /// The status after applying `incoming` to `self`: forward moves only; `Failed` is
    /// terminal except that a later proof of delivery (delivered/read/played) supersedes it.
    pub fn advance(self, incoming: DeliveryStatus) -> DeliveryStatus {
        use DeliveryStatus::*;
        match (self, incoming) {
            (Failed, Delivered | Read | Played) => incoming,
            (Failed, _) => Failed,
            (_, Failed) if self < Delivered => Failed,
            (_, Failed) => self,
            _ => self.max(incoming),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DeliveryStatus::*;
    use super::*;

    #[test]
    fn statuses_never_move_backwards() {
        assert_eq!(Read.advance(Delivered), Read);
        assert_eq!(Sent.advance(Read), Read);
        assert_eq!(Accepted.advance(Sent), Sent);
    }

    #[test]
    fn failure_is_terminal_unless_delivery_is_proven() {
        assert_eq!(Sent.advance(Failed), Failed);
        assert_eq!(Failed.advance(Sent), Failed);
        assert_eq!(Failed.advance(Read), Read);
        assert_eq!(Read.advance(Failed), Read);
    }

    #[test]
    fn unknown_provider_types_are_unsupported_not_dropped() {
        assert_eq!(MessageKind::parse_lossy("ephemeral_hologram"), MessageKind::Unsupported);
        assert_eq!(MessageKind::parse_lossy("text"), MessageKind::Text);
    }
}
