//! The work folder's record of what is done: rewritten whole (it is small) under a temporary
//! name and renamed, after every step that finishes something.

use crate::{io_error, PipelineError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A finished rendition file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    /// File name in the work folder's `renditions/`.
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
    /// For an `[[audio]]` track's rendition: the fingerprint of its entry and file
    /// (`ExtraAudio::made_from`); a rendition whose entry or file changed is made again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub made_from: Option<String>,
}

/// One rendition finished by one run (the kill tests check none is finished twice).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncodeRecord {
    pub rendition: String,
    pub run: u32,
}

/// What a title's work folder holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Runs started on this folder.
    pub runs: u32,
    /// Source identity, ladder and analysis options the renditions were made from.
    pub encode_fingerprint: String,
    /// SHA-256 of the source, which names its units (hashed once per source identity).
    #[serde(default)]
    pub source_sha256: Option<String>,
    /// The ladder chosen (per-title analysis runs once).
    pub ladder: Option<reel_encoder::Ladder>,
    /// Finished renditions by name (video rungs and `audio`).
    pub finished: BTreeMap<String, Finished>,
    /// Every finish, in order.
    pub encodes: Vec<EncodeRecord>,
    /// Fingerprint of the package in `package/` (renditions + packaging + encryption), when
    /// complete.
    pub package: Option<String>,
}

impl State {
    pub fn path(work: &Path) -> PathBuf {
        work.join("state.json")
    }

    /// Loads the state of `work` (empty when there is none).
    pub fn load(work: &Path) -> Result<State, PipelineError> {
        let path = State::path(work);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| PipelineError::State {
                path,
                detail: format!("unreadable state ({e}); remove the work folder to start over"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(io_error(&path)(e)),
        }
    }

    /// Writes the state atomically.
    pub fn save(&self, work: &Path) -> Result<(), PipelineError> {
        let path = State::path(work);
        let tmp = work.join(format!(".state.json.tmp-{}", std::process::id()));
        let bytes = serde_json::to_vec_pretty(self).expect("state serializes");
        std::fs::write(&tmp, bytes).map_err(io_error(&tmp))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io_error(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_error(&path))
    }
}
