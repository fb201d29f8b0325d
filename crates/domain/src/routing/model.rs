//! The values routing reads and returns. All of them serialize, because the router stores
//! snapshots and explanations as JSON in its decision log.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::business_hours::BusinessHours;
use crate::channel::ChannelKind;
use crate::clock::Timestamp;
use crate::error::ErrorCode;
use crate::ids::{AgentId, ConversationId, ServiceId};
use crate::presence::AgentStatus;

/// How a service hands out its conversations; a service has exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Conversations wait; an agent claims one; first claim wins.
    Manual,
    /// Sequential: new arrivals go to online agents in turn.
    RoundRobin,
    /// By capacity: to the agent with the most free capacity.
    LeastLoaded,
    /// Chat leads: offered in rotation; a timeout costs the agent his turn and moves the lead on.
    OrderedOffer,
    /// WhatsApp leads: offered in rotation; a timeout closes the lead as missed (CNA).
    OfferOrMiss,
}

impl Policy {
    pub const ALL: [Policy; 5] = [
        Policy::Manual,
        Policy::RoundRobin,
        Policy::LeastLoaded,
        Policy::OrderedOffer,
        Policy::OfferOrMiss,
    ];

    /// The stable name stored in service configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Manual => "manual",
            Policy::RoundRobin => "round_robin",
            Policy::LeastLoaded => "least_loaded",
            Policy::OrderedOffer => "ordered_offer",
            Policy::OfferOrMiss => "offer_or_miss",
        }
    }

    pub fn parse(s: &str) -> Option<Policy> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Whether conversations are offered (and must be accepted) rather than assigned.
    pub fn uses_offers(self) -> bool {
        matches!(self, Policy::OrderedOffer | Policy::OfferOrMiss)
    }

    /// Whether the rotation order (`AgentSnapshot::rotation`) matters.
    pub fn uses_rotation(self) -> bool {
        matches!(self, Policy::RoundRobin | Policy::OrderedOffer | Policy::OfferOrMiss)
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A service's routing configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceRules {
    pub policy: Policy,
    /// How long an offer stays pending before it expires (offer policies only).
    #[serde(with = "duration_ms", rename = "offer_timeout_ms")]
    pub offer_timeout: Duration,
    /// Channel kinds this service takes; empty means all. A conversation of another kind is
    /// held in the queue (for a supervisor) rather than routed.
    #[serde(default)]
    pub accepted_channels: Vec<ChannelKind>,
    /// The service's priority among the services an agent works in. Routing inside one
    /// service does not use it; it is here so the router can order services.
    #[serde(default)]
    pub priority: i32,
    /// Opening hours; `None` = always open. While closed, automatic policies hold arrivals
    /// (offer_or_miss turns them into missed leads) and distribute nothing.
    #[serde(default)]
    pub hours: Option<BusinessHours>,
}

impl ServiceRules {
    /// Rules with the given policy, a 60 s offer timeout, every channel, priority 0, no hours.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            offer_timeout: Duration::from_secs(60),
            accepted_channels: Vec::new(),
            priority: 0,
            hours: None,
        }
    }

    pub fn accepts(&self, kind: ChannelKind) -> bool {
        self.accepted_channels.is_empty() || self.accepted_channels.contains(&kind)
    }

    pub fn is_open(&self, now: Timestamp) -> bool {
        self.hours.as_ref().is_none_or(|h| h.is_open(now))
    }
}

/// One agent of the service as routing sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSnapshot {
    pub id: AgentId,
    pub status: AgentStatus,
    /// Channel kinds the agent is logged into and has not paused: he receives only these.
    pub channels: Vec<ChannelKind>,
    /// Simultaneous conversations allowed (assigned + pending offers).
    pub max_concurrent: u32,
    /// Conversations assigned to the agent and still open.
    pub assigned: u32,
    /// Offers pending for the agent; they count against capacity until answered.
    pub offered: u32,
    /// Position in the rotation; lower = earlier turn. `MoveToBack` sets it after the max.
    pub rotation: u64,
    /// When the agent last received work (assignment or offer) or came online; the longest
    /// idle (smallest value) wins least_loaded ties. `apply` sets it on Assign and Offer.
    pub idle_since: Timestamp,
}

impl AgentSnapshot {
    /// An Available agent with no load, logged into `channels`.
    pub fn available(id: AgentId, channels: &[ChannelKind], max_concurrent: u32, rotation: u64) -> Self {
        Self {
            id,
            status: AgentStatus::Available,
            channels: channels.to_vec(),
            max_concurrent,
            assigned: 0,
            offered: 0,
            rotation,
            idle_since: Timestamp::EPOCH,
        }
    }

    /// Assigned plus pending offers.
    pub fn load(&self) -> u32 {
        self.assigned + self.offered
    }

    /// Available and logged into `kind`: the agent is "online" for that kind.
    pub fn online_for(&self, kind: ChannelKind) -> bool {
        self.status == AgentStatus::Available && self.channels.contains(&kind)
    }
}

