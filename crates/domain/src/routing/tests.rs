//! Unit tests, one rule each: Arrange (a snapshot), Act (decide + apply), Assert.

use std::time::Duration;

use uuid::Uuid;

use super::*;
use crate::business_hours::{BusinessHours, OpenInterval, WeeklyHours};
use crate::channel::ChannelKind::{self, Webchat, Whatsapp};
use crate::clock::Timestamp;
use crate::error::ErrorCode;
use crate::ids::{AgentId, ConversationId, ServiceId};
use crate::presence::AgentStatus;

fn agent(n: u128) -> AgentId {
    AgentId(Uuid::from_u128(n))
}
fn conv(n: u128) -> ConversationId {
    ConversationId(Uuid::from_u128(1000 + n))
}
fn t(secs: i64) -> Timestamp {
    Timestamp::from_secs(secs)
}

/// Agents 1..=n, Available on webchat and whatsapp, capacity `cap`, rotation = their number.
fn service(policy: Policy, n: u128, cap: u32) -> Snapshot {
    let mut rules = ServiceRules::new(policy);
    rules.offer_timeout = Duration::from_secs(30);
    let agents = (1..=n)
        .map(|i| AgentSnapshot::available(agent(i), &[Webchat, Whatsapp], cap, i as u64))
        .collect();
    Snapshot::new(ServiceId(Uuid::from_u128(7)), rules, agents)
}

fn arrival(c: u128, channel: ChannelKind, at: Timestamp) -> Event {
    Event::Arrived(Waiting {
        conversation: conv(c),
        channel,
        queued_at: at,
        arrived_with_nobody_online: false,
        priority: 0,
    })
}

/// decide then apply, like the router does.
fn step(s: &mut Snapshot, event: Event, now: Timestamp) -> Vec<Decision> {
    let decisions = decide(s, &event, now);
    apply(s, &decisions, now);
    decisions
}

fn owner(s: &Snapshot, c: u128) -> Option<AgentId> {
    s.assigned.iter().find(|a| a.conversation == conv(c)).map(|a| a.agent)
}
fn offered_to(s: &Snapshot, c: u128) -> Option<AgentId> {
    s.offers.iter().find(|o| o.conversation == conv(c)).map(|o| o.agent)
}
fn is_waiting(s: &Snapshot, c: u128) -> bool {
    s.waiting.iter().any(|w| w.conversation == conv(c))
}
fn rule_of(d: &Decision) -> Option<Rule> {
    d.explanation().map(|e| e.rule)
}
fn set_status(s: &mut Snapshot, a: u128, status: AgentStatus) {
    s.agent_mut(agent(a)).unwrap().status = status;
}
fn rejected_with(d: &[Decision]) -> Option<ErrorCode> {
    d.iter().find_map(|d| match d {
        Decision::Reject { code, .. } => Some(*code),
        _ => None,
    })
}

#[test]
fn policy_names_round_trip_and_match_serde() {
    for p in Policy::ALL {
        assert_eq!(Policy::parse(p.as_str()), Some(p));
        assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{}\"", p.as_str()));
    }
    assert_eq!(Policy::parse("fifo"), None);
}

// ----- manual ----------------------------------------------------------------------------

#[test]
fn manual_arrivals_wait_in_the_queue_for_a_claim() {
    let mut s = service(Policy::Manual, 2, 1);
    let d = step(&mut s, arrival(1, Webchat, t(0)), t(0));
    assert!(matches!(&d[..], [Decision::Queue { .. }]));
    assert_eq!(rule_of(&d[0]), Some(Rule::ManualAwaitsClaim));
    assert!(is_waiting(&s, 1));
}

#[test]
fn manual_first_claim_wins_and_a_second_claim_is_refused_as_already_assigned() {
    // Arrange
    let mut s = service(Policy::Manual, 2, 1);
    step(&mut s, arrival(1, Webchat, t(0)), t(0));
    // Act
    let first = step(
        &mut s,
        Event::Claim {
            conversation: conv(1),
            agent: agent(2),
        },
        t(5),
    );
    let second = step(
        &mut s,
        Event::Claim {
            conversation: conv(1),
            agent: agent(1),
        },
        t(5),
    );
    // Assert
    assert!(matches!(&first[..], [Decision::Assign { agent: a, .. }] if *a == agent(2)));
    assert_eq!(rejected_with(&second), Some(ErrorCode::ConversationAlreadyAssigned));
    assert_eq!(owner(&s, 1), Some(agent(2)));
    assert_eq!(s.agent(agent(2)).unwrap().assigned, 1);
}

#[test]
fn a_claim_of_a_conversation_that_is_not_queued_is_not_waiting() {
    let mut s = service(Policy::Manual, 1, 1);
    let d = step(
        &mut s,
        Event::Claim {
            conversation: conv(9),
            agent: agent(1),
        },
        t(0),
    );
    assert_eq!(rejected_with(&d), Some(ErrorCode::ConversationNotWaiting));
}

