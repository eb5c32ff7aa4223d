//! The host's wall clock: the only place that reads real time for
//! durable timestamps (replay reads recorded time instead).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::history::Millis;

/// Milliseconds since the Unix epoch.
#[must_use]
#[expect(clippy::disallowed_methods, reason = "the one reviewed wall-clock read")]
pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Formats a timestamp as ISO 8601 UTC with milliseconds (`2021-05-05T18:45:28.852Z`).
#[must_use]
pub fn iso(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// Formats a timestamp as `yyyy-MM-ddTHH:mm:ssZ` (Durable Functions status bodies).
#[must_use]
pub fn iso_seconds(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// Parses a time: RFC 3339 (`2024-01-31T12:00:00Z`, fractional seconds and
/// any offset allowed), the same without an offset (taken as UTC: .NET's
/// round-trip format of an unspecified `DateTime`), or a bare date. Nothing
/// may follow the time. Any year parses; a time before 1970 clamps to 0, so
/// .NET's `DateTime.MinValue` (`0001-01-01T00:00:00Z`), which Durable
/// Functions clients send as an open lower bound, means "from the start".
#[must_use]
pub fn parse_iso(text: &str) -> Option<Millis> {
    let t = text.trim();
    let ms = if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
        dt.timestamp_millis()
    } else if let Some(dt) = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|fmt| chrono::NaiveDateTime::parse_from_str(t, fmt).ok())
    {
        dt.and_utc().timestamp_millis()
    } else {
        chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .ok()?
            .and_hms_opt(0, 0, 0)?
            .and_utc()
            .timestamp_millis()
    };
    Some(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trips() {
        let ms = 1_620_240_328_852;
        assert_eq!(iso(ms), "2021-05-05T18:45:28.852Z");
        assert_eq!(iso_seconds(ms), "2021-05-05T18:45:28Z");
        assert_eq!(parse_iso("2021-05-05T18:45:28.852Z"), Some(ms));
        assert_eq!(parse_iso("2021-05-05T18:45:28Z"), Some(ms - 852));
        assert_eq!(parse_iso("2021-05-05T18:45:28"), Some(ms - 852));
        assert_eq!(parse_iso("2021-05-05"), Some(1_620_172_800_000));
        assert_eq!(parse_iso("yesterday"), None);
        assert_eq!(parse_iso("2021-05-05T20:45:28.852+02:00"), Some(ms));
        assert_eq!(parse_iso("2021-05-05T18:45:28.8520000"), Some(ms));
        // .NET's DateTime.MinValue and other pre-1970 times clamp to 0.
        assert_eq!(parse_iso("0001-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_iso("0001-01-01T00:00:00.0000000"), Some(0));
        assert_eq!(parse_iso("1969-12-31T23:59:59Z"), Some(0));
        assert_eq!(parse_iso("9999-12-31T23:59:59Z"), Some(253_402_300_799_000));
        // Trailing garbage is refused.
        for bad in [
            "2024-01-01T00:00:00ZZZZ",
            "2024-01-01T00:00:00Zx",
            "2024-01-01T00:00:00+01:00Z",
            "2024-01-01x",
            "2024-13-01T00:00:00Z",
        ] {
            assert_eq!(parse_iso(bad), None, "{bad}");
        }
    }
}
