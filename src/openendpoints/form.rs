//! What a request submits: name/value pairs from the query string and, for POST, from a
//! form-encoded, multipart (RFC 7578) or JSON-object body, in the order sent. Files come only
//! from multipart bodies.

use serde_json::value::RawValue;

/// A file from a multipart body: its name as the browser sent it (may be empty), its
/// `Content-Type` (`application/octet-stream` when none was sent) and its bytes; the same type
/// an e-mail attaches.
pub use crate::mail::Attachment as Upload;

/// One submitted value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// A text value.
    Text(String),
    /// A file.
    File(Upload),
}

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// A body type other than form, multipart or JSON.
    #[error(
        "a body of type `{0}` is not read; send application/x-www-form-urlencoded, \
         multipart/form-data or a JSON object"
    )]
    UnsupportedMediaType(String),
    /// The body does not parse as its type says.
    #[error("{0}")]
    Malformed(String),
    /// More pairs than allowed.
    #[error("the request has more than {0} parameters")]
    TooMany(usize),
}

/// Collects pairs, refusing more than `max` (so a body of `a&a&a…` is never built in full).
struct Pairs {
    pairs: Vec<(String, Field)>,
    max: usize,
}

impl Pairs {
    fn new(max: usize) -> Self {
        Self {
            pairs: Vec::new(),
            max,
        }
    }

    fn push(&mut self, name: String, field: Field) -> Result<(), FormError> {
        if self.pairs.len() >= self.max {
            return Err(FormError::TooMany(self.max));
        }
        self.pairs.push((name, field));
        Ok(())
    }
}

/// The pairs of a query string (`None`: no query), at most `max`.
pub fn from_query(query: Option<&str>, max: usize) -> Result<Vec<(String, Field)>, FormError> {
    let mut pairs = Pairs::new(max);
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        pairs.push(name.into_owned(), Field::Text(value.into_owned()))?;
    }
    Ok(pairs.pairs)
}

/// The pairs of a POST body of `content_type`, at most `max`. An empty body has none, whatever
/// its type.
pub fn from_body(
    content_type: Option<&str>,
    body: &[u8],
    max: usize,
) -> Result<Vec<(String, Field)>, FormError> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let content_type = content_type.unwrap_or("");
    let params = content_type
        .split_once(';')
        .map_or("", |(_, params)| params);
    let essence = media_essence(content_type);
    let mut pairs = Pairs::new(max);
    match essence.as_str() {
        "application/x-www-form-urlencoded" => {
            for (name, value) in form_urlencoded::parse(body) {
                pairs.push(name.into_owned(), Field::Text(value.into_owned()))?;
            }
        }
        "multipart/form-data" => {
            let boundary = media_parameter(params, "boundary").ok_or_else(|| {
                FormError::Malformed("the multipart body's Content-Type names no boundary".into())
            })?;
            multipart(body, &boundary, &mut pairs)?;
        }
        "application/json" => json(body, &mut pairs)?,
        other if other.starts_with("application/") && other.ends_with("+json") => {
            json(body, &mut pairs)?
        }
        "" => return Err(FormError::UnsupportedMediaType("(none)".into())),
        other => return Err(FormError::UnsupportedMediaType(other.to_owned())),
    }
    Ok(pairs.pairs)
}

/// A media type without its parameters, lowercase: `multipart/form-data` of
/// `Multipart/Form-Data; boundary=x`.
pub fn media_essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// A JSON object: strings as they are, numbers and booleans as their literal text, arrays of
/// those as repeated values. Anything else is refused.
fn json(body: &[u8], pairs: &mut Pairs) -> Result<(), FormError> {
    let members = crate::jose::json::Members::parse(body)
        .map_err(|e| FormError::Malformed(format!("the JSON body is not an object: {e}")))?;
    for (name, raw) in members.iter() {
        let mut push = |raw: &RawValue| -> Result<(), FormError> {
            let text = raw.get();
            let value = match text.as_bytes().first() {
                Some(b'"') => serde_json::from_str::<String>(text)
                    .map_err(|e| FormError::Malformed(e.to_string()))?,
                Some(b'-' | b'0'..=b'9') | Some(b't' | b'f') => text.to_owned(),
                _ => {
                    return Err(FormError::Malformed(format!(
                        "`{name}` must be a string, a number, a boolean or an array of these"
                    )));
                }
            };
            pairs.push(name.to_owned(), Field::Text(value))
        };
        if raw.get().starts_with('[') {
            let items = serde_json::from_str::<Vec<&RawValue>>(raw.get())
                .map_err(|e| FormError::Malformed(e.to_string()))?;
            for item in items {
                push(item)?;
            }
        } else {
            push(raw)?;
        }
    }
    Ok(())
}

