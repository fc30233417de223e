//! Regions: ISO 3166-1 alpha-2 countries and ISO 3166-2 subdivisions.
//!
//! The country list is embedded so decoding needs no lookup service. Lookup is
//! a 26×26 bitmap: one load and one bit test per report. Well-formed codes that
//! are not assigned countries roll up into [`Country::UNKNOWN`] (`ZZ`), so a
//! typo in one producer cannot create unbounded series.

use std::fmt;

/// Every officially assigned ISO 3166-1 alpha-2 code (249 entries).
pub const ISO_3166_1_ALPHA2: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// Bit `second` of word `first` is set when `first second` is an assigned code.
const ASSIGNED: [u32; 26] = build_assigned();

const fn build_assigned() -> [u32; 26] {
    let mut table = [0u32; 26];
    let mut i = 0;
    while i < ISO_3166_1_ALPHA2.len() {
        let b = ISO_3166_1_ALPHA2[i].as_bytes();
        table[(b[0] - b'A') as usize] |= 1 << (b[1] - b'A');
        i += 1;
    }
    table
}

/// Dense index of every two-letter code: its position in
/// [`ISO_3166_1_ALPHA2`], or 249 (`ZZ`) when unassigned.
const DENSE: [u8; 676] = build_dense();

const fn build_dense() -> [u8; 676] {
    let mut table = [249u8; 676];
    let mut i = 0;
    while i < ISO_3166_1_ALPHA2.len() {
        let b = ISO_3166_1_ALPHA2[i].as_bytes();
        table[(b[0] - b'A') as usize * 26 + (b[1] - b'A') as usize] = i as u8;
        i += 1;
    }
    table
}

/// An ISO 3166-1 alpha-2 country, or `ZZ` for a well-formed unknown code.
///
/// Two bytes, `Copy`, ordered: cheap to use as (part of) a map key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country([u8; 2]);

impl Country {
    /// `ZZ`: where well-formed but unassigned codes are counted.
    pub const UNKNOWN: Country = Country(*b"ZZ");

    /// The country for two ASCII letters in either case; `None` when the bytes
    /// are not letters. Unassigned codes give [`Country::UNKNOWN`].
    #[inline]
    pub fn from_letters(a: u8, b: u8) -> Option<Country> {
        if !a.is_ascii_alphabetic() || !b.is_ascii_alphabetic() {
            return None;
        }
        let (a, b) = (a.to_ascii_uppercase(), b.to_ascii_uppercase());
        if ASSIGNED[(a - b'A') as usize] & (1 << (b - b'A')) != 0 {
            Some(Country([a, b]))
        } else {
            Some(Country::UNKNOWN)
        }
    }

    /// Parses a two-letter code; `None` when it is not two ASCII letters.
    pub fn parse(code: &str) -> Option<Country> {
        match code.as_bytes() {
            [a, b] => Country::from_letters(*a, *b),
            _ => None,
        }
    }

    /// Number of distinct countries including `ZZ`: the range of [`Country::index`].
    pub const COUNT: usize = 250;

    /// A dense index in `0..Country::COUNT` (list order; `ZZ` last), for
    /// array-indexed per-country state.
    #[inline]
    pub fn index(self) -> usize {
        DENSE[(self.0[0] - b'A') as usize * 26 + (self.0[1] - b'A') as usize] as usize
    }

    /// The country at a dense index (anything out of range is `ZZ`).
    pub fn from_index(index: usize) -> Country {
        match ISO_3166_1_ALPHA2.get(index) {
            Some(code) => {
                let b = code.as_bytes();
                Country([b[0], b[1]])
            }
            None => Country::UNKNOWN,
        }
    }

    /// Whether this is an assigned country (not `ZZ`).
    pub fn is_known(self) -> bool {
        self != Country::UNKNOWN
    }

