//! Agents' roles: agent, supervisor, administrator. Supervisors see and act on the whole
//! tenant's work (any conversation, bulk actions, assignments); administrators manage the
//! tenant's agents and services and supervise too.

/// Whether an agent with these flags supervises.
pub fn supervises(supervisor: bool, admin: bool) -> bool {
    supervisor || admin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supervisors_and_administrators_supervise_and_plain_agents_do_not() {
        assert!(supervises(true, false));
        assert!(supervises(false, true));
        assert!(!supervises(false, false));
    }
}
