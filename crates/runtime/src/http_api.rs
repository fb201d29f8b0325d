//! The HTTP side of the error contract: the same stable code and en/pt-BR messages as the
//! gRPC details, in a JSON body `{"error": {"code", "message", "message_pt_br", "detail"}}`,
//! with the status from the domain's one table.

use atende_domain::ErrorCode;

pub type ErrorResponse = (http::StatusCode, [(http::header::HeaderName, &'static str); 1], String);

pub fn error(code: ErrorCode, detail: &str) -> ErrorResponse {
    let body = serde_json::json!({
        "error": {
            "code": code.as_str(),
            "message": code.message_en(),
            "message_pt_br": code.message_pt_br(),
            "detail": detail,
        }
    });
    (
        http::StatusCode::from_u16(code.http_status()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

/// The HTTP answer for a gRPC status coming back from another role: its domain code when
/// it carries one, otherwise UNAVAILABLE / INTERNAL.
pub fn from_status(s: &tonic::Status) -> ErrorResponse {
    if let Some(d) = crate::errors::detail_of(s) {
        if let Some(code) = ErrorCode::parse(&d.code) {
            return error(code, &d.detail);
        }
    }
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => error(ErrorCode::Unavailable, ""),
        _ => error(ErrorCode::Internal, ""),
    }
}
