//! Time as every table stores it (BIGINT Unix epoch milliseconds) and as the API shows it
//! (RFC 3339).

/// Now as Unix epoch milliseconds, the timestamp format of every table.
pub fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

/// RFC 3339 rendering of an epoch-millisecond timestamp for API responses.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
