//! `apply`: the snapshot after the decisions, the same transition `decide` chains on inside
//! one call. Each decision is idempotent (an Assign of an assigned conversation, an Offer of
//! an offered one, a Queue of a queued one change nothing), like the router's reservations.

use crate::clock::Timestamp;
use crate::ids::ConversationId;

use super::model::*;

/// Applies `decisions` in order.
pub fn apply(snapshot: &mut Snapshot, decisions: &[Decision], now: Timestamp) {
    for d in decisions {
        apply_one(snapshot, d, now);
    }
}

fn apply_one(s: &mut Snapshot, decision: &Decision, now: Timestamp) {
    match decision {
        Decision::Assign {
            conversation, agent, ..
        } => {
            if s.assigned.iter().any(|a| a.conversation == *conversation) {
                return;
            }
            take_offer(s, *conversation);
            take_waiting(s, *conversation);
            s.assigned.push(Assignment {
                conversation: *conversation,
                agent: *agent,
            });
            if let Some(a) = s.agent_mut(*agent) {
                a.assigned += 1;
                a.idle_since = now;
            }
        }
        Decision::Offer {
            conversation,
            agent,
            channel,
            queued_at,
            priority,
            expires_at,
            ..
        } => {
            if s.offers.iter().any(|o| o.conversation == *conversation) {
                return;
            }
            take_waiting(s, *conversation);
            s.offers.push(PendingOffer {
                conversation: *conversation,
                agent: *agent,
                channel: *channel,
                offered_at: now,
                expires_at: *expires_at,
                queued_at: *queued_at,
                priority: *priority,
            });
            if let Some(a) = s.agent_mut(*agent) {
                a.offered += 1;
                a.idle_since = now;
            }
        }
        Decision::Withdraw {
            conversation, agent, ..
        } => {
            if s.offers
                .iter()
                .any(|o| o.conversation == *conversation && o.agent == *agent)
            {
                take_offer(s, *conversation);
            }
        }
        Decision::Queue {
            conversation, entry, ..
        } => {
            if !s.waiting.iter().any(|w| w.conversation == *conversation) {
                s.waiting.push(entry.clone());
            }
        }
        Decision::MissedLead { conversation, .. } | Decision::Remove { conversation } => {
            take_offer(s, *conversation);
            take_waiting(s, *conversation);
        }
        Decision::MoveToBack { agent } => {
            let max = s.agents.iter().map(|a| a.rotation).max().unwrap_or(0);
            if let Some(a) = s.agent_mut(*agent) {
                a.rotation = max + 1;
            }
        }
        Decision::Reject { .. } => {}
    }
}

/// Removes the conversation's pending offer, if any, freeing the agent's capacity.
fn take_offer(s: &mut Snapshot, conversation: ConversationId) {
    if let Some(at) = s.offers.iter().position(|o| o.conversation == conversation) {
        let offer = s.offers.swap_remove(at);
        if let Some(a) = s.agent_mut(offer.agent) {
            a.offered = a.offered.saturating_sub(1);
        }
    }
}

/// Removes the conversation from the queue, keeping the others in order.
fn take_waiting(s: &mut Snapshot, conversation: ConversationId) {
    if let Some(at) = s.waiting.iter().position(|w| w.conversation == conversation) {
        s.waiting.remove(at);
    }
}
