//! The menu bot of a channel (seed 002: "o BOT direciona o atendimento para seu time quando a
//! pessoa digita a opção desejada"): a greeting with numbered options, each leading to a
//! service; an answer that matches no option is answered with the menu again; a customer who
//! stops answering for the menu's inactivity window is sent to its fallback service, or the
//! conversation closes as abandoned when it has none.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::{DomainError, ErrorCode};

pub const MAX_OPTIONS: usize = 20;
pub const MAX_GREETING: usize = 1024;
pub const MAX_LABEL: usize = 60;
pub const MIN_INACTIVITY: Duration = Duration::from_secs(60);
pub const MAX_INACTIVITY: Duration = Duration::from_secs(7 * 24 * 3600);

/// The menu as configured on a channel. Options are numbered from 1 in their order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Menu<S> {
    pub greeting: String,
    pub options: Vec<MenuOption<S>>,
    /// Sent before the menu again when an answer matches no option.
    pub invalid_reply: String,
    /// How long the bot waits for an answer.
    pub inactivity_secs: u64,
    /// Where the conversation goes when the window passes; `None` closes it as abandoned.
    pub fallback_service: Option<S>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MenuOption<S> {
    pub label: String,
    pub service: S,
}

/// What the bot does with a customer's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer<S> {
    /// The customer chose an option: the conversation enters this service.
    Route { option: usize, service: S },
    /// No option matched: send this text (the invalid reply and the menu again).
    Reprompt(String),
}

/// What happens to a conversation whose customer stopped answering the menu.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inactivity<S> {
    /// Not yet: check again at this time.
    Wait(Timestamp),
    Route(S),
    Abandon,
}

impl<S: Copy> Menu<S> {
    /// Checks a menu before it is stored.
    pub fn validate(&self) -> Result<(), DomainError> {
        let bad = |detail: &str| Err(DomainError::new(ErrorCode::InvalidMenu, detail));
        let greeting = self.greeting.trim();
        if greeting.is_empty() || greeting.chars().count() > MAX_GREETING {
            return bad("greeting must have 1 to 1024 characters");
        }
        if self.options.is_empty() || self.options.len() > MAX_OPTIONS {
            return bad("a menu has 1 to 20 options");
        }
        for o in &self.options {
            let label = o.label.trim();
            if label.is_empty() || label.chars().count() > MAX_LABEL {
                return bad("option labels must have 1 to 60 characters");
            }
        }
        if self.invalid_reply.chars().count() > MAX_GREETING {
            return bad("invalid_reply must have at most 1024 characters");
        }
        let window = Duration::from_secs(self.inactivity_secs);
        if !(MIN_INACTIVITY..=MAX_INACTIVITY).contains(&window) {
            return bad("inactivity must be between 1 minute and 7 days");
        }
        Ok(())
    }

    /// The greeting followed by the numbered options, one per line.
    pub fn prompt(&self) -> String {
        let mut text = self.greeting.trim().to_string();
        for (i, o) in self.options.iter().enumerate() {
            text.push_str(&format!("\n{} - {}", i + 1, o.label.trim()));
        }
        text
    }

    /// The customer's answer: the option's number (optionally followed by `.`, `)` or `-`,
    /// as people type it) or its label, case and accents ignored.
    pub fn answer(&self, text: &str) -> Answer<S> {
        let t = text.trim();
        let number = t.trim_end_matches(['.', ')', '-', ' ']).trim();
        let chosen = number
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=self.options.len()).contains(n))
            .or_else(|| {
                let wanted = fold(t);
                self.options
                    .iter()
                    .position(|o| !wanted.is_empty() && fold(&o.label) == wanted)
                    .map(|i| i + 1)
            });
        match chosen {
            Some(n) => Answer::Route {
                option: n,
                service: self.options[n - 1].service,
            },
            None => {
                let invalid = self.invalid_reply.trim();
                let invalid = if invalid.is_empty() {
                    "Opção inválida. Digite o número da opção desejada."
                } else {
                    invalid
                };
                Answer::Reprompt(format!("{invalid}\n\n{}", self.prompt()))
            }
        }
    }

    /// The inactivity rule at `now`, for a conversation whose customer last wrote (or was
    /// last prompted) at `last_activity`.
    pub fn inactivity(&self, last_activity: Timestamp, now: Timestamp) -> Inactivity<S> {
        let due = last_activity + Duration::from_secs(self.inactivity_secs);
        if now < due {
            return Inactivity::Wait(due);
        }
        match self.fallback_service {
            Some(s) => Inactivity::Route(s),
            None => Inactivity::Abandon,
        }
    }
}

