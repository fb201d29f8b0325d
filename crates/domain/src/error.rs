//! Stable error codes. The code string is a public contract (gRPC status details, HTTP
//! bodies); the messages are what a user reads, in English and Brazilian Portuguese (the
//! seeds' own wording where they have one). This is the one table mapping each code to an
//! HTTP status and a gRPC status code; services never invent their own mapping.

use serde::{Deserialize, Serialize};

/// gRPC status codes by number (the domain does not depend on tonic).
pub mod grpc {
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const NOT_FOUND: i32 = 5;
    pub const ALREADY_EXISTS: i32 = 6;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const FAILED_PRECONDITION: i32 = 9;
    pub const ABORTED: i32 = 10;
    pub const INTERNAL: i32 = 13;
    pub const UNAVAILABLE: i32 = 14;
    pub const UNAUTHENTICATED: i32 = 16;
}

/// Every user-visible failure has exactly one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    Unauthenticated,
    InvalidCredentials,
    SessionEnded,
    RefreshTokenReused,
    PermissionDenied,
    InvalidSignature,
    MalformedPayload,
    PayloadTooLarge,
    UnknownChannel,
    InvalidPhone,
    AgentAtCapacity,
    CustomerInService,
    CustomerWithOtherAgent,
    ConversationNotWaiting,
    ConversationAlreadyAssigned,
    ConversationClosed,
    NotConversationOwner,
    AgentNotAvailable,
    LogoutWithOpenConversations,
    OfferNotPending,
    OutsideCustomerWindow,
    InvalidQualification,
    ExternalProtocolRequired,
    ExternalProtocolInvalid,
    InvalidMenu,
    TemplateNotFound,
    TemplateNotApproved,
    TemplateParamsMismatch,
    RateLimited,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::InvalidArgument,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::Unauthenticated,
        ErrorCode::InvalidCredentials,
        ErrorCode::SessionEnded,
        ErrorCode::RefreshTokenReused,
        ErrorCode::PermissionDenied,
        ErrorCode::InvalidSignature,
        ErrorCode::MalformedPayload,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnknownChannel,
        ErrorCode::InvalidPhone,
        ErrorCode::AgentAtCapacity,
        ErrorCode::CustomerInService,
        ErrorCode::CustomerWithOtherAgent,
        ErrorCode::ConversationNotWaiting,
        ErrorCode::ConversationAlreadyAssigned,
        ErrorCode::ConversationClosed,
        ErrorCode::NotConversationOwner,
        ErrorCode::AgentNotAvailable,
        ErrorCode::LogoutWithOpenConversations,
        ErrorCode::OfferNotPending,
        ErrorCode::OutsideCustomerWindow,
        ErrorCode::InvalidQualification,
        ErrorCode::ExternalProtocolRequired,
        ErrorCode::ExternalProtocolInvalid,
        ErrorCode::InvalidMenu,
        ErrorCode::TemplateNotFound,
        ErrorCode::TemplateNotApproved,
        ErrorCode::TemplateParamsMismatch,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    /// (code, http status, grpc code, English, Portuguese)
    fn row(self) -> (&'static str, u16, i32, &'static str, &'static str) {
        use ErrorCode::*;
        match self {
            InvalidArgument => ("INVALID_ARGUMENT", 400, grpc::INVALID_ARGUMENT, "The request has an invalid field.", "A requisição tem um campo inválido."),
            NotFound => ("NOT_FOUND", 404, grpc::NOT_FOUND, "Not found.", "Não encontrado."),
            AlreadyExists => ("ALREADY_EXISTS", 409, grpc::ALREADY_EXISTS, "It already exists.", "Já existe."),
            Unauthenticated => ("UNAUTHENTICATED", 401, grpc::UNAUTHENTICATED, "Sign in to continue.", "Faça login para continuar."),
            InvalidCredentials => ("INVALID_CREDENTIALS", 401, grpc::UNAUTHENTICATED, "Wrong e-mail or password.", "E-mail ou senha incorretos."),
            SessionEnded => ("SESSION_ENDED", 401, grpc::UNAUTHENTICATED, "Your session has ended; sign in again.", "Sua sessão foi encerrada; faça login novamente."),
            RefreshTokenReused => ("REFRESH_TOKEN_REUSED", 401, grpc::UNAUTHENTICATED, "This session was signed out because its renewal token was used twice; sign in again.", "Esta sessão foi encerrada porque seu token de renovação foi usado duas vezes; faça login novamente."),
            PermissionDenied => ("PERMISSION_DENIED", 403, grpc::PERMISSION_DENIED, "You are not allowed to do this.", "Você não tem permissão para fazer isso."),
            InvalidSignature => ("INVALID_SIGNATURE", 401, grpc::UNAUTHENTICATED, "The webhook signature is missing or wrong.", "A assinatura do webhook está ausente ou incorreta."),
            MalformedPayload => ("MALFORMED_PAYLOAD", 400, grpc::INVALID_ARGUMENT, "The body is not valid JSON of the expected shape.", "O corpo não é um JSON válido no formato esperado."),
            PayloadTooLarge => ("PAYLOAD_TOO_LARGE", 413, grpc::RESOURCE_EXHAUSTED, "The body is larger than allowed.", "O corpo é maior que o permitido."),
            UnknownChannel => ("UNKNOWN_CHANNEL", 404, grpc::NOT_FOUND, "No such channel.", "Canal não encontrado."),
            InvalidPhone => ("INVALID_PHONE", 400, grpc::INVALID_ARGUMENT, "Invalid number, correct it and try again.", "Número inválido, corrija e tente novamente"),
            AgentAtCapacity => ("AGENT_AT_CAPACITY", 409, grpc::FAILED_PRECONDITION, "Could not start the conversation. The maximum number of simultaneous conversations was reached.", "Não foi possível iniciar a conversa. O número máximo de atendimentos simultâneos foi atingido."),
            CustomerInService => ("CUSTOMER_IN_SERVICE", 409, grpc::FAILED_PRECONDITION, "The customer already has an open conversation in this service.", "O cliente já possui um atendimento em aberto neste serviço."),
            CustomerWithOtherAgent => ("CUSTOMER_WITH_OTHER_AGENT", 409, grpc::FAILED_PRECONDITION, "Could not start the conversation. The customer is being served by another agent.", "Não foi possível iniciar a conversa. O cliente está sendo atendido por outro agente."),
            ConversationNotWaiting => ("CONVERSATION_NOT_WAITING", 409, grpc::FAILED_PRECONDITION, "The conversation is no longer waiting.", "O atendimento não está mais aguardando."),
            ConversationAlreadyAssigned => ("CONVERSATION_ALREADY_ASSIGNED", 409, grpc::ABORTED, "Another agent already took this conversation.", "Outro atendente já assumiu este atendimento."),
            ConversationClosed => ("CONVERSATION_CLOSED", 409, grpc::FAILED_PRECONDITION, "The conversation is finished.", "O atendimento está finalizado."),
            NotConversationOwner => ("NOT_CONVERSATION_OWNER", 403, grpc::PERMISSION_DENIED, "This conversation is assigned to another agent.", "Este atendimento pertence a outro atendente."),
            AgentNotAvailable => ("AGENT_NOT_AVAILABLE", 409, grpc::FAILED_PRECONDITION, "The agent is not available.", "O atendente não está disponível."),
            LogoutWithOpenConversations => ("LOGOUT_WITH_OPEN_CONVERSATIONS", 409, grpc::FAILED_PRECONDITION, "You cannot log out while conversations are in progress. Finish them to leave the application.", "Você não pode fazer logout enquanto houver atendimentos em andamento. Finalize-os para sair da aplicação"),
            OfferNotPending => ("OFFER_NOT_PENDING", 409, grpc::FAILED_PRECONDITION, "This offer is no longer pending.", "Esta oferta não está mais pendente."),
            OutsideCustomerWindow => ("OUTSIDE_CUSTOMER_WINDOW", 409, grpc::FAILED_PRECONDITION, "More than 24 hours since the customer's last message: only a template may be sent.", "Mais de 24 horas desde a última mensagem do cliente: apenas um modelo (HSM) pode ser enviado."),
            InvalidQualification => ("INVALID_QUALIFICATION", 400, grpc::INVALID_ARGUMENT, "Choose one of this service's qualifications.", "Escolha uma das qualificações deste serviço."),
            ExternalProtocolRequired => ("EXTERNAL_PROTOCOL_REQUIRED", 400, grpc::INVALID_ARGUMENT, "Enter the external protocol to finish the conversation.", "Informe o protocolo externo para finalizar o atendimento."),
            ExternalProtocolInvalid => ("EXTERNAL_PROTOCOL_INVALID", 400, grpc::INVALID_ARGUMENT, "The external protocol may have up to 13 characters.", "O protocolo externo pode ter até 13 caracteres."),
            InvalidMenu => ("INVALID_MENU", 400, grpc::INVALID_ARGUMENT, "The bot menu is invalid.", "O menu do BOT é inválido."),
            TemplateNotFound => ("TEMPLATE_NOT_FOUND", 404, grpc::NOT_FOUND, "No template with this name and language on this number.", "Nenhum modelo (HSM) com este nome e idioma neste número."),
            TemplateNotApproved => ("TEMPLATE_NOT_APPROVED", 409, grpc::FAILED_PRECONDITION, "This template is not approved for sending.", "Este modelo (HSM) não está aprovado para envio."),
            TemplateParamsMismatch => ("TEMPLATE_PARAMS_MISMATCH", 400, grpc::INVALID_ARGUMENT, "The template's parameters do not match what it asks for.", "Os parâmetros do modelo (HSM) não conferem com o que ele pede."),
            RateLimited => ("RATE_LIMITED", 429, grpc::RESOURCE_EXHAUSTED, "Too many requests; try again after the time in Retry-After.", "Muitas requisições; tente novamente após o tempo indicado em Retry-After."),
            Unavailable => ("UNAVAILABLE", 503, grpc::UNAVAILABLE, "Temporarily unavailable, try again.", "Indisponível no momento, tente novamente."),
            Internal => ("INTERNAL", 500, grpc::INTERNAL, "Something went wrong on our side.", "Algo deu errado do nosso lado."),
        }
    }

    /// The stable machine code, e.g. `AGENT_AT_CAPACITY`.
    pub fn as_str(self) -> &'static str {
        self.row().0
    }
    pub fn http_status(self) -> u16 {
        self.row().1
    }
    pub fn grpc_code(self) -> i32 {
        self.row().2
    }
    pub fn message_en(self) -> &'static str {
        self.row().3
    }
    pub fn message_pt_br(self) -> &'static str {
        self.row().4
    }
    pub fn parse(code: &str) -> Option<ErrorCode> {
        Self::ALL.iter().copied().find(|c| c.as_str() == code)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A domain failure: a stable code plus, optionally, which field was wrong and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct DomainError {
    pub code: ErrorCode,
    pub detail: String,
}

impl DomainError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_is_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "duplicate code {}", c.as_str());
            assert_eq!(ErrorCode::parse(c.as_str()), Some(*c));
            assert!(!c.message_en().is_empty() && !c.message_pt_br().is_empty());
        }
    }
}
