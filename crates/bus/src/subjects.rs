//! Every NATS subject and stream name is built here, nowhere else.
//!
//! Contract: `atende.inbound.<tenant>.<channel_kind>`, `atende.outbound.<tenant>.<channel_kind>`,
//! `atende.route.<tenant>.<service>`, `atende.events.<tenant>.<event>`. A non-empty namespace
//! prefix (tests) is prepended as its own token: `<prefix>.atende.…`, streams `<PREFIX>_ATENDE_…`.

use atende_domain::channel::ChannelKind;
use uuid::Uuid;

use crate::StreamKind;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
        }
    }

    fn base(&self, kind: StreamKind) -> String {
        if self.prefix.is_empty() {
            format!("atende.{}", kind.token())
        } else {
            format!("{}.atende.{}", self.prefix, kind.token())
        }
    }

    pub fn inbound(&self, tenant: Uuid, kind: ChannelKind) -> String {
        format!("{}.{tenant}.{}", self.base(StreamKind::Inbound), kind.as_str())
    }

    pub fn outbound(&self, tenant: Uuid, kind: ChannelKind) -> String {
        format!("{}.{tenant}.{}", self.base(StreamKind::Outbound), kind.as_str())
    }

    pub fn route(&self, tenant: Uuid, service: Uuid) -> String {
        format!("{}.{tenant}.{service}", self.base(StreamKind::Route))
    }

    /// `event` is a dotted name such as `conversation.assigned`.
    pub fn event(&self, tenant: Uuid, event: &str) -> String {
        format!("{}.{tenant}.{event}", self.base(StreamKind::Events))
    }

    /// Core NATS (not a stream): "the agent's feed grew to N", so every gateway replica
    /// holding a socket of the agent reads the new frames at once. Losing one is harmless:
    /// the frames are in Postgres and replicas also check the heads periodically.
    /// A job of `kind` for `tenant` (`<base>.jobs.<tenant>.<kind>`).
    pub fn job(&self, tenant: Uuid, kind: &str) -> String {
        format!("{}.{tenant}.{kind}", self.base(StreamKind::Jobs))
    }

    /// Every tenant's jobs of `kind`, for a consumer's filter.
    pub fn jobs_of(&self, kind: &str) -> String {
        format!("{}.*.{kind}", self.base(StreamKind::Jobs))
    }

    pub fn feed_poke(&self, tenant: Uuid, agent: Uuid) -> String {
        format!("{}.{tenant}.{agent}", self.feed_base())
    }

    /// Every feed poke of this namespace.
    pub fn feed_pokes(&self) -> String {
        format!("{}.>", self.feed_base())
    }

    fn feed_base(&self) -> String {
        if self.prefix.is_empty() {
            "atende.feed".to_string()
        } else {
            format!("{}.atende.feed", self.prefix)
        }
    }

    /// The tenant a subject of this namespace names (`[prefix.]atende.<kind>.<tenant>.…`).
    pub fn tenant_of(&self, subject: &str) -> Option<Uuid> {
        let rest = if self.prefix.is_empty() {
            subject
        } else {
            subject.strip_prefix(&self.prefix)?.strip_prefix('.')?
        };
        let mut tokens = rest.split('.');
        (tokens.next()? == "atende").then_some(())?;
        tokens.next()?;
        Uuid::parse_str(tokens.next()?).ok()
    }

    /// All subjects of a stream (`….>`).
    pub fn stream_filter(&self, kind: StreamKind) -> String {
        format!("{}.>", self.base(kind))
    }

    pub fn stream_name(&self, kind: StreamKind) -> String {
        let base = format!("ATENDE_{}", kind.token().to_ascii_uppercase());
        if self.prefix.is_empty() {
            base
        } else {
            format!("{}_{base}", self.prefix.to_ascii_uppercase().replace('-', "_"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_contract_without_a_prefix() {
        let s = Subjects::new("");
        let t = Uuid::nil();
        assert_eq!(
            s.inbound(t, ChannelKind::Whatsapp),
            format!("atende.inbound.{t}.whatsapp")
        );
        assert_eq!(
            s.event(t, "conversation.assigned"),
            format!("atende.events.{t}.conversation.assigned")
        );
        assert_eq!(s.stream_name(StreamKind::Route), "ATENDE_ROUTE");
        assert_eq!(s.stream_filter(StreamKind::Outbound), "atende.outbound.>");
        assert_eq!(s.feed_poke(t, t), format!("atende.feed.{t}.{t}"));
        assert_eq!(s.tenant_of(&s.feed_poke(t, Uuid::max())), Some(t));
    }

    #[test]
    fn a_prefix_isolates_subjects_and_streams() {
        let s = Subjects::new("t42");
        assert!(s
            .inbound(Uuid::nil(), ChannelKind::Whatsapp)
            .starts_with("t42.atende.inbound."));
        assert_eq!(s.stream_name(StreamKind::Inbound), "T42_ATENDE_INBOUND");
    }

    #[test]
    fn the_tenant_of_a_subject_is_read_back() {
        let t = Uuid::now_v7();
        for s in [Subjects::new(""), Subjects::new("t42")] {
            assert_eq!(s.tenant_of(&s.route(t, Uuid::nil())), Some(t));
            assert_eq!(s.tenant_of(&s.event(t, "message.created")), Some(t));
            assert_eq!(s.tenant_of("other.subject"), None);
        }
    }
}
