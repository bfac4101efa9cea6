//! The lenient JSON the XRTC seed's own examples send, made strict.
//!
//! The seed's curl examples send unquoted member names (`{items:[…]}`) and, through their shell
//! quoting, unquoted string values (`{"accountid":AC0987…,…}`); the original service parsed
//! requests the way Gson's lenient mode does. [`strict`] rewrites such text into strict JSON by
//! quoting unquoted words, and copies everything else — quoted strings above all, escapes
//! included — byte for byte, so payloads come back exactly as they were sent.
//!
//! An unquoted word is a run of characters other than whitespace, `"`, `'`, and Gson's literal
//! terminators `/ \ ; # = { } [ ] : ,`. Before a `:` it is a member name and always quoted;
//! elsewhere `true`, `false`, `null` and JSON numbers stay as they are and other words become
//! strings. The result still has to parse as JSON: brackets, commas and escapes are checked by
//! the JSON parser afterwards, not here.

/// Characters that end an unquoted word.
fn ends_word(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '"' | '\'' | '/' | '\\' | ';' | '#' | '=' | '{' | '}' | '[' | ']' | ':' | ','
        )
}

/// Whether `word` is a JSON number (RFC 8259 section 6).
fn is_json_number(word: &str) -> bool {
    let b = word.as_bytes();
    let mut i = 0;
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    i == b.len()
}

/// `text` with its unquoted words quoted; `None` when a string is left open.
pub fn strict(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '"' {
            // Copy the string literal verbatim, up to its closing quote.
            let bytes = rest.as_bytes();
            let mut i = 1;
            loop {
                match bytes.get(i)? {
                    b'\\' => i += 2,
                    b'"' => break,
                    _ => i += 1,
                }
            }
            out.push_str(&rest[..=i]);
            rest = &rest[i + 1..];
        } else if ends_word(c) {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        } else {
            let end = rest.find(ends_word).unwrap_or(rest.len());
            let word = &rest[..end];
            rest = &rest[end..];
            let is_name = rest.trim_start().starts_with(':');
            let bare =
                !is_name && (matches!(word, "true" | "false" | "null") || is_json_number(word));
            if bare {
                out.push_str(word);
            } else {
                out.push('"');
                out.push_str(word);
                out.push('"');
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::strict;

    #[test]
    fn the_seeds_examples_become_strict_json() {
        assert_eq!(
            strict(r#"{portals:[{"portalid":"send","servertimestamp":1664548042272}]}"#).unwrap(),
            r#"{"portals":[{"portalid":"send","servertimestamp":1664548042272}]}"#
        );
        assert_eq!(
            strict(r#"{"accountid":AC0987654321012345,"apikey":"x"}"#).unwrap(),
            r#"{"accountid":"AC0987654321012345","apikey":"x"}"#
        );
        assert_eq!(
            strict(r#"{items:[{"portalid":"send","payload":"23658abc"}]}"#).unwrap(),
            r#"{"items":[{"portalid":"send","payload":"23658abc"}]}"#
        );
    }

    #[test]
    fn strict_json_and_escapes_are_copied_byte_for_byte() {
        let text = r#"{"a" : "x\"y\u003d\\", "b":[1,-2.5e3,true,null], "c":"é"}"#;
        assert_eq!(strict(text).unwrap(), text);
    }

    #[test]
    fn names_are_always_quoted_and_open_strings_are_refused() {
        assert_eq!(strict("{123:null}").unwrap(), r#"{"123":null}"#);
        assert_eq!(strict("[01, 1.]").unwrap(), r#"["01", "1."]"#);
        assert_eq!(strict(r#"{"a":"open}"#), None);
        assert_eq!(strict(r#"{"a":"\"#), None);
    }
}