#[test]
fn a_claim_beyond_capacity_is_refused_with_agent_at_capacity() {
    let mut s = service(Policy::Manual, 1, 1);
    step(&mut s, arrival(1, Webchat, t(0)), t(0));
    step(&mut s, arrival(2, Webchat, t(1)), t(1));
    step(
        &mut s,
        Event::Claim {
            conversation: conv(1),
            agent: agent(1),
        },
        t(2),
    );
    let d = step(
        &mut s,
        Event::Claim {
            conversation: conv(2),
            agent: agent(1),
        },
        t(3),
    );
    assert_eq!(rejected_with(&d), Some(ErrorCode::AgentAtCapacity));
    assert!(is_waiting(&s, 2));
}

#[test]
fn an_agent_not_online_for_the_channel_cannot_claim() {
    let mut s = service(Policy::Manual, 2, 1);
    s.agent_mut(agent(1)).unwrap().channels = vec![Whatsapp];
    set_status(&mut s, 2, AgentStatus::Paused);
    step(&mut s, arrival(1, Webchat, t(0)), t(0));
    let d1 = step(
        &mut s,
        Event::Claim {
            conversation: conv(1),
            agent: agent(1),
        },
        t(1),
    );
    let d2 = step(
        &mut s,
        Event::Claim {
            conversation: conv(1),
            agent: agent(2),
        },
        t(1),
    );
    assert_eq!(rejected_with(&d1), Some(ErrorCode::AgentNotAvailable));
    assert_eq!(rejected_with(&d2), Some(ErrorCode::AgentNotAvailable));
}

// ----- round robin -----------------------------------------------------------------------

#[test]
fn round_robin_gives_arrivals_in_turn_and_sends_each_receiver_to_the_back() {
    let mut s = service(Policy::RoundRobin, 3, 5);
    for c in 1..=4 {
        step(&mut s, arrival(c, Webchat, t(c as i64)), t(c as i64));
    }
    let owners: Vec<_> = (1..=4).map(|c| owner(&s, c).unwrap()).collect();
    assert_eq!(owners, vec![agent(1), agent(2), agent(3), agent(1)]);
}

#[test]
fn round_robin_skips_a_full_agent_who_keeps_his_turn() {
    // Arrange: agent 1 is first in turn but full.
    let mut s = service(Policy::RoundRobin, 3, 1);
    s.agent_mut(agent(1)).unwrap().assigned = 1;
    // Act
    let d = step(&mut s, arrival(1, Webchat, t(0)), t(0));
    s.agent_mut(agent(1)).unwrap().assigned = 0;
    step(&mut s, Event::AgentChanged(agent(1)), t(1));
    step(&mut s, arrival(2, Webchat, t(2)), t(2));
    // Assert
    let expl = d[0].explanation().unwrap();
    assert_eq!(expl.rule, Rule::RoundRobinNextInTurn);
    assert_eq!(expl.candidates[0].skipped, Some(SkipReason::AtCapacity));
    assert_eq!(owner(&s, 1), Some(agent(2)));
    assert_eq!(owner(&s, 2), Some(agent(1)), "agent 1 kept his turn while full");
}

#[test]
fn round_robin_does_not_distribute_arrivals_from_when_nobody_was_online() {
    // Arrange: everyone offline when the conversation arrives.
    let mut s = service(Policy::RoundRobin, 2, 1);
    set_status(&mut s, 1, AgentStatus::Offline);
    set_status(&mut s, 2, AgentStatus::Offline);
    let d = step(&mut s, arrival(1, Webchat, t(0)), t(0));
    // Act: an agent comes online; the service is swept too.
    set_status(&mut s, 1, AgentStatus::Available);
    let on_login = step(&mut s, Event::AgentChanged(agent(1)), t(10));
    let on_sweep = step(&mut s, Event::Sweep, t(11));
    // Assert
    assert_eq!(rule_of(&d[0]), Some(Rule::NobodyOnlineBacklogHeld));
    assert!(s.waiting[0].arrived_with_nobody_online);
    assert!(on_login.is_empty() && on_sweep.is_empty());
    assert!(is_waiting(&s, 1));
    // ...but new arrivals are distributed automatically.
    step(&mut s, arrival(2, Webchat, t(12)), t(12));
    assert_eq!(owner(&s, 2), Some(agent(1)));
}

#[test]
fn round_robin_nobody_online_backlog_can_be_claimed_or_assigned_by_a_supervisor() {
    let mut s = service(Policy::RoundRobin, 2, 2);
    set_status(&mut s, 1, AgentStatus::Offline);
    set_status(&mut s, 2, AgentStatus::Offline);
    step(&mut s, arrival(1, Webchat, t(0)), t(0));
    step(&mut s, arrival(2, Webchat, t(0)), t(0));
    set_status(&mut s, 1, AgentStatus::Available);
    set_status(&mut s, 2, AgentStatus::Paused);
    step(&mut s, Event::AgentChanged(agent(1)), t(1));
    let claim = step(
        &mut s,
        Event::Claim {
            conversation: conv(1),
            agent: agent(1),
        },
        t(2),
    );
    let sup = step(
        &mut s,
        Event::SupervisorAssign {
            conversation: conv(2),
            agent: agent(2),
        },
        t(3),
    );
    assert_eq!(rule_of(&claim[0]), Some(Rule::ClaimFirstWins));
    assert_eq!(rule_of(&sup[0]), Some(Rule::SupervisorChoice));
    assert_eq!((owner(&s, 1), owner(&s, 2)), (Some(agent(1)), Some(agent(2))));
}

