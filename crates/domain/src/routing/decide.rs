//! `decide`: one event in, the decisions it implies out. Pure and deterministic: the same
//! snapshot, event and `now` always give the same decisions, so the router can reload and
//! decide again after a conflict.
//!
//! Within one call the decisions are chained on a light overlay of the snapshot ([`Work`]):
//! loads, rotation positions, taken queue entries and offers, so a second assignment in the
//! same call sees the first one, without cloning the whole snapshot per event.

use crate::channel::ChannelKind;
use crate::clock::Timestamp;
use crate::error::ErrorCode;
use crate::ids::{AgentId, ConversationId};
use crate::presence::AgentStatus;

use super::model::*;

/// The decisions `event` implies for the service in `snapshot` at `now`.
pub fn decide(snapshot: &Snapshot, event: &Event, now: Timestamp) -> Vec<Decision> {
    let mut w = Work::new(snapshot, now);
    match event {
        Event::Arrived(entry) => w.arrived(entry),
        Event::AgentChanged(agent) => w.agent_changed(*agent),
        Event::OfferExpired { conversation, agent } => w.offer_expired(*conversation, *agent),
        Event::OfferAccepted { conversation, agent } => w.accept(*conversation, *agent, Rule::OfferAccepted),
        Event::Claim { conversation, agent } => w.claim(*conversation, *agent, Rule::ClaimFirstWins, None),
        Event::SupervisorAssign { conversation, agent } => w.claim(*conversation, *agent, Rule::SupervisorChoice, None),
        Event::Directed { entry, agent } => w.claim(entry.conversation, *agent, Rule::Directed, Some(entry)),
        Event::Abandoned { conversation } => w.abandoned(*conversation),
        Event::Sweep => w.sweep(),
    }
    w.out
}

/// The agent who receives the periodic missed-lead notice (offer_or_miss): the first
/// Available agent in rotation (ties by id). A notice is a message, not a conversation, so
/// capacity and channel logins do not matter.
pub fn missed_lead_notice_target(snapshot: &Snapshot) -> Option<AgentId> {
    snapshot
        .agents
        .iter()
        .filter(|a| a.status == AgentStatus::Available)
        .min_by_key(|a| (a.rotation, a.id))
        .map(|a| a.id)
}

/// An accept of a conversation that is already assigned, answered before any policy runs:
/// nothing to do for its holder (a retried call, or his second reply), someone else's for
/// anyone else. `None` when the conversation is not assigned: the policy decides.
pub fn accept_of_assigned(
    status: crate::conversation::Status,
    holder: Option<AgentId>,
    caller: AgentId,
) -> Option<Result<(), ErrorCode>> {
    if status != crate::conversation::Status::Assigned {
        return None;
    }
    Some(if holder == Some(caller) {
        Ok(())
    } else {
        Err(ErrorCode::NotConversationOwner)
    })
}

/// The pending-message check's cadence (seed 003): daily for a lead an agent let pass, every
/// quarter of an hour for one that arrived while nobody was online.
pub const NOTICE_EVERY_DAY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
pub const NOTICE_EVERY_QUARTER_HOUR: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// When the check next looks at a missed lead, from when it was missed (or last looked at
/// with nobody Available to tell).
pub fn missed_lead_notice_due(last: crate::clock::Timestamp, missed_by: Option<AgentId>) -> crate::clock::Timestamp {
    last + if missed_by.is_some() {
        NOTICE_EVERY_DAY
    } else {
        NOTICE_EVERY_QUARTER_HOUR
    }
}

/// Whether `agent` may receive a conversation of `kind` now: Available, logged into that
/// kind, and `assigned + offered < max_concurrent`.
pub fn is_eligible(agent: &AgentSnapshot, kind: ChannelKind) -> bool {
    skip_reason(agent.status, &agent.channels, agent.load(), agent.max_concurrent, kind).is_none()
}

fn skip_reason(
    status: AgentStatus,
    channels: &[ChannelKind],
    load: u32,
    max: u32,
    kind: ChannelKind,
) -> Option<SkipReason> {
    if status != AgentStatus::Available {
        Some(SkipReason::NotAvailable)
    } else if !channels.contains(&kind) {
        Some(SkipReason::NotLoggedIntoChannel)
    } else if load >= max {
        Some(SkipReason::AtCapacity)
    } else {
        None
    }
}

