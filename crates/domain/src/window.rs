//! Provider messaging windows: when an agent may send free-form messages, and the expiry
//! band the agent's screen shows.
//!
//! WhatsApp: every customer message opens or refreshes a 24 h window; outside it only an
//! approved template may be sent (Meta answers 131047 otherwise). Messenger and Instagram:
//! 24 h standard, and a human agent may answer for 7 days with the HUMAN_AGENT tag, which
//! is what our agents' replies are. Web chat has no window.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::channel::ChannelKind;
use crate::clock::Timestamp;
use crate::error::{DomainError, ErrorCode};

pub const WHATSAPP_WINDOW: Duration = Duration::from_secs(24 * 3600);
pub const HUMAN_AGENT_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long after the customer's last message an agent may send free-form text on `kind`;
/// `None` when the channel has no window.
pub fn free_form_window(kind: ChannelKind) -> Option<Duration> {
    match kind {
        ChannelKind::Whatsapp => Some(WHATSAPP_WINDOW),
        ChannelKind::Messenger | ChannelKind::Instagram => Some(HUMAN_AGENT_WINDOW),
        ChannelKind::Webchat => None,
    }
}

/// Whether an agent may send a free-form (non-template) message now. A conversation the
/// customer never wrote in has no open window.
pub fn check_free_form(kind: ChannelKind, last_inbound: Option<Timestamp>, now: Timestamp) -> Result<(), DomainError> {
    let Some(window) = free_form_window(kind) else {
        return Ok(());
    };
    match last_inbound {
        Some(at) if now.since(at) < window => Ok(()),
        Some(at) => Err(DomainError::new(
            ErrorCode::OutsideCustomerWindow,
            format!("last customer message {} s ago", now.since(at).as_secs()),
        )),
        None => Err(DomainError::new(
            ErrorCode::OutsideCustomerWindow,
            "the customer has not written yet",
        )),
    }
}

/// When a customer's message opens the window: the provider's time of the message, not when
/// we processed it (a webhook delivered late must not extend the window); a provider clock
/// ahead of ours counts as now, and a message without a time as now.
pub fn opened_at(provider_time: Option<Timestamp>, received: Timestamp) -> Timestamp {
    provider_time.map_or(received, |t| t.min(received))
}

/// The expiry status shown beside a conversation (seed 004): time left > 16 h green,
/// > 8 h yellow, > 2 h red, otherwise black.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiryBand {
    Green,
    Yellow,
    Red,
    Black,
}

impl ExpiryBand {
    pub fn as_str(self) -> &'static str {
        match self {
            ExpiryBand::Green => "green",
            ExpiryBand::Yellow => "yellow",
            ExpiryBand::Red => "red",
            ExpiryBand::Black => "black",
        }
    }
}

pub fn expiry_band(left: Duration) -> ExpiryBand {
    const H: u64 = 3600;
    match left.as_secs() {
        s if s > 16 * H => ExpiryBand::Green,
        s if s > 8 * H => ExpiryBand::Yellow,
        s if s > 2 * H => ExpiryBand::Red,
        _ => ExpiryBand::Black,
    }
}

/// When the band of a window the customer opened at `last_inbound` changes, and to what:
/// yellow 16 h before it closes, red 8 h before, black 2 h before. Empty for a channel
/// without a window.
pub fn band_changes(kind: ChannelKind, last_inbound: Timestamp) -> Vec<(Timestamp, ExpiryBand)> {
    let Some(window) = free_form_window(kind) else {
        return Vec::new();
    };
    const H: i64 = 3_600_000;
    let closes = last_inbound.0.saturating_add(window.as_millis() as i64);
    [(16, ExpiryBand::Yellow), (8, ExpiryBand::Red), (2, ExpiryBand::Black)]
        .into_iter()
        .map(|(hours, band)| (Timestamp(closes - hours * H), band))
        .collect()
}

/// What the agent's card shows of the customer window: when it closes and its band. `None`
/// when the channel has no window or the customer never wrote (nothing is ticking).
pub fn window_status(
    kind: ChannelKind,
    last_inbound: Option<Timestamp>,
    now: Timestamp,
) -> Option<(Timestamp, ExpiryBand)> {
    let window = free_form_window(kind)?;
    let opened = last_inbound?;
    let closes = Timestamp(opened.0.saturating_add(window.as_millis() as i64));
    Some((closes, expiry_band(closes.since(now))))
}

