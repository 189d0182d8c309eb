//! Wall-clock time in milliseconds since the Unix epoch: the `now_ms` every sans-IO core
//! receives. Kept in one place so tests and the runtime agree.

/// Milliseconds since the Unix epoch (0 if the system clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
