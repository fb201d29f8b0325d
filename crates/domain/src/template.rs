//! WhatsApp message templates (HSM): what Meta's template list says of one (name, language,
//! category, status, components with `{{n}}` slots), the check of a use of it before it is
//! sent (approved; the header, body and button parameters the components ask for, no more,
//! no fewer), the text the conversation shows, and the `components` of the send request.
//!
//! Only positional parameters (`{{1}}`, `{{2}}`…) are supported; a template using named
//! parameters is kept but refused at use with a clear error.

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, ErrorCode};

/// Meta's template categories.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Category {
    Marketing,
    Utility,
    Authentication,
}

/// A component of a template as Meta's template list describes it (`type` upper case).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    #[serde(rename = "type")]
    pub kind: String,
    /// HEADER: TEXT, IMAGE, VIDEO, DOCUMENT or LOCATION.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<Button>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    /// QUICK_REPLY, URL, PHONE_NUMBER, COPY_CODE, OTP…
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// One template of a WhatsApp number's business account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    pub name: String,
    pub language: String,
    pub category: Category,
    /// APPROVED, PENDING, REJECTED, PAUSED, DISABLED…
    pub status: String,
    pub components: Vec<Component>,
}

/// What a sender fills in: the header's parameter (text, or a media link), the body's
/// parameters in order, and the parameter of each URL button that has a `{{1}}`, by the
/// button's index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Use {
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub body: Vec<String>,
    #[serde(default)]
    pub buttons: Vec<(usize, String)>,
}

/// The number of positional slots a text asks for: `{{1}}` … `{{n}}`, each at least once.
/// `Err` with the reason when the slots are not 1..=n or are named.
pub fn slots(text: &str) -> Result<usize, String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let inner = after[..end].trim();
        match inner.parse::<usize>() {
            Ok(n) if n >= 1 => {
                seen.insert(n);
            }
            _ => {
                return Err(format!(
                    "named or malformed parameter {{{{{inner}}}}}: only {{{{1}}}}, {{{{2}}}}… are supported"
                ))
            }
        }
        rest = &after[end + 2..];
    }
    let n = seen.len();
    if seen.iter().copied().eq(1..=n) {
        Ok(n)
    } else {
        Err(format!(
            "parameters must be numbered from {{{{1}}}} without gaps, found {seen:?}"
        ))
    }
}

fn fill(text: &str, params: &[String]) -> String {
    let mut out = text.to_string();
    // Highest first, so {{1}} never eats the start of {{10}}.
    for (i, p) in params.iter().enumerate().rev() {
        out = out.replace(&format!("{{{{{}}}}}", i + 1), p);
    }
    out
}

fn mismatch(detail: String) -> DomainError {
    DomainError::new(ErrorCode::TemplateParamsMismatch, detail)
}

const MAX_PARAM_CHARS: usize = 1024;

/// What a template's parts ask a sender for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    /// TEXT, IMAGE, VIDEO, DOCUMENT or LOCATION; `None` without a header.
    pub header_format: Option<String>,
    /// Text parameters of a text header (a media header takes its link instead).
    pub header_parameters: usize,
    pub body_parameters: usize,
    /// The URL buttons whose link takes a parameter, by index.
    pub url_buttons: Vec<usize>,
}

impl Template {
    /// What it asks a sender for; `Err` with the reason for a template whose slots are not
    /// `{{1}}`… without gaps (such a template is refused at use).
    pub fn shape(&self) -> Result<Shape, String> {
        let header = self.component("HEADER");
        let header_parameters = match (header, self.header_media()) {
            (Some(h), None) => slots(h.text.as_deref().unwrap_or_default())?,
            _ => 0,
        };
        Ok(Shape {
            header_format: header.and_then(|h| h.format.clone()),
            header_parameters,
            body_parameters: slots(
                self.component("BODY")
                    .and_then(|b| b.text.as_deref())
                    .unwrap_or_default(),
            )?,
            url_buttons: self.url_slots(),
        })
    }