fn kind_index(kind: ChannelKind) -> usize {
    ChannelKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

/// The mutable parts of an agent, as earlier decisions of this call left them.
#[derive(Clone, Copy)]
struct Live {
    assigned: u32,
    offered: u32,
    rotation: u64,
    idle_since: Timestamp,
}

struct Work<'a> {
    snap: &'a Snapshot,
    now: Timestamp,
    open: bool,
    live: Vec<Live>,
    max_rotation: u64,
    /// Conversations of `snap.waiting` that left the queue in this call.
    taken: Vec<ConversationId>,
    /// Offers of `snap.offers` withdrawn, accepted or closed in this call.
    gone_offers: Vec<ConversationId>,
    /// Offers made in this call.
    new_offers: Vec<PendingOffer>,
    out: Vec<Decision>,
}

impl<'a> Work<'a> {
    fn new(snap: &'a Snapshot, now: Timestamp) -> Self {
        let live = snap
            .agents
            .iter()
            .map(|a| Live {
                assigned: a.assigned,
                offered: a.offered,
                rotation: a.rotation,
                idle_since: a.idle_since,
            })
            .collect();
        Self {
            snap,
            now,
            open: snap.rules.is_open(now),
            live,
            max_rotation: snap.agents.iter().map(|a| a.rotation).max().unwrap_or(0),
            taken: Vec::new(),
            gone_offers: Vec::new(),
            new_offers: Vec::new(),
            out: Vec::new(),
        }
    }

    // ----- events -------------------------------------------------------------------

    fn arrived(&mut self, arrival: &Waiting) {
        let c = arrival.conversation;
        if self.pending_offer(c).is_some() || self.snap.assigned.iter().any(|a| a.conversation == c) {
            return; // already handled: deciding again is a no-op
        }
        let entry = match self.snap.waiting.iter().find(|w| w.conversation == c) {
            Some(queued) => queued.clone(),
            None => {
                let mut entry = arrival.clone();
                entry.arrived_with_nobody_online |= !self.open || self.nobody_online(entry.channel);
                entry
            }
        };
        self.distribute(vec![entry]);
    }

    fn agent_changed(&mut self, agent: AgentId) {
        let snap = self.snap;
        let mut subjects = Vec::new();
        for offer in snap.offers.iter().filter(|o| o.agent == agent) {
            if !self.can_keep(offer) {
                self.lose_offer(offer, &mut subjects);
            }
        }
        self.distribute(subjects);
    }

    fn offer_expired(&mut self, conversation: ConversationId, agent: AgentId) {
        let snap = self.snap;
        let Some(offer) = snap
            .offers
            .iter()
            .find(|o| o.conversation == conversation && o.agent == agent)
        else {
            return; // accepted or withdrawn meanwhile
        };
        if self.now < offer.expires_at {
            return; // not due: the deadline rules, not the caller's clock skew
        }
        let mut subjects = Vec::new();
        self.expire(offer, &mut subjects);
        self.distribute(subjects);
    }

    fn accept(&mut self, conversation: ConversationId, agent: AgentId, rule: Rule) {
        match self.pending_offer(conversation) {
            Some(offer) if offer.agent == agent && self.now <= offer.expires_at => {
                let explanation = self.explain(rule, offer.channel, Some(agent));
                self.emit(Decision::Assign {
                    conversation,
                    agent,
                    explanation,
                });
                if self.snap.rules.policy == Policy::OfferOrMiss {
                    // offer_or_miss consumes the turn on acceptance (a miss keeps it).
                    self.emit(Decision::MoveToBack { agent });
                }
            }
            other => {
                // Offered to someone else: not the caller's to accept. Otherwise his offer ran
                // out (or there never was one): no longer pending. (An accept of an assigned
                // conversation never gets here: see `accept_of_assigned`.)
                let someone_else = other.as_ref().is_some_and(|o| o.agent != agent);
                let code = if someone_else {
                    ErrorCode::NotConversationOwner
                } else {
                    ErrorCode::OfferNotPending
                };
                let explanation = match other {
                    Some(o) => self.explain(rule, o.channel, None),
                    None => Explanation {
                        rule,
                        candidates: Vec::new(),
                        chosen: None,
                    },
                };
                self.emit(Decision::Reject {
                    conversation,
                    agent,
                    code,
                    explanation,
                });
            }
        }
    }

