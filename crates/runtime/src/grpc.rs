//! The gRPC server of a role: its own services plus `grpc.health.v1` and server reflection
//! (v1 and v1alpha, since grpcurl speaks only v1alpha), traced per request, stopped by the
//! role's shutdown token after health turned NOT_SERVING and the grace elapsed. Every call
//! passes the [`crate::auth::AuthLayer`] first (health and reflection may stay open).

use std::net::SocketAddr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic_health::server::HealthReporter;

use crate::{Result, RuntimeError};

/// Health of a role: the empty service name ("the whole server") plus named services.
#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
    names: Vec<&'static str>,
}

impl Health {
    pub async fn serving(&self) {
        self.reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        for n in &self.names {
            self.reporter
                .set_service_status(*n, tonic_health::ServingStatus::Serving)
                .await;
        }
    }
    pub async fn not_serving(&self) {
        self.reporter
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        for n in &self.names {
            self.reporter
                .set_service_status(*n, tonic_health::ServingStatus::NotServing)
                .await;
        }
    }
}

/// Binds `addr` (port 0 picks a free one) and returns the bound address and a future that
/// serves `routes` until `shutdown` (after reporting NOT_SERVING for the configured grace),
/// accepting the credentials of `cfg.grpc`.
pub async fn serve(
    addr: SocketAddr,
    routes: Routes,
    service_names: Vec<&'static str>,
    cfg: &atende_config::Config,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, Health, impl std::future::Future<Output = Result<()>>)> {
    let grace: Duration = crate::grace(cfg);
    let auth = crate::auth::AuthLayer::new(crate::auth::Credentials::from_config(cfg));
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let health = Health {
        reporter,
        names: service_names,
    };
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(atende_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // google.rpc's error details, so clients resolve the details of every refusal.
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| RuntimeError::Task(format!("reflection: {e}")))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(atende_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // google.rpc's error details, so clients resolve the details of every refusal.
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| RuntimeError::Task(format!("reflection: {e}")))?;
    let routes = routes
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RuntimeError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| RuntimeError::Bind { addr, source })?;
    health.serving().await;
    let health_for_stop = health.clone();
    let fut = async move {
        let incoming = tokio_stream_from(listener);
        let stop = async move {
            shutdown.cancelled().await;
            health_for_stop.not_serving().await;
            tokio::time::sleep(grace).await;
        };
        tonic::transport::Server::builder()
            .layer(
                tower_http::trace::TraceLayer::new_for_grpc()
                    .make_span_with(atende_telemetry::propagation::ServerSpan)
                    .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG)),
            )
            .layer(auth)
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, stop)
            .await?;
        Ok(())
    };
    Ok((bound, health, fut))
}

fn tokio_stream_from(
    listener: tokio::net::TcpListener,
) -> impl futures_core::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    tokio_stream::wrappers::TcpListenerStream::new(listener)
}
