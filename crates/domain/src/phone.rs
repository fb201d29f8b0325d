//! Brazilian phone numbers and WhatsApp id equivalence.
//!
//! Two different problems live here because they share one fact about Brazil: mobiles gained a
//! ninth digit (a leading `9`) between 2012 and 2016, and WhatsApp still reports many older
//! accounts under the 8-digit form.
//!
//! - [`parse_br_phone`] validates what an agent types when starting a WhatsApp conversation
//!   ("conversa ativa"). The product rule is the seed's: DDD + number, country code 55 added by
//!   the system; a number whose subscriber part starts with 9 or 8 is a mobile and needs 11 digits,
//!   a landline needs 10. Anything else is `INVALID_PHONE` ("Número inválido, corrija e tente
//!   novamente").
//! - [`canonical_wa_id`] / [`wa_id_variants`] make `55 DD 9XXXXXXXX` and `55 DD XXXXXXXX` the same
//!   contact, so a customer is not duplicated when one webhook carries the short form and an
//!   agent typed the long one. Everything that is not a Brazilian mobile passes through
//!   untouched: a wrong merge is worse than a duplicate.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, ErrorCode};

/// Brazil's country calling code, which the system adds to every number an agent types.
const BR_COUNTRY_CODE: &str = "55";

/// Every area code (DDD) in service in Brazil (ANATEL). Numbers outside this list are typos,
/// and catching them here spares a failed send and a confused agent.
const VALID_DDDS: [u8; 67] = [
    11, 12, 13, 14, 15, 16, 17, 18, 19, // SP
    21, 22, 24, // RJ
    27, 28, // ES
    31, 32, 33, 34, 35, 37, 38, // MG
    41, 42, 43, 44, 45, 46, // PR
    47, 48, 49, // SC
    51, 53, 54, 55, // RS
    61, // DF
    62, 64, // GO
    63, // TO
    65, 66, // MT
    67, // MS
    68, // AC
    69, // RO
    71, 73, 74, 75, 77, // BA
    79, // SE
    81, 87, // PE
    82, // AL
    83, // PB
    84, // RN
    85, 88, // CE
    86, 89, // PI
    91, 93, 94, // PA
    92, 97, // AM
    95, // RR
    96, // AP
    98, 99, // MA
];

/// Whether `ddd` (two ASCII digits) is an area code in service.
pub fn is_valid_ddd(ddd: &str) -> bool {
    ddd.len() == 2 && ddd.parse::<u8>().is_ok_and(|n| VALID_DDDS.contains(&n))
}

/// A validated Brazilian phone number in E.164 form without the `+`, e.g. `5511987654321`.
///
/// Only [`parse_br_phone`] builds one, so holding a `PhoneNumber` proves the digits passed the
/// product rule; deserialising goes through the same check.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// E.164 digits without `+`: what WhatsApp's `to` field and `wa_id` use.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// The two-digit area code.
    pub fn ddd(&self) -> &str {
        &self.0[2..4]
    }

    /// The number after the area code (8 digits for landlines, 9 for mobiles).
    pub fn subscriber(&self) -> &str {
        &self.0[4..]
    }

    /// Mobiles have 9 subscriber digits; landlines 8.
    pub fn is_mobile(&self) -> bool {
        self.subscriber().len() == 9
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.0)
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        parse_br_phone(&s)
    }
}

impl From<PhoneNumber> for String {
    fn from(p: PhoneNumber) -> String {
        p.0
    }
}

impl std::str::FromStr for PhoneNumber {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_br_phone(s)
    }
}

fn invalid(detail: &str) -> DomainError {
    DomainError::new(ErrorCode::InvalidPhone, detail)
}

/// Parses a Brazilian number as an agent types it: DDD + number, optionally with `+55`/`55`,
/// a trunk `0` before the DDD, spaces, dots, dashes and parentheses ("(11) 99999-9999",
/// "(21) 3223-5036", "+55 11 98765 4321").
///
/// The subscriber's first digit decides the kind, per the product rule: 9 or 8 is a mobile and
/// must have 9 digits after the DDD; 2–5 is a landline and must have 8. Other first digits
/// (0, 1 service codes; 6, 7 old mobiles missing their ninth digit) are refused.
pub fn parse_br_phone(input: &str) -> Result<PhoneNumber, DomainError> {
    let trimmed = input.trim();
    let (had_plus, rest) = match trimmed.strip_prefix('+') {
        Some(r) => (true, r),
        None => (false, trimmed),
    };
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' | '\u{a0}' => {}
            _ => return Err(invalid("the number may contain only digits and punctuation")),
        }
    }

    // Strip the country code only when the length says it is there: 55 is also a DDD (RS), so
    // "55 9xxxx-xxxx" with 11 digits is a local mobile, not a country code.
    let national: &str = if had_plus {
        digits
            .strip_prefix(BR_COUNTRY_CODE)
            .ok_or_else(|| invalid("only Brazilian numbers (+55) are accepted"))?
    } else if matches!(digits.len(), 12 | 13) && digits.starts_with(BR_COUNTRY_CODE) {
        &digits[2..]
    } else if matches!(digits.len(), 11 | 12) && digits.starts_with('0') {
        // Domestic trunk prefix: "0 11 98765-4321". DDDs never start with 0.
        &digits[1..]
    } else {
        &digits
    };

    if national.len() < 3 {
        return Err(invalid("type the DDD and the number"));
    }
    let (ddd, subscriber) = national.split_at(2);
    if !is_valid_ddd(ddd) {
        return Err(invalid("unknown DDD"));
    }
    let expected_len = match subscriber.as_bytes()[0] {
        b'8' | b'9' => 9,
        b'2'..=b'5' => 8,
        _ => {
            return Err(invalid(
                "the number must start with 9 or 8 (mobile) or 2 to 5 (landline)",
            ))
        }
    };
    if subscriber.len() != expected_len {
        return Err(invalid(if expected_len == 9 {
            "a mobile needs 11 digits with the DDD"
        } else {
            "a landline needs 10 digits with the DDD"
        }));
    }
    Ok(PhoneNumber(format!("{BR_COUNTRY_CODE}{national}")))
}

