//! Explanations as the decision log stores them. Small services keep every candidate; large
//! ones keep the chosen agent and the best eligible few, plus counts of everyone else by why
//! they were skipped — so a log row stays a few kilobytes at 10,000 agents and still answers
//! "why did this agent get it, and who else could have?".

use atende_domain::routing::{Candidate, Explanation, Rule};
use serde_json::{json, Value};

/// Candidates kept in full when a service has more than this.
pub const TOP_K: usize = 20;

pub fn rule_name(rule: Rule) -> String {
    serde_json::to_value(rule)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `members`: how many agents the service has; when the candidates are fewer (a large
/// service routed through the candidate index) the log says so.
pub fn to_json(e: &Explanation, members: usize) -> Value {
    if e.candidates.len() <= TOP_K && members == e.candidates.len() {
        return serde_json::to_value(e).unwrap_or(Value::Null);
    }
    let mut kept: Vec<&Candidate> = e.candidates.iter().filter(|c| Some(c.agent) == e.chosen).collect();
    let mut eligible: Vec<&Candidate> = e
        .candidates
        .iter()
        .filter(|c| c.skipped.is_none() && Some(c.agent) != e.chosen)
        .collect();
    eligible.sort_by_key(|c| (c.load as i64 - c.max as i64, c.rotation, c.idle_since));
    kept.extend(eligible.iter().take(TOP_K.saturating_sub(kept.len())));
    let mut skipped = serde_json::Map::new();
    for c in &e.candidates {
        let key = match c.skipped {
            None => "eligible".to_string(),
            Some(r) => serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        };
        let n = skipped.get(&key).and_then(Value::as_u64).unwrap_or(0) + 1;
        skipped.insert(key, json!(n));
    }
    json!({
        "rule": e.rule,
        "chosen": e.chosen,
        "candidates": kept,
        "considered": e.candidates.len(),
        "members": members,
        "by_outcome": skipped,
    })
}