/// A conversation queued in the service and not offered to anyone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    pub conversation: ConversationId,
    pub channel: ChannelKind,
    pub queued_at: Timestamp,
    /// Set when it arrived while no agent was online for its channel kind or the service was
    /// closed. round_robin never distributes such a conversation automatically (a claim or a
    /// supervisor does); other policies only record it. `decide` sets it on arrival.
    #[serde(default)]
    pub arrived_with_nobody_online: bool,
    /// Higher goes first; equal priorities go in `queued_at` order.
    #[serde(default)]
    pub priority: i32,
}

/// An offer waiting for the agent's accept (or first reply).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOffer {
    pub conversation: ConversationId,
    pub agent: AgentId,
    pub channel: ChannelKind,
    pub offered_at: Timestamp,
    pub expires_at: Timestamp,
    /// Carried from the queue entry so a withdrawn offer goes back in its original place.
    pub queued_at: Timestamp,
    /// Carried from the queue entry, as `queued_at`.
    #[serde(default)]
    pub priority: i32,
}

/// An open assignment. Optional in a snapshot: capacity uses `AgentSnapshot::assigned`; the
/// list only lets a late claim be refused with `CONVERSATION_ALREADY_ASSIGNED` rather than
/// `CONVERSATION_NOT_WAITING`. `apply` maintains it; [`Snapshot::finish`] removes entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub conversation: ConversationId,
    pub agent: AgentId,
}

/// Everything routing needs to know about one service at one instant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub service: ServiceId,
    pub rules: ServiceRules,
    pub agents: Vec<AgentSnapshot>,
    /// Queued, not offered.
    pub waiting: Vec<Waiting>,
    pub offers: Vec<PendingOffer>,
    #[serde(default)]
    pub assigned: Vec<Assignment>,
}

impl Snapshot {
    pub fn new(service: ServiceId, rules: ServiceRules, agents: Vec<AgentSnapshot>) -> Self {
        Self {
            service,
            rules,
            agents,
            waiting: Vec::new(),
            offers: Vec::new(),
            assigned: Vec::new(),
        }
    }

    pub fn agent(&self, id: AgentId) -> Option<&AgentSnapshot> {
        self.agents.iter().find(|a| a.id == id)
    }

    pub fn agent_mut(&mut self, id: AgentId) -> Option<&mut AgentSnapshot> {
        self.agents.iter_mut().find(|a| a.id == id)
    }

    /// The conversation was finished (or transferred out): drop its assignment and free the
    /// agent's capacity. Returns the agent, to be reported with `Event::AgentChanged`.
    pub fn finish(&mut self, conversation: ConversationId) -> Option<AgentId> {
        let at = self.assigned.iter().position(|a| a.conversation == conversation)?;
        let agent = self.assigned.swap_remove(at).agent;
        if let Some(a) = self.agent_mut(agent) {
            a.assigned = a.assigned.saturating_sub(1);
        }
        Some(agent)
    }
}

/// Something that happened to the service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A conversation entered the service.
    Arrived(Waiting),
    /// The agent's presence, channels or capacity changed, including capacity freed by a
    /// finished conversation. The snapshot already holds the new state.
    AgentChanged(AgentId),
    /// The offer's deadline passed (ignored if it is not pending or not yet due).
    OfferExpired {
        conversation: ConversationId,
        agent: AgentId,
    },
    /// Explicit accept or the agent's first reply: both are this event.
    OfferAccepted {
        conversation: ConversationId,
        agent: AgentId,
    },
    /// An agent takes a waiting conversation himself.
    Claim {
        conversation: ConversationId,
        agent: AgentId,
    },
    /// A supervisor gives a waiting conversation to an agent.
    SupervisorAssign {
        conversation: ConversationId,
        agent: AgentId,
    },
    /// A conversation that never queued goes to the agent it names or nowhere (an agent
    /// starting a conversation, a transfer to a user): assigned if he may take it, else
    /// refused with the reason; never distributed to anyone else.
    Directed { entry: Waiting, agent: AgentId },
    /// The customer left before an agent took the conversation.
    Abandoned { conversation: ConversationId },
    /// Re-evaluate everything: business hours opened, after a rebuild, periodically. Also
    /// handles offers already past their deadline and offers of agents no longer available.
    Sweep,
}