    fn component(&self, kind: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.kind.eq_ignore_ascii_case(kind))
    }

    fn header_media(&self) -> Option<&str> {
        self.component("HEADER")
            .and_then(|h| h.format.as_deref())
            .filter(|f| matches!(*f, "IMAGE" | "VIDEO" | "DOCUMENT"))
    }

    /// The URL buttons whose link takes a parameter, by index.
    fn url_slots(&self) -> Vec<usize> {
        self.component("BUTTONS")
            .map(|b| {
                b.buttons
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.kind == "URL" && b.url.as_deref().is_some_and(|u| u.contains("{{1}}")))
                    .map(|(i, _)| i)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `u` may be sent with this template now: approved, and exactly the parameters
    /// its components ask for (texts non-empty, at most 1,024 characters, no line breaks in
    /// a header; a media header needs an https link).
    pub fn check(&self, u: &Use) -> Result<(), DomainError> {
        if self.status != "APPROVED" {
            return Err(DomainError::new(
                ErrorCode::TemplateNotApproved,
                format!("{} ({}) is {}", self.name, self.language, self.status),
            ));
        }
        let header_slots = match (self.header_media(), self.component("HEADER")) {
            (Some(_), _) => None,
            (None, Some(h)) => Some(slots(h.text.as_deref().unwrap_or_default()).map_err(mismatch)?),
            (None, None) => Some(0),
        };
        match (header_slots, &u.header) {
            (None, Some(link)) if link.starts_with("https://") => {}
            (None, _) => {
                return Err(mismatch(format!(
                    "the header is a {} and needs its https link",
                    self.header_media().unwrap_or_default().to_lowercase()
                )))
            }
            (Some(0), None) => {}
            (Some(1), Some(text)) if !text.contains('\n') => {}
            (Some(n), given) => {
                return Err(mismatch(format!(
                    "the header takes {n} parameter(s), {} given",
                    usize::from(given.is_some())
                )))
            }
        }
        let body = slots(
            self.component("BODY")
                .and_then(|b| b.text.as_deref())
                .unwrap_or_default(),
        )
        .map_err(mismatch)?;
        if u.body.len() != body {
            return Err(mismatch(format!(
                "the body takes {body} parameter(s), {} given",
                u.body.len()
            )));
        }
        let urls = self.url_slots();
        let mut given: Vec<usize> = u.buttons.iter().map(|(i, _)| *i).collect();
        given.sort_unstable();
        if given != urls {
            return Err(mismatch(format!(
                "URL buttons with a parameter: {urls:?}, given {given:?}"
            )));
        }
        let all = u.header.iter().chain(&u.body).chain(u.buttons.iter().map(|(_, p)| p));
        for p in all {
            if p.trim().is_empty() || p.chars().count() > MAX_PARAM_CHARS {
                return Err(mismatch(format!(
                    "each parameter has 1 to {MAX_PARAM_CHARS} characters"
                )));
            }
        }
        Ok(())
    }

    /// The message as the conversation shows it: header text, body and footer with the
    /// parameters in place (a media header shows as `[image]`, …).
    pub fn render(&self, u: &Use) -> String {
        let mut parts = Vec::new();
        if let Some(media) = self.header_media() {
            parts.push(format!("[{}]", media.to_lowercase()));
        } else if let Some(h) = self.component("HEADER").and_then(|h| h.text.as_deref()) {
            parts.push(fill(h, u.header.as_slice()));
        }
        if let Some(b) = self.component("BODY").and_then(|b| b.text.as_deref()) {
            parts.push(fill(b, &u.body));
        }
        if let Some(f) = self.component("FOOTER").and_then(|f| f.text.as_deref()) {
            parts.push(f.to_string());
        }
        parts.join("\n\n")
    }

    /// The `components` of Meta's send request for `u` (checked with [`Template::check`]).
    pub fn send_components(&self, u: &Use) -> Vec<SendComponent> {
        let mut out = Vec::new();
        if let Some(h) = &u.header {
            let parameter = match self.header_media() {
                Some(media) => {
                    let kind = media.to_lowercase();
                    SendParameter::media(&kind, h)
                }
                None => SendParameter::text(h),
            };
            out.push(SendComponent {
                kind: "header".into(),
                sub_type: None,
                index: None,
                parameters: vec![parameter],
            });
        }
        if !u.body.is_empty() {
            out.push(SendComponent {
                kind: "body".into(),
                sub_type: None,
                index: None,
                parameters: u.body.iter().map(|p| SendParameter::text(p)).collect(),
            });
        }
        let mut buttons = u.buttons.clone();
        buttons.sort_by_key(|(i, _)| *i);
        for (index, p) in buttons {
            out.push(SendComponent {
                kind: "button".into(),
                sub_type: Some("url".into()),
                index: Some(index.to_string()),
                parameters: vec![SendParameter::text(&p)],
            });
        }
        out
    }
}

/// A component of the send request, as Meta's Cloud API takes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendComponent {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    pub parameters: Vec<SendParameter>,
}

/// `{"type":"text","text":…}` or `{"type":"image","image":{"link":…}}` (video, document).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendParameter {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<Link>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video: Option<Link>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<Link>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub link: String,
}

impl SendParameter {
    fn text(t: &str) -> Self {
        Self {
            kind: "text".into(),
            text: Some(t.to_string()),
            image: None,
            video: None,
            document: None,
        }
    }

