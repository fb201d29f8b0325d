//! Routing: which agent gets which conversation, as pure functions.
//!
//! ```text
//! decide(&Snapshot, &Event, now) -> Vec<Decision>     what to do (no IO, no clock)
//! apply(&mut Snapshot, &[Decision], now)              the state after doing it
//! ```
//!
//! The router loads a [`Snapshot`] of one service (its rules, agents with status, channels,
//! load, rotation position and idle time, the queue and the pending offers), calls
//! [`decide`] for one [`Event`], and applies each [`Decision`] with an atomic script that
//! re-checks capacity; on a conflict it reloads and decides again, so `decide` is
//! deterministic. The simulator and the property tests chain `decide` and [`apply`] alone.
//! Every decision that chooses carries an [`Explanation`]: the [`Rule`], every agent
//! considered ([`Candidate`], with load and why he was skipped) and who was chosen.
//!
//! Layout: [`model`] (the values), `decide` (the rules), `apply` (the transition), unit
//! tests in `tests`, property tests in `props`.
//!
//! # Eligibility and capacity
//! An agent is eligible for a conversation when he is Available, logged into the
//! conversation's channel kind, and `assigned + offered < max_concurrent` (pending offers
//! count against capacity). "Online" for a conversation means Available and logged into its
//! kind, whatever the load.
//!
//! # The policies
//! - **manual** — everything waits; an agent claims; the first claim wins (a second gets
//!   `CONVERSATION_ALREADY_ASSIGNED` when the snapshot lists the assignment, otherwise
//!   `CONVERSATION_NOT_WAITING`); the claimant must be online for the kind and under capacity.
//! - **round_robin** — an arrival goes to the eligible agent with the lowest `rotation`
//!   (ties by id), who then moves to the back. A full agent is skipped but keeps his place,
//!   so he is next once he frees capacity. An arrival while *nobody is online for its kind*
//!   (or while the service is closed) is flagged `arrived_with_nobody_online` and is never
//!   distributed automatically — only a claim or a supervisor moves it (seed 002: "não serão
//!   distribuídas automaticamente"). *Reading:* an arrival that waited only because every
//!   online agent was full is not that backlog; it is distributed, in queue order, as soon
//!   as capacity frees (the seed's "assim que novas conversas chegarem" speaks only of the
//!   nobody-online case).
//! - **least_loaded** — to the eligible agent with the most free capacity; ties: longest
//!   idle (smallest `idle_since`), then id. Any queued conversation (nobody-online and
//!   off-hours arrivals included) is distributed as soon as capacity appears, one by one in
//!   queue order, each to the then least loaded agent, so a backlog spreads across everyone
//!   online rather than filling the first agent who logs in.
//! - **ordered_offer** — offered to the eligible agent first in rotation, who moves to the
//!   back (an offer uses the turn). On timeout the offer is withdrawn, the agent moves to the
//!   back again (he loses his turn to everyone who moved meanwhile) and the lead is offered
//!   to the next eligible agent — possibly the same one if he is the only one — until
//!   accepted. With nobody eligible the lead is queued and offered in rotation order when
//!   agents come online or free capacity.
//! - **offer_or_miss** — offered to the eligible agent first in rotation (agents without a
//!   pending offer before those holding one, since the rotation does not move on an offer).
//!   Accepting moves him to the back. On timeout: withdrawn and closed as a missed lead
//!   (CNA); the agent keeps his place; nothing is redistributed. With nobody eligible on
//!   arrival (nobody online, or everyone full — *reading:* "nenhum corretor disponível"),
//!   the lead is missed at once. The periodic missed-lead notice is the scheduler's; it asks
//!   [`missed_lead_notice_target`].
//!
//! Accepting an offer is one event, [`Event::OfferAccepted`], whether it came from the
//! accept button or the agent's first reply; a claim of one's own offer is the same.
//! An accept after `expires_at` is refused (`OFFER_NOT_PENDING`): the deadline is the rule.
//!
//! *Choice:* an agent who becomes Paused, Inactive or Offline, or logs out of the offer's
//! kind, loses his pending offers at his next `AgentChanged` (or a `Sweep`): ordered_offer
//! and the assigning policies pass the lead to the next eligible agent without moving the
//! leaver (he did not fail to answer, he left); offer_or_miss makes it a missed lead,
//! because that policy never redistributes.
//!
//! Supervisors assign a waiting (queued, not offered) conversation to a chosen agent who is
//! Available or Paused (not Inactive/Offline), capacity applying (`AGENT_AT_CAPACITY`).
//! Claims work in every policy on waiting, not offered, conversations.
//!
//! # Business hours
//! When the rules have hours and the service is closed, automatic policies distribute
//! nothing: arrivals are queued (`OffHoursHeld`; flagged nobody-online, so round_robin
//! never distributes them), except offer_or_miss where they are missed at once. A `Sweep`
//! when the service opens distributes per policy. Claims and supervisor assignments work
//! at any hour.
//!
//! # Decisions within one call
//! `decide` may return several decisions (an `AgentChanged` can distribute several queued
//! conversations; a timeout returns Withdraw, MoveToBack and the next Offer). Later
//! decisions of a call see the loads and rotation of earlier ones. The queue is served by
//! priority (higher first), then `queued_at`, then id. Only the event's own conversation
//! gets a `Queue` decision when it cannot be placed; backlog entries that stay are silent.

pub mod model;

mod apply;
mod decide;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

pub use apply::apply;
pub use decide::{
    accept_of_assigned, decide, is_eligible, missed_lead_notice_due, missed_lead_notice_target, NOTICE_EVERY_DAY,
    NOTICE_EVERY_QUARTER_HOUR,
};
pub use model::*;
