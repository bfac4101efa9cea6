//! Datapoints: typed values declared in the config, read from memory and written durably.
//!
//! This module owns the domain types ([`DatapointKey`], [`ValueType`], [`Access`], [`Value`],
//! [`Datapoint`]) and the rules a value must satisfy. [`registry`] holds the current values and
//! the group-commit writer. Nothing here knows about HTTP.

pub mod registry;

use std::fmt;

use serde::Deserialize;

use crate::access::Policy;
use crate::series::Encoding;
use serde::Serialize;
use time::OffsetDateTime;

/// A datapoint's primary key: 1 to 128 characters of ASCII letters, digits and `. _ : -`,
/// starting with a letter or digit (so it is safe in a URL path segment and a metric label).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DatapointKey(String);

impl DatapointKey {
    /// The longest key accepted.
    pub const MAX_LEN: usize = 128;

    /// Parses a key, explaining what is wrong with a bad one.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(format!(
                "a datapoint key has 1 to {} characters",
                Self::MAX_LEN
            ));
        }
        if !raw.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(format!(
                "datapoint key `{raw}` must start with a letter or digit"
            ));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "._:-".contains(*c)))
        {
            return Err(format!(
                "datapoint key `{raw}` contains {bad:?}; allowed are ASCII letters, digits and . _ : -"
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DatapointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The type of a datapoint's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    /// `true` or `false`.
    Bool,
    /// A signed 64-bit integer.
    Int,
    /// A 64-bit IEEE 754 float; an integer literal is accepted too.
    Float,
    /// A UTF-8 string.
    String,
}

impl ValueType {
    /// The encoding of its values in the datapoint's history stream.
    pub fn encoding(self) -> Encoding {
        match self {
            ValueType::Bool => Encoding::Bool,
            ValueType::Int => Encoding::Int64,
            ValueType::Float => Encoding::Double,
            ValueType::String => Encoding::StringUtf8,
        }
    }

    /// The JSON type a client must send, for messages.
    pub fn json_name(self) -> &'static str {
        match self {
            ValueType::Bool => "a boolean",
            ValueType::Int => "an integer",
            ValueType::Float => "a number",
            ValueType::String => "a string",
        }
    }
}

/// Who may read and who may write a datapoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Read only: writes are refused with 405.
    Read,
    /// Write only: reads are refused with 405 and the value is never shown.
    Write,
    /// Read and write.
    ReadWrite,
}

impl Access {
    /// Whether the value may be read.
    pub fn readable(self) -> bool {
        matches!(self, Access::Read | Access::ReadWrite)
    }

    /// Whether the value may be written.
    pub fn writable(self) -> bool {
        matches!(self, Access::Write | Access::ReadWrite)
    }
}

/// A datapoint's value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A finite float.
    Float(f64),
    /// A string.
    String(String),
}

/// Why a value was refused. The HTTP layer maps each variant to an error code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    /// The literal's JSON type is not the datapoint's type.
    #[error("expected {expected}, got {found}")]
    TypeMismatch {
        /// What the datapoint takes, e.g. "an integer".
        expected: &'static str,
        /// What was sent, e.g. "a string".
        found: &'static str,
    },
    /// An integer literal outside the i64 range.
    #[error("the integer {0} is outside the range of a signed 64-bit integer")]
    IntegerOutOfRange(String),
    /// A number literal that overflows f64.
    #[error("the number {0} is too large for a 64-bit float")]
    NumberOutOfRange(String),
    /// A number outside the datapoint's min/max.
    #[error("{value} is outside the allowed range {range}")]
    ValueOutOfRange {
        /// The value sent.
        value: String,
        /// The allowed range, e.g. "[0, 100]".
        range: String,
    },
    /// A string over the datapoint's max_length.
    #[error("the string has {length} characters; at most {max} are allowed")]
    StringTooLong {
        /// Characters sent.
        length: usize,
        /// Characters allowed.
        max: usize,
    },
}

