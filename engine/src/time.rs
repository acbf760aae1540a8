//! Instants as the engine reads and writes them: RFC 3339 text, and Unix
//! microseconds in between.

/// Parses `2025-10-19T12:00:00Z` (any RFC 3339 offset), a date-time without
/// offset (taken as UTC) or a bare date (midnight UTC) into Unix
/// microseconds.
pub fn parse_instant(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
}

/// Formats Unix microseconds as RFC 3339 UTC (`2025-10-19T12:00:00Z`, with
/// a fraction only when there is one).
pub fn format_instant(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Formats Unix microseconds as RFC 3339 UTC with exactly six fractional
/// digits (`2025-10-19T12:00:00.000000Z`), for the times the engine itself
/// stamps (insertion, processing, run start and end, EPSS created/updated).
/// Fixed width keeps them ordered as text, which range queries such as
/// `rollback --inserted-since` rely on.
pub fn format_timestamp(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_in_every_accepted_shape() {
        let z = parse_instant("2025-10-19T12:00:00Z").unwrap();
        assert_eq!(parse_instant("2025-10-19T14:00:00+02:00"), Some(z));
        assert_eq!(parse_instant("2025-10-19T12:00:00"), Some(z));
        assert_eq!(parse_instant("2025-10-19"), Some(z - 12 * 3_600_000_000));
        assert_eq!(parse_instant("yesterday"), None);
        assert_eq!(format_instant(z), "2025-10-19T12:00:00Z");
    }
}
