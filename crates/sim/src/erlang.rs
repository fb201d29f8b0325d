//! Queueing formulas the simulator is checked against.
//!
//! - **Erlang C** (M/M/N, no abandonment): `A` Erlangs offered to `N` agents, mean handle
//!   time `AHT`. P(wait) comes from the Erlang B recursion, `B(0) = 1`,
//!   `B(n) = A·B(n−1) / (n + A·B(n−1))`, then `C = N·B / (N − A·(1 − B))`; this never forms
//!   `A^N` or `N!`, so it is stable for thousands of agents. Service level
//!   `SL(t) = 1 − C·e^{−(N−A)·t/AHT}`, `ASA = C·AHT/(N−A)`.
//! - **Erlang A** (M/M/N+M, exponential patience with mean `1/θ`): the birth-death chain of
//!   the number in system (births `λ`, deaths `min(n,N)·μ + max(n−N,0)·θ`) solved for its
//!   stationary distribution, truncated where the tail is negligible, normalised on the fly
//!   so nothing overflows.

/// Erlang B blocking probability for `a` Erlangs on `n` servers.
pub fn erlang_b(n: u32, a: f64) -> f64 {
    let mut b = 1.0;
    for k in 1..=n {
        b = a * b / (k as f64 + a * b);
    }
    b
}

/// Erlang C: probability an arrival waits. 1 when the system is unstable (`a >= n`).
pub fn erlang_c(n: u32, a: f64) -> f64 {
    if a >= n as f64 {
        return 1.0;
    }
    let b = erlang_b(n, a);
    n as f64 * b / (n as f64 - a * (1.0 - b))
}

/// Fraction of arrivals answered within `t_secs` (M/M/N, FCFS).
pub fn service_level(n: u32, a: f64, aht_secs: f64, t_secs: f64) -> f64 {
    if a >= n as f64 {
        return 0.0;
    }
    1.0 - erlang_c(n, a) * (-(n as f64 - a) * t_secs / aht_secs).exp()
}

/// Average speed of answer (mean wait of all arrivals, all answered), seconds.
pub fn asa(n: u32, a: f64, aht_secs: f64) -> f64 {
    if a >= n as f64 {
        return f64::INFINITY;
    }
    erlang_c(n, a) * aht_secs / (n as f64 - a)
}

/// Erlang C figures for one operating point.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct ErlangC {
    pub p_wait: f64,
    pub service_level_20s: f64,
    pub asa_secs: f64,
    pub occupancy: f64,
}

impl ErlangC {
    pub fn new(n: u32, a: f64, aht_secs: f64) -> Self {
        Self {
            p_wait: erlang_c(n, a),
            service_level_20s: service_level(n, a, aht_secs, 20.0),
            asa_secs: asa(n, a, aht_secs),
            occupancy: (a / n as f64).min(1.0),
        }
    }
}

/// Erlang A figures: `n` agents, arrival rate `lambda`, service rate `mu`, abandonment
/// rate `theta` (= 1 / mean patience), all per second.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct ErlangA {
    /// Probability an arrival finds all agents busy (PASTA).
    pub p_wait: f64,
    /// Probability an arrival abandons.
    pub p_abandon: f64,
    /// Mean time in queue over all arrivals (answered and abandoned), seconds.
    pub mean_wait_secs: f64,
    /// Mean busy agents / n.
    pub occupancy: f64,
}

impl ErlangA {
    pub fn new(n: u32, lambda: f64, mu: f64, theta: f64) -> Self {
        assert!(
            n > 0 && lambda > 0.0 && mu > 0.0 && theta > 0.0,
            "erlang A needs positive rates"
        );
        // Unnormalised π_k, kept near 1 by rescaling everything summed so far when it grows.
        let mut p = 1.0f64; // π_k / π_0 (rescaled)
        let mut total = 1.0;
        let mut waiting_mass = 0.0; // Σ_{k≥n} π_k
        let mut queue_mass = 0.0; // Σ (k−n)+ π_k
        let mut busy_mass = 0.0; // Σ min(k,n) π_k
        let mut k: u64 = 0;
        loop {
            if k >= n as u64 {
                waiting_mass += p;
                queue_mass += (k - n as u64) as f64 * p;
            }
            busy_mass += (k.min(n as u64)) as f64 * p;
            let death = (k + 1).min(n as u64) as f64 * mu + (k + 1).saturating_sub(n as u64) as f64 * theta;
            p *= lambda / death;
            k += 1;
            total += p;
            if p > 1e200 {
                let s = 1e-200;
                p *= s;
                total *= s;
                waiting_mass *= s;
                queue_mass *= s;
                busy_mass *= s;
            }
            // Past the mode the terms shrink geometrically; stop when they no longer matter.
            if k > n as u64 && p < total * 1e-16 && lambda < death {
                break;
            }
        }
        let lq = queue_mass / total;
        Self {
            p_wait: waiting_mass / total,
            p_abandon: theta * lq / lambda,
            mean_wait_secs: lq / lambda,
            occupancy: busy_mass / total / n as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_c_matches_the_textbook_point_48_erlangs_on_55_agents() {
        // The textbook figures (23.9 %, 86.7 %, 8.2 s) are for an AHT of 240 s.
        let c = ErlangC::new(55, 48.0, 240.0);
        assert!((c.p_wait - 0.239).abs() < 0.001, "{}", c.p_wait);
        assert!((c.service_level_20s - 0.867).abs() < 0.001, "{}", c.service_level_20s);
        assert!((c.asa_secs - 8.2).abs() < 0.05, "{}", c.asa_secs);
        // The same load with a 180 s AHT: P(wait) is unchanged, the rest improves.
        let c = ErlangC::new(55, 48.0, 180.0);
        assert!((c.p_wait - 0.239).abs() < 0.001);
        assert!((c.service_level_20s - 0.890).abs() < 0.001, "{}", c.service_level_20s);
        assert!((c.asa_secs - 6.14).abs() < 0.01, "{}", c.asa_secs);
    }

    #[test]
    fn erlang_b_recursion_is_stable_for_thousands_of_agents() {
        let c = erlang_c(5000, 4900.0);
        assert!(c.is_finite() && c > 0.0 && c < 1.0);
        assert_eq!(erlang_c(10, 10.0), 1.0);
    }

    #[test]
    fn erlang_a_with_very_patient_customers_approaches_erlang_c() {
        let lambda = 48.0 / 180.0;
        let a = ErlangA::new(55, lambda, 1.0 / 180.0, 1e-7);
        assert!((a.p_wait - erlang_c(55, 48.0)).abs() < 1e-3, "{}", a.p_wait);
        assert!(a.p_abandon < 1e-5);
    }

    #[test]
    fn erlang_a_is_stable_even_when_overloaded() {
        // 60 Erlangs on 50 agents only works because customers give up.
        let a = ErlangA::new(50, 60.0 / 180.0, 1.0 / 180.0, 1.0 / 60.0);
        assert!(a.p_abandon > 0.1 && a.p_abandon < 0.5, "{}", a.p_abandon);
        assert!(a.p_wait > 0.7 && a.occupancy <= 1.0, "{a:?}");
    }
}