impl Value {
    /// Reads a value of type `ty` from one JSON literal exactly as the client wrote it, so that
    /// `1` and `1.0` stay distinguishable and an out-of-range integer is named as such rather than
    /// silently rounded.
    pub fn from_json_literal(literal: &str, ty: ValueType) -> Result<Value, ValueError> {
        let literal = literal.trim();
        let found = json_kind(literal);
        let mismatch = || ValueError::TypeMismatch {
            expected: ty.json_name(),
            found,
        };
        match (ty, found) {
            (ValueType::Bool, "a boolean") => Ok(Value::Bool(literal == "true")),
            (ValueType::String, "a string") => serde_json::from_str(literal)
                .map(Value::String)
                .map_err(|_| mismatch()),
            (ValueType::Int, "an integer") => literal
                .parse::<i64>()
                .map(Value::Int)
                .map_err(|_| ValueError::IntegerOutOfRange(literal.to_owned())),
            (ValueType::Float, "an integer" | "a number with a fraction or exponent") => {
                match literal.parse::<f64>() {
                    Ok(float) if float.is_finite() => Ok(Value::Float(float)),
                    _ => Err(ValueError::NumberOutOfRange(literal.to_owned())),
                }
            }
            _ => Err(mismatch()),
        }
    }

    /// The value's bytes in its type's [`ValueType::encoding`], little-endian (as .NET's
    /// `BitConverter` writes them): what its history stream keeps.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Value::Bool(b) => vec![u8::from(*b)],
            Value::Int(n) => n.to_le_bytes().to_vec(),
            Value::Float(x) => x.to_le_bytes().to_vec(),
            Value::String(s) => s.as_bytes().to_vec(),
        }
    }

    /// The value as a JSON literal (how the store keeps it).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Names the JSON type of a well-formed literal from its first character.
fn json_kind(literal: &str) -> &'static str {
    match literal.as_bytes().first() {
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        Some(b'"') => "a string",
        Some(b'[') => "an array",
        Some(b'{') => "an object",
        Some(_) if literal.contains(['.', 'e', 'E']) => "a number with a fraction or exponent",
        Some(_) => "an integer",
        None => "nothing",
    }
}

/// A declared datapoint: its key, type, access and constraints.
#[derive(Debug, Clone)]
pub struct Datapoint {
    /// The primary key.
    pub key: DatapointKey,
    /// The value type.
    pub value_type: ValueType,
    /// Who may read and write.
    pub access: Access,
    /// The unit, for display.
    pub unit: Option<String>,
    /// A description, for display.
    pub description: Option<String>,
    /// The smallest number accepted (int and float).
    pub min: Option<f64>,
    /// The largest number accepted (int and float).
    pub max: Option<f64>,
    /// The most characters a string may have.
    pub max_length: usize,
    /// Who may read its value, by any surface: its own `read` policy combined with every
    /// endpoint's that serves it, so it is never shown more openly than through its strictest
    /// endpoint.
    pub read: Policy,
    /// Who may write it (an endpoint may add its own policy to this, never loosen it).
    pub write: Policy,
}

impl Datapoint {
    /// The default `max_length` of string datapoints.
    pub const DEFAULT_MAX_LENGTH: usize = 4096;

    /// Parses `literal` as this datapoint's type and checks its constraints.
    pub fn accept(&self, literal: &str) -> Result<Value, ValueError> {
        let value = Value::from_json_literal(literal, self.value_type)?;
        match &value {
            Value::Int(n) => {
                // Exact for every i64: an integer is below `min` iff it is below ceil(min).
                let wide = i128::from(*n);
                let below = self.min.is_some_and(|min| wide < min.ceil() as i128);
                let above = self.max.is_some_and(|max| wide > max.floor() as i128);
                if below || above {
                    return Err(self.out_of_range(&n.to_string()));
                }
            }
            Value::Float(x) => self.check_range(*x, &x.to_string())?,
            Value::String(s) => {
                let length = s.chars().count();
                if length > self.max_length {
                    return Err(ValueError::StringTooLong {
                        length,
                        max: self.max_length,
                    });
                }
            }
            Value::Bool(_) => {}
        }
        Ok(value)
    }

    fn check_range(&self, number: f64, shown: &str) -> Result<(), ValueError> {
        let below = self.min.is_some_and(|min| number < min);
        let above = self.max.is_some_and(|max| number > max);
        if below || above {
            return Err(self.out_of_range(shown));
        }
        Ok(())
    }

