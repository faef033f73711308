//! The `check_numbers` tool: a deterministic check that every number a model wrote comes
//! from the data it was given, so a graph can send an explanation back before anyone reads it.
//!
//! A number of a text is supported when some number of its source equals it, or rounds to it
//! at the text's precision (`1234.567` supports `1234.57` and `1,235`). Whole numbers from 0
//! to 10 are not checked: they count things ("two suggestions", "top 3") more often than
//! they quote data. Signs are ignored, and so are thousands separators.

use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Value, json};

/// Whole numbers up to this are not checked.
const SMALL: i64 = 10;

/// Checks `texts` against `sources`: a text against one value, or a list of texts against a
/// list of as many values, each text against its own. `{ ok, problems, passed }`: a problem
/// per unsupported number (and one when the lists differ in length), and the texts that had
/// none, in order.
pub(crate) fn check(texts: &Value, sources: &Value) -> Result<Value, String> {
    let pairs: Vec<(&Value, &Value)> = match (texts, sources) {
        (Value::String(_), source) => vec![(texts, source)],
        (Value::Array(texts), Value::Array(sources)) => texts.iter().zip(sources).collect(),
        (Value::Array(_), _) => return Err("`sources` must be a list, one value per text".to_owned()),
        _ => return Err("`texts` must be a text or a list of texts".to_owned()),
    };
    let mut problems = Vec::new();
    if let (Value::Array(texts), Value::Array(sources)) = (texts, sources)
        && texts.len() != sources.len()
    {
        problems.push(format!(
            "{} texts for {} sources: write one text per source, in their order",
            texts.len(),
            sources.len()
        ));
    }
    let mut passed = Vec::new();
    for (index, (text, source)) in pairs.into_iter().enumerate() {
        let Some(text) = text.as_str() else {
            return Err("`texts` must be a text or a list of texts".to_owned());
        };
        let mut known = Vec::new();
        source_numbers(source, &mut known);
        let before = problems.len();
        for (written, number) in numbers(text) {
            if !supported(number, &known) {
                let which = match texts {
                    Value::Array(_) => format!("text {}: ", index + 1),
                    _ => String::new(),
                };
                problems.push(format!("{which}{written} is not in its data"));
            }
        }
        if problems.len() == before {
            passed.push(text);
        }
    }
    Ok(json!({ "ok": problems.is_empty(), "problems": problems, "passed": passed }))
}

fn supported(number: Decimal, known: &[Decimal]) -> bool {
    if number.scale() == 0 && number <= Decimal::from(SMALL) {
        return true;
    }
    let rounded = |candidate: &Decimal, strategy| candidate.round_dp_with_strategy(number.scale(), strategy);
    known.iter().any(|candidate| {
        *candidate == number
            || rounded(candidate, RoundingStrategy::MidpointAwayFromZero) == number
            || rounded(candidate, RoundingStrategy::MidpointNearestEven) == number
    })
}

/// Every number in a JSON value: numbers, and numbers inside texts (decimals, dates' parts).
fn source_numbers(value: &Value, into: &mut Vec<Decimal>) {
    match value {
        Value::Number(number) => {
            if let Ok(number) = number.to_string().parse::<Decimal>() {
                into.push(number.abs());
            }
        }
        Value::String(text) => into.extend(numbers(text).into_iter().map(|(_, number)| number)),
        Value::Array(items) => items.iter().for_each(|item| source_numbers(item, into)),
        Value::Object(map) => map.values().for_each(|item| source_numbers(item, into)),
        Value::Bool(_) | Value::Null => {}
    }
}

/// The numbers written in `text`, as written and as values: digits, with `,` between groups
/// of three and one `.` before a fraction.
fn numbers(text: &str) -> Vec<(&str, Decimal)> {
    let bytes = text.as_bytes();
    let digit = |at: usize| bytes.get(at).is_some_and(u8::is_ascii_digit);
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if !digit(at) || (at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'.')) {
            at += 1;
            continue;
        }
        let start = at;
        let mut fraction = false;
        while at < bytes.len() {
            let separator =
                bytes[at] == b',' && !fraction && (1..=3).all(|ahead| digit(at + ahead)) && !digit(at + 4);
            let point = bytes[at] == b'.' && !fraction && digit(at + 1);
            if !(digit(at) || separator || point) {
                break;
            }
            fraction |= point;
            at += 1;
        }
        let written = &text[start..at];
        if let Ok(number) = written.replace(',', "").parse::<Decimal>() {
            found.push((written, number));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str, source: Value) -> Vec<String> {
        let checked = check(&json!(text), &source).unwrap();
        serde_json::from_value(checked["problems"].clone()).unwrap()
    }

    #[test]
    fn numbers_from_the_data_pass_and_others_are_named() {
        let rows =
            json!([{ "month": "2026-10-01", "spent": "1234.567" }, { "month": "2026-11-01", "spent": 980 }]);
        assert!(
            problems(
                "In October 2026 you spent 1,234.57, then 980 in November.",
                rows.clone()
            )
            .is_empty()
        );
        assert!(problems("About 1,235 in October; 2 ideas follow.", rows.clone()).is_empty());
        // Half up and half to even both pass: 12.50 is "13" or "12".
        assert!(problems("About 13, or 12.", json!(["12.50"])).is_empty());
        assert_eq!(
            problems("You spent 1,500.00 in October, up 25% from 2025.", rows),
            [
                "1,500.00 is not in its data",
                "25 is not in its data",
                "2025 is not in its data"
            ]
        );
    }

    #[test]
    fn each_text_is_checked_against_its_own_source() {
        let checked = check(
            &json!(["Groceries: 310.20.", "Dining: 310.20."]),
            &json!([{ "total": "310.20" }, { "total": "95.00" }]),
        )
        .unwrap();
        assert_eq!(
            checked,
            json!({ "ok": false, "problems": ["text 2: 310.20 is not in its data"], "passed": ["Groceries: 310.20."] })
        );
    }

    #[test]
    fn a_text_missing_for_a_source_is_a_problem() {
        let checked = check(
            &json!(["Groceries: 310.20."]),
            &json!([{ "total": "310.20" }, {}]),
        )
        .unwrap();
        assert_eq!(
            checked["problems"],
            json!(["1 texts for 2 sources: write one text per source, in their order"])
        );
    }

    #[test]
    fn words_with_digits_and_list_markers_are_not_numbers() {
        assert_eq!(
            numbers("B2B costs 1,000,000.5 (v2.1) and 12,34"),
            [
                ("1,000,000.5", "1000000.5".parse().unwrap()),
                ("12", Decimal::from(12)),
                ("34", Decimal::from(34)),
            ]
        );
    }
}