    fn media(kind: &str, link: &str) -> Self {
        let l = Some(Link { link: link.to_string() });
        Self {
            kind: kind.to_string(),
            text: None,
            image: if kind == "image" { l.clone() } else { None },
            video: if kind == "video" { l.clone() } else { None },
            document: if kind == "document" { l } else { None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn comp(kind: &str, format: Option<&str>, text: Option<&str>) -> Component {
        Component {
            kind: kind.into(),
            format: format.map(str::to_string),
            text: text.map(str::to_string),
            buttons: Vec::new(),
        }
    }

    fn order_update() -> Template {
        let mut buttons = comp("BUTTONS", None, None);
        buttons.buttons = vec![
            Button {
                kind: "QUICK_REPLY".into(),
                text: "Falar com atendente".into(),
                url: None,
            },
            Button {
                kind: "URL".into(),
                text: "Rastrear".into(),
                url: Some("https://loja.test/pedido/{{1}}".into()),
            },
        ];
        Template {
            name: "pedido_enviado".into(),
            language: "pt_BR".into(),
            category: Category::Utility,
            status: "APPROVED".into(),
            components: vec![
                comp("HEADER", Some("TEXT"), Some("Pedido {{1}}")),
                comp("BODY", None, Some("Olá {{1}}, seu pedido saiu em {{2}}.")),
                comp("FOOTER", None, Some("Loja Teste")),
                buttons,
            ],
        }
    }

    fn ok_use() -> Use {
        Use {
            header: Some("#123".into()),
            body: vec!["Maria".into(), "07/12".into()],
            buttons: vec![(1, "123".into())],
        }
    }

    #[test]
    fn slots_are_numbered_from_one_without_gaps_and_named_ones_are_refused() {
        assert_eq!(slots("sem parâmetros"), Ok(0));
        assert_eq!(slots("{{1}} e {{2}} e de novo {{1}}"), Ok(2));
        assert!(slots("{{2}} sozinho").is_err());
        assert!(slots("{{nome}}").is_err());
    }

    #[test]
    fn a_complete_use_passes_renders_and_builds_the_send_components() {
        let t = order_update();
        let u = ok_use();
        t.check(&u).unwrap();
        assert_eq!(
            t.render(&u),
            "Pedido #123\n\nOlá Maria, seu pedido saiu em 07/12.\n\nLoja Teste"
        );
        let c = t.send_components(&u);
        assert_eq!(
            c.iter().map(|c| c.kind.as_str()).collect::<Vec<_>>(),
            ["header", "body", "button"]
        );
        assert_eq!(c[1].parameters.len(), 2);
        assert_eq!(
            (c[2].sub_type.as_deref(), c[2].index.as_deref()),
            (Some("url"), Some("1"))
        );
    }

    #[test]
    fn every_mismatch_is_refused_with_its_code() {
        let t = order_update();
        let cases = [
            Use {
                body: vec!["Maria".into()],
                ..ok_use()
            },
            Use {
                header: None,
                ..ok_use()
            },
            Use {
                buttons: Vec::new(),
                ..ok_use()
            },
            Use {
                buttons: vec![(0, "x".into())],
                ..ok_use()
            },
            Use {
                body: vec!["Maria".into(), " ".into()],
                ..ok_use()
            },
            Use {
                header: Some("linha\nquebrada".into()),
                ..ok_use()
            },
        ];
        for u in cases {
            assert_eq!(
                t.check(&u).unwrap_err().code,
                ErrorCode::TemplateParamsMismatch,
                "{u:?}"
            );
        }
        let paused = Template {
            status: "PAUSED".into(),
            ..order_update()
        };
        assert_eq!(
            paused.check(&ok_use()).unwrap_err().code,
            ErrorCode::TemplateNotApproved
        );
    }

    #[test]
    fn a_media_header_needs_an_https_link_and_sends_it_as_its_kind() {
        let mut t = order_update();
        t.components[0] = comp("HEADER", Some("IMAGE"), None);
        let u = Use {
            header: Some("https://cdn.test/a.png".into()),
            ..ok_use()
        };
        t.check(&u).unwrap();
        assert!(t.render(&u).starts_with("[image]"));
        let header = &t.send_components(&u)[0];
        assert_eq!(
            header.parameters[0].image.as_ref().unwrap().link,
            "https://cdn.test/a.png"
        );
        for bad in [None, Some("http://cdn.test/a.png".to_string())] {
            let u = Use {
                header: bad,
                ..ok_use()
            };
            assert_eq!(t.check(&u).unwrap_err().code, ErrorCode::TemplateParamsMismatch);
        }
    }

    proptest! {
        #[test]
        fn rendering_places_every_parameter_and_leaves_no_slot(params in proptest::collection::vec("[a-zA-Z0-9][a-zA-Z0-9 ]{0,11}", 1..12)) {
            let text = (1..=params.len()).map(|i| format!("<{{{{{i}}}}}>")).collect::<Vec<_>>().join(" ");
            let t = Template {
                name: "t".into(),
                language: "pt_BR".into(),
                category: Category::Marketing,
                status: "APPROVED".into(),
                components: vec![comp("BODY", None, Some(&text))],
            };
            let u = Use { header: None, body: params.clone(), buttons: Vec::new() };
            prop_assert!(t.check(&u).is_ok());
            let shown = t.render(&u);
            for p in &params {
                let placed = format!("<{p}>");
                prop_assert!(shown.contains(&placed));
            }
            prop_assert!(!shown.contains("{{"));
        }
    }
}
