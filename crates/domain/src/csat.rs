//! The satisfaction question after a finish: the customer's next message answers it with a
//! score from 1 to 5 ("5", "nota 4", "4!", "⭐ 3"); anything else is no answer.

/// The score in the customer's answer, if it is one.
pub fn parse_score(text: &str) -> Option<u8> {
    let t = text.trim().to_lowercase();
    let t = t
        .strip_prefix("nota")
        .or_else(|| t.strip_prefix("note"))
        .unwrap_or(&t)
        .trim_matches(|c: char| c.is_whitespace() || matches!(c, '.' | '!' | ':' | '-' | '⭐' | '*'));
    let score: u8 = t.parse().ok()?;
    (1..=5).contains(&score).then_some(score)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scores_are_read_however_customers_type_them() {
        for (text, score) in [
            ("5", 5),
            (" 4 ", 4),
            ("nota 3", 3),
            ("Nota: 2", 2),
            ("1!", 1),
            ("⭐ 5", 5),
        ] {
            assert_eq!(parse_score(text), Some(score), "{text:?}");
        }
    }

    #[test]
    fn anything_else_is_no_answer() {
        for text in ["0", "6", "10", "ótimo", "", "5 estrelas e mais", "4.5"] {
            assert_eq!(parse_score(text), None, "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn a_score_is_always_between_one_and_five(text in ".{0,12}") {
            if let Some(s) = parse_score(&text) {
                prop_assert!((1..=5).contains(&s));
            }
        }
    }
}
