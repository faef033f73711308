//! Money at the API boundary: a `rust_decimal` inside, a decimal string with two places outside.
//!
//! Accepted as a decimal string (`"12.50"`) or a JSON number (`12.5`) with at most two fraction
//! digits and twelve integer digits. A number is read by its shortest decimal form, which is
//! exact for every such amount: fourteen significant digits survive an `f64` round trip.

use std::borrow::Cow;
use std::fmt;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type};
use rust_decimal::Decimal;
use serde::de::{self, Deserializer, Visitor};
use serde_json::Value;

/// An amount of money, exact to the cent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, sqlx::Type)]
#[sqlx(transparent)]
pub struct Money(pub Decimal);

impl Money {
    pub const ZERO: Money = Money(Decimal::ZERO);

    /// Reads `text` as an amount: an optional `-`, up to twelve digits, and up to two decimals.
    pub fn parse(text: &str) -> Result<Money, String> {
        let digits = text.strip_prefix('-').unwrap_or(text);
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
            return Err(format!("`{text}` is not a decimal amount such as \"12.50\""));
        }
        if digits.contains('.') && fraction.is_empty() {
            return Err(format!("`{text}` is not a decimal amount such as \"12.50\""));
        }
        if fraction.len() > 2 {
            return Err(format!("`{text}` has more than two decimal places"));
        }
        if whole.trim_start_matches('0').len() > 12 {
            return Err(format!("`{text}` is too large (at most 999999999999.99)"));
        }
        let value: Decimal = text
            .parse()
            .map_err(|err| format!("`{text}` is not a decimal amount ({err})"))?;
        Ok(Money(value.round_dp(2)))
    }

    pub fn is_positive(self) -> bool {
        self.0 > Decimal::ZERO
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2}", self.0)
    }
}

impl From<Decimal> for Money {
    fn from(value: Decimal) -> Money {
        Money(value)
    }
}

impl Type for Money {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "Money".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut schema = MetaSchema::new_with_format("string", "decimal");
        schema.description = Some(
            "An amount as a decimal string with two places, e.g. \"1234.50\". Requests may also \
             send a JSON number with at most two decimal places.",
        );
        schema.pattern = Some(r"^-?\d{1,12}(\.\d{1,2})?$".to_owned());
        schema.example = Some(Value::String("1234.50".to_owned()));
        MetaSchemaRef::Inline(Box::new(schema))
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromJSON for Money {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Money> {
        match value {
            Some(Value::String(text)) => Money::parse(&text).map_err(ParseError::custom),
            Some(Value::Number(number)) => Money::parse(&number.to_string()).map_err(ParseError::custom),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl ParseFromParameter for Money {
    fn parse_from_parameter(value: &str) -> ParseResult<Money> {
        Money::parse(value).map_err(ParseError::custom)
    }
}

impl ToJSON for Money {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.to_string()))
    }
}

impl serde::Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Money, D::Error> {
        struct Amount;
        impl Visitor<'_> for Amount {
            type Value = Money;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount as a decimal string or a number with two decimals at most")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Money, E> {
                Money::parse(text).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Money, E> {
                Money::parse(&value.to_string()).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Money, E> {
                Money::parse(&value.to_string()).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Money, E> {
                // Rust prints the shortest decimal that reads back as the same f64.
                Money::parse(&value.to_string()).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Amount)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_json(text: &str) -> Result<String, String> {
        serde_json::from_str::<Money>(text)
            .map(|money| money.to_string())
            .map_err(|err| err.to_string())
    }

    #[test]
    fn strings_and_numbers_read_exactly() {
        assert_eq!(from_json(r#""12.5""#).unwrap(), "12.50");
        assert_eq!(from_json("12.5").unwrap(), "12.50");
        assert_eq!(from_json("0.1").unwrap(), "0.10");
        assert_eq!(from_json("7").unwrap(), "7.00");
        assert_eq!(from_json("999999999999.99").unwrap(), "999999999999.99");
        assert_eq!(from_json(r#""-3.05""#).unwrap(), "-3.05");
    }

    #[test]
    fn more_than_cents_or_too_large_is_refused() {
        assert!(from_json("12.345").unwrap_err().contains("two decimal places"));
        assert!(
            from_json(r#""0.001""#)
                .unwrap_err()
                .contains("two decimal places")
        );
        assert!(from_json("1e20").unwrap_err().contains("too large"));
        assert!(from_json(r#""1000000000000""#).unwrap_err().contains("too large"));
        assert!(from_json(r#""12.""#).is_err());
        assert!(from_json(r#""abc""#).is_err());
        assert!(from_json("true").is_err());
    }
}
