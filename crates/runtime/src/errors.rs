//! Domain error codes on the gRPC wire: the status code comes from the domain's one table,
//! and the details carry an `atende.v1.ErrorDetail` (stable code, en and pt-BR messages).

use atende_domain::ErrorCode;
use atende_proto::v1::ErrorDetail;
use prost::Message;

/// A gRPC status for `code`, with `detail` for humans and `field` when one is to blame.
pub fn status(code: ErrorCode, detail: &str, field: Option<&str>) -> tonic::Status {
    let body = ErrorDetail {
        code: code.as_str().to_string(),
        message_en: code.message_en().to_string(),
        message_pt_br: code.message_pt_br().to_string(),
        field: field.unwrap_or_default().to_string(),
        detail: detail.to_string(),
    };
    let message = if detail.is_empty() {
        format!("{}: {}", code.as_str(), code.message_en())
    } else {
        format!("{}: {}", code.as_str(), detail)
    };
    tonic::Status::with_details(
        tonic::Code::from_i32(code.grpc_code()),
        message,
        body.encode_to_vec().into(),
    )
}

/// The error detail of a status produced by [`status`].
pub fn detail_of(s: &tonic::Status) -> Option<ErrorDetail> {
    ErrorDetail::decode(s.details()).ok().filter(|d| !d.code.is_empty())
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
}
