//! Scenario files (TOML): what to simulate. See the crate docs for the format.

use serde::{Deserialize, Serialize};

use atende_domain::routing::Policy;

/// Why a scenario cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("scenario is not valid TOML of the expected shape")]
    Parse(#[from] toml::de::Error),
    #[error("invalid scenario: {0}")]
    Invalid(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Distribution policy under test (`least_loaded`, `round_robin`, `ordered_offer`,
    /// `offer_or_miss`; `manual` has nobody to claim, so everything would wait).
    #[serde(with = "policy_name")]
    pub policy: Policy,
    /// RNG seed: the same scenario and seed give the same report.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Arrivals counted in the report (after the warm-up).
    pub arrivals: u64,
    /// Arrivals simulated first and left out of the report, so it starts from a loaded
    /// system rather than an empty one.
    #[serde(default)]
    pub warmup_arrivals: u64,
    pub arrival: Arrival,
    pub handle: HandleTime,
    pub agents: Agents,
    /// Customers abandon after an exponential patience with this mean; absent = never.
    #[serde(default)]
    pub patience: Option<Patience>,
    /// Offer behaviour (offer policies only).
    #[serde(default)]
    pub offer: Offer,
}

/// Poisson arrivals, given as a rate or as offered load.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arrival {
    /// Arrivals per hour.
    #[serde(default)]
    pub rate_per_hour: Option<f64>,
    /// Offered load in Erlangs; the rate is `erlangs / mean handle time`.
    #[serde(default)]
    pub erlangs: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandleTime {
    #[serde(default)]
    pub distribution: Distribution,
    /// Mean handle time (AHT), seconds.
    pub mean_secs: f64,
    /// Standard deviation, seconds (lognormal only).
    #[serde(default)]
    pub sd_secs: Option<f64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    #[default]
    Exponential,
    Fixed,
    Lognormal,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agents {
    pub count: u32,
    /// Simultaneous conversations per agent.
    #[serde(default = "one")]
    pub capacity: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patience {
    pub mean_secs: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    /// The service's offer timeout.
    #[serde(default = "default_offer_timeout")]
    pub timeout_secs: f64,
    /// Probability the agent answers an offer at all (the rest time out).
    #[serde(default = "one_f")]
    pub accept_probability: f64,
    /// Mean of the exponential delay before an answering agent accepts.
    #[serde(default = "default_accept_delay")]
    pub accept_delay_secs: f64,
}

impl Default for Offer {
    fn default() -> Self {
        Self {
            timeout_secs: default_offer_timeout(),
            accept_probability: 1.0,
            accept_delay_secs: default_accept_delay(),
        }
    }
}

fn default_seed() -> u64 {
    1
}
fn one() -> u32 {
    1
}
fn one_f() -> f64 {
    1.0
}
fn default_offer_timeout() -> f64 {
    60.0
}
fn default_accept_delay() -> f64 {
    10.0
}

impl Scenario {
    /// The classic M/M/N (+M with patience) setting: least_loaded, capacity 1, Poisson
    /// arrivals, exponential handle times, warm-up of a tenth of the arrivals.
    pub fn mmn(erlangs: f64, agents: u32, aht_secs: f64, patience_secs: Option<f64>, arrivals: u64, seed: u64) -> Self {
        Self {
            policy: Policy::LeastLoaded,
            seed,
            arrivals,
            warmup_arrivals: (arrivals / 10).max(1_000),
            arrival: Arrival {
                rate_per_hour: None,
                erlangs: Some(erlangs),
            },
            handle: HandleTime {
                distribution: Distribution::Exponential,
                mean_secs: aht_secs,
                sd_secs: None,
            },
            agents: Agents {
                count: agents,
                capacity: 1,
            },
            patience: patience_secs.map(|mean_secs| Patience { mean_secs }),
            offer: Offer::default(),
        }
    }

    pub fn from_toml(text: &str) -> Result<Self, ScenarioError> {
        let s: Scenario = toml::from_str(text)?;
        s.validate()?;
        Ok(s)
    }

    pub fn from_file(path: &std::path::Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Arrivals per second.
    pub fn arrival_rate(&self) -> f64 {
        match (self.arrival.rate_per_hour, self.arrival.erlangs) {
            (Some(r), _) => r / 3600.0,
            (None, Some(a)) => a / self.handle.mean_secs,
            (None, None) => 0.0,
        }
    }

    /// Offered load in Erlangs.
    pub fn erlangs(&self) -> f64 {
        self.arrival_rate() * self.handle.mean_secs
    }

    pub fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |m: &str| Err(ScenarioError::Invalid(m.to_owned()));
        let positive = |x: f64| x.is_finite() && x > 0.0;
        match (self.arrival.rate_per_hour, self.arrival.erlangs) {
            (Some(_), Some(_)) => return bad("arrival: give rate_per_hour or erlangs, not both"),
            (None, None) => return bad("arrival: give rate_per_hour or erlangs"),
            (Some(x), None) | (None, Some(x)) if !positive(x) => return bad("arrival rate must be positive"),
            _ => {}
        }
        if !positive(self.handle.mean_secs) {
            return bad("handle.mean_secs must be positive");
        }
        if self.handle.distribution == Distribution::Lognormal && !self.handle.sd_secs.is_some_and(positive) {
            return bad("handle.sd_secs (positive) is required for a lognormal handle time");
        }
        if self.agents.count == 0 || self.agents.capacity == 0 {
            return bad("agents.count and agents.capacity must be at least 1");
        }
        if self.arrivals == 0 {
            return bad("arrivals must be at least 1");
        }
        if self.patience.as_ref().is_some_and(|p| !positive(p.mean_secs)) {
            return bad("patience.mean_secs must be positive");
        }
        let o = &self.offer;
        if !positive(o.timeout_secs)
            || !(0.0..=1.0).contains(&o.accept_probability)
            || o.accept_delay_secs.is_nan()
            || o.accept_delay_secs < 0.0
        {
            return bad("offer: timeout_secs > 0, 0 <= accept_probability <= 1, accept_delay_secs >= 0");
        }
        Ok(())
    }
}

mod policy_name {
    use atende_domain::routing::Policy;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Policy, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(p.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Policy, D::Error> {
        let name = String::deserialize(d)?;
        Policy::parse(&name).ok_or_else(|| D::Error::custom(format!("unknown policy {name:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_scenario_parses_and_validates() {
        let s = Scenario::from_toml(include_str!("../scenarios/example.toml")).unwrap();
        assert_eq!(s.policy, Policy::LeastLoaded);
        assert!((s.erlangs() - 48.0).abs() < 1e-9);
    }

    #[test]
    fn a_scenario_with_both_rate_and_erlangs_is_refused() {
        let text =
            include_str!("../scenarios/example.toml").replace("erlangs = 48.0", "erlangs = 48.0\nrate_per_hour = 10.0");
        assert!(matches!(Scenario::from_toml(&text), Err(ScenarioError::Invalid(_))));
    }

    #[test]
    fn an_unknown_policy_or_field_is_a_parse_error() {
        let text = include_str!("../scenarios/example.toml").replace("least_loaded", "fifo");
        assert!(matches!(Scenario::from_toml(&text), Err(ScenarioError::Parse(_))));
        let text = format!("{}\nbogus = 1\n", include_str!("../scenarios/example.toml"));
        assert!(Scenario::from_toml(&text).is_err());
    }
}
