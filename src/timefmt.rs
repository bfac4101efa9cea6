//! How times are written on the wire: RFC 3339 with microseconds for the native API, Unix
//! milliseconds for XRTC.

use time::OffsetDateTime;

/// Formats a time as RFC 3339 in UTC with exactly six fraction digits
/// (`2026-11-22T15:32:34.391097Z`), so times have one width and sort as text. Years outside
/// 0000–9999 (which `time` allows) are clamped to those bounds' digits; no stored time has one.
pub fn rfc3339(time: OffsetDateTime) -> String {
    // Only ASCII digits and separators are written.
    rfc3339_bytes(time).iter().map(|&b| char::from(b)).collect()
}

/// [`rfc3339`] as its 27 bytes, for writers that put it straight into a buffer.
pub fn rfc3339_bytes(time: OffsetDateTime) -> [u8; 27] {
    let t = time.to_offset(time::UtcOffset::UTC);
    // Written digit by digit: this runs for every value read or written (a `format!` with
    // seven arguments was a visible part of a write's cost).
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut n: u32| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, t.year().clamp(0, 9999) as u32);
    put(5, 2, u32::from(u8::from(t.month())));
    put(8, 2, u32::from(t.day()));
    put(11, 2, u32::from(t.hour()));
    put(14, 2, u32::from(t.minute()));
    put(17, 2, u32::from(t.second()));
    put(20, 6, t.microsecond());
    out
}

/// [`rfc3339`] with the offset written `+00:00`, as .NET's round-trip format (and so Tributech's
/// API) writes it: `2026-11-22T15:32:34.391097+00:00`.
pub fn rfc3339_dotnet(time: OffsetDateTime) -> String {
    let mut text = rfc3339(time);
    text.pop();
    text.push_str("+00:00");
    text
}

/// Microseconds since the Unix epoch as a time; `None` outside the years `time` knows.
pub fn from_micros(micros: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).ok()
}

/// Microseconds since the Unix epoch of a time (truncating below the microsecond).
pub fn to_micros(time: OffsetDateTime) -> i64 {
    (time.unix_timestamp_nanos() / 1_000) as i64
}

/// Why a timestamp was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Not an RFC 3339 date-time.
    #[error("`{0}` is not an RFC 3339 date-time such as 2026-01-01T12:00:00.123456Z")]
    Malformed(String),
    /// A non-zero digit below the microsecond.
    #[error("`{0}` is more precise than a microsecond; timestamps keep six fraction digits")]
    TooPrecise(String),
}

/// Reads an RFC 3339 date-time with any offset as microseconds since the Unix epoch (UTC).
/// Fraction digits past the sixth must be zeros: a time more precise than a microsecond is
/// refused rather than rounded, so a value's timestamp is exactly the one it was sent with.
/// With `assume_utc`, a date-time without an offset (`2026-01-01T00:00:00.000`, as .NET
/// clients write query parameters) is read as UTC.
pub fn parse_micros(text: &str, assume_utc: bool) -> Result<i64, TimestampError> {
    use time::format_description::well_known::Rfc3339;
    let malformed = || TimestampError::Malformed(crate::jose::json::truncate(text));
    if text.len() > 64 {
        return Err(malformed());
    }
    // The fraction's digits, to check those past the microsecond.
    if let Some(dot) = text.find('.') {
        let digits = text[dot + 1..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .collect::<Vec<u8>>();
        if digits.len() > 6 && digits[6..].iter().any(|&d| d != b'0') {
            return Err(TimestampError::TooPrecise(crate::jose::json::truncate(
                text,
            )));
        }
    }
    let has_offset = text.ends_with(['Z', 'z'])
        || text
            .rfind(['+', '-'])
            .is_some_and(|at| text[..at].contains('T') || text[..at].contains('t'));
    let time = if !has_offset && assume_utc {
        OffsetDateTime::parse(&format!("{text}Z"), &Rfc3339)
    } else {
        OffsetDateTime::parse(text, &Rfc3339)
    }
    .map_err(|_| malformed())?;
    Ok(to_micros(time))
}

/// `Unix milliseconds` of a time.
pub fn unix_ms(time: OffsetDateTime) -> i64 {
    (time.unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_have_one_width() {
        let time =
            OffsetDateTime::from_unix_timestamp_nanos(1_763_825_554_391_097_123).expect("time");
        assert_eq!(rfc3339(time), "2025-11-22T15:32:34.391097Z");
        assert_eq!(unix_ms(time), 1_763_825_554_391);
        let early = OffsetDateTime::from_unix_timestamp(0).expect("time");
        assert_eq!(rfc3339(early), "1970-01-01T00:00:00.000000Z");
        let offset = time.to_offset(time::UtcOffset::from_hms(5, 30, 0).expect("offset"));
        assert_eq!(rfc3339(offset), "2025-11-22T15:32:34.391097Z");
        assert_eq!(rfc3339_dotnet(time), "2025-11-22T15:32:34.391097+00:00");
    }

    #[test]
    fn timestamps_keep_microseconds_and_refuse_more() {
        let at = |text| parse_micros(text, false);
        assert_eq!(
            at("2020-08-03T12:41:01.2074910Z"),
            Ok(1_596_458_461_207_491)
        );
        assert_eq!(
            at("2020-08-03T14:41:01.207491+02:00"),
            Ok(1_596_458_461_207_491)
        );
        assert_eq!(at("2020-08-03T12:41:01Z"), Ok(1_596_458_461_000_000));
        assert!(matches!(
            at("2020-08-03T12:41:01.2074913Z"),
            Err(TimestampError::TooPrecise(_))
        ));
        assert!(matches!(
            at("2020-08-03T12:41:01"),
            Err(TimestampError::Malformed(_))
        ));
        assert!(matches!(at("yesterday"), Err(TimestampError::Malformed(_))));
        assert_eq!(
            parse_micros("2023-06-20T00:01:00.000", true),
            Ok(1_687_219_260_000_000)
        );
    }
}