#[test]
fn round_robin_distributes_arrivals_that_only_waited_for_capacity_when_it_frees() {
    // Arrange: the only agent is online but full.
    let mut s = service(Policy::RoundRobin, 1, 1);
    step(&mut s, arrival(1, Webchat, t(0)), t(0));
    let d = step(&mut s, arrival(2, Webchat, t(1)), t(1));
    // Act: conversation 1 finishes.
    let freed = s.finish(conv(1)).unwrap();
    step(&mut s, Event::AgentChanged(freed), t(2));
    // Assert
    assert_eq!(rule_of(&d[0]), Some(Rule::NoEligibleAgent));
    assert_eq!(owner(&s, 2), Some(agent(1)));
}

// ----- least loaded ----------------------------------------------------------------------

#[test]
fn least_loaded_picks_the_agent_with_the_most_free_capacity() {
    let mut s = service(Policy::LeastLoaded, 3, 4);
    s.agent_mut(agent(1)).unwrap().assigned = 1;
    s.agent_mut(agent(2)).unwrap().max_concurrent = 6; // 6 - 1 = 5 free
    s.agent_mut(agent(2)).unwrap().assigned = 1;
    s.agent_mut(agent(3)).unwrap().assigned = 2;
    let d = step(&mut s, arrival(1, Webchat, t(0)), t(0));
    assert_eq!(owner(&s, 1), Some(agent(2)));
    let e = d[0].explanation().unwrap();
    assert_eq!(e.rule, Rule::LeastLoadedMostFree);
    assert_eq!(e.chosen, Some(agent(2)));
    assert_eq!(e.candidates.iter().map(|c| c.load).collect::<Vec<_>>(), vec![1, 1, 2]);
}

#[test]
fn least_loaded_breaks_ties_by_longest_idle_then_by_id() {
    let mut s = service(Policy::LeastLoaded, 3, 2);
    s.agent_mut(agent(1)).unwrap().idle_since = t(50);
    s.agent_mut(agent(2)).unwrap().idle_since = t(10);
    s.agent_mut(agent(3)).unwrap().idle_since = t(10);
    step(&mut s, arrival(1, Webchat, t(100)), t(100));
    assert_eq!(owner(&s, 1), Some(agent(2)), "longest idle, lower id");
    // Agent 2 now has one; 1 and 3 are tied on load, 3 idle longer.
    step(&mut s, arrival(2, Webchat, t(101)), t(101));
    assert_eq!(owner(&s, 2), Some(agent(3)));
}

#[test]
fn least_loaded_spreads_a_backlog_by_load_when_agents_come_online() {
    // Arrange: four arrivals while nobody is online.
    let mut s = service(Policy::LeastLoaded, 2, 3);
    set_status(&mut s, 1, AgentStatus::Offline);
    set_status(&mut s, 2, AgentStatus::Offline);
    for c in 1..=4 {
        step(&mut s, arrival(c, Webchat, t(c as i64)), t(c as i64));
    }
    // Act: agent 1 logs in, then agent 2.
    set_status(&mut s, 1, AgentStatus::Available);
    let first = step(&mut s, Event::AgentChanged(agent(1)), t(10));
    set_status(&mut s, 2, AgentStatus::Available);
    step(&mut s, Event::AgentChanged(agent(2)), t(11));
    // Assert: agent 1 filled to capacity (3), the 4th went to agent 2 when he came.
    assert_eq!(first.iter().filter(|d| matches!(d, Decision::Assign { .. })).count(), 3);
    assert_eq!(s.agent(agent(1)).unwrap().assigned, 3);
    assert_eq!(owner(&s, 4), Some(agent(2)));
    assert!(s.waiting.is_empty());
}

#[test]
fn least_loaded_sweep_spreads_a_backlog_evenly_over_agents_online_together() {
    let mut s = service(Policy::LeastLoaded, 2, 3);
    set_status(&mut s, 1, AgentStatus::Offline);
    set_status(&mut s, 2, AgentStatus::Offline);
    for c in 1..=4 {
        step(&mut s, arrival(c, Webchat, t(c as i64)), t(c as i64));
    }
    set_status(&mut s, 1, AgentStatus::Available);
    set_status(&mut s, 2, AgentStatus::Available);
    let d = step(&mut s, Event::Sweep, t(10));
    assert_eq!(d.len(), 4);
    assert_eq!(
        (s.agent(agent(1)).unwrap().assigned, s.agent(agent(2)).unwrap().assigned),
        (2, 2)
    );
}

