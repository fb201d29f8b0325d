//! The scripts against a real Redis (`ATENDE__REDIS__URL`, default the local one), each test
//! under its own key prefix, removed at the end.

use atende_capacity::{Check, Lease, Membership, Mode, Presence, Released, Reservation, Reserved};
use atende_domain::channel::ChannelKind;
use atende_domain::clock::Timestamp;
use atende_domain::ids::{AgentId, ConversationId, ServiceId, TenantId};
use atende_domain::presence::{AgentStatus, ChannelLogin};
use atende_domain::routing::{decide, AgentSnapshot, Decision, Event, Policy, ServiceRules, Snapshot, Waiting};
use rand::{Rng, SeedableRng};

struct Redis {
    presence: Presence,
    prefix: String,
}

async fn redis() -> Redis {
    let url = std::env::var("ATENDE__REDIS__URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let conn = redis::aio::ConnectionManager::new(redis::Client::open(url).unwrap())
        .await
        .unwrap();
    let prefix = format!("ptest{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    Redis {
        presence: Presence::new(conn, &prefix),
        prefix,
    }
}

impl Redis {
    async fn cleanup(self) {
        let mut c = self.presence.connection();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query_async(&mut c)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL").arg(keys).query_async(&mut c).await.unwrap();
        }
    }
}

const WA: [ChannelLogin; 1] = [ChannelLogin {
    kind: ChannelKind::Whatsapp,
    paused: false,
}];

fn reservation(c: ConversationId, a: AgentId, s: ServiceId, mode: Mode) -> Reservation {
    Reservation {
        conversation: c,
        agent: a,
        service: s,
        mode,
        deadline: Timestamp(5_000),
    }
}

#[tokio::test]
async fn a_reservation_is_refused_until_capacity_was_rebuilt_and_then_checks_capacity_once_per_conversation() {
    let r = redis().await;
    let p = &r.presence;
    let (t, s, a) = (TenantId::new(), ServiceId::new(), AgentId::new());
    let m = [Membership {
        service: s,
        policy: Policy::LeastLoaded,
        rotation_seed: 1,
    }];
    p.set_presence(t, a, AgentStatus::Available, true, &WA, 1, &m, Timestamp(1))
        .await
        .unwrap();
    let first = reservation(ConversationId::new(), a, s, Mode::Assign);
    let second = reservation(ConversationId::new(), a, s, Mode::Assign);
    let wa = ChannelKind::Whatsapp;

    assert_eq!(
        p.reserve(t, &first, Check::Routing, wa, 1, Timestamp(2), None)
            .await
            .unwrap(),
        Reserved::NoMarker
    );
    p.rebuild(t, &[(a, 1, 0, 0)], &[], Timestamp(2)).await.unwrap();
    assert_eq!(
        p.reserve(t, &first, Check::Routing, wa, 1, Timestamp(3), None)
            .await
            .unwrap(),
        Reserved::New
    );
    assert_eq!(
        p.reserve(t, &first, Check::Routing, wa, 1, Timestamp(3), None)
            .await
            .unwrap(),
        Reserved::Again
    );
    assert_eq!(
        p.reserve(t, &second, Check::Routing, wa, 1, Timestamp(4), None)
            .await
            .unwrap(),
        Reserved::Full(1)
    );
    let other = AgentId::new();
    let taken = reservation(first.conversation, other, s, Mode::Assign);
    assert!(matches!(
        p.reserve(t, &taken, Check::Supervisor, wa, 9, Timestamp(4), None)
            .await
            .unwrap(),
        Reserved::Taken { .. }
    ));
    assert_eq!(
        p.release(t, first.conversation, a, None).await.unwrap(),
        Released::Released(Mode::Assign)
    );
    assert_eq!(p.release(t, first.conversation, a, None).await.unwrap(), Released::None);
    assert_eq!(p.agent(t, a).await.unwrap().assigned, 0);
    r.cleanup().await;
}

