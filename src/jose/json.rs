//! Strict JSON objects for JOSE: a member name that appears twice is refused (RFC 7515 section 4
//! and RFC 7519 section 4 allow refusing; taking the last would let two parsers disagree).
//!
//! Token headers and claims are read through [`Members`]: names decoded, values kept as their
//! JSON text borrowed from the input, so a claim costs nothing until it is asked for. Key sets
//! and discovery documents, read rarely, are parsed whole with [`parse_object`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

/// A JSON object's members in the order sent: names decoded, values as unparsed JSON text
/// borrowed from the input. Names are unique.
#[derive(Debug, Clone, Default)]
pub struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

/// Up to this many members, duplicates are found by comparing every pair; above it, by sorting.
const PAIRWISE_MAX: usize = 24;

impl<'a> Members<'a> {
    /// Parses `json`, which must be one JSON object with unique member names.
    pub fn parse(json: &'a [u8]) -> Result<Self, String> {
        let members = serde_json::from_slice::<Self>(json).map_err(|e| e.to_string())?;
        members.refuse_duplicates()?;
        Ok(members)
    }

    /// The member named `name`, as JSON text.
    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(n, _)| n == name).map(|&(_, raw)| raw)
    }

    /// The members in the order sent.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &'a RawValue)> + '_ {
        self.0.iter().map(|(name, raw)| (name.as_ref(), *raw))
    }

    /// Whether a member named `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn refuse_duplicates(&self) -> Result<(), String> {
        let duplicate = if self.0.len() <= PAIRWISE_MAX {
            self.0
                .iter()
                .enumerate()
                .find(|&(i, (name, _))| self.0[..i].iter().any(|(seen, _)| seen == name))
                .map(|(_, (name, _))| name.as_ref())
        } else {
            let mut names: Vec<&str> = self.0.iter().map(|(name, _)| name.as_ref()).collect();
            names.sort_unstable();
            names.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
        };
        match duplicate {
            Some(name) => Err(format!("the member `{}` appears twice", truncate(name))),
            None => Ok(()),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::with_capacity(access.size_hint().unwrap_or(8).min(32));
                while let Some(Name(name)) = access.next_key::<Name<'de>>()? {
                    members.push((name, access.next_value::<&'de RawValue>()?));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// A member name: borrowed from the input unless it had escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Name<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }

            fn visit_borrowed_str<E: de::Error>(self, name: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(name)))
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(name.to_owned())))
            }

            fn visit_string<E: de::Error>(self, name: String) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(name)))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// The string a JSON value holds, or `None` when it is not a string. Borrowed unless it has
/// escapes.
pub fn as_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    // A raw value is valid JSON, so a string without a backslash is its own content.
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(text).ok().map(Cow::Owned)
}

/// The strings of a JSON array value, or `None` when it is not an array of strings.
pub fn as_strings(raw: &RawValue) -> Option<Vec<Cow<'_, str>>> {
    if !raw.get().starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<&RawValue>>(raw.get())
        .ok()?
        .into_iter()
        .map(as_str)
        .collect()
}

/// Parses a JSON object with unique member names, values parsed whole.
pub fn parse_object(json: &[u8]) -> Result<BTreeMap<String, Value>, String> {
    let members = Members::parse(json)?;
    members
        .0
        .into_iter()
        .map(|(name, raw)| {
            serde_json::from_str(raw.get())
                .map(|value| (name.into_owned(), value))
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// At most 64 characters of untrusted text, for messages.
pub(crate) fn truncate(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_however_many_members() {
        assert!(Members::parse(br#"{"a":1,"b":2}"#).is_ok());
        assert!(Members::parse(br#"{"a":1,"a":2}"#).is_err());
        assert!(Members::parse(br#"{"a":1,"\u0061":2}"#).is_err(), "escaped");
        let many: Vec<String> = (0..100).map(|i| format!("\"m{i}\":{i}")).collect();
        let unique = format!("{{{}}}", many.join(","));
        assert!(Members::parse(unique.as_bytes()).is_ok());
        let repeated = format!("{{{},\"m7\":0}}", many.join(","));
        assert_eq!(
            Members::parse(repeated.as_bytes()).err().as_deref(),
            Some("the member `m7` appears twice")
        );
        assert!(Members::parse(b"[]").is_err());
        assert!(Members::parse(b"{} x").is_err());
    }

    #[test]
    fn values_stay_text_until_read() {
        let json = br#"{ "s" : "plain", "e":"a\"b\u00e9", "n": 12, "l":["x","y"], "m":["x",1] }"#;
        let members = Members::parse(json).unwrap_or_default();
        let s = members.get("s").and_then(as_str);
        assert!(matches!(s, Some(Cow::Borrowed("plain"))), "{s:?}");
        assert_eq!(members.get("e").and_then(as_str).as_deref(), Some("a\"bé"));
        assert_eq!(members.get("n").map(RawValue::get), Some("12"));
        assert_eq!(members.get("n").and_then(as_str), None);
        assert_eq!(
            members.get("l").and_then(as_strings),
            Some(vec![Cow::Borrowed("x"), Cow::Borrowed("y")])
        );
        assert_eq!(members.get("m").and_then(as_strings), None);
        assert!(!members.contains("missing"));
    }
}
