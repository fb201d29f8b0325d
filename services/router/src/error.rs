//! The router's errors: refusals carry a stable domain code for the caller; infrastructure
//! failures keep their cause and become UNAVAILABLE or INTERNAL on the wire.

use atende_domain::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("postgres")]
    Store(#[from] atende_store::StoreError),
    #[error("redis")]
    Presence(#[from] atende_capacity::PresenceError),
    #[error("{code}: {detail}")]
    Refused {
        code: ErrorCode,
        detail: String,
        field: Option<&'static str>,
    },
    /// Conflicts kept coming back (other replicas, presence changes) beyond the retry bound.
    #[error("routing contention: gave up after {0} attempts")]
    Contention(u32),
}

impl From<sqlx::Error> for RouterError {
    fn from(e: sqlx::Error) -> Self {
        RouterError::Store(atende_store::StoreError::Db(e))
    }
}

impl RouterError {
    pub fn refused(code: ErrorCode, detail: impl Into<String>) -> Self {
        RouterError::Refused {
            code,
            detail: detail.into(),
            field: None,
        }
    }

    /// Worth retrying later (a redelivery, the caller's retry): not a refusal.
    pub fn is_transient(&self) -> bool {
        match self {
            RouterError::Store(e) => e.is_transient(),
            RouterError::Presence(_) | RouterError::Contention(_) => true,
            RouterError::Refused { code, .. } => *code == ErrorCode::Unavailable,
        }
    }

    pub fn into_status(self) -> tonic::Status {
        match self {
            RouterError::Refused { code, detail, field } => atende_runtime::status(code, &detail, field),
            RouterError::Store(e) => atende_runtime::errors::store_status(e),
            RouterError::Presence(e) => {
                tracing::warn!(error = &e as &dyn std::error::Error, "redis failure");
                atende_runtime::status(ErrorCode::Unavailable, "", None)
            }
            RouterError::Contention(n) => {
                tracing::warn!(attempts = n, "routing contention");
                atende_runtime::status(ErrorCode::Unavailable, "routing contention, try again", None)
            }
        }
    }
}

impl From<RouterError> for tonic::Status {
    fn from(e: RouterError) -> Self {
        e.into_status()
    }
}
