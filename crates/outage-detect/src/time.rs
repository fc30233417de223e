//! Time as the project writes and reads it: epoch milliseconds, RFC 3339
//! text, and the one wall clock.
//!
//! Parsing is on the decoder's hot path (a hand-written fast path for the
//! shape producers send, chrono for the rest); formatting is for people
//! (alerts, incidents, the status page, the simulator). The detector never
//! reads the wall clock: [`wall_ms`] is for the edges (the ingester's idle
//! ticks, alert timestamps, latency measurements), here so that there is
//! one.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Parses an RFC 3339 timestamp to epoch milliseconds (sub-millisecond
/// digits are truncated).
///
/// The shape producers actually send (`2018-09-26T10:02:11.123Z`, or with a
/// `+01:00` offset) takes a hand-written path that costs a few nanoseconds;
/// anything else goes to chrono's full parser.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    fast_rfc3339_ms(text.as_bytes()).or_else(|| {
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.timestamp_millis())
    })
}

/// Formats epoch milliseconds as RFC 3339 UTC with whole seconds
/// (`2018-09-26T10:02:00Z`); out-of-range values print as the number.
pub fn format_rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

#[inline]
pub(crate) fn digits(b: &[u8]) -> Option<i64> {
    let mut v = 0i64;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM)`; `None` means "ask chrono".
fn fast_rfc3339_ms(b: &[u8]) -> Option<i64> {
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (h, mi, s) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &b[start..i];
        if frac.is_empty() || frac.len() > 9 {
            return None;
        }
        for k in 0..3 {
            ms = ms * 10 + frac.get(k).map_or(0, |c| i64::from(c - b'0'));
        }
    }
    let offset_s = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (oh, om) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if oh > 23 || om > 59 {
                return None;
            }
            let v = oh * 3600 + om * 60;
            if *sign == b'+' {
                v
            } else {
                -v
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset_s;
    Some(secs * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_rfc3339_agrees_with_chrono() {
        for text in [
            "2018-09-26T10:02:11Z",
            "2018-09-26T10:02:11.1Z",
            "2018-09-26T10:02:11.123456789+05:30",
            "1970-01-01T00:00:00-00:01",
            "2000-02-29T23:59:59.999z",
            "2400-12-31t00:00:00Z",
        ] {
            let chrono = chrono::DateTime::parse_from_rfc3339(text)
                .unwrap()
                .timestamp_millis();
            assert_eq!(fast_rfc3339_ms(text.as_bytes()), Some(chrono), "{text}");
        }
        for odd in [
            "2018-09-26 10:02:11Z",
            "2018-02-30T00:00:00Z",
            "2018-09-26T10:02:60Z",
            "2018-09-26T10:02:11",
        ] {
            assert_eq!(fast_rfc3339_ms(odd.as_bytes()), None, "{odd}");
        }
        assert_eq!(
            parse_rfc3339_ms("2018-09-26 10:02:11Z"),
            Some(1_537_956_131_000)
        );
    }
}