    /// A claim (`ClaimFirstWins`), a supervisor's assignment (`SupervisorChoice`), or a
    /// conversation that never queued going to the agent it names (`Directed`, with its
    /// entry: it is in no queue).
    fn claim(&mut self, conversation: ConversationId, agent: AgentId, rule: Rule, direct: Option<&Waiting>) {
        let snap = self.snap;
        if rule == Rule::ClaimFirstWins && self.index(agent).is_none() {
            // Only the service's own agents pick from its queue, whatever the queue holds.
            return self.emit(Decision::Reject {
                conversation,
                agent,
                code: ErrorCode::PermissionDenied,
                explanation: Explanation {
                    rule,
                    candidates: Vec::new(),
                    chosen: None,
                },
            });
        }
        if let Some(offer) = self.pending_offer(conversation) {
            if offer.agent == agent && rule == Rule::ClaimFirstWins {
                return self.accept(conversation, agent, Rule::OfferAccepted);
            }
            let explanation = self.explain(rule, offer.channel, None);
            let code = ErrorCode::ConversationNotWaiting;
            return self.emit(Decision::Reject {
                conversation,
                agent,
                code,
                explanation,
            });
        }
        let queued = snap.waiting.iter().find(|w| w.conversation == conversation);
        let taken = snap.assigned.iter().any(|a| a.conversation == conversation);
        let Some(entry) = queued.or(direct.filter(|_| !taken)) else {
            let code = if snap.assigned.iter().any(|a| a.conversation == conversation) {
                ErrorCode::ConversationAlreadyAssigned
            } else {
                ErrorCode::ConversationNotWaiting
            };
            let explanation = Explanation {
                rule,
                candidates: Vec::new(),
                chosen: None,
            };
            return self.emit(Decision::Reject {
                conversation,
                agent,
                code,
                explanation,
            });
        };
        let code = match self.index(agent) {
            None => Some(ErrorCode::AgentNotAvailable),
            Some(i) => {
                let a = &snap.agents[i];
                let present = match rule {
                    // A supervisor may hand work to a paused agent, and an agent may start a
                    // conversation while paused; nobody to an absent one.
                    Rule::SupervisorChoice | Rule::Directed => {
                        matches!(a.status, AgentStatus::Available | AgentStatus::Paused)
                    }
                    _ => a.online_for(entry.channel),
                };
                if !present {
                    Some(ErrorCode::AgentNotAvailable)
                } else if self.load(i) >= a.max_concurrent {
                    Some(ErrorCode::AgentAtCapacity)
                } else {
                    None
                }
            }
        };
        match code {
            Some(code) => {
                let explanation = self.explain(rule, entry.channel, None);
                self.emit(Decision::Reject {
                    conversation,
                    agent,
                    code,
                    explanation,
                });
            }
            None => {
                let explanation = self.explain(rule, entry.channel, Some(agent));
                self.emit(Decision::Assign {
                    conversation,
                    agent,
                    explanation,
                });
            }
        }
    }

    fn abandoned(&mut self, conversation: ConversationId) {
        if let Some(offer) = self.pending_offer(conversation) {
            let explanation = self.explain(Rule::CustomerAbandoned, offer.channel, Some(offer.agent));
            self.emit(Decision::Withdraw {
                conversation,
                agent: offer.agent,
                explanation,
            });
            self.emit(Decision::Remove { conversation });
            self.distribute(Vec::new()); // the withdrawn offer freed capacity
        } else if self.snap.waiting.iter().any(|w| w.conversation == conversation) {
            self.emit(Decision::Remove { conversation });
        }
    }