    /// The upper-case code, e.g. `"GB"`.
    #[inline]
    pub fn as_str(&self) -> &str {
        // Constructed only from ASCII letters.
        std::str::from_utf8(&self.0).expect("country codes are ASCII")
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A report's region: its country plus, when the producer sent an ISO 3166-2
/// code (`US-CA`), the subdivision part (`CA`). Detection rolls subdivisions
/// up into their country; the subdivision is kept for display and export.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region {
    country: Country,
    /// Subdivision bytes, upper-case ASCII alphanumerics, zero-padded.
    subdivision: [u8; 3],
}

impl Region {
    /// A whole-country region.
    pub const fn country(country: Country) -> Region {
        Region {
            country,
            subdivision: [0; 3],
        }
    }

    /// Parses `GB`, `gb`, `US-CA` or `FR-75C`. Returns `None` when the code is
    /// not well-formed; well-formed unassigned countries become `ZZ`.
    #[inline]
    pub fn parse(code: &str) -> Option<Region> {
        let b = code.as_bytes();
        let country = match b {
            [a, c, ..] => Country::from_letters(*a, *c)?,
            _ => return None,
        };
        match b.len() {
            2 => Some(Region::country(country)),
            4..=6 if b[2] == b'-' => {
                let mut subdivision = [0u8; 3];
                for (slot, &ch) in subdivision.iter_mut().zip(&b[3..]) {
                    if !ch.is_ascii_alphanumeric() {
                        return None;
                    }
                    *slot = ch.to_ascii_uppercase();
                }
                Some(Region {
                    country,
                    subdivision,
                })
            }
            _ => None,
        }
    }

    /// The country this region belongs to (what detection counts by).
    #[inline]
    pub fn country_code(&self) -> Country {
        self.country
    }

    /// The subdivision part of an ISO 3166-2 code, if one was given.
    pub fn subdivision(&self) -> Option<&str> {
        let len = self.subdivision.iter().position(|&b| b == 0).unwrap_or(3);
        if len == 0 {
            None
        } else {
            Some(std::str::from_utf8(&self.subdivision[..len]).expect("subdivisions are ASCII"))
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.subdivision() {
            Some(sub) => write!(f, "{}-{}", self.country, sub),
            None => write!(f, "{}", self.country),
        }
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Country {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Country {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Country, D::Error> {
        let code = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Country::parse(&code)
            .ok_or_else(|| serde::de::Error::custom(format!("{code:?} is not a country code")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_sorted_unique_and_complete() {
        let mut sorted = ISO_3166_1_ALPHA2.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 249);
        assert_eq!(sorted, ISO_3166_1_ALPHA2.to_vec());
        let assigned: u32 = ASSIGNED.iter().map(|w| w.count_ones()).sum();
        assert_eq!(assigned, 249);
    }

    #[test]
    fn dense_indexes_round_trip() {
        for (i, code) in ISO_3166_1_ALPHA2.iter().enumerate() {
            let c = Country::parse(code).unwrap();
            assert_eq!(c.index(), i);
            assert_eq!(Country::from_index(i), c);
        }
        assert_eq!(Country::UNKNOWN.index(), 249);
        assert_eq!(Country::from_index(249), Country::UNKNOWN);
    }

    #[test]
    fn countries_parse_case_insensitively() {
        assert_eq!(Country::parse("GB").unwrap().as_str(), "GB");
        assert_eq!(Country::parse("gb").unwrap().as_str(), "GB");
        assert_eq!(Country::parse("XX"), Some(Country::UNKNOWN));
        assert_eq!(
            Country::parse("UK"),
            Some(Country::UNKNOWN),
            "UK is not ISO 3166-1"
        );
        assert_eq!(Country::parse("G1"), None);
        assert_eq!(Country::parse("GBR"), None);
    }

    #[test]
    fn subdivisions_keep_their_country() {
        let r = Region::parse("US-CA").unwrap();
        assert_eq!(r.country_code().as_str(), "US");
        assert_eq!(r.subdivision(), Some("CA"));
        assert_eq!(r.to_string(), "US-CA");
        let r = Region::parse("fr-75c").unwrap();
        assert_eq!(r.to_string(), "FR-75C");
        let r = Region::parse("QQ-1").unwrap();
        assert_eq!(r.country_code(), Country::UNKNOWN);
        for bad in [
            "", "U", "US-", "US-ABCD", "US_CA", "USCA", "1S", "US-C!", "ÜS",
        ] {
            assert_eq!(Region::parse(bad), None, "{bad:?}");
        }
    }
}
