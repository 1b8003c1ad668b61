//! Time formatting for API answers: RFC 3339 UTC with milliseconds.

use std::time::{Duration, UNIX_EPOCH};

/// Formats Unix milliseconds as RFC 3339 UTC (`2026-11-30T04:57:31.123Z`).
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Optional form of [`rfc3339`].
pub fn rfc3339_opt(ms: Option<u64>) -> Option<String> {
    ms.map(rfc3339)
}

/// Now, Unix seconds (for signature timestamp windows).
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
