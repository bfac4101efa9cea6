//! How times are written on the wire: RFC 3339 with microseconds for the native API, Unix
//! milliseconds for XRTC.

use time::OffsetDateTime;

/// Formats a time as RFC 3339 in UTC with exactly six fraction digits
/// (`2026-11-22T15:32:34.391097Z`), so times have one width and sort as text. Years outside
/// 0000–9999 (which `time` allows) are clamped to those bounds' digits; no stored time has one.
pub fn rfc3339(time: OffsetDateTime) -> String {
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
    // Only ASCII digits and separators were written.
    out.iter().map(|&b| char::from(b)).collect()
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
    }
}