/// The 8-digit subscriber number of a Brazilian mobile, if `digits` is one in either form:
/// `55 DD 9XXXXXXXX` (13 digits) or `55 DD XXXXXXXX` (12 digits), where `XXXXXXXX` starts with
/// 6–9 (the mobile range before the ninth digit). Returns `(ddd, eight_digits)`.
fn br_mobile_parts(digits: &str) -> Option<(&str, &str)> {
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let national = digits.strip_prefix(BR_COUNTRY_CODE)?;
    let (ddd, sub) = national.split_at_checked(2)?;
    if !is_valid_ddd(ddd) {
        return None;
    }
    let eight = match sub.len() {
        9 => sub.strip_prefix('9')?,
        8 => sub,
        _ => return None,
    };
    matches!(eight.as_bytes()[0], b'6'..=b'9').then_some((ddd, eight))
}

/// One key per WhatsApp user for Brazilian mobiles: the 13-digit form with the ninth digit.
///
/// A leading `+` is dropped. Anything that is not a Brazilian mobile (landlines, other
/// countries, business-scoped user ids such as `BR.1502576394655843`) is returned unchanged.
pub fn canonical_wa_id(wa_id: &str) -> String {
    let s = wa_id.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    match br_mobile_parts(s) {
        Some((ddd, eight)) => format!("{BR_COUNTRY_CODE}{ddd}9{eight}"),
        None => s.to_owned(),
    }
}