/// Whether a conversation waiting or in progress on `kind` has expired at `now`: its
/// window lapsed with nobody able to answer it freely any more. `since` is the latest of the
/// customer's last message to this number and the conversation's opening (an agent-started
/// conversation gets a full window to be answered in). Web chat never expires.
pub fn lapsed(kind: ChannelKind, since: Timestamp, now: Timestamp) -> bool {
    free_form_window(kind).is_some_and(|w| now.since(since) >= w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_conversation_lapses_when_its_window_has_passed_and_web_chat_never_does() {
        let since = Timestamp::from_secs(1_000_000);
        let day = Duration::from_secs(24 * 3600);
        let just_before = since + day - Duration::from_millis(1);
        assert!(!lapsed(ChannelKind::Whatsapp, since, just_before));
        assert!(lapsed(ChannelKind::Whatsapp, since, since + day));
        assert!(!lapsed(ChannelKind::Messenger, since, since + day));
        assert!(lapsed(ChannelKind::Instagram, since, since + HUMAN_AGENT_WINDOW));
        assert!(!lapsed(ChannelKind::Webchat, since, since + 365 * day));
    }

    const HOUR: i64 = 3_600_000;

    #[test]
    fn the_window_opens_at_the_customers_message_time_never_later_than_now() {
        let now = Timestamp::from_secs(100_000);
        assert_eq!(opened_at(Some(Timestamp::from_secs(10)), now), Timestamp::from_secs(10));
        assert_eq!(opened_at(Some(Timestamp::from_secs(200_000)), now), now);
        assert_eq!(opened_at(None, now), now);
    }

    #[test]
    fn a_whatsapp_reply_within_24_hours_of_the_customer_is_allowed() {
        let now = Timestamp(100 * HOUR);
        assert!(check_free_form(ChannelKind::Whatsapp, Some(Timestamp(now.0 - 23 * HOUR)), now).is_ok());
    }

    #[test]
    fn a_whatsapp_reply_after_24_hours_needs_a_template() {
        let now = Timestamp(100 * HOUR);
        let err = check_free_form(ChannelKind::Whatsapp, Some(Timestamp(now.0 - 24 * HOUR)), now).unwrap_err();
        assert_eq!(err.code, ErrorCode::OutsideCustomerWindow);
        assert!(check_free_form(ChannelKind::Whatsapp, None, now).is_err());
    }

    #[test]
    fn messenger_agents_have_seven_days_and_web_chat_has_no_window() {
        let now = Timestamp(1000 * HOUR);
        assert!(check_free_form(ChannelKind::Messenger, Some(Timestamp(now.0 - 6 * 24 * HOUR)), now).is_ok());
        assert!(check_free_form(ChannelKind::Instagram, Some(Timestamp(now.0 - 8 * 24 * HOUR)), now).is_err());
        assert!(check_free_form(ChannelKind::Webchat, None, now).is_ok());
    }

    #[test]
    fn bands_follow_the_seed_thresholds() {
        let h = |x: u64| Duration::from_secs(x * 3600);
        assert_eq!(expiry_band(h(20)), ExpiryBand::Green);
        assert_eq!(expiry_band(h(16)), ExpiryBand::Yellow);
        assert_eq!(expiry_band(h(9)), ExpiryBand::Yellow);
        assert_eq!(expiry_band(h(8)), ExpiryBand::Red);
        assert_eq!(expiry_band(h(3)), ExpiryBand::Red);
        assert_eq!(expiry_band(h(2)), ExpiryBand::Black);
        assert_eq!(expiry_band(Duration::ZERO), ExpiryBand::Black);
    }

    #[test]
    fn a_cards_window_closes_a_window_after_the_customers_last_message() {
        let now = Timestamp(100 * HOUR);
        let wrote = Timestamp(now.0 - 10 * HOUR);
        assert_eq!(
            window_status(ChannelKind::Whatsapp, Some(wrote), now),
            Some((Timestamp(now.0 + 14 * HOUR), ExpiryBand::Yellow))
        );
        assert_eq!(
            window_status(ChannelKind::Whatsapp, Some(Timestamp(now.0 - 30 * HOUR)), now).map(|w| w.1),
            Some(ExpiryBand::Black),
            "closed: black"
        );
        assert_eq!(window_status(ChannelKind::Whatsapp, None, now), None);
        assert_eq!(window_status(ChannelKind::Webchat, Some(wrote), now), None);
    }

    #[test]
    fn a_whatsapp_window_turns_yellow_red_and_black_at_8_16_and_22_hours() {
        let wrote = Timestamp(100 * HOUR);
        let changes = band_changes(ChannelKind::Whatsapp, wrote);
        assert_eq!(
            changes,
            [
                (Timestamp(108 * HOUR), ExpiryBand::Yellow),
                (Timestamp(116 * HOUR), ExpiryBand::Red),
                (Timestamp(122 * HOUR), ExpiryBand::Black),
            ]
        );
        // Each change is the band the card shows from that moment on.
        for (at, band) in &changes {
            assert_eq!(window_status(ChannelKind::Whatsapp, Some(wrote), *at).unwrap().1, *band);
        }
        assert!(band_changes(ChannelKind::Webchat, wrote).is_empty());
    }

    proptest! {
        #[test]
        fn less_time_left_never_shows_a_better_band(a in 0u64..200_000, b in 0u64..200_000) {
            let (lo, hi) = (a.min(b), a.max(b));
            let rank = |x: ExpiryBand| x as u8; // Green=0 … Black=3
            prop_assert!(rank(expiry_band(Duration::from_secs(lo))) >= rank(expiry_band(Duration::from_secs(hi))));
        }
    }
}
