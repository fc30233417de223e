//! A country's clock: the local time its people live by, so that a
//! region's profile learns its hours of the week in local time and a
//! daylight-saving change is not a shift of the whole day.
//!
//! The profile of a country's series is indexed by local wall-clock hour
//! of the week (see [`crate::baseline`]). In UTC, the morning of a country
//! with daylight saving time moves by an hour twice a year, and for days
//! after each change every hour is expected as its neighbour was: on a
//! steep morning, tens of percent off, which a busy series pages on. In
//! local time the change is a non-event (one night has an hour twice or
//! not at all).
//!
//! The offsets are standard time of the zone most people live in (the
//! eastern United States, Moscow, Brasília, Sydney), rounded down to the
//! hour (India's 05:30 counts as 05:00: slots stay whole UTC hours). The
//! daylight-saving rules are those of the regions that keep them and hold
//! most reports: North America (second Sunday of March to first Sunday of
//! November, 02:00 local), Europe (last Sunday of March to last Sunday of
//! October, 01:00 UTC), south-eastern Australia (first Sunday of October to
//! first Sunday of April) and New Zealand (last Sunday of September to
//! first Sunday of April). Countries that keep other or no rules stay on
//! standard time all year; the worldwide series and `ZZ` stay in UTC.

use crate::region::{Country, ISO_3166_1_ALPHA2};

