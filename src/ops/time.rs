//! Times as operators and Kubernetes read them: RFC 3339 in UTC.

use std::time::{SystemTime, UNIX_EPOCH};

/// `time` in UTC as RFC 3339, to the second, or to the microsecond with `micros` (the
/// `metav1.Time` and `metav1.MicroTime` forms).
pub fn rfc3339(time: SystemTime, micros: bool) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (year, month, day) = crate::civil::from_days(days);
    let fraction = if micros {
        format!(".{:06}", since.subsec_micros())
    } else {
        String::new()
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{fraction}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH, false), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_796_400_000);
        assert_eq!(rfc3339(t, false), "2026-12-04T16:00:00Z");
        let leap = UNIX_EPOCH + Duration::from_micros(951_782_400_000_123);
        assert_eq!(rfc3339(leap, true), "2000-02-29T00:00:00.000123Z");
    }
}
