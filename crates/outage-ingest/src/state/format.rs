//! The layout of one snapshot in the state topic, without Kafka: the
//! manifest, the payload compressed and split into chunks, and the checks
//! that reassemble it or say why it cannot be used. Pure, so that it can
//! be fuzzed (`fuzz/`) and reasoned about alone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `format` of every manifest.
pub const STATE_FORMAT: &str = "outage-radar.state";
/// Manifest layout version (1: gzip, 2: LZ4 block); readers refuse others.
pub const STATE_VERSION: u32 = 2;

/// The snapshot's description, stored as the manifest record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`STATE_FORMAT`].
    pub format: String,
    /// Layout version ([`STATE_VERSION`]).
    pub version: u32,
    /// Generation of the snapshot: its chunks carry the same number.
    pub generation: u64,
    /// Next offset of the source partition to process after restoring.
    pub offset: i64,
    /// Chunks the payload was split into.
    pub chunks: u32,
    /// Compressed payload size.
    pub bytes: u64,
    /// Uncompressed payload size.
    pub raw_bytes: u64,
    /// CRC-32 of the compressed payload.
    pub crc32: u32,
    /// What the sink counts in it (series, for the detector).
    pub items: u64,
    /// When it was taken, ms since the epoch.
    pub created_at_ms: i64,
}

/// A snapshot read back.
#[derive(Debug)]
pub struct Loaded {
    /// The manifest it was read with.
    pub manifest: Manifest,
    /// The decompressed payload.
    pub payload: Vec<u8>,
}

/// What the state topic holds for one key.
#[derive(Debug)]
pub enum LoadOutcome {
    /// A usable snapshot.
    Found(Loaded),
    /// No snapshot for the key.
    Missing,
    /// Present but unusable: the reason.
    Corrupt(String),
}

/// Compresses a payload and splits it into chunk records' values.
pub fn encode_snapshot(
    payload: &[u8],
    generation: u64,
    offset: i64,
    items: u64,
    created_at_ms: i64,
    chunk_bytes: usize,
) -> (Manifest, Vec<Vec<u8>>) {
    let compressed = lz4_flex::compress(payload);
    let parts: Vec<&[u8]> = if compressed.is_empty() {
        vec![&[][..]]
    } else {
        compressed.chunks(chunk_bytes).collect()
    };
    let count = parts.len() as u32;
    let chunks = parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let mut v = Vec::with_capacity(16 + part.len());
            v.extend_from_slice(&generation.to_le_bytes());
            v.extend_from_slice(&(i as u32).to_le_bytes());
            v.extend_from_slice(&count.to_le_bytes());
            v.extend_from_slice(part);
            v
        })
        .collect();
    let manifest = Manifest {
        format: STATE_FORMAT.into(),
        version: STATE_VERSION,
        generation,
        offset,
        chunks: count,
        bytes: compressed.len() as u64,
        raw_bytes: payload.len() as u64,
        crc32: crc32fast::hash(&compressed),
        items,
        created_at_ms,
    };
    (manifest, chunks)
}

