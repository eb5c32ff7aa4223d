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

/// Parses an ISO 8601 time with or without fractional seconds (and a bare date).
#[must_use]
pub fn parse_iso(text: &str) -> Option<Millis> {
    let t = text.trim();
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
        return u64::try_from(dt.timestamp_millis()).ok();
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(t.trim_end_matches('Z'), fmt) {
            return u64::try_from(dt.and_utc().timestamp_millis()).ok();
        }
    }
    chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|dt| u64::try_from(dt.and_utc().timestamp_millis()).ok())
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
    }
}
