//! The WhatsApp Cloud API edge: everything that touches Meta's wire formats, and nothing else.
//!
//! Meta's formats are an external contract we do not control, so they are pinned here, in
//! one place, with fixtures taken from the documented shapes; the rest of the adapter only
//! sees provider-neutral values (`MessageKind`, `DeliveryStatus`) plus the raw payload.
//!
//! Layout, in the order a webhook meets them:
//! - [`handshake`] the `GET` subscription check (`hub.mode`/`hub.verify_token`/`hub.challenge`);
//! - [`signature`] `X-Hub-Signature-256` over the raw bytes, before anything parses them;
//! - [`parse`] the `whatsapp_business_account` envelope into [`parse::WaItem`]s;
//! - [`graph`] the outbound side: the Graph API send endpoint and its error taxonomy, which
//!   decides whether a failed send is retried.
//!
//! All four are pure or IO-free apart from [`graph::GraphClient`]; the HTTP handlers that glue
//! them to axum live with the role's wiring.

pub mod graph;
pub mod handshake;
pub mod parse;
pub mod signature;

pub use graph::{GraphClient, GraphError, RetryClass, SendAccepted};
pub use handshake::{verify_subscription, HandshakeError};
pub use parse::{parse_webhook, ParseError, WaItem, WaMessage, WaStatus};
pub use signature::{verify_signature, SignatureError, SIGNATURE_HEADER};