/// Lower case without the Portuguese accents, spaces collapsed: "Suporte Técnico" and
/// "suporte tecnico" are the same answer.
fn fold(s: &str) -> String {
    let mapped: String = s
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ã' | 'ä' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'õ' | 'ö' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            c => c,
        })
        .collect();
    mapped.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn menu() -> Menu<u8> {
        Menu {
            greeting: "Olá! Escolha uma opção:".into(),
            options: vec![
                MenuOption {
                    label: "Vendas".into(),
                    service: 10,
                },
                MenuOption {
                    label: "Suporte Técnico".into(),
                    service: 20,
                },
            ],
            invalid_reply: String::new(),
            inactivity_secs: 600,
            fallback_service: Some(10),
        }
    }

    #[test]
    fn the_prompt_lists_the_options_by_number() {
        assert_eq!(
            menu().prompt(),
            "Olá! Escolha uma opção:\n1 - Vendas\n2 - Suporte Técnico"
        );
    }

    #[test]
    fn option_two_leads_to_the_second_service_however_it_is_typed() {
        for t in ["2", " 2 ", "2.", "2)", "2 -", "suporte tecnico", "SUPORTE  TÉCNICO"] {
            assert_eq!(menu().answer(t), Answer::Route { option: 2, service: 20 }, "{t:?}");
        }
    }

    #[test]
    fn an_unknown_answer_re_prompts_with_the_menu() {
        for t in ["3", "0", "oi", "", "22", "-1"] {
            match menu().answer(t) {
                Answer::Reprompt(text) => {
                    assert!(text.starts_with("Opção inválida"), "{text}");
                    assert!(text.ends_with(&menu().prompt()));
                }
                other => panic!("{t:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn after_the_inactivity_window_the_conversation_goes_to_the_fallback_or_is_abandoned() {
        let m = menu();
        let t0 = Timestamp::from_secs(1000);
        assert_eq!(
            m.inactivity(t0, Timestamp::from_secs(1599)),
            Inactivity::Wait(Timestamp::from_secs(1600))
        );
        assert_eq!(m.inactivity(t0, Timestamp::from_secs(1600)), Inactivity::Route(10));
        let no_fallback = Menu {
            fallback_service: None,
            ..m
        };
        assert_eq!(
            no_fallback.inactivity(t0, Timestamp::from_secs(5000)),
            Inactivity::Abandon
        );
    }

    #[test]
    fn menus_out_of_bounds_are_refused() {
        assert!(menu().validate().is_ok());
        let mut m = menu();
        m.options.clear();
        assert_eq!(m.validate().unwrap_err().code, ErrorCode::InvalidMenu);
        let mut m = menu();
        m.inactivity_secs = 10;
        assert!(m.validate().is_err());
        let mut m = menu();
        m.greeting = " ".into();
        assert!(m.validate().is_err());
        let mut m = menu();
        m.options[0].label = "x".repeat(61);
        assert!(m.validate().is_err());
    }

    proptest! {
        #[test]
        fn any_answer_routes_to_a_menu_service_or_re_prompts(text in ".{0,12}", n in 1usize..6) {
            let m = Menu {
                greeting: "Oi".into(),
                options: (0..n).map(|i| MenuOption { label: format!("Opção {i}"), service: i as u8 }).collect(),
                invalid_reply: "Inválida".into(),
                inactivity_secs: 60,
                fallback_service: None,
            };
            match m.answer(&text) {
                Answer::Route { option, service } => {
                    prop_assert!((1..=n).contains(&option));
                    prop_assert_eq!(service as usize, option - 1);
                }
                Answer::Reprompt(t) => prop_assert!(t.starts_with("Inválida")),
            }
        }

        #[test]
        fn every_listed_number_is_its_option(n in 1usize..=20) {
            let m = Menu {
                greeting: "Oi".into(),
                options: (0..n).map(|i| MenuOption { label: format!("L{i}"), service: i }).collect(),
                invalid_reply: String::new(),
                inactivity_secs: 60,
                fallback_service: None,
            };
            for i in 1..=n {
                prop_assert_eq!(m.answer(&i.to_string()), Answer::Route { option: i, service: i - 1 });
            }
        }
    }
}
