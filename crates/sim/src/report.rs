//! What a run measured, as JSON and as a readable table.

use serde::Serialize;

use crate::erlang::{ErlangA, ErlangC};
use crate::scenario::Scenario;

/// Raw counts over the measured arrivals (after the warm-up).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub arrivals: u64,
    pub answered: u64,
    /// Answered with zero wait (assigned, or offered and accepted, on arrival).
    pub answered_at_once: u64,
    pub answered_within_20s: u64,
    pub abandoned: u64,
    /// Closed as missed leads (offer_or_miss).
    pub missed: u64,
    /// Still waiting when nothing more could happen (e.g. manual: nobody claims).
    pub unanswered: u64,
}

/// Fractions are of all measured arrivals unless said otherwise; times in seconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub policy: String,
    pub agents: u32,
    pub capacity: u32,
    pub erlangs: f64,
    /// Arrivals that did not get an agent at once (answered later, abandoned, missed or
    /// never answered), over all arrivals. Matches Erlang C's P(wait).
    pub p_wait: f64,
    /// Answered within 20 s, over ALL arrivals (abandoned and missed count as failures).
    /// With no abandonment this is Erlang C's `1 − C·e^{−(N−A)·20/AHT}`.
    pub service_level_20s: f64,
    /// Mean wait of the answered arrivals (answer = assignment, or acceptance of an offer).
    pub asa_secs: f64,
    pub abandon_rate: f64,
    pub missed_rate: f64,
    /// Time-average of assigned conversations over all agent slots (count × capacity);
    /// with capacity 1, the agents' occupancy.
    pub occupancy: f64,
    pub offers: u64,
    pub offer_timeouts: u64,
    /// Length of the measurement window (first to last measured arrival).
    pub measured_secs: f64,
    pub counts: Counts,
}

impl Report {
    pub(crate) fn new(
        sc: &Scenario,
        n: Counts,
        wait_sum_secs: f64,
        occupancy: f64,
        offers: u64,
        offer_timeouts: u64,
        measured_secs: f64,
    ) -> Self {
        let of_all = |x: u64| {
            if n.arrivals == 0 {
                0.0
            } else {
                x as f64 / n.arrivals as f64
            }
        };
        Self {
            policy: sc.policy.as_str().to_owned(),
            agents: sc.agents.count,
            capacity: sc.agents.capacity,
            erlangs: sc.erlangs(),
            p_wait: of_all(n.arrivals - n.answered_at_once),
            service_level_20s: of_all(n.answered_within_20s),
            asa_secs: if n.answered == 0 {
                0.0
            } else {
                wait_sum_secs / n.answered as f64
            },
            abandon_rate: of_all(n.abandoned),
            missed_rate: of_all(n.missed),
            occupancy,
            offers,
            offer_timeouts,
            measured_secs,
            counts: n,
        }
    }

    /// One JSON object on one line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serializes")
    }

    /// A two-column table for humans.
    pub fn to_table(&self) -> String {
        let rows: Vec<(&str, String)> = vec![
            ("policy", self.policy.clone()),
            ("agents x capacity", format!("{} x {}", self.agents, self.capacity)),
            ("offered load", format!("{:.2} Erlangs", self.erlangs)),
            ("arrivals measured", self.counts.arrivals.to_string()),
            ("P(wait)", pct(self.p_wait)),
            ("service level (20 s)", pct(self.service_level_20s)),
            ("ASA", format!("{:.2} s", self.asa_secs)),
            ("abandoned", pct(self.abandon_rate)),
            ("missed leads", pct(self.missed_rate)),
            ("occupancy", pct(self.occupancy)),
            (
                "offers / timeouts",
                format!("{} / {}", self.offers, self.offer_timeouts),
            ),
            ("never answered", self.counts.unanswered.to_string()),
        ];
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter().map(|(k, v)| format!("{k:<width$}  {v}\n")).collect()
    }
}

fn pct(x: f64) -> String {
    format!("{:.2} %", x * 100.0)
}

/// An M/M/N run next to the formulas, for `atende simulate mmn`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MmnReport {
    #[serde(flatten)]
    pub simulated: Report,
    pub erlang_c: ErlangC,
    /// Present when customers have a patience.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erlang_a: Option<ErlangA>,
}

impl MmnReport {
    /// One JSON object on one line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serializes")
    }

    pub fn to_table(&self) -> String {
        let mut out = self.simulated.to_table();
        let c = &self.erlang_c;
        out.push_str(&format!(
            "\nErlang C (no abandonment): P(wait) {}, service level {}, ASA {:.2} s, occupancy {}\n",
            pct(c.p_wait),
            pct(c.service_level_20s),
            c.asa_secs,
            pct(c.occupancy)
        ));
        if let Some(a) = &self.erlang_a {
            out.push_str(&format!(
                "Erlang A: P(wait) {}, abandoned {}\n",
                pct(a.p_wait),
                pct(a.p_abandon)
            ));
        }
        out
    }
}