    fn sweep(&mut self) {
        let snap = self.snap;
        let mut offers: Vec<&PendingOffer> = snap.offers.iter().collect();
        offers.sort_by_key(|o| (o.expires_at, o.conversation));
        let mut subjects = Vec::new();
        for offer in offers {
            if !self.can_keep(offer) {
                self.lose_offer(offer, &mut subjects);
            } else if self.now >= offer.expires_at {
                self.expire(offer, &mut subjects);
            }
        }
        self.distribute(subjects);
    }

    // ----- shared steps -------------------------------------------------------------

    /// An offer survives while its agent is Available and logged into its channel kind.
    fn can_keep(&self, offer: &PendingOffer) -> bool {
        self.snap
            .agent(offer.agent)
            .is_some_and(|a| a.online_for(offer.channel))
    }

    /// The agent left (paused, offline, inactive, logged out of the kind): ordered_offer and
    /// the assigning policies pass the lead on; offer_or_miss never redistributes, so it is
    /// a missed lead.
    fn lose_offer(&mut self, offer: &PendingOffer, subjects: &mut Vec<Waiting>) {
        let (conversation, agent) = (offer.conversation, offer.agent);
        let explanation = self.explain(Rule::OfferLostAgentUnavailable, offer.channel, Some(agent));
        self.emit(Decision::Withdraw {
            conversation,
            agent,
            explanation,
        });
        if self.snap.rules.policy == Policy::OfferOrMiss {
            let explanation = self.explain(Rule::OfferLostMissedLead, offer.channel, Some(agent));
            self.emit(Decision::MissedLead {
                conversation,
                agent: Some(agent),
                explanation,
            });
        } else {
            subjects.push(entry_of(offer));
        }
    }

    fn expire(&mut self, offer: &PendingOffer, subjects: &mut Vec<Waiting>) {
        let (conversation, agent) = (offer.conversation, offer.agent);
        match self.snap.rules.policy {
            Policy::OfferOrMiss => {
                let explanation = self.explain(Rule::OfferTimedOutMissedLead, offer.channel, Some(agent));
                self.emit(Decision::Withdraw {
                    conversation,
                    agent,
                    explanation: explanation.clone(),
                });
                self.emit(Decision::MissedLead {
                    conversation,
                    agent: Some(agent),
                    explanation,
                });
            }
            policy => {
                let explanation = self.explain(Rule::OfferTimedOutLosesTurn, offer.channel, Some(agent));
                self.emit(Decision::Withdraw {
                    conversation,
                    agent,
                    explanation,
                });
                if policy == Policy::OrderedOffer {
                    self.emit(Decision::MoveToBack { agent });
                }
                subjects.push(entry_of(offer));
            }
        }
    }

    /// Places `subjects` (each gets a decision) and the queue backlog (placed if possible,
    /// silent otherwise) in queue order: priority, then arrival, then id.
    fn distribute(&mut self, subjects: Vec<Waiting>) {
        let snap = self.snap;
        let policy = snap.rules.policy;
        if policy == Policy::Manual || !self.open {
            for s in subjects {
                if !snap.rules.accepts(s.channel) {
                    self.queue(s, Rule::ChannelNotAccepted);
                } else if policy == Policy::Manual {
                    self.queue(s, Rule::ManualAwaitsClaim);
                } else if policy == Policy::OfferOrMiss {
                    self.missed(s, Rule::OffHoursMissedLead);
                } else {
                    self.queue(s, Rule::OffHoursHeld);
                }
            }
            return;
        }

        let mut exhausted = [false; ChannelKind::ALL.len()];
        for k in ChannelKind::ALL {
            exhausted[kind_index(k)] = self.choose(k).is_none();
        }
        let mut order: Vec<(&Waiting, bool)> = subjects.iter().map(|s| (s, true)).collect();
        if exhausted.iter().any(|e| !e) {
            order.extend(
                snap.waiting
                    .iter()
                    .filter(|w| !self.taken.contains(&w.conversation))
                    .filter(|w| !subjects.iter().any(|s| s.conversation == w.conversation))
                    .map(|w| (w, false)),
            );
        }
        order.sort_by(|(a, _), (b, _)| {
            b.priority
                .cmp(&a.priority)
                .then(a.queued_at.cmp(&b.queued_at))
                .then(a.conversation.cmp(&b.conversation))
        });

        let mut subjects_left = subjects.len();
        for (entry, subject) in order {
            if !subject && subjects_left == 0 && exhausted.iter().all(|e| *e) {
                break;
            }
            subjects_left -= subject as usize;
            if !snap.rules.accepts(entry.channel) {
                if subject {
                    self.queue(entry.clone(), Rule::ChannelNotAccepted);
                }
                continue;
            }
            if policy == Policy::RoundRobin && entry.arrived_with_nobody_online {
                if subject {
                    self.queue(entry.clone(), Rule::NobodyOnlineBacklogHeld);
                }
                continue;
            }
            let k = kind_index(entry.channel);
            let chosen = if exhausted[k] { None } else { self.choose(entry.channel) };
            match chosen {
                Some(i) => self.give(entry, i),
                None => {
                    exhausted[k] = true;
                    if subject {
                        if policy == Policy::OfferOrMiss {
                            self.missed(entry.clone(), Rule::NobodyAvailableMissedLead);
                        } else {
                            self.queue(entry.clone(), Rule::NoEligibleAgent);
                        }
                    }
                }
            }
        }
    }

