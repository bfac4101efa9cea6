//! Compact JWS (RFC 7515 section 7.1), parsed strictly and before any key is touched.
//!
//! A token is three base64url parts without padding, `header.payload.signature`. Parsing refuses
//! what Portico never accepts, whatever key would be used: `alg: none` in any spelling, unknown
//! algorithms, `crit` (no extension is understood, so every critical one is unknown), unencoded
//! payloads (`b64: false`, RFC 7797), keys offered in the header (`jwk`, `jku`, `x5u`, `x5c`:
//! keys come only from the issuer's configuration), duplicate header members, and any character
//! outside the base64url alphabet (including padding and whitespace) or non-zero unused bits.
//! The JSON serialization is not a compact JWS and is refused too.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::borrow::Cow;

pub(crate) use super::json::truncate;
use super::json::{Members, as_str};
use super::primitive::Algorithm;

/// The default cap on a token's length in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The `alg` of a JWS header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderAlg {
    /// One algorithm.
    Exact(Algorithm),
    /// `EdDSA` (RFC 8037): Ed25519 or Ed448, as the key's curve says.
    EdDsa,
}

impl HeaderAlg {
    /// Parses an `alg` value (case-sensitive, as RFC 7515 requires).
    pub fn parse(name: &str) -> Result<Self, JwsError> {
        if name.eq_ignore_ascii_case("none") {
            return Err(JwsError::AlgNone);
        }
        if name == "EdDSA" {
            return Ok(Self::EdDsa);
        }
        Algorithm::parse(name)
            .map(Self::Exact)
            .ok_or_else(|| JwsError::UnsupportedAlg(truncate(name)))
    }

    /// Whether a key pinned to `key` may verify a token with this `alg`.
    pub fn admits(self, key: Algorithm) -> bool {
        match self {
            Self::Exact(alg) => alg == key,
            Self::EdDsa => matches!(key, Algorithm::Ed25519 | Algorithm::Ed448),
        }
    }

    /// The name as written in headers.
    pub fn name(self) -> &'static str {
        match self {
            Self::Exact(alg) => alg.name(),
            Self::EdDsa => "EdDSA",
        }
    }
}

/// A part of a compact JWS, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The protected header.
    Header,
    /// The payload.
    Payload,
    /// The signature.
    Signature,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Header => "header",
            Self::Payload => "payload",
            Self::Signature => "signature",
        })
    }
}

/// Why a token is not an acceptable compact JWS. The messages are safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Longer than the configured cap.
    #[error("the token has {len} bytes; at most {max} are accepted")]
    TooLong {
        /// Its length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// Not three dot-separated parts.
    #[error("the token is not a compact JWS (three base64url parts separated by dots)")]
    Shape,
    /// A part is not strict base64url.
    #[error("the token's {0} is not base64url without padding")]
    Base64(Part),
    /// Empty signature.
    #[error("the token has no signature")]
    MissingSignature,
    /// The header is not a JSON object with unique members.
    #[error("the token's header is not a JSON object: {0}")]
    Header(String),
    /// No `alg`.
    #[error("the token's header has no `alg`")]
    MissingAlg,
    /// `alg: none`.
    #[error("unsigned tokens (`alg: none`) are never accepted")]
    AlgNone,
    /// An `alg` Portico does not implement.
    #[error("the algorithm `{0}` is not supported")]
    UnsupportedAlg(String),
    /// A `crit` header.
    #[error("the header marks extensions critical (`crit`); Portico understands none")]
    Crit,
    /// `b64` other than `true`.
    #[error("unencoded payloads (`b64: false`) are not accepted")]
    Unencoded,
    /// A key or key URL in the header.
    #[error("the header offers a key (`{0}`); keys come only from the issuer's configuration")]
    EmbeddedKey(&'static str),
    /// A header member of the wrong JSON type.
    #[error("the header's `{0}` must be a string")]
    NotAString(&'static str),
}

/// The protected header, as far as Portico reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The signature algorithm the token claims.
    pub alg: HeaderAlg,
    /// The key id, if any.
    pub kid: Option<String>,
    /// The media type of the whole token, if any (`JWT`, `at+jwt`).
    pub typ: Option<String>,
}

/// A parsed compact JWS whose signature is not yet checked.
#[derive(Debug, Clone)]
pub struct CompactJws<'a> {
    /// The protected header.
    pub header: Header,
    signing_input: &'a str,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl<'a> CompactJws<'a> {
    /// Parses `token`, refusing anything longer than `max_len` bytes.
    pub fn parse(token: &'a str, max_len: usize) -> Result<Self, JwsError> {
        if token.len() > max_len {
            return Err(JwsError::TooLong {
                len: token.len(),
                max: max_len,
            });
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwsError::Shape);
        };
        if header.is_empty() {
            return Err(JwsError::Shape);
        }
        // The header first: `alg: none` (with its empty signature) is reported as such.
        let header = parse_header(&decode(header, Part::Header)?)?;
        let payload = decode(payload, Part::Payload)?;
        let signature = decode(signature, Part::Signature)?;
        if signature.is_empty() {
            return Err(JwsError::MissingSignature);
        }
        Ok(Self {
            header,
            signing_input: &token[..header_len_with_payload(token)],
            payload,
            signature,
        })
    }

    /// The bytes the signature covers: `header.payload` as sent.
    pub fn signing_input(&self) -> &[u8] {
        self.signing_input.as_bytes()
    }

    /// The decoded payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The decoded signature.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
}

