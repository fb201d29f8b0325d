//! The candidate view a router replica keeps in memory (see `atende_capacity::view`), against
//! a real Redis: a stale view costs a refusal that carries the fresh view, never an
//! over-capacity; deltas keep the view equal to a fresh read; the lease says when it is not.

use atende_capacity::{
    AgentRow, CandidateView, Check, Lease, Membership, Mode, Presence, Reservation, Reserved, ViewReply, ViewSpec,
};
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

fn logins(kinds: &[ChannelKind]) -> Vec<ChannelLogin> {
    kinds
        .iter()
        .map(|k| ChannelLogin {
            kind: *k,
            paused: false,
        })
        .collect()
}

/// Agents of one service, logged into `kinds`, available, with capacity `max` each.
async fn service(p: &Presence, policy: Policy, agents: &[(AgentId, u32, Vec<ChannelKind>)]) -> (TenantId, ServiceId) {
    let (t, s) = (TenantId::new(), ServiceId::new());
    let counters: Vec<_> = agents.iter().map(|(a, max, _)| (*a, *max, 0, 0)).collect();
    p.rebuild(t, &counters, &[], Timestamp(1)).await.unwrap();
    for (i, (a, max, kinds)) in agents.iter().enumerate() {
        let m = [Membership {
            service: s,
            policy,
            rotation_seed: i as u64,
        }];
        p.set_presence(
            t,
            *a,
            AgentStatus::Available,
            true,
            &logins(kinds),
            *max,
            &m,
            Timestamp(1),
        )
        .await
        .unwrap();
    }
    (t, s)
}

fn snapshot(s: ServiceId, policy: Policy, rows: Vec<(AgentId, AgentRow)>, max: impl Fn(AgentId) -> u32) -> Snapshot {
    let agents = rows
        .into_iter()
        .map(|(id, r)| AgentSnapshot {
            id,
            status: r.status,
            channels: r.kinds,
            max_concurrent: max(id),
            assigned: r.assigned,
            offered: r.offered,
            rotation: r.rotation,
            idle_since: r.idle_since,
        })
        .collect();
    Snapshot::new(s, ServiceRules::new(policy), agents)
}

fn arrival(kind: ChannelKind) -> (ConversationId, Event) {
    let c = ConversationId::new();
    (
        c,
        Event::Arrived(Waiting {
            conversation: c,
            channel: kind,
            queued_at: Timestamp(2),
            arrived_with_nobody_online: false,
            priority: 0,
        }),
    )
}

fn chosen(d: &[Decision]) -> Option<(AgentId, Mode)> {
    match d.first() {
        Some(Decision::Assign { agent, .. }) => Some((*agent, Mode::Assign)),
        Some(Decision::Offer { agent, .. }) => Some((*agent, Mode::Offer)),
        _ => None,
    }
}

