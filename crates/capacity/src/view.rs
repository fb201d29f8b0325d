//! The candidate view of a large service, kept in memory by the replica routing it.
//!
//! A view is what [`crate::Presence::load_candidates`] reads (the best `k` candidates per
//! channel kind in the policy's order, one online agent for a kind without candidates, and
//! extra agents), plus its *version* (`<marker>:<ver:<service>>`, see `scripts::VIEW`).
//! Every change to a member of the service moves the version in the same atomic step, so a
//! view whose version is still current is exactly what a read would return now. The lease
//! script tells the router whether its view is current (and sends a fresh one when not),
//! and the reservation script answers with the change it made (`DELTA`) or a fresh view
//! (`FULL`) — so a stream of decisions needs no separate read.
//!
//! The view is an optimisation of *reads* only: every reservation still re-checks the
//! marker, the fencing token, the agent's status, channel and capacity and that nobody holds
//! the conversation, atomically, whatever the view said.

use std::collections::HashMap;

use atende_domain::channel::ChannelKind;
use atende_domain::clock::Timestamp;
use atende_domain::ids::{AgentId, ServiceId};
use atende_domain::presence::AgentStatus;

use crate::{num, parse_kinds, reply_err, AgentRow, PresenceError};

/// What a view covers: the service, its channel kinds and how much of the index is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewSpec {
    pub service: ServiceId,
    pub kinds: Vec<ChannelKind>,
    /// Candidates per kind.
    pub k: usize,
    /// One online agent for a kind without candidates.
    pub online: bool,
    /// Read rotation places (the policy uses them).
    pub rotation: bool,
}

impl ViewSpec {
    /// The script arguments after the script's own: k, kinds, online, rotation.
    pub(crate) fn args(&self) -> [String; 4] {
        [
            self.k.to_string(),
            crate::kinds_list(&self.kinds),
            (self.online as u8).to_string(),
            (self.rotation as u8).to_string(),
        ]
    }
}

/// A candidate view and the version it is exact at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CandidateView {
    pub spec: ViewSpec,
    pub version: String,
    /// Per kind, in the spec's order: the listed agents, best first.
    pub lists: Vec<(ChannelKind, Vec<AgentId>)>,
    /// Every agent's row the view holds (the listed ones, the extras and any other member
    /// read since, all exact at `version`).
    pub rows: HashMap<AgentId, AgentRow>,
}

/// A view section of a script's reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViewReply {
    /// The whole view.
    Full(CandidateView),
    /// The caller's view is current at `version`.
    Fresh(String),
    /// Only these lists and rows changed (the caller's view was current before the change).
    Delta {
        version: String,
        lists: Vec<(ChannelKind, Vec<AgentId>)>,
        rows: Vec<(AgentId, AgentRow)>,
    },
    /// Nothing to learn (refused before any read: no marker, fenced).
    None,
}

fn row(c: &[String]) -> Option<(AgentId, AgentRow)> {
    Some((
        c[0].parse().ok()?,
        AgentRow {
            status: AgentStatus::parse(&c[1]).unwrap_or(AgentStatus::Offline),
            kinds: parse_kinds(&c[2]),
            assigned: num(Some(&c[3])),
            offered: num(Some(&c[4])),
            idle_since: Timestamp(num(Some(&c[5]))),
            rotation: num(Some(&c[6])),
        },
    ))
}

/// Parses a view section (`tag, version, …`).
pub(crate) fn parse(spec: &ViewSpec, s: &[String]) -> Result<ViewReply, PresenceError> {
    let bad = || reply_err("view", &s[..s.len().min(16)]);
    let (Some(tag), Some(version)) = (s.first(), s.get(1)) else {
        return Err(bad());
    };
    if tag == "FRESH" {
        return Ok(ViewReply::Fresh(version.clone()));
    }
    let n: usize = s.get(2).and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let mut at = 3;
    let mut lists = Vec::with_capacity(n);
    for _ in 0..n {
        let kind = s.get(at).and_then(|k| ChannelKind::parse(k)).ok_or_else(bad)?;
        let len: usize = s.get(at + 1).and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let ids = s.get(at + 2..at + 2 + len).ok_or_else(bad)?;
        lists.push((kind, ids.iter().filter_map(|i| i.parse().ok()).collect()));
        at += 2 + len;
    }
    let rest = s[at..].chunks_exact(7);
    if !rest.remainder().is_empty() {
        return Err(bad());
    }
    let rows: Vec<(AgentId, AgentRow)> = rest.filter_map(row).collect();
    Ok(match tag.as_str() {
        "FULL" => ViewReply::Full(CandidateView {
            spec: spec.clone(),
            version: version.clone(),
            lists,
            rows: rows.into_iter().collect(),
        }),
        "DELTA" => ViewReply::Delta {
            version: version.clone(),
            lists,
            rows,
        },
        _ => return Err(bad()),
    })
}

