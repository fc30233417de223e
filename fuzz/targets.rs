//! The fuzz targets' bodies, shared by `fuzz_targets/*.rs` (libFuzzer, run
//! by `scripts/fuzz`) and by `tests/fuzz_corpus.rs`, which replays the
//! committed corpus and every crash reproducer in CI. Each states what the
//! code under test promises for any input: no panic, and what it accepts
//! is usable. The includer provides `state_format`
//! (`outage_ingest::state`'s pure `format` module).

#![allow(dead_code)]

use std::collections::BTreeMap;

use crate::state_format::{decode_snapshot, LoadOutcome, Manifest};
use outage_detect::{decode, DecodeOptions, Detector, DetectorConfig};

/// 2023-11-14T22:13:20Z: the decoder's clock and the record timestamp.
const NOW_MS: i64 = 1_700_000_000_000;

/// A Kafka message value: decoded or rejected with a reason; an accepted
/// report keeps the decoder's bounds and a detector takes it.
pub fn report_decoder(data: &[u8]) {
    let opts = DecodeOptions::default();
    let Ok(r) = decode(data, Some(NOW_MS), NOW_MS, &opts) else {
        return;
    };
    assert!(data.len() <= opts.max_message_bytes);
    assert!(
        outage_detect::decode::is_service_slug(&r.service),
        "service {:?}",
        r.service
    );
    assert!(r.ts_ms <= NOW_MS + opts.max_clock_skew_ms);
    assert!(r
        .reporter
        .as_ref()
        .is_none_or(|x| x.len() <= opts.max_reporter_bytes));
    assert!(r
        .source
        .as_ref()
        .is_none_or(|x| x.len() <= opts.max_source_bytes));
    let mut d = Detector::new(DetectorConfig::default());
    d.observe(&r);
    d.tick(r.ts_ms.saturating_add(3_600_000));
}

/// A detector snapshot (binary, from the state topic or a file): refused,
/// or restored into a detector that works, whose own snapshot restores, and
/// which goes on exactly like that restored copy (the bytes may differ:
/// hash sets serialize in their own order).
pub fn snapshot_decoder(data: &[u8]) {
    let Ok(mut d) = Detector::from_snapshot(data) else {
        return;
    };
    let mut back =
        Detector::from_snapshot(&d.to_snapshot()).expect("a detector's own snapshot restores");
    let line = br#"{"service":"alexa","region":"GB","ts":1700000000000,"problem":"login","reporter":"u1"}"#;
    let r = decode(line, None, NOW_MS, &DecodeOptions::default()).expect("a valid report");
    let mut outputs = Vec::new();
    for det in [&mut d, &mut back] {
        let observed = det.observe(&r);
        det.tick(NOW_MS + 1_800_000);
        det.tick(NOW_MS + 3_600_000);
        let events: Vec<_> = det.drain_events().collect();
        outputs.push((observed, events, det.counters().clone()));
    }
    // Compared as printed: a crafted state may hold NaN, which is not equal
    // to itself but prints the same.
    assert_eq!(format!("{:?}", outputs[0]), format!("{:?}", outputs[1]));
}

/// A state-topic manifest (JSON, up to the first newline) and its chunks
/// (the rest, split at 0xFF bytes): refused, or exactly the payload size the
/// manifest claims. Sizes in a manifest never allocate by themselves (the
/// corpus replay bounds every allocation).
pub fn state_manifest(data: &[u8]) {
    let (head, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(manifest) = serde_json::from_slice::<Manifest>(head) else {
        return;
    };
    let chunks: BTreeMap<u32, Vec<u8>> = rest
        .split(|&b| b == 0xFF)
        .enumerate()
        .map(|(i, c)| (i as u32, c.to_vec()))
        .collect();
    if let LoadOutcome::Found(l) = decode_snapshot(&manifest, &chunks) {
        assert_eq!(l.payload.len() as u64, manifest.raw_bytes);
    }
}
