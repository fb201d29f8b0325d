//! Typed identifiers. Each wraps a UUID so a `ServiceId` can never be passed where an
//! `AgentId` is expected; all of them print and parse as the plain UUID.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered id (UUID v7), so ids sort roughly by creation.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

id_type!(
    /// A customer company using the platform; every row, subject and key carries one.
    TenantId
);
id_type!(
    /// One connected account of a provider (a WhatsApp number, a page, a web-chat site).
    ChannelId
);
id_type!(
    /// A service queue (serviço / fila / time).
    ServiceId
);
id_type!(
    /// An agent (atendente / corretor) or supervisor.
    AgentId
);
id_type!(
    /// A customer.
    ContactId
);
id_type!(
    /// A conversation (atendimento).
    ConversationId
);
id_type!(
    /// A stored message, inbound or outbound.
    MessageId
);
