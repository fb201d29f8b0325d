//! The discrete-event loop: a virtual clock, a heap of future events, and the routing
//! rules. The simulator owns no routing logic: every placement is `decide` + `apply` on one
//! long-lived snapshot, exactly as the router would run them, so what it measures is the
//! product's behaviour.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution as _, Exp, LogNormal};
use uuid::Uuid;

use atende_domain::channel::ChannelKind;
use atende_domain::ids::{AgentId, ConversationId, ServiceId};
use atende_domain::routing::{apply, decide, AgentSnapshot, Decision, Event, ServiceRules, Snapshot, Waiting};
use atende_domain::Timestamp;

use crate::report::{Counts, Report};
use crate::scenario::{Distribution, Scenario};

/// What happens at an instant. Conversation and agent are indices (see `conv_id`, `agent_id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Arrival,
    Finish(u64),
    Patience(u64),
    Accept(u64, u32),
    OfferTimeout(u64, u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Open,
    Answered,
    Abandoned,
    Missed,
}

struct Conv {
    arrived: Timestamp,
    wait_ms: i64,
    outcome: Outcome,
}

/// Runs the scenario to completion (every arrival answered, abandoned, missed or left
/// waiting with nothing more to happen) and reports on the arrivals after the warm-up.
pub fn run(scenario: &Scenario) -> Report {
    Sim::new(scenario).run()
}

struct Sim<'a> {
    sc: &'a Scenario,
    snap: Snapshot,
    rng: StdRng,
    heap: BinaryHeap<Reverse<(i64, u64, Ev)>>,
    seq: u64,
    now: Timestamp,
    convs: Vec<Conv>,
    interarrival: Exp<f64>,
    patience: Option<Exp<f64>>,
    accept_delay: Option<Exp<f64>>,
    lognormal: Option<LogNormal<f64>>,
    /// Conversations assigned right now, over all agents (for occupancy).
    busy: u64,
    /// ∫ busy dt over the measurement window, in conversation·ms.
    busy_area: f64,
    last_t: Timestamp,
    window: (Timestamp, Timestamp),
    offers: u64,
    offer_timeouts: u64,
}

fn conv_id(i: u64) -> ConversationId {
    ConversationId(Uuid::from_u128(i as u128 + 1))
}
fn conv_index(c: ConversationId) -> u64 {
    c.0.as_u128() as u64 - 1
}
fn agent_id(i: u32) -> AgentId {
    AgentId(Uuid::from_u128(i as u128 + 1))
}
fn agent_index(a: AgentId) -> u32 {
    a.0.as_u128() as u32 - 1
}
fn ms(secs: f64) -> Duration {
    Duration::from_millis((secs * 1000.0).round().max(0.0) as u64)
}

impl<'a> Sim<'a> {
    fn new(sc: &'a Scenario) -> Self {
        let mut rules = ServiceRules::new(sc.policy);
        rules.offer_timeout = ms(sc.offer.timeout_secs);
        let agents = (0..sc.agents.count)
            .map(|i| AgentSnapshot::available(agent_id(i), &[ChannelKind::Webchat], sc.agents.capacity, i as u64))
            .collect();
        let snap = Snapshot::new(ServiceId(Uuid::from_u128(1)), rules, agents);
        let lognormal = (sc.handle.distribution == Distribution::Lognormal).then(|| {
            let (m, s) = (sc.handle.mean_secs, sc.handle.sd_secs.unwrap_or(sc.handle.mean_secs));
            let sigma2 = (1.0 + (s * s) / (m * m)).ln();
            LogNormal::new(m.ln() - sigma2 / 2.0, sigma2.sqrt()).expect("validated lognormal parameters")
        });
        Self {
            sc,
            snap,
            rng: StdRng::seed_from_u64(sc.seed),
            heap: BinaryHeap::new(),
            seq: 0,
            now: Timestamp(0),
            convs: Vec::with_capacity((sc.arrivals + sc.warmup_arrivals) as usize),
            interarrival: Exp::new(sc.arrival_rate()).expect("validated arrival rate"),
            patience: sc
                .patience
                .as_ref()
                .map(|p| Exp::new(1.0 / p.mean_secs).expect("validated patience")),
            accept_delay: (sc.offer.accept_delay_secs > 0.0)
                .then(|| Exp::new(1.0 / sc.offer.accept_delay_secs).expect("validated accept delay")),
            lognormal,
            busy: 0,
            busy_area: 0.0,
            last_t: Timestamp(0),
            window: (Timestamp(i64::MAX), Timestamp(i64::MAX)),
            offers: 0,
            offer_timeouts: 0,
        }
    }

    fn total_arrivals(&self) -> u64 {
        self.sc.warmup_arrivals + self.sc.arrivals
    }