/// Every form under which WhatsApp may report the same user: for a Brazilian mobile the
/// canonical 13-digit form first, then the 12-digit one; otherwise just the input.
/// Lookups use this to find a contact stored before the canonical key existed.
pub fn wa_id_variants(wa_id: &str) -> Vec<String> {
    let s = wa_id.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    match br_mobile_parts(s) {
        Some((ddd, eight)) => vec![
            format!("{BR_COUNTRY_CODE}{ddd}9{eight}"),
            format!("{BR_COUNTRY_CODE}{ddd}{eight}"),
        ],
        None => vec![s.to_owned()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(input: &str) -> String {
        parse_br_phone(input)
            .unwrap_or_else(|e| panic!("{input:?} should parse: {e}"))
            .digits()
            .to_owned()
    }

    fn err(input: &str) -> DomainError {
        parse_br_phone(input).expect_err(input)
    }

    #[test]
    fn the_seeds_examples_parse_with_the_country_code_added() {
        assert_eq!(ok("(11)999999999"), "5511999999999");
        assert_eq!(ok("(21) 32235036"), "552132235036");
    }

    #[test]
    fn punctuation_spaces_and_an_existing_country_code_are_accepted() {
        assert_eq!(ok("11 98765-4321"), "5511987654321");
        assert_eq!(ok("+55 (11) 98765-4321"), "5511987654321");
        assert_eq!(ok("5511987654321"), "5511987654321");
        assert_eq!(ok("55 21 3223-5036"), "552132235036");
        assert_eq!(ok("  11.98765.4321 "), "5511987654321");
        assert_eq!(ok("0 11 98765-4321"), "5511987654321");
    }

    #[test]
    fn ddd_55_is_not_mistaken_for_the_country_code() {
        assert_eq!(ok("55 99876-5432"), "5555998765432");
        assert_eq!(ok("55 3222-3333"), "555532223333");
        assert_eq!(ok("55 55 99876-5432"), "5555998765432");
    }

    #[test]
    fn a_mobile_starting_with_8_or_9_needs_eleven_digits() {
        assert_eq!(ok("11 88765-4321"), "5511887654321");
        for bad in ["11 9876-5432", "11 8765-4321", "11 998765-43210", "(11)99999999"] {
            let e = err(bad);
            assert_eq!(e.code, ErrorCode::InvalidPhone, "{bad}");
        }
    }

    #[test]
    fn a_landline_needs_ten_digits() {
        assert_eq!(err("21 3223-503").code, ErrorCode::InvalidPhone);
        assert_eq!(err("21 3223-50361").code, ErrorCode::InvalidPhone);
    }

    #[test]
    fn unknown_ddds_and_odd_first_digits_are_refused() {
        for bad in [
            "10 98765-4321",
            "20 98765-4321",
            "00 98765-4321",
            "11 1234-5678",
            "11 7123-4567",
            "11 0123-4567",
        ] {
            assert_eq!(err(bad).code, ErrorCode::InvalidPhone, "{bad}");
        }
    }

    #[test]
    fn letters_foreign_numbers_and_empty_input_are_refused() {
        for bad in ["", "   ", "abc", "11 9876a-4321", "+1 650 555 1234", "+5511", "11"] {
            assert_eq!(err(bad).code, ErrorCode::InvalidPhone, "{bad:?}");
        }
    }

    #[test]
    fn the_user_facing_message_is_the_seeds() {
        assert_eq!(
            err("123").code.message_pt_br(),
            "Número inválido, corrija e tente novamente"
        );
    }

    #[test]
    fn phone_number_parts_and_display() {
        let p = parse_br_phone("(11) 98765-4321").unwrap();
        assert_eq!(p.ddd(), "11");
        assert_eq!(p.subscriber(), "987654321");
        assert!(p.is_mobile());
        assert_eq!(p.to_string(), "+5511987654321");
        assert!(!parse_br_phone("2132235036").unwrap().is_mobile());
    }

    #[test]
    fn a_phone_number_converts_to_its_digits_and_back_only_when_valid() {
        let p = parse_br_phone("11987654321").unwrap();
        let s = String::from(p.clone());
        assert_eq!(s, "5511987654321");
        assert_eq!(PhoneNumber::try_from(s).unwrap(), p);
        assert!(PhoneNumber::try_from("5511".to_owned()).is_err());
    }

    #[test]
    fn brazilian_mobiles_with_and_without_the_ninth_digit_are_one_wa_id() {
        assert_eq!(canonical_wa_id("551187654321"), "5511987654321");
        assert_eq!(canonical_wa_id("5511987654321"), "5511987654321");
        assert_eq!(canonical_wa_id("+551187654321"), "5511987654321");
        assert_eq!(canonical_wa_id("556199998888"), "5561999998888");
        assert_eq!(wa_id_variants("551187654321"), vec!["5511987654321", "551187654321"]);
        assert_eq!(wa_id_variants("5511987654321"), vec!["5511987654321", "551187654321"]);
    }

    #[test]
    fn landlines_other_countries_and_bsuids_are_left_alone() {
        assert_eq!(canonical_wa_id("552132235036"), "552132235036"); // landline (starts with 3)
        assert_eq!(canonical_wa_id("16505551234"), "16505551234");
        assert_eq!(canonical_wa_id("972987654321"), "972987654321");
        assert_eq!(canonical_wa_id("551087654321"), "551087654321"); // DDD 10 does not exist
        assert_eq!(canonical_wa_id("5511887654321"), "5511887654321"); // 9 digits, not 9-prefixed
        assert_eq!(canonical_wa_id("BR.1502576394655843"), "BR.1502576394655843");
        assert_eq!(wa_id_variants("16505551234"), vec!["16505551234"]);
    }

    proptest! {
        #[test]
        fn canonical_is_idempotent(s in "\\+?[0-9]{0,15}") {
            let once = canonical_wa_id(&s);
            prop_assert_eq!(canonical_wa_id(&once), once.clone());
            prop_assert!(wa_id_variants(&s).contains(&once));
        }

        #[test]
        fn both_forms_of_a_mobile_canonicalise_equal(
            ddd in proptest::sample::select(VALID_DDDS.to_vec()),
            first in 6u8..=9,
            rest in "[0-9]{7}",
        ) {
            let eight = format!("{first}{rest}");
            let short = format!("55{ddd}{eight}");
            let long = format!("55{ddd}9{eight}");
            prop_assert_eq!(canonical_wa_id(&short), long.clone());
            prop_assert_eq!(canonical_wa_id(&long), long.clone());
            prop_assert_eq!(wa_id_variants(&short), wa_id_variants(&long));
        }

        #[test]
        fn every_parsed_phone_reparses_to_itself(
            ddd in proptest::sample::select(VALID_DDDS.to_vec()),
            mobile in proptest::bool::ANY,
            rest in "[0-9]{7}",
        ) {
            let typed = if mobile { format!("({ddd}) 9{rest}-1") } else { format!("{ddd} 3{rest}") };
            let p = parse_br_phone(&typed).unwrap();
            prop_assert_eq!(parse_br_phone(p.digits()).unwrap(), p.clone());
            prop_assert_eq!(parse_br_phone(&p.to_string()).unwrap(), p);
        }
    }
}
