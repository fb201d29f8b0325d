//! The routing benchmark (`cargo bench -p atende-router --bench route`): routing decisions
//! per second by number of agents, beside the raw Redis EVALSHA rate measured in the same
//! run on the same connection.
//!
//! What one *decision* is here — the router's hot path for a stream of arrivals to one large
//! service while one replica holds its lease, without Postgres: build the snapshot from the
//! candidate view kept in memory, `decide` the arrival, render the explanation as the
//! decision log stores it, and apply the decision with the reservation script (which
//! re-checks marker, fencing token, status, channel, capacity and ownership, re-indexes the
//! agent and answers with the view's update). One round trip. Nothing else touches the
//! service meanwhile, so every reply is a delta and the view is never read again — the
//! benchmark checks it. Postgres (the queue head, the commit of the assignment, the outbox)
//! is left out: it is the same per decision whatever the number of agents, and its raw rate
//! is the store's benchmark.
//!
//! Beside it: *read each time* is the decision as it was before the view (read the index,
//! then reserve: two round trips), measured in the same blocks; a *step* adds what
//! `Router::route` wraps around one event — taking the lease (the same script checks the
//! view: `FRESH`) and releasing it, three round trips in all; *full snapshot* reads every
//! member instead of the index — what small services do, shown for scale.
//!
//! Everything runs sequentially (one request in flight), like the EVALSHA baseline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use atende_capacity::{
    AgentRow, CandidateView, Check, Lease, Membership, Mode, Presence, PresenceError, Reservation, Reserved, ViewReply,
    ViewSpec,
};
use atende_domain::channel::ChannelKind;
use atende_domain::clock::{Clock, SystemClock, Timestamp};
use atende_domain::ids::{AgentId, ConversationId, ServiceId, TenantId};
use atende_domain::presence::{AgentStatus, ChannelLogin};
use atende_domain::routing::{decide, AgentSnapshot, Decision, Event, Policy, ServiceRules, Snapshot, Waiting};

use crate::engine::TOP_PER_KIND;
use crate::explain;

/// One line of the result table.
#[derive(Clone, Debug)]
pub struct BenchRow {
    pub agents: usize,
    pub evalsha_per_sec: f64,
    pub decisions_per_sec: f64,
    /// The decision reading the index every time (the path before the kept view).
    pub read_each_time_per_sec: f64,
    pub steps_per_sec: f64,
    pub full_snapshot_per_sec: f64,
    /// Mean microseconds per decision in: taking the candidates from the view, deciding
    /// (with the explanation's JSON), the reservation script (with the view's update).
    pub split_us: [f64; 3],
}

impl BenchRow {
    pub fn share_of_evalsha(&self) -> f64 {
        self.decisions_per_sec / self.evalsha_per_sec
    }
}

/// How much work each measurement does.
#[derive(Clone, Copy, Debug)]
pub struct BenchSize {
    pub decisions: usize,
    pub evalsha: usize,
    pub full_snapshot: usize,
}

struct Setup {
    tenant: TenantId,
    service: ServiceId,
    agents: Vec<AgentId>,
    max: u32,
}

fn rows_to_agents(rows: Vec<(AgentId, AgentRow)>, max: u32) -> Vec<AgentSnapshot> {
    rows.into_iter()
        .map(|(id, r)| AgentSnapshot {
            id,
            status: r.status,
            channels: r.kinds,
            max_concurrent: max,
            assigned: r.assigned,
            offered: r.offered,
            rotation: r.rotation,
            idle_since: r.idle_since,
        })
        .collect()
}

async fn setup(presence: &Presence, agents: usize, decisions: usize) -> Result<Setup, PresenceError> {
    let tenant = TenantId::new();
    let service = ServiceId::new();
    let ids: Vec<AgentId> = (0..agents).map(|_| AgentId::new()).collect();
    // Enough capacity that nobody fills up during the run (the score allows up to 1024).
    let max = ((decisions * 2) / agents + 4).min(1000) as u32;
    let now = SystemClock.now();
    let counters: Vec<(AgentId, u32, u32, u32)> = ids.iter().map(|a| (*a, max, 0, 0)).collect();
    for chunk in counters.chunks(1000) {
        presence.rebuild(tenant, chunk, &[], now).await?;
    }
    let login = [ChannelLogin {
        kind: ChannelKind::Whatsapp,
        paused: false,
    }];
    for (i, a) in ids.iter().enumerate() {
        let m = [Membership {
            service,
            policy: Policy::LeastLoaded,
            rotation_seed: i as u64,
        }];
        presence
            .set_presence(tenant, *a, AgentStatus::Available, true, &login, max, &m, now)
            .await?;
    }
    Ok(Setup {
        tenant,
        service,
        agents: ids,
        max,
    })
}

