//! Wire-format decoder: bytes of one Kafka message → [`Report`] or a reason.
//!
//! Every byte string is either decoded or rejected with a [`RejectReason`];
//! nothing panics and nothing is dropped without a reason. Strings are
//! borrowed from the input, so the common report costs no allocation. The
//! current time is a parameter (for the clock-skew check): this module never
//! reads a clock.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::region::Region;
use crate::report::{Problem, Report};
use crate::time::{digits, parse_rfc3339_ms};

/// Why a message was rejected. A bounded set: it labels metrics and the
/// dead-letter header, so it must never carry free text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// Larger than the configured size limit.
    Oversize,
    /// Not valid UTF-8.
    NotUtf8,
    /// Not a JSON object (syntax error, truncated, array, scalar, empty).
    NotJson,
    /// A required field (`service`, `region`, or a timestamp) is absent.
    MissingField,
    /// A field has the wrong JSON type, appears twice or is too long.
    BadField,
    /// `service` is not a slug `[a-z0-9][a-z0-9._-]{0,63}`.
    BadService,
    /// `region` is not an ISO 3166-1 alpha-2 or ISO 3166-2 code.
    BadRegion,
    /// `ts` is neither RFC 3339 nor epoch milliseconds in range.
    BadTimestamp,
    /// `ts` is further in the future than the allowed clock skew.
    FutureTimestamp,
    /// `service` is not on the configured allow-list (`decode.services`).
    UnknownService,
}

impl RejectReason {
    /// Every reason, for pre-registering metric label values.
    pub const ALL: [RejectReason; 10] = [
        RejectReason::Oversize,
        RejectReason::NotUtf8,
        RejectReason::NotJson,
        RejectReason::MissingField,
        RejectReason::BadField,
        RejectReason::BadService,
        RejectReason::BadRegion,
        RejectReason::BadTimestamp,
        RejectReason::FutureTimestamp,
        RejectReason::UnknownService,
    ];

    /// Stable snake_case name used in headers, metrics and summaries.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::Oversize => "oversize",
            RejectReason::NotUtf8 => "not_utf8",
            RejectReason::NotJson => "not_json",
            RejectReason::MissingField => "missing_field",
            RejectReason::BadField => "bad_field",
            RejectReason::BadService => "bad_service",
            RejectReason::BadRegion => "bad_region",
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::FutureTimestamp => "future_timestamp",
            RejectReason::UnknownService => "unknown_service",
        }
    }

    /// The reason named by [`RejectReason::as_str`].
    pub fn from_name(name: &str) -> Option<RejectReason> {
        RejectReason::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected message: the bounded reason plus a human detail for the
/// dead-letter header and logs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct DecodeError {
    /// The bounded reason (a metric label and a dead-letter header).
    pub reason: RejectReason,
    /// What exactly was wrong, for people (never a label).
    pub detail: String,
}

impl DecodeError {
    fn new(reason: RejectReason, detail: impl Into<String>) -> DecodeError {
        DecodeError {
            reason,
            detail: detail.into(),
        }
    }
}

/// Limits applied while decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Largest accepted message value, bytes.
    pub max_message_bytes: usize,
    /// How far `ts` may lie ahead of the decoder's clock, milliseconds.
    pub max_clock_skew_ms: i64,
    /// Longest accepted `reporter`, bytes.
    pub max_reporter_bytes: usize,
    /// Longest accepted `source`, bytes.
    pub max_source_bytes: usize,
    /// The only services accepted, when set (others: `unknown_service`):
    /// against floods of made-up names.
    pub services: Option<std::sync::Arc<std::collections::HashSet<String>>>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_message_bytes: 16 * 1024,
            max_clock_skew_ms: 5 * 60 * 1000,
            max_reporter_bytes: 256,
            max_source_bytes: 128,
            services: None,
        }
    }
}

