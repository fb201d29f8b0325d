//! The router's state: its connections (Postgres, the Redis capacity engine, NATS subjects),
//! clock, settings and in-process caches (service rules, per-service local locks, kept
//! candidate views), and the types the routing loop ([`crate::engine`]) and a decision's
//! effects ([`crate::effects`]) share. Both add methods to [`Router`]; neither imports the
//! other's internals.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atende_bus::Subjects;
use atende_capacity::{CandidateView, Presence};
use atende_domain::clock::{Clock, Timestamp};
use atende_domain::ids::{AgentId, ServiceId, TenantId};
use atende_domain::routing::{ServiceRules, Snapshot};
use atende_domain::ErrorCode;
use sqlx::PgPool;

/// Tunables; defaults suit production, tests shorten the sweep through the config.
#[derive(Clone, Debug)]
pub struct Settings {
    pub sweep_interval: Duration,
    /// How often one replica re-evaluates each active service (business hours opening,
    /// liveness after a failed distribution). Offer deadlines are handled every
    /// `sweep_interval` regardless.
    pub service_sweep_period: Duration,
    /// How long a service's rules and members are reused before being read again.
    pub rules_ttl: Duration,
    /// The Redis routing lease of a service; far longer than one routing step.
    pub lease_ttl: Duration,
    /// Give up waiting for a lease (or a rebuild) after this long.
    pub lease_wait: Duration,
    /// Decide-and-apply rounds before giving up with `Contention`.
    pub max_attempts: u32,
    /// A popped offer deadline comes back after this long if its handler died.
    pub offer_visibility: Duration,
    /// Reservations unconfirmed for longer than this are settled against Postgres; a
    /// routing step abandons its commit after half of it, so the two never overlap.
    pub pending_grace: Duration,
    /// Services up to this size are snapshotted whole (every member, complete
    /// explanations); larger ones through the candidate index.
    pub full_snapshot_max: usize,
    /// A large service's candidate view is kept in memory between steps while its version
    /// says it is current (exactly: see `atende_capacity::view`); this long after its last
    /// whole read it is read again anyway (inside the lease script: no extra round trip).
    pub view_max_age: Duration,
    /// How often a replica reconciles Redis capacity with Postgres, and how many agents of
    /// each tenant one pass covers (the next pass goes on from there).
    pub reconcile_every: Duration,
    pub reconcile_batch: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            sweep_interval: Duration::from_secs(1),
            service_sweep_period: Duration::from_secs(1),
            rules_ttl: Duration::from_secs(2),
            lease_ttl: Duration::from_secs(5),
            lease_wait: Duration::from_secs(20),
            max_attempts: 12,
            offer_visibility: Duration::from_secs(30),
            pending_grace: Duration::from_secs(20),
            full_snapshot_max: 64,
            view_max_age: Duration::from_secs(1),
            reconcile_every: Duration::from_secs(10),
            reconcile_batch: 200,
        }
    }
}

/// A service member as configured in Postgres.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub agent: AgentId,
    pub max: u32,
    pub rotation_seed: u64,
}

pub(crate) struct ServiceInfo {
    pub rules: ServiceRules,
    pub members: Vec<Member>,
    /// Position of each member in `members`.
    pub by_agent: HashMap<AgentId, usize>,
}

/// Candidates read per channel kind from the index: enough for an explanation worth
/// reading; a round that gives work to all of them is followed by another.
pub const TOP_PER_KIND: usize = 5;

/// A snapshot and how it was taken.
pub(crate) struct Loaded {
    pub snapshot: Snapshot,
    /// Taken through the candidate index (a subset of the members).
    pub indexed: bool,
    /// Candidates from the view kept in memory (no read in this step).
    pub cached: bool,
    pub members: usize,
}

/// A large service's candidate view kept between steps (under the service's local lock).
pub(crate) struct CachedView {
    pub view: CandidateView,
    /// When it was last read whole.
    pub read_at: Instant,
    /// Holders of pending offers at the last step: extra agents the next step likely needs.
    pub holders: Vec<AgentId>,
}

pub(crate) type ServiceKey = (TenantId, ServiceId);

/// The result of applying one decision.
pub(crate) enum Applied {
    Done,
    /// The world moved (a conflict, a lost lease, a rebuild): reload and decide again.
    Again(&'static str),
    Rejected(ErrorCode),
}

pub struct Router {
    pub(crate) pool: PgPool,
    pub(crate) presence: Presence,
    pub(crate) subjects: Subjects,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Settings,
    pub(crate) services: Mutex<HashMap<ServiceKey, (Instant, Arc<ServiceInfo>)>>,
    pub(crate) local: Mutex<HashMap<ServiceKey, Arc<tokio::sync::Mutex<()>>>>,
    /// Candidate views, read and written only under the service's `local` lock.
    pub(crate) views: Mutex<HashMap<ServiceKey, CachedView>>,
    /// Where each tenant's reconciliation goes on from (the last agent id of the last pass),
    /// and when the last pass ran.
    pub(crate) reconcile_cursor: Mutex<(Option<Instant>, HashMap<TenantId, uuid::Uuid>)>,
}

impl Router {
    pub fn new(
        pool: PgPool,
        presence: Presence,
        subjects: Subjects,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Self {
        Self {
            pool,
            presence,
            subjects,
            clock,
            settings,
            services: Mutex::new(HashMap::new()),
            local: Mutex::new(HashMap::new()),
            views: Mutex::new(HashMap::new()),
            reconcile_cursor: Mutex::new((None, HashMap::new())),
        }
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}
