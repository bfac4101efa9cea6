//! What a stream's values are: raw bytes in the stream's [`Encoding`], little-endian as .NET's
//! `BitConverter` writes them, and the typed views (`double`, `float`, …) the Tributech API
//! reads and writes them through ([`Kind`]).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// A stream's encoding (Tributech's `Encoding` enumeration, DTDL `dtmi:io:tributech:stream:base;1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Encoding {
    /// Any bytes.
    #[serde(rename = "BYTEARRAY", alias = "ByteArray")]
    ByteArray,
    /// A 4-byte IEEE 754 float.
    #[serde(rename = "FLOAT", alias = "Float")]
    Float,
    /// An 8-byte IEEE 754 double.
    #[serde(rename = "DOUBLE", alias = "Double")]
    Double,
    /// A 4-byte two's-complement integer.
    #[serde(rename = "INT32", alias = "Int32")]
    Int32,
    /// An 8-byte two's-complement integer.
    #[serde(rename = "INT64", alias = "Int64")]
    Int64,
    /// UTF-8 text.
    #[serde(rename = "STRING_UTF8", alias = "String_UTF8")]
    StringUtf8,
    /// Any bytes, written and read as base64 text.
    #[serde(rename = "STRING_BASE64", alias = "String_Base64")]
    StringBase64,
    /// One byte, 0 or 1.
    #[serde(rename = "BOOL", alias = "Bool")]
    Bool,
}

impl Encoding {
    /// Every encoding.
    pub const ALL: [Encoding; 8] = [
        Encoding::ByteArray,
        Encoding::Float,
        Encoding::Double,
        Encoding::Int32,
        Encoding::Int64,
        Encoding::StringUtf8,
        Encoding::StringBase64,
        Encoding::Bool,
    ];

    /// Its name on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            Encoding::ByteArray => "BYTEARRAY",
            Encoding::Float => "FLOAT",
            Encoding::Double => "DOUBLE",
            Encoding::Int32 => "INT32",
            Encoding::Int64 => "INT64",
            Encoding::StringUtf8 => "STRING_UTF8",
            Encoding::StringBase64 => "STRING_BASE64",
            Encoding::Bool => "BOOL",
        }
    }

    /// The encoding named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }

    /// Whether values are numbers (and so can be downsampled).
    pub const fn is_numeric(self) -> bool {
        matches!(
            self,
            Encoding::Float | Encoding::Double | Encoding::Int32 | Encoding::Int64
        )
    }

    /// Checks that `bytes` is a value of this encoding.
    pub fn check(self, bytes: &[u8]) -> Result<(), String> {
        let want = match self {
            Encoding::Float | Encoding::Int32 => Some(4),
            Encoding::Double | Encoding::Int64 => Some(8),
            Encoding::Bool => Some(1),
            _ => None,
        };
        if let Some(want) = want
            && bytes.len() != want
        {
            return Err(format!(
                "a {} value is {want} bytes, not {}",
                self.name(),
                bytes.len()
            ));
        }
        match self {
            Encoding::Bool if bytes[0] > 1 => Err("a BOOL value is the byte 0 or 1".into()),
            Encoding::StringUtf8 if std::str::from_utf8(bytes).is_err() => {
                Err("a STRING_UTF8 value must be valid UTF-8".into())
            }
            _ => Ok(()),
        }
    }

    /// The value as natural JSON: a number, a boolean, text, or base64 for bytes. The bytes
    /// were checked when stored; a double that is not finite (which JSON cannot carry) is null.
    pub fn to_json(self, bytes: &[u8]) -> Json {
        match self {
            Encoding::ByteArray | Encoding::StringBase64 => Json::String(STANDARD.encode(bytes)),
            Encoding::StringUtf8 => Json::String(String::from_utf8_lossy(bytes).into_owned()),
            Encoding::Bool => Json::Bool(bytes.first().is_some_and(|&b| b != 0)),
            Encoding::Float => number(array::<4>(bytes).map(f32::from_le_bytes).map(f64::from)),
            Encoding::Double => number(array::<8>(bytes).map(f64::from_le_bytes)),
            Encoding::Int32 => array::<4>(bytes)
                .map(|b| Json::from(i32::from_le_bytes(b)))
                .unwrap_or(Json::Null),
            Encoding::Int64 => array::<8>(bytes)
                .map(|b| Json::from(i64::from_le_bytes(b)))
                .unwrap_or(Json::Null),
        }
    }

    /// The value as a number, for numeric encodings.
    pub fn to_f64(self, bytes: &[u8]) -> Option<f64> {
        match self {
            Encoding::Float => array::<4>(bytes).map(|b| f64::from(f32::from_le_bytes(b))),
            Encoding::Double => array::<8>(bytes).map(f64::from_le_bytes),
            Encoding::Int32 => array::<4>(bytes).map(|b| f64::from(i32::from_le_bytes(b))),
            Encoding::Int64 => array::<8>(bytes).map(|b| i64::from_le_bytes(b) as f64),
            _ => None,
        }
    }

    /// The value's bytes from natural JSON (what [`Self::to_json`] writes).
    pub fn from_json(self, value: &Json) -> Result<Vec<u8>, String> {
        let kind = match self {
            Encoding::ByteArray | Encoding::StringBase64 => Kind::String,
            Encoding::StringUtf8 => Kind::StringUtf8,
            Encoding::Bool => Kind::Bool,
            Encoding::Float => Kind::Float,
            Encoding::Double => Kind::Double,
            Encoding::Int32 => Kind::Int,
            Encoding::Int64 => Kind::Long,
        };
        kind.encode(value)
    }
}

