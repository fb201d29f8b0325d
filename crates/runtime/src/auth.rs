//! Service credentials on every gRPC call.
//!
//! A caller sends `authorization: Bearer <token>`. The token is looked up among the roles'
//! internal token (every service, every tenant; the previous one too while it rotates) and the
//! named client credentials of `grpc.clients` (a set of services and a set of tenants). The
//! [`AuthLayer`] refuses a missing or unknown token with UNAUTHENTICATED and a service outside
//! the credential's scopes with PERMISSION_DENIED before any handler runs, and puts the
//! [`Caller`] in the request's extensions; handlers then check the tenant a request names with
//! [`authorize_tenant`], since only they can read it from the body.
//!
//! Tokens are compared as SHA-256 digests in constant time, so neither the token nor its
//! length leaks through timing.

use std::collections::HashSet;
use std::sync::Arc;
use std::task::{Context, Poll};

use atende_config::Config;
use atende_domain::ErrorCode;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::status;

/// Who is calling, once the token was recognised.
#[derive(Clone, Debug)]
pub struct Caller {
    /// `internal` for the roles themselves, else the credential's name in `grpc.clients`.
    pub name: String,
    /// Services this caller may call (`session`, `router`, …).
    scopes: HashSet<String>,
    /// `None`: every tenant.
    tenants: Option<HashSet<Uuid>>,
}