/// Where a decision takes its candidates from.
enum Source<'a> {
    /// The view kept in memory, updated by each reservation's reply (the hot path).
    View(&'a mut CandidateView),
    /// A read of the index (what each decision did before the view).
    Read,
    /// A read of every member.
    Full(&'a [(AgentId, u64)]),
}

fn spec(s: &Setup, rules: &ServiceRules) -> ViewSpec {
    ViewSpec {
        service: s.service,
        kinds: vec![ChannelKind::Whatsapp],
        k: TOP_PER_KIND,
        online: true,
        rotation: rules.policy.uses_rotation(),
    }
}

/// One decision; returns whether it reserved. `split` accumulates the time spent taking
/// the candidates, deciding and reserving.
async fn one_decision(
    presence: &Presence,
    s: &Setup,
    rules: &ServiceRules,
    source: Source<'_>,
    fence: u64,
    split: &mut [Duration; 3],
) -> Result<bool, PresenceError> {
    let now = SystemClock.now();
    let t0 = Instant::now();
    let rows = match &source {
        Source::View(view) => view.rows_for(&[]).expect("a complete view"),
        Source::Full(members) => {
            let rows = presence.load_agents(s.tenant, s.service, members).await?;
            members.iter().map(|(a, _)| *a).zip(rows).collect()
        }
        Source::Read => {
            presence
                .load_candidates(
                    s.tenant,
                    s.service,
                    &[ChannelKind::Whatsapp],
                    TOP_PER_KIND,
                    true,
                    rules.policy.uses_rotation(),
                    &[],
                )
                .await?
        }
    };
    let t1 = Instant::now();
    let members = s.agents.len();
    let snapshot = Snapshot::new(s.service, rules.clone(), rows_to_agents(rows, s.max));
    let conversation = ConversationId::new();
    let entry = Waiting {
        conversation,
        channel: ChannelKind::Whatsapp,
        queued_at: now,
        arrived_with_nobody_online: false,
        priority: 0,
    };
    let decisions = decide(&snapshot, &Event::Arrived(entry), now);
    let Some(Decision::Assign { agent, explanation, .. }) = decisions.first() else {
        return Ok(false);
    };
    std::hint::black_box(explain::to_json(explanation, members));
    let t2 = Instant::now();
    let r = Reservation {
        conversation,
        agent: *agent,
        service: s.service,
        mode: Mode::Assign,
        deadline: Timestamp::EPOCH,
    };
    let reserved = match source {
        Source::View(view) => {
            let (reserved, reply) = presence
                .reserve_viewing(
                    s.tenant,
                    &r,
                    Check::Routing,
                    ChannelKind::Whatsapp,
                    s.max,
                    now,
                    Some(fence),
                    &spec(s, rules),
                    Some(&view.version),
                    &[],
                )
                .await?;
            assert!(
                matches!(reply, ViewReply::Delta { .. }),
                "nothing else changed the service"
            );
            assert!(view.fold(reply), "a delta keeps the view");
            reserved
        }
        _ => {
            presence
                .reserve(
                    s.tenant,
                    &r,
                    Check::Routing,
                    ChannelKind::Whatsapp,
                    s.max,
                    now,
                    Some(fence),
                )
                .await?
        }
    };
    split[0] += t1 - t0;
    split[1] += t2 - t1;
    split[2] += t2.elapsed();
    Ok(reserved == Reserved::New)
}

async fn lease(presence: &Presence, s: &Setup, ttl_ms: u64) -> Result<u64, PresenceError> {
    loop {
        if let Lease::Granted(t) = presence.acquire_lease(s.tenant, s.service, ttl_ms).await? {
            return Ok(t);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// Measures one number of agents. Keys live under the presence's namespace prefix and are
/// deleted afterwards.
pub async fn bench_agents(presence: &Presence, agents: usize, size: BenchSize) -> Result<BenchRow, PresenceError> {
    let s = setup(presence, agents, size.decisions * 3 + size.full_snapshot).await?;
    let rules = ServiceRules::new(Policy::LeastLoaded);

    // Raw EVALSHA of a trivial script and routing decisions, on the same connection,
    // interleaved in blocks so background load on the machine weighs on both alike.
    let key = presence.keys().tenant_prefix(s.tenant) + "bench:trivial";
    presence.trivial(&key).await?;
    let fence = lease(presence, &s, 600_000).await?;
    let spec = spec(&s, &rules);
    for _ in 0..50 {
        one_decision(presence, &s, &rules, Source::Read, fence, &mut [Duration::ZERO; 3]).await?;
    }
    // The view is read once, when the lease is taken; then every reservation updates it.
    let mut view = presence.read_view(s.tenant, &spec, &[]).await?;
    let blocks = 20;
    let (mut evalsha_time, mut decisions_time, mut read_time) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut split = [Duration::ZERO; 3];
    let mut reserved = 0;
    for _ in 0..blocks {
        let t = Instant::now();
        for _ in 0..size.evalsha / blocks {
            presence.trivial(&key).await?;
        }
        evalsha_time += t.elapsed();
        let t = Instant::now();
        for _ in 0..size.decisions / blocks {
            reserved += one_decision(presence, &s, &rules, Source::View(&mut view), fence, &mut split).await? as usize;
        }
        decisions_time += t.elapsed();
        let t = Instant::now();
        for _ in 0..size.decisions / blocks / 2 {
            reserved +=
                one_decision(presence, &s, &rules, Source::Read, fence, &mut [Duration::ZERO; 3]).await? as usize;
        }
        read_time += t.elapsed();
        // the reads' reservations moved the version: read the view again (as the next
        // lease would), outside the measurement
        view = presence.read_view(s.tenant, &spec, &[]).await?;
    }
    let evalsha_per_sec = rate(size.evalsha / blocks * blocks, evalsha_time);
    let done = size.decisions / blocks * blocks;
    let reads = size.decisions / blocks / 2 * blocks;
    let decisions_per_sec = rate(done, decisions_time);
    let read_each_time_per_sec = rate(reads, read_time);
    assert_eq!(reserved, done + reads, "every decision must reserve");
    let split_us = split.map(|d| d.as_secs_f64() * 1e6 / done as f64);
    presence.release_lease(s.tenant, s.service, fence).await?;

    // Steps: what `Router::route` does around one event — take the lease (the same script
    // says the kept view is current), decide on the view, reserve, release the lease.
    let t = Instant::now();
    for _ in 0..size.decisions {
        let fence = loop {
            let (l, reply) = presence
                .acquire_lease_viewing(s.tenant, 5_000, &spec, Some(&view.version), &[])
                .await?;
            if let Lease::Granted(t) = l {
                assert!(matches!(reply, ViewReply::Fresh(_)), "nothing else changed the service");
                break t;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        one_decision(
            presence,
            &s,
            &rules,
            Source::View(&mut view),
            fence,
            &mut [Duration::ZERO; 3],
        )
        .await?;
        presence.release_lease(s.tenant, s.service, fence).await?;
    }
    let steps_per_sec = rate(size.decisions, t.elapsed());

    // Full snapshot, for scale.
    let members: Vec<(AgentId, u64)> = s.agents.iter().enumerate().map(|(i, a)| (*a, i as u64)).collect();
    let fence = lease(presence, &s, 600_000).await?;
    let t = Instant::now();
    for _ in 0..size.full_snapshot {
        one_decision(
            presence,
            &s,
            &rules,
            Source::Full(&members),
            fence,
            &mut [Duration::ZERO; 3],
        )
        .await?;
    }
    let full_snapshot_per_sec = rate(size.full_snapshot, t.elapsed());
    presence.release_lease(s.tenant, s.service, fence).await?;

    cleanup(presence, s.tenant).await?;
    Ok(BenchRow {
        agents,
        evalsha_per_sec,
        decisions_per_sec,
        read_each_time_per_sec,
        steps_per_sec,
        full_snapshot_per_sec,
        split_us,
    })
}

async fn cleanup(presence: &Presence, tenant: TenantId) -> Result<(), PresenceError> {
    let mut conn = presence.connection();
    let pattern = format!("{}*", presence.keys().tenant_prefix(tenant));
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(5000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            let _: i64 = redis::cmd("UNLINK").arg(&keys).query_async(&mut conn).await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// Runs the benchmark for each number of agents and returns the rows.
pub async fn bench_route(
    presence: Arc<Presence>,
    agent_counts: &[usize],
    size: BenchSize,
) -> Result<Vec<BenchRow>, PresenceError> {
    let mut rows = Vec::new();
    for &n in agent_counts {
        let full = BenchSize {
            full_snapshot: (size.full_snapshot * 100 / n).clamp(20, size.full_snapshot),
            ..size
        };
        rows.push(bench_agents(&presence, n, full).await?);
    }
    Ok(rows)
}

/// The table as printed and as BENCHMARKS.md shows it.
pub fn table(rows: &[BenchRow]) -> String {
    let base = rows.first().map(|r| r.decisions_per_sec).unwrap_or(1.0);
    let mut out = String::from(
        "| agents | raw EVALSHA/s | decisions/s | % of EVALSHA | slower than first row | µs view / decide / reserve | read each time: decisions/s (% of EVALSHA) | steps/s (with lease) | full snapshot decisions/s |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.0} % | {:.2}× | {:.0} / {:.0} / {:.0} | {:.0} ({:.0} %) | {:.0} | {:.0} |\n",
            r.agents,
            r.evalsha_per_sec,
            r.decisions_per_sec,
            100.0 * r.share_of_evalsha(),
            base / r.decisions_per_sec,
            r.split_us[0],
            r.split_us[1],
            r.split_us[2],
            r.read_each_time_per_sec,
            100.0 * r.read_each_time_per_sec / r.evalsha_per_sec,
            r.steps_per_sec,
            r.full_snapshot_per_sec,
        ));
    }
    out
}
