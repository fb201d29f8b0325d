//! Agent presence, derived from the agent's connection and channel logins rather than stored
//! as a free-form flag, so every service computes the same status from the same facts.
//!
//! - **Available**: logged into at least one channel that is not paused;
//! - **Paused**: logged into channels, all of them paused;
//! - **Inactive**: the connection to the platform dropped while logged into channels;
//! - **Offline**: logged into the platform but into no channel.
//!
//! Logging out of the platform logs out of every channel and is refused while the agent has
//! conversations in progress ([`check_logout`]).

use serde::{Deserialize, Serialize};

use crate::channel::ChannelKind;
use crate::error::ErrorCode;

/// What routing sees of an agent. Only `Available` agents receive conversations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Available,
    Paused,
    Inactive,
    Offline,
}

impl AgentStatus {
    pub const ALL: [AgentStatus; 4] = [
        AgentStatus::Available,
        AgentStatus::Paused,
        AgentStatus::Inactive,
        AgentStatus::Offline,
    ];

    /// The stable lowercase name used in the database, APIs and the decision log.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Available => "available",
            AgentStatus::Paused => "paused",
            AgentStatus::Inactive => "inactive",
            AgentStatus::Offline => "offline",
        }
    }

    pub fn parse(s: &str) -> Option<AgentStatus> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One channel kind the agent is logged into, and whether the agent paused it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChannelLogin {
    pub kind: ChannelKind,
    pub paused: bool,
}

/// The status an agent has given its connection and channel logins.
///
/// A dropped connection wins over the channel logins: an agent whose socket died cannot
/// answer, even if his logins are still recorded (they are kept so a reconnect restores
/// them). An agent logged into no channel is Offline whether or not his socket is open:
/// there is nothing a dropped connection takes away from him.
pub fn derive_status(connected: bool, channels: &[ChannelLogin]) -> AgentStatus {
    if channels.is_empty() {
        AgentStatus::Offline
    } else if !connected {
        AgentStatus::Inactive
    } else if channels.iter().any(|c| !c.paused) {
        AgentStatus::Available
    } else {
        AgentStatus::Paused
    }
}

/// The channel kinds in which the agent can receive conversations (logged in and not paused).
pub fn receiving_kinds(channels: &[ChannelLogin]) -> Vec<ChannelKind> {
    let mut kinds: Vec<ChannelKind> = channels.iter().filter(|c| !c.paused).map(|c| c.kind).collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

/// Whether the agent may log out of the platform now.
///
/// "Você não pode fazer logout enquanto houver atendimentos em andamento. Finalize-os para
/// sair da aplicação": refused while any conversation is still open for the agent.
pub fn check_logout(open_conversations: u32) -> Result<(), ErrorCode> {
    if open_conversations > 0 {
        Err(ErrorCode::LogoutWithOpenConversations)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(kind: ChannelKind, paused: bool) -> ChannelLogin {
        ChannelLogin { kind, paused }
    }

    #[test]
    fn an_agent_logged_into_one_unpaused_channel_is_available() {
        // Arrange
        let channels = [login(ChannelKind::Whatsapp, true), login(ChannelKind::Webchat, false)];
        // Act
        let status = derive_status(true, &channels);
        // Assert
        assert_eq!(status, AgentStatus::Available);
    }

    #[test]
    fn an_agent_with_every_channel_paused_is_paused() {
        let channels = [login(ChannelKind::Whatsapp, true), login(ChannelKind::Webchat, true)];
        assert_eq!(derive_status(true, &channels), AgentStatus::Paused);
    }

    #[test]
    fn an_agent_whose_connection_dropped_is_inactive_while_logged_into_channels() {
        let channels = [login(ChannelKind::Whatsapp, false)];
        assert_eq!(derive_status(false, &channels), AgentStatus::Inactive);
        assert_eq!(
            derive_status(false, &[]),
            AgentStatus::Offline,
            "no channel: nothing to lose"
        );
    }

    #[test]
    fn an_agent_connected_but_in_no_channel_is_offline() {
        assert_eq!(derive_status(true, &[]), AgentStatus::Offline);
    }

    #[test]
    fn logout_is_refused_while_conversations_are_open() {
        assert_eq!(check_logout(2), Err(ErrorCode::LogoutWithOpenConversations));
        assert_eq!(check_logout(0), Ok(()));
    }

    #[test]
    fn status_names_round_trip_and_match_serde() {
        for s in AgentStatus::ALL {
            assert_eq!(AgentStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.as_str()));
        }
    }

    #[test]
    fn receiving_kinds_lists_unpaused_logins_once() {
        let channels = [
            login(ChannelKind::Webchat, false),
            login(ChannelKind::Whatsapp, true),
            login(ChannelKind::Webchat, false),
        ];
        assert_eq!(receiving_kinds(&channels), vec![ChannelKind::Webchat]);
    }
}