/// The value of parameter `name` in a header's parameters (`; boundary="x"; name=y`): split
/// at semicolons outside quoted strings, quoted strings unescaped (RFC 9110 section 5.6.4), and
/// the `%22`, `%0D`, `%0A` that browsers write for `"`, CR and LF in form field and file names
/// decoded (HTML, "multipart/form-data encoding algorithm").
fn media_parameter(params: &str, name: &str) -> Option<String> {
    let mut found = None;
    let mut rest = params;
    while !rest.is_empty() {
        rest = rest.trim_start_matches([';', ' ', '\t']);
        let (key, after) = rest.split_once('=').unwrap_or((rest, ""));
        let key = key.trim();
        let after = after.trim_start();
        let (value, remainder) = match after.strip_prefix('"') {
            Some(quoted) => {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &quoted[end..])
            }
            None => {
                let end = after.find(';').unwrap_or(after.len());
                (after[..end].trim().to_owned(), &after[end..])
            }
        };
        if key.eq_ignore_ascii_case(name) && found.is_none() {
            found = Some(
                value
                    .replace("%22", "\"")
                    .replace("%0D", "\r")
                    .replace("%0A", "\n"),
            );
        }
        if remainder.len() == rest.len() {
            break;
        }
        rest = remainder;
    }
    found
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An RFC 7578 body: parts separated by `--boundary`, each with headers naming the field
/// (`Content-Disposition: form-data; name="…"`, and `filename` for files).
fn multipart(body: &[u8], boundary: &str, pairs: &mut Pairs) -> Result<(), FormError> {
    let bad = |why: &str| FormError::Malformed(format!("the multipart body is malformed: {why}"));
    if boundary.is_empty() || boundary.len() > 70 {
        return Err(bad("the boundary must have 1 to 70 characters"));
    }
    let first = format!("--{boundary}");
    let delimiter = format!("\r\n--{boundary}");
    // The first delimiter may open the body or follow a preamble.
    let mut rest = if body.starts_with(first.as_bytes()) {
        &body[first.len()..]
    } else {
        let at = find(body, delimiter.as_bytes()).ok_or_else(|| bad("no boundary found"))?;
        &body[at + delimiter.len()..]
    };
    loop {
        if rest.starts_with(b"--") {
            return Ok(());
        }
        // Transport padding, then the line end that opens the part.
        let padding = rest
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
        rest = rest[padding..]
            .strip_prefix(b"\r\n")
            .ok_or_else(|| bad("a boundary is not followed by a line end"))?;
        let end =
            find(rest, delimiter.as_bytes()).ok_or_else(|| bad("the last boundary is missing"))?;
        let part = &rest[..end];
        rest = &rest[end + delimiter.len()..];
        let split = find(part, b"\r\n\r\n");
        let (head, content) = match split {
            Some(at) => (&part[..at], &part[at + 4..]),
            // A part with headers only (and an empty body) ends with a single line end.
            None if part.ends_with(b"\r\n") => (&part[..part.len() - 2], &part[part.len()..]),
            None if part.is_empty() => (part, part),
            None => return Err(bad("a part's headers do not end with an empty line")),
        };
        let head = std::str::from_utf8(head).map_err(|_| bad("a part's headers are not UTF-8"))?;
        let mut name = None;
        let mut file_name = None;
        let mut content_type = None;
        for line in head.split("\r\n").filter(|l| !l.is_empty()) {
            let (key, value) = line
                .split_once(':')
                .ok_or_else(|| bad("a part's header line has no colon"))?;
            if key.trim().eq_ignore_ascii_case("content-disposition") {
                let (kind, params) = value.split_once(';').unwrap_or((value, ""));
                if !kind.trim().eq_ignore_ascii_case("form-data") {
                    return Err(bad("a part is not form-data"));
                }
                name = media_parameter(params, "name");
                file_name = media_parameter(params, "filename");
            } else if key.trim().eq_ignore_ascii_case("content-type") {
                content_type = Some(value.trim().to_owned());
            }
        }
        let name = name.ok_or_else(|| bad("a part has no name"))?;
        let field = match file_name {
            Some(file_name) => Field::File(Upload {
                file_name,
                content_type: content_type.unwrap_or_else(|| "application/octet-stream".into()),
                bytes: content.to_vec(),
            }),
            None => Field::Text(
                String::from_utf8(content.to_vec())
                    .map_err(|_| bad(&format!("the value of `{name}` is not UTF-8")))?,
            ),
        };
        pairs.push(name, field)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(pairs: &[(String, Field)]) -> Vec<(&str, &str)> {
        pairs
            .iter()
            .filter_map(|(n, f)| match f {
                Field::Text(t) => Some((n.as_str(), t.as_str())),
                Field::File(_) => None,
            })
            .collect()
    }

    #[test]
    fn query_form_and_json_bodies() {
        let q = from_query(Some("foo=a%20b&long=d+e&foo=x"), 64).unwrap();
        assert_eq!(text(&q), [("foo", "a b"), ("long", "d e"), ("foo", "x")]);
        let f = from_body(
            Some("application/x-www-form-urlencoded"),
            b"a=1&b=%C3%A9",
            64,
        )
        .unwrap();
        assert_eq!(text(&f), [("a", "1"), ("b", "é")]);
        let j = from_body(
            Some("application/json; charset=utf-8"),
            br#"{"a":"x\u00e9","n":1.50,"t":true,"l":["p",2]}"#,
            64,
        )
        .unwrap();
        assert_eq!(
            text(&j),
            [
                ("a", "xé"),
                ("n", "1.50"),
                ("t", "true"),
                ("l", "p"),
                ("l", "2")
            ]
        );
        for bad in [
            &br#"{"a":{"b":1}}"#[..],
            br#"{"a":null}"#,
            b"[1]",
            br#"{"a":1,"a":2}"#,
        ] {
            assert!(matches!(
                from_body(Some("application/json"), bad, 64),
                Err(FormError::Malformed(_))
            ));
        }
        assert!(matches!(
            from_body(Some("text/plain"), b"a=1", 64),
            Err(FormError::UnsupportedMediaType(_))
        ));
        assert_eq!(from_body(None, b"", 64).unwrap(), []);
        assert_eq!(from_query(Some("a&a&a"), 2), Err(FormError::TooMany(2)));
        assert_eq!(
            from_body(Some("application/json"), br#"{"a":[1,2,3]}"#, 2),
            Err(FormError::TooMany(2))
        );
    }

    #[test]
    fn multipart_text_and_files() {
        let body =
            b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"foo\"\r\n\r\nabc\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"cv\"; filename=\"a \\\"b\\\".txt\"\r\n\
Content-Type: text/plain\r\n\r\nline1\r\n--Xy\r\nline2\r\n--XyZ\r\n\
Content-Disposition: form-data; name=\"empty\"\r\n\r\n\r\n--XyZ--\r\nepilogue";
        let pairs = from_body(Some("multipart/form-data; boundary=\"XyZ\""), body, 64).unwrap();
        assert_eq!(text(&pairs), [("foo", "abc"), ("empty", "")]);
        let Field::File(upload) = &pairs[1].1 else {
            panic!("a file")
        };
        assert_eq!(upload.file_name, "a \"b\".txt");
        assert_eq!(upload.content_type, "text/plain");
        assert_eq!(upload.bytes, b"line1\r\n--Xy\r\nline2");
    }

    #[test]
    fn malformed_multipart_is_refused() {
        let ct = Some("multipart/form-data; boundary=b");
        for body in [
            &b"no boundary at all"[..],
            b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx",
            b"--b\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--b--",
            b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--",
            b"--bjunk\r\n\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\xff\r\n--b--",
        ] {
            assert!(
                matches!(from_body(ct, body, 64), Err(FormError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(from_body(Some("multipart/form-data"), b"x", 64).is_err());
    }

    #[test]
    fn mangled_bodies_never_panic() {
        // Valid bodies of each kind, then thousands of mangled copies: truncated, bytes
        // flipped, pieces repeated. Each must parse or be refused, never panic.
        let seeds: [(&str, &[u8]); 3] = [
            (
                "multipart/form-data; boundary=b",
                b"--b\r\nContent-Disposition: form-data; name=\"a\"; filename=\"x\"\r\n\r\nv\r\n--b--\r\n",
            ),
            ("application/json", br#"{"a":["x",1,true],"b":"\u00e9"}"#),
            ("application/x-www-form-urlencoded", b"a=1&b=%C3%A9&c=%zz"),
        ];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"-\r\n\";=b:{}[]\\,%";
        for (content_type, seed) in seeds {
            for _ in 0..3000 {
                let mut body = seed.to_vec();
                for _ in 0..(next() % 4) {
                    let at = (next() as usize) % (body.len() + 1);
                    match next() % 3 {
                        0 => body.truncate(at),
                        1 => body.insert(at, alphabet[(next() as usize) % alphabet.len()]),
                        _ => {
                            let piece = body[at..].to_vec();
                            body.extend_from_slice(&piece);
                        }
                    }
                }
                let _ = from_body(Some(content_type), &body, 16);
            }
        }
    }

    #[test]
    fn header_parameters_respect_quotes() {
        let params = r#" x="a;name=hash;"; name="foo"; filename="a;b \"c\".pdf""#;
        assert_eq!(media_parameter(params, "name").as_deref(), Some("foo"));
        assert_eq!(
            media_parameter(params, "filename").as_deref(),
            Some("a;b \"c\".pdf")
        );
        assert_eq!(
            media_parameter("; name=%22q%22", "name").as_deref(),
            Some("\"q\"")
        );
        assert_eq!(
            media_parameter("; boundary=abc", "boundary").as_deref(),
            Some("abc")
        );
        assert_eq!(media_parameter("; other=1", "name"), None);
    }
}
