//! How times are written on the wire: RFC 3339 with microseconds for the native API, Unix
//! milliseconds for XRTC.

use time::OffsetDateTime;

/// Formats a time as RFC 3339 in UTC with exactly six fraction digits
/// (`2026-11-22T15:32:34.391097Z`), so times have one width and sort as text.
pub fn rfc3339(time: OffsetDateTime) -> String {
    let t = time.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
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
    }
}