    /// Gives `entry` to agent `i` the way the policy does.
    fn give(&mut self, entry: &Waiting, i: usize) {
        let agent = self.snap.agents[i].id;
        let conversation = entry.conversation;
        let policy = self.snap.rules.policy;
        let rule = match policy {
            Policy::RoundRobin => Rule::RoundRobinNextInTurn,
            Policy::LeastLoaded => Rule::LeastLoadedMostFree,
            Policy::OrderedOffer => Rule::OrderedOfferFirstInRotation,
            Policy::OfferOrMiss => Rule::OfferOrMissFirstInRotation,
            Policy::Manual => Rule::ManualAwaitsClaim,
        };
        let explanation = self.explain(rule, entry.channel, Some(agent));
        if policy.uses_offers() {
            self.emit(Decision::Offer {
                conversation,
                agent,
                channel: entry.channel,
                queued_at: entry.queued_at,
                priority: entry.priority,
                expires_at: self.now + self.snap.rules.offer_timeout,
                explanation,
            });
        } else {
            self.emit(Decision::Assign {
                conversation,
                agent,
                explanation,
            });
        }
        // round_robin and ordered_offer: receiving (or being offered) a conversation uses the
        // turn. offer_or_miss moves the agent only when he accepts, so a miss keeps his place.
        if matches!(policy, Policy::RoundRobin | Policy::OrderedOffer) {
            self.emit(Decision::MoveToBack { agent });
        }
    }

    /// The eligible agent the policy picks for `kind`, if any.
    fn choose(&self, kind: ChannelKind) -> Option<usize> {
        let agents = &self.snap.agents;
        let eligible = (0..agents.len()).filter(|&i| self.skip(i, kind).is_none());
        match self.snap.rules.policy {
            Policy::Manual => None,
            Policy::LeastLoaded => eligible.min_by_key(|&i| {
                let free = agents[i].max_concurrent - self.load(i);
                (std::cmp::Reverse(free), self.live[i].idle_since, agents[i].id)
            }),
            Policy::RoundRobin | Policy::OrderedOffer => {
                eligible.min_by_key(|&i| (self.live[i].rotation, agents[i].id))
            }
            // Rotation does not move on an offer here, so prefer agents not already holding
            // one: otherwise a burst would pile every lead on the first agent.
            Policy::OfferOrMiss => {
                eligible.min_by_key(|&i| (self.live[i].offered > 0, self.live[i].rotation, agents[i].id))
            }
        }
    }

    fn queue(&mut self, entry: Waiting, rule: Rule) {
        let explanation = self.explain(rule, entry.channel, None);
        self.emit(Decision::Queue {
            conversation: entry.conversation,
            entry,
            explanation,
        });
    }

    fn missed(&mut self, entry: Waiting, rule: Rule) {
        let explanation = self.explain(rule, entry.channel, None);
        self.emit(Decision::MissedLead {
            conversation: entry.conversation,
            agent: None,
            explanation,
        });
    }