#[test]
fn agents_skipped_for_a_conversation_say_why() {
    let mut s = service(Policy::LeastLoaded, 3, 1);
    s.agent_mut(agent(1)).unwrap().channels = vec![Whatsapp];
    set_status(&mut s, 2, AgentStatus::Paused);
    let d = step(&mut s, arrival(1, Webchat, t(0)), t(0));
    let skipped: Vec<_> = d[0]
        .explanation()
        .unwrap()
        .candidates
        .iter()
        .map(|c| c.skipped)
        .collect();
    assert_eq!(
        skipped,
        vec![
            Some(SkipReason::NotLoggedIntoChannel),
            Some(SkipReason::NotAvailable),
            None
        ]
    );
    assert_eq!(owner(&s, 1), Some(agent(3)));
}

#[test]
fn a_conversation_of_a_kind_the_service_does_not_take_is_held() {
    let mut s = service(Policy::LeastLoaded, 1, 1);
    s.rules.accepted_channels = vec![Whatsapp];
    let d = step(&mut s, arrival(1, Webchat, t(0)), t(0));
    assert_eq!(rule_of(&d[0]), Some(Rule::ChannelNotAccepted));
    assert!(is_waiting(&s, 1));
}

#[test]
fn higher_priority_conversations_leave_the_queue_first() {
    let mut s = service(Policy::LeastLoaded, 1, 1);
    set_status(&mut s, 1, AgentStatus::Offline);
    step(&mut s, arrival(1, Webchat, t(0)), t(0));
    let urgent = Waiting {
        conversation: conv(2),
        channel: Webchat,
        queued_at: t(5),
        arrived_with_nobody_online: false,
        priority: 9,
    };
    step(&mut s, Event::Arrived(urgent), t(5));
    set_status(&mut s, 1, AgentStatus::Available);
    step(&mut s, Event::AgentChanged(agent(1)), t(6));
    assert_eq!(owner(&s, 2), Some(agent(1)));
    assert!(is_waiting(&s, 1));
}

// ----- ordered offer ---------------------------------------------------------------------

#[test]
fn ordered_offer_offers_to_the_first_in_rotation_until_the_offer_timeout() {
    let mut s = service(Policy::OrderedOffer, 3, 1);
    let d = step(&mut s, arrival(1, Webchat, t(0)), t(0));
    assert!(matches!(&d[0], Decision::Offer { agent: a, expires_at, .. } if *a == agent(1) && *expires_at == t(30)));
    assert_eq!(rule_of(&d[0]), Some(Rule::OrderedOfferFirstInRotation));
    assert_eq!(offered_to(&s, 1), Some(agent(1)));
    assert_eq!(s.agent(agent(1)).unwrap().offered, 1);
}

#[test]
fn ordered_offer_timeout_withdraws_the_offer_and_the_agent_loses_his_turn() {
    // Arrange: the seed's queue: Lucas (1), Marina (2), Rafael (3).
    let mut s = service(Policy::OrderedOffer, 3, 1);
    step(&mut s, arrival(1, Webchat, t(0)), t(0));
    // Act
    let d = step(
        &mut s,
        Event::OfferExpired {
            conversation: conv(1),
            agent: agent(1),
        },
        t(30),
    );
    // Assert: withdrawn, Lucas to the back, offered to Marina.
    assert!(matches!(&d[0], Decision::Withdraw { agent: a, .. } if *a == agent(1)));
    assert_eq!(rule_of(&d[0]), Some(Rule::OfferTimedOutLosesTurn));
    assert!(matches!(&d[1], Decision::MoveToBack { agent: a } if *a == agent(1)));
    assert_eq!(offered_to(&s, 1), Some(agent(2)));
    let lucas = s.agent(agent(1)).unwrap().rotation;
    assert!(s
        .agents
        .iter()
        .filter(|a| a.id != agent(2))
        .all(|a| a.rotation <= lucas));
    // Marina times out too: Rafael gets it, then Lucas again only after Rafael.
    step(
        &mut s,
        Event::OfferExpired {
            conversation: conv(1),
            agent: agent(2),
        },
        t(60),
    );
    assert_eq!(offered_to(&s, 1), Some(agent(3)));
    step(
        &mut s,
        Event::OfferExpired {
            conversation: conv(1),
            agent: agent(3),
        },
        t(90),
    );
    assert_eq!(offered_to(&s, 1), Some(agent(1)), "until someone accepts");
}

#[test]
fn an_accepted_offer_becomes_an_assignment_on_the_same_capacity() {
    let mut s = service(Policy::OrderedOffer, 2, 1);
    step(&mut s, arrival(1, Webchat, t(0)), t(0));
    let d = step(
        &mut s,
        Event::OfferAccepted {
            conversation: conv(1),
            agent: agent(1),
        },
        t(10),
    );
    assert_eq!(rule_of(&d[0]), Some(Rule::OfferAccepted));
    assert_eq!(owner(&s, 1), Some(agent(1)));
    let a = s.agent(agent(1)).unwrap();
    assert_eq!((a.assigned, a.offered), (1, 0));
    assert!(s.offers.is_empty());
}

