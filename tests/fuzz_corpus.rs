//! Replays the committed fuzz corpus and every crash reproducer through the
//! fuzz targets' own bodies (`fuzz/targets.rs`), on stable, in CI: a decoder
//! change that panics on, or allocates without bound for, an input the
//! fuzzer once found fails here. `scripts/fuzz` grows the corpus.
//!
//! Every allocation is watched: one larger than 256 MiB for an input of a
//! few kilobytes is a failure (a crafted size field trusted).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use outage_ingest::state as state_format;
#[path = "../fuzz/targets.rs"]
mod targets;

struct Watching;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

const MAX_ALLOCATION: usize = 256 << 20;

/// Runs `target` on every file of `fuzz/corpus/<name>` and
/// `fuzz/regressions/<name>`; returns how many there were.
fn replay(name: &str, target: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.file_name().unwrap().to_string_lossy().starts_with('.') {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            LARGEST.store(0, Ordering::Relaxed);
            let outcome = std::panic::catch_unwind(|| target(&data));
            let largest = LARGEST.load(Ordering::Relaxed);
            assert!(outcome.is_ok(), "{} panics", path.display());
            assert!(
                largest <= MAX_ALLOCATION,
                "{}: one allocation of {largest} bytes for {} bytes of input",
                path.display(),
                data.len()
            );
            n += 1;
        }
    }
    n
}

#[test]
fn report_decoder_corpus() {
    let n = replay("report_decoder", targets::report_decoder);
    assert!(n >= 10, "the report decoder's corpus holds {n} inputs");
}

#[test]
fn snapshot_decoder_corpus() {
    let n = replay("snapshot_decoder", targets::snapshot_decoder);
    assert!(n >= 3, "the snapshot decoder's corpus holds {n} inputs");
}

#[test]
fn state_manifest_corpus() {
    let n = replay("state_manifest", targets::state_manifest);
    assert!(n >= 3, "the manifest's corpus holds {n} inputs");
}

/// The watch itself works: a crafted manifest that once made the reader
/// allocate its claimed size up front is one of the reproducers, and a
/// 1 GiB allocation is seen.
#[test]
fn the_allocation_watch_sees_a_large_allocation() {
    LARGEST.store(0, Ordering::Relaxed);
    let v: Vec<u8> = Vec::with_capacity(1 << 30);
    assert!(LARGEST.load(Ordering::Relaxed) >= 1 << 30);
    drop(v);
}
