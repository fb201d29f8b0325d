//! The conversation state machine, protocol numbers and the same-customer rule.
//!
//! Lifecycle: bot → queued → offered → assigned → finished (or missed, expired). A
//! transfer opens a new protocol for the next leg; TTA never restarts.

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
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Bot,
        Status::Queued,
        Status::Offered,
        Status::Assigned,
        Status::Finished,
        Status::Missed,
        Status::Expired,
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
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Finished, missed and expired conversations are closed for good.
    pub fn is_closed(self) -> bool {
        matches!(self, Status::Finished | Status::Missed | Status::Expired)
    }

    /// Whether `self → to` is a legal move. Re-queueing an offered conversation (offer
    /// withdrawn) and a transfer (assigned → queued) are legal; nothing leaves a closed state.
    pub fn can_move_to(self, to: Status) -> bool {
        use Status::*;
        match (self, to) {
            (from, _) if from.is_closed() => false,
            (Bot, Queued | Assigned | Finished | Expired) => true,
            (Queued, Offered | Assigned | Missed | Finished | Expired) => true,
            (Offered, Assigned | Queued | Missed | Finished | Expired) => true,
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    proptest! {
        #[test]
        fn nothing_ever_leaves_a_closed_state(from in 0usize..7, to in 0usize..7) {
            let (from, to) = (Status::ALL[from], Status::ALL[to]);
            if from.is_closed() {
                prop_assert!(!from.can_move_to(to));
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