#[test]
fn the_agents_first_reply_as_a_claim_of_his_own_offer_accepts_it() {
    let mut s = service(Policy::OrderedOffer, 2, 1);
    step(&mut s, arrival(1, Webchat, t(0)), t(0));
    let d = step(
        &mut s,
        Event::Claim {
            conversation: conv(1),
            agent: agent(1),
        },
        t(3),
    );
    assert_eq!(rule_of(&d[0]), Some(Rule::OfferAccepted));
    assert_eq!(owner(&s, 1), Some(agent(1)));
}

#[test]
fn pending_offers_count_against_capacity() {
    let mut s = service(Policy::OrderedOffer, 1, 1);
    step(&mut s, arrival(1, Webchat, t(0)), t(0));
    let d = step(&mut s, arrival(2, Webchat, t(1)), t(1));
    assert_eq!(rule_of(&d[0]), Some(Rule::NoEligibleAgent));
    assert_eq!(
        d[0].explanation().unwrap().candidates[0].skipped,
        Some(SkipReason::AtCapacity)
    );
    assert!(is_waiting(&s, 2));
}

#[test]
fn ordered_offer_with_nobody_online_records_the_lead_and_offers_it_in_rotation_order_later() {
    let mut s = service(Policy::OrderedOffer, 2, 1);
    set_status(&mut s, 1, AgentStatus::Offline);
    set_status(&mut s, 2, AgentStatus::Offline);
    step(&mut s, arrival(1, Webchat, t(0)), t(0));
    step(&mut s, arrival(2, Webchat, t(1)), t(1));
    assert_eq!(s.waiting.len(), 2);
    set_status(&mut s, 1, AgentStatus::Available);
    set_status(&mut s, 2, AgentStatus::Available);
    step(&mut s, Event::Sweep, t(100));
    assert_eq!((offered_to(&s, 1), offered_to(&s, 2)), (Some(agent(1)), Some(agent(2))));
}

#[test]
fn an_early_or_stale_offer_expiry_changes_nothing() {
    let mut s = service(Policy::OrderedOffer, 2, 1);
    step(&mut s, arrival(1, Webchat, t(0)), t(0));
    assert!(step(
        &mut s,
        Event::OfferExpired {
            conversation: conv(1),
            agent: agent(1)
        },
        t(29)
    )
    .is_empty());
    assert!(step(
        &mut s,
        Event::OfferExpired {
            conversation: conv(1),
            agent: agent(2)
        },
        t(31)
    )
    .is_empty());
    step(
        &mut s,
        Event::OfferAccepted {
            conversation: conv(1),
            agent: agent(1),
        },
        t(29),
    );
    assert!(step(
        &mut s,
        Event::OfferExpired {
            conversation: conv(1),
            agent: agent(1)
        },
        t(31)
    )
    .is_empty());
}

#[test]
fn an_accept_after_the_deadline_is_refused() {
    let mut s = service(Policy::OrderedOffer, 1, 1);
    step(&mut s, arrival(1, Webchat, t(0)), t(0));
    let d = step(
        &mut s,
        Event::OfferAccepted {
            conversation: conv(1),
            agent: agent(1),
        },
        t(31),
    );
    assert_eq!(rejected_with(&d), Some(ErrorCode::OfferNotPending));
}

#[test]
fn an_accept_of_an_offer_made_to_someone_else_is_not_the_callers() {
    let mut s = service(Policy::OrderedOffer, 2, 1);
    step(&mut s, arrival(1, Webchat, t(0)), t(0));
    let offered = offered_to(&s, 1).unwrap();
    let other = if offered == agent(1) { agent(2) } else { agent(1) };
    let d = step(
        &mut s,
        Event::OfferAccepted {
            conversation: conv(1),
            agent: other,
        },
        t(1),
    );
    assert_eq!(rejected_with(&d), Some(ErrorCode::NotConversationOwner));
    // The one it was offered to still may.
    let d = step(
        &mut s,
        Event::OfferAccepted {
            conversation: conv(1),
            agent: offered,
        },
        t(2),
    );
    assert_eq!(rejected_with(&d), None);
}

#[test]
fn an_accept_of_an_assigned_conversation_is_done_for_its_holder_and_refused_to_others() {
    use crate::conversation::Status;
    assert_eq!(
        accept_of_assigned(Status::Assigned, Some(agent(1)), agent(1)),
        Some(Ok(()))
    );
    assert_eq!(
        accept_of_assigned(Status::Assigned, Some(agent(1)), agent(2)),
        Some(Err(ErrorCode::NotConversationOwner))
    );
    assert_eq!(accept_of_assigned(Status::Offered, Some(agent(1)), agent(2)), None);
    assert_eq!(accept_of_assigned(Status::Queued, None, agent(2)), None);
}

#[test]
fn only_the_services_agents_claim_from_its_queue() {
    let mut s = service(Policy::Manual, 1, 1);
    step(&mut s, arrival(1, Webchat, t(0)), t(0));
    let stranger = agent(999);
    let d = step(
        &mut s,
        Event::Claim {
            conversation: conv(1),
            agent: stranger,
        },
        t(1),
    );
    assert_eq!(rejected_with(&d), Some(ErrorCode::PermissionDenied));
    let d = step(
        &mut s,
        Event::Claim {
            conversation: conv(1),
            agent: agent(1),
        },
        t(2),
    );
    assert_eq!(rejected_with(&d), None);
}

