//! Every policy runs through the simulator and behaves as its rules say, in aggregate.

use atende_domain::routing::Policy;
use atende_sim::{run, Scenario};

fn scenario(policy: Policy) -> Scenario {
    let mut s = Scenario::mmn(8.0, 10, 120.0, None, 30_000, 3);
    s.policy = policy;
    s.offer.timeout_secs = 30.0;
    s.offer.accept_probability = 0.8;
    s.offer.accept_delay_secs = 5.0;
    s
}

#[test]
fn round_robin_is_work_conserving_like_least_loaded_with_capacity_one() {
    let rr = run(&scenario(Policy::RoundRobin));
    let ll = run(&scenario(Policy::LeastLoaded));
    assert_eq!(rr.counts.answered, rr.counts.arrivals);
    assert!(
        (rr.p_wait - ll.p_wait).abs() < 0.02,
        "rr {} vs ll {}",
        rr.p_wait,
        ll.p_wait
    );
}

#[test]
fn ordered_offer_answers_every_lead_eventually_despite_timeouts() {
    let r = run(&scenario(Policy::OrderedOffer));
    assert_eq!(r.counts.answered, r.counts.arrivals, "{r:?}");
    assert!(r.offer_timeouts > 0 && r.offers > r.counts.arrivals);
    assert_eq!(r.missed_rate, 0.0);
}

#[test]
fn offer_or_miss_turns_unanswered_offers_into_missed_leads() {
    let r = run(&scenario(Policy::OfferOrMiss));
    // About a fifth of offers are never answered; leads arriving with everyone full are missed too.
    assert!(r.missed_rate > 0.15 && r.missed_rate < 0.5, "{r:?}");
    assert_eq!(r.counts.answered + r.counts.missed, r.counts.arrivals);
    assert_eq!(r.counts.unanswered, 0);
}

#[test]
fn manual_leaves_everything_waiting_without_claims() {
    let mut s = scenario(Policy::Manual);
    s.arrivals = 500;
    s.warmup_arrivals = 0;
    let r = run(&s);
    assert_eq!(r.counts.unanswered, 500);
    assert_eq!(r.p_wait, 1.0);
}

#[test]
fn the_same_scenario_and_seed_give_the_same_report() {
    let s = scenario(Policy::OrderedOffer);
    assert_eq!(run(&s), run(&s));
}

#[test]
fn lognormal_and_fixed_handle_times_run_with_the_configured_mean() {
    let mut s = scenario(Policy::LeastLoaded);
    s.handle.distribution = atende_sim::scenario::Distribution::Lognormal;
    s.handle.sd_secs = Some(60.0);
    let r = run(&s);
    assert!((r.occupancy - 0.8).abs() < 0.03, "{r:?}");
    s.handle.distribution = atende_sim::scenario::Distribution::Fixed;
    let r = run(&s);
    assert!((r.occupancy - 0.8).abs() < 0.03, "{r:?}");
}