impl CandidateView {
    /// The snapshot rows for a step that also needs `extra` agents, in the order
    /// `load_candidates` gives them (lists in kind order, then the extras); `None` when the
    /// view lacks one of them (read again).
    pub fn rows_for(&self, extra: &[AgentId]) -> Option<Vec<(AgentId, AgentRow)>> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for id in self.lists.iter().flat_map(|(_, ids)| ids).chain(extra) {
            if seen.insert(*id) {
                out.push((*id, self.rows.get(id)?.clone()));
            }
        }
        Some(out)
    }

    /// Folds a reply into the view. Returns the view to keep: `None` when the reply says
    /// nothing usable (the caller reads again next time).
    pub fn update(mut self, reply: ViewReply) -> Option<CandidateView> {
        match reply {
            ViewReply::Full(v) => Some(v),
            reply => self.fold(reply).then_some(self),
        }
    }

    /// [`CandidateView::update`] in place; false when the view must not be used any more.
    pub fn fold(&mut self, reply: ViewReply) -> bool {
        match reply {
            ViewReply::Full(v) => {
                *self = v;
                true
            }
            ViewReply::Fresh(version) => version == self.version,
            ViewReply::Delta { version, lists, rows } => {
                self.version = version;
                self.lists = lists;
                self.rows.extend(rows);
                // Every listed agent must have his row (a delta only sends who changed or
                // entered); otherwise the view cannot stand in for a read.
                self.lists
                    .iter()
                    .all(|(_, ids)| ids.iter().all(|id| self.rows.contains_key(id)))
            }
            ViewReply::None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ViewSpec {
        ViewSpec {
            service: ServiceId::new(),
            kinds: vec![ChannelKind::Whatsapp],
            k: 2,
            online: true,
            rotation: false,
        }
    }

    fn r(assigned: u32) -> AgentRow {
        AgentRow {
            status: AgentStatus::Available,
            kinds: vec![ChannelKind::Whatsapp],
            assigned,
            offered: 0,
            idle_since: Timestamp(0),
            rotation: 0,
        }
    }

    #[test]
    fn a_delta_merges_and_a_delta_missing_a_listed_row_drops_the_view() {
        let (a, b, c) = (AgentId::new(), AgentId::new(), AgentId::new());
        let v = CandidateView {
            spec: spec(),
            version: "m:1".into(),
            lists: vec![(ChannelKind::Whatsapp, vec![a, b])],
            rows: [(a, r(0)), (b, r(0))].into_iter().collect(),
        };
        let v = v
            .update(ViewReply::Delta {
                version: "m:2".into(),
                lists: vec![(ChannelKind::Whatsapp, vec![b, c])],
                rows: vec![(a, r(1)), (c, r(0))],
            })
            .expect("complete delta");
        assert_eq!(v.version, "m:2");
        assert_eq!(
            v.rows_for(&[a]).unwrap().iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            vec![b, c, a]
        );
        assert_eq!(v.rows[&a].assigned, 1);
        assert!(v.rows_for(&[AgentId::new()]).is_none());
        let d = AgentId::new();
        assert!(v
            .clone()
            .update(ViewReply::Delta {
                version: "m:3".into(),
                lists: vec![(ChannelKind::Whatsapp, vec![c, d])],
                rows: vec![],
            })
            .is_none());
        assert!(v.clone().update(ViewReply::Fresh("m:9".into())).is_none());
        assert!(v.clone().update(ViewReply::Fresh("m:2".into())).is_some());
        assert!(v.update(ViewReply::None).is_none());
    }
}
