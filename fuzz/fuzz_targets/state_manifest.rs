//! libFuzzer entry for `targets::state_manifest` (see `fuzz/targets.rs`).
#![no_main]

// The state topic's layout without the Kafka client (librdkafka does not
// build under the sanitizers).
#[path = "../../crates/outage-ingest/src/state/format.rs"]
#[allow(dead_code)]
mod state_format;
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::state_manifest(data));
