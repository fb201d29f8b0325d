//! Domain error codes on the gRPC wire, in gRPC's standard richer error model so that grpcurl
//! and any language's client read them: the status code comes from the domain's one table, and
//! `grpc-status-details-bin` holds a `google.rpc.Status` whose details are an `ErrorInfo`
//! (reason = the stable code, domain `atende.v1`, metadata `detail`), a `LocalizedMessage` in
//! `en` and one in `pt-BR` (the seeds' texts), and a `BadRequest` field violation when a field
//! is to blame.

use std::collections::HashMap;

use atende_domain::ErrorCode;
use atende_proto::v1::ErrorDetail;
use tonic_types::{ErrorDetail as Standard, StatusExt};

/// The `ErrorInfo.domain` of every refusal.
pub const DOMAIN: &str = "atende.v1";

/// A gRPC status for `code`, with `detail` for humans and `field` when one is to blame.
pub fn status(code: ErrorCode, detail: &str, field: Option<&str>) -> tonic::Status {
    let message = if detail.is_empty() {
        format!("{}: {}", code.as_str(), code.message_en())
    } else {
        format!("{}: {}", code.as_str(), detail)
    };
    let mut metadata = HashMap::new();
    if !detail.is_empty() {
        metadata.insert("detail".to_string(), detail.to_string());
    }
    if let Some(f) = field.filter(|f| !f.is_empty()) {
        metadata.insert("field".to_string(), f.to_string());
    }
    let mut details = vec![
        Standard::ErrorInfo(tonic_types::ErrorInfo::new(code.as_str(), DOMAIN, metadata)),
        Standard::LocalizedMessage(tonic_types::LocalizedMessage::new("en", code.message_en())),
        Standard::LocalizedMessage(tonic_types::LocalizedMessage::new("pt-BR", code.message_pt_br())),
    ];
    if let Some(f) = field.filter(|f| !f.is_empty()) {
        let why = if detail.is_empty() { code.message_en() } else { detail };
        details.push(Standard::BadRequest(tonic_types::BadRequest::with_violation(f, why)));
    }
    tonic::Status::with_error_details_vec(tonic::Code::from_i32(code.grpc_code()), message, details)
}

/// The stable code and messages of a status produced by [`status`] (None for any other).
pub fn detail_of(s: &tonic::Status) -> Option<ErrorDetail> {
    let details = s.get_error_details_vec();
    let mut out = ErrorDetail::default();
    for d in details {
        match d {
            Standard::ErrorInfo(info) if info.domain == DOMAIN => {
                out.code = info.reason;
                out.detail = info.metadata.get("detail").cloned().unwrap_or_default();
                out.field = info.metadata.get("field").cloned().unwrap_or_default();
            }
            Standard::LocalizedMessage(m) if m.locale == "en" => out.message_en = m.message,
            Standard::LocalizedMessage(m) if m.locale == "pt-BR" => out.message_pt_br = m.message,
            _ => {}
        }
    }
    (!out.code.is_empty()).then_some(out)
}

/// The domain code of a status produced by [`status`].
pub fn status_code_of(s: &tonic::Status) -> Option<ErrorCode> {
    detail_of(s).and_then(|d| ErrorCode::parse(&d.code))
}

pub fn to_status(e: atende_domain::error::DomainError) -> tonic::Status {
    status(e.code, &e.detail, None)
}

/// Infrastructure failures: logged with their cause, returned as UNAVAILABLE or INTERNAL
/// without leaking internals.
pub fn internal(e: &(dyn std::error::Error + 'static)) -> tonic::Status {
    tracing::error!(error = e, "internal error");
    status(ErrorCode::Internal, "", None)
}

pub fn store_status(e: atende_store::StoreError) -> tonic::Status {
    if e.is_transient() {
        tracing::warn!(error = &e as &dyn std::error::Error, "transient database error");
        status(ErrorCode::Unavailable, "", None)
    } else if e.is_bad_input() {
        tracing::info!(error = &e as &dyn std::error::Error, "input the database cannot hold");
        status(
            ErrorCode::InvalidArgument,
            "a value cannot be stored (a NUL character, or too long)",
            None,
        )
    } else {
        internal(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_carries_the_stable_code_and_both_messages() {
        let s = status(ErrorCode::AgentAtCapacity, "", None);
        assert_eq!(s.code(), tonic::Code::FailedPrecondition);
        let d = detail_of(&s).unwrap();
        assert_eq!(d.code, "AGENT_AT_CAPACITY");
        assert!(d.message_pt_br.contains("atendimentos simultâneos"));
        assert_eq!(status_code_of(&s), Some(ErrorCode::AgentAtCapacity));
    }

    #[test]
    fn the_details_are_a_standard_google_rpc_status() {
        let s = status(ErrorCode::InvalidArgument, "slug may hold a-z", Some("slug"));
        // What any client's decoder sees: google.rpc.Status with the standard messages.
        let details = s.get_error_details();
        let info = details.error_info().expect("ErrorInfo");
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("INVALID_ARGUMENT", DOMAIN)
        );
        assert_eq!(info.metadata["detail"], "slug may hold a-z");
        let violation = &details.bad_request().expect("BadRequest").field_violations[0];
        assert_eq!(violation.field, "slug");
        let locales: Vec<String> = s
            .get_error_details_vec()
            .into_iter()
            .filter_map(|d| match d {
                Standard::LocalizedMessage(m) => Some(m.locale),
                _ => None,
            })
            .collect();
        assert_eq!(locales, ["en", "pt-BR"]);
        let d = detail_of(&s).unwrap();
        assert_eq!((d.field.as_str(), d.detail.as_str()), ("slug", "slug may hold a-z"));
    }
}
