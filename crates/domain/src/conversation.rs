//! The conversation state machine, protocol numbers and the same-customer rule.
//!
//! Lifecycle: bot → queued → offered → assigned → finished (or missed, expired, abandoned).
//! A transfer opens a new protocol for the next leg; TTA never restarts.

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, ErrorCode};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Bot,
    Queued,
    Offered,
    Assigned,
    Finished,
    Missed,
    Expired,
    /// The customer stopped answering before an agent took the conversation (the bot's
    /// inactivity window with nowhere to send it, or a supervisor closing the queue entry).
    Abandoned,
}

impl Status {
    pub const ALL: [Status; 8] = [
        Status::Bot,
        Status::Queued,
        Status::Offered,
        Status::Assigned,
        Status::Finished,
        Status::Missed,
        Status::Expired,
        Status::Abandoned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Bot => "bot",
            Status::Queued => "queued",
            Status::Offered => "offered",
            Status::Assigned => "assigned",
            Status::Finished => "finished",
            Status::Missed => "missed",
            Status::Expired => "expired",
            Status::Abandoned => "abandoned",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Finished, missed, expired and abandoned conversations are closed for good.
    pub fn is_closed(self) -> bool {
        matches!(
            self,
            Status::Finished | Status::Missed | Status::Expired | Status::Abandoned
        )
    }

    /// The closed statuses, as the SQL list the store's queries and indexes use.
    pub const CLOSED_SQL: &'static str = "('finished', 'missed', 'expired', 'abandoned')";

    /// Waiting for or with an agent: what expires when the customer's window lapses (a
    /// conversation with the bot ends by the bot's own inactivity rule instead).
    pub fn expires_with_window(self) -> bool {
        matches!(self, Status::Queued | Status::Offered | Status::Assigned)
    }

    /// The statuses [`Status::expires_with_window`] holds for, as an SQL list.
    pub const EXPIRING_SQL: &'static str = "('queued', 'offered', 'assigned')";

    /// Whether an agent holds capacity for the conversation in this status (an offer counts
    /// against capacity while pending).
    pub fn holds_capacity(self) -> bool {
        matches!(self, Status::Offered | Status::Assigned)
    }

    /// Whether `self → to` is a legal move. Re-queueing an offered conversation (offer
    /// withdrawn) and a transfer (assigned → queued) are legal; nothing leaves a closed state.
    pub fn can_move_to(self, to: Status) -> bool {
        use Status::*;
        match (self, to) {
            (from, _) if from.is_closed() => false,
            (Bot, Queued | Assigned | Finished | Expired | Abandoned) => true,
            (Queued, Offered | Assigned | Missed | Finished | Expired | Abandoned) => true,
            (Offered, Assigned | Queued | Missed | Finished | Expired | Abandoned) => true,
            (Assigned, Queued | Finished | Expired) => true,
            _ => false,
        }
    }

    /// As [`Status::can_move_to`], as a `Result` with the stable error a caller returns.
    pub fn transition(self, to: Status) -> Result<Status, DomainError> {
        if self.can_move_to(to) {
            return Ok(to);
        }
        let code = match self {
            s if s.is_closed() => ErrorCode::ConversationClosed,
            Status::Assigned | Status::Offered if to == Status::Assigned => ErrorCode::ConversationAlreadyAssigned,
            _ => ErrorCode::ConversationNotWaiting,
        };
        Err(DomainError::new(code, format!("{} -> {}", self.as_str(), to.as_str())))
    }
}

/// Protocol number: `YYYYMMDD` followed by the tenant's daily sequence, at least 6 digits.
/// Sortable, human-readable over the phone, unique per tenant.
pub fn protocol_number(year: i32, month: u8, day: u8, seq: u64) -> String {
    format!("{year:04}{month:02}{day:02}{seq:06}")
}

/// What a new conversation for a contact must respect (the tenant flag "allow simultaneous
/// conversations of the same customer").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SameCustomerRule {
    pub allow_simultaneous: bool,
}

/// An open conversation of the contact, as the rule needs to see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenConversation<S> {
    pub id: S,
    pub service: Option<S>,
}

/// Where an inbound message of a contact goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement<S> {
    /// Append to this open conversation.
    Existing(S),
    /// Open a new conversation.
    New,
}

