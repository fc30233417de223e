//! The detector's snapshot format: a versioned binary document that
//! restores a partition's detector bit-for-bit, and refuses, never
//! half-applies, anything else.
//!
//! Must not: know what the state means; the layout is serde's of
//! [`Detector`].

use serde::Deserialize;

use crate::detector::Detector;

/// Version of the snapshot layout; bumped on any incompatible change.
pub const SNAPSHOT_VERSION: u32 = 15;
const SNAPSHOT_FORMAT: &str = "outage-radar.detector";
/// First bytes of a binary snapshot (version 2 on).
const SNAPSHOT_MAGIC: &[u8; 8] = b"ORDETECT";

/// A snapshot that cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Not a snapshot of any version, or one that does not hold together.
    #[error("not a detector snapshot: {0}")]
    Malformed(String),
    /// A JSON document of another format.
    #[error("snapshot format {found:?} is not {SNAPSHOT_FORMAT:?}")]
    Format {
        /// The format it names.
        found: String,
    },
    /// A snapshot of another version (the partition starts without it).
    #[error(
        "snapshot version {found} is not supported (this build reads version {SNAPSHOT_VERSION})"
    )]
    Version {
        /// The version it carries.
        found: u32,
    },
}

impl Detector {
    /// The whole state as a versioned binary document: `ORDETECT`, the
    /// version (u32 LE), then the state in postcard's compact encoding
    /// (take it after draining events; they are not part of it).
    pub fn to_snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.series_count() * 1024);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        postcard::to_io(self, &mut out).expect("detector state always serializes");
        out
    }

    /// Restores a detector from [`Detector::to_snapshot`]; a snapshot of
    /// another format or version (including the JSON of version 1) is
    /// refused, never half-applied.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Detector, SnapshotError> {
        if let Some(rest) = bytes.strip_prefix(SNAPSHOT_MAGIC) {
            let version = rest
                .get(..4)
                .map(|v| u32::from_le_bytes(v.try_into().expect("4 bytes")))
                .ok_or_else(|| SnapshotError::Malformed("truncated header".into()))?;
            if version != SNAPSHOT_VERSION {
                return Err(SnapshotError::Version { found: version });
            }
            let mut d: Detector = postcard::from_bytes(&rest[4..])
                .map_err(|e| SnapshotError::Malformed(e.to_string()))?;
            d.check_structure().map_err(SnapshotError::Malformed)?;
            d.rebuild_index();
            return Ok(d);
        }
        #[derive(Deserialize)]
        struct Header {
            format: String,
            version: u32,
        }
        let header: Header =
            serde_json::from_slice(bytes).map_err(|e| SnapshotError::Malformed(e.to_string()))?;
        if header.format != SNAPSHOT_FORMAT {
            return Err(SnapshotError::Format {
                found: header.format,
            });
        }
        Err(SnapshotError::Version {
            found: header.version,
        })
    }
}
