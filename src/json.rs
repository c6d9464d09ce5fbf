//! Strict JSON for untrusted token and key-set documents.
//!
//! `serde_json` keeps the last of two members with the same name; a token
//! like `{"alg":"RS256","alg":"none"}` would then mean different things to
//! different parsers. Everything this crate reads from a token or a JWKS goes
//! through [`parse_object`] or [`parse`], which refuse duplicate member
//! names at any depth.
//!
//! Documents are then read into typed structs whose members are
//! [`Member`]s: absent, of the expected type, or present with another type.
//! Each caller decides what a wrongly typed member means (a malformed token,
//! an invalid claim, a key skipped), so that decision stays visible beside
//! the check it belongs to.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserialize, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses `bytes` as a JSON object, refusing duplicate member names anywhere.
pub(crate) fn parse_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Strict>(bytes) {
        Ok(Strict(Value::Object(map))) => Some(map),
        _ => None,
    }
}

/// Parses `bytes` as a JSON object (duplicate member names refused
/// anywhere) and reads it as `T`.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let Object(value) = serde_json::from_value(Value::Object(parse_object(bytes)?)).ok()?;
    Some(value)
}

/// One member of a JSON object, read as `T`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Member<T> {
    /// The member is not there.
    #[default]
    Absent,
    /// The member is there, but not a `T` (`null` included).
    Invalid,
    /// The member is there and a `T`.
    Present(T),
}

impl<T> Member<T> {
    /// The value if present and well typed; `Err(invalid)` if wrongly typed.
    pub(crate) fn optional<E>(self, invalid: E) -> Result<Option<T>, E> {
        match self {
            Self::Absent => Ok(None),
            Self::Invalid => Err(invalid),
            Self::Present(value) => Ok(Some(value)),
        }
    }

    /// The value if present and well typed.
    pub(crate) fn value(&self) -> Option<&T> {
        match self {
            Self::Present(value) => Some(value),
            _ => None,
        }
    }

    /// Whether the member is there, whatever its type.
    pub(crate) fn is_present(&self) -> bool {
        !matches!(self, Self::Absent)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Member<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Absent members never get here: they take `#[serde(default)]`.
        let value = Value::deserialize(deserializer)?;
        Ok(T::deserialize(value).map_or(Member::Invalid, Member::Present))
    }
}

/// A `T` read only from a JSON object, never from an array (which serde's
/// derived structs would otherwise accept, member by member in order).
#[derive(Debug, Clone)]
pub(crate) struct Object<T>(pub(crate) T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(ObjectVisitor(PhantomData))
            .map(Object)
    }
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value without duplicate member names")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            let Strict(value) = access.next_value()?;
            if map.insert(name, value).is_some() {
                return Err(de::Error::custom("duplicate member name"));
            }
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_member_names_are_refused_at_every_depth() {
        assert!(parse_object(br#"{"alg":"RS256","alg":"none"}"#).is_none());
        assert!(parse_object(br#"{"teams":[{"id":"a","id":"b"}]}"#).is_none());
        assert!(parse_object(br#"{"a":{"b":1,"b":2}}"#).is_none());
    }

    #[test]
    fn well_formed_objects_are_kept_with_their_types() {
        let map = parse_object(br#"{"exp":1700000000,"sub":"u","x":[1.5,null,true]}"#).unwrap();
        assert_eq!(map["exp"].as_i64(), Some(1_700_000_000));
        assert_eq!(map["sub"], "u");
        assert_eq!(map["x"][0].as_f64(), Some(1.5));
    }

    #[test]
    fn members_are_absent_well_typed_or_invalid() {
        #[derive(serde::Deserialize)]
        struct Doc {
            #[serde(default)]
            a: Member<String>,
            #[serde(default)]
            b: Member<String>,
            #[serde(default)]
            c: Member<String>,
            #[serde(default)]
            d: Member<String>,
        }
        let doc: Doc = parse(br#"{"a":"x","b":1,"c":null}"#).unwrap();
        assert_eq!(doc.a, Member::Present("x".to_owned()));
        assert_eq!(doc.b, Member::Invalid);
        assert_eq!(doc.c, Member::Invalid);
        assert_eq!(doc.d, Member::Absent);
        assert!(parse::<Doc>(br#"{"a":"x","a":"y"}"#).is_none());
        assert!(parse::<Doc>(br#"["x","y"]"#).is_none());
    }

    #[test]
    fn objects_are_never_read_from_arrays() {
        #[derive(serde::Deserialize)]
        struct Pair {
            #[serde(default)]
            _a: Member<String>,
        }
        assert!(serde_json::from_str::<Object<Pair>>(r#"{"_a":"x"}"#).is_ok());
        assert!(serde_json::from_str::<Object<Pair>>(r#"["x"]"#).is_err());
        assert!(serde_json::from_str::<Object<Pair>>(r#"[]"#).is_err());
    }

    #[test]
    fn non_objects_trailing_bytes_and_deep_nesting_are_refused() {
        assert!(parse_object(b"[1]").is_none());
        assert!(parse_object(b"{} x").is_none());
        assert!(parse_object(b"").is_none());
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_object(deep.as_bytes()).is_none());
    }
}
