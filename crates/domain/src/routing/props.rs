//! Property tests: random event sequences driven through `decide` + `apply`, checking the
//! invariants every policy must keep whatever happens.

use std::collections::HashSet;
use std::time::Duration;

use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::channel::ChannelKind;
use crate::clock::Timestamp;
use crate::ids::{AgentId, ConversationId, ServiceId};
use crate::presence::AgentStatus;

const AGENTS: usize = 3;
const KINDS: [ChannelKind; 2] = [ChannelKind::Webchat, ChannelKind::Whatsapp];

#[derive(Clone, Debug)]
enum Op {
    Arrive {
        kind: usize,
        priority: i32,
    },
    SetAgent {
        agent: usize,
        status: usize,
        channels: u8,
        max: u32,
    },
    Finish {
        pick: usize,
    },
    Expire {
        pick: usize,
    },
    Accept {
        pick: usize,
    },
    Claim {
        pick: usize,
        agent: usize,
    },
    SupervisorAssign {
        pick: usize,
        agent: usize,
    },
    Abandon {
        pick: usize,
    },
    Sweep,
    Tick {
        secs: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..KINDS.len(), 0..2i32).prop_map(|(kind, priority)| Op::Arrive { kind, priority }),
        3 => (0..AGENTS, 0..4usize, 0..4u8, 0..4u32)
            .prop_map(|(agent, status, channels, max)| Op::SetAgent { agent, status, channels, max }),
        3 => any::<usize>().prop_map(|pick| Op::Finish { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Expire { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Accept { pick }),
        1 => (any::<usize>(), 0..AGENTS).prop_map(|(pick, agent)| Op::Claim { pick, agent }),
        1 => (any::<usize>(), 0..AGENTS).prop_map(|(pick, agent)| Op::SupervisorAssign { pick, agent }),
        1 => any::<usize>().prop_map(|pick| Op::Abandon { pick }),
        1 => Just(Op::Sweep),
        1 => (0..40i64).prop_map(|secs| Op::Tick { secs }),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    prop::sample::select(Policy::ALL.to_vec())
}

fn agent_id(i: usize) -> AgentId {
    AgentId(Uuid::from_u128(i as u128 + 1))
}

struct Harness {
    s: Snapshot,
    now: Timestamp,
    next_conv: u128,
    /// Conversations closed as missed leads: never offered or assigned again.
    missed: HashSet<ConversationId>,
}

impl Harness {
    fn new(policy: Policy) -> Self {
        let mut rules = ServiceRules::new(policy);
        rules.offer_timeout = Duration::from_secs(30);
        let agents = (0..AGENTS)
            .map(|i| AgentSnapshot::available(agent_id(i), &KINDS, 2, i as u64))
            .collect();
        Self {
            s: Snapshot::new(ServiceId(Uuid::from_u128(99)), rules, agents),
            now: Timestamp(0),
            next_conv: 0,
            missed: HashSet::new(),
        }
    }

    /// Turns an op into an event (mutating agent state first where the op is a change).
    fn event(&mut self, op: &Op) -> Option<Event> {
        let s = &mut self.s;
        Some(match *op {
            Op::Arrive { kind, priority } => {
                self.next_conv += 1;
                Event::Arrived(Waiting {
                    conversation: ConversationId(Uuid::from_u128(1_000 + self.next_conv)),
                    channel: KINDS[kind],
                    queued_at: self.now,
                    arrived_with_nobody_online: false,
                    priority,
                })
            }
            Op::SetAgent {
                agent,
                status,
                channels,
                max,
            } => {
                let a = &mut s.agents[agent];
                a.status = AgentStatus::ALL[status];
                a.channels = KINDS
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| channels & (1 << i) != 0)
                    .map(|(_, k)| *k)
                    .collect();
                a.max_concurrent = max;
                Event::AgentChanged(a.id)
            }
            Op::Finish { pick } => {
                let c = s.assigned.get(pick % s.assigned.len().max(1))?.conversation;
                Event::AgentChanged(s.finish(c)?)
            }
            Op::Expire { pick } => {
                let o = s.offers.get(pick % s.offers.len().max(1))?.clone();
                self.now = self.now.max(o.expires_at);
                Event::OfferExpired {
                    conversation: o.conversation,
                    agent: o.agent,
                }
            }
            Op::Accept { pick } => {
                let o = s.offers.get(pick % s.offers.len().max(1))?;
                Event::OfferAccepted {
                    conversation: o.conversation,
                    agent: o.agent,
                }
            }
            Op::Claim { pick, agent } => {
                let w = s.waiting.get(pick % s.waiting.len().max(1))?;
                Event::Claim {
                    conversation: w.conversation,
                    agent: agent_id(agent),
                }
            }
            Op::SupervisorAssign { pick, agent } => {
                let w = s.waiting.get(pick % s.waiting.len().max(1))?;
                Event::SupervisorAssign {
                    conversation: w.conversation,
                    agent: agent_id(agent),
                }
            }
            Op::Abandon { pick } => {
                let ids: Vec<_> = s
                    .waiting
                    .iter()
                    .map(|w| w.conversation)
                    .chain(s.offers.iter().map(|o| o.conversation))
                    .collect();
                Event::Abandoned {
                    conversation: *ids.get(pick % ids.len().max(1))?,
                }
            }
            Op::Sweep => Event::Sweep,
            Op::Tick { secs } => {
                self.now = self.now + Duration::from_secs(secs as u64);
                return None;
            }
        })
    }

    /// Applies decisions one by one, checking each against the state it lands on.
    fn step(&mut self, event: &Event) -> Result<Vec<Decision>, TestCaseError> {
        let decisions = decide(&self.s, event, self.now);
        let loads_before: Vec<u32> = self.s.agents.iter().map(|a| a.load()).collect();
        for d in &decisions {
            self.check_decision(d)?;
            apply(&mut self.s, std::slice::from_ref(d), self.now);
            self.check_consistency()?;
        }
        for (a, before) in self.s.agents.iter().zip(loads_before) {
            prop_assert!(
                a.load() <= before || a.load() <= a.max_concurrent,
                "agent {} over capacity: {:?}",
                a.id,
                a
            );
        }
        Ok(decisions)
    }

    fn check_decision(&mut self, d: &Decision) -> Result<(), TestCaseError> {
        let s = &self.s;
        match d {
            Decision::Assign {
                conversation, agent, ..
            } => {
                prop_assert!(
                    !s.assigned.iter().any(|a| a.conversation == *conversation),
                    "assigned twice"
                );
                prop_assert!(
                    !s.offers
                        .iter()
                        .any(|o| o.conversation == *conversation && o.agent != *agent),
                    "assigned while offered to another"
                );
                prop_assert!(!self.missed.contains(conversation), "missed lead assigned");
            }
            Decision::Offer { conversation, .. } => {
                prop_assert!(
                    !s.assigned.iter().any(|a| a.conversation == *conversation),
                    "offered while assigned"
                );
                prop_assert!(
                    !s.offers.iter().any(|o| o.conversation == *conversation),
                    "offered twice"
                );
                prop_assert!(!self.missed.contains(conversation), "missed lead re-offered");
            }
            Decision::MissedLead { conversation, .. } => {
                self.missed.insert(*conversation);
            }
            _ => {}
        }
        // The chosen agent of an automatic choice is eligible and the one the policy ranks first.
        if let Decision::Assign { explanation: e, .. } | Decision::Offer { explanation: e, .. } = d {
            let chosen = e.candidates.iter().find(|c| Some(c.agent) == e.chosen);
            prop_assert!(chosen.is_some(), "chosen agent missing from candidates");
            let chosen = chosen.unwrap();
            let eligible = e.candidates.iter().filter(|c| c.skipped.is_none());
            match e.rule {
                Rule::RoundRobinNextInTurn | Rule::OrderedOfferFirstInRotation => {
                    prop_assert!(chosen.skipped.is_none());
                    for c in eligible {
                        prop_assert!(
                            (chosen.rotation, chosen.agent) <= (c.rotation, c.agent),
                            "not first in rotation"
                        );
                    }
                }
                Rule::LeastLoadedMostFree => {
                    prop_assert!(chosen.skipped.is_none());
                    for c in eligible {
                        prop_assert!(chosen.max - chosen.load >= c.max - c.load, "not the most free");
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn check_consistency(&self) -> Result<(), TestCaseError> {
        let s = &self.s;
        let mut seen = HashSet::new();
        for c in s
            .waiting
            .iter()
            .map(|w| w.conversation)
            .chain(s.offers.iter().map(|o| o.conversation))
            .chain(s.assigned.iter().map(|a| a.conversation))
        {
            prop_assert!(seen.insert(c), "conversation {c} held twice");
        }
        for a in &s.agents {
            prop_assert_eq!(a.offered as usize, s.offers.iter().filter(|o| o.agent == a.id).count());
            prop_assert_eq!(
                a.assigned as usize,
                s.assigned.iter().filter(|x| x.agent == a.id).count()
            );
        }
        Ok(())
    }

    /// Automatic policies never leave a conversation waiting while an eligible agent has room.
    fn check_no_idle_capacity(&self) -> Result<(), TestCaseError> {
        let s = &self.s;
        let policy = s.rules.policy;
        if policy == Policy::OfferOrMiss {
            prop_assert!(s.waiting.is_empty(), "offer_or_miss never queues");
        }
        for w in &s.waiting {
            let must_place = match policy {
                Policy::LeastLoaded | Policy::OrderedOffer => true,
                Policy::RoundRobin => !w.arrived_with_nobody_online,
                Policy::Manual | Policy::OfferOrMiss => false,
            };
            if must_place {
                let idle = s.agents.iter().find(|a| is_eligible(a, w.channel));
                prop_assert!(idle.is_none(), "{} waits while {:?} is eligible", w.conversation, idle);
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn routing_keeps_capacity_single_ownership_and_never_idles_with_work_waiting(
        policy in policy(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let mut h = Harness::new(policy);
        for op in &ops {
            let Some(event) = h.event(op) else { continue };
            h.step(&event)?;
            h.check_no_idle_capacity()?;
        }
    }

    #[test]
    fn an_ordered_offer_timeout_costs_the_turn_and_moves_the_lead_on(
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let mut h = Harness::new(Policy::OrderedOffer);
        for op in &ops {
            let Some(event) = h.event(op) else { continue };
            let decisions = h.step(&event)?;
            if let (Event::OfferExpired { conversation, agent }, Some(Decision::Withdraw { .. })) = (&event, decisions.first()) {
                let moved = matches!(decisions.get(1), Some(Decision::MoveToBack { agent: a }) if a == agent);
                prop_assert!(moved, "timed-out agent not moved to the back");
                // Behind everyone who was not offered something in the same call.
                let offered: HashSet<AgentId> = decisions.iter().filter_map(|d| match d {
                    Decision::Offer { agent, .. } => Some(*agent),
                    _ => None,
                }).collect();
                let mine = h.s.agent(*agent).unwrap().rotation;
                for a in h.s.agents.iter().filter(|a| a.id != *agent && !offered.contains(&a.id)) {
                    prop_assert!(a.rotation < mine, "timed-out agent not at the back");
                }
                // The lead is either offered again or queued: never dropped.
                let placed = decisions.iter().any(|d| matches!(d,
                    Decision::Offer { conversation: c, .. } | Decision::Queue { conversation: c, .. } if c == conversation));
                prop_assert!(placed, "lead dropped after timeout");
            }
        }
    }

    #[test]
    fn an_offer_or_miss_timeout_keeps_the_turn_and_misses_the_lead_for_good(
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let mut h = Harness::new(Policy::OfferOrMiss);
        for op in &ops {
            let Some(event) = h.event(op) else { continue };
            let rotations: Vec<u64> = h.s.agents.iter().map(|a| a.rotation).collect();
            let decisions = h.step(&event)?;
            if let (Event::OfferExpired { conversation, agent }, Some(Decision::Withdraw { .. })) = (&event, decisions.first()) {
                let missed = matches!(decisions.get(1),
                    Some(Decision::MissedLead { conversation: c, agent: Some(a), .. }) if c == conversation && a == agent);
                prop_assert!(missed, "timeout did not miss the lead: {:?}", decisions);
                let i = h.s.agents.iter().position(|a| a.id == *agent).unwrap();
                prop_assert_eq!(h.s.agents[i].rotation, rotations[i], "agent lost his place");
                let moved = decisions.iter().any(|d| matches!(d, Decision::MoveToBack { .. }));
                prop_assert!(!moved, "rotation moved on a miss");
            }
        }
    }
}