/// What to do. The router applies each one atomically (re-checking capacity); the simulator
/// and the tests use [`super::apply`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The conversation is the agent's (from the queue, an arrival, or an accepted offer).
    Assign {
        conversation: ConversationId,
        agent: AgentId,
        explanation: Explanation,
    },
    /// Offer the conversation to the agent until `expires_at`. `channel`, `queued_at` and
    /// `priority` are carried so the offer can be recorded without a lookup.
    Offer {
        conversation: ConversationId,
        agent: AgentId,
        channel: ChannelKind,
        queued_at: Timestamp,
        priority: i32,
        expires_at: Timestamp,
        explanation: Explanation,
    },
    /// Remove the agent's pending offer (frees his capacity). What follows is a separate
    /// decision: Offer to the next agent, Queue, MissedLead or Remove.
    Withdraw {
        conversation: ConversationId,
        agent: AgentId,
        explanation: Explanation,
    },
    /// The conversation stays in, or enters, the queue as `entry`: a recorded skip.
    Queue {
        conversation: ConversationId,
        entry: Waiting,
        explanation: Explanation,
    },
    /// Close the conversation as a missed lead (CNA); `agent` is who missed it, if anyone.
    MissedLead {
        conversation: ConversationId,
        agent: Option<AgentId>,
        explanation: Explanation,
    },
    /// Rotation: set the agent's position after the current maximum.
    MoveToBack { agent: AgentId },
    /// The requested claim, accept or assignment is refused.
    Reject {
        conversation: ConversationId,
        agent: AgentId,
        code: ErrorCode,
        explanation: Explanation,
    },
    /// The customer abandoned: drop the conversation from the queue.
    Remove { conversation: ConversationId },
}

impl Decision {
    /// The conversation the decision is about, if any (`MoveToBack` has none).
    pub fn conversation(&self) -> Option<ConversationId> {
        match self {
            Decision::Assign { conversation, .. }
            | Decision::Offer { conversation, .. }
            | Decision::Withdraw { conversation, .. }
            | Decision::Queue { conversation, .. }
            | Decision::MissedLead { conversation, .. }
            | Decision::Reject { conversation, .. }
            | Decision::Remove { conversation } => Some(*conversation),
            Decision::MoveToBack { .. } => None,
        }
    }

    pub fn explanation(&self) -> Option<&Explanation> {
        match self {
            Decision::Assign { explanation, .. }
            | Decision::Offer { explanation, .. }
            | Decision::Withdraw { explanation, .. }
            | Decision::Queue { explanation, .. }
            | Decision::MissedLead { explanation, .. }
            | Decision::Reject { explanation, .. } => Some(explanation),
            Decision::MoveToBack { .. } | Decision::Remove { .. } => None,
        }
    }
}

/// Why a decision was taken: the rule, every agent considered with his load, and who won.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    pub rule: Rule,
    /// Every agent of the service as he stood when the rule ran (within one `decide` call,
    /// loads include what the earlier decisions of that call gave).
    pub candidates: Vec<Candidate>,
    pub chosen: Option<AgentId>,
}

/// The rule that produced a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// manual: conversations wait for a claim.
    ManualAwaitsClaim,
    /// round_robin: the eligible agent with the earliest turn.
    RoundRobinNextInTurn,
    /// round_robin: arrived while nobody was online (or the service was closed); only a
    /// claim or a supervisor moves it.
    NobodyOnlineBacklogHeld,
    /// least_loaded: most free capacity, then longest idle, then id.
    LeastLoadedMostFree,
    /// ordered_offer: the eligible agent first in rotation.
    OrderedOfferFirstInRotation,
    /// offer_or_miss: the eligible agent first in rotation (agents without a pending offer first).
    OfferOrMissFirstInRotation,
    /// ordered_offer: the offer timed out; withdrawn, the agent goes to the back.
    OfferTimedOutLosesTurn,
    /// offer_or_miss: the offer timed out; the lead is missed, the agent keeps his place.
    OfferTimedOutMissedLead,
    /// The agent accepted (or replied to) the offer.
    OfferAccepted,
    /// The agent paused, went offline or inactive, or left the channel: his offer is withdrawn.
    OfferLostAgentUnavailable,
    /// offer_or_miss: an offer withdrawn because its agent left becomes a missed lead.
    OfferLostMissedLead,
    /// offer_or_miss: nobody eligible on arrival; missed at once.
    NobodyAvailableMissedLead,
    /// Automatic policy outside business hours: held until the service opens.
    OffHoursHeld,
    /// offer_or_miss outside business hours: missed at once.
    OffHoursMissedLead,
    /// Every online agent is at capacity (or none is online): waits for capacity.
    NoEligibleAgent,
    /// The service does not take this channel kind; held for a supervisor.
    ChannelNotAccepted,
    /// A claim: the first one wins; later ones are refused.
    ClaimFirstWins,
    /// A supervisor's assignment.
    SupervisorChoice,
    /// A conversation that went straight to the agent it names (see `Event::Directed`).
    Directed,
    /// The customer abandoned while the conversation was offered or waiting.
    CustomerAbandoned,
}

/// One agent as considered for one decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub agent: AgentId,
    pub status: AgentStatus,
    /// Assigned plus pending offers.
    pub load: u32,
    pub max: u32,
    pub rotation: u64,
    pub idle_since: Timestamp,
    /// `None` = eligible.
    pub skipped: Option<SkipReason>,
}

/// Why an agent could not take the conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Paused, inactive or offline (see `Candidate::status`).
    NotAvailable,
    /// Available, but not logged into the conversation's channel kind.
    NotLoggedIntoChannel,
    /// `load >= max`.
    AtCapacity,
}

/// `Duration` as integer milliseconds, readable in the decision log.
mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