    fn schedule(&mut self, at: Timestamp, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse((at.0, self.seq, ev)));
    }

    fn run(mut self) -> Report {
        let first = Timestamp(0) + ms(self.interarrival.sample(&mut self.rng));
        self.schedule(first, Ev::Arrival);
        while let Some(Reverse((t, _, ev))) = self.heap.pop() {
            self.advance(Timestamp(t));
            match ev {
                Ev::Arrival => self.arrival(),
                Ev::Finish(i) => {
                    if let Some(agent) = self.snap.finish(conv_id(i)) {
                        self.busy -= 1;
                        self.event(Event::AgentChanged(agent));
                    }
                }
                Ev::Patience(i) => {
                    if self.convs[i as usize].outcome == Outcome::Open {
                        self.event(Event::Abandoned {
                            conversation: conv_id(i),
                        });
                    }
                }
                Ev::Accept(i, a) => {
                    self.event(Event::OfferAccepted {
                        conversation: conv_id(i),
                        agent: agent_id(a),
                    });
                }
                Ev::OfferTimeout(i, a) => {
                    self.event(Event::OfferExpired {
                        conversation: conv_id(i),
                        agent: agent_id(a),
                    });
                }
            }
        }
        self.report()
    }

    /// Moves the clock, integrating the busy count over the measurement window.
    fn advance(&mut self, t: Timestamp) {
        let (start, end) = self.window;
        let from = self.last_t.max(start);
        let to = t.min(end);
        if to > from {
            self.busy_area += self.busy as f64 * (to.0 - from.0) as f64;
        }
        self.last_t = t;
        self.now = t;
    }

    fn arrival(&mut self) {
        let i = self.convs.len() as u64;
        if i == self.sc.warmup_arrivals {
            self.window.0 = self.now;
        }
        self.convs.push(Conv {
            arrived: self.now,
            wait_ms: 0,
            outcome: Outcome::Open,
        });
        if i + 1 < self.total_arrivals() {
            let next = self.now + ms(self.interarrival.sample(&mut self.rng));
            self.schedule(next, Ev::Arrival);
        } else {
            self.window.1 = self.now;
        }
        if let Some(p) = self.patience {
            let at = self.now + ms(p.sample(&mut self.rng));
            self.schedule(at, Ev::Patience(i));
        }
        let entry = Waiting {
            conversation: conv_id(i),
            channel: ChannelKind::Webchat,
            queued_at: self.now,
            arrived_with_nobody_online: false,
            priority: 0,
        };
        self.event(Event::Arrived(entry));
    }

    /// Decides, applies, and turns the decisions into future events and outcomes.
    fn event(&mut self, event: Event) {
        let decisions = decide(&self.snap, &event, self.now);
        apply(&mut self.snap, &decisions, self.now);
        for d in decisions {
            match d {
                Decision::Assign { conversation, .. } => {
                    let i = conv_index(conversation);
                    let c = &mut self.convs[i as usize];
                    c.outcome = Outcome::Answered;
                    c.wait_ms = self.now.0 - c.arrived.0;
                    self.busy += 1;
                    let at = self.now + ms(self.handle_time());
                    self.schedule(at, Ev::Finish(i));
                }
                Decision::Offer {
                    conversation,
                    agent,
                    expires_at,
                    ..
                } => {
                    let (i, a) = (conv_index(conversation), agent_index(agent));
                    self.offers += 1;
                    self.schedule(expires_at, Ev::OfferTimeout(i, a));
                    if self.rng.gen::<f64>() < self.sc.offer.accept_probability {
                        let delay = self.accept_delay.map_or(0.0, |d| d.sample(&mut self.rng));
                        let at = self.now + ms(delay);
                        self.schedule(at, Ev::Accept(i, a));
                    }
                }
                Decision::Withdraw { .. } => {
                    if matches!(event, Event::OfferExpired { .. }) {
                        self.offer_timeouts += 1;
                    }
                }
                Decision::MissedLead { conversation, .. } => {
                    self.convs[conv_index(conversation) as usize].outcome = Outcome::Missed;
                }
                Decision::Remove { conversation } => {
                    self.convs[conv_index(conversation) as usize].outcome = Outcome::Abandoned;
                }
                Decision::Queue { .. } | Decision::MoveToBack { .. } | Decision::Reject { .. } => {}
            }
        }
    }

    fn handle_time(&mut self) -> f64 {
        let mean = self.sc.handle.mean_secs;
        match self.sc.handle.distribution {
            Distribution::Exponential => Exp::new(1.0 / mean).expect("validated mean").sample(&mut self.rng),
            Distribution::Fixed => mean,
            Distribution::Lognormal => self.lognormal.expect("built for lognormal").sample(&mut self.rng),
        }
    }

    fn report(self) -> Report {
        let mut n = Counts::default();
        let measured = &self.convs[self.sc.warmup_arrivals.min(self.convs.len() as u64) as usize..];
        let mut wait_sum_ms = 0i64;
        for c in measured {
            n.arrivals += 1;
            match c.outcome {
                Outcome::Answered => {
                    n.answered += 1;
                    wait_sum_ms += c.wait_ms;
                    if c.wait_ms <= 20_000 {
                        n.answered_within_20s += 1;
                    }
                    if c.wait_ms == 0 {
                        n.answered_at_once += 1;
                    }
                }
                Outcome::Abandoned => n.abandoned += 1,
                Outcome::Missed => n.missed += 1,
                Outcome::Open => n.unanswered += 1,
            }
        }
        let window_ms = (self.window.1 .0 - self.window.0 .0).max(1) as f64;
        let slots = (self.sc.agents.count * self.sc.agents.capacity) as f64;
        Report::new(
            self.sc,
            n,
            wait_sum_ms as f64 / 1000.0,
            self.busy_area / (slots * window_ms),
            self.offers,
            self.offer_timeouts,
            window_ms / 1000.0,
        )
    }
}
