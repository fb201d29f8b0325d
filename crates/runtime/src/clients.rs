//! Clients of the roles' gRPC services, lazily connected, carrying the roles' internal
//! credential and the trace context. Roles reach each other only through these.

use atende_config::Config;
use atende_proto::v1::admin_service_client::AdminServiceClient;
use atende_proto::v1::broadcast_service_client::BroadcastServiceClient;
use atende_proto::v1::router_service_client::RouterServiceClient;
use atende_proto::v1::session_service_client::SessionServiceClient;

use crate::auth::{channel, AuthedChannel, ClientAuth};
use crate::Result;

pub type RouterClient = RouterServiceClient<AuthedChannel>;
pub type SessionClient = SessionServiceClient<AuthedChannel>;
pub type AdminClient = AdminServiceClient<AuthedChannel>;
pub type BroadcastClient = BroadcastServiceClient<AuthedChannel>;

pub fn broadcast(cfg: &Config) -> Result<BroadcastClient> {
    Ok(BroadcastServiceClient::new(channel(
        &cfg.clients.broadcast_url,
        ClientAuth::internal(cfg),
    )?))
}

pub fn router(cfg: &Config) -> Result<RouterClient> {
    Ok(RouterServiceClient::new(channel(
        &cfg.clients.router_url,
        ClientAuth::internal(cfg),
    )?))
}

pub fn session(cfg: &Config) -> Result<SessionClient> {
    Ok(SessionServiceClient::new(channel(
        &cfg.clients.session_url,
        ClientAuth::internal(cfg),
    )?))
}

/// AdminService is served beside SessionService.
pub fn admin(cfg: &Config) -> Result<AdminClient> {
    Ok(AdminServiceClient::new(channel(
        &cfg.clients.session_url,
        ClientAuth::internal(cfg),
    )?))
}
