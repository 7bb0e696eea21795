//! Civil dates in UTC from Unix days and back (Howard Hinnant's algorithms), shared by
//! what writes times for people and files: RFC 3339 (`ops::time`) and the
//! `YYYYMMDDHHMMSS` of DNSSEC key files (`dnssec::keys`); and Unix seconds now.

/// Unix seconds now (0 on a clock before 1970).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// (year, month, day) of `days` since 1970-01-01.
pub fn from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        yoe + era * 400 + i64::from(month <= 2),
        month as u32,
        day as u32,
    )
}

/// Days since 1970-01-01 of a civil date.
pub fn to_days(year: i64, month: u32, day: u32) -> i64 {
    let y = year - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip() {
        assert_eq!(from_days(0), (1970, 1, 1));
        assert_eq!(to_days(2000, 2, 29), 11_016);
        for d in (-800_000..800_000).step_by(997) {
            let (y, m, day) = from_days(d);
            assert_eq!(to_days(y, m, day), d);
        }
    }
}
