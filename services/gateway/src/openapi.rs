//! The API's OpenAPI 3.1 document, served at `/openapi.json`. Each route is registered with
//! its description (`utoipa_axum::routes!` in [`crate::api::routes`]), so the router cannot
//! serve a route the document lacks; this module adds what every operation shares: the bearer
//! scheme and the refusals, whose statuses come from the platform's one error table.

use std::collections::BTreeSet;

use atende_domain::ErrorCode;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr, Response, Type};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Atende gateway API",
        description = "The agents' and supervisors' API: sign-in, presence, the workspace \
(conversations, replies, notes, drafts, transfers, finishing, history), the push WebSocket \
and the supervisor's board. Every request but login and refresh carries \
`Authorization: Bearer <access token>`. Every refusal is `{\"error\": {code, message, \
message_pt_br, detail}}` with a stable code.",
    ),
    security(("bearer" = [])),
    components(schemas(crate::views::ErrorBody)),
    tags(
        (name = "auth", description = "Sign-in, silent renewal, logout and WebSocket tickets"),
        (name = "presence", description = "Channel logins and pauses (seed 001)"),
        (name = "conversations", description = "One conversation: read, reply, note, transfer, finish"),
        (name = "workspace", description = "The agent's lists, drafts, tags, canned responses"),
        (name = "push", description = "The agent's numbered feed over a WebSocket"),
        (name = "supervisor", description = "The supervisor's board and bulk actions"),
        (name = "admin", description = "The tenant administrator's agents and services"),
    )
)]
pub struct ApiDoc;

/// The routes' document with the bearer scheme and, on every operation, the refusals it may
/// answer (429 with `Retry-After`).
pub fn complete(mut doc: Document) -> Document {
    doc.components.get_or_insert_with(Default::default).add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    let statuses: BTreeSet<u16> = ErrorCode::ALL.iter().map(|c| c.http_status()).collect();
    for item in doc.paths.paths.values_mut() {
        let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete];
        for op in ops.into_iter().flatten() {
            for status in &statuses {
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| RefOr::T(refusal(*status)));
            }
        }
    }
    doc
}

fn refusal(status: u16) -> Response {
    let codes: Vec<&str> = ErrorCode::ALL
        .iter()
        .filter(|c| c.http_status() == status)
        .map(|c| c.as_str())
        .collect();
    let response = ResponseBuilder::new()
        .description(format!("Refused: {}", codes.join(", ")))
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        );
    let response = if status == 429 {
        response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(utoipa::openapi::schema::Object::with_type(Type::Integer)))
                .description(Some("Seconds to wait before trying again"))
                .build(),
        )
    } else {
        response
    };
    response.build()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves_and_every_operation_documents_its_refusals() {
        let doc = serde_json::to_value(crate::api::document()).unwrap();
        if std::env::var_os("ATENDE_PRINT_OPENAPI").is_some() {
            println!("{}", serde_json::to_string_pretty(&doc).unwrap());
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        for r in &all {
            let pointer = r.trim_start_matches('#');
            assert!(doc.pointer(pointer).is_some(), "dangling {r}");
        }
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 30, "{} paths", paths.len());
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                for status in ["400", "401", "403", "404", "409", "429", "503"] {
                    assert!(op["responses"].get(status).is_some(), "{method} {path} lacks {status}");
                }
                let ok = op["responses"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .any(|s| s.starts_with('2') || s == "101");
                assert!(ok, "{method} {path} documents no success");
            }
        }
    }
}
