//! Per-conversation indicators from stored timestamps (seed 004 "Mostrar detalhes"):
//! - TTA, total handling time: from the conversation's opening to its close (or `now` while
//!   open); it spans every transfer leg ("não zera ao se fazer uma transferência");
//! - waiting time: from entering a queue to the first assignment;
//! - TM1R, first response time: from the customer's first unanswered message to the first
//!   agent reply;
//! - TMR, mean response time: the mean, over every customer turn an agent answered, of the
//!   time from the turn's first message to the agent's reply.

use std::time::Duration;

use crate::clock::Timestamp;

/// One message of the conversation, as the indicators see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sample {
    /// The customer wrote.
    Customer(Timestamp),
    /// An agent replied (bot messages and internal comments are not replies).
    Agent(Timestamp),
}

impl Sample {
    fn at(self) -> Timestamp {
        match self {
            Sample::Customer(t) | Sample::Agent(t) => t,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Indicators {
    pub tta: Duration,
    pub waiting: Option<Duration>,
    pub first_response: Option<Duration>,
    pub mean_response: Option<Duration>,
    /// How many customer turns were answered (the TMR's denominator).
    pub responses: u32,
}

/// The conversation's timestamps the indicators need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub opened_at: Timestamp,
    pub queued_at: Option<Timestamp>,
    pub first_assigned_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
}

/// Computes the indicators; `samples` may come in any order.
pub fn indicators(span: Span, samples: &[Sample], now: Timestamp) -> Indicators {
    let end = span.closed_at.unwrap_or(now);
    let tta = end.since(span.opened_at);
    let waiting = span
        .first_assigned_at
        .map(|a| a.since(span.queued_at.unwrap_or(span.opened_at)));
    let mut sorted = samples.to_vec();
    // A customer message and a reply at the same millisecond: the message came first.
    sorted.sort_by_key(|s| (s.at(), matches!(s, Sample::Agent(_))));
    let mut pending: Option<Timestamp> = None;
    let mut times = Vec::new();
    for s in sorted {
        match s {
            Sample::Customer(t) => {
                pending.get_or_insert(t);
            }
            Sample::Agent(t) => {
                if let Some(since) = pending.take() {
                    times.push(t.since(since));
                }
            }
        }
    }
    let total: Duration = times.iter().sum();
    Indicators {
        tta,
        waiting,
        first_response: times.first().copied(),
        mean_response: (!times.is_empty()).then(|| total / times.len() as u32),
        responses: times.len() as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(secs: i64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    #[test]
    fn tta_runs_from_the_opening_across_legs_to_the_close() {
        let span = Span {
            opened_at: s(100),
            queued_at: Some(s(110)),
            first_assigned_at: Some(s(130)),
            closed_at: None,
        };
        let open = indicators(span, &[], s(400));
        assert_eq!(open.tta, Duration::from_secs(300));
        assert_eq!(open.waiting, Some(Duration::from_secs(20)));
        let closed = indicators(
            Span {
                closed_at: Some(s(250)),
                ..span
            },
            &[],
            s(9999),
        );
        assert_eq!(closed.tta, Duration::from_secs(150));
    }

    #[test]
    fn response_times_measure_each_customer_turn_to_the_next_reply() {
        let samples = [
            Sample::Customer(s(0)),
            Sample::Customer(s(5)),
            Sample::Agent(s(30)), // 30 s for the first turn
            Sample::Agent(s(40)), // a second reply answers nothing new
            Sample::Customer(s(100)),
            Sample::Agent(s(110)),    // 10 s
            Sample::Customer(s(200)), // unanswered
        ];
        let span = Span {
            opened_at: s(0),
            queued_at: None,
            first_assigned_at: None,
            closed_at: None,
        };
        let i = indicators(span, &samples, s(300));
        assert_eq!(i.first_response, Some(Duration::from_secs(30)));
        assert_eq!(i.mean_response, Some(Duration::from_secs(20)));
        assert_eq!(i.responses, 2);
        assert_eq!(i.waiting, None);
    }

    #[test]
    fn without_a_reply_there_is_no_response_time() {
        let span = Span {
            opened_at: s(0),
            queued_at: None,
            first_assigned_at: None,
            closed_at: None,
        };
        let i = indicators(span, &[Sample::Customer(s(1))], s(2));
        assert_eq!((i.first_response, i.mean_response, i.responses), (None, None, 0));
    }

    proptest! {
        #[test]
        fn indicators_are_bounded_and_order_free(
            mut raw in proptest::collection::vec((0i64..10_000, any::<bool>()), 0..40),
            close in proptest::option::of(10_000i64..20_000),
        ) {
            let samples: Vec<Sample> = raw.iter().map(|(t, c)| if *c { Sample::Customer(s(*t)) } else { Sample::Agent(s(*t)) }).collect();
            let span = Span { opened_at: s(0), queued_at: None, first_assigned_at: None, closed_at: close.map(s) };
            let i = indicators(span, &samples, s(30_000));
            raw.reverse();
            let reversed: Vec<Sample> = raw.iter().map(|(t, c)| if *c { Sample::Customer(s(*t)) } else { Sample::Agent(s(*t)) }).collect();
            prop_assert_eq!(i, indicators(span, &reversed, s(30_000)));
            if let (Some(first), Some(mean)) = (i.first_response, i.mean_response) {
                prop_assert!(first <= i.tta && mean <= i.tta);
            }
            prop_assert_eq!(i.responses as usize <= samples.iter().filter(|x| matches!(x, Sample::Agent(_))).count(), true);
            prop_assert_eq!(i.first_response.is_some(), i.responses > 0);
        }
    }
}
