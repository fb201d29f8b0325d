//! Atende's pure domain: the product rules, with no IO, no async and no clock of their own.
//!
//! Layout:
//! - [`channel`] channel kinds;
//! - [`ids`] typed identifiers shared by every crate;
//! - [`clock`] the `Timestamp` value every rule receives instead of calling `now()`;
//! - [`error`] stable error codes with their en / pt-BR messages;
//! - [`conversation`] the conversation state machine, protocol numbers, the same-customer
//!   rule for openings and transfers, and the finish form;
//! - [`bot`] the channel's menu bot;
//! - [`csat`] the satisfaction answer after a finish;
//! - [`metrics`] per-conversation indicators (TTA, waiting, TM1R, TMR);
//! - [`message`] message kinds and delivery-status ordering;
//! - [`phone`] Brazilian phone validation and WhatsApp id equivalence;
//! - [`presence`] agent presence derived from channel logins;
//! - [`roles`] who supervises;
//! - [`business_hours`] service opening hours with time zone and holidays;
//! - [`routing`] the five distribution policies: `decide(snapshot, event, now)`;
//! - [`template`] WhatsApp templates (HSM): checking a use, its text, its send components;
//! - [`window`] providers' customer-service windows and the expiry bands.
//!
//! Services load state, call these functions, and apply what they return.

pub mod bot;
pub mod business_hours;
pub mod channel;
pub mod clock;
pub mod conversation;
pub mod csat;
pub mod error;
pub mod ids;
pub mod message;
pub mod metrics;
pub mod phone;
pub mod presence;
pub mod roles;
pub mod routing;
pub mod template;
pub mod window;

pub use clock::Timestamp;
pub use error::ErrorCode;