fn array<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    bytes.try_into().ok()
}

fn number(value: Option<f64>) -> Json {
    value
        .and_then(serde_json::Number::from_f64)
        .map_or(Json::Null, Json::Number)
}

/// A typed view of values: the `{type}` of Tributech's `/values/{type}` paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `double`: a JSON number, 8 bytes.
    Double,
    /// `float`: a JSON number, 4 bytes.
    Float,
    /// `int`: a 32-bit integer.
    Int,
    /// `long`: a 64-bit integer.
    Long,
    /// `bool`: `true` or `false`, one byte.
    Bool,
    /// `stringUtf8`: text, its UTF-8 bytes.
    StringUtf8,
    /// `string`: base64 text, the bytes it encodes.
    String,
    /// `byte`: base64 text, an array of bytes (0–255) or an array of numbers (each an 8-byte
    /// double), as the Data API's own samples disagree on which.
    Byte,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 8] = [
        Kind::Double,
        Kind::Float,
        Kind::Int,
        Kind::Long,
        Kind::Bool,
        Kind::StringUtf8,
        Kind::String,
        Kind::Byte,
    ];

    /// Its name in a path.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Double => "double",
            Kind::Float => "float",
            Kind::Int => "int",
            Kind::Long => "long",
            Kind::Bool => "bool",
            Kind::StringUtf8 => "stringUtf8",
            Kind::String => "string",
            Kind::Byte => "byte",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The encodings this kind reads and writes: its own, or any for the byte views.
    pub fn fits(self, encoding: Encoding) -> bool {
        match self {
            Kind::Double => encoding == Encoding::Double,
            Kind::Float => encoding == Encoding::Float,
            Kind::Int => encoding == Encoding::Int32,
            Kind::Long => encoding == Encoding::Int64,
            Kind::Bool => encoding == Encoding::Bool,
            Kind::StringUtf8 => encoding == Encoding::StringUtf8,
            Kind::String | Kind::Byte => true,
        }
    }

    /// The encoding a value of this kind is (the byte views: none in particular).
    pub fn encoding(self) -> Option<Encoding> {
        Encoding::ALL
            .into_iter()
            .find(|&e| self.fits(e) && self != Kind::String && self != Kind::Byte)
    }

    /// The bytes of a JSON value of this kind.
    pub fn encode(self, value: &Json) -> Result<Vec<u8>, String> {
        let want = |what: &str| format!("a `{}` value is {what}", self.name());
        match self {
            Kind::Double => value
                .as_f64()
                .map(|v| v.to_le_bytes().to_vec())
                .ok_or_else(|| want("a number")),
            Kind::Float => {
                let v = value.as_f64().ok_or_else(|| want("a number"))?;
                let narrow = v as f32;
                if narrow.is_finite() {
                    Ok(narrow.to_le_bytes().to_vec())
                } else {
                    Err(want("a number within a 32-bit float's range"))
                }
            }
            Kind::Int => value
                .as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .map(|v| v.to_le_bytes().to_vec())
                .ok_or_else(|| want("an integer from -2147483648 to 2147483647")),
            Kind::Long => value
                .as_i64()
                .map(|v| v.to_le_bytes().to_vec())
                .ok_or_else(|| want("an integer within 64 bits")),
            Kind::Bool => value
                .as_bool()
                .map(|v| vec![u8::from(v)])
                .ok_or_else(|| want("true or false")),
            Kind::StringUtf8 => value
                .as_str()
                .map(|v| v.as_bytes().to_vec())
                .ok_or_else(|| want("a string")),
            Kind::String => base64(value).ok_or_else(|| want("a base64 string")),
            Kind::Byte => match value {
                Json::String(_) => base64(value).ok_or_else(|| want("base64 text or an array")),
                Json::Array(items) => byte_array(items).ok_or_else(|| {
                    want("base64 text, an array of bytes (0 to 255) or an array of numbers")
                }),
                _ => Err(want("base64 text or an array")),
            },
        }
    }

    /// The JSON of a stored value of an encoding this kind [`fits`](Self::fits).
    pub fn decode(self, encoding: Encoding, bytes: &[u8]) -> Json {
        match self {
            Kind::String | Kind::Byte => Json::String(STANDARD.encode(bytes)),
            _ => encoding.to_json(bytes),
        }
    }
}

