//! RFC 3339 times as NATS writes them (`2026-01-02T03:04:05.123456789Z`), to and from
//! [`SystemTime`]: when the app started (the Service API's `STATS`) and, with the
//! `jetstream` feature, the start time of an ordered consumer and when a stored message (a
//! Key-Value entry) was written. Reading a time is JetStream's only.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SECS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date (eras of 400 years, March-based
/// years so that the leap day ends the year).
// Without JetStream nothing reads times (the tests still check them).
#[cfg_attr(not(feature = "jetstream"), allow(dead_code))]
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let m = i64::from(month);
    let day_of_year = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day counted from 1970-01-01: the inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Formats `time` in UTC with nanoseconds; times before 1970 are written as 1970.
pub(crate) fn format(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (year, month, day) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
    let rest = secs.rem_euclid(SECS_PER_DAY);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_nanos()
    )
}

/// Reads `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`. `None` if it is not one, or if it
/// is before 1970 (the API writes "unset" as `0001-01-01T00:00:00Z`).
#[cfg_attr(not(feature = "jetstream"), allow(dead_code))]
pub(crate) fn parse(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        digits.iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let punct = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if punct.iter().any(|&(i, c)| b.get(i) != Some(&c)) || !matches!(b.get(10), Some(b'T' | b't')) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // A leap second (60) is read as the next second.
    if second > 60 {
        return None;
    }
    let mut at = 19;
    let mut nanos = 0u32;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            if at - start < 9 {
                nanos = nanos * 10 + u32::from(b[at] - b'0');
            }
            at += 1;
        }
        let digits = at - start;
        if digits == 0 {
            return None;
        }
        nanos *= 10u32.pow(9 - digits.min(9) as u32);
    }
    let offset = match b.get(at..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let minutes = num(at + 1, 2)? * 60 + num(at + 4, 2)?;
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month as u32, day as u32);
    let secs = days * SECS_PER_DAY + hour * 3600 + minute * 60 + second - offset;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn server_times_are_read() {
        let cases = [
            ("1970-01-01T00:00:00Z", at(0, 0)),
            (
                "2023-03-15T10:20:30.123456789Z",
                at(1_678_875_630, 123_456_789),
            ),
            ("2023-03-15T10:20:30.5Z", at(1_678_875_630, 500_000_000)),
            ("2024-02-29T23:59:59Z", at(1_709_251_199, 0)),
            ("2023-03-15T12:20:30+02:00", at(1_678_875_630, 0)),
            ("2023-03-15T08:20:30.000000001-02:00", at(1_678_875_630, 1)),
            (
                "2000-03-01T00:00:00.1234567891Z",
                at(951_868_800, 123_456_789),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Some(want), "{text}");
        }
    }

    #[test]
    fn other_text_and_unset_times_are_none() {
        for bad in [
            "",
            "0001-01-01T00:00:00Z",
            "2023-03-15 10:20:30Z",
            "2023-03-15T10:20:30",
            "2023-13-15T10:20:30Z",
            "2023-03-15T10:20:30.Z",
            "2023-03-15T10:20:30+0200",
            "2023-03-15T10:20:3xZ",
            "2023-03-15T10:20:30Zjunk",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn formatting_reads_back() {
        for t in [
            at(0, 0),
            at(1_678_875_630, 123_456_789),
            at(951_782_400, 7),
            at(4_102_444_800, 999_999_999),
        ] {
            let text = format(t);
            assert_eq!(parse(&text), Some(t), "{text}");
        }
        assert_eq!(
            format(at(1_709_251_199, 0)),
            "2024-02-29T23:59:59.000000000Z"
        );
    }
}
