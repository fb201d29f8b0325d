//! Generated `atende.v1` protobuf messages and gRPC services, plus the encoded descriptor
//! set that every server registers with reflection.

#[allow(clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("atende.v1");
}

/// The encoded `FileDescriptorSet` of `atende.v1`, for tonic-reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/atende_descriptor.bin"));

impl v1::domain_event::Kind {
    /// The conversation an event is about: the key that orders a conversation's events.
    pub fn conversation_id(&self) -> &str {
        use v1::domain_event::Kind;
        fn of(c: &Option<v1::Conversation>) -> &str {
            c.as_ref().map(|c| c.id.as_str()).unwrap_or_default()
        }
        match self {
            Kind::ConversationQueued(e) => of(&e.conversation),
            Kind::ConversationAssigned(e) => of(&e.conversation),
            Kind::ConversationOffered(e) => of(&e.conversation),
            Kind::ConversationClosed(e) => of(&e.conversation),
            Kind::ConversationTransferred(e) => of(&e.conversation),
            Kind::MissedLeadNotice(e) => of(&e.conversation),
            Kind::OfferWithdrawn(e) => &e.conversation_id,
            Kind::MessageCreated(e) => e
                .message
                .as_ref()
                .map(|m| m.conversation_id.as_str())
                .unwrap_or_default(),
            Kind::MessageStatusChanged(e) => &e.conversation_id,
            Kind::WindowBandChanged(e) => &e.conversation_id,
        }
    }
}
