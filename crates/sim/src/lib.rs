//! A discrete-event simulator of one service, driving exactly the product's routing rules
//! (`atende_domain::routing::decide` + `apply`) on a virtual clock, so staffing questions
//! ("how many agents for 48 Erlangs?", "what does ordered_offer cost in waiting?") are
//! answered by the code that will route, and the code is checked against queueing theory.
//!
//! Layout:
//! - [`scenario`] the input (a TOML file or [`Scenario::mmn`]);
//! - [`engine`] the event loop: a heap of (time, sequence, event), one long-lived routing
//!   snapshot, `decide` called only for the event at hand (never a rebuild per event);
//! - [`report`] the output ([`Report`], [`MmnReport`]);
//! - [`erlang`] Erlang B/C and Erlang A, the yardsticks.
//!
//! # Model
//! Poisson arrivals on one channel kind into one service of `count` identical agents with
//! `capacity` simultaneous conversations each, always Available. Handle time starts at
//! assignment (or at acceptance of an offer) and is exponential, fixed or lognormal. With a
//! patience, each customer abandons after an exponential time if not yet answered (waiting
//! or still only offered). For offer policies each offer is answered with probability
//! `accept_probability` after an exponential delay (mean `accept_delay_secs`), or times out.
//! Clock resolution is the domain's millisecond `Timestamp`.
//!
//! # Conventions in the report
//! - `p_wait`: arrivals not answered at once, over all arrivals.
//! - `service_level_20s`: answered within 20 s, over **all** arrivals (abandoned and missed
//!   are failures). Without abandonment every arrival is answered, so this is Erlang C's
//!   `1 − C·e^{−(N−A)·t/AHT}`.
//! - `asa_secs`: mean wait of the answered.
//! - `abandon_rate`, `missed_rate`: over all arrivals.
//! - `occupancy`: time-average assigned conversations / (count × capacity), measured from
//!   the first to the last measured arrival.
//!
//! Only arrivals after `warmup_arrivals` are counted.
//!
//! # Scenario file
//! ```toml
//! policy = "least_loaded"        # manual | round_robin | least_loaded | ordered_offer | offer_or_miss
//! seed = 7                       # optional, default 1
//! arrivals = 100000              # measured arrivals
//! warmup_arrivals = 10000        # optional, default 0
//!
//! [arrival]                      # Poisson; exactly one of:
//! erlangs = 48.0                 #   offered load (rate = erlangs / handle.mean_secs)
//! # rate_per_hour = 960.0        #   or a rate
//!
//! [handle]
//! distribution = "exponential"   # exponential (default) | fixed | lognormal
//! mean_secs = 180.0
//! # sd_secs = 90.0               # lognormal only
//!
//! [agents]
//! count = 55
//! capacity = 1                   # optional, default 1
//!
//! [patience]                     # optional: exponential patience
//! mean_secs = 120.0
//!
//! [offer]                        # optional, offer policies only
//! timeout_secs = 60.0            # default 60
//! accept_probability = 0.95      # default 1
//! accept_delay_secs = 10.0       # default 10 (mean, exponential; 0 = at once)
//! ```
//! `scenarios/example.toml` is the Erlang C textbook point (48 Erlangs, 55 agents, 180 s).

pub mod engine;
pub mod erlang;
pub mod report;
pub mod scenario;

pub use engine::run;
pub use report::{Counts, MmnReport, Report};
pub use scenario::{Scenario, ScenarioError};

/// Simulates M/M/N (M/M/N+M with a patience) under least_loaded, capacity 1, and puts the
/// Erlang C (and Erlang A) figures beside the result.
pub fn run_mmn(
    erlangs: f64,
    agents: u32,
    aht_secs: f64,
    patience_secs: Option<f64>,
    arrivals: u64,
    seed: u64,
) -> Result<MmnReport, ScenarioError> {
    let scenario = Scenario::mmn(erlangs, agents, aht_secs, patience_secs, arrivals, seed);
    scenario.validate()?;
    let simulated = run(&scenario);
    let erlang_a = patience_secs.map(|p| erlang::ErlangA::new(agents, erlangs / aht_secs, 1.0 / aht_secs, 1.0 / p));
    Ok(MmnReport {
        simulated,
        erlang_c: erlang::ErlangC::new(agents, erlangs, aht_secs),
        erlang_a,
    })
}