    // ----- the overlay --------------------------------------------------------------

    fn index(&self, agent: AgentId) -> Option<usize> {
        self.snap.agents.iter().position(|a| a.id == agent)
    }

    fn load(&self, i: usize) -> u32 {
        self.live[i].assigned + self.live[i].offered
    }

    fn skip(&self, i: usize, kind: ChannelKind) -> Option<SkipReason> {
        let a = &self.snap.agents[i];
        skip_reason(a.status, &a.channels, self.load(i), a.max_concurrent, kind)
    }

    fn nobody_online(&self, kind: ChannelKind) -> bool {
        !self.snap.agents.iter().any(|a| a.online_for(kind))
    }

    fn pending_offer(&self, conversation: ConversationId) -> Option<PendingOffer> {
        self.new_offers
            .iter()
            .find(|o| o.conversation == conversation)
            .cloned()
            .or_else(|| {
                self.snap
                    .offers
                    .iter()
                    .find(|o| o.conversation == conversation && !self.gone_offers.contains(&o.conversation))
                    .cloned()
            })
    }

    fn explain(&self, rule: Rule, kind: ChannelKind, chosen: Option<AgentId>) -> Explanation {
        let candidates = (0..self.snap.agents.len())
            .map(|i| {
                let a = &self.snap.agents[i];
                Candidate {
                    agent: a.id,
                    status: a.status,
                    load: self.load(i),
                    max: a.max_concurrent,
                    rotation: self.live[i].rotation,
                    idle_since: self.live[i].idle_since,
                    skipped: self.skip(i, kind),
                }
            })
            .collect();
        Explanation {
            rule,
            candidates,
            chosen,
        }
    }

    fn drop_offer(&mut self, offer: &PendingOffer) {
        if let Some(i) = self.index(offer.agent) {
            self.live[i].offered = self.live[i].offered.saturating_sub(1);
        }
        if let Some(at) = self
            .new_offers
            .iter()
            .position(|o| o.conversation == offer.conversation)
        {
            self.new_offers.swap_remove(at);
        } else {
            self.gone_offers.push(offer.conversation);
        }
    }

    /// Records the decision and updates the overlay exactly as `apply` would the snapshot.
    fn emit(&mut self, decision: Decision) {
        match &decision {
            Decision::Assign {
                conversation, agent, ..
            } => {
                if let Some(offer) = self.pending_offer(*conversation) {
                    self.drop_offer(&offer);
                }
                self.taken.push(*conversation);
                if let Some(i) = self.index(*agent) {
                    self.live[i].assigned += 1;
                    self.live[i].idle_since = self.now;
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
                self.taken.push(*conversation);
                if let Some(i) = self.index(*agent) {
                    self.live[i].offered += 1;
                    self.live[i].idle_since = self.now;
                }
                self.new_offers.push(PendingOffer {
                    conversation: *conversation,
                    agent: *agent,
                    channel: *channel,
                    offered_at: self.now,
                    expires_at: *expires_at,
                    queued_at: *queued_at,
                    priority: *priority,
                });
            }
            Decision::Withdraw {
                conversation, agent, ..
            } => {
                if let Some(offer) = self.pending_offer(*conversation).filter(|o| o.agent == *agent) {
                    self.drop_offer(&offer);
                }
            }
            Decision::MissedLead { conversation, .. } | Decision::Remove { conversation } => {
                if let Some(offer) = self.pending_offer(*conversation) {
                    self.drop_offer(&offer);
                }
                self.taken.push(*conversation);
            }
            Decision::MoveToBack { agent } => {
                if let Some(i) = self.index(*agent) {
                    self.max_rotation += 1;
                    self.live[i].rotation = self.max_rotation;
                }
            }
            Decision::Queue { .. } | Decision::Reject { .. } => {}
        }
        self.out.push(decision);
    }
}

/// The queue entry a withdrawn offer goes back as, in its original place.
fn entry_of(offer: &PendingOffer) -> Waiting {
    Waiting {
        conversation: offer.conversation,
        channel: offer.channel,
        queued_at: offer.queued_at,
        arrived_with_nobody_online: false,
        priority: offer.priority,
    }
}
