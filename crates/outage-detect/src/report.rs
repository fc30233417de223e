//! The decoded problem report, the unit everything downstream counts.
//!
//! A [`Report`] borrows its strings from the message it was decoded from, so
//! decoding a report costs no allocation unless its JSON used escapes.

use std::borrow::Cow;
use std::fmt;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::region::Region;

/// What the user said was wrong. A bounded set so it can label metrics;
/// anything a producer sends outside it is counted as [`Problem::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Problem {
    /// Cannot connect.
    Connectivity,
    /// Cannot log in.
    Login,
    /// The app fails.
    App,
    /// Voice assistant or calls.
    Voice,
    /// A device fails.
    Device,
    /// Total outage.
    Outage,
    /// Payments fail.
    Payments,
    /// Anything else, or a problem this build does not know.
    Other,
}

impl Problem {
    /// Every variant, in declaration order (`Problem as usize` indexes it).
    pub const ALL: [Problem; 8] = [
        Problem::Connectivity,
        Problem::Login,
        Problem::App,
        Problem::Voice,
        Problem::Device,
        Problem::Outage,
        Problem::Payments,
        Problem::Other,
    ];

    /// The wire and label spelling, e.g. `"voice"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Problem::Connectivity => "connectivity",
            Problem::Login => "login",
            Problem::App => "app",
            Problem::Voice => "voice",
            Problem::Device => "device",
            Problem::Outage => "outage",
            Problem::Payments => "payments",
            Problem::Other => "other",
        }
    }

    /// Reads a problem name; unknown names (any case) map to `Other`.
    #[inline]
    pub fn from_name(name: &str) -> Problem {
        match name {
            "connectivity" => Problem::Connectivity,
            "login" => Problem::Login,
            "app" => Problem::App,
            "voice" => Problem::Voice,
            "device" => Problem::Device,
            "outage" => Problem::Outage,
            "payments" => Problem::Payments,
            _ => Problem::Other,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One user problem report, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report<'a> {
    /// Service slug, `[a-z0-9][a-z0-9._-]{0,63}`.
    pub service: Cow<'a, str>,
    /// Where the user is. Detection counts by its country.
    pub region: Region,
    /// Event time, milliseconds since the Unix epoch (UTC).
    pub ts_ms: i64,
    /// What the reporter says is wrong.
    pub problem: Problem,
    /// Opaque reporter id: used for de-duplication and spam caps, never exported.
    pub reporter: Option<Cow<'a, str>>,
    /// Free-text origin (`web`, `app`, `twitter`, ...), bounded length.
    pub source: Option<Cow<'a, str>>,
}

impl Report<'_> {
    /// Detaches the report from the buffer it was decoded from.
    pub fn into_owned(self) -> Report<'static> {
        Report {
            service: Cow::Owned(self.service.into_owned()),
            region: self.region,
            ts_ms: self.ts_ms,
            problem: self.problem,
            reporter: self.reporter.map(|r| Cow::Owned(r.into_owned())),
            source: self.source.map(|s| Cow::Owned(s.into_owned())),
        }
    }

    /// Encodes the report in the wire format (`ts` as epoch milliseconds).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serializes")
    }
}

impl Serialize for Report<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = 4 + self.reporter.is_some() as usize + self.source.is_some() as usize;
        let mut map = serializer.serialize_map(Some(fields))?;
        map.serialize_entry("service", &self.service)?;
        map.serialize_entry("region", &self.region.to_string())?;
        map.serialize_entry("ts", &self.ts_ms)?;
        map.serialize_entry("problem", self.problem.as_str())?;
        if let Some(reporter) = &self.reporter {
            map.serialize_entry("reporter", reporter)?;
        }
        if let Some(source) = &self.source {
            map.serialize_entry("source", source)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_names_round_trip() {
        for p in Problem::ALL {
            assert_eq!(Problem::from_name(p.as_str()), p);
            assert_eq!(Problem::ALL[p as usize], p);
        }
        assert_eq!(Problem::from_name("Voice"), Problem::Other);
        assert_eq!(Problem::from_name("battery"), Problem::Other);
    }
}