/// Standard UTC offsets, hours, of every assigned country, in
/// [`ISO_3166_1_ALPHA2`] order.
#[rustfmt::skip]
const OFFSETS: [(&str, i8); 249] = [
    ("AD", 1), ("AE", 4), ("AF", 4), ("AG", -4), ("AI", -4), ("AL", 1), ("AM", 4), ("AO", 1),
    ("AQ", 0), ("AR", -3), ("AS", -11), ("AT", 1), ("AU", 10), ("AW", -4), ("AX", 2), ("AZ", 4),
    ("BA", 1), ("BB", -4), ("BD", 6), ("BE", 1), ("BF", 0), ("BG", 2), ("BH", 3), ("BI", 2),
    ("BJ", 1), ("BL", -4), ("BM", -4), ("BN", 8), ("BO", -4), ("BQ", -4), ("BR", -3), ("BS", -5),
    ("BT", 6), ("BV", 1), ("BW", 2), ("BY", 3), ("BZ", -6), ("CA", -5), ("CC", 6), ("CD", 1),
    ("CF", 1), ("CG", 1), ("CH", 1), ("CI", 0), ("CK", -10), ("CL", -4), ("CM", 1), ("CN", 8),
    ("CO", -5), ("CR", -6), ("CU", -5), ("CV", -1), ("CW", -4), ("CX", 7), ("CY", 2), ("CZ", 1),
    ("DE", 1), ("DJ", 3), ("DK", 1), ("DM", -4), ("DO", -4), ("DZ", 1), ("EC", -5), ("EE", 2),
    ("EG", 2), ("EH", 1), ("ER", 3), ("ES", 1), ("ET", 3), ("FI", 2), ("FJ", 12), ("FK", -3),
    ("FM", 10), ("FO", 0), ("FR", 1), ("GA", 1), ("GB", 0), ("GD", -4), ("GE", 4), ("GF", -3),
    ("GG", 0), ("GH", 0), ("GI", 1), ("GL", -2), ("GM", 0), ("GN", 0), ("GP", -4), ("GQ", 1),
    ("GR", 2), ("GS", -2), ("GT", -6), ("GU", 10), ("GW", 0), ("GY", -4), ("HK", 8), ("HM", 5),
    ("HN", -6), ("HR", 1), ("HT", -5), ("HU", 1), ("ID", 7), ("IE", 0), ("IL", 2), ("IM", 0),
    ("IN", 5), ("IO", 6), ("IQ", 3), ("IR", 3), ("IS", 0), ("IT", 1), ("JE", 0), ("JM", -5),
    ("JO", 3), ("JP", 9), ("KE", 3), ("KG", 6), ("KH", 7), ("KI", 12), ("KM", 3), ("KN", -4),
    ("KP", 9), ("KR", 9), ("KW", 3), ("KY", -5), ("KZ", 5), ("LA", 7), ("LB", 2), ("LC", -4),
    ("LI", 1), ("LK", 5), ("LR", 0), ("LS", 2), ("LT", 2), ("LU", 1), ("LV", 2), ("LY", 2),
    ("MA", 1), ("MC", 1), ("MD", 2), ("ME", 1), ("MF", -4), ("MG", 3), ("MH", 12), ("MK", 1),
    ("ML", 0), ("MM", 6), ("MN", 8), ("MO", 8), ("MP", 10), ("MQ", -4), ("MR", 0), ("MS", -4),
    ("MT", 1), ("MU", 4), ("MV", 5), ("MW", 2), ("MX", -6), ("MY", 8), ("MZ", 2), ("NA", 2),
    ("NC", 11), ("NE", 1), ("NF", 11), ("NG", 1), ("NI", -6), ("NL", 1), ("NO", 1), ("NP", 5),
    ("NR", 12), ("NU", -11), ("NZ", 12), ("OM", 4), ("PA", -5), ("PE", -5), ("PF", -10), ("PG", 10),
    ("PH", 8), ("PK", 5), ("PL", 1), ("PM", -3), ("PN", -8), ("PR", -4), ("PS", 2), ("PT", 0),
    ("PW", 9), ("PY", -3), ("QA", 3), ("RE", 4), ("RO", 2), ("RS", 1), ("RU", 3), ("RW", 2),
    ("SA", 3), ("SB", 11), ("SC", 4), ("SD", 2), ("SE", 1), ("SG", 8), ("SH", 0), ("SI", 1),
    ("SJ", 1), ("SK", 1), ("SL", 0), ("SM", 1), ("SN", 0), ("SO", 3), ("SR", -3), ("SS", 2),
    ("ST", 0), ("SV", -6), ("SX", -4), ("SY", 3), ("SZ", 2), ("TC", -5), ("TD", 1), ("TF", 5),
    ("TG", 0), ("TH", 7), ("TJ", 5), ("TK", 13), ("TL", 9), ("TM", 5), ("TN", 1), ("TO", 13),
    ("TR", 3), ("TT", -4), ("TV", 12), ("TW", 8), ("TZ", 3), ("UA", 2), ("UG", 3), ("UM", -10),
    ("US", -5), ("UY", -3), ("UZ", 5), ("VA", 1), ("VC", -4), ("VE", -4), ("VG", -4), ("VI", -4),
    ("VN", 7), ("VU", 11), ("WF", 12), ("WS", 13), ("YE", 3), ("YT", 3), ("ZA", 2), ("ZM", 2),
    ("ZW", 2),
];

/// Countries on North American daylight saving time.
const NORTH_AMERICA: [&str; 7] = ["BM", "BS", "CA", "HT", "PM", "TC", "US"];

/// Countries on European daylight saving time.
const EUROPE: [&str; 48] = [
    "AD", "AL", "AT", "AX", "BA", "BE", "BG", "CH", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FO",
    "FR", "GB", "GG", "GI", "GR", "HR", "HU", "IE", "IM", "IT", "JE", "LI", "LT", "LU", "LV", "MC",
    "MD", "ME", "MK", "MT", "NL", "NO", "PL", "PT", "RO", "RS", "SE", "SI", "SJ", "SK", "SM", "UA",
];

/// Daylight-saving rule of a country.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    None,
    NorthAmerica,
    Europe,
    Australia,
    NewZealand,
}

/// One country's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Zone {
    /// Local standard time minus UTC, hours.
    offset: i8,
    rule: Rule,
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

impl Zone {
    /// The clock of `country`; `None` for `ZZ`.
    pub fn of(country: Country) -> Option<Zone> {
        ZONES.get(country.index()).copied().flatten()
    }

