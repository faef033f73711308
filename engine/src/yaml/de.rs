//! Deserializing typed values from the spanned tree.
//!
//! Every `deserialize_*` call stamps an error that has no position yet with its node's
//! position, so the innermost failing value wins: an unknown key is reported at the key, a
//! wrong type at the value, a missing key at its map.

use std::fmt;

use serde::Deserializer;
use serde::de::{self, IntoDeserializer, Visitor};

use super::spanned::{SPANNED, SPANNED_FIELDS};
use super::{Error, Node, Pos, Value, backticked, suggestion};

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Error {
        Error::new(msg.to_string())
    }

    fn invalid_type(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Error {
        Error::new(format!(
            "expected {}, found {}",
            plain_expected(expected),
            plain_unexpected(unexpected)
        ))
    }

    fn invalid_value(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Error {
        Error::new(format!(
            "expected {}, found {}",
            plain_expected(expected),
            plain_unexpected(unexpected)
        ))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Error {
        let mut err = Error::new(format!("unknown key `{field}`"));
        err.unknown_key = Some((field.to_owned(), expected.to_vec()));
        err.suggest_among(&[])
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Error {
        Error::new(format!("unknown value `{variant}`")).hint(suggestion(variant, expected))
    }

    fn missing_field(field: &'static str) -> Error {
        Error::new(format!("missing key `{field}`"))
    }

    fn duplicate_field(field: &'static str) -> Error {
        Error::new(format!("key `{field}` is given twice"))
    }
}

/// serde names Rust types (`u32`, `f64`); graph authors think in YAML values.
fn plain_expected(expected: &dyn de::Expected) -> String {
    let text = expected.to_string();
    match text.as_str() {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a sequence" => "a list".to_owned(),
        _ => text,
    }
}

fn plain_unexpected(unexpected: de::Unexpected<'_>) -> String {
    match unexpected {
        de::Unexpected::Unit => "nothing".to_owned(),
        de::Unexpected::Seq => "a list".to_owned(),
        de::Unexpected::Map => "a map".to_owned(),
        de::Unexpected::Signed(n) => format!("`{n}`"),
        de::Unexpected::Unsigned(n) => format!("`{n}`"),
        de::Unexpected::Float(n) => format!("`{n}`"),
        other => other.to_string(),
    }
}

impl<'de> IntoDeserializer<'de, Error> for &'de Node {
    type Deserializer = &'de Node;
    fn into_deserializer(self) -> &'de Node {
        self
    }
}

impl<'de> Deserializer<'de> for &'de Node {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match &self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(v) => visitor.visit_bool(*v),
            Value::Int(v) => visitor.visit_i64(*v),
            Value::UInt(v) => visitor.visit_u64(*v),
            Value::Float(v) => visitor.visit_f64(*v),
            Value::String(v) => visitor.visit_borrowed_str(v),
            Value::Seq(items) => visitor.visit_seq(SeqDe { items: items.iter() }),
            Value::Map(entries) => visitor.visit_map(MapDe::new(entries)),
        };
        result.map_err(|err| err.or_at(self.pos))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
        .map_err(|err| err.or_at(self.pos))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor
            .visit_newtype_struct(self)
            .map_err(|err| err.or_at(self.pos))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == SPANNED {
            return visitor.visit_map(SpannedDe { node: self, field: 0 });
        }
        match &self.value {
            // Derived struct visitors also take a list (fields by position); a graph file
            // never means that, so say what was expected instead.
            Value::Map(_) => self.deserialize_any(visitor),
            _ => Err(Error::new(format!(
                "expected a map with {}, found {}",
                backticked(&fields[..fields.len().min(4)]),
                self.describe()
            ))
            .at(self.pos)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let access = match &self.value {
            Value::String(_) => EnumDe {
                tag: self,
                value: None,
            },
            Value::Map(entries) if entries.len() == 1 => EnumDe {
                tag: &entries[0].0,
                value: Some(&entries[0].1),
            },
            _ => {
                return Err(Error::new(format!("expected a name, found {}", self.describe())).at(self.pos));
            }
        };
        visitor.visit_enum(access).map_err(|err| err.or_at(self.pos))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
    }
}

struct SeqDe<'de> {
    items: std::slice::Iter<'de, Node>,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'de> {
    type Error = Error;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        self.items.next().map(|item| seed.deserialize(item)).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapDe<'de> {
    entries: std::slice::Iter<'de, (Node, Node)>,
    value: Option<&'de Node>,
}

impl<'de> MapDe<'de> {
    fn new(entries: &'de [(Node, Node)]) -> MapDe<'de> {
        MapDe {
            entries: entries.iter(),
            value: None,
        }
    }
}

impl<'de> de::MapAccess<'de> for MapDe<'de> {
    type Error = Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let value = self
            .value
            .take()
            .expect("next_value_seed called before next_key_seed");
        seed.deserialize(value)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// Hands a [`Spanned`] visitor the node's line, column and then the node itself.
struct SpannedDe<'de> {
    node: &'de Node,
    field: usize,
}

impl<'de> de::MapAccess<'de> for SpannedDe<'de> {
    type Error = Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        let Some(name) = SPANNED_FIELDS.get(self.field) else {
            return Ok(None);
        };
        seed.deserialize(de::value::BorrowedStrDeserializer::new(name))
            .map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        self.field += 1;
        match self.field {
            1 => seed.deserialize(self.node.pos.line.into_deserializer()),
            2 => seed.deserialize(self.node.pos.column.into_deserializer()),
            _ => seed.deserialize(self.node),
        }
    }
}

struct EnumDe<'de> {
    tag: &'de Node,
    value: Option<&'de Node>,
}

impl<'de> de::EnumAccess<'de> for EnumDe<'de> {
    type Error = Error;
    type Variant = VariantDe<'de>;

    fn variant_seed<V: de::DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, VariantDe<'de>), Error> {
        let variant = seed
            .deserialize(self.tag)
            .map_err(|err| err.or_at(self.tag.pos))?;
        Ok((
            variant,
            VariantDe {
                value: self.value,
                pos: self.tag.pos,
            },
        ))
    }
}

struct VariantDe<'de> {
    value: Option<&'de Node>,
    pos: Pos,
}

impl<'de> VariantDe<'de> {
    fn value(&self) -> Result<&'de Node, Error> {
        self.value
            .ok_or_else(|| Error::new("this value needs settings (a map) after its name").at(self.pos))
    }
}

impl<'de> de::VariantAccess<'de> for VariantDe<'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.value {
            None => Ok(()),
            Some(value) => Err(Error::new("this value takes no settings").at(value.pos)),
        }
    }

    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self.value()?)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.value()?.deserialize_any(visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.value()?.deserialize_struct("", fields, visitor)
    }
}
