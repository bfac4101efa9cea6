//! What a delivery's signatures are made of, byte for byte.
//!
//! - **Tributech** (the seed's `HashHMAC`): `sha256=` + uppercase hex of
//!   HMAC-SHA256(ASCII bytes of the secret, payload ‖ signature timestamp), where the payload is
//!   ASCII JSON (every non-ASCII character escaped as `\uXXXX`) and the timestamp is the text of
//!   the `x-tributech-signaturetimestamp` header: .NET's `DateTimeOffset.ToString` in the
//!   invariant culture, `MM/dd/yyyy HH:mm:ss +00:00` in UTC.
//! - **Standard Webhooks**: `v1,` + base64 of HMAC-SHA256(the bytes after `whsec_`, base64-
//!   decoded; `{id}.{unix seconds}.{payload}`).
//!
//! A secret is `whsec_` + base64 of 32 random bytes: ASCII for the seed's C# code, and a
//! Standard Webhooks secret as it stands.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use time::OffsetDateTime;

/// The prefix of every secret (Standard Webhooks' convention).
pub const SECRET_PREFIX: &str = "whsec_";

/// A new secret: `whsec_` + base64 of 256 random bits.
pub fn new_secret() -> String {
    format!(
        "{SECRET_PREFIX}{}",
        STANDARD.encode(crate::secrets::random_bytes())
    )
}

/// `time` as .NET's `DateTimeOffset.ToString(CultureInfo.InvariantCulture)` writes it for UTC:
/// `06/16/2023 05:08:46 +00:00`.
pub fn dotnet_timestamp(time: OffsetDateTime) -> String {
    let t = time.to_offset(time::UtcOffset::UTC);
    format!(
        "{:02}/{:02}/{:04} {:02}:{:02}:{:02} +00:00",
        u8::from(t.month()),
        t.day(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// JSON text with every non-ASCII character escaped as `\uXXXX` (UTF-16, so characters beyond
/// the Basic Multilingual Plane become a surrogate pair). Non-ASCII characters can only occur
/// inside strings in JSON, so escaping them everywhere keeps the text the same JSON value.
pub fn ascii_json(json: &str) -> String {
    if json.is_ascii() {
        return json.to_owned();
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// The seed's `HashHMAC`, without the `sha256=` prefix: uppercase hex.
pub fn tributech(secret: &str, payload: &str, signature_timestamp: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut context = hmac::Context::with_key(&key);
    context.update(payload.as_bytes());
    context.update(signature_timestamp.as_bytes());
    let tag = context.sign();
    tag.as_ref().iter().map(|b| format!("{b:02X}")).collect()
}

/// The `x-tributech-signature` header for `secrets` (newest first): `sha256=…`, several
/// separated by commas while a rotated-out secret still signs.
pub fn tributech_header(secrets: &[&str], payload: &str, signature_timestamp: &str) -> String {
    secrets
        .iter()
        .map(|secret| format!("sha256={}", tributech(secret, payload, signature_timestamp)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The `webhook-signature` header for `secrets` (newest first): `v1,…` separated by spaces.
/// A secret that is not `whsec_` + base64 signs with its own bytes.
pub fn standard_header(secrets: &[&str], id: &str, timestamp: i64, payload: &str) -> String {
    secrets
        .iter()
        .map(|secret| {
            let key_bytes = secret
                .strip_prefix(SECRET_PREFIX)
                .and_then(|b64| STANDARD.decode(b64).ok())
                .unwrap_or_else(|| secret.as_bytes().to_vec());
            let key = hmac::Key::new(hmac::HMAC_SHA256, &key_bytes);
            let signed = format!("{id}.{timestamp}.{payload}");
            let tag = hmac::sign(&key, signed.as_bytes());
            format!("v1,{}", STANDARD.encode(tag.as_ref()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_as_the_seeds_example() {
        let time = OffsetDateTime::from_unix_timestamp(1_686_892_126).unwrap();
        assert_eq!(dotnet_timestamp(time), "06/16/2023 05:08:46 +00:00");
        let offset = time.to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
        assert_eq!(dotnet_timestamp(offset), "06/16/2023 05:08:46 +00:00");
    }

    /// The seed's C# `HashHMAC` computes HMAC-SHA256 over the payload's ASCII bytes followed by
    /// the timestamp's; the expected value was computed independently with Python's `hmac`
    /// module: `hmac.new(b"secret", b'{"a":1}' + b"06/16/2023 05:08:46 +00:00", "sha256")`.
    #[test]
    fn tributech_signature_is_uppercase_hex_of_payload_then_timestamp() {
        let timestamp = "06/16/2023 05:08:46 +00:00";
        assert_eq!(
            tributech("secret", r#"{"a":1}"#, timestamp),
            "EED14E8319B3267DB3A1716B8B03503E229D49AA5E873F97099611E65C52B58B"
        );
        assert_eq!(
            tributech_header(&["secret", "secret"], r#"{"a":1}"#, timestamp),
            "sha256=EED14E8319B3267DB3A1716B8B03503E229D49AA5E873F97099611E65C52B58B,\
             sha256=EED14E8319B3267DB3A1716B8B03503E229D49AA5E873F97099611E65C52B58B"
        );
    }

    /// The example of the Standard Webhooks specification.
    #[test]
    fn standard_signature_matches_the_specifications_example() {
        assert_eq!(
            standard_header(
                &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn non_ascii_is_escaped_as_utf16() {
        assert_eq!(
            ascii_json(r#"{"a":"é😀"}"#),
            r#"{"a":"\u00e9\ud83d\ude00"}"#
        );
        assert_eq!(ascii_json(r#"{"a":1}"#), r#"{"a":1}"#);
    }

    #[test]
    fn secrets_carry_256_bits() {
        let secret = new_secret();
        let bytes = STANDARD.decode(&secret[SECRET_PREFIX.len()..]).unwrap();
        assert_eq!(bytes.len(), 32);
        assert!(secret.is_ascii());
    }
}