#[test]
fn ordered_offer_agent_who_pauses_loses_his_offer_to_the_next_agent() {
    let mut s = service(Policy::OrderedOffer, 2, 1);
    step(&mut s, arrival(1, Webchat, t(0)), t(0));
    set_status(&mut s, 1, AgentStatus::Paused);
    let d = step(&mut s, Event::AgentChanged(agent(1)), t(5));
    assert_eq!(rule_of(&d[0]), Some(Rule::OfferLostAgentUnavailable));
    assert_eq!(offered_to(&s, 1), Some(agent(2)));
    assert_eq!(s.agent(agent(1)).unwrap().offered, 0);
}

#[test]
fn a_claim_of_a_conversation_offered_to_someone_else_is_not_waiting() {
    let mut s = service(Policy::OrderedOffer, 2, 1);
    step(&mut s, arrival(1, Webchat, t(0)), t(0));
    let d = step(
        &mut s,
        Event::Claim {
            conversation: conv(1),
            agent: agent(2),
        },
        t(1),
    );
    assert_eq!(rejected_with(&d), Some(ErrorCode::ConversationNotWaiting));
    let d = step(
        &mut s,
        Event::SupervisorAssign {
            conversation: conv(1),
            agent: agent(2),
        },
        t(1),
    );
    assert_eq!(rejected_with(&d), Some(ErrorCode::ConversationNotWaiting));
}

#[test]
fn a_customer_abandoning_an_offered_conversation_withdraws_the_offer_and_frees_capacity() {
    let mut s = service(Policy::OrderedOffer, 1, 1);
    step(&mut s, arrival(1, Webchat, t(0)), t(0));
    step(&mut s, arrival(2, Webchat, t(1)), t(1));
    let d = step(&mut s, Event::Abandoned { conversation: conv(1) }, t(2));
    assert!(matches!(&d[..2], [Decision::Withdraw { .. }, Decision::Remove { .. }]));
    assert_eq!(offered_to(&s, 2), Some(agent(1)), "freed capacity goes to the queue");
    let d = step(&mut s, Event::Abandoned { conversation: conv(9) }, t(3));
    assert!(d.is_empty());
}

// ----- offer or miss ---------------------------------------------------------------------

#[test]
fn offer_or_miss_timeout_closes_the_lead_as_missed_and_the_agent_keeps_his_place() {
    let mut s = service(Policy::OfferOrMiss, 3, 1);
    step(&mut s, arrival(1, Whatsapp, t(0)), t(0));
    let rotation_before = s.agent(agent(1)).unwrap().rotation;
    let d = step(
        &mut s,
        Event::OfferExpired {
            conversation: conv(1),
            agent: agent(1),
        },
        t(30),
    );
    assert!(
        matches!(&d[..], [Decision::Withdraw { .. }, Decision::MissedLead { agent: Some(a), .. }] if *a == agent(1))
    );
    assert_eq!(rule_of(&d[1]), Some(Rule::OfferTimedOutMissedLead));
    assert!(s.offers.is_empty() && s.waiting.is_empty());
    assert_eq!(s.agent(agent(1)).unwrap().rotation, rotation_before);
    // The next lead goes to the same agent: he kept his place.
    step(&mut s, arrival(2, Whatsapp, t(31)), t(31));
    assert_eq!(offered_to(&s, 2), Some(agent(1)));
}

#[test]
fn offer_or_miss_acceptance_uses_the_turn() {
    let mut s = service(Policy::OfferOrMiss, 2, 2);
    step(&mut s, arrival(1, Whatsapp, t(0)), t(0));
    let d = step(
        &mut s,
        Event::OfferAccepted {
            conversation: conv(1),
            agent: agent(1),
        },
        t(5),
    );
    assert!(matches!(&d[1], Decision::MoveToBack { agent: a } if *a == agent(1)));
    step(&mut s, arrival(2, Whatsapp, t(6)), t(6));
    assert_eq!(offered_to(&s, 2), Some(agent(2)));
}

#[test]
fn offer_or_miss_prefers_agents_without_a_pending_offer() {
    let mut s = service(Policy::OfferOrMiss, 2, 3);
    step(&mut s, arrival(1, Whatsapp, t(0)), t(0));
    step(&mut s, arrival(2, Whatsapp, t(1)), t(1));
    assert_eq!((offered_to(&s, 1), offered_to(&s, 2)), (Some(agent(1)), Some(agent(2))));
}

#[test]
fn offer_or_miss_with_nobody_online_is_a_missed_lead_at_once() {
    let mut s = service(Policy::OfferOrMiss, 1, 1);
    set_status(&mut s, 1, AgentStatus::Inactive);
    let d = step(&mut s, arrival(1, Whatsapp, t(0)), t(0));
    assert!(matches!(&d[..], [Decision::MissedLead { agent: None, .. }]));
    assert_eq!(rule_of(&d[0]), Some(Rule::NobodyAvailableMissedLead));
    assert!(s.waiting.is_empty());
}