    fn out_of_range(&self, shown: &str) -> ValueError {
        let bound = |b: Option<f64>, inf: &str| b.map_or(inf.to_owned(), |b| b.to_string());
        ValueError::ValueOutOfRange {
            value: shown.to_owned(),
            range: format!("[{}, {}]", bound(self.min, "-inf"), bound(self.max, "+inf")),
        }
    }
}

/// A value as it was written: the value, when, and its place in the write order.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The value.
    pub value: Value,
    /// When the server accepted it.
    pub update_time: OffsetDateTime,
    /// The server-wide write sequence number (strictly increasing, never reused).
    pub seq: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(value_type: ValueType) -> Datapoint {
        Datapoint {
            key: DatapointKey::parse("Test.Point").unwrap_or_else(|e| panic!("{e}")),
            value_type,
            access: Access::ReadWrite,
            unit: None,
            description: None,
            min: None,
            max: None,
            max_length: Datapoint::DEFAULT_MAX_LENGTH,
            read: Policy::Open,
            write: Policy::Open,
        }
    }

    #[test]
    fn the_seed_examples_go_into_their_own_types() {
        assert_eq!(point(ValueType::Bool).accept("true"), Ok(Value::Bool(true)));
        assert_eq!(
            point(ValueType::Bool).accept("false"),
            Ok(Value::Bool(false))
        );
        assert_eq!(
            point(ValueType::String).accept("\"Xentara\""),
            Ok(Value::String("Xentara".into()))
        );
        assert_eq!(point(ValueType::Int).accept("1"), Ok(Value::Int(1)));
        assert_eq!(
            point(ValueType::Float).accept("1.23"),
            Ok(Value::Float(1.23))
        );
        assert_eq!(point(ValueType::Float).accept("1"), Ok(Value::Float(1.0)));
    }

    #[test]
    fn other_types_are_refused_by_name() {
        let err = point(ValueType::Int).accept("1.0");
        assert!(matches!(
            err,
            Err(ValueError::TypeMismatch {
                expected: "an integer",
                ..
            })
        ));
        let err = point(ValueType::Bool).accept("1");
        assert!(matches!(
            err,
            Err(ValueError::TypeMismatch {
                found: "an integer",
                ..
            })
        ));
        let err = point(ValueType::String).accept("null");
        assert!(matches!(
            err,
            Err(ValueError::TypeMismatch { found: "null", .. })
        ));
    }

    #[test]
    fn integer_bounds_are_exact() {
        assert_eq!(
            point(ValueType::Int).accept("9223372036854775807"),
            Ok(Value::Int(i64::MAX))
        );
        assert_eq!(
            point(ValueType::Int).accept("-9223372036854775808"),
            Ok(Value::Int(i64::MIN))
        );
        assert!(matches!(
            point(ValueType::Int).accept("9223372036854775808"),
            Err(ValueError::IntegerOutOfRange(_))
        ));
        assert!(matches!(
            point(ValueType::Float).accept("1e400"),
            Err(ValueError::NumberOutOfRange(_))
        ));
    }

    #[test]
    fn constraints_apply() {
        let mut bounded = point(ValueType::Float);
        bounded.min = Some(0.0);
        bounded.max = Some(100.0);
        assert!(bounded.accept("100").is_ok());
        assert!(matches!(
            bounded.accept("100.5"),
            Err(ValueError::ValueOutOfRange { .. })
        ));
        let mut short = point(ValueType::String);
        short.max_length = 3;
        assert!(short.accept("\"äöü\"").is_ok());
        assert!(matches!(
            short.accept("\"abcd\""),
            Err(ValueError::StringTooLong { .. })
        ));
    }

    #[test]
    fn integer_bounds_compare_exactly_near_two_to_the_53() {
        let mut bounded = point(ValueType::Int);
        bounded.max = Some(9_007_199_254_740_992.0); // 2^53
        assert!(bounded.accept("9007199254740992").is_ok());
        assert!(matches!(
            bounded.accept("9007199254740993"),
            Err(ValueError::ValueOutOfRange { .. })
        ));
    }

    #[test]
    fn keys_are_checked() {
        assert!(DatapointKey::parse("Boiler.Temperature").is_ok());
        assert!(DatapointKey::parse("plc-1:motor_2.speed").is_ok());
        for bad in ["", ".hidden", "a/b", "a b", "ä", &"x".repeat(129)] {
            assert!(DatapointKey::parse(bad).is_err(), "{bad:?}");
        }
    }
}