impl SameCustomerRule {
    /// An inbound message joins the contact's open conversation in the target service, else
    /// the contact's most recent open conversation wherever it is (after a transfer the
    /// customer keeps talking to the service that has him, whatever the flag); a new
    /// conversation opens only when none is open. The flag governs what may *open* a second
    /// conversation (see [`SameCustomerRule::check_open`]), not where a reply lands.
    pub fn place_inbound<S: Copy + PartialEq>(
        &self,
        open: &[OpenConversation<S>],
        target_service: Option<S>,
    ) -> Placement<S> {
        if let Some(c) = open.iter().find(|c| c.service == target_service) {
            return Placement::Existing(c.id);
        }
        match open.last() {
            Some(c) => Placement::Existing(c.id),
            None => Placement::New,
        }
    }

    /// Whether a new conversation (agent-initiated, transfer in, HSM) may open in
    /// `target_service`. Off: never while any is open. On: never two in one service.
    pub fn check_open<S: Copy + PartialEq>(
        &self,
        open: &[OpenConversation<S>],
        target_service: Option<S>,
    ) -> Result<(), DomainError> {
        let clash = if self.allow_simultaneous {
            open.iter().any(|c| c.service == target_service)
        } else {
            !open.is_empty()
        };
        if clash {
            Err(DomainError::new(
                ErrorCode::CustomerInService,
                "the contact has an open conversation",
            ))
        } else {
            Ok(())
        }
    }
}

/// Who moved a conversation (recorded with every transition).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    Customer,
    Bot,
    Router,
    Agent(uuid::Uuid),
    Supervisor(uuid::Uuid),
    /// A platform rule with no person behind it (inactivity, expiry).
    System,
}

impl Actor {
    /// The stored form: a kind and, for people, their id.
    pub fn parts(self) -> (&'static str, Option<uuid::Uuid>) {
        match self {
            Actor::Customer => ("customer", None),
            Actor::Bot => ("bot", None),
            Actor::Router => ("router", None),
            Actor::Agent(id) => ("agent", Some(id)),
            Actor::Supervisor(id) => ("supervisor", Some(id)),
            Actor::System => ("system", None),
        }
    }
}

impl SameCustomerRule {
    /// Whether `moving` (an open conversation of the contact) may be transferred into
    /// `target_service`: never into the service it is already in, never into a service
    /// where the contact has another open conversation, and with the flag off never while
    /// the contact has any other open conversation (seed: "Impede transferências para um
    /// serviço onde o cliente já tem um atendimento ativo"). Transfers by tag and in bulk
    /// apply this per conversation.
    pub fn check_transfer<S: Copy + PartialEq>(
        &self,
        open: &[OpenConversation<S>],
        moving: S,
        target_service: Option<S>,
    ) -> Result<(), DomainError> {
        if open.iter().any(|c| c.id == moving && c.service == target_service) {
            return Err(DomainError::new(
                ErrorCode::CustomerInService,
                "the conversation is already in this service",
            ));
        }
        self.check_transfer_to_agent(open, moving, target_service)
    }

    /// A transfer to a user (`@`): as [`SameCustomerRule::check_transfer`], except that
    /// staying in the same service (handing the conversation to a colleague) is allowed.
    pub fn check_transfer_to_agent<S: Copy + PartialEq>(
        &self,
        open: &[OpenConversation<S>],
        moving: S,
        target_service: Option<S>,
    ) -> Result<(), DomainError> {
        let others: Vec<OpenConversation<S>> = open.iter().copied().filter(|c| c.id != moving).collect();
        self.check_open(&others, target_service)
    }
}

/// An open conversation of the contact, as the agent-initiated check sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held<S, A> {
    pub id: S,
    pub status: Status,
    pub agent: Option<A>,
}

/// The checks of an agent starting a (WhatsApp) conversation, in the seed's order: the
/// agent at his maximum → `AGENT_AT_CAPACITY`; the customer with another agent (assigned or
/// offered) → `CUSTOMER_WITH_OTHER_AGENT`; already with this agent → `CUSTOMER_IN_SERVICE`;
/// otherwise the conversations the customer has in a bot or waiting in a queue are ended
/// (returned) and the agent's conversation starts.
pub fn check_agent_start<S: Copy, A: Copy + PartialEq>(
    agent: A,
    load: u32,
    max_concurrent: u32,
    open: &[Held<S, A>],
) -> Result<Vec<S>, DomainError> {
    if load >= max_concurrent {
        return Err(DomainError::new(
            ErrorCode::AgentAtCapacity,
            format!("{load} of {max_concurrent}"),
        ));
    }
    for c in open {
        if c.status.holds_capacity() {
            return Err(match c.agent {
                Some(a) if a == agent => DomainError::new(ErrorCode::CustomerInService, "already yours"),
                _ => DomainError::new(ErrorCode::CustomerWithOtherAgent, "assigned or offered"),
            });
        }
    }
    Ok(open.iter().map(|c| c.id).collect())
}