#[test]
fn offer_or_miss_agent_who_leaves_turns_his_pending_offer_into_a_missed_lead() {
    let mut s = service(Policy::OfferOrMiss, 2, 1);
    step(&mut s, arrival(1, Whatsapp, t(0)), t(0));
    set_status(&mut s, 1, AgentStatus::Offline);
    let d = step(&mut s, Event::AgentChanged(agent(1)), t(5));
    assert!(matches!(
        &d[..],
        [Decision::Withdraw { .. }, Decision::MissedLead { .. }]
    ));
    assert_eq!(rule_of(&d[1]), Some(Rule::OfferLostMissedLead));
    assert_eq!(offered_to(&s, 1), None, "never redistributed");
}

#[test]
fn the_missed_lead_notice_goes_to_the_first_available_agent_in_rotation() {
    let mut s = service(Policy::OfferOrMiss, 3, 1);
    set_status(&mut s, 1, AgentStatus::Paused);
    s.agent_mut(agent(2)).unwrap().rotation = 10;
    assert_eq!(missed_lead_notice_target(&s), Some(agent(3)));
    set_status(&mut s, 2, AgentStatus::Offline);
    set_status(&mut s, 3, AgentStatus::Offline);
    assert_eq!(missed_lead_notice_target(&s), None);
}

#[test]
fn a_lead_an_agent_let_pass_is_told_a_day_later_and_an_unattended_one_a_quarter_hour_later() {
    let missed_at = t(1_000);
    assert_eq!(
        missed_lead_notice_due(missed_at, Some(agent(1))),
        missed_at + NOTICE_EVERY_DAY
    );
    assert_eq!(
        missed_lead_notice_due(missed_at, None),
        missed_at + NOTICE_EVERY_QUARTER_HOUR
    );
    assert_eq!(NOTICE_EVERY_QUARTER_HOUR, Duration::from_secs(900));
}

// ----- business hours --------------------------------------------------------------------

/// Open 09:00-18:00 UTC every weekday; 1970-01-05 was a Monday.
fn with_hours(mut s: Snapshot) -> Snapshot {
    let weekly = WeeklyHours::weekdays(&[OpenInterval::parse("09:00-18:00").unwrap()]);
    s.rules.hours = Some(BusinessHours::new("UTC", weekly, vec![]).unwrap());
    s
}
const MONDAY_8H: i64 = 4 * 86_400 + 8 * 3600;
const MONDAY_9H: i64 = 4 * 86_400 + 9 * 3600;

#[test]
fn least_loaded_holds_off_hours_arrivals_and_the_opening_sweep_distributes_them() {
    let mut s = with_hours(service(Policy::LeastLoaded, 2, 1));
    let d = step(&mut s, arrival(1, Webchat, t(MONDAY_8H)), t(MONDAY_8H));
    assert_eq!(rule_of(&d[0]), Some(Rule::OffHoursHeld));
    assert!(step(&mut s, Event::AgentChanged(agent(1)), t(MONDAY_8H + 60)).is_empty());
    step(&mut s, Event::Sweep, t(MONDAY_9H));
    assert!(owner(&s, 1).is_some());
}

#[test]
fn round_robin_off_hours_arrivals_count_as_nobody_online() {
    let mut s = with_hours(service(Policy::RoundRobin, 2, 1));
    step(&mut s, arrival(1, Webchat, t(MONDAY_8H)), t(MONDAY_8H));
    assert!(step(&mut s, Event::Sweep, t(MONDAY_9H)).is_empty());
    assert!(s.waiting[0].arrived_with_nobody_online);
}

#[test]
fn ordered_offer_off_hours_leads_are_offered_in_rotation_at_opening() {
    let mut s = with_hours(service(Policy::OrderedOffer, 2, 1));
    step(&mut s, arrival(1, Webchat, t(MONDAY_8H)), t(MONDAY_8H));
    assert!(is_waiting(&s, 1));
    step(&mut s, Event::Sweep, t(MONDAY_9H));
    assert_eq!(offered_to(&s, 1), Some(agent(1)));
}

#[test]
fn offer_or_miss_off_hours_arrivals_are_missed_leads() {
    let mut s = with_hours(service(Policy::OfferOrMiss, 2, 1));
    let d = step(&mut s, arrival(1, Whatsapp, t(MONDAY_8H)), t(MONDAY_8H));
    assert_eq!(rule_of(&d[0]), Some(Rule::OffHoursMissedLead));
}

// ----- supervisors, sweeps, determinism --------------------------------------------------

#[test]
fn a_supervisor_assignment_respects_capacity() {
    let mut s = service(Policy::Manual, 1, 1);
    step(&mut s, arrival(1, Webchat, t(0)), t(0));
    step(&mut s, arrival(2, Webchat, t(0)), t(0));
    step(
        &mut s,
        Event::SupervisorAssign {
            conversation: conv(1),
            agent: agent(1),
        },
        t(1),
    );
    let d = step(
        &mut s,
        Event::SupervisorAssign {
            conversation: conv(2),
            agent: agent(1),
        },
        t(1),
    );
    assert_eq!(rejected_with(&d), Some(ErrorCode::AgentAtCapacity));
    set_status(&mut s, 1, AgentStatus::Offline);
    s.finish(conv(1));
    let d = step(
        &mut s,
        Event::SupervisorAssign {
            conversation: conv(2),
            agent: agent(1),
        },
        t(2),
    );
    assert_eq!(rejected_with(&d), Some(ErrorCode::AgentNotAvailable));
}

