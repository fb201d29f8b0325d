//! Which agents have sockets on this replica, and how far each agent's feed goes.
//!
//! A socket never receives frames through memory: it learns that the agent's feed grew (the
//! head, a `watch` value that keeps only the latest) and reads the new frames from Postgres
//! at its own pace. So a slow socket holds no queue, and one socket never stalls another.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use uuid::Uuid;

type Key = (Uuid, Uuid);

struct Agent {
    head: watch::Sender<i64>,
    sockets: usize,
}

#[derive(Clone, Default)]
pub struct Hub {
    agents: Arc<Mutex<HashMap<Key, Agent>>>,
}

impl Hub {
    /// Registers a socket of `agent`, whose feed is known to reach at least `head`; the
    /// receiver sees every later head.
    pub fn connect(&self, tenant: Uuid, agent: Uuid, head: i64) -> watch::Receiver<i64> {
        let mut agents = self.agents.lock().expect("hub lock");
        let entry = agents.entry((tenant, agent)).or_insert_with(|| Agent {
            head: watch::Sender::new(head),
            sockets: 0,
        });
        entry.sockets += 1;
        raise(&entry.head, head);
        entry.head.subscribe()
    }

    /// Removes a socket; returns how many sockets the agent still has here.
    pub fn disconnect(&self, tenant: Uuid, agent: Uuid) -> usize {
        let mut agents = self.agents.lock().expect("hub lock");
        let Some(entry) = agents.get_mut(&(tenant, agent)) else {
            return 0;
        };
        entry.sockets = entry.sockets.saturating_sub(1);
        let left = entry.sockets;
        if left == 0 {
            agents.remove(&(tenant, agent));
        }
        left
    }

    /// The agent's feed reaches `head` (never moves back).
    pub fn advance(&self, tenant: Uuid, agent: Uuid, head: i64) {
        if let Some(entry) = self.agents.lock().expect("hub lock").get(&(tenant, agent)) {
            raise(&entry.head, head);
        }
    }

    /// The agents with a socket here.
    pub fn connected(&self) -> Vec<Key> {
        self.agents.lock().expect("hub lock").keys().copied().collect()
    }
}

fn raise(head: &watch::Sender<i64>, to: i64) {
    head.send_if_modified(|h| {
        let higher = to > *h;
        if higher {
            *h = to;
        }
        higher
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_socket_of_the_agent_sees_its_head_rise_and_never_fall() {
        let hub = Hub::default();
        let (t, a, b) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut r1 = hub.connect(t, a, 3);
        let mut r2 = hub.connect(t, a, 2);
        let r3 = hub.connect(t, b, 0);
        hub.advance(t, a, 7);
        assert!(r1.has_changed().unwrap() && r2.has_changed().unwrap());
        assert_eq!((*r1.borrow_and_update(), *r2.borrow_and_update()), (7, 7));
        hub.advance(t, a, 5);
        assert!(!r1.has_changed().unwrap(), "a lower head changes nothing");
        assert_eq!(*r3.borrow(), 0, "another agent's head is his own");
        assert_eq!(hub.disconnect(t, a), 1);
        assert_eq!(hub.disconnect(t, a), 0);
        assert_eq!(hub.connected(), vec![(t, b)]);
    }
}