/// The length of `header.payload` (up to the second dot).
fn header_len_with_payload(token: &str) -> usize {
    token.rfind('.').unwrap_or(token.len())
}

/// Strict base64url: the URL-safe alphabet, no padding, no whitespace, zero unused bits.
pub fn decode(text: &str, part: Part) -> Result<Vec<u8>, JwsError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| JwsError::Base64(part))
}

/// Base64url without padding.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn parse_header(json: &[u8]) -> Result<Header, JwsError> {
    let members = Members::parse(json).map_err(JwsError::Header)?;
    for embedded in ["jwk", "jku", "x5u", "x5c"] {
        if members.contains(embedded) {
            return Err(JwsError::EmbeddedKey(embedded));
        }
    }
    if members.contains("crit") {
        return Err(JwsError::Crit);
    }
    if members.get("b64").is_some_and(|b64| b64.get() != "true") {
        return Err(JwsError::Unencoded);
    }
    let string = |name: &'static str| match members.get(name) {
        None => Ok(None),
        Some(raw) => as_str(raw).ok_or(JwsError::NotAString(name)).map(Some),
    };
    let alg = match string("alg")? {
        None => return Err(JwsError::MissingAlg),
        Some(alg) => HeaderAlg::parse(&alg)?,
    };
    Ok(Header {
        alg,
        kid: string("kid")?.map(Cow::into_owned),
        typ: string("typ")?.map(Cow::into_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str, payload: &str) -> String {
        format!(
            "{}.{}.c2ln",
            encode(header.as_bytes()),
            encode(payload.as_bytes())
        )
    }

    fn parse(header: &str) -> Result<Header, JwsError> {
        let token = token(header, "{}");
        CompactJws::parse(&token, DEFAULT_MAX_TOKEN_BYTES).map(|jws| jws.header)
    }

    #[test]
    fn reads_alg_kid_and_typ() {
        let header = parse(r#"{"alg":"ES256","kid":"k1","typ":"at+jwt"}"#);
        assert_eq!(
            header,
            Ok(Header {
                alg: HeaderAlg::Exact(Algorithm::Es256),
                kid: Some("k1".into()),
                typ: Some("at+jwt".into()),
            })
        );
        assert_eq!(
            parse(r#"{"alg":"EdDSA"}"#).map(|h| h.alg),
            Ok(HeaderAlg::EdDsa)
        );
    }

    #[test]
    fn alg_none_is_refused_in_every_spelling() {
        for none in ["none", "None", "NONE", "nOnE"] {
            assert_eq!(
                parse(&format!(r#"{{"alg":"{none}"}}"#)),
                Err(JwsError::AlgNone)
            );
        }
        assert_eq!(
            parse(r#"{"alg":"hs256"}"#),
            Err(JwsError::UnsupportedAlg("hs256".into()))
        );
        assert_eq!(parse(r#"{"kid":"x"}"#), Err(JwsError::MissingAlg));
        assert_eq!(parse(r#"{"alg":1}"#), Err(JwsError::NotAString("alg")));
    }

    #[test]
    fn header_keys_crit_and_unencoded_payloads_are_refused() {
        for member in ["jwk", "jku", "x5u", "x5c"] {
            let header = format!(r#"{{"alg":"ES256","{member}":{{}}}}"#);
            assert_eq!(parse(&header), Err(JwsError::EmbeddedKey(member)));
        }
        assert_eq!(
            parse(r#"{"alg":"ES256","crit":["exp"],"exp":1}"#),
            Err(JwsError::Crit)
        );
        assert_eq!(
            parse(r#"{"alg":"ES256","b64":false}"#),
            Err(JwsError::Unencoded)
        );
        assert!(parse(r#"{"alg":"ES256","b64":true}"#).is_ok());
        assert!(matches!(
            parse(r#"{"alg":"ES256","alg":"HS256"}"#),
            Err(JwsError::Header(_))
        ));
    }

    #[test]
    fn the_shape_and_the_alphabet_are_strict() {
        let good = token(r#"{"alg":"HS256"}"#, "{}");
        assert!(CompactJws::parse(&good, 8192).is_ok());
        for bad in [
            String::new(),
            format!("{good}."),
            good.replacen('.', "", 1),
            format!(" {good}"),
            format!("{good}="),
            good.replacen('.', ".+", 1),
            format!(".{}", good.split_once('.').map_or("", |(_, rest)| rest)),
        ] {
            assert!(CompactJws::parse(&bad, 8192).is_err(), "{bad:?}");
        }
        assert_eq!(
            CompactJws::parse(&good, 10).err(),
            Some(JwsError::TooLong {
                len: good.len(),
                max: 10
            })
        );
        // "AB" has non-zero unused bits: "AA" is the canonical spelling of the same byte.
        assert_eq!(
            decode("AB", Part::Payload),
            Err(JwsError::Base64(Part::Payload))
        );
        assert_eq!(decode("AA", Part::Payload), Ok(vec![0]));
    }

    #[test]
    fn the_signing_input_is_the_text_before_the_last_dot() {
        let text = token(r#"{"alg":"HS256"}"#, "{}");
        let jws = CompactJws::parse(&text, 8192).unwrap_or_else(|e| panic!("{e}"));
        let (input, _) = text.rsplit_once('.').unwrap_or_default();
        assert_eq!(jws.signing_input(), input.as_bytes());
        assert_eq!(jws.payload(), b"{}");
        assert_eq!(jws.signature(), b"sig");
    }
}
