//! `${parameter}` templates (the OpenEndpoints placeholder syntax, braces mandatory): parsed once
//! against an endpoint's declared parameters, rendered with the escaping of where the text goes,
//! so a value can never change a URL's host or break out of a JSON string.

use std::fmt::Write as _;

/// How a value is written into the rendered text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// As it is (e-mail text, file names that are checked afterwards, datapoint values).
    None,
    /// Percent-encoded except RFC 3986 unreserved characters (URLs: a value stays one path
    /// segment or one query value).
    Url,
    /// Escaped for the inside of a JSON string (a JSON body writes the quotes itself).
    Json,
    /// `application/x-www-form-urlencoded` (a form body).
    Form,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// The index of a declared parameter.
    Value(usize),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

impl Template {
    /// Parses `text`; every `${name}` must name one of `parameters` (text parameters).
    pub fn parse(text: &str, parameters: &[&str]) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return Err(format!("`{text}` has a `${{` without its closing `}}`"));
            };
            let name = &after[..end];
            // An empty name would match the empty stand-ins of file and unhashed parameters.
            if name.is_empty() {
                return Err(format!("`{text}` has an empty placeholder `${{}}`"));
            }
            let Some(index) = parameters.iter().position(|p| *p == name) else {
                return Err(format!(
                    "`{text}` uses `${{{name}}}`, which is not a declared text parameter"
                ));
            };
            pieces.push(Piece::Value(index));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Self(pieces))
    }

    /// The text before the first placeholder (all of it when there is none).
    pub fn fixed_prefix(&self) -> &str {
        match self.0.first() {
            Some(Piece::Text(text)) => text,
            _ => "",
        }
    }

    /// Whether every fixed character is visible ASCII (what a `Location` header may hold).
    pub fn is_visible_ascii(&self) -> bool {
        self.0.iter().all(|piece| match piece {
            Piece::Text(text) => text.chars().all(|c| c.is_ascii_graphic()),
            Piece::Value(_) => true,
        })
    }

    /// The parameters whose placeholders stand in a URL's path (before any `?` or `#`): their
    /// values may not be `.` or `..`, which a URL parser would resolve as dot segments.
    pub fn path_values(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(text) if text.contains(['?', '#']) => break,
                Piece::Text(_) => {}
                Piece::Value(index) => out.push(*index),
            }
        }
        out
    }

    /// Whether every placeholder stands inside a JSON string literal (so a value can only ever
    /// be a string's contents, never change the document's structure).
    pub fn values_inside_json_strings(&self) -> bool {
        let mut in_string = false;
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => {
                    let mut escaped = false;
                    for c in text.chars() {
                        match (in_string, escaped, c) {
                            (true, false, '\\') => escaped = true,
                            (true, true, _) => escaped = false,
                            (_, _, '"') => in_string = !in_string,
                            _ => {}
                        }
                    }
                    if escaped {
                        return false;
                    }
                }
                Piece::Value(_) if !in_string => return false,
                Piece::Value(_) => {}
            }
        }
        !in_string
    }

    /// Whether the template has placeholders.
    pub fn has_values(&self) -> bool {
        self.0.iter().any(|p| matches!(p, Piece::Value(_)))
    }

    /// The text with each placeholder replaced by `values[index]`, escaped by `escape`.
    pub fn render(&self, values: &[String], escape: Escape) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Value(index) => {
                    let value = values.get(*index).map_or("", String::as_str);
                    write_escaped(&mut out, value, escape);
                }
            }
        }
        out
    }
}

fn write_escaped(out: &mut String, value: &str, escape: Escape) {
    match escape {
        Escape::None => out.push_str(value),
        Escape::Url => {
            for byte in value.bytes() {
                if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                    out.push(char::from(byte));
                } else {
                    let _ = write!(out, "%{byte:02X}");
                }
            }
        }
        Escape::Json => {
            let quoted = serde_json::to_string(value).unwrap_or_default();
            let inner = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"'));
            out.push_str(inner.unwrap_or_default());
        }
        Escape::Form => out.extend(form_urlencoded::byte_serialize(value.as_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: &[&str] = &["foo", "long"];

    fn values() -> Vec<String> {
        vec!["a b/c?d&e".into(), "\"x\"\n".into()]
    }

    #[test]
    fn placeholders_are_escaped_for_their_context() {
        let t = Template::parse("https://h.example/p/${foo}?q=${long}", PARAMS).unwrap();
        assert_eq!(
            t.render(&values(), Escape::Url),
            "https://h.example/p/a%20b%2Fc%3Fd%26e?q=%22x%22%0A"
        );
        let t = Template::parse(r#"{"foo":"${foo}","long":"${long}"}"#, PARAMS).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&t.render(&values(), Escape::Json)).unwrap();
        assert_eq!(json["foo"], "a b/c?d&e");
        assert_eq!(json["long"], "\"x\"\n");
        let t = Template::parse("foo=${foo}", PARAMS).unwrap();
        assert_eq!(t.render(&values(), Escape::Form), "foo=a+b%2Fc%3Fd%26e");
        let t = Template::parse("${foo}${long}!", PARAMS).unwrap();
        assert_eq!(t.render(&values(), Escape::None), "a b/c?d&e\"x\"\n!");
        assert_eq!(t.fixed_prefix(), "");
    }

    #[test]
    fn an_empty_placeholder_never_matches_a_stand_in() {
        // File and unhashed parameters stand as "" in the lists templates are checked against.
        assert!(Template::parse("to ${}", &["", "email"]).is_err());
        assert!(Template::parse("to ${email}", &["", "email"]).is_ok());
    }

    #[test]
    fn json_placeholders_must_be_inside_strings_and_path_values_are_found() {
        let inside = |t: &str| {
            Template::parse(t, PARAMS)
                .unwrap()
                .values_inside_json_strings()
        };
        assert!(inside(r#"{"a":"${foo}","b":"x\"${long}"}"#));
        assert!(!inside(r#"{"a":${foo}}"#));
        assert!(!inside(r#"{"a":"x\"}${foo}"#));
        assert!(!inside(r#"{"a":"${foo}"#));
        let t = Template::parse("https://h/${foo}/x?q=${long}", PARAMS).unwrap();
        assert_eq!(t.path_values(), [0]);
    }

    #[test]
    fn unknown_and_unclosed_placeholders_are_refused() {
        assert!(
            Template::parse("x ${nope}", PARAMS)
                .unwrap_err()
                .contains("nope")
        );
        assert!(Template::parse("x ${foo", PARAMS).is_err());
        let plain = Template::parse("no placeholders $ {foo}", PARAMS).unwrap();
        assert!(!plain.has_values());
        assert_eq!(plain.fixed_prefix(), "no placeholders $ {foo}");
    }
}