impl Caller {
    pub fn may_call(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    pub fn may_access(&self, tenant: Uuid) -> bool {
        self.tenants.as_ref().is_none_or(|t| t.contains(&tenant))
    }

    /// True for callers limited to no tenant in particular (roles, platform operators).
    pub fn all_tenants(&self) -> bool {
        self.tenants.is_none()
    }
}

/// Refuses a request naming a tenant its caller may not touch. Requests that reached a
/// handler without going through [`AuthLayer`] (in-process calls) carry no caller and are
/// refused too: nothing is open by default.
pub fn authorize_tenant<T>(req: &tonic::Request<T>, tenant: Uuid) -> Result<(), tonic::Status> {
    match req.extensions().get::<Caller>() {
        Some(c) if c.may_access(tenant) => Ok(()),
        Some(c) => {
            tracing::warn!(caller = %c.name, %tenant, "grpc call for a tenant outside the credential");
            Err(status(
                ErrorCode::PermissionDenied,
                "the credential does not cover this tenant",
                None,
            ))
        }
        None => Err(status(ErrorCode::Unauthenticated, "no credential", None)),
    }
}

/// Refuses a request whose caller is limited to some tenants (tenant creation and listing).
pub fn authorize_all_tenants<T>(req: &tonic::Request<T>) -> Result<(), tonic::Status> {
    match req.extensions().get::<Caller>() {
        Some(c) if c.all_tenants() => Ok(()),
        Some(_) => Err(status(
            ErrorCode::PermissionDenied,
            "the credential is limited to some tenants",
            None,
        )),
        None => Err(status(ErrorCode::Unauthenticated, "no credential", None)),
    }
}

/// Every credential the server accepts.
pub struct Credentials {
    entries: Vec<([u8; 32], Arc<Caller>)>,
    open_health: bool,
    open_reflection: bool,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Credentials {
    pub fn from_config(cfg: &Config) -> Self {
        let everything: HashSet<String> = atende_config::GRPC_SCOPES.iter().map(|s| s.to_string()).collect();
        let internal = Arc::new(Caller {
            name: "internal".into(),
            scopes: everything,
            tenants: None,
        });
        let mut entries = vec![(digest(cfg.grpc.internal_token.expose_secret()), internal.clone())];
        let previous = cfg.grpc.previous_internal_token.expose_secret();
        if !previous.is_empty() {
            entries.push((digest(previous), internal));
        }
        for (name, client) in &cfg.grpc.clients {
            // Config::validate already refused malformed lists; a bad one here grants nothing.
            let scopes = client
                .scopes()
                .unwrap_or_default()
                .into_iter()
                .map(str::to_string)
                .collect();
            let tenants = match client.tenant_ids() {
                Ok(t) => t.map(|v| v.into_iter().collect()),
                Err(_) => Some(HashSet::new()),
            };
            entries.push((
                digest(client.token.expose_secret()),
                Arc::new(Caller {
                    name: name.clone(),
                    scopes,
                    tenants,
                }),
            ));
        }
        Credentials {
            entries,
            open_health: cfg.grpc.open_health,
            open_reflection: cfg.grpc.open_reflection,
        }
    }

    fn lookup(&self, token: &str) -> Option<Arc<Caller>> {
        let d = digest(token);
        // Every entry is compared, so the time does not say which one matched.
        let mut found = None;
        for (known, caller) in &self.entries {
            if bool::from(known.ct_eq(&d)) {
                found = Some(caller.clone());
            }
        }
        found
    }

    /// What a request for `path` (`/package.Service/Method`) with `authorization` may do.
    fn check(&self, path: &str, authorization: Option<&str>) -> Result<Option<Arc<Caller>>, tonic::Status> {
        let service = path.trim_start_matches('/').split('/').next().unwrap_or_default();
        if self.open_health && service == "grpc.health.v1.Health" {
            return Ok(None);
        }
        if self.open_reflection && service.starts_with("grpc.reflection.") {
            return Ok(None);
        }
        let token = authorization
            .and_then(|h| {
                let (scheme, rest) = h.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .ok_or_else(|| {
                status(
                    ErrorCode::Unauthenticated,
                    "missing `authorization: Bearer <token>`",
                    None,
                )
            })?;
        let caller = self
            .lookup(token)
            .ok_or_else(|| status(ErrorCode::Unauthenticated, "unknown token", None))?;
        match scope_of(service) {
            Some(scope) if caller.may_call(scope) => Ok(Some(caller)),
            _ if service.starts_with("grpc.") && caller.all_tenants() => Ok(Some(caller)),
            _ => {
                tracing::warn!(caller = %caller.name, service, "grpc service outside the credential");
                Err(status(
                    ErrorCode::PermissionDenied,
                    &format!("the credential does not cover {service}"),
                    None,
                ))
            }
        }
    }
}

/// The scope name of an `atende.v1` service.
fn scope_of(service: &str) -> Option<&'static str> {
    Some(match service {
        "atende.v1.SessionService" => "session",
        "atende.v1.RouterService" => "router",
        "atende.v1.AdminService" => "admin",
        "atende.v1.BroadcastService" => "broadcast",
        "atende.v1.SchedulerService" => "scheduler",
        _ => return None,
    })
}

/// Tower layer checking credentials in front of every service of a gRPC server.
#[derive(Clone)]
pub struct AuthLayer {
    credentials: Arc<Credentials>,
}

impl AuthLayer {
    pub fn new(credentials: Credentials) -> Self {
        Self {
            credentials: Arc::new(credentials),
        }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            credentials: self.credentials.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    credentials: Arc<Credentials>,
}

impl<S, B> tower::Service<http::Request<B>> for Auth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let authorization = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let path = req.uri().path().to_string();
        let started = std::time::Instant::now();
        let answer = match self.credentials.check(&path, authorization) {
            Ok(caller) => {
                if let Some(caller) = caller {
                    req.extensions_mut().insert(Caller::clone(&caller));
                }
                futures_util::future::Either::Left(self.inner.call(req))
            }
            Err(status) => futures_util::future::Either::Right(std::future::ready(Ok(status.into_http()))),
        };
        Box::pin(async move {
            let resp = answer.await;
            if let Ok(r) = &resp {
                // A refusal travels in the headers (trailers-only); success in the trailers.
                let code = r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("0")
                    .to_string();
                atende_telemetry::metrics::grpc_request(&path, &code, started.elapsed());
            }
            resp
        })
    }
}

/// A client-side interceptor: the credential of this process plus the trace context.
#[derive(Clone)]
pub struct ClientAuth {
    bearer: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl ClientAuth {
    pub fn new(token: &str) -> Self {
        Self {
            bearer: format!("Bearer {token}").parse().ok(),
        }
    }

    /// The roles' own credential.
    pub fn internal(cfg: &Config) -> Self {
        Self::new(cfg.grpc.internal_token.expose_secret())
    }
}

impl tonic::service::Interceptor for ClientAuth {
    fn call(&mut self, req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let mut req = atende_telemetry::propagation::grpc_client_interceptor(req)?;
        if let Some(b) = &self.bearer {
            req.metadata_mut().insert("authorization", b.clone());
        }
        Ok(req)
    }
}

/// A channel to another role (or any `atende.v1` server) carrying `auth`.
pub type AuthedChannel = tonic::service::interceptor::InterceptedService<tonic::transport::Channel, ClientAuth>;

/// A lazily connected channel to `url` with the usual timeouts.
pub fn channel(url: &str, auth: ClientAuth) -> crate::Result<AuthedChannel> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|e| crate::RuntimeError::Task(format!("grpc url `{url}`: {e}")))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(10))
        .connect_lazy();
    Ok(tonic::service::interceptor::InterceptedService::new(channel, auth))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &[(&str, &str)]) -> Config {
        let mut env = vec![("ATENDE__SECURITY__MODE".to_string(), "development".to_string())];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::load_with_env(None, env).unwrap()
    }

    const TENANT: &str = "0191d5f4-7d3a-7c4e-9a8b-2f1e3d4c5b6a";
    const CRM: &str = "crm-token-0123456789abcdef0123456789abcdef";

    fn credentials() -> Credentials {
        Credentials::from_config(&config(&[
            ("ATENDE__GRPC__CLIENTS__CRM__TOKEN", CRM),
            ("ATENDE__GRPC__CLIENTS__CRM__TENANTS", TENANT),
            ("ATENDE__GRPC__CLIENTS__CRM__SERVICES", "session"),
        ]))
    }

    fn code(r: Result<Option<Arc<Caller>>, tonic::Status>) -> Option<ErrorCode> {
        r.err().and_then(|s| crate::status_code_of(&s))
    }

    #[test]
    fn a_call_without_a_known_bearer_token_is_unauthenticated() {
        let c = credentials();
        let path = "/atende.v1.AdminService/CreateAgent";
        assert_eq!(code(c.check(path, None)), Some(ErrorCode::Unauthenticated));
        assert_eq!(
            code(c.check(path, Some("Bearer nope"))),
            Some(ErrorCode::Unauthenticated)
        );
        assert_eq!(code(c.check(path, Some(CRM))), Some(ErrorCode::Unauthenticated));
    }

    #[test]
    fn the_internal_token_calls_everything_and_a_client_only_its_services_and_tenants() {
        let c = credentials();
        let internal = format!("Bearer {}", atende_config::DEV_INTERNAL_TOKEN);
        let caller = c
            .check("/atende.v1.AdminService/CreateAgent", Some(&internal))
            .unwrap()
            .unwrap();
        assert!(caller.all_tenants());

        let crm = format!("bearer {CRM}");
        assert_eq!(
            code(c.check("/atende.v1.AdminService/CreateAgent", Some(&crm))),
            Some(ErrorCode::PermissionDenied)
        );
        let caller = c
            .check("/atende.v1.SessionService/SendMessage", Some(&crm))
            .unwrap()
            .unwrap();
        assert!(caller.may_access(TENANT.parse().unwrap()));
        assert!(!caller.may_access(Uuid::new_v4()));
        assert!(!caller.all_tenants());
    }

    #[test]
    fn health_and_reflection_are_open_unless_configured_otherwise() {
        let c = credentials();
        assert!(c.check("/grpc.health.v1.Health/Check", None).unwrap().is_none());
        assert!(c
            .check("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", None)
            .unwrap()
            .is_none());
        let closed = Credentials::from_config(&config(&[
            ("ATENDE__GRPC__OPEN_HEALTH", "false"),
            ("ATENDE__GRPC__OPEN_REFLECTION", "false"),
        ]));
        assert_eq!(
            code(closed.check("/grpc.health.v1.Health/Check", None)),
            Some(ErrorCode::Unauthenticated)
        );
        assert_eq!(
            code(closed.check("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", None)),
            Some(ErrorCode::Unauthenticated)
        );
    }

    #[test]
    fn the_previous_internal_token_is_accepted_during_a_rotation() {
        let previous = "previous-internal-token-0123456789abcdef";
        let c = Credentials::from_config(&config(&[("ATENDE__GRPC__PREVIOUS_INTERNAL_TOKEN", previous)]));
        assert!(c
            .check(
                "/atende.v1.RouterService/GetPresence",
                Some(&format!("Bearer {previous}"))
            )
            .is_ok());
    }
}