/// Latest accepted event time: 9999-12-31T23:59:59.999Z.
const MAX_TS_MS: i64 = 253_402_300_799_999;

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, default)]
    service: Option<Text<'a>>,
    #[serde(borrow, default)]
    region: Option<Text<'a>>,
    #[serde(borrow, default)]
    ts: Option<WireTs<'a>>,
    #[serde(borrow, default)]
    problem: Option<Text<'a>>,
    #[serde(borrow, default)]
    reporter: Option<Text<'a>>,
    #[serde(borrow, default)]
    source: Option<Text<'a>>,
}

/// A JSON string borrowed from the input when it has no escapes. (serde's
/// own `Cow<str>` always allocates when wrapped in an `Option`.)
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// `ts` as sent: a number (epoch ms) or a string (RFC 3339).
enum WireTs<'a> {
    Millis(i64),
    Text(Cow<'a, str>),
    /// A number that is not an integer number of milliseconds in range.
    Invalid(f64),
}

impl<'de: 'a, 'a> Deserialize<'de> for WireTs<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TsVisitor;
        impl<'de> Visitor<'de> for TsVisitor {
            type Value = WireTs<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("epoch milliseconds or an RFC 3339 string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(WireTs::Millis(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v).map_or(WireTs::Invalid(v as f64), WireTs::Millis))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Ok(WireTs::Millis(v as i64))
                } else {
                    Ok(WireTs::Invalid(v))
                }
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(WireTs::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(WireTs::Text(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_any(TsVisitor)
    }
}

/// Whether `s` is a service slug: `[a-z0-9][a-z0-9._-]{0,63}`.
#[inline]
pub fn is_service_slug(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b[1..].iter().all(|&c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        })
}

/// The fast path of [`decode`]: a flat object of the known fields whose
/// values are strings without escapes (and `ts` a string or an integer),
/// the shape producers send. It returns exactly what serde would, and
/// `None` (serde decides, and names the error) for anything else: escapes,
/// `null`, other types, fractions or exponents, unknown or repeated keys,
/// nesting, bad syntax. It costs about a third of serde's time.
fn scan_flat(text: &str) -> Option<Wire<'_>> {
    let b = text.as_bytes();
    let ws = |mut i: usize| {
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        i
    };
    // A string without escapes or control characters starting at `i` (on
    // its quote): its contents and the index after the closing quote.
    let string = |i: usize| -> Option<(&str, usize)> {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let start = i + 1;
        let len = b[start..]
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        let end = start + len;
        // A quote ends it; an escape or a control character is serde's.
        if b[end] != b'"' {
            return None;
        }
        // Quotes are ASCII, so both ends are char boundaries.
        Some((&text[start..end], end + 1))
    };
    let mut wire = Wire {
        service: None,
        region: None,
        ts: None,
        problem: None,
        reporter: None,
        source: None,
    };
    let mut i = ws(0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(i + 1);
    if b.get(i) == Some(&b'}') {
        return (ws(i + 1) == b.len()).then_some(wire);
    }
    loop {
        let (key, after) = string(i)?;
        i = ws(after);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = ws(i + 1);
        // Each value, parsed, leaves `i` just after itself.
        i = if key == "ts" {
            if wire.ts.is_some() {
                return None;
            }
            if b.get(i) == Some(&b'"') {
                let (value, after) = string(i)?;
                wire.ts = Some(WireTs::Text(Cow::Borrowed(value)));
                after
            } else {
                let negative = b.get(i) == Some(&b'-');
                let start = i + usize::from(negative);
                let len = b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
                let end = start + len;
                // JSON has no leading zeros; fractions, exponents and
                // more digits than i64 surely holds go to serde.
                if len == 0
                    || len > 18
                    || (len > 1 && b[start] == b'0')
                    || matches!(b.get(end), Some(b'.' | b'e' | b'E'))
                {
                    return None;
                }
                let v = digits(&b[start..end])?;
                wire.ts = Some(WireTs::Millis(if negative { -v } else { v }));
                end
            }
        } else {
            let slot = match key {
                "service" => &mut wire.service,
                "region" => &mut wire.region,
                "problem" => &mut wire.problem,
                "reporter" => &mut wire.reporter,
                "source" => &mut wire.source,
                _ => return None,
            };
            if slot.is_some() {
                return None;
            }
            let (value, after) = string(i)?;
            *slot = Some(Text(Cow::Borrowed(value)));
            after
        };
        i = ws(i);
        match b.get(i) {
            Some(b',') => i = ws(i + 1),
            Some(b'}') => return (ws(i + 1) == b.len()).then_some(wire),
            _ => return None,
        }
    }
}

/// Decodes one message value.
///
/// `message_ts_ms` is the Kafka message timestamp, used when the report has
/// no `ts`. `now_ms` is the decoder's clock, used only for the clock-skew
/// check.
pub fn decode<'a>(
    bytes: &'a [u8],
    message_ts_ms: Option<i64>,
    now_ms: i64,
    opts: &DecodeOptions,
) -> Result<Report<'a>, DecodeError> {
    use RejectReason::*;

    if bytes.len() > opts.max_message_bytes {
        return Err(DecodeError::new(
            Oversize,
            format!(
                "{} bytes exceeds the limit of {}",
                bytes.len(),
                opts.max_message_bytes
            ),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        DecodeError::new(
            NotUtf8,
            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        )
    })?;
    if !text.trim_start().starts_with('{') {
        return Err(DecodeError::new(NotJson, "not a JSON object"));
    }
    let wire: Wire<'a> = match scan_flat(text) {
        Some(wire) => wire,
        None => serde_json::from_str(text).map_err(|e| {
            let reason = if e.is_data() { BadField } else { NotJson };
            DecodeError::new(reason, e.to_string())
        })?,
    };

    let service = wire
        .service
        .map(|t| t.0)
        .ok_or_else(|| DecodeError::new(MissingField, "missing field `service`"))?;
    if !is_service_slug(&service) {
        return Err(DecodeError::new(
            BadService,
            format!("service {:?} is not a slug", truncated(&service)),
        ));
    }
    if opts
        .services
        .as_ref()
        .is_some_and(|allowed| !allowed.contains(service.as_ref()))
    {
        return Err(DecodeError::new(
            UnknownService,
            format!("service {service:?} is not in decode.services"),
        ));
    }
    let region_text = wire
        .region
        .map(|t| t.0)
        .ok_or_else(|| DecodeError::new(MissingField, "missing field `region`"))?;
    let region = Region::parse(&region_text).ok_or_else(|| {
        DecodeError::new(
            BadRegion,
            format!(
                "region {:?} is not an ISO 3166 code",
                truncated(&region_text)
            ),
        )
    })?;

    let ts_ms = match wire.ts {
        Some(WireTs::Millis(ms)) => ms,
        Some(WireTs::Text(text)) => parse_rfc3339_ms(&text).ok_or_else(|| {
            DecodeError::new(
                BadTimestamp,
                format!("ts {:?} is not RFC 3339", truncated(&text)),
            )
        })?,
        Some(WireTs::Invalid(v)) => {
            return Err(DecodeError::new(
                BadTimestamp,
                format!("ts {v} is not whole epoch milliseconds"),
            ))
        }
        None => message_ts_ms.ok_or_else(|| {
            DecodeError::new(
                MissingField,
                "no `ts` field and the message has no timestamp",
            )
        })?,
    };
    if !(0..=MAX_TS_MS).contains(&ts_ms) {
        return Err(DecodeError::new(
            BadTimestamp,
            format!("ts {ts_ms} ms is out of range"),
        ));
    }
    if ts_ms > now_ms.saturating_add(opts.max_clock_skew_ms) {
        return Err(DecodeError::new(
            FutureTimestamp,
            format!(
                "ts is {} ms ahead of the clock, more than the allowed skew",
                ts_ms - now_ms
            ),
        ));
    }

    let problem = wire
        .problem
        .as_ref()
        .map_or(Problem::Other, |p| Problem::from_name(&p.0));
    let reporter = wire.reporter.map(|t| t.0);
    let source = wire.source.map(|t| t.0);
    if let Some(reporter) = &reporter {
        if reporter.len() > opts.max_reporter_bytes {
            return Err(DecodeError::new(
                BadField,
                format!(
                    "reporter is {} bytes, more than {}",
                    reporter.len(),
                    opts.max_reporter_bytes
                ),
            ));
        }
    }
    if let Some(source) = &source {
        if source.len() > opts.max_source_bytes {
            return Err(DecodeError::new(
                BadField,
                format!(
                    "source is {} bytes, more than {}",
                    source.len(),
                    opts.max_source_bytes
                ),
            ));
        }
    }

    Ok(Report {
        service,
        region,
        ts_ms,
        problem,
        reporter,
        source,
    })
}