/// Reassembles a snapshot from its manifest and chunks (by index), or says
/// why it cannot.
pub fn decode_snapshot(manifest: &Manifest, chunks: &BTreeMap<u32, Vec<u8>>) -> LoadOutcome {
    if manifest.format != STATE_FORMAT || manifest.version != STATE_VERSION {
        return LoadOutcome::Corrupt(format!(
            "incompatible snapshot: {} v{} (this build reads {STATE_FORMAT} v{STATE_VERSION})",
            manifest.format, manifest.version
        ));
    }
    // Sizes in a manifest are only claims: nothing is allocated from them
    // until the chunks that back them are in hand.
    let mut parts = Vec::new();
    let mut total = 0u64;
    for i in 0..manifest.chunks {
        match chunks.get(&i) {
            Some(c) => {
                total += c.len() as u64;
                parts.push(c.as_slice());
            }
            None => {
                return LoadOutcome::Corrupt(format!(
                    "chunk {i} of {} of generation {} is missing",
                    manifest.chunks, manifest.generation
                ))
            }
        }
    }
    if total != manifest.bytes {
        return LoadOutcome::Corrupt(format!(
            "chunks of generation {} hold {total} bytes, the manifest says {}",
            manifest.generation, manifest.bytes
        ));
    }
    let compressed = parts.concat();
    if crc32fast::hash(&compressed) != manifest.crc32 {
        return LoadOutcome::Corrupt(format!(
            "checksum mismatch (generation {}, {} bytes)",
            manifest.generation,
            compressed.len()
        ));
    }
    // An LZ4 block cannot expand more than 255-fold: a larger claim is
    // corrupt, and the buffer allocated for it stays proportional to data
    // actually read.
    if manifest.raw_bytes > (compressed.len() as u64).saturating_mul(255) + 16 {
        return LoadOutcome::Corrupt(format!(
            "the manifest claims {} bytes decompressed from {}: more than LZ4 can expand",
            manifest.raw_bytes,
            compressed.len()
        ));
    }
    let payload = match lz4_flex::decompress(&compressed, manifest.raw_bytes as usize) {
        Ok(p) if p.len() as u64 == manifest.raw_bytes => p,
        Ok(p) => {
            return LoadOutcome::Corrupt(format!(
                "decompressed to {} bytes, not {}",
                p.len(),
                manifest.raw_bytes
            ))
        }
        Err(e) => return LoadOutcome::Corrupt(format!("cannot decompress: {e}")),
    };
    LoadOutcome::Found(Loaded {
        manifest: manifest.clone(),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(payload: &[u8], chunk_bytes: usize) -> LoadOutcome {
        let (m, chunks) = encode_snapshot(payload, 7, 42, 3, 1000, chunk_bytes);
        let by_index: BTreeMap<u32, Vec<u8>> = chunks
            .iter()
            .map(|c| {
                (
                    u32::from_le_bytes(c[8..12].try_into().unwrap()),
                    c[16..].to_vec(),
                )
            })
            .collect();
        decode_snapshot(&m, &by_index)
    }

    #[test]
    fn snapshots_roundtrip_across_chunks() {
        let payload: Vec<u8> = (0..200_000u32)
            .flat_map(|i| i.wrapping_mul(2654435761).to_le_bytes())
            .collect();
        for chunk in [1024, 64 * 1024, 16 * 1024 * 1024] {
            match roundtrip(&payload, chunk) {
                LoadOutcome::Found(l) => {
                    assert_eq!(l.payload, payload);
                    assert_eq!(l.manifest.offset, 42);
                    assert_eq!(l.manifest.items, 3);
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(roundtrip(b"", 1024), LoadOutcome::Found(l) if l.payload.is_empty()));
    }

    #[test]
    fn corrupt_missing_or_incompatible_snapshots_are_refused() {
        let payload = vec![7u8; 100_000];
        let (m, chunks) = encode_snapshot(&payload, 1, 5, 0, 0, 1024);
        let mut by_index: BTreeMap<u32, Vec<u8>> = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| (i as u32, c[16..].to_vec()))
            .collect();
        assert!(matches!(
            decode_snapshot(&m, &by_index),
            LoadOutcome::Found(_)
        ));
        let mut flipped = by_index.clone();
        flipped.get_mut(&0).unwrap()[20] ^= 1;
        assert!(
            matches!(decode_snapshot(&m, &flipped), LoadOutcome::Corrupt(e) if e.contains("checksum"))
        );
        if m.chunks > 1 {
            by_index.remove(&(m.chunks - 1));
            assert!(
                matches!(decode_snapshot(&m, &by_index), LoadOutcome::Corrupt(e) if e.contains("missing"))
            );
        }
        // A crafted manifest's sizes allocate nothing: they are checked
        // against the chunks actually read.
        let mut liar = m.clone();
        liar.bytes = u64::MAX;
        assert!(
            matches!(decode_snapshot(&liar, &by_index), LoadOutcome::Corrupt(e) if e.contains("the manifest says"))
        );
        let one: BTreeMap<u32, Vec<u8>> = [(0, by_index[&0].clone())].into();
        let mut liar = m.clone();
        liar.chunks = 1;
        liar.bytes = one[&0].len() as u64;
        liar.crc32 = crc32fast::hash(&one[&0]);
        liar.raw_bytes = 1 << 40;
        assert!(
            matches!(decode_snapshot(&liar, &one), LoadOutcome::Corrupt(e) if e.contains("more than LZ4"))
        );
        liar.chunks = u32::MAX;
        assert!(
            matches!(decode_snapshot(&liar, &one), LoadOutcome::Corrupt(e) if e.contains("missing"))
        );
        let mut newer = m.clone();
        newer.version = STATE_VERSION + 1;
        assert!(
            matches!(decode_snapshot(&newer, &BTreeMap::new()), LoadOutcome::Corrupt(e) if e.contains("incompatible"))
        );
    }
}