/// Longest external protocol the finish form accepts (seed 004: "pode ter até 13 caracteres").
pub const EXTERNAL_PROTOCOL_MAX: usize = 13;
/// Longest free description of a finished protocol.
pub const DESCRIPTION_MAX: usize = 2000;

/// What finishing a conversation in a service must respect.
#[derive(Clone, Copy, Debug)]
pub struct FinishPolicy<'a> {
    /// The service's qualification codes; empty means the service does not qualify.
    pub qualifications: &'a [String],
    /// The tenant's "external protocol required on finish" option.
    pub require_external_protocol: bool,
}

/// A validated finish: what the protocol records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finish {
    pub qualification: Option<String>,
    pub description: Option<String>,
    pub external_protocol: Option<String>,
}

impl FinishPolicy<'_> {
    /// Checks the agent's finish form. A service with a qualification list requires one of
    /// its codes; one without accepts none. Fields are trimmed; empty means absent.
    pub fn validate(
        &self,
        qualification: &str,
        description: &str,
        external_protocol: &str,
    ) -> Result<Finish, DomainError> {
        let qualification = Some(qualification.trim()).filter(|q| !q.is_empty());
        match qualification {
            None if !self.qualifications.is_empty() => {
                return Err(DomainError::new(
                    ErrorCode::InvalidQualification,
                    "a qualification is required",
                ))
            }
            Some(q) if !self.qualifications.iter().any(|c| c == q) => {
                return Err(DomainError::new(
                    ErrorCode::InvalidQualification,
                    format!("`{q}` is not a qualification of this service"),
                ))
            }
            _ => {}
        }
        let description = Some(description.trim()).filter(|d| !d.is_empty());
        if description.is_some_and(|d| d.chars().count() > DESCRIPTION_MAX) {
            return Err(DomainError::new(
                ErrorCode::InvalidArgument,
                format!("description must have at most {DESCRIPTION_MAX} characters"),
            ));
        }
        let external = Some(external_protocol.trim()).filter(|e| !e.is_empty());
        match external {
            None if self.require_external_protocol => {
                return Err(DomainError::new(
                    ErrorCode::ExternalProtocolRequired,
                    "external_protocol",
                ))
            }
            Some(e) if e.chars().count() > EXTERNAL_PROTOCOL_MAX || e.chars().any(char::is_control) => {
                return Err(DomainError::new(
                    ErrorCode::ExternalProtocolInvalid,
                    "external_protocol",
                ))
            }
            _ => {}
        }
        Ok(Finish {
            qualification: qualification.map(str::to_string),
            description: description.map(str::to_string),
            external_protocol: external.map(str::to_string),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn what_expires_with_the_window_may_move_to_expired_and_the_sql_list_says_the_same() {
        for s in Status::ALL {
            if s.expires_with_window() {
                assert!(s.can_move_to(Status::Expired), "{s:?}");
                assert!(Status::EXPIRING_SQL.contains(&format!("'{}'", s.as_str())));
            } else {
                assert!(!Status::EXPIRING_SQL.contains(&format!("'{}'", s.as_str())), "{s:?}");
            }
        }
    }

    #[test]
    fn a_queued_conversation_can_be_assigned_but_a_finished_one_cannot() {
        assert!(Status::Queued.can_move_to(Status::Assigned));
        assert_eq!(
            Status::Finished.transition(Status::Assigned).unwrap_err().code,
            ErrorCode::ConversationClosed
        );
    }

    #[test]
    fn assigning_an_assigned_conversation_reports_already_assigned() {
        assert_eq!(
            Status::Assigned.transition(Status::Assigned).unwrap_err().code,
            ErrorCode::ConversationAlreadyAssigned
        );
    }

    #[test]
    fn a_message_after_a_transfer_joins_the_conversation_where_the_customer_is_whatever_the_flag() {
        for allow_simultaneous in [false, true] {
            let rule = SameCustomerRule { allow_simultaneous };
            let open = [OpenConversation {
                id: 1,
                service: Some(30),
            }];
            assert_eq!(rule.place_inbound(&open, Some(20)), Placement::Existing(1));
            assert_eq!(rule.place_inbound::<u8>(&[], Some(20)), Placement::New);
        }
    }

    #[test]
    fn protocol_numbers_are_date_then_zero_padded_sequence() {
        assert_eq!(protocol_number(2026, 11, 21, 42), "20261121000042");
        assert_eq!(protocol_number(2026, 1, 2, 1_234_567), "202601021234567");
    }

    #[test]
    fn with_the_flag_off_a_message_joins_the_single_open_conversation_wherever_it_is() {
        let rule = SameCustomerRule {
            allow_simultaneous: false,
        };
        let open = [OpenConversation {
            id: 1,
            service: Some(10),
        }];
        assert_eq!(rule.place_inbound(&open, Some(20)), Placement::Existing(1));
        assert!(rule.check_open(&open, Some(20)).is_err());
    }

    #[test]
    fn with_the_flag_on_conversations_coexist_in_different_services_only() {
        let rule = SameCustomerRule {
            allow_simultaneous: true,
        };
        let open = [OpenConversation {
            id: 1,
            service: Some(10),
        }];
        assert!(rule.check_open(&open, Some(20)).is_ok());
        assert_eq!(
            rule.check_open(&open, Some(10)).unwrap_err().code,
            ErrorCode::CustomerInService
        );
    }

    #[test]
    fn the_customer_leaving_closes_a_waiting_conversation_but_not_an_assigned_one() {
        assert!(Status::Bot.can_move_to(Status::Abandoned));
        assert!(Status::Queued.can_move_to(Status::Abandoned));
        assert!(!Status::Assigned.can_move_to(Status::Abandoned));
        assert!(Status::Abandoned.is_closed());
        assert_eq!(
            Status::Abandoned.transition(Status::Queued).unwrap_err().code,
            ErrorCode::ConversationClosed
        );
    }

    #[test]
    fn the_closed_sql_list_names_exactly_the_closed_statuses() {
        for s in Status::ALL {
            assert_eq!(
                Status::CLOSED_SQL.contains(&format!("'{}'", s.as_str())),
                s.is_closed(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn a_transfer_into_the_service_the_conversation_is_in_is_refused() {
        let rule = SameCustomerRule {
            allow_simultaneous: true,
        };
        let open = [OpenConversation {
            id: 1,
            service: Some(10),
        }];
        assert_eq!(
            rule.check_transfer(&open, 1, Some(10)).unwrap_err().code,
            ErrorCode::CustomerInService
        );
        assert!(rule.check_transfer(&open, 1, Some(20)).is_ok());
    }

    #[test]
    fn a_transfer_into_a_service_where_the_contact_already_is_is_refused_with_the_flag_on() {
        let rule = SameCustomerRule {
            allow_simultaneous: true,
        };
        let open = [
            OpenConversation {
                id: 1,
                service: Some(10),
            },
            OpenConversation {
                id: 2,
                service: Some(20),
            },
        ];
        assert!(rule.check_transfer(&open, 1, Some(20)).is_err());
        assert!(rule.check_transfer(&open, 1, Some(30)).is_ok());
        let off = SameCustomerRule {
            allow_simultaneous: false,
        };
        assert!(
            off.check_transfer(&open, 1, Some(30)).is_err(),
            "flag off: another open conversation blocks"
        );
        assert!(off.check_transfer(&open[..1], 1, Some(30)).is_ok());
    }

    #[test]
    fn a_transfer_to_a_colleague_may_stay_in_the_service() {
        let rule = SameCustomerRule {
            allow_simultaneous: true,
        };
        let open = [
            OpenConversation {
                id: 1,
                service: Some(10),
            },
            OpenConversation {
                id: 2,
                service: Some(20),
            },
        ];
        assert!(rule.check_transfer_to_agent(&open, 1, Some(10)).is_ok());
        assert!(rule.check_transfer_to_agent(&open, 1, Some(20)).is_err());
    }

    fn quals() -> Vec<String> {
        vec!["venda".into(), "duvida".into()]
    }

    #[test]
    fn finishing_needs_one_of_the_services_qualifications_when_it_has_a_list() {
        let q = quals();
        let p = FinishPolicy {
            qualifications: &q,
            require_external_protocol: false,
        };
        assert_eq!(
            p.validate("", "", "").unwrap_err().code,
            ErrorCode::InvalidQualification
        );
        assert_eq!(
            p.validate("outra", "", "").unwrap_err().code,
            ErrorCode::InvalidQualification
        );
        let f = p.validate(" venda ", "  cliente comprou ", "").unwrap();
        assert_eq!(f.qualification.as_deref(), Some("venda"));
        assert_eq!(f.description.as_deref(), Some("cliente comprou"));
        let none = FinishPolicy {
            qualifications: &[],
            require_external_protocol: false,
        };
        assert!(none.validate("", "", "").is_ok());
        assert!(none.validate("venda", "", "").is_err());
    }

    #[test]
    fn the_external_protocol_is_required_where_the_tenant_says_and_has_at_most_13_characters() {
        let p = FinishPolicy {
            qualifications: &[],
            require_external_protocol: true,
        };
        assert_eq!(
            p.validate("", "", " ").unwrap_err().code,
            ErrorCode::ExternalProtocolRequired
        );
        assert_eq!(
            p.validate("", "", "12345678901234").unwrap_err().code,
            ErrorCode::ExternalProtocolInvalid
        );
        assert_eq!(
            p.validate("", "", "ABC-123456789")
                .unwrap()
                .external_protocol
                .as_deref(),
            Some("ABC-123456789")
        );
        assert_eq!(
            p.validate("", "", "ÁÉÍÓÚÃÕÇáéíó")
                .unwrap()
                .external_protocol
                .unwrap()
                .chars()
                .count(),
            12
        );
    }

    #[test]
    fn an_agent_start_checks_capacity_first_then_another_agent_then_ends_bots_and_queues() {
        let held = |id, status, agent| Held { id, status, agent };
        let busy = [held(1, Status::Assigned, Some(9))];
        assert_eq!(
            check_agent_start(7, 3, 3, &busy).unwrap_err().code,
            ErrorCode::AgentAtCapacity,
            "capacity is checked before the customer"
        );
        assert_eq!(
            check_agent_start(7, 0, 3, &busy).unwrap_err().code,
            ErrorCode::CustomerWithOtherAgent
        );
        let offered = [held(1, Status::Offered, Some(9))];
        assert_eq!(
            check_agent_start(7, 0, 3, &offered).unwrap_err().code,
            ErrorCode::CustomerWithOtherAgent
        );
        let mine = [held(1, Status::Assigned, Some(7))];
        assert_eq!(
            check_agent_start(7, 0, 3, &mine).unwrap_err().code,
            ErrorCode::CustomerInService
        );
        let waiting = [held(1, Status::Bot, None), held(2, Status::Queued, None)];
        assert_eq!(check_agent_start(7, 2, 3, &waiting).unwrap(), vec![1, 2]);
        assert!(check_agent_start::<u8, u8>(7, 0, 1, &[]).unwrap().is_empty());
    }

    proptest! {
        #[test]
        fn nothing_ever_leaves_a_closed_state(from in 0usize..8, to in 0usize..8) {
            let (from, to) = (Status::ALL[from], Status::ALL[to]);
            if from.is_closed() {
                prop_assert!(!from.can_move_to(to));
            }
        }

        #[test]
        fn an_allowed_transfer_never_leaves_two_open_in_one_service(
            flag: bool,
            services in proptest::collection::vec(0u8..4, 1..5),
            moving in 0usize..5,
            target in 0u8..4,
        ) {
            let rule = SameCustomerRule { allow_simultaneous: flag };
            let open: Vec<_> = services.iter().enumerate().map(|(i, s)| OpenConversation { id: i as u8, service: Some(*s) }).collect();
            let moving = (moving % open.len()) as u8;
            if rule.check_transfer(&open, moving, Some(target)).is_ok() {
                let after: Vec<_> = open.iter().map(|c| if c.id == moving { Some(target) } else { c.service }).collect();
                prop_assert_eq!(after.iter().filter(|s| **s == Some(target)).count(), 1);
                if !flag {
                    prop_assert_eq!(open.len(), 1);
                }
            }
        }

        #[test]
        fn a_valid_finish_respects_every_limit(q in "[a-z]{0,6}", d in ".{0,30}", e in ".{0,20}", req: bool) {
            let list = vec!["venda".to_string(), "abc".to_string()];
            let p = FinishPolicy { qualifications: &list, require_external_protocol: req };
            if let Ok(f) = p.validate(&q, &d, &e) {
                prop_assert!(list.contains(f.qualification.as_ref().unwrap()));
                if let Some(x) = &f.external_protocol { prop_assert!(x.chars().count() <= EXTERNAL_PROTOCOL_MAX); }
                prop_assert!(!req || f.external_protocol.is_some());
            }
        }

        #[test]
        fn the_rule_never_allows_two_open_in_one_service(
            flag: bool,
            services in proptest::collection::vec(0u8..4, 0..5),
            target in 0u8..4,
        ) {
            let rule = SameCustomerRule { allow_simultaneous: flag };
            let open: Vec<_> = services.iter().enumerate().map(|(i, s)| OpenConversation { id: i as u8, service: Some(*s) }).collect();
            if rule.check_open(&open, Some(target)).is_ok() {
                prop_assert!(!open.iter().any(|c| c.service == Some(target)));
            }
        }
    }
}
