//! NATS JetStream: subjects, streams, publishing, durable consumers and the outbox relay.
//!
//! Layout:
//! - [`subjects`] the one builder of subjects and stream names (with the namespace prefix
//!   tests use for isolation);
//! - [`Bus`] a connected client that ensures the streams and publishes with acks;
//! - [`consumer`] the durable pull-consumer loop: ack after the handler's effect is
//!   committed, nak with backoff on transient errors, term (and record) poison messages;
//! - [`relay`] publishes committed outbox rows.

pub mod consumer;
pub mod relay;
pub mod subjects;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;
use bytes::Bytes;

pub use subjects::Subjects;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot connect to nats")]
    Connect(#[from] async_nats::ConnectError),
    #[error("cannot create stream `{stream}`")]
    Stream {
        stream: String,
        #[source]
        source: jetstream::context::CreateStreamError,
    },
    #[error("publish failed")]
    Publish(#[from] jetstream::context::PublishError),
    #[error("consumer setup failed: {0}")]
    Consumer(String),
    #[error("subscribe failed")]
    Subscribe(#[from] async_nats::SubscribeError),
}

/// The five streams of the platform. Work streams (inbound, outbound, route, jobs) keep
/// messages for a week (consumers ack them); the event stream is a day of history for
/// consumers that join late.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    Inbound,
    Outbound,
    Route,
    Events,
    /// Work a durable timer hands to a role when it falls due (scheduled sends, …).
    Jobs,
}

impl StreamKind {
    pub const ALL: [StreamKind; 5] = [
        StreamKind::Inbound,
        StreamKind::Outbound,
        StreamKind::Route,
        StreamKind::Events,
        StreamKind::Jobs,
    ];

    pub fn token(self) -> &'static str {
        match self {
            StreamKind::Inbound => "inbound",
            StreamKind::Outbound => "outbound",
            StreamKind::Route => "route",
            StreamKind::Events => "events",
            StreamKind::Jobs => "jobs",
        }
    }
}

#[derive(Clone)]
pub struct Bus {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub subjects: Subjects,
}

impl Bus {
    pub async fn connect(url: &str, prefix: &str) -> Result<Bus, BusError> {
        let client = async_nats::ConnectOptions::new()
            .name("atende")
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        let js = jetstream::new(client.clone());
        Ok(Bus {
            client,
            js,
            subjects: Subjects::new(prefix),
        })
    }

    /// Creates (or updates) the streams: file storage, explicit acks by consumers, and a
    /// two-minute duplicate window for `Nats-Msg-Id` (the durable dedupe is in Postgres).
    pub async fn ensure_streams(&self) -> Result<(), BusError> {
        for kind in StreamKind::ALL {
            let name = self.subjects.stream_name(kind);
            let events = kind == StreamKind::Events;
            let config = stream::Config {
                name: name.clone(),
                subjects: vec![self.subjects.stream_filter(kind)],
                storage: stream::StorageType::File,
                retention: stream::RetentionPolicy::Limits,
                max_age: if events {
                    Duration::from_secs(24 * 3600)
                } else {
                    Duration::from_secs(7 * 24 * 3600)
                },
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            };
            self.js
                .get_or_create_stream(config)
                .await
                .map_err(|source| BusError::Stream { stream: name, source })?;
        }
        Ok(())
    }

    /// Publishes and waits for JetStream's ack (the message is stored). `msg_id` lets
    /// JetStream drop a republish within its window; trace context goes in the headers.
    pub async fn publish(
        &self,
        subject: String,
        msg_id: &str,
        payload: Bytes,
        mut headers: HeaderMap,
    ) -> Result<(), BusError> {
        headers.insert("Nats-Msg-Id", msg_id);
        let ack = self.js.publish_with_headers(subject, headers, payload).await?;
        ack.await?;
        Ok(())
    }

    /// Sends a publish and returns its ack to await later, so many publishes share one
    /// round trip. JetStream stores the messages of one connection in the order sent.
    pub async fn publish_pipelined(
        &self,
        subject: String,
        msg_id: &str,
        payload: Bytes,
        mut headers: HeaderMap,
    ) -> Result<jetstream::context::PublishAckFuture, BusError> {
        headers.insert("Nats-Msg-Id", msg_id);
        Ok(self.js.publish_with_headers(subject, headers, payload).await?)
    }

    /// Deletes this namespace's streams (test cleanup).
    pub async fn delete_streams(&self) {
        for kind in StreamKind::ALL {
            let _ = self.js.delete_stream(self.subjects.stream_name(kind)).await;
        }
    }
}