#[test]
fn a_sweep_after_a_rebuild_expires_overdue_offers_per_policy() {
    let mut s = service(Policy::OrderedOffer, 2, 1);
    step(&mut s, arrival(1, Webchat, t(0)), t(0));
    let d = step(&mut s, Event::Sweep, t(45));
    assert_eq!(rule_of(&d[0]), Some(Rule::OfferTimedOutLosesTurn));
    assert_eq!(offered_to(&s, 1), Some(agent(2)));
}

#[test]
fn one_call_counts_what_it_already_gave() {
    // One agent with capacity 2 frees up with 3 queued: exactly 2 are given.
    let mut s = service(Policy::LeastLoaded, 1, 2);
    set_status(&mut s, 1, AgentStatus::Offline);
    for c in 1..=3 {
        step(&mut s, arrival(c, Webchat, t(c as i64)), t(c as i64));
    }
    set_status(&mut s, 1, AgentStatus::Available);
    let d = decide(&s, &Event::AgentChanged(agent(1)), t(9));
    let loads: Vec<u32> = d
        .iter()
        .filter_map(|d| d.explanation())
        .map(|e| e.candidates[0].load)
        .collect();
    assert_eq!(loads, vec![0, 1]);
    apply(&mut s, &d, t(9));
    assert_eq!(s.agent(agent(1)).unwrap().assigned, 2);
    assert!(is_waiting(&s, 3));
}

#[test]
fn deciding_again_on_the_same_snapshot_gives_the_same_decisions_and_a_handled_arrival_is_a_no_op() {
    let mut s = service(Policy::RoundRobin, 3, 1);
    let e = arrival(1, Webchat, t(0));
    assert_eq!(decide(&s, &e, t(0)), decide(&s, &e, t(0)));
    step(&mut s, e.clone(), t(0));
    assert!(decide(&s, &e, t(1)).is_empty());
}

#[test]
fn a_decision_serializes_to_json_that_answers_why_this_agent() {
    let mut s = service(Policy::LeastLoaded, 2, 2);
    s.agent_mut(agent(1)).unwrap().assigned = 1;
    let d = decide(&s, &arrival(1, Webchat, t(0)), t(0));
    let json = serde_json::to_value(&d[0]).unwrap();
    let assign = &json["assign"];
    assert_eq!(assign["explanation"]["rule"], "least_loaded_most_free");
    assert_eq!(assign["explanation"]["chosen"], agent(2).to_string());
    assert_eq!(assign["explanation"]["candidates"][0]["load"], 1);
    let back: Decision = serde_json::from_value(json).unwrap();
    assert_eq!(back, d[0]);
    let snap_json = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<Snapshot>(&snap_json).unwrap(), s);
}

fn directed(c: u128, a: u128) -> Event {
    Event::Directed {
        entry: Waiting {
            conversation: conv(c),
            channel: Whatsapp,
            queued_at: t(0),
            arrived_with_nobody_online: false,
            priority: 0,
        },
        agent: agent(a),
    }
}

#[test]
fn a_directed_conversation_goes_to_its_agent_and_never_to_anyone_else() {
    // Arrange: agent 1 has room, agent 2 is full, agent 3 is offline.
    let mut s = service(Policy::LeastLoaded, 3, 1);
    step(&mut s, arrival(1, Whatsapp, t(0)), t(0));
    let busy = owner(&s, 1).unwrap();
    let free = [agent(1), agent(2)].into_iter().find(|a| *a != busy).unwrap();
    set_status(&mut s, 3, AgentStatus::Offline);

    // Act / Assert: to the free agent it is assigned, with its own rule.
    let free_n = if free == agent(1) { 1 } else { 2 };
    let busy_n = 3 - free_n;
    let d = step(&mut s, directed(2, free_n), t(1));
    assert_eq!(owner(&s, 2), Some(free));
    assert_eq!(rule_of(&d[0]), Some(Rule::Directed));
    // To the full one, or the offline one: refused with the reason, and nobody else gets it.
    let d = step(&mut s, directed(3, busy_n), t(2));
    assert_eq!(rejected_with(&d), Some(ErrorCode::AgentAtCapacity));
    let d = step(&mut s, directed(4, 3), t(3));
    assert_eq!(rejected_with(&d), Some(ErrorCode::AgentNotAvailable));
    assert_eq!((owner(&s, 3), owner(&s, 4)), (None, None));
    assert!(!is_waiting(&s, 3) && !is_waiting(&s, 4), "never queued");
    // Directing it again once assigned: already assigned.
    let d = step(&mut s, directed(2, free_n), t(4));
    assert_eq!(rejected_with(&d), Some(ErrorCode::ConversationAlreadyAssigned));
}