fn base64(value: &Json) -> Option<Vec<u8>> {
    STANDARD.decode(value.as_str()?).ok()
}

/// An array of bytes (every item an integer 0–255), else of numbers (each an 8-byte double).
fn byte_array(items: &[Json]) -> Option<Vec<u8>> {
    let bytes: Option<Vec<u8>> = items
        .iter()
        .map(|item| item.as_u64().and_then(|b| u8::try_from(b).ok()))
        .collect();
    if let Some(bytes) = bytes {
        return Some(bytes);
    }
    let mut out = Vec::with_capacity(items.len() * 8);
    for item in items {
        out.extend_from_slice(&item.as_f64()?.to_le_bytes());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_dotnet_bitconverter_bytes() {
        let b64 = |kind: Kind, value: Json| STANDARD.encode(kind.encode(&value).unwrap());
        assert_eq!(b64(Kind::Float, json!(16.5)), "AACEQQ==");
        assert_eq!(b64(Kind::Double, json!(2.3)), "ZmZmZmZmAkA=");
        assert_eq!(b64(Kind::Bool, json!(true)), "AQ==");
        assert_eq!(b64(Kind::Int, json!(-2)), "/v///w==");
        assert_eq!(b64(Kind::Long, json!(1)), "AQAAAAAAAAA=");
        assert_eq!(b64(Kind::StringUtf8, json!("é")), "w6k=");
        assert_eq!(
            Kind::Byte
                .encode(&json!([0, 0, 0, 0, 0, 0, 8, 64]))
                .unwrap(),
            3.0f64.to_le_bytes()
        );
        assert_eq!(
            Kind::Byte.encode(&json!([3.5])).unwrap(),
            3.5f64.to_le_bytes()
        );
        assert_eq!(
            Kind::Byte.encode(&json!("AACEQQ==")).unwrap(),
            [0, 0, 0x84, 0x41]
        );
    }

    #[test]
    fn values_out_of_their_type_are_refused() {
        assert!(Kind::Int.encode(&json!(2_147_483_648u64)).is_err());
        assert!(Kind::Float.encode(&json!(1e300)).is_err());
        assert!(Kind::Long.encode(&json!(1.5)).is_err());
        assert!(Kind::Bool.encode(&json!(1)).is_err());
        assert!(Kind::String.encode(&json!("not base64!")).is_err());
        assert!(Encoding::Double.check(&[0; 4]).is_err());
        assert!(Encoding::Bool.check(&[2]).is_err());
        assert!(Encoding::StringUtf8.check(&[0xff]).is_err());
        assert!(Encoding::ByteArray.check(&[0xff]).is_ok());
    }

    #[test]
    fn stored_bytes_read_back_as_json() {
        for (encoding, value) in [
            (Encoding::Double, json!(2.3)),
            (Encoding::Float, json!(16.5)),
            (Encoding::Int32, json!(-7)),
            (Encoding::Int64, json!(9_007_199_254_740_993i64)),
            (Encoding::Bool, json!(false)),
            (Encoding::StringUtf8, json!("Grüße")),
            (Encoding::ByteArray, json!("AAEC")),
        ] {
            let bytes = encoding.from_json(&value).unwrap();
            encoding.check(&bytes).unwrap();
            assert_eq!(encoding.to_json(&bytes), value, "{}", encoding.name());
        }
    }
}