#[tokio::test]
async fn a_lost_lease_fences_reservations_and_an_accept_turns_the_offer_into_an_assignment() {
    let r = redis().await;
    let p = &r.presence;
    let (t, s, a) = (TenantId::new(), ServiceId::new(), AgentId::new());
    let m = [Membership {
        service: s,
        policy: Policy::OrderedOffer,
        rotation_seed: 1,
    }];
    p.rebuild(t, &[(a, 2, 0, 0)], &[], Timestamp(1)).await.unwrap();
    p.set_presence(t, a, AgentStatus::Available, true, &WA, 2, &m, Timestamp(1))
        .await
        .unwrap();
    let Lease::Granted(token) = p.acquire_lease(t, s, 60_000).await.unwrap() else {
        panic!("lease")
    };
    assert_eq!(p.acquire_lease(t, s, 60_000).await.unwrap(), Lease::Held);
    let offer = reservation(ConversationId::new(), a, s, Mode::Offer);
    let wa = ChannelKind::Whatsapp;

    assert_eq!(
        p.reserve(t, &offer, Check::Routing, wa, 2, Timestamp(2), Some(token + 1))
            .await
            .unwrap(),
        Reserved::Fenced
    );
    assert_eq!(
        p.reserve(t, &offer, Check::Routing, wa, 2, Timestamp(2), Some(token))
            .await
            .unwrap(),
        Reserved::New
    );
    let live = p.agent(t, a).await.unwrap();
    assert_eq!((live.assigned, live.offered), (0, 1));
    let accept = Reservation {
        mode: Mode::Assign,
        ..offer.clone()
    };
    assert_eq!(
        p.reserve(t, &accept, Check::Routing, wa, 2, Timestamp(3), Some(token))
            .await
            .unwrap(),
        Reserved::Accepted
    );
    let live = p.agent(t, a).await.unwrap();
    assert_eq!((live.assigned, live.offered), (1, 0));
    assert!(
        p.pop_due_offers(t, Timestamp(10_000), 1_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "accepted: no deadline left"
    );
    r.cleanup().await;
}

#[tokio::test]
async fn a_due_offer_is_popped_by_exactly_one_caller() {
    let r = redis().await;
    let p = &r.presence;
    let (t, s, a) = (TenantId::new(), ServiceId::new(), AgentId::new());
    let m = [Membership {
        service: s,
        policy: Policy::OfferOrMiss,
        rotation_seed: 1,
    }];
    p.rebuild(t, &[(a, 3, 0, 0)], &[], Timestamp(1)).await.unwrap();
    p.set_presence(t, a, AgentStatus::Available, true, &WA, 3, &m, Timestamp(1))
        .await
        .unwrap();
    let offer = reservation(ConversationId::new(), a, s, Mode::Offer);
    p.reserve(t, &offer, Check::Routing, ChannelKind::Whatsapp, 3, Timestamp(2), None)
        .await
        .unwrap();

    let pops = futures_join(p, t).await;

    assert_eq!(pops.iter().map(Vec::len).sum::<usize>(), 1);
    assert!(
        p.pop_due_offers(t, Timestamp(6_000), 30_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "hidden while handled"
    );
    assert_eq!(
        p.pop_due_offers(t, Timestamp(40_000), 30_000, 10).await.unwrap(),
        vec![offer.conversation],
        "back if unhandled"
    );
    r.cleanup().await;
}

async fn futures_join(p: &Presence, t: TenantId) -> Vec<Vec<ConversationId>> {
    let (a, b, c) = tokio::join!(
        p.pop_due_offers(t, Timestamp(6_000), 30_000, 10),
        p.pop_due_offers(t, Timestamp(6_000), 30_000, 10),
        p.pop_due_offers(t, Timestamp(6_000), 30_000, 10),
    );
    vec![a.unwrap(), b.unwrap(), c.unwrap()]
}

/// Random agents (status, capacity, load, idle time, rotation): the candidate index's best
/// must be whom `decide` picks looking at every member, for each automatic policy.
#[tokio::test]
async fn the_candidate_index_picks_whom_decide_picks_among_every_member() {
    let r = redis().await;
    let p = &r.presence;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for round in 0..30 {
        let policy = [
            Policy::LeastLoaded,
            Policy::RoundRobin,
            Policy::OrderedOffer,
            Policy::OfferOrMiss,
        ][round % 4];
        let (t, s) = (TenantId::new(), ServiceId::new());
        let n = rng.gen_range(5..40);
        let agents: Vec<(AgentId, u32)> = (0..n).map(|_| (AgentId::new(), rng.gen_range(1..4))).collect();
        let counters: Vec<_> = agents.iter().map(|(a, max)| (*a, *max, 0, 0)).collect();
        p.rebuild(t, &counters, &[], Timestamp(1)).await.unwrap();
        for (i, (a, max)) in agents.iter().enumerate() {
            let status = if rng.gen_bool(0.8) {
                AgentStatus::Available
            } else {
                AgentStatus::Paused
            };
            let m = [Membership {
                service: s,
                policy,
                rotation_seed: rng.gen_range(0..5) + i as u64 % 3,
            }];
            let paused = status == AgentStatus::Paused;
            let logins = [ChannelLogin {
                kind: ChannelKind::Whatsapp,
                paused,
            }];
            p.set_presence(t, *a, status, true, &logins, *max, &m, Timestamp(1))
                .await
                .unwrap();
            // random load, reserved at random times (idle_since)
            for _ in 0..rng.gen_range(0..=*max) {
                let mode = if rng.gen_bool(0.5) { Mode::Offer } else { Mode::Assign };
                let res = reservation(ConversationId::new(), *a, s, mode);
                let at = Timestamp(rng.gen_range(1_600_000_000_000..1_700_000_000_000));
                p.reserve(t, &res, Check::Supervisor, ChannelKind::Whatsapp, *max, at, None)
                    .await
                    .unwrap();
            }
        }
        let members: Vec<(AgentId, u64)> = agents.iter().map(|(a, _)| (*a, 0)).collect();
        let full = p.load_agents(t, s, &members).await.unwrap();
        let snapshot = |rows: Vec<(AgentId, atende_capacity::AgentRow)>| {
            let agents = rows
                .into_iter()
                .map(|(id, r)| AgentSnapshot {
                    id,
                    status: r.status,
                    channels: r.kinds,
                    max_concurrent: agents.iter().find(|(a, _)| *a == id).unwrap().1,
                    assigned: r.assigned,
                    offered: r.offered,
                    rotation: r.rotation,
                    idle_since: r.idle_since,
                })
                .collect();
            Snapshot::new(s, ServiceRules::new(policy), agents)
        };
        let arrival = Event::Arrived(Waiting {
            conversation: ConversationId::new(),
            channel: ChannelKind::Whatsapp,
            queued_at: Timestamp(2),
            arrived_with_nobody_online: false,
            priority: 0,
        });
        let chosen = |d: Vec<Decision>| match d.first() {
            Some(Decision::Assign { agent, .. } | Decision::Offer { agent, .. }) => Some(*agent),
            _ => None,
        };
        let everyone = chosen(decide(
            &snapshot(members.iter().map(|m| m.0).zip(full).collect()),
            &arrival,
            Timestamp(2),
        ));
        let indexed = p
            .load_candidates(t, s, &[ChannelKind::Whatsapp], 3, true, policy.uses_rotation(), &[])
            .await
            .unwrap();
        let from_index = chosen(decide(&snapshot(indexed), &arrival, Timestamp(2)));
        assert_eq!(from_index, everyone, "round {round}, policy {policy}");
    }
    r.cleanup().await;
}
