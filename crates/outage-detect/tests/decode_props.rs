//! Property tests for the decoder: total (never panics, always a reason) and
//! faithful (encode → decode gives back the same report).

use std::borrow::Cow;

use outage_detect::region::ISO_3166_1_ALPHA2;
use outage_detect::{decode, DecodeOptions, Problem, Region, Report};
use proptest::prelude::*;

const NOW: i64 = 1_700_000_000_000;

fn report_strategy() -> impl Strategy<Value = Report<'static>> {
    (
        "[a-z0-9][a-z0-9._-]{0,63}",
        prop::sample::select(ISO_3166_1_ALPHA2.to_vec()),
        prop::option::of("[A-Z0-9]{1,3}"),
        0i64..NOW,
        prop::sample::select(Problem::ALL.to_vec()),
        prop::option::of("\\PC{0,40}"),
        prop::option::of("[ -~]{0,40}"),
    )
        .prop_map(
            |(service, country, sub, ts_ms, problem, reporter, source)| {
                let code = match sub {
                    Some(sub) => format!("{country}-{sub}"),
                    None => country.to_string(),
                };
                Report {
                    service: Cow::Owned(service),
                    region: Region::parse(&code).expect("generated codes are well-formed"),
                    ts_ms,
                    problem,
                    reporter: reporter.map(Cow::Owned),
                    source: source.map(Cow::Owned),
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_decode_or_reject_with_a_reason(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        match decode(&bytes, Some(NOW), NOW, &DecodeOptions::default()) {
            Ok(r) => prop_assert!(outage_detect::decode::is_service_slug(&r.service)),
            Err(e) => prop_assert!(!e.detail.is_empty()),
        }
    }

    #[test]
    fn any_json_object_decodes_or_rejects(
        fields in prop::collection::vec(
            (prop::sample::select(vec!["service", "region", "ts", "problem", "reporter", "source", "x"]),
             prop_oneof![
                 Just("null".to_string()),
                 any::<i64>().prop_map(|v| v.to_string()),
                 any::<f64>().prop_map(|v| format!("{v:?}")),
                 "[a-zA-Z0-9 _.:-]{0,20}".prop_map(|s| format!("{s:?}")),
                 Just("{}".to_string()),
                 Just("[1]".to_string()),
             ]),
            0..8)
    ) {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
        let json = format!("{{{}}}", body.join(","));
        let _ = decode(json.as_bytes(), Some(NOW), NOW, &DecodeOptions::default());
    }

    #[test]
    fn encode_then_decode_round_trips(report in report_strategy()) {
        let json = report.to_json();
        let back = decode(json.as_bytes(), None, NOW, &DecodeOptions::default())
            .map_err(|e| TestCaseError::fail(format!("{e} for {json}")))?;
        prop_assert_eq!(back.into_owned(), report);
    }

    #[test]
    fn rfc3339_and_millis_agree(ts_ms in 0i64..4_102_444_800_000) {
        let text = chrono::DateTime::from_timestamp_millis(ts_ms).unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let json = format!(r#"{{"service":"s","region":"GB","ts":"{text}"}}"#);
        let r = decode(json.as_bytes(), None, i64::MAX / 2, &DecodeOptions::default()).unwrap();
        prop_assert_eq!(r.ts_ms, ts_ms);
    }
}

proptest! {
    #[test]
    fn fast_rfc3339_path_matches_chrono(
        ts_ms in 0i64..253_402_300_799_999,
        offset_min in -1439i32..1439,
        frac_digits in 0usize..10,
    ) {
        let offset = chrono::FixedOffset::east_opt(offset_min * 60).unwrap();
        let t = chrono::DateTime::from_timestamp_millis(ts_ms).unwrap().with_timezone(&offset);
        let mut text = t.format("%Y-%m-%dT%H:%M:%S").to_string();
        if frac_digits > 0 {
            let nanos = format!("{:09}", t.timestamp_subsec_nanos());
            text.push('.');
            text.push_str(&nanos[..frac_digits]);
        }
        text.push_str(&t.format("%:z").to_string());
        let expected = chrono::DateTime::parse_from_rfc3339(&text).map(|t| t.timestamp_millis()).ok();
        prop_assert_eq!(outage_detect::time::parse_rfc3339_ms(&text), expected, "{}", text);
    }
}