/// At most 40 characters of untrusted text for an error detail.
fn truncated(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::Country;
    use proptest::prelude::*;

    type Projection = [Option<String>; 6];

    fn project(w: &Wire<'_>) -> Projection {
        let t = |t: &Option<Text<'_>>| t.as_ref().map(|t| t.0.to_string());
        let ts = w.ts.as_ref().map(|ts| match ts {
            WireTs::Millis(v) => format!("ms {v}"),
            WireTs::Text(t) => format!("text {t}"),
            WireTs::Invalid(v) => format!("invalid {v}"),
        });
        [
            t(&w.service),
            t(&w.region),
            ts,
            t(&w.problem),
            t(&w.reporter),
            t(&w.source),
        ]
    }

    fn json_piece() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            8 => prop::sample::select(vec![
                "\"service\"", "\"region\"", "\"ts\"", "\"problem\"", "\"reporter\"", "\"source\"",
            ]),
            1 => prop::sample::select(vec!["\"other\"", "\"serv\\u0069ce\"", "\"ts", "service"]),
        ];
        let value = prop_oneof![
            4 => "\"[a-zA-Z0-9 ._:+-]{0,12}\"",
            2 => "\"\\PC{0,6}\"",
            1 => "\"[a-z\\\\\"\\t\\n]{0,6}\"",
            4 => "-?[0-9]{1,20}",
            1 => "-?[0-9]{1,3}\\.[0-9]{1,3}",
            1 => "[0-9]{1,3}[eE][+-]?[0-9]{1,2}",
            2 => prop::sample::select(vec!["null", "true", "{}", "[1]", "{\"a\":1}", "-", "0", "-0", "01"])
                .prop_map(str::to_string),
        ];
        let ws = prop_oneof![6 => Just(""), 1 => Just(" "), 1 => Just("\n\t"), 1 => Just("\r")];
        let colon = prop_oneof![9 => Just(":"), 1 => Just("")];
        (ws.clone(), key, ws.clone(), colon, ws.clone(), value, ws)
            .prop_map(|(a, k, b, colon, c, v, d)| format!("{a}{k}{b}{colon}{c}{v}{d}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Whatever the fast path accepts, serde reads identically.
        #[test]
        fn the_fast_path_agrees_with_serde(
            pieces in prop::collection::vec(json_piece(), 0..4),
            sep in prop_oneof![9 => Just(","), 1 => Just(", "), 1 => Just(""), 1 => Just(",,")],
            open in prop_oneof![9 => Just("{"), 1 => Just(" {"), 1 => Just("["), 1 => Just("")],
            close in prop_oneof![9 => Just("}"), 1 => Just("} "), 1 => Just(""), 1 => Just("}}"), 1 => Just("},")],
            cut in any::<prop::sample::Index>(),
            truncate in prop::bool::weighted(0.1),
        ) {
            let mut text = format!("{open}{}{close}", pieces.join(sep));
            if truncate {
                let at = cut.index(text.len() + 1);
                while !text.is_char_boundary(at.min(text.len())) { text.pop(); }
                text.truncate(at.min(text.len()));
            }
            if let Some(fast) = scan_flat(&text) {
                let slow: Wire<'_> = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("fast path accepted {text:?}, serde: {e}"));
                prop_assert_eq!(project(&fast), project(&slow), "{:?}", text);
            }
        }
    }

    #[test]
    fn the_fast_path_takes_what_producers_send() {
        for text in [
            r#"{"service":"alexa","region":"GB","ts":"2018-09-26T10:02:11.123Z","problem":"voice","reporter":"u1","source":"app"}"#,
            r#"{"service":"aws.s3","region":"US-CA","ts":1537956131123,"problem":"login"}"#,
            " { \"service\" : \"x\" ,\n\"region\":\"DE\" } ",
            "{}",
        ] {
            assert!(scan_flat(text).is_some(), "{text}");
        }
        for text in [
            r#"{"service":"a\u0062c","region":"GB"}"#,
            r#"{"service":"x","region":"GB","reporter":null}"#,
            r#"{"service":"x","region":"GB","ts":1.5}"#,
            r#"{"service":"x","service":"y","region":"GB"}"#,
            r#"{"service":"x","region":"GB","extra":{"a":1}}"#,
        ] {
            assert!(scan_flat(text).is_none(), "{text}");
        }
    }

    const NOW: i64 = 1_537_963_200_000; // 2018-09-26T12:00:00Z

    fn ok(json: &str) -> Report<'_> {
        decode(
            json.as_bytes(),
            Some(NOW - 1000),
            NOW,
            &DecodeOptions::default(),
        )
        .expect(json)
    }

    fn reject(json: &[u8]) -> RejectReason {
        decode(json, Some(NOW - 1000), NOW, &DecodeOptions::default())
            .unwrap_err()
            .reason
    }

    #[test]
    fn decodes_a_full_report_without_allocating() {
        let r = ok(
            r#"{"service":"alexa","region":"GB","ts":"2018-09-26T11:59:00Z","problem":"voice","reporter":"u1","source":"web"}"#,
        );
        assert!(matches!(r.service, Cow::Borrowed("alexa")));
        assert!(matches!(r.reporter, Some(Cow::Borrowed("u1"))));
        assert_eq!(r.region.country_code().as_str(), "GB");
        assert_eq!(r.ts_ms, NOW - 60_000);
        assert_eq!(r.problem, Problem::Voice);
    }

    #[test]
    fn optional_fields_have_defaults() {
        let r = ok(r#"{"service":"alexa","region":"us-ca"}"#);
        assert_eq!(
            r.ts_ms,
            NOW - 1000,
            "absent ts falls back to the message timestamp"
        );
        assert_eq!(r.problem, Problem::Other);
        assert_eq!(r.region.to_string(), "US-CA");
        let r = ok(
            r#"{"service":"alexa","region":"XK","ts":1537963100000,"problem":"battery","extra":[1,2]}"#,
        );
        assert_eq!(r.region.country_code(), Country::UNKNOWN);
        assert_eq!(r.ts_ms, 1_537_963_100_000);
        assert_eq!(r.problem, Problem::Other);
        let r = ok(r#"{"service":"a","region":"DE","ts":1.5379631E12,"reporter":null}"#);
        assert_eq!(r.ts_ms, 1_537_963_100_000);
        assert_eq!(r.reporter, None);
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let r = ok(r#"{"service":"al\u0065xa","region":"GB","reporter":"a\"b"}"#);
        assert_eq!(r.service, "alexa");
        assert_eq!(r.reporter.as_deref(), Some("a\"b"));
    }

    #[test]
    fn every_reason_is_reachable() {
        let opts = DecodeOptions {
            max_message_bytes: 200,
            ..DecodeOptions::default()
        };
        let big = format!(
            r#"{{"service":"a","region":"GB","source":"{}"}}"#,
            "x".repeat(300)
        );
        assert_eq!(
            decode(big.as_bytes(), None, NOW, &opts).unwrap_err().reason,
            RejectReason::Oversize
        );
        assert_eq!(reject(b"{\"service\":\"a\xff\"}"), RejectReason::NotUtf8);
        assert_eq!(reject(b"not json"), RejectReason::NotJson);
        assert_eq!(reject(b""), RejectReason::NotJson);
        assert_eq!(reject(br#"["alexa","GB"]"#), RejectReason::NotJson);
        assert_eq!(
            reject(br#"{"service":"alexa","region":"GB""#),
            RejectReason::NotJson
        );
        assert_eq!(reject(br#"{"region":"GB"}"#), RejectReason::MissingField);
        assert_eq!(
            reject(br#"{"service":"alexa"}"#),
            RejectReason::MissingField
        );
        assert_eq!(
            decode(
                br#"{"service":"a","region":"GB"}"#,
                None,
                NOW,
                &DecodeOptions::default()
            )
            .unwrap_err()
            .reason,
            RejectReason::MissingField
        );
        assert_eq!(
            reject(br#"{"service":7,"region":"GB"}"#),
            RejectReason::BadField
        );
        let only_alexa = DecodeOptions {
            services: Some(std::sync::Arc::new(["alexa".to_string()].into())),
            ..DecodeOptions::default()
        };
        let line = |s: &str| format!(r#"{{"service":"{s}","region":"GB","ts":{NOW}}}"#);
        assert!(decode(line("alexa").as_bytes(), None, NOW, &only_alexa).is_ok());
        assert_eq!(
            decode(line("junk-1").as_bytes(), None, NOW, &only_alexa)
                .unwrap_err()
                .reason,
            RejectReason::UnknownService
        );
        assert_eq!(
            reject(br#"{"service":"a","service":"b","region":"GB"}"#),
            RejectReason::BadField
        );
        let long_reporter = format!(
            r#"{{"service":"a","region":"GB","reporter":"{}"}}"#,
            "r".repeat(300)
        );
        assert_eq!(reject(long_reporter.as_bytes()), RejectReason::BadField);
        assert_eq!(
            reject(br#"{"service":"Alexa","region":"GB"}"#),
            RejectReason::BadService
        );
        assert_eq!(
            reject(br#"{"service":"","region":"GB"}"#),
            RejectReason::BadService
        );
        assert_eq!(
            reject(br#"{"service":"a","region":"Great Britain"}"#),
            RejectReason::BadRegion
        );
        assert_eq!(
            reject(br#"{"service":"a","region":"GB","ts":"yesterday"}"#),
            RejectReason::BadTimestamp
        );
        assert_eq!(
            reject(br#"{"service":"a","region":"GB","ts":-5}"#),
            RejectReason::BadTimestamp
        );
        assert_eq!(
            reject(br#"{"service":"a","region":"GB","ts":1.5}"#),
            RejectReason::BadTimestamp
        );
        assert_eq!(
            reject(br#"{"service":"a","region":"GB","ts":true}"#),
            RejectReason::BadField
        );
        assert_eq!(
            reject(br#"{"service":"a","region":"GB","ts":"2018-09-26T12:06:00Z"}"#),
            RejectReason::FutureTimestamp
        );
        ok(r#"{"service":"a","region":"GB","ts":"2018-09-26T12:04:59Z"}"#);
    }

    #[test]
    fn slugs() {
        for good in ["a", "0", "alexa", "aws.s3", "x_y-z", &"a".repeat(64)] {
            assert!(is_service_slug(good), "{good}");
        }
        for bad in ["", "-a", ".a", "A", "a b", "ä", &"a".repeat(65)] {
            assert!(!is_service_slug(bad), "{bad}");
        }
    }

    #[test]
    fn reasons_have_unique_names() {
        for r in RejectReason::ALL {
            assert_eq!(RejectReason::from_name(r.as_str()), Some(r));
        }
    }
}