    /// Whether daylight saving time is in effect at UTC instant `utc_ms`.
    pub fn daylight(&self, utc_ms: i64) -> bool {
        let year = year_of(utc_ms);
        let local_std = |day: i64, hour: i64| day * DAY_MS + hour * HOUR_MS;
        let off = i64::from(self.offset) * HOUR_MS;
        match self.rule {
            Rule::None => false,
            // 02:00 local standard time on, 02:00 local daylight time off.
            Rule::NorthAmerica => {
                let on = local_std(nth_sunday(year, 3, 2), 2) - off;
                let end = local_std(nth_sunday(year, 11, 1), 1) - off;
                (on..end).contains(&utc_ms)
            }
            // 01:00 UTC both ways.
            Rule::Europe => {
                let on = last_sunday(year, 3) * DAY_MS + HOUR_MS;
                let end = last_sunday(year, 10) * DAY_MS + HOUR_MS;
                (on..end).contains(&utc_ms)
            }
            // Southern summer: off in April (03:00 daylight = 02:00
            // standard), on again in spring (02:00 standard).
            Rule::Australia => {
                let end = local_std(nth_sunday(year, 4, 1), 2) - off;
                let on = local_std(nth_sunday(year, 10, 1), 2) - off;
                utc_ms < end || utc_ms >= on
            }
            Rule::NewZealand => {
                let end = local_std(nth_sunday(year, 4, 1), 2) - off;
                let on = local_std(last_sunday(year, 9), 2) - off;
                utc_ms < end || utc_ms >= on
            }
        }
    }

    /// Local wall-clock time minus UTC at `utc_ms`, in milliseconds.
    pub fn offset_ms(&self, utc_ms: i64) -> i64 {
        (i64::from(self.offset) + i64::from(self.daylight(utc_ms))) * HOUR_MS
    }
}

/// The local wall-clock time (as milliseconds since the epoch) of the UTC
/// instant `utc_ms` in `zone`; UTC itself without one (the worldwide
/// series, `ZZ`).
pub fn local_ms(utc_ms: i64, zone: Option<Zone>) -> i64 {
    utc_ms + zone.map_or(0, |z| z.offset_ms(utc_ms))
}

/// Days since 1970-01-01 of `year`-`month`-`day` (proleptic Gregorian).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    // Howard Hinnant's algorithm.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The UTC year of `utc_ms`.
fn year_of(utc_ms: i64) -> i64 {
    let days = utc_ms.div_euclid(DAY_MS);
    // Inverse of `days_from_civil`, year only.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(month <= 2)
}

/// Weekday of a day number (Monday = 0; 1970-01-01 was a Thursday).
fn weekday(days: i64) -> i64 {
    (days + 3).rem_euclid(7)
}

/// Day number of the `n`th Sunday of `month`.
fn nth_sunday(year: i64, month: i64, n: i64) -> i64 {
    let first = days_from_civil(year, month, 1);
    first + (6 - weekday(first)).rem_euclid(7) + 7 * (n - 1)
}

/// Day number of the last Sunday of `month`.
fn last_sunday(year: i64, month: i64) -> i64 {
    let next = if month == 12 {
        days_from_civil(year + 1, 1, 1)
    } else {
        days_from_civil(year, month + 1, 1)
    };
    let last = next - 1;
    last - (weekday(last) - 6).rem_euclid(7)
}

/// Zones in [`Country::index`] order.
const ZONES: [Option<Zone>; 250] = build_zones();

const fn eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a[0] == b[0] && a[1] == b[1]
}

const fn listed(code: &str, list: &[&str]) -> bool {
    let mut i = 0;
    while i < list.len() {
        if eq(code, list[i]) {
            return true;
        }
        i += 1;
    }
    false
}