#[tokio::test]
async fn a_stale_view_costs_a_refusal_that_carries_the_fresh_view_and_the_next_decision_picks_someone_else() {
    let r = redis().await;
    let p = &r.presence;
    let wa = ChannelKind::Whatsapp;
    let agents: Vec<(AgentId, u32, Vec<ChannelKind>)> = (0..3).map(|_| (AgentId::new(), 1, vec![wa])).collect();
    let (t, s) = service(p, Policy::LeastLoaded, &agents).await;
    let spec = ViewSpec {
        service: s,
        kinds: vec![wa],
        k: 5,
        online: true,
        rotation: false,
    };
    let Lease::Granted(fence) = p.acquire_lease(t, s, 60_000).await.unwrap() else {
        panic!("lease");
    };
    let mut view: CandidateView = p.read_view(t, &spec, &[]).await.unwrap();
    let decide_on = |view: &CandidateView| {
        let (c, event) = arrival(wa);
        let d = decide(
            &snapshot(s, Policy::LeastLoaded, view.rows_for(&[]).unwrap(), |_| 1),
            &event,
            Timestamp(2),
        );
        (c, chosen(&d).map(|(a, _)| a))
    };

    // Our first decision, through the view: the reply keeps the view current (a delta)
    let (c1, first) = decide_on(&view);
    let first = first.unwrap();
    let res = |c, a| Reservation {
        conversation: c,
        agent: a,
        service: s,
        mode: Mode::Assign,
        deadline: Timestamp::EPOCH,
    };
    let (got, reply) = p
        .reserve_viewing(
            t,
            &res(c1, first),
            Check::Routing,
            wa,
            1,
            Timestamp(3),
            Some(fence),
            &spec,
            Some(&view.version),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(got, Reserved::New);
    assert!(matches!(reply, ViewReply::Delta { .. }), "{reply:?}");
    view = view.update(reply).expect("a delta keeps the view");
    let fresh = p.read_view(t, &spec, &[first]).await.unwrap();
    assert_eq!(
        (&view.version, &view.lists, view.rows_for(&[first])),
        (&fresh.version, &fresh.lists, fresh.rows_for(&[first])),
        "the delta equals a fresh read"
    );

    // Another replica (another service sharing the agent, a claim…) takes the capacity our
    // view would give next, between two of our decisions
    let (_, next) = decide_on(&view);
    let next = next.unwrap();
    assert_ne!(next, first);
    let other = res(ConversationId::new(), next);
    assert_eq!(
        p.reserve(t, &other, Check::Routing, wa, 1, Timestamp(4), None)
            .await
            .unwrap(),
        Reserved::New
    );

    // Our stale view still offers him: the script refuses (capacity), and its reply is the
    // fresh view, read in the same atomic step
    let (c2, stale) = decide_on(&view);
    assert_eq!(stale, Some(next), "the view is stale");
    let (got, reply) = p
        .reserve_viewing(
            t,
            &res(c2, next),
            Check::Routing,
            wa,
            1,
            Timestamp(5),
            Some(fence),
            &spec,
            Some(&view.version),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(got, Reserved::Full(1));
    assert!(matches!(reply, ViewReply::Full(_)), "{reply:?}");
    view = view.update(reply).expect("a full reply replaces the view");

    // Deciding again on it picks the one agent with capacity left
    let (_, again) = decide_on(&view);
    let third = again.expect("someone has capacity");
    assert!(third != first && third != next);
    let (got, _) = p
        .reserve_viewing(
            t,
            &res(c2, third),
            Check::Routing,
            wa,
            1,
            Timestamp(6),
            Some(fence),
            &spec,
            Some(&view.version),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(got, Reserved::New);

    // Never over capacity
    for (a, max, _) in &agents {
        let live = p.agent(t, *a).await.unwrap();
        assert_eq!(live.assigned + live.offered, *max, "agent {a}");
    }
    r.cleanup().await;
}

#[tokio::test]
async fn the_lease_says_fresh_while_nothing_changed_and_reads_again_after_any_member_changed() {
    let r = redis().await;
    let p = &r.presence;
    let wa = ChannelKind::Whatsapp;
    let agents: Vec<(AgentId, u32, Vec<ChannelKind>)> = (0..4).map(|_| (AgentId::new(), 2, vec![wa])).collect();
    let (t, s) = service(p, Policy::LeastLoaded, &agents).await;
    let spec = ViewSpec {
        service: s,
        kinds: vec![wa],
        k: 2,
        online: true,
        rotation: false,
    };
    let view = p.read_view(t, &spec, &[]).await.unwrap();
    let lease = |version: Option<String>| {
        let spec = spec.clone();
        async move {
            p.acquire_lease_viewing(t, 60_000, &spec, version.as_deref(), &[])
                .await
                .unwrap()
        }
    };
    let (Lease::Granted(fence), reply) = lease(Some(view.version.clone())).await else {
        panic!("lease");
    };
    assert_eq!(reply, ViewReply::Fresh(view.version.clone()));
    assert_eq!(lease(None).await.0, Lease::Held);
    p.release_lease(t, s, fence).await.unwrap();

    // A member outside the view pauses: the version moves, the lease reads again
    let outside = agents.iter().map(|a| a.0).find(|a| !view.rows.contains_key(a)).unwrap();
    let paused = [ChannelLogin { kind: wa, paused: true }];
    let m = [Membership {
        service: s,
        policy: Policy::LeastLoaded,
        rotation_seed: 0,
    }];
    p.set_presence(t, outside, AgentStatus::Paused, true, &paused, 2, &m, Timestamp(9))
        .await
        .unwrap();
    let (Lease::Granted(fence), reply) = lease(Some(view.version.clone())).await else {
        panic!("lease");
    };
    let ViewReply::Full(fresh) = reply else {
        panic!("expected a full view, got {reply:?}");
    };
    assert_ne!(fresh.version, view.version);
    assert_eq!(fresh, p.read_view(t, &spec, &[]).await.unwrap());
    p.release_lease(t, s, fence).await.unwrap();
    r.cleanup().await;
}

#[tokio::test]
async fn deltas_keep_the_view_equal_to_a_fresh_read_among_foreign_changes_and_nobody_exceeds_capacity() {
    let r = redis().await;
    let p = &r.presence;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let kinds = [ChannelKind::Whatsapp, ChannelKind::Webchat];
    for policy in [Policy::LeastLoaded, Policy::RoundRobin, Policy::OfferOrMiss] {
        let agents: Vec<(AgentId, u32, Vec<ChannelKind>)> = (0..25)
            .map(|i| {
                let k = match i % 3 {
                    0 => vec![kinds[0]],
                    1 => vec![kinds[1]],
                    _ => kinds.to_vec(),
                };
                (AgentId::new(), rng.gen_range(1..4), k)
            })
            .collect();
        let max_of = |id: AgentId| agents.iter().find(|a| a.0 == id).map(|a| a.1).unwrap_or(0);
        let (t, s) = service(p, policy, &agents).await;
        // no online fallback: it is random, so two reads may differ
        let spec = ViewSpec {
            service: s,
            kinds: kinds.to_vec(),
            k: 3,
            online: false,
            rotation: policy.uses_rotation(),
        };
        let mut view = p.read_view(t, &spec, &[]).await.unwrap();
        let mut held: Vec<(ConversationId, AgentId)> = Vec::new();
        let (mut deltas, mut fulls) = (0, 0);
        for step in 0..150 {
            if rng.gen_bool(0.3) {
                // a foreign change: a reservation, a release or a presence change
                let (a, max, ks) = &agents[rng.gen_range(0..agents.len())];
                match rng.gen_range(0..3) {
                    0 => {
                        let c = ConversationId::new();
                        let res = Reservation {
                            conversation: c,
                            agent: *a,
                            service: s,
                            mode: Mode::Assign,
                            deadline: Timestamp::EPOCH,
                        };
                        if p.reserve(t, &res, Check::Routing, ks[0], *max, Timestamp(step), None)
                            .await
                            .unwrap()
                            == Reserved::New
                        {
                            held.push((c, *a));
                        }
                    }
                    1 if !held.is_empty() => {
                        let (c, a) = held.swap_remove(rng.gen_range(0..held.len()));
                        p.release(t, c, a, None).await.unwrap();
                    }
                    _ => {
                        let status = if rng.gen_bool(0.7) {
                            AgentStatus::Available
                        } else {
                            AgentStatus::Paused
                        };
                        let m = [Membership {
                            service: s,
                            policy,
                            rotation_seed: 0,
                        }];
                        let ls: Vec<ChannelLogin> = ks
                            .iter()
                            .map(|k| ChannelLogin {
                                kind: *k,
                                paused: status == AgentStatus::Paused,
                            })
                            .collect();
                        p.set_presence(t, *a, status, true, &ls, *max, &m, Timestamp(step))
                            .await
                            .unwrap();
                    }
                }
                continue;
            }
            // our decision, on the view as it is (possibly stale)
            let kind = kinds[rng.gen_range(0..2)];
            let (c, event) = arrival(kind);
            let d = decide(
                &snapshot(s, policy, view.rows_for(&[]).unwrap(), max_of),
                &event,
                Timestamp(2),
            );
            let Some((agent, mode)) = chosen(&d) else { continue };
            let res = Reservation {
                conversation: c,
                agent,
                service: s,
                mode,
                deadline: Timestamp(1_000_000),
            };
            let (got, reply) = p
                .reserve_viewing(
                    t,
                    &res,
                    Check::Routing,
                    kind,
                    max_of(agent),
                    Timestamp(step),
                    None,
                    &spec,
                    Some(&view.version),
                    &[],
                )
                .await
                .unwrap();
            match &reply {
                ViewReply::Delta { .. } => deltas += 1,
                ViewReply::Full(_) => fulls += 1,
                other => panic!("unexpected {other:?}"),
            }
            if got == Reserved::New {
                held.push((c, agent));
            }
            view = view.update(reply).expect("the reply keeps a view");
            let fresh = p.read_view(t, &spec, &[]).await.unwrap();
            assert_eq!(view.version, fresh.version, "step {step}");
            assert_eq!(view.lists, fresh.lists, "step {step}");
            assert_eq!(view.rows_for(&[]), fresh.rows_for(&[]), "step {step}, {policy}");
        }
        assert!(
            deltas > 20 && fulls > 5,
            "{policy}: {deltas} deltas, {fulls} full replies"
        );
        for (a, max, _) in &agents {
            let live = p.agent(t, *a).await.unwrap();
            assert!(live.assigned + live.offered <= *max, "agent {a} over capacity");
        }
    }
    r.cleanup().await;
}