const fn build_zones() -> [Option<Zone>; 250] {
    let mut zones = [None; 250];
    let mut i = 0;
    while i < ISO_3166_1_ALPHA2.len() {
        let code = ISO_3166_1_ALPHA2[i];
        // The table is in list order; a mismatch fails the build.
        assert!(eq(code, OFFSETS[i].0), "OFFSETS out of order");
        let rule = if listed(code, &NORTH_AMERICA) {
            Rule::NorthAmerica
        } else if listed(code, &EUROPE) {
            Rule::Europe
        } else if eq(code, "AU") {
            Rule::Australia
        } else if eq(code, "NZ") {
            Rule::NewZealand
        } else {
            Rule::None
        };
        zones[i] = Some(Zone {
            offset: OFFSETS[i].1,
            rule,
        });
        i += 1;
    }
    zones
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(code: &str) -> Zone {
        Zone::of(Country::parse(code).unwrap()).unwrap()
    }

    /// UTC milliseconds of a civil date and hour.
    fn utc(y: i64, m: i64, d: i64, h: i64) -> i64 {
        days_from_civil(y, m, d) * DAY_MS + h * HOUR_MS
    }

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for (y, m, d) in [(2015, 3, 8), (2020, 12, 31), (2024, 2, 29), (1999, 1, 1)] {
            assert_eq!(year_of(utc(y, m, d, 23)), y);
        }
        // 2021-03-28 and 2021-10-31 were the EU's change days.
        assert_eq!(last_sunday(2021, 3), days_from_civil(2021, 3, 28));
        assert_eq!(last_sunday(2021, 10), days_from_civil(2021, 10, 31));
        // 2015-03-08 and 2015-11-01 were the US's.
        assert_eq!(nth_sunday(2015, 3, 2), days_from_civil(2015, 3, 8));
        assert_eq!(nth_sunday(2015, 11, 1), days_from_civil(2015, 11, 1));
    }

    #[test]
    fn clocks_change_on_the_real_dates() {
        let us = zone("US");
        // New York: 02:00 EST on 2015-03-08 is 07:00 UTC.
        assert_eq!(us.offset_ms(utc(2015, 3, 8, 6)), -5 * HOUR_MS);
        assert_eq!(us.offset_ms(utc(2015, 3, 8, 7)), -4 * HOUR_MS);
        // Back at 02:00 EDT on 2015-11-01, 06:00 UTC.
        assert_eq!(us.offset_ms(utc(2015, 11, 1, 5)), -4 * HOUR_MS);
        assert_eq!(us.offset_ms(utc(2015, 11, 1, 6)), -5 * HOUR_MS);
        let de = zone("DE");
        assert_eq!(de.offset_ms(utc(2021, 3, 28, 0)), HOUR_MS);
        assert_eq!(de.offset_ms(utc(2021, 3, 28, 1)), 2 * HOUR_MS);
        assert_eq!(de.offset_ms(utc(2021, 10, 31, 1)), HOUR_MS);
        // Southern summer: Sydney on daylight time in January, not in July.
        let au = zone("AU");
        assert_eq!(au.offset_ms(utc(2021, 1, 15, 0)), 11 * HOUR_MS);
        assert_eq!(au.offset_ms(utc(2021, 7, 15, 0)), 10 * HOUR_MS);
        let nz = zone("NZ");
        assert_eq!(nz.offset_ms(utc(2021, 1, 15, 0)), 13 * HOUR_MS);
        assert_eq!(nz.offset_ms(utc(2021, 7, 15, 0)), 12 * HOUR_MS);
        // Japan keeps no daylight time; India is counted at 05:00.
        assert_eq!(zone("JP").offset_ms(utc(2021, 7, 15, 0)), 9 * HOUR_MS);
        assert_eq!(zone("IN").offset_ms(utc(2021, 7, 15, 0)), 5 * HOUR_MS);
        assert_eq!(Zone::of(Country::UNKNOWN), None);
    }

    #[test]
    fn every_country_has_a_clock() {
        for i in 0..ISO_3166_1_ALPHA2.len() {
            let z = Zone::of(Country::from_index(i)).unwrap();
            assert!((-12..=14).contains(&z.offset), "{i}");
        }
    }
}
